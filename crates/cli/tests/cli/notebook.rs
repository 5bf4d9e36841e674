//! examples/notebook.py, run headlessly as a user would: over an export of the sample
//! warehouse (with scores and the cube's views), and through `crmcube serve`.

use crate::common::{crmcube, ingest_ok, num, query, repo_root};
use std::process::Command;

#[test]
fn the_notebook_reads_an_export_with_polars_and_duckdb_and_asks_flight_sql() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let w = wh.to_str().expect("utf-8");
    let r = crmcube(&["mine", "score", "--warehouse", w, "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let export = tmp.path().join("snapshot");
    let r = crmcube(&[
        "export",
        "--warehouse",
        w,
        "--out",
        export.to_str().expect("utf-8"),
        "--views",
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let server = crate::serve::start(&wh, &["--no-pg"]);

    let charts = tmp.path().join("charts");
    let out = Command::new("python3")
        .arg(repo_root().join("examples/notebook.py"))
        .args(["--export", export.to_str().expect("utf-8")])
        .args(["--out", charts.to_str().expect("utf-8")])
        .args(["--flight", &server.uri, "--user", "analyst", "--json"])
        .env("CRMCUBE_PASSWORD", crate::serve::PASSWORD)
        .output()
        .expect("python3 runs (pip install -r examples/requirements.txt)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "notebook.py failed:\n{stderr}");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");

    assert_eq!(got["agree"], true, "{got}");
    assert_eq!(got["flight_agree"], true, "{got}");
    assert_eq!(got["segment_kind"], "RFM segment", "{got}");
    let total = num(&query(&wh, "SELECT SUM(revenue) AS r FROM fact_sales")[0]["r"]);
    assert!((num(&got["revenue_total"]) - total).abs() < 0.01, "{got}");
    let months = num(&query(
        &wh,
        "SELECT COUNT(DISTINCT date_key / 100) AS n FROM fact_sales",
    )[0]["n"]);
    assert_eq!(num(&got["months"]), months, "{got}");
    assert!(num(&got["cohorts"]) >= 12.0, "{got}");
    for name in ["revenue_by_month_segment.png", "cohort_retention.png"] {
        let bytes = std::fs::read(charts.join(name)).expect(name);
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name} is not a PNG"
        );
        assert!(bytes.len() > 10_000, "{name}: only {} bytes", bytes.len());
    }

    // An unfinished export (no _SUCCESS) is refused, exit 2.
    std::fs::remove_file(export.join("_SUCCESS")).expect("rm");
    let out = Command::new("python3")
        .arg(repo_root().join("examples/notebook.py"))
        .args(["--export", export.to_str().expect("utf-8")])
        .args(["--out", charts.to_str().expect("utf-8")])
        .output()
        .expect("python3 runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("_SUCCESS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

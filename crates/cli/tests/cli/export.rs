//! `crmcube export`: snapshots read by pyarrow, polars and DuckDB (examples/check_export.py,
//! with the Python packages of examples/requirements.txt), totals checked against
//! `crmcube sql` on the warehouse, version pinning, refusal to overwrite other folders;
//! and `crmcube cube shell` driven from a script.

use crate::common::{crmcube, ingest_ok, num, query, repo_root};
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn manifest(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("_manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest json")
}

fn table<'a>(m: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    m["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no table {name} in the manifest"))
}

/// Runs examples/check_export.py; the Python readers must be installed
/// (`pip install -r examples/requirements.txt`, done by .ci/run).
fn python_readers(out: &Path) -> serde_json::Value {
    let script = repo_root().join("examples/check_export.py");
    let r = Command::new("python3")
        .arg(&script)
        .arg(out)
        .arg("--json")
        .output()
        .expect("python3 runs (install: pip install -r examples/requirements.txt)");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        r.status.success(),
        "check_export.py failed (are pyarrow, polars and duckdb installed? \
         pip install -r examples/requirements.txt):\n{stderr}"
    );
    serde_json::from_slice(&r.stdout).expect("readings json")
}

#[test]
fn an_export_is_read_alike_by_pyarrow_polars_and_duckdb_in_every_format() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let star = [
        "dim_campaign",
        "dim_channel",
        "dim_customer",
        "dim_date",
        "dim_product",
        "dim_region",
        "fact_campaign_response",
        "fact_interaction",
        "fact_sales",
        "fact_ticket",
    ];
    for format in ["parquet", "csv", "arrow"] {
        let out = tmp.path().join(format!("export-{format}"));
        let r = crmcube(&[
            "export",
            "--warehouse",
            s(&wh),
            "--out",
            s(&out),
            "--format",
            format,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(out.join("_SUCCESS").is_file(), "no _SUCCESS");
        let m = manifest(&out);
        assert_eq!(m["format"], format);
        let names: Vec<&str> = m["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .map(|t| t["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names, star,
            "default tables: the star schema, no internal tables"
        );
        // The manifest's numbers are the warehouse's.
        for t in star {
            let n = num(&query(&wh, &format!("SELECT COUNT(*) AS n FROM {t}"))[0]["n"]);
            assert_eq!(num(&table(&m, t)["rows"]), n, "{t} rows");
        }
        let sums = &query(
            &wh,
            "SELECT SUM(revenue) AS revenue, SUM(quantity) AS quantity, \
             SUM(gross_profit) AS gross_profit FROM fact_sales",
        )[0];
        let sales = table(&m, "fact_sales");
        assert_eq!(sales["partitioning"], serde_json::json!(["year", "month"]));
        for c in ["revenue", "quantity", "gross_profit"] {
            assert!(
                (num(&sales["totals"][c]) - num(&sums[c])).abs() < 0.005,
                "{c}: manifest {} vs sql {}",
                sales["totals"][c],
                sums[c]
            );
        }
        assert!(
            sales["totals"].get("customer_key").is_none(),
            "surrogate keys have no totals"
        );
        // Hive layout on disk.
        let first = sales["files"][0]["path"].as_str().expect("path");
        assert!(
            first.starts_with("fact_sales/year=") && first.contains("/month="),
            "{first}"
        );
        assert!(first.ends_with(&format!("/part-0.{format}")), "{first}");
        // Each reader gets the manifest's rows and totals (the script checks them all
        // and exits non-zero on any difference); spot-check its readings here too.
        let readings = python_readers(&out);
        let readers: &[&str] = if format == "arrow" {
            &["pyarrow", "polars"]
        } else {
            &["pyarrow", "polars", "duckdb"]
        };
        for t in star {
            for reader in readers {
                let got = &readings[t][*reader];
                assert_eq!(
                    num(&got["rows"]),
                    num(&table(&m, t)["rows"]),
                    "{format} {t} {reader}"
                );
            }
        }
        for reader in readers {
            let got = num(&readings["fact_sales"][*reader]["totals"]["revenue"]);
            assert!(
                (got - num(&sums["revenue"])).abs() < 0.005,
                "{format} {reader} revenue {got}"
            );
        }
    }
}

#[test]
fn an_export_pins_one_version_replaces_only_earlier_exports_and_names_bad_tables() {
    let tmp = tempfile::tempdir().expect("tmp");
    let parts = crate::versions::split_export(tmp.path(), &["2025-01-01"]);
    let wh = tmp.path().join("wh");
    ingest_ok(&parts[0], &wh);
    let first_rows = num(&query(&wh, "SELECT COUNT(*) AS n FROM fact_sales")[0]["n"]);
    ingest_ok(&parts[1], &wh);
    let all_rows = num(&query(&wh, "SELECT COUNT(*) AS n FROM fact_sales")[0]["n"]);
    assert!(all_rows > first_rows);
    let history = crmcube(&["history", "--warehouse", s(&wh), "--format", "json"]);
    let history: serde_json::Value = serde_json::from_str(&history.stdout).expect("json");
    let versions: Vec<u64> = history
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_u64().expect("version"))
        .collect();
    let (oldest, newest) = (versions[0].min(versions[1]), versions[0].max(versions[1]));

    let out = tmp.path().join("snap");
    let old = oldest.to_string();
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&out),
        "--tables",
        "fact_sales,dim_date",
        "--as-of-version",
        &old,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = manifest(&out);
    assert_eq!(m["source_version"].as_u64(), Some(oldest));
    assert_eq!(num(&table(&m, "fact_sales")["rows"]), first_rows);
    assert_eq!(m["tables"].as_array().map(|t| t.len()), Some(2));

    // Exporting again into the same folder replaces the earlier export.
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&out),
        "--tables",
        "fact_sales",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = manifest(&out);
    assert_eq!(m["source_version"].as_u64(), Some(newest));
    assert_eq!(num(&table(&m, "fact_sales")["rows"]), all_rows);
    assert!(
        !out.join("dim_date").exists(),
        "the earlier export is replaced whole"
    );
    python_readers(&out);

    // A folder that is not an export is never overwritten.
    let other = tmp.path().join("notes");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("keep.txt"), "mine").expect("write");
    let r = crmcube(&["export", "--warehouse", s(&wh), "--out", s(&other)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).expect("kept"),
        "mine"
    );

    // An unknown table is named, with the tables there are; nothing is written.
    let fresh = tmp.path().join("fresh");
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&fresh),
        "--tables",
        "fact_salez",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("fact_salez") && r.stderr.contains("fact_sales"),
        "{}",
        r.stderr
    );
    assert!(!fresh.exists());

    // A version that does not exist, and a folder that is no warehouse.
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&fresh),
        "--as-of-version",
        "99",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = crmcube(&["export", "--warehouse", s(tmp.path()), "--out", s(&fresh)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a crmcube warehouse"), "{}", r.stderr);
    assert!(!fresh.exists());
}

fn shell(wh: &Path, args: &[&str], script: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args(["cube", "shell", "--warehouse", s(wh), "--format", "csv"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("crmcube runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The answers a script of shell steps prints, one CSV table per step.
fn answers(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stdout.lines().filter(|l| !l.starts_with("crmcube ")) {
        if line.contains(',') && line.split(',').next().is_some_and(|h| h.contains('.')) {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    out
}

fn cube_query(wh: &Path, args: &[&str]) -> String {
    let mut all = vec!["cube", "query", "--warehouse", s(wh), "--format", "csv"];
    all.extend_from_slice(args);
    let r = crmcube(&all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn the_cube_shell_steps_through_views_that_equal_the_same_cube_queries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let script = "\
rows geography.region
drill geography=Europe
slice time.year=2025
totals
undo
rollup geography
view
";
    let (code, stdout, stderr) = shell(&wh, &["--measures", "revenue,customers"], script);
    assert_eq!(code, 0, "{stderr}");
    let got = answers(&stdout);
    assert_eq!(got.len(), 6, "one answer per view step:\n{stdout}");
    let m = ["--measures", "revenue,customers"];
    let q = |extra: &[&str]| {
        let mut a = m.to_vec();
        a.extend_from_slice(extra);
        cube_query(&wh, &a)
    };
    assert_eq!(got[0], q(&["--rows", "geography.region"]));
    let europe = q(&[
        "--rows",
        "geography.country",
        "--slice",
        "geography.region=Europe",
    ]);
    assert_eq!(got[1], europe);
    let europe_2025 = q(&[
        "--rows",
        "geography.country",
        "--slice",
        "geography.region=Europe",
        "--slice",
        "time.year=2025",
    ]);
    assert_eq!(got[2], europe_2025);
    assert!(
        got[3].lines().any(|l| l.starts_with("All,")),
        "totals row:\n{}",
        got[3]
    );
    assert_eq!(got[4], europe_2025, "undo goes back one step");
    // Rolling up out of Europe shows every region again (for 2025).
    assert_eq!(
        got[5],
        q(&["--rows", "geography.region", "--slice", "time.year=2025"])
    );
    // `view` prints the current view as a command that gives the same answer.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("crmcube cube query"))
        .expect("view line");
    assert_eq!(
        line,
        "crmcube cube query --measures revenue,customers --rows geography.region --dice 'time.year = 2025'"
    );
    assert_eq!(
        q(&["--rows", "geography.region", "--dice", "time.year = 2025"]),
        got[5]
    );

    // From a script, the first bad step stops the shell with exit 2 and names the line;
    // the steps before it were answered.
    let (code, stdout, stderr) = shell(
        &wh,
        &["--measures", "revenue"],
        "rows time.year\ndrill nowhere\nrows geography.region\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("line 2") && stderr.contains("nowhere"),
        "{stderr}"
    );
    assert_eq!(answers(&stdout).len(), 1, "{stdout}");
}

#[test]
fn views_of_the_cube_model_export_with_the_rows_of_the_cube_and_are_read_alike() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let out = tmp.path().join("views");
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&out),
        "--tables",
        "fact_sales,cube_sales,revenue_by_region_year",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = manifest(&out);
    let names: Vec<&str> = m["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["fact_sales", "cube_sales", "revenue_by_region_year"]
    );
    assert_eq!(table(&m, "fact_sales")["view"], false);
    // The wide view has one row per sale and the same revenue.
    let wide = table(&m, "cube_sales");
    assert_eq!(wide["view"], true);
    assert_eq!(wide["rows"], table(&m, "fact_sales")["rows"]);
    assert!(
        (num(&wide["totals"]["revenue"]) - num(&table(&m, "fact_sales")["totals"]["revenue"]))
            .abs()
            < 0.005
    );
    // The saved query has the rows of `cube query --saved`, revenue to the cent.
    let cube = crmcube(&[
        "cube",
        "query",
        "--warehouse",
        s(&wh),
        "--saved",
        "revenue_by_region_year",
        "--format",
        "json",
    ]);
    assert_eq!(cube.code, 0, "{}", cube.stderr);
    let cube: serde_json::Value = serde_json::from_str(cube.stdout.trim()).expect("json");
    let cube = cube.as_array().expect("rows");
    let saved = table(&m, "revenue_by_region_year");
    assert_eq!(num(&saved["rows"]) as usize, cube.len());
    let columns: Vec<&str> = saved["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        &columns[..3],
        ["geography_region", "time_year", "revenue"],
        "{columns:?}"
    );
    let grand = cube
        .iter()
        .find(|r| r["geography.region"] == "All" && r["time.year"] == "All")
        .expect("grand total row");
    let sales_revenue = num(&table(&m, "fact_sales")["totals"]["revenue"]);
    assert!((num(&grand["revenue"]) - sales_revenue).abs() < 0.005);
    // Its subtotal rows are named in the manifest and left out of its totals, so the
    // view's revenue total is the facts' revenue, not three times it.
    let all_rows = cube
        .iter()
        .filter(|r| r["geography.region"] == "All" || r["time.year"] == "All")
        .count();
    assert!(all_rows > 1, "rollup rows: {all_rows}");
    assert_eq!(
        saved["subtotals"],
        serde_json::json!({
            "levels": ["geography_region", "time_year"],
            "all_member": "All",
            "rows": all_rows,
        })
    );
    assert!(
        (num(&saved["totals"]["revenue"]) - sales_revenue).abs() < 0.005,
        "view totals {} vs facts {sales_revenue}",
        saved["totals"]["revenue"]
    );
    assert!(wide.get("subtotals").is_none());
    // pyarrow, polars and DuckDB read the views like the tables.
    let readings = python_readers(&out);
    for reader in ["pyarrow", "polars", "duckdb"] {
        let got = &readings["revenue_by_region_year"][reader];
        assert_eq!(num(&got["rows"]) as usize, cube.len(), "{reader}");
        assert!(
            (num(&got["totals"]["revenue"]) - sales_revenue).abs() < 0.005,
            "{reader}: detail revenue {}",
            got["totals"]["revenue"]
        );
    }

    // A view the warehouse cannot make (no customer_scores before `mine rfm`) is refused
    // by name when asked for, and left out, with the reason, by --views.
    let fresh = tmp.path().join("fresh");
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&fresh),
        "--tables",
        "revenue_by_rfm_segment",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("revenue_by_rfm_segment") && r.stderr.contains("customer_scores"),
        "{}",
        r.stderr
    );
    assert!(!fresh.exists());
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&fresh),
        "--tables",
        "dim_channel",
        "--views",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = manifest(&fresh);
    for v in [
        "cube_sales",
        "cube_tickets",
        "revenue_by_region_year",
        "monthly_revenue_yoy",
        "campaign_funnel",
    ] {
        assert_eq!(table(&m, v)["view"], true, "{v}");
    }
    let left_out = m["views_left_out"].as_array().expect("left out");
    assert!(
        left_out.iter().any(|v| v
            .as_str()
            .unwrap_or("")
            .starts_with("revenue_by_rfm_segment: ")),
        "{left_out:?}"
    );
    python_readers(&fresh);

    // After `mine rfm`, customer_scores (partitioned by score date) exports with `as_of`
    // in the folder names only, and every reader reads it and the RFM view.
    let r = crmcube(&["mine", "rfm", "--warehouse", s(&wh)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let scored = tmp.path().join("scored");
    let r = crmcube(&[
        "export",
        "--warehouse",
        s(&wh),
        "--out",
        s(&scored),
        "--tables",
        "customer_scores,dim_customer,revenue_by_rfm_segment",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = manifest(&scored);
    let scores = table(&m, "customer_scores");
    assert_eq!(scores["partitioning"], serde_json::json!(["as_of"]));
    let stored: Vec<&str> = scores["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert!(
        !stored.contains(&"as_of") && stored.contains(&"rfm_segment"),
        "{stored:?}"
    );
    let n = num(&query(&wh, "SELECT COUNT(*) AS n FROM customer_scores")[0]["n"]);
    assert_eq!(num(&scores["rows"]), n);
    let path = scores["files"][0]["path"].as_str().expect("path");
    assert!(path.starts_with("customer_scores/as_of="), "{path}");
    let readings = python_readers(&scored);
    for reader in ["pyarrow", "polars", "duckdb"] {
        assert_eq!(
            num(&readings["customer_scores"][reader]["rows"]),
            n,
            "{reader}"
        );
        assert_eq!(
            num(&readings["revenue_by_rfm_segment"][reader]["rows"]),
            num(&table(&m, "revenue_by_rfm_segment")["rows"]),
            "{reader}"
        );
    }
}

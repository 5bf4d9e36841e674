//! `crmcube sql` and `crmcube tables`: formats, files, errors, and folders of Parquet.

use crate::common::{crmcube, crmcube_in, num, query};
use std::path::Path;

fn small_warehouse(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("export");
    let wh = dir.join("wh");
    let r = crmcube(&[
        "sample",
        "generate",
        "--customers",
        "100",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    crate::common::ingest_ok(&out, &wh);
    wh
}

#[test]
fn sql_formats_files_errors_and_data_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = small_warehouse(tmp.path());
    let w = wh.to_str().unwrap();

    let t = crmcube(&["tables", "--warehouse", w, "--format", "csv"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    for table in [
        "dim_customer",
        "dim_date",
        "dim_product",
        "dim_region",
        "dim_channel",
        "dim_campaign",
        "fact_sales",
        "fact_interaction",
        "fact_ticket",
        "fact_campaign_response",
        "_quarantine",
    ] {
        assert!(
            t.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{table},"))),
            "tables lacks {table}:\n{}",
            t.stdout
        );
    }

    let q = "SELECT channel, channel_group FROM dim_channel WHERE channel IN ('web', 'store') ORDER BY channel";
    let csv = crmcube(&["sql", "--warehouse", w, "--format", "csv", q]);
    assert_eq!(
        csv.stdout,
        "channel,channel_group\nstore,offline\nweb,digital\n"
    );
    let nd = crmcube(&["sql", "--warehouse", w, "--format", "ndjson", q]);
    assert_eq!(nd.stdout, "{\"channel\":\"store\",\"channel_group\":\"offline\"}\n{\"channel\":\"web\",\"channel_group\":\"digital\"}\n");
    let table = crmcube(&["sql", "--warehouse", w, q]);
    assert!(
        table.stdout.contains("| store   | offline       |"),
        "{}",
        table.stdout
    );

    let file = tmp.path().join("q.sql");
    std::fs::write(&file, q).unwrap();
    let out = tmp.path().join("out.csv");
    let r = crmcube(&[
        "sql",
        "--warehouse",
        w,
        "--file",
        file.to_str().unwrap(),
        "--format",
        "csv",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), csv.stdout);

    let bad = crmcube(&[
        "sql",
        "--warehouse",
        w,
        "SELECT no_such_column FROM fact_sales",
    ]);
    assert_eq!(bad.code, 2);
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("no_such_column"), "{}", bad.stderr);
    let bad = crmcube(&["sql", "--warehouse", w, "SELEC 1"]);
    assert_eq!(bad.code, 2);
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
    let bad = crmcube(&[
        "sql",
        "--warehouse",
        tmp.path().to_str().unwrap(),
        "SELECT 1",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("not a crmcube warehouse"),
        "{}",
        bad.stderr
    );

    // --data: any folder of Parquet files and folders.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let r = crmcube_in(tmp.path(), &["sql", "--warehouse", w, "SELECT 1"]);
    assert_eq!(r.code, 0);
    copy_dir(&wh.join("fact_sales"), &data.join("sales"));
    let region_file = std::fs::read_dir(wh.join("dim_region"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("dim_region file");
    std::fs::copy(region_file, data.join("regions.parquet")).unwrap();
    let d = data.to_str().unwrap();
    let a = crmcube(&[
        "sql",
        "--data",
        d,
        "--format",
        "json",
        "SELECT COUNT(*) AS n FROM sales s JOIN regions r ON s.region_key = r.region_key",
    ]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let n: serde_json::Value = serde_json::from_str(a.stdout.trim()).unwrap();
    let expected = query(&wh, "SELECT COUNT(*) AS n FROM fact_sales");
    assert_eq!(num(&n[0]["n"]), num(&expected[0]["n"]));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

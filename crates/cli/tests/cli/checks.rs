//! `crmcube check`: data quality checks over a real warehouse, passing and failing.

use crate::common::{crmcube, ingest_ok, num, query};
use std::path::Path;

/// Freshness reference just after the last sample order (the sample ends 2025-12-31).
const AS_OF: &str = "2026-01-01T12:00:00";

fn sample_warehouse(dir: &Path) -> std::path::PathBuf {
    let wh = dir.join("wh");
    ingest_ok(&crate::common::repo_root().join("sample_data"), &wh);
    wh
}

/// Runs `crmcube check` with `--format json` and returns (exit code, results, stderr).
fn check(
    wh: &Path,
    extra: &[&str],
) -> (i32, Vec<serde_json::Map<String, serde_json::Value>>, String) {
    let mut args = vec![
        "check",
        "--warehouse",
        wh.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = crmcube(&args);
    let rows = if r.stdout.trim().is_empty() {
        vec![]
    } else {
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("json output");
        v.as_array()
            .expect("array")
            .iter()
            .map(|o| o.as_object().expect("object").clone())
            .collect()
    };
    (r.code, rows, r.stderr)
}

fn not_passing(rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<(String, String, u64)> {
    rows.iter()
        .filter(|r| r["status"] != "pass")
        .map(|r| {
            (
                r["check"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                num(&r["failing_rows"]) as u64,
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn checks_on_the_sample_warehouse_and_on_damaged_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = sample_warehouse(tmp.path());

    // 1. The built-in checks all pass on the sample as of its last day …
    let (code, rows, stderr) = check(&wh, &["--as-of", AS_OF]);
    assert_eq!(code, 0, "{stderr}");
    let builtin_count = rows.len();
    assert!(builtin_count > 40, "{builtin_count} checks");
    assert_eq!(not_passing(&rows), vec![], "{stderr}");
    assert!(
        stderr.contains(&format!("{builtin_count} checks from <built-in schemas/checks.yaml>: {builtin_count} passed, 0 failed, 0 warnings")),
        "{stderr}"
    );
    for r in &rows {
        assert!(r["sql"].as_str().unwrap().starts_with("SELECT "));
    }

    // … and months later only the freshness warnings fire, which do not fail the run.
    let (code, rows, stderr) = check(&wh, &["--as-of", "2026-03-01"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        not_passing(&rows),
        vec![
            (
                "freshness_fact_sales_order_ts".to_string(),
                "warn".into(),
                1
            ),
            (
                "freshness_fact_interaction_event_ts".to_string(),
                "warn".into(),
                1
            ),
        ]
    );
    let fresh = rows
        .iter()
        .find(|r| r["check"] == "freshness_fact_sales_order_ts")
        .unwrap();
    let newest = query(
        &wh,
        "SELECT CAST(MAX(order_ts) AS VARCHAR) AS t FROM fact_sales",
    );
    assert_eq!(
        fresh["examples"].as_str().unwrap(),
        format!("newest {}", newest[0]["t"].as_str().unwrap())
    );
    assert!(
        stderr.contains("WARN freshness_fact_sales_order_ts"),
        "{stderr}"
    );

    // 2. A checks file whose expectations the data does not meet.
    let checks = tmp.path().join("strict.yaml");
    std::fs::write(
        &checks,
        "tables:
  dim_customer:
    columns:
      segment:
        - accepted_values: { values: [consumer, corporate] }
  fact_sales:
    checks:
      - row_count: { name: at_most_100_lines, max: 100 }
      - row_count: { name: some_lines, min: 1 }
      - expression: { name: big_orders, condition: quantity > 3, severity: warn }
    columns:
      customer_key:
        - relationships: { name: known_customers_only, to: dim_customer, allow_unknown: false }
",
    )
    .unwrap();
    let (code, rows, stderr) = check(&wh, &["--checks", checks.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let n = |sql: &str| num(&query(&wh, sql)[0]["n"]) as u64;
    let other_segments =
        n("SELECT COUNT(*) AS n FROM dim_customer WHERE segment NOT IN ('consumer', 'corporate')");
    let lines = n("SELECT COUNT(*) AS n FROM fact_sales");
    let big = n("SELECT COUNT(*) AS n FROM fact_sales WHERE quantity > 3");
    let unknown = n("SELECT COUNT(*) AS n FROM fact_sales WHERE customer_key = 0");
    assert!(other_segments > 0 && lines > 100 && big > 0);
    let mut expected = vec![
        (
            "accepted_values_dim_customer_segment".to_string(),
            "fail".to_string(),
            other_segments,
        ),
        ("at_most_100_lines".into(), "fail".into(), 1),
        ("big_orders".into(), "warn".into(), big),
    ];
    if unknown > 0 {
        expected.push(("known_customers_only".into(), "fail".into(), unknown));
    }
    assert_eq!(not_passing(&rows), expected);
    let segment = &rows[0];
    assert_eq!(
        segment["examples"].as_str().unwrap(),
        "Unknown; small_business"
    );
    assert_eq!(
        rows[1]["examples"].as_str().unwrap(),
        format!("{lines} rows")
    );
    assert!(
        stderr.contains(
            "error-level check(s) failed: accepted_values_dim_customer_segment, at_most_100_lines"
        ),
        "{stderr}"
    );
    // The SQL of a result returns exactly its failing rows.
    let again = query(&wh, segment["sql"].as_str().unwrap());
    assert_eq!(again.len() as u64, other_segments);

    // 3. A copy of the warehouse with a damaged dimension: a row repeating a region key.
    //    (A null in a column the table declares non-null cannot even be read: the table's
    //    Delta schema refuses it.)
    let damaged = tmp.path().join("damaged");
    copy_dir(&wh, &damaged);
    let key = query(
        &wh,
        "SELECT region_key FROM dim_region WHERE region_key <> 0 ORDER BY region_id LIMIT 1",
    )[0]["region_key"]
        .as_i64()
        .unwrap();
    append_region_row(&damaged.join("dim_region"), key);
    let (code, rows, stderr) = check(&damaged, &["--as-of", AS_OF]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(rows.len(), builtin_count);
    assert_eq!(
        not_passing(&rows),
        vec![(
            "unique_dim_region_region_key".to_string(),
            "fail".to_string(),
            2
        ),],
        "{stderr}"
    );
    let dup = rows
        .iter()
        .find(|r| r["check"] == "unique_dim_region_region_key")
        .unwrap();
    assert_eq!(dup["examples"].as_str().unwrap(), key.to_string());
    // The original is untouched.
    let (code, _, _) = check(&wh, &["--as-of", AS_OF]);
    assert_eq!(code, 0);
}

/// Writes one more Parquet file into a dimension's folder.
fn append_region_row(dir: &Path, key: i64) {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let text = |v: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let schema = Arc::new(Schema::new(vec![
        Field::new("region_key", DataType::Int64, false),
        Field::new("region_id", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("country_code", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
    ]));
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![key])),
            text(Some("R999")),
            text(Some("Atlantis")),
            text(Some("Nowhere")),
            text(Some("NW")),
            text(Some("Europe")),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("part-99999.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let size = std::fs::metadata(dir.join("part-99999.parquet"))
        .unwrap()
        .len();
    commit_added_file(dir, "part-99999.parquet", size, 1);
}

/// Publishes a file written into a table folder by hand: one more Delta commit adding
/// it, and one more warehouse version naming that commit (what a writer bypassing
/// crmcube's checks would do).
fn commit_added_file(table_dir: &Path, file: &str, size: u64, rows: u64) {
    let wh = table_dir.parent().unwrap();
    let table = table_dir.file_name().unwrap().to_str().unwrap();
    let log = wh.join("_crmcube_log");
    let latest = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    let text = std::fs::read_to_string(log.join(format!("{latest:020}.json"))).unwrap();
    let mut c: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tv = c["tables"][table]["version"].as_u64().unwrap() + 1;
    let add = serde_json::json!({"add": {"path": file, "partitionValues": {}, "size": size,
        "modificationTime": 0, "dataChange": true,
        "stats": serde_json::json!({"numRecords": rows}).to_string()}});
    std::fs::write(
        table_dir.join("_delta_log").join(format!("{tv:020}.json")),
        format!("{add}\n"),
    )
    .unwrap();
    c["version"] = serde_json::json!(latest + 1);
    c["tables"][table]["version"] = serde_json::json!(tv);
    std::fs::write(
        log.join(format!("{:020}.json", latest + 1)),
        serde_json::to_string_pretty(&c).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_checks_file_naming_an_unknown_column_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let checks = tmp.path().join("typo.yaml");
    std::fs::write(
        &checks,
        "tables:\n  fact_sales:\n    columns:\n      custmer_key: [not_null]\n",
    )
    .unwrap();
    let r = crmcube(&[
        "check",
        "--warehouse",
        wh.to_str().unwrap(),
        "--checks",
        checks.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}: tables.fact_sales.columns.custmer_key: no column `custmer_key` in table fact_sales",
            checks.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());

    let r = crmcube(&[
        "check",
        "--warehouse",
        wh.to_str().unwrap(),
        "--as-of",
        "next tuesday",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--as-of `next tuesday`"), "{}", r.stderr);
}

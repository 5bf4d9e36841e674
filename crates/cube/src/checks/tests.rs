use super::*;
use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

fn schema() -> WarehouseSchema {
    WarehouseSchema::builtin().unwrap()
}

fn parse_err(yaml: &str) -> String {
    CheckSuite::parse(yaml, "c.yaml", &schema())
        .unwrap_err()
        .to_string()
}

#[test]
fn builtin_checks_parse() {
    let s = CheckSuite::builtin(&schema()).unwrap();
    assert!(s.checks.len() > 40, "{} checks", s.checks.len());
    let fk = s
        .checks
        .iter()
        .find(|c| c.name == "relationships_fact_sales_customer_key__dim_customer")
        .unwrap();
    assert_eq!(fk.key, "tables.fact_sales.columns.customer_key[1]");
    assert_eq!(
        fk.kind,
        CheckKind::Relationships {
            to: "dim_customer".into(),
            field: "customer_key".into(),
            allow_unknown: Some(true)
        }
    );
}

#[test]
fn errors_name_file_and_key() {
    let cases = [
        (
            "tables:\n  fact_salez:\n    checks: []\n",
            "tables.fact_salez",
            "no table `fact_salez`",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      custmer_key: [not_null]\n",
            "tables.fact_sales.columns.custmer_key",
            "no column `custmer_key` in table fact_sales",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      customer_key: [not_nul]\n",
            "tables.fact_sales.columns.customer_key[0]",
            "`not_nul` is not a check kind",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      customer_key:\n        - relationships: { to: dim_customers }\n",
            "tables.fact_sales.columns.customer_key[0].relationships.to",
            "no table `dim_customers`",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      customer_key:\n        - relationships: { to: dim_customer, field: id }\n",
            "relationships.field",
            "no column `id` in table dim_customer",
        ),
        (
            "tables:\n  fact_sales:\n    checks:\n      - row_count: { min: 5, max: 2 }\n",
            "tables.fact_sales.checks[0].row_count",
            "min (5) is larger than max (2)",
        ),
        (
            "tables:\n  fact_sales:\n    checks:\n      - row_count: { mni: 5 }\n",
            "tables.fact_sales.checks[0].row_count.mni",
            "unknown parameter of row_count",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      quantity:\n        - accepted_values: { values: [1, two] }\n",
            "values[1]",
            "expected a whole number for a int column",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      quantity:\n        - freshness: { max_age: 2d }\n",
            "freshness",
            "freshness needs a date or timestamp column",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      order_ts:\n        - freshness: { max_age: soon }\n",
            "freshness.max_age",
            "`soon` is not an age",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      order_ts:\n        - not_null: { severity: fatal }\n",
            "not_null.severity",
            "expected error or warn",
        ),
        (
            "tables:\n  fact_sales:\n    checks:\n      - not_null\n",
            "tables.fact_sales.checks[0]",
            "not_null is a column check",
        ),
        (
            "tables:\n  fact_sales:\n    columns:\n      order_id: [not_null, not_null]\n",
            "tables.fact_sales.columns.order_id[1]",
            "check name `not_null_fact_sales_order_id` is already used",
        ),
        ("tables: [\n", "line", "c.yaml"),
    ];
    for (yaml, key, msg) in cases {
        let e = parse_err(yaml);
        assert!(
            e.starts_with("c.yaml: ") && e.contains(key) && e.contains(msg),
            "{yaml}\n→ {e}"
        );
    }
}

#[test]
fn literals_follow_the_column_type() {
    let s = CheckSuite::parse(
        "tables:\n  fact_sales:\n    columns:\n      order_id:\n        - accepted_values: { values: [\"O'1\", 2] }\n      returned:\n        - accepted_values: { values: [false] }\n      order_ts:\n        - accepted_values: { values: ['2025-01-01'] }\n",
        "c.yaml",
        &schema(),
    )
    .unwrap();
    let lits: Vec<Vec<String>> = s
        .checks
        .iter()
        .map(|c| match &c.kind {
            CheckKind::AcceptedValues { values } => values.iter().map(|v| v.0.clone()).collect(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        lits,
        vec![
            vec!["'O''1'".to_string(), "'2'".to_string()],
            vec!["FALSE".to_string()],
            vec!["TIMESTAMP '2025-01-01T00:00:00'".to_string()],
        ]
    );
}

#[test]
fn as_of_formats() {
    let t = |s| {
        parse_as_of(s)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    assert_eq!(t("2026-01-31"), "2026-01-31 00:00:00");
    assert_eq!(t("2026-01-31T06:30"), "2026-01-31 06:30:00");
    assert_eq!(t("2026-01-31T06:30:00+02:00"), "2026-01-31 04:30:00");
    assert_eq!(t("2026-01-31 06:30:05"), "2026-01-31 06:30:05");
    assert!(parse_as_of("31/01/2026").is_err());
}

/// A session holding small hand-made tables named like warehouse tables.
async fn warehouse() -> Warehouse {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open_data(dir.path()).await.unwrap();
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![0, 10, 20]));
    let names: ArrayRef = Arc::new(StringArray::from(vec!["Unknown", "C1", "C2"]));
    let dim =
        RecordBatch::try_from_iter(vec![("customer_key", ids), ("customer_id", names)]).unwrap();
    wh.context().register_batch("dim_customer", dim).unwrap();
    let order_id: ArrayRef = Arc::new(StringArray::from(vec!["O1", "O1", "O2", "O3", "O4"]));
    let line_no: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 1, 1]));
    let customer: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(10),
        Some(10),
        Some(30),
        None,
        Some(0),
    ]));
    let quantity: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 0, 5]));
    // 2025-12-31T12:00:00
    let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
        1_767_182_400_000_000i64;
        5
    ]));
    let sales = RecordBatch::try_from_iter(vec![
        ("order_id", order_id),
        ("line_no", line_no),
        ("order_ts", ts),
        ("customer_key", customer),
        ("quantity", quantity),
    ])
    .unwrap();
    wh.context().register_batch("fact_sales", sales).unwrap();
    wh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_count_the_failing_rows() {
    let wh = warehouse().await;
    let yaml = "tables:
  fact_sales:
    checks:
      - unique: { columns: [order_id, line_no] }
      - row_count: { min: 1, max: 4 }
      - row_count: { name: enough_rows, min: 1 }
      - freshness: { column: order_ts, max_age: 1d }
      - freshness: { name: stale, column: order_ts, max_age: 6h, severity: warn }
    columns:
      order_id: [unique]
      customer_key:
        - not_null
        - relationships: { to: dim_customer }
        - relationships: { name: strict_customer, to: dim_customer, allow_unknown: false }
      quantity:
        - accepted_values: { values: [1, 2, 3] }
        - expression: { condition: quantity < 1, where: order_id <> 'O9' }
";
    let suite = CheckSuite::parse(yaml, "c.yaml", &schema())
        .unwrap()
        .with_as_of(Some(parse_as_of("2026-01-01T00:00:00").unwrap()));
    let results = run_checks(&wh, &suite).await.unwrap();
    let got: Vec<(&str, Status, u64, Vec<String>)> = results
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.status,
                r.failing_rows,
                r.examples.clone(),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (
                "unique_fact_sales_order_id_line_no",
                Status::Fail,
                2,
                s(&["O1, 1"])
            ),
            ("row_count_fact_sales", Status::Fail, 1, s(&["5 rows"])),
            ("enough_rows", Status::Pass, 0, vec![]),
            ("freshness_fact_sales_order_ts", Status::Pass, 0, vec![]),
            ("stale", Status::Warn, 1, s(&["newest 2025-12-31T12:00:00"])),
            ("unique_fact_sales_order_id", Status::Fail, 2, s(&["O1"])),
            (
                "not_null_fact_sales_customer_key",
                Status::Fail,
                1,
                s(&["order_id=O3, customer_key=NULL"])
            ),
            (
                "relationships_fact_sales_customer_key__dim_customer",
                Status::Fail,
                1,
                s(&["30"])
            ),
            ("strict_customer", Status::Fail, 2, s(&["0", "30"])),
            (
                "accepted_values_fact_sales_quantity",
                Status::Fail,
                2,
                s(&["0", "5"])
            ),
            (
                "expression_fact_sales_quantity",
                Status::Fail,
                1,
                s(&["order_id=O3, quantity=0"])
            ),
        ]
    );
    assert!(has_errors(&results));
    assert!(!has_errors(&results[2..5]));
    // The reported SQL returns the failing rows when run on its own.
    let rerun = wh.sql(&results[7].sql).await.unwrap();
    assert_eq!(rerun.num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_does_not_compile_names_the_check() {
    let wh = warehouse().await;
    let suite = CheckSuite::parse(
        "tables:\n  fact_sales:\n    checks:\n      - expression: { name: bad, condition: no_such_column > 1 }\n",
        "c.yaml",
        &schema(),
    )
    .unwrap();
    let e = run_checks(&wh, &suite).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("c.yaml: tables.fact_sales.checks[0]: check `bad` cannot run")
            && text.contains("no_such_column"),
        "{text}"
    );
    assert_eq!(e.exit_code(), 2);
}

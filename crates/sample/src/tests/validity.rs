//! Every generated file satisfies `schemas/oltp.yaml`: header, types, accepted values,
//! nullability, bounds, unique primary keys and resolving foreign keys.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};

use super::support::{contract, read_export, sample, small, SpecColumn};
use crate::contract::{ColumnType, Entity};
use crate::{generate, ExportFormat, SampleConfig, SampleError};

fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Str => "string",
        ColumnType::Int => "int",
        ColumnType::Decimal => "decimal",
        ColumnType::Bool => "bool",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Float => "float",
    }
}

#[test]
fn generator_columns_match_the_contract() {
    let spec = contract();
    assert_eq!(spec.len(), Entity::CONTRACT.len());
    // The ad-hoc YAML reader found the constraints the other tests rely on.
    assert_eq!(spec.iter().map(|e| e.foreign_keys.len()).sum::<usize>(), 16);
    let accepted = spec
        .iter()
        .flat_map(|e| &e.columns)
        .filter(|c| c.accepted.is_some())
        .count();
    assert_eq!(accepted, 14);
    assert!(spec.iter().all(|e| !e.primary_key.is_empty()));
    for (s, e) in spec.iter().zip(Entity::CONTRACT) {
        assert_eq!(s.name, e.name());
        let ours: Vec<(&str, &str, bool)> = e
            .columns()
            .iter()
            .map(|c| (c.name, type_name(c.ty), c.nullable))
            .collect();
        let theirs: Vec<(&str, &str, bool)> = s
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.as_str(), c.nullable))
            .collect();
        assert_eq!(ours, theirs, "columns of {}", s.name);
    }
}

fn check_value(entity: &str, col: &SpecColumn, v: &str) {
    let ctx = || format!("{entity}.{} = {v:?}", col.name);
    if v.is_empty() {
        assert!(col.nullable, "null in non-nullable {}", ctx());
        return;
    }
    let number: Option<f64> = match col.ty.as_str() {
        "string" => {
            if let Some(n) = col.max_length {
                assert!(v.chars().count() <= n, "too long: {}", ctx());
            }
            if let Some(acc) = &col.accepted {
                assert!(acc.iter().any(|a| a == v), "not accepted: {}", ctx());
            }
            None
        }
        "int" => Some(
            v.parse::<i64>()
                .unwrap_or_else(|_| panic!("not an int: {}", ctx())) as f64,
        ),
        "decimal" => {
            let (units, frac) = v
                .split_once('.')
                .unwrap_or_else(|| panic!("no point: {}", ctx()));
            assert_eq!(frac.len(), 2, "scale: {}", ctx());
            assert!(
                units
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit()),
                "{}",
                ctx()
            );
            Some(
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("not a decimal: {}", ctx())),
            )
        }
        "bool" => {
            assert!(v == "true" || v == "false", "not a bool: {}", ctx());
            None
        }
        "date" => {
            assert!(
                NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() && v.len() == 10,
                "date: {}",
                ctx()
            );
            None
        }
        "timestamp" => {
            assert!(
                NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").is_ok() && v.len() == 19,
                "timestamp: {}",
                ctx()
            );
            None
        }
        other => panic!("unknown type {other}"),
    };
    if let Some(x) = number {
        if let Some(min) = col.min {
            assert!(x >= min, "below min: {}", ctx());
        }
        if let Some(max) = col.max {
            assert!(x <= max, "above max: {}", ctx());
        }
    }
}

/// A period of three weeks across a year end: most activity is squeezed against `end`.
fn short_period(customers: usize, seed: u64) -> SampleConfig {
    SampleConfig {
        start: NaiveDate::from_ymd_opt(2024, 12, 20).expect("date"),
        end: NaiveDate::from_ymd_opt(2025, 1, 9).expect("date"),
        ..small(customers, seed)
    }
}

#[test]
fn csv_export_satisfies_the_contract() {
    check_contract(&small(400, 3));
}

#[test]
fn short_period_export_satisfies_the_contract() {
    check_contract(&short_period(300, 30));
}

#[test]
fn nothing_happens_outside_the_period_or_before_signup() {
    check_bounds(&small(400, 4));
    check_bounds(&short_period(300, 31));
}

fn check_contract(cfg: &SampleConfig) {
    let dir = sample(cfg, ExportFormat::Csv);
    let tables = read_export(dir.path());
    let spec = contract();
    for e in &spec {
        let t = &tables[&e.name];
        let names: Vec<&str> = e.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(t.header, names, "header of {}", e.name);
        assert!(!t.rows.is_empty(), "{} is empty", e.name);
        for row in &t.rows {
            for (col, v) in e.columns.iter().zip(row) {
                check_value(&e.name, col, v);
            }
        }
        // Primary keys are unique.
        let idx: Vec<usize> = e.primary_key.iter().map(|k| t.col(k)).collect();
        let mut seen = HashSet::new();
        for row in &t.rows {
            let key: Vec<&str> = idx.iter().map(|&i| row[i].as_str()).collect();
            assert!(
                seen.insert(key.clone()),
                "duplicate key {key:?} in {}",
                e.name
            );
        }
    }
    // Foreign keys resolve.
    let mut keys: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for e in &spec {
        for (column, target, target_col) in &e.foreign_keys {
            let set = keys
                .entry((target.clone(), target_col.clone()))
                .or_insert_with(|| {
                    tables[target]
                        .values(target_col)
                        .into_iter()
                        .map(String::from)
                        .collect()
                });
            for v in tables[&e.name].values(column) {
                assert!(
                    v.is_empty() || set.contains(v),
                    "{}.{column} = {v} does not resolve",
                    e.name
                );
            }
        }
    }
}

fn check_bounds(cfg: &SampleConfig) {
    let dir = sample(cfg, ExportFormat::Csv);
    let tables = read_export(dir.path());
    let lo = format!("{}T00:00:00", cfg.start);
    let hi = format!("{}T23:59:59", cfg.end);
    for e in contract() {
        for c in e.columns.iter().filter(|c| c.ty == "timestamp") {
            for v in tables[&e.name]
                .values(&c.name)
                .into_iter()
                .filter(|v| !v.is_empty())
            {
                assert!(
                    v >= lo.as_str() && v <= hi.as_str(),
                    "{}.{} = {v}",
                    e.name,
                    c.name
                );
            }
        }
    }
    let customers = &tables["customers"];
    let mut signup: HashMap<&str, &str> = HashMap::new();
    for r in &customers.rows {
        let id = r[customers.col("customer_id")].as_str();
        let at = r[customers.col("updated_at")].as_str();
        let s = signup.entry(id).or_insert(at);
        if at < *s {
            *s = at;
        }
    }
    // The first version is effective at signup.
    for r in &customers.rows {
        let id = r[customers.col("customer_id")].as_str();
        assert_eq!(&signup[id][..10], r[customers.col("signup_date")].as_str());
    }
    for (entity, ts_col) in [
        ("orders", "order_ts"),
        ("campaign_contacts", "sent_ts"),
        ("web_sessions", "started_at"),
        ("cart_events", "event_ts"),
        ("email_events", "event_ts"),
        ("tickets", "opened_at"),
    ] {
        let t = &tables[entity];
        let (ci, ti) = (t.col("customer_id"), t.col(ts_col));
        for r in &t.rows {
            if !r[ci].is_empty() {
                assert!(
                    r[ti].as_str() >= signup[r[ci].as_str()],
                    "{entity} before signup: {r:?}"
                );
            }
        }
    }
    let tickets = &tables["tickets"];
    for r in &tickets.rows {
        let closed = &r[tickets.col("closed_at")];
        assert!(
            closed.is_empty() || closed > &r[tickets.col("opened_at")],
            "{r:?}"
        );
    }
    let campaigns = &tables["campaigns"];
    for r in &campaigns.rows {
        let (s, e) = (
            &r[campaigns.col("start_date")],
            &r[campaigns.col("end_date")],
        );
        assert!(
            s <= e
                && s.as_str() >= cfg.start.to_string().as_str()
                && e.as_str() <= cfg.end.to_string().as_str()
        );
    }
}

#[test]
fn jsonl_and_parquet_carry_the_same_rows() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let cfg = small(150, 8);
    let csv = sample(&cfg, ExportFormat::Csv);
    let jsonl = sample(&cfg, ExportFormat::Jsonl);
    let parquet = sample(&cfg, ExportFormat::Parquet);
    let tables = read_export(csv.path());
    for e in contract() {
        let t = &tables[&e.name];
        let text =
            std::fs::read_to_string(jsonl.path().join(format!("{}.jsonl", e.name))).expect("jsonl");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), t.rows.len(), "{}", e.name);
        let first: serde_json::Value = serde_json::from_str(lines[0]).expect("valid json");
        let obj = first.as_object().expect("object");
        assert_eq!(obj.len(), e.columns.len());
        for (c, v) in e.columns.iter().zip(&t.rows[0]) {
            let j = &obj[&c.name];
            let rendered = match j {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) if c.ty == "decimal" => {
                    format!("{:.2}", n.as_f64().unwrap_or(f64::NAN))
                }
                other => other.to_string(),
            };
            assert_eq!(&rendered, v, "{}.{}", e.name, c.name);
        }
        let file = std::fs::File::open(parquet.path().join(format!("{}.parquet", e.name)))
            .expect("parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet reader");
        let schema = reader.schema().clone();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let expected: Vec<&str> = e.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, expected);
        let rows: usize = reader
            .build()
            .expect("batches")
            .map(|b| b.expect("batch").num_rows())
            .sum();
        assert_eq!(rows, t.rows.len(), "{}", e.name);
    }
}

#[test]
fn invalid_configurations_are_rejected_and_stale_formats_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = small(0, 1);
    assert!(matches!(
        generate(&cfg, ExportFormat::Csv, dir.path()),
        Err(SampleError::Invalid(_))
    ));
    cfg.customers = 10;
    cfg.end = NaiveDate::from_ymd_opt(2022, 1, 1).expect("date");
    assert!(matches!(
        generate(&cfg, ExportFormat::Csv, dir.path()),
        Err(SampleError::Invalid(_))
    ));
    // A short period and a format switch.
    cfg.end = cfg.start + chrono::Duration::days(9);
    let summary = generate(&cfg, ExportFormat::Csv, dir.path()).expect("csv");
    assert_eq!(summary.files.len(), 13);
    assert!(dir.path().join("orders.csv").exists());
    generate(&cfg, ExportFormat::Jsonl, dir.path()).expect("jsonl");
    assert!(!dir.path().join("orders.csv").exists());
    assert!(dir.path().join("orders.jsonl").exists());
    assert!(dir.path().join("_truth.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty());
}

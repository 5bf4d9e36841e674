//! More bad input: CSV, JSON Lines and Parquet exports, file-system surprises, orphan
//! policies, and failed loads over an existing warehouse (which must keep answering as
//! before). Same rules as `bad_input`: a quarantined row with its reason or a clear one-line
//! error, never a panic, never a half-published warehouse.

use crate::bad_input::{append, base, judge, replace, write_export, Expect};
use crate::common::{crmcube_in, query};
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, ListArray,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Files = BTreeMap<&'static str, Vec<u8>>;

struct Case {
    name: &'static str,
    edit: fn(&mut Files),
    /// Runs after the export is written (file-system cases); returns false when the
    /// situation cannot be set up here (the case is then skipped and reported).
    fs: fn(&Path) -> bool,
    /// Flags; `{export}` stands for the export directory.
    args: &'static [&'static str],
    expect: Expect,
    /// Load the unedited export first: a failing load must leave it answering as before.
    over_previous: bool,
}

/// Every file under `dir`, relative to it.
fn all_files(dir: &Path) -> std::collections::BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Default::default();
    walk(dir, dir, &mut out);
    out
}

fn no_fs(_: &Path) -> bool {
    true
}

const TICKET_JSON: &str = r#"{"ticket_id":"T1","customer_id":"C2","order_id":"O2","opened_at":"2024-04-12T10:00:00","closed_at":"2024-04-13T10:00:00","channel":"phone","category":"returns","priority":"medium","is_complaint":true,"satisfaction_score":2}"#;

/// Replaces tickets.csv by tickets.jsonl holding the base ticket then `extra` lines.
fn tickets_jsonl(f: &mut Files, first: &str, extra: &str) {
    f.remove("tickets.csv");
    f.insert("tickets.jsonl", format!("{first}\n{extra}").into_bytes());
}

fn parquet_bytes(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn text(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// The base ticket as Parquet with typed columns; `change` swaps columns before writing.
fn tickets_parquet(f: &mut Files, change: fn(&mut Vec<(&'static str, ArrayRef)>)) {
    let mut cols: Vec<(&'static str, ArrayRef)> = vec![
        ("ticket_id", text(&[Some("T1")])),
        ("customer_id", text(&[Some("C2")])),
        ("order_id", text(&[Some("O2")])),
        (
            "opened_at",
            Arc::new(TimestampMicrosecondArray::from(vec![1_712_916_000_000_000])),
        ),
        (
            "closed_at",
            Arc::new(TimestampMicrosecondArray::from(vec![1_713_002_400_000_000])),
        ),
        ("channel", text(&[Some("phone")])),
        ("category", text(&[Some("returns")])),
        ("priority", text(&[Some("medium")])),
        ("is_complaint", Arc::new(BooleanArray::from(vec![true]))),
        ("satisfaction_score", Arc::new(Int32Array::from(vec![2]))),
    ];
    change(&mut cols);
    f.remove("tickets.csv");
    f.insert("tickets.parquet", parquet_bytes(cols));
}

fn set(cols: &mut [(&'static str, ArrayRef)], name: &str, a: ArrayRef) {
    cols.iter_mut().find(|(n, _)| *n == name).unwrap().1 = a;
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let c = |name, edit, expect| Case {
        name,
        edit,
        fs: no_fs,
        args: &[],
        expect,
        over_previous: false,
    };
    vec![
        // CSV.
        c("unclosed quote at end of file", |f| append(f, "order_lines.csv", "O2,2,P1,1,\"500.00,0.00,false\n"),
            Quarantined(&[("order_lines", 5, "", "expected 7 fields, found 5")])),
        c("NUL byte inside a field", |f| replace(f, "products.csv", "P2,Shoe,", b"P2,Sh\0e,"),
            Quarantined(&[("products", 3, "name", "contains a NUL character")])),
        c("header not UTF-8", |f| replace(f, "campaigns.csv", "campaign_id,name,", b"campaign_id,n\xe4me,"),
            Fails(1, &["campaigns.csv", "header line is not valid UTF-8"])),
        c("key not UTF-8", |f| replace(f, "products.csv", "P2,Shoe,", b"P\xc32,Shoe,"),
            Quarantined(&[("products", 3, "product_id", "not valid UTF-8")])),
        c("header-only dimension sends facts to Unknown", |f| {
                f.insert("customers.csv", b"customer_id,updated_at,email,first_name,last_name,birth_date,gender,signup_date,acquisition_channel,segment,region_id,opt_in_email,opt_in_sms\n".to_vec());
            }, Loads("SELECT COUNT(*) AS n FROM fact_sales WHERE customer_key = 0", 3.0)),
        c("whole number with thousands separator", |f| replace(f, "web_sessions.csv", ",5,300", b",\"1,500\",300"),
            Quarantined(&[("web_sessions", 2, "pages_viewed", "expected a whole number")])),
        c("timestamp in another format", |f| replace(f, "orders.csv", "2024-03-05T12:00:00", b"05/03/2024 12:00"),
            Quarantined(&[("order_lines", 2, "order_id", "or quarantined"), ("order_lines", 3, "order_id", "or quarantined"), ("orders", 2, "order_ts", "expected a timestamp")])),
        c("far-future year", |f| replace(f, "orders.csv", "2024-04-10T09:30:00", b"9999-04-10T09:30:00"),
            Loads("SELECT COUNT(*) AS n FROM fact_sales WHERE date_key = 99990410", 1.0)),
        c("negative year", |f| replace(f, "customers.csv", ",1990-05-01,", b",-990-05-01,"),
            Quarantined(&[("customers", 2, "birth_date", "expected a date")])),
        c("NaN amount", |f| replace(f, "order_lines.csv", "O2,1,P2,1,80.00", b"O2,1,P2,1,NaN"),
            Quarantined(&[("order_lines", 4, "unit_price", "expected a decimal number")])),
        c("infinite amount", |f| replace(f, "products.csv", "500.00,300.00", b"inf,300.00"),
            Quarantined(&[("products", 2, "list_price", "expected a decimal number")])),
        c("amount with exponent", |f| replace(f, "campaigns.csv", ",1000.00", b",1e3"),
            Quarantined(&[("campaigns", 2, "budget", "expected a decimal number")])),
        c("negative price", |f| replace(f, "order_lines.csv", "O2,1,P2,1,80.00", b"O2,1,P2,1,-80.00"),
            Quarantined(&[("order_lines", 4, "unit_price", "at least 0")])),
        c("tab-separated file read as CSV", |f| {
                let t = String::from_utf8(f.remove("regions.csv").unwrap()).unwrap().replace(',', "\t");
                f.insert("regions.tsv", t.into_bytes());
            }, Fails(1, &["regions.tsv", "missing required column(s)", "--delimiter"])),
        c("spaces around values and names", |f| {
                f.insert("order_lines.csv", b" order_id , line_no ,product_id,quantity,unit_price,discount,returned\nO1, 1 ,P1, 1 , 500.00 ,50.00, false\nO1,2,P2,2,80.00,0.00,false\nO2,1,P2,1,80.00,0.00,true\n".to_vec());
            }, Loads("SELECT CAST(SUM(revenue) AS DOUBLE) AS n FROM fact_sales", 690.0)),
        c("upper-case header names", |f| replace(f, "regions.csv", "region_id,city,country", b"REGION_ID,City,Country"),
            Loads("SELECT COUNT(*) AS n FROM dim_region WHERE city = 'Berlin'", 1.0)),
        c("leap second", |f| replace(f, "orders.csv", "2024-03-05T12:00:00", b"2024-03-05T23:59:60"),
            Loads("SELECT CAST(EXTRACT(SECOND FROM MAX(order_ts)) AS DOUBLE) AS n FROM fact_sales WHERE order_id = 'O1'", 59.0)),
        c("nanosecond timestamp is truncated to microseconds", |f| replace(f, "orders.csv", "2024-03-05T12:00:00", b"2024-03-05T12:00:00.123456789Z"),
            Loads("SELECT CAST(EXTRACT(MICROSECOND FROM MAX(order_ts)) AS DOUBLE) AS n FROM fact_sales WHERE order_id = 'O1'", 123456.0)),
        c("blank lines between rows", |f| replace(f, "order_lines.csv", "O1,2,", b"\n\nO1,2,"),
            Loads("SELECT COUNT(*) AS n FROM fact_sales", 3.0)),
        c("old Mac line ends", |f| {
                let t = String::from_utf8(f["regions.csv"].clone()).unwrap().replace('\n', "\r");
                f.insert("regions.csv", t.into_bytes());
            }, Loads("SELECT COUNT(*) AS n FROM dim_region WHERE region_key <> 0", 2.0)),
        c("offset with minutes and no colon", |f| replace(f, "orders.csv", "2024-04-10T09:30:00", b"2024-04-10T09:30:00+0530"),
            Loads("SELECT CAST(EXTRACT(MINUTE FROM MAX(order_ts)) AS DOUBLE) AS n FROM fact_sales WHERE order_id = 'O2'", 0.0)),
        c("one very long field", |f| {
                let long = "x".repeat(1 << 20);
                replace(f, "products.csv", "P2,Shoe,", format!("P2,{long},").as_bytes());
            }, Quarantined(&[("products", 3, "name", "longer than 200 characters")])),
        // JSON Lines.
        c("JSON trailing garbage", |f| tickets_jsonl(f, TICKET_JSON, &format!("{} xyz\n", TICKET_JSON.replace("T1", "T2"))),
            Quarantined(&[("tickets", 2, "", "invalid JSON: trailing characters")])),
        c("JSON null line", |f| tickets_jsonl(f, TICKET_JSON, "null\n\"text\"\n42\n"),
            Quarantined(&[("tickets", 2, "", "found null"), ("tickets", 3, "", "found a string"), ("tickets", 4, "", "found a number")])),
        c("JSON array value", |f| tickets_jsonl(f, TICKET_JSON, &format!("{}\n", TICKET_JSON.replace("\"T1\"", "\"T2\"").replace("\"returns\"", "[\"returns\"]"))),
            Quarantined(&[("tickets", 2, "category", "expected a scalar value")])),
        c("JSON duplicate key", |f| tickets_jsonl(f, &TICKET_JSON.replace("\"ticket_id\":\"T1\",", "\"ticket_id\":\"T1\",\"ticket_id\":\"T9\","), ""),
            Quarantined(&[("tickets", 1, "ticket_id", "appears twice")])),
        c("JSON huge integer", |f| tickets_jsonl(f, &TICKET_JSON.replace("\"satisfaction_score\":2", "\"satisfaction_score\":99999999999999999999"), ""),
            Quarantined(&[("tickets", 1, "satisfaction_score", "expected a whole number")])),
        c("JSON number out of range", |f| tickets_jsonl(f, &TICKET_JSON.replace("\"satisfaction_score\":2", "\"satisfaction_score\":1e400"), ""),
            Quarantined(&[("tickets", 1, "", "invalid JSON: number out of range")])),
        c("JSON scalars as strings", |f| tickets_jsonl(f, &TICKET_JSON.replace("true", "\"yes\"").replace(":2}", ":\"2\"}"), ""),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket WHERE is_complaint AND satisfaction_score = 2", 1.0)),
        c("JSON booleans as numbers", |f| tickets_jsonl(f, &TICKET_JSON.replace("true", "1"), ""),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket WHERE is_complaint", 1.0)),
        c("JSON missing required key", |f| tickets_jsonl(f, TICKET_JSON, &format!("{}\n", TICKET_JSON.replace("\"ticket_id\":\"T1\",", ""))),
            Quarantined(&[("tickets", 2, "ticket_id", "a value is required")])),
        c("JSON whitespace-only file", |f| tickets_jsonl(f, " ", "\n\t\n"),
            Fails(1, &["tickets.jsonl", "file is empty"])),
        c("JSON object spread over lines", |f| tickets_jsonl(f, TICKET_JSON, "{\n\"ticket_id\": \"T2\"}\n"),
            Quarantined(&[("tickets", 2, "", "invalid JSON"), ("tickets", 3, "", "invalid JSON")])),
        c("JSON unknown keys are ignored", |f| tickets_jsonl(f, &TICKET_JSON.replace("{", "{\"agent\":\"x\",\"tags\":[1,2],"), ""),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket", 1.0)),
        // Parquet.
        c("Parquet typed columns", |f| tickets_parquet(f, |_| {}),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket WHERE satisfaction_score = 2 AND is_complaint AND closed_at > opened_at", 1.0)),
        c("Parquet text in an int column", |f| tickets_parquet(f, |c| set(c, "satisfaction_score", text(&[Some("good")]))),
            Quarantined(&[("tickets", 1, "satisfaction_score", "expected a whole number")])),
        c("Parquet float in an int column", |f| tickets_parquet(f, |c| set(c, "satisfaction_score", Arc::new(Float64Array::from(vec![2.5])))),
            Quarantined(&[("tickets", 1, "satisfaction_score", "expected a whole number")])),
        c("Parquet epoch numbers in a timestamp column", |f| tickets_parquet(f, |c| set(c, "opened_at", Arc::new(Int64Array::from(vec![1_712_916_000])))),
            Quarantined(&[("tickets", 1, "opened_at", "expected a timestamp")])),
        c("Parquet date in a timestamp column", |f| tickets_parquet(f, |c| set(c, "opened_at", Arc::new(Date32Array::from(vec![19825])))),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket WHERE opened_at = TIMESTAMP '2024-04-12T00:00:00'", 1.0)),
        c("Parquet zoned timestamp", |f| tickets_parquet(f, |c| set(c, "opened_at", Arc::new(TimestampMicrosecondArray::from(vec![1_712_916_000_000_000]).with_timezone("+02:00")))),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket WHERE opened_at = TIMESTAMP '2024-04-12T10:00:00'", 1.0)),
        c("Parquet null in a required column", |f| tickets_parquet(f, |c| set(c, "priority", text(&[None])))
            , Quarantined(&[("tickets", 1, "priority", "a value is required")])),
        c("Parquet list column", |f| tickets_parquet(f, |c| set(c, "category", Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)])])))),
            Quarantined(&[("tickets", 1, "category", "expected one of")])),
        c("Parquet missing required column", |f| tickets_parquet(f, |c| c.retain(|(n, _)| *n != "opened_at")),
            Fails(1, &["tickets.parquet", "missing required column(s) opened_at"])),
        c("Parquet with no rows", |f| tickets_parquet(f, |c| { for (_, a) in c.iter_mut() { *a = a.slice(0, 0); } }),
            Loads("SELECT COUNT(*) AS n FROM fact_ticket", 0.0)),
        c("truncated Parquet file", |f| {
                tickets_parquet(f, |_| {});
                let v = f.get_mut("tickets.parquet").unwrap();
                v.truncate(v.len() / 2);
            }, Fails(1, &["tickets.parquet", "not a readable Parquet file"])),
        c("Parquet footer intact, data pages garbled", |f| {
                tickets_parquet(f, |_| {});
                let v = f.get_mut("tickets.parquet").unwrap();
                for b in &mut v[4..40] { *b = 0xAB; }
            }, Fails(1, &["tickets.parquet", "Parquet data cannot be read"])),
        // Several files per entity.
        c("mixed formats for one entity", |f| {
                f.insert("orders.jsonl", b"{\"order_id\":\"O3\",\"customer_id\":\"C1\",\"order_ts\":\"2024-05-01T08:00:00\",\"channel\":\"web\",\"region_id\":\"R1\"}\n".to_vec());
                append(f, "order_lines.csv", "O3,1,P2,1,80.00,0.00,false\n");
            }, Loads("SELECT COUNT(DISTINCT order_id) AS n FROM fact_sales", 3.0)),
        c("duplicate key across formats", |f| {
                f.insert("orders.jsonl", b"{\"order_id\":\"O2\",\"customer_id\":\"C1\",\"order_ts\":\"2024-05-01T08:00:00\",\"channel\":\"web\",\"region_id\":\"R1\"}\n".to_vec());
            }, Quarantined(&[("orders", 1, "order_id", "duplicate key (order_id); first seen")])),
        c("entity split in a folder of parts", |f| {
                let t = String::from_utf8(f.remove("order_lines.csv").unwrap()).unwrap();
                let (head, rows) = t.split_once('\n').unwrap();
                let rows: Vec<&str> = rows.lines().collect();
                f.insert("order_lines/part-1.csv", format!("{head}\n{}\n", rows[..2].join("\n")).into_bytes());
                f.insert("order_lines/part-2.csv", format!("{head}\n{}\n{}\n", rows[2], rows[0]).into_bytes());
            }, Quarantined(&[("order_lines", 3, "order_id, line_no", "duplicate key")])),
        // Orphans sent to the Unknown member (the quarantine policy is in `bad_input`).
        c("orphan region goes to Unknown", |f| replace(f, "customers.csv", "corporate,R2", b"corporate,R9"),
            Loads("SELECT COUNT(*) AS n FROM dim_customer WHERE customer_id = 'C2' AND region_key = 0", 1.0)),
        c("orphan campaign in contacts goes to Unknown", |f| replace(f, "campaign_contacts.csv", "K1,M1,", b"K1,M7,"),
            Loads("SELECT COUNT(*) AS n FROM fact_campaign_response WHERE campaign_key = 0", 1.0)),
        // The file system.
        Case { name: "directory where a file is expected", edit: |f| { f.remove("tickets.csv"); },
            fs: |d| std::fs::create_dir(d.join("tickets.csv")).is_ok(), args: &[], over_previous: false,
            expect: Fails(2, &["tickets.csv", "is a directory"]) },
        Case { name: "symlink loop", edit: |f| { f.remove("tickets.csv"); },
            fs: |d| symlink(Path::new("tickets.csv"), &d.join("tickets.csv")), args: &[], over_previous: false,
            expect: Fails(2, &["tickets.csv"]) },
        Case { name: "dangling symlink", edit: |f| { f.remove("tickets.csv"); },
            fs: |d| symlink(Path::new("gone.csv"), &d.join("tickets.csv")), args: &[], over_previous: false,
            expect: Fails(2, &["tickets.csv"]) },
        Case { name: "unreadable file", edit: |_| {},
            fs: unreadable_tickets, args: &[], over_previous: false,
            expect: Fails(2, &["tickets.csv", "ermission denied"]) },
        Case { name: "empty entity folder", edit: |f| { f.remove("tickets.csv"); },
            fs: |d| std::fs::create_dir(d.join("tickets")).is_ok(), args: &[], over_previous: false,
            expect: Loads("SELECT COUNT(*) AS n FROM fact_ticket", 0.0) },
        c("files of no entity are ignored", |f| {
                f.insert("notes.md", b"# export notes\n".to_vec());
                f.insert("_truth.csv", b"customer_id,alive\nC1,true\n".to_vec());
                f.insert("backup.csv", b"a,b\n1,2\n".to_vec());
            }, Loads("SELECT COUNT(*) AS n FROM fact_sales", 3.0)),
        // Failed loads over an existing warehouse.
        Case { name: "reject limit over an existing warehouse", edit: |f| replace(f, "orders.csv", ",store,", b",fax,"),
            fs: no_fs, args: &["--max-reject-rate", "0.01"], over_previous: true,
            expect: Fails(1, &["over the limit", "nothing was published"]) },
        Case { name: "corrupt Parquet over an existing warehouse", edit: |f| { f.remove("tickets.csv"); f.insert("tickets.parquet", b"PAR1garbagePAR1".to_vec()); },
            fs: no_fs, args: &[], over_previous: true,
            expect: Fails(1, &["tickets.parquet", "not a readable Parquet file"]) },
        Case { name: "missing column over an existing warehouse", edit: |f| replace(f, "customers.csv", "customer_id,updated_at,", b"customer,updated_at,"),
            fs: no_fs, args: &[], over_previous: true,
            expect: Fails(1, &["customers.csv", "missing required column(s) customer_id"]) },
        Case { name: "symlink loop over an existing warehouse", edit: |f| { f.remove("regions.csv"); },
            fs: |d| symlink(Path::new("regions.csv"), &d.join("regions.csv")), args: &[], over_previous: true,
            expect: Fails(2, &["regions.csv"]) },
    ]
}

fn symlink(target: &Path, link: &Path) -> bool {
    std::os::unix::fs::symlink(target, link).is_ok()
}

fn unreadable_tickets(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let f = dir.join("tickets.csv");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything: the case cannot be set up then.
    std::fs::read(&f).is_err()
}

/// Answers that must not change when a load fails.
const SNAPSHOT_SQL: &str = "SELECT (SELECT COUNT(*) FROM fact_sales) AS sales, \
    (SELECT CAST(SUM(revenue) AS DOUBLE) FROM fact_sales) AS revenue, \
    (SELECT COUNT(*) FROM dim_customer) AS customers, (SELECT COUNT(*) FROM dim_region) AS regions, \
    (SELECT COUNT(*) FROM fact_ticket) AS tickets, (SELECT COUNT(*) FROM _quarantine) AS quarantined";

#[test]
fn more_bad_input() {
    let cases = cases();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let src = tmp.path().join(format!("case{i}/export"));
        let wh = tmp.path().join(format!("case{i}/warehouse"));
        let mut before = None;
        if case.over_previous {
            let good = tmp.path().join(format!("case{i}/good"));
            write_export(&good, &base());
            crate::common::ingest_ok(&good, &wh);
            before = Some((query(&wh, SNAPSHOT_SQL), all_files(&wh)));
        }
        let mut files = base();
        (case.edit)(&mut files);
        for name in files.keys() {
            if let Some((folder, _)) = name.split_once('/') {
                std::fs::create_dir_all(src.join(folder)).unwrap();
            }
        }
        write_export(&src, &files);
        if !(case.fs)(&src) {
            skipped.push(case.name);
            continue;
        }
        let export = src.to_str().unwrap().to_string();
        let mut args: Vec<String> = vec![
            "ingest".into(),
            "--source".into(),
            export.clone(),
            "--warehouse".into(),
            wh.to_str().unwrap().into(),
        ];
        args.extend(case.args.iter().map(|a| a.replace("{export}", &export)));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = crmcube_in(tmp.path(), &argv);
        let problems = match (&before, &case.expect) {
            (Some(before), Expect::Fails(code, fragments)) => {
                let mut p = Vec::new();
                if run.code != *code {
                    p.push(format!(
                        "exit code {} (expected {code}): {}",
                        run.code, run.stderr
                    ));
                }
                for f in *fragments {
                    if !run.stderr.contains(f) {
                        p.push(format!("stderr lacks `{f}`: {}", run.stderr));
                    }
                }
                let after = query(&wh, SNAPSHOT_SQL);
                if after != before.0 {
                    p.push(format!("the warehouse changed: {:?} → {after:?}", before.0));
                }
                // Nothing of the failed load is left behind, not even unpublished files.
                let files = all_files(&wh);
                if files != before.1 {
                    let left: Vec<_> = files.difference(&before.1).collect();
                    p.push(format!("the failed load left files: {left:?}"));
                }
                p
            }
            (Some(_), _) => vec!["over_previous cases must expect a failure".into()],
            (None, expect) => judge(expect, &run, &wh),
        };
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    eprintln!(
        "{} cases, {} skipped here: {skipped:?}",
        cases.len(),
        skipped.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpora_hold_at_least_60_distinct_cases() {
    let names: std::collections::BTreeSet<&str> = cases().iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases().len(), "case names repeat");
    assert!(
        names.len() + crate::bad_input::case_count() >= 60,
        "{} + {} cases",
        names.len(),
        crate::bad_input::case_count()
    );
}

/// `on_orphan: quarantine` in the contract is honoured for any foreign key: with it on
/// orders.customer_id an order of an unknown customer is quarantined (and its lines
/// with it, as lines of no loaded order), where the built-in contract loads it against
/// the Unknown customer.
#[test]
fn on_orphan_quarantine_in_the_contract_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let schemas = tmp.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    let root = crate::common::repo_root().join("schemas");
    for f in ["warehouse.yaml", "oltp.yaml"] {
        std::fs::copy(root.join(f), schemas.join(f)).unwrap();
    }
    let oltp = std::fs::read_to_string(schemas.join("oltp.yaml")).unwrap();
    let from = "      - { column: customer_id, references: customers.customer_id, on_orphan: unknown }\n      - { column: region_id, references: regions.region_id, on_orphan: unknown }\n      - { column: campaign_id";
    assert!(
        oltp.contains(from),
        "orders' foreign keys moved in oltp.yaml"
    );
    let strict = oltp.replacen(
        from,
        &from.replacen("on_orphan: unknown", "on_orphan: quarantine", 1),
        1,
    );
    std::fs::write(schemas.join("oltp.yaml"), strict).unwrap();
    let mut files = base();
    replace(&mut files, "orders.csv", "O2,C2,", b"O2,C9,");
    let src = tmp.path().join("export");
    write_export(&src, &files);
    let wh = tmp.path().join("warehouse");
    let run = crmcube_in(
        tmp.path(),
        &[
            "ingest",
            "--source",
            src.to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
            "--schemas",
            schemas.to_str().unwrap(),
        ],
    );
    let problems = judge(
        &Expect::Quarantined(&[
            (
                "order_lines",
                4,
                "order_id",
                "not found among the loaded orders",
            ),
            (
                "orders",
                3,
                "customer_id",
                "not found among the loaded customers",
            ),
        ]),
        &run,
        &wh,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let rows = query(&wh, "SELECT COUNT(DISTINCT order_id) AS n FROM fact_sales");
    assert_eq!(crate::common::num(&rows[0]["n"]), 1.0);
}

//! Bad input: every case is a quarantined row with its file, line, column and reason,
//! or a clear error with exit code 1 (data) or 2 (usage / I/O) — never a panic, never a
//! half-published warehouse.

use crate::common::{crmcube_in, query, Run};
use std::collections::BTreeMap;
use std::path::Path;

/// A small export that satisfies the contract.
pub(crate) fn base() -> BTreeMap<&'static str, Vec<u8>> {
    let files: &[(&str, &str)] = &[
        ("regions.csv", "region_id,city,country,country_code,region\nR1,Berlin,Germany,DE,Europe\nR2,Paris,France,FR,Europe\n"),
        ("customers.csv", "customer_id,updated_at,email,first_name,last_name,birth_date,gender,signup_date,acquisition_channel,segment,region_id,opt_in_email,opt_in_sms\n\
C1,2024-01-01T10:00:00,a@x.com,Ann,Lee,1990-05-01,F,2024-01-01,web,consumer,R1,true,false\n\
C2,2024-02-01T10:00:00,b@x.com,Bob,Ray,,M,2024-02-01,email,corporate,R2,false,false\n"),
        ("products.csv", "product_id,name,category,subcategory,brand,list_price,unit_cost,launched_on,active\nP1,Phone,Electronics,Phones,Acme,500.00,300.00,2023-01-01,true\nP2,Shoe,Apparel,Shoes,Run,80.00,30.00,,true\n"),
        ("campaigns.csv", "campaign_id,name,channel,objective,start_date,end_date,budget\nM1,Spring,email,retention,2024-03-01,2024-03-31,1000.00\n"),
        ("orders.csv", "order_id,customer_id,order_ts,channel,region_id,campaign_id\nO1,C1,2024-03-05T12:00:00,web,R1,M1\nO2,C2,2024-04-10T09:30:00,store,R2,\n"),
        ("order_lines.csv", "order_id,line_no,product_id,quantity,unit_price,discount,returned\nO1,1,P1,1,500.00,50.00,false\nO1,2,P2,2,80.00,0.00,false\nO2,1,P2,1,80.00,0.00,true\n"),
        ("campaign_contacts.csv", "contact_id,campaign_id,customer_id,sent_ts,opened,clicked,converted\nK1,M1,C1,2024-03-01T08:00:00,true,true,true\n"),
        ("web_sessions.csv", "session_id,customer_id,started_at,device,traffic_source,pages_viewed,duration_s\nS1,C1,2024-03-05T11:50:00,desktop,email,5,300\nS2,,2024-03-06T11:50:00,mobile,organic,1,20\n"),
        ("cart_events.csv", "event_id,session_id,customer_id,event_ts,event_type,product_id,quantity\nE1,S1,C1,2024-03-05T11:55:00,add,P1,1\n"),
        ("email_events.csv", "event_id,customer_id,campaign_id,event_ts,event_type\nEE1,C1,M1,2024-03-01T08:00:05,delivered\n"),
        ("tickets.csv", "ticket_id,customer_id,order_id,opened_at,closed_at,channel,category,priority,is_complaint,satisfaction_score\nT1,C2,O2,2024-04-12T10:00:00,2024-04-13T10:00:00,phone,returns,medium,true,2\n"),
    ];
    files
        .iter()
        .map(|(n, c)| (*n, c.as_bytes().to_vec()))
        .collect()
}

pub(crate) enum Expect {
    /// Loads; exactly these (entity, line, column, reason fragment) are quarantined.
    Quarantined(&'static [(&'static str, i64, &'static str, &'static str)]),
    /// Loads with nothing quarantined; the SQL returns the given single number.
    Loads(&'static str, f64),
    /// Fails with this exit code and a message containing these fragments; nothing published.
    Fails(i32, &'static [&'static str]),
}

struct Case {
    name: &'static str,
    edit: fn(&mut BTreeMap<&'static str, Vec<u8>>),
    args: &'static [&'static str],
    expect: Expect,
}

pub(crate) fn replace(
    files: &mut BTreeMap<&'static str, Vec<u8>>,
    file: &'static str,
    from: &str,
    to: &[u8],
) {
    let text = files.get(file).expect("file in fixture").clone();
    let pos = text
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("`{from}` not in {file}"));
    let mut out = text[..pos].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&text[pos + from.len()..]);
    files.insert(file, out);
}

pub(crate) fn append(files: &mut BTreeMap<&'static str, Vec<u8>>, file: &'static str, line: &str) {
    files
        .get_mut(file)
        .expect("file in fixture")
        .extend_from_slice(line.as_bytes());
}

/// Number of cases in this corpus.
pub(crate) fn case_count() -> usize {
    cases().len()
}

fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        Case { name: "wrong type", edit: |f| replace(f, "order_lines.csv", "O1,2,P2,2,", b"O1,2,P2,two,"), args: &[],
            expect: Quarantined(&[("order_lines", 3, "quantity", "expected a whole number")]) },
        Case { name: "missing required column", edit: |f| {
                f.insert("orders.csv", b"order_id,customer_id,channel,region_id,campaign_id\nO1,C1,web,R1,M1\n".to_vec());
            }, args: &[], expect: Fails(1, &["orders.csv", "missing required column(s) order_ts", "found columns"]) },
        Case { name: "missing nullable column is null", edit: |f| {
                f.insert("orders.csv", b"order_id,customer_id,order_ts,channel,region_id\nO1,C1,2024-03-05T12:00:00,web,R1\nO2,C2,2024-04-10T09:30:00,store,R2\n".to_vec());
            }, args: &[], expect: Loads("SELECT COUNT(*) AS n FROM fact_sales WHERE campaign_key = 0", 3.0) },
        Case { name: "bad date", edit: |f| replace(f, "customers.csv", ",2024-02-01,email", b",2024-02-30,email"), args: &[],
            expect: Quarantined(&[("customers", 3, "signup_date", "expected a date YYYY-MM-DD")]) },
        Case { name: "date in another format", edit: |f| replace(f, "customers.csv", ",1990-05-01,", b",05/01/1990,"), args: &[],
            expect: Quarantined(&[("customers", 2, "birth_date", "expected a date")]) },
        Case { name: "negative quantity", edit: |f| replace(f, "order_lines.csv", "O2,1,P2,1,", b"O2,1,P2,-1,"), args: &[],
            expect: Quarantined(&[("order_lines", 4, "quantity", "at least 1")]) },
        Case { name: "unknown enum value", edit: |f| replace(f, "orders.csv", ",store,", b",fax,"), args: &[],
            expect: Quarantined(&[("order_lines", 4, "order_id", "or quarantined"), ("orders", 3, "channel", "expected one of: web, mobile_app")]) },
        Case { name: "broken quoting", edit: |f| append(f, "order_lines.csv", "\"O2,2,P1,1,500.00,0.00,false\nO2,3,P1,1,500.00,0.00,false\n"), args: &[],
            expect: Quarantined(&[("order_lines", 5, "", "probably an unclosed quote")]) },
        Case { name: "empty file", edit: |f| { f.insert("tickets.csv", Vec::new()); }, args: &[],
            expect: Fails(1, &["tickets.csv", "file is empty"]) },
        Case { name: "header only loads zero rows", edit: |f| {
                f.insert("tickets.csv", b"ticket_id,customer_id,order_id,opened_at,closed_at,channel,category,priority,is_complaint,satisfaction_score\n".to_vec());
            }, args: &[], expect: Loads("SELECT COUNT(*) AS n FROM fact_ticket", 0.0) },
        Case { name: "byte order mark", edit: |f| {
                let mut v = vec![0xef, 0xbb, 0xbf];
                v.extend_from_slice(&f["regions.csv"]);
                f.insert("regions.csv", v);
            }, args: &[], expect: Loads("SELECT COUNT(*) AS n FROM dim_region WHERE region_key <> 0", 2.0) },
        Case { name: "CRLF line ends", edit: |f| {
                for v in f.values_mut() {
                    *v = String::from_utf8(v.clone()).unwrap().replace('\n', "\r\n").into_bytes();
                }
            }, args: &[], expect: Loads("SELECT CAST(SUM(revenue) AS DOUBLE) AS n FROM fact_sales", 690.0) },
        Case { name: "CRLF line ends and blank lines keep line numbers", edit: |f| {
                f.insert("orders.csv", b"order_id,customer_id,order_ts,channel,region_id,campaign_id\r\nO1,C1,2024-03-05T12:00:00,web,R1,M1\r\n\r\nO2,C2,yesterday,store,R2,\r\n".to_vec());
            }, args: &[], expect: Quarantined(&[("order_lines", 4, "order_id", "or quarantined"), ("orders", 4, "order_ts", "expected a timestamp")]) },
        Case { name: "non-UTF-8 bytes", edit: |f| replace(f, "customers.csv", ",Bob,", b",B\xffb,"), args: &[],
            expect: Quarantined(&[("customers", 3, "first_name", "not valid UTF-8")]) },
        Case { name: "UTF-16 file", edit: |f| {
                let text = String::from_utf8(f["regions.csv"].clone()).unwrap();
                let mut v = vec![0xff, 0xfe];
                for u in text.encode_utf16() { v.extend_from_slice(&u.to_le_bytes()); }
                f.insert("regions.csv", v);
            }, args: &[], expect: Fails(1, &["regions.csv", "UTF-16"]) },
        Case { name: "orphan customer goes to Unknown", edit: |f| replace(f, "orders.csv", "O2,C2,", b"O2,C9,"), args: &[],
            expect: Loads("SELECT COUNT(*) AS n FROM fact_sales WHERE customer_key = 0", 1.0) },
        Case { name: "orphan order is quarantined", edit: |f| replace(f, "order_lines.csv", "O2,1,", b"O9,1,"), args: &[],
            expect: Quarantined(&[("order_lines", 4, "order_id", "not found among the loaded orders")]) },
        Case { name: "orphan product goes to Unknown", edit: |f| replace(f, "order_lines.csv", "O2,1,P2", b"O2,1,P7"), args: &[],
            expect: Loads("SELECT COUNT(*) AS n FROM fact_sales WHERE product_key = 0", 1.0) },
        Case { name: "duplicate key", edit: |f| append(f, "products.csv", "P1,Phone 2,Electronics,Phones,Acme,10.00,5.00,,true\n"), args: &[],
            expect: Quarantined(&[("products", 4, "product_id", "duplicate key (product_id); first seen at line 2")]) },
        Case { name: "duplicate composite key", edit: |f| append(f, "order_lines.csv", "O1,1,P2,1,80.00,0.00,false\n"), args: &[],
            expect: Quarantined(&[("order_lines", 5, "order_id, line_no", "duplicate key")]) },
        Case { name: "too many decimal places", edit: |f| replace(f, "order_lines.csv", "O2,1,P2,1,80.00", b"O2,1,P2,1,80.005"), args: &[],
            expect: Quarantined(&[("order_lines", 4, "unit_price", "more than 2 digits")]) },
        Case { name: "decimal with thousands separator", edit: |f| replace(f, "campaigns.csv", ",1000.00", b",\"1,000.00\""), args: &[],
            expect: Quarantined(&[("campaigns", 2, "budget", "expected a decimal number")]) },
        Case { name: "invalid boolean", edit: |f| replace(f, "order_lines.csv", "0.00,true", b"0.00,maybe"), args: &[],
            expect: Quarantined(&[("order_lines", 4, "returned", "expected a boolean")]) },
        Case { name: "invalid timestamp", edit: |f| replace(f, "orders.csv", "2024-04-10T09:30:00", b"yesterday"), args: &[],
            expect: Quarantined(&[("order_lines", 4, "order_id", "or quarantined"), ("orders", 3, "order_ts", "expected a timestamp")]) },
        Case { name: "timestamp with offset is stored in UTC", edit: |f| replace(f, "orders.csv", "2024-04-10T09:30:00", b"2024-04-10T09:30:00+02:00"), args: &[],
            expect: Loads("SELECT CAST(EXTRACT(HOUR FROM MAX(order_ts)) AS DOUBLE) AS n FROM fact_sales WHERE order_id = 'O2'", 7.0) },
        Case { name: "too many fields", edit: |f| append(f, "order_lines.csv", "O2,2,P1,1,500.00,0.00,false,extra\n"), args: &[],
            expect: Quarantined(&[("order_lines", 5, "", "expected 7 fields, found 8")]) },
        Case { name: "too few fields", edit: |f| append(f, "order_lines.csv", "O2,2,P1\n"), args: &[],
            expect: Quarantined(&[("order_lines", 5, "", "expected 7 fields, found 3")]) },
        Case { name: "required value missing", edit: |f| replace(f, "customers.csv", ",corporate,", b",,"), args: &[],
            expect: Quarantined(&[("customers", 3, "segment", "a value is required")]) },
        Case { name: "discount above line amount", edit: |f| replace(f, "order_lines.csv", "500.00,50.00", b"500.00,600.00"), args: &[],
            expect: Quarantined(&[("order_lines", 2, "discount", "exceeds the line amount 500.00")]) },
        Case { name: "ticket closed before opened", edit: |f| replace(f, "tickets.csv", "2024-04-13T10:00:00", b"2024-04-11T10:00:00"), args: &[],
            expect: Quarantined(&[("tickets", 2, "closed_at", "before opened_at")]) },
        Case { name: "string too long", edit: |f| replace(f, "regions.csv", ",DE,", b",DEU,"), args: &[],
            expect: Quarantined(&[("regions", 2, "country_code", "longer than 2")]) },
        Case { name: "score out of range", edit: |f| replace(f, "tickets.csv", "true,2", b"true,6"), args: &[],
            expect: Quarantined(&[("tickets", 2, "satisfaction_score", "at most 5")]) },
        Case { name: "duplicate header column", edit: |f| replace(f, "campaigns.csv", "campaign_id,name,", b"campaign_id,name,name,"), args: &[],
            expect: Fails(1, &["campaigns.csv", "`name` appears twice"]) },
        Case { name: "extra column is ignored", edit: |f| {
                f.insert("campaigns.csv", b"campaign_id,name,channel,objective,start_date,end_date,budget,owner\nM1,Spring,email,retention,2024-03-01,2024-03-31,1000.00,ann\n".to_vec());
            }, args: &[], expect: Loads("SELECT COUNT(*) AS n FROM dim_campaign WHERE campaign_id = 'M1'", 1.0) },
        Case { name: "invalid JSON line", edit: |f| {
                f.remove("tickets.csv");
                f.insert("tickets.jsonl", b"{\"ticket_id\":\"T1\",\"customer_id\":\"C2\",\"order_id\":\"O2\",\"opened_at\":\"2024-04-12T10:00:00\",\"closed_at\":null,\"channel\":\"chat\",\"category\":\"billing\",\"priority\":\"low\",\"is_complaint\":false,\"satisfaction_score\":4}\n{\"ticket_id\": \"T2\", oops}\n[1,2]\n".to_vec());
            }, args: &[], expect: Quarantined(&[("tickets", 2, "", "invalid JSON"), ("tickets", 3, "", "expected a JSON object, found an array")]) },
        Case { name: "JSON value of the wrong type", edit: |f| {
                f.remove("tickets.csv");
                f.insert("tickets.jsonl", b"{\"ticket_id\":\"T1\",\"customer_id\":\"C2\",\"opened_at\":\"2024-04-12T10:00:00\",\"channel\":\"chat\",\"category\":\"billing\",\"priority\":\"low\",\"is_complaint\":\"sometimes\",\"satisfaction_score\":{\"v\":4}}\n".to_vec());
            }, args: &[], expect: Quarantined(&[("tickets", 1, "satisfaction_score", "expected a scalar value")]) },
        Case { name: "corrupt Parquet file", edit: |f| {
                f.remove("tickets.csv");
                f.insert("tickets.parquet", b"PAR1 this is not really parquet".to_vec());
            }, args: &[], expect: Fails(1, &["tickets.parquet", "not a readable Parquet file"]) },
        Case { name: "reject limit blocks the publish", edit: |f| replace(f, "orders.csv", ",store,", b",fax,"), args: &["--max-reject-rate", "0.01"],
            expect: Fails(1, &["over the limit", "nothing was published"]) },
        Case { name: "semicolon delimiter", edit: |f| {
                for v in f.values_mut() {
                    *v = String::from_utf8(v.clone()).unwrap().replace(',', ";").into_bytes();
                }
            }, args: &["--delimiter", ";"], expect: Loads("SELECT COUNT(*) AS n FROM fact_sales", 3.0) },
        Case { name: "quoted field with delimiter and newline", edit: |f| replace(f, "products.csv", "P2,Shoe,", b"P2,\"Shoe, \"\"red\"\"\nsize 42\","), args: &[],
            expect: Loads("SELECT COUNT(*) AS n FROM dim_product WHERE product_name = 'Shoe, \"red\"\nsize 42'", 1.0) },
    ]
}

pub(crate) fn write_export(dir: &Path, files: &BTreeMap<&'static str, Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Compares a run of `crmcube ingest` into `wh` with what the case expects; returns the
/// differences.
pub(crate) fn judge(expect: &Expect, run: &Run, wh: &Path) -> Vec<String> {
    match expect {
        Expect::Fails(code, fragments) => {
            let mut problems = Vec::new();
            if run.code != *code {
                problems.push(format!("exit code {} (expected {code})", run.code));
            }
            for f in *fragments {
                if !run.stderr.contains(f) {
                    problems.push(format!("stderr lacks `{f}`"));
                }
            }
            if run.stderr.trim().lines().count() != 1 {
                problems.push("error is not one line".into());
            }
            if wh.join("_crmcube_log").exists() {
                problems.push("a warehouse was published".into());
            }
            problems
        }
        Expect::Loads(sql, expected) => {
            if run.code != 0 {
                vec![format!("exit code {}: {}", run.code, run.stderr)]
            } else {
                let q = query(wh, "SELECT COUNT(*) AS n FROM _quarantine");
                let n = crate::common::num(&q[0]["n"]);
                let got = crate::common::num(&query(wh, sql)[0]["n"]);
                let mut p = Vec::new();
                if n != 0.0 {
                    p.push(format!("{n} rows quarantined"));
                }
                if (got - expected).abs() > 1e-9 {
                    p.push(format!("`{sql}` gave {got}, expected {expected}"));
                }
                p
            }
        }
        Expect::Quarantined(rows) => {
            if run.code != 0 {
                vec![format!("exit code {}: {}", run.code, run.stderr)]
            } else {
                let got = query(wh, "SELECT entity, source_file, line, \"column\", reason FROM _quarantine ORDER BY entity, line");
                let mut p = Vec::new();
                if got.len() != rows.len() {
                    p.push(format!(
                        "{} quarantined rows, expected {}: {got:?}",
                        got.len(),
                        rows.len()
                    ));
                }
                for ((entity, line, column, reason), g) in rows.iter().zip(&got) {
                    let gl = crate::common::num(&g["line"]) as i64;
                    let gc = g.get("column").and_then(|v| v.as_str()).unwrap_or("");
                    let gr = g["reason"].as_str().unwrap_or("");
                    let gf = g["source_file"].as_str().unwrap_or("");
                    if g["entity"] != *entity
                        || gl != *line
                        || gc != *column
                        || !gr.contains(reason)
                        || !gf.contains(entity)
                    {
                        p.push(format!(
                            "got {g:?}, expected ({entity}, line {line}, {column}, …{reason}…)"
                        ));
                    }
                }
                p
            }
        }
    }
}

#[test]
fn bad_input_corpus() {
    let cases = cases();
    assert!(cases.len() >= 25, "the corpus holds {} cases", cases.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut files = base();
        (case.edit)(&mut files);
        let src = tmp.path().join(format!("case{i}/export"));
        let wh = tmp.path().join(format!("case{i}/warehouse"));
        write_export(&src, &files);
        let mut args = vec![
            "ingest",
            "--source",
            src.to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
        ];
        args.extend_from_slice(case.args);
        let run = crmcube_in(tmp.path(), &args);
        let outcome = judge(&case.expect, &run, &wh);
        if !outcome.is_empty() {
            failures.push(format!("{}: {}", case.name, outcome.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let r = crmcube_in(
        tmp.path(),
        &[
            "ingest",
            "--source",
            missing.to_str().unwrap(),
            "--warehouse",
            "wh",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = crmcube_in(
        tmp.path(),
        &[
            "ingest",
            "--source",
            empty.to_str().unwrap(),
            "--warehouse",
            "wh",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no export files found"), "{}", r.stderr);

    let r = crmcube_in(tmp.path(), &["ingest", "--source", "x"]);
    assert_eq!(r.code, 2, "missing flag is a usage error");
    let r = crmcube_in(
        tmp.path(),
        &[
            "ingest",
            "--source",
            "x",
            "--warehouse",
            "y",
            "--delimiter",
            "ab",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("single ASCII character"), "{}", r.stderr);
}

#[test]
fn a_second_writer_is_refused_while_the_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("export");
    let wh = tmp.path().join("wh");
    write_export(&src, &base());
    std::fs::create_dir_all(&wh).unwrap();
    // A live process (this test) holds the lock.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    std::fs::write(
        wh.join(".crmcube.lock"),
        format!(
            "pid={} host={} since=2026-01-01T00:00:00Z\n",
            std::process::id(),
            host.trim()
        ),
    )
    .unwrap();
    let r = crmcube_in(
        tmp.path(),
        &[
            "ingest",
            "--source",
            src.to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("another load holds the warehouse")
            && r.stderr.contains(&format!("pid={}", std::process::id())),
        "{}",
        r.stderr
    );
    // A lock left by a process that is gone is taken over.
    std::fs::write(
        wh.join(".crmcube.lock"),
        format!(
            "pid=999999999 host={} since=2026-01-01T00:00:00Z\n",
            host.trim()
        ),
    )
    .unwrap();
    let r = crmcube_in(
        tmp.path(),
        &[
            "ingest",
            "--source",
            src.to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!wh.join(".crmcube.lock").exists());
}

//! Versioned commits: idempotent and incremental loads, time travel, crash safety with
//! SIGKILL at fail points, concurrent readers, the writer lock and vacuum.

use crate::common::{crmcube, ingest_ok, num, query, repo_root};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const STAR: [&str; 10] = [
    "dim_customer",
    "dim_product",
    "dim_region",
    "dim_campaign",
    "dim_channel",
    "dim_date",
    "fact_sales",
    "fact_interaction",
    "fact_ticket",
    "fact_campaign_response",
];

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every star table's rows, sorted by all columns, as CSV text.
fn contents(wh: &Path) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for t in STAR {
        let cols = query(
            wh,
            &format!(
                "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_name = '{t}'"
            ),
        );
        let n = num(&cols[0]["n"]) as usize;
        let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        let r = crmcube(&[
            "sql",
            "--warehouse",
            s(wh),
            "--format",
            "csv",
            &format!("SELECT * FROM {t} ORDER BY {}", order.join(", ")),
        ]);
        assert_eq!(r.code, 0, "{t}: {}", r.stderr);
        out.insert(t, r.stdout);
    }
    out
}

fn read_csv(path: &Path) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).expect("csv");
    let h = r.headers().expect("header").clone();
    (h, r.records().map(|x| x.expect("record")).collect())
}

fn write_csv(path: &Path, header: &csv::StringRecord, rows: &[&csv::StringRecord]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut w = csv::Writer::from_path(path).expect("csv");
    w.write_record(header).expect("write");
    for r in rows {
        w.write_record(*r).expect("write");
    }
    w.flush().expect("flush");
}

/// Splits the sample export into `cutoffs.len() + 1` consecutive periods, as a nightly
/// job would receive them: each row goes to the period of its timestamp, order lines
/// with their order, cart events with their session; reference data arrives first.
pub(crate) fn split_export(out: &Path, cutoffs: &[&str]) -> Vec<PathBuf> {
    let src = repo_root().join("sample_data");
    let parts: Vec<PathBuf> = (0..=cutoffs.len())
        .map(|i| out.join(format!("day{}", i + 1)))
        .collect();
    let period = |ts: &str| cutoffs.iter().filter(|c| ts >= **c).count();
    let mut by_key: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for (entity, ts_col, key_col) in [
        ("customers", Some("updated_at"), None),
        ("orders", Some("order_ts"), Some("order_id")),
        ("web_sessions", Some("started_at"), Some("session_id")),
        ("campaign_contacts", Some("sent_ts"), None),
        ("email_events", Some("event_ts"), None),
        ("tickets", Some("opened_at"), None),
        ("regions", None, None),
        ("products", None, None),
        ("campaigns", None, None),
    ] {
        let (h, rows) = read_csv(&src.join(format!("{entity}.csv")));
        let ti = ts_col.map(|c| h.iter().position(|x| x == c).expect("ts column"));
        let ki = key_col.map(|c| h.iter().position(|x| x == c).expect("key column"));
        let mut buckets: Vec<Vec<&csv::StringRecord>> = vec![vec![]; parts.len()];
        for r in &rows {
            let p = ti.map_or(0, |i| period(&r[i]));
            if let Some(k) = ki {
                by_key
                    .entry(entity)
                    .or_default()
                    .insert(r[k].to_string(), p);
            }
            buckets[p].push(r);
        }
        for (p, b) in buckets.iter().enumerate() {
            if !b.is_empty() {
                write_csv(&parts[p].join(format!("{entity}.csv")), &h, b);
            }
        }
    }
    for (entity, parent, key_col) in [
        ("order_lines", "orders", "order_id"),
        ("cart_events", "web_sessions", "session_id"),
    ] {
        let (h, rows) = read_csv(&src.join(format!("{entity}.csv")));
        let ki = h.iter().position(|x| x == key_col).expect("key column");
        let mut buckets: Vec<Vec<&csv::StringRecord>> = vec![vec![]; parts.len()];
        for r in &rows {
            let p = by_key[parent].get(&r[ki]).copied().unwrap_or(0);
            buckets[p].push(r);
        }
        for (p, b) in buckets.iter().enumerate() {
            if !b.is_empty() {
                write_csv(&parts[p].join(format!("{entity}.csv")), &h, b);
            }
        }
    }
    parts
}

fn versions(wh: &Path) -> Vec<serde_json::Value> {
    let r = crmcube(&["history", "--warehouse", s(wh), "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<serde_json::Value>(r.stdout.trim())
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

fn count(wh: &Path, table: &str) -> i64 {
    num(&query(wh, &format!("SELECT COUNT(*) AS n FROM {table}"))[0]["n"]) as i64
}

#[test]
fn loading_the_same_export_ten_times_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    let src = repo_root().join("sample_data");
    ingest_ok(&src, &wh);
    let first = contents(&wh);
    for _ in 0..9 {
        let r = ingest_ok(&src, &wh);
        assert!(r.stdout.contains("nothing new"), "{}", r.stdout);
        assert!(r.stdout.contains("skipped 11 file(s)"), "{}", r.stdout);
    }
    assert_eq!(versions(&wh).len(), 1, "skipped loads publish no version");
    assert_eq!(contents(&wh), first);
}

#[test]
fn three_daily_loads_equal_one_load_of_everything() {
    let tmp = tempfile::tempdir().expect("tmp");
    let parts = split_export(tmp.path(), &["2024-09-01", "2025-06-01"]);
    let daily = tmp.path().join("daily");
    for p in &parts {
        ingest_ok(p, &daily);
    }
    let once = tmp.path().join("once");
    ingest_ok(&repo_root().join("sample_data"), &once);
    let (a, b) = (contents(&daily), contents(&once));
    for t in STAR {
        assert!(a[t].lines().count() > 1, "{t} is empty");
        assert!(a[t] == b[t], "{t} differs between daily and one-shot loads");
    }
    // Time travel: version 0 holds day 1 only.
    let h = versions(&daily);
    assert_eq!(h.len(), 3);
    let v0 = query(
        &daily,
        "SELECT COUNT(*) AS n, MAX(order_ts) AS last FROM fact_sales",
    );
    assert!(num(&v0[0]["n"]) > 0.0);
    let r = crmcube(&[
        "sql",
        "--warehouse",
        s(&daily),
        "--as-of-version",
        "0",
        "--format",
        "json",
        "SELECT COUNT(*) AS n, MAX(order_ts) AS last FROM fact_sales",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let old: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("json");
    assert!(old[0]["last"].as_str().expect("ts") < "2024-09-01", "{old}");
    assert!(num(&old[0]["n"]) < num(&v0[0]["n"]));
    // The same through --as-of-time with the first commit's time.
    let t0 = h[0]["committed_at"].as_str().expect("time");
    let r = crmcube(&[
        "sql",
        "--warehouse",
        s(&daily),
        "--as-of-time",
        t0,
        "--format",
        "json",
        "SELECT COUNT(*) AS n FROM fact_sales",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("{}", num(&old[0]["n"]) as i64)),
        "{}",
        r.stdout
    );
    // Asking for a version that does not exist is a usage error.
    let r = crmcube(&[
        "sql",
        "--warehouse",
        s(&daily),
        "--as-of-version",
        "9",
        "SELECT 1",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no version 9"), "{}", r.stderr);
}

#[test]
fn a_resent_customer_row_with_a_later_updated_at_opens_a_new_version() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let before = query(
        &wh,
        "SELECT segment, COUNT(*) AS n FROM dim_customer WHERE customer_id = 'C0000002' GROUP BY segment",
    );
    let (h, rows) = read_csv(&repo_root().join("sample_data/customers.csv"));
    let seg = h.iter().position(|c| c == "segment").expect("segment");
    let upd = h
        .iter()
        .position(|c| c == "updated_at")
        .expect("updated_at");
    let row = latest_version_of(&rows, "C0000002", upd);
    let mut changed: Vec<String> = row.iter().map(str::to_string).collect();
    changed[seg] = other_segment(&row[seg]).into();
    changed[upd] = "2026-01-15T10:00:00".into();
    let day = tmp.path().join("next");
    write_csv(
        &day.join("customers.csv"),
        &h,
        &[&csv::StringRecord::from(changed.clone())],
    );
    ingest_ok(&day, &wh);
    let cur = query(
        &wh,
        "SELECT segment, valid_from FROM dim_customer WHERE customer_id = 'C0000002' AND is_current",
    );
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0]["segment"], changed[seg].as_str());
    assert_eq!(cur[0]["valid_from"], "2026-01-15T10:00:00");
    let n_before: f64 = before.iter().map(|r| num(&r["n"])).sum();
    assert_eq!(
        count(&wh, "dim_customer WHERE customer_id = 'C0000002'") as f64,
        n_before + 1.0
    );
    // Facts did not move: every order still joins to the version valid at its time.
    assert_eq!(
        count(
            &wh,
            "fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key WHERE c.customer_id = 'C0000002' AND c.valid_from = TIMESTAMP '2026-01-15 10:00:00'"
        ),
        0
    );
}

/// The newest export row of a customer.
fn latest_version_of<'a>(
    rows: &'a [csv::StringRecord],
    id: &str,
    updated_at: usize,
) -> &'a csv::StringRecord {
    rows.iter()
        .filter(|r| &r[0] == id)
        .max_by(|a, b| a[updated_at].cmp(&b[updated_at]))
        .expect("customer")
}

fn other_segment(s: &str) -> &'static str {
    if s == "corporate" {
        "consumer"
    } else {
        "corporate"
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// Starts an ingest that stops at `point`, waits for it to get there and kills it with
/// SIGKILL.
fn crash_at(point: &str, src: &Path, wh: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args(["ingest", "--source", s(src), "--warehouse", s(wh)])
        .env("CRMCUBE_FAILPOINT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut reached = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("line");
        if line.contains(&format!("failpoint {point} reached")) {
            reached = true;
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(
        reached,
        "the load ended before fail point {point}: {status}"
    );
}

#[test]
fn sigkill_at_every_commit_step_leaves_a_readable_version_and_the_next_run_completes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let parts = split_export(tmp.path(), &["2025-03-01"]);
    let base = tmp.path().join("base");
    ingest_ok(&parts[0], &base);
    let old = contents(&base);
    let full = tmp.path().join("full");
    copy_dir(&base, &full);
    ingest_ok(&parts[1], &full);
    let new = contents(&full);
    assert_ne!(old["fact_sales"], new["fact_sales"]);
    let mut runs = 0;
    for point in ["before-write", "after-data", "mid-commit", "after-commit"] {
        for i in 0..5 {
            let wh = tmp.path().join(format!("crash-{point}-{i}"));
            copy_dir(&base, &wh);
            crash_at(point, &parts[1], &wh);
            runs += 1;
            // Readers see exactly the previous version, or (killed after the commit
            // point) exactly the new one.
            let seen = contents(&wh);
            let expect = if point == "after-commit" { &new } else { &old };
            assert!(
                seen == *expect,
                "{point} run {i}: readers see a mixed version"
            );
            // The killed writer's lock is stale; the next run takes it and completes.
            ingest_ok(&parts[1], &wh);
            assert!(
                contents(&wh) == new,
                "{point} run {i}: rerun did not complete the load"
            );
            assert_eq!(versions(&wh).len(), 2, "{point} run {i}");
            if i == 0 {
                // Files of the crashed run are unused; vacuum removes them once past the
                // retention period and never a file the live version reads.
                let r = crmcube(&["vacuum", "--warehouse", s(&wh), "--retention-hours", "0"]);
                assert_eq!(r.code, 0, "{}", r.stderr);
                assert!(contents(&wh) == new, "vacuum broke the live version");
                if point != "before-write" {
                    assert!(
                        r.stdout.contains("part-"),
                        "{point}: nothing vacuumed: {}",
                        r.stdout
                    );
                }
            }
        }
    }
    assert!(runs >= 20);
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    let src = repo_root().join("sample_data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args(["ingest", "--source", s(&src), "--warehouse", s(&wh)])
        .env("CRMCUBE_FAILPOINT", "after-data")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    for line in BufReader::new(stderr).lines() {
        if line.expect("line").contains("failpoint after-data reached") {
            break;
        }
    }
    let r = crmcube(&["ingest", "--source", s(&src), "--warehouse", s(&wh)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("another load holds the warehouse") && r.stderr.contains("pid="),
        "{}",
        r.stderr
    );
    child.kill().expect("kill");
    child.wait().expect("wait");
    ingest_ok(&src, &wh);
}

#[test]
fn readers_see_whole_versions_while_fifty_commits_land() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let (h, rows) = read_csv(&repo_root().join("sample_data/customers.csv"));
    let seg = h.iter().position(|c| c == "segment").expect("segment");
    let upd = h
        .iter()
        .position(|c| c == "updated_at")
        .expect("updated_at");
    let row = latest_version_of(&rows, "C0000003", upd);
    // In every version, each source version of a customer is one dim_customer row
    // (every change below flips a tracked attribute), so this difference is constant.
    let sql = "SELECT (SELECT COUNT(*) FROM _src_customers) AS src, (SELECT COUNT(*) FROM dim_customer) AS dim";
    let r0 = query(&wh, sql);
    let gap = num(&r0[0]["src"]) - num(&r0[0]["dim"]);
    let start = num(&r0[0]["src"]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (wh, done) = (wh.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                    let r = query(&wh, sql);
                    let (src, dim) = (num(&r[0]["src"]), num(&r[0]["dim"]));
                    assert_eq!(src - dim, gap, "a reader saw tables of different versions");
                    assert!(src >= start && src <= start + 50.0);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for k in 0..50 {
        let mut changed: Vec<String> = row.iter().map(str::to_string).collect();
        changed[seg] = if k % 2 == 0 {
            other_segment(&row[seg]).to_string()
        } else {
            row[seg].to_string()
        };
        changed[upd] = format!("2026-02-01T00:{:02}:00", k);
        let day = tmp.path().join(format!("night{k}"));
        write_csv(
            &day.join("customers.csv"),
            &h,
            &[&csv::StringRecord::from(changed)],
        );
        ingest_ok(&day, &wh);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads: usize = readers.into_iter().map(|t| t.join().expect("reader")).sum();
    assert!(reads >= 4);
    assert_eq!(versions(&wh).len(), 51);
    assert_eq!(count(&wh, "_src_customers") as f64, start + 50.0);
}

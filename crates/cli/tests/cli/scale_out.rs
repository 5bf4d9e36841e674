//! `crmcube sql --engine`: the same SQL run by a Ballista cluster (scheduler and executor
//! on loopback, `crmcube cluster`) gives the answers the local engine gives. The cluster
//! test needs a build with `--features ballista` (docs/scale-out.md); the engine flag's
//! errors are checked in every build.

use crate::common::{crmcube, ingest_ok, repo_root};

#[test]
fn engine_flag_refuses_unknown_engines_and_unreachable_schedulers_clearly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let w = wh.to_str().expect("utf-8");
    let r = crmcube(&["sql", "--warehouse", w, "--engine", "spark://x", "SELECT 1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("spark://x") && r.stderr.contains("ballista://HOST:PORT"),
        "{}",
        r.stderr
    );
    // Port 1 on loopback: nothing listens there.
    let r = crmcube(&[
        "sql",
        "--warehouse",
        w,
        "--engine",
        "ballista://127.0.0.1:1",
        "SELECT COUNT(*) FROM fact_sales",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("ballista://127.0.0.1:1"), "{}", r.stderr);
    if cfg!(not(feature = "ballista")) {
        assert!(
            r.stderr.contains("built without Ballista") && r.stderr.contains("--features ballista"),
            "{}",
            r.stderr
        );
    }
    // `local` is the default and runs here.
    let r = crmcube(&[
        "sql",
        "--warehouse",
        w,
        "--engine",
        "local",
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM dim_channel",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[cfg(feature = "ballista")]
#[test]
fn a_local_ballista_cluster_answers_warehouse_sql_like_the_local_engine() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    struct Cluster(std::process::Child);
    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let w = wh.to_str().expect("utf-8");

    let mut child = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args(["cluster", "--threads", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crmcube cluster starts");
    let stderr = child.stderr.take().expect("stderr");
    let cluster = Cluster(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let engine = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("crmcube cluster ended before listening:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.split("Ballista scheduler on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    // A star join with a group-by, a filter and an order, and a distinct count: run by
    // the cluster's executor and by this process, the same rows.
    for sql in [
        "SELECT r.region, ROUND(SUM(s.revenue), 2) AS revenue, COUNT(*) AS lines \
         FROM fact_sales s JOIN dim_region r ON s.region_key = r.region_key \
         WHERE s.quantity > 0 GROUP BY r.region ORDER BY r.region",
        "SELECT d.year, COUNT(DISTINCT s.customer_key) AS buyers FROM fact_sales s \
         JOIN dim_date d ON s.date_key = d.date_key GROUP BY d.year ORDER BY d.year",
    ] {
        let run = |engine: &str| {
            let r = crmcube(&[
                "sql",
                "--warehouse",
                w,
                "--engine",
                engine,
                "--format",
                "csv",
                sql,
            ]);
            assert_eq!(r.code, 0, "--engine {engine}: {sql}\n{}", r.stderr);
            r.stdout
        };
        let local = run("local");
        assert!(local.lines().count() > 2, "{local}");
        assert_eq!(run(&engine), local, "{sql}");
    }
    drop(cluster);
}

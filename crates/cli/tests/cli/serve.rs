//! `crmcube serve`: a real Flight SQL client (the Python ADBC driver, from
//! examples/requirements.txt) logs in, queries tables and the cube's wide views, lists the
//! catalog, and gets clean errors for a wrong password, a write, an unknown table and a
//! query over the time limit, after which the server still answers.

use crate::common::{crmcube, ingest_ok, num, query, repo_root};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub(crate) const PASSWORD: &str = "s3cret-for-tests";

/// A running server, stopped on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) uri: String,
    pg_port: Option<u16>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(wh: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args([
            "serve",
            "--warehouse",
            wh.to_str().expect("utf-8"),
            "--port",
            "0",
            "--pg-port",
            "0",
        ])
        .args(extra)
        .env("CRMCUBE_SERVE_PASSWORD", PASSWORD)
        .env("CRMCUBE_SERVE_USER", "analyst")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crmcube serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let want_pg = !extra.contains(&"--no-pg");
    let mut uri = None;
    let mut pg_port = None;
    while uri.is_none() || (want_pg && pg_port.is_none()) {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("crmcube serve ended before listening:\n{seen}");
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.split("Flight SQL on ").nth(1) {
            uri = Some(rest.split_whitespace().next().expect("uri").to_string());
        }
        if let Some(rest) = line.split("PostgreSQL on ").nth(1) {
            let addr = rest.split_whitespace().next().expect("address");
            pg_port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
        }
    }
    let uri = uri.expect("uri");
    // Keep reading the server's log: a closed pipe would fail its next line.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        uri,
        pg_port,
    }
}

fn client(uri: &str, args: &[&str], password: &str) -> (bool, String, String) {
    let out = Command::new("python3")
        .arg(repo_root().join("examples/flight_sql_client.py"))
        .args(["--uri", uri, "--user", "analyst"])
        .args(args)
        .env("CRMCUBE_PASSWORD", password)
        .output()
        .expect("python3 runs (pip install -r examples/requirements.txt)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_flight_sql_client_queries_tables_and_cube_views_and_gets_clean_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let server = start(
        &wh,
        &["--query-timeout", "2", "--max-concurrent-queries", "2"],
    );

    let (ok, stdout, stderr) = client(&server.uri, &[], PASSWORD);
    assert!(
        ok,
        "flight_sql_client.py failed (pip install -r examples/requirements.txt):\n{stderr}"
    );
    let got: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let n = num(&query(&wh, "SELECT COUNT(*) AS n FROM fact_sales")[0]["n"]);
    assert_eq!(num(&got["fact_sales_rows"]), n);

    // The wide view answers the cube's question: revenue by region, to the cent.
    let cube = crmcube(&[
        "cube",
        "query",
        "--warehouse",
        wh.to_str().expect("utf-8"),
        "--measures",
        "revenue",
        "--rows",
        "geography.region",
        "--format",
        "json",
    ]);
    assert_eq!(cube.code, 0, "{}", cube.stderr);
    let cube: serde_json::Value = serde_json::from_str(cube.stdout.trim()).expect("json");
    let cube = cube.as_array().expect("rows");
    let by_region = got["revenue_by_region"].as_array().expect("rows");
    assert_eq!(by_region.len(), cube.len(), "{by_region:?} vs {cube:?}");
    for row in cube {
        let region = row["geography.region"].as_str().expect("region");
        let served = by_region
            .iter()
            .find(|r| r[0] == region)
            .unwrap_or_else(|| panic!("{region} missing from {by_region:?}"));
        assert!(
            (num(&served[1]) - num(&row["revenue"])).abs() < 0.005,
            "{region}: {} vs {}",
            served[1],
            row["revenue"]
        );
    }

    // The catalog lists the tables and the views, with columns.
    let tables: Vec<(String, String)> = got["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t[2].as_str().unwrap_or("").to_string(),
                t[3].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("fact_sales", "TABLE"),
        ("dim_customer", "TABLE"),
        ("cube_sales", "VIEW"),
    ] {
        assert!(
            tables.iter().any(|(n, k)| n == want.0 && k == want.1),
            "{want:?} not in {tables:?}"
        );
    }
    let columns: Vec<&str> = got["cube_sales_columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for c in [
        "revenue",
        "geography_region",
        "time_year",
        "product_category",
        "customer_segment",
    ] {
        assert!(columns.contains(&c), "{c} not in {columns:?}");
    }

    // Refusals are errors with a reason, and the connection keeps working.
    let refused = &got["refused"];
    let text = |k: &str| {
        refused[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} was not refused"))
            .to_string()
    };
    assert!(
        text("write").to_lowercase().contains("not allowed") || text("write").contains("DDL"),
        "{}",
        text("write")
    );
    assert!(
        text("unknown_table").contains("no_such_table"),
        "{}",
        text("unknown_table")
    );
    assert!(
        text("wrong_password").contains("wrong user or password"),
        "{}",
        text("wrong_password")
    );
    assert_eq!(
        num(&got["after_errors"]),
        num(&query(&wh, "SELECT COUNT(*) AS n FROM dim_date")[0]["n"])
    );

    // A query over the time limit (a trillion-row sum: hours on any machine) is stopped;
    // the next one is answered.
    let (ok, _, stderr) = client(
        &server.uri,
        &["--sql", "SELECT SUM(value) FROM range(1, 1000000000000)"],
        PASSWORD,
    );
    assert!(!ok, "the slow query was expected to be stopped");
    assert!(stderr.contains("query stopped after 2 s"), "{stderr}");
    let (ok, stdout, stderr) = client(
        &server.uri,
        &["--sql", "SELECT COUNT(*) AS n FROM dim_channel"],
        PASSWORD,
    );
    assert!(ok, "{stderr}");
    let n = num(&query(&wh, "SELECT COUNT(*) AS n FROM dim_channel")[0]["n"]);
    assert_eq!(stdout.trim(), format!("[[{n}]]"));

    // A saved query of the model is a view with the rows of `cube query --saved`.
    let saved = crmcube(&[
        "cube",
        "query",
        "--warehouse",
        wh.to_str().expect("utf-8"),
        "--saved",
        "revenue_by_region_year",
        "--format",
        "json",
    ]);
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let saved: serde_json::Value = serde_json::from_str(saved.stdout.trim()).expect("json");
    let saved = saved.as_array().expect("rows");
    assert!(saved.len() > 5, "{saved:?}");
    let (ok, stdout, stderr) = client(
        &server.uri,
        &[
            "--sql",
            "SELECT geography_region, time_year, revenue, customers FROM revenue_by_region_year",
        ],
        PASSWORD,
    );
    assert!(ok, "{stderr}");
    let served: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let served = served.as_array().expect("rows");
    assert_eq!(served.len(), saved.len(), "{served:?} vs {saved:?}");
    let key = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), String::from);
    for row in saved {
        let region = key(&row["geography.region"]);
        let year = key(&row["time.year"]);
        let hit = served
            .iter()
            .find(|r| key(&r[0]) == region && key(&r[1]) == year)
            .unwrap_or_else(|| panic!("{region}/{year} missing from {served:?}"));
        assert!(
            (num(&hit[2]) - num(&row["revenue"])).abs() < 0.005,
            "{hit:?} vs {row}"
        );
        assert_eq!(num(&hit[3]), num(&row["customers"]), "{hit:?} vs {row}");
    }
}

#[test]
fn serve_refuses_to_start_without_users_or_open_to_the_network_without_auth() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let w = wh.to_str().expect("utf-8");
    let out = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args(["serve", "--warehouse", w, "--port", "0"])
        .env_remove("CRMCUBE_SERVE_PASSWORD")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no users") && err.contains("CRMCUBE_SERVE_PASSWORD"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_crmcube"))
        .args([
            "serve",
            "--warehouse",
            w,
            "--port",
            "0",
            "--host",
            "0.0.0.0",
            "--no-auth",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn postgres_clients_psql_and_psycopg_query_the_same_tables_and_views() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let server = start(&wh, &[]);
    let port = server.pg_port.expect("pg port").to_string();
    let n = num(&query(&wh, "SELECT COUNT(*) AS n FROM fact_sales")[0]["n"]);

    // psql, the real client: a count, and its \dt catalog query.
    let conninfo = format!("host=127.0.0.1 port={port} user=analyst dbname=crmcube");
    let psql = |args: &[&str], password: &str| {
        Command::new("psql")
            .arg(&conninfo)
            .args(["-X", "-A", "-t"])
            .args(args)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs (apt-get install postgresql-client)")
    };
    let out = psql(&["-c", "SELECT COUNT(*) FROM fact_sales"], PASSWORD);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{n}"));
    // Server-wide settings and internal tables are not for clients.
    let out = psql(
        &["-c", "SET datafusion.runtime.memory_limit = '1K'"],
        PASSWORD,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not allowed to change"), "{err}");
    let out = psql(&["-c", "SELECT COUNT(*) FROM _quarantine"], PASSWORD);
    assert!(!out.status.success(), "_quarantine was served");
    let out = psql(&["-c", "SELECT 1"], "wrong");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // psycopg: BI-style catalog queries, a parameterised query on the wide view, refusals.
    let out = Command::new("python3")
        .arg(repo_root().join("examples/pg_client.py"))
        .args(["--port", &port, "--user", "analyst"])
        .env("CRMCUBE_PASSWORD", PASSWORD)
        .output()
        .expect("python3 runs (pip install -r examples/requirements.txt)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pg_client.py failed: {stderr}");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(num(&got["fact_sales_rows"]), n);
    let tables = got["tables"].to_string();
    assert!(
        tables.contains("fact_sales") && tables.contains("cube_sales"),
        "{tables}"
    );
    assert!(
        got["pg_class_facts"].to_string().contains("fact_sales"),
        "{}",
        got["pg_class_facts"]
    );
    let cube = crmcube(&[
        "cube",
        "query",
        "--warehouse",
        wh.to_str().expect("utf-8"),
        "--measures",
        "revenue",
        "--rows",
        "geography.region",
        "--format",
        "json",
    ]);
    let cube: serde_json::Value = serde_json::from_str(cube.stdout.trim()).expect("json");
    let cube = cube.as_array().expect("rows");
    let served = got["revenue_by_region"].as_array().expect("rows");
    assert_eq!(served.len(), cube.len());
    for (s, c) in served.iter().zip(cube) {
        assert_eq!(s[0], c["geography.region"]);
        assert!(
            (num(&s[1]) - num(&c["revenue"])).abs() < 0.005,
            "{s:?} vs {c:?}"
        );
    }
    for k in ["write", "insert", "wrong_password"] {
        assert!(
            got["refused"][k].is_string(),
            "{k} was not refused: {}",
            got["refused"]
        );
    }
    assert!(
        got["refused"]["write"].to_string().contains("read-only"),
        "{}",
        got["refused"]
    );

    // A load committed while serving is visible to the next query.
    let before = n;
    let parts = crate::versions::split_export(tmp.path(), &["2025-01-01"]);
    let wh2 = tmp.path().join("wh2");
    ingest_ok(&parts[0], &wh2);
    let server2 = start(&wh2, &[]);
    let port2 = server2.pg_port.expect("pg port").to_string();
    let conninfo2 = format!("host=127.0.0.1 port={port2} user=analyst dbname=crmcube");
    let count = || {
        let out = Command::new("psql")
            .arg(&conninfo2)
            .args(["-X", "-A", "-t", "-c", "SELECT COUNT(*) FROM fact_sales"])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .unwrap_or(-1.0)
    };
    let first = count();
    assert!(first > 0.0 && first < before, "{first}");
    ingest_ok(&parts[1], &wh2);
    let mut now = count();
    for _ in 0..20 {
        if now == before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        now = count();
    }
    assert_eq!(now, before, "the new version is served after the load");
}

/// psql against the PostgreSQL endpoint: (success, stdout, stderr, seconds taken).
fn psql_at(conninfo: &str, sql: &str) -> (bool, String, String, f64) {
    let started = std::time::Instant::now();
    let out = Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (apt-get install postgresql-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed().as_secs_f64(),
    )
}

/// A query that runs for hours: stopped by the server's --query-timeout.
const SLOW: &str = "SELECT SUM(value) FROM range(1, 1000000000000)";

#[test]
fn postgres_clients_get_the_query_limits_and_must_use_tls_when_the_server_has_a_certificate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    let channels = num(&query(&wh, "SELECT COUNT(*) AS n FROM dim_channel")[0]["n"]);

    // A self-signed certificate for 127.0.0.1.
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = start(
        &wh,
        &[
            "--query-timeout",
            "3",
            "--max-concurrent-queries",
            "1",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let port = server.pg_port.expect("pg port");
    let conninfo =
        |ssl: &str| format!("host=127.0.0.1 port={port} user=analyst dbname=crmcube {ssl}");

    // Without TLS the server refuses before the password crosses the wire.
    let (ok, _, err, _) = psql_at(&conninfo("sslmode=disable"), "SELECT 1");
    assert!(!ok, "a cleartext connection was accepted");
    assert!(err.contains("requires TLS"), "{err}");
    // With TLS, and with the certificate verified against the host name.
    let sql = "SELECT COUNT(*) FROM dim_channel";
    let (ok, got, err, _) = psql_at(&conninfo("sslmode=require"), sql);
    assert!(ok, "{err}");
    assert_eq!(got, format!("{channels}"));
    let verified = conninfo(&format!(
        "sslmode=verify-full sslrootcert={}",
        cert.display()
    ));
    let (ok, got, err, _) = psql_at(&verified, sql);
    assert!(ok, "{err}");
    assert_eq!(got, format!("{channels}"));

    // A query over the time limit is stopped with SQLSTATE 57014; the next is answered.
    let (ok, _, err, took) = psql_at(&verified, SLOW);
    assert!(!ok, "the slow query was expected to be stopped");
    assert!(err.contains("query stopped after 3 s"), "{err}");
    assert!(took < 30.0, "stopped after {took:.1} s");
    let (ok, got, err, _) = psql_at(&verified, sql);
    assert!(ok, "{err}");
    assert_eq!(got, format!("{channels}"));

    // One slot: a query sent while a slow one runs waits for the slot, then is answered.
    let slow = {
        let verified = verified.clone();
        std::thread::spawn(move || psql_at(&verified, SLOW))
    };
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let (ok, got, err, waited) = psql_at(&verified, sql);
    assert!(ok, "{err}");
    assert_eq!(got, format!("{channels}"));
    assert!(
        waited > 1.0,
        "answered in {waited:.2} s while the only slot was taken"
    );
    let (ok, _, err, _) = slow.join().expect("slow query thread");
    assert!(!ok && err.contains("query stopped"), "{err}");
}

//! The real binary on the committed sample export: warehouse totals must equal totals
//! computed directly from the export files.

use crate::common::{crmcube, num, query, repo_root};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn cents(s: &str) -> i64 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<2}");
    let v =
        i.trim_start_matches('-').parse::<i64>().unwrap() * 100 + f[..2].parse::<i64>().unwrap();
    if s.starts_with('-') {
        -v
    } else {
        v
    }
}

#[test]
fn sample_warehouse_matches_the_export() {
    let sample = repo_root().join("sample_data");
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("wh");
    let r = crmcube(&[
        "ingest",
        "--source",
        sample.to_str().unwrap(),
        "--warehouse",
        wh.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["quarantined"], 0, "the sample export is clean");

    // Independent computation from the files.
    let (oh, orders) = read_csv(&sample.join("orders.csv"));
    let order_year: HashMap<String, String> = orders
        .iter()
        .map(|o| {
            (
                o[col(&oh, "order_id")].clone(),
                o[col(&oh, "order_ts")][..4].to_string(),
            )
        })
        .collect();
    let (lh, lines) = read_csv(&sample.join("order_lines.csv"));
    let mut revenue_by_year: BTreeMap<String, i64> = BTreeMap::new();
    let mut total = 0i64;
    let mut quantity = 0i64;
    for l in &lines {
        let q: i64 = l[col(&lh, "quantity")].parse().unwrap();
        let rev = q * cents(&l[col(&lh, "unit_price")]) - cents(&l[col(&lh, "discount")]);
        total += rev;
        quantity += q;
        *revenue_by_year
            .entry(order_year[&l[col(&lh, "order_id")]].clone())
            .or_default() += rev;
    }
    let (ch, customers) = read_csv(&sample.join("customers.csv"));
    let distinct_customers: HashSet<&str> = customers
        .iter()
        .map(|c| c[col(&ch, "customer_id")].as_str())
        .collect();
    let count = |f: &str| read_csv(&sample.join(f)).1.len() as f64;

    let got = query(&wh, "SELECT COUNT(*) AS n, CAST(SUM(revenue) * 100 AS BIGINT) AS cents, SUM(quantity) AS qty FROM fact_sales");
    assert_eq!(num(&got[0]["n"]), lines.len() as f64);
    assert_eq!(num(&got[0]["cents"]) as i64, total);
    assert_eq!(num(&got[0]["qty"]) as i64, quantity);

    let by_year = query(&wh, "SELECT CAST(d.year AS VARCHAR) AS year, CAST(SUM(f.revenue) * 100 AS BIGINT) AS cents FROM fact_sales f JOIN dim_date d ON f.date_key = d.date_key GROUP BY 1 ORDER BY 1");
    let got_years: BTreeMap<String, i64> = by_year
        .iter()
        .map(|r| {
            (
                r["year"].as_str().unwrap().to_string(),
                num(&r["cents"]) as i64,
            )
        })
        .collect();
    assert_eq!(got_years, revenue_by_year);

    let c = query(
        &wh,
        "SELECT COUNT(*) AS n FROM dim_customer WHERE is_current AND customer_key <> 0",
    );
    assert_eq!(num(&c[0]["n"]), distinct_customers.len() as f64);
    let c = query(&wh, "SELECT COUNT(*) AS n FROM fact_ticket");
    assert_eq!(num(&c[0]["n"]), count("tickets.csv"));
    let c = query(&wh, "SELECT COUNT(*) AS n FROM fact_campaign_response");
    assert_eq!(num(&c[0]["n"]), count("campaign_contacts.csv"));
    let c = query(&wh, "SELECT COUNT(*) AS n FROM fact_interaction");
    assert_eq!(
        num(&c[0]["n"]),
        count("web_sessions.csv") + count("cart_events.csv") + count("email_events.csv")
    );

    // Every fact row finds its customer version, product and date.
    let c = query(&wh, "SELECT COUNT(*) AS n FROM fact_sales f LEFT JOIN dim_customer c ON f.customer_key = c.customer_key LEFT JOIN dim_date d ON f.date_key = d.date_key WHERE c.customer_key IS NULL OR d.date_key IS NULL OR f.product_key = 0 OR f.customer_key = 0");
    assert_eq!(num(&c[0]["n"]), 0.0);
    // SCD2: versions of a customer do not overlap and the order falls inside its version.
    let c = query(&wh, "SELECT COUNT(*) AS n FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key WHERE f.order_ts < c.valid_from OR f.order_ts >= c.valid_to");
    assert_eq!(num(&c[0]["n"]), 0.0);
    let c = query(&wh, "SELECT COUNT(*) AS n FROM (SELECT customer_id FROM dim_customer WHERE customer_key <> 0 GROUP BY customer_id HAVING SUM(CASE WHEN is_current THEN 1 ELSE 0 END) <> 1)");
    assert_eq!(num(&c[0]["n"]), 0.0);
    let c = query(
        &wh,
        "SELECT COUNT(*) AS n FROM dim_customer WHERE customer_key <> 0 AND NOT is_current",
    );
    assert!(num(&c[0]["n"]) > 0.0, "the sample has customer history");

    // Facts are partitioned by month; every table is a Delta table.
    let month = wh.join("fact_sales/year=2024/month=11");
    let parquet = std::fs::read_dir(&month)
        .expect("partition folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .count();
    assert_eq!(parquet, 1, "one file per month partition");
    assert!(wh
        .join("fact_sales/_delta_log/00000000000000000000.json")
        .is_file());

    // Surrogate keys are stable across loads.
    let keys = |wh: &Path| {
        query(wh, "SELECT CAST(SUM(customer_key % 1000003) AS BIGINT) AS k, COUNT(*) AS n FROM dim_customer")
    };
    let before = keys(&wh);
    crate::common::ingest_ok(&sample, &wh);
    assert_eq!(keys(&wh), before);
}

#[test]
fn committed_sample_is_what_the_generator_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gen");
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("sample_data/_settings.json")).unwrap(),
    )
    .unwrap();
    let customers = settings["customers"].to_string();
    let seed = settings["seed"].to_string();
    let r = crmcube(&[
        "sample",
        "generate",
        "--customers",
        &customers,
        "--seed",
        &seed,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut compared = 0;
    for e in std::fs::read_dir(repo_root().join("sample_data")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            let name = p.file_name().unwrap();
            assert!(
                std::fs::read(&p).unwrap() == std::fs::read(out.join(name)).unwrap(),
                "{name:?} differs from the generator's output"
            );
            compared += 1;
        }
    }
    assert!(compared >= 11);
}

#[test]
fn csv_jsonl_and_parquet_exports_load_the_same_warehouse() {
    let tmp = tempfile::tempdir().unwrap();
    let mut answers = Vec::new();
    for fmt in ["csv", "jsonl", "parquet"] {
        let out = tmp.path().join(fmt);
        let wh = tmp.path().join(format!("wh-{fmt}"));
        let r = crmcube(&[
            "sample",
            "generate",
            "--customers",
            "300",
            "--seed",
            "7",
            "--format",
            fmt,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let r = crmcube(&[
            "ingest",
            "--source",
            out.to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{fmt}: {}", r.stderr);
        answers.push(query(&wh, "SELECT (SELECT COUNT(*) FROM fact_sales) AS lines, (SELECT CAST(SUM(revenue) AS VARCHAR) FROM fact_sales) AS revenue, \
            (SELECT COUNT(*) FROM dim_customer) AS versions, (SELECT COUNT(*) FROM fact_interaction) AS interactions, \
            (SELECT COUNT(*) FROM fact_ticket) AS tickets, (SELECT COUNT(*) FROM _quarantine) AS quarantined, \
            (SELECT CAST(SUM(customer_key % 1000) AS BIGINT) FROM fact_sales) AS keys"));
    }
    assert_eq!(answers[0], answers[1], "csv vs jsonl");
    assert_eq!(answers[0], answers[2], "csv vs parquet");
    assert_eq!(num(&answers[0][0]["quarantined"]), 0.0);
    assert!(num(&answers[0][0]["lines"]) > 100.0);
}

#[test]
fn demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("demo-wh");
    let r = crmcube(&["demo", "--warehouse", wh.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for title in [
        "Revenue and gross profit by region and year",
        "Top 10 customers",
        "Complaint rate",
        "Campaign response rate",
        "RFM segments",
        "Revenue by RFM segment and region",
    ] {
        assert!(r.stdout.contains(title), "demo output lacks {title}");
    }
    let scores = query(
        &wh,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT rfm_segment) AS segments FROM customer_scores",
    );
    assert!(num(&scores[0]["n"]) > 100.0);
    assert!(num(&scores[0]["segments"]) >= 5.0);
    // Scores cover exactly the customers with a purchase.
    let buyers = query(&wh, "SELECT COUNT(DISTINCT c.customer_id) AS n FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key");
    assert_eq!(num(&scores[0]["n"]), num(&buyers[0]["n"]));
}

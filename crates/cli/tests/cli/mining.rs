//! `mine clv` and `mine score` on a generated sample: both inputs agree, P(alive)
//! ranks truly alive customers first, bad logs are refused with a useful message,
//! and customer_scores joins to dim_customer.

use crate::common::{crmcube, ingest_ok, num, query};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            header
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// A transaction log (one row per order: customer, timestamp, revenue of the lines
/// not returned) written from the sample's orders and order lines.
fn write_log(sample: &Path, out: &Path) {
    let orders = read_csv(&sample.join("orders.csv"));
    let lines = read_csv(&sample.join("order_lines.csv"));
    let mut revenue: HashMap<&str, f64> = HashMap::new();
    for l in &lines {
        if l["returned"] == "true" {
            continue;
        }
        let q: f64 = l["quantity"].parse().unwrap();
        let p: f64 = l["unit_price"].parse().unwrap();
        let d: f64 = l["discount"].parse().unwrap_or(0.0);
        *revenue.entry(l["order_id"].as_str()).or_default() += q * p - d;
    }
    let mut w = csv::Writer::from_path(out).unwrap();
    w.write_record(["cust", "ts", "amount"]).unwrap();
    for o in &orders {
        if let Some(r) = revenue.get(o["order_id"].as_str()) {
            w.write_record([&o["customer_id"], &o["order_ts"], &format!("{r:.2}")])
                .unwrap();
        }
    }
    w.flush().unwrap();
}

fn params(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Area under the ROC curve of `score` for `label`, by counting pairs (ties ½).
fn auc(pairs: &[(f64, bool)]) -> f64 {
    let pos: Vec<f64> = pairs.iter().filter(|p| p.1).map(|p| p.0).collect();
    let neg: Vec<f64> = pairs.iter().filter(|p| !p.1).map(|p| p.0).collect();
    let mut wins = 0.0;
    for a in &pos {
        for b in &neg {
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()) as f64
}

#[test]
fn clv_from_warehouse_and_log_agree_and_p_alive_ranks_the_living() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let r = crmcube(&[
        "sample",
        "generate",
        "--customers",
        "3000",
        "--seed",
        "7",
        "--out",
        s(&sample),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let wh = tmp.path().join("wh");
    ingest_ok(&sample, &wh);
    let log = tmp.path().join("tx.csv");
    write_log(&sample, &log);

    let (pw, ow) = (tmp.path().join("pw.json"), tmp.path().join("ow.csv"));
    let r = crmcube(&[
        "mine",
        "clv",
        "--warehouse",
        s(&wh),
        "--params",
        s(&pw),
        "--output",
        s(&ow),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("log_likelihood"), "{}", r.stdout);
    let (pl, ol) = (tmp.path().join("pl.json"), tmp.path().join("ol.csv"));
    let r = crmcube(&[
        "mine",
        "clv",
        "--transactions",
        s(&log),
        "--customer-col",
        "cust",
        "--date-col",
        "ts",
        "--amount-col",
        "amount",
        "--params",
        s(&pl),
        "--output",
        s(&ol),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let (a, b) = (params(&pw), params(&pl));
    assert_eq!(a["customers"], b["customers"]);
    assert_eq!(a["purchase_days"], b["purchase_days"]);
    for k in ["r", "alpha", "a", "b"] {
        let (x, y) = (num(&a["params"][k]), num(&b["params"][k]));
        assert!((x - y).abs() <= 1e-6 * x.abs(), "{k}: {x} vs {y}");
    }
    for k in ["p", "q", "gamma"] {
        let (x, y) = (num(&a["spend_params"][k]), num(&b["spend_params"][k]));
        assert!((x - y).abs() <= 1e-4 * x.abs(), "{k}: {x} vs {y}");
    }

    // Every customer who bought is scored, with probabilities in [0, 1].
    let preds = read_csv(&ow);
    let orders = read_csv(&sample.join("orders.csv"));
    let buyers: std::collections::HashSet<&str> =
        orders.iter().map(|o| o["customer_id"].as_str()).collect();
    assert!(preds.len() <= buyers.len() && preds.len() as f64 > 0.95 * buyers.len() as f64);
    let truth: HashMap<String, bool> = read_csv(&sample.join("_truth.csv"))
        .into_iter()
        .map(|t| (t["customer_id"].clone(), t["alive_at_end"] == "true"))
        .collect();
    let pairs: Vec<(f64, bool)> = preds
        .iter()
        .map(|p| {
            let pa: f64 = p["p_alive"].parse().unwrap();
            assert!((0.0..=1.0).contains(&pa));
            let pn: f64 = p["p_no_purchase"].parse().unwrap();
            assert!((0.0..=1.0).contains(&pn));
            (pa, truth[&p["customer"]])
        })
        .collect();
    let area = auc(&pairs);
    assert!(
        area > 0.7,
        "AUC of P(alive) against the true alive flag: {area}"
    );
}

#[test]
fn clv_holdout_table_compares_expected_with_actual() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("wh");
    ingest_ok(&crate::common::repo_root().join("sample_data"), &wh);
    let r = crmcube(&[
        "mine",
        "clv",
        "--warehouse",
        s(&wh),
        "--calibration-end",
        "2025-06-30",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // two JSON documents: parameters, then the holdout table
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&r.stdout)
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{}", r.stdout);
    let table = docs[1].as_array().unwrap();
    let all = table.last().unwrap();
    assert_eq!(all["calibration_frequency"], "all");
    // The actual column, recomputed from the warehouse.
    let rows = query(
        &wh,
        "WITH d AS (SELECT DISTINCT c.customer_id, CAST(f.order_ts AS DATE) AS day \
           FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key \
           WHERE f.customer_key <> 0 AND NOT f.returned), \
         cal AS (SELECT customer_id FROM d WHERE day <= DATE '2025-06-30' GROUP BY 1), \
         h AS (SELECT customer_id, COUNT(*) AS n FROM d WHERE day > DATE '2025-06-30' GROUP BY 1) \
         SELECT COUNT(*) AS customers, CAST(SUM(COALESCE(h.n, 0)) AS DOUBLE) AS purchases \
         FROM cal LEFT JOIN h ON cal.customer_id = h.customer_id",
    );
    let customers = num(&rows[0]["customers"]);
    assert_eq!(num(&all["customers"]), customers);
    let actual = num(&rows[0]["purchases"]) / customers;
    assert!((num(&all["actual_holdout_purchases"]) - actual).abs() < 1e-3);
    let expected = num(&all["expected_holdout_purchases"]);
    assert!(
        (expected / actual - 1.0).abs() < 0.35,
        "expected {expected} vs actual {actual}"
    );
    let sum: f64 = table[..table.len() - 1]
        .iter()
        .map(|r| num(&r["customers"]))
        .sum();
    assert_eq!(sum, customers);
}

#[test]
fn bad_transaction_logs_are_refused_with_the_place_of_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "missing.csv",
            "cust,day,amount\nA,2024-01-01,5\n",
            &["missing.csv", "`ts`", "cust, day, amount"],
        ),
        (
            "zero.csv",
            "cust,ts,amount\nA,2024-01-01,5\nB,2024-01-02,0\n",
            &["zero.csv", "row 2", "`amount`", "not positive"],
        ),
        (
            "date.csv",
            "cust,ts,amount\nA,2024-01-01,5\nB,01/02/2024,3\n",
            &["date.csv", "row 2", "`ts`", "01/02/2024"],
        ),
        (
            "amount.csv",
            "cust,ts,amount\nA,2024-01-01,5\nB,2024-01-02,5\nC,2024-01-03,five\n",
            &["amount.csv", "row 3", "`amount`", "five"],
        ),
    ];
    for (name, text, wants) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        let r = crmcube(&[
            "mine",
            "clv",
            "--transactions",
            s(&p),
            "--customer-col",
            "cust",
            "--date-col",
            "ts",
            "--amount-col",
            "amount",
        ]);
        assert!(r.code == 1 || r.code == 2, "{name}: exit {}", r.code);
        for w in wants {
            assert!(r.stderr.contains(w), "{name}: `{w}` not in {}", r.stderr);
        }
    }
    // With --exclude-nonpositive the zero row is dropped and counted.
    let p = tmp.path().join("zero.csv");
    let r = crmcube(&[
        "mine",
        "clv",
        "--transactions",
        s(&p),
        "--customer-col",
        "cust",
        "--date-col",
        "ts",
        "--amount-col",
        "amount",
        "--exclude-nonpositive",
    ]);
    assert!(r.stderr.contains("excluded 1 rows"), "{}", r.stderr);
}

#[test]
fn score_writes_customer_scores_that_join_to_dim_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = tmp.path().join("wh");
    ingest_ok(&crate::common::repo_root().join("sample_data"), &wh);
    let r = crmcube(&[
        "mine",
        "score",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2025-12-31",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = query(
        &wh,
        "SELECT s.value_tier, s.lifecycle_stage, COUNT(*) AS n, \
                SUM(CASE WHEN c.customer_id IS NULL THEN 1 ELSE 0 END) AS unmatched, \
                MIN(s.p_alive) AS min_pa, MAX(s.p_alive) AS max_pa, \
                MAX(ABS(s.churn_score - (1 - s.p_alive))) AS churn_gap \
         FROM customer_scores s LEFT JOIN dim_customer c \
           ON s.customer_key = c.customer_key AND c.is_current \
         WHERE s.as_of = DATE '2025-12-31' GROUP BY 1, 2",
    );
    let mut tiers: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0.0;
    for r in &rows {
        assert_eq!(
            num(&r["unmatched"]),
            0.0,
            "every score joins its current customer"
        );
        assert!(num(&r["min_pa"]) >= 0.0 && num(&r["max_pa"]) <= 1.0);
        assert!(num(&r["churn_gap"]) < 1e-12);
        *tiers
            .entry(r["value_tier"].as_str().unwrap().to_string())
            .or_default() += num(&r["n"]);
        total += num(&r["n"]);
    }
    // Tier sizes follow the shares: ceil(1%), ceil(5%) − ceil(1%), ...
    let n = total;
    assert_eq!(tiers["Top 1%"], (0.01 * n).ceil());
    assert_eq!(tiers["Top 5%"], (0.05 * n).ceil() - (0.01 * n).ceil());
    assert_eq!(tiers["Top 20%"], (0.20 * n).ceil() - (0.05 * n).ceil());
    // Stages against their rules, recomputed in SQL for "churned by silence".
    let silent = query(
        &wh,
        "SELECT COUNT(*) AS n FROM customer_scores \
         WHERE recency_days > 365 AND lifecycle_stage NOT IN ('churned', 'new', 'reactivated')",
    );
    assert_eq!(num(&silent[0]["n"]), 0.0);
}

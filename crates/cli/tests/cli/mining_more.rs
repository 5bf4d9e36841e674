//! `crmcube mine churn|cohorts|migration|basket` on real warehouses, checked against
//! computations made here from plain SQL rows.

use crate::common::{crmcube, ingest_ok, num, query, repo_root};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn sample_warehouse(tmp: &Path) -> PathBuf {
    let wh = tmp.join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    wh
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn rows(v: &serde_json::Value) -> Vec<serde_json::Map<String, serde_json::Value>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|o| o.as_object().expect("object").clone())
        .collect()
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// AUC by counting every (churner, non-churner) pair, ties one half.
fn pairwise_auc(scores: &[(f64, bool)]) -> f64 {
    let pos: Vec<f64> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    let neg: Vec<f64> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()) as f64
}

#[test]
fn churn_model_on_generated_data_beats_chance_and_matches_sql_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let wh = tmp.path().join("wh");
    let r = crmcube(&[
        "sample",
        "generate",
        "--customers",
        "3000",
        "--seed",
        "11",
        "--out",
        s(&src),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    ingest_ok(&src, &wh);
    let scores = tmp.path().join("scores.csv");
    let r = crmcube(&[
        "mine",
        "churn",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2025-10-02",
        "--format",
        "json",
        "--output",
        s(&scores),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = json(&r.stdout);
    let summary: HashMap<String, String> = rows(&report["summary"])
        .iter()
        .map(|m| (text(&m["metric"]), text(&m["value"])))
        .collect();
    let auc: f64 = summary["test_auc"].parse().unwrap();
    // Measured 0.7959 on this data (see docs/mining.md); 0.72 leaves margin.
    assert!(auc > 0.72, "test AUC {auc}");
    assert_eq!(summary["train_cutoff"], "2025-07-04");
    let test_n: usize = summary["test_customers"].parse().unwrap();
    let train_n: usize = summary["train_customers"].parse().unwrap();
    assert!(train_n > 1000 && train_n <= test_n, "{train_n} {test_n}");

    // Labels from SQL: customers who bought by T0, and whether they bought in (T0, T0+90].
    let labels: HashMap<String, bool> = query(
        &wh,
        "SELECT c.customer_id AS id, MAX(CASE WHEN CAST(f.order_ts AS DATE) > DATE '2025-10-02' \
         AND CAST(f.order_ts AS DATE) <= DATE '2025-12-31' THEN 1 ELSE 0 END) AS bought \
         FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key \
         WHERE f.customer_key <> 0 GROUP BY 1 \
         HAVING MIN(CAST(f.order_ts AS DATE)) <= DATE '2025-10-02'",
    )
    .iter()
    .map(|m| (text(&m["id"]), num(&m["bought"]) == 0.0))
    .collect();
    assert_eq!(labels.len(), test_n);
    let mut rdr = csv::Reader::from_path(&scores).unwrap();
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>(),
        ["customer_id", "churn_probability"]
    );
    let scored: Vec<(f64, bool)> = rdr
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let p: f64 = rec[1].parse().unwrap();
            assert!((0.0..=1.0).contains(&p));
            (p, labels[&rec[0]])
        })
        .collect();
    assert_eq!(scored.len(), test_n);
    // The probabilities in the file are rounded to 6 digits, so allow a hair of slack.
    let bf = pairwise_auc(&scored);
    assert!((bf - auc).abs() < 2e-3, "reported {auc}, recomputed {bf}");

    // Lift table: ten deciles covering every test customer and every churner.
    let lift = rows(&report["lift"]);
    assert_eq!(lift.len(), 10);
    let churners = scored.iter().filter(|s| s.1).count();
    assert_eq!(
        lift.iter().map(|l| num(&l["customers"])).sum::<f64>(),
        test_n as f64
    );
    assert_eq!(
        lift.iter().map(|l| num(&l["churners"])).sum::<f64>(),
        churners as f64
    );
    assert!((num(&lift[9]["cumulative_capture"]) - 1.0).abs() < 1e-9);
    assert!(num(&lift[0]["lift"]) > 1.2, "{lift:?}");
    // Coefficients: intercept plus one per feature, recency raising churn.
    let coef = rows(&report["coefficients"]);
    assert_eq!(coef.len(), 13);
    let recency = coef
        .iter()
        .find(|c| c["feature"] == "recency_days")
        .unwrap();
    assert!(num(&recency["coefficient"]) > 0.0);

    // The generator's truth: customers who had already dropped out by the end score higher.
    let truth = src.join("_truth.csv");
    let mut rdr = csv::Reader::from_path(&truth).unwrap();
    let alive: HashMap<String, bool> = rdr
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), &r[5] == "true")
        })
        .collect();
    let mut rdr = csv::Reader::from_path(&scores).unwrap();
    let vs_truth: Vec<(f64, bool)> = rdr
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].parse().unwrap(), !alive[&r[0]])
        })
        .collect();
    // Measured 0.682: the label is "no purchase in 90 days", not "dropped out for good".
    let truth_auc = pairwise_auc(&vs_truth);
    assert!(
        truth_auc > 0.62,
        "AUC against the true dropped-out flag {truth_auc}"
    );
}

#[test]
fn churn_usage_and_data_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = sample_warehouse(tmp.path());
    let r = crmcube(&[
        "mine",
        "churn",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2025-02-30",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--as-of"), "{}", r.stderr);
    let r = crmcube(&[
        "mine",
        "churn",
        "--warehouse",
        s(&wh),
        "--horizon-days",
        "0",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--horizon-days must be at least 1"),
        "{}",
        r.stderr
    );
    // Nothing bought before the training cutoff: a data problem, exit 1.
    let r = crmcube(&[
        "mine",
        "churn",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2022-06-01",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("no customer bought on or before the training cutoff 2022-03-03"),
        "{}",
        r.stderr
    );
    // The test window past the data: scores, but no AUC.
    let r = crmcube(&[
        "mine",
        "churn",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2025-12-31",
        "--show",
        "summary",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("test_auc,n/a"), "{}", r.stdout);
    assert!(
        r.stderr.contains("runs past the last order day"),
        "{}",
        r.stderr
    );
    // A warehouse without the tables.
    let r = crmcube(&["mine", "churn", "--warehouse", s(&tmp.path().join("nope"))]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn cohorts_match_a_naive_count_over_sql_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = sample_warehouse(tmp.path());
    let r = crmcube(&[
        "mine",
        "cohorts",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2025-06-30",
        "--max-months",
        "6",
        "--long",
        "--values",
        "count",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got: BTreeMap<(String, i64), (f64, f64, f64)> = rows(&json(&r.stdout))
        .iter()
        .map(|m| {
            (
                (text(&m["cohort"]), num(&m["months_since"]) as i64),
                (num(&m["cohort_size"]), num(&m["value"]), num(&m["pct"])),
            )
        })
        .collect();
    // Naive: every (customer, month) with a purchase, first month per customer.
    let bought = query(
        &wh,
        "SELECT DISTINCT c.customer_id AS id, d.year * 12 + d.month - 1 AS m \
         FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key \
         JOIN dim_date d ON f.date_key = d.date_key \
         WHERE f.customer_key <> 0 AND d.date <= DATE '2025-06-30'",
    );
    let mut months: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for b in &bought {
        months
            .entry(text(&b["id"]))
            .or_default()
            .insert(num(&b["m"]) as i64);
    }
    let last = 2025 * 12 + 5;
    let mut expected: BTreeMap<(String, i64), (f64, f64)> = BTreeMap::new();
    let mut sizes: HashMap<String, f64> = HashMap::new();
    for ms in months.values() {
        let first = *ms.iter().next().unwrap();
        let label = format!("{:04}-{:02}", first / 12, first % 12 + 1);
        *sizes.entry(label.clone()).or_default() += 1.0;
        for k in 0..=6 {
            if first + k <= last {
                expected.entry((label.clone(), k)).or_default().1 +=
                    f64::from(u8::from(ms.contains(&(first + k))));
            }
        }
    }
    assert_eq!(got.len(), expected.len());
    for (key, (_, active)) in &expected {
        let (size, value, pct) = got[key];
        assert_eq!(size, sizes[&key.0], "{key:?}");
        assert_eq!(value, *active, "{key:?}");
        assert!(
            (pct - (1000.0 * active / size).round() / 10.0).abs() < 1e-9,
            "{key:?}"
        );
    }
    // Month 0 is the acquisition month: everyone is active.
    assert!(got
        .iter()
        .filter(|(k, _)| k.1 == 0)
        .all(|(_, v)| v.0 == v.1));

    // Wide percentages: m0 is 100 for every cohort; revenue works too.
    let r = crmcube(&[
        "mine",
        "cohorts",
        "--warehouse",
        s(&wh),
        "--max-months",
        "3",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("cohort,customers,m0,m1,m2,m3"));
    assert!(
        lines.all(|l| l.split(',').nth(2) == Some("100.0")),
        "{}",
        r.stdout
    );
    // Wide counts: whole numbers, month 0 equal to the cohort size.
    let r = crmcube(&[
        "mine",
        "cohorts",
        "--warehouse",
        s(&wh),
        "--max-months",
        "2",
        "--values",
        "count",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for line in r.stdout.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[1], f[2], "{line}");
        assert!(!line.contains('.'), "{line}");
    }
    let r = crmcube(&[
        "mine",
        "cohorts",
        "--warehouse",
        s(&wh),
        "--metric",
        "revenue",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Before the first order: a clear data error.
    let r = crmcube(&[
        "mine",
        "cohorts",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2020-01-01",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no purchases on or before 2020-01-01"),
        "{}",
        r.stderr
    );
    let r = crmcube(&[
        "mine",
        "cohorts",
        "--warehouse",
        s(&wh),
        "--as-of",
        "yesterday",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--as-of"), "{}", r.stderr);
}

#[test]
fn migration_rows_add_up_to_the_from_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = sample_warehouse(tmp.path());
    let r = crmcube(&[
        "mine",
        "migration",
        "--warehouse",
        s(&wh),
        "--from",
        "2025-06-30",
        "--to",
        "2025-12-31",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cells = rows(&json(&r.stdout));
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut pct: BTreeMap<String, f64> = BTreeMap::new();
    for c in &cells {
        *sums.entry(text(&c["from_segment"])).or_default() += num(&c["customers"]);
        *pct.entry(text(&c["from_segment"])).or_default() += num(&c["row_pct"]);
    }
    // The segments at --from, as `mine rfm` reports them.
    let r = crmcube(&[
        "mine",
        "rfm",
        "--warehouse",
        s(&wh),
        "--as-of",
        "2025-06-30",
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut expected: BTreeMap<String, f64> = rows(&json(&r.stdout))
        .iter()
        .map(|m| (text(&m["rfm_segment"]), num(&m["customers"])))
        .collect();
    // Newcomers: first purchase after --from, by --to.
    let new = query(
        &wh,
        "SELECT COUNT(*) AS n FROM (SELECT c.customer_id FROM fact_sales f \
         JOIN dim_customer c ON f.customer_key = c.customer_key WHERE f.customer_key <> 0 \
         GROUP BY 1 HAVING MIN(CAST(f.order_ts AS DATE)) > DATE '2025-06-30' \
         AND MIN(CAST(f.order_ts AS DATE)) <= DATE '2025-12-31')",
    );
    expected.insert("(new)".into(), num(&new[0]["n"]));
    assert_eq!(sums, expected);
    // Row percentages are rounded to 0.1 each.
    assert!(pct.values().all(|p| (p - 100.0).abs() < 0.6), "{pct:?}");

    let r = crmcube(&[
        "mine",
        "migration",
        "--warehouse",
        s(&wh),
        "--from",
        "2025-06-30",
        "--to",
        "2025-12-31",
        "--wide",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("from_segment,customers,Champions"),
        "{}",
        r.stdout
    );
    let r = crmcube(&[
        "mine",
        "migration",
        "--warehouse",
        s(&wh),
        "--from",
        "2025-12-31",
        "--to",
        "2025-06-30",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("must be before --to"), "{}", r.stderr);
    let r = crmcube(&[
        "mine",
        "migration",
        "--warehouse",
        s(&wh),
        "--from",
        "2019-01-01",
        "--to",
        "2020-01-01",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no purchases on or before --to 2020-01-01"),
        "{}",
        r.stderr
    );
}

#[test]
fn basket_rules_match_sql_counts_and_suggestions_are_new_items() {
    let tmp = tempfile::tempdir().unwrap();
    let wh = sample_warehouse(tmp.path());
    let sugg = tmp.path().join("suggestions.csv");
    let r = crmcube(&[
        "mine",
        "basket",
        "--warehouse",
        s(&wh),
        "--min-support",
        "0.005",
        "--min-confidence",
        "0.05",
        "--top",
        "0",
        "--format",
        "json",
        "--suggestions",
        s(&sugg),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rules = rows(&json(&r.stdout));
    assert!(!rules.is_empty(), "{}", r.stderr);
    let pair = rules
        .iter()
        .find(|r| {
            !text(&r["antecedent"]).contains(" + ") && !text(&r["consequent"]).contains(" + ")
        })
        .expect("a one-to-one rule");
    let (a, c) = (text(&pair["antecedent"]), text(&pair["consequent"]));
    // The same counts straight from SQL over orders.
    let orders = |cond: &str| {
        num(&query(
            &wh,
            &format!(
                "SELECT COUNT(*) AS n FROM (SELECT f.order_id FROM fact_sales f \
                 JOIN dim_product p ON f.product_key = p.product_key WHERE f.product_key <> 0 \
                 GROUP BY 1 HAVING {cond})"
            ),
        )[0]["n"])
    };
    let has = |item: &str| format!("MAX(CASE WHEN p.subcategory = '{item}' THEN 1 ELSE 0 END) = 1");
    let n = orders("COUNT(*) > 0");
    let (na, nc, nac) = (
        orders(&has(&a)),
        orders(&has(&c)),
        orders(&format!("{} AND {}", has(&a), has(&c))),
    );
    assert_eq!(num(&pair["count"]), nac);
    assert!((num(&pair["support"]) - nac / n).abs() < 1e-4);
    assert!((num(&pair["confidence"]) - nac / na).abs() < 1e-4);
    assert!((num(&pair["lift"]) - (nac / na) / (nc / n)).abs() < 1e-3);
    assert!(rules
        .windows(2)
        .all(|w| num(&w[0]["lift"]) >= num(&w[1]["lift"])));

    // Suggestions: at most 3 per customer, never something the customer bought.
    let bought: BTreeSet<(String, String)> = query(
        &wh,
        "SELECT DISTINCT c.customer_id AS id, p.subcategory AS item FROM fact_sales f \
         JOIN dim_customer c ON f.customer_key = c.customer_key \
         JOIN dim_product p ON f.product_key = p.product_key WHERE f.customer_key <> 0",
    )
    .iter()
    .map(|m| (text(&m["id"]), text(&m["item"])))
    .collect();
    let mut rdr = csv::Reader::from_path(&sugg).unwrap();
    let mut per: HashMap<String, usize> = HashMap::new();
    let mut lines = 0;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        lines += 1;
        assert!(
            !bought.contains(&(rec[0].to_string(), rec[2].to_string())),
            "{rec:?}"
        );
        for because in rec[5].split(" + ") {
            assert!(
                bought.contains(&(rec[0].to_string(), because.to_string())),
                "{rec:?}"
            );
        }
        *per.entry(rec[0].to_string()).or_default() += 1;
    }
    assert!(lines > 0);
    assert!(per.values().all(|&k| k <= 3));

    let r = crmcube(&[
        "mine",
        "basket",
        "--warehouse",
        s(&wh),
        "--level",
        "category",
        "--top",
        "5",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r
        .stdout
        .starts_with("antecedent,consequent,count,support,confidence,lift"));
    assert!(r.stdout.lines().count() <= 6);
    let r = crmcube(&[
        "mine",
        "basket",
        "--warehouse",
        s(&wh),
        "--min-support",
        "2",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("min support must be between 0 and 1"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_command_explains_an_empty_sales_table() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for entry in std::fs::read_dir(repo_root().join("sample_data")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let body = std::fs::read_to_string(&path).unwrap();
        // Orders and their lines keep only the header line.
        let body = if name == "orders.csv" || name == "order_lines.csv" {
            format!("{}\n", body.lines().next().unwrap())
        } else {
            body
        };
        std::fs::write(src.join(name), body).unwrap();
    }
    let wh = tmp.path().join("wh");
    ingest_ok(&src, &wh);
    let w = s(&wh);
    for args in [
        vec!["mine", "churn", "--warehouse", w],
        vec!["mine", "cohorts", "--warehouse", w],
        vec![
            "mine",
            "migration",
            "--warehouse",
            w,
            "--from",
            "2025-01-01",
            "--to",
            "2025-06-30",
        ],
    ] {
        let r = crmcube(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("fact_sales holds no purchases"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
    }
    let r = crmcube(&["mine", "basket", "--warehouse", w]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no baskets to mine"), "{}", r.stderr);
}

//! `crmcube cube`: golden queries on sample_data, each checked against plain SQL
//! written independently of the cube's SQL generator.

use crate::common::{crmcube, ingest_ok, num, query, repo_root};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One warehouse built from sample_data, shared by the tests of this module.
fn warehouse() -> &'static Path {
    static WH: OnceLock<PathBuf> = OnceLock::new();
    WH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let wh = dir.join("wh");
        ingest_ok(&repo_root().join("sample_data"), &wh);
        wh
    })
}

type Row = Map<String, Value>;

fn cube(args: &[&str]) -> (Vec<Row>, String) {
    let w = warehouse().to_str().unwrap();
    let mut full = vec!["cube", "query", "--warehouse", w, "--format", "json"];
    full.extend_from_slice(args);
    let r = crmcube(&full);
    assert_eq!(r.code, 0, "cube {args:?} failed: {}", r.stderr);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("json");
    let rows = v
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o.as_object().expect("object").clone())
        .collect();
    (rows, r.stderr)
}

fn sql(q: &str) -> Vec<Row> {
    query(warehouse(), q)
}

fn text(r: &Row, k: &str) -> String {
    match &r[k] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.006
}

/// Cube rows keyed by one label column.
fn by(rows: &[Row], label: &str) -> HashMap<String, Row> {
    rows.iter().map(|r| (text(r, label), r.clone())).collect()
}

const SALES_BY_REGION: &str =
    "SELECT COALESCE(r.region, 'Unknown') AS region, SUM(f.revenue) AS revenue, \
     COUNT(DISTINCT c.customer_id) AS customers, COUNT(DISTINCT f.order_id) AS orders, \
     SUM(f.gross_profit) AS gp \
     FROM fact_sales f LEFT JOIN dim_region r ON r.region_key = f.region_key \
     LEFT JOIN dim_customer c ON c.customer_key = f.customer_key GROUP BY 1";

#[test]
fn rollup_by_region_matches_sql() {
    let (rows, _) = cube(&[
        "--measures",
        "revenue,customers,orders,margin_pct,avg_order_value",
        "--rows",
        "geography.region",
        "--totals",
    ]);
    let got = by(&rows, "geography.region");
    let want = sql(SALES_BY_REGION);
    assert_eq!(got.len(), want.len() + 1, "{rows:?}");
    for w in &want {
        let g = &got[&text(w, "region")];
        assert!(close(num(&g["revenue"]), num(&w["revenue"])), "{g:?} {w:?}");
        assert_eq!(num(&g["customers"]), num(&w["customers"]));
        assert_eq!(num(&g["orders"]), num(&w["orders"]));
        let margin = (num(&w["gp"]) / num(&w["revenue"]) * 10000.0).round() / 100.0;
        assert!(close(num(&g["margin_pct"]), margin));
    }
    let all = sql(
        "SELECT SUM(revenue) AS revenue, COUNT(DISTINCT order_id) AS orders, \
         COUNT(DISTINCT c.customer_id) AS customers FROM fact_sales f \
         LEFT JOIN dim_customer c ON c.customer_key = f.customer_key",
    );
    let g = &got["All"];
    assert!(close(num(&g["revenue"]), num(&all[0]["revenue"])));
    assert_eq!(num(&g["orders"]), num(&all[0]["orders"]));
    // Distinct customers of the total are counted again, not added up by region.
    assert_eq!(num(&g["customers"]), num(&all[0]["customers"]));
    let summed: f64 = want.iter().map(|w| num(&w["customers"])).sum();
    assert!(
        num(&g["customers"]) < summed,
        "sample data has customers buying in two regions"
    );
    assert_eq!(text(rows.last().unwrap(), "geography.region"), "All");
}

#[test]
fn drill_into_member_slice_and_dice() {
    let (rows, _) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "geography.region",
        "--drill",
        "geography=Europe",
        "--slice",
        "time.year=2025",
    ]);
    let want = sql("SELECT r.country, SUM(f.revenue) AS revenue FROM fact_sales f \
         JOIN dim_region r ON r.region_key = f.region_key JOIN dim_date d ON d.date_key = f.date_key \
         WHERE r.region = 'Europe' AND d.year = 2025 GROUP BY r.country");
    let got = by(&rows, "geography.country");
    assert_eq!(got.len(), want.len());
    for w in &want {
        assert!(close(
            num(&got[&text(w, "country")]["revenue"]),
            num(&w["revenue"])
        ));
    }
    // Dice by country code and a month range; the codes name the same members.
    let (rows, _) = cube(&[
        "--measures",
        "revenue,orders",
        "--rows",
        "geography.country",
        "--dice",
        "geography.country in (DE,France)",
        "--dice",
        "time.month between 2025-01 and 2025-06",
    ]);
    let want = sql(
        "SELECT r.country, SUM(f.revenue) AS revenue, COUNT(DISTINCT f.order_id) AS orders \
         FROM fact_sales f JOIN dim_region r ON r.region_key = f.region_key \
         JOIN dim_date d ON d.date_key = f.date_key \
         WHERE r.country_code IN ('DE', 'FR') AND d.year_month BETWEEN '2025-01' AND '2025-06' \
         GROUP BY r.country",
    );
    let got = by(&rows, "geography.country");
    assert_eq!(got.len(), 2);
    for w in &want {
        let g = &got[&text(w, "country")];
        assert!(close(num(&g["revenue"]), num(&w["revenue"])));
        assert_eq!(num(&g["orders"]), num(&w["orders"]));
    }
    // Roll-up from the top level leaves the axis: one grand total row.
    let (rows, _) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "time.year",
        "--rollup",
        "time",
    ]);
    let total = sql("SELECT SUM(revenue) AS revenue FROM fact_sales");
    assert_eq!(rows.len(), 1);
    assert!(close(num(&rows[0]["revenue"]), num(&total[0]["revenue"])));
}

#[test]
fn pivot_with_limit_reports_the_cut() {
    let (rows, stderr) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "geography.country",
        "--columns",
        "time.year",
        "--order",
        "revenue:desc",
        "--limit",
        "3",
    ]);
    assert_eq!(rows.len(), 3);
    let countries = sql(
        "SELECT COUNT(DISTINCT COALESCE(r.country, 'Unknown')) AS n FROM fact_sales f \
         LEFT JOIN dim_region r ON r.region_key = f.region_key",
    );
    let n = num(&countries[0]["n"]) as usize;
    assert!(
        stderr.contains(&format!("showing 3 of {n} rows")),
        "{stderr}"
    );
    let want = sql("SELECT r.country, d.year, SUM(f.revenue) AS revenue FROM fact_sales f \
         JOIN dim_region r ON r.region_key = f.region_key JOIN dim_date d ON d.date_key = f.date_key \
         GROUP BY r.country, d.year");
    for w in &want {
        if let Some(g) = rows
            .iter()
            .find(|r| text(r, "geography.country") == text(w, "country"))
        {
            let col = format!("{} | revenue", text(w, "year"));
            assert!(
                close(num(&g[&col]), num(&w["revenue"])),
                "{col}: {g:?} {w:?}"
            );
        }
    }
    // Ordered by the total over the years, largest first.
    let totals: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.iter()
                .filter(|(k, _)| k.ends_with("| revenue"))
                .map(|(_, v)| num(v))
                .sum()
        })
        .collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
}

#[test]
fn drill_across_facts_does_not_fan_out() {
    let (rows, _) = cube(&[
        "--measures",
        "revenue,tickets,complaints,complaint_rate,contacts,conversions",
        "--rows",
        "geography.region",
    ]);
    let got = by(&rows, "geography.region");
    let sales = sql(SALES_BY_REGION);
    let tickets = sql(
        "SELECT COALESCE(r.region, 'Unknown') AS region, COUNT(*) AS tickets, \
         SUM(CASE WHEN t.is_complaint THEN 1 ELSE 0 END) AS complaints FROM fact_ticket t \
         LEFT JOIN dim_customer c ON c.customer_key = t.customer_key \
         LEFT JOIN dim_region r ON r.region_key = c.region_key GROUP BY 1",
    );
    let responses = sql(
        "SELECT COALESCE(r.region, 'Unknown') AS region, SUM(x.sent) AS contacts, \
         SUM(x.converted) AS conversions FROM fact_campaign_response x \
         LEFT JOIN dim_customer c ON c.customer_key = x.customer_key \
         LEFT JOIN dim_region r ON r.region_key = c.region_key GROUP BY 1",
    );
    for w in &sales {
        assert!(close(
            num(&got[&text(w, "region")]["revenue"]),
            num(&w["revenue"])
        ));
    }
    for w in &tickets {
        let g = &got[&text(w, "region")];
        assert_eq!(num(&g["tickets"]), num(&w["tickets"]));
        assert_eq!(num(&g["complaints"]), num(&w["complaints"]));
        let orders = sales
            .iter()
            .find(|s| text(s, "region") == text(w, "region"))
            .map(|s| num(&s["orders"]));
        if let Some(o) = orders {
            let rate = (num(&w["complaints"]) / o * 10000.0).round() / 100.0;
            assert!(close(num(&g["complaint_rate"]), rate));
        }
    }
    for w in &responses {
        let g = &got[&text(w, "region")];
        assert_eq!(num(&g["contacts"]), num(&w["contacts"]));
        assert_eq!(num(&g["conversions"]), num(&w["conversions"]));
    }
}

#[test]
fn time_intelligence_matches_sql() {
    let monthly: HashMap<String, f64> = sql(
        "SELECT d.year_month AS m, SUM(f.revenue) AS revenue FROM fact_sales f \
         JOIN dim_date d ON d.date_key = f.date_key GROUP BY d.year_month",
    )
    .iter()
    .map(|r| (text(r, "m"), num(&r["revenue"])))
    .collect();
    let (rows, _) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "time.month",
        "--slice",
        "time.year=2025",
        "--compare",
        "yoy",
    ]);
    assert_eq!(rows.len(), 12);
    for r in &rows {
        let m = text(r, "time.month");
        let prev = format!("2024{}", &m[4..]);
        assert!(close(num(&r["revenue"]), monthly[&m]));
        assert!(close(num(&r["revenue last year"]), monthly[&prev]), "{r:?}");
        let pct = ((monthly[&m] - monthly[&prev]) / monthly[&prev] * 10000.0).round() / 100.0;
        assert!(close(num(&r["revenue change %"]), pct), "{r:?}");
    }
    let (rows, _) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "time.month",
        "--slice",
        "time.year=2025",
        "--ytd",
        "--rolling",
        "3",
    ]);
    let mut acc = 0.0;
    for r in &rows {
        let m = text(r, "time.month");
        acc += monthly[&m];
        assert!(
            close(num(&r["revenue ytd"]), (acc * 100.0).round() / 100.0),
            "{r:?}"
        );
        let month: u32 = m[5..].parse().unwrap();
        let window: f64 = (0..3)
            .map(|i| {
                let (y, mm) = if month > i {
                    (2025, month - i)
                } else {
                    (2024, month + 12 - i)
                };
                monthly.get(&format!("{y}-{mm:02}")).copied().unwrap_or(0.0)
            })
            .sum();
        assert!(
            close(
                num(&r["revenue rolling 3"]),
                (window * 100.0).round() / 100.0
            ),
            "{r:?}"
        );
    }
}

#[test]
fn time_comparison_reads_the_facts_once_and_keeps_filtered_totals() {
    let monthly: HashMap<String, f64> = sql(
        "SELECT d.year_month AS m, SUM(f.revenue) AS revenue FROM fact_sales f \
         JOIN dim_date d ON d.date_key = f.date_key GROUP BY d.year_month",
    )
    .iter()
    .map(|r| (text(r, "m"), num(&r["revenue"])))
    .collect();
    // Every cell lies within one month: the 2025 cells come from the same statement as
    // the 2024 ones they are compared with.
    let (rows, stderr) = cube(&[
        "--measures",
        "revenue,orders",
        "--rows",
        "time.month",
        "--slice",
        "time.year=2025",
        "--compare",
        "yoy",
        "--explain",
    ]);
    assert_eq!(rows.len(), 12);
    assert!(stderr.contains("-- query 1"), "{stderr}");
    assert!(!stderr.contains("-- query 2"), "{stderr}");
    for r in &rows {
        let m = text(r, "time.month");
        assert!(m.starts_with("2025-"), "{r:?}");
        assert!(close(num(&r["revenue"]), monthly[&m]));
    }
    // With totals the total is over 2025 only, so the filtered statement runs as well.
    let (rows, stderr) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "time.month",
        "--slice",
        "time.year=2025",
        "--compare",
        "yoy",
        "--totals",
        "--explain",
    ]);
    assert_eq!(rows.len(), 13);
    assert!(stderr.contains("-- query 2"), "{stderr}");
    let y2025: f64 = monthly
        .iter()
        .filter(|(m, _)| m.starts_with("2025-"))
        .map(|(_, v)| v)
        .sum();
    let all = by(&rows, "time.month");
    assert!(close(
        num(&all["All"]["revenue"]),
        (y2025 * 100.0).round() / 100.0
    ));
}

#[test]
fn calendar_filters_narrow_the_date_keys_read() {
    let (rows, stderr) = cube(&[
        "--measures",
        "revenue,order_lines",
        "--rows",
        "geography.region",
        "--dice",
        "time.month between 2024-11 and 2025-02",
        "--totals",
        "--explain",
    ]);
    assert!(
        stderr.contains("f.\"date_key\" >= (SELECT MIN("),
        "{stderr}"
    );
    let want = sql(
        "SELECT COALESCE(r.region, 'Unknown') AS region, SUM(f.revenue) AS revenue, \
         COUNT(*) AS n FROM fact_sales f LEFT JOIN dim_region r ON r.region_key = f.region_key \
         JOIN dim_date d ON d.date_key = f.date_key \
         WHERE d.year_month BETWEEN '2024-11' AND '2025-02' GROUP BY 1",
    );
    let got = by(&rows, "geography.region");
    assert_eq!(got.len(), want.len() + 1);
    for w in &want {
        let g = &got[&text(w, "region")];
        assert!(close(num(&g["revenue"]), num(&w["revenue"])), "{g:?} {w:?}");
        assert_eq!(num(&g["order_lines"]), num(&w["n"]));
    }
    // A filter that keeps `Unknown` keeps fact rows without a calendar row: no range.
    let (_, stderr) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "geography.region",
        "--dice",
        "time.year not in (2023)",
        "--explain",
    ]);
    assert!(!stderr.contains("SELECT MIN("), "{stderr}");
}

#[test]
fn share_and_rank_within_parent() {
    let (rows, _) = cube(&[
        "--measures",
        "revenue",
        "--rows",
        "geography.country",
        "--share-of-parent",
        "--rank-within-parent",
    ]);
    let want = sql(
        "SELECT r.region, r.country, SUM(f.revenue) AS revenue FROM fact_sales f \
         JOIN dim_region r ON r.region_key = f.region_key GROUP BY r.region, r.country",
    );
    let mut region_total: HashMap<String, f64> = HashMap::new();
    for w in &want {
        *region_total.entry(text(w, "region")).or_default() += num(&w["revenue"]);
    }
    let got = by(&rows, "geography.country");
    for w in &want {
        let g = &got[&text(w, "country")];
        let share = num(&w["revenue"]) / region_total[&text(w, "region")] * 100.0;
        assert!(close(
            num(&g["revenue % of parent"]),
            (share * 100.0).round() / 100.0
        ));
        let rank = 1 + want
            .iter()
            .filter(|o| {
                text(o, "region") == text(w, "region") && num(&o["revenue"]) > num(&w["revenue"])
            })
            .count();
        assert_eq!(num(&g["revenue rank"]) as usize, rank, "{g:?}");
    }
}

#[test]
fn drill_through_lists_fact_rows_with_count() {
    let w = warehouse().to_str().unwrap();
    let r = crmcube(&[
        "cube",
        "query",
        "--warehouse",
        w,
        "--measures",
        "revenue",
        "--slice",
        "geography.country=DE",
        "--slice",
        "time.month=2025-03",
        "--through",
        "--limit",
        "5",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let n = sql("SELECT COUNT(*) AS n FROM fact_sales f JOIN dim_region r ON r.region_key = f.region_key \
         JOIN dim_date d ON d.date_key = f.date_key WHERE r.country_code = 'DE' AND d.year_month = '2025-03'");
    let n = num(&n[0]["n"]) as usize;
    assert!(n > 5);
    assert!(
        r.stderr.contains(&format!("showing 5 of {n} rows")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.lines().count(), 6);
    assert!(r.stdout.lines().skip(1).all(|l| l.contains(",2025")));
}

#[test]
fn totals_cube_and_parquet_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cells.parquet");
    let w = warehouse().to_str().unwrap();
    let r = crmcube(&[
        "cube",
        "query",
        "--warehouse",
        w,
        "--measures",
        "revenue,customers",
        "--rows",
        "geography.region,time.year",
        "--totals",
        "cube",
        "--format",
        "parquet",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let back = query_data(
        tmp.path(),
        "SELECT * FROM cells WHERE \"geography.region\" = 'All' ORDER BY \"time.year\"",
    );
    let years = sql("SELECT CAST(d.year AS VARCHAR) AS y, SUM(revenue) AS revenue, COUNT(DISTINCT c.customer_id) AS customers \
         FROM fact_sales f JOIN dim_date d ON d.date_key = f.date_key \
         LEFT JOIN dim_customer c ON c.customer_key = f.customer_key GROUP BY 1 ORDER BY 1");
    assert_eq!(back.len(), years.len() + 1);
    for (b, y) in back.iter().zip(&years) {
        assert_eq!(text(b, "time.year"), text(y, "y"));
        assert!(close(num(&b["revenue"]), num(&y["revenue"])));
        assert_eq!(num(&b["customers"]), num(&y["customers"]));
    }
    assert!(back.iter().all(|r| !r.values().any(Value::is_null)));
}

fn query_data(dir: &Path, q: &str) -> Vec<Row> {
    let r = crmcube(&[
        "sql",
        "--data",
        dir.to_str().unwrap(),
        "--format",
        "json",
        q,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_object().unwrap().clone())
        .collect()
}

#[test]
fn usage_errors_list_the_choices() {
    let w = warehouse().to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--measures", "revnue"], "measures are revenue, cost"),
        (
            &["--measures", "revenue", "--rows", "geography.countri"],
            "levels are time.year",
        ),
        (
            &[
                "--measures",
                "revenue",
                "--dice",
                "geography.country like DE",
            ],
            "LEVEL in (A,B)",
        ),
        (
            &["--measures", "tickets", "--rows", "product.category"],
            "has no `product` dimension",
        ),
        (
            &["--measures", "revenue", "--rows", "customer.rfm_segment"],
            "customer_scores",
        ),
    ];
    for (args, msg) in cases {
        let mut full = vec!["cube", "query", "--warehouse", w];
        full.extend_from_slice(args);
        let r = crmcube(&full);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(msg), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn describe_and_model_errors() {
    let w = warehouse().to_str().unwrap();
    let r = crmcube(&["cube", "describe", "--warehouse", w, "--format", "csv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r
        .stdout
        .contains("hierarchy,geography.geography,,region > country > city"));
    assert!(r.stdout.contains("level,customer.rfm_segment,"));
    assert!(r.stdout.contains("unavailable: no table customer_scores"));
    assert!(r
        .stdout
        .contains("measure,margin_pct,ratio,gross_profit / revenue * 100"));
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("cube.yaml");
    let text = std::fs::read_to_string(repo_root().join("schemas/cube.yaml"))
        .unwrap()
        .replace("column: country, code", "column: countri, code");
    std::fs::write(&bad, text).unwrap();
    let r = crmcube(&["cube", "describe", "--model", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(&format!(
            "{}: dimensions.geography.levels.country.column: column \"countri\" not in dim_region",
            bad.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn distinct_counts_under_totals_are_staged() {
    // CUBE of region x year: the distinct counts run as staged statements (distinct
    // pairs first, then one count per grouping set) and equal plain COUNT(DISTINCT).
    let (rows, stderr) = cube(&[
        "--measures",
        "orders,customers,revenue",
        "--rows",
        "geography.region,time.year",
        "--totals",
        "cube",
        "--explain",
    ]);
    assert!(stderr.contains("-- stage _cube_stage_"), "{stderr}");
    let counts = |group: &str| -> HashMap<String, (f64, f64)> {
        let q = format!(
            "SELECT {group} AS k, COUNT(DISTINCT f.order_id) AS orders, \
             COUNT(DISTINCT c.customer_id) AS customers FROM fact_sales f \
             LEFT JOIN dim_region r ON r.region_key = f.region_key \
             LEFT JOIN dim_date d ON d.date_key = f.date_key \
             LEFT JOIN dim_customer c ON c.customer_key = f.customer_key GROUP BY 1"
        );
        sql(&q)
            .iter()
            .map(|w| (text(w, "k"), (num(&w["orders"]), num(&w["customers"]))))
            .collect()
    };
    let by_region = counts("COALESCE(r.region, 'Unknown')");
    let by_year = counts("COALESCE(CAST(d.year AS VARCHAR), 'Unknown')");
    let by_both = counts(
        "COALESCE(r.region, 'Unknown') || '/' || COALESCE(CAST(d.year AS VARCHAR), 'Unknown')",
    );
    let total = counts("'All'");
    let mut seen = 0;
    for r in &rows {
        let (region, year) = (text(r, "geography.region"), text(r, "time.year"));
        let want = match (region.as_str(), year.as_str()) {
            ("All", "All") => total["All"],
            ("All", y) => by_year[y],
            (g, "All") => by_region[g],
            (g, y) => by_both[&format!("{g}/{y}")],
        };
        assert_eq!((num(&r["orders"]), num(&r["customers"])), want, "{r:?}");
        seen += 1;
    }
    assert_eq!(
        seen,
        by_both.len() + by_region.len() + by_year.len() + 1,
        "every cell and subtotal once"
    );
}

#[test]
fn repeat_customers_under_totals_are_staged_and_recounted() {
    // Repeat customers by segment with the grand total: the total recounts customers
    // over all segments (a customer who changed segment counts once), it is not a sum.
    let (rows, stderr) = cube(&[
        "--measures",
        "repeat_customers,customers",
        "--rows",
        "customer.segment",
        "--totals",
        "--explain",
    ]);
    assert!(stderr.contains("-- stage _cube_stage_"), "{stderr}");
    let per = |group: &str| -> HashMap<String, (f64, f64)> {
        let q = format!(
            "SELECT k, SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS repeat, COUNT(*) AS customers \
             FROM (SELECT {group} AS k, c.customer_id, COUNT(DISTINCT f.order_id) AS n \
             FROM fact_sales f JOIN dim_customer c ON c.customer_key = f.customer_key \
             GROUP BY 1, 2) AS per GROUP BY k"
        );
        sql(&q)
            .iter()
            .map(|w| (text(w, "k"), (num(&w["repeat"]), num(&w["customers"]))))
            .collect()
    };
    let by_segment = per("COALESCE(c.segment, 'Unknown')");
    let total = per("'All'");
    assert_eq!(rows.len(), by_segment.len() + 1);
    for r in &rows {
        let s = text(r, "customer.segment");
        let want = if s == "All" {
            total["All"]
        } else {
            by_segment[&s]
        };
        assert_eq!(
            (num(&r["repeat_customers"]), num(&r["customers"])),
            want,
            "{r:?}"
        );
    }
}

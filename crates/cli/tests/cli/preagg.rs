//! Pre-aggregations: `crmcube cube materialize` and the planner's use of them. Every
//! golden query gives the same answer with and without them; a stale one is never used.

use crate::common::{crmcube, ingest_ok, num, query, repo_root, Run};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A warehouse of sample_data with its pre-aggregations built, shared by the tests here.
fn warehouse() -> &'static Path {
    static WH: OnceLock<PathBuf> = OnceLock::new();
    WH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let wh = dir.join("wh");
        ingest_ok(&repo_root().join("sample_data"), &wh);
        let report = materialize(&wh, &[]);
        for p in report["pre_aggregations"].as_array().expect("array") {
            assert_eq!(p["build"], "full", "{p}");
            assert!(num(&p["rows"]) > 0.0, "{p}");
        }
        wh
    })
}

/// Runs `cube materialize --format json` and returns its report.
fn materialize(wh: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "cube",
        "materialize",
        "--warehouse",
        s(wh),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = crmcube(&args);
    assert_eq!(r.code, 0, "materialize failed: {}", r.stderr);
    serde_json::from_str(r.stdout.trim()).expect("json report")
}

fn entry<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["pre_aggregations"]
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report}"))
}

fn cube_query(wh: &Path, args: &[&str]) -> Run {
    let mut full = vec!["cube", "query", "--warehouse", s(wh), "--format", "csv"];
    full.extend_from_slice(args);
    let r = crmcube(&full);
    assert_eq!(r.code, 0, "cube query {args:?} failed: {}", r.stderr);
    r
}

/// The answer with pre-aggregations (and --explain), and without them.
fn both(wh: &Path, args: &[&str]) -> (Run, Run) {
    let mut with = args.to_vec();
    with.push("--explain");
    let mut without = with.clone();
    without.push("--no-preagg");
    (cube_query(wh, &with), cube_query(wh, &without))
}

/// Both answers, after checking they are equal and not empty.
fn same_answer(wh: &Path, args: &[&str]) -> (Run, Run) {
    let (with, without) = both(wh, args);
    assert!(
        with.stdout == without.stdout,
        "{args:?} differs:\nwith pre-aggregations:\n{}\n{}\nwithout:\n{}",
        with.stdout,
        with.stderr,
        without.stdout
    );
    assert!(with.stdout.lines().count() > 1, "{args:?}: empty answer");
    (with, without)
}

/// The `--explain` line saying where fact `fact` was read from.
fn source_of<'a>(explain: &'a str, fact: &str) -> &'a str {
    explain
        .lines()
        .find(|l| l.starts_with(&format!("-- {fact} (")))
        .unwrap_or_else(|| panic!("no source line for {fact} in:\n{explain}"))
}

/// The golden queries of docs/cube.md and tests/cli/cube.rs, and more.
#[rustfmt::skip]
const GOLDEN: &[&[&str]] = &[
    &["--measures", "revenue,customers,orders,margin_pct", "--rows", "geography.region", "--totals"],
    &["--measures", "revenue,customers,orders,margin_pct,avg_order_value", "--rows", "geography.region", "--totals"],
    &["--measures", "revenue", "--rows", "channel.channel_group,time.year", "--grouping-sets", "channel.channel_group;time.year;"],
    &["--measures", "revenue,orders,avg_order_value", "--rows", "geography.country", "--dice", "geography.country in (DE,FR)", "--dice", "time.month between 2025-01 and 2025-06"],
    &["--measures", "revenue,orders", "--rows", "geography.country", "--dice", "geography.country in (DE,France)", "--dice", "time.month between 2025-01 and 2025-06"],
    &["--measures", "revenue", "--rows", "geography.region,time.year", "--slice", "time.year=2025", "--drill", "geography=Europe"],
    &["--measures", "revenue", "--rows", "time.month", "--slice", "time.year=2025", "--rollup", "time"],
    &["--measures", "revenue", "--rows", "time.year", "--rollup", "time"],
    &["--measures", "revenue,customers", "--rows", "geography.region", "--columns", "time.year", "--order", "revenue:desc", "--limit", "3"],
    &["--measures", "revenue", "--rows", "geography.country", "--columns", "time.year", "--order", "revenue:desc", "--limit", "3"],
    &["--measures", "revenue,orders,tickets,complaints,complaint_rate,contacts,response_rate", "--rows", "geography.region"],
    &["--measures", "revenue,tickets,complaints,complaint_rate,contacts,conversions", "--rows", "geography.region"],
    &["--measures", "revenue,customers", "--rows", "time.quarter", "--slice", "time.year=2025", "--compare", "yoy"],
    &["--measures", "revenue", "--rows", "time.month", "--slice", "time.year=2025", "--compare", "yoy"],
    &["--measures", "revenue,margin_pct", "--rows", "time.month", "--dice", "time.month between 2025-01 and 2025-06", "--ytd", "--rolling", "3"],
    &["--measures", "revenue", "--rows", "time.month", "--slice", "time.year=2025", "--ytd", "--rolling", "3"],
    &["--measures", "revenue", "--rows", "geography.country", "--slice", "geography.region=Europe", "--share-of-parent", "--rank-within-parent", "--order", "revenue:desc"],
    &["--measures", "revenue", "--rows", "geography.country", "--share-of-parent", "--rank-within-parent"],
    &["--measures", "customers,orders", "--rows", "time.year", "--approx"],
    &["--measures", "revenue,customers", "--rows", "geography.region,time.year", "--totals", "cube"],
    &["--measures", "repeat_customers,repeat_purchase_rate,revenue_per_customer", "--rows", "customer.segment,time.year", "--totals"],
    &["--measures", "revenue,quantity,order_lines,cost,gross_profit", "--rows", "product.category", "--columns", "channel.channel_group", "--totals"],
    &["--measures", "revenue", "--rows", "product.category", "--drill", "product=Electronics"],
    &["--measures", "tickets,complaints", "--rows", "channel.channel", "--slice", "time.year=2024"],
    &["--measures", "contacts,opens,clicks,conversions,response_rate", "--rows", "campaign.objective", "--totals"],
    &["--measures", "revenue", "--rows", "time.day", "--slice", "time.month=2025-03"],
    &["--measures", "revenue,cost", "--rows", "product.brand", "--dice", "geography.country not in (DE)"],
    &["--measures", "customers", "--rows", "customer.segment", "--dice", "time.year >= 2024"],
    &["--measures", "revenue,customers", "--rows", "time.month", "--slice", "time.year=2024", "--compare", "previous"],
    &["--measures", "orders,customers,repeat_customers", "--rows", "time.iso_week", "--dice", "time.iso_week between 2025-W01 and 2025-W08"],
    &["--measures", "revenue,orders", "--rows", "geography.city", "--slice", "geography.country=DE", "--totals"],
];

#[test]
fn golden_queries_answer_the_same_with_and_without_pre_aggregations() {
    let wh = warehouse();
    let mut used = BTreeSet::new();
    let mut from_pre = 0;
    for args in GOLDEN {
        let (with, without) = same_answer(wh, args);
        for line in without
            .stderr
            .lines()
            .filter(|l| l.starts_with("-- ") && l.contains("): "))
        {
            assert!(line.ends_with("(--no-preagg)"), "{line}");
        }
        for line in with.stderr.lines() {
            if let Some((_, rest)) = line.split_once("): pre-aggregation ") {
                from_pre += 1;
                used.insert(rest.split(' ').next().unwrap_or_default().to_string());
            }
        }
    }
    // Not a vacuous comparison: most facts were read from pre-aggregations, of every kind.
    assert!(
        from_pre >= 25,
        "only {from_pre} facts read from pre-aggregations"
    );
    for p in [
        "sales_monthly",
        "sales_customers_monthly",
        "sales_orders_monthly",
        "tickets_monthly",
        "responses_monthly",
    ] {
        assert!(used.contains(p), "{p} never used: {used:?}");
    }
}

#[test]
fn counted_pre_aggregations_answer_only_their_own_cells() {
    let wh = warehouse();
    // (query, the pre-aggregation expected to answer sales, or None for another source)
    #[rustfmt::skip]
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["--measures", "revenue,orders", "--rows", "geography.country,time.quarter", "--totals"], Some("sales_orders_by_country")),
        (&["--measures", "customers,orders,revenue_per_customer", "--rows", "time.month"], Some("sales_buyers")),
        (&["--measures", "repeat_customers,customers,repeat_purchase_rate", "--rows", "customer.segment,time.year"], Some("sales_buyers")),
        (&["--measures", "revenue,order_lines,avg_order_value", "--rows", "product.subcategory", "--slice", "time.year=2025", "--slice", "geography.region=Europe"], Some("sales_buyers")),
        (&["--measures", "revenue,orders", "--rows", "time.month", "--slice", "time.year=2025", "--compare", "yoy"], Some("sales_buyers")),
        (&["--measures", "orders", "--rows", "time.month", "--dice", "time.month between 2024-03 and 2024-09"], Some("sales_buyers")),
        // Region and country together are the country grain.
        (&["--measures", "orders", "--rows", "geography.region,geography.country"], Some("sales_orders_by_country")),
        // Cells that would have to be added up: elsewhere.
        (&["--measures", "customers", "--rows", "customer.segment", "--dice", "time.year in (2024,2025)"], None),
        (&["--measures", "customers", "--rows", "time.quarter"], None),
        (&["--measures", "orders", "--rows", "geography.country", "--slice", "geography.country=DE"], None),
        (&["--measures", "orders,customers", "--rows", "time.month", "--approx"], None),
    ];
    for (args, want) in cases {
        let (with, _) = same_answer(wh, args);
        let source = source_of(&with.stderr, "sales");
        match want {
            Some(p) => assert!(
                source.contains(&format!("pre-aggregation {p} ")),
                "{args:?}: {source}\n{}",
                with.stderr
            ),
            None => {
                for p in ["sales_buyers", "sales_orders_by_country"] {
                    assert!(
                        !source.contains(&format!("pre-aggregation {p} ")),
                        "{args:?}: {source}"
                    );
                }
            }
        }
    }
    // Why not, in the words of --explain.
    let r = cube_query(
        wh,
        &[
            "--measures",
            "customers",
            "--rows",
            "customer.segment",
            "--dice",
            "time.year in (2024,2025)",
            "--explain",
        ],
    );
    assert!(r.stderr.contains("--   sales_buyers not used: the filter on `time.year` spans several of its cells, and distinct counts are not added up"), "{}", r.stderr);
    let r = cube_query(
        wh,
        &[
            "--measures",
            "orders",
            "--rows",
            "time.quarter",
            "--explain",
        ],
    );
    assert!(r.stderr.contains("--   sales_orders_by_country not used: it counts no grain of exactly time.year, time.quarter (it counts geography.region, geography.country, time.year, time.quarter; geography.region, geography.country; the grand total)"), "{}", r.stderr);
    // Against an independent count: distinct orders per quarter of Germany, and in all.
    let r = cube_query(
        wh,
        &[
            "--measures",
            "orders",
            "--rows",
            "geography.country,time.quarter",
            "--totals",
        ],
    );
    let truth = query(
        wh,
        "SELECT d.year_quarter AS q, COUNT(DISTINCT f.order_id) AS n FROM fact_sales f \
         JOIN dim_date d ON d.date_key = f.date_key JOIN dim_region g ON g.region_key = f.region_key \
         WHERE g.country = 'Germany' GROUP BY 1 ORDER BY 1",
    );
    for t in &truth {
        let line = format!(
            "Germany,{},{}",
            t["q"].as_str().unwrap_or_default(),
            num(&t["n"])
        );
        assert!(
            r.stdout.lines().any(|l| l == line),
            "{line} not in\n{}",
            r.stdout
        );
    }
    let all = query(wh, "SELECT COUNT(DISTINCT order_id) AS n FROM fact_sales");
    let line = format!("All,All,{}", num(&all[0]["n"]));
    assert!(
        r.stdout.lines().any(|l| l == line),
        "{line} not in\n{}",
        r.stdout
    );
}

#[test]
fn explain_names_the_source_and_why_not_the_others() {
    let wh = warehouse();
    let r = cube_query(
        wh,
        &[
            "--measures",
            "revenue,customers,orders,margin_pct",
            "--rows",
            "geography.region",
            "--totals",
            "--explain",
        ],
    );
    let e = &r.stderr;
    assert!(
        source_of(e, "sales").starts_with(
            "-- sales (revenue, customers, orders, gross_profit): pre-aggregation sales_orders_monthly (_preagg_sales_orders_monthly, "
        ),
        "{e}"
    );
    assert!(e.contains("--   sales_monthly not used: `customers` is a distinct count and it keeps no customer.customer values to count it from (distinct counts are never added up)"), "{e}");
    assert!(e.contains("--   sales_customers_monthly not used: `orders` is a distinct count and it keeps no order_id values"), "{e}");
    assert!(
        e.contains(
            "--   tickets_monthly not used: it aggregates tickets, which this query does not read"
        ),
        "{e}"
    );
    assert!(
        e.contains("FROM \"_preagg_sales_orders_monthly\" AS pa"),
        "{e}"
    );
    // Additive measures come from the smallest pre-aggregation that has them.
    let r = cube_query(
        wh,
        &["--measures", "revenue", "--rows", "time.year", "--explain"],
    );
    assert!(
        source_of(&r.stderr, "sales").contains("pre-aggregation sales_customers_monthly"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "--   sales_orders_monthly not used: 8,416 rows, more than sales_customers_monthly"
        ),
        "{}",
        r.stderr
    );
    // A level no pre-aggregation stores: the base facts, and why.
    let r = cube_query(
        wh,
        &[
            "--measures",
            "revenue",
            "--rows",
            "time.day",
            "--slice",
            "time.month=2025-03",
            "--explain",
        ],
    );
    assert!(
        source_of(&r.stderr, "sales")
            .ends_with("base facts fact_sales (no fresh pre-aggregation can answer)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--   sales_monthly not used: level `time.day` is not stored (it stores time.year, time.quarter, time.month, geography.region, geography.country, product.category, product.subcategory, product.brand, channel.channel_group, channel.channel, customer.segment)"), "{}", r.stderr);
    // Drill-through lists fact rows.
    let r = cube_query(
        wh,
        &[
            "--measures",
            "revenue",
            "--slice",
            "geography.country=DE",
            "--through",
            "--limit",
            "2",
            "--explain",
        ],
    );
    assert!(
        r.stderr
            .contains("-- sales: base facts fact_sales (drill-through"),
        "{}",
        r.stderr
    );
}

#[test]
fn distinct_customers_from_a_pre_aggregation_match_the_facts() {
    let wh = warehouse();
    let r = cube_query(
        wh,
        &[
            "--measures",
            "customers",
            "--rows",
            "time.year",
            "--totals",
            "--explain",
        ],
    );
    assert!(
        source_of(&r.stderr, "sales").contains(": pre-aggregation "),
        "{}",
        r.stderr
    );
    let truth = query(
        wh,
        "SELECT CAST(d.year AS VARCHAR) AS y, COUNT(DISTINCT c.customer_id) AS n FROM fact_sales f \
         JOIN dim_date d ON d.date_key = f.date_key \
         LEFT JOIN dim_customer c ON c.customer_key = f.customer_key GROUP BY 1 ORDER BY 1",
    );
    let all = query(
        wh,
        "SELECT COUNT(DISTINCT c.customer_id) AS n FROM fact_sales f \
         LEFT JOIN dim_customer c ON c.customer_key = f.customer_key",
    );
    let mut want = String::from("time.year,customers\n");
    for t in &truth {
        want.push_str(&format!(
            "{},{}\n",
            t["y"].as_str().unwrap_or_default(),
            num(&t["n"])
        ));
    }
    want.push_str(&format!("All,{}\n", num(&all[0]["n"])));
    assert_eq!(r.stdout, want);
    // The pre-aggregation is monthly: adding its months' counts would overcount.
    let monthly = cube_query(wh, &["--measures", "customers", "--rows", "time.month"]);
    let summed: f64 = monthly
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.parse::<f64>().ok())
        .sum();
    assert!(summed > num(&all[0]["n"]) * 1.5, "{summed}");
}

/// Splits sample_data in two loads: the second holds 15 orders (with their lines) of
/// March 2024 and of July 2025; the first everything else.
fn two_loads(dir: &Path) -> (PathBuf, PathBuf) {
    let src = repo_root().join("sample_data");
    let (day1, day2) = (dir.join("day1"), dir.join("day2"));
    std::fs::create_dir_all(&day1).expect("mkdir");
    std::fs::create_dir_all(&day2).expect("mkdir");
    let read = |name: &str| {
        let mut r = csv::Reader::from_path(src.join(name)).expect("csv");
        let h = r.headers().expect("header").clone();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
        (h, rows)
    };
    let (th, tickets) = read("tickets.csv");
    let ti = th.iter().position(|c| c == "order_id").expect("order_id");
    let with_ticket: BTreeSet<&str> = tickets.iter().map(|t| &t[ti]).collect();
    let (oh, orders) = read("orders.csv");
    let (oi, ts) = (
        oh.iter().position(|c| c == "order_id").expect("order_id"),
        oh.iter().position(|c| c == "order_ts").expect("order_ts"),
    );
    let mut held = BTreeSet::new();
    for month in ["2024-03", "2025-07"] {
        held.extend(
            orders
                .iter()
                .filter(|o| o[ts].starts_with(month) && !with_ticket.contains(&o[oi]))
                .take(15)
                .map(|o| o[oi].to_string()),
        );
    }
    assert_eq!(held.len(), 30);
    for entry in std::fs::read_dir(&src).expect("sample_data") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".csv") || name.starts_with('_') {
            continue;
        }
        if name != "orders.csv" && name != "order_lines.csv" {
            std::fs::copy(src.join(&name), day1.join(&name)).expect("copy");
            continue;
        }
        let (h, rows) = read(&name);
        let k = h.iter().position(|c| c == "order_id").expect("order_id");
        for (dir, second) in [(&day1, false), (&day2, true)] {
            let mut w = csv::Writer::from_path(dir.join(&name)).expect("csv");
            w.write_record(&h).expect("write");
            for r in rows.iter().filter(|r| held.contains(&r[k]) == second) {
                w.write_record(r).expect("write");
            }
            w.flush().expect("flush");
        }
    }
    (day1, day2)
}

/// Every row of a table, sorted, as CSV.
fn dump(wh: &Path, table: &str) -> String {
    let n = query(
        wh,
        &format!(
            "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_name = '{table}'"
        ),
    );
    let cols: Vec<String> = (1..=num(&n[0]["n"]) as usize)
        .map(|i| i.to_string())
        .collect();
    let r = crmcube(&[
        "sql",
        "--warehouse",
        s(wh),
        "--format",
        "csv",
        &format!("SELECT * FROM {table} ORDER BY {}", cols.join(", ")),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn a_new_load_makes_pre_aggregations_stale_until_materialized_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (day1, day2) = two_loads(tmp.path());
    let wh = tmp.path().join("wh");
    ingest_ok(&day1, &wh);
    let first = materialize(&wh, &[]);
    assert_eq!(entry(&first, "sales_monthly")["reason"], "first build");
    let q: &[&str] = &[
        "--measures",
        "revenue,customers,orders",
        "--rows",
        "time.year,geography.region",
        "--totals",
    ];
    let (with, _) = both(&wh, q);
    assert!(
        source_of(&with.stderr, "sales").contains(": pre-aggregation sales_orders_monthly"),
        "{}",
        with.stderr
    );

    // New orders: fact_sales moves to version 1, the pre-aggregations were built from 0.
    ingest_ok(&day2, &wh);
    let (with, without) = both(&wh, q);
    assert_eq!(with.stdout, without.stdout);
    let src = source_of(&with.stderr, "sales");
    assert!(
        src.ends_with("base facts fact_sales (no fresh pre-aggregation can answer)"),
        "{}",
        with.stderr
    );
    assert!(
        with.stderr.contains("--   sales_orders_monthly not used: stale: fact_sales is at version 1, it was built from version 0; run `crmcube cube materialize`"),
        "{}",
        with.stderr
    );
    assert!(
        with.stderr.contains("sales is read from the base facts: pre-aggregation sales_orders_monthly would answer but is stale"),
        "{}",
        with.stderr
    );
    // The answer includes the new orders (it is the base facts' answer).
    let orders = query(&wh, "SELECT COUNT(DISTINCT order_id) AS n FROM fact_sales");
    assert!(
        with.stdout
            .contains(&format!(",{}\n", num(&orders[0]["n"]))),
        "{}",
        with.stdout
    );
    // Tickets did not change: their pre-aggregation stays fresh and is used.
    let t = cube_query(
        &wh,
        &["--measures", "tickets", "--rows", "time.year", "--explain"],
    );
    assert!(
        source_of(&t.stderr, "tickets").contains(": pre-aggregation tickets_monthly"),
        "{}",
        t.stderr
    );

    // Materialize again: only the months of the new orders are rebuilt.
    let second = materialize(&wh, &[]);
    for p in [
        "sales_monthly",
        "sales_customers_monthly",
        "sales_orders_monthly",
    ] {
        let e = entry(&second, p);
        assert_eq!(e["build"], "incremental", "{e}");
        assert_eq!(
            e["partitions_rebuilt"],
            serde_json::json!(["2024-03", "2025-07"]),
            "{e}"
        );
    }
    for p in ["tickets_monthly", "responses_monthly"] {
        assert_eq!(entry(&second, p)["build"], "up to date");
    }
    let (with, without) = both(&wh, q);
    assert_eq!(with.stdout, without.stdout);
    assert!(
        source_of(&with.stderr, "sales").contains(": pre-aggregation sales_orders_monthly"),
        "{}",
        with.stderr
    );
    let incremental: Vec<String> = [
        "sales_monthly",
        "sales_customers_monthly",
        "sales_orders_monthly",
    ]
    .iter()
    .map(|p| dump(&wh, &format!("_preagg_{p}")))
    .collect();

    // Nothing changed since: nothing to do, no new version.
    let third = materialize(&wh, &[]);
    assert!(third["version"].is_null(), "{third}");

    // A full rebuild gives the same tables, and so does one load of everything.
    let full = materialize(
        &wh,
        &[
            "--full",
            "--name",
            "sales_monthly,sales_customers_monthly",
            "--name",
            "sales_orders_monthly",
        ],
    );
    assert_eq!(full["pre_aggregations"].as_array().map(Vec::len), Some(3));
    let once = warehouse();
    for (p, inc) in [
        "sales_monthly",
        "sales_customers_monthly",
        "sales_orders_monthly",
    ]
    .iter()
    .zip(&incremental)
    {
        assert_eq!(entry(&full, p)["build"], "full");
        let t = format!("_preagg_{p}");
        assert!(
            dump(&wh, &t) == *inc,
            "{p}: incremental and full builds differ"
        );
        assert!(dump(once, &t) == *inc, "{p}: two loads and one load differ");
    }
}

#[test]
fn a_changed_definition_is_not_used_until_rebuilt() {
    let tmp = tempfile::tempdir().expect("tmp");
    let wh = tmp.path().join("wh");
    ingest_ok(&repo_root().join("sample_data"), &wh);
    materialize(&wh, &["--name", "sales_monthly"]);
    let r = cube_query(
        &wh,
        &["--measures", "revenue", "--rows", "time.year", "--explain"],
    );
    assert!(
        source_of(&r.stderr, "sales").contains(": pre-aggregation sales_monthly"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "--   sales_orders_monthly not used: not built; run `crmcube cube materialize`"
        ),
        "{}",
        r.stderr
    );
    // Revenue now means gross amount: the stored sums no longer match the model.
    let model = tmp.path().join("cube.yaml");
    let text = std::fs::read_to_string(repo_root().join("schemas/cube.yaml"))
        .expect("cube.yaml")
        .replace(
            "revenue: { fact: sales, agg: sum, column: revenue,",
            "revenue: { fact: sales, agg: sum, column: gross_amount,",
        );
    std::fs::write(&model, text).expect("write");
    let m = s(&model);
    let args: &[&str] = &[
        "--model",
        m,
        "--measures",
        "revenue",
        "--rows",
        "product.category",
    ];
    let (with, without) = both(&wh, args);
    assert_eq!(with.stdout, without.stdout);
    assert!(
        with.stderr.contains("--   sales_monthly not used: stale: its definition in the model changed since it was built"),
        "{}",
        with.stderr
    );
    let gross = query(&wh, "SELECT SUM(gross_amount) AS g FROM fact_sales");
    let total: f64 = with
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next()?.parse::<f64>().ok())
        .sum();
    assert!((total - num(&gross[0]["g"])).abs() < 0.05, "{total}");
    let report = materialize(&wh, &["--model", m, "--name", "sales_monthly"]);
    assert_eq!(
        entry(&report, "sales_monthly")["reason"],
        "its definition in the model changed"
    );
    let (with, without) = both(&wh, args);
    assert_eq!(with.stdout, without.stdout);
    assert!(
        source_of(&with.stderr, "sales").contains(": pre-aggregation sales_monthly"),
        "{}",
        with.stderr
    );
}

#[test]
fn materialize_reports_and_refuses_clearly() {
    let wh = warehouse();
    let r = crmcube(&["cube", "materialize", "--help"]);
    assert_eq!(r.code, 0);
    for flag in ["--warehouse", "--name", "--full", "--format", "--model"] {
        assert!(r.stdout.contains(flag), "{flag}: {}", r.stdout);
    }
    // Up to date: a readable report, nothing published.
    let r = crmcube(&["cube", "materialize", "--warehouse", s(wh)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("pre-aggregation "), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("sales_monthly ") && l.contains(" up to date ")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("nothing published"), "{}", r.stdout);
    let r = crmcube(&[
        "cube",
        "materialize",
        "--warehouse",
        s(wh),
        "--name",
        "sales_montly",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("unknown pre-aggregation `sales_montly`; the model declares sales_monthly, "),
        "{}",
        r.stderr
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let r = crmcube(&["cube", "materialize", "--warehouse", s(tmp.path())]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a crmcube warehouse"), "{}", r.stderr);
    // A model error names the file and the key.
    let model = tmp.path().join("cube.yaml");
    let text = std::fs::read_to_string(repo_root().join("schemas/cube.yaml"))
        .expect("cube.yaml")
        .replace(
            "levels: [time.month, geography.country, channel.channel]",
            "levels: [time.month, product.category]",
        );
    std::fs::write(&model, &text).expect("write");
    let r = crmcube(&[
        "cube",
        "materialize",
        "--warehouse",
        s(wh),
        "--model",
        s(&model),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(&format!(
            "{}: pre_aggregations.tickets_monthly.levels: fact \"tickets\" does not reach dimension \"product\"",
            model.display()
        )),
        "{}",
        r.stderr
    );
    // A pre-aggregation needing a table the warehouse lacks is skipped, with the reason.
    let text = std::fs::read_to_string(repo_root().join("schemas/cube.yaml"))
        .expect("cube.yaml")
        .replacen(
            "\npre_aggregations:\n",
            "\npre_aggregations:\n  by_rfm:\n    fact: sales\n    measures: [revenue]\n    levels: [customer.rfm_segment]\n",
            1,
        );
    assert!(
        text.contains("by_rfm:"),
        "schemas/cube.yaml has no pre_aggregations"
    );
    std::fs::write(&model, &text).expect("write");
    let report = materialize(wh, &["--model", s(&model), "--name", "by_rfm"]);
    let e = entry(&report, "by_rfm");
    assert_eq!(e["build"], "skipped");
    assert_eq!(
        e["reason"],
        "table customer_scores is not in this warehouse"
    );
    // describe lists the pre-aggregations and their status.
    let r = crmcube(&["cube", "describe", "--warehouse", s(wh), "--format", "csv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("pre_aggregation,sales_monthly,"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("by time.month"), "{line}");
    assert!(
        line.contains("sales (fact_sales) into _preagg_sales_monthly"),
        "{line}"
    );
    assert!(line.contains("fresh ("), "{line}");
}

#[test]
fn a_nightly_load_with_new_customers_rebuilds_only_its_months() {
    let tmp = tempfile::tempdir().expect("tmp");
    let parts = crate::versions::split_export(tmp.path(), &["2025-12-01"]);
    let wh = tmp.path().join("wh");
    ingest_ok(&parts[0], &wh);
    materialize(&wh, &[]);
    // December brings new customers and new versions of customers (dim_customer
    // changes: rows added, old versions closed), orders, tickets and campaign responses.
    ingest_ok(&parts[1], &wh);
    let report = materialize(&wh, &[]);
    let once = warehouse();
    for p in report["pre_aggregations"].as_array().expect("array") {
        let name = p["name"].as_str().expect("name");
        let t = format!("_preagg_{name}");
        if p["partition_by"].is_null() {
            // Counted ones are rebuilt whole, and equal one load of everything too.
            assert_eq!(p["build"], "full", "{p}");
            assert!(dump(&wh, &t) == dump(once, &t), "{name} differs");
            continue;
        }
        assert_eq!(p["build"], "incremental", "{p}");
        let reason = p["reason"].as_str().expect("reason");
        assert!(
            reason.contains("key(s) of dim_customer changed"),
            "{reason}"
        );
        let rebuilt: Vec<&str> = p["partitions_rebuilt"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(!rebuilt.is_empty(), "{p}");
        assert!(
            rebuilt.iter().all(|m| *m >= "2025-11"),
            "{name}: {rebuilt:?}"
        );
        assert!(
            dump(&wh, &t) == dump(once, &t),
            "{name}: the nightly increment differs from one load of everything"
        );
    }
    // An order in a new year: dim_date grows by that year's days, which no earlier
    // fact row refers to, so only the new month is built.
    let day = tmp.path().join("new-year");
    std::fs::create_dir_all(&day).expect("mkdir");
    std::fs::write(
        day.join("orders.csv"),
        "order_id,customer_id,order_ts,channel,region_id,campaign_id\n\
         O900000001,C0000002,2026-01-15T10:00:00,web,R024,\n",
    )
    .expect("write");
    std::fs::write(
        day.join("order_lines.csv"),
        "order_id,line_no,product_id,quantity,unit_price,discount,returned\n\
         O900000001,1,P00084,2,17.99,0,false\n",
    )
    .expect("write");
    ingest_ok(&day, &wh);
    let report = materialize(&wh, &[]);
    for p in report["pre_aggregations"].as_array().expect("array") {
        if p["partition_by"].is_null() {
            assert_eq!(p["build"], "full", "{p}");
            assert!(
                p["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("not partitioned")),
                "{p}"
            );
            continue;
        }
        assert_eq!(p["build"], "incremental", "{p}");
        let reason = p["reason"].as_str().expect("reason");
        assert!(reason.contains("key(s) of dim_date changed"), "{reason}");
        let want = if p["name"].as_str().is_some_and(|n| n.starts_with("sales")) {
            serde_json::json!(["2026-01"])
        } else {
            serde_json::json!([])
        };
        assert_eq!(p["partitions_rebuilt"], want, "{p}");
    }
    let q: &[&str] = &[
        "--measures",
        "revenue,orders,customers",
        "--rows",
        "time.month",
        "--dice",
        "time.month >= 2025-11",
        "--totals",
    ];
    let (with, without) = both(&wh, q);
    assert_eq!(with.stdout, without.stdout);
    assert!(
        with.stdout.contains("\n2026-01,35.98,1,1\n"),
        "{}",
        with.stdout
    );
    assert!(
        source_of(&with.stderr, "sales").contains(": pre-aggregation "),
        "{}",
        with.stderr
    );
}

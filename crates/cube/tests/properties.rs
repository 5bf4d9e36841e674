//! Property tests: cube answers over generated star data equal a naive computation in
//! plain Rust; additive measures add up along hierarchies, distinct counts and ratios
//! are recomputed at every level.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use crmcube_cube::{
    Catalog, Cube, CubeModel, CubeQuery, Filter, FilterOp, Layout, LevelRef, Status, Totals,
};
use crmcube_model::WarehouseSchema;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// (region, country, code, city) by region_key 1..=6; key 7 is dangling (Unknown).
const REGIONS: [(&str, &str, &str, &str); 6] = [
    ("Europe", "Germany", "DE", "Berlin"),
    ("Europe", "Germany", "DE", "Munich"),
    ("Europe", "France", "FR", "Paris"),
    ("North America", "USA", "US", "Boston"),
    ("North America", "Canada", "CA", "Toronto"),
    ("Asia", "Japan", "JP", "Tokyo"),
];
/// (category, subcategory) by product_key 1..=4.
const PRODUCTS: [(&str, &str); 4] = [
    ("Books", "Novels"),
    ("Books", "Comics"),
    ("Toys", "Puzzles"),
    ("Garden", "Tools"),
];
/// (customer_id, segment, region_key) by customer_key 1..=6 (SCD2: c1 and c2 have two
/// versions); key 7 is dangling.
const CUSTOMERS: [(&str, &str, i64); 6] = [
    ("c1", "consumer", 1),
    ("c1", "business", 1),
    ("c2", "consumer", 3),
    ("c2", "consumer", 4),
    ("c3", "business", 6),
    ("c4", "consumer", 2),
];

fn dates() -> Vec<NaiveDate> {
    [
        (2024, 1, 5),
        (2024, 3, 30),
        (2024, 4, 2),
        (2024, 12, 30),
        (2025, 1, 1),
        (2025, 2, 14),
        (2025, 6, 30),
        (2025, 7, 1),
    ]
    .iter()
    .map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d).unwrap())
    .collect()
}

fn date_key(d: NaiveDate) -> i64 {
    (d.year() * 10000 + d.month() as i32 * 100 + d.day() as i32) as i64
}

#[derive(Debug, Clone)]
struct Sale {
    order: u8,
    date: usize, // index into dates(); dates().len() = dangling
    region: i64,
    product: i64,
    customer: i64,
    quantity: i64,
    revenue_cents: i64,
    cost_cents: i64,
}

#[derive(Debug, Clone)]
struct Ticket {
    date: usize,
    customer: i64,
    complaint: bool,
}

fn sale() -> impl Strategy<Value = Sale> {
    (
        0u8..8,
        0usize..9,
        1i64..8,
        1i64..5,
        1i64..8,
        1i64..5,
        0i64..50_000,
        0i64..30_000,
    )
        .prop_map(
            |(order, date, region, product, customer, quantity, revenue_cents, cost_cents)| Sale {
                order,
                date,
                region,
                product,
                customer,
                quantity,
                revenue_cents,
                cost_cents,
            },
        )
}

fn ticket() -> impl Strategy<Value = Ticket> {
    (0usize..9, 1i64..8, any::<bool>()).prop_map(|(date, customer, complaint)| Ticket {
        date,
        customer,
        complaint,
    })
}

fn strings(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn ints(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn money(v: Vec<i64>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(v.into_iter().map(i128::from).collect::<Vec<_>>())
            .with_precision_and_scale(18, 2)
            .unwrap(),
    )
}

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn order_id(s: &Sale) -> String {
    format!("O{}", s.order)
}

fn session(sales: &[Sale], tickets: &[Ticket]) -> SessionContext {
    let ctx = SessionContext::new();
    let r = |f: fn(&(&'static str, &'static str, &'static str, &'static str)) -> &'static str| {
        strings(REGIONS.iter().map(|x| f(x).to_string()).collect())
    };
    ctx.register_batch(
        "dim_region",
        batch(vec![
            ("region_key", ints((1..=6).collect())),
            ("region", r(|x| x.0)),
            ("country", r(|x| x.1)),
            ("country_code", r(|x| x.2)),
            ("city", r(|x| x.3)),
        ]),
    )
    .unwrap();
    ctx.register_batch(
        "dim_product",
        batch(vec![
            ("product_key", ints((1..=4).collect())),
            (
                "category",
                strings(PRODUCTS.iter().map(|p| p.0.into()).collect()),
            ),
            (
                "subcategory",
                strings(PRODUCTS.iter().map(|p| p.1.into()).collect()),
            ),
        ]),
    )
    .unwrap();
    ctx.register_batch(
        "dim_customer",
        batch(vec![
            ("customer_key", ints((1..=6).collect())),
            (
                "customer_id",
                strings(CUSTOMERS.iter().map(|c| c.0.into()).collect()),
            ),
            (
                "segment",
                strings(CUSTOMERS.iter().map(|c| c.1.into()).collect()),
            ),
            ("region_key", ints(CUSTOMERS.iter().map(|c| c.2).collect())),
        ]),
    )
    .unwrap();
    let ds = dates();
    ctx.register_batch(
        "dim_date",
        batch(vec![
            ("date_key", ints(ds.iter().map(|d| date_key(*d)).collect())),
            ("year", ints(ds.iter().map(|d| d.year() as i64).collect())),
            (
                "year_quarter",
                strings(ds.iter().map(|d| quarter(*d)).collect()),
            ),
            (
                "year_month",
                strings(ds.iter().map(|d| d.format("%Y-%m").to_string()).collect()),
            ),
            (
                "date",
                Arc::new(Date32Array::from(
                    ds.iter()
                        .map(|d| {
                            (*d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
                        })
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "iso_year",
                ints(ds.iter().map(|d| d.iso_week().year() as i64).collect()),
            ),
            (
                "iso_week",
                ints(ds.iter().map(|d| d.iso_week().week() as i64).collect()),
            ),
        ]),
    )
    .unwrap();
    let dk = |i: usize| ds.get(i).map(|d| date_key(*d)).unwrap_or(19000101);
    ctx.register_batch(
        "fact_sales",
        batch(vec![
            ("order_id", strings(sales.iter().map(order_id).collect())),
            ("date_key", ints(sales.iter().map(|s| dk(s.date)).collect())),
            ("region_key", ints(sales.iter().map(|s| s.region).collect())),
            (
                "product_key",
                ints(sales.iter().map(|s| s.product).collect()),
            ),
            (
                "customer_key",
                ints(sales.iter().map(|s| s.customer).collect()),
            ),
            ("quantity", ints(sales.iter().map(|s| s.quantity).collect())),
            (
                "revenue",
                money(sales.iter().map(|s| s.revenue_cents).collect()),
            ),
            ("cost", money(sales.iter().map(|s| s.cost_cents).collect())),
            (
                "gross_profit",
                money(
                    sales
                        .iter()
                        .map(|s| s.revenue_cents - s.cost_cents)
                        .collect(),
                ),
            ),
        ]),
    )
    .unwrap();
    ctx.register_batch(
        "fact_ticket",
        batch(vec![
            (
                "date_key",
                ints(tickets.iter().map(|t| dk(t.date)).collect()),
            ),
            (
                "customer_key",
                ints(tickets.iter().map(|t| t.customer).collect()),
            ),
            (
                "is_complaint",
                Arc::new(BooleanArray::from(
                    tickets.iter().map(|t| t.complaint).collect::<Vec<_>>(),
                )),
            ),
        ]),
    )
    .unwrap();
    ctx
}

fn quarter(d: NaiveDate) -> String {
    format!("{}-Q{}", d.year(), (d.month() - 1) / 3 + 1)
}

/// The member of `level` a fact row belongs to, computed from the constants above.
fn label(
    level: &str,
    date: usize,
    region: Option<i64>,
    product: Option<i64>,
    customer: i64,
) -> String {
    let unknown = || "Unknown".to_string();
    let ds = dates();
    let reg = region.and_then(|k| REGIONS.get((k - 1) as usize));
    let cust = CUSTOMERS.get((customer - 1) as usize);
    match level {
        "time.year" => ds
            .get(date)
            .map(|d| d.year().to_string())
            .unwrap_or_else(unknown),
        "time.quarter" => ds.get(date).map(|d| quarter(*d)).unwrap_or_else(unknown),
        "time.month" => ds
            .get(date)
            .map(|d| d.format("%Y-%m").to_string())
            .unwrap_or_else(unknown),
        "geography.region" => reg.map(|r| r.0.to_string()).unwrap_or_else(unknown),
        "geography.country" => reg.map(|r| r.1.to_string()).unwrap_or_else(unknown),
        "geography.city" => reg.map(|r| r.3.to_string()).unwrap_or_else(unknown),
        "product.category" => product
            .and_then(|k| PRODUCTS.get((k - 1) as usize))
            .map(|p| p.0.to_string())
            .unwrap_or_else(unknown),
        "customer.segment" => cust.map(|c| c.1.to_string()).unwrap_or_else(unknown),
        other => panic!("no naive label for {other}"),
    }
}

#[derive(Default, Debug)]
struct Naive {
    revenue: i64,
    gross_profit: i64,
    quantity: i64,
    lines: i64,
    orders: BTreeSet<String>,
    customers: BTreeMap<String, BTreeSet<String>>,
    tickets: i64,
    complaints: i64,
}

const LEVELS: [&str; 7] = [
    "geography.region",
    "geography.country",
    "time.year",
    "time.quarter",
    "product.category",
    "customer.segment",
    "time.month",
];
const MEASURES: [&str; 9] = [
    "revenue",
    "quantity",
    "order_lines",
    "orders",
    "customers",
    "margin_pct",
    "avg_order_value",
    "repeat_customers",
    "revenue_per_customer",
];

#[derive(Debug, Clone)]
struct Question {
    levels: Vec<usize>,
    totals: u8,
    filter: Option<(usize, usize)>,
    with_tickets: bool,
}

fn question() -> impl Strategy<Value = Question> {
    (
        proptest::sample::subsequence((0..LEVELS.len()).collect::<Vec<_>>(), 0..=2),
        0u8..3,
        proptest::option::of((0..LEVELS.len(), 0usize..4)),
        any::<bool>(),
    )
        .prop_map(|(levels, totals, filter, with_tickets)| Question {
            levels,
            totals,
            filter,
            with_tickets,
        })
}

fn model() -> CubeModel {
    CubeModel::builtin(&WarehouseSchema::builtin().unwrap()).unwrap()
}

fn level_ref(s: &str) -> LevelRef {
    let (d, l) = s.split_once('.').unwrap();
    LevelRef {
        dimension: d.into(),
        level: l.into(),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Cells of an answer: labels -> column name -> value.
type Cells = HashMap<Vec<String>, HashMap<String, Option<f64>>>;

/// Runs the query and returns cells: labels -> column name -> value.
fn answer(ctx: &SessionContext, q: &CubeQuery) -> (Vec<String>, Cells) {
    let (names, cells, _) = answer_with(ctx, q, None);
    (names, cells)
}

/// Runs the query with a cube (by default the built-in model over the base facts);
/// also returns where each fact was read from.
fn answer_with(
    ctx: &SessionContext,
    q: &CubeQuery,
    cube: Option<&Cube>,
) -> (Vec<String>, Cells, Vec<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let own;
    let cube = match cube {
        Some(c) => c,
        None => {
            own = rt.block_on(Cube::open(model(), ctx)).unwrap();
            &own
        }
    };
    let r = rt.block_on(cube.run(ctx, q)).unwrap();
    assert_eq!(r.shown_rows, r.total_rows);
    // Staged distinct counts leave no table behind.
    let tables = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    assert!(
        !tables.iter().any(|t| t.starts_with("_cube_stage_")),
        "stage tables left: {tables:?}"
    );
    let nlabels = q.rows.len() + q.columns.len();
    let mut out = HashMap::new();
    let names: Vec<String> = r.schema.fields().iter().map(|f| f.name().clone()).collect();
    for b in &r.batches {
        for row in 0..b.num_rows() {
            let key: Vec<String> = (0..nlabels)
                .map(|i| {
                    b.column(i)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap()
                        .value(row)
                        .to_string()
                })
                .collect();
            let mut vals = HashMap::new();
            for (j, name) in names.iter().enumerate().skip(nlabels) {
                let col = arrow::compute::cast(b.column(j), &DataType::Float64).unwrap();
                let col = col.as_any().downcast_ref::<Float64Array>().unwrap();
                vals.insert(name.clone(), col.is_valid(row).then(|| col.value(row)));
            }
            assert!(
                out.insert(key.clone(), vals).is_none(),
                "duplicate row {key:?}"
            );
        }
    }
    (names, out, r.sources)
}

fn grouping_sets(n: usize, totals: Totals) -> Vec<Vec<bool>> {
    match totals {
        Totals::None => vec![vec![true; n]],
        Totals::Rollup => (0..=n)
            .rev()
            .map(|k| (0..n).map(|i| i < k).collect())
            .collect(),
        Totals::Cube => (0..(1usize << n))
            .map(|m| (0..n).map(|i| m & (1 << i) != 0).collect())
            .collect(),
    }
}

fn check(sales: &[Sale], tickets: &[Ticket], qn: &Question) -> Result<(), TestCaseError> {
    let levels: Vec<&str> = qn.levels.iter().map(|i| LEVELS[*i]).collect();
    // Tickets reach geography through the customer, but not products.
    let with_tickets = qn.with_tickets
        && !levels.contains(&"product.category")
        && qn
            .filter
            .map(|(l, _)| LEVELS[l] != "product.category")
            .unwrap_or(true);
    let totals = match qn.totals {
        0 => Totals::None,
        1 => Totals::Rollup,
        _ => Totals::Cube,
    };
    let mut measures: Vec<String> = MEASURES.iter().map(|m| m.to_string()).collect();
    if with_tickets {
        measures.push("tickets".into());
        measures.push("complaints".into());
        measures.push("complaint_rate".into());
    }
    // A filter: keep one member of a level, picked from a fixed list of candidates.
    let filter = qn.filter.map(|(l, m)| {
        let level = LEVELS[l];
        let candidates: Vec<String> = match level {
            "geography.region" => vec!["Europe", "North America", "Unknown", "Asia"],
            "geography.country" => vec!["DE", "France", "USA", "Unknown"],
            "time.year" => vec!["2024", "2025", "Unknown", "2024"],
            "time.quarter" => vec!["2024-Q1", "2025-Q3", "2025-Q1", "Unknown"],
            "time.month" => vec!["2024-01", "2025-02", "2025-07", "Unknown"],
            "product.category" => vec!["Books", "Toys", "Garden", "Unknown"],
            _ => vec!["consumer", "business", "Unknown", "consumer"],
        }
        .into_iter()
        .map(String::from)
        .collect();
        (level, candidates[m % candidates.len()].clone())
    });
    let q = CubeQuery {
        measures: measures.clone(),
        rows: levels.iter().map(|l| level_ref(l)).collect(),
        totals,
        filters: filter
            .iter()
            .map(|(l, v)| Filter {
                level: level_ref(l),
                op: FilterOp::In(vec![v.clone()]),
            })
            .collect(),
        ..Default::default()
    };
    let ctx = session(sales, tickets);
    let (_, got) = answer(&ctx, &q);

    // Naive: every fact row, every grouping set.
    let passes = |l: &str, member: &str| -> bool {
        match filter.as_ref() {
            Some((fl, v)) if *fl == l => {
                member == v
                    || (l == "geography.country"
                        && REGIONS.iter().any(|r| r.2 == v && r.1 == member))
            }
            _ => true,
        }
    };
    let sets = grouping_sets(levels.len(), totals);
    let mut naive: HashMap<Vec<String>, Naive> = HashMap::new();
    let key_of = |set: &Vec<bool>, labels: &[String]| -> Vec<String> {
        labels
            .iter()
            .zip(set)
            .map(|(l, keep)| if *keep { l.clone() } else { "All".into() })
            .collect()
    };
    for s in sales {
        let lab = |l: &str| label(l, s.date, Some(s.region), Some(s.product), s.customer);
        if let Some((fl, _)) = &filter {
            if !passes(fl, &lab(fl)) {
                continue;
            }
        }
        let labels: Vec<String> = levels.iter().map(|l| lab(l)).collect();
        for set in &sets {
            let n = naive.entry(key_of(set, &labels)).or_default();
            n.revenue += s.revenue_cents;
            n.gross_profit += s.revenue_cents - s.cost_cents;
            n.quantity += s.quantity;
            n.lines += 1;
            n.orders.insert(order_id(s));
            if let Some(c) = CUSTOMERS.get((s.customer - 1) as usize) {
                n.customers
                    .entry(c.0.to_string())
                    .or_default()
                    .insert(order_id(s));
            }
        }
    }
    if with_tickets {
        for t in tickets {
            let region = CUSTOMERS.get((t.customer - 1) as usize).map(|c| c.2);
            let lab = |l: &str| label(l, t.date, region, None, t.customer);
            if let Some((fl, _)) = &filter {
                if !passes(fl, &lab(fl)) {
                    continue;
                }
            }
            let labels: Vec<String> = levels.iter().map(|l| lab(l)).collect();
            for set in &sets {
                let n = naive.entry(key_of(set, &labels)).or_default();
                n.tickets += 1;
                n.complaints += i64::from(t.complaint);
            }
        }
    }
    for (key, n) in &naive {
        let Some(row) = got.get(key) else {
            return Err(TestCaseError::fail(format!(
                "cube lacks row {key:?}; has {:?}",
                got.keys().collect::<Vec<_>>()
            )));
        };
        let customers = n.customers.len() as f64;
        let orders = n.orders.len() as f64;
        let revenue = n.revenue as f64 / 100.0;
        let ratio = |a: f64, b: f64, scale: f64| (b != 0.0).then(|| round2(a / b * scale));
        let mut expected: Vec<(&str, Option<f64>)> = vec![
            ("revenue", Some(revenue)),
            ("quantity", Some(n.quantity as f64)),
            ("order_lines", Some(n.lines as f64)),
            ("orders", Some(orders)),
            ("customers", Some(customers)),
            (
                "margin_pct",
                ratio(n.gross_profit as f64 / 100.0, revenue, 100.0),
            ),
            ("avg_order_value", ratio(revenue, orders, 1.0)),
            (
                "repeat_customers",
                Some(n.customers.values().filter(|o| o.len() >= 2).count() as f64),
            ),
            ("revenue_per_customer", ratio(revenue, customers, 1.0)),
        ];
        if with_tickets {
            expected.push(("tickets", Some(n.tickets as f64)));
            expected.push(("complaints", Some(n.complaints as f64)));
            expected.push(("complaint_rate", ratio(n.complaints as f64, orders, 100.0)));
        }
        for (m, want) in expected {
            let have = row.get(m).copied().flatten();
            let same = match (have, want) {
                (Some(a), Some(b)) => (a - b).abs() < 0.006,
                (None, None) => true,
                _ => false,
            };
            prop_assert!(same, "{m} at {key:?}: cube {have:?}, naive {want:?}");
        }
    }
    for (key, row) in &got {
        if !naive.contains_key(key) {
            // Only an empty grand total may appear without fact rows.
            prop_assert!(
                key.iter().all(|k| k == "All")
                    && row.get("order_lines").copied().flatten().unwrap_or(0.0) == 0.0,
                "cube row {key:?} has no fact rows behind it: {row:?}"
            );
        }
    }
    // Roll-up: children of the grand total add up for additive measures, while distinct
    // counts of the parent are at most the sum (recomputed, not added).
    if totals == Totals::Rollup && levels.len() == 1 {
        let total = got.get(&vec!["All".to_string()]);
        if let Some(total) = total {
            let children: Vec<_> = got.iter().filter(|(k, _)| k[0] != "All").collect();
            let sum = |m: &str| -> f64 { children.iter().map(|(_, r)| r[m].unwrap_or(0.0)).sum() };
            prop_assert!((sum("revenue") - total["revenue"].unwrap_or(0.0)).abs() < 0.01);
            prop_assert!((sum("order_lines") - total["order_lines"].unwrap_or(0.0)).abs() < 0.5);
            prop_assert!(total["customers"].unwrap_or(0.0) <= sum("customers") + 0.5);
        }
    }
    Ok(())
}

/// Pre-aggregations over the generated star: everything the questions ask at a fine
/// grain (distinct counts by their keys), additive measures at a coarse grain, tickets.
const PRE_AGGREGATIONS: &str = "
pre_aggregations:
  fine:
    fact: sales
    measures: [revenue, quantity, order_lines, orders, customers, margin_pct, repeat_customers]
    levels: [time.month, geography.city, product.subcategory, customer.segment]
    partition_by: time.month
  coarse:
    fact: sales
    measures: [revenue, gross_profit, quantity, order_lines]
    levels: [time.quarter, geography.country]
  tickets_monthly:
    fact: tickets
    measures: [tickets, complaints]
    levels: [time.month, geography.country, customer.segment]
";

/// The built-in model with [`PRE_AGGREGATIONS`], each built into the session as a
/// table (as `cube materialize` would) and marked fresh.
fn cube_with_pre_aggregations(ctx: &SessionContext) -> Cube {
    let text = crmcube_cube::model::BUILTIN_CUBE_YAML
        .split("\npre_aggregations:")
        .next()
        .unwrap()
        .to_string()
        + PRE_AGGREGATIONS;
    let model = CubeModel::parse(&text, "test", &WarehouseSchema::builtin().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut entries = Vec::new();
    for (name, _) in &model.pre_aggregations {
        let layout = Layout::new(&model, name).unwrap();
        let sql = layout.build_sql(&model, None, None).unwrap();
        let batches = rt
            .block_on(async { ctx.sql(&sql).await?.collect().await })
            .unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let schema = rt
            .block_on(async {
                Ok::<_, datafusion::error::DataFusionError>(
                    ctx.sql(&sql).await?.schema().as_arrow().clone(),
                )
            })
            .unwrap();
        let table =
            datafusion::datasource::MemTable::try_new(Arc::new(schema), vec![batches]).unwrap();
        ctx.register_table(layout.table.as_str(), Arc::new(table))
            .unwrap();
        entries.push((layout, Status::Fresh { rows: rows as u64 }));
    }
    let mut cube = rt.block_on(Cube::open(model, ctx)).unwrap();
    cube.set_pre_aggregations(Catalog { entries, off: None });
    cube
}

/// Every question gives the same cells from the pre-aggregations as from the facts.
fn check_pre_aggregations(
    sales: &[Sale],
    tickets: &[Ticket],
    qn: &Question,
) -> Result<(), TestCaseError> {
    let levels: Vec<&str> = qn.levels.iter().map(|i| LEVELS[*i]).collect();
    let filter = qn.filter.map(|(l, m)| {
        let candidates = [
            "2025", "DE", "Europe", "Unknown", "2024-Q1", "Books", "consumer",
        ];
        (LEVELS[l], candidates[(l + m) % candidates.len()])
    });
    let totals = match qn.totals {
        0 => Totals::None,
        1 => Totals::Rollup,
        _ => Totals::Cube,
    };
    let ctx = session(sales, tickets);
    let cube = cube_with_pre_aggregations(&ctx);
    let no_products = !levels.contains(&"product.category")
        && filter.is_none_or(|(l, _)| l != "product.category");
    let mut asks: Vec<Vec<String>> = vec![
        MEASURES.iter().map(|m| m.to_string()).collect(),
        vec!["revenue".into(), "margin_pct".into(), "order_lines".into()],
    ];
    if qn.with_tickets && no_products {
        asks.push(vec![
            "tickets".into(),
            "complaint_rate".into(),
            "revenue".into(),
        ]);
    }
    for measures in asks {
        let q = CubeQuery {
            measures: measures.clone(),
            rows: levels.iter().map(|l| level_ref(l)).collect(),
            totals,
            filters: filter
                .iter()
                .map(|(l, v)| Filter {
                    level: level_ref(l),
                    op: FilterOp::In(vec![v.to_string()]),
                })
                .collect(),
            ..Default::default()
        };
        let (_, base, _) = answer_with(&ctx, &q, None);
        let (_, pre, sources) = answer_with(&ctx, &q, Some(&cube));
        let sales_source = sources.iter().find(|s| s.starts_with("sales")).unwrap();
        prop_assert!(
            sales_source.contains(": pre-aggregation "),
            "{measures:?} by {levels:?}: {sources:?}"
        );
        prop_assert_eq!(
            base,
            pre,
            "{:?} by {:?} where {:?}: {:?}",
            measures,
            levels,
            filter,
            sources
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn pre_aggregations_answer_like_the_facts(
        sales in proptest::collection::vec(sale(), 0..40),
        tickets in proptest::collection::vec(ticket(), 0..12),
        qn in question(),
    ) {
        check_pre_aggregations(&sales, &tickets, &qn)?;
    }

    #[test]
    fn cube_equals_naive_computation(
        sales in proptest::collection::vec(sale(), 0..40),
        tickets in proptest::collection::vec(ticket(), 0..12),
        qn in question(),
    ) {
        check(&sales, &tickets, &qn)?;
    }
}

/// A fixed case where adding children's distinct counts would be wrong: the same
/// customer (c1) buys in two regions, and in North America under both of its SCD2
/// versions (customer keys 1 and 2), which still count as one customer.
#[test]
fn distinct_customers_are_not_summed() {
    let s = |region, customer, order| Sale {
        order,
        date: 0,
        region,
        product: 1,
        customer,
        quantity: 1,
        revenue_cents: 1000,
        cost_cents: 500,
    };
    // c1 (key 1) in Europe; c2 (key 3), c1 (key 1) and c1 again (key 2) in North America.
    let sales = vec![s(1, 1, 1), s(4, 3, 2), s(4, 1, 3), s(4, 2, 4)];
    let ctx = session(&sales, &[]);
    let q = CubeQuery {
        measures: vec![
            "customers".into(),
            "revenue".into(),
            "repeat_customers".into(),
        ],
        rows: vec![level_ref("geography.region")],
        totals: Totals::Rollup,
        ..Default::default()
    };
    let (_, got) = answer(&ctx, &q);
    let cell = |r: &str, m: &str| got[&vec![r.to_string()]][m].unwrap();
    assert_eq!(cell("Europe", "customers"), 1.0);
    assert_eq!(cell("North America", "customers"), 2.0);
    // 1 + 2 children, but only two customers in all.
    assert_eq!(cell("All", "customers"), 2.0);
    assert_eq!(cell("All", "revenue"), 40.0);
    assert_eq!(cell("Europe", "repeat_customers"), 0.0);
    assert_eq!(cell("North America", "repeat_customers"), 1.0);
    assert_eq!(cell("All", "repeat_customers"), 1.0);
}

/// Levels from the optional `customer_scores` table use its latest snapshot, and are
/// unavailable (not a load failure) when the table is absent.
#[test]
fn customer_scores_are_optional_and_latest() {
    let s = |customer, order| Sale {
        order,
        date: 0,
        region: 1,
        product: 1,
        customer,
        quantity: 1,
        revenue_cents: 1000,
        cost_cents: 500,
    };
    let sales = vec![s(1, 1), s(2, 2), s(3, 3), s(5, 4)];
    let ctx = session(&sales, &[]);
    let q = CubeQuery {
        measures: vec!["customers".into(), "revenue".into()],
        rows: vec![level_ref("customer.rfm_segment")],
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cube = rt.block_on(Cube::open(model(), &ctx)).unwrap();
    let e = rt.block_on(cube.run(&ctx, &q)).err().unwrap().to_string();
    assert!(e.contains("customer_scores"), "{e}");
    ctx.register_batch(
        "customer_scores",
        batch(vec![
            (
                "as_of",
                strings(vec![
                    "2025-01-01".into(),
                    "2025-06-30".into(),
                    "2025-06-30".into(),
                ]),
            ),
            (
                "customer_id",
                strings(vec!["c1".into(), "c1".into(), "c2".into()]),
            ),
            (
                "rfm_segment",
                strings(vec!["old".into(), "champions".into(), "at_risk".into()]),
            ),
        ]),
    )
    .unwrap();
    let (_, got) = answer(&ctx, &q);
    let cell = |r: &str, m: &str| got[&vec![r.to_string()]][m].unwrap();
    // c1 (two SCD2 versions) is a champion in the latest snapshot; c3 has no score.
    assert_eq!(cell("champions", "customers"), 1.0);
    assert_eq!(cell("champions", "revenue"), 20.0);
    assert_eq!(cell("at_risk", "customers"), 1.0);
    assert_eq!(cell("Unknown", "customers"), 1.0);
    assert!(!got.contains_key(&vec!["old".to_string()]));
}

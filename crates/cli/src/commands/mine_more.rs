//! `crmcube mine churn|cohorts|migration|basket`: churn model, cohort retention, segment
//! migration and market-basket rules. The warehouse is read with SQL; the numerical work
//! is in `crmcube_mining`.

use super::{runtime, Context};
use crate::output::{emit, write_batches, Format};
use anyhow::Result;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema};
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_mining::basket::{association_rules, suggestions, Baskets, RuleOptions};
use crmcube_mining::calendar::{date_of_day, day_of_date};
use crmcube_mining::churn::{
    train_and_score, CampaignEvent, ChurnEvents, ChurnReport, InteractionEvent, InteractionKind,
    TicketEvent, FEATURE_NAMES,
};
use crmcube_mining::cohorts::{cohort_matrix, CohortMetric};
use crmcube_mining::logistic::LogisticOptions;
use crmcube_mining::migration::migration_matrix;
use crmcube_mining::{SegmentMap, Transaction};
use crmcube_model::Error;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `mine churn`.
#[derive(clap::Args)]
pub struct ChurnArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Test cutoff T0: the model trains on features up to T0 − horizon labelled by
    /// (T0 − horizon, T0], and is tested on features up to T0 labelled by (T0, T0 + horizon]
    /// (default: the last order day minus the horizon, so the test window is complete).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Churn horizon in days: a customer churns when they make no purchase in it.
    #[arg(long, default_value_t = 90)]
    pub horizon_days: i32,
    /// L2 penalty on the standardised coefficients.
    #[arg(long, default_value_t = 1.0)]
    pub l2: f64,
    /// Which tables to print: all, summary, coefficients or lift.
    #[arg(long, value_enum, default_value = "all")]
    pub show: ChurnPart,
    /// Write each customer's churn probability as of T0 to this CSV file
    /// (customer_id, churn_probability).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Result format (with csv or ndjson and --show all, the tables follow each other,
    /// separated by a blank line).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Parts of the churn report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChurnPart {
    /// Summary, coefficients and lift table.
    All,
    /// Sizes, churn rates and the test AUC.
    Summary,
    /// The model's coefficients.
    Coefficients,
    /// The test decile lift table.
    Lift,
}

/// Flags of `mine cohorts`.
#[derive(clap::Args)]
pub struct CohortsArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Ignore purchases after this day (default: the last order day).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Months after the acquisition month to show (0 = the acquisition month only).
    #[arg(long, default_value_t = 24)]
    pub max_months: usize,
    /// customers: active customers per month; revenue: the cohort's revenue per month.
    #[arg(long, value_enum, default_value = "customers")]
    pub metric: CohortMetricArg,
    /// Cell values: percent (of the cohort size, or of month-0 revenue) or count (raw).
    #[arg(long, value_enum, default_value = "percent")]
    pub values: CohortValues,
    /// One row per cohort and month (cohort, cohort_size, months_since, value, pct)
    /// instead of one column per month.
    #[arg(long)]
    pub long: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Cohort metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CohortMetricArg {
    /// Customers of the cohort who bought in the month.
    Customers,
    /// The cohort's revenue in the month.
    Revenue,
}

/// Cohort cell values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CohortValues {
    /// Percentages.
    Percent,
    /// Raw counts (or revenue).
    Count,
}

/// Flags of `mine migration`.
#[derive(clap::Args)]
pub struct MigrationArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// First as-of day.
    #[arg(long)]
    pub from: NaiveDate,
    /// Second as-of day (after --from).
    #[arg(long)]
    pub to: NaiveDate,
    /// Segment map YAML (default: the built-in schemas/rfm_segments.yaml).
    #[arg(long)]
    pub segments: Option<PathBuf>,
    /// One row per from-segment and one column of counts per to-segment.
    #[arg(long)]
    pub wide: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Flags of `mine basket`.
#[derive(clap::Args)]
pub struct BasketArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Product level of the basket items.
    #[arg(long, value_enum, default_value = "subcategory")]
    pub level: BasketLevel,
    /// Least share of orders holding antecedent and consequent together (0..1).
    #[arg(long, default_value_t = 0.01)]
    pub min_support: f64,
    /// Least confidence of a rule (0..1).
    #[arg(long, default_value_t = 0.2)]
    pub min_confidence: f64,
    /// Most items in a rule (antecedent and consequent together).
    #[arg(long, default_value_t = 3)]
    pub max_len: usize,
    /// Rules to print, best lift first (0 = all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Write cross-sell suggestions per customer to this CSV file.
    #[arg(long)]
    pub suggestions: Option<PathBuf>,
    /// Suggestions per customer.
    #[arg(long, default_value_t = 3)]
    pub per_customer: usize,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the rules to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Product levels for basket items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BasketLevel {
    /// dim_product.category.
    Category,
    /// dim_product.subcategory.
    Subcategory,
    /// dim_product.product_name.
    Product,
}

impl BasketLevel {
    fn column(self) -> &'static str {
        match self {
            BasketLevel::Category => "category",
            BasketLevel::Subcategory => "subcategory",
            BasketLevel::Product => "product_name",
        }
    }
}

// ---------------------------------------------------------------- reading the warehouse

fn cast(b: &RecordBatch, i: usize, t: &DataType) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(b.column(i), t)?)
}

async fn rows(wh: &Warehouse, q: &str) -> Result<Vec<RecordBatch>> {
    Ok(wh.sql(q).await?.batches)
}

/// Customer-day purchase amounts of known customers.
async fn purchases(wh: &Warehouse) -> Result<Vec<Transaction>> {
    let q = "SELECT c.customer_id, CAST(f.order_ts AS DATE), CAST(SUM(f.revenue) AS DOUBLE) \
             FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key \
             WHERE f.customer_key <> 0 GROUP BY 1, 2";
    let mut out = vec![];
    for b in rows(wh, q).await? {
        let (ids, days, amounts) = (
            cast(&b, 0, &DataType::Utf8)?,
            cast(&b, 1, &DataType::Date32)?,
            cast(&b, 2, &DataType::Float64)?,
        );
        let (ids, days, amounts) = (
            ids.as_string::<i32>(),
            days.as_primitive::<Date32Type>(),
            amounts.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            out.push(Transaction {
                customer: ids.value(i).to_string(),
                day: days.value(i),
                amount: amounts.value(i),
            });
        }
    }
    Ok(out)
}

/// Everything the churn model reads.
async fn churn_events(wh: &Warehouse) -> Result<ChurnEvents> {
    let mut ev = ChurnEvents {
        purchases: purchases(wh).await?,
        ..Default::default()
    };
    let q = "SELECT c.customer_id, CAST(t.opened_at AS DATE), t.is_complaint, \
             CAST(t.satisfaction_score AS DOUBLE) \
             FROM fact_ticket t JOIN dim_customer c ON t.customer_key = c.customer_key \
             WHERE t.customer_key <> 0";
    for b in rows(wh, q).await? {
        let (ids, days, complaint, score) = (
            cast(&b, 0, &DataType::Utf8)?,
            cast(&b, 1, &DataType::Date32)?,
            cast(&b, 2, &DataType::Boolean)?,
            cast(&b, 3, &DataType::Float64)?,
        );
        let (ids, days, complaint, score) = (
            ids.as_string::<i32>(),
            days.as_primitive::<Date32Type>(),
            complaint.as_boolean(),
            score.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            ev.tickets.push(TicketEvent {
                customer: ids.value(i).to_string(),
                day: days.value(i),
                complaint: complaint.is_valid(i) && complaint.value(i),
                satisfaction: score.is_valid(i).then(|| score.value(i)),
            });
        }
    }
    let q = "SELECT c.customer_id, CAST(i.event_ts AS DATE), i.interaction_type, \
             CAST(COUNT(*) AS BIGINT) \
             FROM fact_interaction i JOIN dim_customer c ON i.customer_key = c.customer_key \
             WHERE i.customer_key <> 0 AND i.interaction_type IN \
             ('web_visit', 'cart_abandon', 'email_open', 'email_click') GROUP BY 1, 2, 3";
    for b in rows(wh, q).await? {
        let (ids, days, kinds, counts) = (
            cast(&b, 0, &DataType::Utf8)?,
            cast(&b, 1, &DataType::Date32)?,
            cast(&b, 2, &DataType::Utf8)?,
            cast(&b, 3, &DataType::Int64)?,
        );
        let (ids, days, kinds, counts) = (
            ids.as_string::<i32>(),
            days.as_primitive::<Date32Type>(),
            kinds.as_string::<i32>(),
            counts.as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            if let Some(kind) = InteractionKind::of_type(kinds.value(i)) {
                ev.interactions.push(InteractionEvent {
                    customer: ids.value(i).to_string(),
                    day: days.value(i),
                    kind,
                    count: u32::try_from(counts.value(i)).unwrap_or(u32::MAX),
                });
            }
        }
    }
    let q = "SELECT c.customer_id, CAST(r.sent_ts AS DATE), \
             CAST(SUM(CASE WHEN r.clicked > 0 OR r.converted > 0 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM fact_campaign_response r JOIN dim_customer c ON r.customer_key = c.customer_key \
             WHERE r.customer_key <> 0 GROUP BY 1, 2";
    for b in rows(wh, q).await? {
        let (ids, days, n) = (
            cast(&b, 0, &DataType::Utf8)?,
            cast(&b, 1, &DataType::Date32)?,
            cast(&b, 2, &DataType::Int64)?,
        );
        let (ids, days, n) = (
            ids.as_string::<i32>(),
            days.as_primitive::<Date32Type>(),
            n.as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            if n.value(i) > 0 {
                ev.campaigns.push(CampaignEvent {
                    customer: ids.value(i).to_string(),
                    day: days.value(i),
                    responses: u32::try_from(n.value(i)).unwrap_or(u32::MAX),
                });
            }
        }
    }
    Ok(ev)
}

fn no_purchases() -> Error {
    Error::Data(
        "fact_sales holds no purchases of known customers; load orders first \
         (crmcube ingest --source DIR --warehouse DIR)"
            .into(),
    )
}

fn last_day(rows: &[Transaction]) -> Result<i32> {
    match rows.iter().map(|t| t.day).max() {
        Some(d) => Ok(d),
        None => Err(no_purchases().into()),
    }
}

// ---------------------------------------------------------------- batches

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn strings(name: &str, v: impl IntoIterator<Item = String>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Utf8, false),
        Arc::new(StringArray::from_iter_values(v)),
    )
}

fn ints(name: &str, v: impl IntoIterator<Item = i64>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Int64, false),
        Arc::new(Int64Array::from_iter_values(v)),
    )
}

fn floats(name: &str, v: impl IntoIterator<Item = f64>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Float64, false),
        Arc::new(Float64Array::from_iter_values(v)),
    )
}

fn batch(cols: Vec<(Field, ArrayRef)>) -> Result<RecordBatch> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = cols.into_iter().unzip();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

// ---------------------------------------------------------------- churn

/// Runs `mine churn`.
pub fn run_churn(ctx: &Context, a: ChurnArgs) -> Result<()> {
    if a.horizon_days < 1 {
        return Err(Error::Usage(format!(
            "--horizon-days must be at least 1, found {}",
            a.horizon_days
        ))
        .into());
    }
    if !(a.l2 >= 0.0 && a.l2.is_finite()) {
        return Err(Error::Usage(format!("--l2 must be 0 or more, found {}", a.l2)).into());
    }
    let rt = runtime()?;
    let events = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        churn_events(&wh).await
    })?;
    let data_end = last_day(&events.purchases)?;
    let as_of = a.as_of.map_or(data_end - a.horizon_days, day_of_date);
    let opts = LogisticOptions {
        l2: a.l2,
        ..Default::default()
    };
    let report = train_and_score(&events, as_of, a.horizon_days, data_end, &opts)?;
    ctx.note(format!(
        "trained on {} customers at {} (labels to {}), scored {} customers at {}",
        report.train_size,
        date_of_day(as_of - a.horizon_days),
        date_of_day(as_of),
        report.test_size,
        date_of_day(as_of)
    ));
    if report.evaluation.is_none() {
        ctx.note(format!(
            "the test window ({}, {}] runs past the last order day {}; no AUC or lift",
            date_of_day(as_of),
            date_of_day(as_of + a.horizon_days),
            date_of_day(data_end)
        ));
    }
    if !report.model.converged {
        ctx.note(format!(
            "warning: the model did not converge in {} iterations; try a larger --l2",
            report.model.iterations
        ));
    }
    if let Some(p) = &a.output {
        let b = batch(vec![
            strings("customer_id", report.scores.iter().map(|s| s.0.clone())),
            floats(
                "churn_probability",
                report.scores.iter().map(|s| round(s.1, 6)),
            ),
        ])?;
        emit(Some(p), &b.schema(), &[b], Format::Csv)?;
        ctx.note(format!(
            "wrote {} churn probabilities to {}",
            report.scores.len(),
            p.display()
        ));
    }
    let mut parts: Vec<(&str, RecordBatch)> = vec![];
    if matches!(a.show, ChurnPart::All | ChurnPart::Summary) {
        parts.push(("summary", churn_summary(&report)?));
    }
    if matches!(a.show, ChurnPart::All | ChurnPart::Coefficients) {
        parts.push(("coefficients", churn_coefficients(&report)?));
    }
    if matches!(a.show, ChurnPart::All | ChurnPart::Lift) {
        parts.push(("lift", churn_lift(&report)?));
    }
    print_parts(&parts, a.format)
}

/// Prints named tables: one JSON object of arrays for json; one after another otherwise.
fn print_parts(parts: &[(&str, RecordBatch)], format: Format) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == Format::Json && parts.len() > 1 {
        let mut obj = serde_json::Map::new();
        for (name, b) in parts {
            let mut buf = vec![];
            write_batches(&mut buf, &b.schema(), std::slice::from_ref(b), Format::Json)?;
            obj.insert(
                name.to_string(),
                serde_json::from_slice::<serde_json::Value>(&buf)?,
            );
        }
        writeln!(out, "{}", serde_json::Value::Object(obj))?;
    } else {
        for (i, (name, b)) in parts.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            if format == Format::Table && parts.len() > 1 {
                writeln!(out, "{name}")?;
            }
            write_batches(&mut out, &b.schema(), std::slice::from_ref(b), format)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn churn_summary(r: &ChurnReport) -> Result<RecordBatch> {
    let mut rows: Vec<(&str, String)> = vec![
        ("as_of", date_of_day(r.as_of).to_string()),
        ("horizon_days", r.horizon.to_string()),
        ("train_cutoff", date_of_day(r.as_of - r.horizon).to_string()),
        ("train_customers", r.train_size.to_string()),
        ("train_churn_rate", format!("{:.4}", r.train_churn_rate)),
        ("test_customers", r.test_size.to_string()),
    ];
    match &r.evaluation {
        Some(e) => {
            rows.push(("test_churn_rate", format!("{:.4}", e.churn_rate)));
            rows.push(("test_auc", format!("{:.4}", e.auc)));
            if let Some(top) = e.lift.first() {
                rows.push(("top_decile_lift", format!("{:.3}", top.lift)));
            }
        }
        None => rows.push((
            "test_auc",
            "n/a (test window past the data end)".to_string(),
        )),
    }
    rows.push(("iterations", r.model.iterations.to_string()));
    batch(vec![
        strings("metric", rows.iter().map(|r| r.0.to_string())),
        strings("value", rows.iter().map(|r| r.1.clone())),
    ])
}

fn churn_coefficients(r: &ChurnReport) -> Result<RecordBatch> {
    let (raw0, raw) = r.model.raw_coefficients();
    let names = std::iter::once("(intercept)").chain(FEATURE_NAMES);
    let std_coef = std::iter::once(r.model.intercept).chain(r.model.coefficients.iter().copied());
    let raw_coef = std::iter::once(raw0).chain(raw.iter().copied());
    let means = std::iter::once(f64::NAN).chain(r.model.means.iter().copied());
    let scales = std::iter::once(f64::NAN).chain(r.model.scales.iter().copied());
    let opt = |v: f64| (!v.is_nan()).then_some(round(v, 4));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("feature", DataType::Utf8, false),
            Field::new("coefficient", DataType::Float64, false),
            Field::new("odds_ratio", DataType::Float64, false),
            Field::new("raw_coefficient", DataType::Float64, false),
            Field::new("train_mean", DataType::Float64, true),
            Field::new("train_sd", DataType::Float64, true),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(names)),
            Arc::new(Float64Array::from_iter_values(
                std_coef.clone().map(|v| round(v, 4)),
            )),
            Arc::new(Float64Array::from_iter_values(
                std_coef.map(|v| round(v.exp(), 4)),
            )),
            Arc::new(Float64Array::from_iter_values(
                raw_coef.map(|v| round(v, 6)),
            )),
            Arc::new(means.map(opt).collect::<Float64Array>()),
            Arc::new(scales.map(opt).collect::<Float64Array>()),
        ],
    )?)
}

fn churn_lift(r: &ChurnReport) -> Result<RecordBatch> {
    let lift = r
        .evaluation
        .as_ref()
        .map(|e| e.lift.as_slice())
        .unwrap_or_default();
    batch(vec![
        ints("decile", lift.iter().map(|l| i64::from(l.decile))),
        ints("customers", lift.iter().map(|l| l.customers as i64)),
        ints("churners", lift.iter().map(|l| l.positives as i64)),
        floats("churn_rate", lift.iter().map(|l| round(l.rate, 4))),
        floats("lift", lift.iter().map(|l| round(l.lift, 3))),
        floats(
            "cumulative_capture",
            lift.iter().map(|l| round(l.cumulative_capture, 4)),
        ),
    ])
}

// ---------------------------------------------------------------- cohorts

/// Runs `mine cohorts`.
pub fn run_cohorts(_ctx: &Context, a: CohortsArgs) -> Result<()> {
    let rt = runtime()?;
    let rows = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        purchases(&wh).await
    })?;
    let as_of = match a.as_of {
        Some(d) => day_of_date(d),
        None => last_day(&rows)?,
    };
    let metric = match a.metric {
        CohortMetricArg::Customers => CohortMetric::Customers,
        CohortMetricArg::Revenue => CohortMetric::Revenue,
    };
    let matrix = cohort_matrix(&rows, as_of, a.max_months, metric);
    if matrix.is_empty() {
        return Err(Error::Data(format!(
            "no purchases on or before {}; no cohorts to show",
            date_of_day(as_of)
        ))
        .into());
    }
    let digits = if metric == CohortMetric::Revenue {
        2
    } else {
        0
    };
    let b = if a.long {
        let cells: Vec<(&str, usize, usize, f64, f64)> =
            matrix
                .iter()
                .flat_map(|c| {
                    c.values.iter().zip(&c.percentages).enumerate().filter_map(
                        move |(k, (v, p))| Some((c.month.as_str(), c.size, k, (*v)?, (*p)?)),
                    )
                })
                .collect();
        batch(vec![
            strings("cohort", cells.iter().map(|c| c.0.to_string())),
            ints("cohort_size", cells.iter().map(|c| c.1 as i64)),
            ints("months_since", cells.iter().map(|c| c.2 as i64)),
            if metric == CohortMetric::Customers {
                ints("value", cells.iter().map(|c| c.3 as i64))
            } else {
                floats("value", cells.iter().map(|c| round(c.3, digits)))
            },
            floats("pct", cells.iter().map(|c| round(c.4, 1))),
        ])?
    } else {
        let mut fields = vec![
            Field::new("cohort", DataType::Utf8, false),
            Field::new("customers", DataType::Int64, false),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                matrix.iter().map(|c| c.month.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                matrix.iter().map(|c| c.size as i64),
            )),
        ];
        // Customer counts are whole numbers; percentages and revenue are not.
        let whole = metric == CohortMetric::Customers && a.values == CohortValues::Count;
        for k in 0..=a.max_months {
            if whole {
                fields.push(Field::new(format!("m{k}"), DataType::Int64, true));
                cols.push(Arc::new(
                    matrix
                        .iter()
                        .map(|c| c.values[k].map(|v| v as i64))
                        .collect::<Int64Array>(),
                ));
                continue;
            }
            fields.push(Field::new(format!("m{k}"), DataType::Float64, true));
            cols.push(Arc::new(
                matrix
                    .iter()
                    .map(|c| match a.values {
                        CohortValues::Percent => c.percentages[k].map(|v| round(v, 1)),
                        CohortValues::Count => c.values[k].map(|v| round(v, digits)),
                    })
                    .collect::<Float64Array>(),
            ));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?
    };
    emit(a.output.as_deref(), &b.schema(), &[b], a.format)
}

// ---------------------------------------------------------------- migration

/// Runs `mine migration`.
pub fn run_migration(_ctx: &Context, a: MigrationArgs) -> Result<()> {
    let map = match &a.segments {
        Some(p) => SegmentMap::parse(
            &std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            &p.display().to_string(),
        )?,
        None => SegmentMap::builtin()?,
    };
    let (from, to) = (day_of_date(a.from), day_of_date(a.to));
    if from >= to {
        return Err(Error::Usage(format!(
            "--from ({}) must be before --to ({})",
            a.from, a.to
        ))
        .into());
    }
    let rt = runtime()?;
    let rows = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        purchases(&wh).await
    })?;
    last_day(&rows)?;
    if !rows.iter().any(|t| t.day <= to) {
        return Err(Error::Data(format!(
            "no purchases on or before --to {}; nothing to segment",
            a.to
        ))
        .into());
    }
    let cells = migration_matrix(&rows, from, to, &map)?;
    let b = if a.wide {
        let mut to_segments: Vec<&str> = vec![];
        let mut from_segments: Vec<&str> = vec![];
        for c in &cells {
            if !from_segments.contains(&c.from.as_str()) {
                from_segments.push(&c.from);
            }
        }
        // Column order: segment-map order, as the rows.
        let order = |s: &str| {
            map.segments
                .iter()
                .position(|r| r.name == s)
                .unwrap_or(map.segments.len())
        };
        for c in &cells {
            if !to_segments.contains(&c.to.as_str()) {
                to_segments.push(&c.to);
            }
        }
        to_segments.sort_by_key(|s| (order(s), s.to_string()));
        let count = |f: &str, t: &str| {
            cells
                .iter()
                .find(|c| c.from == f && c.to == t)
                .map_or(0, |c| c.customers as i64)
        };
        let mut cols = vec![
            strings("from_segment", from_segments.iter().map(|s| s.to_string())),
            ints(
                "customers",
                from_segments
                    .iter()
                    .map(|f| to_segments.iter().map(|t| count(f, t)).sum()),
            ),
        ];
        for t in &to_segments {
            cols.push(ints(t, from_segments.iter().map(|f| count(f, t))));
        }
        batch(cols)?
    } else {
        batch(vec![
            strings("from_segment", cells.iter().map(|c| c.from.clone())),
            strings("to_segment", cells.iter().map(|c| c.to.clone())),
            ints("customers", cells.iter().map(|c| c.customers as i64)),
            floats("row_pct", cells.iter().map(|c| round(c.row_pct, 1))),
        ])?
    };
    emit(a.output.as_deref(), &b.schema(), &[b], a.format)
}

// ---------------------------------------------------------------- basket

/// Runs `mine basket`.
pub fn run_basket(ctx: &Context, a: BasketArgs) -> Result<()> {
    let col = a.level.column();
    let rt = runtime()?;
    let (pairs, bought) = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        let q = format!(
            "SELECT f.order_id, p.{col} FROM fact_sales f \
             JOIN dim_product p ON f.product_key = p.product_key \
             WHERE f.product_key <> 0 AND p.{col} IS NOT NULL GROUP BY 1, 2"
        );
        let mut pairs: Vec<(String, String)> = vec![];
        for b in rows(&wh, &q).await? {
            let (o, i) = (cast(&b, 0, &DataType::Utf8)?, cast(&b, 1, &DataType::Utf8)?);
            let (o, i) = (o.as_string::<i32>(), i.as_string::<i32>());
            for r in 0..b.num_rows() {
                pairs.push((o.value(r).to_string(), i.value(r).to_string()));
            }
        }
        let mut bought: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if a.suggestions.is_some() {
            let q = format!(
                "SELECT DISTINCT c.customer_id, p.{col} FROM fact_sales f \
                 JOIN dim_customer c ON f.customer_key = c.customer_key \
                 JOIN dim_product p ON f.product_key = p.product_key \
                 WHERE f.customer_key <> 0 AND f.product_key <> 0 AND p.{col} IS NOT NULL"
            );
            for b in rows(&wh, &q).await? {
                let (c, i) = (cast(&b, 0, &DataType::Utf8)?, cast(&b, 1, &DataType::Utf8)?);
                let (c, i) = (c.as_string::<i32>(), i.as_string::<i32>());
                for r in 0..b.num_rows() {
                    bought
                        .entry(c.value(r).to_string())
                        .or_default()
                        .insert(i.value(r).to_string());
                }
            }
        }
        anyhow::Ok((pairs, bought))
    })?;
    if pairs.is_empty() {
        return Err(Error::Data(
            "fact_sales holds no order lines with a known product; no baskets to mine".into(),
        )
        .into());
    }
    let baskets = Baskets::from_pairs(pairs.iter().map(|(o, i)| (o.as_str(), i.as_str())));
    let opts = RuleOptions {
        min_support: a.min_support,
        min_confidence: a.min_confidence,
        max_len: a.max_len,
    };
    let rules = association_rules(&baskets, &opts)?;
    ctx.note(format!(
        "{} orders, {} distinct items at {} level, {} rules at support >= {} and confidence >= {}",
        baskets.baskets.len(),
        baskets.items.len(),
        a.level.column().trim_end_matches("_name"),
        rules.len(),
        a.min_support,
        a.min_confidence
    ));
    if let Some(path) = &a.suggestions {
        let s = suggestions(&rules, &bought, a.per_customer);
        let b = batch(vec![
            strings("customer_id", s.iter().map(|x| x.customer.clone())),
            ints("rank", s.iter().map(|x| i64::from(x.rank))),
            strings("item", s.iter().map(|x| x.item.clone())),
            floats("confidence", s.iter().map(|x| round(x.confidence, 4))),
            floats("lift", s.iter().map(|x| round(x.lift, 4))),
            strings("because", s.iter().map(|x| x.because.clone())),
        ])?;
        emit(Some(path), &b.schema(), &[b], Format::Csv)?;
        let customers: BTreeSet<&str> = s.iter().map(|x| x.customer.as_str()).collect();
        ctx.note(format!(
            "wrote {} suggestions for {} customers to {}",
            s.len(),
            customers.len(),
            path.display()
        ));
    }
    let shown = if a.top == 0 {
        &rules[..]
    } else {
        &rules[..a.top.min(rules.len())]
    };
    let b = batch(vec![
        strings("antecedent", shown.iter().map(|r| r.antecedent.join(" + "))),
        strings("consequent", shown.iter().map(|r| r.consequent.join(" + "))),
        ints("count", shown.iter().map(|r| r.count as i64)),
        floats("support", shown.iter().map(|r| round(r.support, 4))),
        floats("confidence", shown.iter().map(|r| round(r.confidence, 4))),
        floats("lift", shown.iter().map(|r| round(r.lift, 3))),
    ])?;
    emit(a.output.as_deref(), &b.schema(), &[b], a.format)
}

//! `crmcube mine`: customer mining over the warehouse.

use super::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::{
    ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Schema};
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_mining::{score_rfm, summarize, RfmScore, SegmentMap, Transaction};
use crmcube_model::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the scores table.
pub const SCORES_TABLE: &str = "customer_scores";

mod clv;
mod score;

pub use clv::ClvArgs;
pub use score::ScoreArgs;

/// Mining commands.
#[derive(clap::Subcommand)]
pub enum MineCommand {
    /// RFM scores (1-5) and segments per customer, written to the customer_scores table.
    Rfm(RfmArgs),
    /// Predictive customer lifetime value: BG/NBD, MBG/NBD or Pareto/NBD purchases
    /// with Gamma-Gamma spend, fitted on a warehouse or a transaction log.
    Clv(ClvArgs),
    /// RFM, CLV, P(alive), churn score, value tier and lifecycle stage per customer,
    /// written to the customer_scores table (one partition per as-of day).
    Score(ScoreArgs),
    /// Churn model: logistic regression on customer features, tested on a later window.
    Churn(super::mine_more::ChurnArgs),
    /// Cohort retention matrix by acquisition (first purchase) month.
    Cohorts(super::mine_more::CohortsArgs),
    /// RFM segment migration between two as-of days.
    Migration(super::mine_more::MigrationArgs),
    /// Market-basket association rules and cross-sell suggestions.
    Basket(super::mine_more::BasketArgs),
}

/// Flags of `mine rfm`.
#[derive(clap::Args)]
pub struct RfmArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Score as of this day (default: the last order day in the warehouse).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Segment map YAML (default: the built-in schemas/rfm_segments.yaml).
    #[arg(long)]
    pub segments: Option<PathBuf>,
    /// Only print; do not write customer_scores.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one row per customer instead of the per-segment summary.
    #[arg(long)]
    pub customers: bool,
    /// Result format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the result to a file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs a mining command.
pub fn run(ctx: &Context, cmd: MineCommand) -> Result<()> {
    let a = match cmd {
        MineCommand::Rfm(a) => a,
        MineCommand::Clv(a) => return clv::run(ctx, a),
        MineCommand::Score(a) => return score::run(ctx, a),
        MineCommand::Churn(a) => return super::mine_more::run_churn(ctx, a),
        MineCommand::Cohorts(a) => return super::mine_more::run_cohorts(ctx, a),
        MineCommand::Migration(a) => return super::mine_more::run_migration(ctx, a),
        MineCommand::Basket(a) => return super::mine_more::run_basket(ctx, a),
    };
    let map = match &a.segments {
        Some(p) => SegmentMap::parse(
            &std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            &p.display().to_string(),
        )?,
        None => SegmentMap::builtin()?,
    };
    let rt = runtime()?;
    let (scores, as_of) = rt.block_on(async {
        let wh = Warehouse::open(&a.warehouse).await?;
        rfm_scores(&wh, a.as_of, &map).await
    })?;
    let rows = CustomerScore::rfm_only(&scores);
    if !a.dry_run {
        let path = write_scores(&a.warehouse, &rows, as_of)?;
        ctx.note(format!(
            "wrote {} customer scores as of {as_of} to {}",
            scores.len(),
            path.display()
        ));
    }
    let batch = if a.customers {
        scores_batch(&rows, as_of)?
    } else {
        segment_summary(&scores)?
    };
    emit(a.output.as_deref(), &batch.schema(), &[batch], a.format)?;
    Ok(())
}

/// RFM scores of every customer with a purchase up to `as_of` (default: last order day).
pub async fn rfm_scores(
    wh: &Warehouse,
    as_of: Option<NaiveDate>,
    map: &SegmentMap,
) -> Result<(Vec<RfmScore>, NaiveDate)> {
    let rows = warehouse_transactions(wh, false).await?;
    let as_of_day = match as_of {
        Some(d) => crmcube_ingest::value::days_of_date(d),
        None => rows.iter().map(|t| t.day).max().ok_or_else(|| {
            Error::Data("fact_sales holds no purchases of known customers; nothing to score".into())
        })?,
    };
    let summaries = summarize(&rows, as_of_day);
    if summaries.is_empty() {
        return Err(Error::Data(format!(
            "no purchases on or before {}; nothing to score",
            crmcube_ingest::value::date_of_days(as_of_day)
        ))
        .into());
    }
    Ok((
        score_rfm(&summaries, as_of_day, map),
        crmcube_ingest::value::date_of_days(as_of_day),
    ))
}

/// Purchases of known customers in fact_sales, one row per customer and day:
/// revenue summed over the day's lines (only lines not returned when
/// `exclude_returned`), customers by their natural key `dim_customer.customer_id`.
pub async fn warehouse_transactions(
    wh: &Warehouse,
    exclude_returned: bool,
) -> Result<Vec<Transaction>> {
    let filter = if exclude_returned {
        " AND NOT f.returned"
    } else {
        ""
    };
    let q = format!(
        "SELECT c.customer_id, CAST(f.order_ts AS DATE) AS day, CAST(SUM(f.revenue) AS DOUBLE) AS amount \
         FROM fact_sales f JOIN dim_customer c ON f.customer_key = c.customer_key \
         WHERE f.customer_key <> 0{filter} GROUP BY 1, 2"
    );
    let r = wh.sql(&q).await?;
    let mut rows = Vec::with_capacity(r.num_rows());
    for b in &r.batches {
        // Cast to the plain types: the engine may hand back view or dictionary arrays.
        let ids = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let days = arrow::compute::cast(b.column(1), &DataType::Date32)?;
        let amounts = arrow::compute::cast(b.column(2), &DataType::Float64)?;
        let (ids, days, amounts) = (
            ids.as_string::<i32>(),
            days.as_primitive::<Date32Type>(),
            amounts.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            rows.push(Transaction {
                customer: ids.value(i).to_string(),
                day: days.value(i),
                amount: amounts.value(i),
            });
        }
    }
    Ok(rows)
}

/// One row of customer_scores: RFM always, the model columns when computed.
#[derive(Debug, Clone)]
pub struct CustomerScore {
    /// RFM scores and segment.
    pub rfm: RfmScore,
    /// dim_customer.customer_key of the customer's current version.
    pub customer_key: Option<i64>,
    /// CLV-model columns (`mine score`).
    pub clv: Option<ClvScore>,
}

impl CustomerScore {
    /// Rows with RFM only (the model columns left null).
    pub fn rfm_only(scores: &[RfmScore]) -> Vec<CustomerScore> {
        scores
            .iter()
            .map(|r| CustomerScore {
                rfm: r.clone(),
                customer_key: None,
                clv: None,
            })
            .collect()
    }
}

/// The model columns of customer_scores.
#[derive(Debug, Clone)]
pub struct ClvScore {
    /// Expected discounted CLV over the horizon.
    pub expected_clv: f64,
    /// Probability of being active.
    pub p_alive: f64,
    /// 1 − P(alive).
    pub churn_score: f64,
    /// Probability of no purchase over the horizon.
    pub p_no_purchase: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// "Top 1%", "Top 5%", "Top 20%" or "Rest".
    pub value_tier: &'static str,
    /// new, active, at risk, churned or reactivated.
    pub lifecycle_stage: &'static str,
}

/// Scores as a batch of the customer_scores table.
pub fn scores_batch(rows: &[CustomerScore], as_of: NaiveDate) -> Result<RecordBatch> {
    let day = crmcube_ingest::value::days_of_date(as_of);
    let scores: Vec<&RfmScore> = rows.iter().map(|r| &r.rfm).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("as_of", DataType::Date32, false),
        Field::new("customer_key", DataType::Int64, true),
        Field::new("recency_days", DataType::Int64, false),
        Field::new("transactions", DataType::Int64, false),
        Field::new("monetary", DataType::Float64, false),
        Field::new("r_score", DataType::Int64, false),
        Field::new("f_score", DataType::Int64, false),
        Field::new("m_score", DataType::Int64, false),
        Field::new("rfm_cell", DataType::Utf8, false),
        Field::new("rfm_segment", DataType::Utf8, false),
        Field::new("expected_clv", DataType::Float64, true),
        Field::new("p_alive", DataType::Float64, true),
        Field::new("churn_score", DataType::Float64, true),
        Field::new("p_no_purchase", DataType::Float64, true),
        Field::new("expected_purchases", DataType::Float64, true),
        Field::new("value_tier", DataType::Utf8, true),
        Field::new("lifecycle_stage", DataType::Utf8, true),
    ]));
    let f = |g: fn(&ClvScore) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.clv.as_ref().map(g)),
        ))
    };
    let s = |g: fn(&ClvScore) -> &'static str| -> ArrayRef {
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.clv.as_ref().map(g)),
        ))
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            scores.iter().map(|s| s.customer.as_str()),
        )),
        Arc::new(Date32Array::from(vec![day; scores.len()])),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.customer_key))),
        Arc::new(Int64Array::from_iter_values(
            scores.iter().map(|s| i64::from(s.recency_days)),
        )),
        Arc::new(Int64Array::from_iter_values(
            scores.iter().map(|s| i64::from(s.transactions)),
        )),
        Arc::new(Float64Array::from_iter_values(
            scores.iter().map(|s| (s.monetary * 100.0).round() / 100.0),
        )),
        Arc::new(Int64Array::from_iter_values(
            scores.iter().map(|s| i64::from(s.r)),
        )),
        Arc::new(Int64Array::from_iter_values(
            scores.iter().map(|s| i64::from(s.f)),
        )),
        Arc::new(Int64Array::from_iter_values(
            scores.iter().map(|s| i64::from(s.m)),
        )),
        Arc::new(StringArray::from_iter_values(
            scores.iter().map(|s| format!("{}{}{}", s.r, s.f, s.m)),
        )),
        Arc::new(StringArray::from_iter_values(
            scores.iter().map(|s| s.segment.as_str()),
        )),
        f(|c| c.expected_clv),
        f(|c| c.p_alive),
        f(|c| c.churn_score),
        f(|c| c.p_no_purchase),
        f(|c| c.expected_purchases),
        s(|c| c.value_tier),
        s(|c| c.lifecycle_stage),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Customers, share and average R/F/M per segment, largest first.
fn segment_summary(scores: &[RfmScore]) -> Result<RecordBatch> {
    let mut seg: std::collections::BTreeMap<&str, (u64, f64, f64, f64)> = Default::default();
    for s in scores {
        let e = seg.entry(&s.segment).or_default();
        e.0 += 1;
        e.1 += f64::from(s.recency_days);
        e.2 += f64::from(s.transactions);
        e.3 += s.monetary;
    }
    let mut rows: Vec<_> = seg.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let n = scores.len() as f64;
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let schema = Arc::new(Schema::new(vec![
        Field::new("rfm_segment", DataType::Utf8, false),
        Field::new("customers", DataType::Int64, false),
        Field::new("share_pct", DataType::Float64, false),
        Field::new("avg_recency_days", DataType::Float64, false),
        Field::new("avg_transactions", DataType::Float64, false),
        Field::new("avg_monetary", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.1 .0 as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| round(100.0 * r.1 .0 as f64 / n)),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| round(r.1 .1 / r.1 .0 as f64)),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| round(r.1 .2 / r.1 .0 as f64)),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| round(r.1 .3 / r.1 .0 as f64)),
        )),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Writes (or replaces) the scores of one as-of day as a new warehouse version: the
/// partition `customer_scores/as_of=<day>/` is replaced, other days stay. `mine rfm`
/// leaves the model columns null; `mine score` fills them.
pub fn write_scores(
    warehouse: &Path,
    scores: &[CustomerScore],
    as_of: NaiveDate,
) -> Result<PathBuf> {
    let batch = scores_batch(scores, as_of)?;
    let folder = format!("as_of={as_of}");
    crmcube_ingest::commit_table(
        warehouse,
        "mine score",
        SCORES_TABLE,
        Some(&folder),
        &batch,
        crmcube_store::Mode::ReplacePartitions,
        serde_json::json!({"as_of": as_of.to_string(), "customers": scores.len()}),
    )?;
    Ok(warehouse.join(SCORES_TABLE).join(folder))
}

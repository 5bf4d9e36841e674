//! `crmcube mine score`: RFM, BG/NBD CLV, churn, value tier and lifecycle stage per
//! customer, written to customer_scores.

use super::clv::{fit_and_score, InputArgs, UnitArg};
use super::{scores_batch, write_scores, ClvScore, CustomerScore};
use crate::commands::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Int64Type};
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_ingest::value::{date_of_days, days_of_date};
use crmcube_mining::lifecycle::{lifecycle_stage, value_tiers};
use crmcube_mining::{score_rfm, ClvSettings, ModelKind, SegmentMap, Transaction};
use crmcube_model::Error;
use std::collections::HashMap;
use std::path::PathBuf;

/// Flags of `mine score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Warehouse directory.
    #[arg(long)]
    pub warehouse: PathBuf,
    /// Score as of this day (default: the last order day in the warehouse).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// CLV and P(no purchase) horizon in months.
    #[arg(long, default_value_t = 12)]
    pub horizon_months: u32,
    /// Discount rate per month (0.01 = 1%).
    #[arg(long, default_value_t = 0.01)]
    pub discount_rate: f64,
    /// Unit the BG/NBD model is fitted in.
    #[arg(long, value_enum, default_value = "weeks")]
    pub time_unit: UnitArg,
    /// Segment map YAML (default: the built-in schemas/rfm_segments.yaml).
    #[arg(long)]
    pub segments: Option<PathBuf>,
    /// Only print; do not write customer_scores.
    #[arg(long)]
    pub dry_run: bool,
    /// Result format of the per-tier / per-stage summary.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs `mine score`.
pub fn run(ctx: &Context, a: ScoreArgs) -> Result<()> {
    let map = match &a.segments {
        Some(p) => SegmentMap::parse(
            &std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            &p.display().to_string(),
        )?,
        None => SegmentMap::builtin()?,
    };
    let input = InputArgs {
        warehouse: Some(a.warehouse.clone()),
        transactions: None,
        customer_col: None,
        date_col: None,
        amount_col: None,
        // A day whose lines were all returned or discounted away is no purchase.
        exclude_nonpositive: true,
    };
    let rows = super::clv::load_transactions(
        &Context {
            quiet: true,
            verbose: false,
        },
        &input,
    )?;
    let last = rows.iter().map(|t| t.day).max().unwrap_or(0);
    let as_of = a.as_of.map(days_of_date).unwrap_or(last);
    let rows: Vec<Transaction> = rows.into_iter().filter(|t| t.day <= as_of).collect();
    let settings = ClvSettings {
        horizon_months: a.horizon_months,
        monthly_discount: a.discount_rate,
        unit: a.time_unit.unit(),
    };
    let run = fit_and_score(&rows, as_of, None, ModelKind::BgNbd, &settings)?;
    let summaries: Vec<_> = run.customers.iter().map(|c| c.summary.clone()).collect();
    let rfm = score_rfm(&summaries, as_of, &map);
    let keys = current_keys(&a.warehouse)?;
    let tiers = value_tiers(&run.predictions.iter().map(|p| p.clv).collect::<Vec<_>>());
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, c) in run.customers.iter().enumerate() {
        by_id.insert(c.customer.as_str(), i);
    }
    let mut out = Vec::with_capacity(rfm.len());
    for r in rfm {
        let Some(&i) = by_id.get(r.customer.as_str()) else {
            continue;
        };
        let (c, p) = (&run.customers[i], &run.predictions[i]);
        let stage = lifecycle_stage(
            as_of - c.summary.first_day,
            as_of - c.summary.last_day,
            c.previous_day.map(|d| c.summary.last_day - d),
            p.p_alive,
        );
        out.push(CustomerScore {
            customer_key: keys.get(r.customer.as_str()).copied(),
            clv: Some(ClvScore {
                expected_clv: (p.clv * 100.0).round() / 100.0,
                p_alive: p.p_alive,
                churn_score: 1.0 - p.p_alive,
                p_no_purchase: p.p_no_purchase,
                expected_purchases: p.expected_purchases,
                value_tier: tiers[i],
                lifecycle_stage: stage,
            }),
            rfm: r,
        });
    }
    let as_of_date = date_of_days(as_of);
    if !a.dry_run {
        let path = write_scores(&a.warehouse, &out, as_of_date)?;
        ctx.note(format!(
            "wrote {} customer scores as of {as_of_date} to {}",
            out.len(),
            path.display()
        ));
    }
    let batch = scores_batch(&out, as_of_date)?;
    let summary = summarize_tiers(&batch)?;
    emit(None, &summary.schema(), &[summary], a.format)?;
    Ok(())
}

/// customer_id → customer_key of the current dim_customer version.
fn current_keys(warehouse: &std::path::Path) -> Result<HashMap<String, i64>> {
    let rt = runtime()?;
    let r = rt.block_on(async {
        let wh = Warehouse::open(warehouse).await?;
        wh.sql("SELECT customer_id, customer_key FROM dim_customer WHERE is_current")
            .await
    })?;
    let mut out = HashMap::new();
    for b in &r.batches {
        let ids = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let keys = arrow::compute::cast(b.column(1), &DataType::Int64)?;
        let (ids, keys) = (ids.as_string::<i32>(), keys.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string(), keys.value(i));
        }
    }
    Ok(out)
}

/// Customers, mean P(alive) and total CLV per lifecycle stage and value tier.
fn summarize_tiers(batch: &arrow::array::RecordBatch) -> Result<arrow::array::RecordBatch> {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let col = |name: &str| batch.column_by_name(name).cloned();
    let (Some(stage), Some(tier), Some(pa), Some(clv)) = (
        col("lifecycle_stage"),
        col("value_tier"),
        col("p_alive"),
        col("expected_clv"),
    ) else {
        return Err(Error::Data("customer_scores batch lacks model columns".into()).into());
    };
    let (stage, tier) = (stage.as_string::<i32>(), tier.as_string::<i32>());
    let (pa, clv) = (
        pa.as_primitive::<arrow::datatypes::Float64Type>(),
        clv.as_primitive::<arrow::datatypes::Float64Type>(),
    );
    let mut acc: std::collections::BTreeMap<(String, String), (i64, f64, f64)> = Default::default();
    for i in 0..batch.num_rows() {
        let e = acc
            .entry((tier.value(i).to_string(), stage.value(i).to_string()))
            .or_default();
        e.0 += 1;
        e.1 += pa.value(i);
        e.2 += clv.value(i);
    }
    let order = |t: &str| match t {
        "Top 1%" => 0,
        "Top 5%" => 1,
        "Top 20%" => 2,
        _ => 3,
    };
    let mut rows: Vec<_> = acc.into_iter().collect();
    rows.sort_by(|a, b| {
        order(&a.0 .0)
            .cmp(&order(&b.0 .0))
            .then(a.0 .1.cmp(&b.0 .1))
    });
    let schema = Arc::new(Schema::new(vec![
        Field::new("value_tier", DataType::Utf8, false),
        Field::new("lifecycle_stage", DataType::Utf8, false),
        Field::new("customers", DataType::Int64, false),
        Field::new("avg_p_alive", DataType::Float64, false),
        Field::new("total_expected_clv", DataType::Float64, false),
    ]));
    Ok(arrow::array::RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0 .0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0 .1.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1 .0))),
            Arc::new(Float64Array::from_iter_values(
                rows.iter()
                    .map(|r| (r.1 .1 / r.1 .0 as f64 * 1000.0).round() / 1000.0),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| (r.1 .2 * 100.0).round() / 100.0),
            )),
        ],
    )?)
}

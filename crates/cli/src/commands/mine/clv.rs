//! `crmcube mine clv`: fit a purchase model and Gamma-Gamma spend, score customers.

use super::warehouse_transactions;
use crate::commands::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_ingest::value::{date_of_days, days_of_date};
use crmcube_mining::clv::{holdout_table, predict, HoldoutRow};
use crmcube_mining::transaction_log::{read_transaction_log, LogColumns};
use crmcube_mining::transactions::{
    calibration_histories, check_amounts, CalibrationHistory, NonPositiveAmounts,
};
use crmcube_mining::{
    ClvSettings, Fit, GammaGammaParams, GroupedHistories, ModelKind, Prediction, PurchaseModel,
    TimeUnit, Transaction,
};
use crmcube_model::Error;
use std::path::PathBuf;
use std::sync::Arc;

/// Purchase model choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    /// BG/NBD (Fader, Hardie & Lee 2005).
    Bgnbd,
    /// Pareto/NBD (Schmittlein, Morrison & Colombo 1987).
    Paretonbd,
    /// MBG/NBD (Batislam, Denizel & Filiztekin 2007).
    Mbgnbd,
}

impl ModelArg {
    fn kind(self) -> ModelKind {
        match self {
            ModelArg::Bgnbd => ModelKind::BgNbd,
            ModelArg::Paretonbd => ModelKind::ParetoNbd,
            ModelArg::Mbgnbd => ModelKind::MbgNbd,
        }
    }
    fn name(self) -> &'static str {
        match self {
            ModelArg::Bgnbd => "bgnbd",
            ModelArg::Paretonbd => "paretonbd",
            ModelArg::Mbgnbd => "mbgnbd",
        }
    }
}

/// Time unit choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UnitArg {
    /// Days.
    Days,
    /// Weeks (days / 7).
    Weeks,
}

impl UnitArg {
    /// The library's unit.
    pub fn unit(self) -> TimeUnit {
        match self {
            UnitArg::Days => TimeUnit::Days,
            UnitArg::Weeks => TimeUnit::Weeks,
        }
    }
}

/// Where the transactions come from.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Warehouse directory: purchases are fact_sales lines not returned, revenue summed
    /// per customer (dim_customer.customer_id) and day of order_ts.
    #[arg(
        long,
        conflicts_with = "transactions",
        required_unless_present = "transactions"
    )]
    pub warehouse: Option<PathBuf>,
    /// Transaction log, .csv (with a header) or .parquet.
    #[arg(long, requires_all = ["customer_col", "date_col", "amount_col"])]
    pub transactions: Option<PathBuf>,
    /// Customer identifier column of --transactions.
    #[arg(long)]
    pub customer_col: Option<String>,
    /// Date column of --transactions: a date, a timestamp, or text starting YYYY-MM-DD.
    #[arg(long)]
    pub date_col: Option<String>,
    /// Amount column of --transactions; amounts must be > 0.
    #[arg(long)]
    pub amount_col: Option<String>,
    /// Drop rows with an amount <= 0 (and report how many) instead of stopping.
    #[arg(long)]
    pub exclude_nonpositive: bool,
}

/// Flags of `mine clv`.
#[derive(clap::Args)]
pub struct ClvArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Purchase model.
    #[arg(long, value_enum, default_value = "bgnbd")]
    pub model: ModelArg,
    /// End of the calibration period: the models are fitted on purchases up to this
    /// day and the purchases after it (to --holdout-end) are the holdout.
    #[arg(long)]
    pub calibration_end: Option<NaiveDate>,
    /// End of the holdout period (default: --as-of).
    #[arg(long)]
    pub holdout_end: Option<NaiveDate>,
    /// Ignore purchases after this day (default: the last purchase day); without
    /// --calibration-end the models are fitted on everything up to it.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Unit of recency, age T and the fitted rate parameters.
    #[arg(long, value_enum, default_value = "weeks")]
    pub time_unit: UnitArg,
    /// CLV and prediction horizon in months (30 days or 4.345 weeks each).
    #[arg(long, default_value_t = 12)]
    pub horizon_months: u32,
    /// Discount rate per month (0.01 = 1%).
    #[arg(long, default_value_t = 0.01)]
    pub discount_rate: f64,
    /// Discount rate per year instead of --discount-rate (monthly = (1+annual)^(1/12) − 1).
    #[arg(long, conflicts_with = "discount_rate")]
    pub annual_discount_rate: Option<f64>,
    /// Per-customer predictions CSV.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Fitted parameters, log-likelihoods and counts as JSON.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Format of the summaries printed on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Transactions from the chosen input, amounts checked.
pub fn load_transactions(ctx: &Context, input: &InputArgs) -> Result<Vec<Transaction>> {
    let policy = if input.exclude_nonpositive {
        NonPositiveAmounts::Exclude
    } else {
        NonPositiveAmounts::Reject
    };
    let (rows, dropped) = match (&input.warehouse, &input.transactions) {
        (Some(w), _) => {
            let rt = runtime()?;
            let raw = rt.block_on(async {
                let wh = Warehouse::open(w).await?;
                warehouse_transactions(&wh, true).await
            })?;
            let origin = format!("{} fact_sales (customer-day totals)", w.display());
            check_amounts(raw, policy, &origin, "revenue")?
        }
        (None, Some(path)) => {
            let cols = LogColumns {
                customer: input.customer_col.clone().unwrap_or_default(),
                date: input.date_col.clone().unwrap_or_default(),
                amount: input.amount_col.clone().unwrap_or_default(),
            };
            let log = read_transaction_log(path, &cols, policy)?;
            ctx.note(format!(
                "read {} rows of {} ({} customer-days)",
                log.rows,
                path.display(),
                log.transactions.len()
            ));
            (log.transactions, log.dropped_nonpositive)
        }
        (None, None) => {
            return Err(Error::Usage("give --warehouse or --transactions".into()).into())
        }
    };
    if dropped > 0 {
        ctx.note(format!("excluded {dropped} rows with an amount <= 0"));
    }
    if rows.is_empty() {
        return Err(Error::Data("no purchases to model".into()).into());
    }
    Ok(rows)
}

/// A fitted CLV model over calibration histories.
pub struct ClvRun {
    /// The per-customer histories.
    pub customers: Vec<CalibrationHistory>,
    /// Purchase model fit.
    pub purchases: Fit<PurchaseModel>,
    /// Spend model fit.
    pub spend: Fit<GammaGammaParams>,
    /// Per-customer predictions, aligned with `customers`.
    pub predictions: Vec<Prediction>,
    /// Distinct (x, t_x, T) histories.
    pub distinct_histories: usize,
    /// Seconds spent per stage: summarise, fit_purchases, fit_spend, score.
    pub timings: Vec<(&'static str, f64)>,
}

/// Fits the purchase and spend models on the histories at `calibration_end` and
/// scores every customer.
pub fn fit_and_score(
    rows: &[Transaction],
    calibration_end: i32,
    holdout_end: Option<i32>,
    kind: ModelKind,
    settings: &ClvSettings,
) -> Result<ClvRun> {
    let mut clock = Stopwatch::new();
    let customers = calibration_histories(rows, calibration_end, holdout_end, settings.unit);
    if customers.is_empty() {
        return Err(Error::Data(format!(
            "no customer purchased on or before {}; nothing to fit",
            date_of_days(calibration_end)
        ))
        .into());
    }
    let histories: Vec<_> = customers.iter().map(|c| c.history).collect();
    let grouped = GroupedHistories::new(&histories);
    clock.lap("summarise");
    let purchases = PurchaseModel::fit(kind, &grouped);
    clock.lap("fit_purchases");
    let spends: Vec<_> = customers.iter().map(|c| c.spend).collect();
    if !spends.iter().any(|s| s.x >= 1.0) {
        return Err(Error::Data(
            "no customer has a repeat purchase; the spend model cannot be fitted".into(),
        )
        .into());
    }
    let spend = GammaGammaParams::fit(&spends);
    clock.lap("fit_spend");
    let pairs: Vec<_> = customers.iter().map(|c| (c.history, c.spend)).collect();
    let predictions = predict(&purchases.params, &spend.params, &pairs, settings);
    clock.lap("score");
    Ok(ClvRun {
        customers,
        purchases,
        spend,
        predictions,
        distinct_histories: grouped.rows.len(),
        timings: clock.laps,
    })
}

/// Wall-clock seconds per stage, in order.
struct Stopwatch {
    last: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Stopwatch {
    fn new() -> Self {
        Stopwatch {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps
            .push((name, now.duration_since(self.last).as_secs_f64()));
        self.last = now;
    }
}

/// Runs `mine clv`.
pub fn run(ctx: &Context, a: ClvArgs) -> Result<()> {
    let mut clock = Stopwatch::new();
    let rows = load_transactions(ctx, &a.input)?;
    clock.lap("read");
    let last = rows.iter().map(|t| t.day).max().unwrap_or(0);
    let as_of = a.as_of.map(days_of_date).unwrap_or(last);
    let calibration_end = a.calibration_end.map(days_of_date).unwrap_or(as_of);
    let holdout_end = match (a.calibration_end, a.holdout_end) {
        (_, Some(h)) => Some(days_of_date(h)),
        (Some(_), None) => Some(as_of),
        (None, None) => None,
    };
    if let Some(h) = holdout_end {
        if h <= calibration_end {
            return Err(Error::Usage(format!(
                "--holdout-end {} must be after --calibration-end {}",
                date_of_days(h),
                date_of_days(calibration_end)
            ))
            .into());
        }
    }
    let monthly = match a.annual_discount_rate {
        Some(y) => (1.0 + y).powf(1.0 / 12.0) - 1.0,
        None => a.discount_rate,
    };
    if !(monthly > -1.0 && monthly.is_finite()) {
        return Err(Error::Usage(format!(
            "the discount rate must be a number above -1, found {monthly}"
        ))
        .into());
    }
    let settings = ClvSettings {
        horizon_months: a.horizon_months,
        monthly_discount: monthly,
        unit: a.time_unit.unit(),
    };
    let rows: Vec<Transaction> = rows
        .into_iter()
        .filter(|t| t.day <= holdout_end.unwrap_or(as_of).max(as_of))
        .collect();
    let started = std::time::Instant::now();
    let mut run = fit_and_score(
        &rows,
        calibration_end,
        holdout_end,
        a.model.kind(),
        &settings,
    )?;
    ctx.note(format!(
        "fitted {} on {} customers ({} distinct histories) in {:.2} s",
        a.model.name(),
        run.customers.len(),
        run.distinct_histories,
        started.elapsed().as_secs_f64()
    ));
    clock.last = std::time::Instant::now();
    if let Some(p) = &a.output {
        let batch = predictions_batch(&run, &settings)?;
        emit(Some(p), &batch.schema(), &[batch], Format::Csv)?;
        ctx.note(format!(
            "wrote {} predictions to {}",
            run.customers.len(),
            p.display()
        ));
        clock.lap("write");
    }
    let mut timings = clock.laps;
    timings.splice(1..1, std::mem::take(&mut run.timings));
    let holdout = holdout_end.map(|h| {
        holdout_table(
            &run.purchases.params,
            &run.customers,
            f64::from(h - calibration_end) / settings.unit.days(),
        )
    });
    if let Some(p) = &a.params {
        let doc = serde_json::json!({
            "model": a.model.name(),
            "params": run.purchases.params,
            "log_likelihood": run.purchases.log_likelihood,
            "spend_model": "gammagamma",
            "spend_params": run.spend.params,
            "spend_log_likelihood": run.spend.log_likelihood,
            "customers": run.customers.len(),
            "repeat_customers": run.customers.iter().filter(|c| c.history.x >= 1.0).count(),
            "distinct_histories": run.distinct_histories,
            "purchase_days": run.customers.iter().map(|c| u64::from(c.summary.transactions)).sum::<u64>(),
            "time_unit": settings.unit,
            "calibration_end": date_of_days(calibration_end).to_string(),
            "holdout_end": holdout_end.map(|h| date_of_days(h).to_string()),
            "horizon_months": settings.horizon_months,
            "monthly_discount_rate": settings.monthly_discount,
            "holdout": holdout,
            "evaluations": {
                "purchases": run.purchases.evaluations,
                "spend": run.spend.evaluations,
            },
            "timings_seconds": timings.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(p, serde_json::to_string_pretty(&doc)? + "\n")
            .map_err(|e| Error::io(p, e))?;
    }
    let batch = params_batch(a.model.name(), &run)?;
    emit(None, &batch.schema(), &[batch], a.format)?;
    if let Some(rows) = holdout {
        let batch = holdout_batch(&rows)?;
        emit(None, &batch.schema(), &[batch], a.format)?;
    }
    Ok(())
}

/// Parameters and log-likelihoods as a table.
fn params_batch(model: &str, run: &ClvRun) -> Result<RecordBatch> {
    let mut names: Vec<(&str, &str, f64)> = match run.purchases.params {
        PurchaseModel::BgNbd(p) => vec![
            (model, "r", p.r),
            (model, "alpha", p.alpha),
            (model, "a", p.a),
            (model, "b", p.b),
        ],
        PurchaseModel::ParetoNbd(p) => vec![
            (model, "r", p.r),
            (model, "alpha", p.alpha),
            (model, "s", p.s),
            (model, "beta", p.beta),
        ],
    };
    names.push((model, "log_likelihood", run.purchases.log_likelihood));
    let g = run.spend.params;
    names.extend([
        ("gammagamma", "p", g.p),
        ("gammagamma", "q", g.q),
        ("gammagamma", "gamma", g.gamma),
        ("gammagamma", "log_likelihood", run.spend.log_likelihood),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("parameter", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(names.iter().map(|n| n.0))),
            Arc::new(StringArray::from_iter_values(names.iter().map(|n| n.1))),
            Arc::new(Float64Array::from_iter_values(
                names.iter().map(|n| round(n.2, 6)),
            )),
        ],
    )?)
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// The calibration/holdout comparison as a table.
fn holdout_batch(rows: &[HoldoutRow]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("calibration_frequency", DataType::Utf8, false),
        Field::new("customers", DataType::Int64, false),
        Field::new("actual_holdout_purchases", DataType::Float64, false),
        Field::new("expected_holdout_purchases", DataType::Float64, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.frequency.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.customers as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| round(r.actual, 4)),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| round(r.expected, 4)),
            )),
        ],
    )?)
}

/// Per-customer predictions.
fn predictions_batch(run: &ClvRun, s: &ClvSettings) -> Result<RecordBatch> {
    let c = &run.customers;
    let p = &run.predictions;
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer", DataType::Utf8, false),
        Field::new("frequency", DataType::Int64, false),
        Field::new("recency", DataType::Float64, false),
        Field::new("T", DataType::Float64, false),
        Field::new("monetary_mean", DataType::Float64, false),
        Field::new("p_alive", DataType::Float64, false),
        Field::new(
            format!("expected_purchases_{}m", s.horizon_months),
            DataType::Float64,
            false,
        ),
        Field::new("p_no_purchase", DataType::Float64, false),
        Field::new("expected_avg_spend", DataType::Float64, false),
        Field::new("clv", DataType::Float64, false),
    ]));
    let col = |f: fn(&Prediction) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(p.iter().map(f)))
    };
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                c.iter().map(|c| c.customer.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                c.iter().map(|c| c.history.x as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                c.iter().map(|c| c.history.t_x),
            )),
            Arc::new(Float64Array::from_iter_values(
                c.iter().map(|c| c.history.t),
            )),
            Arc::new(Float64Array::from_iter_values(
                c.iter().map(|c| c.spend.mean),
            )),
            col(|p| p.p_alive),
            col(|p| p.expected_purchases),
            col(|p| p.p_no_purchase),
            col(|p| p.expected_spend),
            col(|p| p.clv),
        ],
    )?)
}

//! `mine churn`: features from the warehouse, the churn model and its report.

use super::{batch, cast, floats, ints, last_day, purchases, round, rows, strings};
use crate::commands::{runtime, Context};
use crate::output::{emit, write_batches, Format};
use anyhow::Result;
use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema};
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_mining::calendar::{date_of_day, day_of_date};
use crmcube_mining::churn::{
    train_and_score, CampaignEvent, ChurnEvents, ChurnReport, InteractionEvent, InteractionKind,
    TicketEvent, FEATURE_NAMES,
};
use crmcube_mining::logistic::LogisticOptions;
use crmcube_model::Error;
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

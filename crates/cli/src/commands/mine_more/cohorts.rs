//! `mine cohorts`: the cohort retention matrix.

use super::{batch, floats, ints, last_day, purchases, round, strings};
use crate::commands::{runtime, Context};
use crate::output::{emit, Format};
use anyhow::Result;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use crmcube_cube::Warehouse;
use crmcube_mining::calendar::{date_of_day, day_of_date};
use crmcube_mining::cohorts::{cohort_matrix, CohortMetric};
use crmcube_model::Error;
use std::path::PathBuf;
use std::sync::Arc;

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

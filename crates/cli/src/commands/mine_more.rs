//! `crmcube mine churn|cohorts|migration|basket`: churn model, cohort retention, segment
//! migration and market-basket rules. The warehouse is read with SQL; the numerical work
//! is in `crmcube_mining`.

mod basket;
mod churn;
mod cohorts;
mod migration;

pub use basket::{run_basket, BasketArgs};
pub use churn::{run_churn, ChurnArgs};
pub use cohorts::{run_cohorts, CohortsArgs};
pub use migration::{run_migration, MigrationArgs};

use anyhow::Result;
use arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Schema};
use crmcube_cube::Warehouse;
use crmcube_mining::Transaction;
use crmcube_model::Error;
use std::sync::Arc;

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

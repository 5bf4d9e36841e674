//! Reading a transaction log (CSV with a header, or Parquet): only the customer,
//! date and amount columns are used; dates (`YYYY-MM-DD`, timestamps that start with
//! one, or typed Parquet dates and timestamps) become day numbers and every row is
//! checked, so an error names its row. Same-day rows are merged later by the
//! conventions in `transactions`.

use crate::transactions::{check_amounts, NonPositiveAmounts, Transaction};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use chrono::{Datelike, NaiveDate};
use crmcube_model::{Error, Result};
use std::path::Path;

/// Which columns hold what.
#[derive(Debug, Clone)]
pub struct LogColumns {
    /// Customer identifier column.
    pub customer: String,
    /// Purchase date or timestamp column.
    pub date: String,
    /// Amount column.
    pub amount: String,
}

/// Transactions of a log (one per row read) and the rows dropped for non-positive
/// amounts (always 0 under `NonPositiveAmounts::Reject`).
#[derive(Debug, Clone)]
pub struct TransactionLog {
    /// The rows kept.
    pub transactions: Vec<Transaction>,
    /// Rows read.
    pub rows: usize,
    /// Rows dropped for an amount ≤ 0.
    pub dropped_nonpositive: usize,
}

/// Reads `path` (`.csv` or `.parquet`).
pub fn read_transaction_log(
    path: &Path,
    cols: &LogColumns,
    policy: NonPositiveAmounts,
) -> Result<TransactionLog> {
    let origin = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let raw = match ext.as_str() {
        "csv" => read_csv(path, &origin, cols)?,
        "parquet" | "pq" => read_parquet(path, &origin, cols)?,
        _ => {
            return Err(Error::Usage(format!(
                "{origin}: transaction logs must be .csv or .parquet files"
            )))
        }
    };
    let rows = raw.len();
    let (transactions, dropped) = check_amounts(raw, policy, &origin, &cols.amount)?;
    Ok(TransactionLog {
        transactions,
        rows,
        dropped_nonpositive: dropped,
    })
}

fn missing_column(origin: &str, what: &str, column: &str, have: &[String]) -> Error {
    Error::Data(format!(
        "{origin}: no {what} column `{column}`; the file has columns: {}",
        have.join(", ")
    ))
}

fn bad_value(origin: &str, row: usize, column: &str, value: &str, expected: &str) -> Error {
    Error::Data(format!(
        "{origin}: data row {row}, column `{column}`: value `{value}` is not {expected}"
    ))
}

const DATE_EXPECTED: &str = "a date YYYY-MM-DD or a timestamp starting with one";

fn read_csv(path: &Path, origin: &str, cols: &LogColumns) -> Result<Vec<Transaction>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::Data(format!("{origin}: {other:?}")),
    })?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| Error::Data(format!("{origin}: cannot read the header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let find = |what: &str, c: &str| {
        header
            .iter()
            .position(|h| h == c)
            .ok_or_else(|| missing_column(origin, what, c, &header))
    };
    let (ci, di, ai) = (
        find("customer", &cols.customer)?,
        find("date", &cols.date)?,
        find("amount", &cols.amount)?,
    );
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    let mut row = 0;
    loop {
        row += 1;
        let more = r
            .read_record(&mut rec)
            .map_err(|e| Error::Data(format!("{origin}: data row {row}: {e}")))?;
        if !more {
            break;
        }
        let field = |k: usize| rec.get(k).unwrap_or("");
        let customer = field(ci).trim();
        if customer.is_empty() {
            return Err(bad_value(
                origin,
                row,
                &cols.customer,
                "",
                "a customer identifier",
            ));
        }
        let Some(day) = parse_day(field(di)) else {
            return Err(bad_value(origin, row, &cols.date, field(di), DATE_EXPECTED));
        };
        let Some(amount) = field(ai)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|a| a.is_finite())
        else {
            return Err(bad_value(origin, row, &cols.amount, field(ai), "a number"));
        };
        out.push(Transaction {
            customer: customer.to_string(),
            day,
            amount,
        });
    }
    Ok(out)
}

fn read_parquet(path: &Path, origin: &str, cols: &LogColumns) -> Result<Vec<Transaction>> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let fmt = |e: &dyn std::fmt::Display| Error::Data(format!("{origin}: {e}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fmt(&e))?;
    let have: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut indices = Vec::new();
    for (what, c) in [
        ("customer", &cols.customer),
        ("date", &cols.date),
        ("amount", &cols.amount),
    ] {
        let i = have
            .iter()
            .position(|h| h == c)
            .ok_or_else(|| missing_column(origin, what, c, &have))?;
        indices.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder.with_projection(mask).build().map_err(|e| fmt(&e))?;
    let mut out = Vec::new();
    let mut row = 0;
    for batch in reader {
        let batch = batch.map_err(|e| fmt(&e))?;
        let get = |c: &str| {
            batch
                .column_by_name(c)
                .cloned()
                .ok_or_else(|| missing_column(origin, "projected", c, &have))
        };
        let cast = |a: &arrow::array::ArrayRef, t: &DataType| {
            arrow::compute::cast(a, t).map_err(|e| fmt(&e))
        };
        let customer = cast(&get(&cols.customer)?, &DataType::Utf8)?;
        let customer = customer.as_string::<i32>();
        let date_raw = get(&cols.date)?;
        let date_text = cast(&date_raw, &DataType::Utf8)?;
        let date_text = date_text.as_string::<i32>();
        let typed = matches!(
            date_raw.data_type(),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        );
        let days = if typed {
            Some(cast(&date_raw, &DataType::Date32)?)
        } else {
            None
        };
        let amount_raw = get(&cols.amount)?;
        let amount_text = cast(&amount_raw, &DataType::Utf8)?;
        let amount_text = amount_text.as_string::<i32>();
        let numeric = amount_raw.data_type().is_numeric();
        let amounts = if numeric {
            Some(cast(&amount_raw, &DataType::Float64)?)
        } else {
            None
        };
        for i in 0..batch.num_rows() {
            row += 1;
            if customer.is_null(i) || customer.value(i).trim().is_empty() {
                return Err(bad_value(
                    origin,
                    row,
                    &cols.customer,
                    "",
                    "a customer identifier",
                ));
            }
            let text = |a: &arrow::array::StringArray| {
                if a.is_null(i) {
                    String::new()
                } else {
                    a.value(i).to_string()
                }
            };
            let day = match &days {
                Some(d) => {
                    let d = d.as_primitive::<Date32Type>();
                    (!d.is_null(i)).then(|| d.value(i))
                }
                None => (!date_text.is_null(i))
                    .then(|| parse_day(date_text.value(i)))
                    .flatten(),
            };
            let Some(day) = day else {
                return Err(bad_value(
                    origin,
                    row,
                    &cols.date,
                    &text(date_text),
                    DATE_EXPECTED,
                ));
            };
            let amount = match &amounts {
                Some(a) => {
                    let a = a.as_primitive::<Float64Type>();
                    (!a.is_null(i)).then(|| a.value(i))
                }
                None => (!amount_text.is_null(i))
                    .then(|| amount_text.value(i).trim().parse::<f64>().ok())
                    .flatten(),
            };
            let Some(amount) = amount.filter(|a| a.is_finite()) else {
                return Err(bad_value(
                    origin,
                    row,
                    &cols.amount,
                    &text(amount_text),
                    "a number",
                ));
            };
            out.push(Transaction {
                customer: customer.value(i).to_string(),
                day,
                amount,
            });
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 of a text starting with `YYYY-MM-DD`.
fn parse_day(text: &str) -> Option<i32> {
    let text = text.trim();
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (y, m, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let d = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, day)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    Some(d.num_days_from_ce() - 719_163)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps_parse_to_days() {
        assert_eq!(parse_day("1970-01-02"), Some(1));
        assert_eq!(parse_day("2025-12-22T21:18:10"), parse_day("2025-12-22"));
        assert_eq!(parse_day("2025-12-22 21:18"), parse_day("2025-12-22"));
        assert_eq!(parse_day("01/02/2024"), None);
        assert_eq!(parse_day("2025-13-01"), None);
        assert_eq!(parse_day("2025-12-221"), None);
    }

    #[test]
    fn csv_logs_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("crmcube-txlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.csv");
        std::fs::write(
            &p,
            "c,d,a,other\nA,2024-01-01,5,x\nA,2024-01-01T10:00:00,2.5,y\nB,2024-01-03,1,z\n",
        )
        .unwrap();
        let cols = LogColumns {
            customer: "c".into(),
            date: "d".into(),
            amount: "a".into(),
        };
        let log = read_transaction_log(&p, &cols, NonPositiveAmounts::Reject).unwrap();
        assert_eq!(log.rows, 3);
        assert_eq!(log.transactions.len(), 3);
        assert_eq!(log.transactions[1].day, log.transactions[0].day);
        assert_eq!(log.transactions[2].customer, "B");
        std::fs::remove_dir_all(&dir).ok();
    }
}

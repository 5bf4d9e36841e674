//! Dimensions other than dim_customer.

use super::columns::with_unknown;
use super::{Cols, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::{date_of_days, days_of_date};
use arrow::array::{ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray};
use chrono::{Datelike, NaiveDate};
use crmcube_model::keys::key_of;
use crmcube_model::keys::FastMap as HashMap;
use crmcube_model::types::ColumnType;
use crmcube_model::{EntitySpec, Error, Result, TableDef};
use std::sync::Arc;

/// Builds a dimension fed by one entity with a single-column primary key.
///
/// Column rules: the key column (type `key`) is the hash of the entity's primary key;
/// a column named like an export column takes its values; `<x>_name` takes the export's
/// `name` column. Returns the table and a map natural key → row in the staged batch.
pub fn build_simple_dims(
    table: &str,
    def: &TableDef,
    entity: &str,
    spec: &EntitySpec,
    staged: &StagedEntity,
) -> Result<RecordBatch> {
    let pk = match spec.primary_key.as_slice() {
        [one] => one.as_str(),
        _ => {
            return Err(Error::Schema {
                file: "export contract".into(),
                key: format!("entities.{entity}.primary_key"),
                message: format!("{table} needs a single-column primary key"),
            })
        }
    };
    let c = Cols::new(entity, staged);
    let ids = c.str(pk)?;
    let n = staged.batch.num_rows();
    let mut t = TableAssembler::new(table, def);
    for col in &def.columns {
        if col.ty == ColumnType::Key {
            let keys: Int64Array = ids.iter().map(|v| v.map(key_of)).collect();
            t.set(&col.name, Arc::new(keys));
        } else if let Some(a) = staged.batch.column_by_name(&col.name) {
            t.set(&col.name, a.clone());
        } else if col.name.ends_with("_name") {
            if let Some(a) = staged.batch.column_by_name("name") {
                t.set(&col.name, a.clone());
            }
        }
    }
    with_unknown(table, def, t.finish(n)?)
}

/// Builds dim_channel from the members listed in the schema.
pub fn build_dim_channel(def: &TableDef) -> Result<RecordBatch> {
    let n = def.members.len();
    let mut t = TableAssembler::new("dim_channel", def);
    for col in &def.columns {
        let a: ArrayRef = if col.ty == ColumnType::Key {
            let natural = col.name.trim_end_matches("_key");
            Arc::new(Int64Array::from_iter(
                def.members
                    .iter()
                    .map(|m| m.get(natural).map(|v| key_of(v))),
            ))
        } else {
            Arc::new(StringArray::from_iter(
                def.members.iter().map(|m| m.get(&col.name).cloned()),
            ))
        };
        t.set(&col.name, a);
    }
    with_unknown("dim_channel", def, t.finish(n)?)
}

/// Builds dim_date for every day of the years from `first` to `last` (day numbers).
pub fn build_dim_date(def: &TableDef, first: i32, last: i32) -> Result<RecordBatch> {
    let y0 = date_of_days(first).year();
    let y1 = date_of_days(last).year();
    let start =
        NaiveDate::from_ymd_opt(y0, 1, 1).ok_or_else(|| Error::Data("date out of range".into()))?;
    let end = NaiveDate::from_ymd_opt(y1, 12, 31)
        .ok_or_else(|| Error::Data("date out of range".into()))?;
    let days: Vec<NaiveDate> = start.iter_days().take_while(|d| *d <= end).collect();
    let n = days.len();
    let int = |f: &dyn Fn(&NaiveDate) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(days.iter().map(f)))
    };
    let text = |f: &dyn Fn(&NaiveDate) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(days.iter().map(f)))
    };
    let mut t = TableAssembler::new("dim_date", def);
    t.set(
        "date_key",
        int(&|d| i64::from(d.year() * 10_000 + d.month() as i32 * 100 + d.day() as i32)),
    )
    .set(
        "date",
        Arc::new(Date32Array::from_iter_values(
            days.iter().map(|d| days_of_date(*d)),
        )),
    )
    .set("year", int(&|d| i64::from(d.year())))
    .set("quarter", int(&|d| i64::from(d.month0() / 3 + 1)))
    .set(
        "year_quarter",
        text(&|d| format!("{}-Q{}", d.year(), d.month0() / 3 + 1)),
    )
    .set("month", int(&|d| i64::from(d.month())))
    .set("month_name", text(&|d| d.format("%B").to_string()))
    .set(
        "year_month",
        text(&|d| format!("{:04}-{:02}", d.year(), d.month())),
    )
    .set("day", int(&|d| i64::from(d.day())))
    .set(
        "day_of_week",
        int(&|d| i64::from(d.weekday().number_from_monday())),
    )
    .set("day_name", text(&|d| d.format("%A").to_string()))
    .set("iso_year", int(&|d| i64::from(d.iso_week().year())))
    .set("iso_week", int(&|d| i64::from(d.iso_week().week())))
    .set(
        "is_weekend",
        Arc::new(BooleanArray::from_iter(
            days.iter()
                .map(|d| Some(d.weekday().number_from_monday() >= 6)),
        )),
    );
    t.finish(n)
}

/// region_id → (region_key, city, country, region) for resolving customers.
pub fn region_lookup(
    staged: &StagedEntity,
) -> Result<HashMap<String, super::customers::RegionInfo>> {
    let c = Cols::new("regions", staged);
    let (ids, city, country, region) = (
        c.str("region_id")?,
        c.str("city")?,
        c.str("country")?,
        c.str("region")?,
    );
    Ok((0..staged.batch.num_rows())
        .map(|i| {
            (
                ids.value(i).to_string(),
                (
                    key_of(ids.value(i)),
                    city.value(i).to_string(),
                    country.value(i).to_string(),
                    region.value(i).to_string(),
                ),
            )
        })
        .collect())
}

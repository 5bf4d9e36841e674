//! Conforming staged export rows to the star schema: surrogate keys, SCD2 customer
//! versions, Unknown members, dim_date, and facts resolved against their dimensions.
//!
//! Table layouts come from the warehouse schema; this module computes column values by
//! name and [`TableAssembler`] lays them out in the schema's order and types.

mod columns;
mod customers;
mod dims;
mod facts;
mod ids;
mod interactions;
mod numbered;
mod sales;

pub use columns::TableAssembler;

pub use customers::build_dim_customer;
pub use customers::CustomerVersions;
pub use dims::{build_dim_channel, build_dim_date, build_simple_dims, region_lookup};
pub use facts::{
    build_fact_campaign_response, build_fact_ticket, FactOutput, FactReject, Resolver,
};
pub use ids::{IdMap, Members};
pub use interactions::{Feed, InteractionFact};
pub use sales::SalesFact;

/// The order in which a monthly fact hands a month's rows to the writer, from the
/// table's `sort_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonthOrder {
    /// By date_key; the rows of a day keep their source order.
    Day,
    /// By (date_key, customer_key); rows that tie keep their source order.
    DayCustomer,
    /// Another order: the fact hands the month whole, and the writer sorts it.
    Other,
}

impl MonthOrder {
    pub(crate) fn of(sort_by: &[String]) -> Self {
        if sort_by == ["date_key"] {
            MonthOrder::Day
        } else if sort_by == ["date_key", "customer_key"] {
            MonthOrder::DayCustomer
        } else {
            MonthOrder::Other
        }
    }
}

/// The months a monthly fact's rows fall in, with each month's count of rows, and the
/// rows' time range.
#[derive(Debug, Clone, Default)]
pub struct MonthIndex {
    /// The months with rows (`YYYYMM`, ascending).
    pub(crate) months: Vec<i32>,
    /// The number of rows of each month.
    pub(crate) rows: Vec<usize>,
    /// The earliest and latest time (microseconds since 1970-01-01), if any row.
    pub(crate) ts_range: Option<(i64, i64)>,
}

/// A fact built to be written a month at a time: on a first load each month is made,
/// written and dropped in turn (see `write::write_months`).
pub trait MonthlyFact: Sync {
    /// The timestamp column whose month places a row (the table's partition column
    /// as the warehouse schema ships it).
    fn time_column(&self) -> &str;
    /// The fact's months and time range.
    fn index(&self) -> &MonthIndex;
    /// The months with rows (`YYYYMM`, ascending).
    fn months(&self) -> &[i32] {
        &self.index().months
    }
    /// The number of rows of each of [`MonthlyFact::months`].
    fn month_rows(&self) -> &[usize] {
        &self.index().rows
    }
    /// The first and last day (days since 1970-01-01) of the rows, if any.
    fn day_range(&self) -> Option<(i32, i32)> {
        use crate::value::days_of_micros;
        self.index()
            .ts_range
            .map(|(lo, hi)| (days_of_micros(lo), days_of_micros(hi)))
    }
    /// Month `k` (an index of [`MonthlyFact::months`]) for the writer.
    fn month(&self, k: usize) -> Result<crate::write::MonthRows<'_>>;
    /// Month `k` whole, in the table's order when it is one of [`MonthOrder`]'s.
    fn build_month(&self, k: usize) -> Result<RecordBatch>;
    /// The table's columns with no rows.
    fn build_empty(&self) -> Result<RecordBatch>;
    /// Every month's rows (for a load that merges them with the live table, or a
    /// table partitioned otherwise), or one empty batch when there are none.
    fn build_all(&self) -> Result<Vec<RecordBatch>> {
        use rayon::prelude::*;
        if self.months().is_empty() {
            return Ok(vec![self.build_empty()?]);
        }
        (0..self.months().len())
            .into_par_iter()
            .map(|k| self.build_month(k))
            .collect()
    }
}

use crate::entity::StagedEntity;
use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};
use crmcube_model::{Error, Result};

/// Typed access to a staged entity's columns by contract name.
pub struct Cols<'a> {
    entity: &'a str,
    batch: &'a RecordBatch,
}

impl<'a> Cols<'a> {
    /// Column access to `staged`, naming `entity` in errors.
    pub fn new(entity: &'a str, staged: &'a StagedEntity) -> Self {
        Self::of_batch(entity, &staged.batch)
    }

    /// Column access to a batch of `entity`'s staged rows.
    pub fn of_batch(entity: &'a str, batch: &'a RecordBatch) -> Self {
        Cols { entity, batch }
    }

    fn col(&self, name: &str) -> Result<&'a dyn Array> {
        self.batch
            .column_by_name(name)
            .map(|a| a.as_ref())
            .ok_or_else(|| Error::Schema {
                file: "export contract".into(),
                key: format!("entities.{}.columns.{name}", self.entity),
                message: "column is needed to build the warehouse but not in the contract".into(),
            })
    }

    fn typed<T>(
        &self,
        name: &str,
        expected: &str,
        f: impl Fn(&'a dyn Array) -> Option<&'a T>,
    ) -> Result<&'a T> {
        let a = self.col(name)?;
        f(a).ok_or_else(|| Error::Schema {
            file: "export contract".into(),
            key: format!("entities.{}.columns.{name}", self.entity),
            message: format!("must have type {expected}"),
        })
    }

    /// The `str` column called `name`.
    pub fn str(&self, name: &str) -> Result<&'a StringArray> {
        self.typed(name, "string", |a| a.as_string_opt::<i32>())
    }
    /// The `int` column called `name`.
    pub fn int(&self, name: &str) -> Result<&'a Int64Array> {
        self.typed(name, "int", |a| a.as_primitive_opt::<Int64Type>())
    }
    /// The `dec` column called `name`.
    pub fn dec(&self, name: &str) -> Result<&'a Decimal128Array> {
        self.typed(name, "decimal", |a| a.as_primitive_opt::<Decimal128Type>())
    }
    /// The `bool` column called `name`.
    pub fn bool(&self, name: &str) -> Result<&'a BooleanArray> {
        self.typed(name, "bool", |a| a.as_boolean_opt())
    }
    /// The `date` column called `name`.
    pub fn date(&self, name: &str) -> Result<&'a Date32Array> {
        self.typed(name, "date", |a| a.as_primitive_opt::<Date32Type>())
    }
    /// The `ts` column called `name`.
    pub fn ts(&self, name: &str) -> Result<&'a TimestampMicrosecondArray> {
        self.typed(name, "timestamp", |a| {
            a.as_primitive_opt::<TimestampMicrosecondType>()
        })
    }
    /// Scale of a decimal column.
    pub fn scale(&self, name: &str) -> Result<i8> {
        Ok(self.dec(name)?.scale())
    }
}

/// Remembers the last lookup of a row-by-row resolution. Exports usually list the rows of
/// one parent together (an order's lines, a session's events, a customer's sessions), so
/// most rows repeat the previous row's key and skip the hash lookup.
pub(crate) struct LastLookup<'a, T> {
    last: Option<(&'a str, T)>,
}

impl<'a, T: Copy> LastLookup<'a, T> {
    pub(crate) fn new() -> Self {
        LastLookup { last: None }
    }

    /// The value of `key`: the remembered one when `key` repeats, else `lookup(key)`.
    pub(crate) fn get(&mut self, key: &'a str, lookup: impl FnOnce(&'a str) -> T) -> T {
        match self.last {
            Some((last, v)) if ids::same_str(last, key) => v,
            _ => {
                let v = lookup(key);
                self.last = Some((key, v));
                v
            }
        }
    }
}

/// Optional string value.
pub(crate) fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// Rescales a decimal value to the warehouse's money scale (2).
pub fn to_money(v: i128, scale: i8) -> i128 {
    match scale {
        2 => v,
        s if s < 2 => v * 10i128.pow((2 - s) as u32),
        // Contract scales above 2 are rounded half away from zero to cents.
        s => {
            let d = 10i128.pow((s - 2) as u32);
            let q = v / d;
            let r = v % d;
            if r.abs() * 2 >= d {
                q + v.signum()
            } else {
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LastLookup;

    #[test]
    fn last_lookup_repeats_only_the_previous_key() {
        let mut calls = Vec::new();
        let mut memo = LastLookup::new();
        for key in ["a", "a", "b", "a", "a", "b"] {
            let v = memo.get(key, |k| {
                calls.push(k);
                k.len() + calls.len()
            });
            assert!(v >= 2);
        }
        assert_eq!(calls, ["a", "b", "a", "b"]);
    }
}

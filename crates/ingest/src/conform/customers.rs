//! dim_customer as a type-2 slowly changing dimension.
//!
//! The customers export is a change log (one row per customer and `updated_at`). Rows
//! of a customer are ordered by `updated_at`; a row opens a new version only if one of
//! the schema's tracked attributes differs from the version before (otherwise it is
//! folded into it). The first version is valid from 1900-01-01 so that every fact finds
//! a version; each later one from its `updated_at`; `valid_to` is the next version's
//! `valid_from` (exclusive) or 9999-12-31 for the current one. Untracked attributes
//! (gender, birth date, signup date, acquisition channel) are type 1: every version
//! shows the latest value. The first version's surrogate key is the hash of
//! customer_id; a later version's is the hash of (customer_id, valid_from).

use super::columns::with_unknown;
use super::{opt_str, Cols, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::date_of_days;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringBuilder,
    TimestampMicrosecondArray, UInt32Array,
};
use chrono::{Datelike, NaiveDate};
use crmcube_model::keys::FastMap as HashMap;
use crmcube_model::keys::{key_of, surrogate_key, UNKNOWN_KEY};
use crmcube_model::{Error, Result, TableDef};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::sync::Arc;

/// Start of the first version of every customer (1900-01-01T00:00:00).
pub const VALID_FROM_MIN: i64 = -2_208_988_800_000_000;
/// End of every current version (9999-12-31T00:00:00).
pub const VALID_TO_MAX: i64 = 253_402_214_400_000_000;

/// For each customer_id, its versions as (valid_from, surrogate key), oldest first.
#[derive(Default)]
pub struct CustomerVersions {
    /// Where each customer's versions are in `all`: (start, count).
    versions: super::Members<(u32, u32)>,
    /// Every customer's versions, one customer after another (one allocation, not one
    /// per customer: a lookup reads them without following another pointer).
    all: Vec<(i64, i64)>,
}

/// A customer reference kept in 4 bytes: [`NO_CUSTOMER`] for none, [`ORPHAN_CUSTOMER`]
/// for an id that is not a customer's, else the customer's code among the
/// [`CustomerVersions`] (see [`super::Members`]).
pub type CustomerRef = u32;
pub const NO_CUSTOMER: CustomerRef = 0;
pub const ORPHAN_CUSTOMER: CustomerRef = u32::MAX;

impl CustomerVersions {
    /// The key of the version of `customer_id` valid at `ts`; `None` if the customer is unknown.
    pub fn key_at(&self, customer_id: &str, ts: i64) -> Option<i64> {
        self.versions
            .get(customer_id)
            .map(|&v| version_at(self.of(v), ts))
    }

    /// The versions at `(start, count)` of `all`.
    #[inline]
    fn of(&self, (start, count): (u32, u32)) -> &[(i64, i64)] {
        let start = start as usize;
        &self.all[start..start + count as usize]
    }

    /// Adds customer `id`'s versions (`all` from `start` on).
    fn add(&mut self, id: &str, start: usize) -> Result<()> {
        let end = u32::try_from(self.all.len())
            .map_err(|_| Error::format("dim_customer", "more than 4,294,967,295 versions"))?;
        // `start` is at most the end.
        let start = start as u32;
        self.versions.insert(id, (start, end - start))
    }

    /// A resolver that remembers its last customer (see [`CustomerCursor`]).
    pub fn cursor(&self) -> CustomerCursor<'_, '_> {
        CustomerCursor {
            lookup: self,
            last: super::LastLookup::new(),
        }
    }

    /// Resolves an optional customer reference: (key, orphaned).
    pub fn resolve(&self, customer_id: Option<&str>, ts: i64) -> (i64, bool) {
        match customer_id {
            None => (UNKNOWN_KEY, false),
            Some(id) => match self.key_at(id, ts) {
                Some(k) => (k, false),
                None => (UNKNOWN_KEY, true),
            },
        }
    }

    /// Resolves a customer reference kept as a [`CustomerRef`]: (key, orphaned).
    pub fn resolve_ref(&self, customer: CustomerRef, ts: i64) -> (i64, bool) {
        match customer {
            NO_CUSTOMER => (UNKNOWN_KEY, false),
            c => match self.versions.by_code(c) {
                Some(&v) => (version_at(self.of(v), ts), false),
                None => (UNKNOWN_KEY, true),
            },
        }
    }
}

fn version_at(v: &[(i64, i64)], ts: i64) -> i64 {
    let idx = v.partition_point(|(from, _)| *from <= ts);
    v[idx.saturating_sub(1)].1
}

/// Resolves customer references row after row, remembering the last customer's
/// versions (see [`LastLookup`](super::LastLookup)).
pub struct CustomerCursor<'v, 'a> {
    lookup: &'v CustomerVersions,
    last: super::LastLookup<'a, Option<Found<'v>>>,
}

/// A customer found by id: its code and versions.
type Found<'v> = (CustomerRef, &'v [(i64, i64)]);

impl<'v, 'a> CustomerCursor<'v, 'a> {
    /// Same as [`CustomerVersions::resolve`].
    pub fn resolve(&mut self, customer_id: Option<&'a str>, ts: i64) -> (i64, bool) {
        let (key, orphaned, _) = self.resolve_with_ref(customer_id, ts);
        (key, orphaned)
    }

    /// Resolves an optional customer reference: (key, orphaned, the reference as a
    /// [`CustomerRef`]).
    pub fn resolve_with_ref(
        &mut self,
        customer_id: Option<&'a str>,
        ts: i64,
    ) -> (i64, bool, CustomerRef) {
        let Some(id) = customer_id else {
            return (UNKNOWN_KEY, false, NO_CUSTOMER);
        };
        let lookup = self.lookup;
        let found = |id| {
            let code = lookup.versions.code(id)?;
            Some((code, lookup.of(*lookup.versions.by_code(code)?)))
        };
        match self.last.get(id, found) {
            Some((code, v)) => (version_at(v, ts), false, code),
            None => (UNKNOWN_KEY, true, ORPHAN_CUSTOMER),
        }
    }
}

/// Geography of a region_id: (region_key, city, country, region).
pub type RegionInfo = (i64, String, String, String);

/// Builds dim_customer; returns the table, the version lookup and the orphan count.
pub fn build_dim_customer(
    def: &TableDef,
    staged: &StagedEntity,
    regions: &HashMap<String, RegionInfo>,
) -> Result<(RecordBatch, CustomerVersions, u64)> {
    let scd = def.scd2.as_ref().ok_or_else(|| Error::Schema {
        file: "warehouse schema".into(),
        key: "tables.dim_customer.scd2".into(),
        message: "dim_customer needs scd2 settings (natural_key, version_column, tracked)".into(),
    })?;
    let c = Cols::new("customers", staged);
    let ids = c.str(&scd.natural_key)?;
    let updated = c.ts(&scd.version_column)?;
    let tracked: Vec<&dyn Array> = scd
        .tracked
        .iter()
        .map(|t| {
            staged
                .batch
                .column_by_name(t)
                .map(|a| a.as_ref())
                .ok_or_else(|| Error::Schema {
                    file: "warehouse schema".into(),
                    key: "tables.dim_customer.scd2.tracked".into(),
                    message: format!("`{t}` is not a column of the customers export"),
                })
        })
        .collect::<Result<_>>()?;

    // Tracked attributes compared by value (nulls equal each other only).
    let same: Vec<arrow::array::DynComparator> = tracked
        .iter()
        .map(|a| arrow::array::make_comparator(*a, *a, Default::default()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::format("dim_customer", e))?;

    // Group rows by customer, in updated_at order.
    let mut order: Vec<usize> = (0..staged.batch.num_rows()).collect();
    order.par_sort_by(|&a, &b| {
        ids.value(a)
            .cmp(ids.value(b))
            .then(updated.value(a).cmp(&updated.value(b)))
    });

    // (row whose attributes the version shows, row with latest type-1 values, valid_from)
    let mut versions: Vec<(usize, usize, i64)> = Vec::new();
    // At most a customer and a version a row.
    let mut lookup = CustomerVersions {
        versions: super::Members::with_capacity(order.len()),
        all: Vec::with_capacity(order.len()),
    };
    let mut i = 0;
    while i < order.len() {
        let id = ids.value(order[i]);
        let mut j = i;
        while j < order.len() && ids.value(order[j]) == id {
            j += 1;
        }
        let latest = order[j - 1];
        let start = lookup.all.len();
        let mut prev: Option<usize> = None;
        for &row in &order[i..j] {
            let changed = match prev {
                None => true,
                Some(p) => same.iter().any(|cmp| cmp(p, row).is_ne()),
            };
            if changed {
                let from = if prev.is_none() {
                    VALID_FROM_MIN
                } else {
                    updated.value(row)
                };
                let key = if prev.is_none() {
                    key_of(id)
                } else {
                    surrogate_key(&[id.as_bytes(), &from.to_le_bytes()])
                };
                versions.push((row, latest, from));
                lookup.all.push((from, key));
            }
            prev = Some(row);
        }
        lookup.add(id, start)?;
        i = j;
    }

    let n = versions.len();
    let attr_rows = UInt32Array::from(versions.iter().map(|v| v.0 as u32).collect::<Vec<_>>());
    let latest_rows = UInt32Array::from(versions.iter().map(|v| v.1 as u32).collect::<Vec<_>>());
    let take = |name: &str, latest: bool| -> Result<ArrayRef> {
        let a = staged
            .batch
            .column_by_name(name)
            .ok_or_else(|| Error::Schema {
                file: "export contract".into(),
                key: format!("entities.customers.columns.{name}"),
                message: "column is needed by dim_customer".into(),
            })?;
        arrow::compute::take(
            a.as_ref(),
            if latest { &latest_rows } else { &attr_rows },
            None,
        )
        .map_err(|e| Error::format("dim_customer", e))
    };

    let mut valid_from = Vec::with_capacity(n);
    let mut valid_to = Vec::with_capacity(n);
    let mut is_current = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut region_keys = Vec::with_capacity(n);
    let (mut city, mut country, mut region) = (
        StringBuilder::with_capacity(n, n * 8),
        StringBuilder::with_capacity(n, n * 8),
        StringBuilder::with_capacity(n, n * 8),
    );
    let mut cohort = StringBuilder::with_capacity(n, n * 7);
    let region_ids = c.str("region_id")?;
    let signup = c.date("signup_date")?;
    let mut orphans = 0u64;
    for (k, &(row, latest, from)) in versions.iter().enumerate() {
        let id = ids.value(row);
        let next_same = versions.get(k + 1).filter(|v| ids.value(v.0) == id);
        valid_from.push(from);
        valid_to.push(next_same.map_or(VALID_TO_MAX, |v| v.2));
        is_current.push(next_same.is_none());
        let vs = lookup.versions.get(id).map_or(&[][..], |&v| lookup.of(v));
        keys.push(
            vs.iter()
                .find(|(f, _)| *f == from)
                .map_or(UNKNOWN_KEY, |v| v.1),
        );
        match opt_str(region_ids, row).and_then(|r| regions.get(r)) {
            Some((rk, ci, co, re)) => {
                region_keys.push(*rk);
                city.append_value(ci);
                country.append_value(co);
                region.append_value(re);
            }
            None => {
                orphans += 1;
                region_keys.push(UNKNOWN_KEY);
                city.append_value("Unknown");
                country.append_value("Unknown");
                region.append_value("Unknown");
            }
        }
        if signup.is_valid(latest) {
            let d: NaiveDate = date_of_days(signup.value(latest));
            let _ = write!(cohort, "{:04}-{:02}", d.year(), d.month());
            cohort.append_value("");
        } else {
            cohort.append_value("Unknown");
        }
    }

    let mut t = TableAssembler::new("dim_customer", def);
    t.set("customer_key", Arc::new(Int64Array::from(keys)))
        .set("customer_id", take(&scd.natural_key, false)?)
        .set("region_key", Arc::new(Int64Array::from(region_keys)))
        .set("city", Arc::new(city.finish()))
        .set("country", Arc::new(country.finish()))
        .set("region", Arc::new(region.finish()))
        .set("cohort_month", Arc::new(cohort.finish()))
        .set(
            "valid_from",
            Arc::new(TimestampMicrosecondArray::from(valid_from)),
        )
        .set(
            "valid_to",
            Arc::new(TimestampMicrosecondArray::from(valid_to)),
        )
        .set("is_current", Arc::new(BooleanArray::from(is_current)));
    for col in &def.columns {
        if matches!(
            col.name.as_str(),
            "customer_key"
                | "customer_id"
                | "region_key"
                | "city"
                | "country"
                | "region"
                | "cohort_month"
                | "valid_from"
                | "valid_to"
                | "is_current"
        ) {
            continue;
        }
        if staged.batch.column_by_name(&col.name).is_some() {
            let latest = !scd.tracked.contains(&col.name);
            t.set(&col.name, take(&col.name, latest)?);
        }
    }
    let batch = with_unknown("dim_customer", def, t.finish(n)?)?;
    Ok((batch, lookup, orphans))
}

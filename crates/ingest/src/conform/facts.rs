//! Fact tables: each source row resolved to dimension keys at its event time.

use super::customers::CustomerVersions;
use super::ids::Members;
use super::{opt_str, Cols, LastLookup, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::date_key_of_micros;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use crmcube_model::keys::{key_of, UNKNOWN_KEY};
use crmcube_model::keys::{FastMap as HashMap, FastSet as HashSet};
use crmcube_model::types::{DECIMAL_PRECISION, MONEY_SCALE};
use crmcube_model::{Error, Result, TableDef};
use rayon::prelude::*;
use std::sync::Arc;

/// Dimension lookups shared by all facts.
pub struct Resolver {
    /// Customer versions by customer_id.
    pub customers: CustomerVersions,
    /// product_id → (product_key, unit_cost in cents).
    pub products: Members<(i64, i128)>,
    /// region_ids present.
    pub regions: HashSet<String>,
    /// campaign_id → (campaign_key, channel_key of the campaign's channel).
    pub campaigns: Members<(i64, i64)>,
    /// Channel codes of dim_channel.
    pub channels: HashSet<String>,
}

impl Resolver {
    /// Key of an optional reference that must be in `set`: (key, orphaned).
    fn member(set: &HashSet<String>, v: Option<&str>) -> (i64, bool) {
        match v {
            None => (UNKNOWN_KEY, false),
            Some(v) if set.contains(v) => (key_of(v), false),
            Some(_) => (UNKNOWN_KEY, true),
        }
    }
    pub(super) fn channel(&self, v: Option<&str>) -> (i64, bool) {
        Self::member(&self.channels, v)
    }
    pub(super) fn region(&self, v: Option<&str>) -> (i64, bool) {
        Self::member(&self.regions, v)
    }
    pub(super) fn campaign(&self, v: Option<&str>) -> ((i64, i64), bool) {
        match v {
            None => ((UNKNOWN_KEY, UNKNOWN_KEY), false),
            Some(v) => match self.campaigns.get(v) {
                Some(c) => (*c, false),
                None => ((UNKNOWN_KEY, UNKNOWN_KEY), true),
            },
        }
    }
    pub(super) fn product(&self, v: Option<&str>) -> ((i64, i128), bool) {
        match v {
            None => ((UNKNOWN_KEY, 0), false),
            Some(v) => match self.products.get(v) {
                Some(p) => (*p, false),
                None => ((UNKNOWN_KEY, 0), true),
            },
        }
    }
    /// The code of an optional product reference ([`Members::code`]; 0 for the
    /// Unknown product): (code, orphaned).
    pub(super) fn product_code(&self, v: Option<&str>) -> (u32, bool) {
        Self::code(&self.products, v)
    }
    /// The code of an optional campaign reference, as [`Resolver::product_code`].
    pub(super) fn campaign_code(&self, v: Option<&str>) -> (u32, bool) {
        Self::code(&self.campaigns, v)
    }
    fn code<V>(members: &Members<V>, v: Option<&str>) -> (u32, bool) {
        match v {
            None => (0, false),
            Some(v) => match members.code(v) {
                Some(c) => (c, false),
                None => (0, true),
            },
        }
    }
    /// The product key of each product code, from code 0 (the Unknown product).
    pub(super) fn product_keys(&self) -> Vec<i64> {
        let keys = self.products.values().iter().map(|p| p.0);
        std::iter::once(UNKNOWN_KEY).chain(keys).collect()
    }
    /// The campaign key of each campaign code, as [`Resolver::product_keys`].
    pub(super) fn campaign_keys(&self) -> Vec<i64> {
        let keys = self.campaigns.values().iter().map(|m| m.0);
        std::iter::once(UNKNOWN_KEY).chain(keys).collect()
    }
}

/// A row refused while building a fact: (row, column, value, reason).
pub type FactReject = (usize, &'static str, String, String);

/// What building one fact produced.
pub struct FactOutput {
    /// The fact rows, in parts of one schema (e.g. one per source entity).
    pub batches: Vec<RecordBatch>,
    /// Rows that referenced a missing dimension member, per source entity.
    pub orphaned: Vec<(&'static str, u64)>,
    /// Refused rows, per source entity.
    pub rejects: Vec<(&'static str, Vec<FactReject>)>,
}

/// Rows per part when a fact is built in parallel. Small enough that a part's source rows
/// stay in cache while they are visited in month order.
pub(super) const PART_ROWS: usize = 1 << 17;

/// Splits `0..n` into the row ranges of the parts built in parallel.
pub(super) fn row_ranges(n: usize) -> Vec<std::ops::Range<usize>> {
    (0..n.div_ceil(PART_ROWS).max(1))
        .map(|k| k * PART_ROWS..((k + 1) * PART_ROWS).min(n))
        .collect()
}

/// Row number of each id of a string column, for references into it (an order line's
/// order, a cart event's session).
///
/// Exports mostly number their rows with ascending ids. Such a column is its own index:
/// an id is found by searching from the row found last, and references that follow the
/// same order (the lines of one order, then of the next) take a step or two. Any other
/// column gets a hash index ([`RowIndex`]).
pub(super) enum IdIndex<'a> {
    Ascending(&'a StringArray),
    Hashed(RowIndex<'a>),
}

impl<'a> IdIndex<'a> {
    pub(super) fn new(ids: &'a StringArray) -> Self {
        if crate::entity::strictly_ascending(&[ids as &dyn Array]) {
            IdIndex::Ascending(ids)
        } else {
            IdIndex::Hashed(RowIndex::new(ids))
        }
    }

    /// Lookups by one thread, which remember the last one.
    pub(super) fn cursor<'k>(&self) -> IdCursor<'_, 'a, 'k> {
        IdCursor {
            index: self,
            row: 0,
            last: LastLookup::new(),
        }
    }
}

/// See [`IdIndex::cursor`].
pub(super) struct IdCursor<'i, 'a, 'k> {
    index: &'i IdIndex<'a>,
    /// Row found last in an ascending column.
    row: usize,
    /// Id looked up last in a hashed one.
    last: LastLookup<'k, Option<usize>>,
}

impl<'k> IdCursor<'_, '_, 'k> {
    /// The row of `id`, if the column has it.
    pub(super) fn get(&mut self, id: &'k str) -> Option<usize> {
        match self.index {
            IdIndex::Ascending(ids) => {
                let found = find_ascending(ids, self.row, id);
                if let Some(row) = found {
                    self.row = row;
                }
                found
            }
            IdIndex::Hashed(index) => self.last.get(id, |id| index.get(id)),
        }
    }
}

/// The row of `id` in strictly ascending `ids`: first row `from`, then rows after it at
/// doubling distances, then a binary search in the range that must hold it.
fn find_ascending(ids: &StringArray, from: usize, id: &str) -> Option<usize> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let n = ids.len();
    if n == 0 {
        return None;
    }
    let at = from.min(n - 1);
    let (mut lo, mut hi) = match ids.value(at).cmp(id) {
        Equal => return Some(at),
        Greater => (0, at),
        Less => {
            let mut step = 1;
            loop {
                let probe = at + step;
                if probe >= n {
                    break (at + step / 2 + 1, n);
                }
                match ids.value(probe).cmp(id) {
                    Equal => return Some(probe),
                    Greater => break (at + step / 2 + 1, probe),
                    Less => step *= 2,
                }
            }
        }
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match ids.value(mid).cmp(id) {
            Equal => return Some(mid),
            Less => lo = mid + 1,
            Greater => hi = mid,
        }
    }
    None
}

/// Row number of each id of a string column (the last row wins for a repeated id).
///
/// Tens of millions of ids make one hash table far larger than the CPU caches, so every
/// insert and probe misses. The ids are instead split by hash into shards that are built
/// in parallel and each fit in cache.
pub(super) struct RowIndex<'a> {
    shards: Vec<HashMap<&'a str, u32>>,
}

impl<'a> RowIndex<'a> {
    const SHARD_BITS: u32 = 6;

    /// Bits 32.. of the hash pick the shard: the tables themselves use the low bits
    /// (bucket) and the top seven (tag), so a shard's ids still spread over its table.
    fn shard(id: &str) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<crmcube_model::keys::FxHasher>::default().hash_one(id);
        ((h >> 32) & ((1 << Self::SHARD_BITS) - 1)) as usize
    }

    fn new(ids: &'a StringArray) -> Self {
        let n = ids.len();
        let shard_of: Vec<u8> = (0..n)
            .into_par_iter()
            .map(|i| Self::shard(ids.value(i)) as u8)
            .collect();
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); 1 << Self::SHARD_BITS];
        for (i, &s) in shard_of.iter().enumerate() {
            rows[s as usize].push(i as u32);
        }
        drop(shard_of);
        let shards = rows
            .into_par_iter()
            .map(|rows| {
                let mut m = HashMap::with_capacity_and_hasher(rows.len(), Default::default());
                for i in rows {
                    m.insert(ids.value(i as usize), i);
                }
                m
            })
            .collect();
        RowIndex { shards }
    }

    fn get(&self, id: &str) -> Option<usize> {
        self.shards[Self::shard(id)].get(id).map(|&i| i as usize)
    }
}

pub(super) fn money(v: Vec<i128>) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from(v)
            .with_precision_and_scale(DECIMAL_PRECISION, MONEY_SCALE)
            .map_err(|e| Error::format("money column", e))?,
    ))
}

pub(super) fn ints(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

pub(super) fn date_keys(ts: &[i64]) -> ArrayRef {
    ints(
        ts.iter()
            .map(|t| i64::from(date_key_of_micros(*t)))
            .collect(),
    )
}

/// fact_ticket from service tickets.
pub fn build_fact_ticket(
    def: &TableDef,
    tickets: &StagedEntity,
    order_ids: &HashSet<String>,
    r: &Resolver,
) -> Result<FactOutput> {
    let c = Cols::new("tickets", tickets);
    let (id, cust, order, opened, closed, chan) = (
        c.str("ticket_id")?,
        c.str("customer_id")?,
        c.str("order_id")?,
        c.ts("opened_at")?,
        c.ts("closed_at")?,
        c.str("channel")?,
    );
    let n = id.len();
    let mut rejects = Vec::new();
    let mut orphaned = 0;
    let mut keep = Vec::with_capacity(n);
    let (mut ck, mut chk, mut ord, mut hours) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let o = opened.value(i);
        let cl = closed.is_valid(i).then(|| closed.value(i));
        if let Some(cl) = cl {
            if cl < o {
                rejects.push((
                    i,
                    "closed_at",
                    crate::entity::value_text(closed, i),
                    "closed_at is before opened_at".to_string(),
                ));
                continue;
            }
        }
        let (k, orph1) = r.customers.resolve(opt_str(cust, i), o);
        let (ch, orph2) = r.channel(opt_str(chan, i));
        let order_ref = opt_str(order, i);
        let orph3 = order_ref.is_some_and(|x| !order_ids.contains(x));
        orphaned += u64::from(orph1 || orph2 || orph3);
        keep.push(i as u32);
        ck.push(k);
        chk.push(ch);
        ord.push(if orph3 {
            None
        } else {
            order_ref.map(str::to_string)
        });
        hours.push(cl.map(|cl| (cl - o) as f64 / 3.6e9));
    }
    let rows = keep.len();
    let idx = arrow::array::UInt32Array::from(keep);
    let take = |name: &str| -> Result<ArrayRef> {
        let a = tickets
            .batch
            .column_by_name(name)
            .ok_or_else(|| Error::format("fact_ticket", format!("missing column {name}")))?;
        arrow::compute::take(a.as_ref(), &idx, None).map_err(|e| Error::format("fact_ticket", e))
    };
    let opened_kept = take("opened_at")?;
    let opened_vals: Vec<i64> = opened_kept
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .map(|a| a.values().to_vec())
        .unwrap_or_default();
    let mut t = TableAssembler::new("fact_ticket", def);
    t.set("ticket_id", take("ticket_id")?)
        .set("date_key", date_keys(&opened_vals))
        .set("opened_at", opened_kept)
        .set("closed_at", take("closed_at")?)
        .set("customer_key", ints(ck))
        .set("channel_key", ints(chk))
        .set("order_id", Arc::new(StringArray::from(ord)))
        .set("category", take("category")?)
        .set("priority", take("priority")?)
        .set("is_complaint", take("is_complaint")?)
        .set("satisfaction_score", take("satisfaction_score")?)
        .set("resolution_hours", Arc::new(Float64Array::from(hours)));
    Ok(FactOutput {
        batches: vec![t.finish(rows)?],
        orphaned: vec![("tickets", orphaned)],
        rejects: vec![("tickets", rejects)],
    })
}

/// fact_campaign_response from campaign contacts.
pub fn build_fact_campaign_response(
    def: &TableDef,
    contacts: &StagedEntity,
    r: &Resolver,
) -> Result<FactOutput> {
    let c = Cols::new("campaign_contacts", contacts);
    let (camp, cust, sent, opened, clicked, converted) = (
        c.str("campaign_id")?,
        c.str("customer_id")?,
        c.ts("sent_ts")?,
        c.bool("opened")?,
        c.bool("clicked")?,
        c.bool("converted")?,
    );
    let contact_id = c.str("contact_id")?;
    // Parts of consecutive rows, resolved in parallel; the parts keep the rows' order.
    let parts: Vec<(RecordBatch, u64)> = row_ranges(camp.len())
        .into_par_iter()
        .map(|rows| {
            let (at, n) = (rows.start, rows.len());
            let mut orphaned = 0;
            let (mut mk, mut ck, mut chk) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for i in rows.clone() {
                let ((m, ch), orph1) = r.campaign(opt_str(camp, i));
                let (k, orph2) = r.customers.resolve(opt_str(cust, i), sent.value(i));
                orphaned += u64::from(orph1 || orph2);
                mk.push(m);
                ck.push(k);
                chk.push(ch);
            }
            let flag = |a: &BooleanArray| -> ArrayRef {
                ints(
                    rows.clone()
                        .map(|i| i64::from(a.is_valid(i) && a.value(i)))
                        .collect(),
                )
            };
            let sent = sent.slice(at, n);
            let mut t = TableAssembler::new("fact_campaign_response", def);
            t.set("contact_id", Arc::new(contact_id.slice(at, n)))
                .set("date_key", date_keys(sent.values()))
                .set("sent_ts", Arc::new(sent))
                .set("campaign_key", ints(mk))
                .set("customer_key", ints(ck))
                .set("channel_key", ints(chk))
                .set("sent", ints(vec![1; n]))
                .set("opened", flag(opened))
                .set("clicked", flag(clicked))
                .set("converted", flag(converted));
            Ok((t.finish(n)?, orphaned))
        })
        .collect::<Result<_>>()?;
    let orphaned = parts.iter().map(|(_, o)| o).sum();
    Ok(FactOutput {
        batches: parts.into_iter().map(|(b, _)| b).collect(),
        orphaned: vec![("campaign_contacts", orphaned)],
        rejects: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lookup of `probes` in `ids`, through one cursor, against a linear search.
    fn check(ids: &[&str], probes: &[&str], ascending: bool) {
        let array = StringArray::from(ids.to_vec());
        let index = IdIndex::new(&array);
        assert_eq!(matches!(index, IdIndex::Ascending(_)), ascending);
        let mut cursor = index.cursor();
        for &p in probes {
            let expected = ids.iter().rposition(|&id| id == p);
            assert_eq!(cursor.get(p), expected, "{p} in {ids:?}");
        }
    }

    #[test]
    fn ids_are_found_in_ascending_and_other_columns() {
        let ids: Vec<String> = (0..1000).map(|i| format!("S{:05}", i * 3)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut probes: Vec<String> = Vec::new();
        // Forward in steps, repeats, backwards, far jumps, and ids that are absent:
        // before the first, between two, after the last.
        for i in [0, 0, 1, 2, 5, 5, 17, 600, 3, 999, 998, 0, 500] {
            probes.push(format!("S{:05}", i * 3));
        }
        for p in ["A", "S00001", "S01500", "S99999", "T"] {
            probes.push(p.to_string());
        }
        let probes: Vec<&str> = probes.iter().map(String::as_str).collect();
        check(&ids, &probes, true);
        check(&[], &probes, true);
        check(&["S00003"], &probes, true);
        // Not ascending: a hash index, where a repeated id finds its last row.
        let mut shuffled = ids.clone();
        shuffled.swap(10, 900);
        shuffled.push("S00000");
        check(&shuffled, &probes, false);
    }
}

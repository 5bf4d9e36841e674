//! Fact tables: each source row resolved to dimension keys at its event time.

use super::customers::CustomerVersions;
use super::{opt_str, to_money, Cols, LastLookup, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::date_key_of_micros;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int64Array, Int64Builder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use crmcube_model::keys::{key_of, UNKNOWN_KEY};
use crmcube_model::keys::{FastMap as HashMap, FastSet as HashSet};
use crmcube_model::types::{DECIMAL_PRECISION, MONEY_SCALE};
use crmcube_model::{Error, Result, TableDef};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::sync::Arc;

/// Dimension lookups shared by all facts.
pub struct Resolver<'a> {
    /// Customer versions by customer_id.
    pub customers: &'a CustomerVersions,
    /// product_id → (product_key, unit_cost in cents).
    pub products: HashMap<String, (i64, i128)>,
    /// region_ids present.
    pub regions: HashSet<String>,
    /// campaign_id → (campaign_key, channel_key of the campaign's channel).
    pub campaigns: HashMap<String, (i64, i64)>,
    /// Channel codes of dim_channel.
    pub channels: HashSet<String>,
}

impl Resolver<'_> {
    /// Key of an optional reference that must be in `set`: (key, orphaned).
    fn member(set: &HashSet<String>, v: Option<&str>) -> (i64, bool) {
        match v {
            None => (UNKNOWN_KEY, false),
            Some(v) if set.contains(v) => (key_of(v), false),
            Some(_) => (UNKNOWN_KEY, true),
        }
    }
    fn channel(&self, v: Option<&str>) -> (i64, bool) {
        Self::member(&self.channels, v)
    }
    fn region(&self, v: Option<&str>) -> (i64, bool) {
        Self::member(&self.regions, v)
    }
    fn campaign(&self, v: Option<&str>) -> ((i64, i64), bool) {
        match v {
            None => ((UNKNOWN_KEY, UNKNOWN_KEY), false),
            Some(v) => match self.campaigns.get(v) {
                Some(c) => (*c, false),
                None => ((UNKNOWN_KEY, UNKNOWN_KEY), true),
            },
        }
    }
    fn product(&self, v: Option<&str>) -> ((i64, i128), bool) {
        match v {
            None => ((UNKNOWN_KEY, 0), false),
            Some(v) => match self.products.get(v) {
                Some(p) => (*p, false),
                None => ((UNKNOWN_KEY, 0), true),
            },
        }
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
const PART_ROWS: usize = 1 << 17;

/// Splits `0..n` into the row ranges of the parts built in parallel.
fn row_ranges(n: usize) -> Vec<std::ops::Range<usize>> {
    (0..n.div_ceil(PART_ROWS).max(1))
        .map(|k| k * PART_ROWS..((k + 1) * PART_ROWS).min(n))
        .collect()
}

/// Row number of each id of a string column (the last row wins for a repeated id).
///
/// Tens of millions of ids make one hash table far larger than the CPU caches, so every
/// insert and probe misses. The ids are instead split by hash into shards that are built
/// in parallel and each fit in cache.
struct RowIndex<'a> {
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

fn money(v: Vec<i128>) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from(v)
            .with_precision_and_scale(DECIMAL_PRECISION, MONEY_SCALE)
            .map_err(|e| Error::format("money column", e))?,
    ))
}

fn ints(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn date_keys(ts: &[i64]) -> ArrayRef {
    ints(
        ts.iter()
            .map(|t| i64::from(date_key_of_micros(*t)))
            .collect(),
    )
}

/// fact_sales from order_lines joined to their orders.
pub fn build_fact_sales(
    def: &TableDef,
    lines: &StagedEntity,
    orders: &StagedEntity,
    r: &Resolver,
) -> Result<FactOutput> {
    let o = Cols::new("orders", orders);
    let (o_id, o_cust, o_ts, o_chan, o_reg, o_camp) = (
        o.str("order_id")?,
        o.str("customer_id")?,
        o.ts("order_ts")?,
        o.str("channel")?,
        o.str("region_id")?,
        o.str("campaign_id")?,
    );
    // Per order: (ts, customer, region, channel, campaign keys), and the orphan count.
    let keys = || {
        (0..o_id.len())
            .into_par_iter()
            .map(|i| {
                let ts = o_ts.value(i);
                let (ck, c_orph) = r.customers.resolve(opt_str(o_cust, i), ts);
                let (rk, r_orph) = r.region(opt_str(o_reg, i));
                let (chk, ch_orph) = r.channel(opt_str(o_chan, i));
                let ((mk, _), m_orph) = r.campaign(opt_str(o_camp, i));
                let orph = c_orph || r_orph || ch_orph || m_orph;
                ((ts, ck, rk, chk, mk), orph)
            })
            .collect::<Vec<_>>()
    };
    let (order_idx, order_keys) = rayon::join(|| RowIndex::new(o_id), keys);
    let orders_orphaned = order_keys.iter().filter(|(_, o)| *o).count() as u64;

    let l = Cols::new("order_lines", lines);
    let (l_order, l_no, l_prod, l_qty, l_price, l_disc, l_ret) = (
        l.str("order_id")?,
        l.int("line_no")?,
        l.str("product_id")?,
        l.int("quantity")?,
        l.dec("unit_price")?,
        l.dec("discount")?,
        l.bool("returned")?,
    );
    let (price_scale, disc_scale) = (l.scale("unit_price")?, l.scale("discount")?);
    let part = |range: std::ops::Range<usize>| -> Result<(RecordBatch, Vec<FactReject>, u64)> {
        let n = range.len();
        let mut rejects = Vec::new();
        let mut lines_orphaned = 0u64;
        let mut keep_rows = Vec::with_capacity(n);
        let (mut ts, mut cust, mut prod, mut reg, mut chan, mut camp) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut gross, mut disc, mut revenue, mut cost, mut profit, mut price) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut orders = LastLookup::new();
        for i in range {
            let order_id = l_order.value(i);
            let Some(oi) = orders.get(order_id, |id| order_idx.get(id)) else {
                rejects.push((
                    i,
                    "order_id",
                    order_id.to_string(),
                    "order_id not found among the loaded orders (missing from the export, or quarantined); a line needs its order".to_string(),
                ));
                continue;
            };
            let qty = l_qty.value(i);
            let unit = to_money(l_price.value(i), price_scale);
            let d = to_money(l_disc.value(i), disc_scale);
            let g = unit * i128::from(qty);
            if d > g {
                rejects.push((
                    i,
                    "discount",
                    format!("{:.2}", d as f64 / 100.0),
                    format!(
                        "discount exceeds the line amount {:.2} (quantity × unit_price)",
                        g as f64 / 100.0
                    ),
                ));
                continue;
            }
            let ((pk, unit_cost), p_orph) = r.product(opt_str(l_prod, i));
            if p_orph {
                lines_orphaned += 1;
            }
            let ((t, ck, rk, chk, mk), _) = order_keys[oi];
            let rev = g - d;
            let c = unit_cost * i128::from(qty);
            keep_rows.push(i as u32);
            ts.push(t);
            cust.push(ck);
            prod.push(pk);
            reg.push(rk);
            chan.push(chk);
            camp.push(mk);
            price.push(unit);
            gross.push(g);
            disc.push(d);
            revenue.push(rev);
            cost.push(c);
            profit.push(rev - c);
        }
        let rows = keep_rows.len();
        let idx = arrow::array::UInt32Array::from(keep_rows);
        let take = |a: &dyn Array| {
            arrow::compute::take(a, &idx, None).map_err(|e| Error::format("fact_sales", e))
        };
        let mut t = TableAssembler::new("fact_sales", def);
        t.set("order_id", take(l_order)?)
            .set("line_no", take(l_no)?)
            .set("date_key", date_keys(&ts))
            .set("order_ts", Arc::new(TimestampMicrosecondArray::from(ts)))
            .set("customer_key", ints(cust))
            .set("product_key", ints(prod))
            .set("region_key", ints(reg))
            .set("channel_key", ints(chan))
            .set("campaign_key", ints(camp))
            .set("quantity", take(l_qty)?)
            .set("unit_price", money(price)?)
            .set("gross_amount", money(gross)?)
            .set("discount", money(disc)?)
            .set("revenue", money(revenue)?)
            .set("cost", money(cost)?)
            .set("gross_profit", money(profit)?)
            .set("returned", take(l_ret)?);
        Ok((t.finish(rows)?, rejects, lines_orphaned))
    };
    let parts = row_ranges(l_order.len())
        .into_par_iter()
        .map(part)
        .collect::<Result<Vec<_>>>()?;
    let mut batches = Vec::with_capacity(parts.len());
    let mut rejects = Vec::new();
    let mut lines_orphaned = 0;
    for (b, rj, orph) in parts {
        batches.push(b);
        rejects.extend(rj);
        lines_orphaned += orph;
    }
    Ok(FactOutput {
        batches,
        orphaned: vec![("orders", orders_orphaned), ("order_lines", lines_orphaned)],
        rejects: vec![("order_lines", rejects)],
    })
}

/// Column builders of fact_interaction.
struct Interactions {
    id: StringBuilder,
    kind: StringBuilder,
    ts: Vec<i64>,
    customer: Vec<i64>,
    channel: Vec<i64>,
    campaign: Vec<i64>,
    product: Vec<i64>,
    device: StringBuilder,
    source: StringBuilder,
    pages: Int64Builder,
    duration: Int64Builder,
    quantity: Int64Builder,
}

impl Interactions {
    /// Builders sized for `n` rows whose ids are about `id_len` bytes long.
    fn with_capacity(n: usize, id_len: usize) -> Self {
        Interactions {
            id: StringBuilder::with_capacity(n, n * id_len),
            kind: StringBuilder::with_capacity(n, n * 12),
            ts: Vec::with_capacity(n),
            customer: Vec::with_capacity(n),
            channel: Vec::with_capacity(n),
            campaign: Vec::with_capacity(n),
            product: Vec::with_capacity(n),
            device: StringBuilder::with_capacity(n, n * 8),
            source: StringBuilder::with_capacity(n, n * 8),
            pages: Int64Builder::with_capacity(n),
            duration: Int64Builder::with_capacity(n),
            quantity: Int64Builder::with_capacity(n),
        }
    }
}

/// The rows of `range` grouped by the month of `ts` (months ascending, input order inside
/// a month), and the number of rows of each month present.
fn month_order(
    ts: &TimestampMicrosecondArray,
    range: std::ops::Range<usize>,
) -> (Vec<usize>, Vec<usize>) {
    let months: Vec<i32> = range
        .clone()
        .map(|i| date_key_of_micros(ts.value(i)) / 100)
        .collect();
    let (positions, present) = crate::value::group_by_month(&months);
    (
        positions
            .into_iter()
            .map(|p| range.start + p as usize)
            .collect(),
        present.into_iter().map(|(_, n)| n).collect(),
    )
}

/// Appends the value `prefix` + `value` (without the formatting machinery of `write!`,
/// which costs more than the copy on tens of millions of rows).
fn append_prefixed(b: &mut StringBuilder, prefix: &str, value: &str) {
    let _ = b.write_str(prefix);
    let _ = b.write_str(value);
    b.append_value("");
}

/// Average byte length of a string column's values, plus `extra`.
fn mean_len(a: &StringArray, extra: usize) -> usize {
    a.value_data().len() / a.len().max(1) + extra
}

/// The customer key and orphan flag of each row of `range`, resolved in row order (see
/// `build_fact_interaction`).
fn customers_in_order(
    r: &Resolver,
    ids: &StringArray,
    ts: &TimestampMicrosecondArray,
    range: std::ops::Range<usize>,
) -> Vec<(i64, bool)> {
    let mut customers = r.customers.cursor();
    range
        .map(|i| customers.resolve(opt_str(ids, i), ts.value(i)))
        .collect()
}

/// Builds the fact rows of a source range: given the range and its rows in month order,
/// returns the built rows (in that order) and the number of orphaned references.
type BuildRows<'a> = dyn Fn(std::ops::Range<usize>, &[usize]) -> (Interactions, u64) + Sync + 'a;

/// fact_interaction from web sessions, cart events and email events.
///
/// Each source's rows are released (its batch emptied) as soon as its fact rows are
/// built, so the staged sources and the fact never all sit in memory together: cart
/// events first (they look up their sessions), then email events, then the sessions.
/// The parts come out in source order (web, cart, email) all the same.
pub fn build_fact_interaction(
    def: &TableDef,
    sessions: &mut StagedEntity,
    carts: &mut StagedEntity,
    emails: &mut StagedEntity,
    r: &Resolver,
) -> Result<FactOutput> {
    let web_key = r.channel(Some("web")).0;
    let email_key = r.channel(Some("email")).0;

    // Each range is built in month order and cut into one slice per month (no copy), so
    // writing partitions it without moving a value. `f` gets the range and its rows in
    // month order; it resolves references in the range's own order first, where an
    // export lists a customer's (or a session's) rows together and `LastLookup` mostly
    // skips the hash lookup, then builds the rows in month order.
    let parts = |ts: &TimestampMicrosecondArray, f: &BuildRows| {
        row_ranges(ts.len())
            .into_par_iter()
            .map(|range| {
                let (rows, months) = month_order(ts, range.clone());
                let (out, orphaned) = f(range, &rows);
                let batch = out.finish(def)?;
                let mut slices = Vec::with_capacity(months.len().max(1));
                let mut offset = 0;
                for len in months {
                    slices.push(batch.slice(offset, len));
                    offset += len;
                }
                if slices.is_empty() {
                    slices.push(batch);
                }
                Ok((slices, orphaned))
            })
            .collect::<Result<Vec<(Vec<RecordBatch>, u64)>>>()
    };

    let cart = {
        let s = Cols::new("web_sessions", sessions);
        let (s_id, s_cust, s_dev, s_src) = (
            s.str("session_id")?,
            s.str("customer_id")?,
            s.str("device")?,
            s.str("traffic_source")?,
        );
        let c = Cols::new("cart_events", carts);
        let (c_id, c_sess, c_cust, c_ts, c_type, c_prod, c_qty) = (
            c.str("event_id")?,
            c.str("session_id")?,
            c.str("customer_id")?,
            c.ts("event_ts")?,
            c.str("event_type")?,
            c.str("product_id")?,
            c.int("quantity")?,
        );
        let session_idx = RowIndex::new(s_id);
        let cart = |range: std::ops::Range<usize>, rows: &[usize]| {
            let mut out = Interactions::with_capacity(rows.len(), mean_len(c_id, 5));
            let mut orphaned = 0;
            let mut customers = r.customers.cursor();
            let mut sessions = LastLookup::new();
            let first = range.start;
            let resolved: Vec<(Option<usize>, (i64, bool))> = range
                .map(|i| {
                    let sess = sessions.get(c_sess.value(i), |id| session_idx.get(id));
                    // An anonymous cart event belongs to its session's customer, when
                    // there is one.
                    let cust_id =
                        opt_str(c_cust, i).or_else(|| sess.and_then(|si| opt_str(s_cust, si)));
                    (sess, customers.resolve(cust_id, c_ts.value(i)))
                })
                .collect();
            for &i in rows {
                let (sess, (ck, orph1)) = resolved[i - first];
                let ((pk, _), orph2) = r.product(opt_str(c_prod, i));
                if orph1 || orph2 || sess.is_none() {
                    orphaned += 1;
                }
                match c_type.value(i) {
                    "checkout" => out.kind.append_value("checkout"),
                    other => append_prefixed(&mut out.kind, "cart_", other),
                }
                append_prefixed(&mut out.id, "cart:", c_id.value(i));
                out.ts.push(c_ts.value(i));
                out.customer.push(ck);
                out.channel.push(web_key);
                out.campaign.push(UNKNOWN_KEY);
                out.product.push(pk);
                out.device
                    .append_option(sess.and_then(|si| opt_str(s_dev, si)));
                out.source
                    .append_option(sess.and_then(|si| opt_str(s_src, si)));
                out.pages.append_null();
                out.duration.append_null();
                out.quantity.append_value(c_qty.value(i));
            }
            (out, orphaned)
        };
        parts(c_ts, &cart)?
    };
    carts.release();

    let email = {
        let e = Cols::new("email_events", emails);
        let (e_id, e_cust, e_camp, e_ts, e_type) = (
            e.str("event_id")?,
            e.str("customer_id")?,
            e.str("campaign_id")?,
            e.ts("event_ts")?,
            e.str("event_type")?,
        );
        let email = |range: std::ops::Range<usize>, rows: &[usize]| {
            let mut out = Interactions::with_capacity(rows.len(), mean_len(e_id, 6));
            let mut orphaned = 0;
            let first = range.start;
            let resolved = customers_in_order(r, e_cust, e_ts, range);
            for &i in rows {
                let (ck, orph1) = resolved[i - first];
                let ((mk, _), orph2) = r.campaign(opt_str(e_camp, i));
                orphaned += u64::from(orph1 || orph2);
                append_prefixed(&mut out.id, "email:", e_id.value(i));
                append_prefixed(&mut out.kind, "email_", e_type.value(i));
                out.ts.push(e_ts.value(i));
                out.customer.push(ck);
                out.channel.push(email_key);
                out.campaign.push(mk);
                out.product.push(UNKNOWN_KEY);
                out.device.append_null();
                out.source.append_null();
                out.pages.append_null();
                out.duration.append_null();
                out.quantity.append_null();
            }
            (out, orphaned)
        };
        parts(e_ts, &email)?
    };
    emails.release();

    let web = {
        let s = Cols::new("web_sessions", sessions);
        let (s_id, s_cust, s_ts, s_dev, s_src, s_pages, s_dur) = (
            s.str("session_id")?,
            s.str("customer_id")?,
            s.ts("started_at")?,
            s.str("device")?,
            s.str("traffic_source")?,
            s.int("pages_viewed")?,
            s.int("duration_s")?,
        );
        let web = |range: std::ops::Range<usize>, rows: &[usize]| {
            let mut out = Interactions::with_capacity(rows.len(), mean_len(s_id, 4));
            let mut orphaned = 0;
            let first = range.start;
            let resolved = customers_in_order(r, s_cust, s_ts, range);
            for &i in rows {
                let (ck, orph) = resolved[i - first];
                orphaned += u64::from(orph);
                append_prefixed(&mut out.id, "web:", s_id.value(i));
                out.kind.append_value("web_visit");
                out.ts.push(s_ts.value(i));
                out.customer.push(ck);
                out.channel.push(web_key);
                out.campaign.push(UNKNOWN_KEY);
                out.product.push(UNKNOWN_KEY);
                out.device.append_option(opt_str(s_dev, i));
                out.source.append_option(opt_str(s_src, i));
                out.pages.append_value(s_pages.value(i));
                out.duration.append_value(s_dur.value(i));
                out.quantity.append_null();
            }
            (out, orphaned)
        };
        parts(s_ts, &web)?
    };
    sessions.release();

    let mut batches = Vec::new();
    let mut orphaned = Vec::new();
    for (entity, built) in [
        ("web_sessions", web),
        ("cart_events", cart),
        ("email_events", email),
    ] {
        orphaned.push((entity, built.iter().map(|(_, o)| o).sum()));
        batches.extend(built.into_iter().flat_map(|(b, _)| b));
    }
    Ok(FactOutput {
        batches,
        orphaned,
        rejects: vec![],
    })
}

impl Interactions {
    /// The collected rows as fact_interaction rows.
    fn finish(mut self, def: &TableDef) -> Result<RecordBatch> {
        let rows = self.ts.len();
        let mut t = TableAssembler::new("fact_interaction", def);
        t.set("interaction_id", Arc::new(self.id.finish()))
            .set("interaction_type", Arc::new(self.kind.finish()))
            .set("date_key", date_keys(&self.ts))
            .set(
                "event_ts",
                Arc::new(TimestampMicrosecondArray::from(self.ts)),
            )
            .set("customer_key", ints(self.customer))
            .set("channel_key", ints(self.channel))
            .set("campaign_key", ints(self.campaign))
            .set("product_key", ints(self.product))
            .set("device", Arc::new(self.device.finish()))
            .set("traffic_source", Arc::new(self.source.finish()))
            .set("pages_viewed", Arc::new(self.pages.finish()))
            .set("duration_s", Arc::new(self.duration.finish()))
            .set("quantity", Arc::new(self.quantity.finish()));
        t.finish(rows)
    }
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
    let n = camp.len();
    let mut orphaned = 0;
    let (mut mk, mut ck, mut chk) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let ((m, ch), orph1) = r.campaign(opt_str(camp, i));
        let (k, orph2) = r.customers.resolve(opt_str(cust, i), sent.value(i));
        orphaned += u64::from(orph1 || orph2);
        mk.push(m);
        ck.push(k);
        chk.push(ch);
    }
    let flag = |a: &BooleanArray| -> ArrayRef {
        ints(
            (0..a.len())
                .map(|i| i64::from(a.is_valid(i) && a.value(i)))
                .collect(),
        )
    };
    let ts: Vec<i64> = sent.values().to_vec();
    let mut t = TableAssembler::new("fact_campaign_response", def);
    t.set("contact_id", Arc::new(c.str("contact_id")?.clone()))
        .set("date_key", date_keys(&ts))
        .set("sent_ts", Arc::new(sent.clone()))
        .set("campaign_key", ints(mk))
        .set("customer_key", ints(ck))
        .set("channel_key", ints(chk))
        .set("sent", ints(vec![1; n]))
        .set("opened", flag(opened))
        .set("clicked", flag(clicked))
        .set("converted", flag(converted));
    Ok(FactOutput {
        batches: vec![t.finish(n)?],
        orphaned: vec![("campaign_contacts", orphaned)],
        rejects: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_order_groups_rows_by_month_keeping_their_order() {
        const DAY: i64 = 86_400_000_000;
        let jan = 1_735_689_600_000_000; // 2025-01-01
        let feb = jan + 31 * DAY;
        let dec = jan - DAY; // 2024-12-31
        let ts = TimestampMicrosecondArray::from(vec![
            0,
            feb,
            jan + 3 * DAY,
            dec,
            feb + DAY,
            jan,
            dec + 1,
        ]);
        let (rows, months) = month_order(&ts, 1..7);
        assert_eq!(rows, [3, 6, 2, 5, 1, 4]);
        assert_eq!(months, [2, 2, 2]);
        assert_eq!(month_order(&ts, 2..2), (vec![], vec![]));
    }
}

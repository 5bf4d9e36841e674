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

/// Appends the value `prefix` + `value` (without the formatting machinery of `write!`,
/// which costs more than the copy on tens of millions of rows).
fn append_prefixed(b: &mut StringBuilder, prefix: &str, value: &str) {
    let _ = b.write_str(prefix);
    let _ = b.write_str(value);
    b.append_value("");
}

/// Cart events without a known session.
const NO_SESSION: u32 = u32::MAX;

/// The source columns fact_interaction reads.
struct InteractionSources<'a> {
    s_id: &'a StringArray,
    s_cust: &'a StringArray,
    s_ts: &'a TimestampMicrosecondArray,
    s_dev: &'a StringArray,
    s_src: &'a StringArray,
    s_pages: &'a Int64Array,
    s_dur: &'a Int64Array,
    c_id: &'a StringArray,
    c_sess: &'a StringArray,
    c_cust: &'a StringArray,
    c_ts: &'a TimestampMicrosecondArray,
    c_type: &'a StringArray,
    c_prod: &'a StringArray,
    c_qty: &'a Int64Array,
    e_id: &'a StringArray,
    e_cust: &'a StringArray,
    e_camp: &'a StringArray,
    e_ts: &'a TimestampMicrosecondArray,
    e_type: &'a StringArray,
}

impl<'a> InteractionSources<'a> {
    fn new(
        sessions: &'a StagedEntity,
        carts: &'a StagedEntity,
        emails: &'a StagedEntity,
    ) -> Result<Self> {
        let s = Cols::new("web_sessions", sessions);
        let c = Cols::new("cart_events", carts);
        let e = Cols::new("email_events", emails);
        Ok(InteractionSources {
            s_id: s.str("session_id")?,
            s_cust: s.str("customer_id")?,
            s_ts: s.ts("started_at")?,
            s_dev: s.str("device")?,
            s_src: s.str("traffic_source")?,
            s_pages: s.int("pages_viewed")?,
            s_dur: s.int("duration_s")?,
            c_id: c.str("event_id")?,
            c_sess: c.str("session_id")?,
            c_cust: c.str("customer_id")?,
            c_ts: c.ts("event_ts")?,
            c_type: c.str("event_type")?,
            c_prod: c.str("product_id")?,
            c_qty: c.int("quantity")?,
            e_id: e.str("event_id")?,
            e_cust: e.str("customer_id")?,
            e_camp: e.str("campaign_id")?,
            e_ts: e.ts("event_ts")?,
            e_type: e.str("event_type")?,
        })
    }
}

/// A row of fact_interaction: its source and the row there.
#[derive(Clone, Copy)]
enum Source {
    Web(usize),
    Cart(usize),
    Email(usize),
}

/// fact_interaction from web sessions, cart events and email events, resolved once and
/// built one month at a time.
///
/// [`InteractionFact::new`] resolves every source row's dimension keys (in export
/// order, where an export lists a customer's or a session's rows together and
/// `LastLookup` mostly skips the hash lookup) and groups the rows by month.
/// [`InteractionFact::build_month`] then makes one month's rows straight from the
/// sources, already in the table's sort order, so that a month can be written and
/// dropped before the next is built: the whole fact never sits in memory, and writing
/// needs no second, sorted copy.
///
/// Rows are numbered across the sources (web sessions, then cart events, then email
/// events); rows that sort equal keep that order.
pub struct InteractionFact<'a> {
    def: &'a TableDef,
    src: InteractionSources<'a>,
    web_key: i64,
    email_key: i64,
    /// Rows of web sessions and of cart events.
    n_web: usize,
    n_cart: usize,
    /// Customer key of every row.
    customer: Vec<i64>,
    /// Product key of a cart event, campaign key of an email event (by row − n_web).
    reference: Vec<i64>,
    /// Row of a cart event's session, or `NO_SESSION`.
    session: Vec<u32>,
    /// Rows grouped by month (months ascending, rows ascending inside a month).
    by_month: Vec<u32>,
    /// The months present (`YYYYMM`) and where each starts in `by_month`.
    months: Vec<i32>,
    starts: Vec<usize>,
    /// Mean length of an interaction_id (source id and prefix), to size the builders.
    id_len: usize,
    /// Whether rows are built in the order (date_key, customer_key): the table's sort
    /// order as the warehouse schema ships it.
    presorted: bool,
    /// Rows with an orphaned reference: web sessions, cart events, email events.
    orphaned: [u64; 3],
}

impl<'a> InteractionFact<'a> {
    /// Resolves the sources' rows (see the type's documentation).
    pub fn new(
        def: &'a TableDef,
        sessions: &'a StagedEntity,
        carts: &'a StagedEntity,
        emails: &'a StagedEntity,
        r: &Resolver,
    ) -> Result<Self> {
        let src = InteractionSources::new(sessions, carts, emails)?;
        let (n_web, n_cart, n_email) = (src.s_id.len(), src.c_id.len(), src.e_id.len());
        let total = n_web + n_cart + n_email;
        if total >= u32::MAX as usize {
            return Err(Error::format(
                "fact_interaction",
                format!("{total} rows in one load; at most {} fit", u32::MAX - 1),
            ));
        }
        let mut customer = vec![UNKNOWN_KEY; total];
        let mut reference = vec![UNKNOWN_KEY; n_cart + n_email];
        let mut session = vec![NO_SESSION; n_cart];
        let (web_cust, rest) = customer.split_at_mut(n_web);
        let (cart_cust, email_cust) = rest.split_at_mut(n_cart);
        let (cart_prod, email_camp) = reference.split_at_mut(n_cart);

        let session_idx = RowIndex::new(src.s_id);
        let s = &src;
        let web_orphaned = web_cust
            .par_chunks_mut(PART_ROWS)
            .enumerate()
            .map(|(k, cust)| {
                let first = k * PART_ROWS;
                let mut customers = r.customers.cursor();
                let mut orphaned = 0u64;
                for (j, ck) in cust.iter_mut().enumerate() {
                    let i = first + j;
                    let (key, orph) = customers.resolve(opt_str(s.s_cust, i), s.s_ts.value(i));
                    *ck = key;
                    orphaned += u64::from(orph);
                }
                orphaned
            })
            .sum();
        let cart_orphaned = cart_cust
            .par_chunks_mut(PART_ROWS)
            .zip(cart_prod.par_chunks_mut(PART_ROWS))
            .zip(session.par_chunks_mut(PART_ROWS))
            .enumerate()
            .map(|(k, ((cust, prod), sess))| {
                let first = k * PART_ROWS;
                let mut customers = r.customers.cursor();
                let mut sessions = LastLookup::new();
                let mut orphaned = 0u64;
                for j in 0..cust.len() {
                    let i = first + j;
                    let si = sessions.get(s.c_sess.value(i), |id| session_idx.get(id));
                    // An anonymous cart event belongs to its session's customer, when
                    // there is one.
                    let cust_id =
                        opt_str(s.c_cust, i).or_else(|| si.and_then(|si| opt_str(s.s_cust, si)));
                    let (ck, orph1) = customers.resolve(cust_id, s.c_ts.value(i));
                    let ((pk, _), orph2) = r.product(opt_str(s.c_prod, i));
                    cust[j] = ck;
                    prod[j] = pk;
                    sess[j] = si.map_or(NO_SESSION, |si| si as u32);
                    orphaned += u64::from(orph1 || orph2 || si.is_none());
                }
                orphaned
            })
            .sum();
        drop(session_idx);
        let email_orphaned = email_cust
            .par_chunks_mut(PART_ROWS)
            .zip(email_camp.par_chunks_mut(PART_ROWS))
            .enumerate()
            .map(|(k, (cust, camp))| {
                let first = k * PART_ROWS;
                let mut customers = r.customers.cursor();
                let mut orphaned = 0u64;
                for j in 0..cust.len() {
                    let i = first + j;
                    let (ck, orph1) = customers.resolve(opt_str(s.e_cust, i), s.e_ts.value(i));
                    let ((mk, _), orph2) = r.campaign(opt_str(s.e_camp, i));
                    cust[j] = ck;
                    camp[j] = mk;
                    orphaned += u64::from(orph1 || orph2);
                }
                orphaned
            })
            .sum();

        let id_len = [src.s_id, src.c_id, src.e_id]
            .iter()
            .map(|a| a.value_data().len() + a.len() * 6)
            .sum::<usize>()
            / total.max(1);
        let mut fact = InteractionFact {
            def,
            src,
            web_key: r.channel(Some("web")).0,
            email_key: r.channel(Some("email")).0,
            n_web,
            n_cart,
            customer,
            reference,
            session,
            by_month: Vec::new(),
            months: Vec::new(),
            starts: Vec::new(),
            id_len,
            presorted: def.sort_by == ["date_key", "customer_key"],
            orphaned: [web_orphaned, cart_orphaned, email_orphaned],
        };
        let months: Vec<i32> = (0..total)
            .into_par_iter()
            .map(|row| date_key_of_micros(fact.ts(row)) / 100)
            .collect();
        let (by_month, present) = crate::value::group_by_month(&months);
        drop(months);
        let mut start = 0;
        for (ym, n) in present {
            fact.months.push(ym);
            fact.starts.push(start);
            start += n;
        }
        fact.starts.push(start);
        fact.by_month = by_month;
        Ok(fact)
    }

    fn source(&self, row: usize) -> Source {
        if row < self.n_web {
            Source::Web(row)
        } else if row < self.n_web + self.n_cart {
            Source::Cart(row - self.n_web)
        } else {
            Source::Email(row - self.n_web - self.n_cart)
        }
    }

    fn ts(&self, row: usize) -> i64 {
        match self.source(row) {
            Source::Web(i) => self.src.s_ts.value(i),
            Source::Cart(i) => self.src.c_ts.value(i),
            Source::Email(i) => self.src.e_ts.value(i),
        }
    }

    /// The months with rows (`YYYYMM`, ascending).
    pub fn months(&self) -> &[i32] {
        &self.months
    }

    /// Rows with an orphaned reference, per source entity.
    pub fn orphaned(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("web_sessions", self.orphaned[0]),
            ("cart_events", self.orphaned[1]),
            ("email_events", self.orphaned[2]),
        ]
    }

    /// The first and last day (days since 1970-01-01) of the rows, if any.
    pub fn day_range(&self) -> Option<(i32, i32)> {
        let months = self.months.len();
        if months == 0 {
            return None;
        }
        let day = |row: &u32| crate::value::days_of_micros(self.ts(*row as usize));
        let first_month = &self.by_month[..self.starts[1]];
        let last_month = &self.by_month[self.starts[months - 1]..];
        Some((
            first_month.iter().map(day).min()?,
            last_month.iter().map(day).max()?,
        ))
    }

    /// The rows of `months()[k]`, sorted by (date_key, customer_key) when the table is.
    pub fn build_month(&self, k: usize) -> Result<RecordBatch> {
        let rows = &self.by_month[self.starts[k]..self.starts[k + 1]];
        let order: Vec<u32> = if self.presorted {
            // (day of the month, customer key, row) packed into one integer: the month
            // is the same for all, and the key's sign bit is flipped so that unsigned
            // order is signed order.
            let mut keyed: Vec<u128> = rows
                .iter()
                .map(|&row| {
                    let row_us = row as usize;
                    let day = date_key_of_micros(self.ts(row_us)) % 100;
                    let ck = (self.customer[row_us] as u64) ^ (1 << 63);
                    (u128::from(day as u32) << 96) | (u128::from(ck) << 32) | u128::from(row)
                })
                .collect();
            keyed.sort_unstable();
            keyed.into_iter().map(|k| k as u32).collect()
        } else {
            rows.to_vec()
        };
        let mut out = Interactions::with_capacity(order.len(), self.id_len);
        for row in order {
            let row = row as usize;
            match self.source(row) {
                Source::Web(i) => self.push_web(&mut out, row, i),
                Source::Cart(i) => self.push_cart(&mut out, row, i),
                Source::Email(i) => self.push_email(&mut out, row, i),
            }
        }
        out.finish(self.def)
    }

    /// Every month's rows (for a load that merges them with the live table), or one
    /// empty batch when there are none.
    pub fn build_all(&self) -> Result<Vec<RecordBatch>> {
        if self.months.is_empty() {
            return Ok(vec![Interactions::with_capacity(0, 0).finish(self.def)?]);
        }
        (0..self.months.len())
            .into_par_iter()
            .map(|k| self.build_month(k))
            .collect()
    }

    fn push_web(&self, out: &mut Interactions, row: usize, i: usize) {
        let s = &self.src;
        append_prefixed(&mut out.id, "web:", s.s_id.value(i));
        out.kind.append_value("web_visit");
        out.ts.push(s.s_ts.value(i));
        out.customer.push(self.customer[row]);
        out.channel.push(self.web_key);
        out.campaign.push(UNKNOWN_KEY);
        out.product.push(UNKNOWN_KEY);
        out.device.append_option(opt_str(s.s_dev, i));
        out.source.append_option(opt_str(s.s_src, i));
        out.pages.append_value(s.s_pages.value(i));
        out.duration.append_value(s.s_dur.value(i));
        out.quantity.append_null();
    }

    fn push_cart(&self, out: &mut Interactions, row: usize, i: usize) {
        let s = &self.src;
        match s.c_type.value(i) {
            "checkout" => out.kind.append_value("checkout"),
            other => append_prefixed(&mut out.kind, "cart_", other),
        }
        append_prefixed(&mut out.id, "cart:", s.c_id.value(i));
        out.ts.push(s.c_ts.value(i));
        out.customer.push(self.customer[row]);
        out.channel.push(self.web_key);
        out.campaign.push(UNKNOWN_KEY);
        out.product.push(self.reference[i]);
        let sess = Some(self.session[i] as usize).filter(|&si| si != NO_SESSION as usize);
        out.device
            .append_option(sess.and_then(|si| opt_str(s.s_dev, si)));
        out.source
            .append_option(sess.and_then(|si| opt_str(s.s_src, si)));
        out.pages.append_null();
        out.duration.append_null();
        out.quantity.append_value(s.c_qty.value(i));
    }

    fn push_email(&self, out: &mut Interactions, row: usize, i: usize) {
        let s = &self.src;
        append_prefixed(&mut out.id, "email:", s.e_id.value(i));
        append_prefixed(&mut out.kind, "email_", s.e_type.value(i));
        out.ts.push(s.e_ts.value(i));
        out.customer.push(self.customer[row]);
        out.channel.push(self.email_key);
        out.campaign.push(self.reference[self.n_cart + i]);
        out.product.push(UNKNOWN_KEY);
        out.device.append_null();
        out.source.append_null();
        out.pages.append_null();
        out.duration.append_null();
        out.quantity.append_null();
    }
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

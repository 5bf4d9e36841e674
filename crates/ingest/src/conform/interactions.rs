//! fact_interaction: web sessions, cart events and email events, resolved once and
//! built one month at a time.

use super::facts::{ints, row_ranges, IdIndex, Resolver};
use super::{opt_str, Cols, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::{date_key_of_micros, days_of_micros, group_by_month};
use arrow::array::{
    Array, Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use crmcube_model::keys::{FastMap as HashMap, UNKNOWN_KEY};
use crmcube_model::{Error, Result, TableDef};
use rayon::prelude::*;
use std::sync::Arc;

/// The export a fact_interaction row comes from. It decides the row's id prefix and
/// channel, and what the row's numbers `x` and `y` hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Source {
    Web = 0,
    Cart = 1,
    Email = 2,
}

impl Source {
    /// Prefix of the interaction_id: `web:`, `cart:` or `email:` and the source id.
    fn prefix(self) -> &'static str {
        ["web:", "cart:", "email:"][self as usize]
    }
}

/// The few-valued parts of a row (its source, event type, device, traffic source and
/// which of its numbers are null). A load has a few dozen distinct labels, so each row
/// carries a label code instead of these strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Label<'s> {
    source: Source,
    /// The source's event type (empty for web sessions).
    event: &'s str,
    device: Option<&'s str>,
    traffic: Option<&'s str>,
    x_null: bool,
    y_null: bool,
}

/// A label as the table writes it.
struct LabelText {
    source: Source,
    /// interaction_type.
    kind: String,
    device: Option<String>,
    traffic: Option<String>,
    x_null: bool,
    y_null: bool,
}

impl LabelText {
    fn of(l: &Label) -> Self {
        let kind = match (l.source, l.event) {
            (Source::Web, _) => "web_visit".to_string(),
            (Source::Cart, "checkout") => "checkout".to_string(),
            (Source::Cart, e) => format!("cart_{e}"),
            (Source::Email, e) => format!("email_{e}"),
        };
        LabelText {
            source: l.source,
            kind,
            device: l.device.map(str::to_string),
            traffic: l.traffic.map(str::to_string),
            x_null: l.x_null,
            y_null: l.y_null,
        }
    }
}

/// Codes of labels, in the order first seen.
#[derive(Default)]
struct LabelCodes<'s> {
    codes: HashMap<Label<'s>, u32>,
    labels: Vec<Label<'s>>,
    last: Option<(Label<'s>, u32)>,
}

impl<'s> LabelCodes<'s> {
    fn code(&mut self, label: Label<'s>) -> u32 {
        if let Some((last, code)) = self.last {
            if last == label {
                return code;
            }
        }
        let next = self.labels.len() as u32;
        let code = *self.codes.entry(label).or_insert_with(|| {
            self.labels.push(label);
            next
        });
        self.last = Some((label, code));
        code
    }
}

/// One resolved fact_interaction row: everything but its strings, in 48 bytes.
#[derive(Clone, Copy, Default)]
struct Row {
    ts: i64,
    customer: i64,
    /// pages_viewed (web) or quantity (cart).
    x: i64,
    /// duration_s (web), product_key (cart) or campaign_key (email).
    y: i64,
    /// `YYYYMMDD` of `ts`.
    date_key: i32,
    /// Label code: the part's own while a part is resolved, see [`Part::labels`].
    label: u32,
    /// The source id: its bytes in the value buffer of its source's id column.
    id_start: u32,
    id_len: u32,
}

/// The resolved rows of a run of consecutive source rows, grouped by month.
struct Part {
    /// Rows grouped by month (months ascending, source order inside a month).
    rows: Vec<Row>,
    /// Months present (`YYYYMM`, ascending) and where each starts in `rows`; one more
    /// start closes the last.
    months: Vec<i32>,
    starts: Vec<usize>,
    /// The load-wide code of each of the part's label codes.
    labels: Vec<u32>,
    orphaned: u64,
    /// Earliest and latest event time.
    ts_range: Option<(i64, i64)>,
}

impl Part {
    /// The part's rows of month `ym`.
    fn month(&self, ym: i32) -> &[Row] {
        match self.months.binary_search(&ym) {
            Ok(j) => &self.rows[self.starts[j]..self.starts[j + 1]],
            Err(_) => &[],
        }
    }
}

/// A part while its rows are resolved: labels still borrow the sources.
struct Resolving<'s> {
    rows: Vec<Row>,
    months: Vec<i32>,
    labels: LabelCodes<'s>,
    orphaned: u64,
}

impl<'s> Resolving<'s> {
    fn with_capacity(n: usize) -> Self {
        Resolving {
            rows: Vec::with_capacity(n),
            months: Vec::with_capacity(n),
            labels: LabelCodes::default(),
            orphaned: 0,
        }
    }

    /// Adds a row at `ts` whose source id is row `i` of `ids`.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ids: &StringArray,
        i: usize,
        ts: i64,
        customer: i64,
        (x, y): (i64, i64),
        label: Label<'s>,
        orphaned: bool,
    ) {
        let offsets = ids.value_offsets();
        let date_key = date_key_of_micros(ts);
        self.rows.push(Row {
            ts,
            customer,
            x,
            y,
            date_key,
            label: self.labels.code(label),
            id_start: offsets[i] as u32,
            id_len: (offsets[i + 1] - offsets[i]) as u32,
        });
        self.months.push(date_key / 100);
        self.orphaned += u64::from(orphaned);
    }

    /// The rows grouped by month, with the part's labels (numbered load-wide later).
    fn finish(self) -> (Part, Vec<Label<'s>>) {
        let (order, present) = group_by_month(&self.months);
        let rows: Vec<Row> = order.iter().map(|&p| self.rows[p as usize]).collect();
        let ts_range = rows
            .iter()
            .map(|r| r.ts)
            .min()
            .zip(rows.iter().map(|r| r.ts).max());
        let mut months = Vec::with_capacity(present.len());
        let mut starts = Vec::with_capacity(present.len() + 1);
        let mut start = 0;
        for (ym, n) in present {
            months.push(ym);
            starts.push(start);
            start += n;
        }
        starts.push(start);
        let part = Part {
            rows,
            months,
            starts,
            labels: Vec::new(),
            orphaned: self.orphaned,
            ts_range,
        };
        (part, self.labels.labels)
    }
}

/// Resolves rows `0..n` of a source in parts of consecutive rows, in parallel;
/// `resolve` adds a part's rows. The parts come back in row order.
fn resolve_parts<'s>(
    n: usize,
    resolve: impl Fn(std::ops::Range<usize>, &mut Resolving<'s>) + Sync,
) -> Vec<(Part, Vec<Label<'s>>)> {
    row_ranges(n)
        .into_par_iter()
        .map(|rows| {
            let mut out = Resolving::with_capacity(rows.len());
            resolve(rows, &mut out);
            out.finish()
        })
        .collect()
}

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

/// fact_interaction from web sessions, cart events and email events, resolved once and
/// built one month at a time.
///
/// [`InteractionFact::new`] reads the sources once, in export order (where an export
/// lists a customer's or a session's rows together and `LastLookup` mostly skips the
/// hash lookup), in parts of consecutive rows resolved in parallel. Each row becomes a
/// 48-byte [`Row`]: its keys, time, numbers, a code for its few-valued strings and the
/// place of its source id. A part keeps its rows grouped by month.
///
/// [`InteractionFact::build_month`] gathers one month's rows from the parts, sorts
/// them by (date_key, customer_key) and makes the month's columns, so a month can be
/// written and dropped before the next is built. Sorting and reading compact rows that
/// sit together, instead of reaching into a dozen source columns at random, is what
/// keeps the build fast; afterwards only the three id columns of the sources are kept.
///
/// Rows are ordered across the sources as web sessions, then cart events, then email
/// events; rows that sort equal keep that order.
pub struct InteractionFact<'a> {
    def: &'a TableDef,
    web_key: i64,
    email_key: i64,
    /// Id columns of web sessions, cart events and email events.
    ids: [StringArray; 3],
    parts: Vec<Part>,
    labels: Vec<LabelText>,
    /// The months present (`YYYYMM`, ascending) and their rows.
    months: Vec<i32>,
    month_rows: Vec<usize>,
    /// Whether rows are built in the order (date_key, customer_key): the table's sort
    /// order as the warehouse schema ships it.
    presorted: bool,
    /// Rows with an orphaned reference: web sessions, cart events, email events.
    orphaned: [u64; 3],
    ts_range: Option<(i64, i64)>,
}

impl<'a> InteractionFact<'a> {
    /// Resolves the sources' rows (see the type's documentation).
    pub fn new(
        def: &'a TableDef,
        sessions: &StagedEntity,
        carts: &StagedEntity,
        emails: &StagedEntity,
        r: &Resolver,
    ) -> Result<Self> {
        let s = InteractionSources::new(sessions, carts, emails)?;
        let (n_web, n_cart, n_email) = (s.s_id.len(), s.c_id.len(), s.e_id.len());
        let total = n_web + n_cart + n_email;
        if total >= u32::MAX as usize {
            return Err(Error::format(
                "fact_interaction",
                format!("{total} rows in one load; at most {} fit", u32::MAX - 1),
            ));
        }
        let s = &s;
        let web = resolve_parts(n_web, |rows, out| {
            let mut customers = r.customers.cursor();
            for i in rows {
                let ts = s.s_ts.value(i);
                let (ck, orphaned) = customers.resolve(opt_str(s.s_cust, i), ts);
                let label = Label {
                    source: Source::Web,
                    event: "",
                    device: opt_str(s.s_dev, i),
                    traffic: opt_str(s.s_src, i),
                    x_null: s.s_pages.is_null(i),
                    y_null: s.s_dur.is_null(i),
                };
                let xy = (s.s_pages.value(i), s.s_dur.value(i));
                out.push(s.s_id, i, ts, ck, xy, label, orphaned);
            }
        });

        let session_idx = IdIndex::new(s.s_id);
        let cart = resolve_parts(n_cart, |rows, out| {
            let mut customers = r.customers.cursor();
            let mut sessions = session_idx.cursor();
            for i in rows {
                let ts = s.c_ts.value(i);
                let si = sessions.get(s.c_sess.value(i));
                let session = |col| si.and_then(|si| opt_str(col, si));
                // An anonymous cart event belongs to its session's customer, when
                // there is one.
                let cust_id = opt_str(s.c_cust, i).or_else(|| session(s.s_cust));
                let (ck, orph1) = customers.resolve(cust_id, ts);
                let ((pk, _), orph2) = r.product(opt_str(s.c_prod, i));
                let label = Label {
                    source: Source::Cart,
                    event: s.c_type.value(i),
                    device: session(s.s_dev),
                    traffic: session(s.s_src),
                    x_null: s.c_qty.is_null(i),
                    y_null: false,
                };
                let orphaned = orph1 || orph2 || si.is_none();
                out.push(s.c_id, i, ts, ck, (s.c_qty.value(i), pk), label, orphaned);
            }
        });
        drop(session_idx);

        let email = resolve_parts(n_email, |rows, out| {
            let mut customers = r.customers.cursor();
            for i in rows {
                let ts = s.e_ts.value(i);
                let (ck, orph1) = customers.resolve(opt_str(s.e_cust, i), ts);
                let ((mk, _), orph2) = r.campaign(opt_str(s.e_camp, i));
                let label = Label {
                    source: Source::Email,
                    event: s.e_type.value(i),
                    device: None,
                    traffic: None,
                    x_null: true,
                    y_null: false,
                };
                out.push(s.e_id, i, ts, ck, (0, mk), label, orph1 || orph2);
            }
        });

        // Number the labels load-wide, and merge the parts' months.
        let mut codes: HashMap<Label, u32> = HashMap::default();
        let mut labels = Vec::new();
        let mut orphaned = [0u64; 3];
        let mut all = Vec::with_capacity(web.len() + cart.len() + email.len());
        for (k, source) in [web, cart, email].into_iter().enumerate() {
            for (mut part, part_labels) in source {
                part.labels = part_labels
                    .iter()
                    .map(|l| {
                        *codes.entry(*l).or_insert_with(|| {
                            labels.push(LabelText::of(l));
                            labels.len() as u32 - 1
                        })
                    })
                    .collect();
                orphaned[k] += part.orphaned;
                all.push(part);
            }
        }
        let mut month_rows: std::collections::BTreeMap<i32, usize> = Default::default();
        for p in &all {
            for (j, &ym) in p.months.iter().enumerate() {
                *month_rows.entry(ym).or_default() += p.starts[j + 1] - p.starts[j];
            }
        }
        let ts_range = all
            .iter()
            .filter_map(|p| p.ts_range)
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
        Ok(InteractionFact {
            def,
            web_key: r.channel(Some("web")).0,
            email_key: r.channel(Some("email")).0,
            ids: [s.s_id.clone(), s.c_id.clone(), s.e_id.clone()],
            parts: all,
            labels,
            months: month_rows.keys().copied().collect(),
            month_rows: month_rows.values().copied().collect(),
            presorted: def.sort_by == ["date_key", "customer_key"],
            orphaned,
            ts_range,
        })
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
        self.ts_range
            .map(|(lo, hi)| (days_of_micros(lo), days_of_micros(hi)))
    }

    /// The rows of `months()[k]`, sorted by (date_key, customer_key) when the table is.
    pub fn build_month(&self, k: usize) -> Result<RecordBatch> {
        let ym = self.months[k];
        let mut rows = Vec::with_capacity(self.month_rows[k]);
        for part in &self.parts {
            rows.extend(part.month(ym).iter().map(|r| Row {
                label: part.labels[r.label as usize],
                ..*r
            }));
        }
        let rows: Vec<Row> = if self.presorted {
            // (day of the month, customer key, position) packed into one integer: the
            // month is the same for all, and the key's sign bit is flipped so that
            // unsigned order is signed order.
            let mut keyed: Vec<u128> = rows
                .iter()
                .enumerate()
                .map(|(pos, r)| {
                    let day = (r.date_key % 100) as u32;
                    let ck = (r.customer as u64) ^ (1 << 63);
                    (u128::from(day) << 96) | (u128::from(ck) << 32) | pos as u128
                })
                .collect();
            keyed.sort_unstable();
            // Rows in order first, in a loop small enough to keep many of its reads
            // in flight.
            keyed.into_iter().map(|k| rows[k as u32 as usize]).collect()
        } else {
            rows
        };
        self.columns(&rows)
    }

    /// Every month's rows (for a load that merges them with the live table), or one
    /// empty batch when there are none.
    pub fn build_all(&self) -> Result<Vec<RecordBatch>> {
        if self.months.is_empty() {
            return Ok(vec![self.columns(&[])?]);
        }
        (0..self.months.len())
            .into_par_iter()
            .map(|k| self.build_month(k))
            .collect()
    }

    /// The table's columns for `rows`, in their order.
    ///
    /// Column by column: the loops that read the ids' bytes at random places in the
    /// sources stay small, so that the CPU has many of those reads in flight at once.
    fn columns(&self, rows: &[Row]) -> Result<RecordBatch> {
        let n = rows.len();
        let label = |r: &Row| &self.labels[r.label as usize];
        let id_bytes: usize = rows
            .iter()
            .map(|r| r.id_len as usize + label(r).source.prefix().len())
            .sum();
        if i32::try_from(id_bytes).is_err() {
            return Err(Error::format(
                "fact_interaction",
                format!("one month's interaction ids take {id_bytes} bytes; at most 2 GiB fit"),
            ));
        }
        let id_data = self.ids.each_ref().map(|a| a.values().as_slice());
        let mut id_values: Vec<u8> = Vec::with_capacity(id_bytes);
        let mut id_offsets: Vec<i32> = Vec::with_capacity(n + 1);
        id_offsets.push(0);
        for r in rows {
            let source = label(r).source;
            let start = r.id_start as usize;
            id_values.extend_from_slice(source.prefix().as_bytes());
            id_values
                .extend_from_slice(&id_data[source as usize][start..start + r.id_len as usize]);
            id_offsets.push(id_values.len() as i32);
        }
        let strings = |text: &dyn Fn(&LabelText) -> Option<&str>| {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for r in rows {
                b.append_option(text(label(r)));
            }
            Arc::new(b.finish())
        };
        let numbers = |value: &dyn Fn(&Row, &LabelText) -> Option<i64>| {
            let mut b = Int64Builder::with_capacity(n);
            for r in rows {
                b.append_option(value(r, label(r)));
            }
            Arc::new(b.finish())
        };
        let keys = |key: &dyn Fn(&Row, &LabelText) -> i64| {
            ints(rows.iter().map(|r| key(r, label(r))).collect())
        };
        let x = |r: &Row, l: &LabelText| (!l.x_null).then_some(r.x);
        let y = |r: &Row, l: &LabelText| (!l.y_null).then_some(r.y);
        let ids = StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(id_offsets)),
            Buffer::from_vec(id_values),
            None,
        )
        .map_err(|e| Error::format("fact_interaction", e))?;
        let mut t = TableAssembler::new("fact_interaction", self.def);
        t.set("interaction_id", Arc::new(ids))
            .set("interaction_type", strings(&|l| Some(&l.kind)))
            .set("date_key", keys(&|r, _| i64::from(r.date_key)))
            .set(
                "event_ts",
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| r.ts),
                )),
            )
            .set("customer_key", keys(&|r, _| r.customer))
            .set(
                "channel_key",
                keys(&|_, l| match l.source {
                    Source::Email => self.email_key,
                    Source::Web | Source::Cart => self.web_key,
                }),
            )
            .set(
                "campaign_key",
                keys(&|r, l| {
                    if l.source == Source::Email {
                        r.y
                    } else {
                        UNKNOWN_KEY
                    }
                }),
            )
            .set(
                "product_key",
                keys(&|r, l| {
                    if l.source == Source::Cart {
                        r.y
                    } else {
                        UNKNOWN_KEY
                    }
                }),
            )
            .set("device", strings(&|l| l.device.as_deref()))
            .set("traffic_source", strings(&|l| l.traffic.as_deref()))
            .set(
                "pages_viewed",
                numbers(&|r, l| {
                    if l.source == Source::Web {
                        x(r, l)
                    } else {
                        None
                    }
                }),
            )
            .set(
                "duration_s",
                numbers(&|r, l| {
                    if l.source == Source::Web {
                        y(r, l)
                    } else {
                        None
                    }
                }),
            )
            .set(
                "quantity",
                numbers(&|r, l| {
                    if l.source == Source::Cart {
                        x(r, l)
                    } else {
                        None
                    }
                }),
            );
        t.finish(n)
    }
}

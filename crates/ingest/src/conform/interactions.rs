//! fact_interaction: web sessions, cart events and email events, resolved once and
//! built one month at a time.

use super::customers::CustomerRef;
use super::facts::{ints, row_ranges, IdIndex, Resolver};
use super::ids::StrCodes;
use super::numbered::{IdPattern, NumberRun};
use super::{opt_str, Cols, MonthIndex, MonthOrder, MonthlyFact, TableAssembler};
use crate::entity::StagedEntity;
use crate::value::{
    date_key_of_micros, days_of_date, group_by_month, micros_of_days, MICROS_PER_DAY,
};
use crate::write::MonthRows;
use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
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
/// carries a label code instead of these strings (see [`LabelCodes`]).
#[derive(Clone, Copy)]
struct Label<'s> {
    source: Source,
    /// The source's event type (empty for web sessions).
    event: &'s str,
    device: Option<&'s str>,
    traffic: Option<&'s str>,
    x_null: bool,
    y_null: bool,
    /// The row's numbers do not fit its 32-bit fields: they are kept in
    /// [`Part::wide`] (see [`Kept::x`]).
    wide: bool,
}

/// A label as the table writes it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LabelText {
    source: Source,
    /// interaction_type.
    kind: String,
    device: Option<String>,
    traffic: Option<String>,
    x_null: bool,
    y_null: bool,
    wide: bool,
    /// How the rows' source ids are kept: as numbers of
    /// [`InteractionFact::patterns`]`[i]`, or (`None`) as places in the source's id
    /// column.
    ids: Option<u32>,
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
            wide: l.wide,
            ids: None,
        }
    }
}

/// Codes of labels, in the order first seen.
///
/// A label's strings are coded per column first ([`StrCodes`]), and the label is then
/// looked up as one integer of those codes.
#[derive(Default)]
struct LabelCodes<'s> {
    /// Event type, device and traffic source.
    strings: [StrCodes<'s>; 3],
    codes: HashMap<u64, u32>,
    /// Each label as its packed integer, in code order.
    packed: Vec<u64>,
    last: Option<(u64, u32)>,
}

/// Bits of a label code in [`Kept::packed`]: a part has fewer rows than that, so
/// fewer distinct labels.
const CODE_BITS: u32 = 20;
const _: () = assert!(super::facts::PART_ROWS < (1usize << CODE_BITS));

/// Bits of a string code in a packed label (after five bits of flags), for the same
/// reason.
const STR_BITS: u32 = 19;
const _: () = assert!(super::facts::PART_ROWS < (1usize << STR_BITS));
const _: () = assert!(5 + 3 * STR_BITS <= 64);

impl<'s> LabelCodes<'s> {
    #[inline]
    fn code(&mut self, label: Label<'s>) -> u32 {
        let [event, device, traffic] = &mut self.strings;
        let packed = label.source as u64
            | u64::from(label.x_null) << 2
            | u64::from(label.y_null) << 3
            | u64::from(label.wide) << 4
            | u64::from(event.code(Some(label.event))) << 5
            | u64::from(device.code(label.device)) << (5 + STR_BITS)
            | u64::from(traffic.code(label.traffic)) << (5 + 2 * STR_BITS);
        if let Some((last, code)) = self.last {
            if last == packed {
                return code;
            }
        }
        let next = self.packed.len() as u32;
        let code = *self.codes.entry(packed).or_insert_with(|| {
            self.packed.push(packed);
            next
        });
        self.last = Some((packed, code));
        code
    }

    /// The labels, in code order.
    fn labels(&self) -> Vec<Label<'s>> {
        let mask = (1u64 << STR_BITS) - 1;
        let [event, device, traffic] = &self.strings;
        self.packed
            .iter()
            .map(|&p| Label {
                source: [Source::Web, Source::Cart, Source::Email][(p & 3) as usize % 3],
                event: event.value(((p >> 5) & mask) as u32).unwrap_or_default(),
                device: device.value(((p >> (5 + STR_BITS)) & mask) as u32),
                traffic: traffic.value(((p >> (5 + 2 * STR_BITS)) & mask) as u32),
                x_null: p & 4 != 0,
                y_null: p & 8 != 0,
                wide: p & 16 != 0,
            })
            .collect()
    }
}

/// One resolved fact_interaction row as a part keeps it: everything but its strings,
/// in 32 bytes (a load keeps tens of millions of them until the fact is written).
#[derive(Clone, Copy)]
struct Kept {
    ts: i64,
    customer: i64,
    /// pages_viewed (web) or quantity (cart). For a row whose label is `wide` (a number
    /// below zero or above `u32::MAX`), where its numbers are in [`Part::wide`].
    x: u32,
    /// duration_s (web), or the code of the product (cart) or campaign (email) in
    /// [`Resolver`]'s members (0 for Unknown).
    y: u32,
    /// Where the source id's bytes start in the value buffer of its source's id column
    /// or, for an id that follows its part's pattern ([`Part::pattern`]), its number.
    id_start: u32,
    /// The part's label code (the low [`CODE_BITS`] bits, see [`Part::labels`]) and the
    /// id's length (the high bits; [`LONG_ID`] for an id that long or longer, whose
    /// length is then read from the id column).
    packed: u32,
}

/// The id length that stands for "this long or longer" in [`Kept::packed`].
const LONG_ID: u32 = (1 << (32 - CODE_BITS)) - 1;

impl Kept {
    fn label(&self) -> usize {
        (self.packed & ((1 << CODE_BITS) - 1)) as usize
    }
}

/// The days of one month, for times known to fall in it: a time's day is one
/// subtraction and one division away, without the calendar.
#[derive(Clone, Copy)]
struct MonthDays {
    /// `YYYYMM`.
    ym: i32,
    /// The month's first microsecond.
    start: i64,
}

impl MonthDays {
    fn of(ym: i32) -> Self {
        let first = chrono::NaiveDate::from_ymd_opt(ym / 100, (ym % 100) as u32, 1);
        MonthDays {
            ym,
            start: first.map_or(0, |d| micros_of_days(days_of_date(d))),
        }
    }

    /// The day of the month (1 to 31) of `ts`, a time in the month.
    #[inline]
    fn day(self, ts: i64) -> usize {
        debug_assert_eq!(date_key_of_micros(ts) / 100, self.ym);
        ((ts.wrapping_sub(self.start) as u64 / MICROS_PER_DAY as u64) as usize + 1).min(31)
    }

    /// The `YYYYMMDD` date key of `ts`, a time in the month.
    #[inline]
    fn date_key(self, ts: i64) -> i32 {
        self.ym * 100 + self.day(ts) as i32
    }
}

const _: () = assert!(std::mem::size_of::<Kept>() == 32);

/// One fact_interaction row while a month is built: a [`Kept`] row with its load-wide
/// label code, its date key and its id's length.
#[derive(Clone, Copy)]
struct Row {
    ts: i64,
    customer: i64,
    x: i64,
    y: i64,
    /// `YYYYMMDD` of `ts`.
    date_key: i32,
    /// Load-wide label code (an index of [`InteractionFact::labels`]).
    label: u32,
    /// The source id: its bytes in the value buffer of its source's id column, or its
    /// number and count of digits (see [`LabelText::ids`]).
    id_start: u32,
    id_len: u32,
}

/// Appends `day`'s rows to `out` ordered by customer key, rows of one customer in the
/// order they have in `day` (a stable sort).
///
/// Each row is sorted as one integer: its key's offset from the day's smallest key
/// above its position. Surrogate keys are hashes spread over 63 bits, so that takes
/// 128 bits; the day's rows fit in the cache either way.
fn sort_by_customer<T: Copy>(day: &[T], customer: impl Fn(&T) -> i64, out: &mut Vec<T>) {
    let Some(lo) = day.iter().map(&customer).min() else {
        return;
    };
    let mut keys: Vec<u128> = day
        .iter()
        .enumerate()
        .map(|(pos, r)| (u128::from(customer(r).wrapping_sub(lo) as u64) << 64) | pos as u128)
        .collect();
    keys.sort_unstable();
    out.extend(keys.iter().map(|&k| day[k as u64 as usize]));
}

/// The resolved rows of a run of consecutive source rows, grouped by month.
struct Part {
    /// Rows grouped by month (months ascending, source order inside a month).
    rows: Vec<Kept>,
    /// Months present (`YYYYMM`, ascending) and where each starts in `rows`; one more
    /// start closes the last.
    months: Vec<i32>,
    starts: Vec<usize>,
    /// The load-wide code of each of the part's label codes.
    labels: Vec<u32>,
    /// What cart events read of each row (with the part's label code, not the
    /// load-wide one), in source order, when asked for.
    in_order: Option<Vec<SessionRow>>,
    orphaned: u64,
    /// Earliest and latest event time.
    ts_range: Option<(i64, i64)>,
    /// The pattern of the part's source ids, when its rows keep their numbers.
    pattern: Option<IdPattern>,
    /// The numbers (x, y) of rows with a `wide` label, which keep their place here.
    wide: Vec<[i64; 2]>,
}

impl Part {
    /// The part's rows of month `ym`.
    fn month(&self, ym: i32) -> &[Kept] {
        &self.rows[self.month_range(ym)]
    }

    /// Where the part's rows of month `ym` are in [`Part::rows`].
    fn month_range(&self, ym: i32) -> std::ops::Range<usize> {
        match self.months.binary_search(&ym) {
            Ok(j) => self.starts[j]..self.starts[j + 1],
            Err(_) => 0..0,
        }
    }
}

/// Where a [`Kept`] row is: its part (an index of [`InteractionFact::parts`]) and its
/// index in the part's rows.
#[derive(Clone, Copy, Default)]
struct Place {
    part: u32,
    row: u32,
}

/// A part while its rows are resolved: labels still borrow the sources.
struct Resolving<'s> {
    rows: Vec<Kept>,
    months: Vec<i32>,
    labels: LabelCodes<'s>,
    /// What cart events read of each row, in source order, when asked for (see
    /// [`SessionColumns`]).
    in_order: Option<Vec<SessionRow>>,
    orphaned: u64,
    /// How the rows' source ids are kept.
    ids: IdPlace,
    wide: Vec<[i64; 2]>,
}

/// How a part keeps its rows' source ids.
#[derive(Clone, Copy)]
enum IdPlace {
    /// As places in the fact's id column of the source: an id's offset in the source's
    /// column plus this shift (non-zero for a batch of a streamed source, whose ids are
    /// copied).
    Shifted(i64),
    /// As numbers: every id is this many bytes of prefix, then digits (an
    /// [`IdPattern`]).
    Numbered(usize),
}

impl<'s> Resolving<'s> {
    fn with_capacity(n: usize, label_order: bool) -> Self {
        Resolving {
            rows: Vec::with_capacity(n),
            months: Vec::with_capacity(n),
            labels: LabelCodes::default(),
            in_order: label_order.then(|| Vec::with_capacity(n)),
            orphaned: 0,
            ids: IdPlace::Shifted(0),
            wide: Vec::new(),
        }
    }

    /// Adds a row at `ts` whose source id is row `i` of `ids`, with numbers `x` and
    /// `y` (see [`Kept`]); returns the row's label code.
    fn push(
        &mut self,
        (ids, i): (&StringArray, usize),
        ts: i64,
        customer: i64,
        (x, y): (i64, i64),
        mut label: Label<'s>,
        orphaned: bool,
    ) -> u32 {
        let offsets = ids.value_offsets();
        let (x, y) = match (u32::try_from(x), u32::try_from(y)) {
            (Ok(x), Ok(y)) => (x, y),
            _ => {
                label.wide = true;
                self.wide.push([x, y]);
                ((self.wide.len() - 1) as u32, 0)
            }
        };
        let label = self.labels.code(label);
        let (id_start, id_len) = match self.ids {
            IdPlace::Shifted(shift) => (
                (i64::from(offsets[i]) + shift) as u32,
                ((offsets[i + 1] - offsets[i]) as u32).min(LONG_ID),
            ),
            IdPlace::Numbered(prefix) => {
                let id = &ids.values()[offsets[i] as usize + prefix..offsets[i + 1] as usize];
                (IdPattern::digits_number(id), 0)
            }
        };
        self.rows.push(Kept {
            ts,
            customer,
            x,
            y,
            id_start,
            packed: label | id_len << CODE_BITS,
        });
        self.months.push(date_key_of_micros(ts) / 100);
        self.orphaned += u64::from(orphaned);
        label
    }

    /// The rows grouped by month, with the part's labels (numbered load-wide later).
    fn finish(self) -> (Part, Vec<Label<'s>>) {
        let (order, present) = group_by_month(&self.months);
        let rows: Vec<Kept> = order.iter().map(|&p| self.rows[p as usize]).collect();
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
            in_order: self.in_order,
            orphaned: self.orphaned,
            ts_range,
            pattern: None,
            wide: self.wide,
        };
        (part, self.labels.labels())
    }
}

/// Resolves rows `0..n` of a source in parts of consecutive rows, in parallel;
/// `resolve` adds a part's rows. The parts come back in row order; with `label_order`
/// they also keep each row's label code and customer in source order
/// ([`Part::in_order`]).
fn resolve_parts<'s>(
    n: usize,
    label_order: bool,
    resolve: impl Fn(std::ops::Range<usize>, &mut Resolving<'s>) + Sync,
) -> Vec<(Part, Vec<Label<'s>>)> {
    row_ranges(n)
        .into_par_iter()
        .map(|rows| resolve_part(rows, label_order, IdPlace::Shifted(0), &resolve))
        .collect()
}

/// Resolves one part: rows `rows` of a source whose ids are kept as `ids` says.
fn resolve_part<'s>(
    rows: std::ops::Range<usize>,
    label_order: bool,
    ids: IdPlace,
    resolve: impl Fn(std::ops::Range<usize>, &mut Resolving<'s>),
) -> (Part, Vec<Label<'s>>) {
    let mut out = Resolving::with_capacity(rows.len(), label_order);
    out.ids = ids;
    resolve(rows, &mut out);
    out.finish()
}

/// The web sessions' columns the fact reads.
struct WebCols<'s> {
    id: &'s StringArray,
    customer: &'s StringArray,
    ts: &'s TimestampMicrosecondArray,
    device: &'s StringArray,
    traffic: &'s StringArray,
    pages: &'s Int64Array,
    duration: &'s Int64Array,
}

impl<'s> WebCols<'s> {
    fn of(batch: &'s RecordBatch) -> Result<Self> {
        let c = Cols::of_batch("web_sessions", batch);
        Ok(WebCols {
            id: c.str("session_id")?,
            customer: c.str("customer_id")?,
            ts: c.ts("started_at")?,
            device: c.str("device")?,
            traffic: c.str("traffic_source")?,
            pages: c.int("pages_viewed")?,
            duration: c.int("duration_s")?,
        })
    }
}

/// Resolves web sessions `rows` of `c` into `out`.
fn resolve_web<'s>(
    r: &Resolver,
    c: &WebCols<'s>,
    rows: std::ops::Range<usize>,
    out: &mut Resolving<'s>,
) {
    let mut customers = r.customers.cursor();
    for i in rows {
        let t = c.ts.value(i);
        let (ck, orphaned, customer) = customers.resolve_with_ref(opt_str(c.customer, i), t);
        let label = Label {
            source: Source::Web,
            event: "",
            device: opt_str(c.device, i),
            traffic: opt_str(c.traffic, i),
            x_null: c.pages.is_null(i),
            y_null: c.duration.is_null(i),
            wide: false,
        };
        let xy = (c.pages.value(i), c.duration.value(i));
        let label = out.push((c.id, i), t, ck, xy, label, orphaned);
        if let Some(in_order) = &mut out.in_order {
            in_order.push(SessionRow { label, customer });
        }
    }
}

/// The cart events' columns the fact reads.
struct CartCols<'s> {
    id: &'s StringArray,
    session: &'s StringArray,
    customer: &'s StringArray,
    ts: &'s TimestampMicrosecondArray,
    kind: &'s StringArray,
    product: &'s StringArray,
    quantity: &'s Int64Array,
}

impl<'s> CartCols<'s> {
    fn of(batch: &'s RecordBatch) -> Result<Self> {
        let c = Cols::of_batch("cart_events", batch);
        Ok(CartCols {
            id: c.str("event_id")?,
            session: c.str("session_id")?,
            customer: c.str("customer_id")?,
            ts: c.ts("event_ts")?,
            kind: c.str("event_type")?,
            product: c.str("product_id")?,
            quantity: c.int("quantity")?,
        })
    }
}

/// What cart events are resolved with: the dimensions, and the web sessions' index,
/// columns and labels (whose device and traffic source a cart event takes).
struct CartContext<'w> {
    resolver: &'w Resolver,
    index: SessionIndex<'w>,
    sessions: &'w SessionColumns,
    web_labels: &'w [LabelText],
}

impl<'w> CartContext<'w> {
    /// Resolves cart events `rows` of `c` into `out`.
    fn resolve<'s>(&self, c: &CartCols<'s>, rows: std::ops::Range<usize>, out: &mut Resolving<'s>)
    where
        'w: 's,
    {
        let (r, s) = (self.resolver, self.sessions);
        let mut customers = r.customers.cursor();
        let mut sessions = self.index.cursor();
        for i in rows {
            let t = c.ts.value(i);
            let session = sessions.get(c.session.value(i)).map(|si| s.rows[si]);
            let web = session.map(|x| &self.web_labels[x.label as usize]);
            // An anonymous cart event belongs to its session's customer, when there
            // is one.
            let (ck, orph1) = match (opt_str(c.customer, i), session) {
                (Some(id), _) => customers.resolve(Some(id), t),
                (None, Some(x)) => r.customers.resolve_ref(x.customer, t),
                (None, None) => (UNKNOWN_KEY, false),
            };
            let (product, orph2) = r.product_code(opt_str(c.product, i));
            let label = Label {
                source: Source::Cart,
                event: c.kind.value(i),
                device: web.and_then(|l| l.device.as_deref()),
                traffic: web.and_then(|l| l.traffic.as_deref()),
                x_null: c.quantity.is_null(i),
                y_null: false,
                wide: false,
            };
            let orphaned = orph1 || orph2 || session.is_none();
            let xy = (c.quantity.value(i), i64::from(product));
            out.push((c.id, i), t, ck, xy, label, orphaned);
        }
    }
}

/// The email events' columns the fact reads.
struct EmailCols<'s> {
    id: &'s StringArray,
    customer: &'s StringArray,
    campaign: &'s StringArray,
    ts: &'s TimestampMicrosecondArray,
    kind: &'s StringArray,
}

impl<'s> EmailCols<'s> {
    fn of(batch: &'s RecordBatch) -> Result<Self> {
        let c = Cols::of_batch("email_events", batch);
        Ok(EmailCols {
            id: c.str("event_id")?,
            customer: c.str("customer_id")?,
            campaign: c.str("campaign_id")?,
            ts: c.ts("event_ts")?,
            kind: c.str("event_type")?,
        })
    }
}

/// Resolves email events `rows` of `c` into `out`.
fn resolve_emails<'s>(
    r: &Resolver,
    c: &EmailCols<'s>,
    rows: std::ops::Range<usize>,
    out: &mut Resolving<'s>,
) {
    let mut customers = r.customers.cursor();
    for i in rows {
        let t = c.ts.value(i);
        let (ck, orph1) = customers.resolve(opt_str(c.customer, i), t);
        let (campaign, orph2) = r.campaign_code(opt_str(c.campaign, i));
        let label = Label {
            source: Source::Email,
            event: c.kind.value(i),
            device: None,
            traffic: None,
            x_null: true,
            y_null: false,
            wide: false,
        };
        let xy = (0, i64::from(campaign));
        out.push((c.id, i), t, ck, xy, label, orph1 || orph2);
    }
}

/// Resolves rows `0..n` of a batch whose ids are kept as `ids` says, in parts of
/// consecutive rows in parallel (see [`resolve_parts`]), with their labels as the table
/// writes them.
fn resolve_batch<'s>(
    n: usize,
    label_order: bool,
    ids: IdPlace,
    resolve: impl Fn(std::ops::Range<usize>, &mut Resolving<'s>) + Sync,
) -> Vec<(Part, Vec<LabelText>)> {
    row_ranges(n)
        .into_par_iter()
        .map(|rows| {
            let (part, labels) = resolve_part(rows, label_order, ids, &resolve);
            (part, labels.iter().map(LabelText::of).collect())
        })
        .collect()
}

/// What hands a streamed source to the fact: it calls the sink it is given with each
/// few batches of the source's rows in order, and returns `None` if it stopped early.
/// Each call also says how many more rows may follow in the current file (a bound).
pub type Feed<'f, T> = Box<
    dyn FnOnce(&mut (dyn FnMut(&[RecordBatch], usize) -> Result<()> + Send)) -> Result<Option<T>>
        + 'f,
>;

/// A string column (a source's ids, the web sessions' customers) copied together from
/// the columns of its batches.
struct IdColumn {
    offsets: Vec<i32>,
    data: Vec<u8>,
    nulls: Validity,
}

impl Default for IdColumn {
    fn default() -> Self {
        IdColumn {
            offsets: Vec::new(),
            data: Vec::new(),
            nulls: Validity::new(0),
        }
    }
}

impl IdColumn {
    /// Makes room for `rows` more values like those of `sample`, once: a column that
    /// grows by doubling would copy itself and keep up to twice its size.
    fn reserve(&mut self, rows: usize, sample: &StringArray) {
        if self.offsets.capacity() - self.offsets.len() >= rows {
            return;
        }
        let offsets = sample.value_offsets();
        let bytes = (offsets[sample.len()] - offsets[0]) as f64;
        let per_row = bytes / sample.len().max(1) as f64;
        self.offsets.reserve(rows + 1);
        self.data.reserve((per_row * rows as f64 * 1.05) as usize);
        self.nulls.words.reserve(rows.div_ceil(64));
    }

    /// Appends the ids of `ids`; returns the shift of their offsets (see
    /// [`IdPlace::Shifted`]).
    fn append(&mut self, entity: &str, ids: &StringArray) -> Result<i64> {
        let offsets = ids.value_offsets();
        let (first, last) = (offsets[0], offsets[ids.len()]);
        let at = self.data.len();
        if at + (last - first) as usize > i32::MAX as usize {
            return Err(Error::format(
                "fact_interaction",
                format!("the ids of {entity} take more than 2 GiB; load the export in parts"),
            ));
        }
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let shift = at as i64 - i64::from(first);
        self.data
            .extend_from_slice(&ids.values()[first as usize..last as usize]);
        self.offsets
            .extend(offsets[1..].iter().map(|&o| (i64::from(o) + shift) as i32));
        for i in 0..ids.len() {
            self.nulls.append(ids.is_valid(i));
        }
        Ok(shift)
    }

    fn finish(mut self) -> StringArray {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        // SAFETY: whole values of string arrays (valid UTF-8 each) are appended with
        // their offsets shifted by where they land, so the offsets start at 0, never
        // decrease, end at the data's length and fall between characters.
        unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(self.offsets)),
                Buffer::from_vec(self.data),
                self.nulls.finish(),
            )
        }
    }
}

/// What cart events read through their session: the web sessions' ids, and each
/// session's label code and customer.
struct SessionColumns {
    id: SessionIds,
    rows: Vec<SessionRow>,
}

/// What a cart event reads of its web session, in 8 bytes: its load-wide label code
/// (for its device and traffic source) and its customer (for an anonymous event).
#[derive(Clone, Copy)]
struct SessionRow {
    label: u32,
    customer: CustomerRef,
}

/// The web sessions' ids, as cart events look them up.
enum SessionIds {
    /// Numbered one after another (nothing is kept but the first number and count).
    Run(NumberRun),
    Text(StringArray),
}

impl SessionIds {
    fn index(&self) -> SessionIndex<'_> {
        match self {
            SessionIds::Run(run) => SessionIndex::Run(run),
            SessionIds::Text(ids) => SessionIndex::Text(IdIndex::new(ids)),
        }
    }
}

/// An index of [`SessionIds`].
enum SessionIndex<'a> {
    Run(&'a NumberRun),
    Text(IdIndex<'a>),
}

impl<'a> SessionIndex<'a> {
    /// Lookups by one thread.
    fn cursor<'k>(&self) -> SessionCursor<'_, 'a, 'k> {
        match self {
            SessionIndex::Run(run) => SessionCursor::Run(run),
            SessionIndex::Text(index) => SessionCursor::Text(index.cursor()),
        }
    }
}

/// See [`SessionIndex::cursor`].
enum SessionCursor<'i, 'a, 'k> {
    Run(&'i NumberRun),
    Text(super::facts::IdCursor<'i, 'a, 'k>),
}

impl<'k> SessionCursor<'_, '_, 'k> {
    /// The row of session `id`, if there is one.
    #[inline]
    fn get(&mut self, id: &'k str) -> Option<usize> {
        match self {
            SessionCursor::Run(run) => run.row(id),
            SessionCursor::Text(cursor) => cursor.get(id),
        }
    }
}

/// The web session ids as they are streamed: a [`NumberRun`] while each batch goes on
/// numbering where the last stopped, else (from the first batch that does not, with
/// the run so far written out) their text.
#[derive(Default)]
struct SessionIdsBuilder {
    run: Option<NumberRun>,
    text: Option<IdColumn>,
}

impl SessionIdsBuilder {
    /// Adds a batch's ids, which follow `pattern` if it is given, of `rest` rows at
    /// most to the end of its file.
    fn push(&mut self, ids: &StringArray, pattern: Option<&IdPattern>, rest: usize) -> Result<()> {
        let text = match &mut self.text {
            Some(text) => text,
            None => {
                let extended = match (&mut self.run, pattern) {
                    (Some(run), Some(p)) => run.extend(ids, p),
                    (None, Some(p)) => {
                        self.run = NumberRun::of(ids, p);
                        self.run.is_some()
                    }
                    (_, None) => false,
                };
                if extended {
                    return Ok(());
                }
                let mut text = IdColumn::default();
                if let Some(run) = self.run.take() {
                    let done = run.to_array();
                    text.reserve(done.len() + rest, &done);
                    text.append("web_sessions", &done)?;
                }
                self.text.insert(text)
            }
        };
        text.reserve(rest, ids);
        text.append("web_sessions", ids).map(|_| ())
    }

    fn finish(self) -> SessionIds {
        match (self.text, self.run) {
            (Some(text), _) => SessionIds::Text(text.finish()),
            (None, Some(run)) => SessionIds::Run(run),
            (None, None) => SessionIds::Text(IdColumn::default().finish()),
        }
    }
}

/// fact_interaction from web sessions, cart events and email events, resolved once and
/// built one month at a time.
///
/// The sources are added one at a time, as each is read ([`InteractionFact::add_web_sessions`],
/// then cart events, then email events). Adding one reads it once, in export order
/// (where an export lists a customer's or a session's rows together and the lookups
/// mostly repeat), in parts of consecutive rows resolved in parallel. Each row becomes
/// a 32-byte [`Kept`] row: its customer key, time, numbers (a product or campaign as
/// its 4-byte code), a code for its few-valued strings and its source id's number or
/// place (see [`IdPlace`]). A part keeps its rows grouped
/// by month. Afterwards the fact needs only the source's ids that follow no pattern
/// (and, from web sessions until cart events are added, their ids and each session's
/// label code and customer code), and the caller frees the rest before it reads the
/// next source.
///
/// [`InteractionFact::month`] gathers one month's rows from the parts, puts them in the
/// table's order ([`MonthOrder`]) and makes the month's columns a row group at a time as
/// they are written, so a month's columns are never in memory whole, and a month is
/// dropped before the next is built. Sorting and reading compact rows that
/// sit together, instead of reaching into a dozen source columns at random, is what
/// keeps the build fast.
///
/// Rows are ordered across the sources as web sessions, then cart events, then email
/// events; rows that sort equal keep that order.
pub struct InteractionFact<'a> {
    def: &'a TableDef,
    web_key: i64,
    email_key: i64,
    /// The key of each product code and campaign code (see [`Kept::y`]).
    product_keys: Vec<i64>,
    campaign_keys: Vec<i64>,
    /// The source to be added next (none after email events).
    next: Option<Source>,
    /// Id columns of web sessions, cart events and email events: the ids of the rows
    /// that keep a place in them (not a number; see [`IdPlace`]).
    ids: [StringArray; 3],
    /// The patterns of ids kept as numbers (see [`LabelText::ids`]).
    patterns: Vec<IdPattern>,
    /// Buffers of months written (see [`InteractionFact::month_buffer`]).
    month_buffers: std::sync::Mutex<Vec<Vec<Place>>>,
    /// Kept from web sessions until cart events are added.
    sessions: Option<SessionColumns>,
    parts: Vec<Part>,
    codes: HashMap<LabelText, u32>,
    labels: Vec<LabelText>,
    /// The months present, their rows and the rows' time range.
    index: MonthIndex,
    rows: usize,
    /// The order in which months are handed to the writer.
    order: MonthOrder,
    /// Rows with an orphaned reference: web sessions, cart events, email events.
    orphaned: [u64; 3],
}

impl<'a> InteractionFact<'a> {
    /// A fact with no rows yet.
    pub fn new(def: &'a TableDef, r: &Resolver) -> Self {
        let no_ids = || StringArray::from(Vec::<&str>::new());
        InteractionFact {
            def,
            web_key: r.channel(Some("web")).0,
            email_key: r.channel(Some("email")).0,
            product_keys: r.product_keys(),
            campaign_keys: r.campaign_keys(),
            next: Some(Source::Web),
            ids: [no_ids(), no_ids(), no_ids()],
            patterns: Vec::new(),
            month_buffers: Default::default(),
            sessions: None,
            parts: Vec::new(),
            codes: HashMap::default(),
            labels: Vec::new(),
            index: MonthIndex::default(),
            rows: 0,
            order: MonthOrder::of(&def.sort_by),
            orphaned: [0; 3],
        }
    }

    /// Checks that `source` comes next and that its `n` rows fit.
    fn admit(&mut self, source: Source, n: usize) -> Result<()> {
        if self.next != Some(source) {
            return Err(Error::format(
                "fact_interaction",
                format!("{source:?} rows added when {:?} rows were due", self.next),
            ));
        }
        self.count_rows(n)
    }

    /// Counts `n` more rows; checks that they fit.
    fn count_rows(&mut self, n: usize) -> Result<()> {
        self.rows += n;
        if self.rows >= u32::MAX as usize {
            return Err(Error::format(
                "fact_interaction",
                format!(
                    "{} rows in one load; at most {} fit",
                    self.rows,
                    u32::MAX - 1
                ),
            ));
        }
        Ok(())
    }

    /// Resolves the web sessions (see the type's documentation).
    pub fn add_web_sessions(&mut self, st: &StagedEntity, r: &Resolver) -> Result<()> {
        let c = WebCols::of(&st.batch)?;
        self.admit(Source::Web, c.id.len())?;
        let parts = resolve_parts(c.id.len(), true, |rows, out| resolve_web(r, &c, rows, out));
        let rows = self.absorb(Source::Web, c.id, parts);
        self.sessions = Some(SessionColumns {
            id: SessionIds::Text(c.id.clone()),
            rows,
        });
        self.next = Some(Source::Cart);
        Ok(())
    }

    /// Resolves the cart events, each with its session's customer (when the event has
    /// none), device and traffic source.
    pub fn add_cart_events(&mut self, st: &StagedEntity, r: &Resolver) -> Result<()> {
        let c = CartCols::of(&st.batch)?;
        self.admit(Source::Cart, c.id.len())?;
        let s = self.take_sessions()?;
        let web_labels = self.labels.clone();
        let cx = CartContext {
            resolver: r,
            index: s.id.index(),
            sessions: &s,
            web_labels: &web_labels,
        };
        let parts = resolve_parts(c.id.len(), false, |rows, out| cx.resolve(&c, rows, out));
        drop(cx);
        self.absorb(Source::Cart, c.id, parts);
        self.next = Some(Source::Email);
        Ok(())
    }

    /// Resolves cart events that `feed` hands over a few batches at a time, as
    /// [`InteractionFact::stream`] says; the fact is left as it was when `feed` stops
    /// early, and the cart events can then be added with
    /// [`InteractionFact::add_cart_events`].
    pub fn stream_cart_events<T>(&mut self, r: &Resolver, feed: Feed<T>) -> Result<Option<T>> {
        // Checked here too: the sessions are taken before `stream` checks it.
        if self.next != Some(Source::Cart) {
            return self.admit(Source::Cart, 0).map(|_| None);
        }
        let s = self.take_sessions()?;
        let web_labels = self.labels.clone();
        let cx = CartContext {
            resolver: r,
            index: s.id.index(),
            sessions: &s,
            web_labels: &web_labels,
        };
        let resolve = |batch: &RecordBatch, ids: IdPlace| -> Result<Vec<(Part, Vec<LabelText>)>> {
            let c = CartCols::of(batch)?;
            Ok(resolve_batch(c.id.len(), false, ids, |rows, out| {
                cx.resolve(&c, rows, out)
            }))
        };
        let fed = self.stream(
            Source::Cart,
            ("cart_events", "event_id"),
            resolve,
            |_, _, _| Ok(()),
            feed,
        );
        drop(cx);
        if !matches!(fed, Ok(Some(_))) {
            self.sessions = Some(s);
        }
        fed.map(|t| t.map(|(t, _)| t))
    }

    /// Resolves email events that `feed` hands over a few batches at a time, as
    /// [`InteractionFact::stream`] says; the fact is left as it was when `feed` stops
    /// early, and the email events can then be added with
    /// [`InteractionFact::add_email_events`].
    pub fn stream_email_events<T>(&mut self, r: &Resolver, feed: Feed<T>) -> Result<Option<T>> {
        let resolve = |batch: &RecordBatch, ids: IdPlace| -> Result<Vec<(Part, Vec<LabelText>)>> {
            let c = EmailCols::of(batch)?;
            Ok(resolve_batch(c.id.len(), false, ids, |rows, out| {
                resolve_emails(r, &c, rows, out)
            }))
        };
        let fed = self.stream(
            Source::Email,
            ("email_events", "event_id"),
            resolve,
            |_, _, _| Ok(()),
            feed,
        );
        fed.map(|t| t.map(|(t, _)| t))
    }

    /// Resolves web sessions that `feed` hands over a few batches at a time, as
    /// [`InteractionFact::stream`] says, keeping what cart events read of them (their
    /// ids, label codes and customers); the fact is left as it was when `feed` stops
    /// early, and the web sessions can then be added with
    /// [`InteractionFact::add_web_sessions`].
    pub fn stream_web_sessions<T>(&mut self, r: &Resolver, feed: Feed<T>) -> Result<Option<T>> {
        let resolve = |batch: &RecordBatch, ids: IdPlace| -> Result<Vec<(Part, Vec<LabelText>)>> {
            let c = WebCols::of(batch)?;
            Ok(resolve_batch(c.id.len(), true, ids, |rows, out| {
                resolve_web(r, &c, rows, out)
            }))
        };
        let mut ids = SessionIdsBuilder::default();
        let keep = |b: &RecordBatch, pattern: Option<&IdPattern>, rows: usize| -> Result<()> {
            let c = Cols::of_batch("web_sessions", b);
            ids.push(c.str("session_id")?, pattern, rows)
        };
        let fed = self.stream(
            Source::Web,
            ("web_sessions", "session_id"),
            resolve,
            keep,
            feed,
        )?;
        Ok(fed.map(|(t, rows)| {
            self.sessions = Some(SessionColumns {
                id: ids.finish(),
                rows,
            });
            t
        }))
    }

    /// Resolves a source (`entity`, whose ids are its column `id_column`) as `feed`
    /// hands it over a few batches at a time (see [`crate::entity::stream_entity`]),
    /// instead of staging it whole first: a batch whose ids all follow one
    /// [`IdPattern`] keeps each row's number, any other has its ids copied into the
    /// fact's id column; `keep` sees the batch and its ids' pattern (in order, to copy
    /// what else the fact keeps), its rows are resolved by `resolve` (given the batch
    /// and how its ids are kept), and the rest is the caller's to free. Returns what
    /// `feed` returned, with each row's load-wide label code and customer in source
    /// order where the parts kept them. When `feed` stops early (returns `None`) or fails, the fact
    /// is left as it was before.
    fn stream<T>(
        &mut self,
        source: Source,
        (entity, id_column): (&str, &str),
        resolve: impl Fn(&RecordBatch, IdPlace) -> Result<Vec<(Part, Vec<LabelText>)>> + Sync,
        mut keep: impl FnMut(&RecordBatch, Option<&IdPattern>, usize) -> Result<()> + Send,
        feed: Feed<T>,
    ) -> Result<Option<(T, Vec<SessionRow>)>> {
        if self.next != Some(source) {
            return self.admit(source, 0).map(|_| None);
        }
        let before = (
            self.parts.len(),
            self.index.clone(),
            self.rows,
            self.orphaned,
        );
        let mut ids = IdColumn::default();
        let mut in_order = Vec::new();
        let fed = feed(&mut |batches, more| {
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            self.count_rows(n)?;
            let mut places = Vec::with_capacity(batches.len());
            // Rows from this batch on, to the end of the file (a bound).
            let mut rest = n + more;
            for b in batches {
                let id = Cols::of_batch(entity, b).str(id_column)?;
                let pattern = IdPattern::of(id);
                let place = match &pattern {
                    Some(p) => IdPlace::Numbered(p.prefix().len()),
                    None => {
                        ids.reserve(rest, id);
                        IdPlace::Shifted(ids.append(entity, id)?)
                    }
                };
                keep(b, pattern.as_ref(), rest)?;
                places.push((place, pattern));
                rest -= b.num_rows();
            }
            let parts = batches
                .par_iter()
                .zip(places)
                .map(|(b, (place, pattern))| {
                    let mut parts = resolve(b, place)?;
                    for (part, _) in &mut parts {
                        part.pattern = pattern.clone();
                    }
                    Ok(parts)
                })
                .collect::<Result<Vec<_>>>()?;
            in_order.extend(self.absorb_parts(source, parts.into_iter().flatten().collect()));
            Ok(())
        });
        let fed = fed.map(|t| t.map(|t| (t, in_order)));
        if let Ok(Some(_)) = fed {
            self.ids[source as usize] = ids.finish();
            self.next = match source {
                Source::Web => Some(Source::Cart),
                Source::Cart => Some(Source::Email),
                Source::Email => None,
            };
        } else {
            let (parts, index, rows, orphaned) = before;
            self.parts.truncate(parts);
            (self.index, self.rows, self.orphaned) = (index, rows, orphaned);
        }
        fed
    }

    /// Takes the web sessions' columns that cart events read.
    fn take_sessions(&mut self) -> Result<SessionColumns> {
        self.sessions.take().ok_or_else(|| {
            Error::format("fact_interaction", "cart events added before web sessions")
        })
    }

    /// Resolves the email events.
    pub fn add_email_events(&mut self, st: &StagedEntity, r: &Resolver) -> Result<()> {
        let c = EmailCols::of(&st.batch)?;
        self.admit(Source::Email, c.id.len())?;
        let parts = resolve_parts(c.id.len(), false, |rows, out| {
            resolve_emails(r, &c, rows, out)
        });
        self.absorb(Source::Email, c.id, parts);
        self.next = None;
        Ok(())
    }

    /// Takes a source's resolved parts: numbers their labels load-wide and counts their
    /// months. The source's id column is the only one of its columns the fact keeps.
    /// Returns each row's load-wide label code and customer in source order where the
    /// parts kept them (see [`resolve_parts`]), else nothing.
    fn absorb(
        &mut self,
        source: Source,
        ids: &StringArray,
        parts: Vec<(Part, Vec<Label>)>,
    ) -> Vec<SessionRow> {
        self.ids[source as usize] = ids.clone();
        let parts = parts
            .into_iter()
            .map(|(part, labels)| (part, labels.iter().map(LabelText::of).collect()))
            .collect();
        self.absorb_parts(source, parts)
    }

    /// Takes a source's resolved parts (see [`InteractionFact::absorb`]), without its
    /// id column.
    fn absorb_parts(
        &mut self,
        source: Source,
        parts: Vec<(Part, Vec<LabelText>)>,
    ) -> Vec<SessionRow> {
        let mut month_rows: std::collections::BTreeMap<i32, usize> = self
            .index
            .months
            .iter()
            .copied()
            .zip(self.index.rows.iter().copied())
            .collect();
        let mut in_order = Vec::new();
        for (mut part, part_labels) in parts {
            let pattern =
                part.pattern
                    .take()
                    .map(|p| match self.patterns.iter().position(|q| *q == p) {
                        Some(i) => i as u32,
                        None => {
                            self.patterns.push(p);
                            self.patterns.len() as u32 - 1
                        }
                    });
            part.labels = part_labels
                .into_iter()
                .map(|mut text| {
                    text.ids = pattern;
                    *self.codes.entry(text).or_insert_with_key(|text| {
                        self.labels.push(text.clone());
                        self.labels.len() as u32 - 1
                    })
                })
                .collect();
            if let Some(rows) = part.in_order.take() {
                in_order.extend(rows.iter().map(|&r| SessionRow {
                    label: part.labels[r.label as usize],
                    ..r
                }));
            }
            for (j, &ym) in part.months.iter().enumerate() {
                *month_rows.entry(ym).or_default() += part.starts[j + 1] - part.starts[j];
            }
            self.orphaned[source as usize] += part.orphaned;
            self.index.ts_range = match (self.index.ts_range, part.ts_range) {
                (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                (x, y) => x.or(y),
            };
            self.parts.push(part);
        }
        self.index.months = month_rows.keys().copied().collect();
        self.index.rows = month_rows.values().copied().collect();
        in_order
    }

    /// Rows with an orphaned reference, per source entity.
    pub fn orphaned(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("web_sessions", self.orphaned[0]),
            ("cart_events", self.orphaned[1]),
            ("email_events", self.orphaned[2]),
        ]
    }

    /// A part's row as a month is built: with its load-wide label code, date key and id
    /// length.
    fn relabel(&self, month: MonthDays, part: &Part, r: &Kept) -> Row {
        let label = part.labels[r.label()];
        let text = &self.labels[label as usize];
        let mut id_len = r.packed >> CODE_BITS;
        if let Some(p) = text.ids {
            id_len = self.patterns[p as usize].digits(r.id_start);
        } else if id_len == LONG_ID {
            id_len = long_id_len(&self.ids[text.source as usize], r.id_start);
        }
        let (x, y) = match part.wide.get(r.x as usize) {
            Some(&[x, y]) if text.wide => (x, y),
            _ => (i64::from(r.x), i64::from(r.y)),
        };
        let keys = match text.source {
            Source::Web => None,
            Source::Cart => Some(&self.product_keys),
            Source::Email => Some(&self.campaign_keys),
        };
        let y = match keys {
            Some(keys) => keys.get(y as usize).copied().unwrap_or(UNKNOWN_KEY),
            None => y,
        };
        Row {
            ts: r.ts,
            customer: r.customer,
            x,
            y,
            date_key: month.date_key(r.ts),
            label,
            id_start: r.id_start,
            id_len,
        }
    }

    /// The places of month `k`'s rows in the order (date_key) or (date_key,
    /// customer_key).
    ///
    /// The rows are placed day by day as they are found in the parts (a counting sort
    /// on the day of the month, which keeps the parts' order), and each day is then
    /// ordered by customer key on its own when the table asks for it. Only the rows'
    /// places are sorted (8 bytes a row): the rows themselves are gathered a row group
    /// at a time ([`InteractionFact::rows_at`]), so a month being written takes a
    /// sixth of the memory its rows would.
    fn sorted_month(&self, k: usize) -> MonthBuffer<'_> {
        let ym = self.index.months[k];
        let days = MonthDays::of(ym);
        let mut starts = [0usize; 33];
        for part in &self.parts {
            for r in part.month(ym) {
                starts[days.day(r.ts) + 1] += 1;
            }
        }
        for d in 1..starts.len() {
            starts[d] += starts[d - 1];
        }
        let n = starts[32];
        let mut by_day = self.month_buffer();
        by_day.clear();
        by_day.resize(n, Place::default());
        let mut next = starts;
        for (p, part) in self.parts.iter().enumerate() {
            let rows = part.month_range(ym);
            for (i, r) in part.rows[rows.clone()].iter().enumerate() {
                let slot = &mut next[days.day(r.ts)];
                by_day[*slot] = Place {
                    part: p as u32,
                    row: (rows.start + i) as u32,
                };
                *slot += 1;
            }
        }
        if self.order != MonthOrder::DayCustomer {
            return by_day;
        }
        // Each day is sorted through a buffer of its size.
        let mut sorted = Vec::new();
        for d in 0..32 {
            let day = &mut by_day[starts[d]..starts[d + 1]];
            sorted.clear();
            sort_by_customer(day, |&at| self.kept(at).customer, &mut sorted);
            day.copy_from_slice(&sorted);
        }
        by_day
    }

    /// The row at `at`.
    fn kept(&self, at: Place) -> &Kept {
        &self.parts[at.part as usize].rows[at.row as usize]
    }

    /// The rows at `places`, in their order, as the table's columns are made from
    /// them.
    ///
    /// The rows are first copied out in a loop that does nothing else, so that the CPU
    /// has many of those random reads in flight at once, and then relabeled in order.
    fn rows_at(&self, month: MonthDays, places: &[Place]) -> Vec<Row> {
        let kept: Vec<Kept> = places.iter().map(|&at| *self.kept(at)).collect();
        kept.iter()
            .zip(places)
            .map(|(r, at)| self.relabel(month, &self.parts[at.part as usize], r))
            .collect()
    }

    /// A buffer for a month's row places: one a month written before left (months are
    /// written largest first, so it has room), or a new one.
    fn month_buffer(&self) -> MonthBuffer<'_> {
        let rows = match self.month_buffers.lock() {
            Ok(mut free) => free.pop().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        MonthBuffer {
            rows,
            free: &self.month_buffers,
        }
    }

    /// The table's columns for `rows`, in their order.
    ///
    /// Column by column: the loops that read the ids' bytes at random places in the
    /// sources stay small, so that the CPU has many of those reads in flight at once.
    fn columns(&self, rows: &[Row]) -> Result<RecordBatch> {
        let n = rows.len();
        // Each label's id prefix: its source's, and its ids' pattern's when they are
        // kept as numbers.
        let id_prefixes: Vec<String> = self
            .labels
            .iter()
            .map(|l| match l.ids {
                Some(p) => format!(
                    "{}{}",
                    l.source.prefix(),
                    self.patterns[p as usize].prefix()
                ),
                None => l.source.prefix().to_string(),
            })
            .collect();
        let id_bytes: usize = rows
            .iter()
            .map(|r| r.id_len as usize + id_prefixes[r.label as usize].len())
            .sum();
        if i32::try_from(id_bytes).is_err() {
            return Err(Error::format(
                "fact_interaction",
                format!("one month's interaction ids take {id_bytes} bytes; at most 2 GiB fit"),
            ));
        }
        // The labels' texts and the id prefixes, each followed by room for a whole
        // block (see `Pieces`): (start, length) per label and column.
        let mut texts: Vec<u8> = Vec::new();
        let mut place = |t: Option<&str>| {
            t.map(|t| {
                texts.extend_from_slice(t.as_bytes());
                (texts.len() - t.len(), t.len())
            })
        };
        // Per label: where its id prefix is, the source whose id column holds its ids
        // and whether they are kept as numbers instead.
        let id_pieces: Vec<((usize, usize), usize, bool)> = self
            .labels
            .iter()
            .zip(&id_prefixes)
            .map(|(l, prefix)| {
                let at = place(Some(prefix)).unwrap_or_default();
                (at, l.source as usize, l.ids.is_some())
            })
            .collect();
        let placed: Vec<[Option<(usize, usize)>; 3]> = self
            .labels
            .iter()
            .map(|l| {
                [
                    place(Some(&l.kind)),
                    place(l.device.as_deref()),
                    place(l.traffic.as_deref()),
                ]
            })
            .collect();
        texts.resize(texts.len() + Pieces::BLOCK, 0);
        let id_data = self.ids.each_ref().map(|a| a.values().as_slice());
        let mut ids = Pieces::new(n, id_bytes);
        for r in rows {
            let ((at, len), source, numbered) = id_pieces[r.label as usize];
            ids.push(&texts, at, len);
            if numbered {
                ids.push_digits(r.id_start, r.id_len as usize);
            } else {
                ids.push(id_data[source], r.id_start as usize, r.id_len as usize);
            }
            ids.end_value(true);
        }
        // The label strings, three columns in one pass.
        let mut strings = [0, 1, 2].map(|_| Pieces::new(n, n * 8));
        for r in rows {
            for (b, piece) in strings.iter_mut().zip(placed[r.label as usize]) {
                if let Some((at, len)) = piece {
                    b.push(&texts, at, len);
                }
                b.end_value(piece.is_some());
            }
        }
        let [kind, device, traffic] = strings;
        // The numbers, all in one pass. A row's x or y where its source has that
        // column (null elsewhere); y as the key of its source's reference (Unknown
        // elsewhere).
        let info: Vec<(Source, bool, bool, i64)> = self
            .labels
            .iter()
            .map(|l| {
                let channel = match l.source {
                    Source::Email => self.email_key,
                    Source::Web | Source::Cart => self.web_key,
                };
                (l.source, l.x_null, l.y_null, channel)
            })
            .collect();
        let mut keys: [Vec<i64>; 6] = std::array::from_fn(|_| Vec::with_capacity(n));
        let mut numbers: [(Vec<i64>, Validity); 3] =
            std::array::from_fn(|_| (Vec::with_capacity(n), Validity::new(n)));
        for r in rows {
            let (source, x_null, y_null, channel) = info[r.label as usize];
            let [date_key, ts, customer, channel_key, campaign, product] = &mut keys;
            date_key.push(i64::from(r.date_key));
            ts.push(r.ts);
            customer.push(r.customer);
            channel_key.push(channel);
            let (web, cart, email) = (
                source == Source::Web,
                source == Source::Cart,
                source == Source::Email,
            );
            campaign.push(if email { r.y } else { UNKNOWN_KEY });
            product.push(if cart { r.y } else { UNKNOWN_KEY });
            let [pages, duration, quantity] = &mut numbers;
            for ((values, valid), (v, ok)) in [pages, duration, quantity].into_iter().zip([
                (r.x, web && !x_null),
                (r.y, web && !y_null),
                (r.x, cart && !x_null),
            ]) {
                values.push(if ok { v } else { 0 });
                valid.append(ok);
            }
        }
        let [date_key, ts, customer, channel, campaign, product] = keys;
        let [pages, duration, quantity] =
            numbers.map(|(values, valid)| -> arrow::array::ArrayRef {
                Arc::new(Int64Array::new(ScalarBuffer::from(values), valid.finish()))
            });
        let mut t = TableAssembler::new("fact_interaction", self.def);
        t.set("interaction_id", ids.finish()?)
            .set("interaction_type", kind.finish()?)
            .set("date_key", ints(date_key))
            .set(
                "event_ts",
                Arc::new(TimestampMicrosecondArray::new(ScalarBuffer::from(ts), None)),
            )
            .set("customer_key", ints(customer))
            .set("channel_key", ints(channel))
            .set("campaign_key", ints(campaign))
            .set("product_key", ints(product))
            .set("device", device.finish()?)
            .set("traffic_source", traffic.finish()?)
            .set("pages_viewed", pages)
            .set("duration_s", duration)
            .set("quantity", quantity);
        t.finish(n)
    }
}

impl MonthlyFact for InteractionFact<'_> {
    fn time_column(&self) -> &str {
        "event_ts"
    }

    fn index(&self) -> &MonthIndex {
        &self.index
    }

    /// Month `k` (an index of [`MonthlyFact::months`]) for the writer. Built in the
    /// table's sort order, its columns are made a row group at a time as they are
    /// written, from its rows' sorted places (8 bytes a row); otherwise it is built whole
    /// ([`MonthlyFact::build_month`]) and sorted as it is written.
    fn month(&self, k: usize) -> Result<MonthRows<'_>> {
        if self.order == MonthOrder::Other {
            return self.build_month(k).map(MonthRows::Batch);
        }
        let places = self.sorted_month(k);
        let days = MonthDays::of(self.index.months[k]);
        Ok(MonthRows::in_row_groups(
            self.def.arrow_schema(),
            places.len(),
            move |r| self.columns(&self.rows_at(days, &places[r])),
        ))
    }

    fn build_month(&self, k: usize) -> Result<RecordBatch> {
        if self.order != MonthOrder::Other {
            let days = MonthDays::of(self.index.months[k]);
            return self.columns(&self.rows_at(days, &self.sorted_month(k)));
        }
        let ym = self.index.months[k];
        let mut rows = Vec::with_capacity(self.index.rows[k]);
        for part in &self.parts {
            let days = MonthDays::of(ym);
            rows.extend(part.month(ym).iter().map(|r| self.relabel(days, part, r)));
        }
        self.columns(&rows)
    }

    fn build_empty(&self) -> Result<RecordBatch> {
        self.columns(&[])
    }
}

/// A month's row places, whose memory goes back to
/// [`InteractionFact::month_buffers`] when they are dropped.
struct MonthBuffer<'a> {
    rows: Vec<Place>,
    free: &'a std::sync::Mutex<Vec<Vec<Place>>>,
}

impl std::ops::Deref for MonthBuffer<'_> {
    type Target = Vec<Place>;
    fn deref(&self) -> &Vec<Place> {
        &self.rows
    }
}

impl std::ops::DerefMut for MonthBuffer<'_> {
    fn deref_mut(&mut self) -> &mut Vec<Place> {
        &mut self.rows
    }
}

impl Drop for MonthBuffer<'_> {
    fn drop(&mut self) {
        if let Ok(mut free) = self.free.lock() {
            free.push(std::mem::take(&mut self.rows));
        }
    }
}

/// The length of the id that starts at byte `start` of `ids`' values (for an id of
/// [`LONG_ID`] bytes or more, whose length its row does not hold).
///
/// Several rows start there only if all but the last are empty strings, so the id is
/// the last of them.
fn long_id_len(ids: &StringArray, start: u32) -> u32 {
    let offsets = ids.value_offsets();
    let row = offsets
        .partition_point(|&o| o as u32 <= start)
        .saturating_sub(1)
        .min(ids.len().saturating_sub(1));
    (offsets[row + 1] - offsets[row]) as u32
}

/// A validity bitmap appended to a bit at a time, without a branch per bit (a month's
/// columns append one to five per row).
struct Validity {
    words: Vec<u64>,
    /// The bits of the word being filled.
    word: u64,
    len: usize,
    nulls: usize,
}

impl Validity {
    fn new(n: usize) -> Self {
        Validity {
            words: Vec::with_capacity(n.div_ceil(64)),
            word: 0,
            len: 0,
            nulls: 0,
        }
    }

    #[inline(always)]
    fn append(&mut self, valid: bool) {
        self.word |= u64::from(valid) << (self.len % 64);
        self.nulls += usize::from(!valid);
        self.len += 1;
        if self.len.is_multiple_of(64) {
            self.words.push(self.word);
            self.word = 0;
        }
    }

    /// The nulls, or none when every value is valid.
    fn finish(mut self) -> Option<arrow::buffer::NullBuffer> {
        if self.nulls == 0 {
            return None;
        }
        if !self.len.is_multiple_of(64) {
            self.words.push(self.word);
        }
        // Bit i of the bitmap is bit i % 64 of word i / 64: Arrow's (least significant
        // bit first) order on the little-endian machines Arrow runs on.
        let bits = arrow::buffer::BooleanBuffer::new(Buffer::from_vec(self.words), 0, self.len);
        Some(arrow::buffer::NullBuffer::new(bits))
    }
}

/// A string column appended to in short pieces.
///
/// A piece of at most [`Pieces::BLOCK`] bytes whose source has that many bytes from
/// its start is copied as one fixed-size block (one vector move, where a call to
/// `memcpy` would cost more than the copy); the block's surplus is overwritten by the
/// next piece. Other pieces are copied as they are.
struct Pieces {
    values: Vec<u8>,
    len: usize,
    offsets: Vec<i32>,
    nulls: Validity,
}

impl Pieces {
    const BLOCK: usize = 32;

    /// An empty column with room for `n` values of `bytes` bytes in all.
    fn new(n: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        Pieces {
            values: vec![0; bytes + Self::BLOCK],
            len: 0,
            offsets,
            nulls: Validity::new(n),
        }
    }

    /// Appends `src[at..at + len]` to the current value. The piece must be the whole
    /// bytes of a `&str` (see `finish`).
    #[inline(always)]
    fn push(&mut self, src: &[u8], at: usize, len: usize) {
        let end = self.len + len;
        if len <= Self::BLOCK {
            let from = src
                .get(at..)
                .and_then(|s| s.first_chunk::<{ Self::BLOCK }>());
            let to = self
                .values
                .get_mut(self.len..)
                .and_then(|d| d.first_chunk_mut::<{ Self::BLOCK }>());
            if let (Some(from), Some(to)) = (from, to) {
                *to = *from;
                self.len = end;
                return;
            }
        }
        if end + Self::BLOCK > self.values.len() {
            self.values.resize(end + Self::BLOCK, 0);
        }
        self.values[self.len..end].copy_from_slice(&src[at..at + len]);
        self.len = end;
    }

    /// Appends `n` written with `digits` digits (zero-padded) to the current value.
    #[inline(always)]
    fn push_digits(&mut self, n: u32, digits: usize) {
        let end = self.len + digits;
        if end + Self::BLOCK > self.values.len() {
            self.values.resize(end + Self::BLOCK, 0);
        }
        IdPattern::write_digits(n, &mut self.values[self.len..end]);
        self.len = end;
    }

    /// Ends the current value: a string (possibly empty) if `valid`, else a null.
    #[inline(always)]
    fn end_value(&mut self, valid: bool) {
        self.offsets.push(self.len as i32);
        self.nulls.append(valid);
    }

    fn finish(mut self) -> Result<arrow::array::ArrayRef> {
        if i32::try_from(self.len).is_err() {
            return Err(Error::format(
                "fact_interaction",
                format!(
                    "one month's strings take {} bytes; at most 2 GiB fit",
                    self.len
                ),
            ));
        }
        self.values.truncate(self.len);
        // SAFETY: the offsets start at 0, never decrease and end at `self.len`, the
        // length of `values` (`push` and `push_digits` only move `len` forward,
        // `end_value` records it), and every value is a sequence of whole pieces, each a
        // `&str`'s bytes (a source id of a `StringArray`, a label or an id prefix) or
        // ASCII digits, so each value is valid UTF-8.
        let offsets = unsafe { OffsetBuffer::new_unchecked(ScalarBuffer::from(self.offsets)) };
        let a = unsafe {
            StringArray::new_unchecked(offsets, Buffer::from_vec(self.values), self.nulls.finish())
        };
        Ok(Arc::new(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_bits_match_arrows_null_buffer() {
        for n in [0, 1, 63, 64, 65, 130, 1000] {
            for pattern in [0u64, 1, 0x5a5a_5a5a, u64::MAX, 0x8000_0000_0000_0001] {
                let valid = |i: usize| (pattern >> (i % 61)) & 1 == 1 || pattern == u64::MAX;
                let mut ours = Validity::new(n);
                let mut arrows = arrow::array::NullBufferBuilder::new(n);
                for i in 0..n {
                    ours.append(valid(i));
                    arrows.append(valid(i));
                }
                assert_eq!(ours.finish(), arrows.finish(), "n {n}, pattern {pattern:x}");
            }
        }
    }

    fn row(customer: i64, id_start: u32) -> Row {
        Row {
            ts: 0,
            customer,
            x: 0,
            y: 0,
            date_key: 0,
            label: 0,
            id_start,
            id_len: 0,
        }
    }

    /// (customer, original position) of sorted rows.
    fn order(rows: &[Row]) -> Vec<(i64, u32)> {
        rows.iter().map(|r| (r.customer, r.id_start)).collect()
    }

    #[test]
    fn a_months_days_agree_with_the_calendar() {
        const DAY: i64 = MICROS_PER_DAY;
        // Every day from 1899-12-01 to 2101-02-01, at its first and last microsecond
        // and at noon.
        let (first, last) = (-25_598 * DAY, 47_513 * DAY);
        let mut ts = first;
        while ts < last {
            for t in [ts, ts + DAY / 2, ts + DAY - 1] {
                let key = date_key_of_micros(t);
                let month = MonthDays::of(key / 100);
                assert_eq!(month.date_key(t), key, "{t}");
                assert_eq!(month.day(t), (key % 100) as usize, "{t}");
            }
            ts += DAY;
        }
    }

    #[test]
    fn a_long_ids_length_is_found_from_its_start() {
        let long = "x".repeat(LONG_ID as usize + 7);
        let ids = StringArray::from(vec!["ab", "", "", long.as_str(), "", long.as_str()]);
        let offsets = ids.value_offsets();
        for row in [3, 5] {
            let start = offsets[row] as u32;
            assert_eq!(long_id_len(&ids, start), long.len() as u32, "row {row}");
        }
        assert_eq!(long_id_len(&ids, 0), 2);
    }

    #[test]
    fn a_kept_row_holds_its_label_and_id_length_in_one_word() {
        let label = (1u32 << CODE_BITS) - 1;
        for len in [0, 1, LONG_ID - 1, LONG_ID] {
            let k = Kept {
                ts: 0,
                customer: 0,
                x: 0,
                y: 0,
                id_start: 0,
                packed: label | len << CODE_BITS,
            };
            assert_eq!((k.label() as u32, k.packed >> CODE_BITS), (label, len));
        }
        assert_eq!(std::mem::size_of::<Kept>(), 32);
    }

    #[test]
    fn a_day_is_sorted_by_customer_keeping_each_customers_order() {
        let narrow = [5, -3, 5, 0, -3, 7, 5, 0];
        let wide = [i64::MAX, i64::MIN, 0, i64::MAX, -1, i64::MIN, 1 << 40];
        for customers in [&narrow[..], &wide[..]] {
            let day: Vec<Row> = customers
                .iter()
                .enumerate()
                .map(|(k, &c)| row(c, k as u32))
                .collect();
            let mut expected = day.clone();
            expected.sort_by_key(|r| r.customer);
            let mut out = vec![row(42, 99)];
            sort_by_customer(&day, |r| r.customer, &mut out);
            assert_eq!(out.len(), customers.len() + 1);
            assert_eq!(order(&out[1..]), order(&expected), "{customers:?}");
        }
        let mut out = Vec::new();
        sort_by_customer(&[], |r: &Row| r.customer, &mut out);
        assert!(out.is_empty());
    }
}

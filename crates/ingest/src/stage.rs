//! Staging: checking raw cells against an entity's contract and collecting the
//! rows that pass into typed Arrow columns.

use crate::value;
use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Date32Array, Decimal128Array, Float64Array,
    Int64Array, NullBufferBuilder, StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::record_batch::RecordBatch;
use crmcube_model::types::DECIMAL_PRECISION;
use crmcube_model::{ColumnSpec, ColumnType, EntitySpec, Error, Result};
use std::sync::Arc;

/// A raw value as read from a file, before the contract is applied.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// No value (missing key, SQL null).
    Null,
    /// Text to parse (CSV fields, JSON strings, Parquet values of other types).
    Text(&'a str),
    /// Bytes that are not valid UTF-8.
    Invalid(&'a [u8]),
    /// A JSON boolean or Parquet boolean.
    Bool(bool),
    /// An already-typed integer.
    Int(i64),
    /// An already-typed float.
    Float(f64),
}

impl<'a> Cell<'a> {
    /// A text field as a cell: text, or invalid bytes when it is not UTF-8. With
    /// `known_utf8` the field is not checked.
    ///
    /// # Safety
    ///
    /// With `known_utf8`, `field` must be valid UTF-8.
    #[inline]
    pub unsafe fn of_field(field: &'a [u8], known_utf8: bool) -> Self {
        if known_utf8 {
            // SAFETY: the caller vouches for it (see above).
            Cell::Text(unsafe { std::str::from_utf8_unchecked(field) })
        } else {
            match std::str::from_utf8(field) {
                Ok(s) => Cell::Text(s),
                Err(_) => Cell::Invalid(field),
            }
        }
    }
}

/// Why one row was refused.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Column at fault (`None` for whole-row problems like a wrong field count).
    pub column: Option<String>,
    /// The offending value as text.
    pub value: Option<String>,
    /// What was expected.
    pub reason: String,
}

impl Rejection {
    /// A whole-row rejection.
    pub fn row(reason: impl Into<String>) -> Self {
        Rejection {
            column: None,
            value: None,
            reason: reason.into(),
        }
    }
}

/// One column's accepted values, appended in place.
enum Values {
    /// Text: end offsets (starting with 0) and the bytes.
    Str {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    I64(Vec<i64>),
    F64(Vec<f64>),
    Dec(Vec<i128>, i8),
    Bool(BooleanBufferBuilder),
    Date(Vec<i32>),
    Ts(Vec<i64>),
}

/// A column under construction: its values and which of them are null.
struct Column {
    values: Values,
    nulls: NullBufferBuilder,
    /// The contract's accepted values, if it lists them.
    accepted: Option<Accepted>,
}

impl Column {
    fn new(spec: &ColumnSpec, capacity: usize, text_bytes: usize) -> Self {
        let values = match spec.ty {
            ColumnType::String => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Values::Str {
                    offsets,
                    bytes: Vec::with_capacity(text_bytes),
                }
            }
            ColumnType::Int | ColumnType::Key => Values::I64(Vec::with_capacity(capacity)),
            ColumnType::Float => Values::F64(Vec::with_capacity(capacity)),
            ColumnType::Decimal => Values::Dec(Vec::with_capacity(capacity), spec.scale),
            ColumnType::Bool => Values::Bool(BooleanBufferBuilder::new(capacity)),
            ColumnType::Date => Values::Date(Vec::with_capacity(capacity)),
            ColumnType::Timestamp => Values::Ts(Vec::with_capacity(capacity)),
        };
        Column {
            values,
            nulls: NullBufferBuilder::new(capacity),
            accepted: spec.accepted.as_deref().map(Accepted::new),
        }
    }

    /// Appends a null (its value slot holds a default).
    fn push_null(&mut self) {
        match &mut self.values {
            Values::Str { offsets, bytes } => offsets.push(bytes.len() as i32),
            Values::I64(v) | Values::Ts(v) => v.push(0),
            Values::F64(v) => v.push(0.0),
            Values::Dec(v, _) => v.push(0),
            Values::Bool(v) => v.append(false),
            Values::Date(v) => v.push(0),
        }
        self.nulls.append_null();
    }

    /// Appends text to a text column; an error when the column's bytes would no longer
    /// fit Arrow's 32-bit offsets.
    fn push_text(&mut self, s: &str) -> Result<(), String> {
        if let Values::Str { offsets, bytes } = &mut self.values {
            let end = i32::try_from(bytes.len() + s.len())
                .map_err(|_| "the column holds more than 2 GiB of text in one batch".to_string())?;
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(end);
            self.nulls.append_non_null();
        }
        Ok(())
    }

    fn push_i64(&mut self, v: i64) {
        if let Values::I64(vs) | Values::Ts(vs) = &mut self.values {
            vs.push(v);
            self.nulls.append_non_null();
        }
    }

    /// Keeps the first `len` values (drops a partly appended row).
    fn truncate(&mut self, len: usize) {
        match &mut self.values {
            Values::Str { offsets, bytes } => {
                offsets.truncate(len + 1);
                bytes.truncate(offsets[len] as usize);
            }
            Values::I64(v) | Values::Ts(v) => v.truncate(len),
            Values::F64(v) => v.truncate(len),
            Values::Dec(v, _) => v.truncate(len),
            Values::Bool(v) => v.truncate(len),
            Values::Date(v) => v.truncate(len),
        }
        self.nulls.truncate(len);
    }

    /// Keeps, of the values from position `base` on, those whose `keep` is true (`keep`
    /// covers every value from `base`).
    fn retain_from(&mut self, base: usize, keep: &[bool]) {
        fn retain<T: Copy>(v: &mut Vec<T>, base: usize, keep: &[bool]) {
            let mut to = base;
            for (k, &kept) in keep.iter().enumerate() {
                if kept {
                    v[to] = v[base + k];
                    to += 1;
                }
            }
            v.truncate(to);
        }
        match &mut self.values {
            Values::Str { offsets, bytes } => {
                let mut to_off = base;
                let mut to_byte = offsets[base] as usize;
                for (k, &kept) in keep.iter().enumerate() {
                    let (s, e) = (offsets[base + k] as usize, offsets[base + k + 1] as usize);
                    if kept {
                        bytes.copy_within(s..e, to_byte);
                        to_byte += e - s;
                        to_off += 1;
                        offsets[to_off] = to_byte as i32;
                    }
                }
                offsets.truncate(to_off + 1);
                bytes.truncate(to_byte);
            }
            Values::I64(v) | Values::Ts(v) => retain(v, base, keep),
            Values::F64(v) => retain(v, base, keep),
            Values::Dec(v, _) => retain(v, base, keep),
            Values::Date(v) => retain(v, base, keep),
            Values::Bool(v) => {
                let bits: Vec<bool> = (0..keep.len()).map(|k| v.get_bit(base + k)).collect();
                v.truncate(base);
                for (bit, &kept) in bits.iter().zip(keep) {
                    if kept {
                        v.append(*bit);
                    }
                }
            }
        }
        let valid: Option<Vec<bool>> = self.nulls.as_slice().map(|bitmap| {
            (0..keep.len())
                .map(|k| arrow::util::bit_util::get_bit(bitmap, base + k))
                .collect()
        });
        self.nulls.truncate(base);
        match valid {
            Some(valid) => {
                for (&v, &kept) in valid.iter().zip(keep) {
                    if kept {
                        self.nulls.append(v);
                    }
                }
            }
            None => self
                .nulls
                .append_n_non_nulls(keep.iter().filter(|&&k| k).count()),
        }
    }

    fn finish(mut self) -> Result<ArrayRef> {
        let nulls = self.nulls.finish();
        let array: ArrayRef = match self.values {
            Values::Str { offsets, bytes } => {
                // SAFETY: the offsets start at 0, never decrease and end at
                // `bytes.len()` (`push_text`, `push_null`, `truncate`), and every
                // piece appended was a `&str`, so each value is valid UTF-8.
                let offsets = unsafe { OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)) };
                Arc::new(unsafe {
                    StringArray::new_unchecked(offsets, Buffer::from_vec(bytes), nulls)
                })
            }
            Values::I64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
            Values::Ts(v) => Arc::new(TimestampMicrosecondArray::new(v.into(), nulls)),
            Values::F64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
            Values::Dec(v, scale) => Arc::new(
                Decimal128Array::new(v.into(), nulls)
                    .with_precision_and_scale(DECIMAL_PRECISION, scale)
                    .map_err(|e| Error::format("staging", e))?,
            ),
            Values::Bool(mut v) => Arc::new(BooleanArray::new(v.finish(), nulls)),
            Values::Date(v) => Arc::new(Date32Array::new(v.into(), nulls)),
        };
        Ok(array)
    }
}

/// Delimited text records in one buffer, for [`RowStager::push_fields`]. Each record
/// has `fields` fields and takes `fields + 1` entries of `at`: where each field starts,
/// then one past the end of the record plus one, so that field `i` of record `r` is
/// `bytes[at[r * (fields + 1) + i]..at[r * (fields + 1) + i + 1] - 1]`.
pub struct FieldBlock<'a> {
    /// The text the records are in.
    pub bytes: &'a [u8],
    /// Field starts and record ends, `fields + 1` per record (see above).
    pub at: &'a [usize],
    /// Fields per record.
    pub fields: usize,
    /// Whether `bytes` is valid UTF-8 and no field starts or ends inside a character
    /// (each field is then valid UTF-8 too); otherwise each field is checked.
    pub utf8: bool,
}

impl<'a> FieldBlock<'a> {
    /// Field `i` of record `r`.
    #[inline(always)]
    pub fn field(&self, r: usize, i: usize) -> &'a [u8] {
        let k = r * (self.fields + 1) + i;
        &self.bytes[self.at[k]..self.at[k + 1] - 1]
    }

    /// All of record `r`, without its line end.
    pub fn record(&self, r: usize) -> &'a [u8] {
        let k = r * (self.fields + 1);
        &self.bytes[self.at[k]..self.at[k + self.fields] - 1]
    }

    /// Field `i` of record `r` as a cell (checked for UTF-8 unless the block is).
    #[inline]
    pub fn cell(&self, r: usize, i: usize) -> Cell<'a> {
        // SAFETY: `utf8` is only set when every field is valid UTF-8 (see the field).
        unsafe { Cell::of_field(self.field(r, i), self.utf8) }
    }
}

/// Collects the accepted rows of one entity into Arrow arrays.
pub struct RowStager<'s> {
    spec: &'s EntitySpec,
    columns: Vec<Column>,
    /// Source line (or row number) of each accepted row.
    pub lines: Vec<u64>,
    /// Whether text cells are known to hold no NUL byte ([`RowStager::assume_no_nul`]).
    nul_free: bool,
}

impl<'s> RowStager<'s> {
    /// A stager for `spec` with room for `capacity` rows.
    pub fn new(spec: &'s EntitySpec, capacity: usize) -> Self {
        Self::with_text_capacity(spec, capacity, capacity * 8)
    }

    /// A stager for `spec` with room for `capacity` rows and `text_bytes` bytes in each
    /// text column (memory not written to is never touched, so a generous bound is cheap).
    pub fn with_text_capacity(spec: &'s EntitySpec, capacity: usize, text_bytes: usize) -> Self {
        let columns = spec
            .columns
            .iter()
            .map(|c| Column::new(c, capacity, text_bytes))
            .collect();
        RowStager {
            spec,
            columns,
            lines: Vec::with_capacity(capacity),
            nul_free: false,
        }
    }

    /// Tells the stager that no text cell it will be given contains a NUL byte (the
    /// caller checked its whole input at once), so cells are not searched one by one.
    pub fn assume_no_nul(&mut self) {
        self.nul_free = true;
    }

    /// Checks one row (cells in contract column order; missing cells are null) and
    /// keeps it if every cell passes. Each cell is appended as it is checked; when one
    /// fails, the row's earlier cells are taken back.
    pub fn push<'c>(
        &mut self,
        line: u64,
        mut cells: impl Iterator<Item = Cell<'c>>,
    ) -> Result<(), Rejection> {
        let rows = self.lines.len();
        for (k, (spec, column)) in self.spec.columns.iter().zip(&mut self.columns).enumerate() {
            let cell = cells.next().unwrap_or(Cell::Null);
            if let Err(reason) = check_cell(spec, column, cell, self.nul_free) {
                for c in &mut self.columns[..=k] {
                    c.truncate(rows);
                }
                return Err(refusal(spec, cell, reason));
            }
        }
        self.lines.push(line);
        Ok(())
    }

    /// Checks and stages a block of delimited text records, one column at a time:
    /// contract column `k` is field `mapping[k]` of each record (null where `None`),
    /// `lines[r]` is record `r`'s source line. Records with a cell that fails are left
    /// out, each refused for its first failing column (in contract order, as
    /// [`RowStager::push`] does); they come back in record order with their position
    /// in the block.
    ///
    /// Column by column, each check runs over many values of one type in a row, which
    /// is what makes this faster than [`RowStager::push`] for a file of many rows.
    pub fn push_fields(
        &mut self,
        lines: &[u64],
        block: &FieldBlock,
        mapping: &[Option<usize>],
    ) -> Vec<(usize, Rejection)> {
        let base = self.lines.len();
        let n = lines.len();
        let mut refused: Vec<(usize, Rejection)> = Vec::new();
        let mut failed: Vec<bool> = Vec::new();
        let nul_free = self.nul_free;
        for (k, (spec, column)) in self.spec.columns.iter().zip(&mut self.columns).enumerate() {
            let mut out = BlockOut {
                n,
                failed: &mut failed,
                refused: &mut refused,
                nul_free,
            };
            let any = |c: &mut Column, t: &str| check_text(spec, c, t, nul_free);
            let Some(i) = mapping.get(k).copied().flatten() else {
                out.column(spec, column, |_| Cell::Null, any);
                continue;
            };
            if !block.utf8 {
                out.column(spec, column, |r| block.cell(r, i), any);
                continue;
            }
            // SAFETY: every field of the block is valid UTF-8 (`FieldBlock::utf8`).
            let text =
                |r: usize| Cell::Text(unsafe { std::str::from_utf8_unchecked(block.field(r, i)) });
            match column.values {
                Values::Str { .. } => {
                    out.column(spec, column, text, |c, t| text_str(spec, c, t, nul_free))
                }
                Values::I64(_) => out.column(spec, column, text, |c, t| text_int(spec, c, t)),
                Values::F64(_) => out.column(spec, column, text, |c, t| text_float(spec, c, t)),
                Values::Dec(..) => out.column(spec, column, text, |c, t| text_decimal(spec, c, t)),
                Values::Bool(_) => out.column(spec, column, text, text_bool),
                Values::Date(_) => out.column(spec, column, text, text_date),
                Values::Ts(_) => out.column(spec, column, text, text_timestamp),
            }
        }
        self.lines.extend_from_slice(lines);
        if !failed.is_empty() {
            let keep: Vec<bool> = failed.iter().map(|f| !f).collect();
            for column in &mut self.columns {
                column.retain_from(base, &keep);
            }
            let mut to = base;
            for (k, &kept) in keep.iter().enumerate() {
                if kept {
                    self.lines[to] = self.lines[base + k];
                    to += 1;
                }
            }
            self.lines.truncate(to);
            refused.sort_by_key(|(r, _)| *r);
        }
        refused
    }

    /// Number of rows kept so far.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no row was kept.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The kept rows as a batch with the entity's staged schema.
    pub fn finish(self) -> Result<(RecordBatch, Vec<u64>)> {
        let arrays = self
            .columns
            .into_iter()
            .map(Column::finish)
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(self.spec.arrow_schema(), arrays)
            .map_err(|e| Error::format("staging", e))?;
        Ok((batch, self.lines))
    }
}

/// A block being staged column by column (see [`RowStager::push_fields`]).
struct BlockOut<'b> {
    n: usize,
    /// Rows that failed in an earlier column (empty while none has).
    failed: &'b mut Vec<bool>,
    refused: &'b mut Vec<(usize, Rejection)>,
    nul_free: bool,
}

impl BlockOut<'_> {
    /// Checks and stages one column of the block, `cell(r)` its cell in row `r`:
    /// `check` takes a non-empty text cell,
    /// [`check_cell`] any other. A row that failed in an earlier column gets a
    /// placeholder null; a row that fails here gets one too and joins them.
    #[inline(always)]
    fn column<'c>(
        &mut self,
        spec: &ColumnSpec,
        column: &mut Column,
        cell: impl Fn(usize) -> Cell<'c>,
        check: impl Fn(&mut Column, &str) -> Result<(), String>,
    ) {
        let nul_free = self.nul_free;
        let one = |column: &mut Column, c: Cell| match c {
            Cell::Text(t) if !t.is_empty() => check(column, t),
            c => check_cell(spec, column, c, nul_free),
        };
        let n = self.n;
        let mut r = 0;
        if self.failed.is_empty() {
            // No row has failed yet: the common case, without a per-row test.
            while r < n {
                let c = cell(r);
                r += 1;
                if let Err(reason) = one(column, c) {
                    column.push_null();
                    *self.failed = vec![false; n];
                    self.failed[r - 1] = true;
                    self.refused.push((r - 1, refusal(spec, c, reason)));
                    break;
                }
            }
        }
        while r < n {
            if self.failed[r] {
                column.push_null();
            } else {
                let c = cell(r);
                if let Err(reason) = one(column, c) {
                    column.push_null();
                    self.failed[r] = true;
                    self.refused.push((r, refusal(spec, c, reason)));
                }
            }
            r += 1;
        }
    }
}

/// The refusal of a row whose `cell` in column `spec` failed for `reason`.
fn refusal(spec: &ColumnSpec, cell: Cell, reason: String) -> Rejection {
    Rejection {
        column: Some(spec.name.clone()),
        value: Some(cell_text(cell)),
        reason,
    }
}

/// The text of a raw cell, for quarantine records.
pub fn cell_text(cell: Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Text(s) => s.to_string(),
        Cell::Invalid(b) => String::from_utf8_lossy(b).into_owned(),
        Cell::Bool(v) => v.to_string(),
        Cell::Int(v) => v.to_string(),
        Cell::Float(v) => v.to_string(),
    }
}

/// The accepted values of a text column, for a quick membership test. A value of up
/// to 16 bytes is compared as its length and two words read from its start and its end
/// (which overlap and together cover every byte); longer ones as slices.
struct Accepted {
    keys: Vec<(usize, u64, u64)>,
    long: Vec<Box<[u8]>>,
}

impl Accepted {
    fn new(values: &[String]) -> Self {
        let mut acc = Accepted {
            keys: Vec::new(),
            long: Vec::new(),
        };
        for v in values {
            match Self::key(v.as_bytes()) {
                Some(k) => acc.keys.push(k),
                None => acc.long.push(v.as_bytes().into()),
            }
        }
        acc
    }

    /// The key of a value of 1 to 16 bytes.
    #[inline]
    fn key(b: &[u8]) -> Option<(usize, u64, u64)> {
        let n = b.len();
        let word8 = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let word4 = |at: usize| {
            u64::from(u32::from_le_bytes(
                b[at..at + 4].try_into().unwrap_or_default(),
            ))
        };
        match n {
            8..=16 => Some((n, word8(0), word8(n - 8))),
            4..=7 => Some((n, word4(0), word4(n - 4))),
            1..=3 => Some((
                n,
                u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
                0,
            )),
            _ => None,
        }
    }

    #[inline]
    fn contains(&self, b: &[u8]) -> bool {
        match Self::key(b) {
            Some(k) => self.keys.contains(&k),
            None => self.long.iter().any(|v| **v == *b),
        }
    }
}

/// Checks `cell` against the column's contract and appends its value to `column`.
/// On an error nothing was appended.
fn check_cell(
    spec: &ColumnSpec,
    column: &mut Column,
    cell: Cell,
    nul_free: bool,
) -> Result<(), String> {
    let owned: String;
    let text: &str = match cell {
        Cell::Null | Cell::Text("") => {
            return if spec.nullable {
                column.push_null();
                Ok(())
            } else {
                Err(format!("a value is required ({})", spec.ty.name()))
            }
        }
        Cell::Invalid(_) => return Err("value is not valid UTF-8 text".into()),
        Cell::Text(s) => s,
        Cell::Bool(v) => {
            return match (&mut column.values, spec.ty) {
                (Values::Bool(b), ColumnType::Bool) => {
                    b.append(v);
                    column.nulls.append_non_null();
                    Ok(())
                }
                (_, ColumnType::String) => column.push_text(if v { "true" } else { "false" }),
                (_, t) => Err(format!("expected {}, found a boolean", t.name())),
            }
        }
        Cell::Int(v) if matches!(spec.ty, ColumnType::Int | ColumnType::Key) => {
            bounded(spec, v as f64)?;
            column.push_i64(v);
            return Ok(());
        }
        Cell::Int(v) => {
            owned = v.to_string();
            &owned
        }
        Cell::Float(v) => {
            owned = v.to_string();
            &owned
        }
    };
    check_text(spec, column, text, nul_free)
}

/// Checks a non-empty text cell against the column's contract and appends its value.
/// On an error nothing was appended.
#[inline]
fn check_text(
    spec: &ColumnSpec,
    column: &mut Column,
    text: &str,
    nul_free: bool,
) -> Result<(), String> {
    match column.values {
        Values::Str { .. } => text_str(spec, column, text, nul_free),
        Values::I64(_) => text_int(spec, column, text),
        Values::F64(_) => text_float(spec, column, text),
        Values::Dec(..) => text_decimal(spec, column, text),
        Values::Bool(_) => text_bool(column, text),
        Values::Date(_) => text_date(column, text),
        Values::Ts(_) => text_timestamp(column, text),
    }
}

// One function per column type, for `check_text` and for the column loops of
// `RowStager::push_fields`. Each tries the common spelling first (`value::fast`), which
// accepts nothing the full parser would refuse or read differently.

#[inline]
fn text_str(
    spec: &ColumnSpec,
    column: &mut Column,
    text: &str,
    nul_free: bool,
) -> Result<(), String> {
    let b = text.as_bytes();
    if !nul_free && memchr::memchr(0, b).is_some() {
        return Err(
            "contains a NUL character (U+0000); the file is probably binary or UTF-16".into(),
        );
    }
    if let Some(acc) = &column.accepted {
        if !acc.contains(b) {
            let acc = spec.accepted.as_deref().unwrap_or_default();
            return Err(format!("expected one of: {}", acc.join(", ")));
        }
    }
    if let Some(max) = spec.max_length {
        if text.len() > max && text.chars().count() > max {
            return Err(format!("longer than {max} characters"));
        }
    }
    column.push_text(text)
}

#[inline]
fn text_int(spec: &ColumnSpec, column: &mut Column, text: &str) -> Result<(), String> {
    let x = value::fast::int(text.as_bytes()).map_or_else(|| value::parse_int(text), Ok)?;
    bounded(spec, x as f64)?;
    column.push_i64(x);
    Ok(())
}

#[inline]
fn text_float(spec: &ColumnSpec, column: &mut Column, text: &str) -> Result<(), String> {
    let x = value::parse_float(text)?;
    bounded(spec, x)?;
    if let Values::F64(v) = &mut column.values {
        v.push(x);
        column.nulls.append_non_null();
    }
    Ok(())
}

#[inline]
fn text_decimal(spec: &ColumnSpec, column: &mut Column, text: &str) -> Result<(), String> {
    if let Values::Dec(v, scale) = &mut column.values {
        let x = value::fast::decimal(text.as_bytes(), *scale)
            .map_or_else(|| value::parse_decimal(text, *scale), Ok)?;
        if spec.min.is_some() || spec.max.is_some() {
            bounded(spec, x as f64 / 10f64.powi(i32::from(*scale)))?;
        }
        v.push(x);
        column.nulls.append_non_null();
    }
    Ok(())
}

#[inline]
fn text_bool(column: &mut Column, text: &str) -> Result<(), String> {
    let x = value::fast::bool(text.as_bytes()).map_or_else(|| value::parse_bool(text), Ok)?;
    if let Values::Bool(v) = &mut column.values {
        v.append(x);
        column.nulls.append_non_null();
    }
    Ok(())
}

#[inline]
fn text_date(column: &mut Column, text: &str) -> Result<(), String> {
    let x =
        value::fast::date(text.as_bytes()).map_or_else(|| value::parse_date(text.trim()), Ok)?;
    if let Values::Date(v) = &mut column.values {
        v.push(x);
        column.nulls.append_non_null();
    }
    Ok(())
}

#[inline]
fn text_timestamp(column: &mut Column, text: &str) -> Result<(), String> {
    let x = value::fast::timestamp(text.as_bytes())
        .map_or_else(|| value::parse_timestamp(text.trim()), Ok)?;
    column.push_i64(x);
    Ok(())
}

fn bounded(spec: &ColumnSpec, v: f64) -> Result<(), String> {
    if let Some(min) = spec.min {
        if v < min {
            return Err(format!("must be at least {min}"));
        }
    }
    if let Some(max) = spec.max {
        if v > max {
            return Err(format!("must be at most {max}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, Float64Type, Int64Type};

    #[test]
    fn a_refused_row_leaves_nothing_behind_in_any_column() {
        let contract = crmcube_model::ExportContract::parse(
            "entities:\n  t:\n    primary_key: [id]\n    columns:\n      - { name: id, type: string }\n      - { name: n, type: int, nullable: true, min: 0 }\n      - { name: amount, type: decimal, scale: 2 }\n      - { name: x, type: float, nullable: true }\n      - { name: ok, type: bool, nullable: true }\n      - { name: day, type: date, nullable: true }\n      - { name: kind, type: string, accepted: [a, b] }\n",
            "t.yaml",
        )
        .unwrap();
        let spec = contract.entity("t").unwrap();
        let mut s = RowStager::new(spec, 2);
        let text = |cells: &[&'static str]| cells.iter().map(|c| Cell::Text(c)).collect::<Vec<_>>();
        // Fails on the last column, after every other column took its value.
        let bad = s.push(
            1,
            text(&["r1", "5", "1.25", "0.5", "true", "2024-02-29", "c"]).into_iter(),
        );
        let bad = bad.unwrap_err();
        assert_eq!(bad.column.as_deref(), Some("kind"));
        assert_eq!(bad.value.as_deref(), Some("c"));
        // Fails in the middle.
        assert!(s
            .push(2, text(&["r2", "-1", "1", "", "", "", "a"]).into_iter())
            .is_err());
        s.push(3, text(&["r3", "", "2.5", "", "no", "", "b"]).into_iter())
            .unwrap();
        // Typed cells (JSON, Parquet) and missing trailing cells.
        s.push(
            4,
            [
                Cell::Int(44),
                Cell::Int(7),
                Cell::Int(3),
                Cell::Float(1.5),
                Cell::Bool(true),
            ]
            .into_iter()
            .chain([Cell::Null, Cell::Text("a")]),
        )
        .unwrap();
        assert!(s
            .push(5, [Cell::Text("r5"), Cell::Bool(true)].into_iter())
            .is_err());
        assert!(s.push(6, [Cell::Invalid(b"\xff")].into_iter()).is_err());
        assert_eq!(s.len(), 2);
        let (batch, lines) = s.finish().unwrap();
        assert_eq!(lines, [3, 4]);
        let ids = batch.column(0).as_string::<i32>();
        assert_eq!((ids.value(0), ids.value(1)), ("r3", "44"));
        assert_eq!(ids.value_offsets(), [0, 2, 4]);
        let n = batch.column(1).as_primitive::<Int64Type>();
        assert!(n.is_null(0));
        assert_eq!(n.value(1), 7);
        let amount = batch.column(2).as_primitive::<Decimal128Type>();
        assert_eq!((amount.value(0), amount.value(1)), (250, 300));
        let x = batch.column(3).as_primitive::<Float64Type>();
        assert!(x.is_null(0));
        assert_eq!(x.value(1), 1.5);
        let ok = batch.column(4).as_boolean();
        assert_eq!((ok.value(0), ok.value(1)), (false, true));
        let day = batch.column(5).as_primitive::<Date32Type>();
        assert_eq!(day.null_count(), 2);
        let kind = batch.column(6).as_string::<i32>();
        assert_eq!((kind.value(0), kind.value(1)), ("b", "a"));
    }
}

//! Staging: checking raw cells against an entity's contract and collecting the
//! rows that pass into typed Arrow columns.

use crate::value;
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
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

/// A checked value ready for its column.
#[derive(Debug, Clone)]
enum Parsed {
    Null,
    /// The cell's own text, taken as it is (no copy until it lands in the builder).
    CellText,
    /// Text converted from a non-text cell.
    Str(String),
    I64(i64),
    F64(f64),
    Dec(i128),
    Bool(bool),
    Date(i32),
    Ts(i64),
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

enum Builder {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, i8),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

/// Collects the accepted rows of one entity into Arrow arrays.
pub struct RowStager<'s> {
    spec: &'s EntitySpec,
    builders: Vec<Builder>,
    scratch: Vec<Parsed>,
    /// Source line (or row number) of each accepted row.
    pub lines: Vec<u64>,
}

impl<'s> RowStager<'s> {
    /// A stager for `spec` with room for `capacity` rows.
    pub fn new(spec: &'s EntitySpec, capacity: usize) -> Self {
        Self::with_text_capacity(spec, capacity, capacity * 8)
    }

    /// A stager for `spec` with room for `capacity` rows and `text_bytes` bytes in each
    /// text column (memory not written to is never touched, so a generous bound is cheap).
    pub fn with_text_capacity(spec: &'s EntitySpec, capacity: usize, text_bytes: usize) -> Self {
        let builders = spec
            .columns
            .iter()
            .map(|c| match c.ty {
                ColumnType::String => {
                    Builder::Str(StringBuilder::with_capacity(capacity, text_bytes))
                }
                ColumnType::Int | ColumnType::Key => {
                    Builder::I64(Int64Builder::with_capacity(capacity))
                }
                ColumnType::Float => Builder::F64(Float64Builder::with_capacity(capacity)),
                ColumnType::Decimal => {
                    Builder::Dec(Decimal128Builder::with_capacity(capacity), c.scale)
                }
                ColumnType::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
                ColumnType::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
                ColumnType::Timestamp => {
                    Builder::Ts(TimestampMicrosecondBuilder::with_capacity(capacity))
                }
            })
            .collect();
        RowStager {
            spec,
            builders,
            scratch: Vec::with_capacity(spec.columns.len()),
            lines: Vec::with_capacity(capacity),
        }
    }

    /// Checks one row (cells in contract column order) and keeps it if every cell passes.
    pub fn push<'c>(
        &mut self,
        line: u64,
        cells: impl Iterator<Item = Cell<'c>>,
    ) -> Result<(), Rejection> {
        const INLINE: usize = 48;
        let n = self.spec.columns.len();
        let mut inline = [Cell::Null; INLINE];
        let heap: Vec<Cell<'c>>;
        let row: &[Cell<'c>] = if n <= INLINE {
            for (slot, c) in inline.iter_mut().zip(cells) {
                *slot = c;
            }
            &inline[..n]
        } else {
            heap = cells.chain(std::iter::repeat(Cell::Null)).take(n).collect();
            &heap
        };
        self.scratch.clear();
        for (spec, &cell) in self.spec.columns.iter().zip(row) {
            match check_cell(spec, cell) {
                Ok(p) => self.scratch.push(p),
                Err(reason) => {
                    return Err(Rejection {
                        column: Some(spec.name.clone()),
                        value: Some(cell_text(cell)),
                        reason,
                    })
                }
            }
        }
        for ((b, p), cell) in self
            .builders
            .iter_mut()
            .zip(self.scratch.drain(..))
            .zip(row)
        {
            append(b, p, *cell);
        }
        self.lines.push(line);
        Ok(())
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
    pub fn finish(mut self) -> Result<(RecordBatch, Vec<u64>)> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Str(b) => Arc::new(b.finish()),
                    Builder::I64(b) => Arc::new(b.finish()),
                    Builder::F64(b) => Arc::new(b.finish()),
                    Builder::Dec(b, scale) => Arc::new(
                        b.finish()
                            .with_precision_and_scale(DECIMAL_PRECISION, *scale)
                            .unwrap_or_else(|_| {
                                arrow::array::Decimal128Array::from(Vec::<i128>::new())
                            }),
                    ),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.spec.arrow_schema(), arrays)
            .map_err(|e| Error::format("staging", e))?;
        Ok((batch, self.lines))
    }
}

fn append(b: &mut Builder, p: Parsed, cell: Cell) {
    match (b, p) {
        (Builder::Str(b), Parsed::CellText) => match cell {
            Cell::Text(s) => b.append_value(s),
            other => b.append_value(cell_text(other)),
        },
        (Builder::Str(b), Parsed::Str(s)) => b.append_value(s),
        (Builder::Str(b), _) => b.append_null(),
        (Builder::I64(b), Parsed::I64(v)) => b.append_value(v),
        (Builder::I64(b), _) => b.append_null(),
        (Builder::F64(b), Parsed::F64(v)) => b.append_value(v),
        (Builder::F64(b), _) => b.append_null(),
        (Builder::Dec(b, _), Parsed::Dec(v)) => b.append_value(v),
        (Builder::Dec(b, _), _) => b.append_null(),
        (Builder::Bool(b), Parsed::Bool(v)) => b.append_value(v),
        (Builder::Bool(b), _) => b.append_null(),
        (Builder::Date(b), Parsed::Date(v)) => b.append_value(v),
        (Builder::Date(b), _) => b.append_null(),
        (Builder::Ts(b), Parsed::Ts(v)) => b.append_value(v),
        (Builder::Ts(b), _) => b.append_null(),
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

fn check_cell(spec: &ColumnSpec, cell: Cell) -> Result<Parsed, String> {
    let text: std::borrow::Cow<str> = match cell {
        Cell::Null => return null_or_err(spec),
        Cell::Text("") => return null_or_err(spec),
        Cell::Invalid(_) => return Err("value is not valid UTF-8 text".into()),
        Cell::Text(s) => s.into(),
        Cell::Bool(v) => {
            return match spec.ty {
                ColumnType::Bool => Ok(Parsed::Bool(v)),
                ColumnType::String => Ok(Parsed::Str(v.to_string())),
                t => Err(format!("expected {}, found a boolean", t.name())),
            }
        }
        Cell::Int(v) => {
            if spec.ty == ColumnType::Int {
                return bounded(spec, v as f64).map(|_| Parsed::I64(v));
            }
            v.to_string().into()
        }
        Cell::Float(v) => v.to_string().into(),
    };
    let text = text.as_ref();
    let parsed = match spec.ty {
        ColumnType::String => {
            if text.contains('\0') {
                return Err(
                    "contains a NUL character (U+0000); the file is probably binary or UTF-16"
                        .into(),
                );
            }
            if let Some(acc) = &spec.accepted {
                if !acc.iter().any(|a| a == text) {
                    return Err(format!("expected one of: {}", acc.join(", ")));
                }
            }
            if let Some(max) = spec.max_length {
                if text.len() > max && text.chars().count() > max {
                    return Err(format!("longer than {max} characters"));
                }
            }
            if matches!(cell, Cell::Text(_)) {
                Parsed::CellText
            } else {
                Parsed::Str(text.to_string())
            }
        }
        ColumnType::Int | ColumnType::Key => {
            let v = value::parse_int(text)?;
            bounded(spec, v as f64)?;
            Parsed::I64(v)
        }
        ColumnType::Float => {
            let v = value::parse_float(text)?;
            bounded(spec, v)?;
            Parsed::F64(v)
        }
        ColumnType::Decimal => {
            let v = value::parse_decimal(text, spec.scale)?;
            bounded(spec, v as f64 / 10f64.powi(i32::from(spec.scale)))?;
            Parsed::Dec(v)
        }
        ColumnType::Bool => Parsed::Bool(value::parse_bool(text)?),
        ColumnType::Date => Parsed::Date(value::parse_date(text.trim())?),
        ColumnType::Timestamp => Parsed::Ts(value::parse_timestamp(text.trim())?),
    };
    Ok(parsed)
}

fn null_or_err(spec: &ColumnSpec) -> Result<Parsed, String> {
    if spec.nullable {
        Ok(Parsed::Null)
    } else {
        Err(format!("a value is required ({})", spec.ty.name()))
    }
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

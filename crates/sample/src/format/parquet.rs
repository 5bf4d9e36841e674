//! Parquet: column builders filled row by row and flushed as one record batch per chunk.
//! Types: string Utf8, int Int64, decimal Decimal128(18, 2), bool Boolean, date Date32,
//! timestamp Timestamp(Microsecond, None).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::contract::{Column, ColumnType, IdKind};
use crate::emit::RowSink;
use crate::render::push_id;

/// Precision and scale of money columns.
const DECIMAL_PRECISION: u8 = 18;
const DECIMAL_SCALE: i8 = 2;

/// The Arrow schema of a file with these columns.
pub(crate) fn schema(columns: &[Column]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c.name, data_type(c.ty), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Str => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Decimal => DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Float => DataType::Float64,
    }
}

enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Decimal(Decimal128Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Float(Float64Builder),
}

impl Builder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Str => Builder::Str(StringBuilder::new()),
            ColumnType::Int => Builder::Int(Int64Builder::new()),
            ColumnType::Decimal => Builder::Decimal(
                Decimal128Builder::new().with_data_type(data_type(ColumnType::Decimal)),
            ),
            ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
            ColumnType::Date => Builder::Date(Date32Builder::new()),
            ColumnType::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
            ColumnType::Float => Builder::Float(Float64Builder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Str(b) => b.append_null(),
            Builder::Int(b) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Decimal(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
        }
    }
}

/// Collects rows into Arrow column builders.
pub(crate) struct ParquetSink {
    schema: SchemaRef,
    builders: Vec<Builder>,
    col: usize,
    rows: usize,
    scratch: Vec<u8>,
}

impl ParquetSink {
    /// A sink for rows with these columns.
    pub(crate) fn new(columns: &[Column]) -> Self {
        ParquetSink {
            schema: schema(columns),
            builders: columns.iter().map(|c| Builder::new(c.ty)).collect(),
            col: 0,
            rows: 0,
            scratch: Vec::new(),
        }
    }

    /// The schema of the batches.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The rows collected since the last call as one batch (`None` if there are none).
    /// A field of the wrong type reaches Arrow as a null and is rejected here.
    pub(crate) fn take_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), arrays).map(Some)
    }

    /// The builder of the current column, advancing to the next one.
    #[inline]
    fn next(&mut self) -> Option<&mut Builder> {
        let b = self.builders.get_mut(self.col);
        self.col += 1;
        b
    }
}

impl RowSink for ParquetSink {
    fn id(&mut self, kind: IdKind, n: u64) {
        self.scratch.clear();
        push_id(&mut self.scratch, kind, n);
        match (
            self.builders.get_mut(self.col),
            std::str::from_utf8(&self.scratch),
        ) {
            (Some(Builder::Str(b)), Ok(s)) => b.append_value(s),
            (Some(other), _) => other.append_null(),
            (None, _) => {}
        }
        self.col += 1;
    }

    fn sym(&mut self, s: &str) {
        match self.next() {
            Some(Builder::Str(b)) => b.append_value(s),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn text(&mut self, s: &str) {
        self.sym(s);
    }

    fn int(&mut self, v: i64) {
        match self.next() {
            Some(Builder::Int(b)) => b.append_value(v),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn money(&mut self, cents: i64) {
        match self.next() {
            Some(Builder::Decimal(b)) => b.append_value(i128::from(cents)),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn float(&mut self, v: f64) {
        match self.next() {
            Some(Builder::Float(b)) => b.append_value(v),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn boolean(&mut self, v: bool) {
        match self.next() {
            Some(Builder::Bool(b)) => b.append_value(v),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn date(&mut self, days: i32) {
        match self.next() {
            Some(Builder::Date(b)) => b.append_value(days),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn ts(&mut self, secs: i64) {
        match self.next() {
            Some(Builder::Timestamp(b)) => b.append_value(secs * 1_000_000),
            Some(other) => other.append_null(),
            None => {}
        }
    }

    fn null(&mut self) {
        if let Some(b) = self.next() {
            b.append_null();
        }
    }

    fn end_row(&mut self) {
        self.col = 0;
        self.rows += 1;
    }
}

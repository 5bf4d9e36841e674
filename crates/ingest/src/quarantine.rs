//! Rows refused by ingest, with everything needed to find and fix them at the source.

use arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use crmcube_model::{Error, Result};
use std::sync::Arc;

/// One refused row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantineRow {
    /// Export entity the row belongs to.
    pub entity: String,
    /// Source file path.
    pub source_file: String,
    /// Line in a CSV / JSON Lines file, or 1-based row number in a Parquet file.
    pub line: u64,
    /// Column at fault, when one is.
    pub column: Option<String>,
    /// Offending value, when there is one.
    pub value: Option<String>,
    /// What is wrong and what was expected.
    pub reason: String,
    /// The raw record (CSV fields re-joined, or the JSON line), when available.
    pub record: Option<String>,
}

/// Schema of the `_quarantine` table.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("entity", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("column", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, true),
    ]))
}

/// The refused rows as a batch of the `_quarantine` table.
pub fn quarantine_batch(rows: &[QuarantineRow]) -> Result<RecordBatch> {
    let mut entity = StringBuilder::new();
    let mut file = StringBuilder::new();
    let mut line = Int64Builder::new();
    let mut column = StringBuilder::new();
    let mut value = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut record = StringBuilder::new();
    for r in rows {
        entity.append_value(&r.entity);
        file.append_value(&r.source_file);
        line.append_value(r.line as i64);
        column.append_option(r.column.as_deref());
        value.append_option(r.value.as_deref());
        reason.append_value(&r.reason);
        record.append_option(r.record.as_deref());
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(entity.finish()),
        Arc::new(file.finish()),
        Arc::new(line.finish()),
        Arc::new(column.finish()),
        Arc::new(value.finish()),
        Arc::new(reason.finish()),
        Arc::new(record.finish()),
    ];
    RecordBatch::try_new(quarantine_schema(), arrays).map_err(|e| Error::format("_quarantine", e))
}

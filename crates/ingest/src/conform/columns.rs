//! Laying computed columns out as a warehouse table.

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use crmcube_model::types::{ColumnType, MONEY_SCALE};
use crmcube_model::{keys::UNKNOWN_KEY, Error, Result, TableDef};
use std::collections::HashMap;
use std::sync::Arc;

/// Collects columns by name and builds a batch in the table's schema.
pub struct TableAssembler<'t> {
    name: &'t str,
    def: &'t TableDef,
    columns: HashMap<String, ArrayRef>,
}

impl<'t> TableAssembler<'t> {
    /// Starts assembling table `name`.
    pub fn new(name: &'t str, def: &'t TableDef) -> Self {
        TableAssembler {
            name,
            def,
            columns: HashMap::new(),
        }
    }

    /// Sets the values of one column.
    pub fn set(&mut self, column: &str, values: ArrayRef) -> &mut Self {
        self.columns.insert(column.to_string(), values);
        self
    }

    /// The batch in the schema's column order and types; optional columns nobody computed
    /// are null, a required one is a schema error naming it.
    pub fn finish(mut self, rows: usize) -> Result<RecordBatch> {
        let schema = self.def.arrow_schema();
        let mut arrays = Vec::with_capacity(schema.fields().len());
        for (field, col) in schema.fields().iter().zip(&self.def.columns) {
            let a = match self.columns.remove(&col.name) {
                Some(a) if a.data_type() == field.data_type() => a,
                Some(a) => arrow::compute::cast(&a, field.data_type())
                    .map_err(|e| Error::format(format!("{}.{}", self.name, col.name), e))?,
                None if col.nullable => new_null_array(field.data_type(), rows),
                None => {
                    return Err(Error::Schema {
                        file: "warehouse schema".into(),
                        key: format!("tables.{}.columns.{}", self.name, col.name),
                        message: "crmcube does not know how to compute this column; make it nullable or remove it".into(),
                    })
                }
            };
            if a.len() != rows {
                return Err(Error::format(
                    format!("{}.{}", self.name, col.name),
                    format!("{} values for {rows} rows", a.len()),
                ));
            }
            if !col.nullable && a.null_count() > 0 {
                return Err(Error::format(
                    format!("{}.{}", self.name, col.name),
                    "nulls in a column declared not nullable",
                ));
            }
            arrays.push(a);
        }
        RecordBatch::try_new(schema, arrays).map_err(|e| Error::format(self.name, e))
    }
}

/// The one-row `Unknown` member of a dimension: key 0, "Unknown" text, other required
/// values zero / false / 1970-01-01, optional values null.
pub fn unknown_member(name: &str, def: &TableDef) -> Result<RecordBatch> {
    let schema = def.arrow_schema();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (field, col) in schema.fields().iter().zip(&def.columns) {
        let a: ArrayRef = match (col.ty, col.nullable) {
            (ColumnType::Key, _) => Arc::new(arrow::array::Int64Array::from(vec![UNKNOWN_KEY])),
            (ColumnType::String, false) => {
                Arc::new(arrow::array::StringArray::from(vec!["Unknown"]))
            }
            (_, true) => new_null_array(field.data_type(), 1),
            (ColumnType::Int, false) => Arc::new(arrow::array::Int64Array::from(vec![0])),
            (ColumnType::Float, false) => Arc::new(arrow::array::Float64Array::from(vec![0.0])),
            (ColumnType::Decimal, false) => Arc::new(
                arrow::array::Decimal128Array::from(vec![0i128])
                    .with_precision_and_scale(crmcube_model::types::DECIMAL_PRECISION, MONEY_SCALE)
                    .map_err(|e| Error::format(name, e))?,
            ),
            (ColumnType::Bool, false) => Arc::new(arrow::array::BooleanArray::from(vec![false])),
            (ColumnType::Date, false) => Arc::new(arrow::array::Date32Array::from(vec![0])),
            (ColumnType::Timestamp, false) => {
                Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![0i64]))
            }
        };
        let a = if a.data_type() == &DataType::Null {
            new_null_array(field.data_type(), 1)
        } else {
            a
        };
        arrays.push(a);
    }
    RecordBatch::try_new(schema, arrays).map_err(|e| Error::format(name, e))
}

/// Prepends the Unknown member to a dimension's rows.
pub fn with_unknown(name: &str, def: &TableDef, rows: RecordBatch) -> Result<RecordBatch> {
    let unknown = unknown_member(name, def)?;
    arrow::compute::concat_batches(&def.arrow_schema(), &[unknown, rows])
        .map_err(|e| Error::format(name, e))
}

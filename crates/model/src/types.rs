//! Column types used by the contract and the warehouse, and their Arrow equivalents.

use arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;

/// Scale of money columns in the warehouse.
pub const MONEY_SCALE: i8 = 2;
/// Precision of decimal columns (fits any amount below 10^16 with 2 decimals).
pub const DECIMAL_PRECISION: u8 = 18;

/// A logical column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// Fixed-point decimal (money); the scale is given beside the type.
    Decimal,
    /// true / false.
    Bool,
    /// Calendar date.
    Date,
    /// Timestamp in microseconds, UTC, stored without a zone.
    Timestamp,
    /// 64-bit surrogate key (warehouse only).
    Key,
}

impl ColumnType {
    /// The Arrow type that stores this column; `scale` applies to decimals.
    pub fn arrow_type(self, scale: i8) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int | ColumnType::Key => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Decimal => DataType::Decimal128(DECIMAL_PRECISION, scale),
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    /// The name used in schema files and messages.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Decimal => "decimal",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Key => "key",
        }
    }
}

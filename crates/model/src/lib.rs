//! Types shared by every crmcube crate: the OLTP export contract, the warehouse
//! star schema, surrogate keys and the error type.
//!
//! Both schemas live in `schemas/*.yaml`; this crate reads them (the copies compiled
//! into the binary by default, or files given at run time) and never restates them.

pub mod contract;
pub mod error;
pub mod keys;
mod ordered;
pub mod types;
pub mod warehouse;

pub use contract::{ColumnSpec, EntitySpec, ExportContract, ForeignKey, OnOrphan, LINE_ITEMS};
pub use error::{Error, Result};
pub use types::ColumnType;
pub use warehouse::{TableDef, TableKind, WarehouseColumn, WarehouseSchema};

/// The export contract shipped with crmcube (`schemas/oltp.yaml`).
pub const BUILTIN_OLTP_YAML: &str = include_str!("../../../schemas/oltp.yaml");
/// The warehouse schema shipped with crmcube (`schemas/warehouse.yaml`).
pub const BUILTIN_WAREHOUSE_YAML: &str = include_str!("../../../schemas/warehouse.yaml");

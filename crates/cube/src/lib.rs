//! crmcube query layer: a DataFusion session with every warehouse table registered,
//! answering SQL over the star schema (and over any folder of Parquet files).

pub mod checks;
pub mod warehouse;

pub use crmcube_store::AsOf;
pub use warehouse::{QueryResult, TableInfo, Warehouse};

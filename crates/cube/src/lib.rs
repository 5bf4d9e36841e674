//! crmcube query layer: a DataFusion session with every warehouse table registered,
//! answering SQL over the star schema (and over any folder of Parquet files).

pub mod checks;
pub mod describe;
pub mod engine;
pub mod export;
pub mod materialize;
pub mod model;
pub mod period;
pub mod plan;
pub mod preagg;
pub mod query;
pub mod saved;
pub mod scale_out;
pub mod warehouse;

pub use crmcube_store::AsOf;
pub use engine::{Cube, CubeResult};
pub use materialize::{materialize, MaterializeOptions, MaterializeReport};
pub use model::{CubeModel, LevelRef};
pub use preagg::{Catalog, Layout, Status};
pub use query::{CubeQuery, Filter, FilterOp, OrderKey, ToDate, Totals};
pub use scale_out::Engine;
pub use warehouse::{QueryResult, TableInfo, Warehouse};

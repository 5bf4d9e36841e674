//! `crmcube serve`: a read-only Arrow Flight SQL endpoint over a warehouse.
//!
//! Clients (the ADBC Flight SQL driver, the Flight SQL JDBC driver that BI tools use,
//! pyarrow.flight) see every warehouse table and the cube's wide views (`cube_sales`,
//! …: fact columns plus every dimension level as a column) in catalog `datafusion`,
//! schema `public`. Each query reads the newest warehouse version at the time it
//! starts, so a load that commits while the server runs is visible to the next query and
//! never half-visible to a running one.
//!
//! Limits: a bounded number of queries run at once (others wait, up to the query
//! timeout), each query has a timeout and the session a memory limit (DataFusion's
//! memory pool: aggregations, joins and sorts that need more fail with a clean error).
//! Every failure is a gRPC status to the client; the server keeps serving.
//!
//! With `--pg-port`, the same tables and views are also served over the PostgreSQL wire
//! protocol (see `pg`), with the `pg_catalog` tables BI tools read on connect.

mod auth;
mod flight;
mod limits;
mod pg;

pub use auth::{Users, PASSWORD_ENV, USER_ENV};
pub use flight::{serve, shutdown_signal, ServeOptions, Started};

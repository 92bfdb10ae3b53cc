//! Sluice: a SQL streaming engine in the family of ksqlDB.
//!
//! Streams and tables are declared over topics; persistent queries
//! (`CREATE STREAM|TABLE ... AS SELECT`) are planned through DataFusion into a
//! streaming plan that the runtime runs over Arrow batches, with operator state
//! in RocksDB. See `DESIGN.md` for the map; the folders are the architecture:
//!
//! - [`catalog`]: streams, tables and queries with their schemas and formats.
//! - `planner`: ksqlDB SQL text to statements, DataFusion logical plans and
//!   the runtime's `StreamPlan`.
//! - `runtime`: operators, the driver loop, stream time and RocksDB state.
//! - `connectors`: topics (in memory and on Kafka) and record formats.
//! - `functions`: ksqlDB's function library as DataFusion UDFs.
//! - [`server`]: `sluice server`, the engine running continuously on Kafka
//!   (an embedded broker by default).
//!
//! Dependencies point one way: `server → engine → planner → runtime → connectors`.

pub mod cases;
pub mod catalog;
pub(crate) mod connectors;
mod engine;
mod error;
pub(crate) mod functions;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod planner;
pub mod qtt;
pub mod rqtt;
pub(crate) mod runtime;
pub mod server;

pub use engine::{Engine, EngineConfig, StatementResult};
pub use error::{Error, Result};

/// Split a script into its statements' texts (without the `;`).
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    Ok(planner::parser::parse(sql)?
        .into_iter()
        .map(|p| p.text)
        .collect())
}

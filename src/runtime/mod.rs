//! The streaming runtime: operators, the driver loop, stream time and state.
//!
//! The planner hands the runtime a [`StreamPlan`]: a source, its joins (each
//! with a right source), a chain of operator specs and a sink; the runtime
//! never sees SQL. A [`Task`] owns the operators of one persistent query and
//! is driven by one loop ([`Task::poll`]): read records from every source
//! topic, in record-time order across them, decode each run into an Arrow
//! batch, push it into its join (left or right) or straight into the
//! operators (each a small [`Operator`] callback; joins are two-input
//! `JoinOperator`s), encode and write what comes out, then checkpoint
//! operator state and source offsets in one RocksDB write.
//!
//! Invariants:
//! - Every row inside the engine carries a change op ([`Op`]).
//! - Batching never changes what is emitted: operators emit one output per
//!   input update, in input order (ksqlDB with caching off).
//! - Source offsets are committed in the same atomic write as the state they
//!   produced, so a restart resumes exactly where the state stands.
//! - Nothing here blocks an async runtime or panics on user data.

mod changes;
mod decode;
mod encode;
pub(crate) mod file_sink;
mod keyed_store;
mod merge;
pub(crate) mod operators;
pub(crate) mod outbox;
mod plan;
mod processing_log;
pub(crate) mod record_cache;
mod rows;
mod state;
mod task;
pub(crate) mod topic_scan;
pub(crate) mod view;
pub(crate) mod view_lookup;
pub(crate) mod view_table;

pub(crate) use changes::{Changes, Op};
pub(crate) use plan::*;
pub(crate) use state::{query_prefix, StateBatch, StateStore, DEFAULT_BLOCK_CACHE};
pub(crate) use task::{Task, TaskMetrics};

/// The bytes a batch's rows hold (a slice of a larger batch counts its part
/// only): what a pull query's limit on memory counts.
pub(crate) fn held_bytes(batch: &datafusion::arrow::array::RecordBatch) -> u64 {
    use datafusion::arrow::array::Array;
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}

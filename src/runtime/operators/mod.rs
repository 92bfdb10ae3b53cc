//! The runtime's operators: one per file, each a small callback trait
//! implementation driven by the task's single loop.
//!
//! An operator receives change batches in order and returns the change
//! batches it emits, in order. It may keep state (in its own write-back cache
//! over RocksDB), which it writes out when the task checkpoints.

mod accumulators;
mod aggregate;
mod explode;
mod filter_project;
mod fk_join;
mod group_table;
mod join_output;
mod materialize;
mod session_window;
mod stream_stream_join;
mod stream_table_join;
mod suppress;
mod table_table_join;
#[cfg(test)]
mod testing;
mod time_window;

use crate::error::Result;

use super::changes::Changes;
use super::plan::{JoinKind, JoinSpec, OpSpec};
use super::state::{operator_prefix, StateBatch, StateStore};

pub(crate) use aggregate::Aggregate;
pub(crate) use explode::Explode;
pub(crate) use filter_project::FilterProject;
pub(crate) use fk_join::ForeignKeyJoin;
pub(crate) use join_output::{EncodedInput, JoinCodecs, JoinRow, Side};
pub(crate) use materialize::Materialize;
pub(crate) use session_window::SessionWindow;
pub(crate) use stream_stream_join::StreamStreamJoin;
pub(crate) use stream_table_join::StreamTableJoin;
pub(crate) use suppress::Suppress;
pub(crate) use table_table_join::TableTableJoin;
pub(crate) use time_window::TimeWindow;

/// A streaming operator.
pub(crate) trait Operator: Send {
    /// One line for EXPLAIN and logs.
    fn display(&self) -> String;

    /// Process one batch of changes; return what it emits, in order.
    fn process(&mut self, input: Changes) -> Result<Vec<Changes>>;

    /// Write dirty state into the task's checkpoint batch.
    fn checkpoint(&mut self, _batch: &mut StateBatch) -> Result<()> {
        Ok(())
    }

    /// Records dropped because they arrived after their window closed.
    fn late_records(&self) -> u64 {
        0
    }
}

/// A two-input operator: a join. Batches arrive from either side, in
/// processing order; what it emits continues down the query. Implementors
/// turn encoded input rows into output rows ([`JoinRow`]); encoding and
/// assembling batches is shared ([`JoinCodecs`]).
pub(crate) trait JoinOperator: Send {
    /// The join's encoder and output assembler.
    fn codecs(&self) -> &JoinCodecs;

    /// Join one encoded batch from `side`; return the rows it emits, in order.
    fn join(&mut self, side: Side, input: &Changes, enc: EncodedInput) -> Result<Vec<JoinRow>>;

    /// Write dirty state into the task's checkpoint batch.
    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()>;

    /// Records dropped because they arrived after their window closed.
    fn late_records(&self) -> u64 {
        0
    }

    fn display(&self) -> String {
        self.codecs().display().to_string()
    }

    /// Process one batch of changes from `side`; return what it emits.
    fn process(&mut self, side: Side, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        let enc = self.codecs().encode(side, &input)?;
        let rows = self.join(side, &input, enc)?;
        self.codecs().build(rows)
    }
}

/// Build the join operator of the `index`-th join of a query.
pub(crate) fn build_join(
    spec: &JoinSpec,
    query_id: &str,
    index: usize,
    store: &StateStore,
) -> Result<Box<dyn JoinOperator>> {
    // Joins' state lives apart from the operator chain's.
    let prefix = operator_prefix(query_id, 1000 + index);
    Ok(match spec.kind {
        JoinKind::StreamStream => Box::new(StreamStreamJoin::try_new(spec, store.clone(), prefix)?),
        JoinKind::StreamTable => Box::new(StreamTableJoin::try_new(spec, store.clone(), prefix)?),
        JoinKind::TableTable => Box::new(TableTableJoin::try_new(spec, store.clone(), prefix)?),
        JoinKind::ForeignKey => Box::new(ForeignKeyJoin::try_new(spec, store.clone(), prefix)?),
    })
}

/// Build the operator for a spec; `index` is its place in the chain (it
/// namespaces the operator's state).
pub(crate) fn build(
    spec: &OpSpec,
    query_id: &str,
    index: usize,
    store: &StateStore,
) -> Result<Box<dyn Operator>> {
    let prefix = operator_prefix(query_id, index);
    Ok(match spec {
        OpSpec::Materialize {
            key_columns,
            emit_unknown_deletes,
        } => Box::new(Materialize::new(
            key_columns.clone(),
            *emit_unknown_deletes,
            store.clone(),
            prefix,
        )),
        OpSpec::FilterProject {
            predicate,
            exprs,
            schema,
            table_mode,
            display,
        } => Box::new(FilterProject::new(
            predicate.clone(),
            exprs.clone(),
            schema.clone(),
            *table_mode,
            display.clone(),
        )),
        OpSpec::Explode {
            outputs,
            schema,
            display,
        } => Box::new(Explode::new(
            outputs.clone(),
            schema.clone(),
            display.clone(),
        )),
        OpSpec::Aggregate(spec) => match spec.window.as_ref().map(|w| w.assign) {
            None => Box::new(Aggregate::try_new(spec.clone(), store.clone(), prefix)?),
            Some(super::plan::WindowAssign::Session { .. }) => {
                Box::new(SessionWindow::try_new(spec.clone(), store.clone(), prefix)?)
            }
            Some(_) => Box::new(TimeWindow::try_new(spec.clone(), store.clone(), prefix)?),
        },
        OpSpec::Suppress {
            grace,
            key_columns,
            retention,
        } => Box::new(Suppress::new(
            *grace,
            *retention,
            key_columns.clone(),
            store.clone(),
            prefix,
        )),
    })
}

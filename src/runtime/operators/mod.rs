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
mod materialize;
mod session_window;
mod suppress;
#[cfg(test)]
mod testing;
mod time_window;

use crate::error::Result;

use super::changes::Changes;
use super::plan::OpSpec;
use super::state::{operator_prefix, StateBatch, StateStore};

pub(crate) use aggregate::Aggregate;
pub(crate) use explode::Explode;
pub(crate) use filter_project::FilterProject;
pub(crate) use materialize::Materialize;
pub(crate) use session_window::SessionWindow;
pub(crate) use suppress::Suppress;
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

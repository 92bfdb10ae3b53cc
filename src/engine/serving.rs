//! What sessions read without the engine: the views that running queries
//! maintain, published by the engine whenever a query starts or stops,
//! with the state store they live in. A session takes the current
//! publication (an `Arc`, swapped under a lock held only for the swap) and
//! reads RocksDB directly, so a key lookup never waits for the engine's
//! rounds, its checkpoints or other sessions.
//!
//! Each view carries a generation, new whenever another query (or the same
//! query after a restart of its table) maintains it: a lookup prepared
//! against one generation answers only while that generation is current,
//! and otherwise goes the planned way, which sees the catalog as it is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::ScalarValue;

use super::pull::PullGate;
use crate::error::{Error, Result};
use crate::planner::lookup::{BoundOp, LookupShape, WindowBound};
use crate::runtime::view::ViewSpec;
use crate::runtime::view_lookup::{projection_of, KeyLookup, WindowRange};
use crate::runtime::StateStore;

/// One view as served.
struct Served {
    /// The query that maintains it.
    query: String,
    generation: u64,
    spec: ViewSpec,
}

/// One publication: the views, by table.
pub(crate) struct Serving {
    views: BTreeMap<String, Served>,
    store: StateStore,
}

/// A key lookup prepared against a view's generation.
#[derive(Debug)]
pub(crate) struct PreparedLookup {
    pub table: String,
    pub generation: u64,
    /// The parameters that carry the keys, in the statement's order
    /// (1-based).
    pub parameters: Vec<usize>,
    /// Bounds on a windowed view's `WINDOWSTART`.
    pub window: Vec<WindowBound>,
    pub lookup: KeyLookup,
}

impl PreparedLookup {
    /// The rows of `keys` (a windowed view: of its one key, the windows
    /// whose start meets every bound, `bounds` giving each one's value in
    /// [`Self::window`]'s order).
    pub(crate) fn read(&self, keys: &[ScalarValue], bounds: &[i64]) -> Result<RecordBatch> {
        if !self.lookup.windowed() {
            return self.lookup.get(keys);
        }
        let mut range = WindowRange::default();
        for (bound, &v) in self.window.iter().zip(bounds) {
            match bound.op {
                BoundOp::Eq => {
                    range.at_least(v);
                    range.at_most(v);
                }
                BoundOp::Gt => range.above(v),
                BoundOp::GtEq => range.at_least(v),
                BoundOp::Lt => range.below(v),
                BoundOp::LtEq => range.at_most(v),
            }
        }
        match keys {
            [key] => self.lookup.windows(key, range),
            _ => Err(Error::internal(format!(
                "a windowed lookup of {} keys",
                keys.len()
            ))),
        }
    }
}

impl Serving {
    /// The lookup `shape` is over this publication's views, answering
    /// `answer`'s columns (those the planned way described): None when its
    /// table has no view, its column is not the view's one key, or a
    /// column of `answer` is not one of the view's.
    pub(crate) fn lookup(&self, shape: &LookupShape, answer: &Schema) -> Option<PreparedLookup> {
        let served = self.views.get(&shape.table)?;
        let spec = &served.spec;
        if spec.schema.field(0).name() != &shape.column {
            return None;
        }
        // A windowed view is read for one key; window bounds only on one.
        let one = shape.parameters.len() == 1;
        if (spec.windowed && !one) || (!spec.windowed && !shape.window.is_empty()) {
            return None;
        }
        let projection = projection_of(spec, answer)?;
        let lookup = KeyLookup::try_new(spec, projection, self.store.clone()).ok()??;
        Some(PreparedLookup {
            table: shape.table.clone(),
            generation: served.generation,
            parameters: shape.parameters.clone(),
            window: shape.window.clone(),
            lookup,
        })
    }

    /// Whether `prepared` still reads the view it was prepared against.
    pub(crate) fn is_current(&self, prepared: &PreparedLookup) -> bool {
        self.views
            .get(&prepared.table)
            .is_some_and(|s| s.generation == prepared.generation)
    }
}

/// Where the engine publishes and sessions read.
#[derive(Clone)]
pub(crate) struct ServingHandle {
    current: Arc<RwLock<Arc<Serving>>>,
    generations: Arc<AtomicU64>,
    /// Bumped by every statement that may change the catalog or the
    /// running queries: a pull query planned at one version is planned
    /// again at another.
    catalog: Arc<AtomicU64>,
    /// The pull queries running without the engine.
    gate: Arc<PullGate>,
}

impl ServingHandle {
    pub(crate) fn new(store: StateStore) -> Self {
        let serving = Serving {
            views: BTreeMap::new(),
            store,
        };
        Self {
            current: Arc::new(RwLock::new(Arc::new(serving))),
            generations: Arc::new(AtomicU64::new(0)),
            catalog: Arc::new(AtomicU64::new(0)),
            gate: Arc::new(PullGate::per_core()),
        }
    }

    /// The catalog's version (see [`Self::catalog_changed`]).
    pub(crate) fn catalog_version(&self) -> u64 {
        self.catalog.load(Ordering::Acquire)
    }

    /// The catalog, or the running queries, may have changed.
    pub(crate) fn catalog_changed(&self) {
        self.catalog.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn pull_gate(&self) -> Arc<PullGate> {
        self.gate.clone()
    }

    /// The current publication.
    pub(crate) fn current(&self) -> Arc<Serving> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publish `views` (table → maintaining query, view): a view keeps its
    /// generation while the same query maintains it.
    pub(crate) fn publish(&self, views: impl IntoIterator<Item = (String, ViewSpec)>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let views = views
            .into_iter()
            .map(|(query, spec)| {
                let generation = current
                    .views
                    .get(&spec.table)
                    .filter(|old| old.query == query)
                    .map(|old| old.generation)
                    .unwrap_or_else(|| self.generations.fetch_add(1, Ordering::Relaxed) + 1);
                let served = Served {
                    query,
                    generation,
                    spec,
                };
                (served.spec.table.clone(), served)
            })
            .collect();
        *current = Arc::new(Serving {
            views,
            store: current.store.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field};

    use super::*;

    fn spec(table: &str) -> ViewSpec {
        ViewSpec {
            table: table.into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("ID", DataType::Utf8, true),
                Field::new("N", DataType::Int64, true),
            ])),
            key_len: 1,
            windowed: false,
            columns: vec![0, 1],
        }
    }

    fn shape(table: &str, column: &str) -> LookupShape {
        LookupShape {
            table: table.into(),
            column: column.into(),
            parameters: vec![1],
            window: vec![],
        }
    }

    #[test]
    fn a_lookup_answers_while_the_query_that_prepared_it_maintains_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let handle = ServingHandle::new(StateStore::open(dir.path()).unwrap());
        let answer = Schema::new(vec![Field::new("N", DataType::Int64, true)]);
        assert!(handle
            .current()
            .lookup(&shape("T", "ID"), &answer)
            .is_none());

        handle.publish([("q1".to_string(), spec("T"))]);
        let prepared = handle.current().lookup(&shape("T", "ID"), &answer).unwrap();
        assert!(handle.current().lookup(&shape("T", "N"), &answer).is_none());
        assert!(handle
            .current()
            .lookup(&shape("U", "ID"), &answer)
            .is_none());

        // Another table's query starting keeps this one's generation.
        handle.publish([("q1".to_string(), spec("T")), ("q2".to_string(), spec("U"))]);
        assert!(handle.current().is_current(&prepared));
        // The table dropped and made again by another query does not.
        handle.publish([("q2".to_string(), spec("U"))]);
        assert!(!handle.current().is_current(&prepared));
        handle.publish([("q3".to_string(), spec("T")), ("q2".to_string(), spec("U"))]);
        assert!(!handle.current().is_current(&prepared));
    }
}

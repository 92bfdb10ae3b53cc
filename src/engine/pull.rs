//! Pull queries (`SELECT` without `EMIT`): planned under the engine, run
//! without it.
//!
//! Planning needs the catalog and the running queries' views, so it takes
//! the engine, briefly ([`Engine::plan_pull`]). What it makes, a
//! [`PullPlan`], holds everything its run needs (the DataFusion plan over
//! the views in RocksDB, the topics of streams and other tables, a sink's
//! files, and a session state with a memory pool of its own), so the
//! session runs it after letting the engine go: a scan of a large view or
//! a stream's whole topic never holds up the query loop's rounds, DDL, or
//! other sessions. Each run has a current-thread runtime of its own, on the
//! session's blocking thread, so DataFusion's tasks never take the wire
//! server's threads from the key lookups served there; at most one run per
//! core goes at once ([`PullGate`]), each within `limits.pull_query_memory`.
//!
//! A prepared pull query is planned once, at Parse, with its `$n`
//! placeholders; each Execute binds its values into that plan
//! ([`PullPlan::run_with`]) while the catalog is the one it was planned
//! against ([`super::serving::ServingHandle::catalog_version`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;

use super::{serving, Engine};
use crate::catalog::sql_type_name;
use crate::error::{Error, Result};
use crate::planner::pull::{PullOptions, PullTables};
use crate::planner::pull_keys::LookupKey;
use crate::runtime::topic_scan::TopicScan;
use crate::runtime::view::ViewSpec;
use crate::runtime::view_table::ViewTable;

/// A pull query planned against the catalog, ready to run without the
/// engine (again and again, for a prepared statement).
pub(crate) struct PullPlan {
    plan: LogicalPlan,
    state: SessionState,
    /// The most bytes its result may hold (`limits.pull_query_memory`).
    memory: u64,
    gate: Arc<PullGate>,
}

impl std::fmt::Debug for PullPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullPlan")
            .field("schema", &self.plan.schema())
            .finish()
    }
}

impl PullPlan {
    /// The columns it answers with.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::new(self.plan.schema().as_arrow().clone())
    }

    /// Its parameters' types (`$1` first; None where nothing tells).
    pub(crate) fn parameter_types(&self) -> Result<Vec<Option<DataType>>> {
        super::parameter_types(&self.plan)
    }

    /// Run it: its columns and rows.
    pub(crate) fn run(&self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.execute(self.plan.clone())
    }

    /// Run it with `values` for its parameters (`$1` first), each of the
    /// type [`Self::parameter_types`] gives.
    pub(crate) fn run_with(
        &self,
        values: Vec<ScalarValue>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let plan = self.plan.clone().with_param_values(values)?;
        self.execute(plan)
    }

    fn execute(&self, plan: LogicalPlan) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let _slot = self.gate.enter();
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let batches = runtime.block_on(async {
            use futures::StreamExt;
            let physical = self
                .state
                .create_physical_plan(&plan)
                .await
                .map_err(sluice_error)?;
            let mut stream =
                datafusion::physical_plan::execute_stream(physical, self.state.task_ctx())?;
            let (mut batches, mut held) = (Vec::new(), 0u64);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(sluice_error)?;
                held += crate::runtime::held_bytes(&batch);
                if held > self.memory {
                    return Err(Error::ResourceLimit(format!(
                        "The pull query's result passed {} bytes (limits.pull_query_memory in the server configuration): select fewer rows or columns",
                        self.memory
                    )));
                }
                batches.push(batch);
            }
            Ok(batches)
        })?;
        Ok((schema, batches))
    }
}

/// A DataFusion error, or Sluice's own error that a table's scan returned
/// through DataFusion (a topic unreachable, a limit passed), as that error.
fn sluice_error(e: DataFusionError) -> Error {
    match e {
        DataFusionError::External(inner) => match inner.downcast::<Error>() {
            Ok(own) => *own,
            Err(other) => Error::DataFusion(DataFusionError::External(other)),
        },
        DataFusionError::Context(_, inner) => sluice_error(*inner),
        other => Error::DataFusion(other),
    }
}

/// At most one pull query run per core at once (each within its memory
/// limit); the others wait their turn. Key lookups do not pass here.
pub(crate) struct PullGate {
    running: Mutex<usize>,
    freed: Condvar,
    slots: usize,
}

/// A run's place in the gate, given back when dropped.
struct Slot<'a>(&'a PullGate);

impl PullGate {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            running: Mutex::new(0),
            freed: Condvar::new(),
            slots: slots.max(1),
        }
    }

    /// One slot per core of the machine.
    pub(crate) fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn enter(&self) -> Slot<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.slots {
            running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        self.0.freed.notify_one();
    }
}

impl Engine {
    /// The key lookup a pull query is, answering `answer` (the columns its
    /// plan gives), when it is one the serving path takes.
    pub(crate) fn prepare_lookup(
        &self,
        text: &str,
        answer: &Schema,
    ) -> Option<serving::PreparedLookup> {
        let shape = crate::planner::lookup::key_lookup(text)?;
        self.serving.current().lookup(&shape, answer)
    }

    /// Plan a pull query over the views of the tables that running queries
    /// maintain, the topics of streams and of other tables (read from the
    /// beginning to their end when it runs), and sinks' files.
    pub(crate) fn plan_pull(&self, text: &str) -> Result<PullPlan> {
        Ok(PullPlan {
            plan: self.plan_pull_query(text)?,
            state: self.sandbox.pull_state(self.planner.state())?,
            memory: self.sandbox.pull_query_memory,
            gate: self.serving.pull_gate(),
        })
    }

    /// Plan and run a pull query (here, holding the engine: a session lets
    /// the engine go between the two).
    pub(crate) fn pull_query(&self, text: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.plan_pull(text)?.run()
    }

    /// A pull query's logical plan over the tables' views.
    fn plan_pull_query(&self, text: &str) -> Result<LogicalPlan> {
        let views: BTreeMap<String, ViewSpec> = self
            .tasks
            .values()
            .filter_map(|t| t.plan().view.clone())
            .map(|v| (v.table.clone(), v))
            .collect();
        let mut tables = PullTables::default();
        for src in self.catalog.sources() {
            let name = src.name.clone();
            match views.get(&name) {
                Some(spec) => {
                    let keys = spec.key_len - if spec.windowed { 2 } else { 0 };
                    let key = LookupKey {
                        columns: spec.schema.fields()[..keys]
                            .iter()
                            .map(|f| (f.name().clone(), sql_type_name(f.data_type())))
                            .collect(),
                        windowed: spec.windowed,
                    };
                    tables.keys.insert(name.clone(), key);
                    let table = ViewTable::new(spec.clone(), self.store.clone())
                        .with_memory(self.sandbox.pull_query_memory);
                    tables.tables.insert(name, Arc::new(table));
                }
                None => {
                    // A stream, or a table no running query keeps a view
                    // of: its topic from the beginning to its end at the
                    // run (a table's rows the last record of each key).
                    let spec = self.planner.source_spec(src, false)?;
                    let declared: Vec<String> =
                        src.columns.iter().map(|c| c.name.clone()).collect();
                    let scan = TopicScan::new(spec, self.topics.clone(), &declared)
                        .with_memory(self.sandbox.pull_query_memory);
                    tables.tables.insert(name, Arc::new(scan));
                }
            }
        }
        for (name, table) in self.sink_tables()? {
            if !tables.tables.contains_key(&name) {
                tables.stored_positions.insert(name.clone());
                tables.tables.insert(name, table);
            }
        }
        self.planner.plan_pull(text, tables, self.pull_options())
    }

    /// The session's pull query settings (`ksql.query.pull.*`).
    fn pull_options(&self) -> PullOptions {
        let enabled = |name: &str| {
            !self
                .properties
                .get(name)
                .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        };
        PullOptions {
            limit: enabled("ksql.query.pull.limit.clause.enabled"),
            table_scan: enabled("ksql.query.pull.table.scan.enabled"),
            range_scan: enabled("ksql.query.pull.range.scan.enabled"),
        }
    }
}

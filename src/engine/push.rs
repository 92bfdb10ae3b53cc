//! Push queries: `SELECT ... EMIT CHANGES`, a transient query whose changes
//! go to the session that asked, as the query produces them.
//!
//! The query runs in the engine's loop like a persistent one, from the
//! sources' current ends (`auto.offset.reset=latest`, ksqlDB's default for
//! push queries; `earliest` reads them from the beginning). Its changes go
//! through a bounded channel to the session. When the session falls behind
//! and the channel is full, the query stops reading (what it already
//! produced waits in a backlog of at most one poll's output), so a slow
//! client is paced and the server's memory stays bounded. When the session
//! ends (disconnect, cancel, `LIMIT` reached) the channel closes, and the
//! query and its state are removed on the next round.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use tokio::sync::mpsc;

use super::Engine;
use crate::connectors::formats::{Format, FormatKind};
use crate::error::{Error, Result};
use crate::planner::ast::{Query, Statement};
use crate::planner::parser::{self, Parsed};
use crate::planner::pull::PullTables;
use crate::planner::{PlannedQuery, TRANSIENT_PREFIX};
use crate::runtime::{Changes, SinkSpec, StreamPlan, Task, ROWTIME};

/// Batches of changes in flight to a session.
const CHANNEL_BATCHES: usize = 16;

/// A running push query, as its session holds it.
pub(crate) struct PushQuery {
    pub id: String,
    /// The columns of every batch: the SELECT's key and value columns.
    pub schema: SchemaRef,
    /// How many leading columns are the key.
    pub key_len: usize,
    /// `LIMIT n`: the session ends the query after n rows.
    pub limit: Option<u64>,
    /// Its rows are a table's changes (inserts, updates and deletes of
    /// keys), not a stream's rows.
    pub table: bool,
    pub changes: mpsc::Receiver<Changes>,
}

/// The engine's end of a push query.
pub(super) struct PushSink {
    sender: mpsc::Sender<Changes>,
    backlog: VecDeque<Changes>,
}

impl PushSink {
    /// Hand over what the query emitted, as far as the channel takes it.
    /// False once the session is gone.
    pub(super) fn deliver(&mut self, new: Vec<Changes>) -> bool {
        self.backlog
            .extend(new.into_iter().filter(|c| !c.is_empty()));
        while let Some(c) = self.backlog.pop_front() {
            match self.sender.try_send(c) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(c)) => {
                    self.backlog.push_front(c);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        !self.sender.is_closed()
    }

    /// The session has not taken everything yet: the query waits.
    pub(super) fn is_behind(&self) -> bool {
        !self.backlog.is_empty()
    }
}

impl Engine {
    /// Start a push query (`SELECT ... EMIT CHANGES [LIMIT n]`).
    pub(crate) fn start_push_query(&mut self, text: &str) -> Result<PushQuery> {
        let (query, p) = parse_push_query(text)?;
        let id = format!("{TRANSIENT_PREFIX}{}_{}", query.from.name, self.next_query);
        self.next_query += 1;
        let planned = self
            .planner
            .plan_query(&self.catalog, &query, &id)
            .map_err(|e| super::locate(e, &p))?;
        let (columns, key_fields, value_fields) = push_columns(&planned);
        let key_fields_len = key_fields.len();
        let planned_table = planned.is_table;
        let from_end = !self
            .properties
            .get("auto.offset.reset")
            .is_some_and(|v| v.eq_ignore_ascii_case("earliest"));
        let plan = StreamPlan {
            query_id: id.clone(),
            source: planned.source,
            joins: planned.joins,
            ops: planned.ops,
            sink: SinkSpec {
                name: id.clone(),
                topic: String::new(),
                key_format: Format::new(FormatKind::None),
                value_format: Format::new(FormatKind::Json),
                key_columns: planned.key_columns,
                key_fields,
                value_columns: planned.value_columns,
                value_fields,
                window: planned.window,
                is_table: planned.is_table,
                rowtime_column: planned.rowtime_column,
                window_columns: planned.window_columns,
                key_from_source: planned.key_from_source,
            },
            processing_log: None,
            consumer_group: self.consumer_group(&id),
            exactly_once: false,
            view: None,
            push: true,
            from_end,
        };
        let task = Task::try_new(plan, self.topics.clone(), self.store.clone())?;
        let (sender, changes) = mpsc::channel(CHANNEL_BATCHES);
        self.tasks.insert(id.clone(), task);
        self.push.insert(
            id.clone(),
            PushSink {
                sender,
                backlog: VecDeque::new(),
            },
        );
        tracing::info!(query_id = %id, "push query started");
        Ok(PushQuery {
            id,
            key_len: key_fields_len,
            table: planned_table,
            schema: columns,
            limit: query.limit,
            changes,
        })
    }

    /// A push query's columns, and whether its rows are a table's
    /// changes, without starting it.
    pub(crate) fn describe_push_query(&self, text: &str) -> Result<(SchemaRef, bool)> {
        let (query, p) = parse_push_query(text)?;
        let id = format!("{TRANSIENT_PREFIX}{}_describe", query.from.name);
        let planned = self
            .planner
            .plan_query(&self.catalog, &query, &id)
            .map_err(|e| super::locate(e, &p))?;
        Ok((push_columns(&planned).0, planned.is_table))
    }

    /// The types of a push query's parameters (`$1` first; None where
    /// nothing tells), as DataFusion infers them from what each is compared
    /// with, planning the query as a pull query over empty sources. Empty
    /// when DataFusion cannot plan it (windows, `PARTITION BY`, ...).
    pub(crate) fn push_parameter_types(&self, text: &str) -> Vec<Option<DataType>> {
        let Ok(emit) = regex::Regex::new(r"(?i)\bEMIT\s+(CHANGES|FINAL)\b") else {
            return vec![];
        };
        let query = emit.replace(text, "");
        let mut tables = PullTables::default();
        for src in self.catalog.sources() {
            let fields: Vec<Field> = src
                .columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true))
                .chain(std::iter::once(Field::new(ROWTIME, DataType::Int64, true)))
                .collect();
            let Ok(table) = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]]) else {
                return vec![];
            };
            tables.tables.insert(src.name.clone(), Arc::new(table));
        }
        self.planner
            .plan_pull(&query, tables)
            .and_then(|plan| super::parameter_types(&plan))
            .unwrap_or_default()
    }

    /// Remove a push query whose session ended, with its state.
    pub(super) fn end_push_query(&mut self, id: &str) -> Result<()> {
        self.tasks.remove(id);
        self.push.remove(id);
        self.store
            .delete_prefix(&crate::runtime::query_prefix(id))?;
        self.store.delete_prefix(format!("o/{id}/").as_bytes())?;
        tracing::info!(query_id = %id, "push query ended");
        Ok(())
    }
}

/// The one `SELECT ... EMIT CHANGES` statement of `text`.
fn parse_push_query(text: &str) -> Result<(Query, Parsed)> {
    let mut parsed = parser::parse(text)?;
    let (Some(p), true) = (parsed.pop(), parsed.is_empty()) else {
        return Err(Error::syntax(
            "expected one SELECT ... EMIT CHANGES statement",
            None,
        ));
    };
    let Statement::Select(query) = &p.statement else {
        return Err(Error::syntax(
            "expected a SELECT ... EMIT CHANGES statement",
            None,
        ));
    };
    if query.emit.is_none() {
        return Err(Error::semantic(
            "A push query needs EMIT CHANGES (a SELECT without it is a pull query)",
        ));
    }
    Ok((query.clone(), p))
}

/// A push query's columns (key columns first), and its key and value
/// fields.
fn push_columns(planned: &PlannedQuery) -> (SchemaRef, Vec<FieldRef>, Vec<FieldRef>) {
    let schema = &planned.output_schema;
    let field = |i: &usize| Arc::new(schema.field(*i).clone());
    let key_fields: Vec<FieldRef> = planned.key_columns.iter().map(field).collect();
    let value_fields: Vec<FieldRef> = planned.value_columns.iter().map(field).collect();
    let columns = Arc::new(Schema::new(
        key_fields
            .iter()
            .chain(&value_fields)
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    (columns, key_fields, value_fields)
}

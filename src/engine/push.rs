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

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use tokio::sync::mpsc;

use super::Engine;
use crate::connectors::formats::{Format, FormatKind};
use crate::error::{Error, Result};
use crate::planner::ast::Statement;
use crate::planner::{parser, TRANSIENT_PREFIX};
use crate::runtime::{Changes, SinkSpec, StreamPlan, Task};

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
        let id = format!("{TRANSIENT_PREFIX}{}_{}", query.from.name, self.next_query);
        self.next_query += 1;
        let planned = self
            .planner
            .plan_query(&self.catalog, query, &id)
            .map_err(|e| super::locate(e, &p))?;
        let schema = planned.output_schema.clone();
        let field = |i: &usize| schema.field(*i).clone();
        let key_fields: Vec<_> = planned
            .key_columns
            .iter()
            .map(|i| Arc::new(field(i)))
            .collect();
        let value_fields: Vec<_> = planned
            .value_columns
            .iter()
            .map(|i| Arc::new(field(i)))
            .collect();
        let key_fields_len = key_fields.len();
        let columns = Arc::new(Schema::new(
            key_fields
                .iter()
                .chain(&value_fields)
                .map(|f| f.as_ref().clone())
                .collect::<Vec<_>>(),
        ));
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
            schema: columns,
            limit: query.limit,
            changes,
        })
    }

    /// How many push queries are running (the wire conformance runner
    /// waits for one to be registered before producing its inputs).
    pub(crate) fn push_query_count(&self) -> usize {
        self.push.len()
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

//! Push queries: `SELECT ... EMIT CHANGES`, a transient query whose changes
//! go to the session that asked, as the query produces them.
//!
//! The query runs in the engine's loop like a persistent one, from the
//! sources' current ends (`auto.offset.reset=latest`, ksqlDB's default for
//! push queries; `earliest` reads them from the beginning). Its changes go
//! to the session as soon as a poll has them (before any checkpoint),
//! through a channel bounded by rows ([`CHANNEL_ROWS`]), not batches. When
//! the session falls behind and that many rows wait for it, the query stops
//! reading (what it already produced waits in a backlog of at most one
//! poll's output), so a slow client is paced and the server's memory stays
//! bounded. When the session
//! ends (disconnect, cancel, `LIMIT` reached) the channel closes, and the
//! query, its state and the Kafka client of its consumer group are removed
//! on the next round.
//!
//! The session sees rows as ksqlDB shows them ([`Presentation`]): columns
//! in the projection's order; a table's delete as its key (and window
//! bounds) with null values, still marked as a delete; a stream's records
//! without a value dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::{filter_record_batch, nullif};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use tokio::sync::mpsc;

use super::Engine;
use crate::connectors::formats::{Format, FormatKind};
use crate::error::{Error, Result};
use crate::planner::ast::{Query, Statement};
use crate::planner::parser::{self, Parsed};
use crate::planner::pull::{PullOptions, PullTables};
use crate::planner::{PlannedQuery, TRANSIENT_PREFIX};
use crate::runtime::{
    Changes, Op, Output, SinkSpec, StreamPlan, Task, ROWTIME, WINDOWEND, WINDOWSTART,
};

/// Rows in flight to a session before its query waits.
const CHANNEL_ROWS: usize = 65_536;

/// A running push query, as its session holds it.
pub(crate) struct PushQuery {
    pub id: String,
    /// The columns of every batch, in the SELECT's order.
    pub schema: SchemaRef,
    /// `LIMIT n`: the session ends the query after n rows.
    pub limit: Option<u64>,
    /// Its rows are a table's changes (inserts, updates and deletes of
    /// keys), not a stream's rows.
    pub table: bool,
    pub changes: PushChanges,
}

/// The session's end of a push query's channel.
pub(crate) struct PushChanges {
    receiver: mpsc::UnboundedReceiver<Changes>,
    in_flight: Arc<AtomicUsize>,
}

impl PushChanges {
    /// The next changes; None once the query has ended.
    pub(crate) async fn recv(&mut self) -> Option<Changes> {
        let c = self.receiver.recv().await?;
        self.in_flight.fetch_sub(c.len(), Ordering::AcqRel);
        Some(c)
    }

    /// The next changes if there are any now.
    pub(crate) fn try_recv(&mut self) -> Option<Changes> {
        let c = self.receiver.try_recv().ok()?;
        self.in_flight.fetch_sub(c.len(), Ordering::AcqRel);
        Some(c)
    }
}

/// The engine's end of a push query.
pub(super) struct PushSink {
    sender: mpsc::UnboundedSender<Changes>,
    /// Rows sent and not yet taken by the session.
    in_flight: Arc<AtomicUsize>,
    backlog: VecDeque<Changes>,
    presentation: Presentation,
    /// The statement, as `SHOW QUERIES` lists it.
    pub(super) sql: String,
}

/// How the query's changes (key columns then value columns, as the task
/// emits them) become the rows a session shows.
#[derive(Debug, Clone, PartialEq)]
struct Presentation {
    /// For each shown column, its column in the emitted batch.
    order: Vec<usize>,
    /// For each shown column: kept on a delete (a key column or a window
    /// bound); the others become NULL.
    kept: Vec<bool>,
    /// The source is a stream: a delete (a record without a value) is not
    /// shown at all.
    drop_deletes: bool,
}

impl Presentation {
    /// `key` and `value`: the emitted columns' positions in the projection
    /// (the output schema), `names` the output schema's column names.
    fn new(key: &[usize], value: &[usize], names: &[String], is_table: bool) -> Self {
        let emitted: Vec<usize> = key.iter().chain(value).copied().collect();
        let mut shown = emitted.clone();
        shown.sort_unstable();
        let order = shown
            .iter()
            .map(|c| emitted.iter().position(|e| e == c).unwrap_or_default())
            .collect();
        let kept = shown
            .iter()
            .map(|c| {
                key.contains(c)
                    || names
                        .get(*c)
                        .is_some_and(|n| n == WINDOWSTART || n == WINDOWEND)
            })
            .collect();
        Self {
            order,
            kept,
            drop_deletes: !is_table,
        }
    }

    fn show(&self, c: Changes) -> Result<Changes> {
        let batch = c.batch.project(&self.order)?;
        if !c.ops.contains(&Op::Delete) {
            return Ok(Changes::new(batch, c.ops));
        }
        let deletes =
            BooleanArray::from(c.ops.iter().map(|o| *o == Op::Delete).collect::<Vec<_>>());
        if self.drop_deletes {
            let keep = datafusion::arrow::compute::not(&deletes)?;
            let ops = c.ops.into_iter().filter(|o| *o != Op::Delete).collect();
            return Ok(Changes::new(filter_record_batch(&batch, &keep)?, ops));
        }
        let columns = batch
            .columns()
            .iter()
            .zip(&self.kept)
            .map(|(col, kept)| match kept {
                true => Ok(col.clone()),
                false => nullif(col.as_ref(), &deletes),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Changes::new(
            RecordBatch::try_new(batch.schema(), columns)?,
            c.ops,
        ))
    }
}

impl PushSink {
    /// Hand over what the query emitted, as far as the channel takes it.
    /// False once the session is gone.
    pub(super) fn deliver(&mut self, new: Vec<Changes>) -> bool {
        for c in new.into_iter().filter(|c| !c.is_empty()) {
            match self.presentation.show(c) {
                Ok(c) if !c.is_empty() => self.backlog.push_back(c),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot show a push query's changes"),
            }
        }
        while self.in_flight.load(Ordering::Acquire) < CHANNEL_ROWS {
            let Some(c) = self.backlog.pop_front() else {
                break;
            };
            self.in_flight.fetch_add(c.len(), Ordering::AcqRel);
            if self.sender.send(c).is_err() {
                return false;
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
        let shown = Shown::of(&planned);
        let (key_fields, value_fields) = (shown.key_fields, shown.value_fields);
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
            output: Output::Push,
            from_end,
            commit_interval: self.commit_interval()?,
            cache_bytes: 0,
        };
        let task = Task::try_new(plan, self.topics.clone(), self.store.clone())?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let changes = PushChanges {
            receiver,
            in_flight: in_flight.clone(),
        };
        self.tasks.insert(id.clone(), task);
        self.push.insert(
            id.clone(),
            PushSink {
                sender,
                in_flight,
                backlog: VecDeque::new(),
                presentation: shown.presentation,
                sql: text.trim().to_string(),
            },
        );
        tracing::info!(query_id = %id, "push query started");
        Ok(PushQuery {
            id,
            schema: shown.columns,
            limit: query.limit,
            table: planned.is_table,
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
        Ok((Shown::of(&planned).columns, planned.is_table))
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
            .plan_pull(
                &query,
                tables,
                PullOptions {
                    limit: true,
                    table_scan: true,
                    range_scan: true,
                },
            )
            .and_then(|plan| super::parameter_types(&plan))
            .unwrap_or_default()
    }

    /// How many push queries are running (the wire conformance runner
    /// waits for one to be registered before producing its inputs).
    pub(crate) fn push_query_count(&self) -> usize {
        self.push.len()
    }

    /// Remove a push query whose session ended, with its state and the
    /// Kafka client its consumer group kept (each push query has a group of
    /// its own: left open, every push query ever run kept its threads and
    /// sockets).
    pub(super) fn end_push_query(&mut self, id: &str) -> Result<()> {
        self.tasks.remove(id);
        self.push.remove(id);
        self.topics.forget_group(&self.consumer_group(id));
        self.store
            .delete_prefix(&crate::runtime::query_prefix(id))?;
        self.store.delete_prefix(format!("o/{id}/").as_bytes())?;
        tracing::info!(query_id = %id, "push query ended");
        Ok(())
    }
}

/// The one `SELECT ... EMIT CHANGES` statement of `text`.
pub(super) fn parse_push_query(text: &str) -> Result<(Query, Parsed)> {
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

/// What a planned push query emits (its key and value fields) and what its
/// session is shown (the columns in the SELECT's order).
struct Shown {
    key_fields: Vec<FieldRef>,
    value_fields: Vec<FieldRef>,
    columns: SchemaRef,
    presentation: Presentation,
}

impl Shown {
    fn of(planned: &PlannedQuery) -> Self {
        let schema = &planned.output_schema;
        let field = |i: &usize| Arc::new(schema.field(*i).clone());
        let key_fields: Vec<FieldRef> = planned.key_columns.iter().map(field).collect();
        let value_fields: Vec<FieldRef> = planned.value_columns.iter().map(field).collect();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let presentation = Presentation::new(
            &planned.key_columns,
            &planned.value_columns,
            &names,
            planned.is_table,
        );
        let emitted: Vec<&FieldRef> = key_fields.iter().chain(&value_fields).collect();
        let columns = Arc::new(Schema::new(
            presentation
                .order
                .iter()
                .map(|&i| emitted[i].as_ref().clone())
                .collect::<Vec<_>>(),
        ));
        Self {
            key_fields,
            value_fields,
            columns,
            presentation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field};

    fn changes(ops: Vec<Op>) -> Changes {
        // Emitted: key K, then values V and WINDOWSTART.
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Int64, true),
            Field::new("V", DataType::Int64, true),
            Field::new(WINDOWSTART, DataType::Int64, true),
        ]));
        let n = ops.len() as i64;
        let col = |base: i64| {
            Arc::new(Int64Array::from(
                (0..n).map(|i| base + i).collect::<Vec<_>>(),
            )) as _
        };
        Changes::new(
            RecordBatch::try_new(schema, vec![col(0), col(10), col(100)]).unwrap(),
            ops,
        )
    }

    fn values(c: &Changes, i: usize) -> Vec<Option<i64>> {
        let a = c
            .batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        (0..a.len())
            .map(|r| a.is_valid(r).then(|| a.value(r)))
            .collect()
    }

    #[test]
    fn columns_show_in_projection_order_and_deletes_keep_key_and_bounds() {
        // Projection: V (0), WINDOWSTART (1), K (2).
        let names = vec!["V".to_string(), WINDOWSTART.into(), "K".into()];
        let p = Presentation::new(&[2], &[0, 1], &names, true);
        assert_eq!(p.order, vec![1, 2, 0]);
        assert_eq!(p.kept, vec![false, true, true]);
        let shown = p.show(changes(vec![Op::Insert, Op::Delete])).unwrap();
        // Still a delete: the session marks it (`OP`).
        assert_eq!(shown.ops, vec![Op::Insert, Op::Delete]);
        assert_eq!(values(&shown, 0), vec![Some(10), None]);
        assert_eq!(values(&shown, 1), vec![Some(100), Some(101)]);
        assert_eq!(values(&shown, 2), vec![Some(0), Some(1)]);
    }

    #[test]
    fn a_streams_records_without_value_are_not_shown() {
        let names = vec!["K".to_string(), "V".into(), WINDOWSTART.into()];
        let p = Presentation::new(&[0], &[1, 2], &names, false);
        let shown = p.show(changes(vec![Op::Delete, Op::Insert])).unwrap();
        assert_eq!(shown.ops, vec![Op::Insert]);
        assert_eq!(values(&shown, 0), vec![Some(1)]);
    }
}

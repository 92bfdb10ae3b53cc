//! `StreamPlan`: the plain description of a persistent query that the
//! planner hands to the runtime.
//!
//! Batches flowing between operators carry the query's columns by name plus
//! the pseudo columns the runtime maintains: `ROWTIME` (always), and
//! `WINDOWSTART` / `WINDOWEND` once a query is windowed.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

use crate::connectors::formats::{Format, WindowKind};

/// Name of the record-time pseudo column.
pub(crate) const ROWTIME: &str = "ROWTIME";
pub(crate) const ROWPARTITION: &str = "ROWPARTITION";
pub(crate) const ROWOFFSET: &str = "ROWOFFSET";
pub(crate) const WINDOWSTART: &str = "WINDOWSTART";
pub(crate) const WINDOWEND: &str = "WINDOWEND";

/// How a source's record time is found.
#[derive(Debug, Clone)]
pub(crate) enum TimestampSpec {
    /// The Kafka record timestamp.
    Record,
    /// A BIGINT or TIMESTAMP column (index into the decoded batch).
    Column(usize),
    /// A STRING column parsed with a Java-style pattern.
    Formatted { column: usize, format: String },
}

/// Whether and how the source key is windowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyWindow {
    pub kind: WindowKind,
    /// Window size for time windows (session windows carry their end).
    pub size: Option<i64>,
}

/// Where a query reads from.
#[derive(Debug, Clone)]
pub(crate) struct SourceSpec {
    pub name: String,
    pub topic: String,
    pub key_format: Format,
    pub value_format: Format,
    /// Key columns, decoded from the record key.
    pub key_fields: Vec<FieldRef>,
    /// Value columns, decoded from the record value.
    pub value_fields: Vec<FieldRef>,
    /// Header columns: field and the header key (None: all headers).
    pub header_fields: Vec<(FieldRef, Option<String>)>,
    pub timestamp: TimestampSpec,
    /// A table source: records are upserts and tombstones.
    pub is_table: bool,
    pub window: Option<KeyWindow>,
    /// Batches carry WINDOWSTART and WINDOWEND (from a windowed key, or
    /// NULL placeholders a window aggregation fills).
    pub window_columns: bool,
    /// `ksql.timestamp.throw.on.invalid`: a record without a valid time
    /// fails the query instead of being skipped.
    pub fail_on_bad_timestamp: bool,
    /// The decoded batch: key, value and header columns, then ROWTIME,
    /// ROWPARTITION, ROWOFFSET (and WINDOWSTART, WINDOWEND if windowed).
    pub schema: SchemaRef,
}

/// Window kinds of an aggregation, lengths in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowAssign {
    Tumbling { size: i64 },
    Hopping { size: i64, advance: i64 },
    Session { gap: i64 },
}

/// ksqlDB's default grace period when a window names none (24 hours).
pub(crate) const DEFAULT_GRACE_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone)]
pub(crate) struct WindowConfig {
    pub assign: WindowAssign,
    pub grace: i64,
    pub retention: Option<i64>,
    /// `EMIT FINAL`: one output per window, when it closes.
    pub emit_final: bool,
}

/// How a filter treats table changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableMode {
    /// Stream rows: a failing row is dropped.
    Stream,
    /// Table rows feeding a sink: a failing upsert becomes a delete of its
    /// key (ksqlDB writes a tombstone), whether or not the key was present.
    TableToSink,
    /// Table rows feeding a stateful operator: exact changelog semantics, an
    /// update whose old row passed and new row fails becomes a delete of the
    /// old row; rows that never passed produce nothing.
    TableExact,
    /// Like `TableExact`, over an aggregation's results (HAVING): a result
    /// that stops passing becomes a delete stamped with the new row (its
    /// time), since only its key matters downstream.
    TableResult,
}

/// An output column of an aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupColumn {
    /// The i-th group expression.
    Expr(usize),
    WindowStart,
    WindowEnd,
}

/// A grouped aggregation, optionally windowed.
#[derive(Clone)]
pub(crate) struct AggregateSpec {
    /// Group expressions over the input (window bounds excluded).
    pub group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// The output's group columns, in order.
    pub group_columns: Vec<GroupColumn>,
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    pub window: Option<WindowConfig>,
    /// Input is a table changelog (retract old values).
    pub table_input: bool,
    /// Group columns, aggregate columns, then ROWTIME.
    pub schema: SchemaRef,
    pub display: String,
}

/// One step of a query's operator chain.
#[derive(Clone)]
pub(crate) enum OpSpec {
    /// Materialize a source table: turn upserts and tombstones into
    /// insert / update-before / update-after / delete changes with old values.
    Materialize {
        key_columns: Vec<usize>,
        /// Forward a tombstone for a key that is not present (ksqlDB does
        /// when the table feeds a sink; an aggregation must not see it).
        emit_unknown_deletes: bool,
    },
    /// Filter then project.
    FilterProject {
        predicate: Option<Arc<dyn PhysicalExpr>>,
        exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
        schema: SchemaRef,
        table_mode: TableMode,
        display: String,
    },
    /// Table functions (EXPLODE): one output row per element.
    Explode {
        /// Per output column: (input column, is an element of that list).
        outputs: Vec<(usize, bool)>,
        schema: SchemaRef,
        display: String,
    },
    Aggregate(AggregateSpec),
    /// `EMIT FINAL`: hold each window's latest row until the window closes.
    Suppress {
        grace: i64,
        /// Columns identifying a window's row (group columns and bounds).
        key_columns: Vec<usize>,
        /// Time windows expire from the window store `retention` after
        /// their start (stream time); an expired window is never emitted.
        /// None for session windows.
        retention: Option<i64>,
    },
}

impl fmt::Debug for OpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.display())
    }
}

impl OpSpec {
    /// One line for EXPLAIN.
    pub(crate) fn display(&self) -> String {
        match self {
            OpSpec::Materialize { .. } => {
                "Materialize: source table changelog (upserts, tombstones)".to_string()
            }
            OpSpec::Suppress { grace, .. } => {
                format!("Suppress: EMIT FINAL, until window end + grace {grace}ms")
            }
            OpSpec::FilterProject { display, .. } | OpSpec::Explode { display, .. } => {
                display.clone()
            }
            OpSpec::Aggregate(a) => a.display.clone(),
        }
    }
}

/// Where a query writes to.
#[derive(Debug, Clone)]
pub(crate) struct SinkSpec {
    pub name: String,
    pub topic: String,
    pub key_format: Format,
    pub value_format: Format,
    /// Columns of the final batch written to the key, in order.
    pub key_columns: Vec<usize>,
    pub key_fields: Vec<FieldRef>,
    /// Columns written to the value, in order.
    pub value_columns: Vec<usize>,
    pub value_fields: Vec<FieldRef>,
    /// Windowed key encoding, if the output is windowed.
    pub window: Option<KeyWindow>,
    /// A table sink writes upserts and tombstones.
    pub is_table: bool,
    /// Column holding the output record time.
    pub rowtime_column: usize,
    pub window_columns: Option<(usize, usize)>,
    /// The key columns are the source's, passed through (no GROUP BY or
    /// PARTITION BY): all NULL means the record had no key.
    pub key_from_source: bool,
}

/// What a join combines: streams within a window, a stream with a table's
/// current rows, two tables on their primary keys, or a table with another
/// table through a foreign key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    StreamStream,
    StreamTable,
    TableTable,
    ForeignKey,
}

impl fmt::Display for JoinKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinKind::StreamStream => "stream-stream",
            JoinKind::StreamTable => "stream-table",
            JoinKind::TableTable => "table-table",
            JoinKind::ForeignKey => "foreign-key",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinType {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinType {
    /// Rows of the left side without a match are emitted (with NULLs).
    pub(crate) fn left_outer(self) -> bool {
        matches!(self, JoinType::Left | JoinType::Full)
    }

    /// Rows of the right side without a match are emitted (with NULLs).
    pub(crate) fn right_outer(self) -> bool {
        matches!(self, JoinType::Right | JoinType::Full)
    }
}

impl fmt::Display for JoinType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinType::Inner => "INNER",
            JoinType::Left => "LEFT",
            JoinType::Right => "RIGHT",
            JoinType::Full => "FULL OUTER",
        })
    }
}

/// The time bounds of a stream-stream join: a left record at `t` matches
/// right records in `[t - before, t + after]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinWindow {
    pub before: i64,
    pub after: i64,
    /// `GRACE PERIOD`: with one, unmatched outer rows wait until their
    /// window closes; without, they are emitted at once and records are
    /// kept 24 hours (ksqlDB's two behaviours).
    pub grace: Option<i64>,
}

impl JoinWindow {
    pub(crate) fn grace_ms(&self) -> i64 {
        self.grace.unwrap_or(DEFAULT_GRACE_MS)
    }

    /// How long each side's records are kept (stream time).
    pub(crate) fn retention(&self) -> i64 {
        self.before + self.after + self.grace_ms()
    }
}

/// A join input: its batch schema and where its pseudo columns are.
#[derive(Debug, Clone)]
pub(crate) struct JoinInput {
    pub schema: SchemaRef,
    /// Leading columns copied into the output.
    pub width: usize,
    pub rowtime: usize,
    pub partition: usize,
    pub offset: usize,
    /// WINDOWSTART and WINDOWEND, when the input is windowed.
    pub window: Option<(usize, usize)>,
}

/// A two-way join. Its output is the join key (`key_width` columns; ksqlDB's
/// synthetic ROWKEY when visible), the left input's leading columns, the right's, then ROWTIME, ROWPARTITION,
/// ROWOFFSET and, for windowed inputs, WINDOWSTART and WINDOWEND.
#[derive(Clone)]
pub(crate) struct JoinSpec {
    pub kind: JoinKind,
    pub join_type: JoinType,
    /// Join expressions over the left input (for a foreign-key join: the
    /// foreign key).
    pub left_key: Vec<Arc<dyn PhysicalExpr>>,
    /// Join expressions over the right input (its primary key for table
    /// joins).
    pub right_key: Vec<Arc<dyn PhysicalExpr>>,
    /// For a foreign-key join, the left table's primary key columns (the
    /// output key).
    pub left_primary_key: Vec<usize>,
    /// How many leading key expressions are output as key columns (the
    /// rest, window bounds of windowed inputs, only match).
    pub key_width: usize,
    pub left: JoinInput,
    pub right: JoinInput,
    pub window: Option<JoinWindow>,
    /// The result feeds a sink directly: forward tombstones for keys the
    /// output never held, as ksqlDB does (a stateful consumer must not see
    /// them).
    pub emit_unknown_deletes: bool,
    pub schema: SchemaRef,
    pub display: String,
}

impl fmt::Debug for JoinSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// One join of a query: the spec and the source of its right side. The
/// left side is the query's source (first join) or the previous join.
#[derive(Debug, Clone)]
pub(crate) struct JoinStage {
    pub spec: JoinSpec,
    pub right: SourceSpec,
}

fn source_line(src: &SourceSpec) -> String {
    format!(
        "Source: {} {} topic={} key_format={} value_format={}",
        if src.is_table { "TABLE" } else { "STREAM" },
        src.name,
        src.topic,
        src.key_format.kind,
        src.value_format.kind,
    )
}

/// EXPLAIN lines for an operator chain over its joins and sources, the
/// last operator first, starting at indentation `depth`. A join's right
/// source and its left input sit one level below the join.
pub(crate) fn explain_chain(
    ops: &[OpSpec],
    joins: &[JoinStage],
    source: &SourceSpec,
    depth: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut level = depth;
    for op in ops.iter().rev() {
        for (i, line) in op.display().lines().enumerate() {
            lines.push(format!("{}{line}", "  ".repeat(level + usize::from(i > 0))));
        }
        level += 1;
    }
    for stage in joins.iter().rev() {
        lines.push(format!("{}{}", "  ".repeat(level), stage.spec.display));
        level += 1;
        lines.push(format!(
            "{}{}",
            "  ".repeat(level),
            source_line(&stage.right)
        ));
    }
    lines.push(format!("{}{}", "  ".repeat(level), source_line(source)));
    lines
}

/// Where a query's results go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// To the sink's topic (and, for a table, its view).
    Topic,
    /// A push query: its changes (the sink's key and value columns) are
    /// handed to its session ([`super::Task::take_pushed`]), not written to
    /// a topic.
    Push,
    /// Only to the view: a source table materialized for pull queries
    /// (its topic is its input; nothing is written to Kafka).
    View,
}

/// A persistent query for the runtime.
#[derive(Debug, Clone)]
pub(crate) struct StreamPlan {
    pub query_id: String,
    pub source: SourceSpec,
    /// Joins, in order: the first joins `source` with its right source,
    /// each later one joins the previous result with its own.
    pub joins: Vec<JoinStage>,
    /// Operators over the (joined) rows.
    pub ops: Vec<OpSpec>,
    pub sink: SinkSpec,
    /// Topic that records which cannot be decoded are reported to.
    pub processing_log: Option<String>,
    /// The query's Kafka consumer group (also its transactional id):
    /// `{service id}-{query id}`.
    pub consumer_group: String,
    /// `processing.guarantee = exactly_once`: outputs and source positions
    /// are committed in one Kafka transaction.
    pub exactly_once: bool,
    /// The table's view for pull queries (a `CREATE TABLE AS SELECT`).
    pub view: Option<super::view::ViewSpec>,
    /// Where the results go.
    pub output: Output,
    /// Start at the sources' current ends (a push query's default,
    /// `auto.offset.reset=latest`) instead of their beginnings.
    pub from_end: bool,
    /// The longest a query that has not caught up with its inputs goes
    /// without a checkpoint (`commit.interval.ms`).
    pub commit_interval: std::time::Duration,
    /// The record cache's budget for a table sink's outputs
    /// (`cache.max.bytes.buffering`; 0: off): [`super::record_cache`].
    pub cache_bytes: usize,
}

impl StreamPlan {
    /// The plan as indented lines, sink first (EXPLAIN).
    pub(crate) fn explain(&self) -> String {
        let s = &self.sink;
        let mut lines = vec![format!(
            "Sink: {} {} topic={} key={} value={}{}",
            if s.is_table { "TABLE" } else { "STREAM" },
            s.name,
            s.topic,
            s.key_format.kind,
            s.value_format.kind,
            match s.window {
                Some(w) => format!(" windowed={:?}", w.kind),
                None => String::new(),
            }
        )];
        lines.extend(explain_chain(&self.ops, &self.joins, &self.source, 1));
        lines.join("\n")
    }
}

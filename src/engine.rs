//! The engine: executes statements, owns the catalog, the topics, the state
//! store and the running persistent queries.
//!
//! Statements that change the catalog (CREATE, INSERT INTO ... SELECT, DROP,
//! TERMINATE) are appended to a statement log in RocksDB once they succeed;
//! opening an engine on the same data directory replays the log, so streams,
//! tables and queries survive a restart and queries resume from the offsets
//! checkpointed with their state (or, over new empty topics, start over:
//! [`restore`]).
//!
//! Processing is driven by [`Engine::run_until_idle`]: every task polls its
//! source until no task makes progress (the in-process, deterministic mode
//! the conformance runner and tests use; a server drives the same tasks from
//! its own loop).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;

use crate::catalog::{Catalog, Column, ColumnKind, QueryInfo, Source};
use crate::connectors::memory::MemoryTopics;
use crate::connectors::{OutRecord, TopicError, Topics};
use crate::error::{Error, Result};
use crate::planner::ast::{CreateAs, CreateSource, ShowWhat, SourceKind, Statement};
use crate::planner::ddl::{self, SourceOptions};
use crate::planner::{parser, PlannedQuery, Planner};
use crate::runtime::view::{view_prefix, ViewSpec};
use crate::runtime::{Output, SinkSpec, StateStore, StreamPlan, Task, TaskMetrics};

mod insert;
mod materialize;
mod pull;
mod push;
mod restore;
mod sandbox;
pub(crate) mod serving;
mod sink;
pub(crate) use pull::PullPlan;
pub(crate) use push::PushQuery;
pub(crate) use restore::Restored;
pub(crate) use sandbox::{Sandbox, DEFAULT_PULL_QUERY_MEMORY};

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// RocksDB state and the statement log live here.
    pub data_dir: PathBuf,
    /// Initial session properties (`SET` changes them).
    pub properties: BTreeMap<String, String>,
}

/// What a statement returned.
#[derive(Debug, Clone, PartialEq)]
pub enum StatementResult {
    /// A statement that did something, with a message for the user.
    Done {
        message: String,
        query_id: Option<String>,
    },
    /// A table of text (SHOW, LIST, DESCRIBE, EXPLAIN, PRINT).
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A Sluice engine over in-process topics.
pub struct Engine {
    planner: Planner,
    catalog: Catalog,
    topics: Arc<dyn Topics>,
    store: StateStore,
    tasks: BTreeMap<String, Task>,
    properties: BTreeMap<String, String>,
    next_query: u64,
    /// Push queries' channels to their sessions, by query id.
    push: BTreeMap<String, push::PushSink>,
    /// Sinks (`CREATE SINK`), by name, and the last error of those retrying.
    sinks: BTreeMap<String, crate::runtime::file_sink::FileSink>,
    sink_errors: BTreeMap<String, String>,
    log_seq: u64,
    /// Set while the statement log is replayed (statements are not logged
    /// again).
    replay: Option<restore::Replay>,
    /// The operator's bounds (sink locations, value and memory limits).
    sandbox: Sandbox,
    /// The views sessions read without the engine.
    serving: serving::ServingHandle,
}

const LOG_PREFIX: &[u8] = b"c/";

/// Prefix of the comment line that carries a logged query's own settings.
const QUERY_SETTINGS: &str = "-- sluice query settings: ";

/// The processing guarantee property.
const GUARANTEE: &str = "processing.guarantee";

/// The property naming the server (consumer groups, transactional ids).
pub(crate) const SERVICE_ID: &str = "ksql.service.id";

/// The default processing-log topic.
const PROCESSING_LOG: &str = "sluice_processing_log";

/// How often `run_until_idle` retries queries waiting for Kafka (50 ms
/// apart) before it gives up.
const IDLE_RETRIES: u32 = 100;

/// Records read per partition per poll (`max.poll.records`, as Kafka's
/// consumer names it): a poll of a query over one source is one Arrow
/// batch of up to this many records per partition.
const DEFAULT_BATCH: usize = 2048;

/// The longest a query that has not caught up with its inputs goes without
/// a checkpoint (`commit.interval.ms`): short, so that pull queries and
/// downstream queries see results soon even under load.
const DEFAULT_COMMIT_INTERVAL_MS: u64 = 100;

/// The settings that take a whole number.
const NUMERIC_SETTINGS: [&str; 3] = [
    "commit.interval.ms",
    "max.poll.records",
    "cache.max.bytes.buffering",
];

/// A numeric setting's value (any other setting's is not checked here).
fn check_numeric_setting(name: &str, value: &str) -> Result<u64> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("ksql.streams.").unwrap_or(&lower);
    if !NUMERIC_SETTINGS.contains(&bare) {
        return Ok(0);
    }
    value.trim().parse::<u64>().map_err(|_| {
        Error::semantic(format!(
            "Invalid value '{value}' for property {name}: expected a whole number"
        ))
    })
}

impl Engine {
    /// Open an engine on a data directory; restores the catalog and queries.
    pub fn open(config: EngineConfig) -> Result<Self> {
        Self::open_with_topics(config, Arc::new(MemoryTopics::new()))
    }

    /// The topic undecodable records are reported to
    /// (`ksql.logging.processing.topic.name`, default `sluice_processing_log`;
    /// `ksql.logging.processing.topic.auto.create=false` turns it off).
    fn processing_log(&self) -> Option<String> {
        if self
            .properties
            .get("ksql.logging.processing.topic.auto.create")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        {
            return None;
        }
        Some(
            self.properties
                .get("ksql.logging.processing.topic.name")
                .cloned()
                .unwrap_or_else(|| PROCESSING_LOG.to_string()),
        )
    }

    /// Open an engine whose topics are on the Kafka cluster at `bootstrap`.
    pub fn open_on_kafka(config: EngineConfig, bootstrap: &str) -> Result<Self> {
        let topics = crate::connectors::kafka::KafkaTopics::connect(bootstrap, &[])?;
        Self::open_with_topics(config, Arc::new(topics))
    }

    /// Open an engine over a given set of topics (the Kafka connector and
    /// restart tests hand in topics that outlive the engine).
    pub(crate) fn open_with_topics(config: EngineConfig, topics: Arc<dyn Topics>) -> Result<Self> {
        let sandbox = Sandbox::local(&config.data_dir);
        Self::open_sandboxed(config, topics, sandbox)
    }

    /// Open an engine within the server's bounds (`sandbox`).
    pub(crate) fn open_sandboxed(
        config: EngineConfig,
        topics: Arc<dyn Topics>,
        sandbox: Sandbox,
    ) -> Result<Self> {
        let mut engine = Self::open_unrestored(config, topics, sandbox)?;
        engine.replay(false)?;
        Ok(engine)
    }

    /// Open the store, with an empty catalog (the statement log not yet
    /// replayed).
    fn open_unrestored(
        config: EngineConfig,
        topics: Arc<dyn Topics>,
        sandbox: Sandbox,
    ) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store =
            StateStore::open_with_cache(&config.data_dir.join("state"), sandbox.state_cache)?;
        let serving = serving::ServingHandle::new(store.clone());
        Ok(Engine {
            planner: Planner::try_new(&config.properties, sandbox.values)?,
            catalog: Catalog::default(),
            topics,
            store,
            tasks: BTreeMap::new(),
            properties: config.properties,
            next_query: 0,
            push: BTreeMap::new(),
            sinks: BTreeMap::new(),
            sink_errors: BTreeMap::new(),
            log_seq: 0,
            replay: None,
            sandbox,
            serving,
        })
    }

    /// Log a statement that starts a persistent query, with the settings
    /// that query keeps (its processing guarantee and record cache), so
    /// that a restart runs it the same way whatever the server's defaults
    /// are then.
    fn log_query_statement(&mut self, sql: &str) -> Result<()> {
        let guarantee = if self.exactly_once()? {
            "exactly_once"
        } else {
            "at_least_once"
        };
        let settings: BTreeMap<&str, String> = [
            (GUARANTEE, guarantee.to_string()),
            ("cache.max.bytes.buffering", self.cache_bytes()?.to_string()),
        ]
        .into_iter()
        .collect();
        let line = serde_json::to_string(&settings)
            .map_err(|e| Error::internal(format!("cannot log query settings: {e}")))?;
        self.log_statement(&format!("{QUERY_SETTINGS}{line}\n{sql}"))
    }

    /// Whether new queries run exactly-once (`processing.guarantee`, or
    /// ksqlDB's server setting `ksql.streams.processing.guarantee`).
    fn exactly_once(&self) -> Result<bool> {
        let value = self
            .properties
            .get(GUARANTEE)
            .or_else(|| self.properties.get("ksql.streams.processing.guarantee"));
        match value.map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if v == "at_least_once" => Ok(false),
            Some(v) if v == "exactly_once" || v == "exactly_once_v2" => Ok(true),
            Some(v) => Err(Error::semantic(format!(
                "Invalid value '{v}' for property {GUARANTEE}: expected at_least_once, exactly_once or exactly_once_v2"
            ))),
        }
    }

    /// The consumer group (and transactional id) of a query.
    fn consumer_group(&self, query_id: &str) -> String {
        let service = self
            .properties
            .get(SERVICE_ID)
            .map(String::as_str)
            .unwrap_or("sluice");
        format!("{service}-{query_id}")
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn topics(&self) -> &Arc<dyn Topics> {
        &self.topics
    }

    /// Session and server properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// Counters of a running query.
    pub(crate) fn query_metrics(&self, id: &str) -> Option<TaskMetrics> {
        self.tasks.get(id).map(|t| t.metrics())
    }

    /// Make sure a topic exists (the conformance runner pre-creates topics).
    pub(crate) fn ensure_topic(&self, name: &str, partitions: i32) -> Result<()> {
        if !self.topics.exists(name) {
            self.topics.create(name, partitions).map_err(Error::from)?;
        }
        Ok(())
    }

    /// Append records to a topic, each to the partition of its key (as
    /// Kafka's producer picks it) with the given timestamp. The benchmark
    /// harness loads in-process topics this way; the topic must exist.
    pub fn append<I>(&self, topic: &str, records: I) -> Result<()>
    where
        I: IntoIterator<Item = (Option<Vec<u8>>, Option<Vec<u8>>, i64)>,
    {
        if !self.topics.exists(topic) {
            return Err(Error::semantic(format!("topic {topic} does not exist")));
        }
        let records: Vec<OutRecord> = records
            .into_iter()
            .map(|(k, v, ts)| OutRecord::new(topic, k.map(Arc::from), v.map(Arc::from), ts))
            .collect();
        self.topics.produce_all(&records).map_err(Error::from)
    }

    /// Records in the topic of a stream or table (every partition's end
    /// offset: in-process topics start at offset 0).
    pub fn records_of(&self, source: &str) -> Result<u64> {
        let s = self
            .catalog
            .sources()
            .find(|s| s.name.eq_ignore_ascii_case(source))
            .ok_or_else(|| Error::semantic(format!("{source} does not exist")))?;
        let mut n = 0;
        for p in 0..self.topics.partitions(&s.topic).unwrap_or(0) {
            n += self.topics.end_offset(&s.topic, p).map_err(Error::from)?;
        }
        Ok(n as u64)
    }

    /// Run every query until none makes progress.
    pub fn run_until_idle(&mut self) -> Result<()> {
        self.run_until_idle_in_batches(self.poll_records()?)
    }

    /// Run every query until none makes progress, reading at most `batch`
    /// records per partition per step. The batch size changes speed, never
    /// what is emitted.
    /// A query waiting for Kafka (a broker restarting, a new topic's leader
    /// not yet elected) is not idle: it is retried for a while.
    pub(crate) fn run_until_idle_in_batches(&mut self, batch: usize) -> Result<()> {
        let mut retries = 0;
        loop {
            if self.run_round(batch, std::time::Duration::ZERO) > 0 {
                retries = 0;
                continue;
            }
            let waiting = self.tasks.values().any(|t| t.waiting().is_some());
            if !waiting || retries >= IDLE_RETRIES {
                return Ok(());
            }
            retries += 1;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// One round: every query reads what is there (up to the default batch
    /// per partition) and processes it, and a query that has caught up
    /// checkpoints. Returns the records read.
    pub fn run_once(&mut self) -> Result<usize> {
        self.run_once_spaced(std::time::Duration::ZERO)
    }

    /// One round as a server runs them while records keep arriving: as
    /// [`Engine::run_once`], but a query that has caught up checkpoints
    /// only when `gap` has passed since its last checkpoint (a later round
    /// finds it due, with or without new records), so that a trickle of
    /// records shares one checkpoint instead of paying one per round; and
    /// a checkpoint waits for its outputs' acknowledgements only a few
    /// milliseconds: past that the query pauses until a later round finds
    /// them in ([`Engine::settling`]), and the other queries go on.
    pub fn run_once_spaced(&mut self, gap: std::time::Duration) -> Result<usize> {
        Ok(self.run_round(self.poll_records()?, gap))
    }

    /// Whether a query's last checkpoint waits for its outputs'
    /// acknowledgements (a later round of [`Engine::run_once_spaced`]
    /// completes it; the query reads nothing until then).
    pub fn settling(&self) -> bool {
        self.tasks.values().any(|t| t.settling())
    }

    /// A numeric setting: a property under its own name or ksqlDB's
    /// `ksql.streams.` one, else `default`.
    fn numeric_setting(&self, name: &str, default: u64) -> Result<u64> {
        let value = self
            .properties
            .get(name)
            .or_else(|| self.properties.get(&format!("ksql.streams.{name}")));
        match value {
            None => Ok(default),
            Some(v) => check_numeric_setting(name, v),
        }
    }

    /// Records read per partition per poll (`max.poll.records`; `SET`
    /// checks the value, so a bad one from elsewhere means the default).
    fn poll_records(&self) -> Result<usize> {
        let n = self
            .numeric_setting("max.poll.records", DEFAULT_BATCH as u64)
            .unwrap_or(DEFAULT_BATCH as u64);
        Ok(n.clamp(1, 1 << 20) as usize)
    }

    /// `cache.max.bytes.buffering`, for queries started now (0: off, the
    /// engine's default; the server's is ksqlDB's).
    pub(crate) fn cache_bytes(&self) -> Result<usize> {
        Ok(self.numeric_setting("cache.max.bytes.buffering", 0)? as usize)
    }

    /// `commit.interval.ms`, for queries started now.
    pub(crate) fn commit_interval(&self) -> Result<std::time::Duration> {
        let ms = self.numeric_setting("commit.interval.ms", DEFAULT_COMMIT_INTERVAL_MS)?;
        Ok(std::time::Duration::from_millis(ms))
    }

    /// Query ids with every query after the queries whose output it reads
    /// (sources first), then by id.
    fn upstream_first(&self) -> Vec<String> {
        let mut depth: BTreeMap<&str, usize> = self.tasks.keys().map(|k| (k.as_str(), 0)).collect();
        // Longest chain of writers before each query; a cycle (a query
        // reading its own output) stops growing after as many passes as
        // there are queries.
        for _ in 0..self.tasks.len() {
            let mut changed = false;
            for (id, task) in &self.tasks {
                let deepest = self
                    .tasks
                    .iter()
                    .filter(|(other, _)| *other != id)
                    .filter(|(_, writer)| {
                        task.source_topics()
                            .any(|t| t == writer.plan().sink.topic.as_str())
                    })
                    .map(|(other, _)| depth[other.as_str()] + 1)
                    .max()
                    .unwrap_or(0);
                if deepest > depth[id.as_str()] {
                    depth.insert(id.as_str(), deepest);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut order: Vec<(usize, &str)> = depth.into_iter().map(|(id, d)| (d, id)).collect();
        order.sort();
        order.into_iter().map(|(_, id)| id.to_string()).collect()
    }

    /// One round over every query, a query's upstream queries first: what
    /// they write in this round is there when it reads, so a query joining
    /// another's output with a topic sees both up to the same time. `gap`
    /// spaces caught-up queries' checkpoints ([`Engine::run_once_spaced`]).
    fn run_round(&mut self, batch: usize, gap: std::time::Duration) -> usize {
        let mut progress = 0;
        let mut ended = Vec::new();
        for id in self.upstream_first() {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let id = &id;
            // A query that failed stays failed (SHOW QUERIES says why); the
            // others go on. A topic that cannot be read is retried.
            // A push query waits for its session to take what it has.
            if let Some(sink) = self.push.get_mut(id) {
                if !sink.deliver(Vec::new()) {
                    ended.push(id.clone());
                    continue;
                }
                if sink.is_behind() {
                    continue;
                }
            }
            if task.last_error().is_some() {
                continue;
            }
            let started = std::time::Instant::now();
            let polled = task.poll(batch, gap);
            tracing::trace!(query_id = %id, micros = started.elapsed().as_micros() as u64, read = ?polled.as_ref().ok(), "poll");
            if let Some(sink) = self.push.get_mut(id) {
                if !sink.deliver(task.take_pushed()) {
                    ended.push(id.clone());
                }
            }
            match polled {
                Ok(n) => progress += n,
                Err(e) if task.last_error().is_some() => {
                    tracing::error!(query_id = %id, error = %e, "query failed; it stops, the others go on")
                }
                Err(e) => {
                    tracing::warn!(query_id = %id, error = %e, "cannot read the query's input; retrying")
                }
            }
        }
        for id in ended {
            if let Err(e) = self.end_push_query(&id) {
                tracing::error!(query_id = %id, error = %e, "cannot remove an ended push query's state");
            }
        }
        progress + self.poll_sinks(batch)
    }

    /// Queries that failed while processing, with the reason.
    pub fn failed_queries(&self) -> Vec<(String, String)> {
        self.tasks
            .iter()
            .filter_map(|(id, t)| t.last_error().map(|e| (id.clone(), e.to_string())))
            .collect()
    }

    /// Execute a script of statements; stops at the first error.
    /// Execute one parsed statement (the wire server runs a script a
    /// statement at a time, answering each); positions in its errors are
    /// the script's.
    pub(crate) fn execute_parsed(&mut self, p: &parser::Parsed) -> Result<StatementResult> {
        self.execute_statement(p.statement.clone(), &p.text)
            .map_err(|e| locate(e, p))
    }

    /// Run `f` with a session's properties in place of the server's: `SET`
    /// and `UNSET` inside change the session's, queries started inside take
    /// theirs.
    pub(crate) fn in_session<T>(
        &mut self,
        session: &mut BTreeMap<String, String>,
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let server = std::mem::replace(&mut self.properties, std::mem::take(session));
        // A panic inside must not leave the session's properties as the
        // server's: they are put back before it goes on.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        *session = std::mem::replace(&mut self.properties, server);
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Where sessions read views without the engine.
    pub(crate) fn serving(&self) -> serving::ServingHandle {
        self.serving.clone()
    }

    /// Publish the views of the running queries to sessions.
    fn publish_views(&self) {
        let views = self.tasks.values().filter_map(|t| {
            let plan = t.plan();
            plan.view.clone().map(|v| (plan.query_id.clone(), v))
        });
        self.serving.publish(views);
        self.serving.catalog_changed();
    }

    pub fn execute(&mut self, sql: &str) -> Result<Vec<StatementResult>> {
        let parsed = parser::parse(sql)?;
        let mut out = Vec::new();
        for p in parsed {
            let result = self.execute_statement(p.statement.clone(), &p.text);
            out.push(result.map_err(|e| locate(e, &p))?);
        }
        Ok(out)
    }

    /// Run one statement; one that may change the catalog or the running
    /// queries makes pull queries planned before it plan again.
    fn execute_statement(&mut self, stmt: Statement, text: &str) -> Result<StatementResult> {
        let keeps_catalog = stmt.keeps_catalog();
        let result = self.run_statement(stmt, text);
        if !keeps_catalog {
            self.serving.catalog_changed();
        }
        result
    }

    fn run_statement(&mut self, stmt: Statement, text: &str) -> Result<StatementResult> {
        match stmt {
            Statement::CreateSource(c) => self.create_source(c, text),
            Statement::CreateAs(c) => self.create_as(c, text),
            Statement::CreateSink(c) => self.create_sink(c, text),
            Statement::DropSink { name, if_exists } => self.drop_sink(&name, if_exists, text),
            Statement::InsertInto { target, query } => {
                let t = self
                    .catalog
                    .source(&target)
                    .ok_or_else(|| Error::NotFound(format!("{target} does not exist.")))?
                    .clone();
                if t.kind == SourceKind::Table {
                    return Err(Error::semantic(format!(
                        "INSERT INTO can only be used to insert into a stream. {target} is a table."
                    )));
                }
                if t.read_only {
                    return Err(Error::semantic(format!("Cannot insert into read-only stream: {target}")));
                }
                let planned = self.planner.plan_query(&self.catalog, &query, &target)?;
                self.refuse_loop("insert into", &target, &t.topic, &planned.sources)?;
                check_insert_schema(&t, &planned)?;
                if planned.is_table {
                    return Err(Error::semantic(format!(
                        "Incompatible data sink and query result. Data sink ({target}) type is STREAM but select query result is TABLE."
                    )));
                }
                let id = self.next_id("INSERTQUERY", &target);
                self.start_query(id.clone(), planned, &t, text, Output::Topic)?;
                self.log_query_statement(text)?;
                Ok(StatementResult::Done { message: format!("Created query with ID {id}"), query_id: Some(id) })
            }
            Statement::InsertValues { target, columns, rows, position } => {
                let records = self.insert_records(&target, columns, rows).map_err(|e| e.with_position(position))?;
                self.write_records(&records)?;
                Ok(StatementResult::Done { message: String::new(), query_id: None })
            }
            Statement::Select(_) => Err(Error::Unsupported(
                "Transient SELECT in this interface (pull and push queries are served over the Postgres protocol)".into(),
            )),
            Statement::Alter { kind, name, columns } => self.alter(kind, &name, columns, text),
            Statement::Drop { kind, name, if_exists, delete_topic } => self.drop(kind, &name, if_exists, delete_topic, text),
            Statement::Terminate { query_id } => {
                let ids: Vec<String> = match query_id {
                    Some(id) => {
                        if self.catalog.query(&id).is_none() {
                            return Err(Error::NotFound(format!("Unknown queryId: {id}")));
                        }
                        vec![id]
                    }
                    None => self.catalog.queries().map(|q| q.id.clone()).collect(),
                };
                for id in &ids {
                    self.terminate(id)?;
                }
                self.log_statement(text)?;
                Ok(StatementResult::Done { message: "Query terminated.".into(), query_id: None })
            }
            Statement::Show { what, extended } => Ok(self.show(what, extended)),
            Statement::Describe { name, extended } => self.describe(&name, extended),
            Statement::DescribeFunction(name) => {
                let all = crate::functions::catalog();
                let f = all
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .ok_or_else(|| Error::NotFound(format!("Can't find any functions with the name '{name}'")))?;
                Ok(StatementResult::Rows {
                    columns: vec!["Name".into(), "Type".into(), "Description".into()],
                    rows: vec![vec![f.0.to_string(), f.1.to_string(), f.2.to_string()]],
                })
            }
            Statement::Explain(inner) => self.explain(*inner),
            Statement::ExplainQuery(id) => {
                let task = self.tasks.get(&id).ok_or_else(|| Error::NotFound(format!("Query with id:{id} does not exist")))?;
                Ok(rows_of_text(&task.plan().explain()))
            }
            Statement::Set { name, value } => {
                check_numeric_setting(&name, &value)?;
                self.properties.insert(name.clone(), value.clone());
                Ok(StatementResult::Done { message: format!("Successfully changed local property '{name}' to '{value}'."), query_id: None })
            }
            Statement::Unset { name } => {
                self.properties.remove(&name);
                Ok(StatementResult::Done { message: format!("Successfully unset local property '{name}'."), query_id: None })
            }
            Statement::Print { topic, from_beginning, limit } => {
                // In-process, pending records are processed before reading.
                self.run_until_idle()?;
                self.print(&topic, from_beginning, limit)
            }
        }
    }

    /// A persistent query writing `target` (on `topic`) that reads it, or
    /// a source on the same topic, would read its own output again without
    /// end: refused (`what`: "insert into", "create").
    fn refuse_loop(&self, what: &str, target: &str, topic: &str, sources: &[String]) -> Result<()> {
        let on_topic = |s: &String| self.catalog.source(s).is_some_and(|src| src.topic == topic);
        match sources.iter().find(|s| *s == target || on_topic(s)) {
            None => Ok(()),
            Some(own) if own == target => Err(Error::semantic(format!(
                "Cannot {what} {target} from a query that reads {target}: every record it writes would be read again, without end"
            ))),
            Some(own) => Err(Error::semantic(format!(
                "Cannot {what} {target} from a query that reads {own}, on the same topic '{topic}': every record it writes would be read again, without end"
            ))),
        }
    }

    fn next_id(&mut self, prefix: &str, name: &str) -> String {
        let id = format!("{prefix}_{name}_{}", self.next_query);
        self.next_query += 1;
        id
    }

    /// A CREATE for a name that exists: `IF NOT EXISTS` is done, `OR
    /// REPLACE` goes on, anything else is an error.
    fn check_existing(
        &self,
        name: &str,
        kind: SourceKind,
        if_not_exists: bool,
        or_replace: bool,
    ) -> Result<Option<StatementResult>> {
        let Some(existing) = self.catalog.source(name) else {
            return Ok(None);
        };
        if if_not_exists {
            return Ok(Some(StatementResult::Done {
                message: format!("{name} already exists."),
                query_id: None,
            }));
        }
        if !or_replace {
            return Err(Error::AlreadyExists(format!(
                "Cannot add {} '{name}': A {} with the same name already exists",
                kind.to_string().to_lowercase(),
                existing.kind.to_string().to_lowercase()
            )));
        }
        Ok(None)
    }

    fn create_source(&mut self, c: CreateSource, text: &str) -> Result<StatementResult> {
        let kind_word = match c.kind {
            SourceKind::Stream => "stream",
            SourceKind::Table => "table",
        };
        if c.or_replace && c.is_source {
            return Err(Error::semantic(format!(
                "Cannot add {kind_word} '{}': CREATE OR REPLACE is not supported on source {kind_word}s.",
                c.name
            )));
        }
        if let Some(done) = self.check_existing(&c.name, c.kind, c.if_not_exists, c.or_replace)? {
            return Ok(done);
        }
        if let Some(existing) = self.catalog.source(&c.name) {
            if existing.read_only || c.is_source {
                return Err(Error::semantic(format!(
                    "Cannot add {kind_word} '{}': CREATE OR REPLACE is not supported on source {kind_word}s.",
                    c.name
                )));
            }
        }
        let topic_name = c.with.get("KAFKA_TOPIC").map(|(v, _)| v.as_string());
        let existing_partitions = topic_name
            .as_deref()
            .and_then(|t| self.topics.partitions(t))
            .or_else(|| self.recorded_partitions());
        let (source, opts) = ddl::create_source(&c, text, &self.properties, existing_partitions)?;
        self.ensure_source_topic(&source, &opts)?;
        let materialize = source.kind == SourceKind::Table && source.read_only;
        self.catalog.insert_source(source.clone());
        if materialize {
            if let Err(e) = self.materialize_source_table(&source, text) {
                self.catalog.remove_source(&source.name);
                return Err(e);
            }
        }
        self.log_source_statement(text, opts.partitions.is_none().then_some(&source.topic))?;
        Ok(StatementResult::Done {
            message: format!(
                "{} created",
                if c.kind == SourceKind::Stream {
                    "Stream"
                } else {
                    "Table"
                }
            ),
            query_id: None,
        })
    }

    fn ensure_source_topic(&self, source: &Source, opts: &SourceOptions) -> Result<()> {
        if self.topics.exists(&source.topic) {
            if let (Some(p), Some(actual)) =
                (opts.partitions, self.topics.partitions(&source.topic))
            {
                if p != actual {
                    return Err(Error::semantic(format!(
                        "A Kafka topic with the name '{}' already exists, with different partition/replica configuration than required. KSQL expects {p} partitions (topic has {actual}).",
                        source.topic
                    )));
                }
            }
            return Ok(());
        }
        // Over new topics, a topic that existed is created again, with the
        // partitions it had (`recorded_partitions`).
        let recreate = self.recorded_partitions().map(|_| source.partitions);
        match opts.partitions.or(recreate) {
            Some(p) => self
                .topics
                .create_with(&source.topic, &topic_spec(source, p))
                .map_err(Error::from),
            None => Err(Error::semantic(format!(
                "Topic '{}' does not exist. If you want to create a new topic for the stream/table please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS').",
                source.topic
            ))),
        }
    }

    fn create_as(&mut self, c: CreateAs, text: &str) -> Result<StatementResult> {
        if let Some(done) = self.check_existing(&c.name, c.kind, c.if_not_exists, c.or_replace)? {
            return Ok(done);
        }
        if c.query.limit.is_some() {
            return Err(Error::semantic(format!(
                "CREATE {} AS SELECT statements don't support LIMIT clause.",
                c.kind
            )));
        }
        let opts = SourceOptions::parse(&c.with, &BTreeMap::new())?;
        let planned = self.planner.plan_query(&self.catalog, &c.query, &c.name)?;
        match (c.kind, planned.is_table) {
            (SourceKind::Stream, true) => {
                return Err(Error::semantic(
                    "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
                ))
            }
            (SourceKind::Table, false) => {
                return Err(Error::semantic(
                    "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.",
                ))
            }
            _ => {}
        }
        let input = self
            .catalog
            .source(&c.query.from.name)
            .ok_or_else(|| Error::internal("planned source vanished"))?
            .clone();
        let schema = planned.output_schema.clone();
        let mut columns = Vec::new();
        for &k in &planned.key_columns {
            let f = schema.field(k);
            columns.push(Column {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                kind: ColumnKind::Key,
            });
        }
        for &v in &planned.value_columns {
            let f = schema.field(v);
            columns.push(Column {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                kind: ColumnKind::Value,
            });
        }
        let mut key_format = if planned.key_columns.is_empty() && !c.query.partition_by.is_empty() {
            // PARTITION BY NULL: no key, so no key format.
            if opts.key_format.is_some() {
                return Err(Error::semantic(
                    "Key format specified for stream without key columns.",
                ));
            }
            crate::connectors::formats::Format::new(crate::connectors::formats::FormatKind::None)
        } else {
            let inherited = planned
                .key_format
                .clone()
                .unwrap_or_else(|| input.key_format.clone());
            match opts.key_format.clone() {
                Some(f) => f,
                // A keyed result of keyless sources: the default key format.
                None if inherited.kind == crate::connectors::formats::FormatKind::None
                    && !planned.key_columns.is_empty() =>
                {
                    let name = self
                        .properties
                        .get("ksql.persistence.default.format.key")
                        .cloned()
                        .unwrap_or_else(|| "KAFKA".to_string());
                    crate::connectors::formats::Format::new(
                        crate::connectors::formats::FormatKind::parse(&name)
                            .map_err(|e| Error::semantic(e.to_string()))?,
                    )
                }
                None => inherited,
            }
        };
        let mut value_format = opts.value_format.clone().unwrap_or_else(|| {
            let mut f = input.value_format.clone();
            f.wrap_single = None;
            f
        });
        if opts.wrap_single_value.is_some() {
            value_format = value_format.with_wrap_single(opts.wrap_single_value);
        }
        if let (Some(d), crate::connectors::formats::FormatKind::Delimited) =
            (opts.key_delimiter, key_format.kind)
        {
            key_format = key_format.with_delimiter(d);
        }
        if let Some(d) = opts.value_delimiter {
            if value_format.kind == crate::connectors::formats::FormatKind::Delimited {
                value_format = value_format.with_delimiter(d);
            }
        }
        check_intermediate_types(&planned, &value_format)?;
        ddl::check_formats(&key_format, &value_format, &columns)?;
        let timestamp = match &opts.timestamp {
            Some(ts) => {
                if !columns.iter().any(|c| &c.name == ts) {
                    return Err(Error::semantic(format!(
                        "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"
                    )));
                }
                Some((ts.clone(), opts.timestamp_format.clone()))
            }
            None => None,
        };
        let sink = Source {
            name: c.name.clone(),
            kind: c.kind,
            topic: opts.topic.clone().unwrap_or_else(|| c.name.clone()),
            key_format,
            value_format,
            columns,
            timestamp,
            window: planned.window,
            partitions: opts.partitions.unwrap_or(input.partitions),
            replicas: opts.replicas.or(input.replicas),
            retention_ms: opts.retention_ms,
            read_only: false,
            sql: text.to_string(),
            query: None,
        };
        self.refuse_loop("create", &c.name, &sink.topic, &planned.sources)?;
        if !self.topics.exists(&sink.topic) {
            self.topics
                .create_with(&sink.topic, &topic_spec(&sink, sink.partitions))
                .map_err(Error::from)?;
        }
        // Replacing a query: stop the old one first.
        if let Some(old) = self.catalog.source(&c.name).and_then(|s| s.query.clone()) {
            self.terminate(&old)?;
        }
        let prefix = match c.kind {
            SourceKind::Stream => "CSAS",
            SourceKind::Table => "CTAS",
        };
        let id = self.next_id(prefix, &c.name);
        let mut sink = sink;
        sink.query = Some(id.clone());
        self.start_query(id.clone(), planned, &sink, text, Output::Topic)?;
        self.catalog.insert_source(sink);
        self.log_query_statement(text)?;
        Ok(StatementResult::Done {
            message: format!("Created query with ID {id}"),
            query_id: Some(id),
        })
    }

    fn sink_spec(planned: &PlannedQuery, sink: &Source) -> Result<SinkSpec> {
        let schema = &planned.output_schema;
        // The sink's key and value columns in its own order, by name.
        let by_name = |name: &str, among: &[usize]| -> Result<usize> {
            among
                .iter()
                .copied()
                .find(|&i| schema.field(i).name() == name)
                .ok_or_else(|| {
                    Error::semantic(format!("Column {name} is missing from the query result"))
                })
        };
        let key_columns = sink
            .key_columns()
            .map(|c| by_name(&c.name, &planned.key_columns))
            .collect::<Result<Vec<_>>>()?;
        let value_columns = sink
            .value_columns()
            .map(|c| by_name(&c.name, &planned.value_columns))
            .collect::<Result<Vec<_>>>()?;
        let rowtime_column = match &sink.timestamp {
            Some((ts, None)) => by_name(ts, &planned.value_columns)
                .or_else(|_| by_name(ts, &planned.key_columns))?,
            _ => planned.rowtime_column,
        };
        Ok(SinkSpec {
            name: sink.name.clone(),
            topic: sink.topic.clone(),
            key_format: sink.key_format.clone(),
            value_format: sink.value_format.clone(),
            key_columns,
            key_fields: sink.key_columns().map(|c| c.field()).collect(),
            value_columns,
            value_fields: sink.value_columns().map(|c| c.field()).collect(),
            window: planned.window,
            is_table: sink.kind == SourceKind::Table,
            rowtime_column,
            window_columns: planned.window_columns,
            key_from_source: planned.key_from_source,
        })
    }

    /// Start persistent query `id` (started by statement `text`) writing
    /// `sink` (or, with [`Output::View`], only its view).
    fn start_query(
        &mut self,
        id: String,
        planned: PlannedQuery,
        sink: &Source,
        text: &str,
        output: Output,
    ) -> Result<()> {
        let sink_spec = Self::sink_spec(&planned, sink)?;
        let view = ViewSpec::of_sink(&sink_spec);
        let to_topic = output == Output::Topic;
        let plan = StreamPlan {
            query_id: id.clone(),
            source: planned.source,
            joins: planned.joins,
            ops: planned.ops,
            processing_log: self.processing_log(),
            sink: sink_spec,
            consumer_group: self.consumer_group(&id),
            exactly_once: to_topic && self.exactly_once()?,
            view,
            output,
            from_end: false,
            commit_interval: self.commit_interval()?,
            cache_bytes: if to_topic { self.cache_bytes()? } else { 0 },
        };
        let task = Task::try_new(plan, self.topics.clone(), self.store.clone())?;
        self.tasks.insert(id.clone(), task);
        self.publish_views();
        self.catalog.insert_query(QueryInfo {
            id,
            sql: text.to_string(),
            sink: sink.name.clone(),
            sources: planned.sources,
        });
        Ok(())
    }

    fn terminate(&mut self, id: &str) -> Result<()> {
        self.tasks.remove(id);
        self.publish_views();
        self.topics.forget_group(&self.consumer_group(id));
        self.catalog.remove_query(id);
        self.store
            .delete_prefix(&crate::runtime::query_prefix(id))?;
        Ok(())
    }

    fn drop(
        &mut self,
        kind: SourceKind,
        name: &str,
        if_exists: bool,
        delete_topic: bool,
        text: &str,
    ) -> Result<StatementResult> {
        let Some(src) = self.catalog.source(name).cloned() else {
            if if_exists {
                return Ok(StatementResult::Done {
                    message: format!("Source `{name}` does not exist."),
                    query_id: None,
                });
            }
            return Err(Error::NotFound(format!("Source {name} does not exist.")));
        };
        if src.kind != kind {
            return Err(Error::semantic(format!(
                "Incompatible data source type is {}, but statement was DROP {kind}",
                src.kind
            )));
        }
        if delete_topic && src.read_only {
            return Err(Error::semantic(format!(
                "Cannot delete topic for read-only source: {name}"
            )));
        }
        let readers: Vec<String> = self
            .catalog
            .readers_of(name)
            .into_iter()
            .filter(|q| q.sink != name)
            .map(|q| q.sink.clone())
            .collect();
        if !readers.is_empty() {
            return Err(Error::semantic(format!(
                "Cannot drop {name}.\nThe following streams and/or tables read from this source: [{}].\nYou need to drop them before dropping {name}.",
                readers.join(", ")
            )));
        }
        let sinks = self.sinks_of(name);
        if !sinks.is_empty() {
            return Err(Error::semantic(format!(
                "Cannot drop {name}: the sinks [{}] read it. Drop them first (DROP SINK).",
                sinks.join(", ")
            )));
        }
        let writers: Vec<String> = self
            .catalog
            .writers_of(name)
            .into_iter()
            .map(|q| q.id.clone())
            .collect();
        for w in writers {
            self.terminate(&w)?;
        }
        self.catalog.remove_source(name);
        // Replayed, the view is a table's made again later in the log.
        if !self.replaying() {
            self.store.delete_prefix(&view_prefix(name))?;
        }
        if delete_topic {
            self.delete_topic(&src.topic);
        }
        self.log_statement(text)?;
        Ok(StatementResult::Done {
            message: format!("Source `{name}` (topic: {}) was dropped.", src.topic),
            query_id: None,
        })
    }

    fn show(&self, what: ShowWhat, _extended: bool) -> StatementResult {
        match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let rows = self
                    .catalog
                    .sources()
                    .filter(|s| s.kind == kind)
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.topic.clone(),
                            s.key_format.kind.to_string(),
                            s.value_format.kind.to_string(),
                            s.is_windowed().to_string(),
                        ]
                    })
                    .collect();
                StatementResult::Rows {
                    columns: vec![
                        format!(
                            "{} Name",
                            if kind == SourceKind::Stream {
                                "Stream"
                            } else {
                                "Table"
                            }
                        ),
                        "Kafka Topic".into(),
                        "Key Format".into(),
                        "Value Format".into(),
                        "Windowed".into(),
                    ],
                    rows,
                }
            }
            ShowWhat::Queries => StatementResult::Rows {
                columns: vec![
                    "Query ID".into(),
                    "Status".into(),
                    "Sink Name".into(),
                    "Query String".into(),
                ],
                rows: self
                    .catalog
                    .queries()
                    .map(|q| {
                        let task = self.tasks.get(&q.id);
                        let status = match (
                            task.and_then(|t| t.last_error()),
                            task.and_then(|t| t.waiting()),
                        ) {
                            (Some(e), _) => format!("ERROR: {e}"),
                            (None, Some(w)) => format!("WAITING: {w}"),
                            (None, None) => "RUNNING".into(),
                        };
                        vec![q.id.clone(), status, q.sink.clone(), q.sql.clone()]
                    })
                    // Push queries, while their sessions read them.
                    .chain(self.push.iter().map(|(id, sink)| {
                        let status = if sink.is_behind() {
                            "RUNNING (the client is behind: paused)"
                        } else {
                            "RUNNING"
                        };
                        vec![id.clone(), status.into(), String::new(), sink.sql.clone()]
                    }))
                    .collect(),
            },
            ShowWhat::Topics => StatementResult::Rows {
                columns: vec!["Kafka Topic".into(), "Partitions".into()],
                rows: self
                    .topics
                    .list()
                    .into_iter()
                    .map(|t| {
                        let p = self.topics.partitions(&t).unwrap_or(0);
                        vec![t, p.to_string()]
                    })
                    .collect(),
            },
            ShowWhat::Functions => StatementResult::Rows {
                columns: vec!["Function Name".into(), "Type".into(), "Description".into()],
                rows: crate::functions::catalog()
                    .into_iter()
                    .map(|(n, k, d)| vec![n.to_string(), k.to_string(), d.to_string()])
                    .collect(),
            },
            ShowWhat::Sinks => self.show_sinks(),
            ShowWhat::Properties => StatementResult::Rows {
                columns: vec!["Property".into(), "Value".into()],
                rows: self
                    .properties
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()])
                    .collect(),
            },
        }
    }

    fn describe(&self, name: &str, extended: bool) -> Result<StatementResult> {
        let s = self.catalog.source(name).ok_or_else(|| {
            Error::NotFound(format!(
                "Could not find STREAM/TABLE '{name}' in the Metastore"
            ))
        })?;
        let mut rows: Vec<Vec<String>> = s
            .columns
            .iter()
            .map(|c| {
                let extra = match (&c.kind, s.kind) {
                    (ColumnKind::Key, SourceKind::Table) => " (primary key)".to_string(),
                    (ColumnKind::Key, SourceKind::Stream) => " (key)".to_string(),
                    (ColumnKind::Header(Some(k)), _) => format!(" (header('{k}'))"),
                    (ColumnKind::Header(None), _) => " (headers)".to_string(),
                    (ColumnKind::Value, _) => String::new(),
                };
                vec![c.name.clone(), format!("{}{extra}", c.type_name())]
            })
            .collect();
        if extended {
            rows.push(vec!["Type".into(), s.kind.to_string()]);
            rows.push(vec!["Kafka topic".into(), s.topic.clone()]);
            rows.push(vec!["Key format".into(), s.key_format.kind.to_string()]);
            rows.push(vec!["Value format".into(), s.value_format.kind.to_string()]);
            rows.push(vec!["Partitions".into(), s.partitions.to_string()]);
            if let Some(r) = s.replicas {
                rows.push(vec!["Replicas".into(), r.to_string()]);
            }
            if let Some(r) = s.retention_ms {
                rows.push(vec!["Retention (ms)".into(), r.to_string()]);
            }
            if let Some(q) = &s.query {
                rows.push(vec!["Written by query".into(), q.clone()]);
                if let Some(m) = self.query_metrics(q) {
                    rows.push(vec!["Records in".into(), m.records_in.to_string()]);
                    rows.push(vec!["Records out".into(), m.records_out.to_string()]);
                    rows.push(vec![
                        "Records skipped (cannot decode)".into(),
                        m.decode_errors.to_string(),
                    ]);
                    rows.push(vec![
                        "Results dropped (processing log)".into(),
                        m.dropped_outputs.to_string(),
                    ]);
                    rows.push(vec![
                        "Offsets deleted before read (processing log)".into(),
                        m.deleted_unread.to_string(),
                    ]);
                    rows.push(vec![
                        "Late records dropped".into(),
                        m.late_records.to_string(),
                    ]);
                }
            }
        }
        Ok(StatementResult::Rows {
            columns: vec!["Field".into(), "Type".into()],
            rows,
        })
    }

    fn explain(&mut self, stmt: Statement) -> Result<StatementResult> {
        let (query, target, kind) = match &stmt {
            Statement::CreateAs(c) => (&c.query, c.name.clone(), Some(c.kind)),
            Statement::InsertInto { target, query } => (query, target.clone(), None),
            Statement::Select(q) => (q, "RESULT".to_string(), None),
            other => return Err(Error::Unsupported(format!("EXPLAIN of {other:?}"))),
        };
        let planned = self.planner.plan_query(&self.catalog, query, &target)?;
        let mut text = String::new();
        text.push_str("Logical plan (DataFusion):\n");
        for l in planned.logical_plan.lines() {
            text.push_str("  ");
            text.push_str(l);
            text.push('\n');
        }
        text.push_str("Stream plan:\n");
        let schema = &planned.output_schema;
        let names = |idx: &[usize]| {
            idx.iter()
                .map(|&i| schema.field(i).name().clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "  Sink: {} {} key=[{}] value=[{}]{}\n",
            match kind {
                Some(k) => k.to_string(),
                None if planned.is_table => "TABLE".into(),
                None => "STREAM".into(),
            },
            target,
            names(&planned.key_columns),
            names(&planned.value_columns),
            match planned.window {
                Some(w) => format!(" windowed={:?}", w.kind),
                None => String::new(),
            }
        ));
        for line in crate::runtime::explain_chain(&planned.ops, &planned.joins, &planned.source, 2)
        {
            text.push_str(&line);
            text.push('\n');
        }
        Ok(rows_of_text(&text))
    }

    fn print(
        &self,
        topic: &str,
        from_beginning: bool,
        limit: Option<u64>,
    ) -> Result<StatementResult> {
        let partitions = self
            .topics
            .partitions(topic)
            .ok_or_else(|| Error::NotFound(format!("Could not find topic '{topic}', or the KSQL user does not have permissions to list the topic.")))?;
        // Keys are shown decoded with the formats of a source over the topic.
        let source = self.catalog.sources().find(|s| s.topic == topic);
        let mut rows = Vec::new();
        for p in 0..partitions {
            let end = self.topics.end_offset(topic, p).map_err(Error::from)?;
            let start = if from_beginning { 0 } else { end };
            let records = match self.topics.fetch(topic, p, start, usize::MAX) {
                // The log as it is now: from where it starts.
                Err(TopicError::OutOfRange { earliest, .. }) if earliest > start => {
                    self.topics.fetch(topic, p, earliest, usize::MAX)
                }
                fetched => fetched,
            };
            for r in records.map_err(Error::from)? {
                rows.push(vec![
                    r.timestamp.to_string(),
                    p.to_string(),
                    r.offset.to_string(),
                    printable_key(source, r.key.as_deref()),
                    match &r.value {
                        None => "<null>".to_string(),
                        Some(b) => String::from_utf8_lossy(b).to_string(),
                    },
                ]);
            }
        }
        rows.sort_by(|a, b| {
            a[0].parse::<i64>()
                .unwrap_or(0)
                .cmp(&b[0].parse::<i64>().unwrap_or(0))
        });
        if let Some(l) = limit {
            rows.truncate(l as usize);
        }
        Ok(StatementResult::Rows {
            columns: vec![
                "rowtime".into(),
                "partition".into(),
                "offset".into(),
                "key".into(),
                "value".into(),
            ],
            rows,
        })
    }

    fn alter(
        &mut self,
        kind: SourceKind,
        name: &str,
        columns: Vec<(String, crate::catalog::types::SqlType)>,
        text: &str,
    ) -> Result<StatementResult> {
        let kind_word = kind.to_string().to_lowercase();
        let mut src = self
            .catalog
            .source(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("Source {name} does not exist.")))?;
        if src.kind != kind {
            return Err(Error::semantic(format!(
                "Incompatible data source type is {}, but statement was ALTER {kind}",
                src.kind
            )));
        }
        if src.read_only {
            return Err(Error::semantic(format!(
                "Cannot alter {kind_word} '{name}': ALTER operations are not supported on source {kind_word}s."
            )));
        }
        if src.query.is_some() {
            return Err(Error::semantic(
                "ALTER command is not supported for CREATE ... AS statements.",
            ));
        }
        for (col, ty) in columns {
            if src.columns.iter().any(|c| c.name == col) {
                return Err(Error::semantic(format!(
                    "Cannot add column `{col}` to schema. A column with the same name already exists."
                )));
            }
            src.columns.push(Column {
                name: col,
                data_type: ty.to_arrow(),
                kind: ColumnKind::Value,
            });
        }
        ddl::check_formats(&src.key_format, &src.value_format, &src.columns)?;
        self.catalog.insert_source(src);
        self.log_statement(text)?;
        Ok(StatementResult::Done {
            message: format!("{} altered", kind_word),
            query_id: None,
        })
    }
}

fn rows_of_text(text: &str) -> StatementResult {
    StatementResult::Rows {
        columns: vec!["plan".into()],
        rows: text.lines().map(|l| vec![l.to_string()]).collect(),
    }
}

/// INSERT INTO ... SELECT must produce exactly the target's columns.
fn check_insert_schema(target: &Source, planned: &PlannedQuery) -> Result<()> {
    let schema = &planned.output_schema;
    let got: Vec<(String, DataType, bool)> = planned
        .key_columns
        .iter()
        .map(|&i| {
            (
                schema.field(i).name().clone(),
                schema.field(i).data_type().clone(),
                true,
            )
        })
        .chain(planned.value_columns.iter().map(|&i| {
            (
                schema.field(i).name().clone(),
                schema.field(i).data_type().clone(),
                false,
            )
        }))
        .collect();
    let want: Vec<(String, DataType, bool)> = target
        .key_columns()
        .map(|c| (c.name.clone(), c.data_type.clone(), true))
        .chain(
            target
                .value_columns()
                .map(|c| (c.name.clone(), c.data_type.clone(), false)),
        )
        .collect();
    if got != want {
        let show = |cols: &[(String, DataType, bool)]| {
            cols.iter()
                .map(|(n, t, k)| {
                    format!(
                        "`{n}` {}{}",
                        crate::catalog::sql_type_name(t),
                        if *k { " KEY" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::semantic(format!(
            "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
            show(&got),
            show(&want)
        )));
    }
    Ok(())
}

/// ksqlDB keeps aggregate state in the value format: DELIMITED and KAFKA
/// cannot hold nested state (TOPK, COLLECT_LIST, ...).
fn check_intermediate_types(
    planned: &PlannedQuery,
    value_format: &crate::connectors::formats::Format,
) -> Result<()> {
    use crate::connectors::formats::FormatKind;
    if !matches!(value_format.kind, FormatKind::Delimited | FormatKind::Kafka) {
        return Ok(());
    }
    for op in &planned.ops {
        if let crate::runtime::OpSpec::Aggregate(a) = op {
            for agg in &a.aggregates {
                for f in agg.state_fields()? {
                    if f.data_type().is_nested() {
                        return Err(Error::semantic(
                            "One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.",
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A record key as PRINT shows it: decoded with the source's key format
/// (`key@start/end` for windowed keys), else as text.
fn printable_key(source: Option<&Source>, key: Option<&[u8]>) -> String {
    use crate::connectors::formats::{bytes_to_test_json, decode_windowed_key};
    let Some(bytes) = key else {
        return "<null>".to_string();
    };
    let decoded = source.and_then(|s| {
        let fields: Vec<_> = s.key_columns().map(|c| c.field()).collect();
        let (inner, window) = match s.window {
            Some(w) => {
                let (inner, start, end) = decode_windowed_key(bytes, w.kind, w.size).ok()?;
                (inner, Some((start, end)))
            }
            None => (bytes, None),
        };
        let text = if fields.is_empty() {
            String::new()
        } else {
            match bytes_to_test_json(&s.key_format, inner, &fields, true).ok()? {
                serde_json::Value::String(t) => t,
                other => other.to_string(),
            }
        };
        Some(match window {
            Some((start, end)) => format!("{text}@{start}/{end}"),
            None => text,
        })
    });
    decoded.unwrap_or_else(|| String::from_utf8_lossy(bytes).to_string())
}

/// Give a semantic error without a position the position of the name it
/// quotes (`'X'` or `` `X` ``) in the statement, so every statement error
/// says where.
/// How a source's topic is created: its partitions, replicas and
/// retention; a table's topic is compacted.
fn topic_spec(source: &Source, partitions: i32) -> crate::connectors::TopicSpec {
    crate::connectors::TopicSpec {
        partitions,
        replicas: source.replicas,
        retention_ms: source.retention_ms,
        compacted: source.kind == SourceKind::Table,
    }
}

fn locate(e: Error, p: &parser::Parsed) -> Error {
    if e.position().is_some() {
        return e;
    }
    let Error::Semantic { message, .. } = &e else {
        return e;
    };
    let quoted = message
        .split(['\'', '`'])
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.rsplit('.').next().unwrap_or(s).to_string())
        .collect::<Vec<_>>();
    for name in quoted {
        if let Some(pos) = p.find(&name) {
            return e.with_position(pos);
        }
    }
    e
}

/// The types DataFusion inferred for a plan's parameters, `$1` first (None
/// where nothing tells).
pub(crate) fn parameter_types(
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Result<Vec<Option<DataType>>> {
    let mut types = plan.get_parameter_types()?;
    let count = types
        .keys()
        .filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    if count > crate::server::MAX_PARAMETERS {
        return Err(Error::BadParameter(format!(
            "there is no parameter ${count}"
        )));
    }
    Ok((1..=count)
        .map(|n| types.remove(&format!("${n}")).flatten())
        .collect())
}

#[cfg(test)]
mod settling_tests;
#[cfg(test)]
mod tests {
    use super::*;

    fn temp_engine() -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        };
        (Engine::open(config).unwrap(), dir)
    }

    pub(super) fn values(e: &mut Engine, topic: &str) -> Vec<String> {
        match e
            .execute(&format!("PRINT '{topic}' FROM BEGINNING;"))
            .unwrap()
            .remove(0)
        {
            StatementResult::Rows { rows, .. } => rows.into_iter().map(|r| r[4].clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_caught_up_query_checkpoints_once_the_gap_has_passed() {
        use std::time::Duration;
        let (mut e, _dir) = temp_engine();
        e.execute(
            "SET 'commit.interval.ms'='3600000';
             CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             CREATE STREAM o AS SELECT id, v * 10 AS w FROM s;
             INSERT INTO s (id, v) VALUES (1, 1);",
        )
        .unwrap();
        // Records in the output topic (PRINT would run the queries first).
        let written = |e: &Engine| e.topics.end_offset("O", 0).unwrap();
        let hour = Duration::from_secs(3600);
        // Read and processed, caught up, but within the gap: no checkpoint,
        // so its output is not written yet, in this round or the next.
        assert_eq!(e.run_once_spaced(hour).unwrap(), 1);
        assert_eq!(e.run_once_spaced(hour).unwrap(), 0);
        assert_eq!(written(&e), 0);
        // A round without a gap checkpoints what the earlier ones read.
        assert_eq!(e.run_once_spaced(Duration::ZERO).unwrap(), 0);
        assert_eq!(written(&e), 1);
        e.execute("INSERT INTO s (id, v) VALUES (1, 2);").unwrap();
        assert_eq!(e.run_once_spaced(hour).unwrap(), 1);
        assert_eq!(written(&e), 1);
        e.run_until_idle().unwrap();
        assert_eq!(values(&mut e, "O"), [r#"{"W":10}"#, r#"{"W":20}"#]);
    }

    #[test]
    fn a_restart_resumes_from_checkpointed_offsets_without_double_counting() {
        let dir = tempfile::tempdir().unwrap();
        // The topics outlive the engine, as a Kafka cluster would.
        let topics: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        };
        {
            let mut e = Engine::open_with_topics(config.clone(), topics.clone()).unwrap();
            e.execute(
                "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
                 CREATE TABLE t AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id;
                 INSERT INTO s (id, v) VALUES (1, 10);
                 INSERT INTO s (id, v) VALUES (1, 5);",
            )
            .unwrap();
            e.run_until_idle().unwrap();
            assert_eq!(
                values(&mut e, "T"),
                vec![r#"{"N":1,"TOTAL":10}"#, r#"{"N":2,"TOTAL":15}"#]
            );
        }
        let mut e = Engine::open_with_topics(config, topics).unwrap();
        assert_eq!(e.catalog().queries().count(), 1);
        e.execute("INSERT INTO s (id, v) VALUES (1, 1);").unwrap();
        e.run_until_idle().unwrap();
        // The restarted query read only the new record, on top of its state.
        assert_eq!(
            values(&mut e, "T"),
            vec![
                r#"{"N":1,"TOTAL":10}"#,
                r#"{"N":2,"TOTAL":15}"#,
                r#"{"N":3,"TOTAL":16}"#
            ]
        );
    }

    #[test]
    fn terminate_and_drop_remove_queries_and_state() {
        let (mut e, _dir) = temp_engine();
        e.execute(
            "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;",
        )
        .unwrap();
        let err = e.execute("DROP STREAM s;").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot drop S.\nThe following streams and/or tables read from this source: [T].\nYou need to drop them before dropping S."
        );
        e.execute("TERMINATE CTAS_T_0;").unwrap();
        assert_eq!(e.catalog().queries().count(), 0);
        e.execute("DROP TABLE t DELETE TOPIC; DROP STREAM s;")
            .unwrap();
        assert!(e.catalog().sources().next().is_none());
        assert!(!e.topics().exists("T"));
    }

    /// The same records through the same queries, one record per step or
    /// hundreds per step, give the same outputs record for record.
    #[test]
    fn batching_never_changes_what_is_emitted() {
        let run = |batch: usize| {
            let (mut e, _dir) = temp_engine();
            e.execute(
                "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
                 CREATE TABLE counts AS SELECT id, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY id HAVING SUM(v) > 3;
                 CREATE TABLE windows AS SELECT id, COUNT(*) AS n FROM s WINDOW TUMBLING (SIZE 10 MILLISECONDS, GRACE PERIOD 5 MILLISECONDS) GROUP BY id;
                 CREATE STREAM big AS SELECT id, v * 2 AS w FROM s WHERE v > 2;",
            )
            .unwrap();
            for (id, v, ts) in [
                (1, 1, 0),
                (2, 5, 3),
                (1, 4, 12),
                (1, 2, 7),
                (2, 1, 30),
                (1, 3, 9),
                (3, 9, 31),
            ] {
                e.execute(&format!(
                    "INSERT INTO s (ROWTIME, id, v) VALUES ({ts}, {id}, {v});"
                ))
                .unwrap();
            }
            e.run_until_idle_in_batches(batch).unwrap();
            ["COUNTS", "WINDOWS", "BIG"].map(|t| {
                match e
                    .execute(&format!("PRINT '{t}' FROM BEGINNING;"))
                    .unwrap()
                    .remove(0)
                {
                    StatementResult::Rows { rows, .. } => rows,
                    other => panic!("{other:?}"),
                }
            })
        };
        let one_at_a_time = run(1);
        assert_eq!(one_at_a_time[0].len(), 6, "{:?}", one_at_a_time[0]);
        assert_eq!(one_at_a_time, run(500));
    }

    /// In-memory topics whose transactions fail as a script says, to
    /// crash the exactly-once protocol at its two critical instants.
    mod scripted {
        use std::collections::VecDeque;
        use std::sync::{Arc, Mutex};

        use crate::connectors::memory::MemoryTopics;
        use crate::connectors::{
            GroupOffset, OutRecord, Record, TopicError, Topics, TransactionalWriter,
        };

        #[derive(Debug, Clone, Copy)]
        pub(super) enum Fault {
            /// The transaction fails before anything is committed.
            Before,
            /// The transaction commits, then the caller never learns it.
            AfterCommit,
        }

        #[derive(Default)]
        pub(super) struct ScriptedTopics {
            pub inner: Arc<MemoryTopics>,
            pub faults: Arc<Mutex<VecDeque<Fault>>>,
            pub transactions: Arc<Mutex<usize>>,
        }

        struct Writer {
            inner: Arc<MemoryTopics>,
            faults: Arc<Mutex<VecDeque<Fault>>>,
            transactions: Arc<Mutex<usize>>,
            group: String,
        }

        impl TransactionalWriter for Writer {
            fn commit(
                &mut self,
                records: &[OutRecord],
                offsets: &[GroupOffset],
            ) -> Result<(), TopicError> {
                let fault = self.faults.lock().unwrap().pop_front();
                if let Some(Fault::Before) = fault {
                    return Err(TopicError::Broker("injected: before commit".into()));
                }
                self.inner.produce_all(records)?;
                self.inner.commit_offsets(&self.group, offsets)?;
                *self.transactions.lock().unwrap() += 1;
                match fault {
                    Some(Fault::AfterCommit) => {
                        Err(TopicError::Broker("injected: after commit".into()))
                    }
                    _ => Ok(()),
                }
            }
        }

        impl Topics for ScriptedTopics {
            crate::connectors::forward_topics!(inner);

            fn transactional_writer(
                &self,
                _id: &str,
                group: &str,
            ) -> Result<Option<Box<dyn TransactionalWriter>>, TopicError> {
                Ok(Some(Box::new(Writer {
                    inner: self.inner.clone(),
                    faults: self.faults.clone(),
                    transactions: self.transactions.clone(),
                    group: group.to_string(),
                })))
            }
        }
    }

    /// A transaction that committed although the engine saw it fail, and
    /// one that failed before committing: after a crash and restart, and
    /// after a retry, every output is there exactly once and the state is
    /// exact.
    #[test]
    fn exactly_once_outputs_survive_a_crash_at_either_side_of_the_commit() {
        use scripted::{Fault, ScriptedTopics};
        let dir = tempfile::tempdir().unwrap();
        let topics = Arc::new(ScriptedTopics::default());
        let open = || {
            let mut properties = BTreeMap::new();
            properties.insert(GUARANTEE.to_string(), "exactly_once".to_string());
            Engine::open_with_topics(
                EngineConfig {
                    data_dir: dir.path().to_path_buf(),
                    properties,
                },
                topics.clone(),
            )
            .unwrap()
        };
        let mut e = open();
        e.execute(
            "CREATE STREAM s (k STRING KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             CREATE STREAM o AS SELECT k, v * 10 AS w FROM s;
             CREATE TABLE t AS SELECT k, SUM(v) AS total FROM s GROUP BY k;",
        )
        .unwrap();
        e.execute("INSERT INTO s (k, v) VALUES ('a', 1); INSERT INTO s (k, v) VALUES ('a', 2); INSERT INTO s (k, v) VALUES ('b', 3);")
            .unwrap();
        // Both queries commit their transaction, and neither learns it.
        topics
            .faults
            .lock()
            .unwrap()
            .extend([Fault::AfterCommit, Fault::AfterCommit]);
        assert_eq!(e.run_once().unwrap(), 0, "no query completed its poll");
        assert_eq!(*topics.transactions.lock().unwrap(), 2);
        // The process dies; the restart finds both outboxes committed.
        drop(e);
        let mut e = open();
        e.run_until_idle().unwrap();
        assert_eq!(
            *topics.transactions.lock().unwrap(),
            2,
            "nothing written twice"
        );
        assert_eq!(
            values(&mut e, "O"),
            [r#"{"W":10}"#, r#"{"W":20}"#, r#"{"W":30}"#]
        );
        assert_eq!(
            values(&mut e, "T"),
            [r#"{"TOTAL":1}"#, r#"{"TOTAL":3}"#, r#"{"TOTAL":3}"#]
        );
        // Two more records; the transactions fail before committing.
        e.execute("INSERT INTO s (k, v) VALUES ('b', 4); INSERT INTO s (k, v) VALUES ('a', 5);")
            .unwrap();
        topics
            .faults
            .lock()
            .unwrap()
            .extend([Fault::Before, Fault::Before]);
        assert_eq!(e.run_once().unwrap(), 0);
        assert!(
            e.tasks.values().all(|t| t.waiting().is_some()),
            "the queries report that they wait"
        );
        e.run_until_idle().unwrap();
        assert_eq!(*topics.transactions.lock().unwrap(), 4);
        assert_eq!(
            values(&mut e, "O"),
            [
                r#"{"W":10}"#,
                r#"{"W":20}"#,
                r#"{"W":30}"#,
                r#"{"W":40}"#,
                r#"{"W":50}"#
            ]
        );
        assert_eq!(
            values(&mut e, "T"),
            [
                r#"{"TOTAL":1}"#,
                r#"{"TOTAL":3}"#,
                r#"{"TOTAL":3}"#,
                r#"{"TOTAL":7}"#,
                r#"{"TOTAL":8}"#
            ]
        );
    }
}

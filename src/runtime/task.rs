//! `Task`: the one driver loop of a persistent query.
//!
//! `poll` reads up to `max` records per source partition from the stored
//! offsets on, decodes them into Arrow batches, one per source per poll
//! ([`super::merge`]; undecodable records are skipped, counted and logged
//! with topic, partition and offset), pushes the batches through the joins
//! and operators, and encodes what comes out. It checkpoints once it has
//! caught up with its inputs, and at least once per commit interval
//! (`commit.interval.ms`) while it has not: one RocksDB write, one wait for
//! the outputs' acknowledgements (or one Kafka transaction) per checkpoint,
//! not per poll. A caller that polls while records keep arriving (the
//! server's loop) spaces the checkpoints of a caught-up task by a least gap
//! ([`Task::poll`]'s `gap`): records trickling in then share a checkpoint
//! instead of paying one each round.
//!
//! # Checkpoints, offsets and transactions
//!
//! Three things must agree after a crash at any instant: the operator state
//! in RocksDB, the positions in the source topics, and the records in the
//! sink topics. RocksDB is the authority for state and positions: every
//! checkpoint writes the dirty state of every operator and the next offset
//! of every source partition in one atomic RocksDB write, so the state
//! always reflects exactly the input before the stored positions and a
//! restart (or a rewind after a Kafka failure) continues from there: no
//! input is lost, none is counted twice. The query's consumer group
//! (`{service id}-{query id}`) gets the same positions in Kafka, for Kafka's
//! own tools (lag) and for the exactly-once check below.
//!
//! - **At least once** (the default): a checkpoint's outputs are written
//!   and acknowledged first, then the checkpoint is committed, then the group's
//!   offsets. A crash between the write and the checkpoint processes the
//!   records again: the state stays exact, the sink may get those outputs
//!   twice. In the server's loop the checkpoint waits for the
//!   acknowledgements only [`SETTLE_WAIT`]; past that it is kept aside
//!   ([`Settling`]) and the task reads nothing until a later poll finds
//!   them in and commits it, so a slow broker holds back this query, not
//!   the others in the loop (push queries among them). An output that
//!   fails rewinds the task.
//! - **Exactly once** (`processing.guarantee = 'exactly_once'`): the
//!   checkpoint is committed first and holds, besides state and positions,
//!   the checkpoint's outputs (the *outbox*, [`super::outbox`]). Then one Kafka
//!   transaction (`transactional.id` = the group) writes the outbox and
//!   commits the same positions for the group; then the outbox is cleared.
//!   On restart an outbox still present was either committed in Kafka or
//!   not: the new transactional producer first fences the old one (Kafka
//!   completes or aborts its open transaction), then the group's committed
//!   offsets are read (`read_committed`). Equal to the checkpoint's: the
//!   transaction committed and the outbox is dropped; otherwise it is
//!   written again in a new transaction. Readers with
//!   `isolation.level=read_committed` see every output once.
//! - A Kafka error anywhere in a poll rewinds the task to its last
//!   checkpoint (operators reload their state, sources their offsets, an
//!   undelivered outbox is kept) and the query waits and retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::changes::Changes;
use super::decode::decode_batch;
use super::encode::write_sink;
use super::merge;
use super::operators::{self, JoinOperator, Operator, Side};
use super::outbox::{self, outbox_key};
use super::plan::{Output, SourceSpec, StreamPlan};
use super::processing_log::{Entry, ProcessingLog};
use super::record_cache::RecordCache;
use super::state::{offset_key, StateBatch, StateStore};
use super::view::ViewWriter;
use crate::connectors::{
    GroupOffset, OutRecord, Record, Sending, TopicError, Topics, TransactionalWriter,
};
use crate::error::{Error, Result};

/// Counters of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TaskMetrics {
    pub records_in: u64,
    pub records_out: u64,
    /// Records skipped because they could not be decoded.
    pub decode_errors: u64,
    /// Results not written: larger than the sink topic takes, or without
    /// a valid time (each in the processing log).
    pub dropped_outputs: u64,
    /// Input offsets deleted by the broker (retention) before they were
    /// read (an upper bound on records: offsets need not be dense).
    pub deleted_unread: u64,
    /// Records dropped because their window had closed.
    pub late_records: u64,
}

pub(crate) struct Task {
    plan: StreamPlan,
    operators: Vec<Box<dyn Operator>>,
    joins: Vec<Box<dyn JoinOperator>>,
    topics: Arc<dyn Topics>,
    store: StateStore,
    /// Next offset per (source index, partition); source 0 is the query's
    /// source, source i > 0 the right side of its (i-1)-th join.
    offsets: BTreeMap<(usize, i32), i64>,
    metrics: TaskMetrics,
    /// The last error that stopped processing, if any.
    last_error: Option<String>,
    /// Why the query is waiting (its topics cannot be reached), if it is.
    waiting: Option<String>,
    /// Outputs of the poll under way.
    outputs: Vec<OutRecord>,
    /// Checkpointed outputs not yet known to be in Kafka (exactly-once).
    outbox: Option<Vec<OutRecord>>,
    /// The exactly-once writer, opened on first use (None before, and on
    /// stores without transactions).
    writer: Option<Box<dyn TransactionalWriter>>,
    writer_opened: bool,
    /// A rewind failed (the store could not be read): retried first.
    needs_rewind: bool,
    /// The table's view, kept with the checkpoint.
    view: Option<ViewWriter>,
    /// A push query's changes of this poll, for its session.
    pushed: Vec<Changes>,
    /// Records skipped and results dropped since the last checkpoint.
    log: ProcessingLog,
    /// The log topic is known to exist.
    log_ready: bool,
    /// Records were processed (or positions moved) since the last
    /// checkpoint.
    dirty: bool,
    last_checkpoint: Instant,
    /// A table sink's outputs since the last checkpoint, one per key.
    cache: RecordCache,
    /// The last checkpoint, while its outputs are on their way.
    settling: Option<Settling>,
}

/// A checkpoint whose outputs are on their way to Kafka (at least once, in
/// a loop that does not wait for them): its state and positions are
/// committed once every output is acknowledged, and the task reads nothing
/// until then, so other queries run meanwhile.
struct Settling {
    sending: Sending,
    batch: StateBatch,
    offsets: Vec<GroupOffset>,
}

/// How long a checkpoint in a loop that does not wait (see [`Settling`])
/// still waits for its outputs' acknowledgements before it is put aside:
/// a broker nearby acknowledges within the producer's `linger.ms` (5 ms)
/// and a round trip, and then the checkpoint completes at once, as it
/// would if it waited; a broker that takes longer holds back only this
/// query.
const SETTLE_WAIT: Duration = Duration::from_millis(10);

/// How long a poll given `gap` waits for a checkpoint's acknowledgements:
/// a caller without a gap (it runs until idle) waits for them; the
/// server's loop at most `within`.
fn limit(gap: Duration, within: Duration) -> Option<Duration> {
    (!gap.is_zero()).then_some(within)
}

/// Outputs a task keeps for its next checkpoint before it checkpoints
/// early (memory stays bounded whatever the commit interval).
const MAX_PENDING_OUTPUTS: usize = 100_000;

/// What a task restores from its last checkpoint.
struct Restored {
    operators: Vec<Box<dyn Operator>>,
    joins: Vec<Box<dyn JoinOperator>>,
    offsets: BTreeMap<(usize, i32), i64>,
    outbox: Option<Vec<OutRecord>>,
    view: Option<ViewWriter>,
}

/// Source 0 is the query's source, source i > 0 its (i-1)-th join's right.
fn source_of(plan: &StreamPlan, index: usize) -> &SourceSpec {
    match index {
        0 => &plan.source,
        i => &plan.joins[i - 1].right,
    }
}

/// Where a source's offsets are checkpointed.
fn source_offset_key(query_id: &str, source: usize, topic: &str, partition: i32) -> Vec<u8> {
    if source == 0 {
        offset_key(query_id, topic, partition)
    } else {
        offset_key(query_id, &format!("{topic}#{source}"), partition)
    }
}

impl Task {
    pub(crate) fn try_new(
        plan: StreamPlan,
        topics: Arc<dyn Topics>,
        store: StateStore,
    ) -> Result<Self> {
        let restored = Self::restore(&plan, &store, None)?;
        for (i, op) in restored.operators.iter().enumerate() {
            tracing::debug!(query_id = %plan.query_id, index = i, operator = %op.display(), "operator ready");
        }
        for (i, join) in restored.joins.iter().enumerate() {
            tracing::debug!(query_id = %plan.query_id, index = i, join = %join.display(), "join ready");
        }
        let log = ProcessingLog::new(&plan.query_id, plan.processing_log.clone());
        let mut task = Self {
            plan,
            operators: restored.operators,
            joins: restored.joins,
            topics,
            store,
            offsets: restored.offsets,
            metrics: TaskMetrics::default(),
            last_error: None,
            waiting: None,
            outputs: Vec::new(),
            outbox: restored.outbox,
            writer: None,
            writer_opened: false,
            needs_rewind: false,
            view: restored.view,
            pushed: Vec::new(),
            log,
            log_ready: false,
            dirty: false,
            last_checkpoint: Instant::now(),
            cache: RecordCache::new(0),
            settling: None,
        };
        if task.plan.sink.is_table && task.plan.output == Output::Topic {
            task.cache = RecordCache::new(task.plan.cache_bytes);
        }
        // Partitions known now; ones that appear later join at `poll`.
        task.discover_partitions();
        if task.plan.from_end {
            for ((s, p), offset) in task.offsets.iter_mut() {
                let topic = &source_of(&task.plan, *s).topic;
                *offset = task.topics.end_offset(topic, *p).map_err(Error::from)?;
            }
        }
        Ok(task)
    }

    /// Operators, offsets and outbox as of the last checkpoint. Offsets of
    /// the partitions in `known` are restored (the rest are discovered).
    fn restore(
        plan: &StreamPlan,
        store: &StateStore,
        known: Option<Vec<(usize, i32)>>,
    ) -> Result<Restored> {
        let operators = plan
            .ops
            .iter()
            .enumerate()
            .map(|(i, spec)| operators::build(spec, &plan.query_id, i, store))
            .collect::<Result<Vec<_>>>()?;
        let joins = plan
            .joins
            .iter()
            .enumerate()
            .map(|(i, stage)| operators::build_join(&stage.spec, &plan.query_id, i, store))
            .collect::<Result<Vec<_>>>()?;
        let mut offsets = BTreeMap::new();
        for (s, p) in known.unwrap_or_default() {
            offsets.insert((s, p), stored_offset(plan, store, s, p)?);
        }
        let outbox = match store.get(&outbox_key(&plan.query_id))? {
            Some(bytes) => Some(outbox::decode(&bytes)?),
            None => None,
        };
        let view = match &plan.view {
            Some(spec) => Some(ViewWriter::try_new(spec.clone(), store)?),
            None => None,
        };
        Ok(Restored {
            operators,
            joins,
            offsets,
            outbox,
            view,
        })
    }

    /// Add the source partitions the topics show and the task does not
    /// read yet (a source topic created or grown after the query started,
    /// or not reachable when it did), from their checkpointed offsets.
    fn discover_partitions(&mut self) {
        let sources = 1 + self.plan.joins.len();
        for s in 0..sources {
            let topic = &source_of(&self.plan, s).topic;
            let Some(partitions) = self.topics.partitions(topic) else {
                continue;
            };
            for p in 0..partitions {
                if self.offsets.contains_key(&(s, p)) {
                    continue;
                }
                match stored_offset(&self.plan, &self.store, s, p) {
                    Ok(o) => {
                        self.offsets.insert((s, p), o);
                    }
                    Err(e) => {
                        tracing::error!(query_id = %self.plan.query_id, error = %e, "cannot read a checkpointed offset")
                    }
                }
            }
        }
    }

    /// A push query's changes since the last call.
    pub(crate) fn take_pushed(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.pushed)
    }

    pub(crate) fn plan(&self) -> &StreamPlan {
        &self.plan
    }

    /// The topics this query reads: its source, then its joins' right
    /// sides.
    pub(crate) fn source_topics(&self) -> impl Iterator<Item = &str> {
        (0..=self.plan.joins.len()).map(|i| source_of(&self.plan, i).topic.as_str())
    }

    pub(crate) fn metrics(&self) -> TaskMetrics {
        let mut m = self.metrics.clone();
        m.late_records = self.operators.iter().map(|o| o.late_records()).sum::<u64>()
            + self.joins.iter().map(|j| j.late_records()).sum::<u64>();
        m
    }

    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Why the query is waiting for its topics, if it is.
    pub(crate) fn waiting(&self) -> Option<&str> {
        self.waiting.as_deref()
    }

    /// Forget everything since the last checkpoint: operators reload their
    /// state, sources their offsets and an undelivered outbox comes back,
    /// so that the records since then are processed again exactly once into
    /// the state. Needs no broker.
    fn rewind(&mut self) -> Result<()> {
        let known = self.offsets.keys().copied().collect();
        let restored = Self::restore(&self.plan, &self.store, Some(known))?;
        self.operators = restored.operators;
        self.joins = restored.joins;
        self.offsets = restored.offsets;
        self.outbox = restored.outbox;
        self.view = restored.view;
        self.outputs.clear();
        self.pushed.clear();
        self.log.clear();
        self.cache.clear();
        self.settling = None;
        self.dirty = false;
        self.needs_rewind = false;
        Ok(())
    }

    /// Process what is there; a Kafka failure (broker unreachable or
    /// restarting) is not the query's fault: the query rewinds to its last
    /// checkpoint, reports that it is waiting, and is retried. A task that
    /// has caught up checkpoints only when `gap` has passed since its last
    /// checkpoint (zero: at once; a later poll finds it due).
    pub(crate) fn poll(&mut self, max: usize, gap: Duration) -> Result<usize> {
        let result = self.poll_or_recover(max, gap);
        match result {
            Ok(n) => {
                self.waiting = None;
                Ok(n)
            }
            Err(e @ Error::Kafka(_)) => {
                tracing::warn!(query_id = %self.plan.query_id, error = %e, "Kafka unavailable; the query waits and retries from its last checkpoint");
                self.waiting = Some(e.to_string());
                if let Err(r) = self.rewind() {
                    tracing::error!(query_id = %self.plan.query_id, error = %r, "cannot rewind to the last checkpoint; retrying");
                    self.needs_rewind = true;
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn poll_or_recover(&mut self, max: usize, gap: Duration) -> Result<usize> {
        if self.needs_rewind {
            self.rewind()?;
        }
        if !self.settle(limit(gap, Duration::ZERO))? {
            return Ok(0);
        }
        self.deliver_outbox()?;
        self.discover_partitions();
        self.poll_once(max, gap)
    }

    fn source(&self, index: usize) -> &SourceSpec {
        source_of(&self.plan, index)
    }

    /// Process up to `max` records per source partition, in the order and
    /// batches of [`merge`]; returns how many were read. Checkpoints when
    /// the query has caught up with its inputs and `gap` has passed since
    /// the last checkpoint, when the commit interval has passed, or when the
    /// outputs waiting for one pass [`MAX_PENDING_OUTPUTS`].
    fn poll_once(&mut self, max: usize, gap: Duration) -> Result<usize> {
        let mut queues = Vec::new();
        let mut read = 0;
        let mut caught_up = true;
        let positions: Vec<((usize, i32), i64)> =
            self.offsets.iter().map(|(k, v)| (*k, *v)).collect();
        for ((s, p), from) in positions {
            let topic = self.source(s).topic.clone();
            let records = match self.topics.fetch(&topic, p, from, max) {
                Err(TopicError::OutOfRange {
                    requested,
                    earliest,
                    end,
                    ..
                }) => {
                    self.skip_gap(s, p, requested, earliest, end);
                    // A position moved past a gap is checkpointed too.
                    self.dirty = true;
                    continue;
                }
                fetched => fetched.map_err(Error::from)?,
            };
            if !records.is_empty() {
                read += records.len();
                let truncated = records.len() >= max;
                caught_up &= !truncated;
                queues.push(merge::Queue {
                    source: s,
                    partition: p,
                    is_table: self.source(s).is_table,
                    records: records.into(),
                    truncated,
                });
            }
        }
        for segment in merge::merge(queues) {
            self.metrics.records_in += segment.records.len() as u64;
            if let Err(e) = self.process_records(segment.source, &segment.records) {
                if matches!(e, Error::Kafka(_)) {
                    return Err(e);
                }
                self.last_error = Some(e.to_string());
                let topic = &self.source(segment.source).topic;
                tracing::error!(query_id = %self.plan.query_id, topic = %topic, error = %e, "query failed on a batch");
                return Err(e);
            }
            for (p, next) in segment.next {
                self.offsets.insert((segment.source, p), next);
            }
            self.dirty = true;
        }
        let since = self.last_checkpoint.elapsed();
        let due = since >= self.plan.commit_interval
            || (caught_up && since >= gap)
            || self.outputs.len() >= MAX_PENDING_OUTPUTS;
        if self.dirty && due {
            self.checkpoint(limit(gap, SETTLE_WAIT))?;
            self.dirty = false;
            self.last_checkpoint = Instant::now();
        }
        Ok(read)
    }

    fn process_records(&mut self, source: usize, records: &[Record]) -> Result<()> {
        let src = source_of(&self.plan, source);
        let mut skipped = Vec::new();
        let decoded = decode_batch(src, records, &mut skipped)?;
        self.metrics.decode_errors += skipped.len() as u64;
        let now = chrono::Utc::now().timestamp_millis();
        for s in &skipped {
            let entry = Entry::Input {
                topic: &src.topic,
                partition: s.partition,
                offset: s.offset,
                reason: &s.reason,
            };
            self.log.record(entry, now);
        }
        let Some(changes) = decoded else {
            return Ok(());
        };
        let mut batches = vec![changes];
        // Source 0 enters the first join on the left; source i > 0 enters
        // join i-1 on the right. Each join's output is the next one's left.
        let first = source.saturating_sub(1);
        for (j, join) in self.joins.iter_mut().enumerate().skip(first) {
            let side = if source > 0 && j == first {
                Side::Right
            } else {
                Side::Left
            };
            let mut next = Vec::new();
            for b in batches {
                next.extend(join.process(side, b)?);
            }
            batches = next;
        }
        for op in self.operators.iter_mut() {
            let mut next = Vec::new();
            for b in batches {
                next.extend(op.process(b)?);
            }
            batches = next;
        }
        for b in batches {
            if self.plan.output == Output::Push {
                self.metrics.records_out += b.len() as u64;
                let columns: Vec<usize> = self
                    .plan
                    .sink
                    .key_columns
                    .iter()
                    .chain(&self.plan.sink.value_columns)
                    .copied()
                    .collect();
                self.pushed
                    .push(Changes::new(b.batch.project(&columns)?, b.ops));
                continue;
            }
            if let Some(view) = &mut self.view {
                view.apply(&b)?;
            }
            if self.plan.output == Output::View {
                self.metrics.records_out += b.len() as u64;
                continue;
            }
            let (written, dropped) = if self.cache.enabled() {
                let mut results = Vec::new();
                let counts = write_sink(&self.plan.sink, &b, &mut results, &mut self.log)?;
                for r in results {
                    self.cache.put(r, &mut self.outputs);
                }
                counts
            } else {
                write_sink(&self.plan.sink, &b, &mut self.outputs, &mut self.log)?
            };
            self.metrics.records_out += written as u64;
            self.metrics.dropped_outputs += dropped as u64;
        }
        Ok(())
    }

    /// Go on from the start of a partition's log when the query's position
    /// is outside it, and account for what is skipped: records deleted by
    /// retention before the query read them (Kafka Streams resets to the
    /// earliest offset the same way), or a position past the end of a
    /// re-created topic. Either is a processing-log entry; the state is
    /// checkpointed with the new position at the next poll that reads.
    fn skip_gap(&mut self, source: usize, partition: i32, requested: i64, earliest: i64, end: i64) {
        let reason = if requested < earliest {
            let lost = earliest - requested;
            self.metrics.deleted_unread += lost as u64;
            format!(
                "offsets {requested} to {} were deleted from the topic (retention) before they were read",
                earliest - 1
            )
        } else {
            format!(
                "the partition ends at offset {end}, before the query's position {requested} (was the topic re-created?); reading from offset {earliest}"
            )
        };
        let entry = Entry::Input {
            topic: &source_of(&self.plan, source).topic,
            partition,
            offset: requested,
            reason: &reason,
        };
        self.log
            .record(entry, chrono::Utc::now().timestamp_millis());
        self.offsets.insert((source, partition), earliest);
    }

    /// Drop the results their sink topic cannot take (larger than its
    /// `max.message.bytes`: the broker would refuse them on every retry),
    /// each into the processing log; then queue the log's entries with the
    /// outputs, so both are written by the same checkpoint.
    fn settle_outputs(&mut self) -> Result<()> {
        self.cache.drain(&mut self.outputs);
        let now = chrono::Utc::now().timestamp_millis();
        let topics = self.topics.clone();
        let log = &mut self.log;
        let mut dropped = 0;
        // The limit of the topic the last record went to: a query's outputs
        // mostly go to one topic, and asking costs a lock and a name.
        let mut last: Option<(String, Option<usize>)> = None;
        self.outputs.retain(|r| {
            let limit = match &last {
                Some((topic, limit)) if *topic == r.topic => *limit,
                _ => {
                    let limit = topics.max_record_bytes(&r.topic);
                    last = Some((r.topic.clone(), limit));
                    limit
                }
            };
            let Some(limit) = limit else {
                return true;
            };
            let bytes = r.size();
            if bytes <= limit {
                return true;
            }
            let reason = format!(
                "the record is {bytes} bytes and topic {} takes at most {limit}",
                r.topic
            );
            log.record(
                Entry::Output {
                    topic: &r.topic,
                    bytes,
                    reason: &reason,
                },
                now,
            );
            dropped += 1;
            false
        });
        self.metrics.dropped_outputs += dropped;
        let entries = self.log.take();
        if let (Some(topic), false) = (self.log.topic(), entries.is_empty()) {
            if !self.log_ready && !self.topics.exists(topic) {
                self.topics.create(topic, 1)?;
            }
            self.log_ready = true;
            self.outputs.extend(entries);
        }
        Ok(())
    }

    /// Commit what was processed since the last checkpoint: state,
    /// positions and outputs (see the module docs for the order per
    /// processing guarantee). The positions of a push query or a source
    /// table's materialization stay in RocksDB (they commit nothing to Kafka).
    /// An at-least-once checkpoint whose outputs are not acknowledged
    /// within `limit` (none: waits) is completed by a later poll
    /// ([`Settling`]).
    fn checkpoint(&mut self, limit: Option<Duration>) -> Result<()> {
        self.settle_outputs()?;
        let mut batch = StateBatch::default();
        for op in self.operators.iter_mut() {
            op.checkpoint(&mut batch)?;
        }
        for join in self.joins.iter_mut() {
            join.checkpoint(&mut batch)?;
        }
        if let Some(view) = &mut self.view {
            view.checkpoint(&mut batch);
        }
        for ((s, p), o) in &self.offsets {
            let topic = &self.source(*s).topic;
            batch.put(
                &source_offset_key(&self.plan.query_id, *s, topic, *p),
                &o.to_be_bytes(),
            );
        }
        let outputs = std::mem::take(&mut self.outputs);
        if self.plan.output != Output::Topic {
            // Only processing-log entries go to Kafka (before the state
            // that skipped their records: at least once); the positions
            // are the state's.
            if !outputs.is_empty() {
                self.topics.produce_all(&outputs).map_err(Error::from)?;
            }
            self.store.commit(batch)
        } else if self.plan.exactly_once {
            batch.put(&outbox_key(&self.plan.query_id), &outbox::encode(&outputs));
            self.store.commit(batch)?;
            self.outbox = Some(outputs);
            self.deliver_outbox()
        } else {
            let sending = self.topics.send_all(&outputs).map_err(Error::from)?;
            self.settling = Some(Settling {
                sending,
                batch,
                offsets: self.group_offsets(),
            });
            self.settle(limit).map(|_| ())
        }
    }

    /// Complete the checkpoint whose outputs are on their way, if there is
    /// one and they are acknowledged within `limit` (none: once they are);
    /// false while they are not.
    fn settle(&mut self, limit: Option<Duration>) -> Result<bool> {
        let Some(mut settling) = self.settling.take() else {
            return Ok(true);
        };
        let Some(answer) = settling.sending.settled(limit) else {
            self.settling = Some(settling);
            return Ok(false);
        };
        answer.map_err(Error::from)?;
        self.store.commit(settling.batch)?;
        self.topics
            .commit_offsets(&self.plan.consumer_group, &settling.offsets)
            .map_err(Error::from)?;
        Ok(true)
    }

    /// Whether the last checkpoint waits for its outputs' acknowledgements.
    pub(crate) fn settling(&self) -> bool {
        self.settling.is_some()
    }

    /// The next offset of every source partition, by topic.
    fn group_offsets(&self) -> Vec<GroupOffset> {
        self.offsets
            .iter()
            .map(|((s, p), o)| (self.source(*s).topic.clone(), *p, *o))
            .collect()
    }

    /// The exactly-once writer of this query, opened once (None when the
    /// topics have no transactions: then plain writes are all-or-nothing
    /// with the process).
    fn writer(&mut self) -> Result<Option<&mut Box<dyn TransactionalWriter>>> {
        if !self.writer_opened {
            let group = &self.plan.consumer_group;
            self.writer = self
                .topics
                .transactional_writer(group, group)
                .map_err(Error::from)?;
            self.writer_opened = true;
        }
        Ok(self.writer.as_mut())
    }

    /// Deliver a checkpointed outbox, at most once per transaction, then
    /// clear it (see the module docs).
    fn deliver_outbox(&mut self) -> Result<()> {
        let Some(records) = self.outbox.take() else {
            return Ok(());
        };
        let delivered = self.deliver(&records);
        if let Err(e) = delivered {
            self.outbox = Some(records);
            return Err(e);
        }
        let mut batch = StateBatch::default();
        batch.delete(&outbox_key(&self.plan.query_id));
        self.store.commit(batch)
    }

    fn deliver(&mut self, records: &[OutRecord]) -> Result<()> {
        let offsets = self.group_offsets();
        let group = self.plan.consumer_group.clone();
        let topics = self.topics.clone();
        match self.writer()? {
            Some(writer) => {
                // The fenced predecessor may have committed this very
                // transaction before it died.
                let partitions: Vec<(String, i32)> =
                    offsets.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
                let committed = topics
                    .committed_offsets(&group, &partitions)
                    .map_err(Error::from)?;
                let done = !offsets.is_empty()
                    && committed
                        .iter()
                        .zip(&offsets)
                        .all(|(c, (_, _, o))| *c == Some(*o));
                if done {
                    tracing::info!(query_id = %self.plan.query_id, records = records.len(), "outbox already committed in Kafka");
                    return Ok(());
                }
                writer.commit(records, &offsets).map_err(Error::from)
            }
            None => {
                topics.produce_all(records).map_err(Error::from)?;
                topics.commit_offsets(&group, &offsets).map_err(Error::from)
            }
        }
    }
}

/// A source partition's checkpointed next offset (0 if none).
fn stored_offset(
    plan: &StreamPlan,
    store: &StateStore,
    source: usize,
    partition: i32,
) -> Result<i64> {
    let topic = &source_of(plan, source).topic;
    Ok(store
        .get(&source_offset_key(&plan.query_id, source, topic, partition))?
        .and_then(|b| {
            b.get(..8)
                .and_then(|s| s.try_into().ok())
                .map(i64::from_be_bytes)
        })
        .unwrap_or(0))
}

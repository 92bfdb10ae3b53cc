//! Streaming reads behind [`KafkaTopics::fetch`](super::KafkaTopics).
//!
//! A reader is one consumer on one topic, assigned the partitions it is
//! asked for and left assigned, each with a queue of its own, so
//! librdkafka keeps fetching ahead in the background (bounded per
//! partition) and a `fetch` mostly takes records already in memory. A
//! call that continues exactly where a reader left off on a partition goes
//! to that reader (so two queries reading one topic at different places
//! keep a reader each, and neither takes the other's); else one whose last
//! answer holds the offset; else a reader without that partition, a new
//! reader (up to [`READERS_PER_TOPIC`]), or the one that used the
//! partition least recently is moved.
//!
//! The end of a partition is known from librdkafka's end-of-partition
//! event on the partition's queue. A fetch returns `max` records, or every
//! record that has arrived: it waits only when it has none yet, so a
//! partition whose records trickle in never holds up the queries behind
//! it. An empty answer means the partition is read to its end (a caller
//! that runs until idle stops at one). So that a record written before a
//! fetch is not missed, a reader at its end asks the broker for the end
//! offset (a ListOffsets round trip) before it answers empty, but only
//! when its last answer from the broker is older than
//! [`END_REFRESH`], or this client wrote to the topic since
//! ([`Hints::wrote`]), or asked for an end past the reader
//! ([`Hints::end_seen`]). An idle partition thus costs at most one round
//! trip per [`END_REFRESH`], not one per fetch; records other clients
//! write meanwhile arrive by the reader's own fetching ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{broker, client_config, consumer_settings, ZERO_TIME_HEADER};
use crate::connectors::topic::{Record, TopicError};

/// Readers kept per topic (each query reading a topic continues its own).
const READERS_PER_TOPIC: usize = 8;

/// A reader nobody asked anything for this long is closed.
const IDLE: Duration = Duration::from_secs(300);

/// How long a partition's end, as the broker last told it, is taken as
/// its end (see the module docs).
pub(super) const END_REFRESH: Duration = Duration::from_millis(100);

/// What the rest of the client tells the readers: topics it wrote to, and
/// ends it asked the broker for.
#[derive(Default)]
pub(super) struct Hints {
    /// Produce calls per topic.
    writes: Mutex<HashMap<String, u64>>,
    /// The largest end offset seen per topic and partition.
    ends: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

impl Hints {
    /// A produce call wrote to `topic` (its records are acknowledged, or
    /// the call failed).
    pub(super) fn wrote(&self, topic: &str) {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        match writes.get_mut(topic) {
            Some(n) => *n += 1,
            None => {
                writes.insert(topic.to_string(), 1);
            }
        }
    }

    fn writes(&self, topic: &str) -> u64 {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.get(topic).copied().unwrap_or(0)
    }

    /// The broker said `partition` of `topic` ends at `end`.
    pub(super) fn end_seen(&self, topic: &str, partition: i32, end: i64) {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        let partitions = match ends.get_mut(topic) {
            Some(partitions) => partitions,
            None => ends.entry(topic.to_string()).or_default(),
        };
        let e = partitions.entry(partition).or_insert(end);
        *e = (*e).max(end);
    }

    fn end(&self, topic: &str, partition: i32) -> Option<i64> {
        let ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        ends.get(topic).and_then(|p| p.get(&partition)).copied()
    }
}

/// Counts of broker work the readers did (for tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReaderCounts {
    /// End offsets asked of the broker (ListOffsets round trips).
    pub end_requests: u64,
    /// Partitions assigned to a reader (each starts fetching anew).
    pub assignments: u64,
    /// Readers created.
    pub readers: u64,
}

/// Reader settings on top of the fetch consumer's: end-of-partition
/// events, and a bounded prefetch per partition (each partition has its
/// own queue, so the limit is per partition). librdkafka waits `fetch.queue.backoff.ms` (1 s by default) before
/// fetching a partition whose queue was full: the engine empties queues
/// in rounds, so that pause would starve it.
/// A position outside the log (deleted by retention, or past the end of a
/// re-created topic) is an error, never a silent jump: the caller decides,
/// and accounts for what it skips.
const READER: &[(&str, &str)] = &[
    ("enable.partition.eof", "true"),
    ("auto.offset.reset", "error"),
    ("queued.max.messages.kbytes", "8192"),
    ("queued.min.messages", "100000"),
    ("fetch.queue.backoff.ms", "5"),
    ("fetch.wait.max.ms", "10"),
];

/// The readers' client context. rdkafka passes every error event to the
/// context's `error` too, end-of-partition events included, and by default
/// logs each as an error: here the end of a partition is the normal case
/// (the reader sees it on the partition's queue), so only real errors are
/// logged.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(error = %error, reason, "Kafka reader");
        }
    }
}

impl ConsumerContext for ReaderContext {}

struct Partition {
    queue: PartitionQueue<ReaderContext>,
    /// The offset the next fetch on this reader continues from.
    next: i64,
    /// The last records handed out, from the offset they were asked from:
    /// a query may process only part of a fetch (it stops where a busy
    /// partition must not be overtaken) and ask again from inside it.
    given: Vec<Record>,
    given_from: i64,
    /// The partition's end was reached by the last fetch.
    at_end: bool,
    /// librdkafka found the next position outside the log (see `gap`).
    out_of_range: bool,
    /// When the broker last told this partition's end, and how many
    /// produce calls to the topic had returned before it was asked.
    end_known: Option<(Instant, u64)>,
    used: Instant,
}

struct Reader {
    topic: String,
    consumer: Arc<BaseConsumer<ReaderContext>>,
    partitions: HashMap<i32, Partition>,
    used: Instant,
}

/// Every reader of a Kafka cluster's topics.
pub(super) struct Readers {
    base: Vec<(String, String)>,
    all: Vec<Reader>,
    hints: Arc<Hints>,
    /// See [`END_REFRESH`] (tests set it).
    end_refresh: Duration,
    counts: ReaderCounts,
}

impl Readers {
    pub(super) fn new(base: Vec<(String, String)>, hints: Arc<Hints>) -> Self {
        Readers {
            base,
            all: Vec::new(),
            hints,
            end_refresh: END_REFRESH,
            counts: ReaderCounts::default(),
        }
    }

    #[cfg(test)]
    pub(super) fn counts(&self) -> ReaderCounts {
        self.counts
    }

    #[cfg(test)]
    pub(super) fn set_end_refresh(&mut self, every: Duration) {
        self.end_refresh = every;
    }

    /// Up to `max` records of `partition` from `offset`: fewer only when
    /// the partition ends sooner. An error when the broker gives neither
    /// records nor the end within `timeout`.
    pub(super) fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Record>, TopicError> {
        let i = self.reader_for(topic, partition, offset)?;
        let ends = Ends {
            hints: &self.hints,
            refresh: self.end_refresh,
            requests: &mut self.counts.end_requests,
        };
        self.all[i].read(partition, offset, max, timeout, ends)
    }

    /// Stop reading a topic (it is being deleted).
    pub(super) fn forget(&mut self, topic: &str) {
        self.all.retain(|r| r.topic != topic);
    }

    fn reader_for(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<usize, TopicError> {
        let holds = |r: &Reader, within: &dyn Fn(&Partition) -> bool| {
            r.topic == topic && r.partitions.get(&partition).is_some_and(within)
        };
        // Where a reader left off; else inside what one handed out last.
        if let Some(i) = self
            .all
            .iter()
            .position(|r| holds(r, &|p| p.next == offset))
            .or_else(|| {
                self.all
                    .iter()
                    .position(|r| holds(r, &|p| p.given_from <= offset && offset <= p.next))
            })
        {
            return Ok(i);
        }
        self.counts.assignments += 1;
        // A reader of the topic not reading this partition yet.
        if let Some(i) = self
            .all
            .iter()
            .position(|r| r.topic == topic && !r.partitions.contains_key(&partition))
        {
            self.all[i].assign(partition, offset)?;
            return Ok(i);
        }
        self.all.retain(|r| r.used.elapsed() < IDLE);
        if self.all.iter().filter(|r| r.topic == topic).count() < READERS_PER_TOPIC {
            let mut config = client_config(&self.base, &consumer_settings("sluice-fetch"));
            for (k, v) in READER {
                config.set(*k, *v);
            }
            let consumer: BaseConsumer<ReaderContext> =
                config.create_with_context(ReaderContext).map_err(broker)?;
            self.counts.readers += 1;
            self.all.push(Reader {
                topic: topic.to_string(),
                consumer: Arc::new(consumer),
                partitions: HashMap::new(),
                used: Instant::now(),
            });
            let i = self.all.len() - 1;
            self.all[i].assign(partition, offset)?;
            return Ok(i);
        }
        // Move the reader that used this partition least recently.
        let i = self
            .all
            .iter()
            .enumerate()
            .filter(|(_, r)| r.topic == topic)
            .min_by_key(|(_, r)| r.partitions.get(&partition).map(|p| p.used))
            .map(|(i, _)| i)
            .ok_or_else(|| TopicError::Broker(format!("no reader for {topic}")))?;
        self.all[i].unassign(partition)?;
        self.all[i].assign(partition, offset)?;
        Ok(i)
    }
}

/// How a reader decides it is at a partition's end (see the module docs).
struct Ends<'a> {
    hints: &'a Hints,
    refresh: Duration,
    requests: &'a mut u64,
}

impl Reader {
    fn list(&self, partition: i32, offset: Option<i64>) -> Result<TopicPartitionList, TopicError> {
        let mut tpl = TopicPartitionList::new();
        match offset {
            Some(o) => tpl
                .add_partition_offset(&self.topic, partition, Offset::Offset(o))
                .map_err(broker)?,
            None => {
                tpl.add_partition(&self.topic, partition);
            }
        }
        Ok(tpl)
    }

    fn assign(&mut self, partition: i32, offset: i64) -> Result<(), TopicError> {
        let queue = self
            .consumer
            .split_partition_queue(&self.topic, partition)
            .ok_or_else(|| {
                TopicError::Broker(format!("no queue for {} partition {partition}", self.topic))
            })?;
        self.consumer
            .incremental_assign(&self.list(partition, Some(offset))?)
            .map_err(broker)?;
        self.partitions.insert(
            partition,
            Partition {
                queue,
                next: offset,
                given: Vec::new(),
                given_from: offset,
                at_end: false,
                out_of_range: false,
                end_known: None,
                used: Instant::now(),
            },
        );
        Ok(())
    }

    fn unassign(&mut self, partition: i32) -> Result<(), TopicError> {
        if self.partitions.remove(&partition).is_some() {
            self.consumer
                .incremental_unassign(&self.list(partition, None)?)
                .map_err(broker)?;
        }
        Ok(())
    }

    fn read(
        &mut self,
        partition: i32,
        offset: i64,
        max: usize,
        timeout: Duration,
        ends: Ends<'_>,
    ) -> Result<Vec<Record>, TopicError> {
        let deadline = Instant::now() + timeout;
        self.used = Instant::now();
        // Serve the consumer's own events (errors are seen per partition,
        // as no answer in time).
        while let Some(event) = self.consumer.poll(Duration::ZERO) {
            if let Err(e) = event {
                tracing::debug!(topic = %self.topic, error = %e, "fetch consumer event");
            }
        }
        let topic = &self.topic;
        let p = self.partitions.get_mut(&partition).ok_or_else(|| {
            TopicError::Broker(format!("{topic} partition {partition} is not assigned"))
        })?;
        p.used = Instant::now();
        // What was handed out already and not taken: again.
        let mut out: Vec<Record> = p
            .given
            .iter()
            .filter(|r| r.offset >= offset)
            .take(max)
            .cloned()
            .collect();
        if out.len() == max {
            // Only part of the last batch: the rest stays to be asked for.
            p.given_from = offset;
            p.given = p
                .given
                .iter()
                .filter(|r| r.offset >= offset)
                .cloned()
                .collect();
            return Ok(out);
        }
        while out.len() < max && !p.out_of_range {
            // At the end already, or holding records: only what has
            // arrived since. A reader that waited for the next record while
            // holding some would hold back every query behind this fetch.
            let wait = if p.at_end || !out.is_empty() {
                Duration::ZERO
            } else {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            };
            match p.queue.poll(wait) {
                Some(Ok(m)) => {
                    p.at_end = false;
                    if m.offset() >= p.next {
                        p.next = m.offset() + 1;
                        out.push(record(&m));
                    }
                }
                // The end as of one fetch response: while records keep
                // coming, later responses (and their ends) are queued
                // behind it already, and are taken too.
                Some(Err(KafkaError::PartitionEOF(_))) => p.at_end = true,
                // The position is not in the log any more (see `gap`).
                Some(Err(e))
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) =>
                {
                    p.out_of_range = true;
                }
                // The records this call took are past `next` already: kept,
                // so that asking again from `offset` gets them.
                Some(Err(e)) => {
                    p.given_from = offset;
                    p.given = out;
                    return Err(broker(e));
                }
                // Everything queued is taken (a caller that runs until
                // idle asks again, and waits then).
                None if !out.is_empty() => break,
                // At the end as last seen: records written before this
                // call must still be read (a caller that runs until idle
                // relies on it), so the broker's end offset decides unless
                // it was asked recently and nothing was written since (see
                // the module docs); a broker that is away fails the call,
                // and the query waits.
                None if p.at_end => {
                    let writes = ends.hints.writes(topic);
                    let known = p
                        .end_known
                        .is_some_and(|(at, w)| w == writes && at.elapsed() < ends.refresh)
                        && ends.hints.end(topic, partition).is_none_or(|e| e <= p.next);
                    if known {
                        break;
                    }
                    let asked = Instant::now();
                    *ends.requests += 1;
                    let (_, high) = self
                        .consumer
                        .fetch_watermarks(topic, partition, timeout)
                        .map_err(broker)?;
                    p.end_known = Some((asked, writes));
                    if p.next >= high {
                        break;
                    }
                    p.at_end = false;
                }
                None if Instant::now() >= deadline => {
                    if out.is_empty() {
                        return Err(TopicError::Broker(format!(
                            "no answer from Kafka for {topic} partition {partition} within {timeout:?}"
                        )));
                    }
                    break;
                }
                None => {}
            }
        }
        if out.is_empty() && p.out_of_range {
            return Err(self.gap(partition, offset, timeout));
        }
        p.given_from = offset;
        p.given = out.clone();
        Ok(out)
    }

    /// The partition's position `offset` is outside its log: deleted by
    /// retention before it was read, or past the end of a topic that was
    /// re-created. librdkafka stopped fetching it; it is assigned anew
    /// where the caller goes on, which the error tells it.
    fn gap(&mut self, partition: i32, offset: i64, timeout: Duration) -> TopicError {
        if let Err(e) = self.unassign(partition) {
            return e;
        }
        match self
            .consumer
            .fetch_watermarks(&self.topic, partition, timeout)
        {
            Ok((earliest, end)) => TopicError::OutOfRange {
                topic: self.topic.clone(),
                partition,
                requested: offset,
                earliest,
                end,
            },
            Err(e) => broker(e),
        }
    }
}

/// A fetched message as the runtime's record (time 0 restored from its
/// header, see the module docs of `kafka`).
pub(super) fn record(m: &BorrowedMessage<'_>) -> Record {
    let mut headers: Vec<(String, Option<Arc<[u8]>>)> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(Arc::from)))
                .collect()
        })
        .unwrap_or_default();
    let mut timestamp = m.timestamp().to_millis().unwrap_or(0);
    if matches!(m.timestamp(), rdkafka::Timestamp::CreateTime(_))
        && headers.last().is_some_and(|(k, _)| k == ZERO_TIME_HEADER)
    {
        headers.pop();
        timestamp = 0;
    }
    Record {
        key: m.key().map(Arc::from),
        value: m.payload().map(Arc::from),
        timestamp,
        headers,
        partition: m.partition(),
        offset: m.offset(),
    }
}

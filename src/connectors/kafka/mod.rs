//! Kafka topics behind the runtime's [`Topics`] calls, with `rdkafka`.
//!
//! - **Admin**: topics are created with their partitions, replication
//!   factor, `retention.ms` and, for tables, `cleanup.policy=compact`;
//!   deleted and listed through the admin API and cluster metadata.
//! - **Produce**: each record is sent with its key, value, timestamp and
//!   headers. A keyed record without an explicit partition goes to
//!   `murmur2(key) % partitions`, the Java clients' default, so topics written
//!   by Sluice and by Java producers stay co-partitioned. A call waits
//!   once for all its records' acknowledgements (`producer`); `produce`
//!   returns the record's offset.
//! - **Fetch**: a partition is read from a given offset, `max` records or
//!   up to its end (`read_committed`, so aborted transactional writes are
//!   never seen), by consumers that stay assigned and fetch ahead
//!   (`fetcher`). Offsets are not always dense on Kafka (compaction,
//!   transaction markers); readers continue from the last record's offset
//!   plus one.
//!
//! - **Consumer groups**: every persistent query commits its sources'
//!   positions under its own group (`{service id}-{query id}`), so Kafka's
//!   tools show each query's lag. The engine's own checkpoint in RocksDB
//!   stays the authority for where a query resumes, so these commits are
//!   asynchronous: `commit_offsets` does not wait for the broker. A read
//!   of a group's committed offsets first waits for the group's commits
//!   still under way, so it sees every commit made before it.
//! - **Transactions** (exactly-once queries): a [`TransactionalWriter`] per
//!   query, with `transactional.id` = the group; a new writer fences the
//!   previous one (its open transaction is aborted). Outputs and the group's
//!   offsets are committed in one transaction (the protocol is in
//!   `runtime::task`).
//! - **Record time 0**: librdkafka's producer treats a timestamp of 0 as
//!   "now". A record Sluice writes with time 0 therefore carries the header
//!   [`ZERO_TIME_HEADER`], and reading restores time 0 from it (and hides
//!   the header). Other clients see the produce time and the header.
//!
//! Calls block the calling thread (the engine's driver loop is synchronous);
//! rdkafka's own threads drive the network.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};

use group::GroupContext;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use rdkafka::consumer::CommitMode;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;

use super::topic::{
    murmur2_partition, GroupOffset, OutRecord, Record, Sending, TopicError, TopicSpec, Topics,
    TransactionalWriter,
};

/// Marks a record written with time 0 (see the module docs).
pub(crate) const ZERO_TIME_HEADER: &str = "sluice.rowtime-zero";

mod embedded;
mod fetcher;
mod group;
mod in_flight;
mod producer;
#[cfg(test)]
mod tests;
pub(crate) use embedded::EmbeddedKafka;

/// How long one admin, metadata or produce call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a fetch waits for the broker before reporting it unreachable
/// (the engine's loop retries).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A Kafka cluster's topics.
pub(crate) struct KafkaTopics {
    admin: AdminClient<DefaultClientContext>,
    producer: producer::Producer,
    /// The producer of records a client waits on (INSERT, COPY): without
    /// `linger.ms`, so one record goes at once instead of waiting to be
    /// batched (made on first use).
    at_once: std::sync::OnceLock<producer::Producer>,
    /// Times a produce call waited for room in the producer's local queue.
    queue_full_waits: AtomicU64,
    /// What this client wrote, for the readers (see `fetcher`).
    hints: Arc<fetcher::Hints>,
    /// One consumer for metadata and watermarks.
    consumer: Mutex<BaseConsumer>,
    /// The consumers records are fetched with (see `fetcher`).
    readers: Mutex<fetcher::Readers>,
    /// Partition counts seen (topics are never repartitioned here); a topic
    /// deleted through this client is forgotten.
    partition_counts: Mutex<std::collections::HashMap<String, i32>>,
    /// The embedded broker, which creates topics itself (it has no admin
    /// API); kept alive as long as these topics.
    embedded: Option<Arc<EmbeddedKafka>>,
    /// Client settings new clients start from (bootstrap and extras).
    base: Vec<(String, String)>,
    /// One consumer per consumer group whose offsets are committed or read
    /// (each has its own threads and sockets), until the group's query ends
    /// ([`Topics::forget_group`]).
    groups: Mutex<std::collections::HashMap<String, BaseConsumer<GroupContext>>>,
    /// The largest record each topic takes (its `max.message.bytes`), as
    /// the broker last said.
    max_bytes: in_flight::RecordLimits,
}

fn broker(e: KafkaError) -> TopicError {
    TopicError::Broker(e.to_string())
}

impl KafkaTopics {
    /// Connect to the cluster at `bootstrap` (`host:port,...`); `extra` are
    /// further librdkafka client settings (security, timeouts).
    pub(crate) fn connect(bootstrap: &str, extra: &[(String, String)]) -> Result<Self, TopicError> {
        let mut base = vec![("bootstrap.servers".to_string(), bootstrap.to_string())];
        base.extend(extra.iter().cloned());
        let admin = client_config(&base, &[]).create().map_err(broker)?;
        let producer = producer::new(&base, &[])?;
        let consumer = client_config(&base, &consumer_settings("sluice-fetch"))
            .create()
            .map_err(broker)?;
        let hints = Arc::new(fetcher::Hints::default());
        let topics = Self {
            admin,
            producer,
            at_once: std::sync::OnceLock::new(),
            queue_full_waits: AtomicU64::new(0),
            hints: hints.clone(),
            consumer: Mutex::new(consumer),
            readers: Mutex::new(fetcher::Readers::new(base.clone(), hints)),
            partition_counts: Mutex::new(std::collections::HashMap::new()),
            embedded: None,
            base,
            groups: Mutex::new(std::collections::HashMap::new()),
            max_bytes: Arc::default(),
        };
        // Fail early, with the address, when nothing answers.
        topics
            .consumer()
            .fetch_metadata(None, TIMEOUT)
            .map_err(|e| TopicError::Broker(format!("Kafka at {bootstrap} is unreachable: {e}")))?;
        Ok(topics)
    }

    /// Topics on the embedded broker.
    pub(crate) fn embedded(broker: Arc<EmbeddedKafka>) -> Result<Self, TopicError> {
        let mut topics = Self::connect(broker.bootstrap(), &[])?;
        topics.embedded = Some(broker);
        Ok(topics)
    }

    /// Send `records` with `producer`; a failure makes the topics'
    /// `max.message.bytes` be read anew (it may have changed since it was
    /// read: a record too large now fails on every retry).
    fn produce_with(
        &self,
        producer: &producer::Producer,
        records: &[OutRecord],
    ) -> Result<(), TopicError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let _done = Timed("produce_all", &first.topic, Instant::now());
        self.send(producer, records).map(|_| ())
    }

    /// The consumer of a group (created on first use).
    fn with_group<T>(
        &self,
        group: &str,
        f: impl FnOnce(&BaseConsumer<GroupContext>) -> Result<T, TopicError>,
    ) -> Result<T, TopicError> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if !groups.contains_key(group) {
            let c: BaseConsumer<GroupContext> =
                client_config(&self.base, &consumer_settings(group))
                    .create_with_context(GroupContext::default())
                    .map_err(broker)?;
            groups.insert(group.to_string(), c);
        }
        match groups.get(group) {
            Some(c) => f(c),
            None => Err(TopicError::Broker(format!("no consumer for group {group}"))),
        }
    }

    /// Send `records` and wait for every acknowledgement (see
    /// `producer`). Returns where the last record went.
    fn send(
        &self,
        producer: &producer::Producer,
        records: &[OutRecord],
    ) -> Result<(i32, i64), TopicError> {
        let mut in_flight = self.queue(producer, records)?;
        let sent = in_flight.queued.wait();
        in_flight.written.settled(&sent);
        sent
    }

    /// Queue `records` without waiting. The partition counts of the topics
    /// records are keyed into are looked up once per call, before anything
    /// is queued (an unknown topic queues nothing).
    fn queue(
        &self,
        producer: &producer::Producer,
        records: &[OutRecord],
    ) -> Result<in_flight::InFlight, TopicError> {
        // The topics written, with their partition counts where a record
        // is placed by its key (a call mostly writes one topic).
        let mut topics: Vec<(&str, Option<i32>)> = Vec::new();
        for r in records {
            let keyed = r.partition.is_none() && r.key.is_some();
            let i = match topics.iter().position(|(t, _)| *t == r.topic) {
                Some(i) => i,
                None => {
                    topics.push((&r.topic, None));
                    topics.len() - 1
                }
            };
            if keyed && topics[i].1.is_none() {
                let n = self
                    .partitions(&r.topic)
                    .ok_or_else(|| TopicError::UnknownTopic(r.topic.clone()))?;
                topics[i].1 = Some(n);
            }
        }
        let place = |r: &OutRecord| -> Result<i32, TopicError> {
            Ok(match (r.partition, r.key.as_deref()) {
                (Some(p), _) => p,
                (None, Some(k)) => {
                    let n = topics
                        .iter()
                        .find(|(t, _)| *t == r.topic)
                        .and_then(|(_, n)| *n)
                        .ok_or_else(|| TopicError::UnknownTopic(r.topic.clone()))?;
                    murmur2_partition(k, n)
                }
                (None, None) => 0,
            })
        };
        let queued = producer::queue_all(producer, records, place, &self.queue_full_waits);
        // Readers check these topics' ends again once the records are
        // settled (even after a failure: some records may be written).
        let written = in_flight::Written {
            hints: self.hints.clone(),
            limits: self.max_bytes.clone(),
            topics: topics.iter().map(|(t, _)| t.to_string()).collect(),
        };
        Ok(in_flight::InFlight { queued, written })
    }

    #[cfg(test)]
    fn readers(&self) -> std::sync::MutexGuard<'_, fetcher::Readers> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn consumer(&self) -> std::sync::MutexGuard<'_, BaseConsumer> {
        self.consumer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, i32>> {
        self.partition_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until the metadata shows a new topic (creation is asynchronous).
    fn await_topic(&self, topic: &str) -> Result<(), TopicError> {
        let deadline = Instant::now() + TIMEOUT;
        while self.partitions(topic).is_none() {
            if Instant::now() > deadline {
                return Err(TopicError::Broker(format!(
                    "topic '{topic}' was created but does not appear in the metadata"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn options() -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(TIMEOUT))
    }

    /// A topic's `max.message.bytes` as the broker reports it (its own or
    /// the broker's default); None when the broker does not say.
    fn topic_max_message_bytes(&self, topic: &str) -> Option<usize> {
        let resources = [ResourceSpecifier::Topic(topic)];
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let described = block_on(self.admin.describe_configs(&resources, &options));
        let resource = match described {
            Ok(mut results) => match results.pop() {
                Some(Ok(resource)) => resource,
                Some(Err(code)) => {
                    tracing::warn!(topic, error = %code, "cannot read the topic's max.message.bytes");
                    return None;
                }
                None => return None,
            },
            Err(e) => {
                tracing::warn!(topic, error = %e, "cannot read the topic's max.message.bytes");
                return None;
            }
        };
        resource
            .get("max.message.bytes")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse().ok())
    }
}

impl Topics for KafkaTopics {
    fn create(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        self.create_with(
            topic,
            &TopicSpec {
                partitions,
                ..TopicSpec::default()
            },
        )
    }

    fn create_with(&self, topic: &str, spec: &TopicSpec) -> Result<(), TopicError> {
        let _done = Timed("create", topic, Instant::now());
        if let Some(existing) = self.partitions(topic) {
            if existing != spec.partitions {
                return Err(TopicError::PartitionMismatch {
                    topic: topic.to_string(),
                    existing,
                    requested: spec.partitions,
                });
            }
            return Ok(());
        }
        if let Some(broker) = &self.embedded {
            broker.create_topic(topic, spec.partitions)?;
            return self.await_topic(topic);
        }
        let retention = spec.retention_ms.map(|r| r.to_string());
        let mut new = NewTopic::new(
            topic,
            spec.partitions.max(1),
            TopicReplication::Fixed(i32::from(spec.replicas.unwrap_or(1))),
        );
        if spec.compacted {
            new = new.set("cleanup.policy", "compact");
        }
        if let Some(r) = &retention {
            new = new.set("retention.ms", r);
        }
        let results =
            block_on(self.admin.create_topics([&new], &Self::options())).map_err(broker)?;
        for r in results {
            if let Err((name, code)) = r {
                // Created meanwhile by someone else: fine if it matches.
                if code == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    continue;
                }
                return Err(TopicError::Broker(format!(
                    "cannot create topic '{name}': {code}"
                )));
            }
        }
        self.await_topic(topic)
    }

    fn delete(&self, topic: &str) {
        let _done = Timed("delete", topic, Instant::now());
        self.counts().remove(topic);
        self.max_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
        // Stop fetching from it.
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(topic);
        // The embedded broker has no admin API: asked through it, the
        // deletion waited out the admin timeout with the engine locked.
        if let Some(broker) = &self.embedded {
            if self.partitions(topic).is_some() {
                if let Err(e) = broker.delete_topic(topic) {
                    tracing::warn!(topic, error = %e, "cannot delete topic");
                }
                self.counts().remove(topic);
            }
            return;
        }
        if let Err(e) = block_on(self.admin.delete_topics(&[topic], &Self::options())) {
            tracing::warn!(topic, error = %e, "cannot delete topic");
        }
    }

    fn exists(&self, topic: &str) -> bool {
        self.partitions(topic).is_some()
    }

    /// The topic's `max.message.bytes` (asked once per topic), and never
    /// more than the producer sends. The embedded broker has no limit of
    /// its own and gets Kafka's default, so that what runs on it runs on a
    /// broker too; so does a broker that does not say.
    fn max_record_bytes(&self, topic: &str) -> Option<usize> {
        if let Some(n) = self
            .max_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return Some(*n);
        }
        let broker = match self.embedded {
            Some(_) => EMBEDDED_MAX_BYTES,
            None => self
                .topic_max_message_bytes(topic)
                .unwrap_or(EMBEDDED_MAX_BYTES),
        };
        let limit = broker.min(producer::MAX_BYTES);
        self.max_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), limit);
        Some(limit)
    }

    fn partitions(&self, topic: &str) -> Option<i32> {
        if let Some(n) = self.counts().get(topic) {
            return Some(*n);
        }
        let _done = Timed("metadata", topic, Instant::now());
        let md = self.consumer().fetch_metadata(Some(topic), TIMEOUT).ok()?;
        let t = md.topics().iter().find(|t| t.name() == topic)?;
        if t.error().is_some() || t.partitions().is_empty() {
            return None;
        }
        let n = t.partitions().len() as i32;
        self.counts().insert(topic.to_string(), n);
        Some(n)
    }

    fn list(&self) -> Vec<String> {
        let Ok(md) = self.consumer().fetch_metadata(None, TIMEOUT) else {
            return Vec::new();
        };
        let mut names: Vec<String> = md
            .topics()
            .iter()
            // A topic deleted on the embedded broker is listed as unknown.
            .filter(|t| {
                t.error()
                    != Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            })
            .map(|t| t.name().to_string())
            .filter(|n| !n.starts_with("__"))
            .collect();
        names.sort();
        names
    }

    fn produce(&self, record: OutRecord) -> Result<(i32, i64), TopicError> {
        let _done = Timed("produce", &record.topic, Instant::now());
        self.send(&self.producer, std::slice::from_ref(&record))
    }

    fn produce_all(&self, records: &[OutRecord]) -> Result<(), TopicError> {
        self.produce_with(&self.producer, records)
    }

    fn send_all(&self, records: &[OutRecord]) -> Result<Sending, TopicError> {
        if records.is_empty() {
            return Ok(Sending::done());
        }
        let in_flight = self.queue(&self.producer, records)?;
        Ok(Sending::pending(Box::new(in_flight)))
    }

    fn produce_now(&self, records: &[OutRecord]) -> Result<(), TopicError> {
        if self.at_once.get().is_none() {
            let made = producer::new(&self.base, &[("linger.ms", "0")])?;
            // Another caller may have made one meanwhile: either will do.
            let _ = self.at_once.set(made);
        }
        match self.at_once.get() {
            Some(p) => self.produce_with(p, records),
            None => self.produce_all(records),
        }
    }
    fn commit_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<(), TopicError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = offset_list(offsets)?;
        self.with_group(group, |c| {
            // The results of earlier commits (failures are logged).
            c.context().served(c);
            c.context().pending.fetch_add(1, Ordering::SeqCst);
            c.commit(&tpl, CommitMode::Async).map_err(|e| {
                c.context().pending.fetch_sub(1, Ordering::SeqCst);
                broker(e)
            })
        })
    }

    fn forget_group(&self, group: &str) {
        let consumer = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group);
        // Closing a consumer takes up to 100 ms (it polls until librdkafka
        // says it is closed): on a thread of its own, so the caller (the
        // engine's loop, holding the engine) does not wait.
        if let Some(consumer) = consumer {
            let name = group.to_string();
            let spawned = std::thread::Builder::new()
                .name("sluice-kafka-close".into())
                .spawn(move || {
                    let _done = Timed("close consumer", &name, Instant::now());
                    // Its last commits go out first.
                    consumer.context().settle(&consumer, TIMEOUT);
                    drop(consumer);
                });
            // Without a thread, the consumer was closed here, waiting.
            if let Err(e) = spawned {
                tracing::warn!(group, error = %e, "cannot close a consumer on a thread of its own");
            }
        }
    }

    fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, TopicError> {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in partitions {
            tpl.add_partition(t, *p);
        }
        let got = self.with_group(group, |c| {
            // What this group committed before is what is read.
            c.context().settle(c, TIMEOUT);
            c.committed_offsets(tpl, TIMEOUT).map_err(broker)
        })?;
        Ok(partitions
            .iter()
            .map(|(t, p)| {
                got.find_partition(t, *p).and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
            })
            .collect())
    }

    fn transactional_writer(
        &self,
        transactional_id: &str,
        group: &str,
    ) -> Result<Option<Box<dyn TransactionalWriter>>, TopicError> {
        let mut writer = KafkaTransactions {
            base: self.base.clone(),
            transactional_id: transactional_id.to_string(),
            group: client_config(&self.base, &consumer_settings(group))
                .create()
                .map_err(broker)?,
            producer: None,
            partitions: self.counts().clone(),
            hints: self.hints.clone(),
        };
        // Fence an earlier incarnation now, before its offsets are read.
        writer.producer()?;
        Ok(Some(Box::new(writer)))
    }

    fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Record>, TopicError> {
        let _done = Timed("fetch", topic, Instant::now());
        if max == 0 {
            return Ok(Vec::new());
        }
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fetch(topic, partition, offset, max, FETCH_TIMEOUT)
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, TopicError> {
        let (_, high) = watermarks(&self.consumer(), topic, partition, TIMEOUT)?;
        // A reader behind this end reads on to it.
        self.hints.end_seen(topic, partition, high);
        Ok(high)
    }
}

/// Kafka's default `message.max.bytes` (1 MiB and 12 bytes).
const EMBEDDED_MAX_BYTES: usize = 1_048_588;

/// Settings of a consumer in `group` (positions are the engine's; nothing
/// is committed automatically; only committed transactions are read).
fn consumer_settings(group: &str) -> Vec<(&str, &str)> {
    vec![
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "false"),
        ("isolation.level", "read_committed"),
        ("auto.offset.reset", "earliest"),
        // A fetch reads what is there: the broker need not wait for more.
        ("fetch.wait.max.ms", "10"),
        ("fetch.error.backoff.ms", "10"),
    ]
}

fn client_config(base: &[(String, String)], pairs: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in base {
        c.set(k, v);
    }
    for (k, v) in pairs {
        c.set(*k, *v);
    }
    c
}

fn offset_list(offsets: &[GroupOffset]) -> Result<TopicPartitionList, TopicError> {
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))
            .map_err(broker)?;
    }
    Ok(tpl)
}

/// A partition's low and high watermarks. Right after a topic is created
/// (or while its leader moves) the broker may answer "not leader" or
/// "leader not available" for a moment: those answers are retried until
/// `timeout`.
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), TopicError> {
    let deadline = Instant::now() + timeout;
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable,
            )) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => return other.map_err(broker),
        }
    }
}

/// A query's transactional producer (see [`TransactionalWriter`]).
struct KafkaTransactions {
    base: Vec<(String, String)>,
    transactional_id: String,
    /// A consumer in the query's group: its group metadata goes with the
    /// offsets into each transaction.
    group: BaseConsumer,
    /// None after a failure: the next commit starts a new producer, which
    /// fences and aborts whatever the old one left open.
    producer: Option<producer::Producer>,
    /// Partition counts of sink topics, for keyed records.
    partitions: std::collections::HashMap<String, i32>,
    /// What this client wrote, for the readers (see `fetcher`).
    hints: Arc<fetcher::Hints>,
}

impl KafkaTransactions {
    fn producer(&mut self) -> Result<&producer::Producer, TopicError> {
        if self.producer.is_none() {
            let p = producer::new(
                &self.base,
                &[
                    ("transactional.id", &self.transactional_id),
                    ("transaction.timeout.ms", "60000"),
                ],
            )?;
            p.init_transactions(TIMEOUT).map_err(broker)?;
            self.producer = Some(p);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| TopicError::Broker("no transactional producer".into()))
    }

    fn partition_count(&mut self, topic: &str) -> Result<i32, TopicError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let md = self
            .group
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(broker)?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .ok_or_else(|| TopicError::UnknownTopic(topic.to_string()))?;
        self.partitions.insert(topic.to_string(), n);
        Ok(n)
    }

    fn try_commit(
        &mut self,
        records: &[OutRecord],
        offsets: &[GroupOffset],
    ) -> Result<(), TopicError> {
        let mut placed = Vec::with_capacity(records.len());
        for r in records {
            placed.push(match (r.partition, r.key.as_deref()) {
                (Some(p), _) => p,
                (None, Some(k)) => murmur2_partition(k, self.partition_count(&r.topic)?),
                (None, None) => 0,
            });
        }
        let cgm = self.group.group_metadata().ok_or_else(|| {
            TopicError::Broker("the query's consumer has no group metadata".into())
        })?;
        let tpl = offset_list(offsets)?;
        let hints = self.hints.clone();
        let producer = self.producer()?;
        let committed = (|| {
            producer.begin_transaction().map_err(broker)?;
            let mut place = placed.iter();
            producer::send_all(
                producer,
                records,
                |_| {
                    place
                        .next()
                        .copied()
                        .ok_or_else(|| TopicError::Broker("a record without a partition".into()))
                },
                &AtomicU64::new(0),
            )?;
            if !offsets.is_empty() {
                producer
                    .send_offsets_to_transaction(&tpl, &cgm, TIMEOUT)
                    .map_err(broker)?;
            }
            producer.commit_transaction(TIMEOUT).map_err(broker)
        })();
        // Readers check these topics' ends again.
        let mut written: Vec<&str> = records.iter().map(|r| r.topic.as_str()).collect();
        written.sort_unstable();
        written.dedup();
        for t in written {
            hints.wrote(t);
        }
        committed
    }
}

impl TransactionalWriter for KafkaTransactions {
    fn commit(&mut self, records: &[OutRecord], offsets: &[GroupOffset]) -> Result<(), TopicError> {
        let id = self.transactional_id.clone();
        let _done = Timed("transaction", &id, Instant::now());
        let result = self.try_commit(records, offsets);
        if result.is_err() {
            let aborted = self
                .producer
                .as_ref()
                .is_some_and(|p| p.abort_transaction(TIMEOUT).is_ok());
            if !aborted {
                self.producer = None;
            }
        }
        result
    }
}

/// Logs how long a broker call took (at trace level) when dropped.
struct Timed<'a>(&'static str, &'a str, Instant);

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        tracing::trace!(
            call = self.0,
            topic = self.1,
            micros = self.2.elapsed().as_micros() as u64,
            "kafka call"
        );
    }
}

/// Wait for a future on this thread (rdkafka's threads complete it).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

//! Kafka topics behind the runtime's [`Topics`] calls, with `rdkafka`.
//!
//! - **Admin**: topics are created with their partitions, replication
//!   factor, `retention.ms` and, for tables, `cleanup.policy=compact`;
//!   deleted and listed through the admin API and cluster metadata.
//! - **Produce**: each record is sent with its key, value, timestamp and
//!   headers. A keyed record without an explicit partition goes to
//!   `murmur2(key) % partitions`, the Java clients' default, so topics written
//!   by Sluice and by Java producers stay co-partitioned. `produce` waits for
//!   the broker's acknowledgement and returns the record's offset.
//! - **Fetch**: a partition is read from a given offset up to its high
//!   watermark as it was when the fetch began (`read_committed`, so aborted
//!   transactional writes are never seen). Offsets are not always dense on
//!   Kafka (compaction, transaction markers); readers continue from the last
//!   record's offset plus one.
//!
//! Calls block the calling thread (the engine's driver loop is synchronous);
//! rdkafka's own threads drive the network.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::topic::{murmur2_partition, Record, TopicError, TopicSpec, Topics};

mod embedded;
pub(crate) use embedded::EmbeddedKafka;

/// How long one admin, metadata or produce call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a fetch waits for the broker before reporting it unreachable
/// (the engine's loop retries).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A Kafka cluster's topics.
pub(crate) struct KafkaTopics {
    admin: AdminClient<DefaultClientContext>,
    producer: FutureProducer,
    /// One consumer for fetches, re-assigned per call.
    consumer: Mutex<BaseConsumer>,
    /// Partition counts seen (topics are never repartitioned here); a topic
    /// deleted through this client is forgotten.
    partition_counts: Mutex<std::collections::HashMap<String, i32>>,
    /// The embedded broker, which creates topics itself (it has no admin
    /// API); kept alive as long as these topics.
    embedded: Option<Arc<EmbeddedKafka>>,
}

fn broker(e: KafkaError) -> TopicError {
    TopicError::Broker(e.to_string())
}

impl KafkaTopics {
    /// Connect to the cluster at `bootstrap` (`host:port,...`); `extra` are
    /// further librdkafka client settings (security, timeouts).
    pub(crate) fn connect(bootstrap: &str, extra: &[(String, String)]) -> Result<Self, TopicError> {
        let config = |pairs: &[(&str, &str)]| {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", bootstrap);
            for (k, v) in extra {
                c.set(k, v);
            }
            for (k, v) in pairs {
                c.set(*k, *v);
            }
            c
        };
        let admin = config(&[]).create().map_err(broker)?;
        let producer = config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "0"),
            ("message.timeout.ms", "60000"),
        ])
        .create()
        .map_err(broker)?;
        let consumer = config(&[
            ("group.id", "sluice-fetch"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
            // A fetch reads what is there: the broker need not wait for more.
            ("fetch.wait.max.ms", "10"),
            ("fetch.error.backoff.ms", "10"),
        ])
        .create()
        .map_err(broker)?;
        let topics = Self {
            admin,
            producer,
            consumer: Mutex::new(consumer),
            partition_counts: Mutex::new(std::collections::HashMap::new()),
            embedded: None,
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
        // Stop fetching from it (the fetch consumer stays assigned).
        let _ = self.consumer().unassign();
        if let Err(e) = block_on(self.admin.delete_topics(&[topic], &Self::options())) {
            tracing::warn!(topic, error = %e, "cannot delete topic");
        }
    }

    fn exists(&self, topic: &str) -> bool {
        self.partitions(topic).is_some()
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
            .map(|t| t.name().to_string())
            .filter(|n| !n.starts_with("__"))
            .collect();
        names.sort();
        names
    }

    fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Arc<[u8]>>,
        value: Option<Arc<[u8]>>,
        timestamp: i64,
        headers: Vec<(String, Option<Arc<[u8]>>)>,
    ) -> Result<(i32, i64), TopicError> {
        let partition = match (partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => {
                let n = self
                    .partitions(topic)
                    .ok_or_else(|| TopicError::UnknownTopic(topic.to_string()))?;
                murmur2_partition(k, n)
            }
            (None, None) => 0,
        };
        let mut hs = OwnedHeaders::new();
        for (k, v) in &headers {
            hs = hs.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .timestamp(timestamp)
            .headers(hs);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = value.as_deref() {
            record = record.payload(v);
        }
        let _done = Timed("produce", topic, Instant::now());
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| broker(e))?;
        match block_on(delivery) {
            Ok(Ok(d)) => Ok((d.partition, d.offset)),
            Ok(Err((e, _))) => Err(broker(e)),
            Err(_) => Err(TopicError::Broker("the producer shut down".into())),
        }
    }

    fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Record>, TopicError> {
        let _done = Timed("fetch", topic, Instant::now());
        let consumer = self.consumer();
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, FETCH_TIMEOUT)
            .map_err(broker)?;
        if offset >= high || max == 0 {
            return Ok(Vec::new());
        }
        let start = offset.max(low);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(broker)?;
        consumer.assign(&tpl).map_err(broker)?;
        let mut out = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while out.len() < max && Instant::now() < deadline {
            // The consumer's position skips transaction markers: done once
            // it reaches the high watermark of when the fetch began.
            let position = consumer
                .position()
                .ok()
                .and_then(|tpl| tpl.find_partition(topic, partition).map(|p| p.offset()))
                .and_then(|o| match o {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            if position.is_some_and(|p| p >= high) {
                break;
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(e)) => return Err(broker(e)),
                Some(Ok(m)) => {
                    if m.topic() != topic || m.partition() != partition || m.offset() < start {
                        continue;
                    }
                    let headers = m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .map(|h| (h.key.to_string(), h.value.map(Arc::from)))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        key: m.key().map(Arc::from),
                        value: m.payload().map(Arc::from),
                        timestamp: m.timestamp().to_millis().unwrap_or(0),
                        headers,
                        partition,
                        offset: m.offset(),
                    });
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, TopicError> {
        let (_, high) = self
            .consumer()
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(broker)?;
        Ok(high)
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

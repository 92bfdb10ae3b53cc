//! The harness's side of the Kafka broker: topics, loading input, and
//! watching consumer groups and output topics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::data::Rec;
use crate::Fallible;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Broker {
    pub bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
    meta: BaseConsumer,
}

impl Broker {
    pub fn connect(bootstrap: &str) -> Fallible<Self> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
        let meta = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "sluice-bench-meta")
            .create()?;
        Ok(Broker {
            bootstrap: bootstrap.to_string(),
            admin,
            meta,
        })
    }

    /// Create a topic (deleting an old one of the name first). Output
    /// topics are stamped by the broker (`LogAppendTime`), so their last
    /// record tells when it was written.
    pub fn create_topic(&self, name: &str, partitions: i32, append_time: bool) -> Fallible<()> {
        self.delete_topics(&[name])?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        if append_time {
            topic = topic.set("message.timestamp.type", "LogAppendTime");
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let results = futures::executor::block_on(
                self.admin.create_topics([&topic], &AdminOptions::new()),
            )?;
            match results.into_iter().next() {
                Some(Ok(_)) => break,
                // A deleted topic of the same name may still be going away.
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists)))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Some(Err((t, e))) => return Err(format!("cannot create topic {t}: {e}").into()),
                None => return Err(format!("no answer creating topic {name}").into()),
            }
        }
        // Wait until every partition has a leader.
        while self.partitions(name)? != partitions as usize {
            if Instant::now() > deadline {
                return Err(format!("topic {name} did not get its partitions").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn delete_topics(&self, names: &[&str]) -> Fallible<()> {
        let existing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.partitions(n).unwrap_or(0) > 0)
            .collect();
        if existing.is_empty() {
            return Ok(());
        }
        futures::executor::block_on(self.admin.delete_topics(&existing, &AdminOptions::new()))?;
        let deadline = Instant::now() + TIMEOUT;
        while existing.iter().any(|n| self.partitions(n).unwrap_or(0) > 0) {
            if Instant::now() > deadline {
                return Err(format!("topics {existing:?} were not deleted").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Topics whose names start with `prefix`.
    pub fn topics_with_prefix(&self, prefix: &str) -> Fallible<Vec<String>> {
        let md = self.meta.fetch_metadata(None, TIMEOUT)?;
        Ok(md
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    /// Partitions of a topic with a leader (0 when it does not exist).
    pub fn partitions(&self, topic: &str) -> Fallible<usize> {
        let md = self.meta.fetch_metadata(Some(topic), TIMEOUT)?;
        Ok(md
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().iter().filter(|p| p.leader() >= 0).count())
            .unwrap_or(0))
    }

    /// The next offset of every partition.
    pub fn end_offsets(&self, topic: &str) -> Fallible<Vec<i64>> {
        (0..self.partitions(topic)? as i32)
            .map(|p| Ok(self.meta.fetch_watermarks(topic, p, TIMEOUT)?.1))
            .collect()
    }

    /// Records in a topic (end minus start offsets).
    pub fn count(&self, topic: &str) -> Fallible<i64> {
        let mut n = 0;
        for p in 0..self.partitions(topic)? as i32 {
            let (lo, hi) = self.meta.fetch_watermarks(topic, p, TIMEOUT)?;
            n += hi - lo;
        }
        Ok(n)
    }

    /// Records ever written to a topic (the sum of its end offsets; Kafka
    /// Streams deletes what it has read from its repartition topics).
    pub fn written(&self, topic: &str) -> Fallible<u64> {
        Ok(self.end_offsets(topic)?.iter().sum::<i64>() as u64)
    }

    /// Produce records (partitioned by key as Java's producer does), as fast
    /// as the broker takes them; returns how many.
    pub fn produce(&self, topic: &str, records: impl Iterator<Item = Rec>) -> Fallible<u64> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create()?;
        let mut n = 0;
        for (key, value, ts) in records {
            let mut record = BaseRecord::to(topic).payload(&value).timestamp(ts);
            if !key.is_empty() {
                record = record.key(&key);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(format!("cannot produce to {topic}: {e}").into()),
                }
            }
            n += 1;
            if n % 10_000 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
        producer.flush(Duration::from_secs(300))?;
        Ok(n)
    }

    /// Consumer groups whose id starts with `prefix`.
    pub fn groups_with_prefix(&self, prefix: &str) -> Fallible<Vec<String>> {
        let list = self.meta.fetch_group_list(None, TIMEOUT)?;
        Ok(list
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    /// Whether the groups starting with `prefix` have, between them,
    /// committed every partition of `topics` up to its end.
    pub fn caught_up(&self, prefix: &str, topics: &[String]) -> Fallible<bool> {
        let mut ends = BTreeMap::new();
        for t in topics {
            for (p, end) in self.end_offsets(t)?.into_iter().enumerate() {
                ends.insert((t.clone(), p as i32), end);
            }
        }
        if ends.is_empty() {
            return Ok(false);
        }
        let mut done = BTreeMap::new();
        for group in self.groups_with_prefix(prefix)? {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &self.bootstrap)
                .set("group.id", &group)
                .create()?;
            let mut tpl = TopicPartitionList::new();
            for (t, p) in ends.keys() {
                tpl.add_partition(t, *p);
            }
            for e in consumer.committed_offsets(tpl, TIMEOUT)?.elements() {
                if let Offset::Offset(o) = e.offset() {
                    let k = (e.topic().to_string(), e.partition());
                    let best = done.entry(k).or_insert(o);
                    *best = (*best).max(o);
                }
            }
        }
        Ok(ends
            .iter()
            .all(|(k, end)| *end == 0 || done.get(k).is_some_and(|o| o >= end)))
    }
}

/// The consumer groups of one processor (their ids start with its tag),
/// watched while it runs: how far they have committed.
pub struct Groups<'a> {
    broker: &'a Broker,
    prefix: String,
    consumers: BTreeMap<String, BaseConsumer>,
}

impl<'a> Groups<'a> {
    pub fn new(broker: &'a Broker, prefix: &str) -> Self {
        Groups {
            broker,
            prefix: prefix.to_string(),
            consumers: BTreeMap::new(),
        }
    }

    /// Look for groups that appeared since the last call.
    pub fn refresh(&mut self) -> Fallible<()> {
        for group in self.broker.groups_with_prefix(&self.prefix)? {
            if !self.consumers.contains_key(&group) {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &self.broker.bootstrap)
                    .set("group.id", &group)
                    .create()?;
                self.consumers.insert(group, consumer);
            }
        }
        Ok(())
    }

    /// The highest offset any of the groups has committed on each of
    /// `partitions` (absent: none committed).
    pub fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Fallible<BTreeMap<(String, i32), i64>> {
        let mut done = BTreeMap::new();
        if partitions.is_empty() {
            return Ok(done);
        }
        for consumer in self.consumers.values() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in partitions {
                tpl.add_partition(t, *p);
            }
            for e in consumer.committed_offsets(tpl, TIMEOUT)?.elements() {
                if let Offset::Offset(o) = e.offset() {
                    let best = done
                        .entry((e.topic().to_string(), e.partition()))
                        .or_insert(o);
                    *best = (*best).max(o);
                }
            }
        }
        Ok(done)
    }
}

/// What a processor wrote to its output topic, read whole after the run.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub records: u64,
    /// Broker timestamps (`LogAppendTime`) of the first and last record.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Order-independent digest of every (key, value) written.
    pub all: u64,
    /// Digest of the latest value of each key (tombstones remove the key)
    /// and the number of keys left: a table's final state.
    pub latest: u64,
    pub keys: u64,
}

impl Output {
    /// The digest to compare between engines: the final state for a table,
    /// every record for a stream.
    pub fn digest(&self, table: bool) -> String {
        if table {
            format!("{:016x}/{}", self.latest, self.keys)
        } else {
            format!("{:016x}/{}", self.all, self.records)
        }
    }
}

fn hash(key: &[u8], value: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

/// A JSON value written with its object fields sorted, so that two writers
/// that order fields differently give the same text; other bytes as they
/// are (lossily as UTF-8).
pub fn canonical(bytes: &[u8]) -> String {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut fields: Vec<_> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(fields.into_iter().collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sorted).collect())
            }
            v => v,
        }
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => sorted(v).to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Read `topic` whole (it must be quiet): counts, first and last broker
/// timestamps, digests of every record and of the latest value per key.
pub fn read_output(broker: &Broker, topic: &str) -> Fallible<Output> {
    let ends = broker.end_offsets(topic)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "sluice-bench-output")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut open = 0;
    for (p, end) in ends.iter().enumerate() {
        if *end > 0 {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
            open += 1;
        }
    }
    let mut out = Output::default();
    if open == 0 {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let mut latest: BTreeMap<Vec<u8>, Option<u64>> = BTreeMap::new();
    let mut finished = std::collections::BTreeSet::new();
    while finished.len() < open {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                let key = m.key().unwrap_or_default().to_vec();
                let h = m.payload().map(|v| hash(&key, &canonical(v)));
                out.records += 1;
                out.all = out.all.wrapping_add(h.unwrap_or_else(|| hash(&key, "")));
                let ts = m.timestamp().to_millis();
                out.first_ms = match (out.first_ms, ts) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                out.last_ms = out.last_ms.max(ts);
                latest.insert(key, h);
                if m.offset() + 1 >= ends[m.partition() as usize] {
                    finished.insert(m.partition());
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(format!("no records from {topic} for 10 s").into()),
        }
    }
    for h in latest.values().flatten() {
        out.latest = out.latest.wrapping_add(*h);
        out.keys += 1;
    }
    Ok(out)
}

/// Read a topic from the beginning to its current end: the ceiling for any
/// engine consuming it with librdkafka. Returns (records, value bytes).
pub fn consume_all(bootstrap: &str, topic: &str) -> Fallible<(u64, u64)> {
    let broker = Broker::connect(bootstrap)?;
    let ends = broker.end_offsets(topic)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut open = 0;
    for (p, end) in ends.iter().enumerate() {
        if *end > 0 {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
            open += 1;
        }
    }
    consumer.assign(&tpl)?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut finished = std::collections::BTreeSet::new();
    while finished.len() < open {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
                if m.offset() + 1 >= ends[m.partition() as usize] {
                    finished.insert(m.partition());
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(format!("no records from {topic} for 10 s").into()),
        }
    }
    Ok((records, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_fields_at_every_depth() {
        assert_eq!(
            canonical(br#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":"s"}}"#),
            r#"{"a":{"c":"s","d":[{"x":2,"y":1}]},"b":1}"#
        );
        assert_eq!(
            canonical(br#"{"A":1, "B":2}"#),
            canonical(br#"{"B":2,"A":1}"#)
        );
        assert_eq!(canonical(b"not json"), "not json");
    }

    #[test]
    fn digests_compare_tables_by_final_state_and_streams_by_records() {
        let out = Output {
            records: 5,
            all: 0xab,
            latest: 0xcd,
            keys: 2,
            ..Default::default()
        };
        assert_eq!(out.digest(true), "00000000000000cd/2");
        assert_eq!(out.digest(false), "00000000000000ab/5");
    }
}

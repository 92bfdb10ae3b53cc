//! The topic abstraction the runtime reads and writes through.
//!
//! A topic has a fixed number of partitions; each partition is an append-only
//! log of [`Record`]s with dense offsets from 0. Keys and values are opaque
//! bytes (encoded by a format); `None` is a null key or a tombstone value.
//! Keyed records go to the partition their key hashes to, so equal keys share a
//! partition; records without a key go to partition 0 unless one is given.

use std::sync::Arc;
use std::time::Duration;

/// One record of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub key: Option<Arc<[u8]>>,
    pub value: Option<Arc<[u8]>>,
    /// Milliseconds since the epoch (the Kafka record timestamp: ROWTIME).
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Arc<[u8]>>)>,
    pub partition: i32,
    pub offset: i64,
}

/// A record to be written: where it goes and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutRecord {
    pub topic: String,
    /// None: by key hash (partition 0 without a key).
    pub partition: Option<i32>,
    pub key: Option<Arc<[u8]>>,
    pub value: Option<Arc<[u8]>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Arc<[u8]>>)>,
}

impl OutRecord {
    /// Its size as a Kafka broker counts it against `max.message.bytes`:
    /// key, value and headers, plus the record batch around a record of its
    /// own (61 bytes of batch header, at most 21 of record framing, and the
    /// framing of each header).
    pub(crate) fn size(&self) -> usize {
        let len = |b: &Option<Arc<[u8]>>| b.as_ref().map_or(0, |b| b.len());
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + len(v) + 10)
            .sum();
        61 + 21 + len(&self.key) + len(&self.value) + headers
    }

    /// A record without headers, partitioned by its key.
    pub(crate) fn new(
        topic: impl Into<String>,
        key: Option<Arc<[u8]>>,
        value: Option<Arc<[u8]>>,
        timestamp: i64,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }
}

/// A consumer group's position in one partition: (topic, partition, next
/// offset).
pub(crate) type GroupOffset = (String, i32, i64);

/// Writes a query's outputs together with its consumer group's offsets in
/// one Kafka transaction: both become visible, or neither.
pub(crate) trait TransactionalWriter: Send {
    /// Commit `records` and the group's `offsets` atomically. On an error
    /// nothing of this call is visible (the transaction is aborted or
    /// fenced) and the call may be repeated.
    fn commit(&mut self, records: &[OutRecord], offsets: &[GroupOffset]) -> Result<(), TopicError>;
}

/// Errors of a topic store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TopicError {
    #[error("Topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("Topic '{topic}' has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("Topic '{topic}' already exists with {existing} partitions, not {requested}")]
    PartitionMismatch {
        topic: String,
        existing: i32,
        requested: i32,
    },
    /// The broker refused or could not be reached.
    #[error("{0}")]
    Broker(String),
    /// A read from a position the partition's log no longer holds: the
    /// records before `earliest` were deleted (retention), or the log ends
    /// at `end`, before `requested` (the topic was re-created).
    #[error(
        "Topic '{topic}' partition {partition} has offsets {earliest} to {end}, not {requested}"
    )]
    OutOfRange {
        topic: String,
        partition: i32,
        requested: i64,
        earliest: i64,
        end: i64,
    },
}

/// How a topic is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicSpec {
    pub partitions: i32,
    /// Replication factor (None: 1).
    pub replicas: Option<i16>,
    pub retention_ms: Option<i64>,
    /// `cleanup.policy=compact` (a table's changelog).
    pub compacted: bool,
}

impl Default for TopicSpec {
    fn default() -> Self {
        Self {
            partitions: 1,
            replicas: None,
            retention_ms: None,
            compacted: false,
        }
    }
}

/// Records on their way to their topics ([`Topics::send_all`]): the
/// caller goes on and asks later whether every one is stored.
pub(crate) struct Sending(Option<Box<dyn Settle>>);

/// What a store's records in flight answer (see [`Sending`]).
pub(crate) trait Settle: Send {
    /// Ok once every record is stored, or the first error (never before
    /// every record of the call is settled, stored or failed); None if a
    /// record is still unacknowledged after waiting up to `limit` (no
    /// limit: waits for the answer, so always Some). Asked until it
    /// answers, then not again.
    fn settled(&mut self, limit: Option<Duration>) -> Option<Result<(), TopicError>>;
}

impl Sending {
    /// Records already stored (or none sent).
    pub(crate) fn done() -> Self {
        Self(None)
    }

    pub(crate) fn pending(settle: Box<dyn Settle>) -> Self {
        Self(Some(settle))
    }

    /// As [`Settle::settled`].
    pub(crate) fn settled(&mut self, limit: Option<Duration>) -> Option<Result<(), TopicError>> {
        match &mut self.0 {
            None => Some(Ok(())),
            Some(settle) => settle.settled(limit),
        }
    }

    /// The same records with their errors mapped by `f` (a store over
    /// another, as [`super::namespaced`]).
    pub(crate) fn map_err(self, f: impl Fn(TopicError) -> TopicError + Send + 'static) -> Self {
        struct Mapped<F>(Box<dyn Settle>, F);
        impl<F: Fn(TopicError) -> TopicError + Send> Settle for Mapped<F> {
            fn settled(&mut self, limit: Option<Duration>) -> Option<Result<(), TopicError>> {
                Some(self.0.settled(limit)?.map_err(&self.1))
            }
        }
        match self.0 {
            None => self,
            Some(settle) => Self::pending(Box::new(Mapped(settle, f))),
        }
    }
}

/// A set of topics: the in-memory store here, Kafka behind the same calls.
pub(crate) trait Topics: Send + Sync {
    /// Create a topic, or return Ok if it exists with the same partition count.
    fn create(&self, topic: &str, partitions: i32) -> Result<(), TopicError>;
    /// Create a topic with replication, retention and cleanup policy (a
    /// store without those settings keeps only the partitions).
    fn create_with(&self, topic: &str, spec: &TopicSpec) -> Result<(), TopicError> {
        self.create(topic, spec.partitions)
    }
    /// Delete a topic and its records; no-op if absent.
    fn delete(&self, topic: &str);
    fn exists(&self, topic: &str) -> bool;
    /// Number of partitions, if the topic exists.
    fn partitions(&self, topic: &str) -> Option<i32>;
    /// All topic names, sorted.
    fn list(&self) -> Vec<String>;
    /// Append a record (its partition None: by key hash). Returns
    /// (partition, offset).
    fn produce(&self, record: OutRecord) -> Result<(i32, i64), TopicError>;
    /// Up to `max` records of one partition from `offset` on.
    fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Record>, TopicError>;
    /// The offset the next record of a partition will get.
    fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, TopicError>;
    /// The largest record (as [`OutRecord::size`] counts it) `topic`
    /// takes, if it has a limit: Kafka's `max.message.bytes`.
    fn max_record_bytes(&self, _topic: &str) -> Option<usize> {
        None
    }
    /// Append records in order; returns once every one is stored.
    fn produce_all(&self, records: &[OutRecord]) -> Result<(), TopicError> {
        for r in records {
            self.produce(r.clone())?;
        }
        Ok(())
    }
    /// Start appending records in order and return at once: the answer
    /// tells when every one is stored (a store without acknowledgements
    /// to wait for stores them first).
    fn send_all(&self, records: &[OutRecord]) -> Result<Sending, TopicError> {
        self.produce_all(records).map(|()| Sending::done())
    }
    /// Append records a client is waiting on (an INSERT, a COPY): as
    /// [`Topics::produce_all`], sent at once rather than batched with the
    /// queries' outputs.
    fn produce_now(&self, records: &[OutRecord]) -> Result<(), TopicError> {
        self.produce_all(records)
    }
    /// Store a consumer group's next offsets.
    fn commit_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<(), TopicError>;
    /// Release what this store holds for a consumer group (a client that
    /// commits its offsets), when the query it belongs to has ended; its
    /// committed offsets stay. A later commit for the group opens it again.
    fn forget_group(&self, _group: &str) {}
    /// A consumer group's committed next offsets of the given partitions
    /// (None where it has none), as a `read_committed` reader sees them.
    fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, TopicError>;
    /// A transactional writer with a stable id (a new one fences the old:
    /// its open transaction is aborted). None: this store has no
    /// transactions, and plain writes are already all-or-nothing with the
    /// process (in-process topics).
    fn transactional_writer(
        &self,
        _transactional_id: &str,
        _group: &str,
    ) -> Result<Option<Box<dyn TransactionalWriter>>, TopicError> {
        Ok(None)
    }
}

/// Kafka's default partitioner hash (murmur2 of the key bytes, as the Java
/// clients compute it), so keyed records land where Java producers put them.
pub(crate) fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 1 {
        return 0;
    }
    let h = murmur2(key) & 0x7fff_ffff;
    (h % partitions as u32) as i32
}

fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The [`Topics`] calls of a test's wrapper that go to the store in its
/// field `$inner` unchanged (the wrapper writes the calls it changes).
#[cfg(test)]
macro_rules! forward_topics {
    ($inner:ident) => {
        fn create(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
            self.$inner.create(topic, partitions)
        }
        fn delete(&self, topic: &str) {
            self.$inner.delete(topic)
        }
        fn exists(&self, topic: &str) -> bool {
            self.$inner.exists(topic)
        }
        fn partitions(&self, topic: &str) -> Option<i32> {
            self.$inner.partitions(topic)
        }
        fn list(&self) -> Vec<String> {
            self.$inner.list()
        }
        fn produce(&self, record: OutRecord) -> Result<(i32, i64), TopicError> {
            self.$inner.produce(record)
        }
        fn fetch(
            &self,
            topic: &str,
            partition: i32,
            offset: i64,
            max: usize,
        ) -> Result<Vec<Record>, TopicError> {
            self.$inner.fetch(topic, partition, offset, max)
        }
        fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, TopicError> {
            self.$inner.end_offset(topic, partition)
        }
        fn commit_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<(), TopicError> {
            self.$inner.commit_offsets(group, offsets)
        }
        fn committed_offsets(
            &self,
            group: &str,
            partitions: &[(String, i32)],
        ) -> Result<Vec<Option<i64>>, TopicError> {
            self.$inner.committed_offsets(group, partitions)
        }
    };
}
#[cfg(test)]
pub(crate) use forward_topics;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_java_client() {
        // Values from Kafka's own UtilsTest (Utils.murmur2).
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}

//! `Namespaced`: another [`Topics`] seen through a name prefix.
//!
//! Every topic `t` is `prefix + t` underneath, and only the prefixed topics
//! are listed. Several engines (conformance cases, tests) share one Kafka
//! cluster this way without seeing each other's topics.

use std::sync::Arc;

use super::topic::{
    GroupOffset, OutRecord, Record, Sending, TopicError, TopicSpec, Topics, TransactionalWriter,
};

pub(crate) struct Namespaced {
    inner: Arc<dyn Topics>,
    prefix: String,
}

impl Namespaced {
    pub(crate) fn new(inner: Arc<dyn Topics>, prefix: impl Into<String>) -> Self {
        Self {
            inner,
            prefix: prefix.into(),
        }
    }

    fn name(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// Delete every topic of this namespace.
    pub(crate) fn delete_all(&self) {
        for t in self.list() {
            self.delete(&t);
        }
    }
}

/// A transactional writer whose topics are prefixed.
struct NamespacedWriter {
    inner: Box<dyn TransactionalWriter>,
    prefix: String,
}

impl TransactionalWriter for NamespacedWriter {
    fn commit(&mut self, records: &[OutRecord], offsets: &[GroupOffset]) -> Result<(), TopicError> {
        self.inner
            .commit(
                &prefixed_records(&self.prefix, records),
                &prefixed_offsets(&self.prefix, offsets),
            )
            .map_err(|e| unprefix(e, &self.prefix))
    }
}

fn prefixed_records(prefix: &str, records: &[OutRecord]) -> Vec<OutRecord> {
    records
        .iter()
        .map(|r| OutRecord {
            topic: format!("{prefix}{}", r.topic),
            ..r.clone()
        })
        .collect()
}

fn prefixed_offsets(prefix: &str, offsets: &[GroupOffset]) -> Vec<GroupOffset> {
    offsets
        .iter()
        .map(|(t, p, o)| (format!("{prefix}{t}"), *p, *o))
        .collect()
}

fn unprefix(e: TopicError, prefix: &str) -> TopicError {
    let strip = |t: String| t.strip_prefix(prefix).map(str::to_string).unwrap_or(t);
    match e {
        TopicError::UnknownTopic(t) => TopicError::UnknownTopic(strip(t)),
        TopicError::UnknownPartition { topic, partition } => TopicError::UnknownPartition {
            topic: strip(topic),
            partition,
        },
        TopicError::PartitionMismatch {
            topic,
            existing,
            requested,
        } => TopicError::PartitionMismatch {
            topic: strip(topic),
            existing,
            requested,
        },
        TopicError::Broker(m) => TopicError::Broker(m),
        TopicError::OutOfRange {
            topic,
            partition,
            requested,
            earliest,
            end,
        } => TopicError::OutOfRange {
            topic: strip(topic),
            partition,
            requested,
            earliest,
            end,
        },
    }
}

impl Topics for Namespaced {
    fn create(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        self.inner
            .create(&self.name(topic), partitions)
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn create_with(&self, topic: &str, spec: &TopicSpec) -> Result<(), TopicError> {
        self.inner
            .create_with(&self.name(topic), spec)
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn delete(&self, topic: &str) {
        self.inner.delete(&self.name(topic))
    }

    fn exists(&self, topic: &str) -> bool {
        self.inner.exists(&self.name(topic))
    }

    fn partitions(&self, topic: &str) -> Option<i32> {
        self.inner.partitions(&self.name(topic))
    }

    fn list(&self) -> Vec<String> {
        self.inner
            .list()
            .into_iter()
            .filter_map(|t| t.strip_prefix(&self.prefix).map(str::to_string))
            .collect()
    }

    fn produce(&self, record: OutRecord) -> Result<(i32, i64), TopicError> {
        let topic = self.name(&record.topic);
        self.inner
            .produce(OutRecord { topic, ..record })
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Record>, TopicError> {
        self.inner
            .fetch(&self.name(topic), partition, offset, max)
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, TopicError> {
        self.inner
            .end_offset(&self.name(topic), partition)
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn max_record_bytes(&self, topic: &str) -> Option<usize> {
        self.inner.max_record_bytes(&self.name(topic))
    }

    fn produce_all(&self, records: &[OutRecord]) -> Result<(), TopicError> {
        self.inner
            .produce_all(&prefixed_records(&self.prefix, records))
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn send_all(&self, records: &[OutRecord]) -> Result<Sending, TopicError> {
        let prefix = self.prefix.clone();
        self.inner
            .send_all(&prefixed_records(&self.prefix, records))
            .map(|sending| sending.map_err(move |e| unprefix(e, &prefix)))
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn produce_now(&self, records: &[OutRecord]) -> Result<(), TopicError> {
        self.inner
            .produce_now(&prefixed_records(&self.prefix, records))
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn commit_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<(), TopicError> {
        self.inner
            .commit_offsets(&self.name(group), &prefixed_offsets(&self.prefix, offsets))
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn forget_group(&self, group: &str) {
        self.inner.forget_group(&self.name(group))
    }

    fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, TopicError> {
        let partitions: Vec<(String, i32)> =
            partitions.iter().map(|(t, p)| (self.name(t), *p)).collect();
        self.inner
            .committed_offsets(&self.name(group), &partitions)
            .map_err(|e| unprefix(e, &self.prefix))
    }

    fn transactional_writer(
        &self,
        transactional_id: &str,
        group: &str,
    ) -> Result<Option<Box<dyn TransactionalWriter>>, TopicError> {
        let inner = self
            .inner
            .transactional_writer(&self.name(transactional_id), &self.name(group))?;
        Ok(inner.map(|inner| {
            Box::new(NamespacedWriter {
                inner,
                prefix: self.prefix.clone(),
            }) as Box<dyn TransactionalWriter>
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::MemoryTopics;

    #[test]
    fn names_are_prefixed_and_namespaces_do_not_see_each_other() {
        let inner: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let a = Namespaced::new(inner.clone(), "a-");
        let b = Namespaced::new(inner.clone(), "b-");
        a.create("t", 2).unwrap();
        b.create("t", 1).unwrap();
        a.produce(OutRecord {
            partition: Some(1),
            ..OutRecord::new("t", None, Some(Arc::from(&b"x"[..])), 5)
        })
        .unwrap();
        assert_eq!(inner.list(), vec!["a-t".to_string(), "b-t".to_string()]);
        assert_eq!(a.list(), vec!["t".to_string()]);
        assert_eq!(a.partitions("t"), Some(2));
        assert_eq!(b.partitions("t"), Some(1));
        assert_eq!(a.fetch("t", 1, 0, 10).unwrap().len(), 1);
        assert!(b.fetch("t", 0, 0, 10).unwrap().is_empty());
        match a.fetch("t", 7, 0, 1) {
            Err(TopicError::UnknownPartition { topic, partition }) => {
                assert_eq!((topic.as_str(), partition), ("t", 7))
            }
            other => panic!("expected an unknown partition, got {other:?}"),
        }
        a.delete_all();
        assert_eq!(inner.list(), vec!["b-t".to_string()]);
    }

    #[test]
    fn batches_and_group_offsets_are_prefixed_too() {
        let inner: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        let a = Namespaced::new(inner.clone(), "a-");
        a.create("t", 1).unwrap();
        let record = OutRecord::new("t", None, Some(Arc::from(&b"x"[..])), 9);
        a.produce_all(&[record.clone(), record]).unwrap();
        assert_eq!(inner.end_offset("a-t", 0).unwrap(), 2);
        a.commit_offsets("g", &[("t".into(), 0, 2)]).unwrap();
        let partition = [("t".to_string(), 0)];
        assert_eq!(a.committed_offsets("g", &partition).unwrap(), [Some(2)]);
        let underneath = [("a-t".to_string(), 0)];
        assert_eq!(
            inner.committed_offsets("a-g", &underneath).unwrap(),
            [Some(2)]
        );
        assert_eq!(inner.committed_offsets("g", &underneath).unwrap(), [None]);
        // Memory topics have no transactions: none through the namespace.
        assert!(a.transactional_writer("q", "g").unwrap().is_none());
    }
}

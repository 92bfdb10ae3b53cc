//! `Namespaced`: another [`Topics`] seen through a name prefix.
//!
//! Every topic `t` is `prefix + t` underneath, and only the prefixed topics
//! are listed. Several engines (conformance cases, tests) share one Kafka
//! cluster this way without seeing each other's topics.

use std::sync::Arc;

use super::topic::{Record, TopicError, TopicSpec, Topics};

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

    fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Arc<[u8]>>,
        value: Option<Arc<[u8]>>,
        timestamp: i64,
        headers: Vec<(String, Option<Arc<[u8]>>)>,
    ) -> Result<(i32, i64), TopicError> {
        self.inner
            .produce(&self.name(topic), partition, key, value, timestamp, headers)
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
        a.produce("t", Some(1), None, Some(Arc::from(&b"x"[..])), 5, vec![])
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
}

//! In-memory topics: partitions as vectors of records behind one lock.
//!
//! Used by the conformance runner, unit and integration tests, and by
//! `sluice run`. Nothing is kept across restarts.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::topic::{murmur2_partition, GroupOffset, OutRecord, Record, TopicError, Topics};

/// Topics held in memory.
#[derive(Default)]
pub(crate) struct MemoryTopics {
    topics: RwLock<BTreeMap<String, Vec<Vec<Record>>>>,
    /// Committed offsets per (group, topic, partition).
    groups: RwLock<BTreeMap<(String, String, i32), i64>>,
}

impl MemoryTopics {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl Topics for MemoryTopics {
    fn create(&self, topic: &str, partitions: i32) -> Result<(), TopicError> {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        match topics.get(topic) {
            Some(parts) if parts.len() as i32 != partitions => Err(TopicError::PartitionMismatch {
                topic: topic.to_string(),
                existing: parts.len() as i32,
                requested: partitions,
            }),
            Some(_) => Ok(()),
            None => {
                let n = partitions.max(1) as usize;
                topics.insert(topic.to_string(), vec![Vec::new(); n]);
                Ok(())
            }
        }
    }

    fn delete(&self, topic: &str) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        topics.remove(topic);
    }

    fn exists(&self, topic: &str) -> bool {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.contains_key(topic)
    }

    fn partitions(&self, topic: &str) -> Option<i32> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map(|p| p.len() as i32)
    }

    fn list(&self) -> Vec<String> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.keys().cloned().collect()
    }

    fn produce(&self, record: OutRecord) -> Result<(i32, i64), TopicError> {
        let OutRecord {
            topic,
            partition,
            key,
            value,
            timestamp,
            headers,
        } = record;
        let topic = topic.as_str();
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let parts = topics
            .get_mut(topic)
            .ok_or_else(|| TopicError::UnknownTopic(topic.to_string()))?;
        let n = parts.len() as i32;
        let p = match (partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => murmur2_partition(k, n),
            (None, None) => 0,
        };
        let log = parts
            .get_mut(p as usize)
            .filter(|_| p >= 0)
            .ok_or_else(|| TopicError::UnknownPartition {
                topic: topic.to_string(),
                partition: p,
            })?;
        let offset = log.len() as i64;
        log.push(Record {
            key,
            value,
            timestamp,
            headers,
            partition: p,
            offset,
        });
        Ok((p, offset))
    }

    fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Record>, TopicError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let log = partition_log(&topics, topic, partition)?;
        let start = offset.clamp(0, log.len() as i64) as usize;
        let end = start.saturating_add(max).min(log.len());
        Ok(log[start..end].to_vec())
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, TopicError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        Ok(partition_log(&topics, topic, partition)?.len() as i64)
    }

    fn commit_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<(), TopicError> {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        for (t, p, o) in offsets {
            groups.insert((group.to_string(), t.clone(), *p), *o);
        }
        Ok(())
    }

    fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, TopicError> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        Ok(partitions
            .iter()
            .map(|(t, p)| groups.get(&(group.to_string(), t.clone(), *p)).copied())
            .collect())
    }
}

fn partition_log<'a>(
    topics: &'a BTreeMap<String, Vec<Vec<Record>>>,
    topic: &str,
    partition: i32,
) -> Result<&'a Vec<Record>, TopicError> {
    let parts = topics
        .get(topic)
        .ok_or_else(|| TopicError::UnknownTopic(topic.to_string()))?;
    usize::try_from(partition)
        .ok()
        .and_then(|p| parts.get(p))
        .ok_or_else(|| TopicError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn produce_fetch_and_offsets() {
        let t = MemoryTopics::new();
        t.create("a", 2).unwrap();
        assert!(t.create("a", 3).is_err());
        let (p, o) = t
            .produce(OutRecord {
                partition: Some(1),
                ..OutRecord::new("a", None, Some(Arc::from(&b"v"[..])), 7)
            })
            .unwrap();
        assert_eq!((p, o), (1, 0));
        let (_, o2) = t
            .produce(OutRecord {
                partition: Some(1),
                ..OutRecord::new("a", None, None, 8)
            })
            .unwrap();
        assert_eq!(o2, 1);
        let recs = t.fetch("a", 1, 1, 10).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].timestamp, 8);
        assert_eq!(recs[0].value, None);
        assert_eq!(t.end_offset("a", 1).unwrap(), 2);
        assert_eq!(t.end_offset("a", 0).unwrap(), 0);
        assert!(t.fetch("b", 0, 0, 1).is_err());
        assert!(t.fetch("a", 5, 0, 1).is_err());
        assert_eq!(t.list(), vec!["a".to_string()]);
    }
}

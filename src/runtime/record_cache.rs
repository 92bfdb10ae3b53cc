//! ksqlDB's record cache (Kafka Streams' `cache.max.bytes.buffering`):
//! a table's updates of one key between two checkpoints become one output,
//! the last.
//!
//! A table query (an aggregation, a table's projection) emits a change per
//! input record; with the cache on, a key changed several times within a
//! commit interval is written to its sink topic once per interval, with its
//! latest value and time, which is what a reader of the table's changelog
//! needs, at a fraction of the writes. Keys leave the cache in the order
//! they first entered it, at every checkpoint, and the oldest leave early
//! when the cached records pass the byte budget. A stream's records and
//! records without a key are never coalesced. The view pull queries read
//! has every update; a push query over the table reads its topic, so it
//! sees what the topic holds (as in ksqlDB); a push query's own
//! aggregation is not cached.
//!
//! Off (0 bytes) in the engine and the conformance runners, whose expected
//! outputs list every intermediate change; the server defaults to ksqlDB's
//! 10,000,000 bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::connectors::OutRecord;

/// The server's default budget, as ksqlDB's.
pub(crate) const SERVER_DEFAULT_BYTES: u64 = 10_000_000;

/// A table sink's outputs since the last checkpoint, one per key.
#[derive(Debug, Default)]
pub(crate) struct RecordCache {
    max_bytes: usize,
    bytes: usize,
    /// The cached records' keys in the order they entered.
    order: VecDeque<Arc<[u8]>>,
    records: HashMap<Arc<[u8]>, OutRecord>,
}

impl RecordCache {
    /// A cache of at most `max_bytes` of records; 0 is no cache.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            ..Self::default()
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// Take one output: cached under its key (replacing that key's earlier
    /// output), or straight to `out` when it has no key or the cache is off.
    /// Keys over the budget leave for `out`, oldest first.
    pub(crate) fn put(&mut self, record: OutRecord, out: &mut Vec<OutRecord>) {
        let key = match (&record.key, self.enabled()) {
            (Some(key), true) => key.clone(),
            _ => {
                out.push(record);
                return;
            }
        };
        let size = record.size();
        match self.records.get_mut(&key) {
            Some(old) => {
                self.bytes = self.bytes - old.size() + size;
                *old = record;
            }
            None => {
                self.bytes += size;
                self.order.push_back(key.clone());
                self.records.insert(key, record);
            }
        }
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(r) = self.records.remove(&oldest) {
                self.bytes -= r.size();
                out.push(r);
            }
        }
    }

    /// Every cached output to `out`, in the order their keys entered.
    pub(crate) fn drain(&mut self, out: &mut Vec<OutRecord>) {
        for key in self.order.drain(..) {
            if let Some(r) = self.records.remove(&key) {
                out.push(r);
            }
        }
        self.bytes = 0;
    }

    /// Forget what is cached (a rewind to the last checkpoint).
    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.records.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&str>, value: &str, ts: i64) -> OutRecord {
        OutRecord::new(
            "t",
            key.map(|k| Arc::from(k.as_bytes())),
            Some(Arc::from(value.as_bytes())),
            ts,
        )
    }

    fn shown(out: &[OutRecord]) -> Vec<(Option<String>, String, i64)> {
        out.iter()
            .map(|r| {
                (
                    r.key
                        .as_ref()
                        .map(|k| String::from_utf8_lossy(k).to_string()),
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string(),
                    r.timestamp,
                )
            })
            .collect()
    }

    #[test]
    fn updates_of_a_key_become_its_last_in_first_seen_order() {
        let mut cache = RecordCache::new(1 << 20);
        let mut out = Vec::new();
        cache.put(record(Some("a"), "1", 10), &mut out);
        cache.put(record(Some("b"), "1", 11), &mut out);
        cache.put(record(None, "x", 12), &mut out);
        cache.put(record(Some("a"), "2", 13), &mut out);
        assert_eq!(shown(&out), [(None, "x".into(), 12)]);
        cache.drain(&mut out);
        assert_eq!(
            shown(&out),
            [
                (None, "x".into(), 12),
                (Some("a".into()), "2".into(), 13),
                (Some("b".into()), "1".into(), 11)
            ]
        );
        cache.drain(&mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn the_oldest_keys_leave_early_past_the_budget() {
        let one = record(Some("a"), "1", 0).size();
        let mut cache = RecordCache::new(2 * one);
        let mut out = Vec::new();
        cache.put(record(Some("a"), "1", 1), &mut out);
        cache.put(record(Some("b"), "1", 2), &mut out);
        cache.put(record(Some("a"), "2", 3), &mut out);
        assert!(out.is_empty());
        cache.put(record(Some("c"), "1", 4), &mut out);
        assert_eq!(shown(&out), [(Some("a".into()), "2".into(), 3)]);
        cache.drain(&mut out);
        assert_eq!(
            shown(&out)[1..],
            [
                (Some("b".into()), "1".into(), 2),
                (Some("c".into()), "1".into(), 4)
            ]
        );
    }

    #[test]
    fn off_passes_everything_through() {
        let mut cache = RecordCache::new(0);
        let mut out = Vec::new();
        cache.put(record(Some("a"), "1", 1), &mut out);
        cache.put(record(Some("a"), "2", 2), &mut out);
        assert_eq!(out.len(), 2);
    }
}

//! The processing log: every record a query reads and does not carry
//! through is accounted for here, with where it was and why.
//!
//! Two kinds of entry, as ksqlDB's processing log has them:
//! - **input**: a source record that cannot be decoded, or has no valid
//!   time: its topic, partition and offset, and the reason;
//! - **output**: a result that cannot be written: larger than its sink
//!   topic takes (`max.message.bytes`), or without a valid time; its topic,
//!   its size and the reason.
//!
//! Entries are JSON records on the log topic (`sluice_processing_log` by
//! default), keyed by query id. They are queued with the query's outputs and
//! written with them, in the same checkpoint (in the same transaction for an
//! exactly-once query), so a record is either processed or logged, never
//! neither; a crash before the checkpoint processes and logs it again. With
//! the log turned off (`ksql.logging.processing.topic.auto.create=false`)
//! entries go to the server log only. Either way each is counted in the
//! query's metrics (`DESCRIBE ... EXTENDED`) and logged at WARN once.

use std::sync::Arc;

use crate::connectors::OutRecord;

/// Why a record was not carried through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    /// A source record that was skipped.
    Input {
        topic: &'a str,
        partition: i32,
        offset: i64,
        reason: &'a str,
    },
    /// A result that was not written to its sink topic.
    Output {
        topic: &'a str,
        bytes: usize,
        reason: &'a str,
    },
}

/// A query's processing log: entries queued until its next checkpoint.
#[derive(Debug)]
pub(crate) struct ProcessingLog {
    query_id: String,
    /// The log topic; None: entries go to the server log only.
    topic: Option<String>,
    queued: Vec<OutRecord>,
}

impl ProcessingLog {
    pub(crate) fn new(query_id: &str, topic: Option<String>) -> Self {
        Self {
            query_id: query_id.to_string(),
            topic,
            queued: Vec::new(),
        }
    }

    /// The log topic, if the log is written to one.
    pub(crate) fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// Log one entry: to the server log now, to the log topic with the next
    /// checkpoint.
    pub(crate) fn record(&mut self, entry: Entry<'_>, now_ms: i64) {
        let query_id = &self.query_id;
        let json = match entry {
            Entry::Input {
                topic,
                partition,
                offset,
                reason,
            } => {
                tracing::warn!(query_id = %query_id, topic, partition, offset, reason, "skipping an input record");
                serde_json::json!({
                    "type": "input",
                    "query_id": query_id,
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "reason": reason,
                })
            }
            Entry::Output {
                topic,
                bytes,
                reason,
            } => {
                tracing::warn!(query_id = %query_id, topic, bytes, reason, "dropping an output record");
                serde_json::json!({
                    "type": "output",
                    "query_id": query_id,
                    "topic": topic,
                    "bytes": bytes,
                    "reason": reason,
                })
            }
        };
        if let Some(log) = &self.topic {
            self.queued.push(OutRecord::new(
                log.clone(),
                Some(Arc::from(self.query_id.as_bytes())),
                Some(Arc::from(json.to_string().into_bytes())),
                now_ms,
            ));
        }
    }

    /// The entries queued since the last call, to be written.
    pub(crate) fn take(&mut self) -> Vec<OutRecord> {
        std::mem::take(&mut self.queued)
    }

    /// Forget the queued entries (the records are processed again).
    pub(crate) fn clear(&mut self) {
        self.queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(records: &[OutRecord]) -> Vec<serde_json::Value> {
        records
            .iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().expect("a value")).expect("JSON"))
            .collect()
    }

    #[test]
    fn entries_say_what_where_and_why() {
        let mut log = ProcessingLog::new("CSAS_X_0", Some("log".into()));
        log.record(
            Entry::Input {
                topic: "in",
                partition: 2,
                offset: 41,
                reason: "bad JSON",
            },
            7,
        );
        log.record(
            Entry::Output {
                topic: "OUT",
                bytes: 2_000_000,
                reason: "too large",
            },
            8,
        );
        let queued = log.take();
        assert_eq!(queued.len(), 2);
        assert!(queued.iter().all(|r| r.topic == "log"));
        assert_eq!(queued[0].key.as_deref(), Some(&b"CSAS_X_0"[..]));
        assert_eq!(queued[1].timestamp, 8);
        assert_eq!(
            values(&queued),
            vec![
                serde_json::json!({"type": "input", "query_id": "CSAS_X_0", "topic": "in",
                    "partition": 2, "offset": 41, "reason": "bad JSON"}),
                serde_json::json!({"type": "output", "query_id": "CSAS_X_0", "topic": "OUT",
                    "bytes": 2_000_000, "reason": "too large"}),
            ]
        );
        assert!(log.take().is_empty());
    }

    #[test]
    fn a_log_without_a_topic_queues_nothing() {
        let mut log = ProcessingLog::new("q", None);
        log.record(
            Entry::Input {
                topic: "in",
                partition: 0,
                offset: 0,
                reason: "x",
            },
            0,
        );
        assert!(log.take().is_empty());
    }
}

//! A checkpoint in a server's loop does not wait for its outputs'
//! acknowledgements: the query pauses, the loop goes on, and a later
//! round commits the checkpoint once Kafka has the outputs, or rewinds
//! the query if it never gets them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::tests::values;
use super::{Engine, EngineConfig};
use crate::connectors::memory::MemoryTopics;
use crate::connectors::{GroupOffset, OutRecord, Record, Sending, Settle, TopicError, Topics};

const HOLD: u8 = 0;
const ACK: u8 = 1;
const FAIL: u8 = 2;

/// In-memory topics whose queries' outputs are written at once and
/// acknowledged when the test says (or fail then).
#[derive(Default)]
struct HeldTopics {
    inner: MemoryTopics,
    acks: Arc<AtomicU8>,
}

struct Held(Arc<AtomicU8>);

impl Settle for Held {
    /// Only a caller that runs until idle waits (no limit), and the test
    /// acknowledges before it does.
    fn settled(&mut self, limit: Option<Duration>) -> Option<Result<(), TopicError>> {
        match self.0.load(Ordering::SeqCst) {
            HOLD if limit.is_none() => panic!("waited for acknowledgements the test holds back"),
            HOLD => None,
            ACK => Some(Ok(())),
            _ => Some(Err(TopicError::Broker("injected: not acknowledged".into()))),
        }
    }
}

impl Topics for HeldTopics {
    crate::connectors::forward_topics!(inner);

    fn send_all(&self, records: &[OutRecord]) -> Result<Sending, TopicError> {
        self.inner.produce_all(records)?;
        Ok(Sending::pending(Box::new(Held(self.acks.clone()))))
    }
}

/// A round of the server's loop, after the checkpoint gap has passed.
fn round(e: &mut Engine) -> usize {
    let gap = Duration::from_millis(1);
    std::thread::sleep(2 * gap);
    e.run_once_spaced(gap).unwrap()
}

#[test]
fn a_checkpoint_commits_once_its_outputs_are_acknowledged_and_rewinds_if_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    let topics = Arc::new(HeldTopics::default());
    let open = || {
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: BTreeMap::new(),
        };
        Engine::open_with_topics(config, topics.clone()).unwrap()
    };
    let mut e = open();
    e.execute(
        "SET 'commit.interval.ms'='3600000';
         CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
         CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;
         INSERT INTO s (id, v) VALUES (1, 1);
         INSERT INTO s (id, v) VALUES (1, 2);",
    )
    .unwrap();
    let query = e.catalog().queries().next().unwrap().id.clone();
    let consumer_group = e.consumer_group(&query);
    let group = |topics: &HeldTopics| {
        topics
            .committed_offsets(&consumer_group, &[("s".to_string(), 0)])
            .unwrap()[0]
    };
    let written = |topics: &HeldTopics| topics.end_offset("T", 0).unwrap();

    // Read, processed and checkpointed: the outputs are sent, the
    // checkpoint waits for them, and the query reads nothing meanwhile.
    assert_eq!(round(&mut e), 2);
    assert!(e.settling());
    assert_eq!(written(&topics), 2);
    assert_eq!(group(&topics), None);
    e.execute("INSERT INTO s (id, v) VALUES (1, 3);").unwrap();
    assert_eq!(round(&mut e), 0);
    assert_eq!(group(&topics), None);

    // Acknowledged: the next round commits the checkpoint and goes on.
    topics.acks.store(ACK, Ordering::SeqCst);
    assert_eq!(round(&mut e), 1);
    assert!(!e.settling());
    assert_eq!(group(&topics), Some(3));

    // Never acknowledged: the query rewinds to that checkpoint and reads
    // the record again; its output comes twice (at least once), its state
    // counts the record once.
    topics.acks.store(HOLD, Ordering::SeqCst);
    e.execute("INSERT INTO s (id, v) VALUES (1, 4);").unwrap();
    assert_eq!(round(&mut e), 1);
    assert!(e.settling());
    topics.acks.store(FAIL, Ordering::SeqCst);
    assert_eq!(round(&mut e), 0);
    assert!(!e.settling());
    topics.acks.store(ACK, Ordering::SeqCst);
    assert_eq!(round(&mut e), 1);
    assert_eq!(group(&topics), Some(4));
    assert_eq!(
        values(&mut e, "T"),
        [
            r#"{"N":1}"#,
            r#"{"N":2}"#,
            r#"{"N":3}"#,
            r#"{"N":4}"#,
            r#"{"N":4}"#
        ]
    );

    // A restart resumes from the committed checkpoint.
    drop(e);
    let mut e = open();
    e.execute("INSERT INTO s (id, v) VALUES (1, 5);").unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(values(&mut e, "T").last().unwrap(), r#"{"N":5}"#);
}

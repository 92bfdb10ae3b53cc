//! `KafkaTopics` against a real broker: the one at `SLUICE_TEST_KAFKA`
//! (`scripts/test.sh` starts one); without it, one is started with
//! `scripts/kafka.sh` and stopped when the test process ends.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::KafkaTopics;
use crate::connectors::topic::{OutRecord, Record, TopicError, Topics};

fn broker() -> &'static str {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER.get_or_init(|| {
        if let Ok(b) = std::env::var("SLUICE_TEST_KAFKA") {
            if !b.is_empty() {
                return b;
            }
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("sluice-lib-test-kafka-{port}"));
        let out = Command::new("bash")
            .arg(format!("{root}/scripts/kafka.sh"))
            .args(["start", "--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "cannot start a Kafka broker with scripts/kafka.sh:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {root}/scripts/kafka.sh stop --port {port} --dir {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        let status = Command::new("bash")
            .args([
                "-c",
                &format!("setsid bash -c '{watchdog}' </dev/null >/dev/null 2>&1 &"),
            ])
            .status()
            .expect("start the broker's watchdog");
        assert!(status.success(), "cannot start the broker's watchdog");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    })
}

/// A topic name no other test (or earlier run) uses.
fn unique(name: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("kafkaio_{name}_{now}_{}", N.fetch_add(1, Ordering::Relaxed))
}

fn record(topic: &str, partition: i32, value: &str) -> OutRecord {
    OutRecord {
        partition: Some(partition),
        ..OutRecord::new(topic, None, Some(Arc::from(value.as_bytes())), 1_000)
    }
}

fn values(records: &[Record]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|r| {
            let v = r.value.as_deref().unwrap_or_default();
            (r.offset, String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

/// Every record of a partition from `from` on, up to its end.
fn read_all(topics: &KafkaTopics, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let got = topics.fetch(topic, partition, from, 1_000).expect("fetch");
        let Some(last) = got.last() else {
            return all;
        };
        from = last.offset + 1;
        all.extend(values(&got));
    }
}

#[test]
fn a_record_the_broker_refuses_fails_the_call_and_the_others_are_written() {
    let topics = KafkaTopics::connect(broker(), &[]).expect("connect");
    let topic = unique("refused");
    topics.create(&topic, 1).expect("create");
    // The broker's default max.message.bytes is 1 MiB; the producer sends
    // up to 32 MiB, so the broker refuses the large record.
    let large = "x".repeat(1_200_000);
    let mut records: Vec<OutRecord> = (0..5)
        .map(|i| record(&topic, 0, &format!("a{i}")))
        .collect();
    records.push(record(&topic, 0, &large));
    records.extend((0..5).map(|i| record(&topic, 0, &format!("b{i}"))));
    match topics.produce_all(&records) {
        Err(TopicError::Broker(e)) => assert_eq!(
            e,
            "Message production error: MessageSizeTooLarge (Broker: Message size too large)"
        ),
        other => panic!("expected the broker's refusal, got {other:?}"),
    }
    let written: Vec<String> = read_all(&topics, &topic, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        written,
        ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4"]
    );
}

#[test]
fn a_full_local_queue_waits_instead_of_failing() {
    // A local queue of 10 records: a call of 2,000 fills it many times.
    let extra = [("queue.buffering.max.messages".to_string(), "10".to_string())];
    let topics = KafkaTopics::connect(broker(), &extra).expect("connect");
    let topic = unique("queue_full");
    topics.create(&topic, 2).expect("create");
    let records: Vec<OutRecord> = (0..2_000)
        .map(|i| record(&topic, i % 2, &format!("v{i}")))
        .collect();
    topics.produce_all(&records).expect("every record written");
    assert!(topics.queue_full_waits.load(Ordering::Relaxed) > 0);
    for p in 0..2 {
        let want: Vec<(i64, String)> = (0..1_000)
            .map(|o| (o, format!("v{}", 2 * o + i64::from(p))))
            .collect();
        assert_eq!(read_all(&topics, &topic, p), want, "partition {p}");
    }
}

#[test]
fn produce_returns_each_records_partition_and_offset() {
    let topics = KafkaTopics::connect(broker(), &[]).expect("connect");
    let topic = unique("offsets");
    topics.create(&topic, 3).expect("create");
    for (i, want) in [(2, (2, 0)), (2, (2, 1)), (0, (0, 0)), (2, (2, 2))] {
        assert_eq!(
            topics.produce(record(&topic, i, "v")).expect("produce"),
            want
        );
    }
    // A keyed record goes where Java's producer puts it, after the
    // records already there.
    let keyed = OutRecord::new(&topic, Some(Arc::from(&b"21"[..])), None, 5);
    let p = crate::connectors::topic::murmur2_partition(b"21", 3);
    let next = [1, 0, 3][p as usize];
    assert_eq!(topics.produce(keyed).expect("produce"), (p, next));
}

#[test]
fn a_commit_is_seen_by_the_next_read_of_the_groups_offsets() {
    let topics = KafkaTopics::connect(broker(), &[]).expect("connect");
    let topic = unique("commits");
    topics.create(&topic, 2).expect("create");
    let group = unique("group");
    let partitions = [(topic.clone(), 0), (topic.clone(), 1)];
    assert_eq!(
        topics.committed_offsets(&group, &partitions).expect("read"),
        [None, None]
    );
    for n in 1..=20 {
        topics
            .commit_offsets(&group, &[(topic.clone(), 0, n), (topic.clone(), 1, 2 * n)])
            .expect("commit");
    }
    assert_eq!(
        topics.committed_offsets(&group, &partitions).expect("read"),
        [Some(20), Some(40)]
    );
    // Forgotten (its consumer closed after its commits), then read anew.
    topics
        .commit_offsets(&group, &[(topic.clone(), 1, 41)])
        .expect("commit");
    topics.forget_group(&group);
    let again = KafkaTopics::connect(broker(), &[]).expect("connect");
    let mut read = Vec::new();
    for _ in 0..100 {
        read = again.committed_offsets(&group, &partitions).expect("read");
        if read == [Some(20), Some(41)] {
            break;
        }
        // The closing consumer's last commit, on its own thread.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read, [Some(20), Some(41)]);
}

#[test]
fn an_idle_partition_is_not_asked_for_its_end_on_every_fetch() {
    let topics = KafkaTopics::connect(broker(), &[]).expect("connect");
    let topic = unique("idle");
    topics.create(&topic, 2).expect("create");
    topics
        .produce_all(
            &(0..3)
                .map(|i| record(&topic, 0, &format!("v{i}")))
                .collect::<Vec<_>>(),
        )
        .expect("produce");
    // The end as last asked is taken for the whole test.
    topics.readers().set_end_refresh(Duration::from_secs(3_600));
    assert_eq!(topics.fetch(&topic, 0, 0, 100).expect("fetch").len(), 3);
    assert!(topics.fetch(&topic, 0, 3, 100).expect("fetch").is_empty());
    assert!(topics.fetch(&topic, 1, 0, 100).expect("fetch").is_empty());
    let before = topics.readers().counts();
    for _ in 0..20 {
        assert!(topics.fetch(&topic, 0, 3, 100).expect("fetch").is_empty());
        assert!(topics.fetch(&topic, 1, 0, 100).expect("fetch").is_empty());
    }
    assert_eq!(topics.readers().counts(), before);
    // What this client writes is read by the next fetch.
    topics.produce(record(&topic, 1, "w")).expect("produce");
    assert_eq!(
        values(&topics.fetch(&topic, 1, 0, 100).expect("fetch")),
        [(0, "w".to_string())]
    );
    // So is what another client wrote before this one asked for the end.
    let other = KafkaTopics::connect(broker(), &[]).expect("connect");
    other.produce(record(&topic, 0, "x")).expect("produce");
    assert_eq!(topics.end_offset(&topic, 0).expect("end"), 4);
    assert_eq!(
        values(&topics.fetch(&topic, 0, 3, 100).expect("fetch")),
        [(3, "x".to_string())]
    );
}

#[test]
fn two_queries_at_different_offsets_keep_a_reader_each() {
    let topics = KafkaTopics::connect(broker(), &[]).expect("connect");
    let topic = unique("readers");
    topics.create(&topic, 1).expect("create");
    let records: Vec<OutRecord> = (0..200)
        .map(|i| record(&topic, 0, &format!("v{i}")))
        .collect();
    topics.produce_all(&records).expect("produce");
    // A reads 10 records a call and starts first; B reads 25 a call, falls
    // behind, then overtakes A.
    let mut at = [0i64, 0];
    let size = [10, 25];
    let order = [0, 0, 0]
        .into_iter()
        .chain([0, 1].into_iter().cycle().take(80));
    for who in order {
        if at[who] >= 200 {
            continue;
        }
        let got = topics.fetch(&topic, 0, at[who], size[who]).expect("fetch");
        let want: Vec<(i64, String)> = (at[who]..(at[who] + size[who] as i64).min(200))
            .map(|o| (o, format!("v{o}")))
            .collect();
        assert_eq!(values(&got), want, "query {who} from {}", at[who]);
        at[who] += got.len() as i64;
    }
    assert_eq!(at, [200, 200]);
    let counts = topics.readers().counts();
    assert_eq!((counts.readers, counts.assignments), (2, 2));
}

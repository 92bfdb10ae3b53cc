//! Every record is accounted for: processed, or in the processing log with
//! where it was and why; nothing is retried forever.
//!
//! 1,000 good records are interleaved with 100 bad ones (too large for the
//! output topic, not JSON, and of the wrong type) and read by a
//! `CREATE STREAM AS` and a `CREATE TABLE AS`, on the real broker and on
//! the embedded one, through a `sluice server` process. The records are
//! produced and read back with plain rdkafka clients; the table is read
//! with psql.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use common::{broker, unique, Server};

const STATEMENTS: &str = "
CREATE STREAM pv (id INT, payload STRING) WITH (kafka_topic='pv', value_format='JSON', partitions=1);
CREATE STREAM pv_out AS SELECT id, payload FROM pv;
CREATE TABLE pv_count AS SELECT 1 AS k, COUNT(*) AS n FROM pv GROUP BY 1;
";

/// What each input record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Good,
    /// A value of 1.2 MB: read and counted, too large for the output topic
    /// (Kafka's default `max.message.bytes`, 1 MiB).
    Oversized,
    NotJson,
    WrongType,
}

/// 1,100 records: every eleventh is bad, the bad ones cycling through the
/// three kinds.
fn plan() -> Vec<Kind> {
    let bad = [Kind::Oversized, Kind::NotJson, Kind::WrongType];
    let mut kinds = Vec::new();
    let mut b = 0;
    for i in 0..1_100 {
        if i % 11 == 5 {
            kinds.push(bad[b % 3]);
            b += 1;
        } else {
            kinds.push(Kind::Good);
        }
    }
    kinds
}

fn value(kind: Kind, id: usize) -> String {
    match kind {
        Kind::Good => format!(r#"{{"ID": {id}, "PAYLOAD": "p{id}"}}"#),
        Kind::Oversized => format!(r#"{{"ID": {id}, "PAYLOAD": "{}"}}"#, "x".repeat(1_200_000)),
        Kind::NotJson => format!("{{ID: {id}, not json"),
        Kind::WrongType => format!(r#"{{"ID": "id-{id}", "PAYLOAD": "p{id}"}}"#),
    }
}

/// Produce `kinds[from..to]`, numbered by their place in `kinds`.
fn produce(producer: &BaseProducer, topic: &str, kinds: &[Kind], from: usize, to: usize) {
    for (id, kind) in kinds.iter().enumerate().take(to).skip(from) {
        let v = value(*kind, id);
        let mut record: BaseRecord<'_, str, str> =
            BaseRecord::to(topic).payload(v.as_str()).timestamp(1_000);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    // The local queue is full: let it drain.
                    assert!(
                        e.to_string().contains("Queue full"),
                        "cannot send record {id}: {e}"
                    );
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// Every record of a one-partition topic from the start, until `want` are
/// there or a minute has passed: (offset, value).
fn read_topic(bootstrap: &str, topic: &str, want: usize) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("records-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = m.payload().map(|v| String::from_utf8_lossy(v).to_string());
            out.push((m.offset(), v.unwrap_or_default()));
        }
    }
    // Anything beyond `want` that is there already.
    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        let v = m.payload().map(|v| String::from_utf8_lossy(v).to_string());
        out.push((m.offset(), v.unwrap_or_default()));
    }
    out
}

/// Wait until the table counts `want` records (a minute at most).
fn wait_for_count(server: &Server, want: usize) {
    let want = want.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = String::new();
    while count != want && Instant::now() < deadline {
        count = psql(server, "SELECT n FROM pv_count WHERE k = 1;");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count, want, "the table's count");
}

fn psql(server: &Server, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sluice", "-d", "sluice", "-X", "-A", "-t", "-F", "|"])
        .args(["-c", sql])
        .output()
        .expect("run psql (Debian's postgresql-client)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

/// Run the pipeline on `bootstrap` (the server's topic names start with
/// `prefix`) and check that every record is accounted for.
fn every_record_is_accounted_for(server: &Server, bootstrap: &str, prefix: &str) {
    let kinds = plan();
    // In chunks of 110 (4 MB at most), each read before the next is sent:
    // the embedded broker keeps only the last 5 MB of a partition (what a
    // query falls further behind than that is lost, and logged as such).
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.max.bytes", "10000000")
        .create()
        .expect("producer");
    let decodable = |to: usize| {
        kinds[..to]
            .iter()
            .filter(|k| matches!(k, Kind::Good | Kind::Oversized))
            .count()
    };
    for from in (0..kinds.len()).step_by(110) {
        let to = (from + 110).min(kinds.len());
        produce(&producer, &format!("{prefix}pv"), &kinds, from, to);
        wait_for_count(server, decodable(to));
    }
    let good: Vec<usize> = (0..kinds.len())
        .filter(|i| kinds[*i] == Kind::Good)
        .collect();
    let of = |k: Kind| -> BTreeSet<i64> {
        (0..kinds.len())
            .filter(|i| kinds[*i] == k)
            .map(|i| i as i64)
            .collect()
    };
    assert_eq!(good.len(), 1_000);

    // The stream carries every good record, in order, and nothing else.
    let out = read_topic(bootstrap, &format!("{prefix}PV_OUT"), 1_000);
    let ids: Vec<usize> = out
        .iter()
        .map(|(_, v)| {
            let v: serde_json::Value = serde_json::from_str(v).expect("JSON output");
            v["ID"].as_u64().expect("an ID") as usize
        })
        .collect();
    assert_eq!(ids, good);

    // The table counts every record that decodes: the good ones and the
    // oversized ones (their count is small enough to write).
    assert_eq!(decodable(kinds.len()), 1_000 + of(Kind::Oversized).len());
    wait_for_count(server, decodable(kinds.len()));

    // Each query logged each undecodable record with its offset; the stream
    // logged each result too large for its topic.
    let undecodable: BTreeSet<i64> = of(Kind::NotJson)
        .union(&of(Kind::WrongType))
        .copied()
        .collect();
    let entries = 2 * undecodable.len() + of(Kind::Oversized).len();
    let log = read_topic(
        bootstrap,
        &format!("{prefix}sluice_processing_log"),
        entries,
    );
    let log: Vec<serde_json::Value> = log
        .iter()
        .map(|(_, v)| serde_json::from_str(v).expect("a JSON log entry"))
        .collect();
    assert_eq!(log.len(), entries, "{log:#?}");
    for query in ["CSAS_PV_OUT_0", "CTAS_PV_COUNT_1"] {
        let offsets: BTreeSet<i64> = log
            .iter()
            .filter(|e| e["query_id"] == query && e["type"] == "input")
            .map(|e| {
                // Topics by the names the statements give them.
                assert_eq!(e["topic"], "pv");
                assert_eq!(e["partition"], 0);
                e["offset"].as_i64().expect("an offset")
            })
            .collect();
        assert_eq!(offsets, undecodable, "{query}");
    }
    let dropped: Vec<&serde_json::Value> = log.iter().filter(|e| e["type"] == "output").collect();
    assert_eq!(dropped.len(), of(Kind::Oversized).len());
    for e in dropped {
        assert_eq!(e["query_id"], "CSAS_PV_OUT_0");
        assert_eq!(e["topic"], "PV_OUT");
        let bytes = e["bytes"].as_u64().expect("a size");
        assert!(bytes > 1_200_000, "{e}");
        assert_eq!(
            e["reason"],
            format!("the record is {bytes} bytes and topic PV_OUT takes at most 1048588")
        );
    }

    // Nothing waits or failed: both queries are running.
    let states: Vec<String> = psql(server, "SHOW QUERIES;")
        .lines()
        .map(|l| l.split('|').take(2).collect::<Vec<_>>().join("|"))
        .collect();
    assert_eq!(states, ["CSAS_PV_OUT_0|RUNNING", "CTAS_PV_COUNT_1|RUNNING"]);
    // And DESCRIBE counts what was skipped and dropped.
    let described = psql(server, "DESCRIBE pv_out EXTENDED;");
    assert!(
        described.contains(&format!(
            "Records skipped (cannot decode)|{}",
            undecodable.len()
        )),
        "{described}"
    );
    assert!(
        described.contains(&format!(
            "Results dropped (processing log)|{}",
            of(Kind::Oversized).len()
        )),
        "{described}"
    );
}

#[test]
fn every_record_is_accounted_for_on_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let statements = dir.path().join("pipeline.sql");
    std::fs::write(&statements, STATEMENTS).unwrap();
    let server = Server::start_with_config(&format!("statements = '{}'\n", statements.display()));
    let bootstrap = server
        .embedded_kafka
        .clone()
        .expect("the server's embedded broker");
    every_record_is_accounted_for(&server, &bootstrap, "");
}

#[test]
fn every_record_is_accounted_for_on_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let statements = dir.path().join("pipeline.sql");
    std::fs::write(&statements, STATEMENTS).unwrap();
    let prefix = format!("{}_", unique("records"));
    // The input topic takes records of up to 10 MB; the output topics are
    // Sluice's, with the broker's default limit.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("admin");
    let input = format!("{prefix}pv");
    let topic =
        NewTopic::new(&input, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "10485760");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let created = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .expect("create the input topic");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let server = Server::start_with_config(&format!(
        "statements = '{}'\n[kafka]\nbootstrap = '{}'\ntopic_prefix = '{prefix}'\n",
        statements.display(),
        broker()
    ));
    every_record_is_accounted_for(&server, broker(), &prefix);
}

//! Tests against a real Apache Kafka broker.
//!
//! The broker is the one at `SLUICE_TEST_KAFKA` (`host:port`), which
//! `scripts/test.sh` starts; without it, this test binary starts one itself
//! with `scripts/kafka.sh` (installed from Maven Central on first use) and a
//! watchdog stops it when the tests exit. A test that cannot get a broker
//! fails.
//!
//! Records are produced and read back with plain rdkafka clients, not
//! through Sluice, and topic settings are checked through the admin API.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice::{Engine, EngineConfig};

mod common;
use common::{broker, free_port, unique};

/// A broker of a test's own (to stop and restart), stopped when dropped.
struct OwnBroker {
    port: u16,
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl OwnBroker {
    fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("broker dir");
        let mut b = OwnBroker {
            port,
            dir,
            bootstrap: String::new(),
        };
        b.bootstrap = b.kafka_sh("start");
        b
    }

    fn kafka_sh(&self, command: &str) -> String {
        let out = Command::new("bash")
            .arg(format!("{}/scripts/kafka.sh", env!("CARGO_MANIFEST_DIR")))
            .args([command, "--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "kafka.sh {command} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{}/scripts/kafka.sh", env!("CARGO_MANIFEST_DIR")))
            .args(["stop", "--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

fn engine(dir: &std::path::Path) -> Engine {
    Engine::open_on_kafka(
        EngineConfig {
            data_dir: dir.to_path_buf(),
            properties: Default::default(),
        },
        broker(),
    )
    .expect("engine on Kafka")
}

fn produce_to(bootstrap: &str, topic: &str, records: &[(Option<&str>, Option<&str>, i64)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for (k, v, ts) in records {
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic).timestamp(*ts);
        if let Some(k) = k {
            r = r.key(k);
        }
        if let Some(v) = v {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// A record read back: partition, key bytes, value text, time.
type Received = (i32, Option<Vec<u8>>, Option<String>, i64);

/// Every record of a topic, read with an independent consumer until `want`
/// records are there.
fn consume(topic: &str, want: usize) -> Vec<Received> {
    consume_from(broker(), topic, want)
}

fn consume_from(bootstrap: &str, topic: &str, want: usize) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.key().map(|k| k.to_vec()),
                m.payload().map(|v| String::from_utf8_lossy(v).to_string()),
                m.timestamp().to_millis().unwrap_or(-1),
            )),
            Some(Err(e)) => panic!("consume: {e}"),
            None if out.len() >= want => break,
            None => {}
        }
    }
    out
}

fn produce(topic: &str, records: &[(Option<&str>, Option<&str>, i64)]) {
    produce_to(broker(), topic, records)
}

/// Run the engine's queries until `topic` holds `want` records (or time out).
fn run_until(e: &mut Engine, topic: &str, want: usize) {
    run_until_on(broker(), e, topic, want)
}

fn run_until_on(bootstrap: &str, e: &mut Engine, topic: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        e.run_until_idle().expect("run");
        let n: i64 = (0..partitions_on(bootstrap, topic))
            .map(|p| high_watermark_on(bootstrap, topic, p))
            .sum();
        if n as usize >= want || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn partitions(topic: &str) -> i32 {
    partitions_on(broker(), topic)
}

fn partitions_on(bootstrap: &str, topic: &str) -> i32 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("client");
    c.fetch_metadata(Some(topic), Duration::from_secs(10))
        .map(|m| m.topics()[0].partitions().len() as i32)
        .unwrap_or(0)
}

fn high_watermark_on(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("client");
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map(|(_, h)| h)
        .unwrap_or(0)
}

/// The topic's settings as the broker reports them.
fn topic_config(topic: &str) -> BTreeMap<String, String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("admin");
    let resources = [ResourceSpecifier::Topic(topic)];
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let fut = admin.describe_configs(&resources, &options);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt.block_on(fut).expect("describe configs");
    let resource = results
        .into_iter()
        .next()
        .expect("one resource")
        .expect("resource");
    resource
        .entries
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect()
}

fn replication(topic: &str) -> usize {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("client");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()[0].partitions()[0].replicas().len()
}

fn values(records: &[Received]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|(_, k, v, t)| {
            format!(
                "{} {} @{t}",
                k.as_deref()
                    .map(|k| String::from_utf8_lossy(k).to_string())
                    .unwrap_or_else(|| "null".into()),
                v.clone().unwrap_or_else(|| "null".into())
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_filtering_stream_reads_and_writes_kafka_topics() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let input = unique("orders");
    let output = unique("big_orders");
    e.execute(&format!(
        "CREATE STREAM orders (id STRING KEY, amount DOUBLE) \
           WITH (kafka_topic='{input}', value_format='JSON', partitions=2, retention_ms=3600000);
         CREATE STREAM big WITH (kafka_topic='{output}', partitions=3) AS \
           SELECT id, amount FROM orders WHERE amount > 10;"
    ))
    .unwrap();
    produce(
        &input,
        &[
            (Some("a"), Some(r#"{"AMOUNT": 5.0}"#), 1000),
            (Some("b"), Some(r#"{"AMOUNT": 12.5}"#), 2000),
            (Some("c"), Some(r#"{"AMOUNT": 99.0}"#), 3000),
            (Some("d"), Some("not json"), 4000),
        ],
    );
    run_until(&mut e, &output, 2);
    let got = consume(&output, 2);
    assert_eq!(
        values(&got),
        vec![
            r#"b {"AMOUNT":12.5} @2000"#.to_string(),
            r#"c {"AMOUNT":99.0} @3000"#.to_string(),
        ]
    );
    // Keyed records land where the Java clients' murmur2 puts them.
    for (p, k, _, _) in &got {
        let key = k.clone().unwrap_or_default();
        let expected = (murmur2(&key) & 0x7fff_ffff) % 3;
        assert_eq!(*p, expected as i32, "partition of key {key:?}");
    }
    assert_eq!(partitions(&input), 2);
    assert_eq!(partitions(&output), 3);
    assert_eq!(replication(&output), 1);
    let config = topic_config(&input);
    assert_eq!(
        config.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert_eq!(
        config.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );
}

#[test]
fn a_windowed_count_is_written_with_windowed_keys_to_a_compacted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let input = unique("clicks");
    let output = unique("clicks_per_minute");
    e.execute(&format!(
        "CREATE STREAM clicks (user STRING KEY, page STRING) \
           WITH (kafka_topic='{input}', value_format='JSON', partitions=1);
         CREATE TABLE per_minute WITH (kafka_topic='{output}') AS \
           SELECT user, COUNT(*) AS n FROM clicks WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY user;"
    ))
    .unwrap();
    produce(
        &input,
        &[
            (Some("ann"), Some(r#"{"PAGE": "a"}"#), 1_000),
            (Some("ann"), Some(r#"{"PAGE": "b"}"#), 30_000),
            (Some("bob"), Some(r#"{"PAGE": "a"}"#), 40_000),
            (Some("ann"), Some(r#"{"PAGE": "c"}"#), 61_000),
        ],
    );
    run_until(&mut e, &output, 4);
    let got = consume(&output, 4);
    // Time-windowed keys: the key's bytes, then the window start (8 bytes,
    // big-endian), as ksqlDB writes them.
    let shown: Vec<String> = got
        .iter()
        .map(|(_, k, v, t)| {
            let k = k.clone().unwrap_or_default();
            let (user, start) = k.split_at(k.len() - 8);
            let start = i64::from_be_bytes(start.try_into().unwrap());
            format!(
                "{}@{start} {} @{t}",
                String::from_utf8_lossy(user),
                v.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            r#"ann@0 {"N":1} @1000"#,
            r#"ann@0 {"N":2} @30000"#,
            r#"bob@0 {"N":1} @40000"#,
            r#"ann@60000 {"N":1} @61000"#,
        ]
    );
    let config = topic_config(&output);
    assert_eq!(
        config.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
}

#[test]
fn a_stream_table_join_runs_on_kafka_and_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let limits = unique("limits");
    let txns = unique("txns");
    let alerts = unique("alerts");
    {
        let mut e = engine(dir.path());
        e.execute(&format!(
            "CREATE TABLE limits (user_id STRING PRIMARY KEY, threshold DOUBLE) \
               WITH (kafka_topic='{limits}', value_format='JSON', partitions=1);
             CREATE STREAM txns (txn_id STRING KEY, user_id STRING, amount DOUBLE) \
               WITH (kafka_topic='{txns}', value_format='JSON', partitions=1);
             CREATE STREAM alerts WITH (kafka_topic='{alerts}') AS \
               SELECT t.user_id AS user_id, txn_id, amount, threshold \
               FROM txns t JOIN limits l ON t.user_id = l.user_id WHERE amount > threshold;"
        ))
        .unwrap();
        assert_eq!(
            topic_config(&limits)
                .get("cleanup.policy")
                .map(String::as_str),
            Some("compact")
        );
        produce(
            &limits,
            &[(Some("ann"), Some(r#"{"THRESHOLD": 500}"#), 1_000)],
        );
        e.run_until_idle().unwrap();
        produce(
            &txns,
            &[
                (
                    Some("t1"),
                    Some(r#"{"USER_ID": "ann", "AMOUNT": 600}"#),
                    2_000,
                ),
                (
                    Some("t2"),
                    Some(r#"{"USER_ID": "ann", "AMOUNT": 100}"#),
                    3_000,
                ),
            ],
        );
        run_until(&mut e, &alerts, 1);
    }
    // A new engine on the same data directory resumes from its offsets.
    produce(
        &limits,
        &[(Some("ann"), Some(r#"{"THRESHOLD": 1000}"#), 4_000)],
    );
    let mut e = engine(dir.path());
    e.run_until_idle().unwrap();
    produce(
        &txns,
        &[
            (
                Some("t3"),
                Some(r#"{"USER_ID": "ann", "AMOUNT": 700}"#),
                5_000,
            ),
            (
                Some("t4"),
                Some(r#"{"USER_ID": "ann", "AMOUNT": 1500}"#),
                6_000,
            ),
        ],
    );
    run_until(&mut e, &alerts, 2);
    let got = consume(&alerts, 2);
    assert_eq!(
        values(&got),
        vec![
            r#"ann {"TXN_ID":"t1","AMOUNT":600.0,"THRESHOLD":500.0} @2000"#.to_string(),
            r#"ann {"TXN_ID":"t4","AMOUNT":1500.0,"THRESHOLD":1000.0} @6000"#.to_string(),
        ]
    );
}

#[test]
fn a_query_waits_while_the_broker_is_down_and_resumes_without_loss() {
    let broker = OwnBroker::start();
    let b = broker.bootstrap.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::open_on_kafka(
        EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        },
        &b,
    )
    .expect("engine on Kafka");
    e.execute(
        "CREATE STREAM payments (id STRING KEY, amount DOUBLE) \
           WITH (kafka_topic='payments', value_format='JSON', partitions=1);
         CREATE STREAM large AS SELECT id, amount FROM payments WHERE amount > 10;",
    )
    .unwrap();
    produce_to(
        &b,
        "payments",
        &[
            (Some("p1"), Some(r#"{"AMOUNT": 50}"#), 1_000),
            (Some("p2"), Some(r#"{"AMOUNT": 5}"#), 2_000),
            (Some("p3"), Some(r#"{"AMOUNT": 70}"#), 3_000),
        ],
    );
    run_until_on(&b, &mut e, "LARGE", 2);

    broker.kafka_sh("stop");
    // The query cannot reach its topics: it waits, says so, and stays up.
    e.run_once().expect("a round without the broker");
    let status = query_status(&mut e);
    assert!(status.starts_with("WAITING: Kafka: "), "status: {status}");

    assert_eq!(broker.kafka_sh("start"), b);
    produce_to(
        &b,
        "payments",
        &[
            (Some("p4"), Some(r#"{"AMOUNT": 80}"#), 4_000),
            (Some("p5"), Some(r#"{"AMOUNT": 90}"#), 5_000),
        ],
    );
    run_until_on(&b, &mut e, "LARGE", 4);
    let got = consume_from(&b, "LARGE", 4);
    // On failure, say where the records got stuck: the input's end and the
    // query's status.
    let why = format!(
        "payments holds {} records; query status: {}",
        high_watermark_on(&b, "payments", 0),
        query_status(&mut e)
    );
    assert_eq!(
        values(&got),
        vec![
            r#"p1 {"AMOUNT":50.0} @1000"#.to_string(),
            r#"p3 {"AMOUNT":70.0} @3000"#.to_string(),
            r#"p4 {"AMOUNT":80.0} @4000"#.to_string(),
            r#"p5 {"AMOUNT":90.0} @5000"#.to_string(),
        ],
        "{why}"
    );
    assert_eq!(query_status(&mut e), "RUNNING");
}

/// The embedded broker keeps nothing across restarts, so a server restarted
/// on the same data directory starts over: a record produced after the
/// restart is processed (stale offsets would skip it).
#[test]
fn an_embedded_server_restarted_on_its_data_directory_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let statements = dir.path().join("pipeline.sql");
    std::fs::write(&statements, HOT_READINGS).unwrap();
    let data = dir.path().join("data");
    assert_eq!(
        through_embedded_server(
            &data,
            &statements,
            &[
                ("s1", r#"{"CELSIUS": 10}"#),
                ("s2", r#"{"CELSIUS": 35}"#),
                ("s4", r#"{"CELSIUS": 31}"#)
            ],
            2
        ),
        vec![
            ("s2".to_string(), r#"{"CELSIUS":35.0}"#.to_string()),
            ("s4".to_string(), r#"{"CELSIUS":31.0}"#.to_string())
        ]
    );
    // Only the new reading: the records of the first run are gone with the
    // embedded broker, and nothing is written twice.
    assert_eq!(
        through_embedded_server(&data, &statements, &[("s3", r#"{"CELSIUS": 40}"#)], 1),
        vec![("s3".to_string(), r#"{"CELSIUS":40.0}"#.to_string())]
    );
}

/// The server killed with SIGKILL again and again while input flows:
/// after the last restart the materialized counts are exact (state and
/// source offsets are committed together; what was lost is reprocessed).
#[test]
fn a_server_killed_repeatedly_keeps_exact_counts() {
    killed_repeatedly(false);
}

/// The same with `processing.guarantee = 'exactly_once'` set for the
/// queries: besides exact counts, a `read_committed` reader sees every
/// output record exactly once: the table's changelog has one update per
/// input record, counting 1, 2, 3... per user with no gap and no repeat, and
/// a filtering stream has each matching input once.
#[test]
fn an_exactly_once_server_killed_repeatedly_writes_each_output_once() {
    killed_repeatedly(true);
}

fn killed_repeatedly(exactly_once: bool) {
    let input = unique("taps");
    let output = unique("tap_counts");
    let evens = unique("even_taps");
    let dir = tempfile::tempdir().unwrap();
    let statements = dir.path().join("counts.sql");
    let eos = if exactly_once {
        format!(
            "SET 'processing.guarantee'='exactly_once';
             SET 'cache.max.bytes.buffering'='0';
             CREATE STREAM evens WITH (kafka_topic='{evens}') AS \
               SELECT user, n FROM taps WHERE n % 2 = 0;"
        )
    } else {
        String::new()
    };
    std::fs::write(
        &statements,
        format!(
            "CREATE STREAM taps (user STRING KEY, n INT) \
               WITH (kafka_topic='{input}', value_format='JSON', partitions=2);
             {eos}
             CREATE TABLE counts WITH (kafka_topic='{output}') AS \
               SELECT user, COUNT(*) AS c, SUM(n) AS total FROM taps GROUP BY user;"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("server")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--kafka", broker()])
            .arg("--data-dir")
            .arg(&data)
            .arg("--statements")
            .arg(&statements)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start sluice server")
    };
    // The first start creates the topics and the query.
    let mut child = server();
    let deadline = Instant::now() + Duration::from_secs(30);
    while partitions(&input) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(partitions(&input), 2, "the server did not create its topic");
    // Input flows while the server is killed and restarted.
    const USERS: i64 = 7;
    const RECORDS: i64 = 2_000;
    // Record times near now: the broker rolls (and then compacts) a
    // segment whose first record is older than `segment.ms`, and a table's
    // topic is compacted, which would thin out its changelog.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let topic = input.clone();
    let producer = std::thread::spawn(move || {
        for chunk in 0..20 {
            let records: Vec<(String, String, i64)> = (chunk * 100..(chunk + 1) * 100)
                .map(|i| {
                    (
                        format!("u{}", i % USERS),
                        format!(r#"{{"N": {i}}}"#),
                        t0 + i,
                    )
                })
                .collect();
            let refs: Vec<(Option<&str>, Option<&str>, i64)> = records
                .iter()
                .map(|(k, v, t)| (Some(k.as_str()), Some(v.as_str()), *t))
                .collect();
            produce(&topic, &refs);
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let written = || -> i64 {
        (0..partitions(&output))
            .map(|p| high_watermark_on(broker(), &output, p))
            .sum()
    };
    let mut written_before_kill = Vec::new();
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(400 + 300 * round));
        written_before_kill.push(written());
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the server");
        child = server();
    }
    // The kills hit a query that was producing output.
    assert!(
        written_before_kill.iter().any(|&n| n > 0),
        "no output before any kill: {written_before_kill:?}"
    );
    producer.join().expect("producer");
    // Wait until every user's latest count adds up to all the input.
    let latest = || -> BTreeMap<String, String> {
        consume(&output, written() as usize)
            .into_iter()
            .map(|(_, k, v, _)| {
                (
                    String::from_utf8_lossy(&k.unwrap_or_default()).to_string(),
                    v.unwrap_or_default(),
                )
            })
            .collect()
    };
    let expected: BTreeMap<String, String> = (0..USERS)
        .map(|u| {
            let mine: Vec<i64> = (0..RECORDS).filter(|i| i % USERS == u).collect();
            (
                format!("u{u}"),
                format!(
                    r#"{{"C":{},"TOTAL":{}}}"#,
                    mine.len(),
                    mine.iter().sum::<i64>()
                ),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = latest();
    while got != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        got = latest();
    }
    // The filtering query runs beside the table's: let it finish too.
    let evens_read = || consume(&evens, (RECORDS / 2) as usize);
    if exactly_once {
        let deadline = Instant::now() + Duration::from_secs(90);
        while evens_read().len() < (RECORDS / 2) as usize && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    child.kill().expect("stop the server");
    child.wait().expect("reap the server");
    assert_eq!(got, expected);
    if exactly_once {
        // Every committed update, in order per user: 1, 2, 3, ...
        let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (_, k, v, _) in consume(&output, RECORDS as usize) {
            let user = String::from_utf8_lossy(&k.unwrap_or_default()).to_string();
            let v: serde_json::Value = serde_json::from_str(&v.unwrap_or_default()).unwrap();
            counts
                .entry(user)
                .or_default()
                .push(v["C"].as_i64().unwrap());
        }
        let per_user: BTreeMap<String, Vec<i64>> = (0..USERS)
            .map(|u| {
                let n = (0..RECORDS).filter(|i| i % USERS == u).count() as i64;
                (format!("u{u}"), (1..=n).collect())
            })
            .collect();
        assert_eq!(counts, per_user);
        let mut ns: Vec<i64> = evens_read()
            .into_iter()
            .map(|(_, _, v, _)| {
                let v: serde_json::Value = serde_json::from_str(&v.unwrap_or_default()).unwrap();
                v["N"].as_i64().unwrap()
            })
            .collect();
        ns.sort_unstable();
        assert_eq!(ns, (0..RECORDS).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    }
}

/// The status SHOW QUERIES gives the (only) query.
fn query_status(e: &mut Engine) -> String {
    match e.execute("SHOW QUERIES;").unwrap().remove(0) {
        sluice::StatementResult::Rows { rows, .. } => rows[0][1].clone(),
        other => panic!("SHOW QUERIES returned {other:?}"),
    }
}

/// Kafka's murmur2 (the Java clients' default partitioner), written out
/// here so the test does not trust Sluice's own.
fn murmur2(data: &[u8]) -> u32 {
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let len = data.len();
    let mut h: u32 = seed ^ (len as u32);
    let chunks = len / 4;
    for i in 0..chunks {
        let mut k = u32::from_le_bytes([
            data[i * 4],
            data[i * 4 + 1],
            data[i * 4 + 2],
            data[i * 4 + 3],
        ]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let tail = &data[chunks * 4..];
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(m);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h
}

/// The statements of the embedded-server tests: hot readings.
const HOT_READINGS: &str = "CREATE STREAM readings (sensor STRING KEY, celsius DOUBLE) \
       WITH (kafka_topic='readings', value_format='JSON', partitions=1);
     CREATE STREAM hot AS SELECT sensor, celsius FROM readings WHERE celsius > 30;";

/// How long the output is still read after the expected records arrived.
const QUIET: Duration = Duration::from_secs(2);

/// Start `sluice server` with no Kafka configured on `data`, produce
/// `readings` (sensor, JSON value) to the embedded broker at the address it
/// prints, and return every record the query writes to `HOT` (key, value):
/// read until `want` arrived, then for [`QUIET`] more, so a record too
/// many is returned too.
fn through_embedded_server(
    data: &std::path::Path,
    statements: &std::path::Path,
    readings: &[(&str, &str)],
    want: usize,
) -> Vec<(String, String)> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("server")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .arg("--statements")
        .arg(statements)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sluice server");
    let stdout = child.stdout.take().expect("stdout");
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let bootstrap = first
        .strip_prefix("Embedded Kafka broker (in memory: it keeps nothing across restarts) at ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    for (k, v) in readings {
        producer
            .send(
                BaseRecord::to("readings")
                    .key(*k)
                    .payload(*v)
                    .timestamp(1_000),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "test-reader")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("HOT", 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline && (got.len() < want || last.elapsed() < QUIET) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                got.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).to_string(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
                ));
                last = Instant::now();
            }
            Some(Err(e)) => panic!("reading HOT: {e}"),
            None => {}
        }
    }
    // Clients first: closing them needs the broker.
    drop(consumer);
    drop(producer);
    let _ = child.kill();
    let _ = child.wait();
    got
}

/// `sluice server` with no Kafka configured: the embedded broker, reachable
/// by any Kafka client at the address the server prints.
#[test]
fn the_server_starts_an_embedded_broker_that_clients_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let statements = dir.path().join("pipeline.sql");
    std::fs::write(&statements, HOT_READINGS).unwrap();
    assert_eq!(
        through_embedded_server(
            &dir.path().join("data"),
            &statements,
            &[
                ("s1", r#"{"CELSIUS": 21.5}"#),
                ("s2", r#"{"CELSIUS": 35.0}"#),
                ("s3", r#"{"CELSIUS": 30.0}"#),
                ("s4", r#"{"CELSIUS": 30.5}"#)
            ],
            2
        ),
        vec![
            ("s2".to_string(), r#"{"CELSIUS":35.0}"#.to_string()),
            ("s4".to_string(), r#"{"CELSIUS":30.5}"#.to_string())
        ]
    );
}

//! The case studies end to end on a real Kafka broker (issue 6).
//!
//! Each module runs one case: a `sluice server` on the test broker (its own
//! topic prefix) loads `queries/<case>.sql`; `sluice gen <case>` produces the
//! case's events with a fixed seed, paced in real time; the expected result
//! of every derived table and stream is computed here, in plain Rust, from
//! the same events (`sluice::cases::<case>::events`), and compared exactly
//! with what pull queries answer over the Postgres protocol, with the
//! output topics, and with the Parquet files of the analytics sinks.

mod common;

#[path = "cases/gettaxi.rs"]
mod gettaxi;
#[path = "cases/logs.rs"]
mod logs;
#[path = "cases/movieflix.rs"]
mod movieflix;
#[path = "cases/mybank.rs"]
mod mybank;
#[path = "cases/social.rs"]
mod social;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use sluice::cases::{Case, Event, Params};

/// How long a derived result may take to reach its expected value.
const SETTLE: Duration = Duration::from_secs(120);

/// A row of text values (None: NULL), as psql shows it.
pub type Row = Vec<Option<String>>;

/// A record read back from an output topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub key: Option<Vec<u8>>,
    /// The JSON value; None: a tombstone.
    pub value: Option<serde_json::Value>,
    pub timestamp: i64,
    pub partition: i32,
    pub offset: i64,
}

/// One case running: the server, its Postgres connection, its topics.
pub struct Run {
    pub case: Case,
    server: common::Server,
    /// Prepended to every topic of this run.
    pub prefix: String,
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Run {
    /// Start a server on the test broker with the case's statements, its
    /// sinks under `{dir}/analytics` and files committed after a second.
    pub fn start(case: Case) -> Run {
        let prefix = format!("{}.", common::unique(case.name()));
        let queries = format!("{}/queries/{}.sql", env!("CARGO_MANIFEST_DIR"), case.name());
        let toml = format!(
            r#"
service_id = "{prefix}"
statements = "{queries}"
analytics = "{{dir}}/analytics"

[kafka]
bootstrap = "{broker}"
topic_prefix = "{prefix}"

[properties]
"sink.roll.ms" = "1000"
"#,
            broker = common::broker(),
        );
        let server = common::Server::start_with_config(&toml);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let port = server.port;
        let client = runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=sluice"),
                tokio_postgres::NoTls,
            )
            .await
            .expect("connect to sluice over the Postgres protocol");
            tokio::spawn(connection);
            client
        });
        Run {
            case,
            server,
            prefix,
            runtime,
            client,
        }
    }

    /// Parameters for this case's generator: the given seed, rate and
    /// duration, starting now (so event time follows the wall clock).
    pub fn params(seed: u64, rate: f64, duration: Duration) -> Params {
        Params {
            seed,
            rate,
            duration,
            start_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// Produce the case's events with the real `sluice gen`, paced in real
    /// time; returns them (as `sluice::cases::events` gives them).
    pub fn generate(&self, params: &Params) -> Vec<Event> {
        let out = Command::new(common::binary())
            .arg("gen")
            .arg(self.case.name())
            .args(["--kafka", common::broker()])
            .args(["--topic-prefix", &self.prefix])
            .args(["--seed", &params.seed.to_string()])
            .args(["--rate", &params.rate.to_string()])
            .args(["--duration", &format!("{}ms", params.duration.as_millis())])
            .args(["--start", &params.start_ms.to_string()])
            .output()
            .expect("run sluice gen");
        let events: Vec<Event> = sluice::cases::events(self.case, params).collect();
        assert!(
            out.status.success(),
            "sluice gen failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{} {} events produced", events.len(), self.case.name())
        );
        events
    }

    /// A statement's rows over the Postgres protocol, as text.
    pub fn query(&self, sql: &str) -> Vec<Row> {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"))
    }

    fn try_query(&self, sql: &str) -> Result<Vec<Row>, tokio_postgres::Error> {
        let messages = self.runtime.block_on(self.client.simple_query(sql))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// Wait until a pull query answers `expected` (the queries catch up
    /// with the events); fail with the last answer after a while.
    pub fn eventually(&self, sql: &str, expected: &[Row]) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let got = self.try_query(sql);
            if let Ok(rows) = &got {
                if rows == expected {
                    return;
                }
            }
            if Instant::now() > deadline {
                match got {
                    Ok(rows) => assert_eq!(rows, expected, "{sql}"),
                    Err(e) => panic!("{sql}\nfailed: {e}"),
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every record of an output topic (named as in the SQL), up to the
    /// end it has now, partition by partition.
    pub fn topic(&self, name: &str) -> Vec<Received> {
        let topic = format!("{}{name}", self.prefix);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", common::broker())
            .set("group.id", common::unique("cases-reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("a Kafka consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("topic metadata");
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        assert!(partitions > 0, "topic {topic} does not exist");
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .expect("watermarks");
            ends.insert(p, high);
            assignment
                .add_partition_offset(&topic, p, Offset::Beginning)
                .expect("assign");
        }
        consumer.assign(&assignment).expect("assign");
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = |records: &Vec<Received>| {
            ends.iter().all(|(p, end)| {
                *end == 0
                    || records
                        .iter()
                        .any(|r| r.partition == *p && r.offset + 1 >= *end)
            })
        };
        while !done(&records) {
            assert!(Instant::now() < deadline, "reading {topic} timed out");
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = message.expect("a record");
            if m.offset() >= ends[&m.partition()] {
                continue;
            }
            records.push(Received {
                key: m.key().map(<[u8]>::to_vec),
                value: m
                    .payload()
                    .map(|v| serde_json::from_slice(v).expect("a JSON value")),
                timestamp: m.timestamp().to_millis().unwrap_or(0),
                partition: m.partition(),
                offset: m.offset(),
            });
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }

    /// Rows of `sql` run by DataFusion over the Parquet files a sink wrote
    /// under `location` (relative to the analytics root), registered as
    /// the table `archive`; values as text (NULL: None).
    pub fn analytics(&self, location: &str, sql: &str) -> Vec<Row> {
        let dir = self.server.dir().join("analytics").join(location);
        self.runtime.block_on(async {
            use datafusion::arrow::array::Array;
            use datafusion::arrow::util::display::ArrayFormatter;
            use datafusion::prelude::{ParquetReadOptions, SessionContext};
            let ctx = SessionContext::new();
            ctx.register_parquet(
                "archive",
                dir.to_str().expect("a UTF-8 path"),
                ParquetReadOptions::default(),
            )
            .await
            .expect("register the sink's Parquet files");
            let batches = ctx
                .sql(sql)
                .await
                .expect("plan the query")
                .collect()
                .await
                .expect("read the Parquet files");
            let options = Default::default();
            let mut rows = Vec::new();
            for b in batches {
                let formatters: Vec<_> = b
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("a formatter"))
                    .collect();
                for i in 0..b.num_rows() {
                    rows.push(
                        b.columns()
                            .iter()
                            .zip(&formatters)
                            .map(|(c, f)| (!c.is_null(i)).then(|| f.value(i).to_string()))
                            .collect(),
                    );
                }
            }
            rows
        })
    }

    /// The Parquet files a sink committed under `location` (relative
    /// paths, sorted): every one under `dt=YYYY-MM-DD/hour=HH/`. The
    /// sink's mark (`.sluice-sink`, which makes the directory its own) is
    /// not one of them.
    pub fn analytics_files(&self, location: &str) -> Vec<String> {
        let root = self.server.dir().join("analytics").join(location);
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).expect("the sink's directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path == root.join(".sluice-sink") {
                    continue;
                } else {
                    files.push(
                        path.strip_prefix(&root)
                            .expect("under the root")
                            .to_string_lossy()
                            .to_string(),
                    );
                }
            }
        }
        files.sort();
        files
    }
}

/// A text row from values (NULL as None).
pub fn row<const N: usize>(values: [Option<String>; N]) -> Row {
    values.into_iter().collect()
}

/// `Some(v.to_string())`.
pub fn text(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// Every number as a double, so that `2` and `2.0` compare equal.
pub fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        other => other.clone(),
    }
}

/// An expected value as it reads back from a topic: written as text (the
/// shortest digits that round-trip), parsed by serde_json (which may land
/// an ulp away without its `float_roundtrip` feature), numbers as doubles.
pub fn expected_json(v: &Value) -> Value {
    numbers_as_f64(&serde_json::from_str(&v.to_string()).unwrap())
}

/// The last value of every key of a changelog topic (None: deleted), numbers
/// as doubles.
pub fn latest(records: &[Received]) -> BTreeMap<Vec<u8>, Option<Value>> {
    let mut out = BTreeMap::new();
    for r in records {
        out.insert(
            r.key.clone().unwrap_or_default(),
            r.value.as_ref().map(numbers_as_f64),
        );
    }
    out
}

/// A windowed key as the topic holds it: key bytes, then the window start
/// (8 bytes, big-endian).
pub fn windowed_key(key: &str, start: i64) -> Vec<u8> {
    let mut k = key.as_bytes().to_vec();
    k.extend_from_slice(&start.to_be_bytes());
    k
}

/// A query's rows, sorted, once they equal `expected` (sorted too); fails
/// with the last answer after two minutes.
pub fn eventually_sorted(run: &Run, sql: &str, expected: &[Row]) {
    let mut want = expected.to_vec();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut got = run.query(sql);
        got.sort();
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            assert_eq!(got.len(), want.len(), "{sql}: row count");
            assert_eq!(got, want, "{sql}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A stream's output topic as (key, value with numbers as doubles, record
/// time), sorted: compared with the expected records as a multiset.
pub fn stream_records(run: &Run, topic: &str) -> Vec<(Vec<u8>, String, i64)> {
    let mut records: Vec<(Vec<u8>, String, i64)> = run
        .topic(topic)
        .into_iter()
        .map(|r| {
            (
                r.key.expect("a stream record with a key"),
                numbers_as_f64(&r.value.expect("a stream record with a value")).to_string(),
                r.timestamp,
            )
        })
        .collect();
    records.sort();
    records
}

//! End-to-end latency at a fixed input rate: from producing an event to
//! seeing its effect, in a materialized table (pull query) and in a push
//! query.
//!
//! Events carry their send time (µs since the epoch). The push query
//! streams them back, so each row's latency is its arrival time minus the
//! send time. A probe takes the newest event sent, then asks a pull query
//! for its key until the table holds that event's sequence number.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};

use crate::kafka::Broker;
use crate::{Fallible, Setup};

const TOPIC: &str = "bench_latency";
const KEYS: u64 = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub rate: u64,
    pub seconds: u64,
    /// Pull-query latencies (ms) of every run, one list per run.
    pub pull_ms: Vec<Vec<f64>>,
    /// Push-query latencies (ms) of every run.
    pub push_ms: Vec<Vec<f64>>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub const STATEMENTS: &str = "\
CREATE STREAM lat_events (id VARCHAR KEY, seq BIGINT, sent_us BIGINT) \
  WITH (kafka_topic='bench_latency', value_format='JSON', partitions=4);
CREATE TABLE lat_latest AS \
  SELECT id, LATEST_BY_OFFSET(seq) AS seq FROM lat_events GROUP BY id EMIT CHANGES;
";

/// Connect to a Postgres-protocol server, retrying while it starts.
pub async fn connect(
    port: u16,
    user: &str,
    proc: &mut crate::procs::Proc,
) -> Fallible<tokio_postgres::Client> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user={user} dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                return Ok(client);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(format!("cannot connect to {}: {e}", proc.name).into())
            }
            Err(_) => {
                proc.check_alive()?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

pub fn measure(setup: &Setup, broker: &Broker, rt: &tokio::runtime::Runtime) -> Fallible<Latency> {
    let mut out = Latency {
        rate: setup.latency_rate,
        seconds: setup.latency_secs,
        ..Default::default()
    };
    for run in 0..setup.runs {
        broker.create_topic(TOPIC, 4, false)?;
        let port = crate::procs::free_port()?;
        let tag = format!("latency_{run}_{}", crate::procs::now_ms());
        let mut proc =
            crate::throughput::sluice_server(setup, broker, &tag, STATEMENTS, Some(port))?;
        let (pull, push) = rt.block_on(one_run(setup, broker, port, &mut proc))?;
        drop(proc);
        let (p, q) = (
            crate::report::percentile(&pull, 50.0),
            crate::report::percentile(&push, 50.0),
        );
        eprintln!(
            "bench: latency run {run}: pull p50 {p:.1} ms ({} samples), push p50 {q:.1} ms ({} rows)",
            pull.len(),
            push.len()
        );
        out.pull_ms.push(pull);
        out.push_ms.push(push);
    }
    Ok(out)
}

async fn one_run(
    setup: &Setup,
    broker: &Broker,
    port: u16,
    proc: &mut crate::procs::Proc,
) -> Fallible<(Vec<f64>, Vec<f64>)> {
    let pull_client = connect(port, "sluice", proc).await?;
    let push_client = connect(port, "sluice", proc).await?;
    // The push query reads from the end: start it before the first event.
    let rows = push_client
        .query_raw(
            "SELECT id, seq, sent_us FROM lat_events EMIT CHANGES",
            std::iter::empty::<i64>(),
        )
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let newest: Arc<Mutex<Option<(String, i64, Instant)>>> = Arc::new(Mutex::new(None));
    let warmup = Duration::from_secs(2);
    let producer = {
        let (stop, newest) = (stop.clone(), newest.clone());
        let (bootstrap, rate, secs) = (
            broker.bootstrap.clone(),
            setup.latency_rate,
            setup.latency_secs,
        );
        std::thread::spawn(move || -> Result<(), String> {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("linger.ms", "0")
                .create()
                .map_err(|e| e.to_string())?;
            let start = Instant::now();
            let total = rate * (secs + warmup.as_secs());
            for seq in 0..total {
                let due = start + Duration::from_secs_f64(seq as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let key = format!("k{}", seq % KEYS);
                let value = format!(r#"{{"seq":{seq},"sent_us":{}}}"#, now_us());
                let sent = Instant::now();
                producer
                    .send(BaseRecord::to(TOPIC).key(&key).payload(&value))
                    .map_err(|(e, _)| e.to_string())?;
                producer.poll(Duration::ZERO);
                *newest.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, seq as i64, sent));
            }
            producer
                .flush(Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            stop.store(true, Ordering::SeqCst);
            Ok(())
        })
    };
    let started = Instant::now();
    // The push side: every row's latency from its send time.
    let push = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rows = std::pin::pin!(rows);
            let mut lat = vec![];
            let mut last_row = Instant::now();
            loop {
                match tokio::time::timeout(Duration::from_millis(500), rows.next()).await {
                    Ok(Some(Ok(row))) => {
                        last_row = Instant::now();
                        let sent: i64 = row.get(2);
                        if started.elapsed() > warmup {
                            lat.push((now_us() - sent) as f64 / 1000.0);
                        }
                    }
                    Ok(Some(Err(e))) => return Err(format!("push query failed: {e}")),
                    Ok(None) => return Err("push query ended".to_string()),
                    Err(_) => {}
                }
                if stop.load(Ordering::SeqCst) && last_row.elapsed() > Duration::from_secs(3) {
                    return Ok(lat);
                }
            }
        })
    };
    // The pull side.
    let lookup = pull_client
        .prepare("SELECT seq FROM lat_latest WHERE id = $1")
        .await?;
    let mut pull = vec![];
    while !stop.load(Ordering::SeqCst) {
        let target = newest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some((key, seq, sent)) = target else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        loop {
            let rows = pull_client.query(&lookup, &[&key]).await?;
            if rows.first().is_some_and(|r| r.get::<_, i64>(0) >= seq) {
                break;
            }
            if sent.elapsed() > Duration::from_secs(60) {
                return Err(format!("event {seq} not in the table after 60 s").into());
            }
        }
        if started.elapsed() > warmup {
            pull.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    producer
        .join()
        .map_err(|_| "the latency producer panicked")??;
    let push = push.await??;
    Ok((pull, push))
}

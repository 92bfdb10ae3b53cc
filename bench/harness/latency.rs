//! End-to-end latency at a fixed input rate, over the Postgres wire (the
//! harness's client is tokio-postgres) with a Kafka producer at a fixed
//! rate: from producing an event to a push query's client receiving it,
//! and to a pull query first seeing it.
//!
//! Each scenario is a rate and a stream: one only the push query reads
//! ("alone"), or one a persistent query (`CREATE TABLE ... AS SELECT
//! LATEST_BY_OFFSET(...)`) reads too ("shared"); every run starts a fresh
//! server on a fresh topic. Events carry their sequence number and send
//! time (µs since the epoch). The push query (`SELECT ... EMIT CHANGES`,
//! started before the first event) streams them back: each row's latency is
//! its arrival minus its send time, every sequence number is checked off,
//! and an event not delivered within 30 s of the last one counts as
//! infinitely late (a p99 with more than 1% missing is "not delivered"). In the shared scenario a probe
//! takes the newest event sent and asks the table for its key until the
//! answer holds it: the freshness of a pull query (probes are 5 to 15 ms
//! apart, drawn at random: a fixed pause locks them to the checkpoint
//! period). A stall is the largest
//! gap between two push rows, or between two pull answers, while the input
//! flows (after the warm-up).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::{Deserialize, Serialize};

use crate::kafka::Broker;
use crate::{Fallible, Setup};

const TOPIC: &str = "bench_latency";
const KEYS: u64 = 100;
/// How long the push client waits for missing rows after the last event:
/// until no row came for `QUIET`, and at most `DRAIN`; a pull probe gives
/// up after `DRAIN` too. What has not arrived by then was not delivered.
const QUIET: Duration = Duration::from_secs(10);
const DRAIN: Duration = Duration::from_secs(30);

/// A distribution, summarized: count, percentiles and maximum (ms), and a
/// histogram for the plot. A percentile is None where the events it would
/// fall on were never seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dist {
    pub n: u64,
    pub missing: u64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    /// Counts per bucket: bucket i holds values below 0.1 ms × 10^((i+1)/20).
    pub histogram: Vec<u64>,
}

impl Dist {
    /// From the values seen and the number of events never seen.
    pub fn of(values: &[f64], missing: u64) -> Self {
        let total = values.len() as u64 + missing;
        let mut s = values.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| -> Option<f64> {
            if total == 0 {
                return None;
            }
            let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as usize;
            s.get(rank - 1).copied()
        };
        let mut histogram = vec![0u64; 120];
        for v in &s {
            let i = ((v / 0.1).max(1.0).log10() * 20.0).floor() as usize;
            histogram[i.min(119)] += 1;
        }
        Dist {
            n: values.len() as u64,
            missing,
            p50: at(50.0),
            p99: at(99.0),
            max: if missing > 0 { None } else { s.last().copied() },
            histogram,
        }
    }
}

/// One run of one scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// Events sent after the warm-up, and the rate the producer achieved.
    pub sent: u64,
    pub sent_per_s: f64,
    /// Push: latency of every event sent after the warm-up; `missing` are
    /// the rows that never arrived.
    pub push: Dist,
    /// Rows that arrived more than once.
    pub push_duplicates: u64,
    /// Largest gap between two push rows while the input flowed (ms).
    pub push_gap_ms: f64,
    /// The broker's acknowledgements of the measured events, send to
    /// acknowledgement (absent in results from before it was measured).
    #[serde(default)]
    pub acks: Option<Dist>,
    /// Pull (shared scenario): produce to the first answer holding it.
    pub pull: Option<Dist>,
    /// Largest gap between two pull answers while the input flowed (ms).
    pub pull_gap_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scenario {
    pub rate: u64,
    /// Whether a persistent query reads the stream too.
    pub shared: bool,
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub seconds: u64,
    pub warmup_secs: u64,
    pub scenarios: Vec<Scenario>,
}

/// The pause between two pull probes: 5 to 15 ms, drawn anew each time.
/// A fixed pause locks the probes to the server's checkpoint period (every
/// probe then starts at the same point of the cycle, and the figure says
/// where that point is, not how fresh the table is).
struct ProbeSpacing(u64);

impl ProbeSpacing {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(5_000 + self.0 % 10_000)
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn statements(shared: bool) -> String {
    let mut s = format!(
        "CREATE STREAM lat_events (id VARCHAR KEY, seq BIGINT, sent_us BIGINT) \
         WITH (kafka_topic='{TOPIC}', value_format='JSON', partitions=4);\n"
    );
    if shared {
        s.push_str(
            "CREATE TABLE lat_latest AS SELECT id, LATEST_BY_OFFSET(seq) AS seq \
             FROM lat_events GROUP BY id EMIT CHANGES;\n",
        );
    }
    s
}

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
        seconds: setup.latency_secs,
        warmup_secs: setup.latency_warmup_secs,
        scenarios: vec![],
    };
    for &rate in &setup.latency_rates {
        for shared in [false, true] {
            let mut scenario = Scenario {
                rate,
                shared,
                runs: vec![],
            };
            for run in 0..setup.runs {
                broker.create_topic(TOPIC, 4, false)?;
                let port = crate::procs::free_port()?;
                let tag = format!("latency_{run}_{}", crate::procs::now_ms());
                let mut proc = crate::throughput::sluice_server(
                    setup,
                    broker,
                    &tag,
                    &statements(shared),
                    Some(port),
                )?;
                let r = rt.block_on(one_run(setup, broker, rate, shared, port, &mut proc))?;
                drop(proc);
                // The server's log outlives its data: the scenario's last run.
                let scenario_log = format!(
                    "latency_{rate}_{}.log",
                    if shared { "shared" } else { "alone" }
                );
                let _ = std::fs::copy(
                    setup.work.join(&tag).join("server.log"),
                    setup.work.join(scenario_log),
                );
                let _ = std::fs::remove_dir_all(setup.work.join(&tag));
                let ms =
                    |v: Option<f64>| v.map_or("not delivered".into(), |v| format!("{v:.1} ms"));
                eprintln!(
                    "bench: latency {rate}/s {}: run {run}: sent {} ({:.0}/s); push: {} delivered, \
                     p50 {}, p99 {}, max {}, largest gap {:.0} ms; broker acks p50 {}, p99 {}; pull: {}",
                    if shared { "shared" } else { "alone" },
                    r.sent,
                    r.sent_per_s,
                    r.push.n,
                    ms(r.push.p50),
                    ms(r.push.p99),
                    ms(r.push.max),
                    r.push_gap_ms,
                    ms(r.acks.as_ref().and_then(|a| a.p50)),
                    ms(r.acks.as_ref().and_then(|a| a.p99)),
                    r.pull.as_ref().map_or("-".into(), |p| format!(
                        "{} probes, p50 {}, p99 {}, largest gap {:.0} ms",
                        p.n,
                        ms(p.p50),
                        ms(p.p99),
                        r.pull_gap_ms.unwrap_or(0.0)
                    )),
                );
                scenario.runs.push(r);
                broker.delete_topics(&[TOPIC])?;
            }
            out.scenarios.push(scenario);
        }
    }
    Ok(out)
}

/// The newest event sent: key, sequence number, when.
pub type Newest = Arc<Mutex<Option<(String, i64, Instant)>>>;

/// The producer's delivery reports: how long the broker took to
/// acknowledge each measured event (send to acknowledgement), so that the
/// broker's share of a push row's latency shows apart from Sluice's.
struct AckTimes {
    warmup: u64,
    ms: Mutex<Vec<f64>>,
}

impl rdkafka::ClientContext for AckTimes {}

impl rdkafka::producer::ProducerContext for AckTimes {
    type DeliveryOpaque = Box<(u64, Instant)>;

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, sent: Self::DeliveryOpaque) {
        let (seq, at) = *sent;
        if result.is_ok() && seq >= self.warmup {
            let ms = at.elapsed().as_secs_f64() * 1000.0;
            self.ms.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
        }
    }
}

/// When the producer started, when its warm-up ended, when it sent its
/// last event, and the broker's acknowledgement times (ms) of the events
/// after the warm-up.
type Produced = (Instant, Instant, Instant, Vec<f64>);

/// Produce `rate` events/s for `total` events to `topic` (the pull part's
/// background load uses it too).
pub fn produce(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    total: u64,
    warmup: u64,
    newest: Newest,
) -> Result<Produced, String> {
    let acks = AckTimes {
        warmup,
        ms: Mutex::new(Vec::new()),
    };
    // The client's defaults (librdkafka's linger.ms is 5 ms, as Kafka 4's
    // Java producer's): with linger.ms=0 each event is a produce request of
    // its own, and at 20,000/s this machine's broker then took 1.5-2.2 s
    // to acknowledge them, longer than Sluice took to deliver the rows.
    let producer: BaseProducer<AckTimes> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create_with_context(acks)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut warm = start;
    let mut seq = 0;
    while seq < total {
        // Every event due by now, then sleep to the next one's time.
        let now = Instant::now();
        while seq < total && start + Duration::from_secs_f64(seq as f64 / rate as f64) <= now {
            if seq == warmup {
                warm = Instant::now();
            }
            let key = format!("k{}", seq % KEYS);
            let value = format!(r#"{{"seq":{seq},"sent_us":{}}}"#, now_us());
            let mut record = BaseRecord::with_opaque_to(topic, Box::new((seq, Instant::now())))
                .key(&key)
                .payload(&value);
            // A broker that falls behind fills the producer's queue: wait for
            // room (the event's send time was stamped already, so the wait
            // counts against its latency) instead of giving up the run.
            let sent = loop {
                let sent = Instant::now();
                match producer.send(record) {
                    Ok(()) => break sent,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e.to_string()),
                }
            };
            *newest.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, seq as i64, sent));
            seq += 1;
        }
        producer.poll(Duration::ZERO);
        let next = start + Duration::from_secs_f64(seq as f64 / rate as f64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(1)));
        }
    }
    let end = Instant::now();
    producer
        .flush(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let acks = std::mem::take(
        &mut *producer
            .context()
            .ms
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    Ok((start, warm, end, acks))
}

async fn one_run(
    setup: &Setup,
    broker: &Broker,
    rate: u64,
    shared: bool,
    port: u16,
    proc: &mut crate::procs::Proc,
) -> Fallible<Run> {
    let push_client = connect(port, "sluice", proc).await?;
    let pull_client = if shared {
        Some(connect(port, "sluice", proc).await?)
    } else {
        None
    };
    // The push query reads from the end: start it before the first event.
    let rows = push_client
        .query_raw(
            "SELECT id, seq, sent_us FROM lat_events EMIT CHANGES",
            std::iter::empty::<i64>(),
        )
        .await?;
    let warmup = rate * setup.latency_warmup_secs;
    let total = warmup + rate * setup.latency_secs;
    let stop = Arc::new(AtomicBool::new(false));
    let newest: Newest = Arc::new(Mutex::new(None));
    let producer = {
        let (stop, newest, bootstrap) = (stop.clone(), newest.clone(), broker.bootstrap.clone());
        std::thread::spawn(move || {
            let r = produce(&bootstrap, TOPIC, rate, total, warmup, newest);
            stop.store(true, Ordering::SeqCst);
            r
        })
    };
    // The push side: every row's latency from its send time, by sequence
    // number, and each row's arrival (for the gaps).
    let push = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rows = std::pin::pin!(rows);
            let mut stopped: Option<Instant> = None;
            let mut latency = vec![f64::NAN; total as usize];
            let mut duplicates = 0u64;
            let mut arrivals = vec![];
            let mut last_row = Instant::now();
            let mut left = total;
            loop {
                match tokio::time::timeout(Duration::from_millis(200), rows.next()).await {
                    Ok(Some(Ok(row))) => {
                        let now = Instant::now();
                        last_row = now;
                        let (seq, sent): (i64, i64) = (row.get(1), row.get(2));
                        let ms = (now_us() - sent) as f64 / 1000.0;
                        match latency.get_mut(seq as usize) {
                            Some(l) if l.is_nan() => {
                                *l = ms;
                                left -= 1;
                            }
                            Some(_) => duplicates += 1,
                            None => return Err(format!("push row with unknown seq {seq}")),
                        }
                        arrivals.push(now);
                    }
                    Ok(Some(Err(e))) => return Err(format!("push query failed: {e}")),
                    Ok(None) => return Err("push query ended".to_string()),
                    Err(_) => {}
                }
                if stop.load(Ordering::SeqCst) {
                    let since = *stopped.get_or_insert_with(Instant::now);
                    if left == 0 || last_row.elapsed() > QUIET || since.elapsed() > DRAIN {
                        return Ok((latency, duplicates, arrivals));
                    }
                }
            }
        })
    };
    // The pull side: freshness probes, each answer's time kept for gaps.
    let mut freshness: Vec<(Instant, Option<f64>)> = vec![];
    let mut answers: Vec<Instant> = vec![];
    if let Some(client) = &pull_client {
        let lookup = client
            .prepare("SELECT seq FROM lat_latest WHERE id = $1")
            .await?;
        let mut last_seq = -1;
        let mut spacing = ProbeSpacing::new(now_us() as u64);
        while !stop.load(Ordering::SeqCst) {
            let target = newest.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some((key, seq, sent)) = target.filter(|t| t.1 != last_seq) else {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            last_seq = seq;
            let seen = loop {
                let rows = client.query(&lookup, &[&key]).await?;
                answers.push(Instant::now());
                if rows.first().is_some_and(|r| r.get::<_, i64>(0) >= seq) {
                    break Some(sent.elapsed().as_secs_f64() * 1000.0);
                }
                if sent.elapsed() > DRAIN {
                    break None;
                }
            };
            freshness.push((sent, seen));
            tokio::time::sleep(spacing.next()).await;
        }
    }
    let (_, warm, end, acks) = producer
        .join()
        .map_err(|_| "the latency producer panicked")??;
    let (latency, duplicates, arrivals) = push.await??;
    let measured = &latency[warmup as usize..];
    let seen: Vec<f64> = measured.iter().copied().filter(|l| !l.is_nan()).collect();
    let flowing = |t: &&Instant| **t >= warm && **t <= end;
    let largest_gap = |times: &[Instant]| {
        let times: Vec<&Instant> = times.iter().filter(flowing).collect();
        times
            .windows(2)
            .map(|w| w[1].duration_since(*w[0]).as_secs_f64() * 1000.0)
            .fold(0.0, f64::max)
    };
    let sent = total - warmup;
    Ok(Run {
        sent,
        sent_per_s: sent as f64 / end.duration_since(warm).as_secs_f64().max(1e-9),
        push: Dist::of(&seen, sent - seen.len() as u64),
        push_duplicates: duplicates,
        push_gap_ms: largest_gap(&arrivals),
        acks: Some(Dist::of(&acks, sent.saturating_sub(acks.len() as u64))),
        pull: shared.then(|| {
            let probes: Vec<Option<f64>> = freshness
                .iter()
                .filter(|(t, _)| *t >= warm)
                .map(|(_, ms)| *ms)
                .collect();
            let seen: Vec<f64> = probes.iter().flatten().copied().collect();
            Dist::of(&seen, (probes.len() - seen.len()) as u64)
        }),
        pull_gap_ms: shared.then(|| largest_gap(&answers)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_events_count_as_infinitely_late() {
        let values: Vec<f64> = (1..=98).map(f64::from).collect();
        let d = Dist::of(&values, 2);
        assert_eq!((d.n, d.missing), (98, 2));
        assert_eq!(d.p50, Some(50.0));
        // The 99th of 100 events is one that never came.
        assert_eq!(d.p99, None);
        assert_eq!(d.max, None);
        let all = Dist::of(&values, 0);
        assert_eq!((all.p99, all.max), (Some(98.0), Some(98.0)));
        assert_eq!(all.histogram.iter().sum::<u64>(), 98);
        // 1 ms is 10^1 × 0.1 ms: bucket 20.
        assert_eq!(Dist::of(&[1.0], 0).histogram[20], 1);
    }
}

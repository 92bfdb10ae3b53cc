//! Streaming throughput on the real broker: the four topologies in Sluice
//! and in Kafka Streams over the same pre-loaded topics, and a plain
//! consumer reading the input (the ceiling).
//!
//! Like for like: the views are keyed by show, the column the topologies
//! group and join by, so neither engine repartitions them (the table
//! aggregation is the exception Kafka Streams cannot avoid, and its
//! repartitioned records are counted); both engines run with the same
//! record cache and commit interval, given per row.
//!
//! A run starts the processor on fresh state and samples, every 100 ms,
//! how far its consumer groups have committed the input and how much CPU
//! it has used, until every input partition (repartition topics too) is
//! committed to the end. Output topics stamp records on arrival
//! (`LogAppendTime`), and the output is read whole afterwards: its count,
//! its first and last record's time, and a digest (every record for a
//! stream, the latest value per key for a table) to compare the engines.
//!
//! Start-up is from the process's start to its first output record. The
//! steady-state rate leaves out start-up and warm-up: from the first sample
//! at which the committed input passed the warm-up fraction, to the last
//! output record, the events not yet committed at that sample over the time
//! (wall-clock) and over the CPU time used (per core: user + system, every
//! thread).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::kafka::Broker;
use crate::procs::{now_ms, Proc};
use crate::{Fallible, Setup};

pub const VIEWS: &str = "bench_views";
pub const SHOWS: &str = "bench_shows";
pub const TAXIS: &str = "bench_taxis";
pub const PARTITIONS: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Project,
    WindowCount,
    Join,
    TableAgg,
}

impl Topology {
    pub const ALL: [Topology; 4] = [
        Topology::Project,
        Topology::WindowCount,
        Topology::Join,
        Topology::TableAgg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topology::Project => "project",
            Topology::WindowCount => "window_count",
            Topology::Join => "join",
            Topology::TableAgg => "table_agg",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Topology::Project => "filter/project (`CREATE STREAM AS`)",
            Topology::WindowCount => "tumbling-window count by key",
            Topology::Join => "stream-table join",
            Topology::TableAgg => "table aggregation with updates",
        }
    }

    /// The topic whose records are counted as the topology's events.
    pub fn input(self) -> &'static str {
        match self {
            Topology::TableAgg => TAXIS,
            _ => VIEWS,
        }
    }

    /// Whether the output is a table (compared by its final state).
    pub fn is_table(self) -> bool {
        matches!(self, Topology::WindowCount | Topology::TableAgg)
    }

    /// Every topic the topology reads.
    pub fn inputs(self) -> Vec<String> {
        match self {
            Topology::Join => vec![VIEWS.into(), SHOWS.into()],
            t => vec![t.input().into()],
        }
    }

    /// Sluice's statements: the sources, then the persistent query writing
    /// to `output`.
    pub fn sluice_sql(self, output: &str) -> String {
        let views = format!(
            "CREATE STREAM views (show_id VARCHAR KEY, user_id VARCHAR, position INT, device VARCHAR) \
             WITH (kafka_topic='{VIEWS}', value_format='JSON', partitions={PARTITIONS});\n"
        );
        let shows = format!(
            "CREATE TABLE shows (show_id VARCHAR PRIMARY KEY, title VARCHAR, genre VARCHAR) \
             WITH (kafka_topic='{SHOWS}', value_format='JSON', partitions={PARTITIONS});\n"
        );
        let taxis = format!(
            "CREATE TABLE taxis (taxi_id VARCHAR PRIMARY KEY, region VARCHAR, lat DOUBLE, lon DOUBLE) \
             WITH (kafka_topic='{TAXIS}', value_format='JSON', partitions={PARTITIONS});\n"
        );
        let with = format!("WITH (kafka_topic='{output}', partitions={PARTITIONS})");
        match self {
            Topology::Project => format!(
                "{views}CREATE STREAM bench_out {with} AS \
                 SELECT show_id, user_id, position FROM views WHERE position >= 1800 EMIT CHANGES;\n"
            ),
            Topology::WindowCount => format!(
                "{views}CREATE TABLE bench_out {with} AS \
                 SELECT show_id, COUNT(*) AS views FROM views \
                 WINDOW TUMBLING (SIZE 60 SECONDS, GRACE PERIOD 10 SECONDS) \
                 GROUP BY show_id EMIT CHANGES;\n"
            ),
            Topology::Join => format!(
                "{views}{shows}CREATE STREAM bench_out {with} AS \
                 SELECT v.show_id AS show_id, v.user_id AS user_id, v.position AS position, \
                 s.title AS title, s.genre AS genre \
                 FROM views v JOIN shows s ON v.show_id = s.show_id EMIT CHANGES;\n"
            ),
            Topology::TableAgg => format!(
                "{taxis}CREATE TABLE bench_out {with} AS \
                 SELECT region, COUNT(*) AS taxis FROM taxis GROUP BY region EMIT CHANGES;\n"
            ),
        }
    }
}

/// The record cache and commit interval both engines ran with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `ksql.streams.cache.max.bytes.buffering` for Sluice,
    /// `statestore.cache.max.bytes` for Kafka Streams; 0 writes every update.
    pub cache_bytes: u64,
    /// `ksql.streams.commit.interval.ms` / `commit.interval.ms`.
    pub commit_interval_ms: u64,
}

/// Sluice's names of the settings (ksqlDB's).
pub const SLUICE_CACHE: &str = "ksql.streams.cache.max.bytes.buffering";
pub const SLUICE_COMMIT_INTERVAL: &str = "ksql.streams.commit.interval.ms";

impl Settings {
    /// `SET` statements giving Sluice these settings.
    pub fn sluice_sets(&self) -> String {
        format!(
            "SET '{SLUICE_CACHE}'='{}';\nSET '{SLUICE_COMMIT_INTERVAL}'='{}';\n",
            self.cache_bytes, self.commit_interval_ms
        )
    }

    /// "cache off" / "cache 10 MiB", with the commit interval.
    pub fn label(&self) -> String {
        let cache = match self.cache_bytes {
            0 => "cache off".to_string(),
            b if b % (1 << 20) == 0 => format!("cache {} MiB", b >> 20),
            b => format!("cache {b} B"),
        };
        format!("{cache}, commit {} ms", self.commit_interval_ms)
    }
}

/// One engine's runs of one topology with one set of settings; every list
/// has one entry per run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Runs {
    pub topology: String,
    pub engine: String,
    /// None for the raw consumer (it has no cache).
    pub settings: Option<Settings>,
    pub events: u64,
    /// Process start to the first output record.
    pub startup_s: Vec<f64>,
    /// Process start to the last output record (the raw consumer: to its end).
    pub total_s: Vec<f64>,
    /// CPU time of the whole run.
    pub cpu_s: Vec<f64>,
    /// Steady state: events, seconds and CPU-seconds after the warm-up
    /// (None: the run was too short to have one).
    pub steady: Vec<Option<Steady>>,
    /// Output records.
    pub outputs: Vec<u64>,
    /// Digest of the output (see `kafka::Output::digest`).
    pub digest: Vec<String>,
    /// Records in the processor's repartition topics, and in its other
    /// internal topics (changelogs).
    pub repartitioned: Vec<u64>,
    pub changelog: Vec<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Steady {
    pub events: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
}

impl Runs {
    /// Median steady-state events/s (wall-clock) and events per CPU-second;
    /// the raw consumer's whole run counts as steady.
    pub fn rates(&self) -> Option<(f64, f64)> {
        use crate::report::median;
        if self.engine == "raw-consumer" {
            let wall = median(&self.total_s);
            let cpu = median(&self.cpu_s);
            return (!wall.is_nan()).then(|| (self.events as f64 / wall, self.events as f64 / cpu));
        }
        let steady: Vec<&Steady> = self.steady.iter().flatten().collect();
        if steady.is_empty() {
            return None;
        }
        let wall: Vec<f64> = steady.iter().map(|s| s.events as f64 / s.wall_s).collect();
        let cpu: Vec<f64> = steady.iter().map(|s| s.events as f64 / s.cpu_s).collect();
        Some((median(&wall), median(&cpu)))
    }
}

/// One sample taken while a processor runs.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ms: i64,
    committed: i64,
    cpu_s: f64,
}

/// The steady state of one run: from the first sample past the warm-up to
/// the last output record.
fn steady(samples: &[Sample], events: u64, warmup: f64, last_ms: i64) -> Option<Steady> {
    let from = samples
        .iter()
        .find(|s| s.committed as f64 >= warmup * events as f64)?;
    if from.committed >= events as i64 || last_ms <= from.ms {
        return None;
    }
    let cpu_at_last = cpu_at(samples, last_ms);
    Some(Steady {
        events: events - from.committed as u64,
        wall_s: (last_ms - from.ms) as f64 / 1000.0,
        cpu_s: cpu_at_last - from.cpu_s,
    })
}

/// CPU-seconds at `ms`, interpolated between the samples around it.
fn cpu_at(samples: &[Sample], ms: i64) -> f64 {
    let after = samples.iter().position(|s| s.ms >= ms);
    match after {
        None => samples.last().map_or(0.0, |s| s.cpu_s),
        Some(0) => samples[0].cpu_s,
        Some(i) => {
            let (a, b) = (samples[i - 1], samples[i]);
            let f = (ms - a.ms) as f64 / (b.ms - a.ms).max(1) as f64;
            a.cpu_s + f * (b.cpu_s - a.cpu_s)
        }
    }
}

/// Load the input topics once: views, shows, taxis.
pub fn load(broker: &Broker, setup: &Setup) -> Fallible<()> {
    for (topic, records) in [
        (
            VIEWS,
            Box::new(crate::data::views(setup.events)) as Box<dyn Iterator<Item = _>>,
        ),
        (SHOWS, Box::new(crate::data::shows())),
        (TAXIS, Box::new(crate::data::taxis(setup.events))),
    ] {
        broker.create_topic(topic, PARTITIONS, false)?;
        let t = std::time::Instant::now();
        let n = broker.produce(topic, records)?;
        eprintln!(
            "bench: loaded {n} records into {topic} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The statements file, data directory and log of one Sluice run.
pub fn sluice_server(
    setup: &Setup,
    broker: &Broker,
    name: &str,
    statements: &str,
    listen: Option<u16>,
) -> Fallible<Proc> {
    let dir = setup.work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("statements.sql");
    std::fs::write(
        &file,
        format!("SET 'auto.offset.reset'='earliest';\n{statements}"),
    )?;
    let mut cmd = Command::new(&setup.sluice);
    cmd.arg("server")
        .arg("--kafka")
        .arg(&broker.bootstrap)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--statements")
        .arg(&file)
        .arg("--service-id")
        .arg(name)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", listen.unwrap_or(0)))
        // Warnings only, unless the caller asks for more (SLUICE_LOG).
        .env(
            "SLUICE_LOG",
            std::env::var("SLUICE_LOG").unwrap_or_else(|_| "warn".into()),
        );
    Proc::spawn(&format!("sluice ({name})"), cmd, &dir.join("server.log"))
}

/// Sample the processor every 100 ms until its groups have committed
/// `inputs` (and any repartition topics of theirs) to the end.
fn watch(
    broker: &Broker,
    proc: &mut Proc,
    prefix: &str,
    inputs: &[String],
    counted: &str,
    limit: Duration,
) -> Fallible<Vec<Sample>> {
    let mut groups = crate::kafka::Groups::new(broker, prefix);
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in inputs {
        for (p, end) in broker.end_offsets(t)?.into_iter().enumerate() {
            ends.insert((t.clone(), p as i32), end);
        }
    }
    let deadline = Instant::now() + limit;
    let mut samples = vec![];
    for round in 0u64.. {
        proc.check_alive()?;
        if round % 10 == 0 {
            groups.refresh()?;
            // Repartition topics appear, and grow, while the processor runs.
            for t in broker.topics_with_prefix(prefix)? {
                if t.ends_with("-repartition") {
                    for (p, end) in broker.end_offsets(&t)?.into_iter().enumerate() {
                        ends.insert((t.clone(), p as i32), end);
                    }
                }
            }
        }
        let partitions: Vec<(String, i32)> = ends.keys().cloned().collect();
        let committed = groups.committed(&partitions)?;
        let cpu_s = proc.cpu_seconds()?;
        samples.push(Sample {
            ms: now_ms(),
            committed: committed
                .iter()
                .filter(|((t, _), _)| t == counted)
                .map(|(_, o)| *o)
                .sum(),
            cpu_s,
        });
        let done = round % 10 == 0
            && ends
                .iter()
                .all(|(k, end)| *end == 0 || committed.get(k).is_some_and(|o| o >= end));
        if done {
            return Ok(samples);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not finish within {limit:?} (log: {})",
                proc.name,
                proc.log.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!("the loop returns")
}

/// One engine, one topology, one set of settings, `setup.runs` times.
pub fn measure(
    setup: &Setup,
    broker: &Broker,
    topology: Topology,
    engine: &str,
    settings: Option<Settings>,
    warmup: f64,
) -> Fallible<Runs> {
    let mut runs = Runs {
        topology: topology.name().into(),
        engine: engine.into(),
        settings,
        events: broker.count(topology.input())? as u64,
        ..Default::default()
    };
    for run in 0..setup.runs {
        let tag = format!(
            "{}_{}_{}_{}",
            engine.replace('-', "_"),
            topology.name(),
            run,
            now_ms()
        );
        if engine == "raw-consumer" {
            let (cpu, wall) = raw(setup, broker, topology, &tag)?;
            eprintln!(
                "bench: raw consumer {}: run {run}: {wall:.2} s, {cpu:.2} CPU-s",
                topology.name()
            );
            runs.total_s.push(wall);
            runs.cpu_s.push(cpu);
            continue;
        }
        let settings = settings.ok_or("an engine run needs its settings")?;
        let output = format!("bench_out_{tag}");
        broker.create_topic(&output, PARTITIONS, true)?;
        let mut proc = match engine {
            "sluice" => {
                let sql = format!("{}{}", settings.sluice_sets(), topology.sluice_sql(&output));
                sluice_server(setup, broker, &tag, &sql, None)?
            }
            _ => kstreams(setup, broker, topology, &tag, &output, settings)?,
        };
        let samples = watch(
            broker,
            &mut proc,
            &tag,
            &topology.inputs(),
            topology.input(),
            setup.limit,
        )?;
        let cpu = proc.cpu_seconds()?;
        let started_ms = proc.started_ms;
        drop(proc);
        let out = crate::kafka::read_output(broker, &output)?;
        let (Some(first), Some(last)) = (out.first_ms, out.last_ms) else {
            return Err(format!("{engine} wrote nothing to {output}").into());
        };
        let (mut repartitioned, mut changelog) = (0, 0);
        for t in broker.topics_with_prefix(&tag)? {
            let n = broker.written(&t)?;
            if t.ends_with("-repartition") {
                repartitioned += n;
            } else {
                changelog += n;
            }
            broker.delete_topics(&[t.as_str()])?;
        }
        broker.delete_topics(&[output.as_str()])?;
        let _ = std::fs::remove_dir_all(setup.work.join(&tag));
        let st = steady(&samples, runs.events, warmup, last);
        eprintln!(
            "bench: {engine} {} ({}): run {run}: start-up {:.2} s, last output at {:.2} s, \
             {:.2} CPU-s, {} outputs; steady {}",
            topology.name(),
            settings.label(),
            (first - started_ms) as f64 / 1000.0,
            (last - started_ms) as f64 / 1000.0,
            cpu,
            out.records,
            st.map_or("not reached (too short a run)".to_string(), |s| format!(
                "{:.0} events/s, {:.0} events/CPU-s",
                s.events as f64 / s.wall_s,
                s.events as f64 / s.cpu_s
            )),
        );
        runs.startup_s.push((first - started_ms) as f64 / 1000.0);
        runs.total_s.push((last - started_ms) as f64 / 1000.0);
        runs.cpu_s.push(cpu);
        runs.steady.push(st);
        runs.outputs.push(out.records);
        runs.digest.push(out.digest(topology.is_table()));
        runs.repartitioned.push(repartitioned);
        runs.changelog.push(changelog);
    }
    Ok(runs)
}

fn kstreams(
    setup: &Setup,
    broker: &Broker,
    topology: Topology,
    tag: &str,
    output: &str,
    settings: Settings,
) -> Fallible<Proc> {
    let dir = setup.work.join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new("java");
    cmd.arg("-Xmx2g")
        .arg("-jar")
        .arg(&setup.kstreams)
        .args(["--topology", topology.name()])
        .args(["--bootstrap", &broker.bootstrap])
        .args(["--application-id", tag])
        .args(["--input", topology.input()])
        .args(["--output", output])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--threads", &setup.cores.to_string()])
        .args(["--cache-bytes", &settings.cache_bytes.to_string()])
        .args([
            "--commit-interval-ms",
            &settings.commit_interval_ms.to_string(),
        ]);
    if topology == Topology::Join {
        cmd.args(["--table", SHOWS]);
    }
    Proc::spawn(
        &format!("kafka streams ({tag})"),
        cmd,
        &dir.join("kstreams.log"),
    )
}

/// The plain consumer, in a process of its own so its CPU time is its own.
fn raw(setup: &Setup, broker: &Broker, topology: Topology, tag: &str) -> Fallible<(f64, f64)> {
    let dir = setup.work.join(tag);
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "consume",
        "--kafka",
        &broker.bootstrap,
        "--topic",
        topology.input(),
    ]);
    let proc = Proc::spawn("raw consumer", cmd, &dir.join("consume.log"))?;
    let started = proc.started;
    proc.wait(setup.limit)?;
    let wall = started.elapsed().as_secs_f64();
    // The consumer prints its own CPU time as it ends.
    let log = std::fs::read_to_string(dir.join("consume.log"))?;
    let cpu = log
        .lines()
        .find_map(|l| l.strip_prefix("cpu_s="))
        .ok_or_else(|| format!("the raw consumer did not report its CPU time:\n{log}"))?
        .trim()
        .parse()?;
    Ok((cpu, wall))
}

/// Where the Kafka Streams jar is expected.
pub fn kstreams_jar(root: &Path) -> std::path::PathBuf {
    root.join("bench/kstreams/target/sluice-kstreams-bench.jar")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: i64, committed: i64, cpu_s: f64) -> Sample {
        Sample {
            ms,
            committed,
            cpu_s,
        }
    }

    #[test]
    fn steady_state_starts_at_the_warm_up_and_ends_at_the_last_output() {
        let samples = [
            sample(1_000, 0, 2.0),
            sample(2_000, 100, 3.0),
            sample(3_000, 300, 4.0),
            sample(4_000, 1_000, 5.0),
            sample(5_000, 1_000, 5.5),
        ];
        // 20% of 1,000 events: the sample at 3 s (300 committed); the last
        // output at 4.5 s, when the CPU time was 5.25 s.
        let s = steady(&samples, 1_000, 0.2, 4_500).unwrap();
        assert_eq!(s.events, 700);
        assert_eq!(s.wall_s, 1.5);
        assert_eq!(s.cpu_s, 1.25);
        // Everything committed before the warm-up was over: no steady state.
        assert!(steady(&samples[3..], 1_000, 0.2, 4_500).is_none());
        // The last output before the warm-up sample: none either.
        assert!(steady(&samples, 1_000, 0.2, 2_500).is_none());
    }

    #[test]
    fn settings_name_themselves_and_set_both_properties() {
        let off = Settings {
            cache_bytes: 0,
            commit_interval_ms: 1000,
        };
        assert_eq!(off.label(), "cache off, commit 1000 ms");
        let on = Settings {
            cache_bytes: 10 << 20,
            ..off
        };
        assert_eq!(on.label(), "cache 10 MiB, commit 1000 ms");
        assert_eq!(
            on.sluice_sets(),
            "SET 'ksql.streams.cache.max.bytes.buffering'='10485760';\n\
             SET 'ksql.streams.commit.interval.ms'='1000';\n"
        );
    }

    #[test]
    fn steady_rates_are_medians_and_the_raw_consumer_counts_whole() {
        let runs = Runs {
            engine: "sluice".into(),
            events: 1_000,
            steady: vec![
                Some(Steady {
                    events: 800,
                    wall_s: 1.0,
                    cpu_s: 2.0,
                }),
                None,
                Some(Steady {
                    events: 800,
                    wall_s: 4.0,
                    cpu_s: 4.0,
                }),
            ],
            ..Default::default()
        };
        // Medians of (800, 200) events/s and (400, 200) events/CPU-s.
        assert_eq!(runs.rates(), Some((200.0, 200.0)));
        let raw = Runs {
            engine: "raw-consumer".into(),
            events: 1_000,
            total_s: vec![2.0],
            cpu_s: vec![0.5],
            ..Default::default()
        };
        assert_eq!(raw.rates(), Some((500.0, 2000.0)));
    }
}

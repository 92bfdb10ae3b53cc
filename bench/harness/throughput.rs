//! Streaming throughput on the real broker: the four topologies in Sluice
//! and in Kafka Streams over the same pre-loaded topics, and a plain
//! consumer reading the input (the ceiling).
//!
//! A run starts the processor on fresh state, waits until its consumer
//! groups have committed every input partition (repartition topics too)
//! to the end, and takes the time from start to the last output record:
//! output topics stamp records on arrival (`LogAppendTime`). CPU time is
//! the processor's (user + system, every thread) at that moment, so
//! events per CPU-second is events/s per core.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
            "CREATE STREAM views (user_id VARCHAR KEY, show_id VARCHAR, position INT, device VARCHAR) \
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
                 SELECT user_id, show_id, position FROM views WHERE position >= 1800 EMIT CHANGES;\n"
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

/// One engine's runs of one topology.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runs {
    pub topology: String,
    pub engine: String,
    pub events: u64,
    /// Start to last output record, per run.
    pub wall_s: Vec<f64>,
    /// The processor's CPU time, per run.
    pub cpu_s: Vec<f64>,
    /// Output records of the last run.
    pub outputs: i64,
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
        .env("SLUICE_LOG", "warn");
    Proc::spawn(&format!("sluice ({name})"), cmd, &dir.join("server.log"))
}

/// Wait until the groups of `prefix` have read `inputs` (and any
/// repartition topics of theirs) to the end; then the CPU time so far and
/// the time from start to the output's last record.
fn finish(
    broker: &Broker,
    proc: &mut Proc,
    prefix: &str,
    inputs: &[String],
    output: &str,
    limit: Duration,
) -> Fallible<(f64, f64)> {
    proc.wait_for(limit, Duration::from_millis(250), || {
        let mut topics = inputs.to_vec();
        topics.extend(
            broker
                .topics_with_prefix(prefix)?
                .into_iter()
                .filter(|t| t.ends_with("-repartition")),
        );
        broker.caught_up(prefix, &topics)
    })?;
    let cpu = proc.cpu_seconds()?;
    let last = broker
        .last_timestamp(output)?
        .ok_or_else(|| format!("{} wrote nothing to {output}", proc.name))?;
    Ok((cpu, (last - proc.started_ms) as f64 / 1000.0))
}

/// One engine, one topology, `setup.runs` times.
pub fn measure(setup: &Setup, broker: &Broker, topology: Topology, engine: &str) -> Fallible<Runs> {
    let mut runs = Runs {
        topology: topology.name().into(),
        engine: engine.into(),
        events: broker.count(topology.input())? as u64,
        wall_s: vec![],
        cpu_s: vec![],
        outputs: 0,
    };
    for run in 0..setup.runs {
        let tag = format!(
            "{}_{}_{}_{}",
            engine.replace('-', "_"),
            topology.name(),
            run,
            now_ms()
        );
        let output = format!("bench_out_{tag}");
        let (cpu, wall) = match engine {
            "raw-consumer" => raw(setup, broker, topology, &tag)?,
            _ => {
                broker.create_topic(&output, PARTITIONS, true)?;
                let mut proc = match engine {
                    "sluice" => {
                        sluice_server(setup, broker, &tag, &topology.sluice_sql(&output), None)?
                    }
                    _ => kstreams(setup, broker, topology, &tag, &output)?,
                };
                let r = finish(
                    broker,
                    &mut proc,
                    &tag,
                    &topology.inputs(),
                    &output,
                    setup.limit,
                )?;
                drop(proc);
                runs.outputs = broker.count(&output)?;
                broker.delete_topics(&[output.as_str()])?;
                for t in broker.topics_with_prefix(&tag)? {
                    broker.delete_topics(&[t.as_str()])?;
                }
                r
            }
        };
        eprintln!(
            "bench: {engine} {}: run {run}: {:.2} s, {:.2} CPU-s, {:.0} events/s",
            topology.name(),
            wall,
            cpu,
            runs.events as f64 / wall
        );
        runs.wall_s.push(wall);
        runs.cpu_s.push(cpu);
    }
    Ok(runs)
}

fn kstreams(
    setup: &Setup,
    broker: &Broker,
    topology: Topology,
    tag: &str,
    output: &str,
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
        .args(["--threads", &setup.cores.to_string()]);
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

//! Sluice's benchmark harness: Sluice against Kafka Streams, a raw Kafka
//! consumer and PostgreSQL on the same machine and broker, plus Sluice in
//! process and on Nexmark. `bench/run.sh` installs what it needs, builds,
//! and runs `sluice-bench run`, which writes `bench/out/results.json` and
//! `docs/benchmarks.md`; `bench/plot.py` draws the pictures.

mod data;
mod inproc;
mod kafka;
mod latency;
mod procs;
mod pull;
mod report;
mod state;
mod throughput;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

pub type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(name = "sluice-bench", about = "Sluice's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmarks and write `docs/benchmarks.md`.
    Run(Box<RunArgs>),
    /// Rewrite `docs/benchmarks.md` from `bench/out/results.json`.
    Report {
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Read a topic from the beginning to its end and print the CPU time
    /// taken (the raw consumer, run as a process of its own).
    Consume {
        #[arg(long)]
        kafka: String,
        #[arg(long)]
        topic: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum Part {
    Kafka,
    Inproc,
    Nexmark,
    Latency,
    Pull,
    State,
}

/// How much of everything: recorded with the results.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub struct Scale {
    /// Runs of every measurement (the report gives their median).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Views and taxi updates pre-loaded for the streaming throughput.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Nexmark events for the in-process runs.
    #[arg(long, default_value_t = 1_000_000)]
    pub nexmark_events: u64,
    /// Distinct keys of the large-state run (a tenth of it is run too).
    #[arg(long, default_value_t = 10_000_000)]
    pub state_keys: u64,
    /// Runs of each large-state size.
    #[arg(long, default_value_t = 3)]
    pub state_runs: usize,
    /// Keys of the pull-query table.
    #[arg(long, default_value_t = 1_000_000)]
    pub pull_keys: u64,
    /// Seconds of pull-query load per run.
    #[arg(long, default_value_t = 10)]
    pub pull_secs: u64,
    /// Connections of the pull-query load.
    #[arg(long, default_value_t = 4)]
    pub pull_connections: usize,
    /// Events per second of the latency run.
    #[arg(long, default_value_t = 1000)]
    pub latency_rate: u64,
    /// Seconds of each latency run.
    #[arg(long, default_value_t = 20)]
    pub latency_secs: u64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The checkout (where `bench/` and `docs/` are).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// The Kafka broker every Kafka measurement uses.
    #[arg(long)]
    kafka: String,
    /// The Sluice binary to measure.
    #[arg(long)]
    sluice: PathBuf,
    /// The Kafka Streams application's jar (default: where Maven builds it).
    #[arg(long)]
    kstreams: Option<PathBuf>,
    /// Scratch space (state directories of the runs).
    #[arg(long, default_value = "/tmp/sluice-bench")]
    work: PathBuf,
    /// Only these parts; the others keep their figures from the last
    /// results file.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Only these engines in the Kafka throughput part (sluice,
    /// kafka-streams, raw-consumer).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Longest a single run may take, in seconds.
    #[arg(long, default_value_t = 1800)]
    limit_secs: u64,
    /// Versions to report, `name=version` (the script passes Kafka's,
    /// Java's, rustc's).
    #[arg(long = "version-of", value_name = "NAME=VERSION")]
    versions: Vec<String>,
    #[command(flatten)]
    scale: Scale,
}

/// What every measurement needs.
pub struct Setup {
    pub scale: Scale,
    pub work: PathBuf,
    pub sluice: PathBuf,
    pub kstreams: PathBuf,
    pub limit: Duration,
    pub cores: usize,
    pub versions: BTreeMap<String, String>,
}

impl std::ops::Deref for Setup {
    type Target = Scale;
    fn deref(&self) -> &Scale {
        &self.scale
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_gib: kb / (1024.0 * 1024.0),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub setup: Scale,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub when: String,
    #[serde(default)]
    pub kafka: Vec<throughput::Runs>,
    #[serde(default)]
    pub inproc: Vec<inproc::Runs>,
    #[serde(default)]
    pub nexmark: Option<inproc::Nexmark>,
    #[serde(default)]
    pub latency: Option<latency::Latency>,
    #[serde(default)]
    pub pull: Option<pull::Pull>,
    #[serde(default)]
    pub state: Vec<state::StateRuns>,
}

fn results_path(root: &Path) -> PathBuf {
    root.join("bench/out/results.json")
}

fn save(root: &Path, r: &Results) -> Fallible<()> {
    let path = results_path(root);
    std::fs::create_dir_all(path.parent().unwrap_or(root))?;
    std::fs::write(&path, serde_json::to_string_pretty(r)?)?;
    let improvements =
        std::fs::read_to_string(root.join("bench/improvements.md")).unwrap_or_default();
    std::fs::write(
        root.join("docs/benchmarks.md"),
        report::markdown(r, &improvements),
    )?;
    Ok(())
}

fn git_version(root: &Path) -> String {
    std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["describe", "--always", "--dirty"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn run(args: RunArgs) -> Fallible<()> {
    let root = args.root.clone();
    let mut versions: BTreeMap<String, String> = args
        .versions
        .iter()
        .filter_map(|v| v.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    versions.insert(
        "sluice".into(),
        format!("{} ({})", env!("CARGO_PKG_VERSION"), git_version(&root)),
    );
    let parts = if args.only.is_empty() {
        vec![
            Part::Kafka,
            Part::Inproc,
            Part::Nexmark,
            Part::Latency,
            Part::Pull,
            Part::State,
        ]
    } else {
        args.only.clone()
    };
    let fresh = Results {
        setup: args.scale.clone(),
        machine: Machine::read(),
        versions: versions.clone(),
        when: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        kafka: vec![],
        inproc: vec![],
        nexmark: None,
        latency: None,
        pull: None,
        state: vec![],
    };
    // Parts not run now keep their figures from the last results.
    let mut results = match std::fs::read_to_string(results_path(&root)) {
        Ok(old) if !args.only.is_empty() => {
            let mut r: Results = serde_json::from_str(&old)?;
            r.versions.extend(versions.clone());
            r.when = fresh.when.clone();
            r
        }
        _ => fresh,
    };
    let setup = Setup {
        scale: args.scale,
        work: args.work,
        sluice: std::fs::canonicalize(&args.sluice)
            .map_err(|e| format!("{}: {e}", args.sluice.display()))?,
        kstreams: args
            .kstreams
            .unwrap_or_else(|| throughput::kstreams_jar(&root)),
        limit: Duration::from_secs(args.limit_secs),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        versions,
    };
    std::fs::create_dir_all(&setup.work)?;
    let broker = kafka::Broker::connect(&args.kafka)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for part in parts {
        eprintln!("bench: === {part:?} ===");
        match part {
            Part::Kafka => {
                let with_kstreams =
                    args.engines.is_empty() || args.engines.iter().any(|e| e == "kafka-streams");
                if with_kstreams && !setup.kstreams.exists() {
                    return Err(format!(
                        "no Kafka Streams jar at {} (bench/run.sh builds it)",
                        setup.kstreams.display()
                    )
                    .into());
                }
                throughput::load(&broker, &setup)?;
                results.kafka.clear();
                for t in throughput::Topology::ALL {
                    for engine in ["sluice", "kafka-streams", "raw-consumer"] {
                        if !args.engines.is_empty() && !args.engines.iter().any(|e| e == engine) {
                            continue;
                        }
                        results
                            .kafka
                            .push(throughput::measure(&setup, &broker, t, engine)?);
                        save(&root, &results)?;
                    }
                }
            }
            Part::Inproc => results.inproc = inproc::topologies(&setup)?,
            Part::Nexmark => results.nexmark = Some(inproc::nexmark(&setup, &root)?),
            Part::Latency => results.latency = Some(latency::measure(&setup, &broker, &rt)?),
            Part::Pull => results.pull = Some(pull::measure(&setup, &broker, &rt)?),
            Part::State => results.state = state::measure(&setup, &broker)?,
        }
        results.setup = setup.scale.clone();
        save(&root, &results)?;
    }
    eprintln!(
        "bench: wrote {} and docs/benchmarks.md",
        results_path(&root).display()
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Run(args) => run(*args),
        Cmd::Report { root } => std::fs::read_to_string(results_path(&root))
            .map_err(|e| e.into())
            .and_then(|s| serde_json::from_str::<Results>(&s).map_err(|e| e.into()))
            .and_then(|r| save(&root, &r)),
        Cmd::Consume { kafka, topic } => {
            kafka::consume_all(&kafka, &topic).and_then(|(n, bytes)| {
                println!("records={n} bytes={bytes}");
                println!("cpu_s={}", procs::cpu_seconds(std::process::id())?);
                Ok(())
            })
        }
    };
    if let Err(e) = outcome {
        eprintln!("sluice-bench: {e}");
        std::process::exit(1);
    }
}

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
mod targets;
mod throughput;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// mimalloc, not glibc's malloc: the engine allocates and frees Arrow buffers
/// and small rows at a high rate, which glibc answers with chunk consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Input rates (events/s) of the latency part; each is run over a
    /// stream only the push query reads and over one a persistent query
    /// reads too.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 20_000])]
    pub latency_rates: Vec<u64>,
    /// Seconds of input of each latency run, after its warm-up.
    #[arg(long, default_value_t = 60)]
    pub latency_secs: u64,
    /// Seconds of input at the start of each latency run left out of its
    /// figures.
    #[arg(long, default_value_t = 5)]
    pub latency_warmup_secs: u64,
    /// Record cache of the throughput runs (Kafka, in process, Nexmark),
    /// each setting a row of its own: `off` (0 bytes: every update is
    /// written), `on` (10 MiB, Kafka Streams' and ksqlDB's default) or a
    /// number of bytes. Both engines get the same.
    #[arg(long, value_delimiter = ',', default_values_t = [CacheArg::Off, CacheArg::On])]
    pub cache: Vec<CacheArg>,
    /// Commit interval (ms) of both engines in the throughput runs.
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Fraction of the input (committed) left out of the steady-state
    /// rates as warm-up.
    #[arg(long, default_value_t = 0.2)]
    pub warmup_fraction: f64,
}

/// A record cache setting on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheArg {
    Off,
    On,
    Bytes(u64),
}

impl CacheArg {
    pub fn bytes(self) -> u64 {
        match self {
            CacheArg::Off => 0,
            CacheArg::On => 10 * 1024 * 1024,
            CacheArg::Bytes(b) => b,
        }
    }
}

impl std::str::FromStr for CacheArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(CacheArg::Off),
            "on" => Ok(CacheArg::On),
            n => n
                .parse()
                .map(CacheArg::Bytes)
                .map_err(|_| format!("a cache is off, on or a number of bytes, not '{n}'")),
        }
    }
}

impl std::fmt::Display for CacheArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheArg::Off => write!(f, "off"),
            CacheArg::On => write!(f, "on"),
            CacheArg::Bytes(b) => write!(f, "{b}"),
        }
    }
}

impl Scale {
    /// The settings of every throughput row, in order.
    pub fn settings(&self) -> Vec<throughput::Settings> {
        self.cache
            .iter()
            .map(|c| throughput::Settings {
                cache_bytes: c.bytes(),
                commit_interval_ms: self.commit_interval_ms,
            })
            .collect()
    }
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
    /// results file, each with the settings and versions of the run that
    /// measured it.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Only these engines in the Kafka throughput part (sluice,
    /// kafka-streams, raw-consumer).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Only these topologies in the Kafka throughput part (project,
    /// window_count, join, table_agg), as `--engines` does for engines:
    /// for profiling one.
    #[arg(long, value_delimiter = ',')]
    topologies: Vec<String>,
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

/// Which run of the harness measured a part: its figures are labelled
/// with this and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub when: String,
    pub scale: Scale,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
}

/// A part's figures with the run that measured them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement<T> {
    pub measured: Measured,
    pub data: T,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    #[serde(default)]
    pub kafka: Option<Measurement<Vec<throughput::Runs>>>,
    #[serde(default)]
    pub inproc: Option<Measurement<Vec<inproc::Runs>>>,
    #[serde(default)]
    pub nexmark: Option<Measurement<inproc::Nexmark>>,
    #[serde(default)]
    pub latency: Option<Measurement<latency::Latency>>,
    #[serde(default)]
    pub pull: Option<Measurement<pull::Pull>>,
    #[serde(default)]
    pub state: Option<Measurement<Vec<state::StateRuns>>>,
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
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "not a git checkout".into())
}

fn run(args: RunArgs) -> Fallible<()> {
    let root = args.root.clone();
    let names = throughput::Topology::ALL.map(|t| t.name());
    if let Some(t) = args
        .topologies
        .iter()
        .find(|t| !names.contains(&t.as_str()))
    {
        return Err(format!("no topology {t:?} (there are {})", names.join(", ")).into());
    }
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
    if args.scale.cache.is_empty() {
        return Err("--cache needs at least one setting".into());
    }
    if !(0.0..1.0).contains(&args.scale.warmup_fraction) {
        return Err("--warmup-fraction is at least 0 and below 1".into());
    }
    let measured = Measured {
        when: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        scale: args.scale.clone(),
        machine: Machine::read(),
        versions: versions.clone(),
    };
    // Parts not run now keep their figures, and their labels, from the
    // last results; a results file of an older layout is not read.
    let mut results = match std::fs::read_to_string(results_path(&root)) {
        Ok(old) if !args.only.is_empty() => serde_json::from_str(&old).unwrap_or_else(|e| {
            eprintln!("bench: not keeping the last results ({e}): an older layout");
            Results::default()
        }),
        _ => Results::default(),
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
                // The whole table is this run's: engines not run now are
                // left out, not kept from another run.
                let mut rows = vec![];
                let wanted =
                    |e: &str| args.engines.is_empty() || args.engines.iter().any(|x| x == e);
                let topologies = throughput::Topology::ALL.into_iter().filter(|t| {
                    args.topologies.is_empty() || args.topologies.iter().any(|x| x == t.name())
                });
                for t in topologies {
                    let mut runs = vec![];
                    if wanted("raw-consumer") {
                        runs.push(("raw-consumer", None));
                    }
                    for settings in setup.settings() {
                        for engine in ["sluice", "kafka-streams"] {
                            if wanted(engine) {
                                runs.push((engine, Some(settings)));
                            }
                        }
                    }
                    for (engine, settings) in runs {
                        rows.push(throughput::measure(
                            &setup,
                            &broker,
                            t,
                            engine,
                            settings,
                            setup.warmup_fraction,
                        )?);
                        // The whole table is this run's: engines not run now
                        // are left out, not kept from another run.
                        results.kafka = Some(Measurement {
                            measured: measured.clone(),
                            data: rows.clone(),
                        });
                        save(&root, &results)?;
                    }
                }
            }
            Part::Inproc => {
                results.inproc = Some(Measurement {
                    measured: measured.clone(),
                    data: inproc::topologies(&setup)?,
                })
            }
            Part::Nexmark => {
                results.nexmark = Some(Measurement {
                    measured: measured.clone(),
                    data: inproc::nexmark(&setup, &root)?,
                })
            }
            Part::Latency => {
                results.latency = Some(Measurement {
                    measured: measured.clone(),
                    data: latency::measure(&setup, &broker, &rt)?,
                })
            }
            Part::Pull => {
                results.pull = Some(Measurement {
                    measured: measured.clone(),
                    data: pull::measure(&setup, &broker, &rt)?,
                })
            }
            Part::State => {
                results.state = Some(Measurement {
                    measured: measured.clone(),
                    data: state::measure(&setup, &broker)?,
                })
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_settings_parse_from_the_command_line() {
        assert_eq!("off".parse::<CacheArg>(), Ok(CacheArg::Off));
        assert_eq!(
            "on".parse::<CacheArg>().map(CacheArg::bytes),
            Ok(10_485_760)
        );
        assert_eq!("4096".parse::<CacheArg>(), Ok(CacheArg::Bytes(4096)));
        assert_eq!(
            "big".parse::<CacheArg>(),
            Err("a cache is off, on or a number of bytes, not 'big'".to_string())
        );
        let cli = Cli::try_parse_from([
            "sluice-bench",
            "run",
            "--kafka",
            "k:1",
            "--sluice",
            "s",
            "--cache",
            "on,0",
        ])
        .unwrap();
        let Cmd::Run(args) = cli.command else {
            panic!("not a run")
        };
        let s = args.scale.settings();
        assert_eq!(
            s.iter().map(|x| x.cache_bytes).collect::<Vec<_>>(),
            [10_485_760, 0]
        );
        assert_eq!(args.scale.latency_rates, [1000, 20_000]);
    }
}

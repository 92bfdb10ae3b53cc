//! The `sluice` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sluice::{Engine, EngineConfig, StatementResult};

/// mimalloc, not glibc's malloc: the engine allocates and frees Arrow buffers
/// and small rows at a high rate, which glibc answers with chunk consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A SQL streaming engine in the family of ksqlDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a conformance run reads and how it reports.
#[derive(Args)]
struct ConformanceArgs {
    /// Test files or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Only cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Do not list the failing cases with their first difference.
    #[arg(long)]
    quiet: bool,
    /// The ratchet: the cases that must pass, one name a line
    /// (`file.json :: case`). Exit 1, naming them, if any of them does not
    /// pass; new passes are listed.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Rewrite the --baseline file with the cases that passed in this run.
    #[arg(long, requires = "baseline", conflicts_with = "filter")]
    write_baseline: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run ksqlDB's conformance cases (query-validation tests) in-process.
    Qtt {
        #[command(flatten)]
        run: ConformanceArgs,
        /// Run the cases' topics on this Kafka cluster (`host:port`)
        /// instead of in memory.
        #[arg(long, value_name = "BOOTSTRAP")]
        kafka: Option<String>,
    },
    /// Run ksqlDB's REST conformance cases (pull and push queries, INSERT
    /// VALUES) through Sluice's Postgres wire server.
    Rqtt {
        #[command(flatten)]
        run: ConformanceArgs,
    },
    /// Run the engine continuously on Kafka: the configured cluster, or an
    /// embedded in-memory broker when none is configured.
    Server {
        /// TOML settings file (environment variables and flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers (`host:port,...`); without one an embedded
        /// broker is started.
        #[arg(long, value_name = "BOOTSTRAP")]
        kafka: Option<String>,
        /// Data directory (state and catalog).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Statements to run when the data directory is new.
        #[arg(long)]
        statements: Option<PathBuf>,
        /// Service id (names the server's consumer groups and internal topics).
        #[arg(long)]
        service_id: Option<String>,
        /// Address Postgres clients connect to (default 127.0.0.1:5433).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
        /// TLS certificate chain (PEM) for Postgres clients; needs --tls-key.
        #[arg(long, value_name = "PEM")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "PEM")]
        tls_key: Option<PathBuf>,
        /// Prepended to every topic name the server uses.
        #[arg(long, value_name = "PREFIX")]
        topic_prefix: Option<String>,
        /// Root of sinks' relative locations: a directory or s3://bucket/prefix
        /// (default: DATA_DIR/analytics).
        #[arg(long, value_name = "DIR_OR_URL")]
        analytics: Option<String>,
    },
    /// Produce a case study's events (deterministic for a seed) to its topics.
    Gen {
        /// movieflix, gettaxi, social, mybank or logs.
        case: String,
        /// Kafka bootstrap servers (`host:port,...`).
        #[arg(long, value_name = "BOOTSTRAP", env = "SLUICE_KAFKA_BOOTSTRAP")]
        kafka: String,
        /// Events per second (of event time; also of wall time when paced).
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Event time spanned (e.g. 90s, 10m, 2h).
        #[arg(long, default_value = "1m")]
        duration: String,
        /// Seeds every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Time of the first event, milliseconds since the epoch (default: now).
        #[arg(long)]
        start: Option<i64>,
        /// Send as fast as possible instead of in real time.
        #[arg(long)]
        fast: bool,
        /// Prepended to every topic name (the server's topic_prefix).
        #[arg(long, default_value = "", env = "SLUICE_TOPIC_PREFIX")]
        topic_prefix: String,
    },
    /// Run every case study on an embedded broker, fed by its generator,
    /// and print queries to try with psql.
    Demo {
        /// Address Postgres clients connect to (default 127.0.0.1:5433).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
        /// Data directory (default: a new one under the temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Events per second, all cases together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
    },
    /// A seeded, bounded fuzz run of the SQL front end, the record
    /// decoders and the Postgres wire protocol; exits 1 on any panic or
    /// failure, 3 on a hang.
    Fuzz {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// SQL statements to run.
        #[arg(long, default_value_t = 100_000)]
        statements: u64,
        /// Records to decode.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Protocol messages to send.
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        /// Seed inputs (sql/*.sql, records/*).
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Where the current input and reproducers go (default: a new
        /// temporary directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Instead of a run, replay a SQL session it wrote (current.sql,
        /// panic-sql-N.sql) statement by statement.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Execute a SQL script against an in-process engine and print results.
    Run {
        /// The script.
        file: PathBuf,
        /// Data directory (state and catalog); a temporary one if absent.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Every command runs on a thread whose stack fits the deepest statement
    // the planner accepts (the main thread's is whatever `ulimit -s` says).
    let cli = std::thread::Builder::new()
        .name("sluice".into())
        .stack_size(sluice::server::STACK_BYTES)
        .spawn(run);
    match cli.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Errors, and the server's own warnings (what a restart on the
            // embedded broker lost, an open listen address).
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| "error,sluice::server=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours on a terminal only, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Qtt { run, kafka } => {
            let backend = match kafka {
                Some(k) => sluice::qtt::Backend::Kafka(k),
                None => sluice::qtt::Backend::Memory,
            };
            let reports = sluice::qtt::run_paths_on(&run.paths, run.filter.as_deref(), &backend);
            report(reports, &run)
        }
        Command::Rqtt { run } => {
            let reports = sluice::rqtt::run_paths(&run.paths, run.filter.as_deref());
            report(reports, &run)
        }
        Command::Server {
            config,
            kafka,
            data_dir,
            statements,
            service_id,
            listen,
            tls_cert,
            tls_key,
            topic_prefix,
            analytics,
        } => serve(sluice::server::ServerFlags {
            config,
            kafka,
            data_dir,
            statements,
            service_id,
            listen,
            tls_cert,
            tls_key,
            topic_prefix,
            analytics,
        }),
        Command::Gen {
            case,
            kafka,
            rate,
            duration,
            seed,
            start,
            fast,
            topic_prefix,
        } => generate(
            &case,
            kafka,
            rate,
            &duration,
            seed,
            start,
            fast,
            topic_prefix,
        ),
        Command::Demo {
            listen,
            data_dir,
            rate,
        } => demo(listen, data_dir, rate),
        Command::Fuzz {
            seed,
            statements,
            records,
            messages,
            corpus,
            out,
            replay: None,
        } => fuzz(sluice::fuzz::FuzzConfig {
            seed,
            statements,
            records,
            messages,
            corpus,
            out: out.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("sluice-fuzz-{}", std::process::id()))
            }),
        }),
        Command::Fuzz {
            replay: Some(file), ..
        } => match sluice::fuzz::replay(&file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { file, data_dir } => {
            let sql = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let tmp = tempfile::tempdir();
            let dir = match (&data_dir, &tmp) {
                (Some(d), _) => d.clone(),
                (None, Ok(t)) => t.path().to_path_buf(),
                (None, Err(e)) => {
                    eprintln!("error: cannot create a temporary directory: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut engine = match Engine::open(EngineConfig {
                data_dir: dir,
                properties: Default::default(),
            }) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match engine.execute(&sql) {
                Ok(results) => {
                    for r in results {
                        print_result(&r);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `sluice fuzz`: run, print the summary, fail on any panic or failure.
fn fuzz(config: sluice::fuzz::FuzzConfig) -> ExitCode {
    println!(
        "fuzz: seed {}, inputs and reproducers in {}",
        config.seed,
        config.out.display()
    );
    match sluice::fuzz::run(&config) {
        Ok(summary) => {
            print!("{}", summary.render());
            if summary.clean() {
                ExitCode::SUCCESS
            } else {
                eprintln!("fuzz: FAILED (see the panics and failures above)");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `sluice gen`: produce a case's events and say how many.
#[allow(clippy::too_many_arguments)]
fn generate(
    case: &str,
    bootstrap: String,
    rate: f64,
    duration: &str,
    seed: u64,
    start: Option<i64>,
    fast: bool,
    topic_prefix: String,
) -> ExitCode {
    let run = || -> sluice::Result<(sluice::cases::Case, usize)> {
        let case: sluice::cases::Case = case.parse()?;
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(sluice::Error::BadParameter(format!(
                "--rate must be a positive number of events per second, not {rate}"
            )));
        }
        let params = sluice::cases::Params {
            seed,
            rate,
            duration: sluice::cases::parse_duration(duration)?,
            start_ms: start.unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        };
        let target = sluice::cases::Target {
            bootstrap,
            topic_prefix,
            paced: !fast,
        };
        Ok((case, sluice::cases::produce(case, &params, &target)?))
    };
    match run() {
        Ok((case, n)) => {
            println!("{n} {} events produced", case.name());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Print a conformance run's report; with a baseline, exit 1 if a case
/// of it did not pass (or, with --write-baseline, rewrite it).
fn report(
    reports: sluice::Result<Vec<sluice::qtt::FileReport>>,
    run: &ConformanceArgs,
) -> ExitCode {
    use sluice::qtt::baseline::{self, Ratchet};
    let reports = match reports {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    sluice::qtt::print_report(&reports, !run.quiet);
    let Some(path) = &run.baseline else {
        return ExitCode::SUCCESS;
    };
    if run.write_baseline {
        return match baseline::write(path, &reports) {
            Ok(n) => {
                println!("baseline {} written: {n} passing cases", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::from(2)
            }
        };
    }
    let want = match baseline::read(path) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ratchet = Ratchet::compare(&want, &reports, run.filter.is_some());
    if !ratchet.new.is_empty() {
        println!(
            "{} cases pass that are not in {} (add them with --write-baseline):",
            ratchet.new.len(),
            path.display()
        );
        for n in &ratchet.new {
            println!("  NEW PASS {n}");
        }
    }
    if ratchet.holds() {
        println!(
            "baseline {}: ok (its {} cases pass)",
            path.display(),
            want.len()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "conformance regressed: {} cases of {} do not pass",
        ratchet.regressed.len() + ratchet.missing.len(),
        path.display()
    );
    for n in &ratchet.regressed {
        eprintln!("  REGRESSED {n}");
    }
    // Cases of files the run did not read at all, one line a file.
    let ran_files: std::collections::BTreeSet<&str> =
        reports.iter().map(|r| r.file.as_str()).collect();
    let mut unread: std::collections::BTreeMap<&str, usize> = Default::default();
    for n in &ratchet.missing {
        let file = n.split(" :: ").next().unwrap_or_default();
        if ran_files.contains(file) {
            eprintln!("  NOT RUN {n}");
        } else {
            *unread.entry(file).or_default() += 1;
        }
    }
    for (file, n) in unread {
        eprintln!("  NOT RUN {file} (its {n} cases)");
    }
    ExitCode::from(1)
}

fn print_result(r: &StatementResult) {
    match r {
        StatementResult::Done { message, .. } => {
            if !message.is_empty() {
                println!("{message}");
            }
        }
        StatementResult::Rows { columns, rows } => {
            println!("{}", columns.join(" | "));
            for row in rows {
                println!("{}", row.join(" | "));
            }
        }
    }
}

/// `sluice server`: start, say where Kafka is, run until SIGINT or SIGTERM.
fn serve(flags: sluice::server::ServerFlags) -> ExitCode {
    match start(&flags, |k| std::env::var(k).ok()) {
        Ok((_, server)) => run_until_signal(server),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Load the settings, start a server and say where Kafka is and where
/// clients connect.
fn start(
    flags: &sluice::server::ServerFlags,
    env: impl Fn(&str) -> Option<String>,
) -> sluice::Result<(sluice::server::ServerConfig, sluice::server::Server)> {
    let config = sluice::server::ServerConfig::load(flags, env)?;
    let server = sluice::server::Server::start(&config)?;
    // A closed stdout must not stop the server: what it says is optional.
    let mut out = std::io::stdout();
    let _ = if server.is_embedded() {
        writeln!(
            out,
            "Embedded Kafka broker (in memory: it keeps nothing across restarts) at {}",
            server.bootstrap()
        )
    } else {
        writeln!(out, "Kafka at {}", server.bootstrap())
    };
    let _ = writeln!(
        out,
        "Sluice server {} running; data in {}",
        config.service_id,
        config.data_dir.display()
    );
    let at = server.listen_address();
    let _ = writeln!(
        out,
        "Postgres clients: psql -h {} -p {}",
        at.ip(),
        at.port()
    );
    let tls = if config.tls.is_some() {
        "TLS offered"
    } else {
        "no TLS"
    };
    let _ = if config.users.is_empty() {
        writeln!(
            out,
            "Authentication: trust (no users configured: anyone who reaches {at} connects), {tls}"
        )
    } else {
        writeln!(
            out,
            "Authentication: SCRAM-SHA-256 passwords for {} user(s), {tls}",
            config.users.len()
        )
    };
    Ok((config, server))
}

/// Run the server's queries until SIGINT or SIGTERM.
fn run_until_signal(mut server: sluice::server::Server) -> ExitCode {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    match server.run(&stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `sluice demo`: a server on the embedded broker with every case study's
/// statements, their generators running, and queries to try.
fn demo(listen: Option<String>, data_dir: Option<PathBuf>, rate: f64) -> ExitCode {
    let data_dir = data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id()))
    });
    let flags = sluice::server::ServerFlags {
        data_dir: Some(data_dir),
        listen,
        ..Default::default()
    };
    // The demo brings its own broker and data: only the listen address and
    // the log level come from outside.
    let (config, server) = match start(&flags, |_| None) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Sinks commit files every 10 s, so the analytics store fills while
    // one watches.
    if let Err(e) = server.engine().execute("SET 'sink.roll.ms'='10000';") {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    for case in sluice::cases::Case::ALL {
        let loaded = server.engine().execute(case.queries());
        if let Err(e) = loaded {
            eprintln!("error: queries/{}.sql: {e}", case.name());
            return ExitCode::from(1);
        }
    }
    let start_ms = chrono::Utc::now().timestamp_millis();
    for (n, case) in sluice::cases::Case::ALL.into_iter().enumerate() {
        let params = sluice::cases::Params {
            seed: n as u64 + 1,
            rate: rate * case.demo_share(),
            duration: std::time::Duration::from_secs(24 * 3600),
            start_ms,
        };
        let target = sluice::cases::Target {
            bootstrap: server.bootstrap().to_string(),
            topic_prefix: String::new(),
            paced: true,
        };
        std::thread::spawn(move || {
            if let Err(e) = sluice::cases::produce(case, &params, &target) {
                eprintln!("error: the {} generator stopped: {e}", case.name());
            }
        });
    }
    let at = server.listen_address();
    let psql = format!("psql -h {} -p {} -U sluice", at.ip(), at.port());
    println!();
    println!(
        "Demo: the five case studies (queries/*.sql) are running, fed by their generators at about {rate} events/s in all."
    );
    println!(
        "Sinks write Parquet files under {}/analytics.",
        config.data_dir.display()
    );
    println!("Try (give it a minute for windows to fill):");
    for case in sluice::cases::Case::ALL {
        println!();
        println!("# {}", case.title());
        for step in sluice::cases::tour(case) {
            println!("# {}", step.what);
            println!("{psql} -c \"{}\"", step.sql);
        }
    }
    println!();
    println!("Stop the demo with Ctrl-C.");
    run_until_signal(server)
}

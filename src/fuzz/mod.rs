//! `sluice fuzz`: a seeded, bounded fuzz run of the SQL front end, the
//! record decoders and the Postgres wire protocol.
//!
//! Nothing here needs nightly Rust or a fuzzing crate: inputs come from a
//! SplitMix64 generator ([`crate::cases::Rng`]), so a seed gives the same
//! inputs on every machine, and a run is bounded by its counts. Three parts
//! run side by side, each on its own thread (with the stack the server's
//! threads have) and its own generator:
//!
//! - [`sql`]: grammar-aware statements (DDL with nested types, persistent,
//!   pull and push queries with functions from the registry, windows and
//!   joins, INSERTs, SHOW/DESCRIBE/DROP/TERMINATE/SET) and mutations of them
//!   and of the corpus, run on an in-process engine that is recreated in a
//!   fresh directory every few hundred statements.
//! - [`records`]: valid, mutated and random bytes for every key and value
//!   format against random schemas, decoded one by one and, in batches,
//!   through a stream and a persistent query on an engine.
//! - [`wire`]: well-formed and malformed Postgres messages sent over TCP to
//!   a server on 127.0.0.1 (embedded broker), which must still answer a
//!   query at the end.
//!
//! What fails a run: a panic anywhere in the process (a panic hook counts
//! them, also those the server's connection tasks swallow), an input that
//! does not finish within its time bound (a watchdog writes it out and ends
//! the process with status 3), and a crash (a stack overflow aborts the
//! process; the input being run is always on disk: `DIR/current.sql` holds
//! the SQL session so far, its last statement the one that was running).
//! Everything else, errors included, is an outcome and is counted.

mod deep;
mod mutate;
mod records;
mod sql;
mod sqlgen;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The stack of the fuzzing threads: the server's (every thread that plans
/// or runs statements there has this much), so what passes here passes
/// there.
const STACK_BYTES: usize = crate::server::STACK_BYTES;

/// What a run does.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    pub seed: u64,
    /// SQL statements to run.
    pub statements: u64,
    /// Records (keys and values) to decode.
    pub records: u64,
    /// Protocol messages to send.
    pub messages: u64,
    /// Seed inputs (`sql/*.sql`, `records/*`); the built-in ones without.
    pub corpus: Option<PathBuf>,
    /// Where the current input and any reproducer are written.
    pub out: PathBuf,
}

/// Counts by outcome, for one part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub inputs: u64,
    /// Outcome name (`ok`, `error 42601`, ...) to count.
    pub outcomes: BTreeMap<String, u64>,
    /// Internal errors (XX000: a broken invariant, never the user's
    /// fault), distinct messages with an input that gave each (a few).
    pub internal: BTreeMap<String, String>,
    /// Inputs that failed the run (a panic), with where the reproducer is.
    pub failures: Vec<String>,
}

/// Internal errors kept as examples.
const INTERNAL_EXAMPLES: usize = 20;

impl Tally {
    fn count(&mut self, outcome: impl Into<String>) {
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }

    /// Count an error; keep an internal one's message and input.
    fn error(&mut self, e: &Error, input: &str) {
        self.count(outcome_of(e));
        if e.sqlstate() == "XX000" && self.internal.len() < INTERNAL_EXAMPLES {
            let message: String = e.to_string().chars().take(300).collect();
            let input: String = input.chars().take(500).collect();
            self.internal.entry(message).or_insert(input);
        }
    }
}

/// A panic seen during the run (the part that ran into it lists the
/// reproducer it wrote among the failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicReport {
    pub thread: String,
    pub message: String,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub sql: Tally,
    pub records: Tally,
    pub wire: Tally,
    pub panics: Vec<PanicReport>,
    /// Failures that are not panics (the server stopped answering, a part
    /// could not start): each says what and where its input is.
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl Summary {
    /// No panic, no failure.
    pub fn clean(&self) -> bool {
        self.panics.is_empty() && self.failures.is_empty()
    }

    /// The summary as the command prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, t) in [
            ("sql statements", &self.sql),
            ("records", &self.records),
            ("protocol messages", &self.wire),
        ] {
            out.push_str(&format!("{name}: {}\n", t.inputs));
            for (outcome, n) in &t.outcomes {
                out.push_str(&format!("  {outcome}: {n}\n"));
            }
            for (message, input) in &t.internal {
                out.push_str(&format!("  internal error: {message}\n    from: {input}\n"));
            }
        }
        out.push_str(&format!("panics: {}\n", self.panics.len()));
        let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &self.panics {
            *distinct.entry(p.message.as_str()).or_default() += 1;
        }
        for (message, n) in distinct.iter().take(SHOWN) {
            out.push_str(&format!("  {n} x {message}\n"));
        }
        if distinct.len() > SHOWN {
            out.push_str(&format!(
                "  ... and {} more messages\n",
                distinct.len() - SHOWN
            ));
        }
        out.push_str(&format!("failures: {}\n", self.failures.len()));
        for f in self.failures.iter().take(SHOWN) {
            out.push_str(&format!("  {f}\n"));
        }
        if self.failures.len() > SHOWN {
            out.push_str(&format!("  ... and {} more\n", self.failures.len() - SHOWN));
        }
        out.push_str(&format!("elapsed: {:.1} s\n", self.elapsed.as_secs_f64()));
        out
    }
}

/// Failures and distinct panic messages the summary lists (the rest are
/// counted).
const SHOWN: usize = 20;

/// One part of a run, to run on its own thread.
type Part = Box<dyn FnOnce() -> Result<Tally> + Send>;

/// Run the three parts side by side and report.
pub fn run(config: &FuzzConfig) -> Result<Summary> {
    std::fs::create_dir_all(&config.out)?;
    let corpus = Corpus::load(config.corpus.as_deref())?;
    let started = Instant::now();
    // The server first: its own panic hook (one line per connection panic)
    // is in place once it has answered, and the run's hook goes around it.
    let server = match config.messages {
        0 => None,
        _ => Some(wire::WireServer::start(config)?),
    };
    let _watch = PanicWatch::start();
    let watchdog = Watchdog::start(config.out.clone());
    let mut summary = Summary::default();
    let mut parts: Vec<(&str, Part)> = vec![
        ("fuzz-sql", {
            let (c, corpus, hb) = (config.clone(), corpus.sql.clone(), watchdog.beat("sql"));
            Box::new(move || {
                let _done = Finished(hb.clone());
                sql::run(&c, &corpus, &hb)
            })
        }),
        ("fuzz-records", {
            let (c, corpus, hb) = (
                config.clone(),
                corpus.records.clone(),
                watchdog.beat("records"),
            );
            Box::new(move || {
                let _done = Finished(hb.clone());
                records::run(&c, &corpus, &hb)
            })
        }),
    ];
    if let Some(server) = server {
        let (c, hb) = (config.clone(), watchdog.beat("wire"));
        parts.push((
            "fuzz-wire",
            Box::new(move || {
                let _done = Finished(hb.clone());
                wire::run(&c, &hb, server)
            }),
        ));
    }
    let mut handles = Vec::new();
    for (name, part) in parts {
        let h = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(STACK_BYTES)
            .spawn(part)?;
        handles.push((name, h));
    }
    for (name, h) in handles {
        let tally = match h.join() {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                summary.failures.push(format!("{name}: {e}"));
                Tally::default()
            }
            // Counted by the panic hook.
            Err(_) => Tally::default(),
        };
        summary.failures.extend(tally.failures.iter().cloned());
        match name {
            "fuzz-sql" => summary.sql = tally,
            "fuzz-records" => summary.records = tally,
            _ => summary.wire = tally,
        }
    }
    watchdog.stop();
    summary.panics = take_panics();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Replay a SQL session a run wrote (`current.sql`, `panic-sql-N.sql`) on
/// a fresh engine, saying what each statement gave.
pub fn replay(file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file)?;
    let replaying = std::thread::Builder::new()
        .name("fuzz-replay".into())
        .stack_size(STACK_BYTES)
        .spawn(move || sql::replay(&text, &mut std::io::stdout()))?;
    replaying
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Seed inputs: SQL statements and record bytes.
#[derive(Debug, Clone, Default)]
struct Corpus {
    sql: Vec<String>,
    records: Vec<Vec<u8>>,
}

impl Corpus {
    /// `DIR/sql/*.sql` (split into statements) and `DIR/records/*` (one
    /// record per file); without a directory, the generators' own.
    fn load(dir: Option<&Path>) -> Result<Corpus> {
        let mut corpus = Corpus::default();
        let Some(dir) = dir else {
            return Ok(corpus);
        };
        for path in sorted_files(&dir.join("sql"))? {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::semantic(format!("cannot read {}: {e}", path.display())))?;
            corpus.sql.extend(split_corpus(&text));
        }
        for path in sorted_files(&dir.join("records"))? {
            corpus.records.push(std::fs::read(&path)?);
        }
        if corpus.sql.is_empty() && corpus.records.is_empty() {
            return Err(Error::semantic(format!(
                "no corpus in {}: expected sql/*.sql and records/*",
                dir.display()
            )));
        }
        Ok(corpus)
    }
}

/// A folder's files by name (none if it does not exist).
fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.is_file());
    files.sort();
    Ok(files)
}

/// A corpus file's statements: split at `;` at the end of a line, `--`
/// comment lines dropped (corpus statements may be malformed on purpose, so
/// the SQL parser cannot split them).
fn split_corpus(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            let s = current.trim().to_string();
            if !s.is_empty() {
                out.push(s);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

// ---- panics ---------------------------------------------------------------

/// Runs in progress (the hooks count panics only while one is).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static PANICS: Mutex<Vec<PanicReport>> = Mutex::new(Vec::new());

thread_local! {
    /// A hook of a run is counting this thread's panic (an older run's hook
    /// further in must not count it again).
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts panics while alive (a run), on every thread but the test
/// harness's (the fuzzing threads, the wire server's, the runtimes'),
/// after the hooks it wraps have reported them.
///
/// Each run puts its hook around the hooks in place: the wire server's
/// (which logs a connection's panic in one line and does not pass it on)
/// is then inside, and every panic reaches this one first.
struct PanicWatch;

impl PanicWatch {
    fn start() -> PanicWatch {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if COUNTING.with(|c| c.replace(true)) {
                previous(info);
                return;
            }
            previous(info);
            COUNTING.with(|c| c.set(false));
            if ACTIVE.load(Ordering::SeqCst) == 0 {
                return;
            }
            let thread = std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_string();
            // The test harness names its threads after the tests
            // (`module::tests::name`): their panics are theirs.
            if thread.contains("::") {
                return;
            }
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "a panic without a message".into()),
            };
            let message = match info.location() {
                Some(l) => format!("{message} at {}:{}", l.file(), l.line()),
                None => message,
            };
            let mut panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
            panics.push(PanicReport { thread, message });
        }));
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        PanicWatch
    }
}

impl Drop for PanicWatch {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn take_panics() -> Vec<PanicReport> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Panics counted so far on threads whose names start with one of
/// `threads` (a part checks after each input; the parts run side by side).
fn panics_on(threads: &[&str]) -> usize {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|p| threads.iter().any(|t| p.thread.starts_with(t)))
        .count()
}

// ---- hangs ----------------------------------------------------------------

/// How long one input may run before the run counts it as a hang.
const HANG_AFTER: Duration = Duration::from_secs(60);

/// A part's sign of life: when it last started an input, and what it is.
pub(crate) struct Heartbeat {
    part: &'static str,
    since: AtomicU64,
    what: Mutex<String>,
    epoch: Instant,
}

/// Marks a part's heartbeat finished when the part ends, however it ends.
struct Finished(Arc<Heartbeat>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.since.store(FINISHED, Ordering::Relaxed);
    }
}

/// A heartbeat whose part has ended.
const FINISHED: u64 = u64::MAX;

impl Heartbeat {
    /// A new input starts: `what` says which (and how to reproduce it).
    fn beat(&self, what: impl FnOnce() -> String) {
        self.since
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        if let Ok(mut w) = self.what.lock() {
            *w = what();
        }
    }
}

/// Ends the process (status 3) when a part's input runs longer than
/// [`HANG_AFTER`], after writing what it was to `DIR/hang.txt`: a hung
/// thread cannot be stopped from outside.
struct Watchdog {
    beats: Arc<Mutex<Vec<Arc<Heartbeat>>>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
}

impl Watchdog {
    fn start(out: PathBuf) -> Watchdog {
        let beats: Arc<Mutex<Vec<Arc<Heartbeat>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let (b, s) = (beats.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let now = epoch.elapsed().as_millis() as u64;
                let beats = b.lock().unwrap_or_else(|e| e.into_inner());
                for hb in beats.iter() {
                    let since = hb.since.load(Ordering::Relaxed);
                    if since != FINISHED
                        && now.saturating_sub(since) > HANG_AFTER.as_millis() as u64
                    {
                        let what = hb.what.lock().map(|w| w.clone()).unwrap_or_default();
                        let path = out.join("hang.txt");
                        let _ = std::fs::write(&path, format!("part {}\n{what}\n", hb.part));
                        eprintln!(
                            "fuzz: HANG: the {} part ran one input for over {} s; it is in {}",
                            hb.part,
                            HANG_AFTER.as_secs(),
                            path.display()
                        );
                        std::process::exit(3);
                    }
                }
            }
        });
        Watchdog { beats, stop, epoch }
    }

    fn beat(&self, part: &'static str) -> Arc<Heartbeat> {
        let hb = Arc::new(Heartbeat {
            part,
            since: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            what: Mutex::new(String::new()),
            epoch: self.epoch,
        });
        self.beats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hb.clone());
        hb
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The outcome name of an error: its SQLSTATE.
fn outcome_of(e: &Error) -> String {
    format!("error {}", e.sqlstate())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run of every part: nothing panics, hangs or fails, and each
    /// part ran what it was asked to.
    #[test]
    fn fuzz_smoke_run_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let config = FuzzConfig {
            seed: 7,
            statements: 1_000,
            records: 2_000,
            messages: 2_000,
            corpus: Some(corpus),
            out: dir.path().to_path_buf(),
        };
        let summary = run(&config).unwrap();
        assert!(summary.clean(), "{}", summary.render());
        assert_eq!(summary.sql.inputs, 1_000);
        assert_eq!(summary.records.inputs, 2_000);
        // A session's last messages may run past the count.
        assert!(
            (2_000..2_030).contains(&summary.wire.inputs),
            "{}",
            summary.render()
        );
        // The generators reach the engine: some statements succeed and some
        // are refused.
        assert!(summary.sql.outcomes.get("ok").copied().unwrap_or(0) > 100);
        assert!(
            summary
                .sql
                .outcomes
                .get("error 42601")
                .copied()
                .unwrap_or(0)
                > 10
        );
    }

    #[test]
    fn corpus_files_split_into_statements() {
        let text = "-- a comment\nCREATE STREAM s (a INT)\n  WITH (KAFKA_TOPIC='s');\nSELECT * FROM s;\nSELECT";
        assert_eq!(
            split_corpus(text),
            vec![
                "CREATE STREAM s (a INT)\n  WITH (KAFKA_TOPIC='s');".to_string(),
                "SELECT * FROM s;".to_string(),
                "SELECT".to_string()
            ]
        );
    }
}

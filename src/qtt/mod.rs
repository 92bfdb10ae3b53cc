//! The conformance runner: ksqlDB's query-validation test cases, run
//! in-process against in-memory topics.
//!
//! A case is a list of statements, input records and expected output
//! records (format: `../shared/conformance/ksqldb/README.md`). Each case (and
//! each of its `format` variants) gets a fresh engine in a temporary
//! directory; inputs are produced one at a time in file order, and after
//! each one every query runs until idle, so emission order is exactly
//! ksqlDB's with caching off. Outputs are decoded with the sink's formats
//! and compared field by field; `post` checks compare the created sources'
//! schemas and formats. Cases whose formats need a schema registry (AVRO,
//! PROTOBUF, JSON_SR) are reported as such, not run.
//!
//! Values compare by [`compare`]'s rules (ksqlDB's: JSON types distinct,
//! numbers exact, field names as written or upper-cased); an expected
//! exception's class must match how the case failed ([`expect`]); runs are
//! ratcheted by the set of passing cases ([`baseline`]).

pub mod baseline;
pub(crate) mod compare;
pub(crate) mod expect;
mod outputs;
mod post;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::connectors::formats::{encode_windowed_key, test_json_to_bytes};
use crate::connectors::kafka::KafkaTopics;
use crate::connectors::memory::MemoryTopics;
use crate::connectors::namespaced::Namespaced;
use crate::connectors::{OutRecord, Topics};
use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::planner::ast::{OptionValue, Statement};
use crate::planner::parser;

use expect::{Expected, Failure};
pub(crate) use outputs::{check_outputs, Arrivals};

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    NeedsRegistry,
    Disabled,
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub outcome: Outcome,
}

/// One file's results.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: String,
    pub cases: Vec<CaseResult>,
}

impl FileReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Passed)
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    pub fn needs_registry(&self) -> usize {
        self.count(|o| *o == Outcome::NeedsRegistry)
    }
}

const REGISTRY_FORMATS: &[&str] = &["AVRO", "PROTOBUF", "JSON_SR"];

/// Where the cases' topics live.
pub enum Backend {
    /// In memory, a fresh store per case.
    Memory,
    /// A Kafka cluster (`host:port`): each case's topics get a unique name
    /// prefix and are deleted after the case.
    Kafka(String),
}

/// The topics of a run: in memory, or a shared Kafka connection.
struct Store {
    kafka: Option<Arc<dyn Topics>>,
    run: String,
    cases: std::cell::Cell<usize>,
}

impl Store {
    fn open(backend: &Backend) -> Result<Self> {
        let kafka: Option<Arc<dyn Topics>> = match backend {
            Backend::Memory => None,
            Backend::Kafka(bootstrap) => Some(Arc::new(KafkaTopics::connect(bootstrap, &[])?)),
        };
        let run = format!(
            "qtt-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        Ok(Self {
            kafka,
            run,
            cases: std::cell::Cell::new(0),
        })
    }

    /// Topics for one case, and the namespace to clean up after it.
    fn for_case(&self) -> (Arc<dyn Topics>, Option<Arc<Namespaced>>) {
        match &self.kafka {
            None => (Arc::new(MemoryTopics::new()), None),
            Some(k) => {
                let n = self.cases.get();
                self.cases.set(n + 1);
                let ns = Arc::new(Namespaced::new(k.clone(), format!("{}-{n}-", self.run)));
                (ns.clone(), Some(ns))
            }
        }
    }
}

/// Deletes a case's Kafka topics when the case ends, however it ends.
struct Cleanup(Option<Arc<Namespaced>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(ns) = &self.0 {
            ns.delete_all();
        }
    }
}

/// Run the cases in these files (a folder means every `*.json` in it) in
/// memory. `filter` keeps cases whose name contains it.
pub fn run_paths(paths: &[PathBuf], filter: Option<&str>) -> Result<Vec<FileReport>> {
    run_paths_on(paths, filter, &Backend::Memory)
}

/// Run the cases in these files with their topics in `backend`.
pub fn run_paths_on(
    paths: &[PathBuf],
    filter: Option<&str>,
    backend: &Backend,
) -> Result<Vec<FileReport>> {
    let store = Store::open(backend)?;
    let mut reports = Vec::new();
    for f in json_files(paths)? {
        reports.push(run_file_in(&f, filter, &store)?);
    }
    Ok(reports)
}

/// The test files named: files as given, folders as their `*.json` files
/// in name order.
pub(crate) fn json_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Run one file in memory.
pub fn run_file(path: &Path, filter: Option<&str>) -> Result<FileReport> {
    run_file_in(path, filter, &Store::open(&Backend::Memory)?)
}

fn run_file_in(path: &Path, filter: Option<&str>, store: &Store) -> Result<FileReport> {
    run_file_with(path, filter, |t, fmt, cfg| run_case(t, fmt, cfg, store))
}

/// Run the cases of one file (each `format` / `config` variant apart) with
/// `run_case`; disabled cases are reported as such, not run.
pub(crate) fn run_file_with(
    path: &Path,
    filter: Option<&str>,
    mut run_case: impl FnMut(&Value, Option<&str>, Option<&str>) -> Outcome,
) -> Result<FileReport> {
    let text = std::fs::read_to_string(path)?;
    let stripped = strip_line_comments(&text);
    let doc: Value = serde_json::from_str(&stripped)
        .map_err(|e| Error::semantic(format!("{}: not a test file: {e}", path.display())))?;
    let tests = doc
        .get("tests")
        .and_then(|t| t.as_array())
        .cloned()
        .unwrap_or_default();
    let mut cases = Vec::new();
    for t in &tests {
        let name = t
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>")
            .to_string();
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let formats: Vec<Option<String>> = match t.get("format").and_then(|f| f.as_array()) {
            Some(fs) if !fs.is_empty() => {
                fs.iter().map(|f| f.as_str().map(str::to_string)).collect()
            }
            _ => vec![None],
        };
        let configs: Vec<Option<String>> = match t.get("config").and_then(|f| f.as_array()) {
            Some(cs) if !cs.is_empty() => {
                cs.iter().map(|c| c.as_str().map(str::to_string)).collect()
            }
            _ => vec![None],
        };
        for fmt in &formats {
            for cfg in &configs {
                let mut full = name.clone();
                if let Some(f) = fmt {
                    full.push_str(&format!(" - {f}"));
                }
                if let Some(c) = cfg {
                    full.push_str(&format!(" - {c}"));
                }
                let outcome = if t.get("enabled").and_then(|e| e.as_bool()) == Some(false) {
                    Outcome::Disabled
                } else {
                    run_case(t, fmt.as_deref(), cfg.as_deref())
                };
                cases.push(CaseResult {
                    name: full,
                    outcome,
                });
            }
        }
    }
    Ok(FileReport {
        file: path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        cases,
    })
}

/// The JSON of two files has `//` comments; drop them (outside strings).
pub(crate) fn strip_line_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut escaped = false;
        let mut cut = line.len();
        let bytes = line.as_bytes();
        for (i, &c) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                b'\\' if in_str => escaped = true,
                b'"' => in_str = !in_str,
                b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => {
                    cut = i;
                    break;
                }
                _ => {}
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

pub(crate) fn needs_registry(statements: &[String], fmt: Option<&str>) -> bool {
    if fmt.is_some_and(|f| REGISTRY_FORMATS.contains(&f.to_uppercase().as_str())) {
        return true;
    }
    let re =
        regex::Regex::new(r"(?i)(format|key_format|value_format)\s*=\s*'(avro|protobuf|json_sr)'")
            .expect("static regex");
    statements.iter().any(|s| re.is_match(s))
}

fn run_case(t: &Value, fmt: Option<&str>, cfg: Option<&str>, store: &Store) -> Outcome {
    guarded(t, fmt, cfg, |statements, dir| {
        run_case_in(t, statements, dir, store)
    })
}

/// Run one case variant with `body` (given the statements with `{FORMAT}`
/// and `{CONFIG}` substituted, and a fresh temporary directory): cases that
/// need a schema registry are not run, and a panic is a failure.
pub(crate) fn guarded(
    t: &Value,
    fmt: Option<&str>,
    cfg: Option<&str>,
    body: impl FnOnce(&[String], &Path) -> std::result::Result<(), String>,
) -> Outcome {
    let statements: Vec<String> = t
        .get("statements")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(|s| {
                    let mut s = s.to_string();
                    if let Some(f) = fmt {
                        s = s.replace("{FORMAT}", f);
                    }
                    if let Some(c) = cfg {
                        s = s.replace("{CONFIG}", c);
                    }
                    s
                })
                .collect()
        })
        .unwrap_or_default();
    if needs_registry(&statements, fmt) {
        return Outcome::NeedsRegistry;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(format!("cannot create a temporary directory: {e}")),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        body(&statements, dir.path())
    }));
    match result {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(msg)) => Outcome::Failed(msg),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome::Failed(format!("PANIC: {msg}"))
        }
    }
}

fn run_case_in(
    t: &Value,
    statements: &[String],
    dir: &Path,
    store: &Store,
) -> std::result::Result<(), String> {
    let properties = case_properties(t);
    let (topics, namespace) = store.for_case();
    let _cleanup = Cleanup(namespace);
    let mut engine = Engine::open_with_topics(
        EngineConfig {
            data_dir: dir.to_path_buf(),
            properties,
        },
        topics,
    )
    .map_err(|e| format!("engine: {e}"))?;
    let expected_error = Expected::qtt(t);
    let inputs = create_topics(&engine, t, statements)?;

    // Statements.
    for (n, s) in statements.iter().enumerate() {
        match engine.execute(s) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                // ksqlDB prefixes positions as `Line: L, Col: C: ` with the
                // line in the whole script (one statement per line).
                let located = match (&e, e.position()) {
                    (
                        crate::Error::Semantic { message, .. }
                        | crate::Error::Syntax { message, .. },
                        Some(p),
                    ) => format!("Line: {}, Col: {}: {message}", n as u64 + p.line, p.column),
                    _ => msg.clone(),
                };
                return match &expected_error {
                    Some(want)
                        if msg.contains(want.message.as_str())
                            || located.contains(want.message.as_str()) =>
                    {
                        want.check_kind(Failure::Statement(e.sqlstate()))
                            .map_err(|k| format!("{k}: {msg:?}\n  statement: {s}"))
                    }
                    Some(want) => Err(format!(
                        "expected error containing {:?}, got {msg:?}",
                        want.message
                    )),
                    None => Err(format!("statement failed: {msg}\n  statement: {s}")),
                };
            }
        }
    }
    if let Some(e) = run(&mut engine) {
        return check_runtime_error(&expected_error, e);
    }
    let mut arrivals = Arrivals::default();
    arrivals.collect(&engine)?;

    // Inputs, one at a time.
    for (n, i) in inputs.iter().enumerate() {
        produce_input(&engine, i).map_err(|e| format!("input {n}: {e}"))?;
        if let Some(e) = run(&mut engine) {
            return check_runtime_error(&expected_error, e);
        }
        arrivals.collect(&engine)?;
    }
    if let Some(want) = &expected_error {
        return Err(format!(
            "expected {} with a message containing {:?}, but every statement succeeded \
             and every input was processed",
            want.describe(),
            want.message
        ));
    }

    check_outputs(&engine, &arrivals, t)?;
    if let Some(post) = t.get("post") {
        post::check_post(&engine, post)?;
    }
    Ok(())
}

/// A case's `properties` as strings.
pub(crate) fn case_properties(t: &Value) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    if let Some(props) = t.get("properties").and_then(|p| p.as_object()) {
        for (k, v) in props {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            properties.insert(k.clone(), s);
        }
    }
    properties
}

/// Create the topics the harness creates up front (the case's `topics`,
/// those named by `KAFKA_TOPIC` in its statements, those of its inputs);
/// returns the inputs.
pub(crate) fn create_topics(
    engine: &Engine,
    t: &Value,
    statements: &[String],
) -> std::result::Result<Vec<Value>, String> {
    if let Some(topics) = t.get("topics").and_then(|t| t.as_array()) {
        for tp in topics {
            if let Some(name) = tp.get("name").and_then(|n| n.as_str()) {
                let parts = tp.get("partitions").and_then(|p| p.as_i64()).unwrap_or(1) as i32;
                engine
                    .ensure_topic(name, parts)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    for s in statements {
        if let Ok(parsed) = parser::parse(s) {
            for p in parsed {
                if let Statement::CreateSource(c) = &p.statement {
                    if let Some((topic, _)) = c.with.get("KAFKA_TOPIC") {
                        let parts = match c.with.get("PARTITIONS") {
                            Some((OptionValue::Number(n), _)) => n.parse().unwrap_or(1),
                            _ => 1,
                        };
                        let _ = engine.ensure_topic(&topic.as_string(), parts);
                    }
                }
            }
        }
    }
    let inputs = t
        .get("inputs")
        .and_then(|i| i.as_array())
        .cloned()
        .unwrap_or_default();
    for i in &inputs {
        if let Some(topic) = i.get("topic").and_then(|t| t.as_str()) {
            let _ = engine.ensure_topic(topic, 1);
        }
    }
    Ok(inputs)
}

/// Run the queries until idle; the first failure, if any query failed.
pub(crate) fn run(engine: &mut Engine) -> Option<String> {
    if let Err(e) = engine.run_until_idle() {
        return Some(e.to_string());
    }
    engine.failed_queries().into_iter().next().map(|(_, e)| e)
}

fn check_runtime_error(
    expected: &Option<Expected>,
    msg: String,
) -> std::result::Result<(), String> {
    match expected {
        Some(want) if msg.contains(want.message.as_str()) => want
            .check_kind(Failure::Processing)
            .map_err(|k| format!("{k}: {msg:?}")),
        _ => Err(format!("query failed while processing: {msg}")),
    }
}

/// The source declared over a topic (the first one reading it, preferring
/// one that is not written by a query).
fn source_for_topic<'a>(engine: &'a Engine, topic: &str) -> Option<&'a crate::catalog::Source> {
    let mut candidates: Vec<_> = engine
        .catalog()
        .sources()
        .filter(|s| s.topic == topic)
        .collect();
    candidates.sort_by_key(|s| s.query.is_some());
    candidates.into_iter().next()
}

pub(crate) fn produce_input(engine: &Engine, i: &Value) -> std::result::Result<(), String> {
    let topic = i
        .get("topic")
        .and_then(|t| t.as_str())
        .ok_or("input without topic")?;
    let ts = i.get("timestamp").and_then(|t| t.as_i64()).unwrap_or(0);
    let key_json = i.get("key").cloned().unwrap_or(Value::Null);
    let value_json = i.get("value").cloned().unwrap_or(Value::Null);
    let headers: Vec<(String, Option<Arc<[u8]>>)> = i
        .get("headers")
        .and_then(|h| h.as_array())
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    let k = h
                        .get("KEY")
                        .and_then(|k| k.as_str())
                        .unwrap_or_default()
                        .to_string();
                    let v = h
                        .get("VALUE")
                        .and_then(|v| v.as_str())
                        .and_then(base64_decode)
                        .map(Arc::from);
                    (k, v)
                })
                .collect()
        })
        .unwrap_or_default();
    let (key, value) = match source_for_topic(engine, topic) {
        Some(src) => {
            let key_fields: Vec<_> = src.key_columns().map(|c| c.field()).collect();
            let value_fields: Vec<_> = src.value_columns().map(|c| c.field()).collect();
            let mut key = if key_json.is_null() {
                None
            } else {
                test_json_to_bytes(&src.key_format, &key_json, &key_fields, true)
                    .map_err(|e| e.to_string())?
            };
            if let (Some(w), Some(win)) = (src.window, i.get("window")) {
                let start = win.get("start").and_then(|s| s.as_i64()).unwrap_or(0);
                let end = win.get("end").and_then(|s| s.as_i64()).unwrap_or(0);
                key = Some(encode_windowed_key(
                    key.as_deref().unwrap_or(&[]),
                    start,
                    end,
                    w.kind,
                ));
            }
            let value = if value_json.is_null() {
                None
            } else {
                test_json_to_bytes(&src.value_format, &value_json, &value_fields, false)
                    .map_err(|e| e.to_string())?
            };
            (key, value)
        }
        None => (raw_bytes(&key_json), raw_bytes(&value_json)),
    };
    engine
        .topics()
        .produce(OutRecord {
            partition: Some(0),
            headers,
            ..OutRecord::new(topic, key.map(Arc::from), value.map(Arc::from), ts)
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn raw_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Print the per-file table and the failures; returns (passed, failed).
pub fn print_report(reports: &[FileReport], show_failures: bool) -> (usize, usize) {
    let (mut p, mut f, mut r) = (0, 0, 0);
    println!(
        "{:<40} {:>7} {:>7} {:>15}",
        "file", "passed", "failed", "needs-registry"
    );
    for rep in reports {
        println!(
            "{:<40} {:>7} {:>7} {:>15}",
            rep.file,
            rep.passed(),
            rep.failed(),
            rep.needs_registry()
        );
        p += rep.passed();
        f += rep.failed();
        r += rep.needs_registry();
    }
    if show_failures {
        for rep in reports {
            for c in &rep.cases {
                if let Outcome::Failed(msg) = &c.outcome {
                    println!(
                        "FAILED {} :: {}\n  {}",
                        rep.file,
                        c.name,
                        msg.replace('\n', "\n  ")
                    );
                }
            }
        }
    }
    println!("needs registry: {r}");
    println!("{p} passed, {f} failed");
    (p, f)
}

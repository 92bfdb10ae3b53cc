//! The wire conformance runner: ksqlDB's REST query-validation cases
//! (`rqtt`: pull queries, push queries, `INSERT ... VALUES`) sent over the
//! Postgres protocol to Sluice's own server.
//!
//! Per case (and per `format` variant) the runner opens a fresh in-memory
//! engine in a temporary directory, serves it with `server::pg::serve` on
//! `127.0.0.1:<any port>` and connects a real client (tokio-postgres, no
//! TLS). It then follows ksqlDB's harness (`RestTestExecutor`):
//!
//! 1. The statements are split at the first one starting with `SELECT `:
//!    those before are *admin* statements, the rest *queries*.
//! 2. The admin statements are sent one at a time; after each the runner
//!    runs the engine until idle (ksqlDB's queries run continuously; here
//!    the runner drives them, so every run is deterministic).
//! 3. The inputs are produced straight to the in-memory topics, one at a
//!    time in file order, each followed by a run until idle; with
//!    `inputConditions.waitForActivePushQuery` they are produced only once
//!    the first query (a push query) is registered in the engine.
//! 4. The queries are sent one at a time. A pull query is answered and
//!    completes. A push query (`EMIT CHANGES`) is read while the runner
//!    drives the engine: with `LIMIT` until the server completes it; without,
//!    until the expected number of rows arrived, then it is cancelled. A
//!    push query that stops producing for [`STALL`] is ended there.
//!
//! The harness's server runs with `auto.offset.reset=earliest`, so push
//! queries see the inputs produced before them. The case's `properties`
//! (ksqlDB's client sends them with every request) are the engine's, which
//! every session starts from.
//!
//! Checks: a query's expected `header` schema gives the column names, which
//! must match the row description's (case-insensitively; types are not
//! compared, Postgres has its own); expected `row.columns` are compared with
//! the text values ([`value_matches`]) as a multiset unless
//! `outputConditions.verifyOrder`; a table push query's `OP` column is
//! compared with the rows' tombstone flags (`delete` is a tombstone).
//! REST-only details (admin entities, the `finalMessage`) are not
//! compared. `expectedError` means
//! some statement must fail with a message containing the expected one;
//! `outputs` are checked as the in-process runner checks them. Cases whose
//! formats need a schema registry are reported as such, not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::connectors::memory::MemoryTopics;
use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::qtt::{self, Arrivals, FileReport};
use crate::server::pg::{self, SharedEngine};

/// How long a push query may go without a new row before the runner ends
/// it and compares what arrived.
pub const STALL: Duration = Duration::from_secs(2);

/// Run the cases in these files (a folder means every `*.json` in it).
/// `filter` keeps cases whose name contains it.
pub fn run_paths(paths: &[PathBuf], filter: Option<&str>) -> Result<Vec<FileReport>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut reports = Vec::new();
    for f in qtt::json_files(paths)? {
        reports.push(qtt::run_file_with(&f, filter, |t, fmt, cfg| {
            qtt::guarded(t, fmt, cfg, |statements, dir| {
                run_case(&rt, t, statements, dir)
            })
        })?);
    }
    Ok(reports)
}

/// One query's answer as the client saw it.
#[derive(Debug, Default)]
struct Answer {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

/// What went wrong with a statement: the server's message, or a runner
/// failure (not something an expected error can match).
enum Failure {
    Statement(String),
    Runner(String),
}

type Step<T> = std::result::Result<T, Failure>;

/// The running server and the client's connection; the server task is
/// stopped when this is dropped.
struct Wire {
    engine: SharedEngine,
    client: Arc<tokio_postgres::Client>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn run_case(
    rt: &tokio::runtime::Runtime,
    t: &Value,
    statements: &[String],
    dir: &Path,
) -> std::result::Result<(), String> {
    // The harness's server configuration, then the case's properties.
    let mut properties = BTreeMap::from([("auto.offset.reset".to_string(), "earliest".into())]);
    properties.extend(qtt::case_properties(t));
    let engine = Engine::open_with_topics(
        EngineConfig {
            data_dir: dir.to_path_buf(),
            properties,
        },
        Arc::new(MemoryTopics::new()),
    )
    .map_err(|e| format!("engine: {e}"))?;
    let inputs = qtt::create_topics(&engine, t, statements)?;
    let engine: SharedEngine = Arc::new(Mutex::new(engine));
    let wire = rt.block_on(connect(engine)).map_err(|e| e.to_string())?;

    let expected_error = t
        .get("expectedError")
        .map(|e| e.get("message").and_then(|m| m.as_str()).unwrap_or(""));
    let wait_for_push = t
        .get("inputConditions")
        .and_then(|c| c.get("waitForActivePushQuery"))
        .and_then(|w| w.as_bool())
        .unwrap_or(false);
    let verify_order = t
        .get("outputConditions")
        .and_then(|c| c.get("verifyOrder"))
        .and_then(|w| w.as_bool())
        .unwrap_or(false);
    let first_query = statements
        .iter()
        .position(|s| s.starts_with("SELECT "))
        .unwrap_or(statements.len());
    let (admin, queries) = statements.split_at(first_query);
    let expected: Vec<&Value> = t
        .get("responses")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|r| r.get("query")).collect())
        .unwrap_or_default();

    let outcome = (|| -> Step<Vec<Answer>> {
        for s in admin {
            rt.block_on(wire.client.simple_query(s))
                .map_err(|e| Failure::Statement(server_message(&e)))?;
            drive(&wire.engine)?;
        }
        if !wait_for_push {
            produce(&wire.engine, &inputs)?;
        }
        let mut answers = Vec::new();
        for (n, q) in queries.iter().enumerate() {
            let want_rows = expected.get(n).map(|e| expected_rows(e).len()).unwrap_or(0);
            let answer = if is_push(q) {
                let inputs: &[Value] = if wait_for_push && n == 0 {
                    &inputs
                } else {
                    &[]
                };
                push_query(rt, &wire, q, want_rows, inputs)?
            } else {
                rt.block_on(pull_query(&wire.client, q))?
            };
            answers.push(answer);
        }
        Ok(answers)
    })();
    let answers = match (outcome, expected_error) {
        (Err(Failure::Runner(e)), _) => return Err(e),
        (Err(Failure::Statement(msg)), Some(want)) if msg.contains(want) => return Ok(()),
        (Err(Failure::Statement(msg)), Some(want)) => {
            return Err(format!("expected error containing {want:?}, got {msg:?}"))
        }
        (Err(Failure::Statement(msg)), None) => return Err(format!("statement failed: {msg}")),
        (Ok(_), Some(want)) => {
            return Err(format!(
                "expected error containing {want:?}, but every statement succeeded"
            ))
        }
        (Ok(answers), None) => answers,
    };
    for (n, (want, got)) in expected.iter().zip(&answers).enumerate() {
        compare_answer(want, got, verify_order)
            .map_err(|e| format!("query {n} ({}): {e}", queries[n]))?;
    }
    if expected.len() > answers.len() {
        return Err(format!(
            "{} query responses expected, {} queries sent",
            expected.len(),
            answers.len()
        ));
    }
    let engine = pg::lock(&wire.engine);
    let mut arrivals = Arrivals::default();
    arrivals.collect(&engine)?;
    qtt::check_outputs(&engine, &arrivals, t)
}

/// Serve the engine on a free local port and connect a client to it.
async fn connect(engine: SharedEngine) -> Result<Wire> {
    let listener = pg::bind(([127, 0, 0, 1], 0).into()).await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(pg::serve(listener, engine.clone(), pg::Security::trust()));
    let config = format!("host=127.0.0.1 port={port} user=rqtt dbname=rqtt");
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .map_err(|e| Error::internal(format!("cannot connect to the server: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "rqtt connection ended");
        }
    });
    Ok(Wire {
        engine,
        client: Arc::new(client),
        server,
    })
}

/// The server's message for a failed statement.
fn server_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Run the engine until idle; a query failing while processing fails the
/// statement that is running (as ksqlDB reports it to the client).
fn drive(engine: &SharedEngine) -> Step<()> {
    match qtt::run(&mut pg::lock(engine)) {
        Some(e) => Err(Failure::Statement(e)),
        None => Ok(()),
    }
}

/// Produce the inputs one at a time, running the engine after each.
fn produce(engine: &SharedEngine, inputs: &[Value]) -> Step<()> {
    for (n, i) in inputs.iter().enumerate() {
        qtt::produce_input(&pg::lock(engine), i)
            .map_err(|e| Failure::Runner(format!("input {n}: {e}")))?;
        drive(engine)?;
    }
    Ok(())
}

/// `EMIT CHANGES` / `EMIT FINAL` outside quotes: a push query.
fn is_push(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    words
        .windows(2)
        .any(|w| w[0] == "EMIT" && matches!(w[1].as_str(), "CHANGES" | "FINAL"))
}

/// `LIMIT n` at the end: the server completes the query itself.
fn has_limit(sql: &str) -> bool {
    let words: Vec<String> = sql
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    words.len() >= 2 && words[words.len() - 2] == "LIMIT"
}

/// A pull query: all of its rows.
async fn pull_query(client: &tokio_postgres::Client, sql: &str) -> Step<Answer> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| Failure::Statement(server_message(&e)))?;
    let mut answer = Answer::default();
    for m in messages {
        take(&mut answer, m);
    }
    Ok(answer)
}

fn take(answer: &mut Answer, m: SimpleQueryMessage) {
    match m {
        SimpleQueryMessage::RowDescription(cols) => {
            answer.columns = cols.iter().map(|c| c.name().to_string()).collect()
        }
        SimpleQueryMessage::Row(r) => {
            answer
                .rows
                .push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
        _ => {}
    }
}

/// A push query: started over the wire, read while the runner drives the
/// engine (producing `inputs` once the query is registered).
fn push_query(
    rt: &tokio::runtime::Runtime,
    wire: &Wire,
    sql: &str,
    want_rows: usize,
    inputs: &[Value],
) -> Step<Answer> {
    let limited = has_limit(sql);
    let answer = Arc::new(Mutex::new(Answer::default()));
    let seen = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (client, answer, seen, sql) = (
            wire.client.clone(),
            answer.clone(),
            seen.clone(),
            sql.to_string(),
        );
        rt.spawn(async move {
            let stream = client
                .simple_query_raw(&sql)
                .await
                .map_err(|e| server_message(&e))?;
            futures::pin_mut!(stream);
            while let Some(m) = stream.next().await {
                let m = m.map_err(|e| server_message(&e))?;
                let mut a = answer.lock().unwrap_or_else(|e| e.into_inner());
                take(&mut a, m);
                seen.store(a.rows.len() + 1, Ordering::SeqCst);
                if !limited && a.rows.len() >= want_rows {
                    break;
                }
            }
            Ok::<(), String>(())
        })
    };
    let before = pg::lock(&wire.engine).push_query_count();
    let mut produced = inputs.is_empty();
    let mut last = (0, Instant::now());
    while !reader.is_finished() {
        if !produced && pg::lock(&wire.engine).push_query_count() > before {
            produce(&wire.engine, inputs)?;
            produced = true;
        }
        drive(&wire.engine)?;
        let now = seen.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > STALL {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let done = reader.is_finished();
    let result = if done {
        rt.block_on(reader)
            .map_err(|e| Failure::Runner(format!("the push query's reader failed: {e}")))?
    } else {
        reader.abort();
        Ok(())
    };
    if !done || !limited {
        // Stop the query on the server; the connection stays usable.
        let token = wire.client.cancel_token();
        let _ = rt.block_on(token.cancel_query(NoTls));
    }
    result.map_err(Failure::Statement)?;
    let mut a = answer.lock().unwrap_or_else(|e| e.into_inner());
    Ok(std::mem::take(&mut *a))
}

/// The expected rows of a query response (its `row` entries).
fn expected_rows(want: &Value) -> Vec<&Value> {
    want.as_array()
        .map(|a| a.iter().filter_map(|e| e.get("row")).collect())
        .unwrap_or_default()
}

/// Compare a query's answer with its expected response.
fn compare_answer(
    want: &Value,
    got: &Answer,
    verify_order: bool,
) -> std::result::Result<(), String> {
    let header = want.as_array().and_then(|a| {
        a.iter()
            .filter_map(|e| e.get("header"))
            .find_map(|h| h.get("schema").and_then(|s| s.as_str()))
    });
    // A table's push query ends its rows with an `OP` column (insert,
    // update, delete): compared with the expected rows' tombstone flags.
    let names = header.map(schema_names);
    let marked = names.as_ref().is_some_and(|n| {
        got.columns.len() == n.len() + 1 && got.columns.last().is_some_and(|c| c.starts_with("OP"))
    });
    let columns = &got.columns[..got.columns.len() - usize::from(marked)];
    if let Some(names) = &names {
        let same = names.len() == columns.len()
            && names
                .iter()
                .zip(columns)
                .all(|(a, b)| a.eq_ignore_ascii_case(b));
        if !same {
            return Err(format!(
                "columns differ: expected {names:?}, got {:?}",
                got.columns
            ));
        }
    }
    let rows: Vec<Value> = expected_rows(want)
        .into_iter()
        .filter_map(|r| {
            let mut cells = r.get("columns")?.clone();
            if let (true, Some(cells)) = (marked, cells.as_array_mut()) {
                let tombstone = r.get("tombstone").and_then(Value::as_bool).unwrap_or(false);
                cells.push(Value::Bool(tombstone));
            }
            Some(cells)
        })
        .collect();
    let got = &Answer {
        columns: got.columns.clone(),
        rows: got
            .rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if let (true, Some(op)) = (marked, r.last_mut()) {
                    *op = Some(
                        if op.as_deref() == Some("delete") {
                            "t"
                        } else {
                            "f"
                        }
                        .into(),
                    );
                }
                r
            })
            .collect(),
    };
    let shown = || {
        format!(
            "\n  expected: {}\n  actual:   {}",
            rows.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n            "),
            got.rows
                .iter()
                .map(|r| show_row(r))
                .collect::<Vec<_>>()
                .join("\n            ")
        )
    };
    if rows.len() != got.rows.len() {
        return Err(format!(
            "expected {} rows, got {}{}",
            rows.len(),
            got.rows.len(),
            shown()
        ));
    }
    if verify_order {
        for (n, (w, g)) in rows.iter().zip(&got.rows).enumerate() {
            if !row_matches(w, g) {
                return Err(format!("row {n} differs{}", shown()));
            }
        }
        return Ok(());
    }
    // A multiset: every expected row takes one distinct actual row.
    let mut used = vec![false; got.rows.len()];
    for w in &rows {
        let found = got
            .rows
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && row_matches(w, g));
        match found {
            Some((i, _)) => used[i] = true,
            None => return Err(format!("expected row {w} is missing{}", shown())),
        }
    }
    Ok(())
}

fn show_row(row: &[Option<String>]) -> String {
    let cells: Vec<String> = row
        .iter()
        .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
        .collect();
    format!("[{}]", cells.join(", "))
}

fn row_matches(want: &Value, got: &[Option<String>]) -> bool {
    match want.as_array() {
        Some(cells) => {
            cells.len() == got.len()
                && cells
                    .iter()
                    .zip(got)
                    .all(|(w, g)| value_matches(w, g.as_deref()))
        }
        None => false,
    }
}

/// An expected JSON value against a column's text: null is SQL NULL,
/// numbers compare numerically (within 1e-6), strings exactly, booleans as
/// Postgres' `t`/`f`, arrays and objects by parsing the text as JSON
/// (objects' fields found case-insensitively).
pub(crate) fn value_matches(want: &Value, got: Option<&str>) -> bool {
    let Some(text) = got else {
        return want.is_null();
    };
    match want {
        Value::Null => false,
        Value::Bool(b) => matches!(
            (b, text),
            (true, "t" | "true" | "TRUE") | (false, "f" | "false" | "FALSE")
        ),
        Value::String(s) => s == text || same_bytes(s, text),
        Value::Number(_) => serde_json::from_str::<Value>(text.trim())
            .is_ok_and(|v| v.is_number() && qtt::json_matches(want, &v)),
        Value::Array(_) | Value::Object(_) => {
            serde_json::from_str::<Value>(text).is_ok_and(|v| qtt::json_matches(want, &v))
        }
    }
}

/// BYTES: ksqlDB's JSON shows them in base64, Postgres' text form is
/// `\\x` and hex.
fn same_bytes(base64: &str, text: &str) -> bool {
    let Some(hex) = text.strip_prefix("\\x") else {
        return false;
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes.is_some_and(|b| qtt::base64_decode(base64).is_some_and(|d| d == b))
}

/// The column names of a ksqlDB header schema (`` `A` STRING KEY, `B`
/// STRUCT<`X` INT, `Y` INT> ``): the first name of each top-level item.
pub(crate) fn schema_names(schema: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in schema.char_indices() {
        match c {
            '`' => quoted = !quoted,
            '<' | '(' if !quoted => depth += 1,
            '>' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                items.push(&schema[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&schema[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.strip_prefix('`') {
            Some(rest) => rest.split('`').next().unwrap_or_default().to_string(),
            None => item
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_compare_as_the_text_encoding_says() {
        assert!(value_matches(&json!(null), None));
        assert!(!value_matches(&json!(null), Some("")));
        assert!(!value_matches(&json!(""), None));
        assert!(value_matches(&json!(100), Some("100")));
        assert!(value_matches(&json!(1.5), Some("1.5000000001")));
        assert!(!value_matches(&json!(1.5), Some("1.6")));
        assert!(!value_matches(&json!(1), Some("one")));
        assert!(value_matches(&json!("11"), Some("11")));
        assert!(!value_matches(&json!("11"), Some("11.0")));
        assert!(value_matches(&json!(true), Some("t")));
        assert!(value_matches(&json!(false), Some("f")));
        assert!(!value_matches(&json!(true), Some("f")));
        assert!(value_matches(&json!([1, 2]), Some("[1,2]")));
        assert!(!value_matches(&json!([1, 2]), Some("[2,1]")));
        assert!(value_matches(
            &json!({"A": 1, "b": [true]}),
            Some(r#"{"A":1.0,"B":[true]}"#)
        ));
        assert!(!value_matches(&json!({"A": 1}), Some(r#"{"A":1,"B":2}"#)));
        assert!(!value_matches(&json!({"A": 1}), Some("not json")));
        assert!(value_matches(&json!("IQ=="), Some("\\x21")));
        assert!(!value_matches(&json!("IQ=="), Some("\\x22")));
    }

    #[test]
    fn header_schemas_give_column_names() {
        assert_eq!(
            schema_names("`ROWTIME` BIGINT, `K` STRING KEY, `ID` INTEGER"),
            vec!["ROWTIME", "K", "ID"]
        );
        assert_eq!(
            schema_names("`S` STRUCT<`A` INTEGER, `B` MAP<STRING, INT>>, `D` DECIMAL(4, 2)"),
            vec!["S", "D"]
        );
        assert_eq!(schema_names("`a,b` STRING"), vec!["a,b"]);
        assert_eq!(schema_names(""), Vec::<String>::new());
    }

    #[test]
    fn rows_compare_as_a_multiset_unless_ordered() {
        let want = json!([{"header": {"schema": "`K` STRING, `V` INT"}},
            {"row": {"columns": ["a", 1]}}, {"row": {"columns": ["b", 2]}},
            {"finalMessage": "Limit Reached"}]);
        let got = Answer {
            columns: vec!["k".into(), "v".into()],
            rows: vec![
                vec![Some("b".into()), Some("2".into())],
                vec![Some("a".into()), Some("1".into())],
            ],
        };
        assert!(compare_answer(&want, &got, false).is_ok());
        assert!(compare_answer(&want, &got, true).is_err());
        let renamed = Answer {
            columns: vec!["k".into(), "w".into()],
            rows: got.rows.clone(),
        };
        assert!(compare_answer(&want, &renamed, false).is_err());
    }

    #[test]
    fn push_and_limit_are_recognised() {
        assert!(is_push("SELECT * FROM s EMIT CHANGES LIMIT 2;"));
        assert!(!is_push("SELECT 'EMIT CHANGES' FROM t;"));
        assert!(has_limit("SELECT * FROM s EMIT CHANGES LIMIT 2;"));
        assert!(!has_limit("SELECT * FROM s EMIT CHANGES;"));
    }
}

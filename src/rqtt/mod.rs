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
//! 4. The queries are sent one at a time, each first described (Parse and
//!    Describe: the column types) and then run as a simple query (its
//!    text values). A pull query is answered and completes. A push query
//!    (`EMIT CHANGES`) is read while the runner drives the engine: with
//!    `LIMIT` until the server completes it; without, until the expected
//!    rows arrived and then [`QUIET`] more passed without a row (so a row
//!    too many is seen and fails the case), then it is cancelled. A push
//!    query that stops producing for [`STALL`] is ended there.
//!
//! The harness's server runs with `auto.offset.reset=earliest`, so push
//! queries see the inputs produced before them. The case's `properties`
//! (ksqlDB's client sends them with every request) are the engine's, which
//! every session starts from.
//!
//! Checks: each query's answer against its expected response as
//! [`compare`] says (header names and types exact, values typed and exact);
//! REST-only details (admin entities, the `finalMessage`) are not compared.
//! `expectedError` means the *last* statement must fail, answered with an
//! error whose message contains the expected one and whose SQLSTATE is of
//! the kind the REST error type and status name (`crate::qtt::expect`);
//! `outputs` are checked as the in-process runner checks them. Cases whose
//! formats need a schema registry are reported as such, not run.

mod compare;

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
use crate::qtt::expect::{self, Expected};
use crate::qtt::{self, Arrivals, FileReport};
use crate::server::pg::{self, SharedEngine};
use compare::{compare_answer, expected_rows, Answer};

/// How long a push query may go without a new row before the runner ends
/// it and compares what arrived.
pub const STALL: Duration = Duration::from_secs(5);

/// How long the runner waits for a push query to start (with
/// `waitForActivePushQuery`, the inputs are produced only then).
pub const REGISTER: Duration = Duration::from_secs(60);

/// How long a push query without `LIMIT` is still read, with the engine
/// driven, after its expected rows arrived: any row in that time is one
/// too many.
pub const QUIET: Duration = Duration::from_secs(2);

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

/// What went wrong while the case ran.
enum Failure {
    /// The server answered statement `index` with an error.
    Statement {
        index: usize,
        sqlstate: String,
        message: String,
    },
    /// A query failed while the runner drove the engine (during statement
    /// `index`, or while producing the inputs after it).
    Processing { index: usize, message: String },
    /// The runner itself failed (not something an expected error can
    /// match).
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

    let expected_error = Expected::rqtt(t);
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
        for (index, s) in admin.iter().enumerate() {
            rt.block_on(wire.client.simple_query(s))
                .map_err(|e| statement_failure(index, &e))?;
            drive(&wire.engine, index)?;
        }
        if !wait_for_push {
            produce(&wire.engine, &inputs, admin.len().saturating_sub(1))?;
        }
        let mut answers = Vec::new();
        for (n, q) in queries.iter().enumerate() {
            let index = admin.len() + n;
            let want_rows = expected.get(n).map(|e| expected_rows(e).len()).unwrap_or(0);
            let types = rt.block_on(wire.client.prepare(q));
            let mut answer = if is_push(q) {
                let inputs: &[Value] = if wait_for_push && n == 0 {
                    &inputs
                } else {
                    &[]
                };
                push_query(rt, &wire, q, index, want_rows, inputs)?
            } else {
                rt.block_on(pull_query(&wire.client, q, index))?
            };
            // The query ran: the server must be able to describe it.
            answer.types = types
                .map_err(|e| {
                    Failure::Runner(format!(
                        "the server answered `{q}` but could not describe it: {}",
                        server_message(&e)
                    ))
                })?
                .columns()
                .iter()
                .map(|c| c.type_().clone())
                .collect();
            answers.push(answer);
        }
        Ok(answers)
    })();
    let last = statements.len().saturating_sub(1);
    let answers = match (outcome, expected_error) {
        (Err(Failure::Runner(e)), _) => return Err(e),
        (
            Err(Failure::Statement {
                index,
                sqlstate,
                message,
            }),
            Some(want),
        ) if message.contains(want.message.as_str()) => {
            want.check_kind(expect::Failure::Statement(&sqlstate))
                .map_err(|k| format!("{k}: {message:?}"))?;
            if index != last {
                return Err(format!(
                    "the expected error came from statement {} of {}, not the last: {message:?}",
                    index + 1,
                    statements.len()
                ));
            }
            return Ok(());
        }
        (Err(Failure::Processing { message, .. }), Some(want))
            if message.contains(want.message.as_str()) =>
        {
            want.check_kind(expect::Failure::Processing)
                .map_err(|k| format!("{k}: {message:?}"))?;
            return Ok(());
        }
        (
            Err(Failure::Statement { message, .. } | Failure::Processing { message, .. }),
            Some(want),
        ) => {
            return Err(format!(
                "expected error containing {:?}, got {message:?}",
                want.message
            ))
        }
        (Err(Failure::Statement { message, .. }), None) => {
            return Err(format!("statement failed: {message}"))
        }
        (Err(Failure::Processing { index, message }), None) => {
            return Err(format!(
                "a query failed while processing (after statement {}): {message}",
                index + 1
            ))
        }
        (Ok(_), Some(want)) => {
            return Err(format!(
                "expected {} with a message containing {:?}, but every statement succeeded",
                want.describe(),
                want.message
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
    // Column names as ksqlDB spells them, which the cases expect.
    let config = format!(
        "host=127.0.0.1 port={port} user=rqtt dbname=rqtt options='-c sluice.identifier_case=upper'"
    );
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

/// Statement `index` failed: the server's error response, or (no
/// response) a runner failure.
fn statement_failure(index: usize, e: &tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(d) => Failure::Statement {
            index,
            sqlstate: d.code().code().to_string(),
            message: d.message().to_string(),
        },
        None => Failure::Runner(format!("statement {}: {e}", index + 1)),
    }
}

/// Run the engine until idle; a query failing while processing is a
/// failure during statement `index`.
fn drive(engine: &SharedEngine, index: usize) -> Step<()> {
    match qtt::run(&mut pg::lock(engine)) {
        Some(message) => Err(Failure::Processing { index, message }),
        None => Ok(()),
    }
}

/// Produce the inputs one at a time, running the engine after each.
fn produce(engine: &SharedEngine, inputs: &[Value], index: usize) -> Step<()> {
    for (n, i) in inputs.iter().enumerate() {
        qtt::produce_input(&pg::lock(engine), i)
            .map_err(|e| Failure::Runner(format!("input {n}: {e}")))?;
        drive(engine, index)?;
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

/// A pull query (statement `index`): all of its rows.
async fn pull_query(client: &tokio_postgres::Client, sql: &str, index: usize) -> Step<Answer> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| statement_failure(index, &e))?;
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

/// A push query (statement `index`): started over the wire, read while
/// the runner drives the engine (producing `inputs` once the query is
/// registered), until the server completes it (`LIMIT`), [`QUIET`] after
/// its expected rows arrived, or [`STALL`] after its last row.
fn push_query(
    rt: &tokio::runtime::Runtime,
    wire: &Wire,
    sql: &str,
    index: usize,
    want_rows: usize,
    inputs: &[Value],
) -> Step<Answer> {
    let limited = has_limit(sql);
    let answer = Arc::new(Mutex::new(Answer::default()));
    // Messages seen, and rows among them.
    let seen = Arc::new(AtomicUsize::new(0));
    let rows = Arc::new(AtomicUsize::new(0));
    // Counted before the query is sent: the server may start it before the
    // reader below is even scheduled.
    let before = pg::lock(&wire.engine).push_query_count();
    let reader = {
        let (client, answer, seen, rows, sql) = (
            wire.client.clone(),
            answer.clone(),
            seen.clone(),
            rows.clone(),
            sql.to_string(),
        );
        rt.spawn(async move {
            let stream = client
                .simple_query_raw(&sql)
                .await
                .map_err(|e| statement_failure(index, &e))?;
            futures::pin_mut!(stream);
            while let Some(m) = stream.next().await {
                let m = m.map_err(|e| statement_failure(index, &e))?;
                let mut a = answer.lock().unwrap_or_else(|e| e.into_inner());
                take(&mut a, m);
                rows.store(a.rows.len(), Ordering::SeqCst);
                seen.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<(), Failure>(())
        })
    };
    let mut produced = inputs.is_empty();
    let started = Instant::now();
    let mut last = (0, Instant::now());
    while !reader.is_finished() {
        if !produced {
            if pg::lock(&wire.engine).push_query_count() > before {
                produce(&wire.engine, inputs, index)?;
                produced = true;
                // Quiet and stall count from here: the query may have taken
                // long to start on a loaded machine.
                last.1 = Instant::now();
            } else if started.elapsed() > REGISTER {
                reader.abort();
                return Err(Failure::Runner(format!(
                    "the push query was not running {} s after it was sent",
                    REGISTER.as_secs()
                )));
            }
        }
        drive(&wire.engine, index)?;
        let now = seen.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let quiet = last.1.elapsed();
        let complete = !limited && rows.load(Ordering::SeqCst) >= want_rows;
        if produced && ((complete && quiet > QUIET) || quiet > STALL) {
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
    if !done {
        // Stop the query on the server; the connection stays usable.
        let token = wire.client.cancel_token();
        let _ = rt.block_on(token.cancel_query(NoTls));
    }
    result?;
    let mut a = answer.lock().unwrap_or_else(|e| e.into_inner());
    Ok(std::mem::take(&mut *a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qtt::Outcome;
    use serde_json::json;

    /// Run one rqtt case and return its outcome.
    fn outcome(case: Value) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("case.json");
        std::fs::write(&path, json!({ "tests": [case] }).to_string()).unwrap();
        let mut reports = run_paths(&[path], None).unwrap();
        assert_eq!(reports.len(), 1);
        reports.remove(0).cases.remove(0).outcome
    }

    fn failed_with(o: &Outcome, text: &str) -> bool {
        matches!(o, Outcome::Failed(m) if m.contains(text))
    }

    /// Three records in a stream; a push query without LIMIT.
    fn push(expected: &[Value]) -> Value {
        let mut response = vec![json!({"header": {"schema": "`ID` INTEGER KEY, `V` STRING"}})];
        response.extend(expected.iter().map(|r| json!({"row": {"columns": r}})));
        json!({
            "name": "push",
            "statements": [
                "CREATE STREAM S (ID INT KEY, V STRING) WITH (kafka_topic='s', value_format='JSON');",
                "SELECT * FROM S EMIT CHANGES;"
            ],
            "inputs": [
                {"topic": "s", "key": 1, "value": {"V": "a"}},
                {"topic": "s", "key": 2, "value": {"V": "b"}},
                {"topic": "s", "key": 3, "value": {"V": "c"}}
            ],
            "responses": [{"admin": {}}, {"query": response}]
        })
    }

    #[test]
    fn a_push_query_without_limit_is_read_past_its_expected_rows() {
        let all = [json!([1, "a"]), json!([2, "b"]), json!([3, "c"])];
        assert_eq!(outcome(push(&all)), Outcome::Passed);
        let o = outcome(push(&all[..2]));
        assert!(failed_with(&o, "expected 2 rows, got 3"), "{o:?}");
    }

    #[test]
    fn a_string_is_not_an_integer_columns_value() {
        let o = outcome(push(&[json!(["1", "a"]), json!([2, "b"]), json!([3, "c"])]));
        assert!(
            failed_with(&o, "expected row [\"1\",\"a\"] is missing"),
            "{o:?}"
        );
    }

    fn failing(statements: &[&str], error: Value) -> Value {
        json!({"name": "failing", "statements": statements, "expectedError": error})
    }

    #[test]
    fn an_expected_error_is_the_last_statements_and_of_its_kind() {
        let create =
            "CREATE STREAM S (ID INT KEY, V STRING) WITH (kafka_topic='s', value_format='JSON');";
        let bad = "SELECT NOPE FROM S EMIT CHANGES;";
        let client_error = json!({
            "type": "io.confluent.ksql.rest.entity.KsqlErrorMessage",
            "message": "NOPE", "status": 400
        });
        assert_eq!(
            outcome(failing(&[create, bad], client_error.clone())),
            Outcome::Passed
        );
        let o = outcome(failing(
            &[create, bad, "SELECT * FROM S EMIT CHANGES LIMIT 1;"],
            client_error,
        ));
        assert!(failed_with(&o, "not the last"), "{o:?}");
        let o = outcome(failing(
            &[create, bad],
            json!({"message": "NOPE", "status": 500}),
        ));
        assert!(
            failed_with(&o, "expected a statement failing with a system error"),
            "{o:?}"
        );
    }

    #[test]
    fn push_and_limit_are_recognised() {
        assert!(is_push("SELECT * FROM s EMIT CHANGES LIMIT 2;"));
        assert!(!is_push("SELECT 'EMIT CHANGES' FROM t;"));
        assert!(has_limit("SELECT * FROM s EMIT CHANGES LIMIT 2;"));
        assert!(!has_limit("SELECT * FROM s EMIT CHANGES;"));
    }
}

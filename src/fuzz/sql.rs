//! The SQL part: generated, corpus and mutated statements on an in-process
//! engine, each inside `catch_unwind`.
//!
//! Statements run as the wire server runs them: a script is parsed, each
//! statement executed; a `SELECT` with `EMIT` starts a push query (with a
//! `LIMIT`, its rows taken once the engine is idle, then ended), one without
//! is a pull query. After each statement the engine runs its queries until
//! idle, so inserted rows flow through the persistent queries' expressions.
//! The engine is recreated in a fresh directory every [`ENGINE_EVERY`]
//! statements, which bounds its state.
//!
//! Before a statement runs, it is appended to `DIR/current.sql`, which holds
//! every statement since the engine was created: if the process dies (a
//! stack overflow aborts it), that file reproduces the crash. A panic copies
//! it to `DIR/panic-sql-N.sql`.

use std::io::Write;
use std::panic::AssertUnwindSafe;

use super::mutate::mutate_statement;
use super::sqlgen::SqlGen;
use super::{panics_on, FuzzConfig, Heartbeat, Tally};
use crate::cases::Rng;
use crate::engine::{Engine, EngineConfig, StatementResult};
use crate::error::Result;
use crate::planner::ast::Statement;
use crate::planner::parser;

/// Statements per engine.
const ENGINE_EVERY: u64 = 200;

/// Statements the corpus and the generator seed when no corpus is given.
const BUILT_IN: &[&str] = &[
    "CREATE STREAM S1 (ID STRING KEY, A INT, B STRING, TS BIGINT) WITH (KAFKA_TOPIC='s1', PARTITIONS=1, VALUE_FORMAT='JSON');",
    "INSERT INTO S1 (ID, A, B, TS) VALUES ('k', 1, 'x', 1000);",
    "CREATE TABLE T1 AS SELECT ID, COUNT(*) AS N FROM S1 GROUP BY ID EMIT CHANGES;",
    "SELECT * FROM T1 WHERE ID = 'k';",
    "SELECT A + 1 AS X FROM S1 EMIT CHANGES LIMIT 1;",
];

/// One engine and the directory it lives in.
struct Session {
    engine: Engine,
    _dir: tempfile::TempDir,
    log: std::fs::File,
}

impl Session {
    fn open(config: &FuzzConfig, first: u64) -> Result<Session> {
        let dir = tempfile::Builder::new()
            .prefix("engine-")
            .tempdir_in(&config.out)?;
        let engine = Engine::open(EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        })?;
        let mut log = std::fs::File::create(config.out.join("current.sql"))?;
        writeln!(
            log,
            "-- sluice fuzz --seed {}: the SQL session from statement {first}",
            config.seed
        )?;
        Ok(Session {
            engine,
            _dir: dir,
            log,
        })
    }
}

pub(super) fn run(config: &FuzzConfig, corpus: &[String], hb: &Heartbeat) -> Result<Tally> {
    let mut rng = Rng::new(config.seed ^ 0x5351_4c5f_6675_7a7a);
    let mut gen = SqlGen::new(rng.fork(1));
    let corpus: Vec<String> = if corpus.is_empty() {
        BUILT_IN.iter().map(|s| s.to_string()).collect()
    } else {
        corpus.to_vec()
    };
    let mut tally = Tally::default();
    let mut session: Option<Session> = None;
    for i in 0..config.statements {
        if i % ENGINE_EVERY == 0 {
            close(session.take());
            gen.reset();
            session = Some(Session::open(config, i)?);
        }
        let Some(s) = session.as_mut() else {
            continue;
        };
        let (text, declared) = match rng.below(20) {
            0..=12 => gen.statement(),
            13..=15 => {
                let (base, _) = gen.statement();
                (mutate_statement(&mut rng, &base), None)
            }
            16..=17 => {
                let base = rng.pick(&corpus).cloned().unwrap_or_default();
                (mutate_statement(&mut rng, &base), None)
            }
            _ => (rng.pick(&corpus).cloned().unwrap_or_default(), None),
        };
        writeln!(s.log, "{text}")?;
        s.log.flush()?;
        hb.beat(|| {
            format!(
                "seed {} statement {i}; the session so far is in {}",
                config.seed,
                config.out.join("current.sql").display()
            )
        });
        tally.inputs += 1;
        let panics = panics_on(&["fuzz-sql"]);
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| run_script(&mut s.engine, &text)));
        match outcome {
            Ok(Ok(ids)) => {
                tally.count("ok");
                gen.queries.extend(ids);
                if let Some(src) = declared {
                    gen.sources.push(src);
                }
            }
            Ok(Err(e)) => tally.error(&e, &text),
            Err(_) => {
                tally.count("panic");
                let path = config.out.join(format!("panic-sql-{i}.sql"));
                std::fs::copy(config.out.join("current.sql"), &path)?;
                tally.failures.push(format!(
                    "SQL statement {i} panicked; the session that led to it is in {}",
                    path.display()
                ));
                // The engine may be broken half-way: start over.
                close(session.take());
                gen.reset();
                session = Some(Session::open(config, i + 1)?);
                continue;
            }
        }
        if panics_on(&["fuzz-sql"]) > panics {
            // A panic caught inside (a query's task): count it too.
            let path = config.out.join(format!("panic-sql-{i}.sql"));
            std::fs::copy(config.out.join("current.sql"), &path)?;
            tally.failures.push(format!(
                "a panic while running SQL statement {i}; the session is in {}",
                path.display()
            ));
        }
        // Queries that failed while processing are an outcome, not a crash.
        let failed = s.engine.failed_queries().len();
        if failed > 0 {
            tally.count("query failed while processing");
            for (id, _) in s.engine.failed_queries() {
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    s.engine.execute(&format!("TERMINATE {id};"))
                }));
            }
        }
    }
    close(session);
    Ok(tally)
}

/// Rounds of processing after a statement, at most: a cycle of queries
/// (A into B, B into A) never goes idle, and the run must go on.
const MAX_ROUNDS: usize = 20;

/// Run the engine's queries until idle or for [`MAX_ROUNDS`] rounds.
fn settle(engine: &mut Engine) -> Result<()> {
    for _ in 0..MAX_ROUNDS {
        if engine.run_once()? == 0 {
            return Ok(());
        }
    }
    Ok(())
}

/// Drop an engine, a panic in its drop counted by the hook.
fn close(session: Option<Session>) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(session)));
}

/// Run a script's statements as the wire server does; the ids of the
/// queries it started.
fn run_script(engine: &mut Engine, text: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for p in parser::parse(text)? {
        match &p.statement {
            Statement::Select(q) if q.emit.is_some() => {
                let mut query = engine.start_push_query(&p.text)?;
                let limit = query.limit.unwrap_or(0);
                settle(engine)?;
                let mut rows = 0u64;
                while let Some(changes) = query.changes.try_recv() {
                    rows += changes.len() as u64;
                    if rows >= limit {
                        break;
                    }
                }
                drop(query);
                // The next round sees the session gone and ends the query.
                engine.run_once()?;
            }
            Statement::Select(_) => {
                engine.pull_query(&p.text)?;
            }
            _ => {
                if let StatementResult::Done {
                    query_id: Some(id), ..
                } = engine.execute_parsed(&p)?
                {
                    ids.push(id);
                }
                // Rows flow after statements that write or start a query
                // (the rest leave the queries idle: polling every query
                // after each of them would cost the run most of its time).
                if matches!(
                    p.statement,
                    Statement::InsertValues { .. }
                        | Statement::InsertInto { .. }
                        | Statement::CreateAs(_)
                ) {
                    settle(engine)?;
                }
            }
        }
    }
    Ok(ids)
}

/// Run a SQL session file (`current.sql`, `panic-sql-N.sql`: one statement
/// per line) on a fresh engine as the run did, saying what each statement
/// gave; a panic propagates.
pub(super) fn replay(text: &str, out: &mut dyn Write) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut engine = Engine::open(EngineConfig {
        data_dir: dir.path().to_path_buf(),
        properties: Default::default(),
    })?;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("-- ") || line.trim().is_empty() {
            continue;
        }
        let shown: String = line.chars().take(200).collect();
        writeln!(out, "{}: {shown}", i + 1)?;
        out.flush()?;
        match run_script(&mut engine, line) {
            Ok(_) => writeln!(out, "  ok")?,
            Err(e) => writeln!(out, "  error {}: {}", e.sqlstate(), e.message())?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `sluice fuzz`: ARRAY and MAP literals in INSERT VALUES whose
    /// elements differ in type (INT and BIGINT; a MAP and an empty MAP)
    /// reached DataFusion's `make_array` uncoerced, and Arrow panicked
    /// ("Arrays with inconsistent types passed to MutableArrayData").
    #[test]
    fn insert_values_coerces_mixed_element_types() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        })
        .unwrap();
        engine
            .execute(
                "CREATE STREAM S1 (ID STRING KEY, A ARRAY<INT>, M MAP<STRING, INT>, \
                 N MAP<STRING, MAP<STRING, INT>>) \
                 WITH (KAFKA_TOPIC='s1', PARTITIONS=1, VALUE_FORMAT='JSON');",
            )
            .unwrap();
        for insert in [
            "INSERT INTO S1 (ID, A) VALUES ('a', ARRAY[1, -2147483648]);",
            "INSERT INTO S1 (ID, M) VALUES ('m', MAP('x' := 1, 'y' := -2147483648));",
            "INSERT INTO S1 (ID, N) VALUES ('n', MAP('x' := MAP(), 'y' := MAP('z' := 2)));",
        ] {
            run_script(&mut engine, insert).unwrap_or_else(|e| panic!("{insert}: {e}"));
        }
        let (_, batches) = engine.pull_query("SELECT ID, A, M, N FROM S1;").unwrap();
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let want = [
            "+----+------------------+------------------------+--------------------+",
            "| ID | A                | M                      | N                  |",
            "+----+------------------+------------------------+--------------------+",
            "| a  | [1, -2147483648] |                        |                    |",
            "| m  |                  | {x: 1, y: -2147483648} |                    |",
            "| n  |                  |                        | {x: {}, y: {z: 2}} |",
            "+----+------------------+------------------------+--------------------+",
        ];
        assert_eq!(shown, want.join("\n"));
    }

    /// Found by `sluice fuzz`: a record whose time is near `i64::MAX` (a
    /// TIMESTAMP column given 9223372036854775807) overflowed the window
    /// bounds of TUMBLING/HOPPING windows ("attempt to add with overflow" in
    /// `time_window.rs`), SESSION windows (`session_window.rs`) and EMIT
    /// FINAL (`suppress.rs`), and the query's task panicked.
    #[test]
    fn windows_take_record_times_at_the_end_of_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        })
        .unwrap();
        let script = [
            "CREATE STREAM S1 (ID STRING KEY, TS BIGINT) \
             WITH (KAFKA_TOPIC='s1', PARTITIONS=1, VALUE_FORMAT='JSON', TIMESTAMP='TS');",
            "CREATE TABLE TUMBLING_N AS SELECT ID, COUNT(*) AS N FROM S1 \
             WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY ID EMIT CHANGES;",
            "CREATE TABLE HOPPING_N AS SELECT ID, COUNT(*) AS N FROM S1 \
             WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY ID EMIT CHANGES;",
            "CREATE TABLE SESSION_N AS SELECT ID, COUNT(*) AS N FROM S1 \
             WINDOW SESSION (10 SECONDS) GROUP BY ID EMIT CHANGES;",
            "CREATE TABLE FINAL_N AS SELECT ID, COUNT(*) AS N FROM S1 \
             WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 SECOND) GROUP BY ID EMIT FINAL;",
            "INSERT INTO S1 (ID, TS) VALUES ('a', 1000);",
            "INSERT INTO S1 (ID, TS) VALUES ('a', 9223372036854775807);",
            "INSERT INTO S1 (ID, TS) VALUES ('a', 9223372036854775806);",
        ];
        for statement in script {
            run_script(&mut engine, statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        assert_eq!(engine.failed_queries(), vec![]);
        let mut shown = Vec::new();
        for table in ["TUMBLING_N", "HOPPING_N", "SESSION_N", "FINAL_N"] {
            let sql = format!("SELECT ID, WINDOWSTART, WINDOWEND, N FROM {table} WHERE ID = 'a';");
            let (_, batches) = engine.pull_query(&sql).unwrap();
            shown.push(format!(
                "{table}\n{}",
                datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap()
            ));
        }
        // The records at the end of time are late for the time windows
        // (their windows end at i64::MAX, which is then the stream time), so
        // only [0, 10000) holds a count and EMIT FINAL has closed nothing
        // yet; the session windows take them as one session of two.
        let want = [
            "TUMBLING_N",
            "+----+-------------+-----------+---+",
            "| ID | WINDOWSTART | WINDOWEND | N |",
            "+----+-------------+-----------+---+",
            "| a  | 0           | 10000     | 1 |",
            "+----+-------------+-----------+---+",
            "HOPPING_N",
            "+----+-------------+-----------+---+",
            "| ID | WINDOWSTART | WINDOWEND | N |",
            "+----+-------------+-----------+---+",
            "| a  | 0           | 10000     | 1 |",
            "+----+-------------+-----------+---+",
            "SESSION_N",
            "+----+---------------------+---------------------+---+",
            "| ID | WINDOWSTART         | WINDOWEND           | N |",
            "+----+---------------------+---------------------+---+",
            "| a  | 1000                | 1000                | 1 |",
            "| a  | 9223372036854775806 | 9223372036854775807 | 2 |",
            "+----+---------------------+---------------------+---+",
            "FINAL_N",
            "++",
            "++",
        ];
        assert_eq!(shown.join("\n"), want.join("\n"));
    }
}

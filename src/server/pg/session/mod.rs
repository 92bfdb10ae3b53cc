//! One connection's session: its properties, and how a script sent over the
//! wire is run a statement at a time.
//!
//! Besides Sluice's own statements, ordinary drivers send a few Postgres
//! statements on their own: transaction blocks (`BEGIN`, `COMMIT`,
//! `ROLLBACK`, savepoints: [`super::transaction`]), `SET name = value` /
//! `RESET name` of Postgres settings and `SHOW name`. Those are answered
//! here; Sluice's `SET 'property'='value'` (quoted) and `SHOW STREAMS|...`
//! go to the engine.
//!
//! - [`script`]: a script split into statements, positions in it;
//! - [`settings`]: Postgres settings and the statements that set them;
//! - [`prepare`]: what Parse makes of a statement (columns, parameters,
//!   the fast path it may take);
//! - [`statements`]: the session's side of COPY FROM STDIN and cursors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::common::ScalarValue;
use futures::{stream, StreamExt};
use pgwire::api::results::{FieldFormat, FieldInfo, Response, Tag};
use pgwire::api::Type;
use pgwire::messages::response::TransactionStatus;

mod prepare;
mod script;
mod settings;
mod statements;

pub(crate) use prepare::{Prepared, PreparedPull};
pub(crate) use script::skip_quoted;
use script::{position_of, shift, split, strip_comments, Chunk};
use settings::startup_options;
pub(crate) use settings::SERVER_VERSION;

use super::catalog;
use super::copy;
use super::cursor::{self, Cursor};
use super::results::{batch_rows, push_rows, Rows};
use super::transaction::{self, Block};
use super::values::Value;
use super::{lock, SharedEngine};
use crate::engine::{Engine, StatementResult};
use crate::error::{Error, Result};
use crate::planner::ast::{SourceKind, Statement};
use crate::planner::parser;
/// What a statement of a script answers.
pub(crate) enum Answer {
    /// A command tag, or a transaction's start or end.
    Response(Response),
    /// Rows (as COPY data in `copy`'s format when given), encoded when
    /// the client's formats are known.
    Rows {
        fields: Arc<Vec<FieldInfo>>,
        rows: Rows,
        copy: Option<copy::Options>,
    },
    /// The rows a `MOVE` skips (counted as they are taken).
    Moved(Rows),
    /// A cursor's next rows (`FETCH`).
    Fetched {
        fields: Arc<Vec<FieldInfo>>,
        rows: Rows,
    },
    /// `COPY ... FROM STDIN` waits for the client's data: so many columns
    /// (the session keeps where they go).
    CopyIn(usize),
    /// `DEALLOCATE name` (None: `ALL`): the connection forgets prepared
    /// statements.
    Deallocate(Option<String>),
    /// A message for the user, sent before the statement's response.
    Notice(String),
    /// A warning for the user, sent before the statement's response.
    Warning(String),
    /// The statement failed; the rest of the script is not run.
    Error(Error),
}

/// A connection's session.
pub(crate) struct Session {
    /// Sluice properties (`SET 'name'='value'`), starting as the server's
    /// at the session's first statement (see [`Session::in_engine`]).
    properties: Mutex<Option<BTreeMap<String, String>>>,
    /// Postgres settings (`SET name = value`), over [`DEFAULT_SETTINGS`].
    settings: Mutex<BTreeMap<String, String>>,
    /// The open transaction block, if any.
    block: Mutex<Option<Block>>,
    /// A `COPY ... FROM STDIN` waiting for its data.
    copy_in: Mutex<Option<copy::CopyIn>>,
    /// Declared cursors, by name.
    cursors: Mutex<BTreeMap<String, Cursor>>,
    /// The user and database the client gave at startup.
    user: String,
    database: String,
}

impl Session {
    /// A session with the settings the client gave at startup
    /// (`application_name`, `client_encoding`, ..., and those in `options`:
    /// `-c name=value`, as `PGOPTIONS` sends them).
    pub(crate) fn new(startup: &std::collections::HashMap<String, String>) -> Self {
        let mut settings: BTreeMap<String, String> = startup
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "user" | "database" | "options"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if let Some(options) = startup.get("options") {
            settings.extend(startup_options(options));
        }
        // As libpq: the database defaults to the user's name.
        let user = startup
            .get("user")
            .cloned()
            .unwrap_or_else(|| "sluice".into());
        let database = startup
            .get("database")
            .cloned()
            .unwrap_or_else(|| user.clone());
        Self {
            properties: Mutex::new(None),
            settings: Mutex::new(settings),
            block: Mutex::new(None),
            copy_in: Mutex::new(None),
            cursors: Mutex::new(BTreeMap::new()),
            user,
            database,
        }
    }

    /// What the Postgres catalog says about this session.
    pub(crate) fn catalog_facts(&self) -> catalog::Facts {
        catalog::Facts {
            database: self.database.clone(),
            user: self.user.clone(),
            case: self.names(),
            settings: self.all_settings(),
        }
    }

    fn block(&self) -> std::sync::MutexGuard<'_, Option<Block>> {
        self.block.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The transaction status to report: idle, in a block, or in a failed
    /// one.
    pub(crate) fn transaction_status(&self) -> TransactionStatus {
        transaction::status(&self.block())
    }

    /// Whether the session is in a failed transaction block (every
    /// statement but its end is refused).
    pub(crate) fn aborted(&self) -> bool {
        self.block().as_ref().is_some_and(Block::failed)
    }

    /// A statement failed: an open block is aborted (also for failures
    /// outside the session, which the wire server reports as `status`).
    pub(crate) fn failed(&self, status: TransactionStatus) {
        if status == TransactionStatus::Error {
            if let Some(b) = self.block().as_mut() {
                b.fail();
            }
        }
    }

    /// Run `f` on the (locked) engine with this session's properties. They
    /// are copied from the server's here, at the first statement, not when
    /// the session is made: that happens on the wire server's async
    /// threads, which must never wait for the engine (a pull query holding
    /// it runs DataFusion tasks on those threads).
    fn in_engine<T>(&self, engine: &mut Engine, f: impl FnOnce(&mut Engine) -> T) -> T {
        let mut properties = self.properties.lock().unwrap_or_else(|e| e.into_inner());
        let properties = properties.get_or_insert_with(|| engine.properties().clone());
        engine.in_session(properties, f)
    }

    /// Run every statement of `script` in order, stopping at the first
    /// error.
    pub(crate) fn run_script(self: Arc<Self>, engine: &SharedEngine, script: &str) -> Vec<Answer> {
        let chunks = split(script);
        // A push query's rows keep coming until it ends: nothing after it in
        // the same script could be answered in the meantime.
        let last = chunks.len().saturating_sub(1);
        if let Some(c) = chunks[..last]
            .iter()
            .find(|c| is_push(&script[c.start..c.end]))
        {
            let e = Error::Unsupported(format!(
                "a push query followed by other statements in one query string (at {}); send it last, or on its own,",
                position_of(script, c.start)
            ));
            return vec![Answer::Error(e)];
        }
        let copies_in = |c: &Chunk| {
            matches!(
                copy::statement(&script[c.start..c.end]),
                Ok(Some(copy::Copy::In { .. }))
            )
        };
        if let Some(c) = chunks[..last].iter().find(|c| copies_in(c)) {
            let e = Error::Unsupported(format!(
                "COPY FROM STDIN followed by other statements in one query string (at {}); send it last, or on its own,",
                position_of(script, c.start)
            ));
            return vec![Answer::Error(e)];
        }
        let mut answers = Vec::new();
        for chunk in chunks {
            let failed = match self.run_statement(engine, script, &chunk, None) {
                Ok(mut a) => {
                    answers.append(&mut a);
                    false
                }
                Err(e) => {
                    answers.push(Answer::Error(e));
                    true
                }
            };
            if failed {
                self.failed(TransactionStatus::Error);
                break;
            }
        }
        answers
    }

    /// Run a prepared statement with its parameters' values in (`bound`):
    /// what kind of statement it is was decided by its text with the
    /// placeholders (`prepared`), so a value can never change it.
    pub(crate) fn run_bound(
        self: Arc<Self>,
        engine: &SharedEngine,
        prepared: &str,
        bound: &str,
    ) -> Vec<Answer> {
        let (shape, chunk) = match (split(prepared).as_slice(), split(bound).as_slice()) {
            ([p], [b]) => (&prepared[p.start..p.end], b.clone()),
            _ => {
                let e = Error::internal("a prepared statement that is not one statement");
                return vec![Answer::Error(e)];
            }
        };
        match self.run_statement(engine, bound, &chunk, Some(shape)) {
            Ok(answers) => answers,
            Err(e) => {
                self.failed(TransactionStatus::Error);
                vec![Answer::Error(e)]
            }
        }
    }

    /// Run one statement of `script`; `shape`: the text that decides what
    /// kind of statement it is, when not its own.
    fn run_statement(
        &self,
        engine: &SharedEngine,
        script: &str,
        chunk: &Chunk,
        shape: Option<&str>,
    ) -> Result<Vec<Answer>> {
        let text = &script[chunk.start..chunk.end];
        let shape = shape.unwrap_or(text);
        let code = strip_comments(shape);
        if let Some(control) = transaction::control(&code)? {
            let ends = matches!(
                control,
                transaction::Control::Commit { .. } | transaction::Control::Rollback { .. }
            );
            let answers = transaction::run(&mut self.block(), engine, control);
            if ends {
                // Cursors without HOLD end with their block.
                self.cursors().retain(|_, c| c.hold);
            }
            return answers;
        }
        if self.aborted() {
            return Err(transaction::aborted());
        }
        if cursor::statement(&code)?.is_some() {
            // What it is was decided by the text with its placeholders; the
            // query with their values in is what runs.
            let statement = cursor::statement(&strip_comments(text))?
                .ok_or_else(|| Error::internal("a cursor statement that a value changed"))?;
            return self.cursor(engine, statement);
        }
        if let Some(answer) = self.postgres_statement(text)? {
            return Ok(vec![answer]);
        }
        let start = position_of(script, chunk.start);
        if catalog::is_catalog_query(shape) {
            let (fields, rows) = catalog::answer(&lock(engine), self.catalog_facts(), text)
                .map_err(|e| shift(e, start))?;
            return Ok(vec![Answer::Rows {
                fields,
                rows,
                copy: None,
            }]);
        }
        if let Some(statement) = copy::statement(shape).map_err(|e| shift(e, start))? {
            return self.copy(engine, statement, script, chunk);
        }
        if let Some(push) = select_kind(shape) {
            let (fields, rows) = self
                .select(engine, text, push)
                .map_err(|e| shift(e, start))?;
            return Ok(vec![Answer::Rows {
                fields,
                rows,
                copy: None,
            }]);
        }
        let parsed = parser::parse(text).map_err(|e| shift(e, start))?;
        let mut answers = Vec::new();
        for p in parsed {
            let in_block = self.block().is_some();
            if let (
                true,
                Statement::InsertValues {
                    target,
                    columns,
                    rows,
                    position,
                },
            ) = (in_block, &p.statement)
            {
                // Kept for the COMMIT.
                let records = {
                    let mut engine = lock(engine);
                    self.in_engine(&mut engine, |e| {
                        e.insert_records(target, columns.clone(), rows.clone())
                    })
                };
                let records = records.map_err(|e| shift(e.with_position(*position), start))?;
                if let Some(b) = self.block().as_mut() {
                    b.keep(records);
                }
                answers.push(Answer::Response(Response::Execution(command_tag(
                    &p.statement,
                ))));
                continue;
            }
            let result = {
                let mut engine = lock(engine);
                self.in_engine(&mut engine, |e| e.execute_parsed(&p))
            };
            let result = result.map_err(|e| shift(e, start))?;
            if !p.statement.keeps_catalog() {
                if let Some(b) = self.block().as_mut() {
                    b.took_effect(summary(&p.text));
                }
            }
            answers.extend(answer(&p.statement, result));
        }
        Ok(answers)
    }

    /// Run a pull or a (`push`) push query: its columns and its rows.
    fn select(
        &self,
        engine: &SharedEngine,
        text: &str,
        push: bool,
    ) -> Result<(Arc<Vec<FieldInfo>>, Rows)> {
        let case = self.names();
        if push {
            let mut engine = lock(engine);
            return self.in_engine(&mut engine, |e| {
                Ok(push_rows(e.start_push_query(text)?, case))
            });
        }
        // Planned holding the engine, run without it.
        let plan = {
            let mut engine = lock(engine);
            self.in_engine(&mut engine, |e| e.plan_pull(text))?
        };
        let (schema, batches) = plan.run()?;
        batch_rows(&schema, &batches, case)
    }

    /// Run a prepared pull query's plan with `values` for its parameters,
    /// if the plan still holds (None: the catalog, at `version` now, or
    /// the session's settings changed since it was planned).
    pub(crate) fn run_planned(
        &self,
        pull: &PreparedPull,
        version: u64,
        values: Vec<ScalarValue>,
    ) -> Option<Answer> {
        let same_settings =
            *self.properties.lock().unwrap_or_else(|e| e.into_inner()) == pull.properties;
        // In a failed block the statement goes the planned way, which
        // refuses it.
        if pull.version != version || !same_settings || self.aborted() {
            return None;
        }
        let answer = pull
            .plan
            .run_with(values)
            .and_then(|(schema, batches)| batch_rows(&schema, &batches, self.names()));
        Some(match answer {
            Ok((fields, rows)) => Answer::Rows {
                fields,
                rows,
                copy: None,
            },
            Err(e) => {
                self.failed(TransactionStatus::Error);
                Answer::Error(e)
            }
        })
    }

    /// The session's own settings, once it has them (see `in_engine`).
    fn settings_now(&self) -> Option<BTreeMap<String, String>> {
        self.properties
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// None: not a SELECT; Some(emits): a SELECT, with EMIT (a push query)
/// or without (a pull query, which may use all of SQL).
fn select_kind(text: &str) -> Option<bool> {
    let code = strip_comments(text).to_ascii_uppercase();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    if !matches!(words.first(), Some(&"SELECT") | Some(&"WITH")) {
        return None;
    }
    Some(
        words
            .windows(2)
            .any(|w| w[0] == "EMIT" && matches!(w[1], "CHANGES" | "FINAL")),
    )
}

/// Whether a statement is a push query (`SELECT ... EMIT`, also inside
/// `COPY (...) TO STDOUT`).
pub(super) fn is_push(text: &str) -> bool {
    match copy::statement(text) {
        Ok(Some(copy::Copy::Out { query, .. })) => select_kind(&query) == Some(true),
        _ => select_kind(text) == Some(true),
    }
}

/// What an engine statement answers: a table, or a command tag (after a
/// notice with its message, if it has one).
fn answer(statement: &Statement, result: StatementResult) -> Vec<Answer> {
    match result {
        StatementResult::Rows { columns, rows } => vec![text_table(columns, rows)],
        StatementResult::Done { message, .. } => {
            let mut out = Vec::new();
            if !message.is_empty() {
                out.push(Answer::Notice(message));
            }
            out.push(Answer::Response(Response::Execution(command_tag(
                statement,
            ))));
            out
        }
    }
}

/// The command tag a statement completes with.
fn command_tag(statement: &Statement) -> Tag {
    let kind = |k: &SourceKind| k.to_string();
    match statement {
        Statement::CreateSource(c) => Tag::new(&format!("CREATE {}", kind(&c.kind))),
        Statement::CreateAs(c) => Tag::new(&format!("CREATE {}", kind(&c.kind))),
        // A persistent query starts: nothing is inserted yet. psql reads an
        // INSERT tag only in Postgres' shape, `INSERT oid rows`.
        Statement::InsertInto { .. } => Tag::new("INSERT").with_oid(0).with_rows(0),
        Statement::CreateSink(_) => Tag::new("CREATE SINK"),
        Statement::DropSink { .. } => Tag::new("DROP SINK"),
        Statement::InsertValues { rows, .. } => {
            Tag::new("INSERT").with_oid(0).with_rows(rows.len())
        }
        Statement::Alter { kind: k, .. } => Tag::new(&format!("ALTER {}", kind(k))),
        Statement::Drop { kind: k, .. } => Tag::new(&format!("DROP {}", kind(k))),
        Statement::Terminate { .. } => Tag::new("TERMINATE"),
        Statement::Set { .. } => Tag::new("SET"),
        Statement::Unset { .. } => Tag::new("UNSET"),
        _ => Tag::new("OK"),
    }
}

/// A statement named for a warning: its text on one line, cut after 200
/// characters.
fn summary(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

/// A table of text columns.
pub(crate) fn text_table(columns: Vec<String>, rows: Vec<Vec<String>>) -> Answer {
    let fields = text_fields(columns);
    let rows = rows
        .into_iter()
        .map(|row| Ok(row.into_iter().map(Value::Text).collect()));
    Answer::Rows {
        fields,
        rows: stream::iter(rows).boxed(),
        copy: None,
    }
}

/// Columns of text.
fn text_fields(columns: Vec<String>) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        columns
            .into_iter()
            .map(|c| FieldInfo::new(c, None, None, Type::TEXT, FieldFormat::Text))
            .collect(),
    )
}

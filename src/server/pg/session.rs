//! One connection's session: its properties, and how a script sent over the
//! wire is run a statement at a time.
//!
//! Besides Sluice's own statements, ordinary drivers send a few Postgres
//! statements on their own: transaction blocks (`BEGIN`, `COMMIT`,
//! `ROLLBACK`, savepoints: [`super::transaction`]), `SET name = value` /
//! `RESET name` of Postgres settings and `SHOW name`. Those are answered
//! here; Sluice's `SET 'property'='value'` (quoted) and `SHOW STREAMS|...`
//! go to the engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use futures::{stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo, Response, Tag};
use pgwire::api::Type;

use pgwire::messages::response::TransactionStatus;

use super::copy;
use super::cursor::{self, Cursor};
use super::results::{batch_rows, fields, push_fields, push_rows, with_formats, NameCase, Rows};
use super::transaction::{self, Block};
use super::values::{pg_type, Value};
use super::{lock, SharedEngine};
use super::{params, pg_catalog};
use crate::engine::serving::PreparedLookup;
use crate::engine::{Engine, PullPlan, StatementResult};
use crate::error::{Error, Position, Result};
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
}

/// The setting that says how column names are spelled ([`NameCase`]).
pub(crate) const IDENTIFIER_CASE: &str = "sluice.identifier_case";

/// The settings in a startup packet's `options`: `-c name=value` or
/// `--name=value`, separated by spaces (`\ ` is a space in a value).
fn startup_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => words.push(std::mem::take(&mut word)),
            c => word.push(c),
        }
    }
    words.push(word);
    let mut out = Vec::new();
    let mut words = words.into_iter().filter(|w| !w.is_empty());
    while let Some(w) = words.next() {
        let setting = match w.as_str() {
            "-c" => words.next(),
            _ => w
                .strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .map(str::to_string),
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            out.push((
                name.trim().to_ascii_lowercase().replace('-', "_"),
                value.to_string(),
            ));
        }
    }
    out
}

/// Settings drivers ask for with `SHOW`, with Sluice's answers.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, YMD"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", "16.6"),
    ("server_version_num", "160006"),
    ("sluice.identifier_case", "lower"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "Etc/UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

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
        Self {
            properties: Mutex::new(None),
            settings: Mutex::new(settings),
            block: Mutex::new(None),
            copy_in: Mutex::new(None),
            cursors: Mutex::new(BTreeMap::new()),
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
        if let Some(control) = transaction::control(&strip_comments(shape))? {
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
        if cursor::statement(&strip_comments(shape))?.is_some() {
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
        if pg_catalog::is_catalog_query(shape) {
            let (fields, rows) =
                pg_catalog::answer(&lock(engine), text).map_err(|e| shift(e, start))?;
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

    /// Start a COPY: its rows out, or wait for the client's rows in.
    fn copy(
        &self,
        engine: &SharedEngine,
        statement: copy::Copy,
        script: &str,
        chunk: &Chunk,
    ) -> Result<Vec<Answer>> {
        match statement {
            copy::Copy::Out { query, at, options } => {
                let start = position_of(script, chunk.start + at);
                let push = select_kind(&query).ok_or_else(|| {
                    Error::syntax("COPY (...) TO STDOUT needs a SELECT inside", None)
                })?;
                let (fields, rows) = self
                    .select(engine, &query, push)
                    .map_err(|e| shift(e, start))?;
                Ok(vec![Answer::Rows {
                    fields,
                    rows,
                    copy: Some(options),
                }])
            }
            copy::Copy::In {
                target,
                columns,
                options,
            } => {
                let width = lock(engine).insert_width(&target, columns.clone())?;
                *self.copy_in() = Some(copy::CopyIn::new(target, columns, options));
                Ok(vec![Answer::CopyIn(width)])
            }
        }
    }

    fn cursors(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cursor>> {
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a cursor statement.
    fn cursor(&self, engine: &SharedEngine, statement: cursor::Statement) -> Result<Vec<Answer>> {
        let done = |tag: Tag| Ok(vec![Answer::Response(Response::Execution(tag))]);
        match statement {
            cursor::Statement::Declare { name, hold, query } => {
                if !hold && self.block().is_none() {
                    return Err(Error::NoTransaction(
                        "DECLARE CURSOR can only be used in transaction blocks (or WITH HOLD)"
                            .into(),
                    ));
                }
                if self.cursors().contains_key(&name) {
                    return Err(Error::AlreadyExists(format!(
                        "cursor \"{name}\" already exists"
                    )));
                }
                let push = select_kind(&query)
                    .ok_or_else(|| Error::syntax("DECLARE ... CURSOR FOR needs a SELECT", None))?;
                let (fields, rows) = self.select(engine, &query, push)?;
                let cursor = Cursor::new(fields, rows, push, hold);
                self.cursors().insert(name, cursor);
                done(Tag::new("DECLARE CURSOR"))
            }
            cursor::Statement::Fetch {
                name,
                count,
                timeout,
                discard,
            } => {
                let cursors = self.cursors();
                let cursor = cursors.get(&name).ok_or_else(|| no_cursor(&name))?;
                let rows = cursor.fetch(count, timeout);
                if discard {
                    return Ok(vec![Answer::Moved(rows)]);
                }
                Ok(vec![Answer::Fetched {
                    fields: cursor.fields.clone(),
                    rows,
                }])
            }
            cursor::Statement::Close(Some(name)) => {
                self.cursors()
                    .remove(&name)
                    .ok_or_else(|| no_cursor(&name))?;
                done(Tag::new("CLOSE CURSOR"))
            }
            cursor::Statement::Close(None) => {
                self.cursors().clear();
                done(Tag::new("CLOSE CURSOR ALL"))
            }
        }
    }

    /// A cursor's columns, for a FETCH prepared on it (None: no such
    /// cursor).
    pub(crate) fn cursor_fields(&self, name: &str) -> Option<Arc<Vec<FieldInfo>>> {
        self.cursors().get(name).map(|c| c.fields.clone())
    }

    fn copy_in(&self) -> std::sync::MutexGuard<'_, Option<copy::CopyIn>> {
        self.copy_in.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// COPY data from the client.
    pub(crate) fn copy_data(&self, data: &[u8]) {
        if let Some(c) = self.copy_in().as_mut() {
            c.receive(data);
        }
    }

    /// The client's data has all come: its rows are written (in a
    /// transaction block, kept for the COMMIT); how many.
    pub(crate) fn copy_done(&self, engine: &SharedEngine) -> Result<usize> {
        let done = self.copy_in().take();
        let Some(copy) = done else {
            return Err(Error::internal("COPY data without a COPY FROM STDIN"));
        };
        let written = (|| {
            let rows = copy.rows()?;
            let lines: Vec<usize> = rows.iter().map(|(line, _)| *line).collect();
            let cells: Vec<Vec<Option<String>>> = rows.into_iter().map(|(_, c)| c).collect();
            let line = |i: usize| lines.get(i).copied().unwrap_or(0);
            let records = {
                let engine = lock(engine);
                engine.copy_records(&copy.target, copy.columns.clone(), &cells, line)?
            };
            let n = records.len();
            let mut block = self.block();
            match block.as_mut() {
                Some(b) => b.keep(records),
                None => {
                    drop(block);
                    lock(engine).write_records(&records)?;
                }
            }
            Ok(n)
        })();
        if written.is_err() {
            self.failed(TransactionStatus::Error);
        }
        written
    }

    /// The client gave up its COPY: nothing is written.
    pub(crate) fn copy_failed(&self) {
        self.copy_in().take();
        self.failed(TransactionStatus::Error);
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

    /// Answer the Postgres statements drivers send (None: not one).
    fn postgres_statement(&self, text: &str) -> Result<Option<Answer>> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let first = upper.first().map(String::as_str).unwrap_or("");
        let second = upper.get(1).map(String::as_str).unwrap_or("");
        let response = match (first, second) {
            ("DISCARD", _) => Response::Execution(Tag::new(&format!("DISCARD {second}"))),
            ("DEALLOCATE", _) => {
                let name = words[1..]
                    .iter()
                    .map(|w| w.trim_end_matches(';'))
                    .find(|w| !w.eq_ignore_ascii_case("PREPARE"))
                    .unwrap_or("ALL");
                let name =
                    (!name.eq_ignore_ascii_case("ALL")).then(|| name.trim_matches('"').to_string());
                return Ok(Some(Answer::Deallocate(name)));
            }
            ("SET", _) if !words.get(1).is_some_and(|w| w.starts_with('\'')) => {
                let (name, value) = parse_set(text)?;
                if name == IDENTIFIER_CASE && NameCase::parse(&value).is_none() {
                    return Err(Error::BadParameter(format!(
                        "invalid value for parameter \"{IDENTIFIER_CASE}\": \"{value}\" (lower or upper)"
                    )));
                }
                self.settings().insert(name, value);
                Response::Execution(Tag::new("SET"))
            }
            ("RESET", _) => {
                let name = words
                    .get(1)
                    .map(|w| w.trim_end_matches(';').to_ascii_lowercase());
                match name.as_deref() {
                    Some("all") | None => self.settings().clear(),
                    Some(n) => {
                        self.settings().remove(n);
                    }
                }
                Response::Execution(Tag::new("RESET"))
            }
            ("SHOW", noun) if !is_sluice_show(noun) => {
                let name = words[1..].join(" ").to_ascii_lowercase();
                let value = self.setting(&name).ok_or_else(|| {
                    Error::NotFound(format!("unrecognized configuration parameter \"{name}\""))
                })?;
                return Ok(Some(text_table(vec![name], vec![vec![value]])));
            }
            _ => return Ok(None),
        };
        Ok(Some(Answer::Response(response)))
    }

    /// How column names are spelled for this session's client.
    pub(crate) fn names(&self) -> NameCase {
        self.setting(IDENTIFIER_CASE)
            .and_then(|v| NameCase::parse(&v))
            .unwrap_or(NameCase::Lower)
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn setting(&self, name: &str) -> Option<String> {
        self.settings().get(name).cloned().or_else(|| {
            DEFAULT_SETTINGS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }
}

/// A statement prepared by the extended protocol's Parse.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The statement's text, with its `$n` placeholders.
    pub text: String,
    /// Each parameter's type: as the client declared it, else as Sluice
    /// inferred it, else text.
    pub params: Vec<Type>,
    /// The columns it answers with (text formats); None: no rows.
    pub columns: Option<Arc<Vec<FieldInfo>>>,
    /// The same, all in binary (what most drivers ask for at Bind).
    pub binary_columns: Option<Arc<Vec<FieldInfo>>>,
    /// A pull query that is a key lookup: served without the engine
    /// (`super::extended`), while the view it was prepared against lasts.
    pub lookup: Option<Arc<PreparedLookup>>,
    /// A pull query planned once: each execution binds its values into the
    /// plan and runs it without the engine, while the plan holds.
    pub pull: Option<Arc<PreparedPull>>,
}

impl Prepared {
    /// Its columns in the formats a Bind asked for (None: it answers no
    /// rows); all text or all binary are made once, at Parse.
    pub(crate) fn columns_for(&self, format: &Format) -> Result<Option<Arc<Vec<FieldInfo>>>> {
        Ok(match (format, &self.columns, &self.binary_columns) {
            (_, None, _) => None,
            (Format::UnifiedText, Some(text), _) => Some(text.clone()),
            (Format::UnifiedBinary, _, Some(binary)) => Some(binary.clone()),
            (_, Some(columns), _) => Some(with_formats(columns, format)?),
        })
    }
}

/// A pull query planned at Parse, with its placeholders.
#[derive(Debug)]
pub(crate) struct PreparedPull {
    pub plan: PullPlan,
    /// Each parameter's type in the plan.
    pub types: Vec<DataType>,
    /// The catalog's version it was planned at.
    version: u64,
    /// The session's settings it was planned with.
    properties: Option<BTreeMap<String, String>>,
}

/// What preparing a statement tells: its columns (None: it answers no
/// rows), its parameters' types where they can be told, the key lookup it
/// is, and its plan, for a pull query.
#[derive(Default)]
struct Described {
    columns: Option<Arc<Vec<FieldInfo>>>,
    inferred: Vec<Option<DataType>>,
    lookup: Option<Arc<PreparedLookup>>,
    pull: Option<(PullPlan, u64)>,
}

impl Described {
    fn columns(columns: Arc<Vec<FieldInfo>>) -> Self {
        Self {
            columns: Some(columns),
            ..Self::default()
        }
    }
}

impl Session {
    /// Prepare one statement (None: it is empty): what it answers with and
    /// what its parameters are. Nothing runs but read-only statements
    /// (`SHOW`, `DESCRIBE`, `EXPLAIN`, ...), whose columns are those of
    /// their answer.
    pub(crate) fn prepare(
        &self,
        engine: &SharedEngine,
        sql: &str,
        declared: &[Option<Type>],
    ) -> Result<Option<Prepared>> {
        let chunks = split(sql);
        let chunk = match chunks.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            [_, second, ..] => {
                return Err(Error::syntax(
                    "cannot insert multiple commands into a prepared statement",
                    Some(position_of(sql, second.start)),
                ))
            }
        };
        let text = &sql[chunk.start..chunk.end];
        let described = self
            .describe(engine, text, declared)
            .map_err(|e| shift(e, position_of(sql, chunk.start)))?;
        let inferred = &described.inferred;
        let params: Vec<Type> = (0..params::count(text)?.max(declared.len()))
            .map(|i| {
                declared
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| inferred.get(i).cloned().flatten().map(|dt| pg_type(&dt)))
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        // A lookup whose parameters are all the statement's, each declared
        // (or inferred) as a type the fast path decodes (a key, or a window
        // bound: BIGINT); any other goes the planned way.
        let lookup = described.lookup.filter(|l| {
            let declared = |n: usize| params.get(n.wrapping_sub(1));
            let bounds = || l.window.iter().map(|b| b.parameter);
            (1..=params.len()).all(|n| l.parameters.contains(&n) || bounds().any(|b| b == n))
                && l.parameters.iter().all(|&n| {
                    declared(n).is_some_and(|ty| params::is_key_type(ty, l.lookup.key_type()))
                })
                && bounds()
                    .all(|n| declared(n).is_some_and(|ty| params::binds(ty, &DataType::Int64)))
        });
        // A plan whose every parameter has a type its values bind to
        // exactly; any other is planned again with its values pasted.
        let pull = described.pull.and_then(|(plan, version)| {
            let types: Vec<DataType> = described.inferred.into_iter().collect::<Option<_>>()?;
            let bindable = types.len() == params.len()
                && params
                    .iter()
                    .zip(&types)
                    .all(|(ty, dt)| params::binds(ty, dt));
            bindable.then(|| {
                Arc::new(PreparedPull {
                    plan,
                    types,
                    version,
                    properties: self.settings_now(),
                })
            })
        });
        let binary_columns = match &described.columns {
            Some(c) => Some(with_formats(c, &Format::UnifiedBinary)?),
            None => None,
        };
        Ok(Some(Prepared {
            text: sql.to_string(),
            params,
            columns: described.columns,
            binary_columns,
            lookup,
            pull,
        }))
    }

    fn describe(
        &self,
        engine: &SharedEngine,
        text: &str,
        declared: &[Option<Type>],
    ) -> Result<Described> {
        let case = self.names();
        let words: Vec<String> = strip_comments(text)
            .split_whitespace()
            .take(2)
            .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
            .collect();
        let first = words.first().map(String::as_str).unwrap_or("");
        let second = words.get(1).map(String::as_str).unwrap_or("");
        match (first, second) {
            (
                "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "DISCARD" | "RESET"
                | "DEALLOCATE" | "SAVEPOINT" | "RELEASE",
                _,
            )
            | ("START", "TRANSACTION") => return Ok(Described::default()),
            ("SET", _) if !second.starts_with('\'') => return Ok(Described::default()),
            ("SHOW", noun) if !is_sluice_show(noun) => {
                let name = strip_comments(text)
                    .split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim_end_matches(';')
                    .to_ascii_lowercase();
                let field = FieldInfo::new(name, None, None, Type::TEXT, FieldFormat::Text);
                return Ok(Described::columns(Arc::new(vec![field])));
            }
            _ => {}
        }
        if copy::statement(text)?.is_some() {
            return Ok(Described::default());
        }
        if let Some(c) = cursor::statement(&strip_comments(text))? {
            return Ok(match c {
                cursor::Statement::Fetch {
                    name,
                    discard: false,
                    ..
                } => match self.cursor_fields(&name) {
                    Some(fields) => Described::columns(fields),
                    None => return Err(no_cursor(&name)),
                },
                _ => Described::default(),
            });
        }
        if pg_catalog::is_catalog_query(text) {
            let (fields, _) = pg_catalog::answer(&lock(engine), text)?;
            return Ok(Described::columns(fields));
        }
        let mut engine = lock(engine);
        self.in_engine(&mut engine, |e| match select_kind(text) {
            Some(true) => {
                let inferred = e.push_parameter_types(text);
                let (schema, table) =
                    e.describe_push_query(&typed_nulls(text, declared, &inferred)?)?;
                Ok(Described {
                    inferred,
                    ..Described::columns(push_fields(&schema, table, case))
                })
            }
            Some(false) => {
                let version = e.serving().catalog_version();
                let plan = e.plan_pull(text)?;
                let schema = plan.schema();
                Ok(Described {
                    columns: Some(fields(&schema, case)),
                    inferred: plan.parameter_types()?,
                    lookup: e.prepare_lookup(text, &schema).map(Arc::new),
                    pull: Some((plan, version)),
                })
            }
            None => {
                let parsed = parser::parse(&typed_nulls(text, declared, &[])?)?;
                let [p] = parsed.as_slice() else {
                    return Err(Error::syntax(
                        "cannot insert multiple commands into a prepared statement",
                        None,
                    ));
                };
                match &p.statement {
                    Statement::InsertValues {
                        target, columns, ..
                    } => Ok(Described {
                        inferred: insert_parameters(e, text, target, columns),
                        ..Described::default()
                    }),
                    Statement::Show { .. }
                    | Statement::Describe { .. }
                    | Statement::DescribeFunction(_)
                    | Statement::Explain(_)
                    | Statement::ExplainQuery(_)
                    | Statement::Print { .. } => match e.execute_parsed(p)? {
                        StatementResult::Rows { columns, .. } => {
                            Ok(Described::columns(text_fields(columns)))
                        }
                        StatementResult::Done { .. } => Ok(Described::default()),
                    },
                    _ => Ok(Described::default()),
                }
            }
        })
    }
}

/// `text` with each parameter a NULL of its type (declared, else inferred,
/// else STRING), for Sluice's own parser, which takes no placeholders.
fn typed_nulls(
    text: &str,
    declared: &[Option<Type>],
    inferred: &[Option<DataType>],
) -> Result<String> {
    let nulls: Vec<String> = (0..params::count(text)?)
        .map(|i| {
            let ty = declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN)
                .or_else(|| inferred.get(i).cloned().flatten().map(|dt| pg_type(&dt)));
            format!("CAST(NULL AS {})", params::sql_type(ty.as_ref()))
        })
        .collect();
    params::substitute(text, &nulls)
}

/// The types of an `INSERT ... VALUES`' parameters: a value that is just
/// `$n` takes its column's type (in any of its rows).
fn insert_parameters(
    engine: &Engine,
    text: &str,
    target: &str,
    columns: &Option<Vec<String>>,
) -> Vec<Option<DataType>> {
    let Some(src) = engine.catalog().source(target) else {
        return vec![];
    };
    let names: Vec<String> = match columns {
        Some(c) => c.clone(),
        None => src
            .key_columns()
            .chain(src.value_columns())
            .map(|c| c.name.clone())
            .collect(),
    };
    // The values lists: the text after the last top-level `VALUES`, a
    // parenthesized list after another.
    let upper = text.to_ascii_uppercase();
    let Some(at) = upper.rfind("VALUES") else {
        return vec![];
    };
    let mut rows = Vec::new();
    let mut rest = &text[at + "VALUES".len()..];
    while let Some(open) = rest.trim_start().strip_prefix('(') {
        let (values, after) = split_values(open);
        rows.push(values);
        rest = after.trim_start().strip_prefix(',').unwrap_or("");
    }
    let mut types = vec![None; params::count(text).unwrap_or(0)];
    let cells = rows
        .iter()
        .flat_map(|r| r.iter().take(names.len()).enumerate());
    for (i, v) in cells {
        let Some((_, n)) = params::placeholders(v).into_iter().next() else {
            continue;
        };
        if v.trim().len() != 1 + n.to_string().len() {
            continue;
        }
        let ty = names.get(i).and_then(|name| {
            if name == crate::runtime::ROWTIME {
                return Some(DataType::Int64);
            }
            src.columns
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.data_type.clone())
        });
        if let Some(slot) = types.get_mut(n - 1) {
            *slot = ty;
        }
    }
    types
}

/// The comma-separated items of a parenthesized list, up to its closing
/// parenthesis (commas inside quotes or nested parentheses do not split),
/// and the text after that parenthesis.
fn split_values(list: &str) -> (Vec<&str>, &str) {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut quote = None;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => {
                items.push(&list[start..i]);
                return (items, &list[i + 1..]);
            }
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    (items, "")
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
fn is_push(text: &str) -> bool {
    match copy::statement(text) {
        Ok(Some(copy::Copy::Out { query, .. })) => select_kind(&query) == Some(true),
        _ => select_kind(text) == Some(true),
    }
}

/// Sluice's own SHOW / LIST nouns.
fn is_sluice_show(noun: &str) -> bool {
    matches!(
        noun,
        "STREAMS"
            | "TABLES"
            | "QUERIES"
            | "TOPICS"
            | "ALL"
            | "FUNCTIONS"
            | "PROPERTIES"
            | "TYPES"
            | "VARIABLES"
            | "CONNECTORS"
            | "SINKS"
    )
}

/// `SET [SESSION | LOCAL] name { = | TO } value`: the lower-cased name and
/// the value without quotes.
fn parse_set(text: &str) -> Result<(String, String)> {
    let rest = text.trim().trim_end_matches(';');
    let rest = rest[3..].trim_start();
    let rest = ["SESSION ", "LOCAL "]
        .iter()
        .find_map(|p| {
            rest.get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .map(|_| rest[p.len()..].trim_start())
        })
        .unwrap_or(rest);
    let (name, value) = match rest.find('=') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => {
            let mut parts = rest.splitn(2, char::is_whitespace);
            let name = parts.next().unwrap_or("");
            let value = parts.next().unwrap_or("").trim_start();
            match value.get(..3) {
                Some(to) if to.eq_ignore_ascii_case("TO ") => (name, &value[3..]),
                _ => {
                    return Err(Error::syntax(
                        format!("syntax error in SET: expected `SET name = value` or `SET 'property'='value'`, got `{text}`"),
                        None,
                    ))
                }
            }
        }
    };
    let value = value
        .trim()
        .trim_matches('\'')
        .trim_matches('"')
        .to_string();
    Ok((name.trim().to_ascii_lowercase(), value))
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

fn no_cursor(name: &str) -> Error {
    Error::NoCursor(format!("cursor \"{name}\" does not exist"))
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

/// One statement's byte range in a script (without its `;`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    start: usize,
    end: usize,
}

/// Split a script at the `;`s outside quotes and comments; empty
/// statements are dropped.
pub(crate) fn split(script: &str) -> Vec<Chunk> {
    let bytes = script.as_bytes();
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |chunks: &mut Vec<Chunk>, s: usize, e: usize| {
        let text = &script[s..e];
        let lead = text.len() - text.trim_start().len();
        let trail = text.len() - text.trim_end().len();
        if !strip_comments(text).trim().is_empty() {
            chunks.push(Chunk {
                start: s + lead,
                end: e - trail,
            });
        }
    };
    while i < bytes.len() {
        if let Some(end) = skip_quoted(bytes, i) {
            i = end + 1;
            continue;
        }
        if bytes[i] == b';' {
            push(&mut chunks, start, i);
            start = i + 1;
        }
        i += 1;
    }
    if start < bytes.len() {
        push(&mut chunks, start, bytes.len());
    }
    chunks
}

/// If a quoted string or name (`'...'`, `"..."`, `` `...` ``; a doubled
/// quote inside is an escaped one) or a comment (`--` to the end of the
/// line, `/* */`) starts at byte `i`, the index of its last byte (past the
/// end when it is not closed).
pub(crate) fn skip_quoted(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    match *bytes.get(i)? {
        q @ (b'\'' | b'"' | b'`') => {
            j += 1;
            while j < bytes.len() {
                if bytes[j] == q {
                    if bytes.get(j + 1) == Some(&q) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
        }
        b'-' if bytes.get(i + 1) == Some(&b'-') => {
            while j < bytes.len() && bytes[j] != b'\n' {
                j += 1;
            }
        }
        b'/' if bytes.get(i + 1) == Some(&b'*') => {
            j += 2;
            while j + 1 < bytes.len() && !(bytes[j] == b'*' && bytes[j + 1] == b'/') {
                j += 1;
            }
            j += 1;
        }
        _ => return None,
    }
    Some(j)
}

/// The text without `--` and `/* */` comments (outside quotes).
fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut kept) = (0, 0);
    while i < bytes.len() {
        let Some(end) = skip_quoted(bytes, i) else {
            i += 1;
            continue;
        };
        let end = (end + 1).min(bytes.len());
        if matches!(bytes[i], b'-' | b'/') {
            // A comment: what came before it stays, it goes.
            out.push_str(&text[kept..i]);
            kept = end;
        }
        i = end;
    }
    out.push_str(&text[kept..]);
    out
}

/// The line and column (1-based, in characters) of a byte offset.
fn position_of(script: &str, offset: usize) -> Position {
    let before = &script[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() as u64 + 1)
        .unwrap_or(1);
    Position { line, column }
}

/// A position in a statement made a position in the script it starts at
/// `start` in.
fn shift(e: Error, start: Position) -> Error {
    let Some(p) = e.position() else {
        return e;
    };
    let moved = if p.line == 1 {
        Position {
            line: start.line,
            column: start.column + p.column - 1,
        }
    } else {
        Position {
            line: start.line + p.line - 1,
            column: p.column,
        }
    };
    e.replace_position(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_columns_come_in_the_formats_a_bind_asks_for() {
        let text = Arc::new(vec![
            FieldInfo::new("ID".into(), None, None, Type::VARCHAR, FieldFormat::Text),
            FieldInfo::new("N".into(), None, None, Type::INT8, FieldFormat::Text),
        ]);
        let prepared = Prepared {
            text: "SELECT id, n FROM t WHERE id = $1".into(),
            params: vec![Type::VARCHAR],
            binary_columns: Some(with_formats(&text, &Format::UnifiedBinary).unwrap()),
            columns: Some(text),
            lookup: None,
            pull: None,
        };
        let formats = |f: &Format| -> Vec<FieldFormat> {
            let columns = prepared.columns_for(f).unwrap().unwrap();
            columns.iter().map(|c| c.format()).collect()
        };
        assert_eq!(formats(&Format::UnifiedText), [FieldFormat::Text; 2]);
        assert_eq!(formats(&Format::UnifiedBinary), [FieldFormat::Binary; 2]);
        assert_eq!(
            formats(&Format::Individual(vec![0, 1])),
            [FieldFormat::Text, FieldFormat::Binary]
        );
        assert_eq!(
            prepared
                .columns_for(&Format::Individual(vec![1]))
                .unwrap_err()
                .to_string(),
            "bind message has 1 result formats but the query has 2 columns"
        );
    }

    fn texts(script: &str) -> Vec<&str> {
        split(script)
            .into_iter()
            .map(|c| &script[c.start..c.end])
            .collect()
    }

    #[test]
    fn scripts_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            texts("SELECT ';' ; -- a; comment\nSET x = 'a;b';; /* ; */ SHOW y"),
            vec![
                "SELECT ';'",
                "-- a; comment\nSET x = 'a;b'",
                "/* ; */ SHOW y"
            ]
        );
        assert_eq!(texts(" ; -- only a comment\n ;"), Vec::<&str>::new());
        assert_eq!(
            texts("INSERT INTO s VALUES ('it''s;')"),
            vec!["INSERT INTO s VALUES ('it''s;')"]
        );
    }

    #[test]
    fn comments_go_and_quoted_text_stays() {
        assert_eq!(
            strip_comments("SELECT '--x' /* c */, a -- tail\nFROM \"/*t*/\" --"),
            "SELECT '--x' , a FROM \"/*t*/\" "
        );
        assert_eq!(strip_comments("/* open"), "");
        assert_eq!(strip_comments("'open -- quote"), "'open -- quote");
        assert_eq!(select_kind("/* x */ select 1 -- EMIT CHANGES"), Some(false));
    }

    #[test]
    fn postgres_set_forms() {
        assert_eq!(
            parse_set("SET application_name = 'PostgreSQL JDBC Driver'").unwrap(),
            ("application_name".into(), "PostgreSQL JDBC Driver".into())
        );
        assert_eq!(
            parse_set("set SESSION DateStyle TO ISO").unwrap(),
            ("datestyle".into(), "ISO".into())
        );
        assert_eq!(
            parse_set("SET extra_float_digits=3;").unwrap(),
            ("extra_float_digits".into(), "3".into())
        );
        assert!(parse_set("SET nonsense").is_err());
    }

    #[test]
    fn positions_move_by_where_the_statement_starts() {
        let script = "SET x = 1;\n  CREATE STREAM";
        let start = position_of(script, 13);
        assert_eq!(start, Position { line: 2, column: 3 });
        let e = Error::syntax("bad", Some(Position { line: 1, column: 8 }));
        assert_eq!(
            shift(e, start).position(),
            Some(Position {
                line: 2,
                column: 10
            })
        );
        let e = Error::syntax("bad", Some(Position { line: 2, column: 4 }));
        assert_eq!(
            shift(e, start).position(),
            Some(Position { line: 3, column: 4 })
        );
    }
}

//! The session's side of COPY FROM STDIN (the data kept until the
//! client's CopyDone) and of cursors.

use std::collections::BTreeMap;
use std::sync::Arc;

use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::messages::response::TransactionStatus;

use super::script::{position_of, shift, Chunk};
use super::{select_kind, Answer, Session};
use crate::error::{Error, Result};
use crate::server::pg::copy;
use crate::server::pg::cursor::{self, Cursor};
use crate::server::pg::{lock, SharedEngine};

impl Session {
    /// Start a COPY: its rows out, or wait for the client's rows in.
    pub(super) fn copy(
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

    pub(super) fn cursors(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cursor>> {
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a cursor statement.
    pub(super) fn cursor(
        &self,
        engine: &SharedEngine,
        statement: cursor::Statement,
    ) -> Result<Vec<Answer>> {
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

    pub(super) fn copy_in(&self) -> std::sync::MutexGuard<'_, Option<copy::CopyIn>> {
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
}

pub(super) fn no_cursor(name: &str) -> Error {
    Error::NoCursor(format!("cursor \"{name}\" does not exist"))
}

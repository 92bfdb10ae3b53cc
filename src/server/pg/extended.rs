//! The extended query protocol: Parse, Bind, Describe, Execute, Sync, as
//! tokio-postgres, JDBC and psycopg (with parameters) speak it.
//!
//! - **Parse** prepares one statement ([`Session::prepare`]): the columns
//!   it answers with and its parameters' types, so a Describe before Bind
//!   is answered. A pull query is planned by DataFusion, which infers a
//!   parameter's type from what it is compared with; an
//!   `INSERT ... VALUES` parameter takes its column's type; the rest are
//!   text unless the client declared a type.
//! - **Bind** keeps the parameters' values and the result formats (text or
//!   binary, per column).
//! - **Execute** of a pull query planned at Parse binds the values into
//!   that plan and runs it without the engine, while the catalog and the
//!   session's settings are those it was planned with and every value binds
//!   to its parameter's type as it is ([`params::bound_value`]). Otherwise
//!   Execute puts each value in the statement as a literal of its type
//!   ([`super::params`]) and runs it as the simple protocol would. Rows go
//!   out in the formats Bind asked for, flushed as they come, so a push
//!   query's rows reach the client live; a cancel request stops it. A
//!   statement whose columns changed since Parse (the catalog changed
//!   under a cached statement) fails with 0A000, as Postgres does.
//!   `Execute` with a row limit suspends the portal after that many rows.
//! - **Key lookups** (`SELECT ... FROM <table> WHERE <key> = $1`, or
//!   `<key> IN ($1, $2, ...)`, and on a windowed table `<key> = $1 AND
//!   WINDOWSTART >= $2 ...`, recognized at Parse against the views the
//!   engine publishes, [`crate::engine::serving`]) skip all of that:
//!   Execute decodes the values as a key (and window bounds), reads the
//!   rows from the view and sends them, on the connection's task, without
//!   the engine.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use futures::{Sink, SinkExt};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{send_execution_response, ExtendedQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, Type, DEFAULT_NAME};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{Bind, BindComplete, Describe, Execute, PortalSuspended};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::PgWireBackendMessage;

use super::copy::copy_response;
use super::lookahead::Lookahead;
use super::results::{fetch_response, rows_of, rows_response, with_formats};
use super::session::{Answer, Prepared, PreparedPull};
use super::{
    cancel, error_info, forward, params, send_copy, send_rows, session, Handler, SharedEngine,
};
use crate::error::{Error, Result};

/// Prepares statements for the extended protocol.
pub(crate) struct Parser {
    pub engine: SharedEngine,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session(client);
        let engine = self.engine.clone();
        let (text, declared) = (sql.to_string(), types.to_vec());
        let connection = super::panics::current();
        tokio::task::spawn_blocking(move || {
            super::panics::within(connection, || session.prepare(&engine, &text, &declared))
        })
        .await
        .map_err(|e| Error::internal(format!("the statement's thread failed: {e}")))
        .and_then(|r| r)
        .map_err(|e| PgWireError::UserError(Box::new(error_info(&e, sql))))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.params.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let Some(columns) = &stmt.columns else {
            return Ok(vec![]);
        };
        let fields = with_formats(columns, format.unwrap_or(&Format::UnifiedText))
            .map_err(|e| PgWireError::UserError(Box::new(error_info(&e, &stmt.text))))?;
        Ok(fields.as_ref().clone())
    }
}

/// Send a description: parameters (for a statement), then the columns or
/// NoData (also for a statement that takes parameters but answers no
/// rows, which pgwire's own would describe as zero columns).
async fn describe<C>(
    client: &mut C,
    params: Option<&[Type]>,
    fields: &[FieldInfo],
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(params) = params {
        let oids = params.iter().map(|t| t.oid()).collect();
        client
            .feed(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(oids),
            ))
            .await?;
    }
    if fields.is_empty() {
        client
            .feed(PgWireBackendMessage::NoData(NoData::new()))
            .await?;
    } else {
        let fields = fields.iter().map(Into::into).collect();
        client
            .feed(PgWireBackendMessage::RowDescription(RowDescription::new(
                fields,
            )))
            .await?;
    }
    Ok(())
}

/// Whether the portal has a value, and a format, for each of its
/// statement's parameters (else [`bind`] says what is wrong).
fn values_fit(portal: &Portal<Prepared>) -> bool {
    let given = portal.parameters.len();
    let formats = match &portal.parameter_format {
        Format::Individual(codes) => codes.len(),
        _ => given,
    };
    given == portal.statement.statement.params.len() && formats == given
}

/// A prepared pull query's plan and its parameters' values, bound as they
/// are (None: it has no plan, or a value does not bind to its parameter's
/// type; then its values are pasted into its text).
fn planned_values(portal: &Portal<Prepared>) -> Option<(Arc<PreparedPull>, Vec<ScalarValue>)> {
    let prepared = &portal.statement.statement;
    let pull = prepared.pull.clone()?;
    if !values_fit(portal) || portal.parameters.len() != pull.types.len() {
        return None;
    }
    let values = portal
        .parameters
        .iter()
        .zip(&pull.types)
        .enumerate()
        .map(|(i, (value, want))| {
            let binary = portal.parameter_format.is_binary(i);
            params::bound_value(value.as_deref(), binary, prepared.params.get(i)?, want)
        })
        .collect::<Option<Vec<_>>>()?;
    Some((pull, values))
}

impl Handler {
    /// Run a bound portal's statement: its one answer.
    async fn run_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // In a failed transaction block the session refuses it.
        if client.transaction_status() != TransactionStatus::Error {
            if let Some(answer) = self.look_up(portal) {
                return answer;
            }
        }
        let prepared = &portal.statement.statement;
        // Positions are in the text with the values in: only meaningful
        // to the client when there were none (then it is the statement's).
        let shown = if prepared.params.is_empty() {
            prepared.text.as_str()
        } else {
            ""
        };
        let thread_failed = |e: tokio::task::JoinError| {
            PgWireError::UserError(Box::new(error_info(
                &Error::internal(format!("the statement's thread failed: {e}")),
                shown,
            )))
        };
        let session = session(client);
        let connection = super::panics::current();
        // A pull query planned at Parse runs its plan with the values
        // bound, unless the plan no longer holds.
        let planned = match planned_values(portal) {
            Some((pull, values)) => {
                let (session, version) = (session.clone(), self.serving.catalog_version());
                tokio::task::spawn_blocking(move || {
                    super::panics::within(connection, || {
                        let answer = session.run_planned(&pull, version, values);
                        if answer.is_some() {
                            tracing::trace!("pull query run from its plan");
                        }
                        answer
                    })
                })
                .await
                .map_err(thread_failed)?
            }
            None => None,
        };
        let answers = match planned {
            Some(answer) => vec![answer],
            None => {
                let script = bind(portal)
                    .map_err(|e| PgWireError::UserError(Box::new(error_info(&e, ""))))?;
                let (engine, shape) = (self.engine.clone(), prepared.text.clone());
                tokio::task::spawn_blocking(move || {
                    super::panics::within(connection, || {
                        session.run_bound(&engine, &shape, &script)
                    })
                })
                .await
                .map_err(thread_failed)?
            }
        };
        let mut response = Response::EmptyQuery;
        for answer in answers {
            match answer {
                Answer::Notice(message) => self.notice(client, message, false).await?,
                Answer::Warning(message) => self.notice(client, message, true).await?,
                Answer::Error(e) => {
                    let mut info = error_info(&e, shown);
                    if shown.is_empty() {
                        info.position = None;
                    }
                    return Err(PgWireError::UserError(Box::new(info)));
                }
                Answer::Response(r) => response = r,
                Answer::Deallocate(name) => response = super::deallocate(client, name),
                Answer::CopyIn(columns) => response = super::copy_in(columns),
                Answer::Moved(rows) => response = super::moved(rows).await,
                Answer::Fetched { fields, rows } => {
                    let formatted = with_formats(&fields, &portal.result_column_format)
                        .map_err(|e| PgWireError::UserError(Box::new(error_info(&e, ""))))?;
                    response = fetch_response(formatted, rows);
                }
                Answer::Rows { fields, rows, copy } => {
                    let unchanged = prepared.columns.as_ref().is_some_and(|c| {
                        c.len() == fields.len()
                            && c.iter()
                                .zip(fields.iter())
                                .all(|(a, b)| a.name() == b.name() && a.datatype() == b.datatype())
                    });
                    if !unchanged && copy.is_none() {
                        let e = Error::Unsupported(
                            "a prepared statement whose result columns changed since it was prepared (cached plan must not change result type); prepare it again".into(),
                        );
                        return Err(PgWireError::UserError(Box::new(error_info(&e, ""))));
                    }
                    response = if let Some(options) = copy {
                        copy_response(fields, rows, &options)
                    } else {
                        // The columns are the prepared ones (checked above).
                        let formatted = prepared
                            .columns_for(&portal.result_column_format)
                            .map_err(|e| PgWireError::UserError(Box::new(error_info(&e, ""))))?
                            .unwrap_or(fields);
                        rows_response(formatted, rows)
                    };
                }
            }
        }
        Ok(response)
    }
}

impl Handler {
    /// A key lookup's answer, read from its view without the engine, on
    /// the connection's own task. None: the planned way answers it (the
    /// view is not the one it was prepared against any more, or a value
    /// is not a key the fast path reads: NULL, malformed, out of range),
    /// so both ways give the same rows and the same errors.
    fn look_up(&self, portal: &Portal<Prepared>) -> Option<PgWireResult<Response>> {
        let prepared = &portal.statement.statement;
        let lookup = prepared.lookup.as_ref()?;
        if prepared.columns.is_none() || !values_fit(portal) {
            return None;
        }
        // Parameter `n`'s value (1-based), its format and its type.
        let parameter = |n: usize| {
            let i = n.checked_sub(1)?;
            let value = portal.parameters.get(i)?.as_deref();
            Some((
                value,
                portal.parameter_format.is_binary(i),
                prepared.params.get(i)?,
            ))
        };
        let keys = lookup
            .parameters
            .iter()
            .map(|&n| {
                let (value, binary, ty) = parameter(n)?;
                params::key_value(value, binary, ty, lookup.lookup.key_type())
            })
            .collect::<Option<Vec<_>>>()?;
        let bounds = lookup
            .window
            .iter()
            .map(|bound| {
                let (value, binary, ty) = parameter(bound.parameter)?;
                match params::bound_value(value, binary, ty, &DataType::Int64)? {
                    ScalarValue::Int64(Some(v)) => Some(v),
                    _ => None,
                }
            })
            .collect::<Option<Vec<i64>>>()?;
        if !self.serving.current().is_current(lookup) {
            return None;
        }
        tracing::trace!(table = %lookup.table, "key lookup served from its view");
        let user = |e: Error| PgWireError::UserError(Box::new(error_info(&e, "")));
        let answer = lookup.read(&keys, &bounds).and_then(|batch| {
            let rows = rows_of(&[batch])?;
            let columns = prepared.columns_for(&portal.result_column_format)?;
            Ok(rows_response(columns.unwrap_or_default(), rows))
        });
        Some(answer.map_err(user))
    }
}

/// The portal's statement with its parameters' values in.
fn bind(portal: &Portal<Prepared>) -> Result<String> {
    let prepared = &portal.statement.statement;
    let given = portal.parameters.len();
    if given != prepared.params.len() {
        return Err(Error::BadParameter(format!(
            "bind message supplies {given} parameters, but the prepared statement requires {}",
            prepared.params.len()
        )));
    }
    if let Format::Individual(codes) = &portal.parameter_format {
        if codes.len() != given {
            return Err(Error::BadParameter(format!(
                "bind message has {} parameter formats but {given} parameters",
                codes.len()
            )));
        }
    }
    let literals = prepared
        .params
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            params::literal(
                i + 1,
                portal.parameters[i].as_deref(),
                portal.parameter_format.is_binary(i),
                ty,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    params::substitute(&prepared.text, &literals)
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let parser = &self.parser;
        if message.target_type == b'S' {
            let stmt: Arc<StoredStatement<Prepared>> =
                match client.portal_store().get_statement(name) {
                    Some(Entry::Value(s)) => s,
                    Some(Entry::Empty) => return describe(client, Some(&[]), &[]).await,
                    None => return Err(PgWireError::StatementNotFound(name.to_owned())),
                };
            let fields = parser.get_result_schema(&stmt.statement, None)?;
            describe(client, Some(&stmt.statement.params), &fields).await
        } else {
            let portal = match client.portal_store().get_portal(name) {
                Some(Entry::Value(p)) => p,
                Some(Entry::Empty) => return describe(client, None, &[]).await,
                // A cursor is a portal too (psycopg describes its named
                // cursors so).
                None => match session(client).cursor_fields(name) {
                    Some(fields) => return describe(client, None, &fields).await,
                    None => return Err(PgWireError::PortalNotFound(name.to_owned())),
                },
            };
            let fields = parser.get_result_schema(
                &portal.statement.statement,
                Some(&portal.result_column_format),
            )?;
            describe(client, None, &fields).await
        }
    }

    /// As pgwire's own, but BindComplete is queued, not flushed: it leaves
    /// with what Execute answers, at Sync (or Flush), so a prepared
    /// statement's round trip is one write (a key lookup's answer, one
    /// packet) instead of two.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement) {
            Some(Entry::Value(prepared)) => {
                let bound = Portal::try_new(&message, prepared)?;
                client.portal_store().put_portal(Arc::new(bound));
            }
            // The empty statement takes no parameters, as in Postgres.
            Some(Entry::Empty) if message.parameters.is_empty() => {
                client.portal_store().put_empty_portal(portal)
            }
            Some(Entry::Empty) => {
                let why = format!(
                    "bind message supplies {} parameters, but prepared statement \"{statement}\" requires 0",
                    message.parameters.len()
                );
                let info = ErrorInfo::new("ERROR".into(), "08P01".into(), why);
                return Err(PgWireError::UserError(Box::new(info)));
            }
            None => return Err(PgWireError::StatementNotFound(statement.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    /// As pgwire's own, but rows are flushed as they come and a cancel
    /// request stops the statement (57014). An Execute with a row limit
    /// answers that many rows and suspends the portal ([`fetch`]); a later
    /// Execute goes on from there.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(p)) => p,
            _ => return self._on_execute(client, message).await,
        };
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let initial = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
        let limited = max_rows > 0 || !initial;
        let mut status = client.transaction_status();
        let session = super::session(client);
        session.failed(status);
        client.set_state(PgWireConnectionState::QueryInProgress);
        let cancel = self.cancels.watch(client);
        let mut copying = false;
        let run = async {
            if !initial {
                return fetch(client, &portal, name, max_rows).await;
            }
            let done = match self.run_portal(client, &portal).await? {
                Response::Query(q) if limited => {
                    portal.start(q).await;
                    return fetch(client, &portal, name, max_rows).await;
                }
                Response::Query(q) => send_rows(client, q, false).await,
                Response::CopyOut(c) => send_copy(client, c).await,
                Response::Execution(tag) => send_execution_response(client, tag).await,
                Response::TransactionStart(tag) => {
                    status = status.to_in_transaction_state();
                    send_execution_response(client, tag).await
                }
                Response::TransactionEnd(tag) => {
                    status = status.to_idle_state();
                    send_execution_response(client, tag).await
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                    Ok(())
                }
                Response::Error(e) => Err(PgWireError::UserError(e)),
                Response::CopyIn(c) => {
                    copying = true;
                    pgwire::api::copy::send_copy_in_response(client, c).await
                }
                Response::CopyBoth(_) => Err(PgWireError::UserError(Box::new(error_info(
                    &Error::Unsupported("COPY BOTH".into()),
                    "",
                )))),
            };
            // Run once: executing the portal again answers no more rows,
            // as Postgres does.
            *portal.state().lock().await = PortalExecutionState::Finished;
            done
        };
        let done = tokio::select! {
            done = run => done,
            _ = cancel::cancelled(cancel) => Err(PgWireError::QueryCanceled),
        };
        if done.is_err() && initial && !limited {
            *portal.state().lock().await = PortalExecutionState::Finished;
        }
        done?;
        status = session.transaction_status();
        client.set_transaction_status(status);
        client.set_state(match copying {
            // The data comes next, then CopyDone and Sync.
            true => PgWireConnectionState::CopyInProgress(true),
            false => PgWireConnectionState::ReadyForQuery,
        });
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.run_portal(client, portal).await
    }
}

/// Answer an Execute of a started portal: its next `max_rows` rows (all of
/// them when 0, each flushed as it comes), then PortalSuspended, or
/// CommandComplete once its rows have ended. Rows are flushed while the
/// next is awaited. A push query's rows may never come: if its client
/// closes the portal meanwhile, or leaves ([`Lookahead`]: a client that
/// stopped reading early), the Execute ends at once with the rows it has,
/// suspended, and the Close that follows ends the query. (A pull query's
/// rows are all coming: its Execute answers them whatever follows.)
async fn fetch<C>(
    client: &mut C,
    portal: &Portal<Prepared>,
    name: &str,
    max_rows: usize,
) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::{FutureExt, StreamExt};
    let lookahead = client.session_extensions().get::<Lookahead>();
    let cell = portal.state();
    let mut state = cell.lock().await;
    let PortalExecutionState::Suspended(response) = &mut *state else {
        // Done already: no more rows.
        return client
            .feed(PgWireBackendMessage::CommandComplete(
                Tag::new("SELECT").with_rows(0).into(),
            ))
            .await
            .map_err(Into::into);
    };
    let tag = response.command_tag().to_string();
    if max_rows == 0 {
        let n = forward(client, response.data_rows(), PgWireBackendMessage::DataRow).await?;
        *state = PortalExecutionState::Finished;
        return client
            .feed(PgWireBackendMessage::CommandComplete(
                Tag::new(&tag).with_rows(n).into(),
            ))
            .await
            .map_err(Into::into);
    }
    let push = super::session::is_push(&portal.statement.statement.text);
    let closing = async {
        match &lookahead {
            Some(l) if push => l.closing(name).await,
            _ => std::future::pending().await,
        }
    };
    tokio::pin!(closing);
    let mut n = 0;
    let mut ended = false;
    while n < max_rows {
        let rows = response.data_rows();
        let next = match rows.next().now_or_never() {
            Some(next) => next,
            None => {
                client.flush().await?;
                tokio::select! {
                    next = rows.next() => next,
                    _ = &mut closing => break,
                }
            }
        };
        match next {
            Some(row) => {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                n += 1;
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    if ended {
        *state = PortalExecutionState::Finished;
        client
            .feed(PgWireBackendMessage::CommandComplete(
                Tag::new(&tag).with_rows(n).into(),
            ))
            .await?;
    } else {
        client
            .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
            .await?;
    }
    Ok(())
}

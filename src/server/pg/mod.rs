//! The Postgres wire protocol: `psql` and ordinary Postgres drivers
//! (tokio-postgres, psycopg, pgjdbc, ...) talk to Sluice through
//! [`pgwire`].
//!
//! Every connection is a session with its own properties (`SET`); a script
//! sent in one simple query runs a statement at a time against the shared
//! engine and each statement is answered on its own, up to the first error
//! (as Postgres does). Connections are served on lanes, one thread per
//! core each with a runtime of its own ([`lanes`]); statements run on a
//! blocking thread, so a slow one never stalls a lane, and key lookups are
//! answered on the lane itself. The engine is shared behind one lock with
//! the loop that runs the persistent queries.
//!
//! - Engine statements answer with a command tag (`CREATE STREAM`,
//!   `INSERT 0 1`, ...) and, when they have one, a notice with their message
//!   (`Created query with ID ...`); SHOW, LIST, DESCRIBE, EXPLAIN and PRINT
//!   answer with a table of text columns.
//! - What drivers send besides SQL for Sluice ([`session`]): transaction
//!   blocks ([`transaction`]: rows written in one wait for its COMMIT),
//!   Postgres `SET name = value` and `SHOW name` of session settings,
//!   `DEALLOCATE`; catalog queries of psql, pgcli, drivers and pg_dump ([`catalog`]).
//! - Column names go out in lower case, as Postgres clients expect, unless
//!   the session sets `sluice.identifier_case = upper` ([`results`]).
//! - The extended protocol ([`extended`]): prepared statements with `$n`
//!   parameters ([`params`]), results in text or binary ([`values`]).
//! - Errors carry a SQLSTATE (syntax 42601, unknown name 42P01, unknown
//!   column 42703, unsupported 0A000, bad parameter 22023, transaction
//!   aborted 25P02, internal XX000, ...) and, for
//!   mistakes in a statement, the character position psql draws its caret
//!   under.
//! - `SELECT` without `EMIT` is a pull query, with `EMIT CHANGES` a push
//!   query; `COPY (SELECT ...) TO STDOUT` sends either as COPY data, and
//!   `COPY name FROM STDIN` writes the client's rows ([`copy`]); a cursor
//!   pages through either ([`cursor`]). Rows
//!   (and COPY data) are flushed as soon as no further one is ready, so a
//!   push query's rows reach the client live; a query with nothing to send
//!   checks now and then that its client is still there. A cancel request
//!   ([`cancel`]) stops the running statement with SQLSTATE 57014.
//! - Who may connect ([`auth`]): trust without configured users, else
//!   SCRAM-SHA-256 (unknown names get the same exchange as wrong
//!   passwords; repeated failures slow further logins: [`backoff`]); TLS
//!   with a configured certificate.
//! - Each connection ([`connection`]) negotiates TLS, then reads only
//!   messages checked whole against the protocol ([`frames`]): a malformed
//!   one is answered FATAL 08P01 and the connection closes. A panic inside
//!   a connection ends that connection alone and is logged in one line
//!   ([`panics`]).

mod auth;
mod backoff;
mod cancel;
mod catalog;
mod connection;
mod copy;
mod cursor;
mod extended;
mod frames;
mod lanes;
mod lookahead;
mod panics;
mod params;
mod results;
mod session;
mod transaction;
mod values;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::query::send_execution_response;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::PgWireConnectionState;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::RowDescription;
use pgwire::messages::response::{EmptyQueryResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;

use crate::engine::serving::ServingHandle;
use crate::engine::Engine;
use crate::error::Error;
use session::{Answer, Session};

/// The engine, shared by the query loop and every connection.
pub(crate) type SharedEngine = Arc<Mutex<Engine>>;

/// Connections waiting for the engine right now, and how many times a
/// connection has taken it: the query loop lets the connections waiting
/// after a round go first, each once (a mutex is not fair, and the loop
/// would take it back at once).
static WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SERVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Lock the shared engine for a connection (a panic elsewhere does not
/// make it unusable).
pub(crate) fn lock(engine: &SharedEngine) -> std::sync::MutexGuard<'_, Engine> {
    use std::sync::atomic::Ordering;
    WAITING.fetch_add(1, Ordering::SeqCst);
    let guard = engine.lock().unwrap_or_else(|e| e.into_inner());
    WAITING.fetch_sub(1, Ordering::SeqCst);
    SERVED.fetch_add(1, Ordering::SeqCst);
    guard
}

/// The turns connections have had once every connection waiting now has
/// had one (compare with [`turns_taken`]).
pub(crate) fn turns_owed() -> usize {
    use std::sync::atomic::Ordering;
    let served = SERVED.load(Ordering::SeqCst);
    served + WAITING.load(Ordering::SeqCst)
}

/// The turns connections have had so far.
pub(crate) fn turns_taken() -> usize {
    SERVED.load(std::sync::atomic::Ordering::SeqCst)
}

/// How clients authenticate, and TLS if configured.
pub(crate) struct Security {
    startup: auth::Startup,
    tls: Option<pgwire::tokio::TlsAcceptor>,
}

impl Security {
    /// From the server's settings: an error names a certificate or key
    /// that cannot be used.
    pub(crate) fn new(config: &crate::server::ServerConfig) -> crate::Result<Self> {
        let (tls, certificate) = match &config.tls {
            Some((cert, key)) => {
                let pem = std::fs::read(cert).map_err(|e| {
                    Error::semantic(format!("TLS certificate {}: {e}", cert.display()))
                })?;
                (Some(auth::tls_acceptor(cert, key)?), Some(pem))
            }
            None => (None, None),
        };
        Ok(Self {
            startup: auth::Startup::new(&config.users, certificate.as_deref(), config.login)?,
            tls,
        })
    }

    /// Trust, no TLS: an in-process server (the wire conformance runner).
    pub(crate) fn trust() -> Self {
        Self {
            startup: auth::Startup::Trust(auth::Trust),
            tls: None,
        }
    }
}

/// How long a connection may be silent before TCP checks the peer is
/// still there, and how often it checks then: a client whose machine went
/// away (no FIN) makes the next write fail. A client that closed its end
/// is noticed by the writes a quiet query makes ([`QUIET`]).
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Accept connections on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, engine: SharedEngine, security: Security) {
    let cancels = Arc::new(cancel::Cancels::default());
    let shared = engine.clone();
    let serving = match tokio::task::spawn_blocking(move || lock(&shared).serving()).await {
        Ok(serving) => serving,
        Err(e) => {
            tracing::error!(error = %e, "the wire server could not reach the engine");
            return;
        }
    };
    let tls = security.tls;
    let handlers = Arc::new(Handlers {
        startup: Arc::new(security.startup),
        handler: Arc::new(Handler {
            parser: Arc::new(extended::Parser {
                engine: engine.clone(),
            }),
            engine,
            serving,
            cancels: cancels.clone(),
        }),
        canceller: Arc::new(cancel::Canceller(cancels)),
    });
    panics::install_hook();
    let lanes = match lanes::Lanes::new(lanes::per_core(), crate::server::STACK_BYTES) {
        Ok(lanes) => lanes,
        Err(e) => {
            tracing::error!(error = %e, "the wire server could not start its threads");
            return;
        }
    };
    let mut accepted = 0u64;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                continue;
            }
        };
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL);
        if let Err(e) = socket2::SockRef::from(&socket).set_tcp_keepalive(&keepalive) {
            tracing::debug!(%peer, error = %e, "cannot set TCP keepalive");
        }
        let handlers = handlers.clone();
        let tls = tls.clone();
        accepted += 1;
        let connection = panics::Connection { id: accepted, peer };
        // Moved to its lane's runtime, registered with that lane's driver.
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand a connection to a wire thread");
                continue;
            }
        };
        lanes.spawn(move || async move {
            let socket = match tokio::net::TcpStream::from_std(socket) {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot serve a connection");
                    return;
                }
            };
            let served = panics::guard(connection, async move {
                connection::serve(socket, tls, handlers).await
            })
            .await;
            if let Some(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}

/// Bind the listener (an error names the address).
pub(crate) async fn bind(addr: SocketAddr) -> crate::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e}"),
        ))
    })
}

struct Handlers {
    startup: Arc<auth::Startup>,
    handler: Arc<Handler>,
    canceller: Arc<cancel::Canceller>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.canceller.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.handler.clone()
    }

    fn error_handler(&self) -> Arc<impl pgwire::api::ErrorHandler> {
        Arc::new(NameTheUser)
    }
}

/// A failed password is reported as Postgres does (`password
/// authentication failed for user "alice"`, FATAL 28P01), naming the user
/// who connected: SCRAM's own messages leave the name out.
struct NameTheUser;

impl pgwire::api::ErrorHandler for NameTheUser {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        if let PgWireError::InvalidPassword(user) = error {
            let name = match client.metadata().get("user") {
                Some(name) if user.is_empty() => name.clone(),
                _ => user.clone(),
            };
            *error = PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{name}\""),
            )));
        }
    }
}

struct Handler {
    engine: SharedEngine,
    /// The views key lookups read without the engine.
    serving: ServingHandle,
    cancels: Arc<cancel::Cancels>,
    parser: Arc<extended::Parser>,
}

/// The connection's session, made on its first statement.
fn session(client: &(impl ClientInfo + ?Sized)) -> Arc<Session> {
    let startup = client.metadata().clone();
    client
        .session_extensions()
        .get_or_insert_with(move || Session::new(&startup))
}

impl Handler {
    /// Send a NOTICE, or a WARNING (sent with the statement's response).
    async fn notice<C>(&self, client: &mut C, message: String, warning: bool) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        let notice = match warning {
            true => ErrorInfo::new("WARNING".into(), "01000".into(), message),
            false => ErrorInfo::new("NOTICE".into(), "00000".into(), message),
        };
        client
            .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
            .await?;
        Ok(())
    }

    /// Run a simple query's statements and send their responses; rows go
    /// out as they come (flushed whenever the next one is not ready yet),
    /// so a push query's rows reach the client live. True: the last one
    /// is a COPY FROM STDIN, waiting for the client's data.
    async fn answer<C>(
        &self,
        client: &mut C,
        query: &str,
        status: &mut TransactionStatus,
    ) -> PgWireResult<bool>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        let empty = query
            .trim_matches(|c: char| c == ';' || c.is_whitespace())
            .is_empty();
        let responses = if empty {
            vec![Response::EmptyQuery]
        } else {
            self.do_query(client, query).await?
        };
        for r in responses {
            match r {
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?
                }
                Response::Query(q) => send_rows(client, q, true).await?,
                Response::Execution(tag) => send_execution_response(client, tag).await?,
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    *status = status.to_in_transaction_state();
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    *status = status.to_idle_state();
                }
                Response::Error(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                        .await?;
                    *status = status.to_error_state();
                }
                Response::CopyOut(c) => send_copy(client, c).await?,
                Response::CopyIn(c) => {
                    pgwire::api::copy::send_copy_in_response(client, c).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                    return Ok(true);
                }
                Response::CopyBoth(_) => {
                    return Err(PgWireError::UserError(Box::new(error_info(
                        &Error::Unsupported("COPY BOTH".into()),
                        query,
                    ))))
                }
            }
        }
        Ok(false)
    }
}

/// How long a running query may send nothing before the server checks the
/// client is still there.
const QUIET: std::time::Duration = std::time::Duration::from_secs(10);

/// Send every item of a stream, flushing whenever the next one is not
/// ready yet; returns how many were sent.
async fn forward<C, S, T>(
    client: &mut C,
    items: &mut S,
    message: impl Fn(T) -> PgWireBackendMessage,
) -> PgWireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    S: futures::Stream<Item = PgWireResult<T>> + Unpin + ?Sized,
{
    use futures::{FutureExt, SinkExt, StreamExt};
    let mut n = 0;
    loop {
        let next = match items.next().now_or_never() {
            Some(next) => next,
            None => {
                client.flush().await?;
                loop {
                    match tokio::time::timeout(QUIET, items.next()).await {
                        Ok(next) => break next,
                        // Nothing to send for a while: a message the client
                        // ignores, so a client that went away is noticed
                        // (the write fails) and its query ends.
                        Err(_) => {
                            client
                                .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                                    "server_encoding".into(),
                                    "UTF8".into(),
                                )))
                                .await?
                        }
                    }
                }
            }
        };
        let Some(item) = next else { return Ok(n) };
        client.feed(message(item?)).await?;
        n += 1;
    }
}

/// `COPY ... TO STDOUT` data, each row flushed as soon as no further row
/// is ready (psql prints COPY data as it arrives: a push query's rows show
/// live).
async fn send_copy<C>(client: &mut C, mut response: CopyResponse) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::SinkExt;
    let header = CopyOutResponse::new(
        response.format,
        response.columns as i16,
        response.column_formats(),
    );
    client
        .feed(PgWireBackendMessage::CopyOutResponse(header))
        .await?;
    let n = forward(
        client,
        response.data_stream(),
        PgWireBackendMessage::CopyData,
    )
    .await?;
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    client
        .feed(PgWireBackendMessage::CommandComplete(
            Tag::new("COPY").with_rows(n).into(),
        ))
        .await?;
    Ok(())
}

/// A query response's rows, each flushed to the client as soon as no
/// further row is ready; `describe`: first their description (the
/// extended protocol sends it on Describe instead).
async fn send_rows<C>(
    client: &mut C,
    mut response: QueryResponse,
    describe: bool,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::SinkExt;
    if describe {
        let fields: Vec<_> = response.row_schema().iter().map(Into::into).collect();
        client
            .feed(PgWireBackendMessage::RowDescription(RowDescription::new(
                fields,
            )))
            .await?;
    }
    let tag = response.command_tag().to_string();
    let n = forward(client, response.data_rows(), PgWireBackendMessage::DataRow).await?;
    client
        .feed(PgWireBackendMessage::CommandComplete(
            Tag::new(&tag).with_rows(n).into(),
        ))
        .await?;
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    /// As pgwire's own, but rows are flushed as they come and a cancel
    /// request stops the statement (57014).
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut status = client.transaction_status();
        let session = session(client);
        session.failed(status);
        client.set_state(PgWireConnectionState::QueryInProgress);
        let cancel = self.cancels.watch(client);
        let copying = tokio::select! {
            done = self.answer(client, &query.query, &mut status) => done?,
            _ = cancel::cancelled(cancel) => return Err(PgWireError::QueryCanceled),
        };
        status = session.transaction_status();
        client.set_transaction_status(status);
        if copying {
            // Ready again once the data has come (`CopyHandler`).
            client.flush().await?;
            return Ok(());
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .feed(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        client.flush().await?;
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client);
        let engine = self.engine.clone();
        let text = query.to_string();
        let connection = panics::current();
        let answers = tokio::task::spawn_blocking(move || {
            panics::within(connection, || session.run_script(&engine, &text))
        })
        .await
        .map_err(|e| {
            PgWireError::UserError(Box::new(error_info(
                &Error::internal(format!("the statement's thread failed: {e}")),
                query,
            )))
        })?;
        let mut responses = Vec::new();
        for answer in answers {
            match answer {
                Answer::Response(r) => responses.push(r),
                Answer::Rows { fields, rows, copy } => responses.push(match copy {
                    Some(options) => copy::copy_response(fields, rows, &options),
                    None => results::rows_response(fields, rows),
                }),
                Answer::CopyIn(columns) => responses.push(copy_in(columns)),
                Answer::Fetched { fields, rows } => {
                    responses.push(results::fetch_response(fields, rows))
                }
                Answer::Moved(rows) => responses.push(moved(rows).await),
                Answer::Notice(message) => self.notice(client, message, false).await?,
                Answer::Warning(message) => self.notice(client, message, true).await?,
                Answer::Deallocate(name) => responses.push(deallocate(client, name)),
                Answer::Error(e) => {
                    responses.push(Response::Error(Box::new(error_info(&e, query))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// `MOVE n`, once the rows it skips are taken.
async fn moved(rows: results::Rows) -> Response {
    use futures::StreamExt;
    Response::Execution(Tag::new("MOVE").with_rows(rows.count().await))
}

/// The response that starts a COPY FROM STDIN of so many columns (text).
fn copy_in(columns: usize) -> Response {
    Response::CopyIn(CopyResponse::new(0, columns, futures::stream::empty()))
}

#[async_trait]
impl pgwire::api::copy::CopyHandler for Handler {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        session(client).copy_data(&data.data);
        Ok(())
    }

    /// Write what came, and say how many rows (the wire server then says
    /// it is ready again).
    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        let session = session(client);
        let (engine, connection) = (self.engine.clone(), panics::current());
        let done = {
            let session = session.clone();
            tokio::task::spawn_blocking(move || {
                panics::within(connection, || session.copy_done(&engine))
            })
            .await
        };
        client.set_transaction_status(session.transaction_status());
        let n = match done {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(PgWireError::UserError(Box::new(error_info(&e, "")))),
            Err(e) => {
                let e = Error::internal(format!("the statement's thread failed: {e}"));
                return Err(PgWireError::UserError(Box::new(error_info(&e, ""))));
            }
        };
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(n).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client);
        session.copy_failed();
        client.set_transaction_status(session.transaction_status());
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "57014".into(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}

/// Forget a prepared statement (None: all of them, which the portal store
/// cannot list: they stay until replaced, as clients reuse their names).
fn deallocate<C>(client: &C, name: Option<String>) -> Response
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore,
{
    match name {
        Some(n) => {
            client.portal_store().rm_statement(&n);
            Response::Execution(Tag::new("DEALLOCATE"))
        }
        None => Response::Execution(Tag::new("DEALLOCATE ALL")),
    }
}

/// An error as Postgres reports it: severity, SQLSTATE, message and, for a
/// mistake in the statement, its 1-based character position in `query`.
pub(crate) fn error_info(e: &Error, query: &str) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.message());
    info.position = e
        .position()
        .and_then(|p| char_offset(query, p.line, p.column))
        .map(|o| o.to_string());
    info
}

/// The 1-based character index of `line:column` (both 1-based) in `text`.
fn char_offset(text: &str, line: u64, column: u64) -> Option<u64> {
    let mut offset = 0u64;
    for (i, l) in text.split('\n').enumerate() {
        if i as u64 + 1 == line {
            let len = l.chars().count() as u64;
            return Some(offset + column.clamp(1, len + 1));
        }
        offset += l.chars().count() as u64 + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_character_offsets() {
        let q = "SELECT 1;\nCREATE STREAM é x";
        assert_eq!(char_offset(q, 1, 1), Some(1));
        assert_eq!(char_offset(q, 2, 1), Some(11));
        // Characters, not bytes: `x` after the two-byte `é`.
        assert_eq!(char_offset(q, 2, 17), Some(27));
        assert_eq!(char_offset(q, 3, 1), None);
        let e = Error::syntax(
            "mismatched input",
            Some(crate::error::Position {
                line: 2,
                column: 15,
            }),
        );
        let info = error_info(&e, q);
        assert_eq!(info.code, "42601");
        assert_eq!(info.position.as_deref(), Some("25"));
    }
}

//! The Postgres wire protocol: `psql` and ordinary Postgres drivers talk to
//! Sluice through [`pgwire`].
//!
//! Every connection is a session with its own properties (`SET`); a script
//! sent in one simple query runs a statement at a time against the shared
//! engine and each statement is answered on its own, up to the first error
//! (as Postgres does). Statements run on a blocking thread, so a slow one
//! never stalls the connections' async runtime; the engine is shared behind
//! one lock with the loop that runs the persistent queries.
//!
//! - Engine statements answer with a command tag (`CREATE STREAM`,
//!   `INSERT 0 1`, ...) and, when they have one, a notice with their message
//!   (`Created query with ID ...`); SHOW, LIST, DESCRIBE, EXPLAIN and PRINT
//!   answer with a table of text columns.
//! - What drivers send besides SQL for Sluice ([`session`]): `BEGIN` /
//!   `COMMIT` / `ROLLBACK` (no-ops with the right transaction status),
//!   Postgres `SET name = value` and `SHOW name` of session settings.
//! - Errors carry a SQLSTATE (syntax 42601, unknown name 42P01,
//!   unsupported 0A000, internal XX000, ...) and, for mistakes in a
//!   statement, the character position psql draws its caret under.

mod results;
mod session;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::error::Error;
use session::{Answer, Session};

/// The engine, shared by the query loop and every connection.
pub(crate) type SharedEngine = Arc<Mutex<Engine>>;

/// Lock the shared engine (a panic elsewhere does not make it unusable).
pub(crate) fn lock(engine: &SharedEngine) -> std::sync::MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accept connections on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, engine: SharedEngine) {
    let handlers = Arc::new(Handlers {
        handler: Arc::new(Handler { engine }),
    });
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                continue;
            }
        };
        let handlers = handlers.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
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
    handler: Arc<Handler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.handler.clone()
    }
}

struct Handler {
    engine: SharedEngine,
}

/// Trust authentication (loopback by default).
impl NoopStartupHandler for Handler {}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = {
            let engine = self.engine.clone();
            let startup = client.metadata().clone();
            client
                .session_extensions()
                .get_or_insert_with(move || Session::new(&lock(&engine), &startup))
        };
        let engine = self.engine.clone();
        let text = query.to_string();
        let answers = tokio::task::spawn_blocking(move || session.run_script(&engine, &text))
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
                Answer::Notice(message) => {
                    use futures::SinkExt;
                    let notice = ErrorInfo::new("NOTICE".into(), "00000".into(), message);
                    client
                        .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
                        .await?;
                }
                Answer::Error(e) => {
                    responses.push(Response::Error(Box::new(error_info(&e, query))));
                    break;
                }
            }
        }
        Ok(responses)
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

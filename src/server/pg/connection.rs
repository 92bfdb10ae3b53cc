//! One client connection, from the first byte to the close.
//!
//! This is `pgwire`'s own connection loop (`process_socket`) with one
//! difference: every message passes through [`frames::Checked`] before the
//! decoder, so a malformed one is refused with FATAL 08P01 instead of
//! reaching a decoder that panics on it. The steps:
//!
//! 1. Negotiation, on the raw socket: a client may ask for TLS (SSLRequest,
//!    answered `S` with a configured certificate, else `N`), ask for
//!    GSSAPI encryption (answered `N`), or open TLS directly (Postgres 17's
//!    `sslnegotiation=direct`, which must ask for the `postgresql` ALPN
//!    protocol). Whatever else arrives first is the start of the startup
//!    packet.
//! 2. Startup and authentication must be done within [`STARTUP_TIMEOUT`]
//!    of connecting, as in Postgres (`authentication_timeout`).
//! 3. Then each message is dispatched to the handlers by `pgwire`'s
//!    `process_message`; an error answers as `pgwire` answers it (and a
//!    FATAL one ends the session). While an `Execute` runs, its handler
//!    can read what the client sent next ([`Lookahead`]: a portal closed
//!    while its `Execute` waits for rows).

use std::io;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{
    ClientInfo, DefaultClient, ErrorHandler, PgWireConnectionState, PgWireServerHandlers,
};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{process_error, process_message, MaybeTls, PgWireMessageServerCodec};
use pgwire::tokio::TlsAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::frames::{self, Checked, Violation};
use super::lookahead::{self, Lookahead};

/// How long a client has to negotiate, start up and authenticate.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The first byte of a TLS handshake (a client opening TLS directly).
const TLS_HANDSHAKE: u8 = 0x16;

/// The ALPN protocol a direct-TLS client must ask for.
const ALPN: &[u8] = b"postgresql";

/// A negotiated connection: its stream, whether TLS secures it, the server
/// name the client asked for, and bytes already read past the negotiation.
struct Negotiated {
    stream: MaybeTls,
    secure: bool,
    server_name: Option<String>,
    read: Vec<u8>,
}

/// Serve one client until it leaves, an error ends its session, or it
/// breaks the protocol.
pub(crate) async fn serve<H: PgWireServerHandlers>(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let peer = socket.peer_addr()?;
    let deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(deadline);
    let negotiated = tokio::select! {
        _ = &mut deadline => return Ok(()),
        negotiated = negotiate(socket, tls) => negotiated?,
    };
    let Some(negotiated) = negotiated else {
        return Ok(());
    };
    let mut client = DefaultClient::new(peer, negotiated.secure);
    client.sni_server_name = negotiated.server_name;
    let (stream, ahead) = lookahead::socket(negotiated.stream);
    let stream = Checked::new(stream, &negotiated.read);
    let mut socket = Framed::new(stream, PgWireMessageServerCodec::new(client));
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    socket
        .session_extensions()
        .insert::<Lookahead>(ahead.clone());

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if starting {
            tokio::select! {
                _ = &mut deadline => None,
                next = socket.next() => next,
            }
        } else {
            socket.next().await
        };
        let message = match next {
            None => break,
            Some(Ok(message)) => message,
            Some(Err(e)) => return refuse(&mut socket, e).await,
        };
        // The client is leaving: close (some clients wait for it).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let wait_for_sync = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // A cancel request comes on a connection of its own, which ends.
        let cancelling = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        // What follows an Execute, read and not decoded yet, for its
        // handler to look at.
        let executing = matches!(message, PgWireFrontendMessage::Execute(_));
        if executing {
            ahead.set_above([&socket.read_buffer()[..], &socket.get_ref().unread()].concat());
        }
        let done = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if executing {
            ahead.set_above(Vec::new());
        }
        if let Err(mut e) = done {
            errors.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            process_error(&mut socket, e, wait_for_sync).await?;
            if fatal {
                break;
            }
        }
        if cancelling {
            break;
        }
    }
    Ok(())
}

/// Answer input that cannot be read as a message (a [`Violation`], or an
/// error of the decoder) with FATAL 08P01, as Postgres does, and close; a
/// socket that failed is just closed.
async fn refuse<S, T>(
    socket: &mut Framed<S, PgWireMessageServerCodec<T>>,
    error: PgWireError,
) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let message = match error {
        PgWireError::IoError(e) => match Violation::of(&e) {
            Some(v) => v.to_string(),
            None => return Err(e),
        },
        other => other.to_string(),
    };
    let peer = socket.codec().client_info.socket_addr;
    tracing::debug!(%peer, %message, "protocol violation");
    let info = ErrorInfo::new("FATAL".into(), "08P01".into(), message);
    socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await?;
    socket.close().await
}

/// Step 1: TLS or not. `None` when the connection is to close without a
/// word (a direct TLS handshake with no certificate configured).
async fn negotiate(
    mut socket: TcpStream,
    tls: Option<TlsAcceptor>,
) -> io::Result<Option<Negotiated>> {
    socket.set_nodelay(true)?;
    let mut first = [0u8; 1];
    if socket.peek(&mut first).await? == 1 && first[0] == TLS_HANDSHAKE {
        let Some(tls) = tls else {
            return Ok(None);
        };
        return secure(socket, &tls, true).await.map(Some);
    }
    let (mut ssl_asked, mut gss_asked) = (false, false);
    loop {
        let mut head = [0u8; 8];
        socket.read_exact(&mut head).await?;
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code) {
            (8, frames::SSL_REQUEST) if !ssl_asked => match &tls {
                Some(tls) => {
                    socket.write_all(b"S").await?;
                    return secure(socket, tls, false).await.map(Some);
                }
                None => {
                    socket.write_all(b"N").await?;
                    ssl_asked = true;
                }
            },
            (8, frames::GSSENC_REQUEST) if !gss_asked => {
                socket.write_all(b"N").await?;
                gss_asked = true;
            }
            // The startup packet's first bytes (checked with the rest).
            _ => {
                return Ok(Some(Negotiated {
                    stream: MaybeTls::Plain(socket),
                    secure: false,
                    server_name: None,
                    read: head.to_vec(),
                }))
            }
        }
    }
}

/// The TLS handshake; a client that opened TLS directly must have asked
/// for the `postgresql` protocol (ALPN), as Postgres requires.
async fn secure(socket: TcpStream, tls: &TlsAcceptor, direct: bool) -> io::Result<Negotiated> {
    let stream = tls.accept(socket).await?;
    let (_, session) = stream.get_ref();
    if direct && session.alpn_protocol() != Some(ALPN) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a direct TLS connection without the postgresql ALPN protocol",
        ));
    }
    let server_name = session.server_name().map(str::to_string);
    Ok(Negotiated {
        stream: MaybeTls::Tls(Box::new(stream)),
        secure: true,
        server_name,
        read: Vec::new(),
    })
}

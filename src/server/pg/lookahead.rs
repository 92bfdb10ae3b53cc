//! What a client has sent past the message being answered, readable while
//! that message runs.
//!
//! The connection answers messages one at a time: while an `Execute` with
//! a row limit waits for the rows of a push query, nothing reads the socket.
//! A client that stops early (node's `pg-query-stream` on `break`, any
//! cursor library that closes its portal) sends `Close` + `Sync` and waits
//! for their answer, which would come only after rows it no longer wants.
//! So the connection's stream is a [`Socket`] whose input a [`Lookahead`]
//! (kept in the session's extensions) can read ahead: the waiting `Execute`
//! reads what arrived and stops, answering the rows it has, when the client
//! closes that portal, ends the session (`Terminate`) or hangs up. What was
//! read ahead is then read by the connection as if it had just arrived.
//!
//! Both are used on the connection's own task, never at once (the waiting
//! `Execute` holds the connection), so the lock is never contended; a
//! lookahead reads at most [`MAX_AHEAD`] bytes.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most a lookahead reads ahead (past it, it waits: a client sending
/// that much while a query runs is not closing it).
const MAX_AHEAD: usize = 1 << 20;

/// The message type of `Close` and `Terminate`, and `Close`'s target for a
/// portal.
const CLOSE: u8 = b'C';
const TERMINATE: u8 = b'X';
const PORTAL: u8 = b'P';

struct Shared<S> {
    stream: S,
    /// Read by the connection before the message being answered, not yet
    /// decoded (the codec's and [`super::frames::Checked`]'s buffers): what
    /// the client sent first.
    above: Vec<u8>,
    /// Read ahead from the stream, for the connection to read next.
    ahead: BytesMut,
    eof: bool,
}

/// A connection's stream, whose input a [`Lookahead`] can read ahead.
pub(crate) struct Socket<S> {
    shared: Arc<Mutex<Shared<S>>>,
}

/// Reads a connection's input ahead while a message runs.
#[derive(Clone)]
pub(crate) struct Lookahead {
    watch: Arc<dyn Watch>,
}

trait Watch: Send + Sync {
    fn set_above(&self, above: Vec<u8>);
    fn poll_closing(&self, cx: &mut Context<'_>, portal: &str) -> Poll<()>;
}

fn lock<S>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream and the lookahead over it.
pub(crate) fn socket<S>(stream: S) -> (Socket<S>, Lookahead)
where
    S: AsyncRead + Unpin + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Shared {
        stream,
        above: Vec::new(),
        ahead: BytesMut::new(),
        eof: false,
    }));
    (
        Socket {
            shared: shared.clone(),
        },
        Lookahead { watch: shared },
    )
}

impl<S: AsyncRead + Unpin + Send> Watch for Mutex<Shared<S>> {
    fn set_above(&self, above: Vec<u8>) {
        lock(self).above = above;
    }

    fn poll_closing(&self, cx: &mut Context<'_>, portal: &str) -> Poll<()> {
        let mut shared = lock(self);
        loop {
            let Shared {
                above, ahead, eof, ..
            } = &*shared;
            let closed = match above.is_empty() {
                true => closes(ahead, portal),
                false => closes(&[above.as_slice(), ahead].concat(), portal),
            };
            if *eof || closed {
                return Poll::Ready(());
            }
            if ahead.len() >= MAX_AHEAD {
                return Poll::Pending;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut shared.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => shared.eof = true,
                Poll::Ready(Ok(())) => shared.ahead.extend_from_slice(read.filled()),
                // The connection reads the error next.
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Lookahead {
    /// What the connection read before the message it answers now and has
    /// not decoded (the messages after it, or the start of them).
    pub(crate) fn set_above(&self, above: Vec<u8>) {
        self.watch.set_above(above);
    }

    /// Done when the client has sent a `Close` of `portal` or a
    /// `Terminate`, or has hung up; otherwise waits (reading ahead).
    pub(crate) async fn closing(&self, portal: &str) {
        poll_fn(|cx| self.watch.poll_closing(cx, portal)).await
    }
}

/// Whether these frontend messages (from a message's start) close `portal`
/// or end the session. A malformed length counts as the end: the
/// connection refuses it when it reads it.
fn closes(mut input: &[u8], portal: &str) -> bool {
    while input.len() >= 5 {
        let len = i32::from_be_bytes([input[1], input[2], input[3], input[4]]);
        let Some(end) = usize::try_from(len).ok().filter(|l| *l >= 4).map(|l| l + 1) else {
            return true;
        };
        if input.len() < end {
            return false;
        }
        let body = &input[5..end];
        match input[0] {
            TERMINATE => return true,
            CLOSE if body.first() == Some(&PORTAL) => {
                let name = &body[1..];
                let name = name.split(|b| *b == 0).next().unwrap_or(name);
                if name == portal.as_bytes() {
                    return true;
                }
            }
            _ => {}
        }
        input = &input[end..];
    }
    false
}

impl<S: AsyncRead + Unpin> AsyncRead for Socket<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        if !shared.ahead.is_empty() {
            let n = shared.ahead.len().min(buf.remaining());
            buf.put_slice(&shared.ahead.split_to(n));
            return Poll::Ready(Ok(()));
        }
        if shared.eof {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut shared.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Socket<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut lock(&self.shared).stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut lock(&self.shared).stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        lock(&self.shared).stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn a_close_of_the_portal_or_a_terminate_is_found_past_other_messages() {
        let flush = message(b'H', b"");
        let sync = message(b'S', b"");
        let close = |target: u8, name: &str| {
            let mut body = vec![target];
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            message(CLOSE, &body)
        };
        let run = |parts: &[&[u8]], portal: &str| closes(&parts.concat(), portal);
        assert!(run(&[&flush, &close(b'P', "C_1"), &sync], "C_1"));
        assert!(run(&[&close(b'P', ""), &sync], ""));
        assert!(!run(&[&flush, &close(b'P', "C_2"), &sync], "C_1"));
        // Closing the statement of that name is not closing the portal.
        assert!(!run(&[&close(b'S', "C_1"), &sync], "C_1"));
        assert!(!run(&[&flush, &sync], "C_1"));
        assert!(run(&[&sync, &message(TERMINATE, b"")], "C_1"));
        // Not all there yet.
        let whole = close(b'P', "C_1");
        assert!(!run(&[&flush, &whole[..whole.len() - 1]], "C_1"));
        assert!(!run(&[&whole[..3]], "C_1"));
        // A length no message has.
        assert!(run(&[&[CLOSE, 0, 0, 0, 1]], "C_1"));
    }

    /// What a lookahead read is read by the connection next, after what
    /// it had; the lookahead finds the close across both, and a hang-up.
    #[tokio::test]
    async fn read_ahead_input_is_read_next_and_a_close_ends_the_wait() {
        let (client, server) = tokio::io::duplex(1024);
        let (mut socket, lookahead) = socket(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let close = message(CLOSE, b"PC_1\0");
        // The first half of the Close was read by the connection already.
        lookahead.set_above(close[..4].to_vec());
        client_write.write_all(&close[4..]).await.unwrap();
        client_write.write_all(&message(b'S', b"")).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), lookahead.closing("C_1"))
            .await
            .expect("the close is seen");
        lookahead.set_above(Vec::new());
        let mut read = vec![0u8; close.len() - 4 + 5];
        socket.read_exact(&mut read).await.unwrap();
        assert_eq!(read, [&close[4..], &message(b'S', b"")[..]].concat());
        // Writes go through.
        socket.write_all(b"Z").await.unwrap();
        let mut z = [0u8; 1];
        client_read.read_exact(&mut z).await.unwrap();
        assert_eq!(&z, b"Z");
        // A hang-up ends a wait, and the connection then reads the end.
        let not_yet = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            lookahead.closing("C_2"),
        )
        .await;
        assert!(not_yet.is_err(), "nothing closes C_2 yet");
        drop(client_write);
        drop(client_read);
        tokio::time::timeout(std::time::Duration::from_secs(5), lookahead.closing("C_2"))
            .await
            .expect("a hang-up ends the wait");
        let mut rest = Vec::new();
        socket.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}

//! Every frontend message is checked whole before the protocol decoder sees
//! it.
//!
//! `pgwire`'s decoders read a message's fields from the connection's whole
//! input buffer, not from the message: a Bind whose parameter length runs
//! past its message reads into the next one, or panics when the buffer ends
//! ("advance out of bounds"); a CopyData or password message shorter than
//! its header underflows. [`Checked`] sits between the socket (plain or
//! TLS) and the decoder: it hands the decoder only whole messages whose
//! layout it has checked against the protocol (each field inside the
//! message, every count and length consistent, nothing left over), so the
//! decoder reads exactly one message each time. The first message that
//! does not check is a [`Violation`]: the read fails with it, and the
//! connection answers FATAL 08P01 naming the message and what is wrong, as
//! Postgres does ("invalid message format"), and closes. Messages before it
//! are served as usual.
//!
//! Lengths are checked as soon as a message's header arrives (before its
//! body is buffered): a length below 4, or above the limit for its type
//! (10,000 bytes for the small control messages and the startup packet, as
//! in Postgres; 1 GiB for queries, Bind, COPY data and authentication).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Postgres's limit for the startup packet and small control messages.
const SMALL_MESSAGE: usize = 10_000;
/// Postgres's limit for the others (1 GiB - 1).
const LARGE_MESSAGE: usize = 0x3fff_ffff;
/// The longest cancel key (protocol 3.2 allows up to 256 bytes).
const MAX_CANCEL_KEY: usize = 256;

pub(crate) const SSL_REQUEST: i32 = 80_877_103;
pub(crate) const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A frontend message that breaks the protocol: what is wrong with which
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

impl Violation {
    fn io(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self.clone())
    }

    /// The violation an I/O error carries, if it is one.
    pub(crate) fn of(error: &io::Error) -> Option<&Violation> {
        error.get_ref()?.downcast_ref::<Violation>()
    }
}

/// Where a connection is in the protocol, for what the next message may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The startup packet (or a cancel request): no type byte.
    Startup,
    /// Typed messages; the first password-family message ('p') is SCRAM's
    /// initial response, whose layout is known.
    Typed { sasl_started: bool },
}

/// Cuts checked messages off the front of a connection's input.
#[derive(Debug)]
pub(crate) struct Frames {
    phase: Phase,
}

impl Frames {
    /// Expecting the startup packet (after any SSL or GSSAPI request).
    pub(crate) fn new() -> Self {
        Frames {
            phase: Phase::Startup,
        }
    }

    /// The length of the whole message at the front of `input` once it has
    /// all arrived and checks; `None` while more input is needed.
    pub(crate) fn next(&mut self, input: &[u8]) -> Result<Option<usize>, Violation> {
        match self.phase {
            Phase::Startup => {
                let Some(len) = declared_length(input, 0) else {
                    return Ok(None);
                };
                if !(8..=SMALL_MESSAGE as i64).contains(&len) {
                    return Err(Violation(format!(
                        "invalid length of startup packet: {len} bytes"
                    )));
                }
                let len = len as usize;
                if input.len() < len {
                    return Ok(None);
                }
                check_startup(&input[4..len])?;
                self.phase = Phase::Typed {
                    sasl_started: false,
                };
                Ok(Some(len))
            }
            Phase::Typed { sasl_started } => {
                let Some(&tag) = input.first() else {
                    return Ok(None);
                };
                let Some(kind) = Kind::of(tag) else {
                    return Err(Violation(format!(
                        "invalid frontend message type {} ({tag:#04x})",
                        printable(tag)
                    )));
                };
                let Some(len) = declared_length(input, 1) else {
                    return Ok(None);
                };
                let limit = kind.limit();
                if len < 4 || len > limit as i64 {
                    return Err(Violation(format!(
                        "invalid length of {} message: {len} bytes (4 to {limit})",
                        kind.name()
                    )));
                }
                let end = 1 + len as usize;
                if input.len() < end {
                    return Ok(None);
                }
                let body = Body::new(kind, &input[5..end]);
                match kind {
                    Kind::Password if !sasl_started => {
                        check_sasl_initial(body)?;
                        self.phase = Phase::Typed { sasl_started: true };
                    }
                    _ => check_typed(kind, body)?,
                }
                Ok(Some(end))
            }
        }
    }
}

/// The int32 length at `at`, once its four bytes are there.
fn declared_length(input: &[u8], at: usize) -> Option<i64> {
    let bytes: [u8; 4] = input.get(at..at + 4)?.try_into().ok()?;
    Some(i64::from(i32::from_be_bytes(bytes)))
}

fn printable(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        "(unprintable)".to_string()
    }
}

/// The typed frontend messages `pgwire` decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    Flush,
    Terminate,
    CopyData,
    CopyDone,
    CopyFail,
    Password,
}

impl Kind {
    fn of(tag: u8) -> Option<Kind> {
        Some(match tag {
            b'Q' => Kind::Query,
            b'P' => Kind::Parse,
            b'B' => Kind::Bind,
            b'D' => Kind::Describe,
            b'E' => Kind::Execute,
            b'C' => Kind::Close,
            b'S' => Kind::Sync,
            b'H' => Kind::Flush,
            b'X' => Kind::Terminate,
            b'd' => Kind::CopyData,
            b'c' => Kind::CopyDone,
            b'f' => Kind::CopyFail,
            b'p' => Kind::Password,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Query => "Query",
            Kind::Parse => "Parse",
            Kind::Bind => "Bind",
            Kind::Describe => "Describe",
            Kind::Execute => "Execute",
            Kind::Close => "Close",
            Kind::Sync => "Sync",
            Kind::Flush => "Flush",
            Kind::Terminate => "Terminate",
            Kind::CopyData => "CopyData",
            Kind::CopyDone => "CopyDone",
            Kind::CopyFail => "CopyFail",
            Kind::Password => "password",
        }
    }

    /// The longest message of this type, length field included.
    fn limit(self) -> usize {
        match self {
            Kind::Query | Kind::Parse | Kind::Bind | Kind::CopyData | Kind::Password => {
                LARGE_MESSAGE
            }
            _ => SMALL_MESSAGE,
        }
    }
}

/// Each message's fields, in order, all inside the message.
fn check_typed(kind: Kind, mut body: Body<'_>) -> Result<(), Violation> {
    match kind {
        Kind::Query | Kind::CopyFail => {
            body.cstring("text")?;
        }
        Kind::Parse => {
            body.cstring("statement name")?;
            body.cstring("query")?;
            let types = body.u16("parameter type count")?;
            body.skip(usize::from(types) * 4, "parameter types")?;
        }
        Kind::Bind => check_bind(&mut body)?,
        Kind::Describe | Kind::Close => {
            body.skip(1, "target type")?;
            body.cstring("name")?;
        }
        Kind::Execute => {
            body.cstring("portal name")?;
            body.skip(4, "row limit")?;
        }
        Kind::Sync | Kind::Flush | Kind::Terminate | Kind::CopyDone => {}
        // Raw bytes: COPY data, and SCRAM's later messages.
        Kind::CopyData | Kind::Password => return Ok(()),
    }
    body.end()
}

fn check_bind(body: &mut Body<'_>) -> Result<(), Violation> {
    body.cstring("portal name")?;
    body.cstring("statement name")?;
    let formats = body.u16("parameter format count")?;
    body.skip(usize::from(formats) * 2, "parameter formats")?;
    let params = body.u16("parameter count")?;
    for i in 1..=params {
        let len = body.i32(&format!("length of parameter {i}"))?;
        match len {
            -1 => {}
            n if n >= 0 => body.skip(n as usize, &format!("parameter {i}"))?,
            n => {
                return Err(body.wrong(&format!("parameter {i} has length {n}")));
            }
        }
    }
    let results = body.u16("result format count")?;
    body.skip(usize::from(results) * 2, "result formats")
}

/// SCRAM's first message: the mechanism, then the initial response's
/// length (-1 for none) and exactly that many bytes.
fn check_sasl_initial(mut body: Body<'_>) -> Result<(), Violation> {
    body.cstring("SASL mechanism")?;
    let len = body.i32("SASL response length")?;
    match len {
        -1 => {}
        n if n >= 0 => body.skip(n as usize, "SASL response")?,
        n => return Err(body.wrong(&format!("SASL response has length {n}"))),
    }
    body.end()
}

/// The startup packet's body (after its length): a cancel request, or a
/// protocol version and name/value pairs ending in an empty name.
fn check_startup(body: &[u8]) -> Result<(), Violation> {
    let Some(code) = body.get(..4).and_then(|b| b.try_into().ok()) else {
        return Err(Violation("invalid length of startup packet".into()));
    };
    match i32::from_be_bytes(code) {
        CANCEL_REQUEST => {
            let key = body.len().saturating_sub(8);
            if body.len() < 8 || !(4..=MAX_CANCEL_KEY).contains(&key) {
                return Err(Violation(format!(
                    "invalid length of cancel request: {} bytes",
                    body.len() + 4
                )));
            }
            Ok(())
        }
        SSL_REQUEST | GSSENC_REQUEST => Err(Violation(
            "an SSL or GSSAPI request after the connection's negotiation".into(),
        )),
        code => {
            let (major, minor) = (code >> 16, code & 0xffff);
            if major != 3 {
                return Err(Violation(format!(
                    "unsupported frontend protocol {major}.{minor}: the server supports 3.0 to 3.2"
                )));
            }
            let mut pairs = Body {
                what: "startup packet",
                bytes: &body[4..],
            };
            loop {
                if pairs.bytes == [0] {
                    return Ok(());
                }
                if pairs.bytes.first() == Some(&0) || pairs.bytes.is_empty() {
                    return Err(pairs.wrong("expected a terminator as its last byte"));
                }
                pairs.cstring("parameter name")?;
                pairs.cstring("parameter value")?;
            }
        }
    }
}

/// What is left of a message's body, read field by field.
struct Body<'a> {
    what: &'static str,
    bytes: &'a [u8],
}

impl<'a> Body<'a> {
    fn new(kind: Kind, bytes: &'a [u8]) -> Self {
        Body {
            what: kind.name(),
            bytes,
        }
    }

    fn wrong(&self, why: &str) -> Violation {
        Violation(format!("invalid {} message: {why}", self.what))
    }

    fn skip(&mut self, n: usize, field: &str) -> Result<(), Violation> {
        if n > self.bytes.len() {
            return Err(self.wrong(&format!(
                "its {field} ({n} bytes) runs past its end ({} bytes left)",
                self.bytes.len()
            )));
        }
        self.bytes.advance(n);
        Ok(())
    }

    fn cstring(&mut self, field: &str) -> Result<(), Violation> {
        match self.bytes.iter().position(|&b| b == 0) {
            Some(at) => {
                self.bytes.advance(at + 1);
                Ok(())
            }
            None => Err(self.wrong(&format!("its {field} has no terminating zero byte"))),
        }
    }

    fn u16(&mut self, field: &str) -> Result<u16, Violation> {
        let start = self.bytes;
        self.skip(2, field)?;
        Ok(u16::from_be_bytes([start[0], start[1]]))
    }

    fn i32(&mut self, field: &str) -> Result<i32, Violation> {
        let start = self.bytes;
        self.skip(4, field)?;
        Ok(i32::from_be_bytes([start[0], start[1], start[2], start[3]]))
    }

    fn end(&self) -> Result<(), Violation> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.wrong(&format!("{} bytes after its last field", self.bytes.len())))
        }
    }
}

/// A connection's stream, reading only checked messages (see the module's
/// documentation); writes pass straight through.
pub(crate) struct Checked<S> {
    inner: S,
    frames: Frames,
    /// Read from the socket, not yet checked.
    raw: BytesMut,
    /// Checked, not yet handed to the decoder.
    checked: BytesMut,
    violation: Option<Violation>,
    eof: bool,
}

impl<S> Checked<S> {
    /// Reading `inner`, after `read` (bytes of it already read).
    pub(crate) fn new(inner: S, read: &[u8]) -> Self {
        Checked {
            inner,
            frames: Frames::new(),
            raw: BytesMut::from(read),
            checked: BytesMut::new(),
            violation: None,
            eof: false,
        }
    }

    /// Bytes read from the socket and not yet handed to the decoder, in
    /// the order they came.
    pub(crate) fn unread(&self) -> Vec<u8> {
        [&self.checked[..], &self.raw[..]].concat()
    }

    /// Move the whole checked messages at the front of `raw` to `checked`.
    fn check(&mut self) -> Result<(), Violation> {
        while let Some(len) = self.frames.next(&self.raw)? {
            let frame = self.raw.split_to(len);
            self.checked.extend_from_slice(&frame);
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Checked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.checked.is_empty() {
                let n = this.checked.len().min(buf.remaining());
                buf.put_slice(&this.checked.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if let Some(v) = &this.violation {
                return Poll::Ready(Err(v.io()));
            }
            if let Err(v) = this.check() {
                this.violation = Some(v);
                continue;
            }
            if !this.checked.is_empty() {
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => this.raw.extend_from_slice(read.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Checked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        let mut body = 196_608i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0sluice\0\0");
        let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        m.extend(body);
        m
    }

    /// A Bind of portal "p", statement "s", two parameters (one NULL), one
    /// result format.
    fn bind() -> Vec<u8> {
        let mut b = b"p\0s\0".to_vec();
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&2u16.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        message(b'B', &b)
    }

    fn well_formed() -> Vec<Vec<u8>> {
        let mut parse = b"s\0SELECT $1\0".to_vec();
        parse.extend_from_slice(&1u16.to_be_bytes());
        parse.extend_from_slice(&23u32.to_be_bytes());
        let mut execute = b"p\0".to_vec();
        execute.extend_from_slice(&0i32.to_be_bytes());
        let mut sasl = b"SCRAM-SHA-256\0".to_vec();
        sasl.extend_from_slice(&3i32.to_be_bytes());
        sasl.extend_from_slice(b"n,,");
        vec![
            startup(),
            message(b'p', &sasl),
            message(b'p', b"c=biws,r=..."),
            message(b'Q', b"SHOW STREAMS;\0"),
            message(b'P', &parse),
            bind(),
            message(b'D', b"P\0"),
            message(b'E', &execute),
            message(b'C', b"S\0"),
            message(b'H', b""),
            message(b'S', b""),
            message(b'd', b"1\t2\n"),
            message(b'c', b""),
            message(b'f', b"gave up\0"),
            message(b'X', b""),
        ]
    }

    #[test]
    fn well_formed_messages_are_cut_whole() {
        let mut frames = Frames::new();
        for m in well_formed() {
            // Nothing until the whole message is there.
            assert_eq!(frames.next(&m[..m.len() - 1]), Ok(None), "{m:?}");
            let mut input = m.clone();
            input.extend_from_slice(b"Q"); // the next message's start
            assert_eq!(frames.next(&input), Ok(Some(m.len())), "{m:?}");
        }
    }

    fn violation(after_startup: bool, input: &[u8]) -> String {
        let mut frames = Frames::new();
        if after_startup {
            assert_eq!(frames.next(&startup()), Ok(Some(startup().len())));
        }
        match frames.next(input) {
            Err(Violation(why)) => why,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_named_with_what_is_wrong() {
        let mut negative = b"\0\0".to_vec();
        negative.extend_from_slice(&0u16.to_be_bytes());
        negative.extend_from_slice(&1u16.to_be_bytes());
        negative.extend_from_slice(&(-2i32).to_be_bytes());
        negative.extend_from_slice(&0u16.to_be_bytes());
        let mut trailing = bind();
        trailing.push(0);
        let len = (trailing.len() - 1) as i32;
        trailing[1..5].copy_from_slice(&len.to_be_bytes());
        let mut sasl = b"SCRAM-SHA-256\0".to_vec();
        sasl.extend_from_slice(&9i32.to_be_bytes());
        sasl.extend_from_slice(b"n,,");
        let mut parse = b"s\0q\0".to_vec();
        parse.extend_from_slice(&2u16.to_be_bytes());
        parse.extend_from_slice(&23u32.to_be_bytes());
        let mut huge_describe = vec![b'D'];
        huge_describe.extend_from_slice(&20_000i32.to_be_bytes());
        for (input, expected) in [
            (
                message(b'B', &negative),
                "invalid Bind message: parameter 1 has length -2",
            ),
            (
                trailing,
                "invalid Bind message: 1 bytes after its last field",
            ),
            (
                message(b'p', &sasl),
                "invalid password message: its SASL response (9 bytes) runs past its end (3 bytes left)",
            ),
            (
                message(b'P', &parse),
                "invalid Parse message: its parameter types (8 bytes) runs past its end (4 bytes left)",
            ),
            (
                message(b'D', b"S"),
                "invalid Describe message: its name has no terminating zero byte",
            ),
            (
                huge_describe,
                "invalid length of Describe message: 20000 bytes (4 to 10000)",
            ),
            (
                message(0, b""),
                "invalid frontend message type (unprintable) (0x00)",
            ),
        ] {
            assert_eq!(violation(true, &input), expected);
        }
        let mut cancel = 12i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
        cancel.extend_from_slice(&7i32.to_be_bytes());
        assert_eq!(
            violation(false, &cancel),
            "invalid length of cancel request: 12 bytes"
        );
        let mut ssl = 8i32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        assert_eq!(
            violation(false, &ssl),
            "an SSL or GSSAPI request after the connection's negotiation"
        );
        let mut empty_name = 10i32.to_be_bytes().to_vec();
        empty_name.extend_from_slice(&196_608i32.to_be_bytes());
        empty_name.extend_from_slice(b"\0\0");
        assert_eq!(
            violation(false, &empty_name),
            "invalid startup packet message: expected a terminator as its last byte"
        );
    }

    /// A reader that hands over one byte per read.
    struct Trickle(std::collections::VecDeque<u8>);

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(b) = self.get_mut().0.pop_front() {
                buf.put_slice(&[b]);
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_stream_passes_checked_messages_and_stops_at_a_violation() {
        let mut sent: Vec<u8> = well_formed().concat();
        let good = sent.len();
        sent.extend(message(b'S', b"?"));
        sent.extend(message(b'S', b""));
        // The first eight bytes were read while negotiating.
        let trickle = Trickle(sent[8..].iter().copied().collect());
        let mut stream = Checked::new(trickle, &sent[..8]);
        let mut got = vec![0u8; good];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sent[..good]);
        let e = stream.read_u8().await.unwrap_err();
        assert_eq!(
            Violation::of(&e).map(|v| v.0.as_str()),
            Some("invalid Sync message: 1 bytes after its last field")
        );
        // And it stays failed.
        assert!(stream.read_u8().await.is_err());
    }
}

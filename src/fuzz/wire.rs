//! The wire part: Postgres protocol messages, well-formed and not, sent to a
//! server on 127.0.0.1 over raw TCP.
//!
//! A server (embedded broker, trust authentication, a port the system
//! picks) runs in-process with its query loop. Each session connects and
//! either sends something instead of a startup packet (a mutated one, an
//! SSL or GSSAPI request followed by garbage, a cancel request, a huge or
//! tiny declared length, random bytes), or starts up properly and sends a
//! run of frontend messages: Query, Parse, Bind, Describe, Execute, Close,
//! Sync, Flush, Copy and function-call messages, with valid framing or
//! with wrong lengths, wrong counts, truncated bodies, huge declared
//! lengths, unknown types and random bytes. The session then half-closes
//! and reads until the server closes; every read and write has a timeout,
//! and a session that the server neither answers nor closes within
//! [`SESSION_DEADLINE`] is a failure (a hang). At the end a fresh
//! connection must still get an answer to a query.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::mutate::{mutate_bytes, ODD_TEXT};
use super::{panics_on, FuzzConfig, Heartbeat, Tally};
use crate::cases::Rng;
use crate::error::{Error, Result};
use crate::server::{Server, ServerConfig, ServerFlags};

/// How long a session may take, from connecting to the server's close.
const SESSION_DEADLINE: Duration = Duration::from_secs(20);
/// One read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Statements a session's Query and Parse messages carry (none that waits
/// for rows or blocks the engine for long: the run is about the protocol).
const STATEMENTS: &[&str] = &[
    "SHOW STREAMS;",
    "SHOW TABLES;",
    "SHOW QUERIES;",
    "BEGIN;",
    "COMMIT;",
    "ROLLBACK;",
    "SET 'auto.offset.reset'='earliest';",
    "",
    ";",
    ";;;",
    "SELEC",
    "SELECT $1;",
    "SELECT * FROM W WHERE ID = $1;",
    "SELECT * FROM W;",
    "SELECT ID, A FROM W WHERE A > $1 AND ID = $2;",
    "INSERT INTO W (ID, A) VALUES ($1, $2);",
    "INSERT INTO W (ID, A) VALUES ('a', 1);",
    "DESCRIBE W;",
    "SELECT current_schema();",
    "SELECT oid, typname FROM pg_type;",
    "SHOW TRANSACTION ISOLATION LEVEL;",
    "DISCARD ALL;",
    "COPY (SELECT * FROM W) TO STDOUT;",
    "CREATE STREAM W (ID STRING KEY, A INT) WITH (KAFKA_TOPIC='w', PARTITIONS=1, VALUE_FORMAT='JSON');",
];

/// A frontend message: its type byte (none for startup-phase packets) and
/// its body.
struct Msg {
    tag: Option<u8>,
    body: Vec<u8>,
}

impl Msg {
    fn new(tag: u8, body: Vec<u8>) -> Msg {
        Msg {
            tag: Some(tag),
            body,
        }
    }

    /// The bytes with a correct length.
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 5);
        out.extend(self.tag);
        out.extend_from_slice(&(self.body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn i16b(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn i32b(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn startup(rng: &mut Rng, valid: bool) -> Msg {
    let mut body = Vec::new();
    i32b(&mut body, 196_608);
    cstr(&mut body, "user");
    cstr(&mut body, "fuzz");
    cstr(&mut body, "database");
    cstr(&mut body, "sluice");
    if !valid || rng.chance(0.2) {
        let odd = ODD_TEXT[rng.below(ODD_TEXT.len() as u64) as usize];
        cstr(&mut body, "application_name");
        cstr(&mut body, odd);
        cstr(&mut body, "options");
        cstr(&mut body, "-c search_path=x");
    }
    body.push(0);
    if !valid {
        mutate_bytes(rng, &mut body, 10_000);
    }
    Msg { tag: None, body }
}

/// Something other than a well-formed startup packet.
fn before_startup(rng: &mut Rng) -> Vec<Vec<u8>> {
    let request = |code: i32, extra: &[u8]| {
        let mut b = Vec::new();
        i32b(&mut b, 8 + extra.len() as i32);
        i32b(&mut b, code);
        b.extend_from_slice(extra);
        b
    };
    match rng.below(8) {
        0 => vec![startup(rng, false).bytes()],
        1 => {
            let mut junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
            junk.insert(0, 0x16);
            vec![request(80_877_103, &[]), junk]
        }
        2 => vec![request(80_877_104, &[]), startup(rng, true).bytes()],
        3 => {
            let mut extra = Vec::new();
            i32b(&mut extra, rng.next_u64() as i32);
            i32b(&mut extra, rng.next_u64() as i32);
            vec![request(80_877_102, &extra)]
        }
        4 => {
            let mut b = Vec::new();
            i32b(
                &mut b,
                *rng.pick(&[i32::MAX, 0x7fff_fff0, 10_001, 1 << 24])
                    .unwrap_or(&i32::MAX),
            );
            i32b(&mut b, 196_608);
            vec![b]
        }
        5 => {
            let mut b = Vec::new();
            i32b(&mut b, *rng.pick(&[0, 1, 4, 7, -1, i32::MIN]).unwrap_or(&0));
            b.extend((0..rng.below(16)).map(|_| rng.next_u64() as u8));
            vec![b]
        }
        6 => {
            // An old or unknown protocol version.
            let mut m = startup(rng, true);
            let v: i32 = *rng
                .pick(&[131_072, 196_609, 0, -1, 1234 << 16 | 5679])
                .unwrap_or(&0);
            m.body[..4].copy_from_slice(&v.to_be_bytes());
            vec![m.bytes()]
        }
        _ => vec![(0..rng.below(256)).map(|_| rng.next_u64() as u8).collect()],
    }
}

fn statement(rng: &mut Rng) -> String {
    let s = rng.pick(STATEMENTS).copied().unwrap_or("").to_string();
    if rng.chance(0.1) {
        format!("{s}{}", ODD_TEXT[rng.below(ODD_TEXT.len() as u64) as usize])
    } else {
        s
    }
}

/// One frontend message after startup, framed correctly.
fn message(rng: &mut Rng) -> Msg {
    let mut b = Vec::new();
    let name = |rng: &mut Rng| ["", "s1", "p1", "\u{1}"][rng.below(4) as usize].to_string();
    match rng.below(14) {
        0 | 1 => {
            cstr(&mut b, &statement(rng));
            Msg::new(b'Q', b)
        }
        2 | 3 => {
            cstr(&mut b, &name(rng));
            cstr(&mut b, &statement(rng));
            let n = rng.below(4) as i16;
            i16b(&mut b, n);
            for _ in 0..n {
                i32b(
                    &mut b,
                    *rng.pick(&[0, 23, 25, 20, 16, 1043, -1, 99_999])
                        .unwrap_or(&0),
                );
            }
            Msg::new(b'P', b)
        }
        4 | 5 => {
            cstr(&mut b, &name(rng));
            cstr(&mut b, &name(rng));
            let formats = rng.below(3) as i16;
            i16b(&mut b, formats);
            for _ in 0..formats {
                i16b(&mut b, rng.range(-1, 2) as i16);
            }
            let params = rng.below(4) as i16;
            i16b(&mut b, params);
            for _ in 0..params {
                match rng.below(6) {
                    0 => i32b(&mut b, -1),
                    1 => {
                        i32b(&mut b, 4);
                        i32b(&mut b, rng.next_u64() as i32);
                    }
                    2 => {
                        i32b(&mut b, 8);
                        b.extend_from_slice(&(rng.next_u64()).to_be_bytes());
                    }
                    _ => {
                        let v = rng.range(-5, 100).to_string();
                        i32b(&mut b, v.len() as i32);
                        b.extend_from_slice(v.as_bytes());
                    }
                }
            }
            let results = rng.below(3) as i16;
            i16b(&mut b, results);
            for _ in 0..results {
                i16b(&mut b, rng.range(0, 1) as i16);
            }
            Msg::new(b'B', b)
        }
        6 => {
            b.push(*rng.pick(b"SPX").unwrap_or(&b'S'));
            cstr(&mut b, &name(rng));
            Msg::new(b'D', b)
        }
        7 => {
            cstr(&mut b, &name(rng));
            i32b(&mut b, *rng.pick(&[0, 1, 2, -1, i32::MAX]).unwrap_or(&0));
            Msg::new(b'E', b)
        }
        8 => {
            b.push(*rng.pick(b"SPZ").unwrap_or(&b'S'));
            cstr(&mut b, &name(rng));
            Msg::new(b'C', b)
        }
        9 => Msg::new(b'S', b),
        10 => Msg::new(b'H', b),
        11 => match rng.below(3) {
            0 => Msg::new(b'd', b"1,2\n".to_vec()),
            1 => Msg::new(b'c', b),
            _ => {
                cstr(&mut b, "no");
                Msg::new(b'f', b)
            }
        },
        12 => {
            i32b(&mut b, 1234);
            i16b(&mut b, 0);
            i16b(&mut b, 1);
            i32b(&mut b, -1);
            i16b(&mut b, 0);
            Msg::new(b'F', b)
        }
        _ => {
            cstr(&mut b, "password");
            Msg::new(b'p', b)
        }
    }
}

/// A message's bytes, sometimes broken: a wrong declared length, a
/// truncated body, wrong counts inside, a huge declared length (after
/// which nothing else can follow), an unknown type, random bytes. The
/// second value says the framing is beyond repair.
fn framed(rng: &mut Rng, msg: &Msg) -> (Vec<u8>, bool) {
    let mut bytes = msg.bytes();
    let at = usize::from(msg.tag.is_some());
    match rng.below(12) {
        0 => {
            let len = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
            let wrong = len + rng.range(-6, 6) as i32;
            bytes[at..at + 4].copy_from_slice(&wrong.to_be_bytes());
            (bytes, true)
        }
        1 => {
            let big = *rng
                .pick(&[i32::MAX, 0x7fff_fff0, 1 << 30, 1 << 26, -1, i32::MIN, 0, 3])
                .unwrap_or(&i32::MAX);
            bytes[at..at + 4].copy_from_slice(&big.to_be_bytes());
            (bytes, true)
        }
        2 => {
            let keep = at + 4 + rng.below(msg.body.len() as u64 + 1) as usize;
            bytes.truncate(keep);
            (bytes, true)
        }
        3 => {
            // Mutate the body, then fix the length: wrong counts and
            // lengths inside a well-framed message.
            let mut m = Msg {
                tag: msg.tag,
                body: msg.body.clone(),
            };
            mutate_bytes(rng, &mut m.body, 1 << 16);
            if rng.chance(0.3) && m.body.len() >= 4 {
                // A parameter or count field set to a huge value.
                let i = rng.below(m.body.len() as u64 - 3) as usize;
                m.body[i..i + 4].copy_from_slice(&0x7fff_fff0_i32.to_be_bytes());
            }
            (m.bytes(), false)
        }
        4 => {
            if let Some(t) = bytes.first_mut().filter(|_| msg.tag.is_some()) {
                *t = rng.next_u64() as u8;
            }
            (bytes, false)
        }
        5 => (
            (0..rng.below(40)).map(|_| rng.next_u64() as u8).collect(),
            true,
        ),
        _ => (bytes, false),
    }
}

/// How a session ended.
fn session(
    addr: SocketAddr,
    rng: &mut Rng,
    budget: u64,
    log: &mut Vec<u8>,
) -> Result<(u64, &'static str)> {
    let deadline = Instant::now() + SESSION_DEADLINE;
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut sent = 0u64;
    let mut send = |stream: &mut TcpStream, bytes: &[u8], log: &mut Vec<u8>| -> bool {
        log.extend_from_slice(bytes);
        sent += 1;
        stream.write_all(bytes).is_ok()
    };
    let mut open = true;
    if rng.chance(0.15) {
        for b in before_startup(rng) {
            open = open && send(&mut stream, &b, log);
        }
    } else {
        open = send(&mut stream, &startup(rng, true).bytes(), log);
        // The server's greeting, through ReadyForQuery.
        if open && !read_until_ready(&mut stream, deadline)? {
            return Ok((sent, "closed at startup"));
        }
        let n = 1 + rng.below(budget.clamp(1, 24));
        for _ in 0..n {
            if !open {
                break;
            }
            let msg = message(rng);
            let (bytes, broken) = framed(rng, &msg);
            open = send(&mut stream, &bytes, log);
            if broken {
                break;
            }
        }
        if open {
            open = send(&mut stream, &Msg::new(b'S', Vec::new()).bytes(), log);
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    // Whatever the server says, until it closes.
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() > deadline {
            return Err(Error::internal(format!(
                "the server neither answered nor closed the connection within {} s",
                SESSION_DEADLINE.as_secs()
            )));
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Ok((
                    sent,
                    if open {
                        "answered and closed"
                    } else {
                        "closed early"
                    },
                ))
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::internal(format!(
                    "the server sent nothing for {} s and did not close",
                    IO_TIMEOUT.as_secs()
                )))
            }
            Err(_) => return Ok((sent, "reset")),
        }
    }
}

/// Read backend messages until ReadyForQuery (true) or the server closes
/// (false).
fn read_until_ready(stream: &mut TcpStream, deadline: Instant) -> Result<bool> {
    loop {
        if Instant::now() > deadline {
            return Err(Error::internal("no ReadyForQuery before the deadline"));
        }
        let mut head = [0u8; 5];
        if stream.read_exact(&mut head).is_err() {
            return Ok(false);
        }
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if !(4..=(1 << 24)).contains(&len) {
            return Err(Error::internal(format!(
                "a backend message of length {len}"
            )));
        }
        let mut body = vec![0u8; len as usize - 4];
        if stream.read_exact(&mut body).is_err() {
            return Ok(false);
        }
        if head[0] == b'Z' {
            return Ok(true);
        }
    }
}

/// The server still answers: a fresh connection starts up and runs a
/// query to its CommandComplete and ReadyForQuery, without an error.
fn still_answers(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + SESSION_DEADLINE;
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut rng = Rng::new(0);
    stream.write_all(&startup(&mut rng, true).bytes())?;
    if !read_until_ready(&mut stream, deadline)? {
        return Err(Error::internal(
            "the server closed a new connection at startup",
        ));
    }
    let mut q = Vec::new();
    cstr(&mut q, "SHOW STREAMS;");
    stream.write_all(&Msg::new(b'Q', q).bytes())?;
    let mut seen = Vec::new();
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head)?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]).max(4);
        let mut body = vec![0u8; len as usize - 4];
        stream.read_exact(&mut body)?;
        seen.push(head[0]);
        if head[0] == b'Z' {
            break;
        }
    }
    if seen.contains(&b'E') || !seen.contains(&b'C') {
        return Err(Error::internal(format!(
            "SHOW STREAMS got messages {:?}, not a result",
            String::from_utf8_lossy(&seen)
        )));
    }
    Ok(())
}

/// The server the sessions talk to, with its query loop running.
pub(super) struct WireServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    looping: std::thread::JoinHandle<Server>,
    _dir: tempfile::TempDir,
}

impl WireServer {
    /// Start a server on the embedded broker, listening on a port of
    /// 127.0.0.1 the system picks, and check it answers.
    pub(super) fn start(config: &FuzzConfig) -> Result<WireServer> {
        let dir = tempfile::Builder::new()
            .prefix("server-")
            .tempdir_in(&config.out)?;
        let flags = ServerFlags {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let server_config = ServerConfig::load(&flags, |_| None)?;
        let mut server = Server::start(&server_config)?;
        let addr = server.listen_address();
        let stop = Arc::new(AtomicBool::new(false));
        let looping = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("fuzz-wire-loop".into())
                .stack_size(super::STACK_BYTES)
                .spawn(move || {
                    let _ = server.run(&stop);
                    server
                })?
        };
        let wire = WireServer {
            addr,
            stop,
            looping,
            _dir: dir,
        };
        still_answers(addr)?;
        Ok(wire)
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.looping.join());
    }
}

pub(super) fn run(config: &FuzzConfig, hb: &Heartbeat, server: WireServer) -> Result<Tally> {
    let mut rng = Rng::new(config.seed ^ 0x7769_7265_5f66_757a);
    let addr = server.addr;
    let mut tally = Tally::default();
    let mut n = 0u64;
    let mut result = Ok(());
    while tally.inputs < config.messages {
        let mut log = Vec::new();
        hb.beat(|| format!("seed {} wire session {n}", config.seed));
        let panics = panics_on(&["sluice-pg", "fuzz-wire"]);
        let budget = config.messages - tally.inputs;
        let outcome = session(addr, &mut rng, budget, &mut log);
        let failed = |why: String, log: &[u8]| -> String {
            let path = config.out.join(format!("wire-session-{n}.bin"));
            let _ = std::fs::write(&path, log);
            format!(
                "wire session {n}: {why}; the bytes sent are in {}",
                path.display()
            )
        };
        match outcome {
            Ok((sent, how)) => {
                tally.inputs += sent;
                tally.count(format!("session {how}"));
            }
            Err(e) => {
                tally.inputs += 1;
                tally.failures.push(failed(e.to_string(), &log));
                result = Err(e);
                break;
            }
        }
        // Connection tasks catch their panics: the hook counted them.
        if panics_on(&["sluice-pg", "fuzz-wire"]) > panics {
            tally
                .failures
                .push(failed("a panic in the server".into(), &log));
        }
        n += 1;
    }
    if result.is_ok() {
        if let Err(e) = still_answers(addr) {
            tally.failures.push(format!("after the run: {e}"));
        } else {
            tally.count("server still answers at the end");
        }
    }
    server.finish();
    Ok(tally)
}

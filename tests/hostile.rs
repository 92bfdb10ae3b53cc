//! A server under a hostile or careless client: malformed protocol
//! messages, password guessing, push queries left behind by the hundred,
//! topics deleted on the embedded broker. Each test drives a `sluice
//! server` child process (embedded broker, OS-chosen port, its log in a
//! file) over real sockets: raw protocol messages where a client library
//! would refuse to send them, the real `psql` elsewhere.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::Server;

/// A `sluice server` child (`common::Server`: its log in a file).
struct Sluice {
    server: Server,
    port: u16,
}

impl Sluice {
    fn start(toml: &str, env: &[(&str, &str)]) -> Self {
        let server = Server::start_with_env(toml, |_| {}, env);
        let port = server.port;
        Self { server, port }
    }

    fn psql_command(&self, sql: &str) -> Command {
        let mut psql = Command::new("psql");
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "sluice", "-d", "sluice", "-X", "-A", "-t", "-F", "|"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql]);
        psql
    }

    fn psql(&self, sql: &str) -> Output {
        self.psql_command(sql).output().expect("run psql")
    }

    /// Run `sql`, which must succeed; its output.
    fn run(&self, sql: &str) -> String {
        let out = self.psql(sql);
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn log_text(&self) -> String {
        self.server.log()
    }

    /// The server process's threads and open file descriptors.
    fn threads_and_fds(&self) -> (usize, usize) {
        let count = |what: &str| {
            std::fs::read_dir(format!("/proc/{}/{what}", self.server.pid()))
                .expect("/proc of the server")
                .count()
        };
        (count("task"), count("fd"))
    }

    /// Push queries running now (`transient_...` in SHOW QUERIES).
    fn push_queries(&self) -> usize {
        self.run("SHOW QUERIES;")
            .lines()
            .filter(|l| l.starts_with("transient_"))
            .count()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Wait until `done` holds, or fail with `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} (waited {limit:?})");
        std::thread::sleep(Duration::from_millis(200));
    }
}

// --- The protocol by hand ---------------------------------------------

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// A startup message (protocol 3.0) for `user`.
fn startup(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", "sluice")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend(body);
    m
}

/// A frontend message: its type, length and body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// The next backend message; None when the server closed the connection.
fn read_message(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    match s.read_exact(&mut head) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return None
        }
        Err(e) => panic!("reading from the server: {e}"),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).expect("a whole message");
    Some((head[0], body))
}

/// An ErrorResponse's fields, as `X=value` (severity, code, message, ...).
fn error_fields(body: &[u8]) -> Vec<String> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| format!("{}={}", f[0] as char, String::from_utf8_lossy(&f[1..])))
        .collect()
}

// --- Malformed protocol messages ----------------------------------------

/// Read the startup's answers, through ReadyForQuery.
fn read_until_ready(s: &mut TcpStream) {
    loop {
        let (tag, _) = read_message(s).expect("the startup's answers");
        if tag == b'Z' {
            return;
        }
    }
}

/// What the server answered until it closed: each message as its type
/// and, for an ErrorResponse, its severity, code and message.
fn answers_until_closed(s: &mut TcpStream) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some((tag, body)) = read_message(s) {
        seen.push(match tag {
            b'E' => {
                let fields = error_fields(&body);
                let get = |k: &str| {
                    fields
                        .iter()
                        .find_map(|f| f.strip_prefix(k).map(str::to_string))
                        .unwrap_or_default()
                };
                format!("E {} {} {}", get("S="), get("C="), get("M="))
            }
            other => (other as char).to_string(),
        });
    }
    seen
}

/// Malformed messages reached pgwire's decoder, which panicked on some (a
/// Bind whose parameter claims 0x7ffffff0 bytes wrote a 6.8 KB backtrace
/// to the log each time). Now each message is checked whole before it is
/// decoded: a malformed one is answered FATAL 08P01, saying what is wrong
/// with which message, as Postgres answers it; the log gets no panic, and
/// the server serves the next connection.
#[test]
fn malformed_messages_are_refused_with_fatal_08p01() {
    let server = Sluice::start("", &[("RUST_BACKTRACE", "1")]);
    let mut long_parameter = Vec::new();
    long_parameter.extend_from_slice(b"\0\0"); // portal, statement
    long_parameter.extend_from_slice(&0u16.to_be_bytes()); // parameter formats
    long_parameter.extend_from_slice(&1u16.to_be_bytes()); // one parameter,
    long_parameter.extend_from_slice(&0x7fff_fff0i32.to_be_bytes()); // this long
    long_parameter.extend_from_slice(b"abc");
    long_parameter.extend_from_slice(&0u16.to_be_bytes()); // result formats
    let mut missing_formats = b"\0\0".to_vec();
    missing_formats.extend_from_slice(&5i16.to_be_bytes());
    let mut short_header = vec![b'd'];
    short_header.extend_from_slice(&2i32.to_be_bytes());
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "a parameter longer than its Bind",
            message(b'B', &long_parameter),
            "invalid Bind message: its parameter 1 (2147483632 bytes) runs past its end (5 bytes left)",
        ),
        (
            "format codes declared, none sent",
            message(b'B', &missing_formats),
            "invalid Bind message: its parameter formats (10 bytes) runs past its end (0 bytes left)",
        ),
        (
            "a CopyData shorter than its length field",
            short_header,
            "invalid length of CopyData message: 2 bytes (4 to 1073741823)",
        ),
        (
            "a Query without its terminating zero",
            message(b'Q', b"SHOW STREAMS;"),
            "invalid Query message: its text has no terminating zero byte",
        ),
        (
            "a Sync with a body",
            message(b'S', b"x"),
            "invalid Sync message: 1 bytes after its last field",
        ),
        (
            "an unknown message type",
            message(b'F', &[0, 0, 0, 0]),
            "invalid frontend message type 'F' (0x46)",
        ),
    ];
    for (what, bytes, expected) in cases {
        let before = server.log_text();
        let mut s = connect(server.port);
        s.write_all(&startup("sluice")).unwrap();
        read_until_ready(&mut s);
        s.write_all(&bytes).unwrap();
        s.write_all(&message(b'S', &[])).unwrap();
        assert_eq!(
            answers_until_closed(&mut s),
            [format!("E FATAL 08P01 {expected}")],
            "{what}"
        );
        let after = server.log_text();
        let grown = &after[before.len()..];
        assert!(!grown.contains("panic"), "{what}: {grown}");
        // The server goes on serving.
        assert_eq!(server.run("SHOW STREAMS;"), "", "{what}");
    }
    // Messages before the malformed one are served as usual.
    let mut s = connect(server.port);
    s.write_all(&startup("sluice")).unwrap();
    read_until_ready(&mut s);
    let mut pipeline = message(b'Q', b"SHOW STREAMS;\0");
    pipeline.extend(message(b'E', b"\0"));
    s.write_all(&pipeline).unwrap();
    assert_eq!(
        answers_until_closed(&mut s),
        [
            "T",
            "C",
            "Z",
            "E FATAL 08P01 invalid Execute message: its row limit (4 bytes) runs past its end (0 bytes left)"
        ]
    );
}

/// The startup packet is checked too, before anything is decoded.
#[test]
fn a_malformed_startup_packet_is_refused_with_fatal_08p01() {
    let server = Sluice::start("", &[]);
    let mut unterminated = startup("sluice");
    unterminated.pop(); // the last terminator
    let len = (unterminated.len() as u32).to_be_bytes();
    unterminated[..4].copy_from_slice(&len);
    let mut huge = 1_000_000u32.to_be_bytes().to_vec();
    huge.extend_from_slice(&196_608u32.to_be_bytes());
    let mut version_two = 12u32.to_be_bytes().to_vec();
    version_two.extend_from_slice(&131_072u32.to_be_bytes());
    version_two.extend_from_slice(b"u\0\0\0");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "no terminator",
            unterminated,
            "invalid startup packet message: expected a terminator as its last byte",
        ),
        (
            "a length over 10,000",
            huge,
            "invalid length of startup packet: 1000000 bytes",
        ),
        (
            "protocol 2",
            version_two,
            "unsupported frontend protocol 2.0: the server supports 3.0 to 3.2",
        ),
    ];
    for (what, bytes, expected) in cases {
        let mut s = connect(server.port);
        s.write_all(&bytes).unwrap();
        assert_eq!(
            answers_until_closed(&mut s),
            [format!("E FATAL 08P01 {expected}")],
            "{what}"
        );
    }
    assert_eq!(server.run("SHOW STREAMS;"), "");
    assert!(
        !server.log_text().contains("panic"),
        "{}",
        server.log_text()
    );
}

// --- Password guessing --------------------------------------------------

/// One SCRAM login with a wrong proof, as a transcript of what the server
/// answered (the salt by its length, `<user>` for the user's name), the
/// salt itself, and how long the server took to answer the startup.
struct Login {
    transcript: Vec<String>,
    salt: String,
    first_answer: Duration,
}

fn wrong_scram_login(port: u16, user: &str) -> Login {
    let mut s = connect(port);
    let started = Instant::now();
    s.write_all(&startup(user)).unwrap();
    let mut transcript = Vec::new();
    let (tag, body) = read_message(&mut s).expect("an answer to the startup");
    let first_answer = started.elapsed();
    assert_eq!(tag, b'R', "{:?}", error_fields(&body));
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    transcript.push(format!(
        "R {code} {}",
        String::from_utf8_lossy(&body[4..]).replace('\0', " ")
    ));
    assert_eq!(code, 10, "AuthenticationSASL");
    let client_nonce = "rOprNGfwEbeRWgbNEkqO";
    let first = format!("n,,n=,r={client_nonce}");
    let mut initial = b"SCRAM-SHA-256\0".to_vec();
    initial.extend_from_slice(&(first.len() as i32).to_be_bytes());
    initial.extend_from_slice(first.as_bytes());
    s.write_all(&message(b'p', &initial)).unwrap();
    let mut salt = String::new();
    let mut nonce = String::new();
    loop {
        let Some((tag, body)) = read_message(&mut s) else {
            transcript.push("closed".into());
            break;
        };
        match tag {
            b'R' => {
                let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let data = String::from_utf8_lossy(&body[4..]).to_string();
                let mut shown = vec![format!("R {code}")];
                for part in data.split(',') {
                    match part.split_once('=') {
                        Some(("r", r)) => {
                            assert!(r.starts_with(client_nonce), "{data}");
                            nonce = r.to_string();
                            shown.push("r=<nonce>".into());
                        }
                        Some(("s", s)) => {
                            salt = s.to_string();
                            shown.push(format!("s=<{} characters>", s.len()));
                        }
                        _ => shown.push(part.to_string()),
                    }
                }
                transcript.push(shown.join(" "));
                // The client's final message: the right nonce, a wrong
                // proof (32 zero bytes).
                let last = format!("c=biws,r={nonce},p={}=", "A".repeat(43));
                s.write_all(&message(b'p', last.as_bytes())).unwrap();
            }
            b'E' => {
                let fields: Vec<String> = error_fields(&body)
                    .into_iter()
                    .map(|f| f.replace(&format!("\"{user}\""), "\"<user>\""))
                    .collect();
                transcript.push(format!("E {}", fields.join(" ")));
            }
            other => transcript.push(format!("{}", other as char)),
        }
    }
    Login {
        transcript,
        salt,
        first_answer,
    }
}

/// A user name that is not configured was refused at SCRAM's first
/// message, a known one only after the proof: anyone could tell which
/// names exist. Now both get the same exchange (a stable salt of the same
/// length per name, the same iterations) and the same final error.
#[test]
fn unknown_and_known_users_get_the_same_scram_exchange() {
    let server = Sluice::start("[users]\nalice = \"s3cret\"\n", &[]);
    let alice = wrong_scram_login(server.port, "alice");
    let nobody = wrong_scram_login(server.port, "nobody");
    let expected = vec![
        "R 10 SCRAM-SHA-256  ".to_string(),
        "R 11 r=<nonce> s=<24 characters> i=4096".to_string(),
        "E S=FATAL C=28P01 M=password authentication failed for user \"<user>\"".to_string(),
        "Z".to_string(),
        "closed".to_string(),
    ];
    assert_eq!(alice.transcript, expected);
    assert_eq!(nobody.transcript, expected);
    // The same name gets the same salt each time, as a real user does.
    assert_eq!(wrong_scram_login(server.port, "alice").salt, alice.salt);
    assert_eq!(wrong_scram_login(server.port, "nobody").salt, nobody.salt);
    assert_ne!(wrong_scram_login(server.port, "nobody2").salt, nobody.salt);
    // The right password still works.
    assert_eq!(alice_logs_in(&server), "UTF8\n");
}

/// 7,217 wrong passwords in 20 s were neither slowed nor blocked. Now,
/// after `free_failures` failures from an address, each further login
/// waits before the server answers it (here 1.5 s, then 3 s).
#[test]
fn failed_logins_slow_down_further_ones() {
    let server = Sluice::start(
        "[users]\nalice = \"s3cret\"\n\
         [login]\nfree_failures = 2\ndelay_ms = 1500\nmax_delay_ms = 3000\n",
        &[],
    );
    for _ in 0..2 {
        wrong_scram_login(server.port, "alice");
    }
    // A third guess, for another name, from the same address.
    let third = wrong_scram_login(server.port, "mallory");
    assert!(
        third.first_answer >= Duration::from_millis(1500),
        "the third login was answered after {:?}",
        third.first_answer
    );
    assert_eq!(
        third.transcript.last().map(String::as_str),
        Some("closed"),
        "{:?}",
        third.transcript
    );
    let fourth = wrong_scram_login(server.port, "alice");
    assert!(
        fourth.first_answer >= Duration::from_millis(3000),
        "the fourth login was answered after {:?}",
        fourth.first_answer
    );
    // The right password still gets in (after its wait).
    assert_eq!(alice_logs_in(&server), "UTF8\n");
}

/// Log in as alice with her password (`s3cret`) through psql: the answer
/// to `SHOW server_encoding`.
fn alice_logs_in(server: &Sluice) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "alice", "-d", "sluice", "-X", "-A", "-t", "-w"])
        .args(["-c", "SHOW server_encoding;"])
        .env("PGPASSWORD", "s3cret")
        .output()
        .expect("run psql");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

// --- Push queries that end ---------------------------------------------

/// Each push query kept a Kafka consumer (4 threads, 9 file descriptors)
/// after it ended: 120 push queries took the server from 73 threads to
/// 569. Now the consumer goes when the push query ends (LIMIT reached,
/// client gone): 90 push queries leave the counts within what the topic's
/// readers may hold (a cache of at most 8 consumers per topic, shared by
/// every query reading it, so 32 threads and about 80 descriptors) of
/// where they were; 90 kept consumers would be 360 threads.
#[test]
fn push_queries_that_end_free_their_kafka_clients() {
    let server = Sluice::start("", &[]);
    server.run(
        "CREATE STREAM clicks (user_id STRING KEY, n INT) \
           WITH (kafka_topic='clicks', value_format='JSON', partitions=1);",
    );
    server.run("INSERT INTO clicks (user_id, n) VALUES ('a', 1);");
    let limited = "SET 'auto.offset.reset'='earliest'; \
                   SELECT user_id, n FROM clicks EMIT CHANGES LIMIT 1;";
    let one_row = |out: String| assert_eq!(out, "SET\na|1\n");
    let settled = |server: &Sluice| {
        wait_for(
            Duration::from_secs(60),
            "push queries still running",
            || server.push_queries() == 0,
        )
    };
    // One first, so that what any push query needs (the topic's reader,
    // the connections' blocking threads) is there before counting.
    one_row(server.run(limited));
    settled(&server);
    let before = server.threads_and_fds();
    let mut n = 2;
    for _ in 0..3 {
        // LIMIT reached, twenty times.
        for _ in 0..20 {
            one_row(server.run(limited));
        }
        // Clients that go away, ten at once.
        let mut clients: Vec<Child> = (0..10)
            .map(|_| {
                server
                    .psql_command("SELECT user_id, n FROM clicks EMIT CHANGES;")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("run psql")
            })
            .collect();
        wait_for(Duration::from_secs(60), "ten push queries start", || {
            server.push_queries() == 10
        });
        for c in &mut clients {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        // The server notices a client is gone when it writes to it.
        wait_for(Duration::from_secs(60), "push queries end", || {
            server.run(&format!(
                "INSERT INTO clicks (user_id, n) VALUES ('b', {n});"
            ));
            n += 1;
            server.push_queries() == 0
        });
    }
    settled(&server);
    // Consumers close on threads of their own, and the connections'
    // blocking threads end when idle: let the counts come down.
    let within = |after: (usize, usize)| after.0 <= before.0 + 32 && after.1 <= before.1 + 80;
    let mut after = server.threads_and_fds();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !within(after) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = server.threads_and_fds();
    }
    eprintln!("threads and descriptors: before {before:?}, after 90 push queries {after:?}");
    assert!(
        within(after),
        "threads and descriptors: before {before:?}, after 90 push queries {after:?}"
    );
}

// --- Portals read in batches --------------------------------------------

/// A C string: the text and its terminating zero.
fn cstr(text: &str) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    b.push(0);
    b
}

/// Parse of the unnamed statement and Bind of it to `portal`, no
/// parameters, text results.
fn parse_and_bind(sql: &str, portal: &str) -> Vec<u8> {
    let mut parse = cstr("");
    parse.extend(cstr(sql));
    parse.extend(0i16.to_be_bytes());
    let mut bind = cstr(portal);
    bind.extend(cstr(""));
    bind.extend([0u8; 6]);
    [message(b'P', &parse), message(b'B', &bind)].concat()
}

fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(max_rows.to_be_bytes());
    message(b'E', &body)
}

fn close_portal(portal: &str) -> Vec<u8> {
    let mut body = vec![b'P'];
    body.extend(cstr(portal));
    message(b'C', &body)
}

/// The types of the next `n` backend messages, each DataRow with its
/// text values (`D 1|10`).
fn next_answers(s: &mut TcpStream, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (tag, body) = read_message(s).expect("an answer");
            if tag != b'D' {
                return (tag as char).to_string();
            }
            let columns = i16::from_be_bytes([body[0], body[1]]);
            let mut at = 2;
            let mut values = Vec::new();
            for _ in 0..columns {
                let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
                at += 4;
                let len = usize::try_from(len).unwrap_or(0);
                values.push(String::from_utf8_lossy(&body[at..at + len]).to_string());
                at += len;
            }
            format!("D {}", values.join("|"))
        })
        .collect()
}

/// An Execute with a row limit over a push query sends the rows there as
/// they come and waits for the rest of its batch; a Close of that portal
/// (what node's pg-query-stream sends on an early `break`) is answered at
/// once: the Execute ends suspended with the rows it had, then
/// CloseComplete and ReadyForQuery, and the push query stops. The
/// connection read nothing while the Execute waited, and the rows waited
/// for the whole batch: the client waited for rows that never came. A pull
/// query's Execute answers its rows whatever follows it.
#[test]
fn a_portal_closed_while_its_execute_waits_for_rows_is_answered_at_once() {
    let server = Sluice::start("", &[]);
    server.run(
        "CREATE STREAM ticks (id INT KEY, n INT) \
           WITH (kafka_topic='ticks', value_format='JSON', partitions=1);",
    );
    server.run("CREATE TABLE totals AS SELECT id, SUM(n) AS total FROM ticks GROUP BY id;");
    for (id, n) in [(1, 10), (2, 20), (3, 30)] {
        server.run(&format!("INSERT INTO ticks (id, n) VALUES ({id}, {n});"));
    }
    let pull = "SELECT id, total FROM totals ORDER BY id;";
    wait_for(Duration::from_secs(30), "the table's rows", || {
        server.run(pull) == "1|10\n2|20\n3|30\n"
    });
    let mut s = connect(server.port);
    s.write_all(&startup("sluice")).unwrap();
    read_until_ready(&mut s);
    s.write_all(&message(b'Q', &cstr("SET 'auto.offset.reset'='earliest';")))
        .unwrap();
    read_until_ready(&mut s);

    // A batch of 5 over a push query that has 3 rows: they come, then the
    // Execute waits.
    s.write_all(
        &[
            parse_and_bind("SELECT id, n FROM ticks EMIT CHANGES", "live"),
            execute("live", 5),
            message(b'H', &[]),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        next_answers(&mut s, 5),
        ["1", "2", "D 1|10", "D 2|20", "D 3|30"]
    );
    assert_eq!(server.push_queries(), 1);
    let asked = Instant::now();
    s.write_all(&[close_portal("live"), message(b'S', &[])].concat())
        .unwrap();
    assert_eq!(next_answers(&mut s, 3), ["s", "3", "Z"]);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "Close and Sync answered after {:?}",
        asked.elapsed()
    );
    wait_for(
        Duration::from_secs(10),
        "the closed portal's push query stops",
        || server.push_queries() == 0,
    );

    // A pull query's batch, its Close and Sync sent with it: its rows.
    s.write_all(
        &[
            parse_and_bind(pull, "once"),
            execute("once", 2),
            close_portal("once"),
            message(b'S', &[]),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        next_answers(&mut s, 7),
        ["1", "2", "D 1|10", "D 2|20", "s", "3", "Z"]
    );
    // The connection goes on.
    s.write_all(&[parse_and_bind(pull, ""), execute("", 0), message(b'S', &[])].concat())
        .unwrap();
    assert_eq!(
        next_answers(&mut s, 7),
        ["1", "2", "D 1|10", "D 2|20", "D 3|30", "C", "Z"]
    );
}

// --- Topics deleted on the embedded broker ------------------------------

/// `DROP STREAM ... DELETE TOPIC` on the embedded broker sent an admin
/// request the mock cluster never answers, and the whole server waited
/// 60 s for it with the engine locked. Now the statement returns at once
/// (psql is stopped after 30 s otherwise) and the topic is gone.
#[test]
fn drop_delete_topic_on_the_embedded_broker_returns_and_the_topic_is_gone() {
    let server = Sluice::start("", &[]);
    server.run(
        "CREATE STREAM doomed (id STRING KEY, n INT) \
           WITH (kafka_topic='doomed', value_format='JSON', partitions=1);",
    );
    server.run("INSERT INTO doomed (id, n) VALUES ('a', 1);");
    let topics = |server: &Sluice| -> Vec<String> {
        server
            .run("SHOW TOPICS;")
            .lines()
            .map(|l| l.split('|').next().unwrap_or_default().to_string())
            .collect()
    };
    assert!(topics(&server).contains(&"doomed".to_string()));
    let out = Command::new("timeout")
        .args(["30", "psql"])
        .args(
            server
                .psql_command("DROP STREAM doomed DELETE TOPIC;")
                .get_args(),
        )
        .output()
        .expect("run timeout psql");
    assert!(
        out.status.success(),
        "DROP STREAM ... DELETE TOPIC did not return within 30 s: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "DROP STREAM\n");
    assert_eq!(
        text(&out.stderr),
        "NOTICE:  Source `DOOMED` (topic: doomed) was dropped.\n"
    );
    assert!(!topics(&server).contains(&"doomed".to_string()));
    assert_eq!(server.run("SHOW STREAMS;"), "");
    // The embedded broker cannot reuse the name: creating it again says so.
    let out = server.psql(
        "CREATE STREAM doomed (id STRING KEY, n INT) \
           WITH (kafka_topic='doomed', value_format='JSON', partitions=1);",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "cannot create topic 'doomed': a topic of that name was deleted on the embedded broker"
        ),
        "{}",
        text(&out.stderr)
    );
}

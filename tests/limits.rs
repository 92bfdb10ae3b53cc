//! One statement cannot take the server down: statements past the
//! planner's limits get SQLSTATE 54001 and the server goes on; statements
//! at the limits plan and run, through the real psql.

mod common;

use std::process::{Command, Stdio};

use common::Server;

/// Run `sql` with psql (`VERBOSITY=verbose`, so errors carry their
/// SQLSTATE): stdout and stderr together.
/// The statement goes in on standard input: an argument may not be longer
/// than 128 KiB.
fn psql(server: &Server, sql: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sluice", "-d", "sluice", "-X", "-A", "-t", "-q"])
        .args(["-v", "VERBOSITY=verbose", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql (Debian's postgresql-client)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(sql.as_bytes())
        .expect("write the statement");
    drop(stdin);
    let out = child.wait_with_output().expect("psql's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Messages read from a script say where: `psql:<stdin>:1: ERROR: ...`.
    text.lines()
        .map(|l| {
            let rest = l
                .strip_prefix("psql:<stdin>:")
                .and_then(|r| r.split_once(": "));
            rest.map_or(l, |(_, m)| m)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

/// The error line of psql's verbose output.
fn error_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("no error in: {}", &out[..out.len().min(500)]))
}

#[test]
fn statements_past_the_limits_fail_alone() {
    let server = Server::start();
    // The repro: a flat chain of 3,000 terms overflowed a thread's stack.
    let out = psql(&server, &format!("SELECT {} AS x", chain("1", "+", 3_000)));
    assert_eq!(
        error_line(&out),
        "ERROR:  54001: statement too complex: an expression more than 1000 operators deep"
    );
    let out = psql(
        &server,
        &format!("SELECT * FROM s WHERE {}", chain("a = 1", " AND ", 1_500)),
    );
    assert_eq!(
        error_line(&out),
        "ERROR:  54001: statement too complex: an expression more than 1000 operators deep"
    );
    let out = psql(
        &server,
        &format!("SELECT {}1{} AS x", "(".repeat(100), ")".repeat(100)),
    );
    assert_eq!(
        error_line(&out),
        "ERROR:  54001: statement too complex: brackets or types nested more than 64 deep"
    );
    let out = psql(&server, &format!("SELECT '{}' AS x", "a".repeat(2 << 20)));
    assert_eq!(
        error_line(&out),
        format!(
            "ERROR:  54001: statement too long: {} bytes, at most 1048576",
            (2 << 20) + "SELECT '' AS x".len()
        )
    );
    // The server is still there.
    assert_eq!(psql(&server, "SELECT 1 + 1 AS x;"), "2\n");
}

#[test]
fn statements_at_the_limits_plan_and_run() {
    let server = Server::start();
    assert_eq!(
        psql(
            &server,
            "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        ),
        "NOTICE:  00000: Stream created\n"
    );
    assert_eq!(psql(&server, "INSERT INTO s (id, v) VALUES (1, 2);"), "");
    // 1,000 operators in one expression: a pull query...
    let deep = chain("v", "+", 1_001);
    assert_eq!(
        psql(&server, &format!("SELECT {deep} AS x FROM s;")),
        "2002\n"
    );
    // ...and a persistent query, with a long AND chain beside it.
    let filter = chain("v = 2", " AND ", 333);
    let created = psql(
        &server,
        &format!("CREATE STREAM deep AS SELECT id, {deep} AS x FROM s WHERE {filter};"),
    );
    assert_eq!(
        created,
        "NOTICE:  00000: Created query with ID CSAS_DEEP_0\n"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut rows = String::new();
    while rows != "1|2002\n" && std::time::Instant::now() < deadline {
        rows = psql(&server, "SELECT id, x FROM deep;");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(rows, "1|2002\n");
}

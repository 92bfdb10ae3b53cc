//! The Postgres wire server driven by the real `psql` binary (Debian's
//! postgresql-client): `sluice server` runs as a child process with its
//! embedded Kafka broker and an OS-chosen port.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

mod common;
use common::Server;

impl Server {
    /// Run `sql` through `psql -c`, unaligned output, stopping at the
    /// first error.
    fn psql(&self, sql: &str) -> Output {
        self.psql_commands(&[sql])
    }

    /// Run several `-c` commands (psql meta-commands among them) in order.
    fn psql_commands(&self, commands: &[&str]) -> Output {
        let mut psql = Command::new("psql");
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "sluice", "-d", "sluice", "-X", "-A", "-F", "|"])
            .args(["-v", "ON_ERROR_STOP=1"]);
        for c in commands {
            psql.args(["-c", c]);
        }
        psql.output()
            .expect("run psql (Debian's postgresql-client)")
    }
}

impl Server {
    /// Run `sql` until its output is `want` (the server processes input in
    /// the background); the last output otherwise.
    fn psql_until(&self, sql: &str, want: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = self.psql(sql);
            let got = format!("{}{}", text(&out.stdout), text(&out.stderr));
            if got == want || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn psql_runs_statements_and_shows_their_results() {
    let server = Server::start();
    let out = server.psql(
        "CREATE STREAM pageviews (user_id STRING KEY, page STRING, ms INT) \
           WITH (kafka_topic='pageviews', value_format='JSON', partitions=1);",
    );
    assert_eq!(text(&out.stderr), "NOTICE:  Stream created\n");
    assert_eq!(text(&out.stdout), "CREATE STREAM\n");
    assert!(out.status.success());
    // A script: every statement is answered, in order.
    let out = server.psql(
        "INSERT INTO pageviews (user_id, page, ms) VALUES ('u1', 'home', 30); \
         INSERT INTO pageviews (user_id, page, ms) VALUES ('u2', 'cart', 45); \
         CREATE TABLE views_per_user AS SELECT user_id, COUNT(*) AS views FROM pageviews GROUP BY user_id;",
    );
    assert_eq!(text(&out.stdout), "INSERT 0 1\nINSERT 0 1\nCREATE TABLE\n");
    assert_eq!(
        text(&out.stderr),
        "NOTICE:  Created query with ID CTAS_VIEWS_PER_USER_0\n"
    );
    let out = server.psql("SHOW STREAMS;");
    assert_eq!(
        text(&out.stdout),
        "Stream Name|Kafka Topic|Key Format|Value Format|Windowed\n\
         PAGEVIEWS|pageviews|KAFKA|JSON|false\n\
         (1 row)\n"
    );
    // Pull queries read the table's state: a point get, then all of it.
    let want = "views\n1\n(1 row)\n";
    assert_eq!(
        server.psql_until(
            "SELECT views FROM views_per_user WHERE user_id = 'u2';",
            want
        ),
        want
    );
    let out = server.psql("SELECT * FROM views_per_user ORDER BY user_id;");
    assert_eq!(text(&out.stdout), "user_id|views\nu1|1\nu2|1\n(2 rows)\n");
    let out = server.psql("DESCRIBE pageviews;");
    assert_eq!(
        text(&out.stdout),
        "Field|Type\n\
         USER_ID|STRING (key)\n\
         PAGE|STRING\n\
         MS|INTEGER\n\
         (3 rows)\n"
    );
}

#[test]
fn drivers_statements_are_answered() {
    let server = Server::start();
    let out = server.psql(
        "BEGIN; SET application_name = 'app'; SHOW application_name; SHOW server_version; COMMIT;",
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "BEGIN\nSET\napplication_name\napp\n(1 row)\nserver_version\n15.0\n(1 row)\nCOMMIT\n"
    );
    // Settings belong to the session: a new connection has its own.
    let out = server.psql("SHOW application_name;");
    assert_eq!(text(&out.stdout), "application_name\npsql\n(1 row)\n");
}

#[test]
fn psql_draws_its_caret_under_a_syntax_error() {
    let server = Server::start();
    let out = server
        .psql("SHOW STREAMS;\nCREATE STREM s (a INT) WITH (kafka_topic='s', value_format='JSON');");
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "ERROR:  Syntax Error: mismatched input 'STREM' expecting STREAM or TABLE\n\
         LINE 2: CREATE STREM s (a INT) WITH (kafka_topic='s', value_format='...\n\
         \x20              ^\n"
    );
    // With VERBOSITY=verbose psql shows the SQLSTATE: 42P01, undefined table.
    let out = server.psql_commands(&["\\set VERBOSITY verbose", "DESCRIBE nothing_here;"]);
    assert_eq!(
        text(&out.stderr),
        "ERROR:  42P01: Could not find STREAM/TABLE 'NOTHING_HERE' in the Metastore\n"
    );
}

/// Beyond ksqlDB: a pull query joins two materialized tables, groups and
/// orders the result; a pull query on a stream scans it.
#[test]
fn a_pull_query_joins_groups_and_orders_materialized_tables() {
    let server = Server::start();
    let out = server.psql(
        "CREATE STREAM orders (id INT KEY, customer STRING, amount DOUBLE) \
           WITH (kafka_topic='orders', value_format='JSON', partitions=1); \
         CREATE STREAM customers (id STRING KEY, country STRING) \
           WITH (kafka_topic='customers', value_format='JSON', partitions=1); \
         CREATE TABLE spend AS SELECT customer, SUM(amount) AS total, COUNT(*) AS n \
           FROM orders GROUP BY customer; \
         CREATE TABLE country_of AS SELECT id, LATEST_BY_OFFSET(country) AS country \
           FROM customers GROUP BY id; \
         INSERT INTO customers (id, country) VALUES ('ann', 'NL'); \
         INSERT INTO customers (id, country) VALUES ('bob', 'FR'); \
         INSERT INTO customers (id, country) VALUES ('cid', 'NL'); \
         INSERT INTO customers (id, country) VALUES ('bob', 'DE'); \
         INSERT INTO orders (id, customer, amount) VALUES (1, 'ann', 10.5); \
         INSERT INTO orders (id, customer, amount) VALUES (2, 'bob', 20.0); \
         INSERT INTO orders (id, customer, amount) VALUES (3, 'cid', 4.5); \
         INSERT INTO orders (id, customer, amount) VALUES (4, 'ann', 1.0);",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sql = "SELECT c.country, SUM(s.total) AS total, SUM(s.n) AS orders \
               FROM spend s JOIN country_of c ON s.customer = c.id \
               GROUP BY c.country ORDER BY total DESC;";
    let want = "country|total|orders\nDE|20|1\nNL|16|3\n(2 rows)\n";
    assert_eq!(server.psql_until(sql, want), want);
    // A pull query on a stream reads its topic up to the current end.
    let out = server.psql("SELECT * FROM orders WHERE amount > 5 ORDER BY id;");
    assert_eq!(
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
        "id|customer|amount\n1|ann|10.5\n2|bob|20\n(2 rows)\n"
    );
}

/// A push query with `LIMIT n` completes after exactly n rows: from the
/// beginning with `auto.offset.reset=earliest`, and from the current end
/// (the default) with rows inserted while it waits.
#[test]
fn a_push_query_with_limit_returns_exactly_n_rows() {
    let server = Server::start();
    let out = server.psql(
        "CREATE STREAM clicks (user_id STRING KEY, n INT) \
           WITH (kafka_topic='clicks', value_format='JSON', partitions=1); \
         INSERT INTO clicks (user_id, n) VALUES ('a', 1); \
         INSERT INTO clicks (user_id, n) VALUES ('b', 2); \
         INSERT INTO clicks (user_id, n) VALUES ('c', 3); \
         INSERT INTO clicks (user_id, n) VALUES ('d', 4);",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = server.psql(
        "SET 'auto.offset.reset'='earliest'; \
         SELECT user_id, n * 10 AS ten_n FROM clicks WHERE n > 1 EMIT CHANGES LIMIT 2;",
    );
    assert_eq!(
        text(&out.stderr),
        "NOTICE:  Successfully changed local property 'auto.offset.reset' to 'earliest'.\n"
    );
    assert_eq!(
        text(&out.stdout),
        "SET\nuser_id|ten_n\nb|20\nc|30\n(2 rows)\n"
    );
    // From the end: only rows inserted after the query started.
    let port = server.port;
    let push = std::thread::spawn(move || {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", "sluice", "-d", "sluice", "-X", "-A", "-t", "-F", "|"])
            .args(["-c", "SELECT n FROM clicks EMIT CHANGES LIMIT 2;"])
            .output()
            .expect("run psql")
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut n = 100;
    while !push.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let out = server.psql(&format!(
            "INSERT INTO clicks (user_id, n) VALUES ('e', {n});"
        ));
        assert!(out.status.success(), "{}", text(&out.stderr));
        n += 1;
    }
    let out = push.join().expect("psql thread");
    let got: Vec<i64> = text(&out.stdout)
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect();
    assert_eq!(got.len(), 2, "{got:?} {}", text(&out.stderr));
    assert!(
        got[0] >= 100,
        "a row from before the query started: {got:?}"
    );
    assert_eq!(got[1], got[0] + 1);
}

/// `COPY (SELECT ... EMIT CHANGES) TO STDOUT` streams in psql: each row
/// arrives while input is still being inserted; then Ctrl-C (SIGINT to
/// psql, which sends a cancel request) stops the query.
#[test]
fn copy_of_a_push_query_streams_live_and_a_cancel_stops_it() {
    use std::sync::mpsc;
    use std::time::Duration;
    let server = Server::start();
    let out = server.psql(
        "CREATE STREAM ticks (id STRING KEY, n INT) \
           WITH (kafka_topic='ticks', value_format='JSON', partitions=1);",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // psql writes COPY data through stdio: line-buffered, as on a
    // terminal, each row reaches the pipe as psql receives it (stdbuf
    // execs psql, so the pid is psql's).
    let mut copy = Command::new("stdbuf")
        .args(["-oL", "psql"])
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "sluice", "-d", "sluice", "-X"])
        .args(["-c", "COPY (SELECT n FROM ticks EMIT CHANGES) TO STDOUT"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    let stdout = copy.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.expect("utf-8")).is_err() {
                break;
            }
        }
    });
    let insert = |n: i64| {
        let out = server.psql(&format!("INSERT INTO ticks (id, n) VALUES ('t', {n});"));
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    // Insert until the query, started at the stream's end, shows a row.
    let mut n = 1;
    let first = loop {
        insert(n);
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(300)) {
            break line.parse::<i64>().expect("a number");
        }
        n += 1;
        assert!(n < 100, "no row arrived");
    };
    assert_eq!(first, n);
    // Each later row shows before the next is inserted.
    for next in n + 1..n + 4 {
        insert(next);
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the row arrives while the COPY runs");
        assert_eq!(line, next.to_string());
    }
    let signal = Command::new("kill")
        .args(["-INT", &copy.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(signal.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = copy.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cancel did not stop the COPY"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut copy.stderr.take().expect("stderr"), &mut stderr).unwrap();
    assert_eq!(
        stderr,
        "Cancel request sent\nERROR:  canceling statement due to user request\n"
    );
    assert_eq!(status.code(), Some(1));
}

#[test]
fn psql_lists_and_describes_streams_and_tables() {
    let server = Server::start();
    let out = server.psql(
        "CREATE STREAM s1 (id BIGINT KEY, name STRING, tags ARRAY<STRING>) \
           WITH (kafka_topic='s1', value_format='JSON', partitions=1); \
         CREATE TABLE t1 AS SELECT name, COUNT(*) AS c FROM s1 GROUP BY name;",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = server.psql_commands(&["\\dt", "\\d s1", "\\d+ t1", "\\dt t*"]);
    assert_eq!(
        text(&out.stdout),
        "List of relations\n\
         Schema|Name|Type|Owner\n\
         public|s1|table|sluice\n\
         public|t1|table|sluice\n\
         (2 rows)\n\
         Table \"public.s1\"\n\
         Column|Type|Collation|Nullable|Default\n\
         id|bigint|||\n\
         name|character varying|||\n\
         tags|json|||\n\
         Table \"public.t1\"\n\
         Column|Type|Collation|Nullable|Default|Storage|Compression|Stats target|Description\n\
         name|character varying||not null||extended|||KEY\n\
         c|bigint||||plain|||\n\
         Indexes:\n    \"t1_pkey\" PRIMARY KEY, btree (name)\n\
         Access method: heap\n\
         List of relations\n\
         Schema|Name|Type|Owner\n\
         public|t1|table|sluice\n\
         (1 row)\n"
    );
    assert_eq!(text(&out.stderr), "");
    let out = server.psql_commands(&["\\d nope"]);
    assert_eq!(
        text(&out.stderr),
        "Did not find any relation named \"nope\".\n"
    );
}

/// A self-signed certificate and its key for `localhost` in `dir`.
fn self_signed(dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .output()
        .expect("run openssl (scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn passwords_are_checked_with_scram_over_tls() {
    let server = Server::start_prepared(
        "[tls]\ncert = \"{dir}/server.crt\"\nkey = \"{dir}/server.key\"\n\
         [users]\nalice = \"s3cret\"\n",
        self_signed,
    );
    let psql = |password: &str, sslmode: &str, command: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args(["-U", "alice", "-d", "sluice", "-X", "-A", "-t", "-w"])
            .args(["-c", command])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", sslmode)
            .output()
            .expect("run psql")
    };
    let out = psql("s3cret", "require", "\\conninfo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = text(&out.stdout);
    assert!(
        info.starts_with(
            "You are connected to database \"sluice\" as user \"alice\" on host \"127.0.0.1\""
        ) && info.contains("SSL connection (protocol: TLSv1.3"),
        "{info}"
    );
    // TLS is offered, not required; the password is.
    let out = psql("s3cret", "disable", "SHOW server_encoding;");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "UTF8\n");
    let out = psql("wrong", "require", "SHOW STREAMS;");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("password authentication failed for user \"alice\""),
        "{}",
        text(&out.stderr)
    );
    let out = psql("", "disable", "SHOW STREAMS;");
    assert!(!out.status.success());
}

#[test]
fn a_table_push_query_marks_inserts_updates_and_deletes() {
    let server = Server::start();
    // Every change of the table, not one per key per commit interval
    // (ksqlDB's record cache, on in the server by default).
    let out = server.psql(
        "SET 'cache.max.bytes.buffering'='0'; \
         CREATE STREAM moves (k STRING KEY, v INT) \
           WITH (kafka_topic='moves', value_format='JSON', partitions=1); \
         CREATE TABLE balances AS SELECT k, SUM(v) AS total FROM moves GROUP BY k HAVING SUM(v) > 0; \
         INSERT INTO moves (k, v) VALUES ('a', 5); \
         INSERT INTO moves (k, v) VALUES ('a', 2); \
         INSERT INTO moves (k, v) VALUES ('a', -7); \
         INSERT INTO moves (k, v) VALUES ('a', 4);",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = server.psql(
        "SET 'auto.offset.reset'='earliest'; \
         SELECT * FROM balances EMIT CHANGES LIMIT 4;",
    );
    assert_eq!(
        text(&out.stdout),
        "SET\nk|total|op\na|5|insert\na|7|update\na||delete\na|4|insert\n(4 rows)\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_push_query_aggregates_a_whole_stream_without_group_by() {
    let server = Server::start();
    let out = server.psql(
        "CREATE STREAM deposits (k STRING KEY, v INT) \
           WITH (kafka_topic='deposits', value_format='JSON', partitions=1); \
         INSERT INTO deposits (k, v) VALUES ('a', 5); \
         INSERT INTO deposits (k, v) VALUES ('b', 2); \
         INSERT INTO deposits (k, v) VALUES ('a', -7);",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = server.psql(
        "SET 'auto.offset.reset'='earliest'; \
         SELECT COUNT(*) AS n, SUM(v) AS total FROM deposits EMIT CHANGES LIMIT 3;",
    );
    assert_eq!(
        text(&out.stdout),
        "SET\nn|total|op\n1|5|insert\n2|7|update\n3|0|update\n(3 rows)\n",
        "{}",
        text(&out.stderr)
    );
    // A persistent query still needs a GROUP BY.
    let out = server.psql("CREATE TABLE total AS SELECT COUNT(*) AS n FROM deposits;");
    assert_eq!(
        text(&out.stderr),
        "ERROR:  Use of aggregate function COUNT requires a GROUP BY clause.\n"
    );
}

#[test]
fn psql_loads_every_case_study_file() {
    let server = Server::start();
    let root = env!("CARGO_MANIFEST_DIR");
    for case in ["movieflix", "gettaxi", "social", "mybank", "logs"] {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args(["-U", "sluice", "-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-f")
            .arg(format!("{root}/queries/{case}.sql"))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql -f queries/{case}.sql: {}",
            text(&out.stderr)
        );
    }
    let out = server.psql("SHOW SINKS");
    let sinks: Vec<String> = text(&out.stdout)
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('('))
        .map(|l| l.split('|').take(2).collect::<Vec<_>>().join(" <- "))
        .collect();
    assert_eq!(
        sinks,
        vec![
            "POSTS_ARCHIVE <- POSTS",
            "REQUEST_LOGS_ARCHIVE <- REQUEST_LOGS",
            "SHOW_POSITION_ARCHIVE <- SHOW_POSITION",
            "TAXI_POSITION_ARCHIVE <- TAXI_POSITION",
            "USER_POSITION_ARCHIVE <- USER_POSITION",
        ]
    );
}

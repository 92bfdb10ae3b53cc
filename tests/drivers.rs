//! Ordinary Postgres drivers against `sluice server`: tokio-postgres (the
//! extended protocol: prepared statements, `$n` parameters, binary values),
//! Python's psycopg 3, Java's pgjdbc and node-postgres with
//! pg-query-stream (`scripts/setup.sh` installs psycopg in
//! `~/.cache/sluice-venv`, pgjdbc in `~/.m2` and node-postgres in
//! `~/.cache/sluice-node`).

use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

mod common;
use common::pg::{connect, query_until, SERVED, SERVING_LOG};
use common::Server;

fn at(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 22)
        .unwrap()
        .and_hms_opt(h, m, 0)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_prepares_binds_and_reads_typed_values() {
    let server = Server::start();
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM payments (id BIGINT KEY, who STRING, amount DOUBLE, ok BOOLEAN, at TIMESTAMP) \
               WITH (kafka_topic='payments', value_format='JSON', partitions=1);",
        )
        .await
        .unwrap();

    // INSERT's parameters take their columns' types.
    let insert = client
        .prepare("INSERT INTO payments (id, who, amount, ok, at) VALUES ($1, $2, $3, $4, $5)")
        .await
        .unwrap();
    assert_eq!(
        insert.params(),
        &[
            Type::INT8,
            Type::VARCHAR,
            Type::FLOAT8,
            Type::BOOL,
            Type::TIMESTAMP
        ]
    );
    assert!(insert.columns().is_empty());
    let payments: [(i64, &str, f64, bool, NaiveDateTime); 3] = [
        (1, "alice", 2.5, true, at(9, 0)),
        (2, "bob", 10.0, false, at(9, 5)),
        (3, "alice", 5.0, true, at(9, 10)),
    ];
    for (id, who, amount, ok, when) in &payments {
        let n = client
            .execute(&insert, &[id, who, amount, ok, when])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    client
        .batch_execute(
            "CREATE TABLE totals AS SELECT who, COUNT(*) AS n, SUM(amount) AS total \
               FROM payments GROUP BY who; \
             CREATE TABLE latest AS SELECT id, LATEST_BY_OFFSET(ok) AS ok, LATEST_BY_OFFSET(at) AS at \
               FROM payments GROUP BY id;",
        )
        .await
        .unwrap();

    // A pull query: the parameter's type is inferred from the key it is
    // compared with; values come back binary and typed.
    let by_who = client
        .prepare("SELECT who, n, total FROM totals WHERE who = $1")
        .await
        .unwrap();
    assert_eq!(by_who.params(), &[Type::VARCHAR]);
    let types: Vec<&Type> = by_who.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(types, vec![&Type::VARCHAR, &Type::INT8, &Type::FLOAT8]);
    let names: Vec<&str> = by_who.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, vec!["who", "n", "total"]);
    let rows = query_until(&client, &by_who, &[&"alice"], |rows| {
        rows.len() == 1 && rows[0].get::<_, i64>(1) == 2
    })
    .await;
    let got: Vec<(String, i64, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![("alice".to_string(), 2, 7.5)]);

    let latest = client
        .prepare("SELECT id, ok, at FROM latest WHERE id IN ($1, $2) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(latest.params(), &[Type::INT8, Type::INT8]);
    let rows = query_until(&client, &latest, &[&2i64, &3i64], |rows| rows.len() == 2).await;
    let got: Vec<(i64, bool, NaiveDateTime)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![(2, false, at(9, 5)), (3, true, at(9, 10))]);

    // A push query through the extended protocol: LIMIT ends it.
    client
        .batch_execute("SET 'auto.offset.reset'='earliest';")
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT who, amount FROM payments WHERE amount > $1 EMIT CHANGES LIMIT 2",
            &[&3.0f64],
        )
        .await
        .unwrap();
    let got: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![("bob".to_string(), 10.0), ("alice".to_string(), 5.0)]
    );

    // Errors carry their SQLSTATE; the connection goes on.
    let e = client
        .query("SELECT * FROM nowhere", &[])
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
    let e = client.prepare("SELEC 1").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42601"));
    let e = client.prepare("SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42601"));
    let n: i64 = client
        .query_one("SELECT COUNT(*) FROM totals", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[test]
fn psycopg_connects_and_queries() {
    let server = Server::start_with_env("", |_| {}, &[SERVING_LOG]);
    let out = std::process::Command::new(common::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/psycopg_client.py"
        ))
        .arg(server.port.to_string())
        .output()
        .expect("run python");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "server_version 150000\n\
         created stream\n\
         inserted 3\n\
         totals [('alice', 2, Decimal('7.50')), ('bob', 1, Decimal('10.00'))]\n\
         alice [('alice', 2)]\n\
         prepared [[('bob', 1)], [('alice', 2)], []]\n\
         push [('bob', Decimal('10.00')), ('alice', Decimal('5.00'))]\n\
         error 42P01 NOWHERE does not exist.\n"
    );
    assert!(out.status.success());
    // The lookup with a parameter, then the prepared one three times.
    assert_eq!(server.log().matches(SERVED).count(), 4, "{}", server.log());
}

/// node-postgres with pg-query-stream (`tests/node_stream_client.js`): a
/// push query read in batches, left after 2 rows with `break` while no
/// new row comes, and the next query answers at once (it waited for the
/// next row before); a pull query streamed the same way.
#[test]
fn node_postgres_query_stream_answers_the_next_query_after_a_break() {
    let server = Server::start();
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node_stream_client.js"
        ))
        .arg(server.port.to_string())
        .env("NODE_PATH", common::node_modules())
        .output()
        .expect("run node (scripts/setup.sh installs it)");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert!(out.status.success());
}

#[test]
fn jdbc_connects_and_queries() {
    let jar = common::pgjdbc();
    let server = Server::start_with_env("", |_| {}, &[SERVING_LOG]);
    let out = std::process::Command::new("java")
        .arg("-cp")
        .arg(&jar)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/JdbcClient.java"
        ))
        .arg(server.port.to_string())
        .output()
        .expect("run java");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // How many times the lookup ran (waiting for the table, then six):
    // each was served from the view.
    let executed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("executed "))
        .and_then(|n| n.parse::<usize>().ok())
        .expect("the number of lookups executed");
    assert_eq!(
        stdout.replace(&format!("executed {executed}\n"), ""),
        "connected 15\n\
         ACME 140 4\n\
         lookups INIT 3 - INIT 3 - INIT 3 -\n\
         push INIT 5.5\n\
         push ACME 6.5\n\
         error 42P01\n"
    );
    assert!(out.status.success());
    assert_eq!(
        server.log().matches(SERVED).count(),
        executed,
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_protocol_push_query_streams_live_until_cancelled() {
    use futures::StreamExt;
    let server = Server::start();
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM ticks (id INT KEY, v INT) \
               WITH (kafka_topic='ticks', value_format='JSON', partitions=1);",
        )
        .await
        .unwrap();
    // No LIMIT: the query never ends by itself, so every row that arrives
    // was sent while it ran.
    let rows = client
        .query_raw(
            "SELECT id, v FROM ticks WHERE v >= $1 EMIT CHANGES",
            &[&10i32],
        )
        .await
        .unwrap();
    let mut rows = std::pin::pin!(rows);
    let writer = connect(&server).await;
    let insert = writer
        .prepare("INSERT INTO ticks (id, v) VALUES ($1, $2)")
        .await
        .unwrap();
    // The query starts reading from the end once the server has run the
    // Execute: insert until it sees a row (for a minute at most).
    let mut next = 0i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        assert!(
            Instant::now() < deadline,
            "the push query showed none of the {next} rows inserted in 60 s"
        );
        writer
            .execute(&insert, &[&next, &(10 + next)])
            .await
            .unwrap();
        next += 1;
        if let Ok(row) = tokio::time::timeout(Duration::from_millis(500), rows.next()).await {
            let row = row.expect("a row").expect("no error");
            break (row.get::<_, i32>(0), row.get::<_, i32>(1));
        }
    };
    // Rows inserted from then on arrive, in order, while the query runs.
    let mut seen = vec![first];
    for _ in 0..2 {
        writer
            .execute(&insert, &[&next, &(10 + next)])
            .await
            .unwrap();
        next += 1;
    }
    while seen.last().map(|r| r.0) != Some(next - 1) {
        assert!(
            seen.len() <= (next - first.0) as usize,
            "more rows than were inserted: {seen:?}"
        );
        let row = tokio::time::timeout(Duration::from_secs(30), rows.next())
            .await
            .expect("a row within 30 s")
            .expect("a row")
            .expect("no error");
        seen.push((row.get::<_, i32>(0), row.get::<_, i32>(1)));
    }
    let want: Vec<(i32, i32)> = (first.0..next).map(|i| (i, 10 + i)).collect();
    assert_eq!(seen, want);
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), rows.next())
        .await
        .expect("the query ends within 30 s");
    let e = end.expect("an error, not the end").unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("57014"));
    // The connection goes on.
    let n: i64 = client
        .query_one("SELECT COUNT(*) FROM (SELECT 1 AS one) t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// The running push queries `SHOW QUERIES` lists.
async fn push_queries(client: &Client) -> Vec<String> {
    client
        .simple_query("SHOW QUERIES;")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .filter(|id| id.starts_with("transient_"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_never_change_what_a_statement_is() {
    let server = Server::start();
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM notes (id INT KEY, body STRING) \
               WITH (kafka_topic='notes', value_format='JSON', partitions=1); \
             CREATE TABLE latest AS SELECT id, LATEST_BY_OFFSET(body) AS body FROM notes GROUP BY id;",
        )
        .await
        .unwrap();
    // Past the protocol's 65535 parameters: refused, nothing allocated.
    let e = client
        .prepare("SELECT * FROM latest WHERE id = $4000000000")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22023"));
    // Values that read like SQL stay values.
    let hostile = "x' EMIT CHANGES; SELECT * FROM pg_catalog.pg_class --";
    let insert = client
        .prepare("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .await
        .unwrap();
    client.execute(&insert, &[&1i32, &hostile]).await.unwrap();
    client
        .execute(&insert, &[&2i32, &"-- not a comment"])
        .await
        .unwrap();
    // `0 - $2` with -2: a subtraction, never a `--` comment.
    let by_body = client
        .prepare_typed(
            "SELECT id FROM latest WHERE body = $1 OR id = 0 - $2",
            &[Type::VARCHAR, Type::INT4],
        )
        .await
        .unwrap();
    let rows = query_until(&client, &by_body, &[&hostile, &-2i32], |rows| {
        rows.len() == 2
    })
    .await;
    let mut ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    // A push query must come last in a script: its rows never end.
    let e = client
        .simple_query("SELECT * FROM notes EMIT CHANGES; SHOW STREAMS;")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"));
    assert!(push_queries(&client).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_push_query_ends_when_its_client_goes_away() {
    let server = Server::start();
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM pings (id INT KEY, n INT) \
               WITH (kafka_topic='pings', value_format='JSON', partitions=1);",
        )
        .await
        .unwrap();
    let (reader, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=sluice", server.port),
        NoTls,
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    // A push query that never has a row to send.
    let query = tokio::spawn(async move {
        let rows = reader
            .query_raw(
                "SELECT id FROM pings WHERE n < 0 EMIT CHANGES",
                Vec::<i32>::new(),
            )
            .await;
        drop(rows);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while push_queries(&client).await.is_empty() {
        assert!(Instant::now() < deadline, "the push query never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client goes away without a word.
    query.abort();
    connection.abort();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !push_queries(&client).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the push query outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Connections opening while others run pull queries: a connection's
/// first statement must not wait for the engine on the wire server's
/// threads, which the running pull queries' DataFusion tasks need (that
/// wait once stalled every connection of the server for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_run_pull_queries_at_once() {
    // Past DataFusion's batch size (8192 rows), a scan of the stream is
    // split over the runtime's threads: the pull query needs them.
    const KEYS: i32 = 9000;
    let server = Server::start();
    let client = connect(&server).await;
    let inserts: Vec<String> = (0..KEYS / 100)
        .map(|s| {
            let ids: Vec<String> = (s * 100..s * 100 + 100).map(|i| i.to_string()).collect();
            format!(
                "INSERT INTO seeds (seed, ids) VALUES ({s}, ARRAY[{}]);",
                ids.join(", ")
            )
        })
        .collect();
    client
        .batch_execute(&format!(
            "CREATE STREAM seeds (seed INT KEY, ids ARRAY<INT>) \
               WITH (kafka_topic='seeds', value_format='JSON', partitions=4); \
             CREATE STREAM marks WITH (partitions=4) AS SELECT seed, EXPLODE(ids) AS id FROM seeds; \
             CREATE TABLE marks_count AS SELECT id, COUNT(*) AS n FROM marks GROUP BY id; \
             {}",
            inserts.join(" ")
        ))
        .await
        .unwrap();
    let count = client
        .prepare("SELECT COUNT(*) FROM marks_count")
        .await
        .unwrap();
    let rows = query_until(&client, &count, &[], |rows| {
        rows[0].get::<_, i64>(0) == i64::from(KEYS)
    })
    .await;
    assert_eq!(rows[0].get::<_, i64>(0), i64::from(KEYS));
    let port = server.port;
    // Six clients, each opening a connection again and again: new
    // sessions start while the other clients' lookups hold the engine.
    let lookups = async move {
        let mut tasks = Vec::new();
        for c in 0..6i32 {
            tasks.push(tokio::spawn(async move {
                for round in 0..4i32 {
                    let (client, connection) = tokio_postgres::connect(
                        &format!("host=127.0.0.1 port={port} user=sluice dbname=sluice"),
                        NoTls,
                    )
                    .await
                    .expect("connect");
                    tokio::spawn(connection);
                    // The stream (its topic scanned) holds each id once; the
                    // table (its view) counts it once.
                    let (sql, expected): (&str, fn(i32) -> String) = if round % 2 == 0 {
                        ("SELECT CAST(id AS STRING) FROM marks WHERE id = $1", |id| {
                            id.to_string()
                        })
                    } else {
                        (
                            "SELECT CAST(n AS STRING) FROM marks_count WHERE id = $1",
                            |_| "1".into(),
                        )
                    };
                    let lookup = client.prepare(sql).await.expect("prepare");
                    for n in 0..2i32 {
                        let id = (c * 31 + round * 7 + n * 3) % KEYS;
                        let rows = client.query(&lookup, &[&id]).await.expect("lookup");
                        let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                        assert_eq!(got, vec![expected(id)], "client {c}: {sql} with {id}");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("a client's lookups");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), lookups)
        .await
        .expect("6 clients' 24 connections did not finish within 120 s: the server stalled");
}

/// A prepared key lookup is served from the table's view on the
/// connection's own task: each execution is one, with exactly the rows and
/// types the planned way gives (binary and text results alike), and a
/// value that is not a key goes the planned way, with its answer or error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_key_lookups_take_the_serving_path() {
    let server = Server::start_with_env("", |_| {}, &[SERVING_LOG]);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM updates (id STRING KEY, owner STRING, balance BIGINT, n INT) \
               WITH (kafka_topic='updates', value_format='JSON', partitions=2); \
             CREATE TABLE accounts AS SELECT id, LATEST_BY_OFFSET(owner) AS owner, \
               SUM(balance) AS balance FROM updates GROUP BY id; \
             CREATE TABLE by_n AS SELECT n, COUNT(*) AS c FROM updates GROUP BY n; \
             INSERT INTO updates (id, owner, balance, n) VALUES ('a1', 'ann', 10, 1); \
             INSERT INTO updates (id, owner, balance, n) VALUES ('b2', 'bob', 5, 2); \
             INSERT INTO updates (id, owner, balance, n) VALUES ('a1', 'ann', 7, 1);",
        )
        .await
        .unwrap();
    let lookup = client
        .prepare("SELECT id, owner, balance FROM accounts WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(lookup.params(), &[Type::VARCHAR]);
    let rows = query_until(&client, &lookup, &[&"a1"], |rows| {
        rows.first().is_some_and(|r| r.get::<_, i64>(2) == 17)
    })
    .await;
    let served_before = server.log().matches(SERVED).count();
    assert!(served_before >= 1, "{}", server.log());
    let row = |r: &Row| {
        (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, i64>(2),
        )
    };
    assert_eq!(
        rows.iter().map(row).collect::<Vec<_>>(),
        [("a1".into(), "ann".into(), 17)]
    );
    let rows = client.query(&lookup, &[&"b2"]).await.unwrap();
    assert_eq!(
        rows.iter().map(row).collect::<Vec<_>>(),
        [("b2".into(), "bob".into(), 5)]
    );
    assert!(client.query(&lookup, &[&"zz"]).await.unwrap().is_empty());
    // `*` and the key on the right, an INT key from a BIGINT parameter.
    let star = client
        .prepare("SELECT * FROM by_n WHERE $1 = n")
        .await
        .unwrap();
    let columns: Vec<(&str, &Type)> = star
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_()))
        .collect();
    assert_eq!(columns, [("n", &Type::INT4), ("c", &Type::INT8)]);
    let rows = client.query(&star, &[&1i32]).await.unwrap();
    let got: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(1, 2)]);
    assert_eq!(
        server.log().matches(SERVED).count(),
        served_before + 3,
        "each execution above is served from the view"
    );
    // NULL is no key: the planned way answers, with ksqlDB's refusal.
    let none: Option<&str> = None;
    let e = client.query(&lookup, &[&none]).await.unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(
        (db.code().code(), db.message()),
        ("42000", "Comparison with NULL not supported: \"ID\" = NULL")
    );
    assert_eq!(server.log().matches(SERVED).count(), served_before + 3);
    // Text results (the simple protocol's planned way) agree.
    let text = client
        .simple_query("SELECT id, owner, balance FROM accounts WHERE id = 'a1'")
        .await
        .unwrap();
    let values: Vec<Vec<Option<&str>>> = text
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..3).map(|i| r.get(i)).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(values, [[Some("a1"), Some("ann"), Some("17")]]);
    // A table dropped under a prepared lookup: the planned way says so.
    client.batch_execute("DROP TABLE by_n").await.unwrap();
    let e = client.query(&star, &[&1i32]).await.unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42P01", "{db:?}");
}

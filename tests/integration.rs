//! Integration tests through the public API: statements in, records out.
//!
//! One test binary (all integration tests live here). Topics are in memory;
//! records are written with `INSERT INTO ... VALUES` and read back with
//! `PRINT ... FROM BEGINNING`.

use sluice::{Engine, EngineConfig, Error, StatementResult};

fn engine() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let e = open(dir.path());
    (e, dir)
}

/// An engine on a data directory (opened again to test restarts).
fn open(dir: &std::path::Path) -> Engine {
    Engine::open(EngineConfig {
        data_dir: dir.to_path_buf(),
        properties: Default::default(),
    })
    .expect("engine opens")
}

/// (key, value) text of every record of a topic.
fn print(e: &mut Engine, topic: &str) -> Vec<(String, String)> {
    match e
        .execute(&format!("PRINT '{topic}' FROM BEGINNING;"))
        .expect("print")
        .remove(0)
    {
        StatementResult::Rows { rows, .. } => rows
            .into_iter()
            .map(|r| (r[3].clone(), r[4].clone()))
            .collect(),
        other => panic!("PRINT returned {other:?}"),
    }
}

fn rows(r: StatementResult) -> Vec<Vec<String>> {
    match r {
        StatementResult::Rows { rows, .. } => rows,
        other => panic!("expected rows, got {other:?}"),
    }
}

#[test]
fn stream_filter_project_end_to_end() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM orders (id STRING KEY, amount DOUBLE, item STRING) \
           WITH (kafka_topic='orders', value_format='JSON', partitions=1);
         CREATE STREAM big AS SELECT id, UCASE(item) AS item, amount * 2 AS doubled FROM orders WHERE amount > 10;",
    )
    .unwrap();
    e.execute(
        "INSERT INTO orders (id, amount, item) VALUES ('a', 5.0, 'pen');
         INSERT INTO orders (id, amount, item) VALUES ('b', 12.5, 'book');",
    )
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "BIG"),
        vec![(
            "b".to_string(),
            r#"{"ITEM":"BOOK","DOUBLED":25.0}"#.to_string()
        )]
    );
}

#[test]
fn grouped_count_emits_every_update() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM clicks (user_id INT KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON', partitions=1);
         CREATE TABLE per_page AS SELECT page, COUNT(*) AS n FROM clicks GROUP BY page;",
    )
    .unwrap();
    for (u, p) in [(1, "home"), (2, "home"), (1, "cart")] {
        e.execute(&format!(
            "INSERT INTO clicks (user_id, page) VALUES ({u}, '{p}');"
        ))
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "PER_PAGE"),
        vec![
            ("home".to_string(), r#"{"N":1}"#.to_string()),
            ("home".to_string(), r#"{"N":2}"#.to_string()),
            ("cart".to_string(), r#"{"N":1}"#.to_string()),
        ]
    );
}

/// ksqlDB's record cache: with `cache.max.bytes.buffering` set, a table's
/// updates of a key within one checkpoint are written once, the last (the
/// engine's default is off, as above). Inputs already in the topic are
/// read by the query's first poll, which checkpoints once.
#[test]
fn the_record_cache_writes_a_keys_last_update_per_checkpoint() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM clicks (user_id INT KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON', partitions=1);",
    )
    .unwrap();
    for (u, p) in [(1, "home"), (2, "home"), (1, "cart"), (3, "home")] {
        e.execute(&format!(
            "INSERT INTO clicks (user_id, page) VALUES ({u}, '{p}');"
        ))
        .unwrap();
    }
    e.execute(
        "SET 'auto.offset.reset' = 'earliest';
         SET 'ksql.streams.cache.max.bytes.buffering' = '10000000';
         CREATE TABLE per_page AS SELECT page, COUNT(*) AS n FROM clicks GROUP BY page;",
    )
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "PER_PAGE"),
        vec![
            ("home".to_string(), r#"{"N":3}"#.to_string()),
            ("cart".to_string(), r#"{"N":1}"#.to_string()),
        ]
    );
    // The pull query and later inputs see every update.
    e.execute("INSERT INTO clicks (user_id, page) VALUES (4, 'cart');")
        .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "PER_PAGE")[2..],
        [("cart".to_string(), r#"{"N":2}"#.to_string())]
    );
    let err = e
        .execute("SET 'cache.max.bytes.buffering' = 'lots';")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid value 'lots' for property cache.max.bytes.buffering: expected a whole number (at line 1:36)"
    );
}

/// A persistent query keeps the settings it was started with across a
/// restart (they were lost for `CREATE ... AS SELECT`: a query started
/// exactly-once, or with the record cache, ran with the defaults after a
/// restart): here the cache, seen in what the query writes after it.
#[test]
fn a_query_keeps_its_settings_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut e = open(dir.path());
        e.execute(
            "CREATE STREAM clicks (user_id INT KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON', partitions=1);
             SET 'cache.max.bytes.buffering' = '10000000';
             CREATE TABLE per_page AS SELECT page, COUNT(*) AS n FROM clicks GROUP BY page;",
        )
        .unwrap();
    }
    // The engine's own default is no cache.
    let mut e = open(dir.path());
    for u in 1..=3 {
        e.execute(&format!(
            "INSERT INTO clicks (user_id, page) VALUES ({u}, 'home');"
        ))
        .unwrap();
    }
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "PER_PAGE"),
        vec![("home".to_string(), r#"{"N":3}"#.to_string())]
    );
}

#[test]
fn a_bad_statement_says_where_and_the_engine_keeps_running() {
    let (mut e, _d) = engine();
    let err = e.execute("CREATE STREAM s (id INT KEY,\n  v FLOAT) WITH (kafka_topic='s', value_format='JSON', partitions=1);");
    let err = err.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Syntax Error: unknown type FLOAT (at line 2:5)"
    );
    assert_eq!(err.sqlstate(), "42601");
    let err = e
        .execute("CREATE STREAM x AS SELECT * FROM nowhere;")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Source `NOWHERE` does not exist. (at line 1:34)"
    );
    e.execute("CREATE STREAM s (id INT KEY, v DOUBLE) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
        .unwrap();
    let err = e
        .execute("CREATE STREAM bad AS\n  SELECT id, nope FROM s;")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SELECT column 'NOPE' cannot be resolved. (at line 2:14)"
    );
    e.execute("DROP STREAM s;").unwrap();
    // Still usable.
    e.execute("CREATE STREAM s (id INT KEY, v DOUBLE) WITH (kafka_topic='s', value_format='JSON', partitions=1);")
        .unwrap();
    assert_eq!(
        rows(e.execute("SHOW STREAMS;").unwrap().remove(0))[0][0],
        "S"
    );
}

#[test]
fn an_unsupported_construct_is_named() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM a (id INT KEY, v ARRAY<INT>) WITH (kafka_topic='a', value_format='JSON', partitions=1);",
    )
    .unwrap();
    let err = e
        .execute("CREATE STREAM j AS SELECT id, v[1:2] AS s FROM a;")
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert_eq!(err.to_string(), "Array slices ([a:b]) is not supported");
    assert_eq!(err.sqlstate(), "0A000");
}

#[test]
fn a_stream_table_join_uses_the_threshold_in_force_at_each_transaction() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE TABLE limits (user_id STRING PRIMARY KEY, threshold DOUBLE) \
           WITH (kafka_topic='limits', value_format='JSON', partitions=1);
         CREATE STREAM txns (txn_id STRING KEY, user_id STRING, amount DOUBLE) \
           WITH (kafka_topic='txns', value_format='JSON', partitions=1);
         CREATE STREAM alerts AS SELECT t.user_id AS user_id, txn_id, amount, threshold \
           FROM txns t JOIN limits l ON t.user_id = l.user_id WHERE amount > threshold;",
    )
    .unwrap();
    for stmt in [
        "INSERT INTO txns (txn_id, user_id, amount) VALUES ('t0', 'ann', 900.0);",
        "INSERT INTO limits (user_id, threshold) VALUES ('ann', 500.0);",
        "INSERT INTO txns (txn_id, user_id, amount) VALUES ('t1', 'ann', 600.0);",
        "INSERT INTO limits (user_id, threshold) VALUES ('ann', 1000.0);",
        "INSERT INTO txns (txn_id, user_id, amount) VALUES ('t2', 'ann', 600.0);",
        "INSERT INTO txns (txn_id, user_id, amount) VALUES ('t3', 'ann', 1500.0);",
    ] {
        e.execute(stmt).unwrap();
        e.run_until_idle().unwrap();
    }
    // t0 came before any threshold; t2 is under the raised one; raising the
    // threshold alerted on nothing.
    assert_eq!(
        print(&mut e, "ALERTS"),
        vec![
            (
                "ann".to_string(),
                r#"{"TXN_ID":"t1","AMOUNT":600.0,"THRESHOLD":500.0}"#.to_string()
            ),
            (
                "ann".to_string(),
                r#"{"TXN_ID":"t3","AMOUNT":1500.0,"THRESHOLD":1000.0}"#.to_string()
            ),
        ]
    );
}

#[test]
fn a_table_table_join_feeds_an_exact_aggregation() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE TABLE posts (post_id INT PRIMARY KEY, author STRING) \
           WITH (kafka_topic='posts', value_format='JSON', partitions=1);
         CREATE TABLE likes (post_id INT PRIMARY KEY, n BIGINT) \
           WITH (kafka_topic='likes', value_format='JSON', partitions=1);
         CREATE TABLE by_author AS SELECT author, SUM(n) AS total \
           FROM posts p JOIN likes l ON p.post_id = l.post_id GROUP BY author;",
    )
    .unwrap();
    for stmt in [
        "INSERT INTO posts (post_id, author) VALUES (1, 'ann');",
        "INSERT INTO posts (post_id, author) VALUES (2, 'ann');",
        "INSERT INTO likes (post_id, n) VALUES (1, 3);",
        "INSERT INTO likes (post_id, n) VALUES (2, 4);",
        "INSERT INTO likes (post_id, n) VALUES (1, 5);",
        // Post 2 changes author: its likes move with it.
        "INSERT INTO posts (post_id, author) VALUES (2, 'bob');",
    ] {
        e.execute(stmt).unwrap();
        e.run_until_idle().unwrap();
    }
    let values: Vec<(String, String)> = print(&mut e, "BY_AUTHOR");
    assert_eq!(
        values,
        [
            ("ann", r#"{"TOTAL":3}"#),
            ("ann", r#"{"TOTAL":7}"#),
            ("ann", r#"{"TOTAL":9}"#),
            ("ann", r#"{"TOTAL":5}"#),
            ("bob", r#"{"TOTAL":4}"#),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
    );
}

#[test]
fn a_join_on_several_conditions_matches_a_composite_key() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM rides (ride_id STRING KEY, city STRING, zone INT, fare DOUBLE) \
           WITH (kafka_topic='rides', format='JSON', partitions=1);
         CREATE TABLE surge (city STRING PRIMARY KEY, zone INT PRIMARY KEY, factor DOUBLE) \
           WITH (kafka_topic='surge', format='JSON', partitions=1);
         CREATE STREAM priced AS SELECT r.city AS city, r.zone AS zone, ride_id, fare * factor AS price \
           FROM rides r JOIN surge s ON r.city = s.city AND r.zone = s.zone;",
    )
    .unwrap();
    for stmt in [
        "INSERT INTO surge (city, zone, factor) VALUES ('paris', 1, 1.5);",
        "INSERT INTO surge (city, zone, factor) VALUES ('paris', 2, 2.0);",
        "INSERT INTO rides (ride_id, city, zone, fare) VALUES ('r1', 'paris', 2, 10.0);",
        "INSERT INTO rides (ride_id, city, zone, fare) VALUES ('r2', 'paris', 1, 10.0);",
        "INSERT INTO rides (ride_id, city, zone, fare) VALUES ('r3', 'paris', 3, 10.0);",
    ] {
        e.execute(stmt).unwrap();
        e.run_until_idle().unwrap();
    }
    assert_eq!(
        print(&mut e, "PRICED"),
        vec![
            (
                r#"{"CITY":"paris","ZONE":2}"#.to_string(),
                r#"{"RIDE_ID":"r1","PRICE":20.0}"#.to_string()
            ),
            (
                r#"{"CITY":"paris","ZONE":1}"#.to_string(),
                r#"{"RIDE_ID":"r2","PRICE":15.0}"#.to_string()
            ),
        ]
    );
    // Part of a composite primary key is not the table's key.
    let err = e
        .execute("CREATE STREAM partial AS SELECT r.city AS city, ride_id FROM rides r JOIN surge s ON r.city = s.city;")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid join condition: stream-table joins require to join on the table's primary key. Got R.CITY = S.CITY. (at line 1:75)"
    );
}

#[test]
fn a_stream_stream_join_resumes_after_a_restart_without_losing_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path());
    e.execute(
        "CREATE STREAM views (id INT KEY, page STRING) WITH (kafka_topic='views', value_format='JSON', partitions=1);
         CREATE STREAM clicks (id INT KEY, button STRING) WITH (kafka_topic='clicks', value_format='JSON', partitions=1);
         CREATE STREAM both_seen AS SELECT v.id AS id, page, button \
           FROM views v JOIN clicks c WITHIN 10 SECONDS ON v.id = c.id;
         INSERT INTO views (ROWTIME, id, page) VALUES (1000, 1, 'home');",
    )
    .unwrap();
    e.run_until_idle().unwrap();
    drop(e);
    // The view waits in the join's state across the restart.
    let mut e = open(dir.path());
    e.execute(
        "INSERT INTO clicks (ROWTIME, id, button) VALUES (5000, 1, 'buy');
         INSERT INTO clicks (ROWTIME, id, button) VALUES (30000, 1, 'late');",
    )
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "BOTH_SEEN"),
        vec![(
            "1".to_string(),
            r#"{"PAGE":"home","BUTTON":"buy"}"#.to_string()
        )]
    );
}

#[test]
fn a_malformed_record_is_skipped_counted_and_processing_goes_on() {
    let (mut e, _d) = engine();
    // Two views of one topic: raw strings in, JSON read out.
    e.execute(
        "CREATE STREAM raw (line STRING) WITH (kafka_topic='events', value_format='KAFKA', partitions=1);
         CREATE STREAM events (n INT) WITH (kafka_topic='events', value_format='JSON');
         CREATE STREAM doubled AS SELECT n * 2 AS m FROM events;",
    )
    .unwrap();
    e.execute(
        "INSERT INTO raw (line) VALUES ('{\"N\": 1}');
         INSERT INTO raw (line) VALUES ('not json at all');
         INSERT INTO raw (line) VALUES ('{\"N\": 3}');",
    )
    .unwrap();
    e.run_until_idle().unwrap();
    let out: Vec<String> = print(&mut e, "DOUBLED").into_iter().map(|r| r.1).collect();
    assert_eq!(
        out,
        vec![r#"{"M":2}"#.to_string(), r#"{"M":6}"#.to_string()]
    );
    let described = rows(e.execute("DESCRIBE DOUBLED EXTENDED;").unwrap().remove(0));
    let skipped = described
        .iter()
        .find(|r| r[0] == "Records skipped (cannot decode)")
        .expect("metric row");
    assert_eq!(skipped[1], "1");
    // The processing log says which record, where, and why.
    let log = print(&mut e, "sluice_processing_log");
    assert_eq!(log.len(), 1, "{log:?}");
    let entry: serde_json::Value = serde_json::from_str(&log[0].1).unwrap();
    assert_eq!(entry["query_id"], "CSAS_DOUBLED_0");
    assert_eq!(entry["topic"], "events");
    assert_eq!(entry["partition"], 0);
    assert_eq!(entry["offset"], 1);
    assert_eq!(
        entry["reason"],
        "Failed to deserialize value from topic: events. Unrecognized token at offset 0"
    );
}

#[test]
fn catalog_and_state_survive_a_restart() {
    const INPUT: &str = "INSERT INTO s (id, v) VALUES (1, 2);
         INSERT INTO s (id, v) VALUES (2, 4);
         INSERT INTO s (id, v) VALUES (1, 3);";
    let dir = tempfile::tempdir().unwrap();
    {
        let mut e = open(dir.path());
        e.execute(
            "CREATE STREAM s (id INT KEY, v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
             CREATE TABLE t AS SELECT id, SUM(v) AS total FROM s GROUP BY id;",
        )
        .unwrap();
        e.execute(INPUT).unwrap();
        e.run_until_idle().unwrap();
        assert_eq!(
            print(&mut e, "T"),
            vec![
                ("1".to_string(), r#"{"TOTAL":2}"#.to_string()),
                ("2".to_string(), r#"{"TOTAL":4}"#.to_string()),
                ("1".to_string(), r#"{"TOTAL":5}"#.to_string()),
            ]
        );
    }
    let mut e = open(dir.path());
    // The catalog: the table and the query writing it.
    assert_eq!(
        rows(e.execute("SHOW TABLES;").unwrap().remove(0))[0][0],
        "T"
    );
    let queries = rows(e.execute("SHOW QUERIES;").unwrap().remove(0));
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0][0], "CTAS_T_0");
    // In-process topics live in memory: the input log is written again,
    // the same three records at the same offsets, as a Kafka topic would
    // still hold them. The query already processed them (its offsets are
    // in the state), so they are not counted twice.
    e.execute(INPUT).unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(print(&mut e, "T"), vec![]);
    // The state: each key's sum goes on from where it was (1: 5, 2: 4).
    // A lost state would give 10 and 1; input read again, 2, 4 and 5 again.
    e.execute(
        "INSERT INTO s (id, v) VALUES (1, 10);
         INSERT INTO s (id, v) VALUES (2, 1);",
    )
    .unwrap();
    e.run_until_idle().unwrap();
    assert_eq!(
        print(&mut e, "T"),
        vec![
            ("1".to_string(), r#"{"TOTAL":15}"#.to_string()),
            ("2".to_string(), r#"{"TOTAL":5}"#.to_string()),
        ]
    );
}

/// EXPLAIN of every persistent query in a case-study file, in order, with
/// each statement executed after it is explained (so later statements see
/// earlier results). Statements that cannot plan yet show their error.
fn explain_file(name: &str) -> String {
    let path = format!("{}/queries/{name}", env!("CARGO_MANIFEST_DIR"));
    let sql = std::fs::read_to_string(&path).expect("query file");
    let (mut e, _d) = engine();
    let mut out = String::new();
    for stmt in sluice::split_statements(&sql).expect("file parses") {
        let words: Vec<String> = stmt.split_whitespace().map(|w| w.to_uppercase()).collect();
        let persistent = words.windows(2).any(|w| w[0] == "AS" && w[1] == "SELECT")
            || (words.first().is_some_and(|w| w == "INSERT")
                && words.iter().any(|w| w == "SELECT"));
        let first_line = stmt.lines().next().unwrap_or_default().to_string();
        out.push_str(&format!("-- {first_line}\n"));
        if persistent {
            match e.execute(&format!("EXPLAIN {stmt}")) {
                Ok(mut r) => {
                    for row in rows(r.remove(0)) {
                        out.push_str(&row.join(" | "));
                        out.push('\n');
                    }
                }
                Err(err) => out.push_str(&format!("ERROR: {err}\n")),
            }
        }
        if let Err(err) = e.execute(&stmt) {
            if !persistent {
                out.push_str(&format!("ERROR: {err}\n"));
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn explain_movieflix() {
    insta::assert_snapshot!(explain_file("movieflix.sql"));
}

#[test]
fn explain_gettaxi() {
    insta::assert_snapshot!(explain_file("gettaxi.sql"));
}

#[test]
fn explain_social() {
    insta::assert_snapshot!(explain_file("social.sql"));
}

#[test]
fn explain_mybank() {
    insta::assert_snapshot!(explain_file("mybank.sql"));
}

#[test]
fn explain_logs() {
    insta::assert_snapshot!(explain_file("logs.sql"));
}

#[test]
fn a_query_that_fails_at_runtime_stops_alone() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM s (id INT KEY, d DECIMAL(2, 1), v INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);
         CREATE TABLE sums AS SELECT id, SUM(d) AS total FROM s GROUP BY id;
         CREATE STREAM copy AS SELECT id, v FROM s;",
    )
    .unwrap();
    for v in 1..=3 {
        e.execute(&format!("INSERT INTO s (id, d, v) VALUES (1, 9.9, {v});"))
            .unwrap();
    }
    e.run_until_idle().unwrap();
    // 9.9 + 9.9 overflows DECIMAL(2, 1): that query fails, the other goes on.
    let failed = e.failed_queries();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "CTAS_SUMS_0");
    assert!(failed[0].1.contains("overflow"), "{}", failed[0].1);
    let copies: Vec<String> = print(&mut e, "COPY").into_iter().map(|r| r.1).collect();
    assert_eq!(copies, vec![r#"{"V":1}"#, r#"{"V":2}"#, r#"{"V":3}"#]);
    let queries = rows(e.execute("SHOW QUERIES;").unwrap().remove(0));
    let status: Vec<(&str, bool)> = queries
        .iter()
        .map(|q| (q[0].as_str(), q[1].starts_with("ERROR")))
        .collect();
    assert_eq!(status, vec![("CSAS_COPY_1", false), ("CTAS_SUMS_0", true)]);
}

#[test]
fn lambdas_transform_and_filter_arrays() {
    let (mut e, _d) = engine();
    e.execute(
        "CREATE STREAM s (id INT KEY, xs ARRAY<INT>) WITH (kafka_topic='s', value_format='JSON', partitions=1);
         CREATE STREAM o AS SELECT id, TRANSFORM(xs, x => x * 10) AS tens, FILTER(xs, x => x > 1) AS big FROM s;
         INSERT INTO s (id, xs) VALUES (1, ARRAY[1, 2, 3]);",
    )
    .unwrap();
    let out: Vec<String> = print(&mut e, "O").into_iter().map(|r| r.1).collect();
    assert_eq!(out, vec![r#"{"TENS":[10,20,30],"BIG":[2,3]}"#.to_string()]);
}

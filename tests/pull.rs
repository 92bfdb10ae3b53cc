//! Pull queries over the wire (`sluice server`, tokio-postgres): every table
//! answers them, source tables from the view their materialization keeps.

use tokio_postgres::{Client, SimpleQueryMessage};

mod common;
use common::pg::{connect, query_until, PLANNED, SERVED, SERVING_LOG};
use common::Server;

/// The rows of a query in the simple protocol, as text.
async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn row(cells: &[&str]) -> Vec<Option<String>> {
    cells.iter().map(|c| Some(c.to_string())).collect()
}

/// A topic with updates and a tombstone (a HAVING that stops holding
/// deletes its key), read three ways: the view of the table that writes it
/// (the reference), a source table over it (materialized: its own view, so
/// lookups take the serving path), and a plain table over it (its topic read
/// at each pull query). All three answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_answers_pull_queries_alike() {
    let server = Server::start_with_env("", |_| {}, &[SERVING_LOG]);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM moves (id STRING KEY, v INT) \
               WITH (kafka_topic='moves', value_format='JSON', partitions=1); \
             CREATE TABLE totals AS SELECT id, SUM(v) AS total FROM moves GROUP BY id \
               HAVING SUM(v) > 0; \
             CREATE SOURCE TABLE src_totals (id STRING PRIMARY KEY, total INT) \
               WITH (kafka_topic='TOTALS', value_format='JSON'); \
             CREATE TABLE plain_totals (id STRING PRIMARY KEY, total INT) \
               WITH (kafka_topic='TOTALS', value_format='JSON'); \
             INSERT INTO moves (id, v) VALUES ('a', 2); \
             INSERT INTO moves (id, v) VALUES ('b', 4); \
             INSERT INTO moves (id, v) VALUES ('c', 1); \
             INSERT INTO moves (id, v) VALUES ('a', 3); \
             INSERT INTO moves (id, v) VALUES ('b', -4); \
             INSERT INTO moves (id, v) VALUES ('d', 6);",
        )
        .await
        .unwrap();
    let lookup = client
        .prepare("SELECT id, total FROM src_totals WHERE id = $1")
        .await
        .unwrap();
    let several = client
        .prepare("SELECT id, total FROM src_totals WHERE id IN ($1, $2, $3, $4)")
        .await
        .unwrap();
    // One partition: the materialization has read all of the topic once
    // `d`, written last, is there (with two, `b`'s delete could still be on
    // its way while `d` is read). Several keys: in the list's order, each
    // once, the deleted left out, as the planned way reads them.
    let keys: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&"d", &"b", &"a", &"d"];
    let pairs = |rows: &[tokio_postgres::Row]| -> Vec<(String, i32)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let want = [("d".to_string(), 6), ("a".to_string(), 5)];
    let rows = query_until(&client, &several, &keys, |rows| pairs(rows) == want).await;
    assert_eq!(pairs(&rows), want);
    let served = server.log().matches(SERVED).count();
    assert!(served >= 1, "{}", server.log());
    for (key, want) in [("a", Some(5)), ("b", None), ("c", Some(1))] {
        let rows = client.query(&lookup, &[&key]).await.unwrap();
        let got: Option<i32> = rows.first().map(|r| r.get(1));
        assert_eq!(got, want, "key {key}");
    }
    assert_eq!(server.log().matches(SERVED).count(), served + 3);
    let planned = "SELECT id, total FROM src_totals WHERE id IN ('d', 'b', 'a', 'd')";
    assert_eq!(
        text_rows(&client, planned).await,
        [row(&["d", "6"]), row(&["a", "5"])]
    );
    let want = vec![row(&["a", "5"]), row(&["c", "1"]), row(&["d", "6"])];
    for table in ["totals", "src_totals", "plain_totals"] {
        let sql = format!("SELECT id, total FROM {table} ORDER BY id");
        assert_eq!(text_rows(&client, &sql).await, want, "{table}");
        let sql = format!("SELECT total FROM {table} WHERE id = 'c'");
        assert_eq!(text_rows(&client, &sql).await, [row(&["1"])], "{table}");
    }
    // The source table's query is listed, and goes with the table.
    let queries = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
        rows.into_iter().filter_map(|r| r[0].clone()).collect()
    };
    let listed = queries(text_rows(&client, "SHOW QUERIES").await);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|q| q.starts_with("CTAS_TOTALS_")));
    assert!(listed.iter().any(|q| q.starts_with("CST_SRC_TOTALS_")));
    client.batch_execute("DROP TABLE src_totals").await.unwrap();
    let listed = queries(text_rows(&client, "SHOW QUERIES").await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].starts_with("CTAS_TOTALS_"), "{listed:?}");
}

/// A prepared pull query that is not a key lookup is planned once: each
/// execution binds its values into the plan (exact rows for each), until a
/// statement changes the catalog; then it is planned again, with the same
/// answers. A value that does not bind as it is (NULL) takes the way of
/// pasted literals, with its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_pull_query_is_planned_once_and_run_with_its_values() {
    let server = Server::start_with_env("", |_| {}, &[SERVING_LOG]);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM sales (id STRING KEY, region STRING, amount DOUBLE) \
               WITH (kafka_topic='sales', value_format='JSON', partitions=1); \
             CREATE TABLE by_region AS SELECT region, COUNT(*) AS n, SUM(amount) AS total \
               FROM sales GROUP BY region; \
             INSERT INTO sales (id, region, amount) VALUES ('1', 'north', 10.5); \
             INSERT INTO sales (id, region, amount) VALUES ('2', 'south', 3.0); \
             INSERT INTO sales (id, region, amount) VALUES ('3', 'north', 1.5); \
             INSERT INTO sales (id, region, amount) VALUES ('4', 'east', 7.25);",
        )
        .await
        .unwrap();
    let above = client
        .prepare("SELECT region, n FROM by_region WHERE total > $1 AND n >= $2 ORDER BY region")
        .await
        .unwrap();
    type Regions = Vec<(String, i64)>;
    let rows = |rows: Vec<tokio_postgres::Row>| -> Regions {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let all = query_until(&client, &above, &[&0.0f64, &1i64], |r| r.len() == 3).await;
    assert_eq!(
        rows(all),
        [("east".into(), 1), ("north".into(), 2), ("south".into(), 1)]
    );
    let planned = server.log().matches(PLANNED).count();
    assert!(planned >= 1, "{}", server.log());
    let cases: [(f64, i64, Regions); 3] = [
        (5.0, 1, vec![("east".into(), 1), ("north".into(), 2)]),
        (5.0, 2, vec![("north".into(), 2)]),
        (100.0, 1, vec![]),
    ];
    for (total, n, want) in &cases {
        let got = rows(client.query(&above, &[total, n]).await.unwrap());
        assert_eq!(&got, want, "total > {total} AND n >= {n}");
    }
    assert_eq!(server.log().matches(PLANNED).count(), planned + 3);
    // NULL does not bind: pasted as a literal, it is refused as ksqlDB
    // refuses it.
    let none: Option<f64> = None;
    let e = client.query(&above, &[&none, &1i64]).await.unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(
        (db.code().code(), db.message()),
        (
            "42000",
            "Comparison with NULL not supported: \"TOTAL\" > NULL"
        )
    );
    assert_eq!(server.log().matches(PLANNED).count(), planned + 3);
    // A statement that changes the catalog: planned again, same answers.
    client
        .batch_execute(
            "CREATE STREAM other (id STRING KEY, v INT) \
               WITH (kafka_topic='other', value_format='JSON', partitions=1);",
        )
        .await
        .unwrap();
    for (total, n, want) in &cases {
        let got = rows(client.query(&above, &[total, n]).await.unwrap());
        assert_eq!(&got, want, "total > {total} AND n >= {n}, after DDL");
    }
    assert_eq!(server.log().matches(PLANNED).count(), planned + 3);
}

/// A windowed table's lookups by key and window start take the serving
/// path: each answers the key's windows in the range, in window order, as
/// the planned way (the same query with its values written in) does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_lookup_reads_the_keys_windows_in_range() {
    use tokio_postgres::types::Type;
    let server = Server::start_with_env("", |_| {}, &[SERVING_LOG]);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM clicks (id STRING KEY, ts BIGINT) \
               WITH (kafka_topic='clicks', value_format='JSON', partitions=1, timestamp='ts'); \
             CREATE TABLE per_minute AS SELECT id, COUNT(*) AS n FROM clicks \
               WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY id; \
             INSERT INTO clicks (id, ts) VALUES ('a', 0); \
             INSERT INTO clicks (id, ts) VALUES ('a', 10000); \
             INSERT INTO clicks (id, ts) VALUES ('a', 60000); \
             INSERT INTO clicks (id, ts) VALUES ('a', 130000); \
             INSERT INTO clicks (id, ts) VALUES ('a', 130500); \
             INSERT INTO clicks (id, ts) VALUES ('b', 60000);",
        )
        .await
        .unwrap();
    let all = client
        .prepare_typed(
            "SELECT id, WINDOWSTART, n FROM per_minute WHERE id = $1",
            &[Type::VARCHAR],
        )
        .await
        .unwrap();
    let rows = query_until(&client, &all, &[&"b"], |rows| !rows.is_empty()).await;
    let windows = |rows: &[tokio_postgres::Row]| -> Vec<(String, i64, i64)> {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    assert_eq!(windows(&rows), [("b".to_string(), 60000, 1)]);
    let served = server.log().matches(SERVED).count();
    assert!(served >= 1, "{}", server.log());
    let a = |start: i64, n: i64| ("a".to_string(), start, n);
    let rows = client.query(&all, &[&"a"]).await.unwrap();
    assert_eq!(windows(&rows), [a(0, 2), a(60000, 1), a(120000, 2)]);

    let range = client
        .prepare_typed(
            "SELECT id, WINDOWSTART, n FROM per_minute \
               WHERE id = $1 AND WINDOWSTART >= $2 AND WINDOWSTART < $3",
            &[Type::VARCHAR, Type::INT8, Type::INT8],
        )
        .await
        .unwrap();
    for (from, to, want) in [
        (0i64, 120000i64, vec![a(0, 2), a(60000, 1)]),
        (1, i64::MAX, vec![a(60000, 1), a(120000, 2)]),
        (60000, 60001, vec![a(60000, 1)]),
        (60000, 60000, vec![]),
        (500000, 0, vec![]),
    ] {
        let rows = client.query(&range, &[&"a", &from, &to]).await.unwrap();
        assert_eq!(windows(&rows), want, "[{from}, {to})");
        let planned = format!(
            "SELECT id, WINDOWSTART, n FROM per_minute \
               WHERE id = 'a' AND WINDOWSTART >= {from} AND WINDOWSTART < {to}"
        );
        let want: Vec<Vec<Option<String>>> = want
            .iter()
            .map(|(id, start, n)| row(&[id, &start.to_string(), &n.to_string()]))
            .collect();
        assert_eq!(text_rows(&client, &planned).await, want, "{planned}");
    }
    let at = client
        .prepare_typed(
            "SELECT id, WINDOWSTART, n FROM per_minute WHERE WINDOWSTART = $2 AND id = $1",
            &[Type::VARCHAR, Type::INT8],
        )
        .await
        .unwrap();
    let rows = client.query(&at, &[&"a", &120000i64]).await.unwrap();
    assert_eq!(windows(&rows), [a(120000, 2)]);
    let rows = client.query(&at, &[&"c", &0i64]).await.unwrap();
    assert_eq!(windows(&rows), []);
    assert_eq!(server.log().matches(SERVED).count(), served + 8);
}

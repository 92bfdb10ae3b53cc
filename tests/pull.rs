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
               WITH (kafka_topic='moves', value_format='JSON', partitions=2); \
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
    // The materialization has read the topic once `d` is there.
    let rows = query_until(&client, &lookup, &[&"d"], |rows| !rows.is_empty()).await;
    let got: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("d".to_string(), 6)]);
    let served = server.log().matches(SERVED).count();
    assert!(served >= 1, "{}", server.log());
    for (key, want) in [("a", Some(5)), ("b", None), ("c", Some(1))] {
        let rows = client.query(&lookup, &[&key]).await.unwrap();
        let got: Option<i32> = rows.first().map(|r| r.get(1));
        assert_eq!(got, want, "key {key}");
    }
    assert_eq!(server.log().matches(SERVED).count(), served + 3);
    // Several keys: in the list's order, each once, the deleted left out,
    // as the planned way reads them.
    let several = client
        .prepare("SELECT id, total FROM src_totals WHERE id IN ($1, $2, $3, $4)")
        .await
        .unwrap();
    let rows = client
        .query(&several, &[&"d", &"b", &"a", &"d"])
        .await
        .unwrap();
    let got: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [("d".to_string(), 6), ("a".to_string(), 5)]);
    assert_eq!(server.log().matches(SERVED).count(), served + 4);
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

//! Pull queries over the wire (`sluice server`, tokio-postgres): every table
//! answers them, source tables from the view their materialization keeps.

use tokio_postgres::{Client, SimpleQueryMessage};

mod common;
use common::pg::{connect, query_until, SERVED, SERVING_LOG};
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

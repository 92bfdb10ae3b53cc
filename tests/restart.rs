//! `sluice server` restarted on the same data directory with the embedded
//! broker (issue 19): the catalog comes back over new, empty topics, the
//! queries start over from empty state, and the server says what was lost.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

mod common;
use common::pg::connect;
use common::Server;

/// Every row of a statement's answer, as text.
async fn rows(client: &Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The first column of each row, sorted.
async fn names(client: &Client, sql: &str) -> Vec<String> {
    let mut names: Vec<String> = rows(client, sql)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    names.sort();
    names
}

/// A pull query's rows once they are `expected` (the server processes
/// input in the background); the last rows otherwise.
async fn rows_until(client: &Client, sql: &str, expected: &[Vec<String>]) -> Vec<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = rows(client, sql).await;
        if got == expected || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

const WARNING: &str = "the embedded Kafka broker keeps nothing across restarts";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_embedded_broker_keeps_the_catalog_and_says_what_was_lost() {
    let mut server = Server::start();
    assert!(
        server.embedded_kafka.is_some(),
        "no --kafka: the embedded broker"
    );
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM clicks (user_id INT KEY, page STRING) \
               WITH (kafka_topic='clicks', value_format='JSON', partitions=2);
             CREATE STREAM raw_clicks (user_id INT KEY, page STRING) \
               WITH (kafka_topic='clicks', value_format='JSON');
             CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id;
             CREATE STREAM home AS SELECT user_id, page FROM raw_clicks WHERE page = 'home';
             INSERT INTO clicks (user_id, page) VALUES (1, 'home');
             INSERT INTO clicks (user_id, page) VALUES (1, 'cart');
             INSERT INTO clicks (user_id, page) VALUES (2, 'home');",
        )
        .await
        .unwrap();
    let pull = "SELECT user_id, n FROM per_user ORDER BY user_id;";
    assert_eq!(
        rows_until(&client, pull, &[row(&["1", "2"]), row(&["2", "1"])]).await,
        [row(&["1", "2"]), row(&["2", "1"])]
    );
    drop(client);
    assert!(
        !server.log().contains(WARNING),
        "a first start has nothing to say:\n{}",
        server.log()
    );

    server.restart();
    let client = connect(&server).await;
    assert_eq!(
        names(&client, "SHOW STREAMS;").await,
        ["CLICKS", "HOME", "RAW_CLICKS"]
    );
    assert_eq!(names(&client, "SHOW TABLES;").await, ["PER_USER"]);
    assert_eq!(
        names(&client, "SHOW QUERIES;").await,
        ["CSAS_HOME_1", "CTAS_PER_USER_0"]
    );
    // The records went with the broker; the query started over.
    assert_eq!(rows(&client, pull).await, Vec::<Vec<String>>::new());
    client
        .batch_execute("INSERT INTO clicks (user_id, page) VALUES (1, 'home');")
        .await
        .unwrap();
    assert_eq!(
        rows_until(&client, pull, &[row(&["1", "1"])]).await,
        [row(&["1", "1"])]
    );

    let log = server.log();
    assert_eq!(log.matches(WARNING).count(), 1, "one warning:\n{log}");
    assert!(
        log.contains(
            "restored 3 streams, 1 table, 2 persistent queries from "
        ) && log.contains(
            "over new, empty topics; lost: every record of their topics and each query's state (aggregates, tables' rows, offsets): \
             the queries start over from empty state (run with --kafka to keep them)"
        ),
        "the warning says what was kept and lost:\n{log}"
    );
    assert!(
        log.contains(&format!(" WARN sluice::server: {WARNING}")),
        "at WARN level:\n{log}"
    );
    assert!(
        !log.contains("could not restore statement"),
        "every statement restored:\n{log}"
    );
}

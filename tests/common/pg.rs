//! Postgres clients of a test server: tokio-postgres connections, and what
//! a server logs for each key lookup it serves from a view.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, Row};

use super::Server;

/// The log lines a server with `SERVING_LOG` writes for each key lookup
/// served from its view, without the engine.
pub const SERVED: &str = "key lookup served from its view";
/// The log line for each execution of a prepared pull query that ran the
/// plan made at Parse, its values bound.
pub const PLANNED: &str = "pull query run from its plan";
pub const SERVING_LOG: (&str, &str) = ("SLUICE_LOG", "sluice::server::pg::extended=trace");

pub async fn connect(server: &Server) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=sluice dbname=sluice",
            server.port
        ),
        NoTls,
    )
    .await
    .expect("connect with tokio-postgres");
    tokio::spawn(connection);
    client
}

/// Run a query until its rows are `done` (the server processes input in
/// the background); the last rows otherwise.
pub async fn query_until(
    client: &Client,
    statement: &tokio_postgres::Statement,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    done: impl Fn(&[Row]) -> bool,
) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = client.query(statement, params).await.expect("query");
        if done(&rows) || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

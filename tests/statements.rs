//! Hostile statements over the wire (issue 16): each fails alone, with its
//! SQLSTATE and a message that says what was wrong, and the server answers
//! the next statement as before. Plus `scripts/kafka.sh`'s cluster ids.

use std::process::Command;

mod common;
use common::Server;

async fn connect(server: &Server) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=sluice", server.port),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    client
}

/// A statement's error: its SQLSTATE and message.
async fn failure(client: &tokio_postgres::Client, sql: &str) -> (String, String) {
    let e = client
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} must fail"));
    let db = e.as_db_error().expect("an error from the server");
    (db.code().code().to_string(), db.message().to_string())
}

/// A query's rows, each as its cells joined by a space.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect()
}

const PV: &str = "CREATE STREAM pv (user_id STRING KEY, page STRING, n INT)
   WITH (KAFKA_TOPIC='pv', VALUE_FORMAT='JSON', PARTITIONS=1);
 INSERT INTO pv (user_id, page, n) VALUES ('alice', 'ab', 1);
 INSERT INTO pv (user_id, page, n) VALUES ('bob', 'ab', 2);
 INSERT INTO pv (user_id, page, n) VALUES ('carol', 'ab', 3);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_a_limit_fails_alone_with_53200() {
    let server = Server::start_with_config("[limits]\npull_query_memory = 200000\n");
    let client = connect(&server).await;
    client.batch_execute(PV).await.expect("statements");
    assert_eq!(
        rows(&client, "SELECT user_id, n FROM pv ORDER BY n").await,
        vec!["alice 1", "bob 2", "carol 3"]
    );
    // 2 GB per row are never allocated.
    let (code, message) = failure(&client, "SELECT REPEAT('a', 2000000000) FROM pv").await;
    assert_eq!(code, "53200");
    assert_eq!(
        message,
        "Resources exhausted: REPEAT would build a value of 2000000000 bytes, over the limit of 67108864 bytes per value (limits.value_bytes in the server configuration)"
    );
    // Each value fits, the result does not: 3 x 200,000 bytes over a pull
    // query's 200,000.
    let (code, message) = failure(&client, "SELECT REPEAT(page, 100000) AS r FROM pv").await;
    assert_eq!(code, "53200");
    assert_eq!(
        message,
        "The pull query's result passed 200000 bytes (limits.pull_query_memory in the server configuration): select fewer rows or columns"
    );
    // A sort holding them runs out of the query's own memory pool (no
    // spilling to disk).
    let (code, message) = failure(
        &client,
        "SELECT REPEAT(page, 100000) AS r FROM pv ORDER BY n DESC",
    )
    .await;
    assert_eq!(code, "53200", "{message}");
    assert!(
        message.contains("Resources exhausted: Failed to allocate additional")
            && message.contains("for ExternalSorter[0]")
            && message.contains("pool_size: 195.3 KB"),
        "{message}"
    );
    // The server, and this session, answer on.
    assert_eq!(
        rows(
            &client,
            "SELECT user_id, LEN(REPEAT(page, 10)) FROM pv ORDER BY n"
        )
        .await,
        vec!["alice 20", "bob 20", "carol 20"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_numbers_casts_loops_and_trailing_words_are_errors_not_silence() {
    let server = Server::start();
    let client = connect(&server).await;
    client.batch_execute(PV).await.expect("statements");
    assert_eq!(
        failure(
            &client,
            "INSERT INTO pv (user_id, page, n) VALUES ('dave', 'x', 2147483648)"
        )
        .await,
        (
            "22003".to_string(),
            "Value 2147483648 is out of range for column N of type INTEGER".to_string()
        )
    );
    assert_eq!(
        failure(&client, "SELECT CAST(n AS DECIMAL(257, 0)) FROM pv").await,
        (
            "42601".to_string(),
            "Invalid DECIMAL(257, 0): precision must be 1 to 38 and scale 0 to precision"
                .to_string()
        )
    );
    assert_eq!(
        failure(&client, "INSERT INTO pv SELECT * FROM pv").await,
        (
            "42000".to_string(),
            "Cannot insert into PV from a query that reads PV: every record it writes would be read again, without end".to_string()
        )
    );
    assert_eq!(
        failure(
            &client,
            "CREATE STREAM pv2 WITH (KAFKA_TOPIC='pv') AS SELECT * FROM pv"
        )
        .await,
        (
            "42000".to_string(),
            "Cannot create PV2 from a query that reads PV, on the same topic 'pv': every record it writes would be read again, without end".to_string()
        )
    );
    assert_eq!(
        failure(&client, "END DROP STREAM pv DELETE TOPIC").await,
        (
            "42601".to_string(),
            "syntax error at or near \"DROP\": END takes no more than WORK or TRANSACTION and AND [NO] CHAIN".to_string()
        )
    );
    // Nothing was inserted, started or dropped.
    assert_eq!(
        rows(&client, "SELECT user_id, n FROM pv ORDER BY n").await,
        vec!["alice 1", "bob 2", "carol 3"]
    );
    assert!(rows(&client, "SHOW QUERIES").await.is_empty());
    // Sinks stay under the analytics root; S3 is not reached for a bucket a
    // user names.
    let root = server.dir().join("data/analytics");
    let escape = server.dir().join("outside");
    let outside = |l: &str| {
        format!("LOCATION '{l}' is outside the locations sinks may write: a relative directory (under the analytics root), or a location under {} (the server's analytics and analytics_allow settings)", root.display())
    };
    let absolute = escape.display().to_string();
    let url = format!("file://{absolute}");
    for (location, message) in [
        (
            "../../outside".to_string(),
            "LOCATION '../../outside' has a '..' segment: a sink's directory never climbs out of its root".to_string(),
        ),
        (absolute.clone(), outside(&absolute)),
        (url.clone(), outside(&url)),
        ("s3://any-bucket/x".to_string(), outside("s3://any-bucket/x")),
    ] {
        let (code, got) = failure(
            &client,
            &format!(
                "CREATE SINK escape FROM pv WITH (CONNECTOR='parquet', LOCATION='{location}')"
            ),
        )
        .await;
        assert_eq!((code.as_str(), got.as_str()), ("42000", message.as_str()));
    }
    assert!(!escape.exists());
    assert!(rows(&client, "SHOW SINKS").await.is_empty());
}

#[test]
fn kafka_cluster_ids_never_start_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let id = |bytes: &[u8]| {
        let file = dir.path().join("random");
        std::fs::write(&file, bytes).unwrap();
        let out = Command::new("bash")
            .arg(script)
            .arg("cluster-id")
            .arg(&file)
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // 0xF8..0xFB first: base64url's first character would be '-', which
    // StorageTool's -t took for an option (1 start in 64 failed).
    let mut bytes = [0u8; 16];
    bytes[0] = 0xFB;
    bytes[1] = 0xFF;
    assert_eq!(id(&bytes), "A_8AAAAAAAAAAAAAAAAAAA");
    bytes[0] = 0x07;
    assert_eq!(id(&bytes), "B_8AAAAAAAAAAAAAAAAAAA");
    // Random ones: 22 URL-safe characters, never a leading '-'.
    for _ in 0..64 {
        let out = Command::new("bash")
            .arg(script)
            .arg("cluster-id")
            .output()
            .expect("run scripts/kafka.sh");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(id.len(), 22, "{id}");
        assert!(!id.starts_with('-'), "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id}"
        );
    }
}

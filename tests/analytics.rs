//! The analytics sink: `sluice server` lands a stream in Parquet files, in a
//! local directory (read back by DuckDB and pandas) and in an S3-compatible
//! bucket (moto's S3 server; read back by pyarrow), and a pull query reads
//! them through the same object store. The Python tools come from
//! `scripts/setup.sh`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::Server;

/// The virtualenv `scripts/setup.sh` fills.
fn python() -> String {
    let home = std::env::var("HOME").expect("HOME");
    format!("{home}/.cache/sluice-venv/bin/python")
}

/// moto's S3 server on a free port; killed when dropped.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    fn start() -> S3 {
        let port = common::free_port();
        let child = Command::new(python())
            .args(["-m", "moto.server", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto's S3 server (scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto's S3 server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Run Python with boto3 / pyarrow set up against this server
    /// (`s3`: a boto3 client, `fs`: a pyarrow S3 file system).
    fn python(&self, code: &str) -> String {
        let prelude = format!(
            "import boto3, pyarrow.fs, pyarrow.parquet as pq\n\
             s3 = boto3.client('s3', endpoint_url='{e}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n\
             fs = pyarrow.fs.S3FileSystem(endpoint_override='{e}', access_key='test', secret_key='test', region='us-east-1', scheme='http')\n",
            e = self.endpoint
        );
        run_python(&format!("{prelude}{code}"))
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Statements creating a stream, its sink, and three records over two hours.
const STATEMENTS: &str = "CREATE STREAM clicks (user_id STRING KEY, page STRING, ts BIGINT)
   WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON', PARTITIONS=2, TIMESTAMP='ts');
 CREATE SINK archive FROM clicks WITH (CONNECTOR='parquet', LOCATION='clicks');
 INSERT INTO clicks (user_id, page, ts) VALUES ('alice', '/home', 1795345199000);
 INSERT INTO clicks (user_id, page, ts) VALUES ('bob', '/cart', 1795345199500);
 INSERT INTO clicks (user_id, page, ts) VALUES ('alice', '/pay', 1795345200000);";

/// What every reader finds: user, page, ROWTIME, dt, hour.
const EXPECTED: [&str; 3] = [
    "alice /home 1795345199000 2026-11-22 10",
    "bob /cart 1795345199500 2026-11-22 10",
    "alice /pay 1795345200000 2026-11-22 11",
];

/// Run the statements, then wait until a pull query over the sink's files
/// finds the three records.
async fn sink_three_records(server: &Server) {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=sluice", server.port),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    client.batch_execute(STATEMENTS).await.expect("statements");
    let sql = "SELECT user_id, page, ROWTIME, dt, hour FROM archive ORDER BY ROWTIME";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<String> = client
            .simple_query(sql)
            .await
            .expect("a pull query over the sink's files")
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
            .collect();
        if rows == EXPECTED {
            return;
        }
        assert!(Instant::now() < deadline, "the sink's files hold {rows:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Python from the virtualenv, with its output.
fn run_python(code: &str) -> String {
    let out = Command::new(python())
        .args(["-c", code])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lands_in_local_parquet_files_that_duckdb_and_pandas_read() {
    let server = Server::start_with_config(
        "analytics = \"{dir}/lake\"\n[properties]\n\"sink.roll.ms\" = \"300\"\n",
    );
    sink_three_records(&server).await;
    let dir = server.dir().join("lake/clicks");
    let dir = dir.display();
    let duckdb = run_python(&format!(
        "import duckdb\n\
         for r in duckdb.sql(\"SELECT USER_ID, PAGE, ROWTIME, dt, hour FROM read_parquet('{dir}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false) ORDER BY ROWTIME\").fetchall(): print(*r)"
    ));
    assert_eq!(duckdb.lines().collect::<Vec<_>>(), EXPECTED);
    let pandas = run_python(&format!(
        "import pandas\n\
         df = pandas.read_parquet('{dir}').sort_values('ROWTIME')\n\
         for r in df.itertuples(): print(r.USER_ID, r.PAGE, r.ROWTIME, r.dt, r.hour)"
    ));
    assert_eq!(pandas.lines().collect::<Vec<_>>(), EXPECTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lands_in_parquet_files_in_an_s3_bucket_that_pull_queries_and_pyarrow_read() {
    let s3 = S3::start();
    s3.python("s3.create_bucket(Bucket='lake')");
    let server = Server::start_with_env(
        "analytics = \"s3://lake/sluice\"\n[properties]\n\"sink.roll.ms\" = \"300\"\n",
        |_| {},
        &[
            ("AWS_ENDPOINT", s3.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    sink_three_records(&server).await;
    // The objects, as any S3 client lists them: the sink's mark, one file
    // per hour.
    let keys = s3.python(
        "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='lake')['Contents']))",
    );
    assert_eq!(
        keys.lines().collect::<Vec<_>>(),
        vec![
            "sluice/clicks/.sluice-sink",
            "sluice/clicks/dt=2026-11-22/hour=10/ARCHIVE-0000000000.parquet",
            "sluice/clicks/dt=2026-11-22/hour=11/ARCHIVE-0000000000.parquet",
        ]
    );
    // pyarrow reads the directory as a dataset, with dt and hour as
    // partitions.
    let rows = s3.python(
        "t = pq.read_table('lake/sluice/clicks', filesystem=fs, partitioning='hive').sort_by('ROWTIME')\n\
         for r in t.to_pylist(): print(r['USER_ID'], r['PAGE'], r['ROWTIME'], r['dt'], r['hour'])",
    );
    assert_eq!(rows.lines().collect::<Vec<_>>(), EXPECTED);
}

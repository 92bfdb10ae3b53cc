//! Pull queries under load: several connections doing point lookups by key
//! over the Postgres protocol, on a table of a million keys, against
//! Sluice (a table `CREATE TABLE ... AS SELECT` keeps in RocksDB, read by
//! key) and against PostgreSQL (the same rows in a table with a primary
//! key). One client for both. Not a source table: Sluice answers a pull
//! query on one by reading its topic, which no key lookup should pay.
//! Sluice is measured three times: idle; while 20,000 events/s flow into
//! another of its queries (a `GROUP BY` count), which must keep up; and
//! while another session scans the whole table over and over (`SELECT
//! COUNT(*), SUM(balance) FROM accounts`), which must not hold up the
//! lookups.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde::{Deserialize, Serialize};

use crate::data::{account_id, Rng};
use crate::kafka::Broker;
use crate::latency::connect;
use crate::procs::{free_port, Proc};
use crate::{Fallible, Setup};

const TOPIC: &str = "bench_accounts";

/// The other queries' input while the loaded runs look up keys, and its
/// rate (events/s).
const BUSY: &str = "bench_pull_busy";
const BUSY_RATE: u64 = 20_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Server {
    pub name: String,
    pub version: String,
    /// Lookups per second, per run.
    pub qps: Vec<f64>,
    /// Latency percentiles (ms) per run: p50, p99.
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
    /// Under load: per run, how long after its input stopped the other
    /// queries had committed all of it (s).
    #[serde(default)]
    pub caught_up_s: Vec<f64>,
    /// While another session scans the whole table: per run, how many
    /// scans it completed, and their median time (s).
    #[serde(default)]
    pub scans: Vec<u64>,
    #[serde(default)]
    pub scan_s: Vec<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pull {
    pub keys: u64,
    pub connections: usize,
    pub seconds: u64,
    pub servers: Vec<Server>,
}

/// `connections` clients looking up random keys for `secs`: (qps, every
/// latency in ms).
async fn load(
    port: u16,
    user: &str,
    sql: &str,
    setup: &Setup,
    proc: &mut Proc,
) -> Fallible<(f64, Vec<f64>)> {
    let mut tasks = vec![];
    let deadline = Instant::now() + Duration::from_secs(setup.pull_secs);
    for c in 0..setup.pull_connections {
        let client = connect(port, user, proc).await?;
        let (keys, sql) = (setup.pull_keys, sql.to_string());
        tasks.push(tokio::spawn(async move {
            let lookup = client.prepare(&sql).await.map_err(|e| e.to_string())?;
            let mut rng = Rng::new(100 + c as u64);
            let mut lat = vec![];
            while Instant::now() < deadline {
                let key = account_id(rng.below(keys));
                let t = Instant::now();
                let rows = client
                    .query(&lookup, &[&key])
                    .await
                    .map_err(|e| e.to_string())?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if rows.len() != 1 {
                    return Err(format!("{key}: {} rows, expected 1", rows.len()));
                }
            }
            Ok::<_, String>(lat)
        }));
    }
    let started = Instant::now();
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

/// The lookup load once, into `server`'s figures.
async fn one_run(
    server: &mut Server,
    port: u16,
    user: &str,
    setup: &Setup,
    proc: &mut Proc,
) -> Fallible<()> {
    let (qps, lat) = load(
        port,
        user,
        "SELECT id, owner, balance FROM accounts WHERE id = $1",
        setup,
        proc,
    )
    .await?;
    let (p50, p99) = (
        crate::report::percentile(&lat, 50.0),
        crate::report::percentile(&lat, 99.0),
    );
    eprintln!(
        "bench: pull {}: {qps:.0} lookups/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        server.name
    );
    server.qps.push(qps);
    server.p50_ms.push(p50);
    server.p99_ms.push(p99);
    Ok(())
}

pub fn measure(setup: &Setup, broker: &Broker, rt: &tokio::runtime::Runtime) -> Fallible<Pull> {
    let mut out = Pull {
        keys: setup.pull_keys,
        connections: setup.pull_connections,
        seconds: setup.pull_secs,
        servers: vec![],
    };
    let [idle, loaded, scanned] = <[Server; 3]>::try_from(sluice(setup, broker, rt)?)
        .map_err(|_| "three Sluice measurements expected")?;
    out.servers.push(idle);
    out.servers.push(postgres(setup, rt)?);
    out.servers.push(loaded);
    out.servers.push(scanned);
    Ok(out)
}

/// Sluice's figures: idle, then while other queries take input.
fn sluice(setup: &Setup, broker: &Broker, rt: &tokio::runtime::Runtime) -> Fallible<Vec<Server>> {
    broker.create_topic(TOPIC, 4, false)?;
    broker.create_topic(BUSY, 4, false)?;
    broker.produce(TOPIC, crate::data::accounts(setup.pull_keys))?;
    let port = free_port()?;
    let tag = format!("pull_{}", crate::procs::now_ms());
    let statements = format!(
        "CREATE STREAM account_updates (id VARCHAR KEY, owner VARCHAR, balance BIGINT) \
         WITH (kafka_topic='{TOPIC}', value_format='JSON', partitions=4);\n\
         CREATE TABLE accounts AS SELECT id, LATEST_BY_OFFSET(owner) AS owner, \
         LATEST_BY_OFFSET(balance) AS balance FROM account_updates GROUP BY id;\n\
         CREATE STREAM busy (k VARCHAR KEY, seq BIGINT, sent_us BIGINT) \
         WITH (kafka_topic='{BUSY}', value_format='JSON', partitions=4);\n\
         CREATE TABLE busy_counts AS SELECT k, COUNT(*) AS n FROM busy GROUP BY k;\n"
    );
    let mut proc = crate::throughput::sluice_server(setup, broker, &tag, &statements, Some(port))?;
    let version = setup.versions.get("sluice").cloned().unwrap_or_default();
    let mut server = Server {
        name: "Sluice".into(),
        version: version.clone(),
        ..Default::default()
    };
    let mut busy = Server {
        name: format!("Sluice, {}k events/s into another query", BUSY_RATE / 1000),
        version: version.clone(),
        ..Default::default()
    };
    let mut scanned = Server {
        name: "Sluice, another session scanning the table".into(),
        version,
        ..Default::default()
    };
    rt.block_on(async {
        // Materialized once the last hundred accounts (spread over every
        // partition) can be read.
        let client = connect(port, "sluice", &mut proc).await?;
        let lookup = client
            .prepare("SELECT balance FROM accounts WHERE id = $1")
            .await?;
        let t = Instant::now();
        for i in setup.pull_keys.saturating_sub(100)..setup.pull_keys {
            while client.query(&lookup, &[&account_id(i)]).await?.is_empty() {
                proc.check_alive()?;
                if t.elapsed() > setup.limit {
                    return Err(format!("{} accounts not loaded in time", setup.pull_keys).into());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        eprintln!(
            "bench: pull: Sluice holds {} accounts after {:.1} s",
            setup.pull_keys,
            t.elapsed().as_secs_f64()
        );
        for _ in 0..setup.runs {
            one_run(&mut server, port, "sluice", setup, &mut proc).await?;
        }
        loaded_runs(&mut busy, port, setup, broker, &tag, &mut proc).await?;
        scanned_runs(&mut scanned, port, setup, &mut proc).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    drop(proc);
    broker.delete_topics(&[TOPIC, BUSY])?;
    Ok(vec![server, busy, scanned])
}

/// The lookup load while another session scans the whole table again and
/// again, `setup.runs` times: the lookups' figures, and the scans done.
async fn scanned_runs(
    server: &mut Server,
    port: u16,
    setup: &Setup,
    proc: &mut Proc,
) -> Fallible<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    for _ in 0..setup.runs {
        let client = connect(port, "sluice", proc).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (keys, stopped) = (setup.pull_keys, stop.clone());
        let scanner = tokio::spawn(async move {
            let mut took = vec![];
            while !stopped.load(Ordering::Relaxed) {
                let t = Instant::now();
                let row = client
                    .query_one(
                        "SELECT COUNT(*) AS n, SUM(balance) AS total FROM accounts",
                        &[],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let n: i64 = row.get(0);
                if n as u64 != keys {
                    return Err(format!("the scan counted {n} accounts, expected {keys}"));
                }
                took.push(t.elapsed().as_secs_f64());
            }
            Ok::<_, String>(took)
        });
        // The first scan is under way when the lookups start.
        tokio::time::sleep(Duration::from_millis(200)).await;
        one_run(server, port, "sluice", setup, proc).await?;
        stop.store(true, Ordering::Relaxed);
        let took = scanner.await??;
        let median = crate::report::percentile(&took, 50.0);
        eprintln!(
            "bench: pull {}: {} scans, {median:.2} s each (median)",
            server.name,
            took.len()
        );
        server.scans.push(took.len() as u64);
        server.scan_s.push(median);
    }
    Ok(())
}

/// The lookup load while [`BUSY_RATE`] events/s flow into another query
/// (`busy_counts`), `setup.runs` times: the lookups' figures, and how soon
/// after each run's input stopped that query had committed all of it.
async fn loaded_runs(
    server: &mut Server,
    port: u16,
    setup: &Setup,
    broker: &Broker,
    tag: &str,
    proc: &mut Proc,
) -> Fallible<()> {
    for _ in 0..setup.runs {
        // The input starts a second before the lookups and ends with them.
        let total = BUSY_RATE * (setup.pull_secs + 1);
        let bootstrap = broker.bootstrap.clone();
        let producer = std::thread::spawn(move || {
            let newest = crate::latency::Newest::default();
            crate::latency::produce(&bootstrap, BUSY, BUSY_RATE, total, 0, newest)
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        one_run(server, port, "sluice", setup, proc).await?;
        producer
            .join()
            .map_err(|_| "the busy producer panicked")?
            .map_err(|e| format!("the busy producer failed: {e}"))?;
        let stopped = Instant::now();
        let inputs = vec![BUSY.to_string()];
        while !broker.caught_up(tag, &inputs)? {
            proc.check_alive()?;
            if stopped.elapsed() > setup.limit {
                return Err("the busy query did not catch up in time".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caught_up = stopped.elapsed().as_secs_f64();
        eprintln!(
            "bench: pull {}: input committed {caught_up:.2} s after it stopped",
            server.name
        );
        server.caught_up_s.push(caught_up);
    }
    Ok(())
}

/// PostgreSQL's server binaries (Debian's package).
fn pg_bin() -> Fallible<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL is not installed (Debian's postgresql package; bench/run.sh installs it)"
        })?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| "no PostgreSQL server under /usr/lib/postgresql".into())
}

/// A command run as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root).
fn as_postgres(program: PathBuf) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn postgres(setup: &Setup, rt: &tokio::runtime::Runtime) -> Fallible<Server> {
    let bin = pg_bin()?;
    let version = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()?;
    let mut server = Server {
        name: "PostgreSQL".into(),
        version: String::from_utf8_lossy(&version.stdout).trim().to_string(),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("sluice-bench-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&dir)
        .status();
    let data = dir.join("data");
    let init = as_postgres(bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()?;
    if !init.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&init.stderr)).into());
    }
    let port = free_port()?;
    let mut cmd = as_postgres(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "shared_buffers=512MB",
            "-c",
            "max_connections=64",
        ]);
    let mut proc = Proc::spawn("postgres", cmd, &setup.work.join("postgres.log"))?;
    rt.block_on(async {
        let client = connect(port, "postgres", &mut proc).await?;
        client
            .batch_execute(
                "DROP TABLE IF EXISTS accounts; \
                 CREATE TABLE accounts (id TEXT PRIMARY KEY, owner TEXT, balance BIGINT);",
            )
            .await?;
        let sink = client
            .copy_in("COPY accounts (id, owner, balance) FROM STDIN")
            .await?;
        let mut sink = std::pin::pin!(sink);
        let mut chunk = String::new();
        for (key, value, _) in crate::data::accounts(setup.pull_keys) {
            let v: serde_json::Value = serde_json::from_str(&value)?;
            chunk.push_str(&format!(
                "{key}\t{}\t{}\n",
                v["owner"].as_str().unwrap_or_default(),
                v["balance"].as_i64().unwrap_or_default()
            ));
            if chunk.len() > 1 << 20 {
                sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                    .await?;
            }
        }
        sink.send(bytes::Bytes::from(chunk)).await?;
        sink.as_mut().finish().await?;
        client.batch_execute("VACUUM ANALYZE accounts;").await?;
        for _ in 0..setup.runs {
            one_run(&mut server, port, "postgres", setup, &mut proc).await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    drop(proc);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(server)
}

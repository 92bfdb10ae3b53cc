//! A `sluice server` child process for the wire-protocol tests, with its
//! embedded Kafka broker (or the test broker) and an OS-chosen port; the
//! test Kafka broker.
#![allow(dead_code)]

pub mod pg;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The `sluice` binary: `SLUICE_BIN` if set (an installed binary, or a
/// copy of this build's), else the one cargo built for these tests.
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("SLUICE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into())
}

/// A `sluice server` child, its log (stderr) in `server.log` beside its data
/// directory, logging as it does by default (`SLUICE_LOG` only when a test
/// passes it); killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// The embedded broker's address, when the server started one.
    pub embedded_kafka: Option<String>,
    /// The environment it was started with (a restart keeps it).
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Start a server and wait until it says where clients connect.
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// Start a server with these TOML settings (`{dir}` stands for its
    /// data directory's parent, where files it names can be put first by
    /// `prepare`).
    pub fn start_with_config(toml: &str) -> Self {
        Self::start_prepared(toml, |_| {})
    }

    /// As [`Server::start_with_config`], after `prepare` has put files in
    /// the directory.
    pub fn start_prepared(toml: &str, prepare: impl FnOnce(&std::path::Path)) -> Self {
        Self::start_with_env(toml, prepare, &[])
    }

    /// As [`Server::start_prepared`], with these environment variables.
    pub fn start_with_env(
        toml: &str,
        prepare: impl FnOnce(&std::path::Path),
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let config = dir.path().join("sluice.toml");
        let toml = toml.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&config, toml).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, port, embedded_kafka) = spawn(dir.path(), &env);
        Self {
            child,
            port,
            embedded_kafka,
            env,
            _dir: dir,
        }
    }

    /// Stop the server with SIGTERM, as an operator would, and start it
    /// again on the same data directory (its log goes on in the same
    /// file).
    pub fn restart(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "cannot send SIGTERM to the server");
        let exit = self.child.wait().expect("the server exits");
        assert!(exit.success(), "the server stopped with {exit} on SIGTERM");
        let (child, port, embedded_kafka) = spawn(self._dir.path(), &self.env);
        self.child = child;
        self.port = port;
        self.embedded_kafka = embedded_kafka;
    }
}

/// Start `sluice server` on `dir`'s config and data directory; wait until it
/// says where clients connect.
fn spawn(dir: &std::path::Path, env: &[(String, String)]) -> (Child, u16, Option<String>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("a log file");
    let mut child = Command::new(binary())
        .arg("server")
        .arg("--config")
        .arg(dir.join("sluice.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("SLUICE_LOG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start sluice server");
    let stdout = child.stdout.take().expect("stdout");
    let mut port = None;
    let mut embedded_kafka = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8");
        if let Some(at) = line
            .strip_prefix("Embedded Kafka broker (in memory: it keeps nothing across restarts) at ")
        {
            embedded_kafka = Some(at.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("Postgres clients: psql -h 127.0.0.1 -p ") {
            port = Some(rest.trim().parse().expect("a port"));
            break;
        }
    }
    let port = port.expect("the server did not print where Postgres clients connect");
    (child, port, embedded_kafka)
}

impl Server {
    /// The directory `{dir}` stood for (the data directory is `data` in it).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir().join("server.log")).unwrap_or_default())
            .to_string()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// pgjdbc's jar, which `scripts/setup.sh` fetches into `~/.m2`; a test
/// that needs it fails when it is missing.
pub fn pgjdbc() -> std::path::PathBuf {
    let jar = std::env::var("HOME")
        .map(|h| {
            std::path::PathBuf::from(h)
                .join(".m2/repository/org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar")
        })
        .expect("HOME");
    assert!(
        jar.exists(),
        "{} is missing: run scripts/setup.sh (it fetches pgjdbc)",
        jar.display()
    );
    jar
}

/// The Python of the virtualenv `scripts/setup.sh` makes (psycopg,
/// psycopg2, ...); a test that needs it fails when it is missing.
pub fn python() -> std::path::PathBuf {
    let python = std::env::var("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".cache/sluice-venv/bin/python"))
        .expect("HOME");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs psycopg and psycopg2)",
        python.display()
    );
    python
}

/// The `node_modules` `scripts/setup.sh` fills (node-postgres and
/// pg-query-stream); a test that needs it fails when it is missing.
pub fn node_modules() -> std::path::PathBuf {
    let modules = std::env::var("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".cache/sluice-node/node_modules"))
        .expect("HOME");
    assert!(
        modules.join("pg-query-stream").exists() && modules.join("pg").exists(),
        "{} has no pg or pg-query-stream: run scripts/setup.sh (it installs them)",
        modules.display()
    );
    modules
}

/// The test Kafka broker's address: `SLUICE_TEST_KAFKA`, or one started
/// with `scripts/kafka.sh` for this test process (stopped when it exits).
pub fn broker() -> &'static str {
    static BROKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BROKER.get_or_init(|| {
        if let Ok(b) = std::env::var("SLUICE_TEST_KAFKA") {
            if !b.is_empty() {
                return b;
            }
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sluice-test-kafka-{port}"));
        let out = Command::new("bash")
            .arg(format!("{root}/scripts/kafka.sh"))
            .args(["start", "--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "cannot start a Kafka broker with scripts/kafka.sh:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Stop the broker when this test process is gone.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash {root}/scripts/kafka.sh stop --port {port} --dir {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        let status = Command::new("bash")
            .args([
                "-c",
                &format!("setsid bash -c '{watchdog}' </dev/null >/dev/null 2>&1 &"),
            ])
            .status()
            .expect("start the broker's watchdog");
        assert!(status.success(), "cannot start the broker's watchdog");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| format!("localhost:{port}"))
    })
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A name no earlier run used, so tests can share a long-lived broker.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}_{}_{nanos}", std::process::id())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

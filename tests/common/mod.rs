//! A `sluice server` child process for the wire-protocol tests, with its
//! embedded Kafka broker and an OS-chosen port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The `sluice` binary: `SLUICE_BIN` if set (an installed binary, or a
/// copy of this build's), else the one cargo built for these tests.
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("SLUICE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sluice").into())
}

/// A `sluice server` child; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
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
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let config = dir.path().join("sluice.toml");
        let toml = toml.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(binary())
            .arg("server")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice server");
        let stdout = child.stdout.take().expect("stdout");
        let mut port = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("utf-8");
            if let Some(rest) = line.strip_prefix("Postgres clients: psql -h 127.0.0.1 -p ") {
                port = Some(rest.trim().parse().expect("a port"));
                break;
            }
        }
        let port = port.expect("the server did not print where Postgres clients connect");
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

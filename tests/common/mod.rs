//! A `sluice server` child process for the wire-protocol tests, with its
//! embedded Kafka broker and an OS-chosen port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `sluice server` child; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Start a server and wait until it says where clients connect.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("server")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
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

//! `sluice demo` as a new user meets it: it starts, prints psql commands,
//! and each of them, run with the real psql, returns rows.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

#[test]
fn the_demo_answers_every_psql_command_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::binary())
        .arg("demo")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sluice demo");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Kill(child);
    let mut commands = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8");
        if line.starts_with("Stop the demo") {
            break;
        }
        if line.starts_with("psql ") {
            commands.push(line);
        }
    }
    assert!(
        commands.len() >= 10,
        "the demo prints a tour of every case: {commands:?}"
    );
    // Windows fill and generators warm up: each command may take a while
    // to find rows.
    let deadline = Instant::now() + Duration::from_secs(360);
    for command in &commands {
        loop {
            let out = Command::new("bash")
                .args(["-c", &format!("{command} -A -t -v ON_ERROR_STOP=1")])
                .output()
                .expect("run psql");
            let rows = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !rows.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{command}\nreturned no rows: {}{}",
                rows,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    drop(child);
}

//! Processes under measurement: started, sampled from `/proc` (CPU time,
//! resident memory) and stopped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Fallible;

/// Wall-clock now, in ms since the epoch (the broker's clock for
/// `LogAppendTime` is the same machine's).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Clock ticks per second of `/proc/*/stat`'s CPU times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds of a process (all its threads).
pub fn cpu_seconds(pid: u32) -> Fallible<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// A `/proc/PID/status` size in bytes (`VmRSS`, `VmHWM`).
pub fn status_bytes(pid: u32, field: &str) -> Fallible<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or("bad status line")?
        .parse()?;
    Ok(kb * 1024)
}

/// Bytes under a directory.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// A started process, killed when dropped.
pub struct Proc {
    child: Child,
    pub name: String,
    pub log: PathBuf,
    pub started: Instant,
    pub started_ms: i64,
}

impl Proc {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Fallible<Self> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let started_ms = now_ms();
        let started = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
            started,
            started_ms,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the process has ended, with the end of its log.
    pub fn check_alive(&mut self) -> Fallible<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("{} exited ({status}):\n{}", self.name, tail.join("\n")).into());
        }
        Ok(())
    }

    pub fn cpu_seconds(&self) -> Fallible<f64> {
        cpu_seconds(self.pid())
    }

    /// Wait until `done` holds, checking every `every`; an error if the
    /// process dies or `limit` passes.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        every: Duration,
        mut done: impl FnMut() -> Fallible<bool>,
    ) -> Fallible<()> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive()?;
            if done()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not finish within {limit:?} (log: {})",
                    self.name,
                    self.log.display()
                )
                .into());
            }
            std::thread::sleep(every);
        }
    }

    /// Wait for the process to exit by itself; an error if it fails or
    /// outlives `limit`.
    pub fn wait(mut self, limit: Duration) -> Fallible<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("{} failed ({status}): {log}", self.name).into());
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not end within {limit:?}", self.name).into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> Fallible<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

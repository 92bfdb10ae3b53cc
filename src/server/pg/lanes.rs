//! Connections on lanes: one thread per core, each driving a
//! current-thread runtime of its own, and every connection served from
//! start to end on one lane (the one serving the fewest connections when
//! it arrived).
//!
//! Why not one multi-threaded runtime: a key lookup is a few microseconds
//! of work between a `recv` and a `send`, and on a work-stealing runtime a
//! good part of its cost was the runtime's own (one worker holding the I/O
//! driver and waking another to run the task it found ready, tasks moving
//! between threads); two such workers served no more lookups than one.
//! On a lane a socket's readiness wakes the thread that owns both the
//! socket and its task. What a lane gives up is stealing: a connection
//! busy on the CPU (encoding a large result) delays the others of its
//! lane, which is why statements themselves run on the runtime's blocking
//! threads, never on the lane.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

/// The lanes; dropping them stops every lane and ends its connections.
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    handle: tokio::runtime::Handle,
    /// Connections this lane serves now.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One lane per core: the query loop shares the cores with them (a lane
/// waiting on its sockets takes none).
pub(crate) fn per_core() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Lanes {
    /// `n` lanes (at least one), their threads with `stack` bytes of stack
    /// (also their runtimes' blocking threads).
    pub(crate) fn new(n: usize, stack: usize) -> std::io::Result<Self> {
        let lanes = (0..n.max(1))
            .map(|i| Lane::start(i, stack))
            .collect::<std::io::Result<_>>()?;
        Ok(Self { lanes })
    }

    /// Run `connection` on the lane serving the fewest connections; it is
    /// made there, so that what it registers (sockets, timers) is that
    /// lane's.
    pub(crate) fn spawn<F, Fut>(&self, connection: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(lane) = self
            .lanes
            .iter()
            .min_by_key(|l| l.open.load(Ordering::Relaxed))
        else {
            return;
        };
        let open = Open::new(lane.open.clone());
        lane.handle.spawn(async move {
            let _open = open;
            connection().await
        });
    }
}

impl Lane {
    fn start(i: usize, stack: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name(format!("sluice-pg-{i}"))
            .thread_stack_size(stack)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-pg-{i}"))
            .stack_size(stack)
            .spawn(move || {
                // Until the lanes are dropped (an error: the sender went).
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            open: Arc::new(AtomicUsize::new(0)),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            if let Some(stop) = lane.stop.take() {
                let _ = stop.send(());
            }
        }
        // Each thread drops its runtime, and with it its connections.
        for lane in &mut self.lanes {
            if let Some(thread) = lane.thread.take() {
                if thread.join().is_err() {
                    tracing::error!("a wire server lane's thread panicked");
                }
            }
        }
    }
}

/// Counts a connection on its lane while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_lane_and_stay_there() {
        let lanes = Lanes::new(2, 1 << 20).unwrap();
        let (hold, held) = std::sync::mpsc::channel();
        let (release, released) = tokio::sync::watch::channel(false);
        for _ in 0..4 {
            let (hold, mut released) = (hold.clone(), released.clone());
            lanes.spawn(move || async move {
                hold.send(std::thread::current().name().map(String::from))
                    .unwrap();
                let _ = released.wait_for(|r| *r).await;
            });
        }
        let mut names: Vec<_> = (0..4).map(|_| held.recv().unwrap().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            ["sluice-pg-0", "sluice-pg-0", "sluice-pg-1", "sluice-pg-1"]
        );
        assert_eq!(
            lanes
                .lanes
                .iter()
                .map(|l| l.open.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
            [2, 2]
        );
        release.send(true).unwrap();
        let open = |lanes: &Lanes| -> usize {
            lanes
                .lanes
                .iter()
                .map(|l| l.open.load(Ordering::Relaxed))
                .sum()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while open(&lanes) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(open(&lanes), 0);
    }

    #[test]
    fn dropping_the_lanes_ends_their_connections() {
        let lanes = Lanes::new(1, 1 << 20).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        lanes.spawn(move || async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(lanes);
        // The connection's future was dropped with its lane.
        assert_eq!(rx.recv(), Err(std::sync::mpsc::RecvError));
    }
}

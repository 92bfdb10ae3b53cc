//! A panic inside a connection ends that connection alone and is logged
//! once, in one line: the connection's number, its peer and the panic's
//! message and place, never a backtrace.
//!
//! A panic there is a defect (what a client sends is checked before it is
//! decoded: [`super::frames`]), but one must not take the server down or
//! flood its log: the process's default
//! panic hook writes several lines, and a whole backtrace when
//! `RUST_BACKTRACE` is set (7 KB), for every such message: a client could
//! fill the disk. So every connection runs inside [`guard`] (its
//! statements' blocking threads inside [`within`]), which marks the code as
//! the connection's; the hook installed by [`install_hook`] logs a panic
//! there as one error line (at most ten a minute, the others counted in
//! the next line) and leaves every other panic to the previous hook.
//! The connection is then closed (its socket went with the panicking
//! future, so the client is not told why); a statement's blocking thread
//! that panics fails that statement alone (XX000).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;

tokio::task_local! {
    static CONNECTION: Connection;
}

/// Which connection code runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Connection {
    /// Numbered from 1 in the order connections were accepted.
    pub id: u64,
    pub peer: SocketAddr,
}

/// The connection the current code runs for, if any.
pub(crate) fn current() -> Option<Connection> {
    CONNECTION.try_with(|c| *c).ok()
}

/// Install the hook (once per process; later calls do nothing).
pub(crate) fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        let limiter = std::sync::Mutex::new(Limiter::default());
        std::panic::set_hook(Box::new(move |info| match current() {
            Some(c) => {
                let admitted = limiter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .admit(Instant::now());
                let Some(unlogged) = admitted else { return };
                let message = message(info.payload());
                let place = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                tracing::error!(
                    connection = c.id,
                    peer = %c.peer,
                    at = %place,
                    unlogged,
                    "connection ended by an internal error: {message}"
                );
            }
            None => previous(info),
        }));
    });
}

/// Connection panics logged per minute at most: a client that makes every
/// connection panic would otherwise still add a line per connection.
const LOGGED_PER_MINUTE: u32 = 10;

/// Which connection panics are logged: at most [`LOGGED_PER_MINUTE`]; the
/// others are counted, and the next line logged says how many went
/// unlogged before it.
#[derive(Debug, Default)]
struct Limiter {
    window: Option<Instant>,
    logged: u32,
    unlogged: u64,
}

impl Limiter {
    /// Some(panics not logged since the last line) when this one is logged.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(60));
        if fresh {
            self.window = Some(now);
            self.logged = 0;
        }
        if self.logged >= LOGGED_PER_MINUTE {
            self.unlogged += 1;
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// A panic's message (its payload, when that is text).
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    // One line, and a bounded one.
    let line = text.replace(['\n', '\r'], " ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// Run a connection's future as that connection's code: None when it
/// panicked (the panic has been logged by the hook).
pub(crate) async fn guard<F: Future>(connection: Connection, f: F) -> Option<F::Output> {
    CONNECTION
        .scope(connection, AssertUnwindSafe(f).catch_unwind())
        .await
        .ok()
}

/// Run `f` (on a blocking thread) as the code of `connection`, if any.
pub(crate) fn within<T>(connection: Option<Connection>, f: impl FnOnce() -> T) -> T {
    match connection {
        Some(c) => CONNECTION.sync_scope(c, f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection {
            id: 7,
            peer: "127.0.0.1:4000".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn a_panic_inside_a_guarded_connection_ends_it_alone() {
        install_hook();
        let inside = guard(connection(), async { current() }).await;
        assert_eq!(inside, Some(Some(connection())));
        let ended = guard(connection(), async {
            let v: Vec<u8> = Vec::new();
            // A panic as the decoder's: an index past the end.
            v[usize::from(v.is_empty())]
        })
        .await;
        assert_eq!(ended, None);
        assert_eq!(current(), None);
        let fine = guard(connection(), async { 5 }).await;
        assert_eq!(fine, Some(5));
    }

    #[test]
    fn blocking_code_is_marked_as_the_connections() {
        assert_eq!(within(Some(connection()), current), Some(connection()));
        assert_eq!(within(None, current), None);
    }

    #[test]
    fn at_most_ten_panics_a_minute_are_logged_and_the_rest_counted() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let first: Vec<Option<u64>> = (0..12).map(|_| l.admit(t0)).collect();
        assert_eq!(first[..10], vec![Some(0); 10][..]);
        assert_eq!(first[10..], [None, None]);
        assert_eq!(l.admit(t0 + Duration::from_secs(59)), None);
        // A minute on: logged again, with the three that were not.
        assert_eq!(l.admit(t0 + Duration::from_secs(60)), Some(3));
        assert_eq!(l.admit(t0 + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn messages_are_one_bounded_line() {
        let long = "x".repeat(1000);
        let m = message(&format!("a\nb {long}"));
        assert!(m.starts_with("a b xxx"), "{m}");
        assert_eq!(m.chars().count(), 303);
        assert_eq!(message(&"short"), "short");
        assert_eq!(message(&5u8), "(no message)");
    }
}

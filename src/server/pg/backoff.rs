//! Back-off after failed logins, per client address and per user name.
//!
//! Each address and each user name has a count of failed logins. Up to
//! `free_failures` of them cost nothing; after that, every new login from
//! that address or for that user waits before it is answered: `delay`,
//! doubled with each further failure, at most `max_delay`. Waits are
//! queued per key: attempts made at the same time wait one after the
//! other, so opening many connections at once does not multiply the rate
//! of guesses. An attempt that would wait more than [`QUEUED`] times the
//! longest delay is refused at once (the queue is full).
//!
//! A successful login clears its user's and its address's counts. Counts
//! are forgotten [`FORGET_AFTER`] after the last failure. At most
//! [`MAX_KEYS`] addresses and as many user names are tracked (unknown
//! names count as known ones do, so that the two cannot be told apart); the
//! ones whose last failure is oldest make room for new ones.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) use crate::server::config::LoginBackoffSettings;

/// How long failures are remembered after the last one.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Addresses (and user names) tracked at most.
pub(crate) const MAX_KEYS: usize = 10_000;

/// Attempts that may wait their turn, in units of the longest delay.
pub(crate) const QUEUED: u32 = 8;

/// What a new login attempt must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Go on after this long (zero: at once).
    Wait(Duration),
    /// Too many attempts are waiting already: refuse this one.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// When the last attempt admitted may go on: the next one waits its
    /// delay after that.
    turn: Instant,
    last_failure: Instant,
}

/// Failure counts per key (an address or a user name).
#[derive(Debug)]
struct Counts<K>(Mutex<HashMap<K, Entry>>);

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wait of a new attempt for `key`, its turn taken (None: refused).
    fn admit(&self, key: &K, s: &LoginBackoffSettings, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(key) else {
            return Some(Duration::ZERO);
        };
        if now.saturating_duration_since(entry.last_failure) >= FORGET_AFTER {
            map.remove(key);
            return Some(Duration::ZERO);
        }
        let delay = delay(s, entry.failures);
        if delay.is_zero() {
            return Some(Duration::ZERO);
        }
        let turn = entry.turn.max(now) + delay;
        let wait = turn - now;
        if wait > s.max_delay * QUEUED {
            return None;
        }
        entry.turn = turn;
        Some(wait)
    }

    fn failed(&self, key: &K, now: Instant) {
        let mut map = self.lock();
        if !map.contains_key(key) && map.len() >= MAX_KEYS {
            map.retain(|_, e| now.saturating_duration_since(e.last_failure) < FORGET_AFTER);
            if map.len() >= MAX_KEYS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let entry = map.entry(key.clone()).or_insert(Entry {
            failures: 0,
            turn: now,
            last_failure: now,
        });
        if now.saturating_duration_since(entry.last_failure) >= FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The wait after `failures` failed logins.
fn delay(s: &LoginBackoffSettings, failures: u32) -> Duration {
    if failures < s.free_failures.max(1) {
        return Duration::ZERO;
    }
    let doublings = (failures - s.free_failures.max(1)).min(31);
    s.delay
        .checked_mul(1u32 << doublings)
        .unwrap_or(s.max_delay)
        .min(s.max_delay)
}

/// The failed logins of a server.
#[derive(Debug)]
pub(crate) struct LoginBackoff {
    settings: LoginBackoffSettings,
    addresses: Counts<IpAddr>,
    users: Counts<String>,
}

impl LoginBackoff {
    pub(crate) fn new(settings: LoginBackoffSettings) -> Self {
        Self {
            settings,
            addresses: Counts::new(),
            users: Counts::new(),
        }
    }

    /// A login from `address` for `user` starts: how long it waits first.
    pub(crate) fn admit(&self, address: IpAddr, user: &str, now: Instant) -> Admission {
        let s = &self.settings;
        let by_address = self.addresses.admit(&address, s, now);
        let by_user = self.users.admit(&user.to_string(), s, now);
        match (by_address, by_user) {
            (Some(a), Some(u)) => Admission::Wait(a.max(u)),
            _ => Admission::Refuse,
        }
    }

    /// The login failed (a wrong password, an unknown user, a broken
    /// exchange).
    pub(crate) fn failed(&self, address: IpAddr, user: &str, now: Instant) {
        self.addresses.failed(&address, now);
        self.users.failed(&user.to_string(), now);
    }

    /// The login succeeded.
    pub(crate) fn succeeded(&self, address: IpAddr, user: &str) {
        self.addresses.clear(&address);
        self.users.clear(&user.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LoginBackoffSettings {
        LoginBackoffSettings {
            free_failures: 3,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn delays_start_after_the_free_failures_double_and_are_capped() {
        let s = settings();
        let waits: Vec<u64> = (0..8).map(|f| delay(&s, f).as_secs()).collect();
        assert_eq!(waits, vec![0, 0, 0, 1, 2, 4, 4, 4]);
        assert_eq!(delay(&s, u32::MAX), Duration::from_secs(4));
    }

    #[test]
    fn each_attempt_after_the_free_failures_waits_in_turn() {
        let b = LoginBackoff::new(settings());
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(b.admit(ip(1), "alice", t0), Admission::Wait(Duration::ZERO));
            b.failed(ip(1), "alice", t0 + MS(i));
        }
        // The fourth attempt waits 1 s; two more at the same moment wait
        // their turns after it.
        let now = t0 + MS(10);
        assert_eq!(b.admit(ip(1), "alice", now), Admission::Wait(MS(1000)));
        assert_eq!(b.admit(ip(1), "alice", now), Admission::Wait(MS(2000)));
        assert_eq!(b.admit(ip(1), "alice", now), Admission::Wait(MS(3000)));
        // Other addresses and users are not slowed.
        assert_eq!(b.admit(ip(2), "bob", now), Admission::Wait(Duration::ZERO));
    }

    #[test]
    fn an_address_or_a_user_alone_slows_the_attempt() {
        let b = LoginBackoff::new(settings());
        let t0 = Instant::now();
        // Many users from one address; then one user from many addresses.
        for i in 0..3u8 {
            b.failed(ip(1), &format!("user{i}"), t0);
            b.failed(ip(10 + i), "carol", t0);
        }
        assert_eq!(b.admit(ip(1), "dave", t0), Admission::Wait(MS(1000)));
        assert_eq!(b.admit(ip(99), "carol", t0), Admission::Wait(MS(1000)));
        assert_eq!(b.admit(ip(99), "erin", t0), Admission::Wait(Duration::ZERO));
    }

    #[test]
    fn a_full_queue_refuses_and_success_or_time_clears() {
        let s = settings();
        let b = LoginBackoff::new(s);
        let t0 = Instant::now();
        for _ in 0..6 {
            b.failed(ip(1), "alice", t0);
        }
        // 4 s each (capped): 8 turns fit in 32 s, the ninth is refused.
        for turn in 1..=8u64 {
            assert_eq!(
                b.admit(ip(1), "alice", t0),
                Admission::Wait(Duration::from_secs(4 * turn))
            );
        }
        assert_eq!(b.admit(ip(1), "alice", t0), Admission::Refuse);
        b.succeeded(ip(1), "alice");
        assert_eq!(b.admit(ip(1), "alice", t0), Admission::Wait(Duration::ZERO));
        // Failures are forgotten a while after the last one.
        for _ in 0..6 {
            b.failed(ip(2), "bob", t0);
        }
        let later = t0 + FORGET_AFTER;
        assert_eq!(
            b.admit(ip(2), "bob", later),
            Admission::Wait(Duration::ZERO)
        );
        b.failed(ip(2), "bob", later);
        assert_eq!(
            b.admit(ip(2), "bob", later),
            Admission::Wait(Duration::ZERO)
        );
    }

    #[test]
    fn tracked_names_are_bounded() {
        let b = LoginBackoff::new(settings());
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 5) {
            b.failed(ip(1), &format!("u{i}"), t0 + MS(i as u64));
        }
        assert_eq!(b.users.len(), MAX_KEYS);
        assert_eq!(b.addresses.len(), 1);
        // The oldest went first.
        let map = b.users.lock();
        assert!(!map.contains_key("u0") && map.contains_key(&format!("u{}", MAX_KEYS + 4)));
    }
}

//! MyBank: card and account transactions captured from the core banking
//! database by Debezium, and users' alert thresholds set in the app.
//!
//! Each user owns one or two accounts (one currency per user) and spends as
//! a Poisson process: mostly small amounts, sometimes a large one. Topics:
//!
//! - `bank_transactions`: Debezium change events of the `transactions` table
//!   (JSON converter without schemas, `decimal.handling.mode=string`: the
//!   amount is a string such as `"1250.00"`), keyed by the row id as
//!   Debezium writes it (`{"txn_id":17}`). The first second holds the
//!   initial snapshot (`op = 'r'`: rows that existed before capture
//!   started, large ones included); then new rows (`'c'`), corrections of
//!   earlier rows (`'u'`: amount or merchant fixed, before and after
//!   images) and a few reversals (`'d'`, after image null; the connector
//!   runs with `tombstones.on.delete=false`).
//! - `user_settings`: `enabled` / `changed` (both carry the threshold) and
//!   `disabled` (no threshold), keyed by user.
//!
//! Invariants the tests rely on:
//! - a user's settings events are at least [`SETTLE_GAP_MS`] away from any
//!   of that user's transaction events, so which threshold is in force at
//!   a transaction never hinges on processing order;
//! - after a large transaction that stayed under the threshold, the user
//!   sometimes lowers the threshold below that amount a few seconds later
//!   (the alert must not fire for the earlier transaction).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde_json::{json, Value};

use super::{Event, Params, Rng};

/// The topic of the Debezium change events.
pub const TRANSACTIONS_TOPIC: &str = "bank_transactions";
/// The topic of the threshold events.
pub const SETTINGS_TOPIC: &str = "user_settings";

/// Minimum time between a user's settings change and any of that user's
/// transaction events (either order).
pub const SETTLE_GAP_MS: i64 = 2_000;

/// Mean time between two events of one user.
const MEAN_GAP_MS: f64 = 6_000.0;
/// The initial snapshot spans this much time after the start.
const SNAPSHOT_MS: i64 = 1_000;

const THRESHOLDS_CENTS: [i64; 5] = [10_000, 25_000, 50_000, 100_000, 200_000];

const MERCHANTS: [&str; 12] = [
    "Carrefour",
    "Amazon",
    "Shell",
    "SNCF",
    "Fnac",
    "Uber",
    "Decathlon",
    "Boulangerie Paul",
    "Apple Store",
    "Air France",
    "IKEA",
    "Pharmacie du Centre",
];

/// An amount in cents as the database's NUMERIC(18,2) text.
pub fn amount_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A row of the `transactions` table.
#[derive(Debug, Clone)]
struct Row {
    txn_id: u64,
    account_id: String,
    user_id: String,
    amount_cents: i64,
    currency: &'static str,
    merchant: &'static str,
}

impl Row {
    fn json(&self) -> Value {
        json!({
            "txn_id": self.txn_id,
            "account_id": self.account_id,
            "user_id": self.user_id,
            "amount": amount_text(self.amount_cents),
            "currency": self.currency,
            "merchant": self.merchant,
        })
    }
}

/// What a user does next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    /// Spend (a new row, `op = 'c'`).
    Spend,
    /// Correct one of their earlier rows (`'u'`).
    Correct,
    /// Reverse one of their earlier rows (`'d'`).
    Reverse,
    /// Change alert settings; with a ceiling: lower the threshold below it.
    Settings(Option<i64>),
}

impl Next {
    fn is_settings(self) -> bool {
        matches!(self, Next::Settings(_))
    }
}

struct User {
    id: String,
    accounts: Vec<String>,
    currency: &'static str,
    rng: Rng,
    /// The threshold in force (None: alerts off).
    threshold: Option<i64>,
    /// Rows of this user that can still be corrected or reversed.
    rows: Vec<Row>,
    next: Next,
}

impl User {
    /// The kind and time of the event after one of kind `last` at `at`.
    fn schedule(&mut self, last: Next, at: i64) -> i64 {
        let mut gap = self.rng.exponential(MEAN_GAP_MS).max(50.0) as i64;
        let next = if let (Next::Spend, Some(t)) = (last, self.threshold) {
            // A large purchase that stayed under the threshold: the user
            // sometimes reacts by lowering the threshold below it.
            match self.rows.last().map(|r| r.amount_cents) {
                Some(a) if (20_000..=t).contains(&a) && self.rng.chance(0.6) => {
                    gap = self.rng.range(SETTLE_GAP_MS, SETTLE_GAP_MS + 2_000);
                    Next::Settings(Some(a))
                }
                _ => self.draw(),
            }
        } else {
            self.draw()
        };
        if next.is_settings() != last.is_settings() {
            gap = gap.max(SETTLE_GAP_MS);
        }
        self.next = next;
        at + gap
    }

    fn draw(&mut self) -> Next {
        let x = self.rng.unit();
        if x < 0.08 {
            Next::Settings(None)
        } else if x < 0.14 && !self.rows.is_empty() {
            Next::Correct
        } else if x < 0.15 && !self.rows.is_empty() {
            Next::Reverse
        } else {
            Next::Spend
        }
    }

    /// An amount: mostly everyday spending, sometimes a large purchase.
    fn amount(&mut self) -> i64 {
        if self.rng.chance(0.1) {
            self.rng.range(20_000, 400_000)
        } else {
            (self.rng.exponential(3_500.0) as i64 + 99).min(19_999)
        }
    }

    fn new_row(&mut self, txn_id: u64) -> Row {
        let account_id = self
            .rng
            .pick(&self.accounts)
            .cloned()
            .unwrap_or_else(|| self.id.clone());
        let merchant = *self.rng.pick(&MERCHANTS).unwrap_or(&"Carrefour");
        Row {
            txn_id,
            account_id,
            user_id: self.id.clone(),
            amount_cents: self.amount(),
            currency: self.currency,
            merchant,
        }
    }
}

struct Bank {
    users: Vec<User>,
    /// (time, sequence, user) of every user's next event.
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    seq: u64,
    next_txn_id: u64,
    /// Snapshot reads still to emit: (time, row).
    snapshot: std::vec::IntoIter<(i64, Row)>,
    end_ms: i64,
}

/// The MyBank events for `params`, in timestamp order.
pub fn events(params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    Box::new(Bank::new(params))
}

impl Bank {
    fn new(params: &Params) -> Bank {
        let mut rng = Rng::new(params.seed);
        let volume = params.volume();
        let span_ms = (params.end_ms() - params.start_ms).max(1);
        // Enough users that their events add up to the rate (at least one).
        let n_users = ((params.rate * MEAN_GAP_MS / 1_000.0).round() as usize).clamp(1, 1_000_000);
        let mut users = Vec::with_capacity(n_users);
        let mut account_no = 10_000u64;
        for i in 0..n_users {
            let mut urng = rng.fork(i as u64);
            let accounts = (0..urng.range(1, 2))
                .map(|_| {
                    account_no += 1;
                    format!("FR76-{account_no}")
                })
                .collect();
            let currency = if urng.chance(0.85) { "EUR" } else { "USD" };
            users.push(User {
                id: format!("u{:04}", i + 1),
                accounts,
                currency,
                rng: urng,
                threshold: None,
                rows: Vec::new(),
                next: Next::Spend,
            });
        }
        // The initial snapshot: rows that existed before capture started,
        // about a tenth of the volume but at most half a minute of events
        // (a long run does not start with a flood), in the first second.
        let half_minute = (params.rate * 30.0).round().max(1.0) as usize;
        let snapshot_rows = (volume / 10).min(half_minute).min(100_000);
        let snap_end = params.start_ms + SNAPSHOT_MS.min(span_ms);
        let mut next_txn_id = 1;
        let mut snapshot = Vec::with_capacity(snapshot_rows);
        for k in 0..snapshot_rows {
            let u = rng.below(n_users as u64) as usize;
            let row = users[u].new_row(next_txn_id);
            next_txn_id += 1;
            users[u].rows.push(row.clone());
            let at =
                params.start_ms + (k as i64 * (snap_end - params.start_ms)) / snapshot_rows as i64;
            snapshot.push((at, row));
        }
        // Live events begin after the snapshot; half of the users enable a
        // threshold first.
        let mut queue = BinaryHeap::new();
        let mut seq = 0;
        for (i, u) in users.iter_mut().enumerate() {
            u.next = if u.rng.chance(0.5) {
                Next::Settings(None)
            } else {
                Next::Spend
            };
            let at = snap_end + u.rng.exponential(MEAN_GAP_MS / 2.0) as i64;
            if at < params.end_ms() {
                queue.push(Reverse((at, seq, i)));
                seq += 1;
            }
        }
        Bank {
            users,
            queue,
            seq,
            next_txn_id,
            snapshot: snapshot.into_iter(),
            end_ms: params.end_ms(),
        }
    }

    fn emit(&mut self, at: i64, u: usize) -> Event {
        let user = &mut self.users[u];
        let kind = user.next;
        let event = match kind {
            Next::Spend => {
                let row = user.new_row(self.next_txn_id);
                self.next_txn_id += 1;
                user.rows.push(row.clone());
                if user.rows.len() > 20 {
                    user.rows.remove(0);
                }
                change(&row, None, Some(&row), "c", at)
            }
            Next::Correct => {
                let i = user.rng.below(user.rows.len() as u64) as usize;
                let before = user.rows[i].clone();
                let mut after = before.clone();
                if user.rng.chance(0.5) {
                    // A settled amount differs from the authorised one; a
                    // few corrections are large (they must not alert).
                    after.amount_cents = if user.rng.chance(0.3) {
                        user.rng.range(50_000, 500_000)
                    } else {
                        (before.amount_cents + user.rng.range(-500, 500)).max(1)
                    };
                } else {
                    after.merchant = *user.rng.pick(&MERCHANTS).unwrap_or(&"Amazon");
                }
                user.rows[i] = after.clone();
                change(&after, Some(&before), Some(&after), "u", at)
            }
            Next::Reverse => {
                let i = user.rng.below(user.rows.len() as u64) as usize;
                let before = user.rows.remove(i);
                change(&before, Some(&before), None, "d", at)
            }
            Next::Settings(ceiling) => {
                let (action, threshold) = match (user.threshold, ceiling) {
                    (Some(_), Some(c)) => {
                        let lower: Vec<i64> = THRESHOLDS_CENTS
                            .iter()
                            .copied()
                            .filter(|t| *t < c)
                            .collect();
                        ("changed", Some(*user.rng.pick(&lower).unwrap_or(&5_000)))
                    }
                    (None, _) => (
                        "enabled",
                        Some(*user.rng.pick(&THRESHOLDS_CENTS).unwrap_or(&100_000)),
                    ),
                    (Some(_), None) if user.rng.chance(0.35) => ("disabled", None),
                    (Some(t), None) => {
                        let other: Vec<i64> = THRESHOLDS_CENTS
                            .iter()
                            .copied()
                            .filter(|x| *x != t)
                            .collect();
                        ("changed", Some(*user.rng.pick(&other).unwrap_or(&t)))
                    }
                };
                user.threshold = threshold;
                let mut value = json!({ "action": action, "event_ts": at });
                if let Some(t) = threshold {
                    value["threshold"] = json!(amount_text(t));
                }
                Event::new(SETTINGS_TOPIC, Some(user.id.clone()), value, at)
            }
        };
        let next_at = user.schedule(kind, at);
        if next_at < self.end_ms {
            self.queue.push(Reverse((next_at, self.seq, u)));
            self.seq += 1;
        }
        event
    }
}

/// A Debezium change event of the `transactions` table.
fn change(row: &Row, before: Option<&Row>, after: Option<&Row>, op: &str, at: i64) -> Event {
    let value = json!({
        "before": before.map(Row::json),
        "after": after.map(Row::json),
        "source": {
            "version": "2.7.0.Final",
            "connector": "postgresql",
            "name": "corebank",
            "ts_ms": at,
            "snapshot": if op == "r" { "true" } else { "false" },
            "db": "corebank",
            "schema": "public",
            "table": "transactions",
        },
        "op": op,
        "ts_ms": at,
    });
    let key = json!({ "txn_id": row.txn_id }).to_string();
    Event::new(TRANSACTIONS_TOPIC, Some(key), value, at)
}

impl Iterator for Bank {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if let Some((at, row)) = self.snapshot.next() {
            return Some(change(&row, None, Some(&row), "r", at));
        }
        let Reverse((at, _, u)) = self.queue.pop()?;
        Some(self.emit(at, u))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn params(seed: u64, rate: f64, secs: u64) -> Params {
        Params {
            seed,
            rate,
            duration: Duration::from_secs(secs),
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn settings_changes_keep_away_from_the_users_transactions() {
        let events: Vec<Event> = events(&params(3, 40.0, 120)).collect();
        let mut by_user: HashMap<String, Vec<(i64, bool)>> = HashMap::new();
        for e in &events {
            let (user, settings) = if e.topic == SETTINGS_TOPIC {
                (e.key.clone().unwrap(), true)
            } else {
                let image = if e.value["after"].is_null() {
                    &e.value["before"]
                } else {
                    &e.value["after"]
                };
                (image["user_id"].as_str().unwrap().to_string(), false)
            };
            if e.value["op"] == "r" {
                continue;
            }
            by_user
                .entry(user)
                .or_default()
                .push((e.timestamp, settings));
        }
        for (user, evs) in by_user {
            for a in &evs {
                for b in &evs {
                    if a.1 && !b.1 {
                        assert!((a.0 - b.0).abs() >= SETTLE_GAP_MS, "{user}: {a:?} {b:?}");
                    }
                }
            }
        }
        let ops = |op: &str| events.iter().filter(|e| e.value["op"] == op).count();
        assert!(ops("r") > 0 && ops("c") > ops("u") && ops("u") > 0 && ops("d") > 0);
        let actions = |a: &str| events.iter().filter(|e| e.value["action"] == a).count();
        assert!(actions("enabled") > 0 && actions("changed") > 0 && actions("disabled") > 0);
    }

    #[test]
    fn any_rate_and_duration_work() {
        for (rate, ms) in [(0.001, 10), (0.5, 1_000), (1.0, 1), (5_000.0, 200)] {
            let p = Params {
                seed: 1,
                rate,
                duration: Duration::from_millis(ms),
                start_ms: 0,
            };
            assert!(events(&p).all(|e| e.timestamp >= 0 && e.timestamp < ms as i64));
        }
    }
}

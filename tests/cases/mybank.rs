//! MyBank end to end: Debezium change events and threshold settings in,
//! `transactions`, `user_thresholds` and `user_alerts` out, each compared
//! exactly with what the events imply (computed here), through pull queries
//! over the Postgres protocol and in the output topics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use sluice::cases::mybank::{amount_text, SETTINGS_TOPIC, TRANSACTIONS_TOPIC};
use sluice::cases::{Case, Event};

use super::{text, Received, Row, Run};

/// A new transaction (`op = 'c'`) as the events give it.
#[derive(Debug, Clone)]
struct Txn {
    user_id: String,
    txn_id: i64,
    account_id: String,
    amount_cents: i64,
    currency: String,
    merchant: String,
    ts: i64,
}

/// A settings event of a user.
#[derive(Debug, Clone)]
struct Setting {
    action: String,
    threshold_cents: Option<i64>,
    ts: i64,
}

fn cents(v: &Value) -> i64 {
    let s = v.as_str().expect("a decimal string");
    let (units, frac) = s.split_once('.').expect("two decimals");
    units.parse::<i64>().expect("units") * 100 + frac.parse::<i64>().expect("cents")
}

fn new_transactions(events: &[Event]) -> Vec<Txn> {
    events
        .iter()
        .filter(|e| e.topic == TRANSACTIONS_TOPIC && e.value["op"] == "c")
        .map(|e| {
            let a = &e.value["after"];
            Txn {
                user_id: a["user_id"].as_str().unwrap().to_string(),
                txn_id: a["txn_id"].as_i64().unwrap(),
                account_id: a["account_id"].as_str().unwrap().to_string(),
                amount_cents: cents(&a["amount"]),
                currency: a["currency"].as_str().unwrap().to_string(),
                merchant: a["merchant"].as_str().unwrap().to_string(),
                ts: e.value["ts_ms"].as_i64().unwrap(),
            }
        })
        .collect()
}

/// Each user's settings events, in order.
fn settings(events: &[Event]) -> BTreeMap<String, Vec<Setting>> {
    let mut out: BTreeMap<String, Vec<Setting>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.topic == SETTINGS_TOPIC) {
        out.entry(e.key.clone().unwrap())
            .or_default()
            .push(Setting {
                action: e.value["action"].as_str().unwrap().to_string(),
                threshold_cents: e.value.get("threshold").map(cents),
                ts: e.value["event_ts"].as_i64().unwrap(),
            });
    }
    out
}

/// The threshold in force after `settings` (None: alerts off): the latest
/// threshold set, unless the latest action disabled alerts.
fn in_force<'a>(settings: impl IntoIterator<Item = &'a Setting>) -> Option<(i64, i64)> {
    let mut threshold = None;
    let mut state = None;
    for s in settings {
        threshold = s.threshold_cents.or(threshold);
        state = (s.action != "disabled").then_some((threshold, s.ts));
    }
    state.and_then(|(t, since)| t.map(|t| (t, since)))
}

/// `yyyy-MM-dd HH:mm:ss` in UTC.
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The last record of every key (None: deleted), from a changelog topic.
fn latest(records: &[Received]) -> BTreeMap<Vec<u8>, Option<Value>> {
    let mut out = BTreeMap::new();
    for r in records {
        out.insert(r.key.clone().unwrap_or_default(), r.value.clone());
    }
    out
}

/// A topic's records as (key, value, timestamp), sorted.
fn record_set(records: &[Received]) -> Vec<(String, String, i64)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap_or_default()).unwrap(),
                r.value.as_ref().map(Value::to_string).unwrap_or_default(),
                r.timestamp,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn mybank_alerts_on_the_threshold_in_force() {
    let run = Run::start(Case::MyBank);
    let params = Run::params(11, 30.0, Duration::from_secs(40));
    let events = run.generate(&params);

    let txns = new_transactions(&events);
    let settings = settings(&events);
    let ops: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.value["op"].as_str())
        .collect();
    assert_eq!(
        ops,
        BTreeSet::from(["c", "d", "r", "u"]),
        "every Debezium op is exercised"
    );

    // transactions: the new rows, keyed by owner.
    let mut expected_txns: Vec<Row> = txns
        .iter()
        .map(|t| {
            vec![
                text(&t.user_id),
                text(t.txn_id),
                text(&t.account_id),
                text(amount_text(t.amount_cents)),
                text(&t.currency),
                text(&t.merchant),
                text(t.ts),
            ]
        })
        .collect();
    expected_txns.sort_by_key(|r| r[1].as_ref().unwrap().parse::<i64>().unwrap());
    run.eventually(
        "SELECT user_id, txn_id, account_id, amount, currency, merchant, ts_ms FROM transactions ORDER BY txn_id",
        &expected_txns,
    );
    let mut topic_txns: Vec<(String, String, i64)> = txns
        .iter()
        .map(|t| {
            let value = json!({
                "TXN_ID": t.txn_id,
                "ACCOUNT_ID": t.account_id,
                "AMOUNT": decimal_json(t.amount_cents),
                "CURRENCY": t.currency,
                "MERCHANT": t.merchant,
                "TS_MS": t.ts,
            });
            (t.user_id.clone(), value.to_string(), t.ts)
        })
        .collect();
    topic_txns.sort();
    assert_eq!(record_set(&run.topic("transactions")), topic_txns);

    // user_thresholds: the threshold in force now, per user.
    let expected_thresholds: Vec<Row> = settings
        .iter()
        .filter_map(|(user, s)| {
            in_force(s).map(|(t, since)| vec![text(user), text(amount_text(t)), text(since)])
        })
        .collect();
    assert!(!expected_thresholds.is_empty());
    run.eventually(
        "SELECT user_id, threshold, since_ts FROM user_thresholds ORDER BY user_id",
        &expected_thresholds,
    );
    // Its changelog: one record per settings event, a tombstone when
    // alerts were turned off.
    let changelog = run.topic("USER_THRESHOLDS");
    let mut got: BTreeMap<String, Vec<Option<Value>>> = BTreeMap::new();
    for r in &changelog {
        got.entry(String::from_utf8(r.key.clone().unwrap()).unwrap())
            .or_default()
            .push(r.value.clone());
    }
    let want: BTreeMap<String, Vec<Option<Value>>> = settings
        .iter()
        .map(|(user, s)| {
            let values = (1..=s.len())
                .map(|n| {
                    in_force(&s[..n])
                        .map(|(t, since)| json!({"THRESHOLD": decimal_json(t), "SINCE_TS": since}))
                })
                .collect();
            (user.clone(), values)
        })
        .collect();
    assert_eq!(got, want);
    let latest_thresholds = latest(&changelog);
    assert_eq!(
        latest_thresholds.values().filter(|v| v.is_some()).count(),
        expected_thresholds.len()
    );

    // user_alerts: every new transaction above the threshold in force at
    // its time (settings strictly before it: the generator keeps them two
    // seconds apart).
    let alerts: Vec<&Txn> = txns
        .iter()
        .filter(|t| {
            let before = settings
                .get(&t.user_id)
                .map(|s| s.iter().filter(|s| s.ts < t.ts).collect::<Vec<_>>())
                .unwrap_or_default();
            in_force(before).is_some_and(|(threshold, _)| t.amount_cents > threshold)
        })
        .collect();
    assert!(
        alerts.len() >= 3,
        "too few alerts to show anything: {}",
        alerts.len()
    );
    // The point of the case: thresholds lowered just after a large
    // transaction, below its amount, do not alert on it.
    let lowered_after: Vec<&Txn> = txns
        .iter()
        .filter(|t| {
            let s = settings
                .get(&t.user_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let now = in_force(s.iter().filter(|s| s.ts < t.ts));
            let later = in_force(s.iter().filter(|s| s.ts < t.ts + 10_000));
            now.is_some_and(|(n, _)| t.amount_cents <= n)
                && later.is_some_and(|(l, _)| t.amount_cents > l)
        })
        .collect();
    assert!(
        !lowered_after.is_empty(),
        "no threshold lowered after a large transaction"
    );
    assert!(lowered_after
        .iter()
        .all(|t| !alerts.iter().any(|a| a.txn_id == t.txn_id)));

    let threshold_at = |t: &Txn| {
        let s = settings
            .get(&t.user_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        in_force(s.iter().filter(|s| s.ts < t.ts))
            .map(|(x, _)| x)
            .unwrap()
    };
    let mut expected_alerts: Vec<Row> = alerts
        .iter()
        .map(|t| {
            vec![
                text(&t.user_id),
                text(t.txn_id),
                text(&t.account_id),
                text(amount_text(t.amount_cents)),
                text(&t.currency),
                text(&t.merchant),
                text(amount_text(threshold_at(t))),
                text(utc(t.ts)),
            ]
        })
        .collect();
    expected_alerts.sort_by_key(|r| r[1].as_ref().unwrap().parse::<i64>().unwrap());
    run.eventually(
        "SELECT user_id, txn_id, account_id, amount, currency, merchant, threshold, txn_time FROM user_alerts ORDER BY txn_id",
        &expected_alerts,
    );
    let mut topic_alerts: Vec<(String, String, i64)> = alerts
        .iter()
        .map(|t| {
            let value = json!({
                "TXN_ID": t.txn_id,
                "ACCOUNT_ID": t.account_id,
                "AMOUNT": decimal_json(t.amount_cents),
                "CURRENCY": t.currency,
                "MERCHANT": t.merchant,
                "THRESHOLD": decimal_json(threshold_at(t)),
                "TXN_TIME": utc(t.ts),
            });
            (t.user_id.clone(), value.to_string(), t.ts)
        })
        .collect();
    topic_alerts.sort();
    assert_eq!(record_set(&run.topic("USER_ALERTS")), topic_alerts);
}

/// A DECIMAL(18,2) as Sluice writes it in JSON.
fn decimal_json(cents: i64) -> Value {
    serde_json::from_str(&amount_text(cents)).unwrap()
}

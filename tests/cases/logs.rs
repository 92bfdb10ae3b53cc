//! Logs end to end: request logs in; per-service minute metrics (live and
//! final), error-rate alerts and slow requests out, each compared exactly with what
//! the events imply (computed here), through pull queries over the Postgres
//! protocol and in the output topics; and the Parquet archive holds every
//! log line once.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::cases::logs::{INCIDENT_SERVICE, TOPIC};
use sluice::cases::{Case, Event, Params};

use super::{
    eventually_sorted, expected_json, latest, numbers_as_f64, stream_records, text, windowed_key,
    Row, Run,
};

const MINUTE: i64 = 60_000;
/// service_metrics and service_minutes: TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS).
const GRACE: i64 = 10_000;
/// service_minutes: RETENTION 2 MINUTES.
const RETENTION: i64 = 2 * MINUTE;
/// slow_requests: latency_ms > 2000.
const SLOW_MS: i64 = 2_000;

#[derive(Debug, Clone)]
struct Line {
    host: String,
    service: String,
    level: String,
    method: String,
    path: String,
    status: i64,
    latency_ms: i64,
    bytes: i64,
    trace_id: String,
    ts: i64,
}

fn lines(events: &[Event]) -> Vec<Line> {
    events
        .iter()
        .filter(|e| e.topic == TOPIC)
        .map(|e| {
            let v = &e.value;
            let s = |f: &str| v[f].as_str().unwrap().to_string();
            let i = |f: &str| v[f].as_i64().unwrap();
            Line {
                host: e.key.clone().unwrap(),
                service: s("service"),
                level: s("level"),
                method: s("method"),
                path: s("path"),
                status: i("status"),
                latency_ms: i("latency_ms"),
                bytes: i("bytes"),
                trace_id: s("trace_id"),
                ts: i("event_ts"),
            }
        })
        .collect()
}

/// One service's minute.
#[derive(Debug, Default)]
struct Minute {
    requests: i64,
    server_errors: i64,
    client_errors: i64,
    latency_sum: i64,
    max_latency: i64,
    /// Latencies, largest first, ties in arrival (time) order.
    latencies: Vec<i64>,
}

impl Minute {
    fn avg(&self) -> f64 {
        self.latency_sum as f64 / self.requests as f64
    }

    fn slowest(&self) -> Vec<i64> {
        self.latencies.iter().take(3).copied().collect()
    }

    /// ROUND(100 * server_errors / requests, 1), half up.
    fn error_pct(&self) -> f64 {
        let tenths = (2_000 * self.server_errors + self.requests) / (2 * self.requests);
        format!("{tenths}e-1").parse().unwrap()
    }

    /// error_alerts: requests >= 20 AND server_errors * 20 > requests.
    fn alerting(&self) -> bool {
        self.requests >= 20 && self.server_errors * 20 > self.requests
    }
}

#[test]
fn logs_metrics_alerts_and_archive() {
    let run = Run::start(Case::Logs);
    // Event time starts 30 s into a minute (at most a minute ago), so the
    // first minute holds most of the incident and is over, grace period
    // included, 40 s later, before the 45 s of events end: its alert is
    // final. Pacing is relative to the first event.
    let now = Run::params(0, 0.0, Duration::ZERO).start_ms;
    let start_ms = (now - 30_000).div_euclid(MINUTE) * MINUTE + 30_000;
    let params = Params {
        seed: 4,
        rate: 80.0,
        duration: Duration::from_secs(45),
        start_ms,
    };
    let events = run.generate(&params);
    let lines = lines(&events);

    // service_metrics.
    let mut minutes: BTreeMap<(String, i64), Minute> = BTreeMap::new();
    for l in &lines {
        let m = minutes
            .entry((l.service.clone(), l.ts - l.ts.rem_euclid(MINUTE)))
            .or_default();
        m.requests += 1;
        m.server_errors += i64::from(l.status >= 500);
        m.client_errors += i64::from((400..500).contains(&l.status));
        m.latency_sum += l.latency_ms;
        m.max_latency = m.max_latency.max(l.latency_ms);
        let at = m.latencies.partition_point(|x| *x >= l.latency_ms);
        m.latencies.insert(at, l.latency_ms);
    }
    let rows: Vec<Row> = minutes
        .iter()
        .map(|((service, start), m)| {
            vec![
                text(service),
                text(start),
                text(start + MINUTE),
                text(m.requests),
                text(m.server_errors),
                text(m.client_errors),
                text(m.avg()),
                text(m.max_latency),
                text(json!(m.slowest())),
            ]
        })
        .collect();
    eventually_sorted(
        &run,
        "SELECT service, windowstart, windowend, requests, server_errors, client_errors, avg_latency_ms, max_latency_ms, slowest_ms FROM service_metrics",
        &rows,
    );
    let want: BTreeMap<Vec<u8>, Option<Value>> = minutes
        .iter()
        .map(|((service, start), m)| {
            let v = json!({
                "REQUESTS": m.requests,
                "SERVER_ERRORS": m.server_errors,
                "CLIENT_ERRORS": m.client_errors,
                "AVG_LATENCY_MS": m.avg(),
                "MAX_LATENCY_MS": m.max_latency,
                "SLOWEST_MS": m.slowest(),
            });
            (windowed_key(service, *start), Some(expected_json(&v)))
        })
        .collect();
    assert_eq!(
        latest(&run.topic("SERVICE_METRICS")),
        want,
        "service_metrics topic"
    );

    // service_minutes: EMIT FINAL emits a minute once stream time (the
    // largest event time so far) reaches its end plus grace, unless it has
    // expired by then (start older than stream time minus the retention).
    let closing = |start: i64| {
        lines
            .iter()
            .map(|l| l.ts)
            .find(|ts| *ts >= start + MINUTE + GRACE)
    };
    let finished: Vec<(&(String, i64), &Minute)> = minutes
        .iter()
        .filter(|((_, start), _)| closing(*start).is_some_and(|st| *start >= st - RETENTION))
        .collect();
    assert!(!finished.is_empty(), "no minute is over");
    let final_rows = |minutes: &[(&(String, i64), &Minute)]| -> Vec<Row> {
        minutes
            .iter()
            .map(|((service, start), m)| {
                vec![
                    text(service),
                    text(start),
                    text(start + MINUTE),
                    text(m.requests),
                    text(m.server_errors),
                    text(m.error_pct()),
                ]
            })
            .collect()
    };
    let final_records = |minutes: &[(&(String, i64), &Minute)]| -> Vec<(Vec<u8>, Option<Value>)> {
        minutes
            .iter()
            .map(|((service, start), m)| {
                let v = json!({
                    "REQUESTS": m.requests,
                    "SERVER_ERRORS": m.server_errors,
                    "ERROR_PCT": m.error_pct(),
                });
                (windowed_key(service, *start), Some(expected_json(&v)))
            })
            .collect()
    };
    let topic_records = |name: &str| {
        let mut got: Vec<(Vec<u8>, Option<Value>)> = run
            .topic(name)
            .into_iter()
            .map(|r| {
                (
                    r.key.unwrap_or_default(),
                    r.value.as_ref().map(numbers_as_f64),
                )
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    };
    eventually_sorted(
        &run,
        "SELECT service, windowstart, windowend, requests, server_errors, error_pct FROM service_minutes",
        &final_rows(&finished),
    );
    assert_eq!(
        topic_records("SERVICE_MINUTES"),
        final_records(&finished),
        "service_minutes topic: one record per finished minute"
    );

    // error_alerts: the finished minutes above 5% server errors.
    let alerts: Vec<(&(String, i64), &Minute)> = finished
        .iter()
        .copied()
        .filter(|(_, m)| m.alerting())
        .collect();
    assert!(
        alerts.iter().any(|((s, _), _)| s == INCIDENT_SERVICE),
        "the incident raised no alert: {alerts:?}"
    );
    assert!(
        alerts.iter().all(|((s, _), _)| s == INCIDENT_SERVICE),
        "{alerts:?}"
    );
    eventually_sorted(
        &run,
        "SELECT service, windowstart, windowend, requests, server_errors, error_pct FROM error_alerts",
        &final_rows(&alerts),
    );
    // A table's filter writes a tombstone for a row that does not pass
    // (as ksqlDB does): one record per finished minute, a value when it
    // alerts.
    let mut want: Vec<(Vec<u8>, Option<Value>)> = final_records(&finished)
        .into_iter()
        .zip(&finished)
        .map(|((key, value), (_, m))| (key, value.filter(|_| m.alerting())))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        topic_records("ERROR_ALERTS"),
        want,
        "error_alerts topic: one record per finished minute"
    );

    // slow_requests.
    let slow: Vec<&Line> = lines.iter().filter(|l| l.latency_ms > SLOW_MS).collect();
    assert!(!slow.is_empty(), "no slow request");
    let rows: Vec<Row> = slow
        .iter()
        .map(|l| {
            vec![
                text(&l.service),
                text(&l.host),
                text(&l.method),
                text(&l.path),
                text(l.status),
                text(l.latency_ms),
                text(&l.trace_id),
                text(l.ts),
            ]
        })
        .collect();
    eventually_sorted(
        &run,
        "SELECT service, host, method, path, status, latency_ms, trace_id, ROWTIME FROM slow_requests",
        &rows,
    );
    let mut want: Vec<(Vec<u8>, String, i64)> = slow
        .iter()
        .map(|l| {
            let v = json!({
                "HOST": l.host, "METHOD": l.method, "PATH": l.path, "STATUS": l.status,
                "LATENCY_MS": l.latency_ms, "TRACE_ID": l.trace_id,
            });
            (
                l.service.as_bytes().to_vec(),
                expected_json(&v).to_string(),
                l.ts,
            )
        })
        .collect();
    want.sort();
    assert_eq!(
        stream_records(&run, "SLOW_REQUESTS"),
        want,
        "slow_requests topic"
    );

    // The archive: every line exactly once.
    let sql = "SELECT \"HOST\", \"SERVICE\", \"LEVEL\", \"METHOD\", \"PATH\", \"STATUS\", \"LATENCY_MS\", \"BYTES\", \"TRACE_ID\", \"EVENT_TS\", \"ROWTIME\", \"ROWPARTITION\", \"ROWOFFSET\" FROM archive";
    let mut want: Vec<Row> = lines
        .iter()
        .map(|l| {
            vec![
                text(&l.host),
                text(&l.service),
                text(&l.level),
                text(&l.method),
                text(&l.path),
                text(l.status),
                text(l.latency_ms),
                text(l.bytes),
                text(&l.trace_id),
                text(l.ts),
                text(l.ts),
            ]
        })
        .collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = if run.analytics_files("request_logs").is_empty() {
            Vec::new()
        } else {
            run.analytics("request_logs", sql)
        };
        let mut got: Vec<Row> = rows.iter().map(|r| r[..11].to_vec()).collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            assert_eq!(got.len(), want.len(), "rows in the archive");
            assert_eq!(got, want, "the archive");
            let places: HashSet<(Option<String>, Option<String>)> = rows
                .iter()
                .map(|r| (r[11].clone(), r[12].clone()))
                .collect();
            assert_eq!(
                places.len(),
                rows.len(),
                "(ROWPARTITION, ROWOFFSET) repeats"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

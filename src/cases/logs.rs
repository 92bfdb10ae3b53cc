//! Logs: request logs of a small fleet of microservices.
//!
//! Every service runs on a few hosts; each request it serves is one JSON log
//! line in `request_logs`, keyed by host (as a log shipper writes them):
//! service, host, level, method, path, status, latency_ms, bytes, trace_id,
//! event_ts. Requests arrive as a Poisson stream, shared among the services
//! by weight; latencies scatter around each service's base latency with a
//! long tail; about 3% of requests are client errors (4xx, WARN) and 0.5%
//! server errors (5xx, ERROR).
//!
//! An incident hits `payments` between 30% and 70% of the span: its
//! database pool is exhausted, 40% of its requests fail with 503/504 and its
//! latency grows five-fold. The other services are unaffected.

use serde_json::json;

use super::{Event, Params, Rng};

/// The topic of the request logs.
pub const TOPIC: &str = "request_logs";

/// The service hit by the incident.
pub const INCIDENT_SERVICE: &str = "payments";
/// The incident's span, as fractions of the whole span.
pub const INCIDENT: (f64, f64) = (0.3, 0.7);

struct Service {
    name: &'static str,
    /// Share of the traffic.
    weight: f64,
    /// Typical latency, ms.
    base_ms: f64,
    hosts: usize,
    paths: &'static [(&'static str, &'static str)],
}

const SERVICES: [Service; 6] = [
    Service {
        name: "frontend",
        weight: 0.35,
        base_ms: 35.0,
        hosts: 4,
        paths: &[
            ("GET", "/"),
            ("GET", "/product"),
            ("GET", "/cart"),
            ("GET", "/static/app.js"),
        ],
    },
    Service {
        name: "search",
        weight: 0.2,
        base_ms: 80.0,
        hosts: 3,
        paths: &[("GET", "/search"), ("GET", "/suggest")],
    },
    Service {
        name: "auth",
        weight: 0.15,
        base_ms: 20.0,
        hosts: 2,
        paths: &[
            ("POST", "/login"),
            ("POST", "/token/refresh"),
            ("GET", "/me"),
        ],
    },
    Service {
        name: "inventory",
        weight: 0.1,
        base_ms: 55.0,
        hosts: 2,
        paths: &[("GET", "/stock"), ("PUT", "/stock/reserve")],
    },
    Service {
        name: "checkout",
        weight: 0.1,
        base_ms: 120.0,
        hosts: 2,
        paths: &[("POST", "/checkout"), ("GET", "/checkout/summary")],
    },
    Service {
        name: "payments",
        weight: 0.1,
        base_ms: 180.0,
        hosts: 2,
        paths: &[
            ("POST", "/payments"),
            ("POST", "/payments/refund"),
            ("GET", "/payments/status"),
        ],
    },
];

struct Logs {
    rng: Rng,
    next_at: f64,
    end_ms: i64,
    mean_gap_ms: f64,
    incident: (i64, i64),
}

/// The log events for `params`, in timestamp order.
pub fn events(params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    let span = (params.end_ms() - params.start_ms) as f64;
    let at = |f: f64| params.start_ms + (span * f) as i64;
    Box::new(Logs {
        rng: Rng::new(params.seed),
        next_at: params.start_ms as f64,
        end_ms: params.end_ms(),
        mean_gap_ms: 1_000.0 / params.rate.max(1e-9),
        incident: (at(INCIDENT.0), at(INCIDENT.1)),
    })
}

impl Logs {
    /// One request, logged at `at`.
    fn request(&mut self, at: i64) -> Event {
        let rng = &mut self.rng;
        let weights: Vec<f64> = SERVICES.iter().map(|s| s.weight).collect();
        let s = &SERVICES[rng.weighted(&weights)];
        let host = format!("{}-{}", s.name, 1 + rng.below(s.hosts as u64));
        let (method, path) = *rng.pick(s.paths).unwrap_or(&("GET", "/"));
        let incident =
            s.name == INCIDENT_SERVICE && (self.incident.0..self.incident.1).contains(&at);
        // A long-tailed latency around the base: half fixed, half
        // exponential, and one request in fifty much slower.
        let base = if incident { s.base_ms * 5.0 } else { s.base_ms };
        let mut latency = base * 0.5 + rng.exponential(base * 0.5);
        if rng.chance(0.02) {
            latency *= 4.0 + rng.unit() * 6.0;
        }
        let latency_ms = latency.round().clamp(1.0, 60_000.0) as i64;
        let x = rng.unit();
        let status = if incident && x < 0.4 {
            if rng.chance(0.7) {
                503
            } else {
                504
            }
        } else if x < 0.005 {
            *rng.pick(&[500, 502, 503]).unwrap_or(&500)
        } else if x < 0.035 {
            *rng.pick(&[400, 401, 404, 404, 429]).unwrap_or(&404)
        } else if method == "POST" {
            201
        } else if rng.chance(0.05) {
            304
        } else {
            200
        };
        let level = match status {
            500.. => "ERROR",
            400.. => "WARN",
            _ => "INFO",
        };
        let bytes = match status {
            304 => 0,
            200 | 201 => 200 + rng.below(20_000) as i64,
            _ => 50 + rng.below(200) as i64,
        };
        let trace_id = format!("{:016x}", rng.next_u64());
        let value = json!({
            "service": s.name,
            "level": level,
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": latency_ms,
            "bytes": bytes,
            "trace_id": trace_id,
            "event_ts": at,
        });
        Event::new(TOPIC, Some(host), value, at)
    }
}

impl Iterator for Logs {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let at = self.next_at as i64;
        if at >= self.end_ms {
            return None;
        }
        self.next_at += self.rng.exponential(self.mean_gap_ms);
        Some(self.request(at))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_incident_shows_in_errors_and_latency_of_one_service() {
        let p = Params {
            seed: 2,
            rate: 200.0,
            duration: Duration::from_secs(100),
            start_ms: 0,
        };
        // (service, in incident) -> (requests, 5xx, latency sum)
        let mut stats: BTreeMap<(String, bool), (u64, u64, i64)> = BTreeMap::new();
        for e in events(&p) {
            let service = e.value["service"].as_str().unwrap().to_string();
            let during = (30_000..70_000).contains(&e.timestamp);
            let s = stats.entry((service, during)).or_default();
            s.0 += 1;
            s.1 += u64::from(e.value["status"].as_i64().unwrap() >= 500);
            s.2 += e.value["latency_ms"].as_i64().unwrap();
            assert_eq!(
                e.key.unwrap().split('-').next(),
                e.value["service"].as_str()
            );
        }
        for ((service, during), (n, errors, latency)) in stats {
            let rate = errors as f64 / n as f64;
            let avg = latency as f64 / n as f64;
            if service == INCIDENT_SERVICE && during {
                assert!(rate > 0.3 && avg > 500.0, "{service}: {rate} {avg}");
            } else {
                assert!(rate < 0.03, "{service} {during}: {rate}");
            }
        }
    }

    #[test]
    fn any_rate_and_duration_work() {
        for (rate, ms) in [(0.001, 10), (0.5, 1_000), (1.0, 1), (50_000.0, 100)] {
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

//! The case studies (`queries/*.sql`) and `sluice gen`: deterministic,
//! realistic event generators for them.
//!
//! Each case is a small simulation (users watching shows, taxis driving
//! along paths, bursts of likes, a mix of small and large transactions,
//! services logging requests) that yields [`Event`]s in timestamp order. The
//! same [`Params`] (seed, rate, duration, start) always give the same events,
//! so a test can produce them to Kafka with `sluice gen` and compute the
//! expected results from [`events`] independently of the engine.
//!
//! Time is event time: `rate` events per second spread over `duration`,
//! starting at `start_ms`. [`produce`] writes them to Kafka either as fast as
//! it can or paced in real time (an event is sent when the wall clock reaches
//! its timestamp).

pub mod gettaxi;
pub mod logs;
pub mod movieflix;
pub mod mybank;
mod rng;
pub mod social;
mod tour;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use rng::Rng;
pub use tour::{tour, Step};

use crate::connectors::kafka::KafkaTopics;
use crate::connectors::namespaced::Namespaced;
use crate::connectors::{OutRecord, Topics};
use crate::error::{Error, Result};

/// A case study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    MovieFlix,
    GetTaxi,
    Social,
    MyBank,
    Logs,
}

impl Case {
    /// Every case, in the order the demo loads them.
    pub const ALL: [Case; 5] = [
        Case::MovieFlix,
        Case::GetTaxi,
        Case::Social,
        Case::MyBank,
        Case::Logs,
    ];

    /// The name on the command line, also the stem of its `queries/*.sql`.
    pub fn name(self) -> &'static str {
        match self {
            Case::MovieFlix => "movieflix",
            Case::GetTaxi => "gettaxi",
            Case::Social => "social",
            Case::MyBank => "mybank",
            Case::Logs => "logs",
        }
    }

    /// The case's name for people.
    pub fn title(self) -> &'static str {
        match self {
            Case::MovieFlix => "MovieFlix: resume points, live profiles, recommendations",
            Case::GetTaxi => "GetTaxi: where taxis are, surge pricing, the nearest free taxi",
            Case::Social => "MySocialMedia: posts with live counts, trending posts",
            Case::MyBank => "MyBank: alerts on large transactions from CDC data",
            Case::Logs => "Logs: errors and latency per service per minute, alerts",
        }
    }

    /// The case's share of the demo's event rate.
    pub fn demo_share(self) -> f64 {
        match self {
            Case::MovieFlix => 0.3,
            Case::GetTaxi => 0.25,
            Case::Social => 0.15,
            Case::MyBank => 0.1,
            Case::Logs => 0.2,
        }
    }

    /// The case's query file, embedded in the binary (the demo loads it).
    pub fn queries(self) -> &'static str {
        match self {
            Case::MovieFlix => include_str!("../../queries/movieflix.sql"),
            Case::GetTaxi => include_str!("../../queries/gettaxi.sql"),
            Case::Social => include_str!("../../queries/social.sql"),
            Case::MyBank => include_str!("../../queries/mybank.sql"),
            Case::Logs => include_str!("../../queries/logs.sql"),
        }
    }
}

impl std::str::FromStr for Case {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Case::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Case::ALL.iter().map(|c| c.name()).collect();
                Error::semantic(format!(
                    "unknown case '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Seeds every random choice: equal params, equal events.
    pub seed: u64,
    /// Events per second of event time (about: a simulation may burst).
    pub rate: f64,
    /// How much event time the events span.
    pub duration: Duration,
    /// The first event's time, in milliseconds since the epoch.
    pub start_ms: i64,
}

impl Params {
    /// The approximate number of events (`rate` × `duration`), at least 1.
    pub fn volume(&self) -> usize {
        ((self.rate * self.duration.as_secs_f64()).round() as usize).max(1)
    }

    /// The end of the event time span (exclusive).
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.duration.as_millis() as i64
    }
}

/// One record for a case's topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The topic, as the case's `queries/*.sql` names it.
    pub topic: &'static str,
    /// The key, written as a KAFKA-format string (UTF-8 bytes); None: no key.
    pub key: Option<String>,
    /// The JSON value; `Null` is a tombstone.
    pub value: serde_json::Value,
    /// Record time, milliseconds since the epoch.
    pub timestamp: i64,
}

impl Event {
    pub fn new(
        topic: &'static str,
        key: Option<String>,
        value: serde_json::Value,
        timestamp: i64,
    ) -> Self {
        Self {
            topic,
            key,
            value,
            timestamp,
        }
    }
}

/// The events of a case, in timestamp order.
pub fn events(case: Case, params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    match case {
        Case::MovieFlix => movieflix::events(params),
        Case::GetTaxi => gettaxi::events(params),
        Case::Social => social::events(params),
        Case::MyBank => mybank::events(params),
        Case::Logs => logs::events(params),
    }
}

/// How [`produce`] writes.
#[derive(Debug, Clone)]
pub struct Target {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Prepended to every topic name (the server's `topic_prefix`).
    pub topic_prefix: String,
    /// Send each event when the wall clock reaches its time (relative to
    /// the first), rather than as fast as possible.
    pub paced: bool,
}

/// Records sent per batch when not paced.
const BATCH: usize = 1_000;

/// Produce a case's events to Kafka; returns how many were written. The
/// topics must exist (the case's statements create them), so that their
/// partition counts are the declared ones.
pub fn produce(case: Case, params: &Params, target: &Target) -> Result<usize> {
    let kafka: Arc<dyn Topics> = Arc::new(KafkaTopics::connect(&target.bootstrap, &[])?);
    let topics = Namespaced::new(kafka, target.topic_prefix.clone());
    let mut checked: Vec<&'static str> = Vec::new();
    let mut pending: Vec<OutRecord> = Vec::new();
    let mut written = 0;
    let mut send = |pending: &mut Vec<OutRecord>| -> Result<()> {
        topics.produce_all(pending).map_err(Error::from)?;
        written += pending.len();
        pending.clear();
        Ok(())
    };
    let started = Instant::now();
    for event in events(case, params) {
        if !checked.contains(&event.topic) {
            if !topics.exists(event.topic) {
                return Err(Error::semantic(format!(
                    "topic '{}{}' does not exist: run the statements of queries/{}.sql first (they create it with its partitions)",
                    target.topic_prefix,
                    event.topic,
                    case.name()
                )));
            }
            checked.push(event.topic);
        }
        if target.paced {
            let due = Duration::from_millis((event.timestamp - params.start_ms).max(0) as u64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                send(&mut pending)?;
                std::thread::sleep(wait);
            }
        }
        // A batch spans at most a second of event time: its records become
        // visible together, so readers never see one partition far ahead
        // of another.
        let spans_a_second = pending
            .first()
            .is_some_and(|first| event.timestamp - first.timestamp >= 1_000);
        if spans_a_second || pending.len() >= BATCH {
            send(&mut pending)?;
        }
        pending.push(record(event));
    }
    send(&mut pending)?;
    Ok(written)
}

/// An event as a topic record: KAFKA-format key, JSON value.
fn record(event: Event) -> OutRecord {
    let key = event
        .key
        .map(|k| Arc::from(k.into_bytes().into_boxed_slice()));
    let value = match event.value {
        serde_json::Value::Null => None,
        v => Some(Arc::from(v.to_string().into_bytes().into_boxed_slice())),
    };
    OutRecord::new(event.topic, key, value, event.timestamp)
}

/// Parse a duration such as `90s`, `5m`, `2h`, `500ms` or `30` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        Error::semantic(format!(
            "invalid duration '{text}': expected e.g. 90s, 5m, 2h"
        ))
    })?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(|| {
        Error::semantic(format!(
            "invalid duration '{text}': expected a number with ms, s, m or h"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> Params {
        Params {
            seed,
            rate: 50.0,
            duration: Duration::from_secs(120),
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn every_case_is_deterministic_ordered_and_within_its_span() {
        for case in Case::ALL {
            let p = params(7);
            let a: Vec<Event> = events(case, &p).collect();
            let b: Vec<Event> = events(case, &p).collect();
            assert_eq!(a, b, "{}: same params, same events", case.name());
            assert!(!a.is_empty(), "{}: no events", case.name());
            assert!(
                a.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
                "{}: events out of time order",
                case.name()
            );
            assert!(
                a.iter()
                    .all(|e| e.timestamp >= p.start_ms && e.timestamp < p.end_ms()),
                "{}: an event outside [start, start + duration)",
                case.name()
            );
            let c: Vec<Event> = events(case, &params(8)).collect();
            assert_ne!(a, c, "{}: another seed, other events", case.name());
        }
    }

    #[test]
    fn case_names_and_durations_parse() {
        assert_eq!("MovieFlix".parse::<Case>().unwrap(), Case::MovieFlix);
        assert_eq!(
            "taxi".parse::<Case>().unwrap_err().to_string(),
            "unknown case 'taxi': expected one of movieflix, gettaxi, social, mybank, logs"
        );
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_duration("5 parsecs").unwrap_err().to_string(),
            "invalid duration '5 parsecs': expected a number with ms, s, m or h"
        );
    }
}

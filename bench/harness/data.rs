//! The benchmark's input: records in the shapes of the case studies
//! (MovieFlix heartbeats and shows, GetTaxi positions, MyBank accounts),
//! deterministic for their parameters, and Nexmark's events.

pub use sluice::cases::Rng;

/// One record: key, value, timestamp (ms).
pub type Rec = (String, String, i64);

/// Event time of the first record: 2026-01-01T00:00:00Z.
pub const BASE_MS: i64 = 1_767_225_600_000;

/// Shows in the `shows` table (and ids the views pick from).
pub const SHOWS: u64 = 10_000;

/// Taxis moving between regions.
pub const TAXIS: u64 = 100_000;
const REGIONS: u64 = 64;
const DEVICES: [&str; 4] = ["tv", "phone", "web", "tablet"];
const GENRES: [&str; 8] = [
    "drama",
    "comedy",
    "crime",
    "documentary",
    "kids",
    "horror",
    "sci-fi",
    "romance",
];

/// MovieFlix playback heartbeats: `n` of them, 10,000 per second of event
/// time, over 1M users and the shows' ids. Keyed by show, the column every
/// topology groups or joins by, so that no engine has to repartition them
/// (Kafka Streams would otherwise send each through a repartition topic,
/// which Sluice, one process, never does).
pub fn views(n: u64) -> impl Iterator<Item = Rec> {
    let mut rng = Rng::new(7);
    (0..n).map(move |i| {
        let user = rng.below(1_000_000);
        let show = rng.below(SHOWS);
        let position = rng.below(3600);
        let device = DEVICES[rng.below(4) as usize];
        (
            format!("s{show}"),
            format!(r#"{{"user_id":"u{user}","position":{position},"device":"{device}"}}"#),
            BASE_MS + (i / 10) as i64,
        )
    })
}

/// The shows table, stamped an hour before the first view.
pub fn shows() -> impl Iterator<Item = Rec> {
    (0..SHOWS).map(|s| {
        (
            format!("s{s}"),
            format!(
                r#"{{"title":"Show {s}","genre":"{}"}}"#,
                GENRES[(s % GENRES.len() as u64) as usize]
            ),
            BASE_MS - 3_600_000,
        )
    })
}

/// GetTaxi position updates, keyed by taxi: every update may move the taxi
/// to another region, so a count per region sees retractions.
pub fn taxis(n: u64) -> impl Iterator<Item = Rec> {
    let mut rng = Rng::new(11);
    (0..n).map(move |i| {
        let taxi = rng.below(TAXIS);
        let region = rng.below(REGIONS);
        let lat = 52.3 + rng.below(10_000) as f64 / 25_000.0;
        let lon = 13.1 + rng.below(10_000) as f64 / 16_000.0;
        (
            format!("t{taxi}"),
            format!(r#"{{"region":"r{region}","lat":{lat:.5},"lon":{lon:.5}}}"#),
            BASE_MS + (i / 10) as i64,
        )
    })
}

/// Bank accounts for point lookups: one record per account.
pub fn accounts(n: u64) -> impl Iterator<Item = Rec> {
    let mut rng = Rng::new(13);
    (0..n).map(move |i| {
        let balance = rng.below(1_000_000);
        (
            account_id(i),
            format!(r#"{{"owner":"owner {}","balance":{balance}}}"#, i % 50_000),
            BASE_MS + (i / 100) as i64,
        )
    })
}

/// The key of account `i`.
pub fn account_id(i: u64) -> String {
    format!("a{i:08}")
}

/// `n` records with `n` distinct keys, for state larger than memory.
pub fn distinct_keys(n: u64) -> impl Iterator<Item = Rec> {
    (0..n).map(|i| {
        (
            format!("k{i:010}"),
            format!(r#"{{"v":{}}}"#, i % 1000),
            BASE_MS + (i / 1000) as i64,
        )
    })
}

/// Nexmark's events, split by kind into (person, auction, bid) records with
/// no key, stamped with the event's `date_time`.
pub fn nexmark(n: u64) -> Result<[Vec<Rec>; 3], String> {
    use nexmark::config::NexmarkConfig;
    use nexmark::event::Event;
    let config = NexmarkConfig {
        base_time: BASE_MS as u64,
        ..Default::default()
    };
    let mut out: [Vec<Rec>; 3] = Default::default();
    for event in nexmark::EventGenerator::new(config).take(n as usize) {
        let (i, json, ts) = match &event {
            Event::Person(p) => (0, serde_json::to_string(p), p.date_time),
            Event::Auction(a) => (1, serde_json::to_string(a), a.date_time),
            Event::Bid(b) => (2, serde_json::to_string(b), b.date_time),
        };
        let json = json.map_err(|e| format!("cannot encode a Nexmark event: {e}"))?;
        out[i].push((String::new(), json, ts as i64));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_shaped() {
        let a: Vec<Rec> = views(3).collect();
        assert_eq!(a, views(3).collect::<Vec<_>>());
        assert_eq!(a[0].2, BASE_MS);
        assert!(a[0].0.starts_with('s'));
        let v: serde_json::Value = serde_json::from_str(&a[0].1).unwrap();
        assert!(v["position"].as_u64().unwrap() < 3600);
        assert!(v["user_id"].as_str().unwrap().starts_with('u'));
        let t: Vec<Rec> = taxis(2).collect();
        let v: serde_json::Value = serde_json::from_str(&t[1].1).unwrap();
        assert!(v["region"].as_str().unwrap().starts_with('r'));
        assert_eq!(account_id(42), "a00000042");
        assert_eq!(distinct_keys(2).nth(1).unwrap().0, "k0000000001");
    }

    #[test]
    fn nexmark_events_are_split_by_kind() {
        let [people, auctions, bids] = nexmark(100).unwrap();
        assert_eq!(people.len() + auctions.len() + bids.len(), 100);
        assert!(bids.len() > auctions.len() && auctions.len() > people.len());
        let bid: serde_json::Value = serde_json::from_str(&bids[0].1).unwrap();
        assert!(bid["auction"].is_u64() && bid["date_time"].is_u64());
    }
}

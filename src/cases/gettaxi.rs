//! GetTaxi: taxis driving on a street grid and riders hailing them.
//!
//! The city is a grid of streets (a block is about 100 m) around central
//! Paris; regions are the geohash cells (6 characters, about 1.2 × 0.6 km)
//! that the apps compute from their positions.
//!
//! - **Taxis** report their position every ~4 s (`taxi_position`, key
//!   `taxi_id`), driving along the streets at about 40 km/h: towards a
//!   random waypoint while free ("cruising"), to a rider's position and
//!   then to the rider's destination while busy. A free taxi is sometimes
//!   hailed on the street and becomes busy for a short trip.
//! - **Users** (`user_position`, key `user_id`) open the app and browse for
//!   a while (`browsing`), ask for a ride (`waiting`, standing still; the
//!   dispatcher sends the nearest free taxi it knows of, once the user has
//!   waited a few reports), and ride (`riding`, at the taxi's position) to
//!   their destination, where the session ends. A user who finds no free
//!   taxi for a minute gives up. Half of the users appear near one of
//!   three hot spots (a station, a stadium, a concert hall), so the cells
//!   around them see more waiting users than free taxis: surge.
//!
//! Positions are rounded to 6 decimals (about 10 cm), as GPS fixes are.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde_json::json;

use super::{Event, Params, Rng};

/// The topic of taxi positions.
pub const TAXI_TOPIC: &str = "taxi_position";
/// The topic of user positions.
pub const USER_TOPIC: &str = "user_position";

/// South-west corner of the street grid.
const LAT0: f64 = 48.845;
const LON0: f64 = 2.325;
/// One block, in degrees (about 100 m each way at this latitude).
const BLOCK_LAT: f64 = 0.0009;
const BLOCK_LON: f64 = 0.00137;
/// Blocks per side of the grid.
const GRID: i64 = 30;
/// Speed in blocks per millisecond (about 11 m/s).
const SPEED: f64 = 0.11 / 1_000.0;

const TAXI_REPORT_MS: i64 = 4_000;
const BROWSE_REPORT_MS: i64 = 5_000;
const WAIT_REPORT_MS: i64 = 4_000;
const RIDE_REPORT_MS: i64 = 5_000;
/// A waiting user gives up after this many reports without a taxi.
const MAX_WAIT_REPORTS: u32 = 15;
/// The dispatcher sends taxis within this distance (in blocks, Manhattan).
const DISPATCH_BLOCKS: f64 = 12.0;
/// Share of the events that are taxi positions.
const TAXI_SHARE: f64 = 0.6;
/// Position reports of an average user session.
const REPORTS_PER_SESSION: f64 = 13.0;

/// Hot spots (grid coordinates) where half of the users appear.
const HOT_SPOTS: [(f64, f64); 3] = [(6.0, 22.0), (21.0, 8.0), (24.0, 25.0)];

/// The geohash of a position, `precision` characters.
pub fn geohash(lat: f64, lon: f64, precision: usize) -> String {
    const BASE32: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (mut lat_lo, mut lat_hi) = (-90.0, 90.0);
    let (mut lon_lo, mut lon_hi) = (-180.0, 180.0);
    let mut out = String::with_capacity(precision);
    let mut even = true;
    let mut bits = 0;
    let mut ch = 0usize;
    while out.len() < precision {
        if even {
            let mid = (lon_lo + lon_hi) / 2.0;
            if lon >= mid {
                ch = ch * 2 + 1;
                lon_lo = mid;
            } else {
                ch *= 2;
                lon_hi = mid;
            }
        } else {
            let mid = (lat_lo + lat_hi) / 2.0;
            if lat >= mid {
                ch = ch * 2 + 1;
                lat_lo = mid;
            } else {
                ch *= 2;
                lat_hi = mid;
            }
        }
        even = !even;
        bits += 1;
        if bits == 5 {
            out.push(BASE32[ch] as char);
            bits = 0;
            ch = 0;
        }
    }
    out
}

/// Round to 6 decimals, as a GPS fix is reported.
fn fix(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// A position on the grid, in blocks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pos {
    x: f64,
    y: f64,
}

impl Pos {
    fn lat_lon(self) -> (f64, f64) {
        (
            fix(LAT0 + self.y * BLOCK_LAT),
            fix(LON0 + self.x * BLOCK_LON),
        )
    }

    fn blocks_to(self, other: Pos) -> f64 {
        (self.x - other.x).abs() + (self.y - other.y).abs()
    }

    /// A random street corner.
    fn corner(rng: &mut Rng) -> Pos {
        Pos {
            x: rng.range(0, GRID) as f64,
            y: rng.range(0, GRID) as f64,
        }
    }

    /// A random street corner near `self` (within `r` blocks each way).
    fn corner_near(self, r: i64, rng: &mut Rng) -> Pos {
        let clamp = |v: f64| (v.round() as i64).clamp(0, GRID) as f64;
        Pos {
            x: clamp(self.x + rng.range(-r, r) as f64),
            y: clamp(self.y + rng.range(-r, r) as f64),
        }
    }

    /// Drive `dist` blocks towards `to` along the streets (east-west
    /// first, then north-south); stops there.
    fn drive(self, to: Pos, mut dist: f64) -> Pos {
        let mut p = self;
        let dx = to.x - p.x;
        let step = dx.abs().min(dist);
        p.x += step * dx.signum();
        dist -= step;
        if (to.x - p.x).abs() < 1e-9 {
            p.x = to.x;
            let dy = to.y - p.y;
            let step = dy.abs().min(dist.max(0.0));
            p.y += step * dy.signum();
            if (to.y - p.y).abs() < 1e-9 {
                p.y = to.y;
            }
        }
        p
    }
}

/// What a taxi is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Job {
    /// Free, cruising towards a waypoint.
    Cruise,
    /// Busy: driving to pick up user `u`.
    Pickup(u64),
    /// Busy: carrying user `u` (None: a street hail) to the target.
    Ride(Option<u64>),
}

struct Taxi {
    id: String,
    pos: Pos,
    /// When `pos` was computed.
    at: i64,
    target: Pos,
    job: Job,
    /// The last reported position and status, as the dispatcher knows them.
    reported: Option<Pos>,
    rng: Rng,
}

impl Taxi {
    fn free(&self) -> bool {
        self.job == Job::Cruise
    }

    /// Where the taxi is at `t` (not before `self.at`).
    fn position_at(&self, t: i64) -> Pos {
        self.pos
            .drive(self.target, SPEED * (t - self.at).max(0) as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Browsing {
        reports_left: u32,
    },
    Waiting {
        reports: u32,
        patience: u32,
    },
    /// A taxi is on its way (the user still waits) or carries the user.
    Assigned {
        taxi: usize,
    },
}

struct User {
    id: String,
    pos: Pos,
    destination: Pos,
    phase: Phase,
    rng: Rng,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Taxi(usize),
    User(u64),
    /// Brings in new users.
    Arrivals,
}

struct City {
    rng: Rng,
    taxis: Vec<Taxi>,
    users: HashMap<u64, User>,
    next_user: u64,
    queue: BinaryHeap<Reverse<(i64, u64, Actor)>>,
    seq: u64,
    /// Mean time between two new users.
    arrival_ms: f64,
    end_ms: i64,
}

/// The GetTaxi events for `params`, in timestamp order.
pub fn events(params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    Box::new(City::new(params))
}

impl City {
    fn new(params: &Params) -> City {
        let mut rng = Rng::new(params.seed);
        let rate = params.rate.max(1e-6);
        let n_taxis = ((rate * TAXI_SHARE * TAXI_REPORT_MS as f64 / 1_000.0).round() as usize)
            .clamp(1, 200_000);
        let sessions_per_s = rate * (1.0 - TAXI_SHARE) / REPORTS_PER_SESSION;
        let mut city = City {
            taxis: Vec::with_capacity(n_taxis),
            users: HashMap::new(),
            next_user: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            arrival_ms: (1_000.0 / sessions_per_s).min(1e12),
            end_ms: params.end_ms(),
            rng: rng.fork(0),
        };
        for i in 0..n_taxis {
            let mut trng = rng.fork(1 + i as u64);
            let pos = Pos::corner(&mut trng);
            let target = Pos::corner(&mut trng);
            let first = params.start_ms + trng.below(TAXI_REPORT_MS as u64) as i64;
            city.taxis.push(Taxi {
                id: format!("t{:03}", i + 1),
                pos,
                at: first,
                target,
                job: Job::Cruise,
                reported: None,
                rng: trng,
            });
            city.schedule(first, Actor::Taxi(i));
        }
        // Users already in the app when the simulation starts, then a
        // Poisson stream of new ones.
        let already = (sessions_per_s * 10.0).round().clamp(1.0, 100_000.0) as u64;
        for _ in 0..already {
            let at = params.start_ms + city.rng.below(5_000) as i64;
            city.new_user(at);
        }
        let first = params.start_ms + city.rng.exponential(city.arrival_ms) as i64;
        city.schedule(first, Actor::Arrivals);
        city
    }

    fn schedule(&mut self, at: i64, actor: Actor) {
        if at < self.end_ms {
            self.queue.push(Reverse((at, self.seq, actor)));
            self.seq += 1;
        }
    }

    fn new_user(&mut self, at: i64) {
        let mut urng = self.rng.fork(1_000_000 + self.next_user);
        let pos = if urng.chance(0.5) {
            let (x, y) = *urng.pick(&HOT_SPOTS).unwrap_or(&HOT_SPOTS[0]);
            Pos { x, y }.corner_near(2, &mut urng)
        } else {
            Pos::corner(&mut urng)
        };
        let destination = pos.corner_near(6, &mut urng);
        let phase = Phase::Browsing {
            reports_left: urng.range(1, 3) as u32,
        };
        let id = self.next_user;
        self.next_user += 1;
        self.users.insert(
            id,
            User {
                id: format!("u{:05}", id + 1),
                pos,
                destination,
                phase,
                rng: urng,
            },
        );
        self.schedule(at, Actor::User(id));
    }

    /// The nearest free taxi the dispatcher knows of, within reach.
    fn dispatch(&self, to: Pos) -> Option<usize> {
        self.taxis
            .iter()
            .enumerate()
            .filter(|(_, t)| t.free())
            .filter_map(|(i, t)| t.reported.map(|p| (i, p.blocks_to(to))))
            .filter(|(_, d)| *d <= DISPATCH_BLOCKS)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)
    }

    fn taxi_report(&mut self, i: usize, at: i64) -> Event {
        let taxi = &mut self.taxis[i];
        taxi.pos = taxi.position_at(at);
        taxi.at = at;
        if taxi.pos == taxi.target {
            match taxi.job {
                Job::Pickup(u) => {
                    // The rider gets in; off to the destination.
                    taxi.job = Job::Ride(Some(u));
                    taxi.target = self
                        .users
                        .get(&u)
                        .map(|u| u.destination)
                        .unwrap_or(taxi.pos);
                }
                Job::Ride(rider) => {
                    if let Some(u) = rider {
                        self.users.remove(&u);
                    }
                    taxi.job = Job::Cruise;
                    taxi.target = Pos::corner(&mut taxi.rng);
                }
                Job::Cruise => taxi.target = Pos::corner(&mut taxi.rng),
            }
        } else if taxi.job == Job::Cruise && taxi.rng.chance(0.015) {
            // Hailed on the street.
            taxi.job = Job::Ride(None);
            taxi.target = taxi.pos.corner_near(5, &mut taxi.rng);
        }
        taxi.reported = Some(taxi.pos);
        let status = if taxi.free() { "free" } else { "busy" };
        let event = position(TAXI_TOPIC, &taxi.id, taxi.pos, status, at);
        let jitter = taxi.rng.range(-300, 300);
        self.schedule(at + TAXI_REPORT_MS + jitter, Actor::Taxi(i));
        event
    }

    /// A user's report; None when the session is over.
    fn user_report(&mut self, id: u64, at: i64) -> Option<Event> {
        let phase = self.users.get(&id)?.phase;
        let (status, pos, next) = match phase {
            Phase::Browsing { reports_left } => {
                let user = self.users.get_mut(&id)?;
                // Browsing users stroll a little.
                user.pos = user.pos.corner_near(1, &mut user.rng);
                user.phase = if reports_left <= 1 {
                    let patience = user.rng.range(2, 5) as u32;
                    Phase::Waiting {
                        reports: 0,
                        patience,
                    }
                } else {
                    Phase::Browsing {
                        reports_left: reports_left - 1,
                    }
                };
                ("browsing", user.pos, BROWSE_REPORT_MS)
            }
            Phase::Waiting { reports, patience } => {
                let pos = self.users.get(&id)?.pos;
                let taxi = if reports >= patience {
                    self.dispatch(pos)
                } else {
                    None
                };
                let user = self.users.get_mut(&id)?;
                if let Some(t) = taxi {
                    user.phase = Phase::Assigned { taxi: t };
                    let taxi = &mut self.taxis[t];
                    taxi.pos = taxi.position_at(at);
                    taxi.at = at;
                    taxi.job = Job::Pickup(id);
                    taxi.target = pos;
                } else if reports + 1 >= MAX_WAIT_REPORTS {
                    // Gives up after this last report.
                    self.users.remove(&id);
                    return Some(position(
                        USER_TOPIC,
                        &format!("u{:05}", id + 1),
                        pos,
                        "waiting",
                        at,
                    ));
                } else {
                    user.phase = Phase::Waiting {
                        reports: reports + 1,
                        patience,
                    };
                }
                ("waiting", pos, WAIT_REPORT_MS)
            }
            Phase::Assigned { taxi } => {
                let t = &self.taxis[taxi];
                match t.job {
                    Job::Ride(Some(u)) if u == id => ("riding", t.position_at(at), RIDE_REPORT_MS),
                    Job::Pickup(u) if u == id => {
                        ("waiting", self.users.get(&id)?.pos, WAIT_REPORT_MS)
                    }
                    // The ride is over (the taxi moved on).
                    _ => {
                        self.users.remove(&id);
                        return None;
                    }
                }
            }
        };
        let user = self.users.get_mut(&id)?;
        let event = position(USER_TOPIC, &user.id, pos, status, at);
        let jitter = user.rng.range(-300, 300);
        self.schedule(at + next + jitter, Actor::User(id));
        Some(event)
    }
}

/// A position report as the apps send it.
fn position(topic: &'static str, id: &str, pos: Pos, status: &str, at: i64) -> Event {
    let (lat, lon) = pos.lat_lon();
    let value = json!({
        "lat": lat,
        "lon": lon,
        "region": geohash(lat, lon, 6),
        "status": status,
        "event_ts": at,
    });
    Event::new(topic, Some(id.to_string()), value, at)
}

impl Iterator for City {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let Reverse((at, _, actor)) = self.queue.pop()?;
            match actor {
                Actor::Taxi(i) => return Some(self.taxi_report(i, at)),
                Actor::User(id) => {
                    if let Some(e) = self.user_report(id, at) {
                        return Some(e);
                    }
                }
                Actor::Arrivals => {
                    self.new_user(at);
                    let next = at + self.rng.exponential(self.arrival_ms).max(1.0) as i64;
                    self.schedule(next, Actor::Arrivals);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use super::*;

    #[test]
    fn geohash_matches_the_reference() {
        // Examples from the geohash reference (Wikipedia, geohash.org).
        assert_eq!(geohash(42.6, -5.6, 5), "ezs42");
        assert_eq!(geohash(57.64911, 10.40744, 11), "u4pruydqqvj");
        assert_eq!(geohash(48.8566, 2.3522, 6), "u09tvw");
    }

    #[test]
    fn taxis_and_users_behave() {
        let p = Params {
            seed: 5,
            rate: 40.0,
            duration: Duration::from_secs(120),
            start_ms: 1_700_000_000_000,
        };
        let events: Vec<Event> = events(&p).collect();
        let n = events.len() as f64;
        assert!((n - 4_800.0).abs() < 1_500.0, "{n} events");
        let statuses = |topic: &str| -> BTreeSet<String> {
            events
                .iter()
                .filter(|e| e.topic == topic)
                .map(|e| e.value["status"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            statuses(TAXI_TOPIC),
            ["busy", "free"].map(String::from).into()
        );
        assert_eq!(
            statuses(USER_TOPIC),
            ["browsing", "riding", "waiting"].map(String::from).into()
        );
        // Regions: the geohash of the position; several of them; a taxi
        // moves at most a few blocks between two reports.
        let regions: BTreeSet<&str> = events
            .iter()
            .map(|e| e.value["region"].as_str().unwrap())
            .collect();
        assert!(regions.len() >= 10, "{regions:?}");
        let mut last: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for e in events.iter().filter(|e| e.topic == TAXI_TOPIC) {
            let (lat, lon) = (
                e.value["lat"].as_f64().unwrap(),
                e.value["lon"].as_f64().unwrap(),
            );
            assert_eq!(e.value["region"], geohash(lat, lon, 6));
            if let Some((a, b)) = last.insert(e.key.as_deref().unwrap(), (lat, lon)) {
                let blocks = (lat - a).abs() / BLOCK_LAT + (lon - b).abs() / BLOCK_LON;
                assert!(blocks < 1.0, "{blocks} blocks in one report");
            }
        }
    }

    #[test]
    fn any_rate_and_duration_work() {
        for (rate, ms) in [(0.001, 10), (0.5, 1_000), (1.0, 1), (3_000.0, 300)] {
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

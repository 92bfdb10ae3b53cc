//! MovieFlix: users watching shows (`queries/movieflix.sql`).
//!
//! The catalog service publishes the shows catalog first (topic `shows`,
//! key `show_id`, all at the start time); heartbeats begin
//! [`CATALOG_LEAD_MS`] later, so every heartbeat finds its show in the
//! catalog. Then each user alternates between idle gaps and viewing
//! sessions. A session picks a show (mostly of the user's favourite genre),
//! starts it from the beginning or resumes it (from where the user left it
//! in this run, or from a position watched before the run began: many
//! sessions finish a show the user started earlier), and the player sends a
//! heartbeat (topic `show_position`, key `user_id`) every ~5 s with the
//! position and the playback time since the previous heartbeat. Sessions
//! seek now and then, end at the end of the show, during the end credits
//! (the last 10%) or are abandoned. Some shows are hits (a hidden trait):
//! their viewers abandon them less and come back for the finale more, so
//! they are the well-completed shows the SQL recommends.
//!
//! About `rate` heartbeats per second: there are about `rate × 5.5` users
//! (at most [`MAX_USERS`]), nearly all of them watching at any time.
//! Users are scheduled on a heap by their next action time, so memory is
//! O(users) whatever the duration.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use serde_json::json;

use super::{Event, Params, Rng};

/// The genres of the catalog (sorted).
pub const GENRES: [&str; 6] = [
    "animation",
    "comedy",
    "documentary",
    "drama",
    "scifi",
    "thriller",
];

/// Shows in the catalog: `s01` .. `s24`, four per genre.
pub const SHOWS: usize = 24;

/// Heartbeats start this long after the catalog is published (less on a
/// very short run).
pub const CATALOG_LEAD_MS: i64 = 2_000;

/// The player's heartbeat period (each one jittered by up to ±10%).
pub const HEARTBEAT_MS: i64 = 5_000;

/// No more users than this, whatever the rate (the rate is then lower).
pub const MAX_USERS: usize = 1_000_000;

const DEVICES: [&str; 4] = ["tv", "phone", "tablet", "web"];

const TITLE_WORDS: [&str; 12] = [
    "Silent", "Harbor", "Crimson", "Orbit", "Paper", "Tide", "Hollow", "Signal", "Winter",
    "Garden", "Static", "Lantern",
];

/// One show of the catalog.
#[derive(Debug, Clone)]
pub struct Show {
    pub show_id: String,
    pub title: String,
    pub genre: &'static str,
    pub duration_ms: i64,
    pub release_year: i64,
    /// A hit: viewers stay to the end (not published: the SQL finds out).
    pub hit: bool,
}

/// The catalog for a seed (what the `shows` topic receives).
pub fn catalog(seed: u64) -> Vec<Show> {
    let mut rng = Rng::new(seed).fork(1);
    (0..SHOWS)
        .map(|i| {
            let genre = GENRES[i % GENRES.len()];
            // Minutes: episodes for series-like genres, films for the rest.
            let minutes = match genre {
                "animation" => rng.range(7, 24),
                "comedy" => rng.range(22, 32),
                "drama" => rng.range(42, 60),
                "documentary" => rng.range(45, 95),
                "scifi" => rng.range(95, 150),
                _ => rng.range(88, 130),
            };
            let a = rng.pick(&TITLE_WORDS).copied().unwrap_or("Blue");
            let b = rng.pick(&TITLE_WORDS).copied().unwrap_or("Line");
            Show {
                show_id: format!("s{:02}", i + 1),
                title: format!("The {a} {b}"),
                genre,
                duration_ms: minutes * 60_000 + rng.range(0, 59) * 1_000,
                release_year: rng.range(1995, 2025),
                hit: rng.chance(0.4),
            }
        })
        .collect()
}

/// A show being played.
struct Session {
    show: usize,
    position_ms: i64,
    device: &'static str,
    last_ms: i64,
}

/// One user: tastes, where they left each show, what they watch now.
struct Viewer {
    favourite: usize,
    device: &'static str,
    /// Last position per show index, within this run.
    left_at: HashMap<usize, i64>,
    session: Option<Session>,
}

struct Movieflix {
    rng: Rng,
    shows: Vec<Show>,
    by_genre: Vec<Vec<usize>>,
    pending: VecDeque<Event>,
    viewers: Vec<Option<Viewer>>,
    /// (next action time, user index), earliest first.
    agenda: BinaryHeap<Reverse<(i64, usize)>>,
    end_ms: i64,
}

/// The events of MovieFlix: the catalog, then the heartbeats.
pub fn events(params: &Params) -> Box<dyn Iterator<Item = Event> + Send> {
    let end_ms = params.end_ms();
    if end_ms <= params.start_ms {
        return Box::new(std::iter::empty());
    }
    let mut rng = Rng::new(params.seed);
    let shows = catalog(params.seed);
    let pending: VecDeque<Event> = shows
        .iter()
        .map(|s| {
            Event::new(
                "shows",
                Some(s.show_id.clone()),
                json!({
                    "title": s.title,
                    "genre": s.genre,
                    "duration_ms": s.duration_ms,
                    "release_year": s.release_year,
                }),
                params.start_ms,
            )
        })
        .collect();
    let by_genre = (0..GENRES.len())
        .map(|g| {
            (0..shows.len())
                .filter(|&i| shows[i].genre == GENRES[g])
                .collect()
        })
        .collect();
    let users =
        ((params.rate * HEARTBEAT_MS as f64 / 1000.0 * 1.1).ceil() as usize).clamp(1, MAX_USERS);
    let lead = CATALOG_LEAD_MS.min((end_ms - params.start_ms) / 4);
    let mut agenda = BinaryHeap::with_capacity(users);
    for u in 0..users {
        // Sessions ramp up over the first heartbeat period.
        let first = params.start_ms + lead + rng.range(0, HEARTBEAT_MS - 1);
        agenda.push(Reverse((first, u)));
    }
    Box::new(Movieflix {
        rng,
        shows,
        by_genre,
        pending,
        viewers: (0..users).map(|_| None).collect(),
        agenda,
        end_ms,
    })
}

/// A user id: `u0001`, `u0002`, ...
pub fn user_id(index: usize) -> String {
    format!("u{:04}", index + 1)
}

impl Iterator for Movieflix {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.pending.pop_front() {
            return Some(e);
        }
        let Reverse((now, u)) = self.agenda.pop()?;
        if now >= self.end_ms {
            self.agenda.clear();
            return None;
        }
        let (event, next) = self.act(u, now);
        self.agenda.push(Reverse((next, u)));
        Some(event)
    }
}

impl Movieflix {
    /// User `u` acts at `now`: starts a session or sends the next heartbeat.
    /// Returns the heartbeat and when the user acts next.
    fn act(&mut self, u: usize, now: i64) -> (Event, i64) {
        let rng = &mut self.rng;
        let viewer = self.viewers[u].get_or_insert_with(|| Viewer {
            favourite: rng.below(GENRES.len() as u64) as usize,
            device: rng.pick(&DEVICES).copied().unwrap_or("tv"),
            left_at: HashMap::new(),
            session: None,
        });
        let (show, watched, ended) = match viewer.session.as_mut() {
            None => {
                let s = start(rng, &self.shows, &self.by_genre, viewer, now);
                let show = s.show;
                viewer.session = Some(s);
                (show, 0, false)
            }
            Some(s) => {
                let duration = self.shows[s.show].duration_ms;
                let played = now - s.last_ms;
                s.position_ms += played;
                if rng.chance(0.06) {
                    // Seek: back a little, or skip ahead.
                    s.position_ms += rng.range(-120, 900) * 1_000;
                }
                s.position_ms = s.position_ms.clamp(0, duration);
                s.last_ms = now;
                let in_credits = s.position_ms * 10 >= duration * 9;
                let abandon = if self.shows[s.show].hit { 0.01 } else { 0.04 };
                let ended = s.position_ms >= duration
                    || (in_credits && rng.chance(0.3))
                    || rng.chance(abandon);
                (s.show, played, ended)
            }
        };
        let session = viewer.session.as_ref().map(|s| (s.position_ms, s.device));
        let (position, device) = session.unwrap_or((0, "tv"));
        viewer.left_at.insert(show, position);
        if ended {
            viewer.session = None;
        }
        let s = &self.shows[show];
        let event = Event::new(
            "show_position",
            Some(user_id(u)),
            json!({
                "show_id": s.show_id,
                "position_ms": position,
                "duration_ms": s.duration_ms,
                "watched_ms": watched,
                "device": device,
                "event_ts": now,
            }),
            now,
        );
        let next = if ended {
            now + 1_000 + rng.exponential(6_000.0) as i64
        } else {
            now + HEARTBEAT_MS + rng.range(-HEARTBEAT_MS / 10, HEARTBEAT_MS / 10)
        };
        (event, next)
    }
}

/// A new session: which show, from where, on which device.
fn start(
    rng: &mut Rng,
    shows: &[Show],
    by_genre: &[Vec<usize>],
    viewer: &Viewer,
    now: i64,
) -> Session {
    let unfinished: Vec<usize> = {
        let mut v: Vec<usize> = viewer
            .left_at
            .iter()
            .filter(|(s, p)| **p * 10 < shows[**s].duration_ms * 9)
            .map(|(s, _)| *s)
            .collect();
        v.sort_unstable();
        v
    };
    let show = match rng.pick(&unfinished) {
        Some(s) if rng.chance(0.35) => *s,
        _ => {
            let genre = if rng.chance(0.7) {
                viewer.favourite
            } else {
                rng.below(GENRES.len() as u64) as usize
            };
            rng.pick(&by_genre[genre]).copied().unwrap_or(0)
        }
    };
    let duration = shows[show].duration_ms;
    let position_ms = match viewer.left_at.get(&show) {
        // Finished here: watch it again from the start.
        Some(p) if *p * 10 >= duration * 9 => 0,
        Some(p) => *p,
        // Not seen in this run: new, or resumed from before the run (for a
        // hit, often near its end: the user comes back for the finale).
        None => match rng.weighted(if shows[show].hit {
            &[0.3, 0.5, 0.2]
        } else {
            &[0.5, 0.1, 0.4]
        }) {
            0 => 0,
            1 => duration / 100 * rng.range(88, 98),
            _ => duration / 100 * rng.range(5, 85),
        },
    };
    let device = if rng.chance(0.8) {
        viewer.device
    } else {
        rng.pick(&DEVICES).copied().unwrap_or("tv")
    };
    Session {
        show,
        position_ms: position_ms / 1_000 * 1_000,
        device,
        last_ms: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn params(rate: f64, secs: u64) -> Params {
        Params {
            seed: 3,
            rate,
            duration: Duration::from_secs(secs),
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn catalog_first_then_heartbeats_of_known_shows() {
        let p = params(20.0, 60);
        let events: Vec<Event> = events(&p).collect();
        let (catalog, beats) = events.split_at(SHOWS);
        assert!(catalog
            .iter()
            .all(|e| e.topic == "shows" && e.timestamp == p.start_ms));
        assert!(beats
            .iter()
            .all(|e| e.topic == "show_position" && e.timestamp >= p.start_ms + CATALOG_LEAD_MS));
        let ids: Vec<&str> = catalog.iter().filter_map(|e| e.key.as_deref()).collect();
        assert!(beats
            .iter()
            .all(|e| ids.contains(&e.value["show_id"].as_str().unwrap_or(""))));
        // About rate × duration heartbeats, some of them finishing a show.
        assert!((900..=1_300).contains(&beats.len()), "{}", beats.len());
        let finished = beats
            .iter()
            .filter(|e| {
                let v = &e.value;
                v["position_ms"].as_i64().unwrap_or(0) * 10
                    >= v["duration_ms"].as_i64().unwrap_or(1) * 9
            })
            .count();
        assert!(finished > 20, "{finished}");
    }

    #[test]
    fn a_users_heartbeats_are_consistent() {
        let events: Vec<Event> = events(&params(10.0, 120)).collect();
        let mut last: HashMap<String, &Event> = HashMap::new();
        for e in events.iter().filter(|e| e.topic == "show_position") {
            let v = &e.value;
            let (pos, dur) = (v["position_ms"].as_i64(), v["duration_ms"].as_i64());
            assert!(matches!((pos, dur), (Some(p), Some(d)) if (0..=d).contains(&p)));
            let watched = v["watched_ms"].as_i64().unwrap_or(-1);
            if let Some(prev) = last.get(e.key.as_deref().unwrap_or("")) {
                assert!(e.timestamp > prev.timestamp);
                assert!(watched == 0 || watched == e.timestamp - prev.timestamp);
            } else {
                assert_eq!(watched, 0, "a first heartbeat has watched nothing yet");
            }
            last.insert(e.key.clone().unwrap_or_default(), e);
        }
    }

    #[test]
    fn odd_params_do_not_panic() {
        for (rate, ms) in [(0.001, 1), (1e12, 50), (f64::NAN, 1_000), (5.0, 0)] {
            let p = Params {
                seed: 1,
                rate,
                duration: Duration::from_millis(ms),
                start_ms: 0,
            };
            let n = events(&p).take(10_000).count();
            assert!(n <= 10_000);
        }
    }
}

//! MovieFlix end to end: users watching shows for 40 s (about 20
//! heartbeats/s, 24 shows in the catalog), then every derived table and
//! stream of `queries/movieflix.sql` checked exactly against a model of it
//! computed here from the generated events: through pull queries over the
//! Postgres protocol, through the output topics (the last record per key of
//! a table, every record of a stream), and the Parquet files of the
//! `show_position` archive (every heartbeat exactly once).
//!
//! The helpers below the test (sorted pull answers, JSON cells, a table's
//! final state from its topic, the archive check) are shared with the
//! other cases' modules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::cases::{Case, Event};

use super::{text, Received, Row, Run};

const SEED: u64 = 42;
const RATE: f64 = 20.0;
const DURATION: Duration = Duration::from_secs(40);

/// One heartbeat, as generated.
#[derive(Debug, Clone)]
struct Beat {
    user: String,
    show: String,
    position: i64,
    duration: i64,
    watched: i64,
    device: String,
    ts: i64,
}

/// A catalog entry.
#[derive(Debug, Clone)]
struct Show {
    title: String,
    genre: String,
}

/// The expected content of every derived table and stream.
struct Model {
    beats: Vec<Beat>,
    shows: BTreeMap<String, Show>,
    /// (user, show) → the last heartbeat.
    resume: BTreeMap<(String, String), Beat>,
    profiles: BTreeMap<String, Profile>,
    /// show → (viewers, finishes).
    completion: BTreeMap<String, (i64, i64)>,
    /// genre → well-completed shows (sorted); genres with none are absent.
    picks: BTreeMap<String, Vec<String>>,
    /// user → (favourite genre, shows to recommend).
    recommendations: BTreeMap<String, (String, Vec<String>)>,
}

#[derive(Debug, Default)]
struct Profile {
    watch_time: i64,
    started: BTreeSet<String>,
    finished: BTreeSet<String>,
    genres: BTreeMap<String, i64>,
}

impl Profile {
    /// `ROUND(finished / started, 3)`: half up, as text of the DOUBLE.
    fn completion_ratio(&self) -> f64 {
        let (f, s) = (self.finished.len() as i64, self.started.len() as i64);
        let thousandths = (2 * 1000 * f + s) / (2 * s);
        format!("{thousandths}e-3").parse().expect("a number")
    }

    /// The genre with the most heartbeats, the first by name on a tie.
    fn favourite(&self) -> String {
        let top = self.genres.values().max().copied().unwrap_or(0);
        self.genres
            .iter()
            .find(|(_, n)| **n == top)
            .map(|(g, _)| g.clone())
            .expect("a profile has a genre")
    }
}

fn finished(position: i64, duration: i64) -> bool {
    position * 10 >= duration * 9
}

impl Model {
    fn new(events: &[Event]) -> Model {
        let mut shows = BTreeMap::new();
        let mut beats = Vec::new();
        for e in events {
            let v = &e.value;
            let key = e.key.clone().expect("a key");
            match e.topic {
                "shows" => {
                    shows.insert(
                        key,
                        Show {
                            title: str_of(v, "title"),
                            genre: str_of(v, "genre"),
                        },
                    );
                }
                "show_position" => beats.push(Beat {
                    user: key,
                    show: str_of(v, "show_id"),
                    position: int_of(v, "position_ms"),
                    duration: int_of(v, "duration_ms"),
                    watched: int_of(v, "watched_ms"),
                    device: str_of(v, "device"),
                    ts: int_of(v, "event_ts"),
                }),
                other => panic!("unexpected topic {other}"),
            }
        }
        let mut resume = BTreeMap::new();
        let mut profiles: BTreeMap<String, Profile> = BTreeMap::new();
        for b in &beats {
            resume.insert((b.user.clone(), b.show.clone()), b.clone());
            let p = profiles.entry(b.user.clone()).or_default();
            p.watch_time += b.watched;
            p.started.insert(b.show.clone());
            if finished(b.position, b.duration) {
                p.finished.insert(b.show.clone());
            }
            *p.genres.entry(shows[&b.show].genre.clone()).or_default() += 1;
        }
        let mut completion: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for ((_, show), b) in &resume {
            let c = completion.entry(show.clone()).or_default();
            c.0 += 1;
            c.1 += finished(b.position, b.duration) as i64;
        }
        let mut picks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (show, (viewers, finishes)) in &completion {
            if *finishes >= 1 && finishes * 3 >= *viewers {
                picks
                    .entry(shows[show].genre.clone())
                    .or_default()
                    .push(show.clone());
            }
        }
        let recommendations = profiles
            .iter()
            .filter_map(|(user, p)| {
                let genre = p.favourite();
                let picks = picks.get(&genre)?;
                let unseen = picks
                    .iter()
                    .filter(|s| !p.started.contains(*s))
                    .cloned()
                    .collect();
                Some((user.clone(), (genre, unseen)))
            })
            .collect();
        Model {
            beats,
            shows,
            resume,
            profiles,
            completion,
            picks,
            recommendations,
        }
    }
}

#[test]
fn movieflix_end_to_end() {
    let run = Run::start(Case::MovieFlix);
    let params = Run::params(SEED, RATE, DURATION);
    let events = run.generate(&params);
    let m = Model::new(&events);
    // The run is meaningful: shows finished, picks and recommendations.
    assert!(m.beats.len() > 600, "{} heartbeats", m.beats.len());
    assert!(m.picks.len() >= 3, "genre picks: {:?}", m.picks);
    let recommended = m
        .recommendations
        .values()
        .filter(|r| !r.1.is_empty())
        .count();
    assert!(
        recommended >= 10,
        "recommendations: {:?}",
        m.recommendations
    );

    // resume_points
    let resume_rows: Vec<Row> = m
        .resume
        .iter()
        .map(|((user, show), b)| {
            vec![
                text(user),
                text(show),
                text(b.position),
                text(b.duration),
                text(if finished(b.position, b.duration) {
                    "t"
                } else {
                    "f"
                }),
                text(&b.device),
                text(b.ts),
            ]
        })
        .collect();
    settle_sorted(
        &run,
        "SELECT user_id, show_id, position_ms, duration_ms, finished, last_device, last_seen_ts \
         FROM resume_points",
        resume_rows,
    );
    // A point lookup by the whole key, as the player does on start.
    let ((user, show), b) = m
        .resume
        .iter()
        .nth(m.resume.len() / 2)
        .expect("a resume point");
    assert_eq!(
        run.query(&format!(
            "SELECT position_ms FROM resume_points WHERE user_id = '{user}' AND show_id = '{show}'"
        )),
        vec![vec![text(b.position)]]
    );
    let resume_topic: BTreeMap<String, Value> = m
        .resume
        .iter()
        .map(|((user, show), b)| {
            (
                json!({"SHOW_ID": show, "USER_ID": user}).to_string(),
                json!({
                    "POSITION_MS": b.position,
                    "DURATION_MS": b.duration,
                    "FINISHED": finished(b.position, b.duration),
                    "LAST_DEVICE": b.device,
                    "LAST_SEEN_TS": b.ts,
                }),
            )
        })
        .collect();
    settle_table(&run, "RESUME_POINTS", json_key, &resume_topic);

    // show_views: every heartbeat with its show's title and genre.
    let views = |b: &Beat| {
        let s = &m.shows[&b.show];
        (
            b.show.clone(),
            b.user.clone(),
            s.title.clone(),
            s.genre.clone(),
        )
    };
    settle_sorted(
        &run,
        "SELECT show_id, user_id, title, genre, position_ms, duration_ms, watched_ms FROM show_views",
        m.beats
            .iter()
            .map(|b| {
                let (show, user, title, genre) = views(b);
                vec![
                    text(show),
                    text(user),
                    text(title),
                    text(genre),
                    text(b.position),
                    text(b.duration),
                    text(b.watched),
                ]
            })
            .collect(),
    );
    let mut expected_views: Vec<(String, Value, i64)> = m
        .beats
        .iter()
        .map(|b| {
            let (show, user, title, genre) = views(b);
            (
                show.clone(),
                json!({
                    "USER_ID": user,
                    "TITLE": title,
                    "GENRE": genre,
                    "POSITION_MS": b.position,
                    "DURATION_MS": b.duration,
                    "WATCHED_MS": b.watched,
                }),
                b.ts,
            )
        })
        .collect();
    sort_json(&mut expected_views);
    settle(
        "the SHOW_VIEWS topic",
        || stream_records(&run, "SHOW_VIEWS"),
        &expected_views,
    );

    // user_profiles
    let profile_rows = m
        .profiles
        .iter()
        .map(|(user, p)| {
            vec![
                text(user),
                text(p.watch_time),
                text(p.started.len()),
                text(p.finished.len()),
                text(p.completion_ratio()),
                text(json!(p.genres)),
                text(json!(p.started)),
            ]
        })
        .collect();
    settle_sorted(
        &run,
        "SELECT user_id, watch_time_ms, shows_started, shows_finished, completion_ratio, \
         genre_heartbeats, started_show_ids FROM user_profiles",
        profile_rows,
    );
    let profile_topic: BTreeMap<String, Value> = m
        .profiles
        .iter()
        .map(|(user, p)| {
            (
                user.clone(),
                json!({
                    "WATCH_TIME_MS": p.watch_time,
                    "SHOWS_STARTED": p.started.len(),
                    "SHOWS_FINISHED": p.finished.len(),
                    "COMPLETION_RATIO": p.completion_ratio(),
                    "GENRE_HEARTBEATS": p.genres,
                    "STARTED_SHOW_IDS": p.started,
                }),
            )
        })
        .collect();
    settle_table(&run, "USER_PROFILES", text_key, &profile_topic);

    // user_tastes
    settle_sorted(
        &run,
        "SELECT user_id, favourite_genre, started_show_ids FROM user_tastes",
        m.profiles
            .iter()
            .map(|(user, p)| vec![text(user), text(p.favourite()), text(json!(p.started))])
            .collect(),
    );
    let tastes_topic: BTreeMap<String, Value> = m
        .profiles
        .iter()
        .map(|(user, p)| {
            (
                user.clone(),
                json!({"FAVOURITE_GENRE": p.favourite(), "STARTED_SHOW_IDS": p.started}),
            )
        })
        .collect();
    settle_table(&run, "USER_TASTES", text_key, &tastes_topic);

    // show_completion
    settle_sorted(
        &run,
        "SELECT show_id, viewers, finishes FROM show_completion",
        m.completion
            .iter()
            .map(|(show, (v, f))| vec![text(show), text(v), text(f)])
            .collect(),
    );
    let completion_topic: BTreeMap<String, Value> = m
        .completion
        .iter()
        .map(|(show, (v, f))| (show.clone(), json!({"VIEWERS": v, "FINISHES": f})))
        .collect();
    settle_table(&run, "SHOW_COMPLETION", text_key, &completion_topic);

    // genre_picks
    settle_sorted(
        &run,
        "SELECT genre, show_ids FROM genre_picks",
        m.picks
            .iter()
            .map(|(genre, shows)| vec![text(genre), text(json!(shows))])
            .collect(),
    );
    let picks_topic: BTreeMap<String, Value> = m
        .picks
        .iter()
        .map(|(genre, shows)| (genre.clone(), json!({"SHOW_IDS": shows})))
        .collect();
    settle_table(&run, "GENRE_PICKS", text_key, &picks_topic);

    // recommendations
    settle_sorted(
        &run,
        "SELECT user_id, genre, show_ids FROM recommendations",
        m.recommendations
            .iter()
            .map(|(user, (genre, shows))| vec![text(user), text(genre), text(json!(shows))])
            .collect(),
    );
    let (user, (_, shows)) = m
        .recommendations
        .iter()
        .find(|r| !r.1 .1.is_empty())
        .expect("a user with recommendations");
    assert_eq!(
        run.query(&format!(
            "SELECT show_ids FROM recommendations WHERE user_id = '{user}'"
        )),
        vec![vec![text(json!(shows))]]
    );
    let recommendations_topic: BTreeMap<String, Value> = m
        .recommendations
        .iter()
        .map(|(user, (genre, shows))| (user.clone(), json!({"GENRE": genre, "SHOW_IDS": shows})))
        .collect();
    settle_table(&run, "RECOMMENDATIONS", text_key, &recommendations_topic);

    // The analytics store: every heartbeat exactly once.
    assert_archived(
        &run,
        "show_position",
        &[
            "USER_ID",
            "SHOW_ID",
            "POSITION_MS",
            "DURATION_MS",
            "WATCHED_MS",
            "DEVICE",
            "EVENT_TS",
        ],
        events
            .iter()
            .filter(|e| e.topic == "show_position")
            .map(|e| {
                let v = &e.value;
                vec![
                    e.key.clone(),
                    Some(str_of(v, "show_id")),
                    text(int_of(v, "position_ms")),
                    text(int_of(v, "duration_ms")),
                    text(int_of(v, "watched_ms")),
                    Some(str_of(v, "device")),
                    text(int_of(v, "event_ts")),
                    text(e.timestamp),
                ]
            })
            .collect(),
    );
}

// ---- helpers shared with the other cases' modules ----

pub(super) fn str_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
        .to_string()
}

pub(super) fn int_of(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {v}"))
}

/// A text cell holding JSON (a map, an array) with its object keys sorted,
/// so that a map's entries compare whatever their order.
fn canonical(cell: &Option<String>) -> Option<String> {
    fn sorted(v: Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut entries: Vec<(String, Value)> = o.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    cell.as_ref().map(|c| {
        if c.starts_with('{') || c.starts_with('[') {
            match serde_json::from_str::<Value>(c) {
                Ok(v) => sorted(v).to_string(),
                Err(_) => c.clone(),
            }
        } else {
            c.clone()
        }
    })
}

fn canonical_rows(rows: Vec<Row>) -> Vec<Row> {
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|r| r.iter().map(canonical).collect())
        .collect();
    rows.sort();
    rows
}

/// Wait until a pull query answers `expected`, rows compared as a sorted
/// multiset, JSON cells whatever their key order.
pub(super) fn settle_sorted(run: &Run, sql: &str, expected: Vec<Row>) {
    let expected = canonical_rows(expected);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = canonical_rows(run.query(sql));
        if got == expected {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<&Row> = expected.iter().filter(|r| !got.contains(r)).collect();
            let extra: Vec<&Row> = got.iter().filter(|r| !expected.contains(r)).collect();
            panic!(
                "{sql}\n{} rows, expected {}\nmissing: {missing:#?}\nunexpected: {extra:#?}",
                got.len(),
                expected.len()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A KAFKA-format key (a UTF-8 string).
pub(super) fn text_key(key: Option<&[u8]>) -> String {
    String::from_utf8(key.expect("a key").to_vec()).expect("a UTF-8 key")
}

/// A JSON-format key, as JSON text with its fields sorted.
pub(super) fn json_key(key: Option<&[u8]>) -> String {
    let text = String::from_utf8(key.expect("a key").to_vec()).expect("a UTF-8 key");
    canonical(&Some(text)).unwrap_or_default()
}

/// The final state of a table from its output topic: the last record per
/// key, tombstones deleting. Each key lives in one partition, so the topic
/// order within a partition is the order of its changes.
pub(super) fn table_state(
    run: &Run,
    topic: &str,
    key: impl Fn(Option<&[u8]>) -> String,
) -> BTreeMap<String, Value> {
    state_of(run.topic(topic), key)
}

/// Wait until a table's output topic holds `expected` as its final state
/// (records may still be on their way when the pull queries agree).
pub(super) fn settle_table(
    run: &Run,
    topic: &str,
    key: impl Fn(Option<&[u8]>) -> String,
    expected: &BTreeMap<String, Value>,
) {
    settle(
        &format!("the {topic} topic"),
        || table_state(run, topic, &key),
        expected,
    );
}

/// Wait until `get` returns `expected`; fail with the last value after a
/// minute.
pub(super) fn settle<T: PartialEq + std::fmt::Debug>(
    what: &str,
    get: impl Fn() -> T,
    expected: &T,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = get();
        if &got == expected || Instant::now() > deadline {
            assert_eq!(&got, expected, "{what}");
            return;
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
}

/// Every record of a stream's output topic as (key, value, time), sorted.
pub(super) fn stream_records(run: &Run, topic: &str) -> Vec<(String, Value, i64)> {
    let mut records: Vec<(String, Value, i64)> = run
        .topic(topic)
        .into_iter()
        .map(|r| {
            (
                text_key(r.key.as_deref()),
                r.value.expect("a stream record has a value"),
                r.timestamp,
            )
        })
        .collect();
    sort_json(&mut records);
    records
}

pub(super) fn state_of(
    records: Vec<Received>,
    key: impl Fn(Option<&[u8]>) -> String,
) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for r in records {
        let k = key(r.key.as_deref());
        match r.value {
            Some(v) => state.insert(k, v),
            None => state.remove(&k),
        };
    }
    state
}

/// Sort records of JSON values by their text (Value is not Ord).
pub(super) fn sort_json(records: &mut [(String, Value, i64)]) {
    records.sort_by_cached_key(|(k, v, t)| (k.clone(), canonical(&Some(v.to_string())), *t));
}

/// A sink's Parquet files hold every record of its stream exactly once:
/// `columns` then ROWTIME of every file row equal `expected` (a multiset,
/// values as text), (ROWPARTITION, ROWOFFSET) are unique, and every file
/// sits under `dt=YYYY-MM-DD/hour=HH/`.
pub(super) fn assert_archived(run: &Run, location: &str, columns: &[&str], expected: Vec<Row>) {
    let select: Vec<String> = columns
        .iter()
        .chain(&["ROWTIME"])
        .map(|c| format!("\"{c}\""))
        .collect();
    let sql = format!("SELECT {} FROM archive", select.join(", "));
    let mut expected = expected;
    expected.sort();
    // Files are committed about a second after their last record.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let files = run.analytics_files(location);
        if !files.is_empty() {
            got = run.analytics(location, &sql);
            got.sort();
            if got.len() >= expected.len() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(got.len(), expected.len(), "rows in the {location} archive");
    assert_eq!(got, expected, "the {location} archive");
    let unique = run.analytics(
        location,
        "SELECT COUNT(*) FROM (SELECT DISTINCT \"ROWPARTITION\", \"ROWOFFSET\" FROM archive)",
    );
    assert_eq!(
        unique,
        vec![vec![text(expected.len())]],
        "unique (ROWPARTITION, ROWOFFSET)"
    );
    for f in run.analytics_files(location) {
        let parts: Vec<&str> = f.split('/').collect();
        let well_placed = parts.len() == 3
            && parts[0].len() == "dt=YYYY-MM-DD".len()
            && parts[0].starts_with("dt=")
            && parts[1].len() == "hour=HH".len()
            && parts[1].starts_with("hour=")
            && parts[2].ends_with(".parquet");
        assert!(well_placed, "{location}/{f}");
    }
}

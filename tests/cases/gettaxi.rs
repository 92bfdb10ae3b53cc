//! GetTaxi end to end: taxi and user positions in; the latest positions,
//! the merged region activity, supply and demand per region and hopping
//! window, surge pricing, taxi offers and the nearest taxi per user out,
//! each compared exactly with what the events imply (computed here),
//! through pull queries over the Postgres protocol and in the output
//! topics; and the positions' Parquet archives hold every position once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::cases::gettaxi::{TAXI_TOPIC, USER_TOPIC};
use sluice::cases::{Case, Event};

use super::{
    eventually_sorted, expected_json, latest, numbers_as_f64, stream_records, text, windowed_key,
    Row, Run,
};

const MINUTE: i64 = 60_000;
/// region_supply_demand: HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE).
const HOP_SIZE: i64 = 5 * MINUTE;
/// taxi_offers: WITHIN 5 SECONDS; GEO_DISTANCE(...) <= 1.
const WITHIN: i64 = 5_000;
const MAX_KM: f64 = 1.0;

/// Distinct waiting users and free taxis seen in a region's window.
type Window<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>);

/// A position report.
#[derive(Debug, Clone)]
struct Position {
    id: String,
    lat: f64,
    lon: f64,
    region: String,
    status: String,
    ts: i64,
}

fn positions(events: &[Event], topic: &str) -> Vec<Position> {
    events
        .iter()
        .filter(|e| e.topic == topic)
        .map(|e| Position {
            id: e.key.clone().unwrap(),
            lat: e.value["lat"].as_f64().unwrap(),
            lon: e.value["lon"].as_f64().unwrap(),
            region: e.value["region"].as_str().unwrap().to_string(),
            status: e.value["status"].as_str().unwrap().to_string(),
            ts: e.value["event_ts"].as_i64().unwrap(),
        })
        .collect()
}

/// GEO_DISTANCE in km: the haversine formula on a 6371 km sphere, in
/// the engine's order of operations.
fn geo_distance(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let hav = |x: f64| (x / 2.0).sin().powi(2);
    let a = hav((lat2 - lat1).to_radians())
        + hav((lon2 - lon1).to_radians()) * lat1.to_radians().cos() * lat2.to_radians().cos();
    2.0 * a.sqrt().asin() * 6371.0
}

/// ksqlDB's ROUND(w / f, 2) for counts, half up, as the engine computes it.
fn ratio(w: i64, f: i64) -> f64 {
    let hundredths = (200 * w + f) / (2 * f);
    format!("{hundredths}e-2").parse().unwrap()
}

/// Latest position per entity: the pull rows and the changelog values.
fn check_locations(run: &Run, table: &str, id_column: &str, ps: &[Position]) {
    let mut last: BTreeMap<&str, &Position> = BTreeMap::new();
    let mut changelog: BTreeMap<Vec<u8>, Vec<Option<Value>>> = BTreeMap::new();
    for p in ps {
        last.insert(&p.id, p);
        changelog.entry(p.id.as_bytes().to_vec()).or_default().push(Some(expected_json(&json!({
            "LAT": p.lat, "LON": p.lon, "REGION": p.region, "STATUS": p.status, "EVENT_TS": p.ts,
        }))));
    }
    let rows: Vec<Row> = last
        .values()
        .map(|p| {
            vec![
                text(&p.id),
                text(p.lat),
                text(p.lon),
                text(&p.region),
                text(&p.status),
                text(p.ts),
            ]
        })
        .collect();
    eventually_sorted(
        run,
        &format!("SELECT {id_column}, lat, lon, region, status, event_ts FROM {table}"),
        &rows,
    );
    // Every position updated its entity's row, in order.
    let mut got: BTreeMap<Vec<u8>, Vec<Option<Value>>> = BTreeMap::new();
    for r in run.topic(&table.to_uppercase()) {
        got.entry(r.key.clone().unwrap())
            .or_default()
            .push(r.value.as_ref().map(numbers_as_f64));
    }
    assert_eq!(got, changelog, "{table} changelog");
}

#[test]
fn gettaxi_supply_demand_surge_and_nearest_taxi() {
    let run = Run::start(Case::GetTaxi);
    let params = Run::params(21, 40.0, Duration::from_secs(45));
    let events = run.generate(&params);
    let taxis = positions(&events, TAXI_TOPIC);
    let users = positions(&events, USER_TOPIC);

    // taxi_locations and user_locations.
    check_locations(&run, "taxi_locations", "taxi_id", &taxis);
    check_locations(&run, "user_locations", "user_id", &users);

    // region_activity: every position, keyed by region.
    let activity: Vec<(&Position, &str)> = users
        .iter()
        .map(|p| (p, "user"))
        .chain(taxis.iter().map(|p| (p, "taxi")))
        .collect();
    let rows: Vec<Row> = activity
        .iter()
        .map(|(p, kind)| {
            vec![
                text(&p.region),
                text(&p.id),
                text(kind),
                text(&p.status),
                text(p.ts),
            ]
        })
        .collect();
    eventually_sorted(
        &run,
        "SELECT region, entity_id, entity_type, status, ROWTIME FROM region_activity",
        &rows,
    );
    let mut want: Vec<(Vec<u8>, Value, i64)> = activity
        .iter()
        .map(|(p, kind)| {
            let v = json!({"ENTITY_ID": p.id, "ENTITY_TYPE": kind, "STATUS": p.status});
            (p.region.as_bytes().to_vec(), v, p.ts)
        })
        .collect();
    let mut got: Vec<(Vec<u8>, Value, i64)> = run
        .topic("REGION_ACTIVITY")
        .into_iter()
        .map(|r| (r.key.unwrap(), r.value.unwrap(), r.timestamp))
        .collect();
    let order = |a: &(Vec<u8>, Value, i64), b: &(Vec<u8>, Value, i64)| {
        (&a.0, a.1.to_string(), a.2).cmp(&(&b.0, b.1.to_string(), b.2))
    };
    want.sort_by(order);
    got.sort_by(order);
    assert_eq!(got, want, "region_activity topic");

    // region_supply_demand: distinct waiting users and free taxis per region
    // and 5-minute window starting at every minute.
    let mut windows: BTreeMap<(String, i64), Window> = BTreeMap::new();
    for (p, kind) in &activity {
        let mut start = p.ts - p.ts.rem_euclid(MINUTE);
        while start > p.ts - HOP_SIZE && start >= 0 {
            let w = windows.entry((p.region.clone(), start)).or_default();
            match (*kind, p.status.as_str()) {
                ("user", "waiting") => {
                    w.0.insert(&p.id);
                }
                ("taxi", "free") => {
                    w.1.insert(&p.id);
                }
                _ => {}
            }
            start -= MINUTE;
        }
    }
    let counts: BTreeMap<(String, i64), (i64, i64)> = windows
        .iter()
        .map(|(k, (w, f))| (k.clone(), (w.len() as i64, f.len() as i64)))
        .collect();
    let rows: Vec<Row> = counts
        .iter()
        .map(|((region, start), (w, f))| {
            vec![
                text(region),
                text(start),
                text(start + HOP_SIZE),
                text(w),
                text(f),
            ]
        })
        .collect();
    eventually_sorted(
        &run,
        "SELECT region, windowstart, windowend, waiting_users, free_taxis FROM region_supply_demand",
        &rows,
    );
    let want: BTreeMap<Vec<u8>, Option<Value>> = counts
        .iter()
        .map(|((region, start), (w, f))| {
            let v = json!({"WAITING_USERS": w, "FREE_TAXIS": f});
            (windowed_key(region, *start), Some(expected_json(&v)))
        })
        .collect();
    assert_eq!(
        latest(&run.topic("REGION_SUPPLY_DEMAND")),
        want,
        "region_supply_demand topic"
    );

    // surge_pricing: the ratio and the multiplier of each window.
    let surge = |w: i64, f: i64| -> (Option<f64>, f64) {
        let ratio = (f > 0).then(|| ratio(w, f));
        let multiplier = if w == 0 {
            1.0
        } else if f == 0 || w >= 2 * f {
            2.0
        } else if w * 2 >= f * 3 {
            1.5
        } else if w > f {
            1.2
        } else {
            1.0
        };
        (ratio, multiplier)
    };
    assert!(
        counts.values().any(|(w, f)| surge(*w, *f).1 >= 1.5),
        "no region surges: the hot spots should make some"
    );
    let rows: Vec<Row> = counts
        .iter()
        .map(|((region, start), (w, f))| {
            let (r, m) = surge(*w, *f);
            vec![
                text(region),
                text(start),
                text(w),
                text(f),
                r.map(|r| r.to_string()),
                text(m),
            ]
        })
        .collect();
    eventually_sorted(
        &run,
        "SELECT region, windowstart, waiting_users, free_taxis, demand_ratio, surge_multiplier FROM surge_pricing",
        &rows,
    );
    let want: BTreeMap<Vec<u8>, Option<Value>> = counts
        .iter()
        .map(|((region, start), (w, f))| {
            let (r, m) = surge(*w, *f);
            let v = json!({"WAITING_USERS": w, "FREE_TAXIS": f, "DEMAND_RATIO": r, "SURGE_MULTIPLIER": m});
            (windowed_key(region, *start), Some(expected_json(&v)))
        })
        .collect();
    assert_eq!(
        latest(&run.topic("SURGE_PRICING")),
        want,
        "surge_pricing topic"
    );

    // taxi_offers: waiting user and free taxi positions of one region at
    // most 5 s apart and 1 km away, at the later of the two times.
    let mut offers: Vec<(&Position, &Position, f64, i64)> = Vec::new();
    for u in users.iter().filter(|u| u.status == "waiting") {
        for t in taxis.iter().filter(|t| t.status == "free") {
            if t.region == u.region && (t.ts - u.ts).abs() <= WITHIN {
                let d = geo_distance(u.lat, u.lon, t.lat, t.lon);
                if d <= MAX_KM {
                    offers.push((u, t, d, u.ts.max(t.ts)));
                }
            }
        }
    }
    assert!(offers.len() > 20, "too few offers: {}", offers.len());
    let rows: Vec<Row> = offers
        .iter()
        .map(|(u, t, d, at)| vec![text(&u.region), text(&u.id), text(&t.id), text(d), text(at)])
        .collect();
    eventually_sorted(
        &run,
        "SELECT region, user_id, taxi_id, distance_km, ROWTIME FROM taxi_offers",
        &rows,
    );
    let mut want: Vec<(Vec<u8>, String, i64)> = offers
        .iter()
        .map(|(u, t, d, at)| {
            let v = json!({"USER_ID": u.id, "TAXI_ID": t.id, "DISTANCE_KM": d});
            (
                u.region.as_bytes().to_vec(),
                expected_json(&v).to_string(),
                *at,
            )
        })
        .collect();
    want.sort();
    assert_eq!(
        stream_records(&run, "TAXI_OFFERS"),
        want,
        "taxi_offers topic"
    );

    // nearest_taxi: per user and minute of the offers, the nearest distance
    // and the distinct taxis offered.
    let mut nearest: BTreeMap<(&str, i64), (f64, BTreeSet<&str>)> = BTreeMap::new();
    for (u, t, d, at) in &offers {
        let start = at - at.rem_euclid(MINUTE);
        let e = nearest
            .entry((&u.id, start))
            .or_insert((f64::INFINITY, BTreeSet::new()));
        e.0 = e.0.min(*d);
        e.1.insert(&t.id);
    }
    let rows: Vec<Row> = nearest
        .iter()
        .map(|((user, start), (d, ts))| {
            vec![
                text(user),
                text(start),
                text(start + MINUTE),
                text(d),
                text(ts.len()),
            ]
        })
        .collect();
    eventually_sorted(
        &run,
        "SELECT user_id, windowstart, windowend, nearest_km, taxis_nearby FROM nearest_taxi",
        &rows,
    );
    let want: BTreeMap<Vec<u8>, Option<Value>> = nearest
        .iter()
        .map(|((user, start), (d, ts))| {
            let v = json!({"NEAREST_KM": d, "TAXIS_NEARBY": ts.len()});
            (windowed_key(user, *start), Some(expected_json(&v)))
        })
        .collect();
    assert_eq!(
        latest(&run.topic("NEAREST_TAXI")),
        want,
        "nearest_taxi topic"
    );

    // The analytics store: every position exactly once in Parquet.
    check_archive(&run, "taxi_position", "TAXI_ID", &taxis);
    check_archive(&run, "user_position", "USER_ID", &users);
}

/// The Parquet files of a positions sink hold every position once, with
/// its record time, partition and offset (unique).
fn check_archive(run: &Run, location: &str, id: &str, ps: &[Position]) {
    let sql = format!(
        "SELECT \"{id}\", \"LAT\", \"LON\", \"REGION\", \"STATUS\", \"EVENT_TS\", \"ROWTIME\", \"ROWPARTITION\", \"ROWOFFSET\" FROM archive"
    );
    let key = |p: &Position| {
        (
            p.id.clone(),
            p.lat.to_bits(),
            p.lon.to_bits(),
            p.region.clone(),
            p.status.clone(),
            p.ts,
            p.ts,
        )
    };
    let mut want: Vec<_> = ps.iter().map(key).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = if run.analytics_files(location).is_empty() {
            Vec::new()
        } else {
            run.analytics(location, &sql)
        };
        let field = |r: &Row, i: usize| r[i].clone().expect("no NULL in the archive");
        let mut got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    field(r, 0),
                    field(r, 1).parse::<f64>().unwrap().to_bits(),
                    field(r, 2).parse::<f64>().unwrap().to_bits(),
                    field(r, 3),
                    field(r, 4),
                    field(r, 5).parse::<i64>().unwrap(),
                    field(r, 6).parse::<i64>().unwrap(),
                )
            })
            .collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            assert_eq!(got.len(), want.len(), "{location}: rows in the archive");
            assert_eq!(got, want, "{location}: the archive");
            let places: HashSet<(String, String)> =
                rows.iter().map(|r| (field(r, 7), field(r, 8))).collect();
            assert_eq!(
                places.len(),
                rows.len(),
                "{location}: (ROWPARTITION, ROWOFFSET) repeats"
            );
            for f in run.analytics_files(location) {
                assert!(
                    f.starts_with("dt=") && f.contains("/hour="),
                    "{location}: file outside dt=/hour=: {f}"
                );
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

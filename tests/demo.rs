//! `sluice demo` as a new user meets it: it starts, prints psql commands,
//! and each of them, run with the real psql, answers rows that mean what
//! the tour says: as many columns as the query selects, each value of its
//! column's kind and range, in the order the query asks for, no more rows
//! than its LIMIT (a push query exactly its LIMIT), one row per group.
//! The generators run on the wall clock, so the values themselves vary
//! from run to run; what holds for every run is checked.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

#[test]
fn the_demo_answers_every_psql_command_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::binary())
        .arg("demo")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sluice demo");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Kill(child);
    let mut commands = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8");
        if line.starts_with("Stop the demo") {
            break;
        }
        if line.starts_with("psql ") {
            commands.push(line);
        }
    }
    assert!(
        commands.len() >= 10,
        "the demo prints a tour of every case: {commands:?}"
    );
    // Windows fill and generators warm up: each command may take a while
    // to find rows.
    let deadline = Instant::now() + Duration::from_secs(360);
    for command in &commands {
        let sql = command
            .split_once(" -c \"")
            .and_then(|(_, rest)| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("not a psql -c command: {command}"));
        let rows = loop {
            let out = Command::new("bash")
                .args(["-c", &format!("{command} -A -t -v ON_ERROR_STOP=1")])
                .output()
                .expect("run psql");
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !text.is_empty() {
                break text;
            }
            assert!(
                Instant::now() < deadline,
                "{command}\nreturned no rows: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_secs(2));
        };
        let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('|').collect()).collect();
        if let Err(e) = check_answer(sql, &rows) {
            panic!("{sql}\n{e}\nrows:\n{}", show(&rows));
        }
    }
    drop(child);
}

fn show(rows: &[Vec<&str>]) -> String {
    rows.iter()
        .map(|r| r.join("|"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a query's answer must be, from its text: the columns it selects,
/// their kinds, its ORDER BY, LIMIT and GROUP BY.
fn check_answer(sql: &str, rows: &[Vec<&str>]) -> Result<(), String> {
    let upper = sql.to_ascii_uppercase();
    let select = &sql["SELECT ".len()..upper.find(" FROM ").ok_or("no FROM")?];
    let columns: Vec<String> = select
        .split(", ")
        .map(|item| item.rsplit(' ').next().unwrap_or(item).to_ascii_lowercase())
        .collect();
    let mut width = columns.len();
    // A push query over a table ends each row with its change: insert,
    // update or delete.
    let push = upper.contains(" EMIT CHANGES");
    if push && rows.first().is_some_and(|r| r.len() == width + 1) {
        for r in rows {
            if !matches!(r.last(), Some(&("insert" | "update" | "delete"))) {
                return Err(format!(
                    "a table's change is insert, update or delete: {r:?}"
                ));
            }
        }
        width += 1;
    }
    if let Some(r) = rows.iter().find(|r| r.len() != width) {
        return Err(format!(
            "{width} columns selected, a row has {}: {r:?}",
            r.len()
        ));
    }
    let limit = word_after(&upper, " LIMIT ").map(|n| n.parse::<usize>().unwrap());
    match limit {
        Some(n) if push && rows.len() != n => {
            return Err(format!(
                "a push query with LIMIT {n} answered {} rows",
                rows.len()
            ))
        }
        Some(n) if rows.len() > n => return Err(format!("LIMIT {n}, {} rows", rows.len())),
        _ => {}
    }
    // A table's delete names the key that is gone; its other columns are
    // NULL (empty here).
    let deleted = |row: &[&str]| row.len() > columns.len() && row.last() == Some(&"delete");
    for row in rows.iter().filter(|r| deleted(r)) {
        if row[..columns.len()].iter().all(|v| v.is_empty()) {
            return Err(format!("a delete without its key: {row:?}"));
        }
    }
    for (i, name) in columns.iter().enumerate() {
        for row in rows {
            if deleted(row) && row[i].is_empty() {
                continue;
            }
            check_value(name, row[i]).map_err(|e| format!("column {name}: {e}"))?;
        }
    }
    // ORDER BY: the first key's column, when selected, is sorted as asked.
    let order = upper
        .split(" ORDER BY ")
        .nth(1)
        .and_then(|o| o.split(" LIMIT ").next()?.split(',').next())
        .map(str::trim);
    if let Some(first) = order {
        let key = first.split(' ').next().unwrap_or("").to_ascii_lowercase();
        let desc = first.ends_with(" DESC");
        if let Some(i) = columns.iter().position(|c| *c == key) {
            for pair in rows.windows(2) {
                let (a, b) = (pair[0][i], pair[1][i]);
                let ordered = match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) if desc => x >= y,
                    (Ok(x), Ok(y)) => x <= y,
                    _ if desc => a >= b,
                    _ => a <= b,
                };
                if !ordered {
                    return Err(format!("not ordered by {key}: {a} then {b}"));
                }
            }
        }
    }
    // GROUP BY: one row per group.
    if let Some(group) = upper.split(" GROUP BY ").nth(1) {
        let keys: Vec<usize> = group
            .split(" ORDER BY ")
            .next()
            .unwrap_or("")
            .split(',')
            .map(|k| k.trim().to_ascii_lowercase())
            .map(|k| {
                columns
                    .iter()
                    .position(|c| *c == k)
                    .ok_or(format!("GROUP BY {k} is not selected"))
            })
            .collect::<Result<_, _>>()?;
        let mut seen = std::collections::BTreeSet::new();
        for row in rows {
            let key: Vec<&str> = keys.iter().map(|&i| row[i]).collect();
            if !seen.insert(key.clone()) {
                return Err(format!("group {key:?} answered twice"));
            }
        }
    }
    Ok(())
}

fn word_after<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    text.split(word).nth(1)?.split_whitespace().next()
}

/// A value of the named column: of its kind and in its range.
fn check_value(column: &str, v: &str) -> Result<(), String> {
    let number = || {
        v.parse::<f64>()
            .map_err(|_| format!("`{v}` is not a number"))
    };
    let count = || {
        v.parse::<u64>()
            .map_err(|_| format!("`{v}` is not a count"))
    };
    let within = |lo: f64, hi: f64| -> Result<(), String> {
        let x = number()?;
        if (lo..=hi).contains(&x) {
            Ok(())
        } else {
            Err(format!("{x} is outside [{lo}, {hi}]"))
        }
    };
    match column {
        "user_id" | "show_id" | "taxi_id" | "post_id" | "author_id" | "txn_id" | "service"
        | "region" | "genre" | "title" | "merchant" | "status" => {
            if v.is_empty() {
                Err("empty".into())
            } else {
                Ok(())
            }
        }
        "position_ms" | "watch_time_ms" | "shows_started" | "like_count" | "comment_count"
        | "waiting_users" | "free_taxis" | "taxis_nearby" | "likes_last_hour"
        | "comments_last_hour" | "server_errors" => count().map(|_| ()),
        // Counts of groups that exist: at least one.
        "requests" | "heartbeats" | "positions" | "taxis" | "lines" => match count()? {
            0 => Err("a group of no rows".into()),
            _ => Ok(()),
        },
        "finished" => match v {
            "t" | "f" => Ok(()),
            _ => Err(format!("`{v}` is not a boolean")),
        },
        "completion_ratio" => within(0.0, 1.0),
        "lat" => within(-90.0, 90.0),
        "lon" => within(-180.0, 180.0),
        "surge_multiplier" | "nearest_km" | "avg_latency_ms" | "max_ms" | "amount"
        | "threshold" | "engagement" => within(0.0, f64::MAX),
        // Event times: epoch milliseconds of this century.
        "windowstart" | "since_ts" => within(1.0e12, 4.1e12),
        "dt" => {
            let ok = v.len() == 10
                && v.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if ok {
                Ok(())
            } else {
                Err(format!("`{v}` is not a date"))
            }
        }
        "hour" => within(0.0, 23.0),
        // TOPK: the largest latencies, largest first.
        "slowest_ms" => match serde_json::from_str::<Vec<f64>>(v) {
            Ok(top) if top.len() <= 3 && top.windows(2).all(|p| p[0] >= p[1]) => Ok(()),
            _ => Err(format!("`{v}` is not the top latencies, largest first")),
        },
        "show_ids" => match serde_json::from_str::<serde_json::Value>(v) {
            Ok(serde_json::Value::Array(_)) => Ok(()),
            _ => Err(format!("`{v}` is not a JSON array")),
        },
        "genre_heartbeats" => match serde_json::from_str::<serde_json::Value>(v) {
            Ok(serde_json::Value::Object(m)) if m.values().all(|n| n.as_u64().is_some()) => Ok(()),
            _ => Err(format!("`{v}` is not a JSON object of counts")),
        },
        other => Err(format!("the test has no check for column {other}: add one")),
    }
}

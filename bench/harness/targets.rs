//! The hot-path issue's targets (issue 17, "Done when"), checked against
//! the figures of the results: one line per target and setting, with the
//! figure measured and whether it meets the target. A target whose figures
//! were not measured is left out.

use std::fmt::Write;

use crate::report::{k, median};
use crate::throughput::{Runs, Settings, Topology};
use crate::Results;

/// One target: what, the figure, met or not.
struct Line {
    target: String,
    figure: String,
    met: bool,
}

fn inproc(r: &Results, out: &mut Vec<Line>) {
    let Some(p) = &r.inproc else { return };
    for (query, floor) in [
        ("project", 1_000_000.0),
        ("window_count", 400_000.0),
        ("join", 400_000.0),
        ("table_agg", 300_000.0),
    ] {
        for x in p.data.iter().filter(|x| x.query == query) {
            let per_core = x.events as f64 / median(&x.cpu_s);
            out.push(Line {
                target: format!(
                    "in process, {query} ({}): ≥ {} events/s per core",
                    x.settings.label(),
                    k(floor)
                ),
                figure: k(per_core),
                met: per_core >= floor,
            });
        }
    }
}

fn nexmark(r: &Results, out: &mut Vec<Line>) {
    let Some(p) = &r.nexmark else { return };
    // Twice RisingWave's published per-core figures.
    for (query, floor) in [("q5", 10_400.0), ("q7", 40_000.0)] {
        for x in p.data.runs.iter().filter(|x| x.query == query) {
            let per_core = x.events as f64 / median(&x.cpu_s);
            out.push(Line {
                target: format!(
                    "Nexmark {query} in process ({}): ≥ {} events/s per core (2× RisingWave)",
                    x.settings.label(),
                    k(floor)
                ),
                figure: k(per_core),
                met: per_core >= floor,
            });
        }
    }
}

fn kafka(r: &Results, out: &mut Vec<Line>) {
    let Some(p) = &r.kafka else { return };
    let find = |t: Topology, engine: &str, s: Option<Settings>| {
        p.data
            .iter()
            .find(|x| x.topology == t.name() && x.engine == engine && x.settings == s)
            .and_then(Runs::rates)
    };
    let mut settings: Vec<Settings> = vec![];
    for s in p.data.iter().filter_map(|x| x.settings) {
        if !settings.contains(&s) {
            settings.push(s);
        }
    }
    for s in settings {
        let raw = find(Topology::Project, "raw-consumer", None);
        if let (Some(sl), Some(raw)) = (find(Topology::Project, "sluice", Some(s)), raw) {
            out.push(Line {
                target: format!(
                    "Kafka, project ({}): ≥ 50% of the raw consumer per core",
                    s.label()
                ),
                figure: format!("{:.0}%", sl.1 / raw.1 * 100.0),
                met: sl.1 >= 0.5 * raw.1,
            });
        }
        for t in Topology::ALL {
            let (Some(sl), Some(ks)) = (
                find(t, "sluice", Some(s)),
                find(t, "kafka-streams", Some(s)),
            ) else {
                continue;
            };
            out.push(Line {
                target: format!(
                    "Kafka, {} ({}): ≥ 4× Kafka Streams per core",
                    t.name(),
                    s.label()
                ),
                figure: format!("{:.2}×", sl.1 / ks.1),
                met: sl.1 >= 4.0 * ks.1,
            });
            out.push(Line {
                target: format!(
                    "Kafka, {} ({}): ahead of Kafka Streams in wall-clock",
                    t.name(),
                    s.label()
                ),
                figure: format!("{:.2}×", sl.0 / ks.0),
                met: sl.0 > ks.0,
            });
        }
    }
}

fn latency(r: &Results, out: &mut Vec<Line>) {
    let Some(p) = &r.latency else { return };
    for sc in &p.data.scenarios {
        let name = if sc.shared { "shared" } else { "alone" };
        let Some(ceiling) = (match sc.rate {
            1000 => Some(50.0),
            20_000 => Some(100.0),
            _ => None,
        }) else {
            continue;
        };
        // Every run must meet it: the worst run's figures.
        let worst_p99 = sc
            .runs
            .iter()
            .map(|r| r.push.p99)
            .try_fold(0.0f64, |m, x| x.map(|x| m.max(x)));
        let delivered = sc.runs.iter().all(|r| r.push.missing == 0);
        out.push(Line {
            target: format!(
                "push, {}/s, {name}: p99 ≤ {ceiling:.0} ms, every row delivered",
                sc.rate
            ),
            figure: match worst_p99 {
                Some(v) if delivered => format!("{v:.1} ms"),
                Some(v) => format!("{v:.1} ms, rows missing"),
                None => "rows missing".into(),
            },
            met: delivered && worst_p99.is_some_and(|v| v <= ceiling),
        });
        let gap = sc.runs.iter().map(|r| r.push_gap_ms).fold(0.0, f64::max);
        out.push(Line {
            target: format!("push, {}/s, {name}: no stall over 100 ms", sc.rate),
            figure: format!("{gap:.0} ms"),
            met: gap <= 100.0,
        });
        if sc.shared {
            let p99 = sc
                .runs
                .iter()
                .map(|r| r.pull.as_ref().and_then(|d| d.p99))
                .try_fold(0.0f64, |m, x| x.map(|x| m.max(x)));
            if sc.rate == 20_000 {
                out.push(Line {
                    target: "pull, 20000/s: sees a produced record within 100 ms (p99)".into(),
                    figure: p99.map_or("probes unanswered".into(), |v| format!("{v:.1} ms")),
                    met: p99.is_some_and(|v| v <= 100.0),
                });
            }
            let gap = sc
                .runs
                .iter()
                .filter_map(|r| r.pull_gap_ms)
                .fold(0.0, f64::max);
            out.push(Line {
                target: format!("pull, {}/s: no stall over 100 ms", sc.rate),
                figure: format!("{gap:.0} ms"),
                met: gap <= 100.0,
            });
        }
    }
}

/// The targets section of `docs/benchmarks.md` (empty when nothing to
/// check was measured).
pub fn section(r: &Results) -> String {
    let mut lines = vec![];
    inproc(r, &mut lines);
    kafka(r, &mut lines);
    latency(r, &mut lines);
    nexmark(r, &mut lines);
    let mut s = String::new();
    if lines.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "## Targets\n\n\
         Issue 17's targets against the figures below (per core: events per CPU-second, \
         medians of the runs; latency: the worst run). Each part's figures come from the run \
         named with it.\n\n\
         | target | measured | met |\n|---|---|---|"
    );
    for l in lines {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            l.target,
            l.figure,
            if l.met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(s);
    s
}

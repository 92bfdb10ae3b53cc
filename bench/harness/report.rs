//! `docs/benchmarks.md` from the results: medians of the runs, ratios
//! between engines measured in the same run of the harness.

use std::fmt::Write;

use crate::latency::{Dist, Latency};
use crate::throughput::{Runs, Settings, Topology};
use crate::{Measured, Measurement, Results};

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// The `p`th percentile (nearest rank) of `v`; NaN when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn k(x: f64) -> String {
    if x >= 100_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else if x >= 10_000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
}

fn secs(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.1}")
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or("not delivered".into(), |v| format!("{v:.1}"))
}

/// The median of values some of which are missing (None sorts last: an
/// event never seen is later than any seen).
fn median_opt(v: &[Option<f64>]) -> Option<f64> {
    let mut s: Vec<Option<f64>> = v.to_vec();
    s.sort_by(|a, b| match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(b),
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
    });
    let rank = (s.len() as f64 / 2.0).ceil() as usize;
    s.get(rank.max(1) - 1).copied().flatten()
}

/// The worst of values some of which are missing (None: never seen).
fn worst(v: &[Option<f64>]) -> Option<f64> {
    v.iter()
        .try_fold(f64::NEG_INFINITY, |m, x| x.map(|x| m.max(x)))
}

/// "2026-12-06 19:00 UTC, sluice 0.1.0 (abc123), 3 runs": the label of a
/// part, from the run that measured it.
fn measured_line(m: &Measured) -> String {
    format!(
        "Measured {}, sluice {}, {} run(s) of each figure.",
        m.when,
        m.versions.get("sluice").map_or("?", |v| v.as_str()),
        m.scale.runs
    )
}

pub fn markdown(r: &Results, improvements: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks\n\n\
         Written by `bench/run.sh` (the harness in `bench/harness/`); do not edit by hand: \
         rerun it. Every figure is the median of the runs of one harness run (the number \
         is given with each part); ratios compare engines measured in that same run, on \
         the same machine and broker; a dash is a figure that run did not measure. A part \
         left out of a partial run (`--only`) keeps the figures, settings and versions of \
         the run that measured it, given with it.\n\n\
         Run everything (an estimated three hours on the 2-core machine below; it installs what \
         it needs, builds Sluice and the Kafka Streams peer, starts a broker):\n\n\
         ```sh\nbench/run.sh\n```\n\n\
         A quick check that every part works (about six minutes; the figures mean little):\n\n\
         ```sh\nbench/run.sh --runs 1 --events 20000 --nexmark-events 5000 --state-keys 20000 \
         --state-runs 1 --pull-keys 2000 --pull-secs 2 --latency-secs 3 --latency-warmup-secs 1\n```\n"
    );
    let parts: Vec<(&str, &Measured)> = [
        (
            "Streaming throughput on Kafka",
            r.kafka.as_ref().map(|p| &p.measured),
        ),
        (
            "In-process throughput",
            r.inproc.as_ref().map(|p| &p.measured),
        ),
        (
            "Nexmark in process",
            r.nexmark.as_ref().map(|p| &p.measured),
        ),
        (
            "End-to-end latency",
            r.latency.as_ref().map(|p| &p.measured),
        ),
        (
            "Pull queries against PostgreSQL",
            r.pull.as_ref().map(|p| &p.measured),
        ),
        (
            "State larger than memory",
            r.state.as_ref().map(|p| &p.measured),
        ),
    ]
    .into_iter()
    .filter_map(|(n, m)| Some((n, m?)))
    .collect();
    if let Some((_, m)) = parts.iter().max_by_key(|(_, m)| m.when.clone()) {
        let _ = writeln!(s, "## Machine\n");
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| CPU | {} cores, {} |", m.machine.cores, m.machine.cpu);
        let _ = writeln!(s, "| Memory | {:.0} GiB |", m.machine.memory_gib);
        let _ = writeln!(
            s,
            "\nThe broker, the engines and the load all share this machine. Sluice runs its \
             release-like build (dependencies at opt-level 2 without debug assertions, Sluice \
             at opt-level 3); Kafka Streams runs with `-Xmx2g` and {} stream threads.\n",
            m.machine.cores
        );
        let _ = writeln!(s, "## Which run measured what\n");
        let names: std::collections::BTreeSet<&String> =
            parts.iter().flat_map(|(_, m)| m.versions.keys()).collect();
        let _ = write!(s, "| part | measured | runs |");
        for n in &names {
            let _ = write!(s, " {n} |");
        }
        let _ = write!(s, "\n|---|---|---|");
        for _ in &names {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s);
        for (part, m) in &parts {
            let _ = write!(s, "| {part} | {} | {} |", m.when, m.scale.runs);
            for n in &names {
                let _ = write!(s, " {} |", m.versions.get(*n).map_or("–", |v| v.as_str()));
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
    }

    s.push_str(&crate::targets::section(r));
    if let Some(p) = &r.kafka {
        kafka(&mut s, p);
    }
    if let Some(p) = &r.inproc {
        let _ = writeln!(
            s,
            "## In-process throughput\n\n\
             The engine over in-memory topics, no broker: the input ({} views, {} taxi \
             updates) is appended before the clock starts, which stops when every query is \
             idle. Same statements as on Kafka, with the record cache and commit interval \
             each row gives. {}\n",
            p.measured.scale.events,
            p.measured.scale.events,
            measured_line(&p.measured)
        );
        inproc_table(&mut s, &p.data);
    }
    if let Some(p) = &r.nexmark {
        let _ = writeln!(
            s,
            "## Nexmark in process\n\n\
             {} events of the `nexmark` crate (people, auctions and bids in the standard \
             proportions), queries in `bench/nexmark/`, in process as above. {}\n",
            p.measured.scale.nexmark_events,
            measured_line(&p.measured)
        );
        inproc_table(&mut s, &p.data.runs);
        for (q, e) in &p.data.failed {
            let _ = writeln!(s, "{q} did not run: {e}\n");
        }
    }
    if let Some(p) = &r.latency {
        latency(&mut s, p);
    }

    if let Some(m) = &r.pull {
        let p = &m.data;
        let _ = writeln!(
            s,
            "## Pull queries against PostgreSQL\n\n\
             {} connections look up random keys (`SELECT id, owner, balance FROM accounts WHERE \
             id = $1`, prepared) for {} s, on {} accounts: a Sluice table that `CREATE TABLE ... AS \
             SELECT ... LATEST_BY_OFFSET ... GROUP BY id` keeps in RocksDB from a Kafka topic, \
             and a PostgreSQL table with a primary key holding the same rows. The same \
             client drives both. Sluice is measured idle, then while 20,000 events/s flow \
             into another of its queries (a `GROUP BY` count), then while another session \
             scans the whole table (`SELECT COUNT(*), SUM(balance) FROM accounts`) over and \
             over. {}\n",
            p.connections,
            p.seconds,
            p.keys,
            measured_line(&m.measured)
        );
        let _ = writeln!(
            s,
            "| server | lookups/s | p50 ms | p99 ms |\n|---|---|---|---|"
        );
        for x in &p.servers {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.2} |",
                x.name,
                k(median(&x.qps)),
                median(&x.p50_ms),
                median(&x.p99_ms)
            );
        }
        if let (Some(a), Some(b)) = (p.servers.first(), p.servers.get(1)) {
            let _ = writeln!(
                s,
                "\n{} / {}: {:.2} of the lookups per second.\n",
                a.name,
                b.name,
                median(&a.qps) / median(&b.qps)
            );
        }
        if let (Some(a), Some(c)) = (p.servers.first(), p.servers.get(2)) {
            let worst = c.caught_up_s.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "{} / {}: {:.2} of the lookups per second; the other query had committed all of \
                 its input {worst:.2} s after it stopped (worst run).\n",
                c.name,
                a.name,
                median(&c.qps) / median(&a.qps)
            );
        }
        if let (Some(a), Some(d)) = (p.servers.first(), p.servers.get(3)) {
            let _ = writeln!(
                s,
                "{} / {}: {:.2} of the lookups per second, p99 {:.2} ms against {:.2} ms; the \
                 other session's scans of all {} rows took {:.2} s each (median), at least {} per run.\n",
                d.name,
                a.name,
                median(&d.qps) / median(&a.qps),
                median(&d.p99_ms),
                median(&a.p99_ms),
                p.keys,
                median(&d.scan_s),
                d.scans.iter().min().copied().unwrap_or(0)
            );
        }
    }

    if let Some(m) = &r.state {
        let _ = writeln!(
            s,
            "## State larger than memory\n\n\
             A windowed count and sum (1-hour tumbling window) over as many distinct keys as \
             records, on Kafka; the state lives in RocksDB. Peak resident memory of the Sluice \
             process against the size of its data directory at the end. Measured {}, sluice \
             {}, {} runs of each size.\n",
            m.measured.when,
            m.measured
                .versions
                .get("sluice")
                .map_or("?", |v| v.as_str()),
            m.measured.scale.state_runs
        );
        let _ = writeln!(s, "| distinct keys | s | peak RSS | state on disk | peak RSS / state |\n|---|---|---|---|---|");
        for x in &m.data {
            let rss = median(
                &x.peak_rss_bytes
                    .iter()
                    .map(|b| *b as f64)
                    .collect::<Vec<_>>(),
            ) as u64;
            let disk = median(&x.state_bytes.iter().map(|b| *b as f64).collect::<Vec<_>>()) as u64;
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {} | {:.2} |",
                x.keys,
                median(&x.wall_s),
                mib(rss),
                mib(disk),
                rss as f64 / disk.max(1) as f64
            );
        }
        let _ = writeln!(s);
    }

    if !improvements.trim().is_empty() {
        let _ = writeln!(s, "{}", improvements.trim_end());
    }
    s
}

fn inproc_table(s: &mut String, rows: &[crate::inproc::Runs]) {
    let _ = writeln!(
        s,
        "| query | settings | events | s | events/s | events per CPU-s | outputs |\n\
         |---|---|---|---|---|---|---|"
    );
    // A cache setting that changed nothing: as many outputs as the same
    // query without the cache, in this run.
    let no_effect = |x: &crate::inproc::Runs| {
        x.settings.cache_bytes > 0
            && rows.iter().any(|o| {
                o.query == x.query
                    && o.settings.cache_bytes == 0
                    && o.settings.commit_interval_ms == x.settings.commit_interval_ms
                    && o.outputs == x.outputs
            })
    };
    for x in rows {
        let _ = writeln!(
            s,
            "| {} | {}{} | {} | {:.2} | {} | {} | {} |",
            x.query,
            x.settings.label(),
            if no_effect(x) {
                " (as many outputs as with the cache off)"
            } else {
                ""
            },
            x.events,
            median(&x.wall_s),
            k(x.events as f64 / median(&x.wall_s)),
            k(x.events as f64 / median(&x.cpu_s)),
            x.outputs
        );
    }
    let _ = writeln!(s);
}

fn kafka(s: &mut String, p: &Measurement<Vec<Runs>>) {
    let m = &p.measured;
    let _ = writeln!(
        s,
        "## Streaming throughput on Kafka\n\n\
         Input pre-loaded on the broker ({} views keyed by show, 10,000 shows, {} taxi \
         updates keyed by taxi; JSON, 4 partitions). The same work in both engines: the \
         views are keyed by the column the window count and the join group and join by, so \
         neither engine repartitions them; the table aggregation groups taxis by region, \
         which Kafka Streams can only do through a repartition topic (ksqlDB too), while \
         Sluice, one process, needs none: its repartitioned records are counted below. Both \
         engines run with the same record cache (`ksql.streams.cache.max.bytes.buffering` \
         in Sluice, `statestore.cache.max.bytes` in Kafka Streams; off: every update is \
         written) and commit interval, given per row; Kafka Streams with \
         `topology.optimization=all`, as ksqlDB runs it. {}\n\n\
         Steady state leaves out start-up and warm-up: from when the engine had committed \
         {:.0}% of the input to its last output record (stamped by the broker), the events \
         left over the wall-clock time (events/s) and over the engine's CPU time in that \
         span (events per CPU-second, i.e. events/s per core). The raw consumer reads the \
         input with librdkafka and does nothing else: the ceiling.\n",
        m.scale.events,
        m.scale.events,
        measured_line(m),
        m.scale.warmup_fraction * 100.0,
    );
    let find = |t: &str, engine: &str, settings: Option<Settings>| {
        p.data
            .iter()
            .find(|x| x.topology == t && x.engine == engine && x.settings == settings)
    };
    let mut settings: Vec<Settings> = p.data.iter().filter_map(|x| x.settings).collect();
    settings.dedup();
    let mut seen = vec![];
    settings.retain(|x| {
        let new = !seen.contains(x);
        seen.push(*x);
        new
    });
    let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".to_string(), f);
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let r2 = |v: f64| format!("{v:.2}");
    // Whether Sluice's record cache changed anything: its outputs with the
    // cache against its outputs without, in this run.
    let no_effect = |t: Topology, st: Settings| {
        let off = Settings {
            cache_bytes: 0,
            ..st
        };
        t.is_table()
            && st.cache_bytes > 0
            && find(t.name(), "sluice", Some(st))
                .zip(find(t.name(), "sluice", Some(off)))
                .is_some_and(|(on, off)| on.outputs.last() == off.outputs.last())
    };
    let label = |t: Topology, st: Settings| {
        if no_effect(t, st) {
            format!("{} (Sluice: every update ¹)", st.label())
        } else {
            st.label()
        }
    };

    let _ = writeln!(
        s,
        "### Steady-state throughput\n\n\
         | topology | settings (both engines) | Sluice events/s | Kafka Streams events/s | Sluice / Kafka Streams | Sluice events/s/core | Kafka Streams events/s/core | Sluice / Kafka Streams (per core) | raw consumer events/s/core | Sluice / raw (per core) |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    let mut any_no_effect = false;
    for t in Topology::ALL {
        let raw = find(t.name(), "raw-consumer", None).and_then(|x| x.rates());
        for st in &settings {
            let sl = find(t.name(), "sluice", Some(*st)).and_then(|x| x.rates());
            let ks = find(t.name(), "kafka-streams", Some(*st)).and_then(|x| x.rates());
            if sl.is_none() && ks.is_none() {
                continue;
            }
            any_no_effect |= no_effect(t, *st);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.title(),
                label(t, *st),
                cell(sl.map(|x| x.0), &k),
                cell(ks.map(|x| x.0), &k),
                cell(ratio(sl.map(|x| x.0), ks.map(|x| x.0)), &r2),
                cell(sl.map(|x| x.1), &k),
                cell(ks.map(|x| x.1), &k),
                cell(ratio(sl.map(|x| x.1), ks.map(|x| x.1)), &r2),
                cell(raw.map(|x| x.1), &k),
                cell(ratio(sl.map(|x| x.1), raw.map(|x| x.1)), &r2),
            );
        }
    }
    if any_no_effect {
        let _ = writeln!(
            s,
            "\n¹ Sluice wrote as many records with the cache as without it, in this run: it \
             wrote every update, so these rows compare Sluice writing every update with Kafka \
             Streams coalescing them. (A stream's records are never coalesced, in either \
             engine.)"
        );
    }
    let _ = writeln!(s, "\n![Throughput](benchmarks/throughput.png)\n");

    let _ = writeln!(
        s,
        "### Work, output and start-up\n\n\
         Output records of each engine (last run), and whether the outputs agree: for the \
         streams (filter/project, join) every record, for the tables (window count, \
         aggregation) the latest value of each key, compared by digest. Records Kafka \
         Streams wrote to its own topics: repartition topics, and changelogs of its state \
         stores (Sluice keeps its state in local RocksDB checkpoints and writes no topics \
         but the output). Start-up: from the process's start to its first output record; \
         last output: from its start to its last.\n\n\
         | topology | settings (both engines) | Sluice outputs | Kafka Streams outputs | outputs agree | Kafka Streams repartitioned | Kafka Streams changelog | Sluice start-up s | Kafka Streams start-up s | Sluice last output s | Kafka Streams last output s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for t in Topology::ALL {
        for st in &settings {
            let sl = find(t.name(), "sluice", Some(*st));
            let ks = find(t.name(), "kafka-streams", Some(*st));
            if sl.is_none() && ks.is_none() {
                continue;
            }
            let last = |x: Option<&Runs>, f: &dyn Fn(&Runs) -> Option<u64>| {
                x.and_then(f).map_or("–".to_string(), |v| v.to_string())
            };
            let agree = match (
                sl.and_then(|x| x.digest.last()),
                ks.and_then(|x| x.digest.last()),
            ) {
                (Some(a), Some(b)) if a == b => "yes",
                (Some(_), Some(_)) => "**no**",
                _ => "–",
            };
            let med = |x: Option<&Runs>, f: &dyn Fn(&Runs) -> &Vec<f64>| {
                secs(x.map_or(f64::NAN, |x| median(f(x))))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.title(),
                label(t, *st),
                last(sl, &|x| x.outputs.last().copied()),
                last(ks, &|x| x.outputs.last().copied()),
                agree,
                last(ks, &|x| x.repartitioned.last().copied()),
                last(ks, &|x| x.changelog.last().copied()),
                med(sl, &|x| &x.startup_s),
                med(ks, &|x| &x.startup_s),
                med(sl, &|x| &x.total_s),
                med(ks, &|x| &x.total_s),
            );
        }
    }
    let _ = writeln!(s);
}

fn latency(s: &mut String, p: &Measurement<Latency>) {
    let l = &p.data;
    let _ = writeln!(
        s,
        "## End-to-end latency\n\n\
         A Kafka producer sends events at a fixed rate into a 4-partition topic, keyed over \
         100 keys, for {} s after {} s of warm-up (left out); the harness reads Sluice over \
         the Postgres wire (tokio-postgres). Alone: a push query (`SELECT ... EMIT CHANGES`) \
         is the only reader of the stream; shared: a persistent query (`CREATE TABLE ... AS \
         SELECT id, LATEST_BY_OFFSET(seq) ... GROUP BY id`) reads it too. Push: each row's \
         arrival minus its event's send time, over every event sent (an event not \
         delivered within 30 s of the last one is later than any: a p99 with over 1% \
         missing is \"not delivered\"). \
         Pull (shared only): a probe takes the newest event sent and asks the table for its \
         key until the answer holds it: produce to the first pull that sees the record; \
         probes are 5 to 15 ms apart, drawn at random (a fixed pause locks them to the \
         checkpoint period). \
         Gaps: the largest time between two push rows, or two pull answers, while the input \
         flowed (a stall). p50 and p99 are medians of the runs; delivered, max and gaps are \
         the worst run's. The producer (librdkafka) runs with its client's defaults \
         (`linger.ms` 5 ms, as Kafka 4's Java producer); broker acks: its delivery reports, \
         send to acknowledgement, the broker's share of the latency. The server runs with \
         its default settings. {}\n",
        l.seconds,
        l.warmup_secs,
        measured_line(&p.measured)
    );
    let _ = writeln!(
        s,
        "| events/s | stream | sent per run | push rows delivered (worst run) | push p50 ms | push p99 ms | push max ms | largest push gap ms | broker acks p50 ms | broker acks p99 ms | pull probes | pull p50 ms | pull p99 ms | pull max ms | largest gap between pull answers ms |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for sc in &l.scenarios {
        let runs = &sc.runs;
        if runs.is_empty() {
            continue;
        }
        let push =
            |f: &dyn Fn(&Dist) -> Option<f64>| runs.iter().map(|r| f(&r.push)).collect::<Vec<_>>();
        // Runs from before acknowledgements were measured have none: "–".
        let acks = |f: &dyn Fn(&Dist) -> Option<f64>| {
            if runs.iter().all(|r| r.acks.is_none()) {
                return "–".to_string();
            }
            let v: Vec<Option<f64>> = runs.iter().map(|r| r.acks.as_ref().and_then(f)).collect();
            ms(median_opt(&v))
        };
        let pulls: Vec<&Dist> = runs.iter().filter_map(|r| r.pull.as_ref()).collect();
        let pull =
            |f: &dyn Fn(&Dist) -> Option<f64>| pulls.iter().map(|d| f(d)).collect::<Vec<_>>();
        let delivered = runs
            .iter()
            .min_by_key(|r| r.push.n as i64 - r.sent as i64)
            .map(|r| format!("{} of {}", r.push.n, r.sent))
            .unwrap_or_default();
        let gap = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::max);
        let (pull_n, pull_p50, pull_p99, pull_max, pull_gap) = if pulls.is_empty() {
            ("–".into(), "–".into(), "–".into(), "–".into(), "–".into())
        } else {
            (
                pulls.last().map_or(0, |d| d.n).to_string(),
                ms(median_opt(&pull(&|d| d.p50))),
                ms(median_opt(&pull(&|d| d.p99))),
                ms(worst(&pull(&|d| d.max))),
                format!(
                    "{:.0}",
                    gap(runs.iter().filter_map(|r| r.pull_gap_ms).collect())
                ),
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            sc.rate,
            if sc.shared { "shared" } else { "alone" },
            runs.last().map_or(0, |r| r.sent),
            delivered,
            ms(median_opt(&push(&|d| d.p50))),
            ms(median_opt(&push(&|d| d.p99))),
            ms(worst(&push(&|d| d.max))),
            gap(runs.iter().map(|r| r.push_gap_ms).collect()),
            acks(&|d| d.p50),
            acks(&|d| d.p99),
            pull_n,
            pull_p50,
            pull_p99,
            pull_max,
            pull_gap,
        );
    }
    let _ = writeln!(s, "\n![Latency distribution](benchmarks/latency.png)\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(median(&[5.0]), 5.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    fn measured(when: &str, events: u64, sluice: &str) -> Measured {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "sluice-bench",
            "run",
            "--kafka",
            "k:1",
            "--sluice",
            "s",
            "--events",
            &events.to_string(),
        ])
        .unwrap();
        let crate::Cmd::Run(args) = cli.command else {
            panic!("not a run")
        };
        Measured {
            when: when.into(),
            scale: args.scale.clone(),
            machine: crate::Machine {
                cores: 2,
                cpu: "cpu".into(),
                memory_gib: 1.0,
            },
            versions: [("sluice".to_string(), sluice.to_string())].into(),
        }
    }

    #[test]
    fn every_part_keeps_the_labels_of_the_run_that_measured_it() {
        let r = Results {
            inproc: Some(Measurement {
                measured: measured("2026-01-01 10:00 UTC", 1_000, "old"),
                data: vec![],
            }),
            latency: Some(Measurement {
                measured: measured("2026-02-02 20:00 UTC", 5_000, "new"),
                data: Latency::default(),
            }),
            ..Default::default()
        };
        let md = markdown(&r, "");
        let inproc = &md[md.find("## In-process").unwrap()..md.find("## End-to-end").unwrap()];
        assert!(inproc.contains("the input (1000 views, 1000 taxi updates)"));
        assert!(inproc.contains("Measured 2026-01-01 10:00 UTC, sluice old, 3 run(s)"));
        let latency = &md[md.find("## End-to-end").unwrap()..];
        assert!(latency.contains("Measured 2026-02-02 20:00 UTC, sluice new, 3 run(s)"));
        assert!(md.contains("| In-process throughput | 2026-01-01 10:00 UTC | 3 | old |"));
        assert!(md.contains("| End-to-end latency | 2026-02-02 20:00 UTC | 3 | new |"));
    }

    #[test]
    fn targets_say_which_are_met() {
        let row = |query: &str, cache_bytes: u64, cpu_s: f64| crate::inproc::Runs {
            query: query.into(),
            settings: Settings {
                cache_bytes,
                commit_interval_ms: 1000,
            },
            events: 1_000_000,
            wall_s: vec![1.0],
            cpu_s: vec![cpu_s],
            outputs: 1,
        };
        let r = Results {
            inproc: Some(Measurement {
                measured: measured("2026-01-01 10:00 UTC", 1_000_000, "x"),
                data: vec![row("project", 0, 2.0), row("window_count", 0, 2.0)],
            }),
            ..Default::default()
        };
        let md = markdown(&r, "");
        assert!(md.contains(
            "| in process, project (cache off, commit 1000 ms): ≥ 1000k events/s per core | 500k | **no** |"
        ));
        assert!(md.contains(
            "| in process, window_count (cache off, commit 1000 ms): ≥ 400k events/s per core | 500k | yes |"
        ));
    }

    #[test]
    fn missing_values_sort_last() {
        assert_eq!(median_opt(&[Some(3.0), None, Some(1.0)]), Some(3.0));
        assert_eq!(median_opt(&[None, None, Some(1.0)]), None);
        assert_eq!(worst(&[Some(3.0), Some(7.0)]), Some(7.0));
        assert_eq!(worst(&[Some(3.0), None]), None);
    }
}

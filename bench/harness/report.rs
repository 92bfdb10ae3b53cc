//! `docs/benchmarks.md` from the results: medians of the runs, ratios
//! between engines measured in the same run of the harness.

use std::fmt::Write;

use crate::Results;

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

fn k(x: f64) -> String {
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

pub fn markdown(r: &Results, improvements: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks\n\n\
         Written by `bench/run.sh` (the harness in `bench/harness/`); do not edit by hand: \
         rerun it. Every figure is the median of the runs of one harness run ({runs} each); ratios \
         compare engines measured in that same run, on the same machine and broker; a dash \
         is a figure that run did not measure.\n",
        runs = r.setup.runs
    );
    let _ = writeln!(s, "## Machine and versions\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} cores, {} |", r.machine.cores, r.machine.cpu);
    let _ = writeln!(s, "| Memory | {:.0} GiB |", r.machine.memory_gib);
    for (name, v) in &r.versions {
        let _ = writeln!(s, "| {name} | {v} |");
    }
    let _ = writeln!(s, "| When | {} |", r.when);
    let _ = writeln!(
        s,
        "\nThe broker, the engines and the load all share this machine. Sluice runs its \
         release-like build (dependencies at opt-level 2 without debug assertions, Sluice \
         at opt-level 3); Kafka Streams runs with `-Xmx2g` and {} stream threads.\n",
        r.machine.cores
    );

    if !r.kafka.is_empty() {
        let _ = writeln!(
            s,
            "## Streaming throughput on Kafka\n\n\
             Input pre-loaded on the broker ({} views, 10,000 shows, {} taxi updates; JSON, 4 \
             partitions). Time is from the processor's start to its last output record \
             (stamped by the broker); CPU is the processor's own, so events per CPU-second \
             is events/s per core. The raw consumer reads the input with librdkafka and does \
             nothing else: the ceiling.\n",
            r.setup.events, r.setup.events
        );
        let _ = writeln!(
            s,
            "| topology | events | Sluice s | Sluice events/s | Sluice events/s/core | Kafka Streams s | Kafka Streams events/s | Kafka Streams events/s/core | raw consumer events/s/core | Sluice / Kafka Streams (per core) | Sluice / raw (per core) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for t in crate::throughput::Topology::ALL {
            let get = |engine: &str| {
                r.kafka
                    .iter()
                    .find(|x| x.topology == t.name() && x.engine == engine)
            };
            let (sl, ks, raw) = (get("sluice"), get("kafka-streams"), get("raw-consumer"));
            let Some(events) = sl.or(ks).or(raw).map(|x| x.events) else {
                continue;
            };
            let per_core =
                |x: Option<&crate::throughput::Runs>| x.map(|x| x.events as f64 / median(&x.cpu_s));
            let rate = |x: Option<&crate::throughput::Runs>| {
                x.map(|x| x.events as f64 / median(&x.wall_s))
            };
            let secs = |x: Option<&crate::throughput::Runs>| x.map(|x| median(&x.wall_s));
            let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".to_string(), f);
            let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.title(),
                events,
                cell(secs(sl), &|v| format!("{v:.1}")),
                cell(rate(sl), &k),
                cell(per_core(sl), &k),
                cell(secs(ks), &|v| format!("{v:.1}")),
                cell(rate(ks), &k),
                cell(per_core(ks), &k),
                cell(per_core(raw), &k),
                cell(ratio(per_core(sl), per_core(ks)), &|v| format!("{v:.2}")),
                cell(ratio(per_core(sl), per_core(raw)), &|v| format!("{v:.2}")),
            );
        }
        let _ = writeln!(s, "\n![Throughput per core](benchmarks/throughput.png)\n");
    }

    if !r.inproc.is_empty() || r.nexmark.is_some() {
        let _ = writeln!(
            s,
            "## In-process throughput\n\n\
             The engine over in-memory topics, no broker: the input is appended before the \
             clock starts, which stops when every query is idle. Same statements as above; \
             Nexmark over {} events of the `nexmark` crate (people, auctions and bids in the \
             standard proportions), queries in `bench/nexmark/`.\n",
            r.setup.nexmark_events
        );
        let _ = writeln!(s, "| query | events | s | events/s | events per CPU-s | outputs |\n|---|---|---|---|---|---|");
        let nexmark = r.nexmark.iter().flat_map(|n| n.runs.iter());
        for x in r.inproc.iter().chain(nexmark) {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {} | {} | {} |",
                x.query,
                x.events,
                median(&x.wall_s),
                k(x.events as f64 / median(&x.wall_s)),
                k(x.events as f64 / median(&x.cpu_s)),
                x.outputs
            );
        }
        if let Some(n) = &r.nexmark {
            for (q, e) in &n.failed {
                let _ = writeln!(s, "\n{q} did not run: {e}");
            }
        }
        let _ = writeln!(s);
    }

    if let Some(l) = &r.latency {
        let all = |v: &[Vec<f64>], p: f64| {
            median(&v.iter().map(|run| percentile(run, p)).collect::<Vec<_>>())
        };
        let _ = writeln!(
            s,
            "## End-to-end latency\n\n\
             {} events/s for {} s (after 2 s of warm-up) into a 4-partition topic, keyed over \
             100 keys. Pull: a probe takes the newest event sent and asks the table \
             (`LATEST_BY_OFFSET` per key) until it holds it. Push: `SELECT ... EMIT CHANGES` on \
             the stream; each row's arrival minus its send time.\n",
            l.rate, l.seconds
        );
        let _ = writeln!(
            s,
            "| seen by | samples (last run) | p50 ms | p99 ms |\n|---|---|---|---|"
        );
        for (name, v) in [
            ("pull query (materialized table)", &l.pull_ms),
            ("push query", &l.push_ms),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.1} | {:.1} |",
                v.last().map_or(0, |x| x.len()),
                all(v, 50.0),
                all(v, 99.0)
            );
        }
        let _ = writeln!(s, "\n![Latency distribution](benchmarks/latency.png)\n");
    }

    if let Some(p) = &r.pull {
        let _ = writeln!(
            s,
            "## Pull queries against PostgreSQL\n\n\
             {} connections look up random keys (`SELECT id, owner, balance FROM accounts WHERE \
             id = $1`, prepared) for {} s, on {} accounts: a Sluice table that `CREATE TABLE ... AS \
             SELECT ... LATEST_BY_OFFSET ... GROUP BY id` keeps in RocksDB from a Kafka topic, \
             and a PostgreSQL table with a primary key holding the same rows. The same \
             client drives both.\n",
            p.connections, p.seconds, p.keys
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
    }

    if !r.state.is_empty() {
        let _ = writeln!(
            s,
            "## State larger than memory\n\n\
             A windowed count and sum (1-hour tumbling window) over as many distinct keys as \
             records, on Kafka; the state lives in RocksDB. Peak resident memory of the Sluice \
             process against the size of its data directory at the end.\n"
        );
        let _ = writeln!(s, "| distinct keys | s | peak RSS | state on disk | peak RSS / state |\n|---|---|---|---|---|");
        for x in &r.state {
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
}

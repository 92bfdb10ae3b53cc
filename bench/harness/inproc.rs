//! In-process throughput: the engine over in-memory topics, no broker, so
//! the engine's own cost shows apart from Kafka's. The input is appended
//! before the clock starts; the clock stops when every query is idle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice::{Engine, EngineConfig};

use crate::data::Rec;
use crate::throughput::{
    Settings, Topology, SHOWS, SLUICE_CACHE, SLUICE_COMMIT_INTERVAL, TAXIS, VIEWS,
};
use crate::{Fallible, Setup};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runs {
    pub query: String,
    /// The record cache and commit interval the engine ran with.
    pub settings: Settings,
    pub events: u64,
    pub wall_s: Vec<f64>,
    pub cpu_s: Vec<f64>,
    /// Records in the query's output topic after the last run.
    pub outputs: u64,
}

/// Inputs shared by every run, by topic.
pub struct Inputs(BTreeMap<&'static str, Vec<Rec>>);

impl Inputs {
    pub fn topologies(events: u64) -> Self {
        Inputs(BTreeMap::from([
            (VIEWS, crate::data::views(events).collect()),
            (SHOWS, crate::data::shows().collect()),
            (TAXIS, crate::data::taxis(events).collect()),
        ]))
    }

    pub fn nexmark(events: u64) -> Fallible<Self> {
        let [people, auctions, bids] = crate::data::nexmark(events)?;
        Ok(Inputs(BTreeMap::from([
            ("nexmark_person", people),
            ("nexmark_auction", auctions),
            ("nexmark_bid", bids),
            // q13's bounded side input: keys 0..9999, stamped before every event.
            (
                "nexmark_side_input",
                (0..10_000)
                    .map(|k| (k.to_string(), format!(r#"{{"value":"{k}"}}"#), 1))
                    .collect(),
            ),
        ])))
    }
}

fn self_cpu() -> Fallible<f64> {
    crate::procs::cpu_seconds(std::process::id())
}

/// Run `sql` over `inputs` in a fresh engine; (wall s, CPU s, outputs).
fn run_once(
    dir: &Path,
    sql: &str,
    inputs: &Inputs,
    output: &str,
    settings: Settings,
) -> Fallible<(f64, f64, u64)> {
    let _ = std::fs::remove_dir_all(dir);
    let mut engine = Engine::open(EngineConfig {
        data_dir: dir.to_path_buf(),
        properties: BTreeMap::from([
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            (SLUICE_CACHE.to_string(), settings.cache_bytes.to_string()),
            (
                SLUICE_COMMIT_INTERVAL.to_string(),
                settings.commit_interval_ms.to_string(),
            ),
        ]),
    })?;
    engine.execute(sql)?;
    for (topic, records) in &inputs.0 {
        if engine
            .catalog()
            .sources()
            .any(|s| s.topic.eq_ignore_ascii_case(topic))
        {
            engine.append(
                topic,
                records.iter().map(|(k, v, ts)| {
                    let key = (!k.is_empty()).then(|| k.as_bytes().to_vec());
                    (key, Some(v.as_bytes().to_vec()), *ts)
                }),
            )?;
        }
    }
    let (cpu0, t0) = (self_cpu()?, Instant::now());
    engine.run_until_idle()?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = self_cpu()? - cpu0;
    if let Some((id, e)) = engine.failed_queries().into_iter().next() {
        return Err(format!("query {id} failed: {e}").into());
    }
    let outputs = engine.records_of(output)?;
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
    Ok((wall, cpu, outputs))
}

fn measure(
    setup: &Setup,
    name: &str,
    sql: &str,
    inputs: &Inputs,
    events: u64,
    output: &str,
    settings: Settings,
) -> Fallible<Runs> {
    let mut runs = Runs {
        query: name.to_string(),
        settings,
        events,
        wall_s: vec![],
        cpu_s: vec![],
        outputs: 0,
    };
    let dir = setup.work.join(format!("inproc_{name}"));
    for run in 0..setup.runs {
        let (wall, cpu, outputs) = run_once(&dir, sql, inputs, output, settings)?;
        eprintln!(
            "bench: in-process {name} ({}): run {run}: {wall:.2} s, {:.0} events/s, {outputs} outputs",
            settings.label(),
            events as f64 / wall
        );
        runs.wall_s.push(wall);
        runs.cpu_s.push(cpu);
        runs.outputs = outputs;
    }
    Ok(runs)
}

/// The four topologies of the Kafka benchmark, in memory.
pub fn topologies(setup: &Setup) -> Fallible<Vec<Runs>> {
    let inputs = Inputs::topologies(setup.events);
    let mut out = vec![];
    for t in Topology::ALL {
        for settings in setup.settings() {
            let events = inputs.0[t.input()].len() as u64;
            out.push(measure(
                setup,
                t.name(),
                &t.sluice_sql("bench_out"),
                &inputs,
                events,
                "bench_out",
                settings,
            )?);
        }
    }
    Ok(out)
}

/// A Nexmark query file and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Nexmark {
    pub runs: Vec<Runs>,
    /// Queries with a file that failed to run, with the error.
    pub failed: Vec<(String, String)>,
}

/// The Nexmark queries written in Sluice SQL (`bench/nexmark/qN.sql`), each
/// after `sources.sql`, over the same events.
pub fn nexmark(setup: &Setup, root: &Path) -> Fallible<Nexmark> {
    let dir = root.join("bench/nexmark");
    let sources = std::fs::read_to_string(dir.join("sources.sql"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("sources.sql").display()))?;
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name.strip_prefix('q')?.strip_suffix(".sql")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    let inputs = Inputs::nexmark(setup.nexmark_events)?;
    let mut out = Nexmark {
        runs: vec![],
        failed: vec![],
    };
    for (n, file) in files {
        let name = format!("q{n}");
        let sql = format!("{sources}\n{}", std::fs::read_to_string(&file)?);
        let output = format!("nexmark_q{n}");
        for settings in setup.settings() {
            match measure(
                setup,
                &name,
                &sql,
                &inputs,
                setup.nexmark_events,
                &output,
                settings,
            ) {
                Ok(r) => out.runs.push(r),
                Err(e) => {
                    eprintln!("bench: nexmark {name} ({}) failed: {e}", settings.label());
                    out.failed
                        .push((format!("{name} ({})", settings.label()), e.to_string()));
                }
            }
        }
    }
    Ok(out)
}

//! State larger than memory: a windowed count over as many distinct keys as
//! records, with the state in RocksDB. Peak resident memory is compared
//! with the state's size on disk, at two key counts: if the state is on
//! disk, the peak stays flat while the state grows tenfold.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kafka::Broker;
use crate::procs::{dir_bytes, status_bytes};
use crate::{Fallible, Setup};

const TOPIC: &str = "bench_keys";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateRuns {
    pub keys: u64,
    pub wall_s: Vec<f64>,
    pub peak_rss_bytes: Vec<u64>,
    pub state_bytes: Vec<u64>,
}

pub fn measure(setup: &Setup, broker: &Broker) -> Fallible<Vec<StateRuns>> {
    let mut out = vec![];
    for keys in [setup.state_keys / 10, setup.state_keys] {
        broker.create_topic(TOPIC, 4, false)?;
        let t = std::time::Instant::now();
        broker.produce(TOPIC, crate::data::distinct_keys(keys))?;
        eprintln!(
            "bench: state: loaded {keys} keys in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let mut runs = StateRuns {
            keys,
            ..Default::default()
        };
        for run in 0..setup.state_runs {
            let tag = format!("state_{keys}_{run}_{}", crate::procs::now_ms());
            let output = format!("bench_out_{tag}");
            broker.create_topic(&output, 4, true)?;
            let statements = format!(
                "CREATE STREAM keyed (id VARCHAR KEY, v INT) \
                   WITH (kafka_topic='{TOPIC}', value_format='JSON', partitions=4);\n\
                 CREATE TABLE key_counts WITH (kafka_topic='{output}', partitions=4) AS \
                   SELECT id, COUNT(*) AS n, SUM(v) AS total FROM keyed \
                   WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY id EMIT CHANGES;\n"
            );
            let mut proc =
                crate::throughput::sluice_server(setup, broker, &tag, &statements, None)?;
            let pid = proc.pid();
            let mut peak = 0;
            let inputs = vec![TOPIC.to_string()];
            proc.wait_for(setup.limit, Duration::from_millis(500), || {
                peak = peak.max(status_bytes(pid, "VmRSS")?);
                broker.caught_up(&tag, &inputs)
            })?;
            peak = peak.max(status_bytes(pid, "VmHWM")?);
            let wall = proc.started.elapsed().as_secs_f64();
            let state = dir_bytes(&setup.work.join(&tag).join("data"));
            drop(proc);
            eprintln!(
                "bench: state {keys} keys: run {run}: {wall:.1} s, peak RSS {} MiB, state {} MiB",
                peak >> 20,
                state >> 20
            );
            runs.wall_s.push(wall);
            runs.peak_rss_bytes.push(peak);
            runs.state_bytes.push(state);
            broker.delete_topics(&[output.as_str()])?;
            let _ = std::fs::remove_dir_all(setup.work.join(&tag));
        }
        out.push(runs);
        broker.delete_topics(&[TOPIC])?;
    }
    Ok(out)
}

//! `sluice server`: the engine running continuously against Kafka.
//!
//! The server opens the engine on a Kafka cluster: the one configured, or,
//! when none is, an embedded in-memory broker (librdkafka's mock cluster)
//! whose address any Kafka client can use and which keeps nothing across
//! restarts. The catalog (streams, tables, queries, sinks) is replayed
//! from the data directory either way; on the embedded broker a restart
//! makes their topics again, empty, starts the queries over from empty
//! state, and says so in a warning. A statements file runs once, when the
//! catalog is empty. Queries then run until the process is asked to stop.
//!
//! Settings come from a TOML file, the environment and flags
//! ([`config`]). Postgres clients connect on the `listen` address
//! (`127.0.0.1:5433` by default; [`pg`]); they share the engine with the
//! loop that runs the persistent queries.

pub mod config;
pub(crate) mod pg;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use config::{ServerConfig, ServerFlags};

use crate::connectors::kafka::{EmbeddedKafka, KafkaTopics};
use crate::connectors::namespaced::Namespaced;
use crate::connectors::Topics;
use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};

/// The most parameters (`$1` ... `$65535`) a statement takes, as in
/// Postgres (the protocol counts them in 16 bits).
pub(crate) const MAX_PARAMETERS: usize = 65_535;

/// The engine's bounds from the server's settings (sink roots, S3 access,
/// limits): the operator's, out of reach of any statement.
fn sandbox(config: &ServerConfig) -> crate::engine::Sandbox {
    crate::engine::Sandbox {
        sinks: crate::connectors::location::SinkPolicy {
            root: config.analytics.clone(),
            allowed: config.analytics_allow.clone(),
            s3: config.s3.clone(),
        },
        values: crate::functions::ValueLimits {
            value_bytes: config.limits.value_bytes,
            batch_bytes: config.limits.batch_bytes,
        },
        pull_query_memory: config.limits.pull_query_memory,
        state_cache: config.limits.state_cache,
    }
}

/// The stack of every thread that plans or runs statements: the wire
/// server's threads and (through `sluice`'s `main`) the query loop. Sized so
/// that an expression tree of `planner::limits::MAX_EXPRESSION_DEPTH` plans
/// and evaluates with room to spare in a debug build; it is address space,
/// touched only as deep as a statement goes.
pub const STACK_BYTES: usize = 64 << 20;

/// How long the loop sleeps when no query had anything to read: what a
/// record arriving then waits before a query reads it (push queries'
/// latency at low rates), against the cost of rounds that find nothing.
const IDLE: Duration = Duration::from_millis(10);

/// How long the loop sleeps when nothing was read but a query's
/// checkpoint waits for its outputs' acknowledgements (a few milliseconds
/// on a broker nearby): the query reads again once a round finds them in.
const SETTLING: Duration = Duration::from_millis(1);

/// The least time between two checkpoints of a query that has caught up
/// with its inputs (`Engine::run_once_spaced`). A checkpoint writes the
/// query's outputs, and once they are acknowledged writes RocksDB and
/// commits offsets: paid per round, it cost a query fed 20,000 events/s
/// about 120 checkpoints a second. What it delays: a table's rows in pull
/// queries and a query's outputs in its topic, by at most this much more
/// than the loop's own rounds (push queries get their rows before any
/// checkpoint).
const CHECKPOINT_GAP: Duration = Duration::from_millis(20);

/// How long the loop at most waits, after a round, for the connections
/// that wanted the engine to have taken it.
const YIELD: Duration = Duration::from_millis(500);

/// What a restart on the embedded broker says it kept and lost.
fn restart_notice(restored: &crate::engine::Restored, dir: &std::path::Path) -> String {
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut kept = vec![
        count(restored.streams, "stream", "streams"),
        count(restored.tables, "table", "tables"),
        count(restored.queries, "persistent query", "persistent queries"),
    ];
    if restored.sinks > 0 {
        kept.push(count(restored.sinks, "sink", "sinks"));
    }
    format!(
        "the embedded Kafka broker keeps nothing across restarts: restored {} from {} over new, empty topics; \
         lost: every record of their topics and each query's state (aggregates, tables' rows, offsets): \
         the queries start over from empty state (run with --kafka to keep them)",
        kept.join(", "),
        dir.display()
    )
}

/// A running server.
pub struct Server {
    engine: pg::SharedEngine,
    /// Serves the Postgres connections (dropped: they end).
    _runtime: tokio::runtime::Runtime,
    listen: std::net::SocketAddr,
    bootstrap: String,
    /// Whether Kafka is the embedded broker (it lives as long as the
    /// engine's topics).
    embedded: bool,
}

impl Server {
    /// Connect to Kafka (or start the embedded broker), open the engine on
    /// the data directory and run the statements file if the directory is
    /// new.
    pub fn start(config: &ServerConfig) -> Result<Self> {
        let client: Vec<(String, String)> = config
            .kafka_client
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (kafka, bootstrap, embedded) = match &config.kafka {
            Some(b) => (KafkaTopics::connect(b, &client)?, b.clone(), false),
            None => {
                let broker = Arc::new(EmbeddedKafka::start()?);
                let b = broker.bootstrap().to_string();
                (KafkaTopics::embedded(broker)?, b, true)
            }
        };
        let topics: Arc<dyn Topics> = match config.topic_prefix.as_str() {
            "" => Arc::new(kafka),
            prefix => Arc::new(Namespaced::new(Arc::new(kafka), prefix)),
        };
        std::fs::create_dir_all(&config.data_dir)?;
        let engine_config = EngineConfig {
            data_dir: config.data_dir.clone(),
            properties: {
                let mut p = config.properties.clone();
                p.entry(crate::engine::SERVICE_ID.to_string())
                    .or_insert_with(|| config.service_id.clone());
                p
            },
        };
        let mut engine = if embedded {
            // The embedded broker starts empty: the catalog comes back over
            // new topics, and what was kept about the old ones is discarded
            // (state and offsets would point past the end of the new ones).
            let (engine, restored) =
                Engine::open_over_new_topics(engine_config, topics, sandbox(config))?;
            if !restored.is_empty() {
                tracing::warn!(
                    streams = restored.streams,
                    tables = restored.tables,
                    queries = restored.queries,
                    sinks = restored.sinks,
                    "{}",
                    restart_notice(&restored, &config.data_dir)
                );
            }
            engine
        } else {
            Engine::open_sandboxed(engine_config, topics, sandbox(config))?
        };
        if let Some(file) = &config.statements {
            if engine.catalog().sources().next().is_none() {
                let sql = std::fs::read_to_string(file)
                    .map_err(|e| Error::semantic(format!("cannot read {}: {e}", file.display())))?;
                engine.execute(&sql)?;
            } else {
                tracing::info!(file = %file.display(), "catalog restored from the data directory; statements file not run again");
            }
        }
        let engine = Arc::new(std::sync::Mutex::new(engine));
        // Accepts connections; they are served on the wire server's
        // lanes (`pg::serve`), one thread per core.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-accept")
            .thread_stack_size(STACK_BYTES)
            .enable_all()
            .build()?;
        let security = pg::Security::new(config)?;
        if config.users.is_empty() && !config.listen.ip().is_loopback() {
            tracing::warn!(listen = %config.listen, "no users configured: every client that reaches this address is trusted; add [users] to require passwords");
        }
        let listener = runtime.block_on(pg::bind(config.listen))?;
        let listen = listener.local_addr()?;
        runtime.spawn(pg::serve(listener, engine.clone(), security));
        Ok(Self {
            engine,
            _runtime: runtime,
            listen,
            bootstrap,
            embedded,
        })
    }

    /// Where Postgres clients connect (the port is the one bound, also
    /// when port 0 was asked for).
    pub fn listen_address(&self) -> std::net::SocketAddr {
        self.listen
    }

    /// The Kafka bootstrap address queries read from and write to.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Whether the Kafka broker is the embedded, in-memory one.
    pub fn is_embedded(&self) -> bool {
        self.embedded
    }

    /// The engine (locked: the query loop and the connections wait).
    pub fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        pg::lock(&self.engine)
    }

    /// Run the queries until `stop` is set. A broker that cannot be
    /// reached makes queries wait and retry; the loop keeps going.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let (round, settling) = {
                let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
                let round = engine.run_once_spaced(CHECKPOINT_GAP);
                (round, engine.settling())
            };
            // Connections waiting for the engine take it now, each once; a
            // busy loop would otherwise win the lock again and again, and a
            // client asking again and again would hold back the queries.
            let owed = pg::turns_owed();
            let yielded = std::time::Instant::now();
            while pg::turns_taken() < owed && yielded.elapsed() < YIELD {
                std::thread::sleep(Duration::from_millis(1));
            }
            let read = match round {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "processing round failed; retrying");
                    0
                }
            };
            if read == 0 {
                std::thread::sleep(if settling { SETTLING } else { IDLE });
            }
        }
        Ok(())
    }
}

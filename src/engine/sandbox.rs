//! What the server's operator decides and no statement can change (`SET`
//! does not reach it): where sinks may write and how they reach object
//! storage ([`SinkPolicy`]), how large a value a function may build
//! ([`ValueLimits`]), and how much memory one pull query may take.
//!
//! A pull query runs with a DataFusion memory pool of its own of
//! `pull_query_memory` bytes and no spilling to disk; its result, and what
//! a scan of a topic reads, are held under the same bound. Over it, the
//! query fails alone with SQLSTATE 53200 and the memory is released.

use std::path::Path;
use std::sync::Arc;

use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};

use crate::connectors::location::SinkPolicy;
use crate::error::Result;
use crate::functions::ValueLimits;

/// 512 MiB per pull query (at most one runs per core at once:
/// `super::pull::PullGate`).
pub(crate) const DEFAULT_PULL_QUERY_MEMORY: u64 = 512 << 20;

/// The operator's bounds on what statements may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sandbox {
    pub sinks: SinkPolicy,
    pub values: ValueLimits,
    /// The most bytes one pull query may hold (its operators' memory and
    /// its result).
    pub pull_query_memory: u64,
    /// RocksDB's block cache: state and views read from memory.
    pub state_cache: u64,
}

impl Sandbox {
    /// The bounds of an engine without a server: sinks under
    /// `data_dir/analytics`, the default limits.
    pub(crate) fn local(data_dir: &Path) -> Self {
        Self {
            sinks: SinkPolicy::local(data_dir),
            values: ValueLimits::default(),
            pull_query_memory: DEFAULT_PULL_QUERY_MEMORY,
            state_cache: crate::runtime::DEFAULT_BLOCK_CACHE,
        }
    }

    /// A session state for one pull query: the planner's, with a memory
    /// pool of its own, no spilling, and no cache of file listings or
    /// statistics (a sink's directory grows between two pull queries; a
    /// cached listing would hide its new files for good).
    pub(crate) fn pull_state(&self, base: &SessionState) -> Result<SessionState> {
        let pool = usize::try_from(self.pull_query_memory).unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::from_runtime_env(base.runtime_env())
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(pool)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_list_files_cache(None)
                    .with_list_files_cache_limit(0)
                    .with_file_statistics_cache(None)
                    .with_file_statistics_cache_limit(0),
            )
            .build_arc()?;
        Ok(SessionStateBuilder::new_from_existing(base.clone())
            .with_runtime_env(runtime)
            .build())
    }
}

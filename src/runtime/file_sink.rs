//! `FileSink`: a stream's records landed in Parquet files (the analytics
//! store, `CREATE SINK ... WITH (CONNECTOR='parquet')`).
//!
//! The sink reads the stream's topic like a query does and decodes each
//! record with the stream's formats. Its rows are the stream's columns in
//! declaration order, then `ROWTIME`, `ROWPARTITION` and `ROWOFFSET`. Rows
//! are buffered per hour of their `ROWTIME` (UTC) and written, when the
//! buffer holds `roll_rows` rows or its oldest row has waited `roll`, as
//! one file per hour: `dt=YYYY-MM-DD/hour=HH/<sink>-<flush>.parquet`, the
//! Hive layout DataFusion, DuckDB, Spark and pandas read as partitions.
//!
//! **Exactly once.** Each flush has a sequence number. The flush writes its
//! files (each complete or absent: [`ParquetStore::write`]), then commits the
//! next sequence number and the topic positions after its records in one
//! RocksDB batch. On start the sink reads what was committed, deletes files
//! of flushes that never committed (a crash between their writes and the
//! commit) and reads on from the committed positions, so every record of
//! the topic is in exactly one committed file. A reader may see the files
//! of such an unfinished flush until the sink restarts.
//!
//! Records that cannot be decoded are skipped and counted, as a query
//! skips them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::SchemaRef;

use super::decode::decode_batch;
use super::plan::{SourceSpec, ROWTIME};
use super::state::{StateBatch, StateStore};
use super::topic_scan::scan_columns;
use crate::connectors::parquet::ParquetStore;
use crate::connectors::{TopicError, Topics};
use crate::error::{Error, Result};

/// How a sink is set up.
#[derive(Clone)]
pub(crate) struct FileSinkSpec {
    pub name: String,
    /// The stream, as a query reads it.
    pub source: SourceSpec,
    /// The stream's column names in declaration order.
    pub declared: Vec<String>,
    /// Write when this many rows are buffered...
    pub roll_rows: usize,
    /// ... or when the oldest buffered row has waited this long.
    pub roll: Duration,
}

/// Counters of a sink (SHOW SINKS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileSinkMetrics {
    pub records_in: u64,
    pub rows_written: u64,
    pub files_written: u64,
    pub decode_errors: u64,
    /// Offsets deleted from the topic (retention) before the sink read them.
    pub deleted_unread: u64,
}

pub(crate) struct FileSink {
    spec: FileSinkSpec,
    topics: Arc<dyn Topics>,
    files: Arc<ParquetStore>,
    state: StateStore,
    /// The decoded batch's columns the files hold, in order.
    columns: Vec<usize>,
    schema: SchemaRef,
    /// Next offset to read, per partition.
    positions: BTreeMap<i32, i64>,
    /// The next flush's sequence number.
    flush: u64,
    /// Rows read but not written yet, per `dt=.../hour=..` directory.
    buffered: BTreeMap<String, Vec<RecordBatch>>,
    buffered_rows: usize,
    since: Option<Instant>,
    metrics: FileSinkMetrics,
}

impl FileSink {
    /// Open a sink: restore its committed positions and remove files of
    /// flushes that did not commit.
    pub(crate) fn open(
        spec: FileSinkSpec,
        topics: Arc<dyn Topics>,
        files: Arc<ParquetStore>,
        state: StateStore,
    ) -> Result<Self> {
        let columns = scan_columns(&spec.source, &spec.declared);
        let schema = Arc::new(spec.source.schema.project(&columns)?);
        let mut positions = BTreeMap::new();
        for (k, v) in state.scan_prefix(&position_prefix(&spec.name))? {
            let partition = std::str::from_utf8(&k[position_prefix(&spec.name).len()..])
                .ok()
                .and_then(|p| p.parse::<i32>().ok());
            let offset = v.try_into().ok().map(i64::from_be_bytes);
            if let (Some(p), Some(o)) = (partition, offset) {
                positions.insert(p, o);
            }
        }
        let flush = state
            .get(&flush_key(&spec.name))?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let sink = Self {
            spec,
            topics,
            files,
            state,
            columns,
            schema,
            positions,
            flush,
            buffered: BTreeMap::new(),
            buffered_rows: 0,
            since: None,
            metrics: FileSinkMetrics::default(),
        };
        sink.remove_uncommitted()?;
        Ok(sink)
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    pub(crate) fn source_name(&self) -> &str {
        &self.spec.source.name
    }

    pub(crate) fn metrics(&self) -> FileSinkMetrics {
        self.metrics.clone()
    }

    /// The rows' schema (the files', without the `dt` / `hour` directories).
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(crate) fn store(&self) -> &Arc<ParquetStore> {
        &self.files
    }

    /// Delete the files of flushes numbered at or past the committed one.
    fn remove_uncommitted(&self) -> Result<()> {
        for file in self.files.list()? {
            let Some(n) = flush_of(&self.spec.name, &file) else {
                continue;
            };
            if n >= self.flush {
                tracing::info!(sink = %self.spec.name, file = %file, "removing a file of a flush that did not commit");
                self.files.delete(&file)?;
            }
        }
        Ok(())
    }

    /// Read up to `max` records per partition, buffer them, and write the
    /// files when the buffer is due. Returns the records read.
    pub(crate) fn poll(&mut self, max: usize) -> Result<usize> {
        let topic = self.spec.source.topic.clone();
        let partitions = self.topics.partitions(&topic).unwrap_or(0);
        let mut read = 0;
        for p in 0..partitions {
            let from = *self.positions.entry(p).or_insert(0);
            let records = match self.topics.fetch(&topic, p, from, max) {
                // Deleted by retention before the sink read them: said, and
                // counted, and the sink goes on from where the log starts.
                Err(TopicError::OutOfRange { earliest, .. }) if earliest > from => {
                    tracing::warn!(sink = %self.spec.name, topic = %topic, partition = p, from, earliest, "offsets deleted from the topic (retention) before the sink read them");
                    self.metrics.deleted_unread += (earliest - from) as u64;
                    self.positions.insert(p, earliest);
                    continue;
                }
                fetched => fetched.map_err(Error::from)?,
            };
            let Some(last) = records.last() else {
                continue;
            };
            let next = last.offset + 1;
            read += records.len();
            self.metrics.records_in += records.len() as u64;
            let mut skipped = Vec::new();
            if let Some(changes) = decode_batch(&self.spec.source, &records, &mut skipped)? {
                self.buffer(changes.batch.project(&self.columns)?)?;
            }
            self.metrics.decode_errors += skipped.len() as u64;
            for s in &skipped {
                tracing::warn!(sink = %self.spec.name, partition = s.partition, offset = s.offset, reason = %s.reason, "sink skips a record that cannot be decoded");
            }
            self.positions.insert(p, next);
        }
        if read > 0 && self.since.is_none() {
            self.since = Some(Instant::now());
        }
        let due = self.buffered_rows >= self.spec.roll_rows
            || self.since.is_some_and(|t| t.elapsed() >= self.spec.roll);
        if due {
            self.write()?;
        }
        Ok(read)
    }

    /// Add rows to the buffer of their hour.
    fn buffer(&mut self, batch: RecordBatch) -> Result<()> {
        let Some(at) = self.schema.index_of(ROWTIME).ok() else {
            return Err(Error::internal("a sink's rows have no ROWTIME"));
        };
        let times = batch
            .column(at)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::internal("ROWTIME is not BIGINT"))?;
        let mut rows: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for i in 0..times.len() {
            let t = if times.is_null(i) { 0 } else { times.value(i) };
            rows.entry(hour_dir(t)).or_default().push(i as u32);
        }
        self.buffered_rows += batch.num_rows();
        if rows.len() == 1 {
            if let Some((dir, _)) = rows.pop_first() {
                self.buffered.entry(dir).or_default().push(batch);
            }
            return Ok(());
        }
        for (dir, indices) in rows {
            let part = take_record_batch(&batch, &UInt32Array::from(indices))?;
            self.buffered.entry(dir).or_default().push(part);
        }
        Ok(())
    }

    /// Write every buffered hour as a file of this flush, then commit the
    /// flush with the positions after its records.
    fn write(&mut self) -> Result<()> {
        let name = &self.spec.name;
        for (dir, batches) in &self.buffered {
            let file = format!("{dir}/{name}-{:010}.parquet", self.flush);
            self.files.write(&file, batches)?;
            self.metrics.files_written += 1;
        }
        let mut batch = StateBatch::default();
        for (p, o) in &self.positions {
            batch.put(&position_key(name, *p), &o.to_be_bytes());
        }
        batch.put(&flush_key(name), &(self.flush + 1).to_be_bytes());
        self.state.commit(batch)?;
        self.flush += 1;
        self.metrics.rows_written += self.buffered_rows as u64;
        self.buffered.clear();
        self.buffered_rows = 0;
        self.since = None;
        Ok(())
    }

    /// Forget what was read but not written: the next poll reads it again
    /// from the committed positions (after an error, so nothing is lost).
    pub(crate) fn rewind(&mut self) -> Result<()> {
        let fresh = Self::open(
            self.spec.clone(),
            self.topics.clone(),
            self.files.clone(),
            self.state.clone(),
        )?;
        let metrics = self.metrics.clone();
        *self = fresh;
        self.metrics = metrics;
        Ok(())
    }

    /// Remove the sink's committed positions (DROP SINK; its files stay).
    pub(crate) fn forget(&self) -> Result<()> {
        self.state.delete_prefix(&state_prefix(&self.spec.name))
    }
}

/// `dt=YYYY-MM-DD/hour=HH` of a time in milliseconds (UTC).
fn hour_dir(millis: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(t) => t.format("dt=%Y-%m-%d/hour=%H").to_string(),
        None => "dt=unknown/hour=unknown".to_string(),
    }
}

/// The flush number of one of this sink's files (`.../<sink>-<n>.parquet`).
fn flush_of(sink: &str, file: &str) -> Option<u64> {
    let base = file.rsplit('/').next()?;
    base.strip_prefix(sink)?
        .strip_prefix('-')?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Where every sink keeps its state in the store.
pub(crate) const STATE_ROOT: &[u8] = b"k/";

/// Forget every sink's topic positions, keeping their flush counts (the
/// topics are new: the sinks read them from the start, and the files they
/// committed stay).
pub(crate) fn forget_positions(state: &StateStore) -> Result<()> {
    let mut batch = StateBatch::default();
    for (k, _) in state.scan_prefix(STATE_ROOT)? {
        if !k.ends_with(b"/flush") {
            batch.delete(&k);
        }
    }
    state.commit(batch)
}

fn state_prefix(sink: &str) -> Vec<u8> {
    format!("k/{sink}/").into_bytes()
}

fn position_prefix(sink: &str) -> Vec<u8> {
    format!("k/{sink}/p/").into_bytes()
}

fn position_key(sink: &str, partition: i32) -> Vec<u8> {
    format!("k/{sink}/p/{partition}").into_bytes()
}

fn flush_key(sink: &str) -> Vec<u8> {
    format!("k/{sink}/flush").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_hour_and_flush() {
        assert_eq!(hour_dir(1_763_812_800_000), "dt=2025-11-22/hour=12");
        assert_eq!(hour_dir(0), "dt=1970-01-01/hour=00");
        assert_eq!(
            flush_of(
                "ARCHIVE",
                "dt=2025-11-22/hour=12/ARCHIVE-0000000042.parquet"
            ),
            Some(42)
        );
        assert_eq!(
            flush_of("ARCHIVE", "dt=2025-11-22/hour=12/OTHER-0000000042.parquet"),
            None
        );
        assert_eq!(flush_of("ARCHIVE", "ARCHIVE-0000000001.parquet#3"), None);
    }
}

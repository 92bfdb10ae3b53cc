//! `TopicScan`: a stream, or a source table, as a DataFusion
//! `TableProvider`, so that a pull query on it (ksqlDB: `SELECT` without
//! `EMIT`) reads its topic from the beginning up to the end it has when the
//! query starts, and completes.
//!
//! A stream's rows are its records. A source table's (`CREATE SOURCE
//! TABLE`, which ksqlDB materializes) are the last record of each key, in
//! key order (as a state store iterates); a tombstone removes its key and a
//! record without a key is ignored.
//!
//! Records are decoded with the stream's formats exactly as a query's
//! source decodes them (records that cannot be decoded are skipped, as a
//! query skips them). The columns are the source's in declaration order,
//! with `WINDOWSTART` / `WINDOWEND` after the key columns for a windowed
//! source, then the pseudo columns `ROWTIME`, `ROWPARTITION` and
//! `ROWOFFSET`. Partitions are read one after the other, each up to the end
//! it had when the scan began (all ends are taken first); filters are left
//! to DataFusion, a `LIMIT` right above a stream's scan stops its reading.
//! What the scan holds is bounded like the rest of the pull query
//! (`limits.pull_query_memory`): past it, the query fails alone.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::changes::Op;
use super::decode::decode_batch;
use super::plan::{SourceSpec, WINDOWEND, WINDOWSTART};
use super::rows::RowCodec;
use crate::connectors::{TopicError, Topics};
use crate::error::{Error, Result};

/// Records fetched per call.
const FETCH: usize = 10_000;

pub(crate) struct TopicScan {
    source: SourceSpec,
    topics: Arc<dyn Topics>,
    /// For each column of `schema`, its column in the decoded batch.
    columns: Vec<usize>,
    schema: SchemaRef,
    /// The most bytes of decoded records the scan may hold.
    memory: u64,
}

impl TopicScan {
    /// `declared`: the source's column names in declaration order.
    pub(crate) fn new(source: SourceSpec, topics: Arc<dyn Topics>, declared: &[String]) -> Self {
        let columns = scan_columns(&source, declared);
        let schema = Arc::new(source.schema.project(&columns).map_or_else(
            |_| Schema::empty(),
            |s| {
                Schema::new(
                    s.fields()
                        .iter()
                        .map(|f| f.as_ref().clone().with_nullable(true))
                        .collect::<Vec<_>>(),
                )
            },
        ));
        Self {
            source,
            topics,
            columns,
            schema,
            memory: u64::MAX,
        }
    }

    /// Bounded to `bytes` of decoded records.
    pub(crate) fn with_memory(self, bytes: u64) -> Self {
        Self {
            memory: bytes,
            ..self
        }
    }

    /// Every record of the topic up to its end now (a stream's first
    /// `limit` records, when given), decoded.
    fn read(&self, limit: Option<usize>) -> Result<RecordBatch> {
        let topic = &self.source.topic;
        let partitions = self.topics.partitions(topic).unwrap_or(0);
        let ends = (0..partitions)
            .map(|p| self.topics.end_offset(topic, p).map_err(Error::from))
            .collect::<Result<Vec<i64>>>()?;
        let limit = limit.filter(|_| !self.source.is_table);
        let mut batches = Vec::new();
        let mut skipped = Vec::new();
        let mut ops = Vec::new();
        let (mut held, mut rows) = (0u64, 0usize);
        for (p, end) in (0..partitions).zip(ends) {
            let mut from = 0;
            while from < end && limit.is_none_or(|l| rows < l) {
                let records = match self.topics.fetch(topic, p, from, FETCH) {
                    // The stream as it is now: from where its log starts.
                    Err(TopicError::OutOfRange { earliest, .. }) if earliest > from => {
                        from = earliest;
                        continue;
                    }
                    fetched => fetched.map_err(Error::from)?,
                };
                let records: Vec<_> = records.into_iter().filter(|r| r.offset < end).collect();
                let Some(last) = records.last() else { break };
                from = last.offset + 1;
                if let Some(changes) = decode_batch(&self.source, &records, &mut skipped)? {
                    held += super::held_bytes(&changes.batch);
                    if held > self.memory {
                        return Err(Error::ResourceLimit(format!(
                            "The pull query read more than {} bytes of {}'s topic {topic} (limits.pull_query_memory in the server configuration): select from a table, or narrow the query",
                            self.memory, self.source.name
                        )));
                    }
                    rows += changes.batch.num_rows();
                    ops.extend(changes.ops);
                    batches.push(changes.batch);
                }
            }
        }
        let Some(first) = batches.first() else {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        };
        let all = datafusion::arrow::compute::concat_batches(&first.schema(), &batches)?;
        let all = match (self.source.is_table, limit) {
            (true, _) => latest_per_key(&self.source, &all, &ops)?,
            (false, Some(l)) if all.num_rows() > l => all.slice(0, l),
            (false, _) => all,
        };
        Ok(all.project(&self.columns)?)
    }
}

/// The columns of a source's decoded batch, as a scan of it shows them:
/// the declared columns in order (a windowed source's `WINDOWSTART` and
/// `WINDOWEND` after its last key column), then the pseudo columns
/// `ROWTIME`, `ROWPARTITION` and `ROWOFFSET`. `declared`: the source's
/// column names in declaration order.
pub(crate) fn scan_columns(source: &SourceSpec, declared: &[String]) -> Vec<usize> {
    let fields = source.schema.fields();
    let index = |name: &str| fields.iter().position(|f| f.name() == name);
    let keys: Vec<&String> = source.key_fields.iter().map(|f| f.name()).collect();
    let mut columns: Vec<usize> = Vec::new();
    let mut window_done = source.window.is_none() || keys.is_empty();
    for (n, name) in declared.iter().enumerate() {
        columns.extend(index(name));
        // The window bounds follow the last key column.
        let keys_seen = declared[..=n].iter().filter(|d| keys.contains(d)).count();
        if !window_done && keys_seen == keys.len() {
            columns.extend(index(WINDOWSTART));
            columns.extend(index(WINDOWEND));
            window_done = true;
        }
    }
    // The rest: the pseudo columns (not the NULL bounds of an unwindowed
    // source's batch).
    let bounds = [index(WINDOWSTART), index(WINDOWEND)];
    for i in 0..fields.len() {
        let unused_bound = bounds.contains(&Some(i)) && source.window.is_none();
        if !(columns.contains(&i) || unused_bound) {
            columns.push(i);
        }
    }
    columns
}

/// A table's rows: the last change of each key (deleted keys and records
/// without a key left out), in key order.
fn latest_per_key(source: &SourceSpec, batch: &RecordBatch, ops: &[Op]) -> Result<RecordBatch> {
    let keys = source.key_fields.len();
    if keys == 0 {
        return Ok(batch.clone());
    }
    let key_columns: Vec<_> = batch.columns()[..keys].to_vec();
    let types: Vec<_> = key_columns.iter().map(|c| c.data_type().clone()).collect();
    let encoded = RowCodec::try_new(&types)?.encode(&key_columns)?;
    // Encoded keys sort as the keys do.
    let mut last: std::collections::BTreeMap<Vec<u8>, Option<u32>> = Default::default();
    for (i, op) in ops.iter().enumerate() {
        if key_columns.iter().all(|c| c.is_null(i)) {
            continue;
        }
        let row = (*op != Op::Delete).then_some(i as u32);
        last.insert(encoded.row(i).as_ref().to_vec(), row);
    }
    let rows: Vec<u32> = last.values().copied().flatten().collect();
    let rows = datafusion::arrow::array::UInt32Array::from(rows);
    let columns = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c.as_ref(), &rows, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

impl std::fmt::Debug for TopicScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicScan")
            .field("stream", &self.source.name)
            .field("topic", &self.source.topic)
            .finish()
    }
}

#[async_trait]
impl TableProvider for TopicScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        tracing::debug!(stream = %self.source.name, topic = %self.source.topic, "pull query scans the stream");
        let batch = self
            .read(limit)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // The batch's columns are nullable as decoded; the schema says so.
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::formats::{Format, FormatKind};
    use crate::connectors::memory::MemoryTopics;
    use crate::connectors::OutRecord;
    use crate::runtime::plan::{TimestampSpec, ROWOFFSET, ROWPARTITION, ROWTIME};
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    /// A stream `S` of two records (`a`, `b`) with its topic.
    fn stream() -> TopicScan {
        let topics: Arc<dyn Topics> = Arc::new(MemoryTopics::new());
        topics.create("t", 1).unwrap();
        for (k, v, ts) in [("a", "1", 10), ("b", "2", 20)] {
            topics
                .produce(OutRecord {
                    partition: Some(0),
                    ..OutRecord::new(
                        "t",
                        Some(Arc::from(k.as_bytes())),
                        Some(Arc::from(format!("{{\"V\":{v}}}").as_bytes())),
                        ts,
                    )
                })
                .unwrap();
        }
        let key = Arc::new(Field::new("K", DataType::Utf8, true));
        let value = Arc::new(Field::new("V", DataType::Int64, true));
        let source = SourceSpec {
            name: "S".into(),
            topic: "t".into(),
            key_format: Format::new(FormatKind::Kafka),
            value_format: Format::new(FormatKind::Json),
            key_fields: vec![key.clone()],
            value_fields: vec![value.clone()],
            header_fields: vec![],
            timestamp: TimestampSpec::Record,
            is_table: false,
            window: None,
            window_columns: false,
            fail_on_bad_timestamp: false,
            schema: Arc::new(Schema::new(vec![
                key.as_ref().clone(),
                value.as_ref().clone(),
                Field::new(ROWTIME, DataType::Int64, false),
                Field::new(ROWPARTITION, DataType::Int32, false),
                Field::new(ROWOFFSET, DataType::Int64, false),
            ])),
        };
        TopicScan::new(source, topics, &["K".into(), "V".into()])
    }

    #[test]
    fn reads_the_topic_up_to_its_end_with_pseudo_columns_last() {
        let scan = stream();
        let batch = scan.read(None).unwrap();
        let names: Vec<_> = scan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["K", "V", ROWTIME, ROWPARTITION, ROWOFFSET]);
        let k = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let t = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!((k.len(), k.value(0), k.value(1)), (2, "a", "b"));
        assert_eq!((t.value(0), t.value(1)), (10, 20));
    }

    #[test]
    fn a_limit_stops_a_streams_reading_and_memory_bounds_it() {
        let first = stream().read(Some(1)).unwrap();
        assert_eq!(first.num_rows(), 1);
        let k = first
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(k.value(0), "a");
        let e = stream().with_memory(8).read(None).unwrap_err();
        assert_eq!(e.sqlstate(), "53200");
        assert_eq!(
            e.to_string(),
            "The pull query read more than 8 bytes of S's topic t (limits.pull_query_memory in the server configuration): select from a table, or narrow the query"
        );
    }
}

//! Views: the current rows of a table a query maintains, kept in RocksDB
//! for pull queries.
//!
//! A `CREATE TABLE ... AS SELECT` writes its changes to its topic and, in
//! the same checkpoint, to its view: an upsert per Insert / UpdateAfter, a
//! delete per Delete (UpdateBefore rows are skipped). The view is keyed by
//! the table's key columns, then `WINDOWSTART` and `WINDOWEND` for windowed
//! tables, arrow-row encoded (memcomparable: a key's encoding is a prefix of
//! its windows', and key order is byte order, so equality becomes a point
//! get or a prefix scan and ranges become range scans). The value is the
//! whole row with its `ROWTIME` (the time of the change that wrote it) last,
//! arrow-row encoded.
//!
//! Layout: `v/<TABLE>/<key>` → row.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::changes::{Changes, Op};
use super::keyed_store::KeyedStore;
use super::plan::{SinkSpec, ROWTIME, WINDOWEND, WINDOWSTART};
use super::rows::RowCodec;
use super::state::{StateBatch, StateStore};
use crate::error::{Error, Result};

/// Key prefix of a table's view.
pub(crate) fn view_prefix(table: &str) -> Vec<u8> {
    format!("v/{table}/").into_bytes()
}

/// What a view holds and where its columns come from.
#[derive(Debug, Clone)]
pub(crate) struct ViewSpec {
    pub table: String,
    /// Key columns, then `WINDOWSTART` and `WINDOWEND` (BIGINT) for
    /// windowed tables, then value columns, then `ROWTIME` (BIGINT).
    pub schema: SchemaRef,
    /// How many leading columns of `schema` form the key (window bounds
    /// included).
    pub key_len: usize,
    /// The last two key columns are `WINDOWSTART` and `WINDOWEND`.
    pub windowed: bool,
    /// For each column of `schema`, its column in the query's output batch.
    pub columns: Vec<usize>,
}

impl ViewSpec {
    /// The view of a table query's sink (None for a stream).
    pub(crate) fn of_sink(sink: &SinkSpec) -> Option<Self> {
        if !sink.is_table {
            return None;
        }
        let mut fields: Vec<Field> = Vec::new();
        let mut columns = Vec::new();
        for (f, &c) in sink.key_fields.iter().zip(&sink.key_columns) {
            fields.push(f.as_ref().clone().with_nullable(true));
            columns.push(c);
        }
        let mut key_len = columns.len();
        let window = sink.window_columns.filter(|_| sink.window.is_some());
        if let Some((s, e)) = window {
            fields.push(Field::new(WINDOWSTART, DataType::Int64, true));
            fields.push(Field::new(WINDOWEND, DataType::Int64, true));
            columns.extend([s, e]);
            key_len += 2;
        }
        for (f, &c) in sink.value_fields.iter().zip(&sink.value_columns) {
            fields.push(f.as_ref().clone().with_nullable(true));
            columns.push(c);
        }
        fields.push(Field::new(ROWTIME, DataType::Int64, true));
        columns.push(sink.rowtime_column);
        Some(Self {
            table: sink.name.clone(),
            schema: Arc::new(Schema::new(fields)),
            key_len,
            windowed: window.is_some(),
            columns,
        })
    }

    pub(crate) fn key_types(&self) -> Vec<DataType> {
        self.schema.fields()[..self.key_len]
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    pub(crate) fn row_types(&self) -> Vec<DataType> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }
}

/// Keeps a view up to date from a query's output.
pub(crate) struct ViewWriter {
    spec: ViewSpec,
    key_codec: RowCodec,
    row_codec: RowCodec,
    rows: KeyedStore,
}

impl ViewWriter {
    pub(crate) fn try_new(spec: ViewSpec, store: &StateStore) -> Result<Self> {
        Ok(Self {
            key_codec: RowCodec::try_new(&spec.key_types())?,
            row_codec: RowCodec::try_new(&spec.row_types())?,
            rows: KeyedStore::new(store.clone(), view_prefix(&spec.table)),
            spec,
        })
    }

    /// Apply one output batch of the query.
    pub(crate) fn apply(&mut self, changes: &Changes) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let columns = self.columns(&changes.batch)?;
        let keys = self.key_codec.encode(&columns[..self.spec.key_len])?;
        let rows = self.row_codec.encode(&columns)?;
        for (i, op) in changes.ops.iter().enumerate() {
            let key = keys.row(i).as_ref().to_vec();
            match op {
                Op::Insert | Op::UpdateAfter => {
                    self.rows.set(key, Some(rows.row(i).as_ref().to_vec()))
                }
                Op::Delete => self.rows.set(key, None),
                Op::UpdateBefore => {}
            }
        }
        Ok(())
    }

    /// The batch's columns in the view's order and types.
    fn columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.spec
            .columns
            .iter()
            .zip(self.spec.schema.fields())
            .map(|(&c, f)| {
                let col = batch.columns().get(c).ok_or_else(|| {
                    Error::internal(format!("view {}: no output column {c}", self.spec.table))
                })?;
                Ok(if col.data_type() == f.data_type() {
                    col.clone()
                } else {
                    datafusion::arrow::compute::cast(col, f.data_type())?
                })
            })
            .collect()
    }

    pub(crate) fn checkpoint(&mut self, batch: &mut StateBatch) {
        self.rows.checkpoint(batch);
    }
}

/// Decode stored rows of a view into one batch of its schema.
pub(crate) fn decode_rows<'a>(
    spec: &ViewSpec,
    rows: impl IntoIterator<Item = &'a [u8]>,
) -> Result<RecordBatch> {
    let codec = RowCodec::try_new(&spec.row_types())?;
    let rows: Vec<&[u8]> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(spec.schema.clone()));
    }
    let columns = codec.decode(rows)?;
    Ok(RecordBatch::try_new(spec.schema.clone(), columns)?)
}

/// Encode key values (the view's leading key columns, or a prefix of them)
/// as stored, for point gets and prefix scans.
pub(crate) fn encode_key(types: &[DataType], columns: &[ArrayRef]) -> Result<Vec<Vec<u8>>> {
    let codec = RowCodec::try_new(types)?;
    let rows = codec.encode(columns)?;
    Ok((0..rows.num_rows())
        .map(|i| rows.row(i).as_ref().to_vec())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};

    fn spec() -> ViewSpec {
        ViewSpec {
            table: "T".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("K", DataType::Utf8, true),
                Field::new("N", DataType::Int64, true),
            ])),
            key_len: 1,
            windowed: false,
            columns: vec![1, 0],
        }
    }

    #[test]
    fn upserts_and_deletes_land_in_the_view_at_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut w = ViewWriter::try_new(spec(), &store).unwrap();
        // Output batches hold N before K: the spec picks them in order.
        let batch = |ns: Vec<i64>, ks: Vec<&str>| {
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("N", DataType::Int64, true),
                    Field::new("K", DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(Int64Array::from(ns)),
                    Arc::new(StringArray::from(ks)),
                ],
            )
            .unwrap()
        };
        w.apply(&Changes::new(
            batch(vec![1, 2], vec!["a", "b"]),
            vec![Op::Insert, Op::Insert],
        ))
        .unwrap();
        w.apply(&Changes::new(
            batch(vec![1, 5, 2], vec!["a", "a", "b"]),
            vec![Op::UpdateBefore, Op::UpdateAfter, Op::Delete],
        ))
        .unwrap();
        assert!(store.scan_prefix(&view_prefix("T")).unwrap().is_empty());
        let mut b = StateBatch::default();
        w.checkpoint(&mut b);
        store.commit(b).unwrap();
        let stored = store.scan_prefix(&view_prefix("T")).unwrap();
        let batch = decode_rows(&spec(), stored.iter().map(|(_, v)| v.as_slice())).unwrap();
        let k = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let n = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!((k.len(), k.value(0), n.value(0)), (1, "a", 5));
        // The stored key is the encoded key column: a point get finds it.
        let key = encode_key(
            &spec().key_types(),
            &[Arc::new(StringArray::from(vec!["a"]))],
        )
        .unwrap();
        let mut full = view_prefix("T");
        full.extend_from_slice(&key[0]);
        assert!(store.get(&full).unwrap().is_some());
    }
}

//! `Materialize`: a source table's changelog.
//!
//! Input: upserts (Insert) and tombstones (Delete, value columns NULL) as
//! decoded from the table's topic. Output: Insert for a new key; UpdateBefore
//! (old row) then UpdateAfter (new row) for a changed key; Delete (old row)
//! for a tombstone of a present key. Every output row carries the time of
//! the record that caused it, old rows included. A tombstone for an absent key is
//! forwarded only when `emit_unknown_deletes` (ksqlDB writes it to a sink;
//! an aggregation must not retract a row it never saw). A record without a
//! key (every key column NULL) is not a change of any row: it is dropped, as
//! ksqlDB ignores it.
//!
//! State: `prefix + key row` → the whole current row (arrow-row encoded).
//! Write-back cache; dirty entries are written at checkpoint.

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::Operator;
use crate::error::Result;
use crate::runtime::changes::{Changes, Op};
use crate::runtime::keyed_store::KeyedStore;
use crate::runtime::plan::ROWTIME;
use crate::runtime::rows::{key_and_row_codecs, RowCodec};
use crate::runtime::state::{StateBatch, StateStore};

pub(crate) struct Materialize {
    key_columns: Vec<usize>,
    emit_unknown_deletes: bool,
    codecs: Option<(RowCodec, RowCodec, SchemaRef)>,
    /// key bytes → current row bytes.
    rows: KeyedStore,
}

impl Materialize {
    pub(crate) fn new(
        key_columns: Vec<usize>,
        emit_unknown_deletes: bool,
        store: StateStore,
        prefix: Vec<u8>,
    ) -> Self {
        Self {
            key_columns,
            emit_unknown_deletes,
            codecs: None,
            rows: KeyedStore::new(store, prefix),
        }
    }
}

/// An output row: an input row as it came, or a row the state held.
enum OutRow {
    Input(usize),
    Old(Vec<u8>),
}

impl Operator for Materialize {
    fn display(&self) -> String {
        "Materialize: source table changelog (upserts, tombstones)".to_string()
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        let schema = input.batch.schema();
        if self.codecs.is_none() {
            self.codecs = Some(key_and_row_codecs(&schema, &self.key_columns)?);
        }
        let Some((key_codec, row_codec, _)) = &self.codecs else {
            return Ok(vec![]);
        };
        let key_cols: Vec<ArrayRef> = self
            .key_columns
            .iter()
            .map(|&i| input.batch.column(i).clone())
            .collect();
        let keys = key_codec.encode(&key_cols)?;
        let rows = row_codec.encode(input.batch.columns())?;

        let mut out_rows: Vec<OutRow> = Vec::new();
        let mut out_ops = Vec::new();
        // The input row each output row answers (its time is the change's).
        let mut origin: Vec<u32> = Vec::new();
        for i in 0..input.len() {
            if !key_cols.is_empty() && key_cols.iter().all(|c| c.is_null(i)) {
                continue;
            }
            let before = out_rows.len();
            let key = keys.row(i);
            if input.ops[i].is_add() {
                let new_row = rows.row(i).as_ref().to_vec();
                match self.rows.replace(key.as_ref(), Some(new_row))? {
                    None => {
                        out_rows.push(OutRow::Input(i));
                        out_ops.push(Op::Insert);
                    }
                    Some(old) => {
                        out_rows.push(OutRow::Old(old));
                        out_ops.push(Op::UpdateBefore);
                        out_rows.push(OutRow::Input(i));
                        out_ops.push(Op::UpdateAfter);
                    }
                }
            } else {
                match self.rows.replace(key.as_ref(), None)? {
                    Some(old) => {
                        out_rows.push(OutRow::Old(old));
                        out_ops.push(Op::Delete);
                    }
                    None if self.emit_unknown_deletes => {
                        out_rows.push(OutRow::Input(i));
                        out_ops.push(Op::Delete);
                    }
                    None => {}
                }
            }
            origin.extend(std::iter::repeat_n(i as u32, out_rows.len() - before));
        }
        if out_rows.is_empty() {
            return Ok(vec![]);
        }
        let Some((_, row_codec, schema)) = &self.codecs else {
            return Ok(vec![]);
        };
        let mut cols = row_codec.decode(out_rows.iter().map(|r| match r {
            OutRow::Input(i) => rows.row(*i).data(),
            OutRow::Old(row) => row.as_slice(),
        }))?;
        // Old rows (UpdateBefore, Delete) are stamped with the time of the
        // record that changed them, as Kafka Streams forwards a change.
        if let Some(t) = schema.fields().iter().position(|f| f.name() == ROWTIME) {
            let times = input.batch.column(t);
            cols[t] = take(times.as_ref(), &UInt32Array::from(origin), None)?;
        }
        let batch = RecordBatch::try_new(schema.clone(), cols)?;
        Ok(vec![Changes::new(batch, out_ops)])
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        self.rows.checkpoint(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(rows: &[(&str, Option<i64>)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn i64s(c: &Changes, col: usize) -> &Int64Array {
        c.batch
            .column(col)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
    }

    fn dump(c: &Changes) -> Vec<(String, Option<i64>, Op)> {
        let k = c
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let v = i64s(c, 1);
        (0..c.len())
            .map(|i| {
                (
                    k.value(i).into(),
                    v.is_valid(i).then(|| v.value(i)),
                    c.ops[i],
                )
            })
            .collect()
    }

    #[test]
    fn upserts_updates_tombstones_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut m = Materialize::new(vec![0], false, store.clone(), b"s/q/0/".to_vec());
        let input = Changes::new(
            batch(&[("a", Some(1)), ("a", Some(2)), ("b", None), ("a", None)]),
            vec![Op::Insert, Op::Insert, Op::Delete, Op::Delete],
        );
        let out = m.process(input).unwrap();
        assert_eq!(
            dump(&out[0]),
            vec![
                ("a".into(), Some(1), Op::Insert),
                ("a".into(), Some(1), Op::UpdateBefore),
                ("a".into(), Some(2), Op::UpdateAfter),
                ("a".into(), Some(2), Op::Delete),
            ]
        );
        let out = m
            .process(Changes::inserts(batch(&[("c", Some(3))])))
            .unwrap();
        assert_eq!(dump(&out[0]), vec![("c".into(), Some(3), Op::Insert)]);
        let mut b = StateBatch::default();
        m.checkpoint(&mut b).unwrap();
        store.commit(b).unwrap();

        // A new instance restores from RocksDB; unknown deletes are forwarded
        // when asked.
        let mut m2 = Materialize::new(vec![0], true, store, b"s/q/0/".to_vec());
        let out = m2
            .process(Changes::new(
                batch(&[("c", Some(4)), ("z", None)]),
                vec![Op::Insert, Op::Delete],
            ))
            .unwrap();
        assert_eq!(
            dump(&out[0]),
            vec![
                ("c".into(), Some(3), Op::UpdateBefore),
                ("c".into(), Some(4), Op::UpdateAfter),
                ("z".into(), None, Op::Delete),
            ]
        );
    }

    #[test]
    fn old_rows_carry_the_time_of_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new(ROWTIME, DataType::Int64, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "a"])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
                Arc::new(Int64Array::from(vec![1, 5, 9])),
            ],
        )
        .unwrap();
        let mut m = Materialize::new(vec![0], false, store, b"s/q/0/".to_vec());
        let out = m
            .process(Changes::new(b, vec![Op::Insert, Op::Insert, Op::Delete]))
            .unwrap();
        let c = &out[0];
        let (v, t) = (i64s(c, 1), i64s(c, 2));
        let got: Vec<(i64, i64, Op)> = (0..c.len())
            .map(|i| (v.value(i), t.value(i), c.ops[i]))
            .collect();
        // The UpdateBefore and the Delete hold old values at the new times.
        assert_eq!(
            got,
            vec![
                (1, 1, Op::Insert),
                (1, 5, Op::UpdateBefore),
                (2, 5, Op::UpdateAfter),
                (2, 9, Op::Delete)
            ]
        );
    }
}

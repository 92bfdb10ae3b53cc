//! `Suppress`: `EMIT FINAL` for windowed aggregations.
//!
//! Semantics (ksqlDB's EMIT FINAL, as its conformance cases pin it down):
//! each window's latest result is held back; stream time is the largest row
//! time this operator has received; when `window end + grace <= stream
//! time` the window is final and its held row is emitted, once, with the
//! row time it carried. Windows are emitted in window-end order, ties in
//! arrival order. A time window whose start is older than stream time minus
//! the window store's retention (size + grace unless RETENTION says
//! otherwise) has expired from the store by the time it closes and is never
//! emitted, so a jump in stream time skips the windows it leaps over. A
//! Delete (a session absorbed into a larger one) removes a held row: that
//! window never becomes final.
//!
//! State: `prefix + end (8 bytes, ordered) + sequence (8 bytes) + identity` →
//! window start (8 bytes) + the held row (arrow-row), plus `prefix + 0xff` → stream time and sequence.
//! A checkpoint writes the held rows added since the last one and deletes
//! those that left (replaced or emitted), not the whole buffer.

use std::collections::{BTreeMap, HashSet};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::HashMap;

use super::accumulators::i64_at;
use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{ROWTIME, WINDOWEND};
use crate::runtime::rows::{key_and_row_codecs, RowCodec};
use crate::runtime::state::{decode_time, encode_time, StateBatch, StateStore};

/// A held window: (identity, encoded row, window start).
type Held = (Vec<u8>, Vec<u8>, i64);

pub(crate) struct Suppress {
    grace: i64,
    retention: Option<i64>,
    key_columns: Vec<usize>,
    store: StateStore,
    prefix: Vec<u8>,
    codecs: Option<(RowCodec, RowCodec, SchemaRef)>,
    /// (window end, sequence) → held window
    held: BTreeMap<(i64, u64), Held>,
    /// identity → (window end, sequence)
    index: HashMap<Vec<u8>, (i64, u64)>,
    seq: u64,
    stream_time: Option<i64>,
    loaded: bool,
    changed: bool,
    /// Held rows added since the last checkpoint (not in the store yet).
    added: HashSet<(i64, u64)>,
    /// Store keys of held rows that left since the last checkpoint.
    removed: Vec<Vec<u8>>,
}

impl Suppress {
    pub(crate) fn new(
        grace: i64,
        retention: Option<i64>,
        key_columns: Vec<usize>,
        store: StateStore,
        prefix: Vec<u8>,
    ) -> Self {
        Self {
            grace,
            retention,
            key_columns,
            store,
            prefix,
            codecs: None,
            held: BTreeMap::new(),
            index: HashMap::default(),
            seq: 0,
            stream_time: None,
            loaded: false,
            changed: false,
            added: HashSet::new(),
            removed: Vec::new(),
        }
    }

    /// The store key of a held row.
    fn key(&self, (end, seq): (i64, u64), id: &[u8]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(&encode_time(end));
        k.extend_from_slice(&seq.to_be_bytes());
        k.extend_from_slice(id);
        k
    }

    /// A held row left: delete it at checkpoint if it was written.
    fn forget(&mut self, pos: (i64, u64), id: &[u8]) {
        if !self.added.remove(&pos) {
            let k = self.key(pos, id);
            self.removed.push(k);
        }
    }

    fn restore(&mut self) -> Result<()> {
        if self.loaded {
            return Ok(());
        }
        self.loaded = true;
        let mut meta_key = self.prefix.clone();
        meta_key.push(0xff);
        if let Some(meta) = self.store.get(&meta_key)? {
            self.stream_time = decode_time(&meta);
            self.seq = meta
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
        }
        let entries = self.store.scan_range(&self.prefix, &meta_key)?;
        for (k, v) in entries {
            let body = &k[self.prefix.len()..];
            let (Some(end), Some(seq)) = (
                decode_time(body),
                body.get(8..16).and_then(|b| b.try_into().ok()),
            ) else {
                continue;
            };
            let seq = u64::from_be_bytes(seq);
            let id = body[16..].to_vec();
            self.index.insert(id.clone(), (end, seq));
            let start = decode_time(&v).unwrap_or(i64::MIN);
            self.held.insert(
                (end, seq),
                (id, v.get(8..).unwrap_or_default().to_vec(), start),
            );
        }
        Ok(())
    }
}

impl Operator for Suppress {
    fn display(&self) -> String {
        format!(
            "Suppress: EMIT FINAL, until window end + grace {}ms",
            self.grace
        )
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        self.restore()?;
        let batch = &input.batch;
        let schema = batch.schema();
        if self.codecs.is_none() {
            self.codecs = Some(key_and_row_codecs(&schema, &self.key_columns)?);
        }
        let Some((id_codec, row_codec, _)) = &self.codecs else {
            return Ok(vec![]);
        };
        let id_cols: Vec<ArrayRef> = self
            .key_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let ids = id_codec.encode(&id_cols)?;
        let rows = row_codec.encode(batch.columns())?;
        let rowtime = batch
            .column_by_name(ROWTIME)
            .ok_or_else(|| Error::internal("no ROWTIME"))?
            .clone();
        let window_start = batch
            .column_by_name(crate::runtime::plan::WINDOWSTART)
            .ok_or_else(|| Error::internal("no WINDOWSTART"))?
            .clone();
        let window_end = batch
            .column_by_name(WINDOWEND)
            .ok_or_else(|| Error::internal("no WINDOWEND"))?
            .clone();

        let mut emitted: Vec<Vec<u8>> = Vec::new();
        for i in 0..input.len() {
            self.changed = true;
            let id = ids.row(i).as_ref().to_vec();
            if let Some(pos) = self.index.remove(&id) {
                self.held.remove(&pos);
                self.forget(pos, &id);
            }
            if input.ops[i].is_add() {
                let end = i64_at(window_end.as_ref(), i)?;
                self.seq += 1;
                self.index.insert(id.clone(), (end, self.seq));
                self.added.insert((end, self.seq));
                let start = i64_at(window_start.as_ref(), i)?;
                self.held
                    .insert((end, self.seq), (id, rows.row(i).as_ref().to_vec(), start));
            }
            let ts = i64_at(rowtime.as_ref(), i)?;
            let st = self.stream_time.map_or(ts, |s| s.max(ts));
            self.stream_time = Some(st);
            while let Some(entry) = self.held.first_entry() {
                if entry.key().0.saturating_add(self.grace) > st {
                    break;
                }
                let (pos, (id, row, start)) = entry.remove_entry();
                self.index.remove(&id);
                self.forget(pos, &id);
                let expired = self.retention.is_some_and(|r| start < st.saturating_sub(r));
                if !expired {
                    emitted.push(row);
                }
            }
        }
        if emitted.is_empty() {
            return Ok(vec![]);
        }
        let Some((_, row_codec, schema)) = &self.codecs else {
            return Ok(vec![]);
        };
        let cols = row_codec.decode(emitted.iter().map(|r| r.as_slice()))?;
        let n = emitted.len();
        Ok(vec![Changes::new(
            RecordBatch::try_new(schema.clone(), cols)?,
            vec![Op::Insert; n],
        )])
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        self.changed = false;
        let mut meta_key = self.prefix.clone();
        meta_key.push(0xff);
        for k in std::mem::take(&mut self.removed) {
            batch.delete(&k);
        }
        for pos in std::mem::take(&mut self.added) {
            if let Some((id, row, start)) = self.held.get(&pos) {
                let mut v = encode_time(*start).to_vec();
                v.extend_from_slice(row);
                batch.put(&self.key(pos, id), &v);
            }
        }
        let mut meta = encode_time(self.stream_time.unwrap_or(i64::MIN)).to_vec();
        meta.extend_from_slice(&self.seq.to_be_bytes());
        batch.put(&meta_key, &meta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    use crate::runtime::operators::testing::{dump, row, store};
    use crate::runtime::plan::WINDOWSTART;

    /// Rows: (key, window start, window end, count, rowtime).
    fn windows(rows: &[(&str, i64, i64, i64, i64)], ops: &[Op]) -> Changes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new(WINDOWSTART, DataType::Int64, true),
            Field::new(WINDOWEND, DataType::Int64, true),
            Field::new("C", DataType::Int64, true),
            Field::new(ROWTIME, DataType::Int64, false),
        ]));
        let col = |f: fn(&(&str, i64, i64, i64, i64)) -> i64| {
            Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                col(|r| r.1),
                col(|r| r.2),
                col(|r| r.3),
                col(|r| r.4),
            ],
        )
        .unwrap();
        Changes::new(b, ops.to_vec())
    }

    #[test]
    fn emits_each_window_once_when_it_closes() {
        let (store, _d) = store();
        let mut s = Suppress::new(1, None, vec![0, 1], store.clone(), b"s/q/1/".to_vec());
        let ins = |n| vec![Op::Insert; n];
        // Window [0,2) updated twice, nothing final until stream time >= 2 + 1.
        let out = s
            .process(windows(
                &[("a", 0, 2, 1, 0), ("a", 0, 2, 2, 1), ("b", 0, 2, 1, 1)],
                &ins(3),
            ))
            .unwrap();
        assert!(out.is_empty());
        let mut cp = StateBatch::default();
        s.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();
        // A restarted operator still holds the windows.
        let mut s = Suppress::new(1, None, vec![0, 1], store, b"s/q/1/".to_vec());
        let out = s.process(windows(&[("a", 2, 4, 1, 3)], &ins(1))).unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["a", "0", "2", "2", "1"], Op::Insert),
                row(&["b", "0", "2", "1", "1"], Op::Insert)
            ]
        );
        // A deleted window (merged session) is never emitted.
        let out = s
            .process(windows(
                &[("a", 2, 4, 1, 3), ("c", 9, 9, 1, 9)],
                &[Op::Delete, Op::Insert],
            ))
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn windows_expired_by_a_jump_in_stream_time_are_never_emitted() {
        let (store, _d) = store();
        // Size 2, grace 1: retention 3.
        let mut s = Suppress::new(1, Some(3), vec![0, 1], store, b"s/q/1/".to_vec());
        let out = s
            .process(windows(
                &[("a", 0, 2, 1, 0), ("a", 2, 4, 1, 2), ("a", 4, 6, 1, 5)],
                &[Op::Insert, Op::Insert, Op::Insert],
            ))
            .unwrap();
        // At stream time 5, [0,2) (start 0 < 5 - 3) expired; [2,4) is final.
        assert_eq!(
            dump(&out),
            vec![row(&["a", "2", "4", "1", "2"], Op::Insert)]
        );
    }

    #[test]
    fn checkpoints_write_only_what_changed_and_restore_it() {
        let (store, _d) = store();
        let prefix = b"s/q/1/".to_vec();
        let mut s = Suppress::new(1, None, vec![0, 1], store.clone(), prefix.clone());
        let ins = |n| vec![Op::Insert; n];
        let checkpoint = |s: &mut Suppress| {
            let mut cp = StateBatch::default();
            s.checkpoint(&mut cp).unwrap();
            let n = cp.len();
            store.commit(cp).unwrap();
            n
        };
        s.process(windows(&[("a", 0, 10, 1, 0), ("b", 0, 10, 1, 1)], &ins(2)))
            .unwrap();
        assert_eq!(checkpoint(&mut s), 3, "two held rows and the meta row");
        // a replaced: its old row deleted, the new one written; b untouched.
        s.process(windows(&[("a", 0, 10, 2, 2)], &ins(1))).unwrap();
        assert_eq!(checkpoint(&mut s), 3);
        // c added and replaced within one interval: written once.
        s.process(windows(&[("c", 0, 10, 1, 3), ("c", 0, 10, 2, 4)], &ins(2)))
            .unwrap();
        assert_eq!(checkpoint(&mut s), 2);
        assert_eq!(checkpoint(&mut s), 0);
        assert_eq!(store.scan_prefix(&prefix).unwrap().len(), 4);
        // After a restart the held rows are the latest ones, in arrival order.
        let mut s = Suppress::new(1, None, vec![0, 1], store.clone(), prefix.clone());
        let out = s
            .process(windows(&[("d", 20, 30, 1, 20)], &ins(1)))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["b", "0", "10", "1", "1"], Op::Insert),
                row(&["a", "0", "10", "2", "2"], Op::Insert),
                row(&["c", "0", "10", "2", "4"], Op::Insert),
            ]
        );
        // The emitted rows are deleted from the store at the next checkpoint.
        assert_eq!(checkpoint(&mut s), 5);
        assert_eq!(
            store.scan_prefix(&prefix).unwrap().len(),
            2,
            "d and the meta row"
        );
    }
}

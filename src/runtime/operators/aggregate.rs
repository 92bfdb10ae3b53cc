//! `Aggregate`: grouped aggregation over a stream or a table (no window).
//!
//! Semantics (ksqlDB with caching off): every input row updates its group
//! and emits the group's new result, so a group's output is a table
//! changelog: Insert for a new group, then UpdateBefore (the old result)
//! and UpdateAfter (the new one) for every change, so a HAVING filter
//! downstream knows whether the old result was visible. On a table input,
//! the old value of a changed row is retracted before the new one is added;
//! an UpdateBefore directly followed by the UpdateAfter of the same group
//! emits once (after both), a row that moves groups emits for each group.
//! The output row time is the largest record time the group has seen.
//!
//! A batch's group keys are encoded once (arrow-row, for the whole batch);
//! each distinct key is looked up in the group table (and RocksDB) once per
//! batch, then rows go to their group's slot in order, each reading its
//! result from the group's running state ([`AccumulatorSet`]).
//!
//! State: `prefix + group key (arrow-row)` → `max rowtime (8 bytes BE) +
//! accumulator state (arrow-row)`. Write-back cache ([`GroupTable`]); dirty
//! groups are written at checkpoint, encoded together.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::Rows;
use datafusion::common::HashMap;

use super::accumulators::{i64_column, AccumulatorSet, Args, Outputs};
use super::group_table::{Group, GroupTable};
use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{AggregateSpec, GroupColumn, ROWTIME};
use crate::runtime::rows::RowCodec;
use crate::runtime::state::{StateBatch, StateStore};

pub(crate) struct Aggregate {
    spec: AggregateSpec,
    accs: AccumulatorSet,
    store: StateStore,
    prefix: Vec<u8>,
    group_codec: Option<RowCodec>,
    groups: GroupTable,
}

impl Aggregate {
    pub(crate) fn try_new(spec: AggregateSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        let accs = AccumulatorSet::try_new(spec.aggregates.clone())?;
        Ok(Self {
            spec,
            accs,
            store,
            prefix,
            group_codec: None,
            groups: GroupTable::new(GROUP_CACHE_LIMIT),
        })
    }

    /// The slot of the group under `key`, read from RocksDB if it is not in
    /// memory; None if there is no such group.
    fn find(&mut self, key: &[u8]) -> Result<Option<u32>> {
        if let Some(slot) = self.groups.find(key) {
            return Ok(Some(slot));
        }
        load_group(&self.store, &self.prefix, &self.accs, &mut self.groups, key)
    }
}

/// Read the group stored under `prefix + key` (as `max rowtime +
/// accumulator state`) into `table`; its slot, or None if there is no such
/// group. The key must not be in the table.
pub(crate) fn load_group(
    store: &StateStore,
    prefix: &[u8],
    accs: &AccumulatorSet,
    table: &mut GroupTable,
    key: &[u8],
) -> Result<Option<u32>> {
    let mut full = Vec::with_capacity(prefix.len() + key.len());
    full.extend_from_slice(prefix);
    full.extend_from_slice(key);
    match store.get(&full)? {
        Some(bytes) if bytes.len() >= 8 => {
            let max_ts = i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
            let state = accs.decode(&bytes[8..])?;
            Ok(Some(table.insert(
                key.to_vec(),
                Group {
                    accs: state,
                    max_ts,
                },
            )))
        }
        _ => Ok(None),
    }
}

/// Write every dirty group of `table` into the checkpoint batch under
/// `prefix + key`, their states encoded together, in key order (RocksDB's
/// memtable inserts a sorted run cheaply).
pub(crate) fn write_dirty(
    table: &mut GroupTable,
    accs: &AccumulatorSet,
    prefix: &[u8],
    batch: &mut StateBatch,
) -> Result<()> {
    let mut dirty = table.take_dirty();
    if dirty.is_empty() {
        return Ok(());
    }
    dirty.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let states = accs.encode_many(dirty.iter_mut().map(|(_, g)| &mut g.accs))?;
    let mut key = prefix.to_vec();
    let mut value = Vec::new();
    for (i, (k, g)) in dirty.iter().enumerate() {
        key.truncate(prefix.len());
        key.extend_from_slice(k);
        value.clear();
        value.extend_from_slice(&g.max_ts.to_be_bytes());
        value.extend_from_slice(states.row(i).as_ref());
        batch.put(&key, &value);
    }
    Ok(())
}

/// What every grouped operator computes first for a batch: group values,
/// their encoded keys, the aggregates' arguments and the row times.
pub(crate) struct Prepared {
    pub groups: Vec<ArrayRef>,
    pub keys: Rows,
    pub args: Args,
    pub rowtime: ArrayRef,
    /// Rows with a NULL in some group column.
    pub null_keys: Option<NullBuffer>,
}

impl Prepared {
    /// True if any group column is NULL at `row`.
    pub(crate) fn has_null(&self, row: usize) -> bool {
        self.null_keys.as_ref().is_some_and(|n| n.is_null(row))
    }
}

pub(crate) fn prepare(
    spec: &AggregateSpec,
    codec: &mut Option<RowCodec>,
    accs: &AccumulatorSet,
    batch: &RecordBatch,
) -> Result<Prepared> {
    let groups = group_values(spec, batch)?;
    let codec = match codec {
        Some(c) => c,
        None => {
            let types: Vec<_> = groups.iter().map(|a| a.data_type().clone()).collect();
            codec.insert(RowCodec::try_new(&types)?)
        }
    };
    let keys = codec.encode(&groups)?;
    let args = accs.arguments(batch)?;
    let rowtime = batch
        .column_by_name(ROWTIME)
        .ok_or_else(|| Error::internal("aggregation input has no ROWTIME"))?
        .clone();
    let null_keys = groups.iter().fold(None, |acc: Option<NullBuffer>, g| {
        NullBuffer::union(acc.as_ref(), g.nulls())
    });
    Ok(Prepared {
        groups,
        keys,
        args,
        rowtime,
        null_keys,
    })
}

/// Evaluate group expressions over a batch.
pub(crate) fn group_values(spec: &AggregateSpec, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    spec.group_exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect()
}

/// The rows an aggregation emits for one batch, built column by column.
pub(crate) struct Emitted {
    /// The input row each output row takes its group columns from.
    pub rows: Vec<u32>,
    pub ops: Vec<Op>,
    pub results: Outputs,
    pub times: Vec<i64>,
    /// Window bounds (windowed aggregations only).
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
}

impl Emitted {
    pub(crate) fn new(accs: &AccumulatorSet) -> Self {
        Self {
            rows: Vec::new(),
            ops: Vec::new(),
            results: accs.outputs(),
            times: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The output batch: group columns taken from `group_cols` at the rows,
    /// window bounds if `windowed`, aggregate results and row times.
    pub(crate) fn build(
        self,
        spec: &AggregateSpec,
        group_cols: &[ArrayRef],
        windowed: bool,
    ) -> Result<Vec<Changes>> {
        if self.rows.is_empty() {
            return Ok(vec![]);
        }
        let idx = UInt32Array::from(self.rows);
        let fields = spec.schema.fields();
        let (starts, ends) = (
            Arc::new(Int64Array::from(self.starts)),
            Arc::new(Int64Array::from(self.ends)),
        );
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        for (i, gc) in spec.group_columns.iter().enumerate() {
            let arr: ArrayRef = match gc {
                GroupColumn::Expr(g) => take(group_cols[*g].as_ref(), &idx, None)?,
                GroupColumn::WindowStart if windowed => starts.clone(),
                GroupColumn::WindowEnd if windowed => ends.clone(),
                GroupColumn::WindowStart => {
                    return Err(Error::internal("window start without window"))
                }
                GroupColumn::WindowEnd => return Err(Error::internal("window end without window")),
            };
            let want = fields[i].data_type();
            cols.push(if arr.data_type() != want {
                cast(&arr, want)?
            } else {
                arr
            });
        }
        let n_groups = spec.group_columns.len();
        let agg_types: Vec<DataType> = fields[n_groups..n_groups + spec.aggregates.len()]
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        cols.extend(self.results.finish(&agg_types)?);
        cols.push(Arc::new(Int64Array::from(self.times)));
        let out = RecordBatch::try_new(spec.schema.clone(), cols)?;
        Ok(vec![Changes::new(out, self.ops)])
    }
}

/// The row time at `row` (0 when null, as before).
pub(crate) fn time_at(times: &Int64Array, row: usize) -> i64 {
    if times.is_null(row) {
        0
    } else {
        times.value(row)
    }
}

impl Operator for Aggregate {
    fn display(&self) -> String {
        self.spec.display.clone()
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        let p = prepare(&self.spec, &mut self.group_codec, &self.accs, &input.batch)?;
        let times = i64_column(p.rowtime.as_ref())?;
        self.groups.next_batch();
        // This batch's groups: encoded key → slot, each looked up once.
        let mut local: HashMap<&[u8], u32> = HashMap::default();
        let mut out = Emitted::new(&self.accs);
        // The time of the old result already in `out.results`, until its
        // UpdateBefore row is emitted.
        let mut pending_old: Option<i64> = None;
        for i in 0..input.len() {
            let op = input.ops[i];
            // Streams: null rows are skipped. Rows whose group key has a
            // NULL are dropped, as ksqlDB does.
            if (!self.spec.table_input && !op.is_add()) || p.has_null(i) {
                continue;
            }
            let key = p.keys.row(i).data();
            let (slot, existed) = match local.get(key) {
                Some(&slot) => (slot, true),
                None => {
                    let slot = match self.find(key)? {
                        Some(slot) => (slot, true),
                        None if !op.is_add() => continue, // retracting from a group that does not exist
                        None => {
                            let accs = self.accs.create()?;
                            let slot = self.groups.insert(
                                key.to_vec(),
                                Group {
                                    accs,
                                    max_ts: i64::MIN,
                                },
                            );
                            (slot, false)
                        }
                    };
                    local.insert(key, slot.0);
                    slot
                }
            };
            let ts = time_at(times, i);
            let group = self
                .groups
                .touch(slot)
                .ok_or_else(|| Error::internal("aggregation group vanished"))?;
            // The group's result before this change, for the UpdateBefore.
            if existed && pending_old.is_none() {
                self.accs.evaluate_into(&mut group.accs, &mut out.results)?;
                pending_old = Some(group.max_ts);
            }
            self.accs.apply(&mut group.accs, &p.args, i, !op.is_add())?;
            group.max_ts = group.max_ts.max(ts);
            // An update's old row and new row in the same group emit once.
            let pair_follows = op == Op::UpdateBefore
                && input.ops.get(i + 1) == Some(&Op::UpdateAfter)
                && i + 1 < p.keys.num_rows()
                && p.keys.row(i + 1).data() == key;
            if pair_follows {
                continue;
            }
            if let Some(old_ts) = pending_old.take() {
                out.times.push(old_ts);
                out.rows.push(i as u32);
                out.ops.push(Op::UpdateBefore);
            }
            self.accs.evaluate_into(&mut group.accs, &mut out.results)?;
            out.times.push(group.max_ts);
            out.rows.push(i as u32);
            out.ops
                .push(if existed { Op::UpdateAfter } else { Op::Insert });
        }
        out.build(&self.spec, &p.groups, false)
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        write_dirty(&mut self.groups, &self.accs, &self.prefix, batch)?;
        self.groups.evict();
        Ok(())
    }
}

/// Groups kept in memory between checkpoints; past it the least recently
/// used are dropped (they are in RocksDB).
pub(crate) const GROUP_CACHE_LIMIT: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::testing::*;

    #[test]
    fn stream_aggregation_emits_per_record() {
        let (store, _d) = store();
        let mut a = Aggregate::try_new(count_sum_spec(None), store, b"s/q/0/".to_vec()).unwrap();
        let out = a
            .process(inserts(&[
                ("a", Some(1), 10),
                ("b", Some(5), 5),
                ("a", None, 7),
                ("a", Some(2), 20),
            ]))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["a", "1", "1", "10"], Op::Insert),
                row(&["b", "1", "5", "5"], Op::Insert),
                row(&["a", "1", "1", "10"], Op::UpdateBefore),
                row(&["a", "1", "1", "10"], Op::UpdateAfter),
                row(&["a", "1", "1", "10"], Op::UpdateBefore),
                row(&["a", "2", "3", "20"], Op::UpdateAfter),
            ]
        );
    }

    #[test]
    fn table_aggregation_retracts_old_values_and_survives_restart() {
        let (store, _d) = store();
        let mut spec = count_sum_spec(None);
        spec.table_input = true;
        let mut a = Aggregate::try_new(spec.clone(), store.clone(), b"s/q/0/".to_vec()).unwrap();
        // Row x: 1 in group a; then x changes to 4 in a (one emit); then y
        // moves from a to b (emits for a and for b); then a delete.
        let out = a
            .process(batch(
                &[
                    ("a", Some(1), 1),
                    ("a", Some(1), 2),
                    ("a", Some(4), 2),
                    ("a", Some(3), 3),
                ],
                &[Op::Insert, Op::UpdateBefore, Op::UpdateAfter, Op::Insert],
            ))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["a", "1", "1", "1"], Op::Insert),
                row(&["a", "1", "1", "1"], Op::UpdateBefore),
                row(&["a", "1", "4", "2"], Op::UpdateAfter),
                row(&["a", "1", "4", "2"], Op::UpdateBefore),
                row(&["a", "2", "7", "3"], Op::UpdateAfter),
            ]
        );
        let mut cp = crate::runtime::state::StateBatch::default();
        a.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();

        let mut a = Aggregate::try_new(spec, store, b"s/q/0/".to_vec()).unwrap();
        let out = a
            .process(batch(
                &[("a", Some(3), 4), ("b", Some(3), 4), ("a", Some(4), 5)],
                &[Op::UpdateBefore, Op::UpdateAfter, Op::Delete],
            ))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["a", "2", "7", "3"], Op::UpdateBefore),
                row(&["a", "1", "4", "4"], Op::UpdateAfter),
                row(&["b", "1", "3", "4"], Op::Insert),
                row(&["a", "1", "4", "4"], Op::UpdateBefore),
                row(&["a", "0", "0", "5"], Op::UpdateAfter),
            ]
        );
    }

    /// Random table changes: inserts, deletes and update pairs (an
    /// UpdateBefore always followed by its UpdateAfter).
    fn table_ops(seed: u64, n: usize) -> Vec<Op> {
        let mut rng = crate::cases::Rng::new(seed);
        let mut ops = Vec::with_capacity(n);
        while ops.len() < n {
            match rng.below(4) {
                0 => ops.push(Op::Delete),
                1 if ops.len() + 2 <= n => ops.extend([Op::UpdateBefore, Op::UpdateAfter]),
                _ => ops.push(Op::Insert),
            }
        }
        ops
    }

    /// Run `rows` through an Aggregate in chunks of the given sizes (cycled,
    /// an update pair never split), checkpointing after each and restarting from the store every third;
    /// `inline: false` computes every aggregate with its accumulator.
    fn run_in_chunks(
        spec: &AggregateSpec,
        rows: &[(Option<String>, Option<i64>, i64)],
        ops: &[Op],
        chunks: &[usize],
        inline: bool,
        cache: usize,
    ) -> Vec<(Vec<String>, Op)> {
        let (store, _d) = store();
        let build = || {
            let mut a =
                Aggregate::try_new(spec.clone(), store.clone(), b"s/q/0/".to_vec()).unwrap();
            if !inline {
                a.accs = AccumulatorSet::accumulators_only(spec.aggregates.clone()).unwrap();
            }
            a.groups = GroupTable::new(cache);
            a
        };
        let mut a = build();
        let mut out = Vec::new();
        let (mut at, mut n) = (0, 0);
        while at < rows.len() {
            let mut len = chunks[n % chunks.len()].min(rows.len() - at);
            // An update's two rows come in one batch (Materialize emits them
            // together), as the operator expects.
            if ops[at + len - 1] == Op::UpdateBefore {
                len += 1;
            }
            let got = a
                .process(batch_of(&rows[at..at + len], &ops[at..at + len]))
                .unwrap();
            out.extend(dump(&got));
            let mut cp = StateBatch::default();
            a.checkpoint(&mut cp).unwrap();
            store.commit(cp).unwrap();
            at += len;
            n += 1;
            if n % 3 == 0 {
                a = build();
            }
        }
        out
    }

    #[test]
    fn batches_emit_what_single_rows_emit_through_accumulators() {
        for (seed, table) in [(1, false), (2, false), (3, true), (4, true)] {
            let spec = mixed_spec(None, table);
            let rows = random_rows(seed, 400);
            let ops = if table {
                table_ops(seed, rows.len())
            } else {
                vec![Op::Insert; rows.len()]
            };
            let expected = run_in_chunks(&spec, &rows, &ops, &[1], false, 100_000);
            assert!(expected.len() > rows.len(), "too few outputs to compare");
            for (chunks, cache) in [(vec![400], 100_000), (vec![7, 1, 33, 2], 4)] {
                let got = run_in_chunks(&spec, &rows, &ops, &chunks, true, cache);
                assert_eq!(
                    got, expected,
                    "seed {seed}, chunks {chunks:?}, cache {cache}"
                );
            }
        }
    }

    #[test]
    fn a_checkpoint_writes_only_the_groups_changed_since_the_last() {
        let (store, _d) = store();
        let mut a =
            Aggregate::try_new(count_sum_spec(None), store.clone(), b"s/q/0/".to_vec()).unwrap();
        a.process(inserts(&[
            ("a", Some(1), 1),
            ("b", Some(2), 2),
            ("a", Some(3), 3),
        ]))
        .unwrap();
        let mut cp = StateBatch::default();
        a.checkpoint(&mut cp).unwrap();
        assert_eq!(cp.len(), 2);
        store.commit(cp).unwrap();
        a.process(inserts(&[("b", Some(5), 4)])).unwrap();
        let mut cp = StateBatch::default();
        a.checkpoint(&mut cp).unwrap();
        assert_eq!(cp.len(), 1);
        store.commit(cp).unwrap();
        let mut cp = StateBatch::default();
        a.checkpoint(&mut cp).unwrap();
        assert_eq!(cp.len(), 0);
    }
}

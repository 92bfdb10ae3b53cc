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
//! State: `prefix + group key (arrow-row)` → `max rowtime (8 bytes BE) +
//! accumulator state (arrow-row)`. Write-back cache; dirty groups are
//! written at checkpoint.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::Rows;
use datafusion::common::ScalarValue;

use super::accumulators::{i64_at, results_to_columns, Accs, AccumulatorSet};
use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{AggregateSpec, GroupColumn, ROWTIME};
use crate::runtime::rows::RowCodec;
use crate::runtime::state::{StateBatch, StateStore};

pub(crate) struct Group {
    pub accs: Accs,
    pub max_ts: i64,
}

pub(crate) struct Aggregate {
    spec: AggregateSpec,
    accs: AccumulatorSet,
    store: StateStore,
    prefix: Vec<u8>,
    group_codec: Option<RowCodec>,
    groups: HashMap<Vec<u8>, Group>,
    dirty: HashSet<Vec<u8>>,
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
            groups: HashMap::new(),
            dirty: HashSet::new(),
        })
    }

    fn load(&mut self, key: &[u8]) -> Result<bool> {
        load_group(&self.store, &self.prefix, &self.accs, &mut self.groups, key)
    }
}

/// Make sure the group stored under `prefix + key` (as `max rowtime +
/// accumulator state`) is in `cache`; false if there is no such group.
pub(crate) fn load_group(
    store: &StateStore,
    prefix: &[u8],
    accs: &AccumulatorSet,
    cache: &mut HashMap<Vec<u8>, Group>,
    key: &[u8],
) -> Result<bool> {
    if cache.contains_key(key) {
        return Ok(true);
    }
    let mut full = prefix.to_vec();
    full.extend_from_slice(key);
    match store.get(&full)? {
        Some(bytes) if bytes.len() >= 8 => {
            let max_ts = i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
            let state = accs.decode(&bytes[8..])?;
            cache.insert(
                key.to_vec(),
                Group {
                    accs: state,
                    max_ts,
                },
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// What every grouped operator computes first for a batch: group values,
/// their encoded keys, the aggregates' arguments and the row times.
pub(crate) struct Prepared {
    pub groups: Vec<ArrayRef>,
    pub keys: Rows,
    pub args: Vec<Vec<ArrayRef>>,
    pub rowtime: ArrayRef,
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
    Ok(Prepared {
        groups,
        keys,
        args,
        rowtime,
    })
}

/// True if any group column is NULL at `row`.
pub(crate) fn has_null(groups: &[ArrayRef], row: usize) -> bool {
    groups.iter().any(|g| g.is_null(row))
}

/// Evaluate group expressions over a batch.
pub(crate) fn group_values(spec: &AggregateSpec, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    spec.group_exprs
        .iter()
        .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect()
}

/// Assemble an output batch: group columns taken from `group_cols` at
/// `rows`, window bounds, aggregate results and row times.
pub(crate) fn build_output(
    spec: &AggregateSpec,
    group_cols: &[ArrayRef],
    rows: &[u32],
    windows: Option<(&[i64], &[i64])>,
    results: Vec<Vec<ScalarValue>>,
    times: Vec<i64>,
) -> Result<RecordBatch> {
    let idx = UInt32Array::from(rows.to_vec());
    let fields = spec.schema.fields();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    for (i, gc) in spec.group_columns.iter().enumerate() {
        let arr: ArrayRef = match gc {
            GroupColumn::Expr(g) => take(group_cols[*g].as_ref(), &idx, None)?,
            GroupColumn::WindowStart => std::sync::Arc::new(Int64Array::from(
                windows
                    .map(|w| w.0.to_vec())
                    .ok_or_else(|| Error::internal("window start without window"))?,
            )),
            GroupColumn::WindowEnd => std::sync::Arc::new(Int64Array::from(
                windows
                    .map(|w| w.1.to_vec())
                    .ok_or_else(|| Error::internal("window end without window"))?,
            )),
        };
        let want = fields[i].data_type();
        cols.push(if arr.data_type() != want {
            cast(&arr, want)?
        } else {
            arr
        });
    }
    let n_groups = spec.group_columns.len();
    let agg_types: Vec<_> = fields[n_groups..n_groups + spec.aggregates.len()]
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    cols.extend(results_to_columns(
        results,
        spec.aggregates.len(),
        &agg_types,
    )?);
    cols.push(std::sync::Arc::new(Int64Array::from(times)));
    Ok(RecordBatch::try_new(spec.schema.clone(), cols)?)
}

impl Operator for Aggregate {
    fn display(&self) -> String {
        self.spec.display.clone()
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        let Prepared {
            groups,
            keys,
            args,
            rowtime,
        } = prepare(&self.spec, &mut self.group_codec, &self.accs, &input.batch)?;

        let mut rows = Vec::new();
        let mut ops = Vec::new();
        let mut results = Vec::new();
        let mut times = Vec::new();
        let mut pending_old: Option<(Vec<ScalarValue>, i64)> = None;
        for i in 0..input.len() {
            let op = input.ops[i];
            // Streams: null rows are skipped. Rows whose group key has a
            // NULL are dropped, as ksqlDB does.
            if (!self.spec.table_input && !op.is_add()) || has_null(&groups, i) {
                continue;
            }
            let key = keys.row(i).as_ref().to_vec();
            let existed = self.load(&key)?;
            if !existed {
                if !op.is_add() {
                    continue; // retracting from a group that does not exist
                }
                let accs = self.accs.create()?;
                self.groups.insert(
                    key.clone(),
                    Group {
                        accs,
                        max_ts: i64::MIN,
                    },
                );
            }
            let ts = i64_at(rowtime.as_ref(), i)?;
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            // The group's result before this change, for the UpdateBefore.
            if existed && pending_old.is_none() {
                pending_old = Some((self.accs.evaluate(&mut group.accs)?, group.max_ts));
            }
            self.accs.apply(&mut group.accs, &args, i, !op.is_add())?;
            group.max_ts = group.max_ts.max(ts);
            self.dirty.insert(key.clone());
            // An update's old row and new row in the same group emit once.
            let pair_follows = op == Op::UpdateBefore
                && input.ops.get(i + 1) == Some(&Op::UpdateAfter)
                && keys.row(i + 1).as_ref() == key.as_slice();
            if pair_follows {
                continue;
            }
            if let Some((old, old_ts)) = pending_old.take() {
                results.push(old);
                times.push(old_ts);
                rows.push(i as u32);
                ops.push(Op::UpdateBefore);
            }
            results.push(self.accs.evaluate(&mut group.accs)?);
            times.push(group.max_ts);
            rows.push(i as u32);
            ops.push(if existed { Op::UpdateAfter } else { Op::Insert });
        }
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let out = build_output(&self.spec, &groups, &rows, None, results, times)?;
        Ok(vec![Changes::new(out, ops)])
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        for key in self.dirty.drain() {
            if let Some(g) = self.groups.get_mut(&key) {
                let mut value = g.max_ts.to_be_bytes().to_vec();
                value.extend(self.accs.encode(&mut g.accs)?);
                let mut full = self.prefix.clone();
                full.extend_from_slice(&key);
                batch.put(&full, &value);
            }
        }
        if self.groups.len() > GROUP_CACHE_LIMIT {
            self.groups.clear();
        }
        Ok(())
    }
}

/// Groups kept in memory between checkpoints before the cache is dropped.
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
}

//! Accumulator sets: the aggregates of one group (or window), built from
//! DataFusion's aggregate expressions, and their state codec.
//!
//! Each group owns one accumulator per aggregate. Rows are applied one at a
//! time (`update_batch` / `retract_batch` on 1-row slices of the
//! batch-evaluated arguments), so emission stays per record. State is
//! persisted as the accumulators' `state()` values, arrow-row encoded; a
//! fresh accumulator restores it with `merge_batch`. Session windows merge
//! two groups' states the same way.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::runtime::rows::RowCodec;

pub(crate) type Accs = Vec<Box<dyn Accumulator>>;

pub(crate) struct AccumulatorSet {
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    codec: RowCodec,
}

impl AccumulatorSet {
    pub(crate) fn try_new(aggregates: Vec<Arc<AggregateFunctionExpr>>) -> Result<Self> {
        let mut types = Vec::new();
        for a in &aggregates {
            for f in a.state_fields()? {
                types.push(f.data_type().clone());
            }
        }
        let args = aggregates.iter().map(|a| a.expressions()).collect();
        Ok(Self {
            aggregates,
            args,
            codec: RowCodec::try_new(&types)?,
        })
    }

    pub(crate) fn create(&self) -> Result<Accs> {
        self.aggregates
            .iter()
            .map(|a| a.create_accumulator().map_err(Error::from))
            .collect()
    }

    /// Evaluate every aggregate's arguments over the batch.
    pub(crate) fn arguments(&self, batch: &RecordBatch) -> Result<Vec<Vec<ArrayRef>>> {
        self.args
            .iter()
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?))
                    .collect::<Result<Vec<_>>>()
            })
            .collect()
    }

    /// Add (or, with `retract`, remove) row `row` of the arguments.
    pub(crate) fn apply(
        &self,
        accs: &mut Accs,
        args: &[Vec<ArrayRef>],
        row: usize,
        retract: bool,
    ) -> Result<()> {
        for (i, acc) in accs.iter_mut().enumerate() {
            let slice: Vec<ArrayRef> = args[i].iter().map(|a| a.slice(row, 1)).collect();
            if retract {
                if !acc.supports_retract_batch() {
                    return Err(Error::Unsupported(format!(
                        "Removing rows from the aggregate {}",
                        self.aggregates[i].fun().name().to_uppercase()
                    )));
                }
                acc.retract_batch(&slice)?;
            } else {
                acc.update_batch(&slice)?;
            }
        }
        Ok(())
    }

    pub(crate) fn evaluate(&self, accs: &mut Accs) -> Result<Vec<ScalarValue>> {
        accs.iter_mut()
            .map(|a| a.evaluate().map_err(Error::from))
            .collect()
    }

    /// The state of all accumulators as one encoded row.
    pub(crate) fn encode(&self, accs: &mut Accs) -> Result<Vec<u8>> {
        let mut cols: Vec<ArrayRef> = Vec::new();
        for a in accs.iter_mut() {
            for v in a.state()? {
                cols.push(v.to_array_of_size(1)?);
            }
        }
        let rows = self.codec.encode(&cols)?;
        Ok(rows.row(0).as_ref().to_vec())
    }

    /// Fresh accumulators restored from an encoded state.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Accs> {
        let cols = self.codec.decode([bytes])?;
        let mut accs = self.create()?;
        let mut at = 0;
        for (acc, agg) in accs.iter_mut().zip(&self.aggregates) {
            let n = agg.state_fields()?.len();
            let state = cols
                .get(at..at + n)
                .ok_or_else(|| Error::internal("stored aggregate state has too few columns"))?;
            acc.merge_batch(state)?;
            at += n;
        }
        Ok(accs)
    }

    /// Merge `from`'s state into `into` (session windows).
    pub(crate) fn merge(&self, into: &mut Accs, from: &mut Accs) -> Result<()> {
        for (a, b) in into.iter_mut().zip(from.iter_mut()) {
            let state: Vec<ArrayRef> = b
                .state()?
                .into_iter()
                .map(|v| v.to_array_of_size(1))
                .collect::<Result<_, _>>()?;
            a.merge_batch(&state)?;
        }
        Ok(())
    }
}

/// Build output columns from per-row aggregate results.
pub(crate) fn results_to_columns(
    results: Vec<Vec<ScalarValue>>,
    n_aggs: usize,
    types: &[datafusion::arrow::datatypes::DataType],
) -> Result<Vec<ArrayRef>> {
    let mut cols = Vec::with_capacity(n_aggs);
    for i in 0..n_aggs {
        let vals: Vec<ScalarValue> = results.iter().map(|r| r[i].clone()).collect();
        let arr = if vals.is_empty() {
            datafusion::arrow::array::new_empty_array(&types[i])
        } else {
            ScalarValue::iter_to_array(vals)?
        };
        let arr = if arr.data_type() != &types[i] {
            datafusion::arrow::compute::cast(&arr, &types[i])?
        } else {
            arr
        };
        cols.push(arr);
    }
    Ok(cols)
}

/// The i64 at `row` of an Int64 column (ROWTIME and window bounds).
pub(crate) fn i64_at(arr: &dyn Array, row: usize) -> Result<i64> {
    arr.as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .map(|a| if a.is_null(row) { 0 } else { a.value(row) })
        .ok_or_else(|| Error::internal("time column is not BIGINT"))
}

//! What every join operator shares: encoding input rows and join keys, and
//! assembling output batches from pairs of stored rows.
//!
//! Join operators keep rows as arrow-row bytes of their whole input row and
//! keys as arrow-row bytes of the join expressions; an output row is a pair
//! (left row or NULLs, right row or NULLs) with a time and a change op.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{JoinInput, JoinSpec};
use crate::runtime::rows::RowCodec;

/// One output row of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinRow {
    /// Encoded join key (the output's first column).
    pub key: Vec<u8>,
    pub left: Option<Vec<u8>>,
    pub right: Option<Vec<u8>>,
    pub time: i64,
    pub op: Op,
}

/// Which input a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Side {
    Right,
    Left,
}

impl Side {
    pub(crate) fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// Encoded rows of one input batch.
pub(crate) struct EncodedInput {
    /// Join key per row; None when a component is NULL (never matches).
    pub keys: Vec<Option<Vec<u8>>>,
    pub rows: Vec<Vec<u8>>,
    pub times: Vec<i64>,
}

pub(crate) struct JoinCodecs {
    left: RowCodec,
    right: RowCodec,
    key: RowCodec,
    left_null: Vec<u8>,
    right_null: Vec<u8>,
    spec: JoinSpec,
}

impl JoinCodecs {
    pub(crate) fn try_new(spec: &JoinSpec) -> Result<Self> {
        let types = |i: &JoinInput| -> Vec<DataType> {
            i.schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        };
        let left = RowCodec::try_new(&types(&spec.left))?;
        let right = RowCodec::try_new(&types(&spec.right))?;
        let key_types = spec
            .left_key
            .iter()
            .map(|e| e.data_type(&spec.left.schema))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let key = RowCodec::try_new(&key_types)?;
        let null_row = |codec: &RowCodec, input: &JoinInput| -> Result<Vec<u8>> {
            let cols: Vec<ArrayRef> = input
                .schema
                .fields()
                .iter()
                .map(|f| datafusion::arrow::array::new_null_array(f.data_type(), 1))
                .collect();
            Ok(codec.encode(&cols)?.row(0).as_ref().to_vec())
        };
        let left_null = null_row(&left, &spec.left)?;
        let right_null = null_row(&right, &spec.right)?;
        Ok(Self {
            left,
            right,
            key,
            left_null,
            right_null,
            spec: spec.clone(),
        })
    }

    /// The join's EXPLAIN line.
    pub(crate) fn display(&self) -> &str {
        &self.spec.display
    }

    fn input(&self, side: Side) -> (&RowCodec, &JoinInput, &[Arc<dyn PhysicalExpr>]) {
        match side {
            Side::Left => (&self.left, &self.spec.left, &self.spec.left_key),
            Side::Right => (&self.right, &self.spec.right, &self.spec.right_key),
        }
    }

    /// Encode a batch from `side`: join keys, whole rows and record times.
    pub(crate) fn encode(&self, side: Side, input: &Changes) -> Result<EncodedInput> {
        let (codec, meta, key_exprs) = self.input(side);
        self.encode_with(codec, meta, key_exprs, input)
    }

    /// Encode a batch from the left side with other key expressions (a
    /// foreign-key join's left primary key).
    pub(crate) fn encode_key_columns(
        &self,
        columns: &[usize],
        input: &Changes,
    ) -> Result<Vec<Vec<u8>>> {
        let types: Vec<DataType> = columns
            .iter()
            .map(|&i| input.batch.schema().field(i).data_type().clone())
            .collect();
        let codec = RowCodec::try_new(&types)?;
        let cols: Vec<ArrayRef> = columns
            .iter()
            .map(|&i| input.batch.column(i).clone())
            .collect();
        let rows = codec.encode(&cols)?;
        Ok((0..input.len())
            .map(|i| rows.row(i).as_ref().to_vec())
            .collect())
    }

    fn encode_with(
        &self,
        codec: &RowCodec,
        meta: &JoinInput,
        key_exprs: &[Arc<dyn PhysicalExpr>],
        input: &Changes,
    ) -> Result<EncodedInput> {
        let batch = &input.batch;
        let n = batch.num_rows();
        let mut key_cols = Vec::with_capacity(key_exprs.len());
        for e in key_exprs {
            key_cols.push(e.evaluate(batch)?.into_array(n)?);
        }
        // Both sides' keys are encoded with the left key types.
        let key_types = self.key_types();
        for (c, t) in key_cols.iter_mut().zip(&key_types) {
            if c.data_type() != t {
                *c = datafusion::arrow::compute::cast(c, t)?;
            }
        }
        let encoded = self.key.encode(&key_cols)?;
        let keys = (0..n)
            .map(|i| {
                if key_cols.iter().any(|c| c.is_null(i)) {
                    None
                } else {
                    Some(encoded.row(i).as_ref().to_vec())
                }
            })
            .collect();
        let rows = codec.encode(batch.columns())?;
        let times = time_column(batch.column(meta.rowtime))?;
        Ok(EncodedInput {
            keys,
            rows: (0..n).map(|i| rows.row(i).as_ref().to_vec()).collect(),
            times,
        })
    }

    fn key_types(&self) -> Vec<DataType> {
        self.spec
            .left_key
            .iter()
            .filter_map(|e| e.data_type(&self.spec.left.schema).ok())
            .collect()
    }

    /// The encoded join key of NULLs (the key of a row whose key is NULL).
    pub(crate) fn null_key(&self) -> Result<Vec<u8>> {
        let cols: Vec<ArrayRef> = self
            .key_types()
            .iter()
            .map(|t| datafusion::arrow::array::new_null_array(t, 1))
            .collect();
        Ok(self.key.encode(&cols)?.row(0).as_ref().to_vec())
    }

    /// The record time stored in an encoded row of `side`.
    pub(crate) fn row_time(&self, side: Side, row: &[u8]) -> Result<i64> {
        let (codec, meta, _) = self.input(side);
        let cols = codec.decode([row])?;
        Ok(time_column(&cols[meta.rowtime])?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// Assemble the output batch.
    pub(crate) fn build(&self, rows: Vec<JoinRow>) -> Result<Vec<Changes>> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let spec = &self.spec;
        let left = self.left.decode(
            rows.iter()
                .map(|r| r.left.as_deref().unwrap_or(&self.left_null)),
        )?;
        let right = self.right.decode(
            rows.iter()
                .map(|r| r.right.as_deref().unwrap_or(&self.right_null)),
        )?;
        let mut cols: Vec<ArrayRef> = Vec::new();
        let keys = self.key.decode(rows.iter().map(|r| r.key.as_slice()))?;
        if keys.len() < spec.key_width {
            return Err(Error::internal("join key narrower than its output"));
        }
        cols.extend(keys.into_iter().take(spec.key_width));
        cols.extend(left.iter().take(spec.left.width).cloned());
        cols.extend(right.iter().take(spec.right.width).cloned());
        cols.push(Arc::new(Int64Array::from(
            rows.iter().map(|r| r.time).collect::<Vec<_>>(),
        )));
        // Partition, offset and window of the left row when there is one.
        let from_left =
            BooleanArray::from(rows.iter().map(|r| r.left.is_some()).collect::<Vec<_>>());
        let pick =
            |l: usize, r: usize| -> Result<ArrayRef> { Ok(zip(&from_left, &left[l], &right[r])?) };
        cols.push(pick(spec.left.partition, spec.right.partition)?);
        cols.push(pick(spec.left.offset, spec.right.offset)?);
        match (spec.left.window, spec.right.window) {
            (Some((ls, le)), Some((rs, re))) => {
                cols.push(pick(ls, rs)?);
                cols.push(pick(le, re)?);
            }
            (Some((ls, le)), None) => {
                cols.push(left[ls].clone());
                cols.push(left[le].clone());
            }
            (None, Some((rs, re))) => {
                cols.push(right[rs].clone());
                cols.push(right[re].clone());
            }
            (None, None) => {
                // Placeholders a window aggregation downstream fills.
                if spec.schema.fields().len() > cols.len() {
                    let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>; rows.len()]));
                    cols.push(nulls.clone());
                    cols.push(nulls);
                }
            }
        }
        let ops = rows.iter().map(|r| r.op).collect();
        let batch = RecordBatch::try_new(spec.schema.clone(), cols)?;
        Ok(vec![Changes::new(batch, ops)])
    }
}

/// A ROWTIME column as i64 milliseconds (NULL as 0).
pub(crate) fn time_column(arr: &ArrayRef) -> Result<Vec<i64>> {
    let arr = if arr.data_type() == &DataType::Int64 {
        arr.clone()
    } else {
        datafusion::arrow::compute::cast(arr, &DataType::Int64)?
    };
    let a = arr
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::internal("record time column is not BIGINT"))?;
    Ok((0..a.len())
        .map(|i| if a.is_null(i) { 0 } else { a.value(i) })
        .collect())
}

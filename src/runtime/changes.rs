//! Change batches: an Arrow batch plus one change op per row.

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;

/// The kind of change a row is (Flink/RisingWave changelog kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// A new row (every stream row; a new key of a table).
    Insert,
    /// The key is deleted; the row holds the old value when known.
    Delete,
    /// The old value of an updated key; always followed by its UpdateAfter.
    UpdateBefore,
    /// The new value of an updated key.
    UpdateAfter,
}

impl Op {
    /// True for ops that add a row (Insert, UpdateAfter).
    pub(crate) fn is_add(self) -> bool {
        matches!(self, Op::Insert | Op::UpdateAfter)
    }
}

/// A batch of changes.
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    pub batch: RecordBatch,
    pub ops: Vec<Op>,
}

impl Changes {
    pub(crate) fn new(batch: RecordBatch, ops: Vec<Op>) -> Self {
        debug_assert_eq!(batch.num_rows(), ops.len());
        Self { batch, ops }
    }

    #[cfg(test)]
    pub(crate) fn inserts(batch: RecordBatch) -> Self {
        let ops = vec![Op::Insert; batch.num_rows()];
        Self { batch, ops }
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The rows at `indices`, in that order.
    pub(crate) fn take(&self, indices: &[u32]) -> Result<Changes> {
        let idx = UInt32Array::from(indices.to_vec());
        let cols = self
            .batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let batch = RecordBatch::try_new(self.batch.schema(), cols)?;
        let ops = indices.iter().map(|&i| self.ops[i as usize]).collect();
        Ok(Changes { batch, ops })
    }
}

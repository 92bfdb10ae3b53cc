//! `FilterProject`: keep the rows a predicate accepts, then compute the
//! projection.
//!
//! Semantics: a NULL predicate result rejects the row (SQL). On streams a
//! rejected row is dropped. On tables ([`TableMode`]): feeding a sink, a
//! rejected upsert becomes a delete of its key, as ksqlDB writes a tombstone;
//! feeding a stateful operator, changes follow exact changelog rules (an
//! update whose old row passed and new row fails is a delete of the old row,
//! one whose old row failed and new row passes is an insert).
//!
//! Expressions are evaluated on the whole batch. If the batch fails (a
//! function error on some row), each row is evaluated alone and an
//! expression that fails on a row yields NULL there, as ksqlDB does; the
//! failures are counted.
//!
//! State: none.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::{concat, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::TableMode;

pub(crate) struct FilterProject {
    predicate: Option<Arc<dyn PhysicalExpr>>,
    exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
    schema: SchemaRef,
    mode: TableMode,
    display: String,
    /// Rows on which an expression failed and yielded NULL.
    pub(crate) expression_errors: u64,
}

impl FilterProject {
    pub(crate) fn new(
        predicate: Option<Arc<dyn PhysicalExpr>>,
        exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
        schema: SchemaRef,
        mode: TableMode,
        display: String,
    ) -> Self {
        Self {
            predicate,
            exprs,
            schema,
            mode,
            display,
            expression_errors: 0,
        }
    }

    fn passes(&mut self, batch: &RecordBatch) -> Result<Vec<bool>> {
        let Some(pred) = &self.predicate else {
            return Ok(vec![true; batch.num_rows()]);
        };
        let arr = evaluate(pred, batch, &mut self.expression_errors)?;
        let b = arr
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| Error::internal("filter predicate is not BOOLEAN"))?;
        Ok((0..b.len()).map(|i| b.is_valid(i) && b.value(i)).collect())
    }

    fn project(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut cols = Vec::with_capacity(self.exprs.len());
        for ((e, _), f) in self.exprs.iter().zip(self.schema.fields()) {
            let arr = evaluate(e, batch, &mut self.expression_errors)?;
            let arr = if arr.data_type() != f.data_type() {
                datafusion::arrow::compute::cast(&arr, f.data_type())?
            } else {
                arr
            };
            cols.push(arr);
        }
        let opts = datafusion::arrow::record_batch::RecordBatchOptions::new()
            .with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &opts,
        )?)
    }
}

/// Evaluate on the batch; on failure, row by row with NULL where a row fails.
fn evaluate(e: &Arc<dyn PhysicalExpr>, batch: &RecordBatch, errors: &mut u64) -> Result<ArrayRef> {
    match e
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
    {
        Ok(a) => Ok(a),
        Err(first) => {
            let dt = e.data_type(&batch.schema())?;
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let row = batch.slice(i, 1);
                match e.evaluate(&row).and_then(|v| v.into_array(1)) {
                    Ok(a) => parts.push(a),
                    Err(err) => {
                        *errors += 1;
                        tracing::warn!(error = %err, "expression failed on a row; using NULL");
                        parts.push(ScalarValue::try_from(&dt)?.to_array_of_size(1)?);
                    }
                }
            }
            if parts.is_empty() {
                return Err(first.into());
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(concat(&refs)?)
        }
    }
}

impl Operator for FilterProject {
    fn display(&self) -> String {
        self.display.clone()
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        let pass = self.passes(&input.batch)?;
        let (rows, ops): (Vec<u32>, Vec<Op>) = match self.mode {
            // A null row (Delete) passes a projection, never a filter.
            TableMode::Stream => (0..input.len())
                .filter(|&i| pass[i] && (self.predicate.is_none() || input.ops[i] != Op::Delete))
                .map(|i| (i as u32, input.ops[i]))
                .unzip(),
            TableMode::TableToSink => (0..input.len())
                .filter(|&i| pass[i] || input.ops[i] != Op::UpdateBefore)
                .map(|i| {
                    let op = match (input.ops[i], pass[i]) {
                        (op, true) => op,
                        (_, false) => Op::Delete,
                    };
                    (i as u32, op)
                })
                .unzip(),
            TableMode::TableExact => exact_changes(&input.ops, &pass, false),
            TableMode::TableResult => exact_changes(&input.ops, &pass, true),
        };
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let selected = if rows.len() == input.len()
            && rows.iter().enumerate().all(|(i, &r)| r as usize == i)
        {
            input.batch
        } else {
            if rows.windows(2).all(|w| w[0] < w[1]) {
                let mut keep = vec![false; input.len()];
                for &r in &rows {
                    keep[r as usize] = true;
                }
                filter_record_batch(&input.batch, &BooleanArray::from(keep))?
            } else {
                input.take(&rows)?.batch
            }
        };
        let out = self.project(&selected)?;
        Ok(vec![Changes::new(out, ops)])
    }
}

/// Exact changelog filtering; UpdateBefore is always directly followed by
/// its UpdateAfter.
fn exact_changes(ops: &[Op], pass: &[bool], delete_with_new_row: bool) -> (Vec<u32>, Vec<Op>) {
    let mut rows = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        match ops[i] {
            Op::UpdateBefore if i + 1 < ops.len() && ops[i + 1] == Op::UpdateAfter => {
                match (pass[i], pass[i + 1]) {
                    (true, true) => {
                        rows.extend([i as u32, i as u32 + 1]);
                        out.extend([Op::UpdateBefore, Op::UpdateAfter]);
                    }
                    (true, false) => {
                        rows.push(if delete_with_new_row {
                            i as u32 + 1
                        } else {
                            i as u32
                        });
                        out.push(Op::Delete);
                    }
                    (false, true) => {
                        rows.push(i as u32 + 1);
                        out.push(Op::Insert);
                    }
                    (false, false) => {}
                }
                i += 2;
            }
            op => {
                if pass[i] {
                    rows.push(i as u32);
                    out.push(match op {
                        Op::UpdateBefore => Op::Delete,
                        Op::UpdateAfter => Op::Insert,
                        other => other,
                    });
                }
                i += 1;
            }
        }
    }
    (rows, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Operator as BinOp;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    fn input() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                Arc::new(Int64Array::from(vec![Some(1), Some(5), None, Some(7)])),
            ],
        )
        .unwrap()
    }

    fn op(mode: TableMode) -> FilterProject {
        let b = input();
        let s = b.schema();
        let pred = binary(col("V", &s).unwrap(), BinOp::Gt, lit(2i64), &s).unwrap();
        let doubled = binary(col("V", &s).unwrap(), BinOp::Multiply, lit(2i64), &s).unwrap();
        let out = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V2", DataType::Int64, true),
        ]));
        FilterProject::new(
            Some(pred),
            vec![(col("K", &s).unwrap(), "K".into()), (doubled, "V2".into())],
            out,
            mode,
            "FilterProject".into(),
        )
    }

    fn rows(c: &Changes) -> Vec<(String, Option<i64>, Op)> {
        let k = c
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let v = c
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        (0..c.len())
            .map(|i| {
                (
                    k.value(i).to_string(),
                    v.is_valid(i).then(|| v.value(i)),
                    c.ops[i],
                )
            })
            .collect()
    }

    #[test]
    fn stream_filter_drops_rejected_and_null_rows() {
        let mut f = op(TableMode::Stream);
        let out = f.process(Changes::inserts(input())).unwrap();
        assert_eq!(
            rows(&out[0]),
            vec![
                ("b".into(), Some(10), Op::Insert),
                ("d".into(), Some(14), Op::Insert)
            ]
        );
    }

    #[test]
    fn table_to_sink_turns_rejected_upserts_into_deletes() {
        let mut f = op(TableMode::TableToSink);
        let out = f.process(Changes::inserts(input())).unwrap();
        assert_eq!(
            rows(&out[0]),
            vec![
                ("a".into(), Some(2), Op::Delete),
                ("b".into(), Some(10), Op::Insert),
                ("c".into(), None, Op::Delete),
                ("d".into(), Some(14), Op::Insert),
            ]
        );
    }

    #[test]
    fn table_exact_follows_changelog_rules() {
        let mut f = op(TableMode::TableExact);
        // UB a(1), UA b(5): old fails, new passes -> Insert b.
        // UB d(7), UA a(1): old passes, new fails -> Delete d.
        // Delete c(NULL) never passed -> nothing; Insert d(7) passes.
        let b = input();
        let reordered = Changes::new(
            b,
            vec![Op::UpdateBefore, Op::UpdateAfter, Op::Delete, Op::Insert],
        )
        .take(&[0, 1, 3, 0, 2, 3])
        .unwrap();
        let reordered = Changes::new(
            reordered.batch,
            vec![
                Op::UpdateBefore,
                Op::UpdateAfter,
                Op::UpdateBefore,
                Op::UpdateAfter,
                Op::Delete,
                Op::Insert,
            ],
        );
        let out = f.process(reordered).unwrap();
        assert_eq!(
            rows(&out[0]),
            vec![
                ("b".into(), Some(10), Op::Insert),
                ("d".into(), Some(14), Op::Delete),
                ("d".into(), Some(14), Op::Insert),
            ]
        );
    }
}

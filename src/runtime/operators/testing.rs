//! Helpers for operator unit tests: small batches in, rows out.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::col;
use datafusion::prelude::SessionContext;

use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{
    AggregateSpec, GroupColumn, WindowConfig, ROWTIME, WINDOWEND, WINDOWSTART,
};
use crate::runtime::state::StateStore;

/// Input schema: K STRING, V BIGINT, ROWTIME BIGINT.
pub(crate) fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("K", DataType::Utf8, true),
        Field::new("V", DataType::Int64, true),
        Field::new(ROWTIME, DataType::Int64, false),
    ]))
}

/// A batch of (key, value, rowtime) with the given ops.
pub(crate) fn batch(rows: &[(&str, Option<i64>, i64)], ops: &[Op]) -> Changes {
    let b = RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    Changes::new(b, ops.to_vec())
}

pub(crate) fn inserts(rows: &[(&str, Option<i64>, i64)]) -> Changes {
    batch(rows, &vec![Op::Insert; rows.len()])
}

/// `GROUP BY K` with `COUNT(V)` and `SUM(V)` (ksqlDB's), optionally windowed.
pub(crate) fn count_sum_spec(window: Option<WindowConfig>) -> AggregateSpec {
    let ctx = SessionContext::new();
    crate::functions::register_all(&ctx).unwrap();
    let schema = input_schema();
    let v = col("V", &schema).unwrap();
    let agg = |name: &str| {
        let udf = ctx
            .state()
            .aggregate_functions()
            .get(name)
            .cloned()
            .unwrap();
        Arc::new(
            AggregateExprBuilder::new(udf, vec![v.clone()])
                .schema(schema.clone())
                .alias(name)
                .build()
                .unwrap(),
        )
    };
    let mut fields = vec![Field::new("K", DataType::Utf8, true)];
    let mut group_columns = vec![GroupColumn::Expr(0)];
    if window.is_some() {
        fields.push(Field::new(WINDOWSTART, DataType::Int64, true));
        fields.push(Field::new(WINDOWEND, DataType::Int64, true));
        group_columns.extend([GroupColumn::WindowStart, GroupColumn::WindowEnd]);
    }
    fields.push(Field::new("count", DataType::Int64, true));
    fields.push(Field::new("sum", DataType::Int64, true));
    fields.push(Field::new(ROWTIME, DataType::Int64, false));
    AggregateSpec {
        group_exprs: vec![col("K", &schema).unwrap()],
        group_columns,
        aggregates: vec![agg("count"), agg("sum")],
        window,
        table_input: false,
        schema: Arc::new(Schema::new(fields)),
        display: "test".into(),
    }
}

pub(crate) fn store() -> (StateStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (StateStore::open(dir.path()).unwrap(), dir)
}

/// Every row as text cells, with its op.
pub(crate) fn dump(out: &[Changes]) -> Vec<(Vec<String>, Op)> {
    let mut rows = Vec::new();
    for c in out {
        for i in 0..c.len() {
            let cells = c
                .batch
                .columns()
                .iter()
                .map(|a: &ArrayRef| cell(a.as_ref(), i))
                .collect();
            rows.push((cells, c.ops[i]));
        }
    }
    rows
}

fn cell(a: &dyn Array, i: usize) -> String {
    match ScalarValue::try_from_array(a, i) {
        Ok(v) if v.is_null() => "NULL".into(),
        Ok(ScalarValue::Utf8(Some(s))) => s,
        Ok(v) => v.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// Shorthand for expected rows.
pub(crate) fn row(cells: &[&str], op: Op) -> (Vec<String>, Op) {
    (cells.iter().map(|s| s.to_string()).collect(), op)
}

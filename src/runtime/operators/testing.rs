//! Helpers for operator unit tests: small batches in, rows out.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::col;
use datafusion::prelude::SessionContext;

use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{
    AggregateSpec, GroupColumn, JoinInput, JoinKind, JoinSpec, JoinType, JoinWindow, WindowConfig,
    ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART,
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
    crate::functions::register_all(&ctx, crate::functions::ValueLimits::default()).unwrap();
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

/// `GROUP BY K` with `COUNT(V)`, `SUM(V)`, `SUM(CAST(V AS INT))`,
/// `SUM(CAST(V AS DOUBLE) / 3)`, `COUNT(1)` and `COLLECT_LIST(V)`: every
/// inline kind of aggregate and one computed by its accumulator.
pub(crate) fn mixed_spec(window: Option<WindowConfig>, table_input: bool) -> AggregateSpec {
    use datafusion::arrow::compute::CastOptions;
    use datafusion::logical_expr::Operator as BinOp;
    use datafusion::physical_expr::expressions::{binary, cast, lit, CastExpr};
    let ctx = SessionContext::new();
    crate::functions::register_all(&ctx, crate::functions::ValueLimits::default()).unwrap();
    let schema = input_schema();
    let v = col("V", &schema).unwrap();
    // Values past INT become NULL.
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let v_int = Arc::new(CastExpr::new(v.clone(), DataType::Int32, Some(safe)));
    let v_third = binary(
        cast(v.clone(), &schema, DataType::Float64).unwrap(),
        BinOp::Divide,
        lit(3.0f64),
        &schema,
    )
    .unwrap();
    let agg = |name: &str, alias: &str, arg: Arc<dyn datafusion::physical_expr::PhysicalExpr>| {
        let udf = ctx
            .state()
            .aggregate_functions()
            .get(name)
            .cloned()
            .unwrap();
        Arc::new(
            AggregateExprBuilder::new(udf, vec![arg])
                .schema(schema.clone())
                .alias(alias)
                .build()
                .unwrap(),
        )
    };
    let aggregates = vec![
        agg("count", "c", v.clone()),
        agg("sum", "s", v.clone()),
        agg("sum", "si", v_int),
        agg("sum", "sd", v_third),
        agg("count", "n", lit(1i64)),
        agg("collect_list", "l", v.clone()),
    ];
    let mut fields = vec![Field::new("K", DataType::Utf8, true)];
    let mut group_columns = vec![GroupColumn::Expr(0)];
    if window.is_some() {
        fields.push(Field::new(WINDOWSTART, DataType::Int64, true));
        fields.push(Field::new(WINDOWEND, DataType::Int64, true));
        group_columns.extend([GroupColumn::WindowStart, GroupColumn::WindowEnd]);
    }
    for a in &aggregates {
        let f = a.field();
        fields.push(Field::new(f.name(), f.data_type().clone(), true));
    }
    fields.push(Field::new(ROWTIME, DataType::Int64, false));
    AggregateSpec {
        group_exprs: vec![col("K", &schema).unwrap()],
        group_columns,
        aggregates,
        window,
        table_input,
        schema: Arc::new(Schema::new(fields)),
        display: "test".into(),
    }
}

/// `n` pseudo-random rows over a few keys (one of them NULL now and
/// then), values with NULLs and extremes, times mostly rising.
pub(crate) fn random_rows(seed: u64, n: usize) -> Vec<(Option<String>, Option<i64>, i64)> {
    let mut rng = crate::cases::Rng::new(seed);
    let mut t = 0i64;
    (0..n)
        .map(|_| {
            let key = match rng.below(9) {
                0 => None,
                k => Some(format!("k{}", k % 5)),
            };
            let v = match rng.below(12) {
                0 => None,
                1 => Some(i64::MAX - rng.below(3) as i64),
                2 => Some(i64::from(i32::MAX)),
                _ => Some(rng.below(1000) as i64 - 300),
            };
            t += rng.below(7) as i64;
            let ts = if rng.below(10) == 0 { t - 40 } else { t };
            (key, v, ts)
        })
        .collect()
}

/// A batch of rows whose key may be NULL.
pub(crate) fn batch_of(rows: &[(Option<String>, Option<i64>, i64)], ops: &[Op]) -> Changes {
    let b = RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
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

// ---- Join operators ----

/// A join input row: key, value, record time and change op.
pub(crate) type JoinIn<'a> = (Option<&'a str>, Option<i64>, i64, Op);

/// A foreign-key join's left row: key, foreign key, value, time and op.
pub(crate) type FkIn<'a> = (&'a str, Option<&'a str>, Option<i64>, i64, Op);

pub(crate) const INS: Op = Op::Insert;
pub(crate) const DEL: Op = Op::Delete;
pub(crate) const UB: Op = Op::UpdateBefore;
pub(crate) const UA: Op = Op::UpdateAfter;

/// The prefix join operators' state lives under in the tests.
pub(crate) const JOIN_PREFIX: &[u8] = b"s/q/1000/";

fn pseudo_fields() -> [Field; 3] {
    [
        Field::new(ROWTIME, DataType::Int64, false),
        Field::new(ROWPARTITION, DataType::Int32, false),
        Field::new(ROWOFFSET, DataType::Int64, false),
    ]
}

/// Left input: K STRING, V BIGINT, ROWTIME, ROWPARTITION, ROWOFFSET.
pub(crate) fn join_left_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("K", DataType::Utf8, true),
        Field::new("V", DataType::Int64, true),
    ];
    fields.extend(pseudo_fields());
    Arc::new(Schema::new(fields))
}

/// Right input: K STRING, W BIGINT, ROWTIME, ROWPARTITION, ROWOFFSET.
pub(crate) fn join_right_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("K", DataType::Utf8, true),
        Field::new("W", DataType::Int64, true),
    ];
    fields.extend(pseudo_fields());
    Arc::new(Schema::new(fields))
}

/// A foreign-key join's left input: K STRING, FK STRING, V BIGINT,
/// ROWTIME, ROWPARTITION, ROWOFFSET.
pub(crate) fn fk_left_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("K", DataType::Utf8, true),
        Field::new("FK", DataType::Utf8, true),
        Field::new("V", DataType::Int64, true),
    ];
    fields.extend(pseudo_fields());
    Arc::new(Schema::new(fields))
}

fn join_input(schema: SchemaRef) -> JoinInput {
    let width = schema.fields().len() - 3;
    JoinInput {
        schema,
        width,
        rowtime: width,
        partition: width + 1,
        offset: width + 2,
        window: None,
    }
}

/// The output schema: KEY, the left's leading columns as `L_<name>`, the
/// right's as `R_<name>`, then ROWTIME, ROWPARTITION, ROWOFFSET.
fn join_output_schema(left: &JoinInput, right: &JoinInput) -> SchemaRef {
    let mut fields = vec![Field::new("KEY", DataType::Utf8, true)];
    for (prefix, input) in [("L_", left), ("R_", right)] {
        for f in input.schema.fields().iter().take(input.width) {
            fields.push(Field::new(
                format!("{prefix}{}", f.name()),
                f.data_type().clone(),
                true,
            ));
        }
    }
    fields.push(Field::new(ROWTIME, DataType::Int64, true));
    fields.push(Field::new(ROWPARTITION, DataType::Int32, true));
    fields.push(Field::new(ROWOFFSET, DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

/// A join of the left and right test inputs on `K = K`; no window, no
/// forwarded unknown deletes (set the fields for more).
pub(crate) fn join_spec(kind: JoinKind, join_type: JoinType) -> JoinSpec {
    let (left, right) = (join_left_schema(), join_right_schema());
    let (left, right, left_key) = (
        join_input(left.clone()),
        join_input(right.clone()),
        col("K", &left).unwrap(),
    );
    JoinSpec {
        kind,
        join_type,
        left_key: vec![left_key],
        right_key: vec![col("K", &right.schema).unwrap()],
        left_primary_key: Vec::new(),
        key_width: 1,
        schema: join_output_schema(&left, &right),
        left,
        right,
        window: None,
        emit_unknown_deletes: false,
        display: format!("test {kind} {join_type} join"),
    }
}

/// A stream-stream join within `before`/`after` (and `grace`).
pub(crate) fn stream_join_spec(
    join_type: JoinType,
    before: i64,
    after: i64,
    grace: Option<i64>,
) -> JoinSpec {
    let mut spec = join_spec(JoinKind::StreamStream, join_type);
    spec.window = Some(JoinWindow {
        before,
        after,
        grace,
    });
    spec
}

/// A foreign-key join: the left test table's `FK` column references the
/// right table's `K`; the left's primary key is its `K`.
pub(crate) fn fk_join_spec(join_type: JoinType, emit_unknown_deletes: bool) -> JoinSpec {
    let (left, right) = (
        join_input(fk_left_schema()),
        join_input(join_right_schema()),
    );
    JoinSpec {
        kind: JoinKind::ForeignKey,
        join_type,
        left_key: vec![col("FK", &left.schema).unwrap()],
        right_key: vec![col("K", &right.schema).unwrap()],
        left_primary_key: vec![0],
        key_width: 1,
        schema: join_output_schema(&left, &right),
        left,
        right,
        window: None,
        emit_unknown_deletes,
        display: format!("test foreign-key {join_type} join"),
    }
}

/// A batch of a join input: the given leading columns, then the times, a
/// constant partition and offsets 0, 1, ...
fn join_batch(
    schema: SchemaRef,
    mut leading: Vec<ArrayRef>,
    times: Vec<i64>,
    partition: i32,
    ops: Vec<Op>,
) -> Changes {
    let n = times.len();
    leading.push(Arc::new(Int64Array::from(times)));
    leading.push(Arc::new(Int32Array::from(vec![partition; n])));
    leading.push(Arc::new(Int64Array::from(
        (0..n as i64).collect::<Vec<_>>(),
    )));
    Changes::new(RecordBatch::try_new(schema, leading).unwrap(), ops)
}

fn keyed_batch(schema: SchemaRef, partition: i32, rows: &[JoinIn]) -> Changes {
    join_batch(
        schema,
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ],
        rows.iter().map(|r| r.2).collect(),
        partition,
        rows.iter().map(|r| r.3).collect(),
    )
}

/// Left rows (partition 0).
pub(crate) fn left_rows(rows: &[JoinIn]) -> Changes {
    keyed_batch(join_left_schema(), 0, rows)
}

/// Right rows (partition 1).
pub(crate) fn right_rows(rows: &[JoinIn]) -> Changes {
    keyed_batch(join_right_schema(), 1, rows)
}

/// A foreign-key join's left rows (partition 0).
pub(crate) fn fk_left_rows(rows: &[FkIn]) -> Changes {
    join_batch(
        fk_left_schema(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
        rows.iter().map(|r| r.3).collect(),
        0,
        rows.iter().map(|r| r.4).collect(),
    )
}

/// Join output rows as `"<op> <key> l=<left> r=<right> @<time> p<partition>"`:
/// op `+I`, `-U`, `+U` or `-D`; a side's leading columns joined by `:`, or
/// `null` when the side is missing (all its columns NULL).
pub(crate) fn join_dump(out: Vec<Changes>) -> Vec<String> {
    let mut rows = Vec::new();
    for c in &out {
        let schema = c.batch.schema();
        let side = |prefix: &str, i: usize| -> String {
            let cells: Vec<String> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name().starts_with(prefix))
                .map(|(j, _)| cell(c.batch.column(j).as_ref(), i))
                .collect();
            if cells.iter().all(|s| s == "NULL") {
                "null".into()
            } else {
                cells.join(":").replace("NULL", "null")
            }
        };
        let named = |name: &str, i: usize| -> String {
            let j = schema.index_of(name).unwrap();
            cell(c.batch.column(j).as_ref(), i).replace("NULL", "null")
        };
        for i in 0..c.len() {
            let op = match c.ops[i] {
                Op::Insert => "+I",
                Op::UpdateBefore => "-U",
                Op::UpdateAfter => "+U",
                Op::Delete => "-D",
            };
            rows.push(format!(
                "{op} {} l={} r={} @{} p{}",
                named("KEY", i),
                side("L_", i),
                side("R_", i),
                named(ROWTIME, i),
                named(ROWPARTITION, i),
            ));
        }
    }
    rows
}

/// Expected rows, for `assert_eq!` against [`join_dump`].
pub(crate) fn lines(rows: &[&str]) -> Vec<String> {
    rows.iter().map(|s| s.to_string()).collect()
}

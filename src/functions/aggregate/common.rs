//! Helpers shared by the aggregate functions: argument validation and
//! normalisation, constant (literal) arguments, list/scalar conversion, the
//! arrival sequence used by the `*_BY_OFFSET` functions, and the test harness.
//!
//! Argument types are normalised to the ksqlDB types (`INT` Int32, `BIGINT`
//! Int64, `DOUBLE` Float64, `STRING` Utf8, ...) in `coerce_types`, and every
//! accumulator casts its input to the normalised type again, so the functions
//! behave the same whether or not DataFusion's type-coercion pass ran.

use std::cmp::Ordering;
use std::fmt::Display;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{new_empty_array, Array, ArrayRef, AsArray, ListArray, RecordBatch};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::ColumnarValue;

/// A planning error that names the function, e.g. `SUM: ...`.
pub(super) fn plan_error(func: &str, msg: impl Display) -> DataFusionError {
    DataFusionError::Plan(format!("{}: {msg}", func.to_uppercase()))
}

/// An execution error that names the function.
pub(super) fn exec_error(func: &str, msg: impl Display) -> DataFusionError {
    DataFusionError::Execution(format!("{}: {msg}", func.to_uppercase()))
}

/// Checks the argument count is within `min..=max`.
pub(super) fn check_arity(func: &str, args: &[DataType], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(plan_error(
            func,
            format!(
                "expects {expected} argument(s), got {} ({})",
                args.len(),
                type_list(args)
            ),
        ));
    }
    Ok(())
}

fn type_list(args: &[DataType]) -> String {
    args.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Normalises a numeric type to INT, BIGINT, DOUBLE or DECIMAL.
pub(super) fn numeric_type(dt: &DataType) -> Option<DataType> {
    use DataType::*;
    match dt {
        Int8 | Int16 | UInt8 | UInt16 | Int32 => Some(Int32),
        Int64 | UInt32 | UInt64 => Some(Int64),
        Float16 | Float32 | Float64 => Some(Float64),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) => Some(Decimal128(*p, *s)),
        Null => Some(Int32),
        _ => None,
    }
}

/// Normalises an integer/double type (no DECIMAL) to INT, BIGINT or DOUBLE.
pub(super) fn int_or_double_type(dt: &DataType) -> Option<DataType> {
    numeric_type(dt).filter(|t| !matches!(t, DataType::Decimal128(_, _)))
}

/// Normalises a type with a total order that ksqlDB can compare (MIN, MAX,
/// TOPK): numbers, strings, bytes, boolean, DATE, TIME, TIMESTAMP.
pub(super) fn comparable_type(dt: &DataType) -> Option<DataType> {
    use DataType::*;
    if let Some(t) = numeric_type(dt) {
        return Some(t);
    }
    match dt {
        Utf8 | LargeUtf8 | Utf8View => Some(Utf8),
        Binary | LargeBinary | BinaryView => Some(Binary),
        Boolean => Some(Boolean),
        Date32 | Date64 => Some(Date32),
        Time32(_) | Time64(_) => Some(Time32(TimeUnit::Millisecond)),
        Timestamp(_, tz) => Some(Timestamp(TimeUnit::Millisecond, tz.clone())),
        _ => None,
    }
}

/// Normalises string-family types to Utf8, leaves everything else alone.
pub(super) fn any_type(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView => Binary,
        other => other.clone(),
    }
}

/// `ksqlDB`-style name of a type for error messages.
pub(super) fn sql_name(dt: &DataType) -> String {
    use DataType::*;
    match dt {
        Int32 => "INT".into(),
        Int64 => "BIGINT".into(),
        Float64 => "DOUBLE".into(),
        Utf8 => "STRING".into(),
        Boolean => "BOOLEAN".into(),
        Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        Date32 => "DATE".into(),
        Time32(_) => "TIME".into(),
        Timestamp(_, _) => "TIMESTAMP".into(),
        Binary => "BYTES".into(),
        List(f) => format!("ARRAY<{}>", sql_name(f.data_type())),
        Map(_, _) => "MAP".into(),
        Struct(_) => "STRUCT".into(),
        other => other.to_string(),
    }
}

/// An error for an argument of the wrong type.
pub(super) fn type_error(func: &str, dt: &DataType, allowed: &str) -> DataFusionError {
    plan_error(
        func,
        format!(
            "unsupported argument type {}; expected {allowed}",
            sql_name(dt)
        ),
    )
}

/// Casts `array` to `dt` unless it already has that type.
pub(super) fn cast_to(array: &ArrayRef, dt: &DataType) -> Result<ArrayRef> {
    if array.data_type() == dt {
        Ok(Arc::clone(array))
    } else {
        Ok(cast(array, dt)?)
    }
}

/// The normalised type of argument `idx` as seen by the accumulator.
pub(super) fn arg_type(args: &AccumulatorArgs, idx: usize) -> Result<DataType> {
    args.expr_fields
        .get(idx)
        .map(|f| f.data_type().clone())
        .ok_or_else(|| {
            DataFusionError::Plan(format!("{}: missing argument {}", args.name, idx + 1))
        })
}

/// The value of argument `idx` if it is a constant (a literal, possibly cast),
/// `None` if it depends on the input row.
pub(super) fn constant_arg(args: &AccumulatorArgs, idx: usize) -> Result<Option<ScalarValue>> {
    let Some(expr) = args.exprs.get(idx) else {
        return Ok(None);
    };
    let batch = RecordBatch::new_empty(Arc::new(args.schema.clone()));
    match expr.evaluate(&batch) {
        Ok(ColumnarValue::Scalar(v)) => Ok(Some(v)),
        Ok(ColumnarValue::Array(_)) | Err(_) => Ok(None),
    }
}

/// Reads a constant integer argument (e.g. the `k` of TOPK).
pub(super) fn constant_int_arg(
    func: &str,
    args: &AccumulatorArgs,
    idx: usize,
    what: &str,
) -> Result<i64> {
    let value = constant_arg(args, idx)?
        .ok_or_else(|| plan_error(func, format!("{what} must be a constant integer")))?;
    let value = value.cast_to(&DataType::Int64).map_err(|_| {
        plan_error(
            func,
            format!("{what} must be a constant integer, got {value}"),
        )
    })?;
    match value {
        ScalarValue::Int64(Some(v)) => Ok(v),
        _ => Err(plan_error(func, format!("{what} must not be null"))),
    }
}

/// Reads a constant boolean argument (e.g. `ignoreNulls`).
pub(super) fn constant_bool_arg(
    func: &str,
    args: &AccumulatorArgs,
    idx: usize,
    what: &str,
) -> Result<bool> {
    match constant_arg(args, idx)? {
        Some(ScalarValue::Boolean(Some(b))) => Ok(b),
        Some(other) => Err(plan_error(
            func,
            format!("{what} must be a constant BOOLEAN, got {other}"),
        )),
        None => Err(plan_error(
            func,
            format!("{what} must be a constant BOOLEAN"),
        )),
    }
}

/// True for integer types (used to tell `f(col, n)` from `f(col, bool)`).
pub(super) fn is_integer(dt: &DataType) -> bool {
    dt.is_integer()
}

/// `ARRAY<elem>`: `List(Field "item" nullable)`.
pub(super) fn list_type(elem: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(elem, true)))
}

/// A state field named after the aggregate, e.g. `agg[sum]`.
pub(super) fn state_field(name: &str, part: &str, dt: DataType) -> FieldRef {
    Arc::new(Field::new(format_state_name(name, part), dt, true))
}

/// Builds an array of `dt` from scalars (an empty array if there are none).
pub(super) fn scalars_to_array(values: &[ScalarValue], dt: &DataType) -> Result<ArrayRef> {
    if values.is_empty() {
        return Ok(new_empty_array(dt));
    }
    let array = ScalarValue::iter_to_array(values.iter().cloned())?;
    cast_to(&array, dt)
}

/// A one-row `ARRAY<elem>` scalar holding `values` (never a null list).
pub(super) fn list_scalar(values: &[ScalarValue], elem: &DataType) -> Result<ScalarValue> {
    let values = scalars_to_array(values, elem)?;
    list_scalar_from_array(values)
}

/// A one-row list scalar wrapping a whole values array.
pub(super) fn list_scalar_from_array(values: ArrayRef) -> Result<ScalarValue> {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    let offsets = OffsetBuffer::from_lengths([values.len()]);
    let list = ListArray::try_new(field, offsets, values, None)?;
    Ok(ScalarValue::List(Arc::new(list)))
}

/// The elements of row `row` of a list array, `None` if the row is null.
pub(super) fn list_row(array: &ArrayRef, row: usize) -> Result<Option<ArrayRef>> {
    let list = array.as_list_opt::<i32>().ok_or_else(|| {
        DataFusionError::Internal(format!("expected a list state, got {}", array.data_type()))
    })?;
    if list.is_null(row) {
        Ok(None)
    } else {
        Ok(Some(list.value(row)))
    }
}

/// The elements of an array as scalars.
pub(super) fn array_scalars(array: &dyn Array) -> Result<Vec<ScalarValue>> {
    (0..array.len())
        .map(|i| ScalarValue::try_from_array(array, i))
        .collect()
}

/// A total order on scalars of one type (floats by `total_cmp`); values that
/// cannot be compared are treated as equal.
pub(super) fn scalar_cmp(a: &ScalarValue, b: &ScalarValue) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

/// Approximate heap size of a slice of scalars.
pub(super) fn scalars_size(values: &[ScalarValue]) -> usize {
    values.iter().map(ScalarValue::size).sum()
}

/// Reads a non-null i64 from row `row` of an Int64 array, `None` if null.
pub(super) fn i64_at(array: &ArrayRef, row: usize) -> Result<Option<i64>> {
    match ScalarValue::try_from_array(array.as_ref(), row)? {
        ScalarValue::Int64(v) => Ok(v),
        other => Err(DataFusionError::Internal(format!(
            "expected an Int64 state, got {}",
            other.data_type()
        ))),
    }
}

/// Reads an f64 from row `row` of a Float64 array (null as 0).
pub(super) fn f64_at(array: &ArrayRef, row: usize) -> Result<f64> {
    match ScalarValue::try_from_array(array.as_ref(), row)? {
        ScalarValue::Float64(v) => Ok(v.unwrap_or(0.0)),
        other => Err(DataFusionError::Internal(format!(
            "expected a Float64 state, got {}",
            other.data_type()
        ))),
    }
}

/// Checks the state arrays have the expected number of columns.
pub(super) fn check_state(func: &str, states: &[ArrayRef], n: usize) -> Result<()> {
    if states.len() != n {
        return Err(DataFusionError::Internal(format!(
            "{}: expected {n} state columns, got {}",
            func.to_uppercase(),
            states.len()
        )));
    }
    Ok(())
}

/// Checks `update_batch`/`retract_batch` got the expected number of columns.
pub(super) fn check_values(func: &str, values: &[ArrayRef], n: usize) -> Result<()> {
    if values.len() < n {
        return Err(DataFusionError::Internal(format!(
            "{}: expected {n} argument column(s), got {}",
            func.to_uppercase(),
            values.len()
        )));
    }
    Ok(())
}

/// The arrival sequence of the `*_BY_OFFSET` functions.
///
/// ksqlDB orders values by a process-global counter stored next to each value
/// in the aggregate state (Kafka offsets are not available to the UDAF). We do
/// the same, with two changes so the order survives restarts and merges:
/// the counter starts at the wall clock in nanoseconds (so values seen after a
/// restart sort after values persisted before it, as long as the process
/// handles fewer than 10^9 records per second), and restoring a state
/// (`merge_batch`) raises the counter above every sequence it contains.
pub(super) mod sequence {
    use super::*;

    static NEXT: LazyLock<AtomicI64> = LazyLock::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 2))
            .unwrap_or(0);
        AtomicI64::new(now)
    });

    /// The next sequence number (strictly increasing within the process).
    pub(in super::super) fn next() -> i64 {
        NEXT.fetch_add(1, AtomicOrdering::Relaxed)
    }

    /// Makes sure later `next()` values are greater than `seen`.
    pub(in super::super) fn observe(seen: i64) {
        NEXT.fetch_max(seen.saturating_add(1), AtomicOrdering::Relaxed);
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Drives accumulators the way the runtime does: built through
    //! `AggregateExprBuilder`, fed 1-row arrays, state round-tripped through
    //! arrays into a fresh accumulator.

    use super::*;
    use datafusion::arrow::datatypes::Schema;
    use datafusion::logical_expr::{Accumulator, AggregateUDF};
    use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
    use datafusion::physical_expr::expressions::{col, lit};
    use datafusion::physical_expr::PhysicalExpr;

    pub(crate) struct Harness {
        pub(crate) expr: AggregateFunctionExpr,
    }

    /// An argument: a column of the given type, or a literal.
    pub(crate) enum Arg {
        Col(DataType),
        Lit(ScalarValue),
    }

    impl Harness {
        pub(crate) fn try_new(udf: AggregateUDF, args: Vec<Arg>) -> Result<Self> {
            let mut fields = Vec::new();
            for (i, a) in args.iter().enumerate() {
                if let Arg::Col(dt) = a {
                    fields.push(Field::new(format!("c{i}"), dt.clone(), true));
                }
            }
            let schema = Arc::new(Schema::new(fields));
            let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
            for (i, a) in args.into_iter().enumerate() {
                exprs.push(match a {
                    Arg::Col(_) => col(&format!("c{i}"), &schema)?,
                    Arg::Lit(v) => lit(v),
                });
            }
            let expr = AggregateExprBuilder::new(Arc::new(udf), exprs)
                .schema(schema)
                .alias("agg")
                .build()?;
            Ok(Self { expr })
        }

        pub(crate) fn new(udf: AggregateUDF, args: Vec<Arg>) -> Self {
            Self::try_new(udf, args).expect("build aggregate")
        }

        pub(crate) fn acc(&self) -> Box<dyn Accumulator> {
            self.expr.create_accumulator().expect("accumulator")
        }

        /// The accumulator's state as 1-row arrays, checked against `state_fields`.
        pub(crate) fn state_arrays(&self, acc: &mut Box<dyn Accumulator>) -> Vec<ArrayRef> {
            let fields = self.expr.state_fields().expect("state fields");
            let state = acc.state().expect("state");
            assert_eq!(fields.len(), state.len(), "state arity");
            state
                .iter()
                .zip(fields.iter())
                .map(|(v, f)| {
                    let a = v.to_array().expect("state to array");
                    assert_eq!(a.data_type(), f.data_type(), "state type of {}", f.name());
                    a
                })
                .collect()
        }

        /// Persists and restores `acc` into a fresh accumulator.
        pub(crate) fn round_trip(&self, acc: &mut Box<dyn Accumulator>) -> Box<dyn Accumulator> {
            let arrays = self.state_arrays(acc);
            let mut fresh = self.acc();
            fresh.merge_batch(&arrays).expect("merge_batch");
            fresh
        }

        /// Merges the states of several accumulators (one multi-row
        /// `merge_batch` call) into a fresh accumulator.
        pub(crate) fn merged(&self, parts: &mut [Box<dyn Accumulator>]) -> Box<dyn Accumulator> {
            let per_part: Vec<Vec<ArrayRef>> =
                parts.iter_mut().map(|p| self.state_arrays(p)).collect();
            let n = per_part[0].len();
            let columns: Vec<ArrayRef> = (0..n)
                .map(|c| {
                    let cols: Vec<&dyn Array> = per_part.iter().map(|p| p[c].as_ref()).collect();
                    datafusion::arrow::compute::concat(&cols).expect("concat")
                })
                .collect();
            let mut fresh = self.acc();
            fresh.merge_batch(&columns).expect("merge_batch");
            fresh
        }
    }

    /// A 1-row array holding `v`.
    pub(crate) fn one(v: ScalarValue) -> ArrayRef {
        v.to_array().expect("to_array")
    }

    pub(crate) fn update(acc: &mut Box<dyn Accumulator>, v: ScalarValue) {
        acc.update_batch(&[one(v)]).expect("update");
    }

    pub(crate) fn update2(acc: &mut Box<dyn Accumulator>, a: ScalarValue, b: ScalarValue) {
        acc.update_batch(&[one(a), one(b)]).expect("update");
    }

    pub(crate) fn retract(acc: &mut Box<dyn Accumulator>, v: ScalarValue) {
        acc.retract_batch(&[one(v)]).expect("retract");
    }

    pub(crate) fn eval(acc: &mut Box<dyn Accumulator>) -> ScalarValue {
        acc.evaluate().expect("evaluate")
    }

    pub(crate) fn i32s(v: &[Option<i32>]) -> Vec<ScalarValue> {
        v.iter().map(|x| ScalarValue::Int32(*x)).collect()
    }

    /// An `ARRAY<elem>` scalar.
    pub(crate) fn list(values: Vec<ScalarValue>, elem: &DataType) -> ScalarValue {
        list_scalar(&values, elem).expect("list")
    }
}

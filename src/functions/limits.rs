//! Limits on the values functions build, checked before they allocate.
//!
//! A few functions build values far larger than their arguments:
//! `REPEAT('a', 2000000000)` asks for 2 GB per row, `LPAD(s, n, p)` for n
//! characters, `ARRAY_REPEAT(x, n)` for n elements. [`Bounded`] wraps such a
//! function (a ksqlDB one or a DataFusion built-in, under the same name and
//! aliases) with an estimate of the bytes each row's value takes, computed
//! from the arguments alone; a call whose value for one row would pass
//! [`ValueLimits::value_bytes`], or whose values for the whole batch would
//! pass [`ValueLimits::batch_bytes`], fails before anything is allocated
//! with DataFusion's `ResourcesExhausted` error (SQLSTATE 53200 on the
//! wire), naming the function, the size and the setting.
//!
//! The estimates are upper bounds (a character counts 4 bytes where its
//! width is not known), so a call under the limit is never refused for
//! a value that would have fitted by a wide margin, and one over it is
//! always refused. Functions whose output is at most a constant times the
//! size of their arguments (`UCASE`, `SUBSTRING`, `TO_JSON_STRING`, ...)
//! are not wrapped: their arguments were already bounded.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// How large a value functions may build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueLimits {
    /// The most bytes one value (one row's result) may take.
    pub value_bytes: u64,
    /// The most bytes the values of one call (a batch of rows) may take.
    pub batch_bytes: u64,
}

/// 64 MiB per value: far above any Kafka record (1 MB by default) and any
/// sensible string, far below what takes a server down.
pub const DEFAULT_VALUE_BYTES: u64 = 64 << 20;
/// 256 MiB per call.
pub const DEFAULT_BATCH_BYTES: u64 = 256 << 20;

impl Default for ValueLimits {
    fn default() -> Self {
        Self {
            value_bytes: DEFAULT_VALUE_BYTES,
            batch_bytes: DEFAULT_BATCH_BYTES,
        }
    }
}

/// The bytes one row's value would take, at most.
type Estimate = fn(&Args<'_>, usize) -> u128;

/// The functions that build values larger than their arguments, and their
/// estimates.
const BOUNDED: &[(&str, Estimate)] = &[
    ("repeat", |a, r| a.bytes(0, r) * a.count(1, r)),
    ("array_repeat", |a, r| a.bytes(0, r).max(1) * a.count(1, r)),
    ("array_resize", |a, r| a.bytes(2, r).max(16) * a.count(1, r)),
    ("lpad", pad),
    ("rpad", pad),
    ("concat", |a, r| (0..a.len()).map(|i| a.bytes(i, r)).sum()),
    ("concat_ws", |a, r| {
        let sep = a.bytes(0, r) * a.len() as u128;
        sep + (1..a.len()).map(|i| a.bytes(i, r)).sum::<u128>()
    }),
    ("replace", |a, r| {
        let s = a.bytes(0, r);
        let matches = s / a.bytes(1, r).max(1) + 1;
        s + matches * a.bytes(2, r)
    }),
    ("regexp_replace", |a, r| {
        // Every match (at most one per position, empty ones included) is
        // replaced; `$n` references copy matched text, at most the input.
        let s = a.bytes(0, r);
        let refs = a.text(2, r).map_or(0, |t| t.matches('$').count()) as u128;
        s * (1 + refs) + (s + 1) * a.bytes(2, r)
    }),
    ("generate_series", series),
    ("range", series),
];

/// LPAD / RPAD: `n` characters of at most 4 bytes.
fn pad(a: &Args<'_>, r: usize) -> u128 {
    a.count(1, r) * 4
}

/// GENERATE_SERIES / RANGE over integers: one 8-byte element per step
/// (other argument types, dates and timestamps, are not estimated).
fn series(a: &Args<'_>, r: usize) -> u128 {
    let (Some(start), Some(end)) = (a.int(0, r), a.int(1, r)) else {
        return 0;
    };
    let step = if a.len() > 2 {
        a.int(2, r).unwrap_or(1)
    } else {
        1
    };
    let span = (i128::from(end) - i128::from(start)).unsigned_abs();
    let step = i128::from(step).unsigned_abs().max(1);
    (span / step + 1) * 8
}

/// Wrap the value-building functions registered on `ctx` (ksqlDB's and
/// DataFusion's built-ins) with the limits.
pub(crate) fn bound(ctx: &SessionContext, limits: ValueLimits) {
    for (name, estimate) in BOUNDED {
        let Ok(inner) = ctx.udf(name) else {
            continue;
        };
        let inner = match inner.inner().downcast_ref::<Bounded>() {
            Some(b) => b.inner.clone(),
            None => inner,
        };
        let bounded = Bounded {
            name: name.to_uppercase(),
            inner,
            estimate: *estimate,
            limits,
        };
        ctx.register_udf(ScalarUDF::new_from_impl(bounded));
    }
}

/// A function whose calls are checked against the limits first.
#[derive(Debug)]
pub(crate) struct Bounded {
    name: String,
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
    limits: ValueLimits,
}

// The estimate follows from the name: equal names and limits, equal
// functions.
impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.inner == other.inner && self.limits == other.limits
    }
}
impl Eq for Bounded {}
impl std::hash::Hash for Bounded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.inner.hash(state);
        self.limits.hash(state);
    }
}

impl Bounded {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let view = Args::new(&args.args)?;
        let mut total: u128 = 0;
        for row in 0..rows {
            let bytes = (self.estimate)(&view, row);
            if bytes > u128::from(self.limits.value_bytes) {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{} would build a value of {bytes} bytes, over the limit of {} bytes per value (limits.value_bytes in the server configuration)",
                    self.name, self.limits.value_bytes
                )));
            }
            total += bytes;
        }
        if total > u128::from(self.limits.batch_bytes) {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} would build {total} bytes for {rows} rows, over the limit of {} bytes per call (limits.batch_bytes in the server configuration)",
                self.name, self.limits.batch_bytes
            )));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }
}

/// A call's arguments, read row by row for the estimates (integer columns
/// cast to BIGINT once).
pub(crate) struct Args<'a> {
    values: &'a [ColumnarValue],
    ints: Vec<Option<Int64Array>>,
    scalar_bytes: Vec<Option<u128>>,
}

impl<'a> Args<'a> {
    fn new(values: &'a [ColumnarValue]) -> Result<Self> {
        let mut ints = Vec::with_capacity(values.len());
        let mut scalar_bytes = Vec::with_capacity(values.len());
        for v in values {
            match v {
                ColumnarValue::Array(a) if a.data_type().is_integer() => {
                    ints.push(Some(
                        cast(a, &DataType::Int64)?
                            .as_primitive::<Int64Type>()
                            .clone(),
                    ));
                    scalar_bytes.push(None);
                }
                ColumnarValue::Array(_) => {
                    ints.push(None);
                    scalar_bytes.push(None);
                }
                ColumnarValue::Scalar(s) => {
                    ints.push(None);
                    scalar_bytes.push(Some(if s.is_null() {
                        0
                    } else {
                        value_bytes(&s.to_array_of_size(1)?, 0)
                    }));
                }
            }
        }
        Ok(Self {
            values,
            ints,
            scalar_bytes,
        })
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// The bytes of argument `i` in `row` (0: NULL or absent).
    fn bytes(&self, i: usize, row: usize) -> u128 {
        match (self.values.get(i), self.scalar_bytes.get(i)) {
            (_, Some(Some(b))) => *b,
            (Some(ColumnarValue::Array(a)), _) if row < a.len() => value_bytes(a, row),
            _ => 0,
        }
    }

    /// Argument `i` in `row` as an integer (None: NULL, absent or not an
    /// integer).
    fn int(&self, i: usize, row: usize) -> Option<i64> {
        match self.values.get(i)? {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(v) => v,
                _ => None,
            },
            ColumnarValue::Array(_) => {
                let a = self.ints.get(i)?.as_ref()?;
                (row < a.len() && a.is_valid(row)).then(|| a.value(row))
            }
        }
    }

    /// A count argument: negative and NULL count none.
    fn count(&self, i: usize, row: usize) -> u128 {
        self.int(i, row).map_or(0, |n| n.max(0) as u128)
    }

    /// A string argument's text.
    fn text(&self, i: usize, row: usize) -> Option<&str> {
        match self.values.get(i)? {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s),
            ) => s.as_deref(),
            ColumnarValue::Array(a) if row < a.len() && a.is_valid(row) => match a.data_type() {
                DataType::Utf8 => Some(a.as_string::<i32>().value(row)),
                DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row)),
                DataType::Utf8View => Some(a.as_string_view().value(row)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The bytes a value takes (its data, without the array's bookkeeping
/// beyond a small per-element overhead).
pub(crate) fn value_bytes(a: &ArrayRef, row: usize) -> u128 {
    if a.is_null(row) {
        return 0;
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row).len() as u128,
        DataType::LargeUtf8 => a.as_string::<i64>().value(row).len() as u128,
        DataType::Utf8View => a.as_string_view().value(row).len() as u128,
        DataType::Binary => a.as_binary::<i32>().value(row).len() as u128,
        DataType::LargeBinary => a.as_binary::<i64>().value(row).len() as u128,
        DataType::BinaryView => a.as_binary_view().value(row).len() as u128,
        DataType::Boolean => 1,
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let offsets = l.value_offsets();
            let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
            4 + (from..to).map(|j| value_bytes(l.values(), j)).sum::<u128>()
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let offsets = l.value_offsets();
            let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
            8 + (from..to).map(|j| value_bytes(l.values(), j)).sum::<u128>()
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            let offsets = m.value_offsets();
            let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
            let entries: ArrayRef = Arc::new(m.entries().clone());
            4 + (from..to).map(|j| value_bytes(&entries, j)).sum::<u128>()
        }
        DataType::Struct(_) => a
            .as_struct()
            .columns()
            .iter()
            .map(|c| value_bytes(c, row))
            .sum(),
        t => t.primitive_width().map(|w| w as u128).unwrap_or_else(|| {
            a.slice(row, 1)
                .to_data()
                .get_slice_memory_size()
                .unwrap_or(16) as u128
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::scalar::test_util::q1;

    async fn limited(sql: &str, limits: ValueLimits) -> String {
        let ctx = SessionContext::new();
        crate::functions::register_all(&ctx, limits).unwrap();
        match ctx.sql(sql).await {
            Ok(frame) => match frame.collect().await {
                Ok(b) => datafusion::arrow::util::pretty::pretty_format_batches(&b)
                    .unwrap()
                    .to_string(),
                Err(e) => format!("ERROR: {e}"),
            },
            Err(e) => format!("ERROR: {e}"),
        }
    }

    fn small() -> ValueLimits {
        ValueLimits {
            value_bytes: 100,
            batch_bytes: 250,
        }
    }

    #[tokio::test]
    async fn functions_that_build_values_fail_over_the_limit_before_allocating() {
        let err = |f: &str, bytes: u64| {
            format!("ERROR: Resources exhausted: {f} would build a value of {bytes} bytes, over the limit of 100 bytes per value (limits.value_bytes in the server configuration)")
        };
        for (sql, f, bytes) in [
            ("SELECT repeat('ab', 51)", "REPEAT", 102),
            ("SELECT lpad('a', 26, 'x')", "LPAD", 104),
            ("SELECT rpad('a', 26, 'x')", "RPAD", 104),
            (
                "SELECT array_repeat(CAST(1 AS BIGINT), 13)",
                "ARRAY_REPEAT",
                104,
            ),
            ("SELECT generate_series(1, 13)", "GENERATE_SERIES", 104),
            (
                "SELECT replace('aaaaaaaaaa', 'a', 'bbbbbbbbb')",
                "REPLACE",
                109,
            ),
        ] {
            assert_eq!(limited(sql, small()).await, err(f, bytes), "{sql}");
        }
        // 2,000,000,000 bytes are never asked for.
        assert_eq!(
            limited("SELECT repeat('a', 2000000000)", ValueLimits::default()).await,
            "ERROR: Resources exhausted: REPEAT would build a value of 2000000000 bytes, over the limit of 67108864 bytes per value (limits.value_bytes in the server configuration)"
        );
        // Under the limit, the functions answer as before.
        assert_eq!(
            limited("SELECT repeat('ab', 50) = concat(repeat('ab', 25), repeat('ab', 25)) AS same, length(lpad('a', 25, 'x')) AS n", small()).await,
            "+------+----+\n| same | n  |\n+------+----+\n| true | 25 |\n+------+----+"
        );
        assert_eq!(
            q1("SELECT repeat('ab', 3), lpad('a', 3, 'x')").await,
            "ababab|xxa"
        );
    }

    #[tokio::test]
    async fn the_values_of_one_call_are_bounded_together() {
        // 3 rows of 90 bytes: each under 100, together over 250.
        assert_eq!(
            limited(
                "SELECT repeat('a', n) FROM (VALUES (90), (90), (90)) AS t(n)",
                small()
            )
            .await,
            "ERROR: Resources exhausted: REPEAT would build 270 bytes for 3 rows, over the limit of 250 bytes per call (limits.batch_bytes in the server configuration)"
        );
        assert_eq!(
            limited(
                "SELECT length(repeat('a', n)) AS n FROM (VALUES (90), (90)) AS t(n)",
                small()
            )
            .await,
            "+----+\n| n  |\n+----+\n| 90 |\n| 90 |\n+----+"
        );
    }
}

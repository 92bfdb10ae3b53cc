//! `SUM(col)` and `SUM_LIST(array)`.
//!
//! **SUM**: INT→INT, BIGINT→BIGINT, DOUBLE→DOUBLE, DECIMAL(p,s)→DECIMAL(p,s).
//! Nulls are ignored and the initial value is 0, so SUM over no rows (or only
//! nulls) is 0, never null. INT and BIGINT overflow wraps around, as Java's
//! `int`/`long` addition does in ksqlDB. For DECIMAL, an update whose running
//! sum reaches 10^(p-s) in absolute value fails with ksqlDB's "Numeric field
//! overflow" error (an execution error; the state is left unchanged); undo and
//! merge do not check, as in ksqlDB. Supports undo (table sources).
//! State: `[sum: <result type>]`; merging adds sums.
//!
//! **SUM_LIST(ARRAY<INT|BIGINT|DOUBLE>)** sums the non-null elements of each
//! array into an INT, BIGINT or DOUBLE, with SUM's semantics otherwise
//! (null arrays ignored, wrapping integers, undo supported). Same state.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// A running sum in the result type of SUM (shared with AVG and STDDEV).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum SumValue {
    Int(i32),
    Long(i64),
    Double(f64),
    Decimal {
        value: i128,
        precision: u8,
        scale: i8,
    },
}

impl SumValue {
    /// Zero of a normalised numeric type.
    pub(super) fn zero(func: &str, dt: &DataType) -> Result<Self> {
        match dt {
            DataType::Int32 => Ok(Self::Int(0)),
            DataType::Int64 => Ok(Self::Long(0)),
            DataType::Float64 => Ok(Self::Double(0.0)),
            DataType::Decimal128(p, s) => Ok(Self::Decimal {
                value: 0,
                precision: *p,
                scale: *s,
            }),
            other => Err(type_error(func, other, "INT, BIGINT, DOUBLE or DECIMAL")),
        }
    }

    pub(super) fn data_type(&self) -> DataType {
        match self {
            Self::Int(_) => DataType::Int32,
            Self::Long(_) => DataType::Int64,
            Self::Double(_) => DataType::Float64,
            Self::Decimal {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
        }
    }

    pub(super) fn to_scalar(self) -> ScalarValue {
        match self {
            Self::Int(v) => ScalarValue::Int32(Some(v)),
            Self::Long(v) => ScalarValue::Int64(Some(v)),
            Self::Double(v) => ScalarValue::Float64(Some(v)),
            Self::Decimal {
                value,
                precision,
                scale,
            } => ScalarValue::Decimal128(Some(value), precision, scale),
        }
    }

    pub(super) fn as_f64(&self) -> f64 {
        match self {
            Self::Int(v) => f64::from(*v),
            // precision loss is inherent in the DOUBLE result
            #[allow(clippy::cast_precision_loss)]
            Self::Long(v) => *v as f64,
            Self::Double(v) => *v,
            #[allow(clippy::cast_precision_loss)]
            Self::Decimal { value, scale, .. } => *value as f64 / 10f64.powi(i32::from(*scale)),
        }
    }

    /// `self + v` (or `self - v` when `negate`); `None` if `v` is null.
    /// `v` must have this sum's type.
    pub(super) fn plus(&self, v: &ScalarValue, negate: bool) -> Result<Option<Self>> {
        let out = match (self, v) {
            (Self::Int(a), ScalarValue::Int32(Some(b))) => Self::Int(if negate {
                a.wrapping_sub(*b)
            } else {
                a.wrapping_add(*b)
            }),
            (Self::Long(a), ScalarValue::Int64(Some(b))) => Self::Long(if negate {
                a.wrapping_sub(*b)
            } else {
                a.wrapping_add(*b)
            }),
            (Self::Double(a), ScalarValue::Float64(Some(b))) => {
                Self::Double(if negate { a - b } else { a + b })
            }
            (
                Self::Decimal {
                    value,
                    precision,
                    scale,
                },
                ScalarValue::Decimal128(Some(b), _, _),
            ) => {
                let sum = if negate {
                    value.checked_sub(*b)
                } else {
                    value.checked_add(*b)
                };
                let value = sum.ok_or_else(|| {
                    DataFusionError::Execution("Numeric field overflow".to_string())
                })?;
                Self::Decimal {
                    value,
                    precision: *precision,
                    scale: *scale,
                }
            }
            (_, v) if v.is_null() => return Ok(None),
            (s, v) => {
                return Err(DataFusionError::Internal(format!(
                    "sum of {} cannot take a {} value",
                    s.data_type(),
                    v.data_type()
                )))
            }
        };
        Ok(Some(out))
    }

    /// `self + other` for two sums of the same type (no overflow check).
    pub(super) fn merge(&self, other: &Self) -> Result<Self> {
        Ok(self.plus(&other.to_scalar(), false)?.unwrap_or(*self))
    }

    /// ksqlDB's DECIMAL overflow rule: |sum| must stay below 10^(p-s).
    pub(super) fn check_decimal_overflow(&self, func: &str) -> Result<()> {
        if let Self::Decimal {
            value,
            precision,
            scale,
        } = self
        {
            let limit = 10i128
                .checked_pow(u32::from(*precision))
                .unwrap_or(i128::MAX);
            if value.unsigned_abs() >= limit.unsigned_abs() {
                return Err(exec_error(
                    func,
                    format!(
                        "Numeric field overflow: A field with precision {precision} and scale {scale} \
                         must round to an absolute value less than 10^{}. Got {}",
                        i16::from(*precision) - i16::from(*scale),
                        self.to_scalar()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads a sum from row `row` of a state column (null rows give `None`).
pub(super) fn sum_at(zero: &SumValue, array: &ArrayRef, row: usize) -> Result<Option<SumValue>> {
    let array = cast_to(array, &zero.data_type())?;
    let v = ScalarValue::try_from_array(array.as_ref(), row)?;
    // zero + stored = stored, converted to this sum's representation
    zero.plus(&v, false)
}

/// `SUM(col)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Sum {
    signature: Signature,
}

impl Sum {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn sum_type(dt: &DataType) -> Result<DataType> {
    numeric_type(dt).ok_or_else(|| type_error("sum", dt, "INT, BIGINT, DOUBLE or DECIMAL"))
}

impl AggregateUDFImpl for Sum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("sum", args, 1, 1)?;
        Ok(vec![sum_type(&args[0])?])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("sum", args, 1, 1)?;
        sum_type(&args[0])
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        ScalarValue::new_zero(data_type)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let t = sum_type(&arg_type(&args, 0)?)?;
        Ok(Box::new(SumAccumulator {
            func: "sum",
            sum: SumValue::zero("sum", &t)?,
            input_type: t,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = sum_type(args.input_fields[0].data_type())?;
        Ok(vec![state_field(args.name, "sum", t)])
    }
}

/// `SUM_LIST(array)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SumList {
    signature: Signature,
}

impl SumList {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The element type of SUM_LIST's argument (INT, BIGINT or DOUBLE).
fn sum_list_elem(dt: &DataType) -> Result<DataType> {
    let err = || type_error("sum_list", dt, "ARRAY<INT>, ARRAY<BIGINT> or ARRAY<DOUBLE>");
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            int_or_double_type(f.data_type()).ok_or_else(err)
        }
        _ => Err(err()),
    }
}

impl AggregateUDFImpl for SumList {
    fn name(&self) -> &str {
        "sum_list"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("sum_list", args, 1, 1)?;
        Ok(vec![list_type(sum_list_elem(&args[0])?)])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("sum_list", args, 1, 1)?;
        sum_list_elem(&args[0])
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        ScalarValue::new_zero(data_type)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let elem = sum_list_elem(&arg_type(&args, 0)?)?;
        Ok(Box::new(SumAccumulator {
            func: "sum_list",
            sum: SumValue::zero("sum_list", &elem)?,
            input_type: list_type(elem),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let elem = sum_list_elem(args.input_fields[0].data_type())?;
        Ok(vec![state_field(args.name, "sum", elem)])
    }
}

/// Accumulator of SUM and SUM_LIST (`input_type` is a list type for SUM_LIST).
#[derive(Debug)]
struct SumAccumulator {
    func: &'static str,
    sum: SumValue,
    input_type: DataType,
}

impl SumAccumulator {
    fn apply(&mut self, values: &[ArrayRef], negate: bool) -> Result<()> {
        check_values(self.func, values, 1)?;
        let array = cast_to(&values[0], &self.input_type)?;
        if let Some(list) = array.as_list_opt::<i32>() {
            for row in 0..list.len() {
                if list.is_valid(row) {
                    let elems = list.value(row);
                    for i in 0..elems.len() {
                        self.apply_one(&ScalarValue::try_from_array(elems.as_ref(), i)?, negate)?;
                    }
                }
            }
        } else {
            for i in 0..array.len() {
                self.apply_one(&ScalarValue::try_from_array(array.as_ref(), i)?, negate)?;
            }
        }
        Ok(())
    }

    fn apply_one(&mut self, v: &ScalarValue, negate: bool) -> Result<()> {
        if let Some(next) = self.sum.plus(v, negate)? {
            if !negate {
                next.check_decimal_overflow(self.func)?;
            }
            self.sum = next;
        }
        Ok(())
    }
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, false)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, true)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state(self.func, states, 1)?;
        for row in 0..states[0].len() {
            let zero = SumValue::zero(self.func, &self.sum.data_type())?;
            if let Some(other) = sum_at(&zero, &states[0], row)? {
                self.sum = self.sum.merge(&other)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.sum.to_scalar()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.sum.to_scalar())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::arrow::array::ListArray;
    use datafusion::arrow::datatypes::Int32Type;
    use datafusion::logical_expr::AggregateUDF;
    use std::sync::Arc;

    fn sum(dt: DataType) -> Harness {
        Harness::new(AggregateUDF::from(Sum::new()), vec![Arg::Col(dt)])
    }

    #[test]
    fn sum_int_ignores_nulls_and_starts_at_zero() {
        let h = sum(DataType::Int32);
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(0)));
        update(&mut acc, ScalarValue::Int32(Some(0)));
        update(&mut acc, ScalarValue::Int32(Some(100)));
        update(&mut acc, ScalarValue::Int32(None));
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(100)));
        retract(&mut acc, ScalarValue::Int32(Some(100)));
        retract(&mut acc, ScalarValue::Int32(None));
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(0)));
    }

    #[test]
    fn sum_int_wraps_like_java() {
        let h = sum(DataType::Int32);
        let mut acc = h.acc();
        update(&mut acc, ScalarValue::Int32(Some(i32::MAX)));
        update(&mut acc, ScalarValue::Int32(Some(1)));
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(i32::MIN)));
    }

    #[test]
    fn sum_long_and_double() {
        let h = sum(DataType::Int64);
        let mut acc = h.acc();
        update(&mut acc, ScalarValue::Int64(Some(2_147_483_648)));
        update(&mut acc, ScalarValue::Int64(Some(100)));
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(2_147_483_748)));

        let h = sum(DataType::Float64);
        let mut acc = h.acc();
        update(&mut acc, ScalarValue::Float64(Some(500.9)));
        update(&mut acc, ScalarValue::Float64(Some(300.8)));
        assert_eq!(eval(&mut acc), ScalarValue::Float64(Some(500.9 + 300.8)));
    }

    #[test]
    fn sum_small_ints_are_widened_to_int() {
        let h = sum(DataType::Int16);
        let mut acc = h.acc();
        update(&mut acc, ScalarValue::Int16(Some(7)));
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(7)));
    }

    fn dec(v: i128) -> ScalarValue {
        ScalarValue::Decimal128(Some(v), 4, 1)
    }

    #[test]
    fn sum_decimal_keeps_scale_and_overflows_like_ksqldb() {
        let h = sum(DataType::Decimal128(4, 1));
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), dec(0));
        update(&mut acc, dec(5009)); // 500.9
        update(&mut acc, dec(3008)); // 300.8
        assert_eq!(eval(&mut acc), dec(8017));
        let err = acc.update_batch(&[one(dec(4008))]).unwrap_err().to_string();
        assert!(err.contains("Numeric field overflow"), "{err}");
        // the failed update left the state alone
        assert_eq!(eval(&mut acc), dec(8017));
    }

    #[test]
    fn sum_round_trip_and_merge() {
        let h = sum(DataType::Int64);
        let mut a = h.acc();
        update(&mut a, ScalarValue::Int64(Some(2)));
        update(&mut a, ScalarValue::Int64(Some(3)));
        let mut r = h.round_trip(&mut a);
        assert_eq!(eval(&mut r), ScalarValue::Int64(Some(5)));
        retract(&mut r, ScalarValue::Int64(Some(2)));
        assert_eq!(eval(&mut r), ScalarValue::Int64(Some(3)));

        let mut b = h.acc();
        update(&mut b, ScalarValue::Int64(Some(10)));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ScalarValue::Int64(Some(15)));

        let h = sum(DataType::Decimal128(4, 1));
        let mut a = h.acc();
        update(&mut a, dec(54));
        let mut b = h.acc();
        update(&mut b, dec(1001));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), dec(1055));
    }

    #[test]
    fn sum_rejects_strings() {
        let err = Harness::try_new(
            AggregateUDF::from(Sum::new()),
            vec![Arg::Col(DataType::Utf8)],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("SUM") && err.contains("STRING"), "{err}");
    }

    fn int_list(v: Option<Vec<Option<i32>>>) -> ScalarValue {
        ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            vec![v],
        )))
    }

    #[test]
    fn sum_list_sums_elements() {
        let h = Harness::new(
            AggregateUDF::from(SumList::new()),
            vec![Arg::Col(list_type(DataType::Int32))],
        );
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(0)));
        update(&mut acc, int_list(Some(vec![Some(1), None, Some(2)])));
        update(&mut acc, int_list(None));
        update(&mut acc, int_list(Some(vec![Some(10)])));
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(13)));
        retract(&mut acc, int_list(Some(vec![Some(1), None, Some(2)])));
        assert_eq!(eval(&mut acc), ScalarValue::Int32(Some(10)));

        let mut r = h.round_trip(&mut acc);
        assert_eq!(eval(&mut r), ScalarValue::Int32(Some(10)));
        let mut b = h.acc();
        update(&mut b, int_list(Some(vec![Some(5)])));
        let mut m = h.merged(&mut [r, b]);
        assert_eq!(eval(&mut m), ScalarValue::Int32(Some(15)));
    }
}

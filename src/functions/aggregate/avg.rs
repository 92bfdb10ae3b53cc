//! `AVG(col)`: the mean of the non-null values of an INT, BIGINT or DOUBLE
//! column, as DOUBLE.
//!
//! Semantics follow ksqlDB's `AverageUdaf`: the running sum is kept in the
//! input type (INT sums wrap like Java `int`), the count as BIGINT, and the
//! result is `sum / count` in floating point, or 0.0 when no non-null value has
//! been seen. ksqlDB has no DECIMAL variant; DECIMAL arguments are rejected.
//! Supports undo (table sources).
//! State: `[sum: <input type>, count: Int64]`; merging adds both.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;
use super::sum::{sum_at, SumValue};

/// `AVG(col)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Avg {
    signature: Signature,
}

impl Avg {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn avg_input(dt: &DataType) -> Result<DataType> {
    int_or_double_type(dt).ok_or_else(|| type_error("avg", dt, "INT, BIGINT or DOUBLE"))
}

impl AggregateUDFImpl for Avg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("avg", args, 1, 1)?;
        Ok(vec![avg_input(&args[0])?])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("avg", args, 1, 1)?;
        avg_input(&args[0])?;
        Ok(DataType::Float64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(Some(0.0)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let t = avg_input(&arg_type(&args, 0)?)?;
        Ok(Box::new(AvgAccumulator {
            sum: SumValue::zero("avg", &t)?,
            count: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = avg_input(args.input_fields[0].data_type())?;
        Ok(vec![
            state_field(args.name, "sum", t),
            state_field(args.name, "count", DataType::Int64),
        ])
    }
}

#[derive(Debug)]
struct AvgAccumulator {
    sum: SumValue,
    count: i64,
}

impl AvgAccumulator {
    fn apply(&mut self, values: &[ArrayRef], negate: bool) -> Result<()> {
        check_values("avg", values, 1)?;
        let array = cast_to(&values[0], &self.sum.data_type())?;
        for i in 0..array.len() {
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            if let Some(next) = self.sum.plus(&v, negate)? {
                self.sum = next;
                self.count = if negate {
                    self.count.wrapping_sub(1)
                } else {
                    self.count.wrapping_add(1)
                };
            }
        }
        Ok(())
    }
}

impl Accumulator for AvgAccumulator {
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
        check_state("avg", states, 2)?;
        let zero = SumValue::zero("avg", &self.sum.data_type())?;
        for row in 0..states[0].len() {
            if let Some(s) = sum_at(&zero, &states[0], row)? {
                self.sum = self.sum.merge(&s)?;
            }
            if let Some(c) = i64_at(&states[1], row)? {
                self.count = self.count.wrapping_add(c);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.sum.to_scalar(),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return Ok(ScalarValue::Float64(Some(0.0)));
        }
        #[allow(clippy::cast_precision_loss)]
        let count = self.count as f64;
        Ok(ScalarValue::Float64(Some(self.sum.as_f64() / count)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;

    fn avg(dt: DataType) -> Harness {
        Harness::new(AggregateUDF::from(Avg::new()), vec![Arg::Col(dt)])
    }

    #[test]
    fn avg_of_ints_is_double() {
        let h = avg(DataType::Int32);
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ScalarValue::Float64(Some(0.0)));
        update(&mut acc, ScalarValue::Int32(Some(1)));
        update(&mut acc, ScalarValue::Int32(None));
        update(&mut acc, ScalarValue::Int32(Some(2)));
        assert_eq!(eval(&mut acc), ScalarValue::Float64(Some(1.5)));
        retract(&mut acc, ScalarValue::Int32(Some(1)));
        assert_eq!(eval(&mut acc), ScalarValue::Float64(Some(2.0)));
        retract(&mut acc, ScalarValue::Int32(Some(2)));
        assert_eq!(eval(&mut acc), ScalarValue::Float64(Some(0.0)));
    }

    #[test]
    fn avg_round_trip_and_merge() {
        let h = avg(DataType::Float64);
        let mut a = h.acc();
        update(&mut a, ScalarValue::Float64(Some(1.0)));
        update(&mut a, ScalarValue::Float64(Some(2.0)));
        let mut r = h.round_trip(&mut a);
        assert_eq!(eval(&mut r), ScalarValue::Float64(Some(1.5)));
        retract(&mut r, ScalarValue::Float64(Some(1.0)));
        assert_eq!(eval(&mut r), ScalarValue::Float64(Some(2.0)));

        let mut b = h.acc();
        update(&mut b, ScalarValue::Float64(Some(6.0)));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ScalarValue::Float64(Some(3.0)));
    }

    #[test]
    fn avg_rejects_decimal() {
        let err = Harness::try_new(
            AggregateUDF::from(Avg::new()),
            vec![Arg::Col(DataType::Decimal128(4, 1))],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("AVG") && err.contains("DECIMAL"), "{err}");
    }
}

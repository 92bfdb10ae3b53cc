//! `STDDEV_SAMP(col)` and `STDDEV_SAMPLE(col)` over INT, BIGINT or DOUBLE,
//! returning DOUBLE.
//!
//! Both follow ksqlDB's Youngs-Cramer implementation: the state keeps the sum
//! (in the input type; INT/BIGINT wrap like Java), the count and M2 (the sum of
//! squared deviations); undo removes a value with the inverse update, so both
//! support table sources. With fewer than two values the result is 0.0.
//!
//! - **STDDEV_SAMPLE** returns the sample standard deviation `sqrt(M2/(n-1))`.
//! - **STDDEV_SAMP** returns `M2/(n-1)`, the sample *variance*: ksqlDB's
//!   STDDEV_SAMP has always done so and its documentation says so ("returns
//!   the square of the standard deviation"); we keep that for compatibility.
//!
//! Merging two states uses the parallel-variance formula
//! `M2 = M2a + M2b + na*nb*(meana-meanb)^2/(na+nb)`, with the means in floating
//! point (ksqlDB's STDDEV_SAMP divides the integer sums by the counts in
//! integer arithmetic there, which loses precision; we do not copy that).
//!
//! State: `[sum: <input type>, count: Int64, m2: Float64]`.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;
use super::sum::{sum_at, SumValue};

/// `STDDEV_SAMP(col)` (variance) or `STDDEV_SAMPLE(col)` (standard deviation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stddev {
    name: &'static str,
    sqrt: bool,
    signature: Signature,
}

impl Stddev {
    pub(crate) fn samp() -> Self {
        Self {
            name: "stddev_samp",
            sqrt: false,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    pub(crate) fn sample() -> Self {
        Self {
            name: "stddev_sample",
            sqrt: true,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn input(&self, dt: &DataType) -> Result<DataType> {
        int_or_double_type(dt).ok_or_else(|| type_error(self.name, dt, "INT, BIGINT or DOUBLE"))
    }
}

impl AggregateUDFImpl for Stddev {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name, args, 1, 1)?;
        Ok(vec![self.input(&args[0])?])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity(self.name, args, 1, 1)?;
        self.input(&args[0])?;
        Ok(DataType::Float64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(Some(0.0)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let t = self.input(&arg_type(&args, 0)?)?;
        Ok(Box::new(StddevAccumulator {
            name: self.name,
            sqrt: self.sqrt,
            sum: SumValue::zero(self.name, &t)?,
            count: 0,
            m2: 0.0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = self.input(args.input_fields[0].data_type())?;
        Ok(vec![
            state_field(args.name, "sum", t),
            state_field(args.name, "count", DataType::Int64),
            state_field(args.name, "m2", DataType::Float64),
        ])
    }
}

#[derive(Debug)]
struct StddevAccumulator {
    name: &'static str,
    sqrt: bool,
    sum: SumValue,
    count: i64,
    m2: f64,
}

#[allow(clippy::cast_precision_loss)]
fn f(v: i64) -> f64 {
    v as f64
}

impl StddevAccumulator {
    /// ksqlDB's `createDelta`: `v*(count+1) - (sum+v)`, computed in the input
    /// type's arithmetic as Java does.
    fn delta(&self, v: &ScalarValue) -> Option<f64> {
        let n1 = self.count.wrapping_add(1);
        match (&self.sum, v) {
            (SumValue::Int(s), ScalarValue::Int32(Some(v))) => Some(f(i64::from(*v)
                .wrapping_mul(n1)
                .wrapping_sub(i64::from(s.wrapping_add(*v))))),
            (SumValue::Long(s), ScalarValue::Int64(Some(v))) => {
                Some(f(v.wrapping_mul(n1).wrapping_sub(s.wrapping_add(*v))))
            }
            (SumValue::Double(s), ScalarValue::Float64(Some(v))) => Some(v * f(n1) - (s + v)),
            _ => None,
        }
    }

    fn apply(&mut self, values: &[ArrayRef], undo: bool) -> Result<()> {
        check_values(self.name, values, 1)?;
        let array = cast_to(&values[0], &self.sum.data_type())?;
        for i in 0..array.len() {
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            let Some(delta) = self.delta(&v) else {
                continue;
            };
            let Some(sum) = self.sum.plus(&v, undo)? else {
                continue;
            };
            if undo {
                let n = self.count.wrapping_sub(1);
                let term = if n > 0 {
                    delta * delta / (f(n) * f(n.wrapping_add(1)))
                } else {
                    0.0
                };
                self.count = n;
                self.m2 -= term;
            } else {
                let n = self.count.wrapping_add(1);
                let term = if n > 1 {
                    delta * delta / (f(n) * f(n - 1))
                } else {
                    0.0
                };
                self.count = n;
                self.m2 += term;
            }
            self.sum = sum;
        }
        Ok(())
    }
}

impl Accumulator for StddevAccumulator {
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
        check_state(self.name, states, 3)?;
        let zero = SumValue::zero(self.name, &self.sum.data_type())?;
        for row in 0..states[0].len() {
            let other_sum = sum_at(&zero, &states[0], row)?.unwrap_or(zero);
            let other_count = i64_at(&states[1], row)?.unwrap_or(0);
            let other_m2 = f64_at(&states[2], row)?;
            let m2 = if self.count == 0 || other_count == 0 {
                self.m2 + other_m2
            } else {
                let inner = self.sum.as_f64() / f(self.count) - other_sum.as_f64() / f(other_count);
                let total = self.count.wrapping_add(other_count);
                self.m2 + other_m2 + f(self.count) * f(other_count) * inner * inner / f(total)
            };
            self.sum = self.sum.merge(&other_sum)?;
            self.count = self.count.wrapping_add(other_count);
            self.m2 = m2;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.sum.to_scalar(),
            ScalarValue::Int64(Some(self.count)),
            ScalarValue::Float64(Some(self.m2)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count < 2 {
            return Ok(ScalarValue::Float64(Some(0.0)));
        }
        let variance = self.m2 / f(self.count - 1);
        Ok(ScalarValue::Float64(Some(if self.sqrt {
            variance.sqrt()
        } else {
            variance
        })))
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

    fn value(acc: &mut Box<dyn Accumulator>) -> f64 {
        match eval(acc) {
            ScalarValue::Float64(Some(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn stddev_sample_and_samp() {
        // values 2, 4, 4, 4, 5, 5, 7, 9: sample variance 32/7
        let data = [2, 4, 4, 4, 5, 5, 7, 9];
        let sample = Harness::new(
            AggregateUDF::from(Stddev::sample()),
            vec![Arg::Col(DataType::Int64)],
        );
        let samp = Harness::new(
            AggregateUDF::from(Stddev::samp()),
            vec![Arg::Col(DataType::Int64)],
        );
        let mut a = sample.acc();
        let mut b = samp.acc();
        assert_eq!(value(&mut a), 0.0);
        update(&mut a, ScalarValue::Int64(Some(3)));
        assert_eq!(value(&mut a), 0.0);
        retract(&mut a, ScalarValue::Int64(Some(3)));
        for v in data {
            update(&mut a, ScalarValue::Int64(Some(v)));
            update(&mut b, ScalarValue::Int64(Some(v)));
        }
        update(&mut a, ScalarValue::Int64(None));
        close(value(&mut a), (32.0f64 / 7.0).sqrt());
        close(value(&mut b), 32.0 / 7.0);
    }

    #[test]
    fn stddev_undo() {
        let h = Harness::new(
            AggregateUDF::from(Stddev::sample()),
            vec![Arg::Col(DataType::Float64)],
        );
        let mut acc = h.acc();
        for v in [1.0, 2.0, 3.0, 10.0] {
            update(&mut acc, ScalarValue::Float64(Some(v)));
        }
        retract(&mut acc, ScalarValue::Float64(Some(10.0)));
        close(value(&mut acc), 1.0);
    }

    #[test]
    fn stddev_round_trip_and_merge() {
        let h = Harness::new(
            AggregateUDF::from(Stddev::sample()),
            vec![Arg::Col(DataType::Int32)],
        );
        let mut a = h.acc();
        for v in [2, 4, 4, 4] {
            update(&mut a, ScalarValue::Int32(Some(v)));
        }
        let mut b = h.acc();
        for v in [5, 5, 7, 9] {
            update(&mut b, ScalarValue::Int32(Some(v)));
        }
        let mut m = h.merged(&mut [a, b]);
        close(value(&mut m), (32.0f64 / 7.0).sqrt());
        let mut r = h.round_trip(&mut m);
        close(value(&mut r), (32.0f64 / 7.0).sqrt());
        retract(&mut r, ScalarValue::Int32(Some(9)));
        // 2,4,4,4,5,5,7: sum 31, sum of squares 151, M2 = 151 - 961/7 = 96/7
        close(value(&mut r), (16.0f64 / 7.0).sqrt());
    }
}

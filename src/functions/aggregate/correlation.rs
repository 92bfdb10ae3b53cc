//! `CORRELATION(x, y)`: the Pearson correlation coefficient of two numeric
//! columns (INT, BIGINT or DOUBLE; ksqlDB requires both of the same type, we
//! accept any two), as DOUBLE.
//!
//! Rows where either value is null are ignored. Single-pass formula, as
//! ksqlDB: `(n*Σxy - ΣxΣy) / sqrt((n*Σx² - (Σx)²) * (n*Σy² - (Σy)²))`, so the
//! result is NaN with fewer than two rows or when a column is constant.
//! Supports undo (table sources). Merging adds the sums.
//!
//! State: `[x_sum, y_sum, x_squared_sum, y_squared_sum, xy_sum: Float64,
//! count: Int64]`.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// `CORRELATION(x, y)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Correlation {
    signature: Signature,
}

impl Correlation {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn check(args: &[DataType]) -> Result<Vec<DataType>> {
    check_arity("correlation", args, 2, 2)?;
    args.iter()
        .map(|t| {
            int_or_double_type(t)
                .ok_or_else(|| type_error("correlation", t, "INT, BIGINT or DOUBLE"))
        })
        .collect()
}

impl AggregateUDFImpl for Correlation {
    fn name(&self) -> &str {
        "correlation"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check(args)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check(args)?;
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        check(&[arg_type(&args, 0)?, arg_type(&args, 1)?])?;
        Ok(Box::new(CorrelationAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields: Vec<FieldRef> =
            ["x_sum", "y_sum", "x_squared_sum", "y_squared_sum", "xy_sum"]
                .iter()
                .map(|n| state_field(args.name, n, DataType::Float64))
                .collect();
        fields.push(state_field(args.name, "count", DataType::Int64));
        Ok(fields)
    }
}

#[derive(Debug, Default)]
struct CorrelationAccumulator {
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
    count: i64,
}

impl CorrelationAccumulator {
    fn apply(&mut self, values: &[ArrayRef], sign: f64) -> Result<()> {
        check_values("correlation", values, 2)?;
        let xs = cast_to(&values[0], &DataType::Float64)?;
        let ys = cast_to(&values[1], &DataType::Float64)?;
        let (xs, ys) = (
            xs.as_primitive::<Float64Type>(),
            ys.as_primitive::<Float64Type>(),
        );
        for i in 0..xs.len().min(ys.len()) {
            if xs.is_null(i) || ys.is_null(i) {
                continue;
            }
            let (x, y) = (xs.value(i), ys.value(i));
            self.x += sign * x;
            self.y += sign * y;
            self.xx += sign * x * x;
            self.yy += sign * y * y;
            self.xy += sign * x * y;
            self.count = if sign > 0.0 {
                self.count.wrapping_add(1)
            } else {
                self.count.wrapping_sub(1)
            };
        }
        Ok(())
    }
}

impl Accumulator for CorrelationAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, 1.0)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, -1.0)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state("correlation", states, 6)?;
        for row in 0..states[0].len() {
            self.x += f64_at(&states[0], row)?;
            self.y += f64_at(&states[1], row)?;
            self.xx += f64_at(&states[2], row)?;
            self.yy += f64_at(&states[3], row)?;
            self.xy += f64_at(&states[4], row)?;
            self.count = self
                .count
                .wrapping_add(i64_at(&states[5], row)?.unwrap_or(0));
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.x)),
            ScalarValue::Float64(Some(self.y)),
            ScalarValue::Float64(Some(self.xx)),
            ScalarValue::Float64(Some(self.yy)),
            ScalarValue::Float64(Some(self.xy)),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        #[allow(clippy::cast_precision_loss)]
        let n = self.count as f64;
        let numerator = n * self.xy - self.x * self.y;
        let dx = n * self.xx - self.x * self.x;
        let dy = n * self.yy - self.y * self.y;
        Ok(ScalarValue::Float64(Some(numerator / (dx * dy).sqrt())))
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

    fn h() -> Harness {
        Harness::new(
            AggregateUDF::from(Correlation::new()),
            vec![Arg::Col(DataType::Int32), Arg::Col(DataType::Int32)],
        )
    }

    fn value(acc: &mut Box<dyn Accumulator>) -> f64 {
        match eval(acc) {
            ScalarValue::Float64(Some(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    fn add(acc: &mut Box<dyn Accumulator>, x: Option<i32>, y: Option<i32>) {
        update2(acc, ScalarValue::Int32(x), ScalarValue::Int32(y));
    }

    #[test]
    fn correlation_basics() {
        let h = h();
        let mut acc = h.acc();
        assert!(value(&mut acc).is_nan());
        add(&mut acc, Some(1), Some(2));
        assert!(value(&mut acc).is_nan());
        add(&mut acc, Some(2), Some(0));
        assert_eq!(value(&mut acc), -1.0);
        add(&mut acc, None, Some(5));
        add(&mut acc, Some(3), Some(4));
        // x 1,2,3; y 2,0,4: n=3, Σxy=2+0+12=14, Σx=6, Σy=6, Σx²=14, Σy²=20
        // (42-36)/sqrt((42-36)*(60-36)) = 6/12 = 0.5
        assert_eq!(value(&mut acc), 0.5);
        acc.retract_batch(&[
            one(ScalarValue::Int32(Some(3))),
            one(ScalarValue::Int32(Some(4))),
        ])
        .unwrap();
        assert_eq!(value(&mut acc), -1.0);
    }

    #[test]
    fn correlation_round_trip_and_merge() {
        let h = h();
        let mut a = h.acc();
        add(&mut a, Some(1), Some(2));
        add(&mut a, Some(2), Some(0));
        let mut b = h.acc();
        add(&mut b, Some(3), Some(4));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(value(&mut m), 0.5);
        let mut r = h.round_trip(&mut m);
        assert_eq!(value(&mut r), 0.5);
    }
}

//! `MIN(col)` and `MAX(col)`.
//!
//! The smallest / largest non-null value of INT, BIGINT, DOUBLE, DECIMAL,
//! STRING, BYTES, DATE, TIME or TIMESTAMP (and BOOLEAN); the result has the
//! argument's type and is null until a non-null value arrives. DOUBLEs are
//! ordered by `total_cmp` (NaN above every number, as Java's
//! `Double.compareTo`). Stream sources only: ksqlDB's MIN/MAX are not
//! `TableUdaf`s (no undo).
//! State: `[value: T]` (null when empty); merging keeps the better value.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use std::cmp::Ordering;

use super::common::*;

const ALLOWED: &str =
    "INT, BIGINT, DOUBLE, DECIMAL, STRING, BYTES, BOOLEAN, DATE, TIME or TIMESTAMP";

/// `MIN(col)` or `MAX(col)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MinMax {
    name: &'static str,
    /// The ordering a new value must have against the current one to replace it.
    wins: Ordering,
    signature: Signature,
}

impl MinMax {
    pub(crate) fn min() -> Self {
        Self {
            name: "min",
            wins: Ordering::Less,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    pub(crate) fn max() -> Self {
        Self {
            name: "max",
            wins: Ordering::Greater,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn input(&self, dt: &DataType) -> Result<DataType> {
        comparable_type(dt).ok_or_else(|| type_error(self.name, dt, ALLOWED))
    }
}

impl AggregateUDFImpl for MinMax {
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
        self.input(&args[0])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let t = self.input(&arg_type(&args, 0)?)?;
        Ok(Box::new(MinMaxAccumulator {
            name: self.name,
            wins: self.wins,
            value: ScalarValue::try_new_null(&t)?,
            input_type: t,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = self.input(args.input_fields[0].data_type())?;
        Ok(vec![state_field(args.name, "value", t)])
    }
}

#[derive(Debug)]
struct MinMaxAccumulator {
    name: &'static str,
    wins: Ordering,
    input_type: DataType,
    value: ScalarValue,
}

impl MinMaxAccumulator {
    fn offer_all(&mut self, array: &ArrayRef) -> Result<()> {
        let array = cast_to(array, &self.input_type)?;
        for i in 0..array.len() {
            if array.is_null(i) {
                continue;
            }
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            if self.value.is_null() || scalar_cmp(&v, &self.value) == self.wins {
                self.value = v;
            }
        }
        Ok(())
    }
}

impl Accumulator for MinMaxAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        check_values(self.name, values, 1)?;
        self.offer_all(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state(self.name, states, 1)?;
        self.offer_all(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size()
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::logical_expr::AggregateUDF;

    #[test]
    fn max_ignores_nulls() {
        let h = Harness::new(
            AggregateUDF::from(MinMax::max()),
            vec![Arg::Col(DataType::Int64)],
        );
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ScalarValue::Int64(None));
        update(&mut acc, ScalarValue::Int64(Some(3)));
        update(&mut acc, ScalarValue::Int64(None));
        update(&mut acc, ScalarValue::Int64(Some(7)));
        update(&mut acc, ScalarValue::Int64(Some(5)));
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(7)));
        assert!(!acc.supports_retract_batch());
    }

    #[test]
    fn min_of_strings_and_timestamps() {
        let h = Harness::new(
            AggregateUDF::from(MinMax::min()),
            vec![Arg::Col(DataType::Utf8)],
        );
        let mut acc = h.acc();
        for v in ["b", "a", "c"] {
            update(&mut acc, ScalarValue::from(v));
        }
        assert_eq!(eval(&mut acc), ScalarValue::from("a"));

        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let h = Harness::new(AggregateUDF::from(MinMax::min()), vec![Arg::Col(ts)]);
        let mut acc = h.acc();
        update(&mut acc, ScalarValue::TimestampMillisecond(Some(20), None));
        update(&mut acc, ScalarValue::TimestampMillisecond(Some(10), None));
        assert_eq!(
            eval(&mut acc),
            ScalarValue::TimestampMillisecond(Some(10), None)
        );
    }

    #[test]
    fn min_max_round_trip_and_merge() {
        let h = Harness::new(
            AggregateUDF::from(MinMax::min()),
            vec![Arg::Col(DataType::Float64)],
        );
        let mut a = h.acc();
        update(&mut a, ScalarValue::Float64(Some(2.5)));
        let mut r = h.round_trip(&mut a);
        assert_eq!(eval(&mut r), ScalarValue::Float64(Some(2.5)));
        update(&mut r, ScalarValue::Float64(Some(3.0)));
        assert_eq!(eval(&mut r), ScalarValue::Float64(Some(2.5)));

        let mut b = h.acc();
        update(&mut b, ScalarValue::Float64(Some(-1.0)));
        let empty = h.acc();
        let mut m = h.merged(&mut [a, b, empty]);
        assert_eq!(eval(&mut m), ScalarValue::Float64(Some(-1.0)));

        // an empty state restores to an empty accumulator
        let mut e = h.acc();
        let mut r = h.round_trip(&mut e);
        assert_eq!(eval(&mut r), ScalarValue::Float64(None));
    }

    #[test]
    fn max_rejects_arrays() {
        let err = Harness::try_new(
            AggregateUDF::from(MinMax::max()),
            vec![Arg::Col(list_type(DataType::Int32))],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("MAX") && err.contains("ARRAY<INT>"), "{err}");
    }
}

//! `COUNT(col)` and `COUNT_DISTINCT(col)`.
//!
//! **COUNT** counts the non-null values of its argument and returns BIGINT; on
//! no rows it is 0. `COUNT(*)` and `COUNT()` must be planned as `COUNT(1)` (the
//! accumulator needs a column to know how many rows arrived). Supports undo
//! (table sources): retracting a non-null value decrements the count.
//! State: `[count: Int64]`; merging adds counts.
//!
//! **COUNT_DISTINCT** returns the number of distinct non-null values (BIGINT).
//! ksqlDB estimates it with HyperLogLog (standard error < 1%); we count
//! exactly, keeping every distinct value in the state, which gives the same
//! answers as ksqlDB on small inputs but grows with the number of distinct
//! values. Stream sources only (no undo, as in ksqlDB).
//! State: `[values: ARRAY<T>]` (the distinct values); merging takes the union.

use std::collections::HashSet;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// `COUNT(col)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Count {
    signature: Signature,
}

impl Count {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Count {
    fn name(&self) -> &str {
        "count"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.is_empty() {
            return Err(plan_error(
                "count",
                "COUNT() and COUNT(*) must be planned as COUNT(1)",
            ));
        }
        check_arity("count", args, 1, 1)?;
        Ok(args.to_vec())
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("count", args, 1, 1)?;
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountAccumulator { count: 0 }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![state_field(args.name, "count", DataType::Int64)])
    }
}

#[derive(Debug)]
struct CountAccumulator {
    count: i64,
}

fn non_null(values: &[ArrayRef]) -> Result<i64> {
    check_values("count", values, 1)?;
    let a = &values[0];
    Ok(i64::try_from(a.len() - a.logical_null_count()).unwrap_or(i64::MAX))
}

impl Accumulator for CountAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count = self.count.wrapping_add(non_null(values)?);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count = self.count.wrapping_sub(non_null(values)?);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state("count", states, 1)?;
        let counts = cast_to(&states[0], &DataType::Int64)?;
        for v in counts.as_primitive::<Int64Type>().iter().flatten() {
            self.count = self.count.wrapping_add(v);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.count))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.count)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// `COUNT_DISTINCT(col)` (exact).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CountDistinct {
    signature: Signature,
}

impl CountDistinct {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for CountDistinct {
    fn name(&self) -> &str {
        "count_distinct"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("count_distinct", args, 1, 1)?;
        Ok(vec![any_type(&args[0])])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("count_distinct", args, 1, 1)?;
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountDistinctAccumulator {
            input_type: any_type(&arg_type(&args, 0)?),
            values: HashSet::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = any_type(args.input_fields[0].data_type());
        Ok(vec![state_field(args.name, "values", list_type(t))])
    }
}

#[derive(Debug)]
struct CountDistinctAccumulator {
    input_type: DataType,
    values: HashSet<ScalarValue>,
}

impl CountDistinctAccumulator {
    fn add_all(&mut self, array: &ArrayRef) -> Result<()> {
        let array = cast_to(array, &self.input_type)?;
        for i in 0..array.len() {
            if array.is_valid(i) {
                self.values
                    .insert(ScalarValue::try_from_array(array.as_ref(), i)?);
            }
        }
        Ok(())
    }
}

impl Accumulator for CountDistinctAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        check_values("count_distinct", values, 1)?;
        self.add_all(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state("count_distinct", states, 1)?;
        for row in 0..states[0].len() {
            if let Some(values) = list_row(&states[0], row)? {
                self.add_all(&values)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.values.iter().cloned().collect();
        Ok(vec![list_scalar(&values, &self.input_type)?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(
            i64::try_from(self.values.len()).unwrap_or(i64::MAX),
        )))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.iter().map(ScalarValue::size).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;
    use std::sync::Arc;

    fn count() -> Harness {
        Harness::new(
            AggregateUDF::from(Count::new()),
            vec![Arg::Col(DataType::Utf8)],
        )
    }

    #[test]
    fn count_non_null_values() {
        let h = count();
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(0)));
        update(&mut acc, ScalarValue::from("a"));
        update(&mut acc, ScalarValue::Utf8(None));
        update(&mut acc, ScalarValue::from("b"));
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(2)));
        // evaluate does not change the state
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(2)));
    }

    #[test]
    fn count_multi_row_batch_and_retract() {
        let h = count();
        let mut acc = h.acc();
        let batch: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![
            Some("a"),
            None,
            Some("c"),
        ]));
        acc.update_batch(&[batch]).unwrap();
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(2)));
        assert!(acc.supports_retract_batch());
        retract(&mut acc, ScalarValue::from("a"));
        retract(&mut acc, ScalarValue::Utf8(None));
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(1)));
    }

    #[test]
    fn count_literal_one_counts_rows() {
        let h = Harness::new(
            AggregateUDF::from(Count::new()),
            vec![Arg::Lit(ScalarValue::Int64(Some(1)))],
        );
        let mut acc = h.acc();
        update(&mut acc, ScalarValue::Int64(Some(1)));
        update(&mut acc, ScalarValue::Int64(Some(1)));
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(2)));
    }

    #[test]
    fn count_round_trip_and_merge() {
        let h = count();
        let mut a = h.acc();
        update(&mut a, ScalarValue::from("a"));
        update(&mut a, ScalarValue::from("b"));
        let mut restored = h.round_trip(&mut a);
        assert_eq!(eval(&mut restored), ScalarValue::Int64(Some(2)));
        retract(&mut restored, ScalarValue::from("a"));
        assert_eq!(eval(&mut restored), ScalarValue::Int64(Some(1)));

        let mut b = h.acc();
        for _ in 0..3 {
            update(&mut b, ScalarValue::from("x"));
        }
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ScalarValue::Int64(Some(5)));
    }

    #[test]
    fn count_without_args_is_a_plan_error() {
        let udf = Count::new();
        let err = udf.coerce_types(&[]).unwrap_err().to_string();
        assert!(err.contains("COUNT"), "{err}");
    }

    fn count_distinct() -> Harness {
        Harness::new(
            AggregateUDF::from(CountDistinct::new()),
            vec![Arg::Col(DataType::Utf8)],
        )
    }

    #[test]
    fn count_distinct_ignores_nulls_and_duplicates() {
        let h = count_distinct();
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(0)));
        for v in ["one", "two", "one", "two"] {
            update(&mut acc, ScalarValue::from(v));
        }
        update(&mut acc, ScalarValue::Utf8(None));
        assert_eq!(eval(&mut acc), ScalarValue::Int64(Some(2)));
        assert!(!acc.supports_retract_batch());
    }

    #[test]
    fn count_distinct_round_trip_and_merge() {
        let h = count_distinct();
        let mut a = h.acc();
        update(&mut a, ScalarValue::from("one"));
        update(&mut a, ScalarValue::from("two"));
        let mut restored = h.round_trip(&mut a);
        assert_eq!(eval(&mut restored), ScalarValue::Int64(Some(2)));
        update(&mut restored, ScalarValue::from("two"));
        assert_eq!(eval(&mut restored), ScalarValue::Int64(Some(2)));

        let mut b = h.acc();
        update(&mut b, ScalarValue::from("two"));
        update(&mut b, ScalarValue::from("three"));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ScalarValue::Int64(Some(3)));
    }
}

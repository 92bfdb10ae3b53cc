//! `COLLECT_LIST(col)` and `COLLECT_SET(col)`: `ARRAY<T>` of the values of any
//! type `T`, in arrival order.
//!
//! Nulls are collected like any other value (ksqlDB does the same:
//! `[500.9, 300.8, null]`). The result never is null: before any input it is
//! an empty array. Each function has a size limit (ksqlDB's
//! `ksql.functions.collect_list.limit` / `collect_set.limit`, unlimited by
//! default) beyond which further values are silently ignored; it is set when
//! the function is built ([`CollectList::new`]).
//!
//! **COLLECT_LIST** supports undo (table sources): retracting a value removes
//! its last occurrence; a value that is not present (dropped by the limit) is
//! ignored. Merging appends the other list, up to the limit.
//! **COLLECT_SET** keeps distinct values only; stream sources only (no undo,
//! as in ksqlDB). Merging appends the other set's new values, up to the limit.
//!
//! State: `[values: ARRAY<T>]`.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// `COLLECT_LIST(col)` (`distinct` false) or `COLLECT_SET(col)` (true).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Collect {
    name: &'static str,
    distinct: bool,
    limit: usize,
    signature: Signature,
}

impl Collect {
    /// `COLLECT_LIST` keeping at most `limit` values (`None`: unlimited).
    pub(crate) fn list(limit: Option<usize>) -> Self {
        Self {
            name: "collect_list",
            distinct: false,
            limit: limit.unwrap_or(usize::MAX),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// `COLLECT_SET` keeping at most `limit` values (`None`: unlimited).
    pub(crate) fn set(limit: Option<usize>) -> Self {
        Self {
            name: "collect_set",
            distinct: true,
            limit: limit.unwrap_or(usize::MAX),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Collect {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name, args, 1, 1)?;
        Ok(vec![any_type(&args[0])])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity(self.name, args, 1, 1)?;
        Ok(list_type(any_type(&args[0])))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        match data_type {
            DataType::List(f) => list_scalar(&[], f.data_type()),
            other => ScalarValue::try_new_null(other),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CollectAccumulator {
            name: self.name,
            distinct: self.distinct,
            limit: self.limit,
            value_type: any_type(&arg_type(&args, 0)?),
            values: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = any_type(args.input_fields[0].data_type());
        Ok(vec![state_field(args.name, "values", list_type(t))])
    }
}

#[derive(Debug)]
struct CollectAccumulator {
    name: &'static str,
    distinct: bool,
    limit: usize,
    value_type: DataType,
    values: Vec<ScalarValue>,
}

impl CollectAccumulator {
    fn add_all(&mut self, array: &ArrayRef) -> Result<()> {
        let array = cast_to(array, &self.value_type)?;
        for i in 0..array.len() {
            if self.values.len() >= self.limit {
                break;
            }
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            if !(self.distinct && self.values.contains(&v)) {
                self.values.push(v);
            }
        }
        Ok(())
    }
}

impl Accumulator for CollectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        check_values(self.name, values, 1)?;
        self.add_all(&values[0])
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        check_values(self.name, values, 1)?;
        let array = cast_to(&values[0], &self.value_type)?;
        for i in 0..array.len() {
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            if let Some(pos) = self.values.iter().rposition(|x| *x == v) {
                self.values.remove(pos);
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        !self.distinct
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state(self.name, states, 1)?;
        for row in 0..states[0].len() {
            if let Some(values) = list_row(&states[0], row)? {
                self.add_all(&values)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![list_scalar(&self.values, &self.value_type)?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        list_scalar(&self.values, &self.value_type)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + scalars_size(&self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;

    fn h(udf: Collect) -> Harness {
        Harness::new(AggregateUDF::from(udf), vec![Arg::Col(DataType::Int32)])
    }

    fn ints(v: &[Option<i32>]) -> ScalarValue {
        list(i32s(v), &DataType::Int32)
    }

    fn int(v: i32) -> ScalarValue {
        ScalarValue::Int32(Some(v))
    }

    #[test]
    fn collect_list_keeps_order_and_nulls() {
        let h = h(Collect::list(None));
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ints(&[]));
        update(&mut acc, int(500));
        update(&mut acc, int(100));
        update(&mut acc, ScalarValue::Int32(None));
        update(&mut acc, int(100));
        assert_eq!(
            eval(&mut acc),
            ints(&[Some(500), Some(100), None, Some(100)])
        );
    }

    #[test]
    fn collect_list_undo_removes_last_occurrence() {
        let h = h(Collect::list(None));
        let mut acc = h.acc();
        assert!(acc.supports_retract_batch());
        for v in [1, 2, 1, 3] {
            update(&mut acc, int(v));
        }
        retract(&mut acc, int(1));
        assert_eq!(eval(&mut acc), ints(&[Some(1), Some(2), Some(3)]));
        retract(&mut acc, int(42));
        assert_eq!(eval(&mut acc), ints(&[Some(1), Some(2), Some(3)]));
        // table update: retract old, add new
        retract(&mut acc, int(2));
        update(&mut acc, int(20));
        assert_eq!(eval(&mut acc), ints(&[Some(1), Some(3), Some(20)]));
    }

    #[test]
    fn collect_list_limit() {
        let h = h(Collect::list(Some(1)));
        let mut acc = h.acc();
        update(&mut acc, int(0));
        update(&mut acc, int(100));
        assert_eq!(eval(&mut acc), ints(&[Some(0)]));
    }

    #[test]
    fn collect_list_round_trip_and_merge() {
        let h = h(Collect::list(Some(3)));
        let mut a = h.acc();
        update(&mut a, int(1));
        update(&mut a, int(2));
        let mut r = h.round_trip(&mut a);
        assert_eq!(eval(&mut r), ints(&[Some(1), Some(2)]));
        retract(&mut r, int(1));
        assert_eq!(eval(&mut r), ints(&[Some(2)]));

        let mut b = h.acc();
        update(&mut b, int(3));
        update(&mut b, int(4));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ints(&[Some(1), Some(2), Some(3)]));
    }

    #[test]
    fn collect_set_distinct_with_nulls() {
        let h = h(Collect::set(None));
        let mut acc = h.acc();
        assert!(!acc.supports_retract_batch());
        for v in [Some(5), Some(1), None, Some(1), None] {
            update(&mut acc, ScalarValue::Int32(v));
        }
        assert_eq!(eval(&mut acc), ints(&[Some(5), Some(1), None]));

        let mut b = h.acc();
        update(&mut b, int(1));
        update(&mut b, int(7));
        let mut m = h.merged(&mut [acc, b]);
        assert_eq!(eval(&mut m), ints(&[Some(5), Some(1), None, Some(7)]));
        let mut r = h.round_trip(&mut m);
        update(&mut r, int(5));
        assert_eq!(eval(&mut r), ints(&[Some(5), Some(1), None, Some(7)]));
    }

    #[test]
    fn collect_list_of_arrays() {
        let t = list_type(DataType::Int32);
        let h = Harness::new(
            AggregateUDF::from(Collect::list(None)),
            vec![Arg::Col(t.clone())],
        );
        let mut acc = h.acc();
        let v = ints(&[Some(0), Some(1)]);
        update(&mut acc, v.clone());
        update(&mut acc, ScalarValue::try_new_null(&t).unwrap());
        let mut r = h.round_trip(&mut acc);
        assert_eq!(
            eval(&mut r),
            list(vec![v, ScalarValue::try_new_null(&t).unwrap()], &t)
        );
    }
}

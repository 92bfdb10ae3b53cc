//! `ATTR(col)`: the single value of `col` in the group, or null if the group
//! holds more than one distinct value (or none).
//!
//! Meant for columns that should be constant per group (e.g. a table
//! attribute). Any type; null counts as a value. Supports undo (table
//! sources): counts per distinct value go up on update and down (not below 0)
//! on undo; the result is the only value with a positive count. Merging adds
//! counts. Same semantics as ksqlDB's `Attr`.
//!
//! State: `[values: ARRAY<T>, counts: ARRAY<INT>]` (parallel arrays).

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// `ATTR(col)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Attr {
    signature: Signature,
}

impl Attr {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Attr {
    fn name(&self) -> &str {
        "attr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("attr", args, 1, 1)?;
        Ok(vec![any_type(&args[0])])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("attr", args, 1, 1)?;
        Ok(any_type(&args[0]))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(AttrAccumulator {
            value_type: any_type(&arg_type(&args, 0)?),
            entries: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = any_type(args.input_fields[0].data_type());
        Ok(vec![
            state_field(args.name, "values", list_type(t)),
            state_field(args.name, "counts", list_type(DataType::Int32)),
        ])
    }
}

#[derive(Debug)]
struct AttrAccumulator {
    value_type: DataType,
    entries: Vec<(ScalarValue, i32)>,
}

impl AttrAccumulator {
    fn add(&mut self, v: ScalarValue, count: i32) {
        if let Some(e) = self.entries.iter_mut().find(|(x, _)| *x == v) {
            e.1 = e.1.saturating_add(count).max(0);
        } else if count > 0 {
            self.entries.push((v, count));
        }
    }

    fn apply(&mut self, values: &[ArrayRef], count: i32) -> Result<()> {
        check_values("attr", values, 1)?;
        let array = cast_to(&values[0], &self.value_type)?;
        for v in array_scalars(array.as_ref())? {
            self.add(v, count);
        }
        Ok(())
    }
}

impl Accumulator for AttrAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(values, -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state("attr", states, 2)?;
        for row in 0..states[0].len() {
            let (Some(values), Some(counts)) =
                (list_row(&states[0], row)?, list_row(&states[1], row)?)
            else {
                continue;
            };
            let values = array_scalars(cast_to(&values, &self.value_type)?.as_ref())?;
            let counts = array_scalars(counts.as_ref())?;
            for (v, c) in values.into_iter().zip(counts) {
                if let ScalarValue::Int32(Some(c)) = c {
                    self.add(v, c);
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.entries.iter().map(|(v, _)| v.clone()).collect();
        let counts: Vec<ScalarValue> = self
            .entries
            .iter()
            .map(|(_, c)| ScalarValue::Int32(Some(*c)))
            .collect();
        Ok(vec![
            list_scalar(&values, &self.value_type)?,
            list_scalar(&counts, &DataType::Int32)?,
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut live = self.entries.iter().filter(|(_, c)| *c > 0);
        match (live.next(), live.next()) {
            (Some((v, _)), None) => Ok(v.clone()),
            _ => ScalarValue::try_new_null(&self.value_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .entries
                .iter()
                .map(|(v, _)| v.size() + 4)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;

    fn s(v: &str) -> ScalarValue {
        ScalarValue::from(v)
    }

    const NULL: ScalarValue = ScalarValue::Utf8(None);

    #[test]
    fn attr_single_value_or_null() {
        let h = Harness::new(
            AggregateUDF::from(Attr::new()),
            vec![Arg::Col(DataType::Utf8)],
        );
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), NULL);
        update(&mut acc, s("a"));
        update(&mut acc, s("a"));
        assert_eq!(eval(&mut acc), s("a"));
        update(&mut acc, s("b"));
        assert_eq!(eval(&mut acc), NULL);
        retract(&mut acc, s("b"));
        assert_eq!(eval(&mut acc), s("a"));
        // undo of an unseen value does nothing
        retract(&mut acc, s("zzz"));
        assert_eq!(eval(&mut acc), s("a"));

        let mut r = h.round_trip(&mut acc);
        assert_eq!(eval(&mut r), s("a"));
        let mut b = h.acc();
        update(&mut b, s("a"));
        let mut m = h.merged(&mut [r, b]);
        assert_eq!(eval(&mut m), s("a"));
        retract(&mut m, s("a"));
        retract(&mut m, s("a"));
        assert_eq!(eval(&mut m), s("a"));
        retract(&mut m, s("a"));
        assert_eq!(eval(&mut m), NULL);
    }
}

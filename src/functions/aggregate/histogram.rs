//! `HISTOGRAM(col STRING)` → `MAP<STRING, BIGINT>`: how many times each
//! distinct string occurred.
//!
//! As in ksqlDB, at most 1000 distinct strings are counted; further new
//! strings are ignored (existing ones keep counting). Supports undo (table
//! sources): retracting decrements the count and removes the entry at zero.
//! Null inputs are ignored (ksqlDB would put a null key in the map, which no
//! format can serialise). Entries keep first-seen order. Merging adds the
//! other state's counts, adding new keys while under the limit. Before any
//! input the result is an empty map.
//!
//! State: `[keys: ARRAY<STRING>, counts: ARRAY<BIGINT>]` (parallel arrays).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, MapArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// ksqlDB's limit on distinct keys.
const LIMIT: usize = 1000;

/// `HISTOGRAM(col)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Histogram {
    signature: Signature,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn entries_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Int64, true),
    ])
}

fn entries_field() -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(entries_fields()),
        false,
    ))
}

/// `MAP<STRING, BIGINT>`.
fn map_type() -> DataType {
    DataType::Map(entries_field(), false)
}

fn check_input(dt: &DataType) -> Result<DataType> {
    match any_type(dt) {
        DataType::Utf8 => Ok(DataType::Utf8),
        DataType::Null => Ok(DataType::Utf8),
        _ => Err(type_error("histogram", dt, "STRING")),
    }
}

impl AggregateUDFImpl for Histogram {
    fn name(&self) -> &str {
        "histogram"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("histogram", args, 1, 1)?;
        Ok(vec![check_input(&args[0])?])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        check_arity("histogram", args, 1, 1)?;
        check_input(&args[0])?;
        Ok(map_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        map_scalar(&[])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        check_input(&arg_type(&args, 0)?)?;
        Ok(Box::new(HistogramAccumulator {
            entries: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(args.name, "keys", list_type(DataType::Utf8)),
            state_field(args.name, "counts", list_type(DataType::Int64)),
        ])
    }
}

/// A one-row map scalar.
fn map_scalar(entries: &[(String, i64)]) -> Result<ScalarValue> {
    let keys: ArrayRef = Arc::new(StringArray::from_iter_values(
        entries.iter().map(|(k, _)| k.as_str()),
    ));
    let values: ArrayRef = Arc::new(Int64Array::from_iter_values(
        entries.iter().map(|(_, c)| *c),
    ));
    let struct_array = StructArray::try_new(entries_fields(), vec![keys, values], None)?;
    let offsets = OffsetBuffer::from_lengths([entries.len()]);
    let map = MapArray::try_new(entries_field(), offsets, struct_array, None, false)?;
    Ok(ScalarValue::Map(Arc::new(map)))
}

#[derive(Debug)]
struct HistogramAccumulator {
    entries: Vec<(String, i64)>,
}

impl HistogramAccumulator {
    fn add(&mut self, key: &str, count: i64) {
        if let Some(e) = self.entries.iter_mut().find(|(k, _)| k == key) {
            e.1 = e.1.wrapping_add(count);
        } else if self.entries.len() < LIMIT {
            self.entries.push((key.to_string(), count));
        }
    }

    fn strings(values: &[ArrayRef]) -> Result<ArrayRef> {
        check_values("histogram", values, 1)?;
        cast_to(&values[0], &DataType::Utf8)
    }
}

impl Accumulator for HistogramAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let array = Self::strings(values)?;
        for key in array.as_string::<i32>().iter().flatten() {
            self.add(key, 1);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let array = Self::strings(values)?;
        for key in array.as_string::<i32>().iter().flatten() {
            if let Some(pos) = self.entries.iter().position(|(k, _)| k == key) {
                self.entries[pos].1 = self.entries[pos].1.saturating_sub(1);
                if self.entries[pos].1 < 1 {
                    self.entries.remove(pos);
                }
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state("histogram", states, 2)?;
        for row in 0..states[0].len() {
            let (Some(keys), Some(counts)) =
                (list_row(&states[0], row)?, list_row(&states[1], row)?)
            else {
                continue;
            };
            let keys = cast_to(&keys, &DataType::Utf8)?;
            let keys = keys.as_string::<i32>();
            for i in 0..keys.len().min(counts.len()) {
                if let (true, Some(c)) = (keys.is_valid(i), i64_at(&counts, i)?) {
                    self.add(keys.value(i), c);
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let keys: Vec<ScalarValue> = self
            .entries
            .iter()
            .map(|(k, _)| ScalarValue::from(k.as_str()))
            .collect();
        let counts: Vec<ScalarValue> = self
            .entries
            .iter()
            .map(|(_, c)| ScalarValue::Int64(Some(*c)))
            .collect();
        Ok(vec![
            list_scalar(&keys, &DataType::Utf8)?,
            list_scalar(&counts, &DataType::Int64)?,
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        map_scalar(&self.entries)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .entries
                .iter()
                .map(|(k, _)| k.len() + 32)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;

    fn h() -> Harness {
        Harness::new(
            AggregateUDF::from(Histogram::new()),
            vec![Arg::Col(DataType::Utf8)],
        )
    }

    fn m(entries: &[(&str, i64)]) -> ScalarValue {
        let e: Vec<(String, i64)> = entries.iter().map(|(k, c)| (k.to_string(), *c)).collect();
        map_scalar(&e).unwrap()
    }

    fn s(v: &str) -> ScalarValue {
        ScalarValue::from(v)
    }

    #[test]
    fn histogram_counts_in_first_seen_order() {
        let h = h();
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), m(&[]));
        update(&mut acc, s("baz"));
        update(&mut acc, s("baz"));
        update(&mut acc, ScalarValue::Utf8(None));
        update(&mut acc, s("foo"));
        assert_eq!(eval(&mut acc), m(&[("baz", 2), ("foo", 1)]));
        assert_eq!(eval(&mut acc).data_type(), map_type());
    }

    #[test]
    fn histogram_undo() {
        // ksqlDB "histogram on a table": bob moves from east to west
        let h = h();
        let mut east = h.acc();
        update(&mut east, s("alice"));
        update(&mut east, s("bob"));
        retract(&mut east, s("bob"));
        assert_eq!(eval(&mut east), m(&[("alice", 1)]));
        retract(&mut east, s("nobody"));
        assert_eq!(eval(&mut east), m(&[("alice", 1)]));
    }

    #[test]
    fn histogram_limit() {
        let h = h();
        let mut acc = h.acc();
        for i in 0..=LIMIT {
            update(&mut acc, s(&format!("k{i}")));
        }
        update(&mut acc, s("k0"));
        let mut r = h.round_trip(&mut acc);
        let ScalarValue::Map(map) = eval(&mut r) else {
            panic!("map")
        };
        assert_eq!(map.value_length(0), 1000);
        let counts = map.value(0).column(1).clone();
        assert_eq!(i64_at(&counts, 0).unwrap(), Some(2));
    }

    #[test]
    fn histogram_round_trip_and_merge() {
        let h = h();
        let mut a = h.acc();
        update(&mut a, s("x"));
        update(&mut a, s("y"));
        let mut r = h.round_trip(&mut a);
        assert_eq!(eval(&mut r), m(&[("x", 1), ("y", 1)]));
        retract(&mut r, s("x"));
        assert_eq!(eval(&mut r), m(&[("y", 1)]));

        let mut b = h.acc();
        update(&mut b, s("y"));
        update(&mut b, s("z"));
        let mut merged = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut merged), m(&[("x", 1), ("y", 2), ("z", 1)]));
    }

    #[test]
    fn histogram_rejects_ints() {
        let err = Histogram::new()
            .return_type(&[DataType::Int32])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HISTOGRAM") && err.contains("STRING"), "{err}");
    }
}

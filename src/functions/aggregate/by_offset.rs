//! `LATEST_BY_OFFSET` and `EARLIEST_BY_OFFSET`.
//!
//! Forms (any argument type `T`, constant `n` and `ignoreNulls`):
//! - `f(col)`, `f(col, ignoreNulls)` → `T`: the latest (earliest) value;
//! - `f(col, n)`, `f(col, n, ignoreNulls)` → `ARRAY<T>`: the latest (earliest)
//!   `n` values, oldest first; `n` must be at least 1.
//!
//! `ignoreNulls` defaults to true: null inputs are skipped. With it false, a
//! null input is a value like any other. Before any value the single form
//! returns null and the `n` form an empty array. Stream sources only (ksqlDB's
//! functions are not `TableUdaf`s: no undo).
//!
//! "Offset" order is arrival order. As in ksqlDB, every accepted value is
//! stamped with a sequence number from a process-global counter
//! ([`super::common::sequence`]) and the stamp is kept in the state, so that
//! merging two states (session windows) keeps the values that arrived last
//! (first). Restoring a state raises the counter above its stamps, and the
//! counter starts at the wall clock in nanoseconds, so values arriving after a
//! restart still sort after persisted ones.
//!
//! Merging `n` states keeps the `n` latest (earliest) values by stamp.
//! (ksqlDB 0.29's LATEST_BY_OFFSET n-merge keeps the oldest `n` after sorting,
//! which looks like a bug; we keep the latest.)
//!
//! State, single form: `[seq: Int64 (null = no value yet), value: T]`.
//! State, `n` form: `[seqs: ARRAY<BIGINT>, values: ARRAY<T>]`, oldest first.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

/// Which end of the arrival order a function keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    Latest,
    Earliest,
}

/// `LATEST_BY_OFFSET` or `EARLIEST_BY_OFFSET`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ByOffset {
    name: &'static str,
    direction: Direction,
    signature: Signature,
}

impl ByOffset {
    pub(crate) fn latest() -> Self {
        Self {
            name: "latest_by_offset",
            direction: Direction::Latest,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    pub(crate) fn earliest() -> Self {
        Self {
            name: "earliest_by_offset",
            direction: Direction::Earliest,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Validates the argument types; returns (value type, has n).
    fn shape(&self, args: &[DataType]) -> Result<(DataType, bool)> {
        check_arity(self.name, args, 1, 3)?;
        let has_n = args.len() >= 2 && is_integer(&args[1]);
        match args.len() {
            2 if !has_n && args[1] != DataType::Boolean => {
                return Err(plan_error(
                    self.name,
                    format!(
                        "the second argument must be the number of values (INT) or ignoreNulls (BOOLEAN), got {}",
                        sql_name(&args[1])
                    ),
                ));
            }
            3 if !has_n || args[2] != DataType::Boolean => {
                return Err(plan_error(
                    self.name,
                    format!(
                        "expects (col, n INT, ignoreNulls BOOLEAN), got ({})",
                        args.iter().map(sql_name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            _ => {}
        }
        Ok((any_type(&args[0]), has_n))
    }
}

impl AggregateUDFImpl for ByOffset {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let (t, has_n) = self.shape(args)?;
        let mut out = vec![t];
        if has_n {
            out.push(DataType::Int64);
        }
        if args.len() > out.len() {
            out.push(DataType::Boolean);
        }
        Ok(out)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let (t, has_n) = self.shape(args)?;
        Ok(if has_n { list_type(t) } else { t })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let types: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (value_type, has_n) = self.shape(&types)?;
        let ignore_nulls = match types.len() {
            2 if !has_n => constant_bool_arg(self.name, &args, 1, "ignoreNulls")?,
            3 => constant_bool_arg(self.name, &args, 2, "ignoreNulls")?,
            _ => true,
        };
        if has_n {
            let n = constant_int_arg(self.name, &args, 1, "the number of values")?;
            if n < 1 {
                return Err(plan_error(
                    self.name,
                    format!("the number of values must be 1 or greater, got {n}"),
                ));
            }
            Ok(Box::new(ByOffsetNAccumulator {
                name: self.name,
                direction: self.direction,
                ignore_nulls,
                n: usize::try_from(n).unwrap_or(usize::MAX),
                value_type,
                entries: Vec::new(),
            }))
        } else {
            Ok(Box::new(ByOffsetAccumulator {
                name: self.name,
                direction: self.direction,
                ignore_nulls,
                seq: None,
                value: ScalarValue::try_new_null(&value_type)?,
                value_type,
            }))
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types: Vec<DataType> = args
            .input_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (t, has_n) = self.shape(&types)?;
        Ok(if has_n {
            vec![
                state_field(args.name, "seqs", list_type(DataType::Int64)),
                state_field(args.name, "values", list_type(t)),
            ]
        } else {
            vec![
                state_field(args.name, "seq", DataType::Int64),
                state_field(args.name, "value", t),
            ]
        })
    }
}

/// Single-value form.
#[derive(Debug)]
struct ByOffsetAccumulator {
    name: &'static str,
    direction: Direction,
    ignore_nulls: bool,
    value_type: DataType,
    /// Stamp of `value`; `None` until a value is accepted.
    seq: Option<i64>,
    value: ScalarValue,
}

impl ByOffsetAccumulator {
    /// Offers a stamped value (from an update or a merged state).
    fn offer(&mut self, seq: i64, value: ScalarValue) {
        let take = match (self.seq, self.direction) {
            (None, _) => true,
            (Some(current), Direction::Latest) => seq > current,
            (Some(current), Direction::Earliest) => seq < current,
        };
        if take {
            self.seq = Some(seq);
            self.value = value;
        }
    }
}

impl Accumulator for ByOffsetAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        check_values(self.name, values, 1)?;
        let array = cast_to(&values[0], &self.value_type)?;
        for i in 0..array.len() {
            if self.ignore_nulls && array.is_null(i) {
                continue;
            }
            if self.direction == Direction::Earliest && self.seq.is_some() {
                return Ok(());
            }
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            self.offer(sequence::next(), v);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state(self.name, states, 2)?;
        let values = cast_to(&states[1], &self.value_type)?;
        for row in 0..states[0].len() {
            if let Some(seq) = i64_at(&states[0], row)? {
                sequence::observe(seq);
                self.offer(seq, ScalarValue::try_from_array(values.as_ref(), row)?);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(self.seq), self.value.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size()
    }
}

/// `n`-values form; `entries` are sorted by stamp, oldest first.
#[derive(Debug)]
struct ByOffsetNAccumulator {
    name: &'static str,
    direction: Direction,
    ignore_nulls: bool,
    n: usize,
    value_type: DataType,
    entries: Vec<(i64, ScalarValue)>,
}

impl ByOffsetNAccumulator {
    /// Drops entries beyond `n` from the end this function does not keep.
    fn trim(&mut self) {
        if self.entries.len() > self.n {
            let excess = self.entries.len() - self.n;
            match self.direction {
                Direction::Latest => {
                    self.entries.drain(..excess);
                }
                Direction::Earliest => self.entries.truncate(self.n),
            }
        }
    }
}

impl Accumulator for ByOffsetNAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        check_values(self.name, values, 1)?;
        let array = cast_to(&values[0], &self.value_type)?;
        for i in 0..array.len() {
            if self.ignore_nulls && array.is_null(i) {
                continue;
            }
            if self.direction == Direction::Earliest && self.entries.len() >= self.n {
                return Ok(());
            }
            let v = ScalarValue::try_from_array(array.as_ref(), i)?;
            self.entries.push((sequence::next(), v));
            self.trim();
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state(self.name, states, 2)?;
        for row in 0..states[0].len() {
            let (Some(seqs), Some(values)) =
                (list_row(&states[0], row)?, list_row(&states[1], row)?)
            else {
                continue;
            };
            let values = cast_to(&values, &self.value_type)?;
            for i in 0..seqs.len().min(values.len()) {
                if let Some(seq) = i64_at(&seqs, i)? {
                    sequence::observe(seq);
                    if !self.entries.iter().any(|(s, _)| *s == seq) {
                        self.entries
                            .push((seq, ScalarValue::try_from_array(values.as_ref(), i)?));
                    }
                }
            }
        }
        self.entries.sort_by_key(|(s, _)| *s);
        self.trim();
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let seqs: Vec<ScalarValue> = self
            .entries
            .iter()
            .map(|(s, _)| ScalarValue::Int64(Some(*s)))
            .collect();
        let values: Vec<ScalarValue> = self.entries.iter().map(|(_, v)| v.clone()).collect();
        Ok(vec![
            list_scalar(&seqs, &DataType::Int64)?,
            list_scalar(&values, &self.value_type)?,
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let values: Vec<ScalarValue> = self.entries.iter().map(|(_, v)| v.clone()).collect();
        list_scalar(&values, &self.value_type)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .entries
                .iter()
                .map(|(_, v)| v.size() + 8)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;

    fn latest(extra: Vec<ScalarValue>) -> Harness {
        let mut args = vec![Arg::Col(DataType::Int32)];
        args.extend(extra.into_iter().map(Arg::Lit));
        Harness::new(AggregateUDF::from(ByOffset::latest()), args)
    }

    fn earliest(extra: Vec<ScalarValue>) -> Harness {
        let mut args = vec![Arg::Col(DataType::Int32)];
        args.extend(extra.into_iter().map(Arg::Lit));
        Harness::new(AggregateUDF::from(ByOffset::earliest()), args)
    }

    fn int(v: i32) -> ScalarValue {
        ScalarValue::Int32(Some(v))
    }

    const NULL: ScalarValue = ScalarValue::Int32(None);

    fn ints(v: &[Option<i32>]) -> ScalarValue {
        list(i32s(v), &DataType::Int32)
    }

    #[test]
    fn latest_ignores_nulls_by_default() {
        let h = latest(vec![]);
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), NULL);
        update(&mut acc, int(12));
        assert_eq!(eval(&mut acc), int(12));
        update(&mut acc, NULL);
        assert_eq!(eval(&mut acc), int(12));
        update(&mut acc, int(13));
        assert_eq!(eval(&mut acc), int(13));
    }

    #[test]
    fn latest_with_nulls_not_ignored() {
        let h = latest(vec![ScalarValue::Boolean(Some(false))]);
        let mut acc = h.acc();
        update(&mut acc, int(12));
        update(&mut acc, NULL);
        assert_eq!(eval(&mut acc), NULL);
        update(&mut acc, int(13));
        assert_eq!(eval(&mut acc), int(13));
    }

    #[test]
    fn latest_n() {
        let h = latest(vec![
            ScalarValue::Int64(Some(2)),
            ScalarValue::Boolean(Some(false)),
        ]);
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ints(&[]));
        update(&mut acc, int(12));
        assert_eq!(eval(&mut acc), ints(&[Some(12)]));
        update(&mut acc, NULL);
        assert_eq!(eval(&mut acc), ints(&[Some(12), None]));
        update(&mut acc, int(13));
        assert_eq!(eval(&mut acc), ints(&[None, Some(13)]));

        let h = latest(vec![ScalarValue::Int64(Some(2))]);
        let mut acc = h.acc();
        update(&mut acc, NULL);
        update(&mut acc, NULL);
        assert_eq!(eval(&mut acc), ints(&[]));
    }

    #[test]
    fn latest_n_must_be_positive() {
        let h = latest(vec![ScalarValue::Int64(Some(0))]);
        let err = h.expr.create_accumulator().err().unwrap().to_string();
        assert!(
            err.contains("LATEST_BY_OFFSET") && err.contains("1 or greater"),
            "{err}"
        );
    }

    #[test]
    fn latest_single_round_trip_and_session_merge() {
        // ksqlDB "merging session windows": sessions [1] and [3], then 2 arrives
        // between them: merged state, then the new value.
        let h = latest(vec![]);
        let mut a = h.acc();
        update(&mut a, int(1));
        let mut b = h.acc();
        update(&mut b, int(3));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), int(3));
        update(&mut m, int(2));
        assert_eq!(eval(&mut m), int(2));

        // the later state wins whatever the merge order
        let mut a = h.acc();
        update(&mut a, int(1));
        let mut b = h.acc();
        update(&mut b, int(3));
        let mut m = h.merged(&mut [b, a]);
        assert_eq!(eval(&mut m), int(3));

        // restored state keeps its stamp: a later update still wins
        let mut r = h.round_trip(&mut m);
        assert_eq!(eval(&mut r), int(3));
        update(&mut r, int(9));
        assert_eq!(eval(&mut r), int(9));
    }

    #[test]
    fn latest_merge_with_empty_state_and_nulls() {
        // "merging session windows - with nulls ignored when merging"
        let h = latest(vec![]);
        let mut a = h.acc();
        update(&mut a, int(1));
        let empty = h.acc();
        let mut m = h.merged(&mut [a, empty]);
        update(&mut m, NULL);
        assert_eq!(eval(&mut m), int(1));
    }

    #[test]
    fn latest_n_session_merge() {
        // "merging session windows - with nulls not ignored - N"
        let h = latest(vec![
            ScalarValue::Int64(Some(2)),
            ScalarValue::Boolean(Some(false)),
        ]);
        let mut a = h.acc();
        update(&mut a, int(1));
        let mut b = h.acc();
        update(&mut b, NULL);
        assert_eq!(eval(&mut b), ints(&[None]));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ints(&[Some(1), None]));
        update(&mut m, int(2));
        assert_eq!(eval(&mut m), ints(&[None, Some(2)]));

        let mut r = h.round_trip(&mut m);
        assert_eq!(eval(&mut r), ints(&[None, Some(2)]));
        update(&mut r, int(3));
        assert_eq!(eval(&mut r), ints(&[Some(2), Some(3)]));
    }

    #[test]
    fn earliest_keeps_first() {
        let h = earliest(vec![]);
        let mut acc = h.acc();
        update(&mut acc, NULL);
        assert_eq!(eval(&mut acc), NULL);
        update(&mut acc, int(5));
        update(&mut acc, int(6));
        assert_eq!(eval(&mut acc), int(5));

        let h = earliest(vec![ScalarValue::Boolean(Some(false))]);
        let mut acc = h.acc();
        update(&mut acc, NULL);
        update(&mut acc, int(5));
        assert_eq!(eval(&mut acc), NULL);
    }

    #[test]
    fn earliest_merge_and_round_trip() {
        let h = earliest(vec![]);
        let mut a = h.acc();
        update(&mut a, int(1));
        let mut b = h.acc();
        update(&mut b, int(2));
        let mut m = h.merged(&mut [b, a]);
        assert_eq!(eval(&mut m), int(1));
        let mut r = h.round_trip(&mut m);
        update(&mut r, int(7));
        assert_eq!(eval(&mut r), int(1));

        let h = earliest(vec![ScalarValue::Int64(Some(2))]);
        let mut a = h.acc();
        update(&mut a, int(1));
        update(&mut a, int(2));
        update(&mut a, int(3));
        assert_eq!(eval(&mut a), ints(&[Some(1), Some(2)]));
        let mut b = h.acc();
        update(&mut b, int(0));
        let mut m = h.merged(&mut [b, a]);
        assert_eq!(eval(&mut m), ints(&[Some(1), Some(2)]));
        let mut r = h.round_trip(&mut m);
        update(&mut r, int(9));
        assert_eq!(eval(&mut r), ints(&[Some(1), Some(2)]));
    }

    #[test]
    fn struct_values_are_supported() {
        use datafusion::arrow::datatypes::{Field, Fields};
        let t = DataType::Struct(Fields::from(vec![Field::new("A", DataType::Utf8, true)]));
        let h = Harness::new(
            AggregateUDF::from(ByOffset::latest()),
            vec![Arg::Col(t.clone())],
        );
        let mut acc = h.acc();
        let v = ScalarValue::try_from_array(
            &datafusion::arrow::array::StructArray::from(vec![(
                std::sync::Arc::new(Field::new("A", DataType::Utf8, true)),
                std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec!["x"]))
                    as ArrayRef,
            )]),
            0,
        )
        .unwrap();
        update(&mut acc, v.clone());
        let mut r = h.round_trip(&mut acc);
        assert_eq!(eval(&mut r), v);
    }

    #[test]
    fn bad_second_argument_is_a_plan_error() {
        let err = ByOffset::latest()
            .return_type(&[DataType::Int32, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATEST_BY_OFFSET"), "{err}");
    }
}

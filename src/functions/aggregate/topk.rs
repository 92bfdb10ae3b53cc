//! `TOPK(col, [otherCols...,] k)` and `TOPKDISTINCT(col, k)`.
//!
//! **TOPK** keeps the `k` largest non-null values of `col` (INT, BIGINT,
//! DOUBLE, STRING; also DECIMAL, DATE, TIME, TIMESTAMP), largest first, as
//! `ARRAY<T>`. With other columns it returns
//! `ARRAY<STRUCT<sort_col T, col0 U0, col1 U1, ...>>`, each struct carrying
//! the other columns of the row that produced the value. Ties keep arrival
//! order (a new value goes after the equal ones already kept), as ksqlDB's
//! stable sort does: `[100 one, 99 two, 0 zero]` + `100 null` gives
//! `[100 one, 100 null, 99 two]`.
//!
//! **TOPKDISTINCT** keeps the `k` largest distinct non-null values, largest
//! first, as `ARRAY<T>`.
//!
//! `k` must be a constant integer of at least 1. Before any value the result
//! is an empty array. Stream sources only (no undo, as in ksqlDB). Merging
//! interleaves the two sorted lists, preferring the current state's entry on
//! ties, and keeps `k` (distinct: equal values once).
//!
//! State: `[values: <result type>]`.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::common::*;

const SORTABLE: &str = "INT, BIGINT, DOUBLE, STRING, DECIMAL, DATE, TIME or TIMESTAMP";

/// `TOPK` (`distinct` false) or `TOPKDISTINCT` (true).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TopK {
    name: &'static str,
    distinct: bool,
    signature: Signature,
}

impl TopK {
    pub(crate) fn plain() -> Self {
        Self {
            name: "topk",
            distinct: false,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    pub(crate) fn topk_distinct() -> Self {
        Self {
            name: "topkdistinct",
            distinct: true,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Validates argument types; returns the normalised argument types.
    fn normalise(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let max = if self.distinct { 2 } else { usize::MAX };
        check_arity(self.name, args, 2, max)?;
        let last = args.len() - 1;
        if !is_integer(&args[last]) {
            return Err(plan_error(
                self.name,
                format!(
                    "the last argument (k) must be an INT, got {}",
                    sql_name(&args[last])
                ),
            ));
        }
        let sort = comparable_type(&args[0])
            .filter(|t| !matches!(t, DataType::Boolean | DataType::Binary))
            .ok_or_else(|| type_error(self.name, &args[0], SORTABLE))?;
        let mut out = vec![sort];
        out.extend(args[1..last].iter().map(any_type));
        out.push(DataType::Int64);
        Ok(out)
    }

    /// The element type of the result for normalised argument types.
    fn element_type(types: &[DataType]) -> DataType {
        let others = &types[1..types.len() - 1];
        if others.is_empty() {
            types[0].clone()
        } else {
            DataType::Struct(struct_fields(&types[0], others))
        }
    }
}

fn struct_fields(sort: &DataType, others: &[DataType]) -> Fields {
    let mut fields = vec![Field::new("sort_col", sort.clone(), true)];
    fields.extend(
        others
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("col{i}"), t.clone(), true)),
    );
    Fields::from(fields)
}

impl AggregateUDFImpl for TopK {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.normalise(args)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let types = self.normalise(args)?;
        Ok(list_type(Self::element_type(&types)))
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
        let raw: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let types = self.normalise(&raw)?;
        let k = constant_int_arg(self.name, &args, types.len() - 1, "k")?;
        if k < 1 {
            return Err(plan_error(
                self.name,
                format!("k must be 1 or greater, got {k}"),
            ));
        }
        let others = types[1..types.len() - 1].to_vec();
        Ok(Box::new(TopKAccumulator {
            name: self.name,
            distinct: self.distinct,
            k: usize::try_from(k).unwrap_or(usize::MAX),
            element_type: Self::element_type(&types),
            sort_type: types[0].clone(),
            other_types: others,
            entries: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let raw: Vec<DataType> = args
            .input_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let types = self.normalise(&raw)?;
        Ok(vec![state_field(
            args.name,
            "values",
            list_type(Self::element_type(&types)),
        )])
    }
}

/// A kept value and the other columns of its row.
type Entry = (ScalarValue, Vec<ScalarValue>);

#[derive(Debug)]
struct TopKAccumulator {
    name: &'static str,
    distinct: bool,
    k: usize,
    sort_type: DataType,
    other_types: Vec<DataType>,
    element_type: DataType,
    /// Sorted by value, largest first.
    entries: Vec<Entry>,
}

impl TopKAccumulator {
    fn offer(&mut self, entry: Entry) {
        if self.distinct
            && self
                .entries
                .iter()
                .any(|(v, _)| scalar_cmp(v, &entry.0) == Ordering::Equal)
        {
            return;
        }
        // after every kept value >= the new one
        let pos = self
            .entries
            .iter()
            .position(|(v, _)| scalar_cmp(v, &entry.0) == Ordering::Less)
            .unwrap_or(self.entries.len());
        if pos < self.k {
            self.entries.insert(pos, entry);
            self.entries.truncate(self.k);
        }
    }

    /// ksqlDB's merge: interleave, taking the current entry on ties.
    fn merge_sorted(&mut self, other: Vec<Entry>) {
        let mut merged = Vec::with_capacity(self.k.min(self.entries.len() + other.len()));
        let mut a = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut b = other.into_iter().peekable();
        while merged.len() < self.k {
            let take_a = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(x), Some(y)) => {
                    let ord = scalar_cmp(&x.0, &y.0);
                    if self.distinct && ord == Ordering::Equal {
                        b.next();
                    }
                    ord != Ordering::Less
                }
            };
            let next = if take_a { a.next() } else { b.next() };
            if let Some(e) = next {
                merged.push(e);
            }
        }
        self.entries = merged;
    }

    /// The entries of a list of elements (the state or result representation).
    fn read_entries(&self, elements: &ArrayRef) -> Result<Vec<Entry>> {
        let elements = cast_to(elements, &self.element_type)?;
        let mut out = Vec::with_capacity(elements.len());
        if let Some(s) = elements.as_struct_opt() {
            let columns = s.columns();
            for i in 0..s.len() {
                let sort = ScalarValue::try_from_array(columns[0].as_ref(), i)?;
                let others = columns[1..]
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c.as_ref(), i))
                    .collect::<Result<Vec<_>>>()?;
                out.push((sort, others));
            }
        } else {
            for v in array_scalars(elements.as_ref())? {
                out.push((v, Vec::new()));
            }
        }
        Ok(out)
    }

    fn to_list(&self) -> Result<ScalarValue> {
        let sorts: Vec<ScalarValue> = self.entries.iter().map(|(v, _)| v.clone()).collect();
        if self.other_types.is_empty() {
            return list_scalar(&sorts, &self.sort_type);
        }
        let mut columns = vec![scalars_to_array(&sorts, &self.sort_type)?];
        for (j, t) in self.other_types.iter().enumerate() {
            let col: Vec<ScalarValue> = self
                .entries
                .iter()
                .map(|(_, o)| {
                    o.get(j)
                        .cloned()
                        .map_or_else(|| ScalarValue::try_new_null(t), Ok)
                })
                .collect::<Result<_>>()?;
            columns.push(scalars_to_array(&col, t)?);
        }
        let fields = struct_fields(&self.sort_type, &self.other_types);
        let array = StructArray::try_new(fields, columns, None)?;
        list_scalar_from_array(Arc::new(array))
    }
}

impl Accumulator for TopKAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n_cols = 1 + self.other_types.len();
        check_values(self.name, values, n_cols)?;
        let sort = cast_to(&values[0], &self.sort_type)?;
        let others = self
            .other_types
            .iter()
            .enumerate()
            .map(|(j, t)| cast_to(&values[j + 1], t))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..sort.len() {
            if sort.is_null(i) {
                continue;
            }
            let v = ScalarValue::try_from_array(sort.as_ref(), i)?;
            let o = others
                .iter()
                .map(|c| ScalarValue::try_from_array(c.as_ref(), i))
                .collect::<Result<Vec<_>>>()?;
            self.offer((v, o));
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        check_state(self.name, states, 1)?;
        for row in 0..states[0].len() {
            if let Some(elements) = list_row(&states[0], row)? {
                let other = self.read_entries(&elements)?;
                self.merge_sorted(other);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.to_list()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.to_list()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .entries
                .iter()
                .map(|(v, o)| v.size() + scalars_size(o))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::testing::*;
    use super::*;
    use datafusion::logical_expr::AggregateUDF;

    fn int(v: i32) -> ScalarValue {
        ScalarValue::Int32(Some(v))
    }

    fn ints(v: &[i32]) -> ScalarValue {
        list(v.iter().map(|x| int(*x)).collect(), &DataType::Int32)
    }

    fn topk(k: i64) -> Harness {
        Harness::new(
            AggregateUDF::from(TopK::plain()),
            vec![
                Arg::Col(DataType::Int32),
                Arg::Lit(ScalarValue::Int64(Some(k))),
            ],
        )
    }

    #[test]
    fn topk_integer() {
        let h = topk(3);
        let mut acc = h.acc();
        assert_eq!(eval(&mut acc), ints(&[]));
        let expected: [&[i32]; 5] = [
            &[0],
            &[100, 0],
            &[100, 99, 0],
            &[100, 99, 7],
            &[100, 100, 99],
        ];
        for (v, e) in [0, 100, 99, 7, 100].into_iter().zip(expected) {
            update(&mut acc, int(v));
            assert_eq!(eval(&mut acc), ints(e));
        }
        update(&mut acc, ScalarValue::Int32(None));
        assert_eq!(eval(&mut acc), ints(&[100, 100, 99]));
        assert!(!acc.supports_retract_batch());
    }

    #[test]
    fn topk_round_trip_and_merge() {
        let h = topk(3);
        let mut a = h.acc();
        update(&mut a, int(5));
        update(&mut a, int(1));
        let mut r = h.round_trip(&mut a);
        assert_eq!(eval(&mut r), ints(&[5, 1]));
        update(&mut r, int(3));
        assert_eq!(eval(&mut r), ints(&[5, 3, 1]));

        let mut b = h.acc();
        update(&mut b, int(4));
        update(&mut b, int(5));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ints(&[5, 5, 4]));
    }

    #[test]
    fn topk_with_other_columns_returns_structs() {
        let h = Harness::new(
            AggregateUDF::from(TopK::plain()),
            vec![
                Arg::Col(DataType::Int32),
                Arg::Col(DataType::Utf8),
                Arg::Lit(ScalarValue::Int64(Some(3))),
            ],
        );
        let mut acc = h.acc();
        for (v, name) in [
            (Some(0), Some("zero")),
            (Some(100), Some("one")),
            (Some(99), Some("two")),
            (None, Some("three")),
            (Some(100), None),
        ] {
            update2(
                &mut acc,
                ScalarValue::Int32(v),
                ScalarValue::Utf8(name.map(str::to_string)),
            );
        }
        let mut r = h.round_trip(&mut acc);
        let out = eval(&mut r);
        let DataType::List(f) = out.data_type() else {
            panic!("list")
        };
        assert_eq!(
            f.data_type(),
            &DataType::Struct(struct_fields(&DataType::Int32, &[DataType::Utf8]))
        );
        let ScalarValue::List(l) = out else {
            panic!("list")
        };
        let s = l.value(0);
        let s = s.as_struct();
        let sorts = array_scalars(s.column(0).as_ref()).unwrap();
        let names = array_scalars(s.column(1).as_ref()).unwrap();
        assert_eq!(sorts, vec![int(100), int(100), int(99)]);
        assert_eq!(
            names,
            vec![
                ScalarValue::from("one"),
                ScalarValue::Utf8(None),
                ScalarValue::from("two")
            ]
        );
    }

    #[test]
    fn topk_distinct() {
        let h = Harness::new(
            AggregateUDF::from(TopK::topk_distinct()),
            vec![
                Arg::Col(DataType::Int32),
                Arg::Lit(ScalarValue::Int64(Some(2))),
            ],
        );
        let mut a = h.acc();
        for v in [1, 3, 3, 2] {
            update(&mut a, int(v));
        }
        assert_eq!(eval(&mut a), ints(&[3, 2]));
        let mut b = h.acc();
        update(&mut b, int(3));
        update(&mut b, int(1));
        let mut m = h.merged(&mut [a, b]);
        assert_eq!(eval(&mut m), ints(&[3, 2]));
        let mut r = h.round_trip(&mut m);
        update(&mut r, int(2));
        update(&mut r, int(10));
        assert_eq!(eval(&mut r), ints(&[10, 3]));
    }

    #[test]
    fn topk_k_must_be_constant_and_positive() {
        let h = topk(0);
        let err = h.expr.create_accumulator().err().unwrap().to_string();
        assert!(
            err.contains("TOPK") && err.contains("1 or greater"),
            "{err}"
        );

        let h = Harness::new(
            AggregateUDF::from(TopK::plain()),
            vec![Arg::Col(DataType::Int32), Arg::Col(DataType::Int64)],
        );
        let err = h.expr.create_accumulator().err().unwrap().to_string();
        assert!(err.contains("constant"), "{err}");

        let err = TopK::plain()
            .return_type(&[DataType::Int32, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(err.contains("k"), "{err}");
    }
}

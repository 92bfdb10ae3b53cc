//! Accumulator sets: the aggregates of one group (or window), their per-batch
//! arguments, their per-row results and their state codec.
//!
//! Emission is per record, so a group's result is read after every row it
//! takes. The common aggregates (`COUNT`, and `SUM` over INT, BIGINT or
//! DOUBLE) keep their running value inline ([`Slot`]): applying a row and
//! reading the result are a few instructions on the batch's typed argument
//! column, with exactly the arithmetic of their accumulators in
//! `functions::aggregate` (wrapping integers, nulls skipped, sums in row
//! order). Every other aggregate keeps its DataFusion accumulator and is fed
//! 1-row slices, as the functions are written for.
//!
//! Results are appended to typed column builders ([`Outputs`]), one per
//! aggregate, and become Arrow arrays once per batch. State is persisted as
//! the accumulators' `state()` values, arrow-row encoded, the inline kinds
//! writing the same values their accumulator would; many groups are encoded
//! with one converter call ([`AccumulatorSet::encode_many`]). A fresh group is
//! restored from that encoding (`merge_batch` for accumulators). Session
//! windows merge two groups' states the same way.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, PrimitiveArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::Rows;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result};
use crate::functions::aggregate::{Count, Sum};
use crate::runtime::rows::RowCodec;

/// How one aggregate is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `COUNT(x)`: the non-null values of x.
    Count,
    /// `SUM` in INT, BIGINT or DOUBLE.
    SumInt,
    SumLong,
    SumDouble,
    /// Anything else: a DataFusion accumulator per group.
    General,
}

impl Kind {
    /// The inline kind for an aggregate, if it has one: the function must
    /// be Sluice's and its one state column and result of the type the
    /// inline value is kept in.
    fn of(a: &AggregateFunctionExpr) -> Result<Self> {
        if a.is_distinct() || a.expressions().len() != 1 {
            return Ok(Kind::General);
        }
        let f = a.fun().inner();
        let result = a.field().data_type().clone();
        let state: Vec<DataType> = a
            .state_fields()?
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let kind = if f.is::<Count>() {
            Kind::Count
        } else if f.is::<Sum>() {
            match result {
                DataType::Int32 => Kind::SumInt,
                DataType::Int64 => Kind::SumLong,
                DataType::Float64 => Kind::SumDouble,
                _ => Kind::General,
            }
        } else {
            Kind::General
        };
        let inline_type = match kind {
            Kind::Count | Kind::SumLong => DataType::Int64,
            Kind::SumInt => DataType::Int32,
            Kind::SumDouble => DataType::Float64,
            Kind::General => return Ok(Kind::General),
        };
        Ok(if state == [inline_type.clone()] && result == inline_type {
            kind
        } else {
            Kind::General
        })
    }
}

/// One aggregate's state in one group.
pub(crate) enum Slot {
    Count(i64),
    Int(i32),
    Long(i64),
    Double(f64),
    General(Box<dyn Accumulator>),
}

/// The aggregates of one group.
pub(crate) type Accs = Vec<Slot>;

/// One aggregate's arguments over a batch, in the form its kind reads.
enum Arg {
    /// COUNT: which rows hold a (logically) non-null value; None: all.
    Valid(Option<NullBuffer>),
    Int(Int32Array),
    Long(Int64Array),
    Double(Float64Array),
    General(Vec<ArrayRef>),
}

/// Every aggregate's arguments over one batch.
pub(crate) struct Args(Vec<Arg>);

pub(crate) struct AccumulatorSet {
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    kinds: Vec<Kind>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// State columns per aggregate.
    widths: Vec<usize>,
    codec: RowCodec,
}

impl AccumulatorSet {
    pub(crate) fn try_new(aggregates: Vec<Arc<AggregateFunctionExpr>>) -> Result<Self> {
        Self::build(aggregates, true)
    }

    /// Every aggregate through its DataFusion accumulator (tests compare
    /// the inline kinds against it).
    #[cfg(test)]
    pub(crate) fn accumulators_only(aggregates: Vec<Arc<AggregateFunctionExpr>>) -> Result<Self> {
        Self::build(aggregates, false)
    }

    fn build(aggregates: Vec<Arc<AggregateFunctionExpr>>, inline: bool) -> Result<Self> {
        let mut types = Vec::new();
        let mut widths = Vec::new();
        let mut kinds = Vec::new();
        for a in &aggregates {
            let fields = a.state_fields()?;
            widths.push(fields.len());
            for f in fields {
                types.push(f.data_type().clone());
            }
            kinds.push(if inline { Kind::of(a)? } else { Kind::General });
        }
        let args = aggregates.iter().map(|a| a.expressions()).collect();
        Ok(Self {
            aggregates,
            kinds,
            args,
            widths,
            codec: RowCodec::try_new(&types)?,
        })
    }

    pub(crate) fn create(&self) -> Result<Accs> {
        self.aggregates
            .iter()
            .zip(&self.kinds)
            .map(|(a, k)| {
                Ok(match k {
                    Kind::Count => Slot::Count(0),
                    Kind::SumInt => Slot::Int(0),
                    Kind::SumLong => Slot::Long(0),
                    Kind::SumDouble => Slot::Double(0.0),
                    Kind::General => Slot::General(a.create_accumulator()?),
                })
            })
            .collect()
    }

    /// Evaluate every aggregate's arguments over the batch.
    pub(crate) fn arguments(&self, batch: &RecordBatch) -> Result<Args> {
        let n = batch.num_rows();
        let mut out = Vec::with_capacity(self.args.len());
        for (exprs, kind) in self.args.iter().zip(&self.kinds) {
            let cols = exprs
                .iter()
                .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let first = || {
                cols.first()
                    .ok_or_else(|| Error::internal("aggregate without its argument"))
            };
            out.push(match kind {
                Kind::Count => Arg::Valid(first()?.logical_nulls()),
                Kind::SumInt => Arg::Int(typed::<Int32Type>(first()?, &DataType::Int32)?),
                Kind::SumLong => Arg::Long(typed::<Int64Type>(first()?, &DataType::Int64)?),
                Kind::SumDouble => Arg::Double(typed::<Float64Type>(first()?, &DataType::Float64)?),
                Kind::General => Arg::General(cols),
            });
        }
        Ok(Args(out))
    }

    /// Add (or, with `retract`, remove) row `row` of the arguments.
    pub(crate) fn apply(
        &self,
        accs: &mut Accs,
        args: &Args,
        row: usize,
        retract: bool,
    ) -> Result<()> {
        for (i, slot) in accs.iter_mut().enumerate() {
            match (slot, &args.0[i]) {
                (Slot::Count(c), Arg::Valid(valid)) => {
                    if valid.as_ref().is_none_or(|v| v.is_valid(row)) {
                        *c = if retract {
                            c.wrapping_sub(1)
                        } else {
                            c.wrapping_add(1)
                        };
                    }
                }
                (Slot::Int(s), Arg::Int(a)) => {
                    if a.is_valid(row) {
                        let v = a.value(row);
                        *s = if retract {
                            s.wrapping_sub(v)
                        } else {
                            s.wrapping_add(v)
                        };
                    }
                }
                (Slot::Long(s), Arg::Long(a)) => {
                    if a.is_valid(row) {
                        let v = a.value(row);
                        *s = if retract {
                            s.wrapping_sub(v)
                        } else {
                            s.wrapping_add(v)
                        };
                    }
                }
                (Slot::Double(s), Arg::Double(a)) => {
                    if a.is_valid(row) {
                        let v = a.value(row);
                        *s = if retract { *s - v } else { *s + v };
                    }
                }
                (Slot::General(acc), Arg::General(cols)) => {
                    let slice: Vec<ArrayRef> = cols.iter().map(|a| a.slice(row, 1)).collect();
                    if retract {
                        if !acc.supports_retract_batch() {
                            return Err(Error::Unsupported(format!(
                                "Removing rows from the aggregate {}",
                                self.aggregates[i].fun().name().to_uppercase()
                            )));
                        }
                        acc.retract_batch(&slice)?;
                    } else {
                        acc.update_batch(&slice)?;
                    }
                }
                _ => return Err(Error::internal("aggregate state and arguments disagree")),
            }
        }
        Ok(())
    }

    /// Empty result columns, one per aggregate.
    pub(crate) fn outputs(&self) -> Outputs {
        Outputs(
            self.kinds
                .iter()
                .map(|k| match k {
                    Kind::Count | Kind::SumLong => Out::Long(Vec::new()),
                    Kind::SumInt => Out::Int(Vec::new()),
                    Kind::SumDouble => Out::Double(Vec::new()),
                    Kind::General => Out::Scalars(Vec::new()),
                })
                .collect(),
        )
    }

    /// Append the group's current results to `out`.
    pub(crate) fn evaluate_into(&self, accs: &mut Accs, out: &mut Outputs) -> Result<()> {
        for (slot, col) in accs.iter_mut().zip(out.0.iter_mut()) {
            match (slot, col) {
                (Slot::General(acc), Out::Scalars(c)) => c.push(acc.evaluate()?),
                (inline, col) => {
                    if !col.push_inline(inline) {
                        return Err(Error::internal("aggregate state and results disagree"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The states of many groups, arrow-row encoded with one converter
    /// call: row `i` is the `i`-th group's.
    pub(crate) fn encode_many<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a mut Accs>,
    ) -> Result<Rows> {
        let mut cols: Vec<Out> = Vec::new();
        for (k, w) in self.kinds.iter().zip(&self.widths) {
            match k {
                Kind::Count | Kind::SumLong => cols.push(Out::Long(Vec::new())),
                Kind::SumInt => cols.push(Out::Int(Vec::new())),
                Kind::SumDouble => cols.push(Out::Double(Vec::new())),
                Kind::General => (0..*w).for_each(|_| cols.push(Out::Scalars(Vec::new()))),
            }
        }
        for accs in groups {
            let mut at = 0;
            for slot in accs.iter_mut() {
                match slot {
                    Slot::General(acc) => {
                        for v in acc.state()? {
                            match cols.get_mut(at) {
                                Some(Out::Scalars(c)) => c.push(v),
                                _ => {
                                    return Err(Error::internal(
                                        "aggregate state has more columns than declared",
                                    ))
                                }
                            }
                            at += 1;
                        }
                    }
                    inline => {
                        if !cols.get_mut(at).is_some_and(|c| c.push_inline(inline)) {
                            return Err(Error::internal("aggregate state column of another type"));
                        }
                        at += 1;
                    }
                }
            }
        }
        let arrays = cols
            .into_iter()
            .map(Out::finish)
            .collect::<Result<Vec<_>>>()?;
        self.codec.encode(&arrays)
    }

    /// The state of all accumulators as one encoded row.
    pub(crate) fn encode(&self, accs: &mut Accs) -> Result<Vec<u8>> {
        let rows = self.encode_many([accs])?;
        Ok(rows.row(0).as_ref().to_vec())
    }

    /// Fresh accumulators restored from an encoded state.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Accs> {
        let cols = self.codec.decode([bytes])?;
        let mut accs = self.create()?;
        let mut at = 0;
        for (slot, n) in accs.iter_mut().zip(&self.widths) {
            let state = cols
                .get(at..at + n)
                .ok_or_else(|| Error::internal("stored aggregate state has too few columns"))?;
            match slot {
                Slot::General(acc) => acc.merge_batch(state)?,
                Slot::Count(v) | Slot::Long(v) => {
                    *v = first_value::<Int64Type>(state)?.unwrap_or(0)
                }
                Slot::Int(v) => *v = first_value::<Int32Type>(state)?.unwrap_or(0),
                Slot::Double(v) => *v = first_value::<Float64Type>(state)?.unwrap_or(0.0),
            }
            at += n;
        }
        Ok(accs)
    }

    /// Merge `from`'s state into `into` (session windows).
    pub(crate) fn merge(&self, into: &mut Accs, from: &mut Accs) -> Result<()> {
        for (a, b) in into.iter_mut().zip(from.iter_mut()) {
            match (a, b) {
                (Slot::Count(a), Slot::Count(b)) | (Slot::Long(a), Slot::Long(b)) => {
                    *a = a.wrapping_add(*b)
                }
                (Slot::Int(a), Slot::Int(b)) => *a = a.wrapping_add(*b),
                (Slot::Double(a), Slot::Double(b)) => *a += *b,
                (Slot::General(a), Slot::General(b)) => {
                    let state: Vec<ArrayRef> = b
                        .state()?
                        .into_iter()
                        .map(|v| v.to_array_of_size(1))
                        .collect::<Result<_, _>>()?;
                    a.merge_batch(&state)?;
                }
                _ => {
                    return Err(Error::internal(
                        "merging aggregate states of different kinds",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// `a` as a primitive array of `dt` (cast when it is of another type, as
/// the accumulators do).
fn typed<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    a: &ArrayRef,
    dt: &DataType,
) -> Result<PrimitiveArray<T>> {
    let a = if a.data_type() == dt {
        Arc::clone(a)
    } else {
        cast(a, dt)?
    };
    a.as_primitive_opt::<T>()
        .cloned()
        .ok_or_else(|| Error::internal("aggregate argument of an unexpected type"))
}

/// Row 0 of the only state column (None when null).
fn first_value<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    state: &[ArrayRef],
) -> Result<Option<T::Native>> {
    let a = state
        .first()
        .and_then(|a| a.as_primitive_opt::<T>())
        .ok_or_else(|| Error::internal("stored aggregate state of an unexpected type"))?;
    Ok((!a.is_empty() && a.is_valid(0)).then(|| a.value(0)))
}

/// One column of results (or of states) being built.
enum Out {
    Long(Vec<i64>),
    Int(Vec<i32>),
    Double(Vec<f64>),
    Scalars(Vec<ScalarValue>),
}

impl Out {
    /// Append an inline slot's value; false if this column is of another type.
    fn push_inline(&mut self, slot: &Slot) -> bool {
        match (self, slot) {
            (Out::Long(c), Slot::Count(v) | Slot::Long(v)) => c.push(*v),
            (Out::Int(c), Slot::Int(v)) => c.push(*v),
            (Out::Double(c), Slot::Double(v)) => c.push(*v),
            _ => return false,
        }
        true
    }

    /// The column as an array; None for an empty column of scalars (its
    /// type is not known from the values).
    fn array(self) -> Result<Option<ArrayRef>> {
        Ok(Some(match self {
            Out::Long(v) => Arc::new(Int64Array::from(v)),
            Out::Int(v) => Arc::new(Int32Array::from(v)),
            Out::Double(v) => Arc::new(Float64Array::from(v)),
            Out::Scalars(v) if v.is_empty() => return Ok(None),
            Out::Scalars(v) => ScalarValue::iter_to_array(v)?,
        }))
    }

    fn finish(self) -> Result<ArrayRef> {
        self.array()?
            .ok_or_else(|| Error::internal("encoding the state of no groups"))
    }
}

/// Per-row results of every aggregate, built column by column.
pub(crate) struct Outputs(Vec<Out>);

impl Outputs {
    /// The result columns, cast to the output's types.
    pub(crate) fn finish(self, types: &[DataType]) -> Result<Vec<ArrayRef>> {
        self.0
            .into_iter()
            .zip(types)
            .map(|(col, t)| {
                let arr = match col.array()? {
                    Some(a) => a,
                    None => datafusion::arrow::array::new_empty_array(t),
                };
                Ok(if arr.data_type() != t {
                    cast(&arr, t)?
                } else {
                    arr
                })
            })
            .collect()
    }
}

/// The i64 at `row` of an Int64 column (ROWTIME and window bounds).
pub(crate) fn i64_at(arr: &dyn Array, row: usize) -> Result<i64> {
    arr.as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| if a.is_null(row) { 0 } else { a.value(row) })
        .ok_or_else(|| Error::internal("time column is not BIGINT"))
}

/// The Int64 column behind ROWTIME and window bounds.
pub(crate) fn i64_column(arr: &dyn Array) -> Result<&Int64Array> {
    arr.as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::internal("time column is not BIGINT"))
}

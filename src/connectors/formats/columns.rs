//! Column buffers that decoders append to, one per column of a batch.
//!
//! A [`Column`] is a typed, growable Arrow column (values, validity, and
//! for strings and bytes an offset list) that can also be cut back to an
//! earlier length: a record that fails half-way through decoding leaves
//! every column as if it had never come ([`Column::truncate`]). The kinds
//! Sluice's formats produce (BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL, STRING,
//! BYTES, TIMESTAMP, DATE, TIME) are kept unboxed; nested types (ARRAY, MAP,
//! STRUCT, HEADERS) keep one `ScalarValue` per cell, as before.
//!
//! Appending a value of another kind than the column's is an internal
//! error, reported by [`Column::finish`]; nothing here panics.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_empty_array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float64Array, Int32Array, Int64Array, StringArray, Time32MillisecondArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;

/// One column being built.
#[derive(Debug)]
pub(crate) struct Column {
    dt: DataType,
    valid: Vec<bool>,
    data: Data,
    /// The first internal error (a value of the wrong kind), if any.
    error: Option<String>,
}

#[derive(Debug)]
enum Data {
    Bool(Vec<bool>),
    /// Int32, Date32, Time32(ms).
    I32(Vec<i32>),
    /// Int64, Timestamp(ms).
    I64(Vec<i64>),
    F64(Vec<f64>),
    Dec(Vec<i128>),
    /// Utf8 (`bytes` always valid UTF-8) and Binary: offsets start at 0.
    Var {
        bytes: Vec<u8>,
        offsets: Vec<i32>,
    },
    Scalars(Vec<ScalarValue>),
}

/// The last value of a record-time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastTime {
    Millis(i64),
    Null,
    /// Not BIGINT or TIMESTAMP.
    NotATime,
}

impl Column {
    pub(crate) fn new(dt: &DataType, capacity: usize) -> Column {
        let data = match dt {
            DataType::Boolean => Data::Bool(Vec::with_capacity(capacity)),
            DataType::Int32 | DataType::Date32 | DataType::Time32(TimeUnit::Millisecond) => {
                Data::I32(Vec::with_capacity(capacity))
            }
            DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Data::I64(Vec::with_capacity(capacity))
            }
            DataType::Float64 => Data::F64(Vec::with_capacity(capacity)),
            DataType::Decimal128(_, _) => Data::Dec(Vec::with_capacity(capacity)),
            DataType::Utf8 | DataType::Binary => Data::Var {
                bytes: Vec::new(),
                offsets: {
                    let mut o = Vec::with_capacity(capacity + 1);
                    o.push(0);
                    o
                },
            },
            _ => Data::Scalars(Vec::with_capacity(capacity)),
        };
        Column {
            dt: dt.clone(),
            valid: Vec::with_capacity(capacity),
            data,
            error: None,
        }
    }

    pub(crate) fn data_type(&self) -> &DataType {
        &self.dt
    }

    pub(crate) fn len(&self) -> usize {
        self.valid.len()
    }

    /// Cuts the column back to its first `len` values.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        self.valid.truncate(len);
        match &mut self.data {
            Data::Bool(v) => v.truncate(len),
            Data::I32(v) => v.truncate(len),
            Data::I64(v) => v.truncate(len),
            Data::F64(v) => v.truncate(len),
            Data::Dec(v) => v.truncate(len),
            Data::Var { bytes, offsets } => {
                offsets.truncate(len + 1);
                let end = offsets.last().map_or(0, |&o| o as usize);
                bytes.truncate(end);
            }
            Data::Scalars(v) => v.truncate(len),
        }
    }

    fn mismatch(&mut self, what: &str) {
        if self.error.is_none() {
            self.error = Some(format!(
                "internal: a {what} value appended to a {} column",
                self.dt
            ));
        }
        // Keep the lengths equal so later rows stay aligned.
        self.push_null();
    }

    pub(crate) fn push_null(&mut self) {
        match &mut self.data {
            Data::Bool(v) => v.push(false),
            Data::I32(v) => v.push(0),
            Data::I64(v) => v.push(0),
            Data::F64(v) => v.push(0.0),
            Data::Dec(v) => v.push(0),
            Data::Var { offsets, .. } => {
                let end = offsets.last().copied().unwrap_or(0);
                offsets.push(end);
            }
            Data::Scalars(v) => {
                let null = ScalarValue::try_from(&self.dt).unwrap_or(ScalarValue::Null);
                v.push(null);
            }
        }
        self.valid.push(false);
    }

    pub(crate) fn push_bool(&mut self, b: bool) {
        match &mut self.data {
            Data::Bool(v) => v.push(b),
            _ => return self.mismatch("BOOLEAN"),
        }
        self.valid.push(true);
    }

    /// INT, DATE (days) or TIME (millis), by the column's type.
    pub(crate) fn push_i32(&mut self, x: i32) {
        match &mut self.data {
            Data::I32(v) => v.push(x),
            _ => return self.mismatch("32-bit"),
        }
        self.valid.push(true);
    }

    /// BIGINT or TIMESTAMP (millis), by the column's type.
    pub(crate) fn push_i64(&mut self, x: i64) {
        match &mut self.data {
            Data::I64(v) => v.push(x),
            _ => return self.mismatch("64-bit"),
        }
        self.valid.push(true);
    }

    pub(crate) fn push_f64(&mut self, x: f64) {
        match &mut self.data {
            Data::F64(v) => v.push(x),
            _ => return self.mismatch("DOUBLE"),
        }
        self.valid.push(true);
    }

    /// An unscaled DECIMAL of the column's precision and scale.
    pub(crate) fn push_decimal(&mut self, x: i128) {
        match &mut self.data {
            Data::Dec(v) => v.push(x),
            _ => return self.mismatch("DECIMAL"),
        }
        self.valid.push(true);
    }

    pub(crate) fn push_str(&mut self, s: &str) {
        if self.dt != DataType::Utf8 {
            return self.mismatch("STRING");
        }
        self.push_var(s.as_bytes());
    }

    pub(crate) fn push_bytes(&mut self, b: &[u8]) {
        if self.dt != DataType::Binary {
            return self.mismatch("BYTES");
        }
        self.push_var(b);
    }

    fn push_var(&mut self, b: &[u8]) {
        let Data::Var { bytes, offsets } = &mut self.data else {
            return self.mismatch("variable-length");
        };
        bytes.extend_from_slice(b);
        let Ok(end) = i32::try_from(bytes.len()) else {
            bytes.truncate(offsets.last().map_or(0, |&o| o as usize));
            self.error
                .get_or_insert_with(|| "a batch column holds over 2 GiB of text".into());
            return self.push_null();
        };
        offsets.push(end);
        self.valid.push(true);
    }

    /// Any value of the column's type (the path of nested types and of the
    /// formats that decode to scalars).
    pub(crate) fn push_scalar(&mut self, v: ScalarValue) {
        use ScalarValue as S;
        if let Data::Scalars(values) = &mut self.data {
            self.valid.push(!v.is_null());
            values.push(v);
            return;
        }
        if v.is_null() {
            return self.push_null();
        }
        let kind = match &self.data {
            Data::Bool(_) => 0,
            Data::I32(_) => 1,
            Data::I64(_) => 2,
            Data::F64(_) => 3,
            Data::Dec(_) => 4,
            Data::Var { .. } => 5,
            Data::Scalars(_) => 6,
        };
        match (kind, v) {
            (0, S::Boolean(Some(b))) => self.push_bool(b),
            (1, S::Int32(Some(x)) | S::Date32(Some(x)) | S::Time32Millisecond(Some(x))) => {
                self.push_i32(x)
            }
            (2, S::Int64(Some(x)) | S::TimestampMillisecond(Some(x), _)) => self.push_i64(x),
            (3, S::Float64(Some(x))) => self.push_f64(x),
            (4, S::Decimal128(Some(x), _, _)) => self.push_decimal(x),
            (5, S::Utf8(Some(s))) => self.push_str(&s),
            (5, S::Binary(Some(b))) => self.push_bytes(&b),
            (_, other) => match other.cast_to(&self.dt) {
                Ok(cast) if cast.data_type() != other.data_type() => self.push_scalar(cast),
                _ => self.mismatch(&other.data_type().to_string()),
            },
        }
    }

    fn last_valid(&self) -> Option<usize> {
        let i = self.len().checked_sub(1)?;
        self.valid[i].then_some(i)
    }

    /// The last value, read as a record time (BIGINT or TIMESTAMP).
    pub(crate) fn last_time(&self) -> LastTime {
        if let Data::Scalars(values) = &self.data {
            return match values.last() {
                Some(ScalarValue::Int64(Some(v))) => LastTime::Millis(*v),
                Some(ScalarValue::TimestampMillisecond(Some(v), _)) => LastTime::Millis(*v),
                Some(v) if v.is_null() => LastTime::Null,
                _ => LastTime::NotATime,
            };
        }
        let Some(i) = self.last_valid() else {
            return LastTime::Null;
        };
        match (&self.data, &self.dt) {
            (Data::I64(v), DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _)) => {
                LastTime::Millis(v[i])
            }
            _ => LastTime::NotATime,
        }
    }

    /// The last value if it is a STRING; `Err(())` if it is NULL, `Ok(None)`
    /// if the column is not a STRING column.
    pub(crate) fn last_str(&self) -> Result<Option<&str>, ()> {
        if let Data::Scalars(values) = &self.data {
            return match values.last() {
                Some(ScalarValue::Utf8(Some(s))) => Ok(Some(s)),
                Some(v) if v.is_null() => Err(()),
                _ => Ok(None),
            };
        }
        let Some(i) = self.last_valid() else {
            return Err(());
        };
        match &self.data {
            Data::Var { bytes, offsets } if self.dt == DataType::Utf8 => {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                Ok(std::str::from_utf8(&bytes[s..e]).ok())
            }
            _ => Ok(None),
        }
    }

    /// The finished Arrow array, exactly of the column's type.
    pub(crate) fn finish(self) -> Result<ArrayRef, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let nulls = if self.valid.iter().all(|v| *v) {
            None
        } else {
            Some(NullBuffer::from(self.valid))
        };
        let e = |e: datafusion::arrow::error::ArrowError| e.to_string();
        let array: ArrayRef = match (self.data, &self.dt) {
            (Data::Bool(v), _) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
            (Data::I32(v), DataType::Date32) => {
                Arc::new(Date32Array::try_new(ScalarBuffer::from(v), nulls).map_err(e)?)
            }
            (Data::I32(v), DataType::Time32(_)) => {
                Arc::new(Time32MillisecondArray::try_new(ScalarBuffer::from(v), nulls).map_err(e)?)
            }
            (Data::I32(v), _) => {
                Arc::new(Int32Array::try_new(ScalarBuffer::from(v), nulls).map_err(e)?)
            }
            (Data::I64(v), DataType::Timestamp(_, tz)) => Arc::new(
                TimestampMillisecondArray::try_new(ScalarBuffer::from(v), nulls)
                    .map_err(e)?
                    .with_timezone_opt(tz.clone()),
            ),
            (Data::I64(v), _) => {
                Arc::new(Int64Array::try_new(ScalarBuffer::from(v), nulls).map_err(e)?)
            }
            (Data::F64(v), _) => {
                Arc::new(Float64Array::try_new(ScalarBuffer::from(v), nulls).map_err(e)?)
            }
            (Data::Dec(v), DataType::Decimal128(p, s)) => Arc::new(
                Decimal128Array::try_new(ScalarBuffer::from(v), nulls)
                    .map_err(e)?
                    .with_precision_and_scale(*p, *s)
                    .map_err(e)?,
            ),
            (Data::Dec(_), dt) => return Err(format!("internal: decimal column of type {dt}")),
            (Data::Var { bytes, offsets }, DataType::Utf8) => Arc::new(
                StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    Buffer::from_vec(bytes),
                    nulls,
                )
                .map_err(e)?,
            ),
            (Data::Var { bytes, offsets }, _) => Arc::new(
                BinaryArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    Buffer::from_vec(bytes),
                    nulls,
                )
                .map_err(e)?,
            ),
            (Data::Scalars(v), dt) => {
                if v.is_empty() {
                    return Ok(new_empty_array(dt));
                }
                let arr = ScalarValue::iter_to_array(v).map_err(|e| e.to_string())?;
                if arr.data_type() != dt {
                    datafusion::arrow::compute::cast(&arr, dt).map_err(e)?
                } else {
                    arr
                }
            }
        };
        Ok(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn truncate_forgets_a_partial_record() {
        let mut s = Column::new(&DataType::Utf8, 4);
        let mut n = Column::new(&DataType::Int64, 4);
        s.push_str("ab");
        n.push_i64(1);
        s.push_str("cde");
        s.truncate(1);
        n.truncate(1);
        s.push_null();
        n.push_i64(2);
        s.push_str("f");
        n.push_null();
        let s = s.finish().unwrap();
        let n = n.finish().unwrap();
        assert_eq!(
            s.as_any().downcast_ref::<StringArray>().unwrap(),
            &StringArray::from(vec![Some("ab"), None, Some("f")])
        );
        assert_eq!(
            n.as_any().downcast_ref::<Int64Array>().unwrap(),
            &Int64Array::from(vec![Some(1), Some(2), None])
        );
    }

    #[test]
    fn builds_exact_types_and_reports_kind_mismatches() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let mut c = Column::new(&ts, 1);
        c.push_scalar(ScalarValue::TimestampMillisecond(
            Some(5),
            Some("UTC".into()),
        ));
        assert_eq!(c.last_time(), LastTime::Millis(5));
        assert_eq!(c.finish().unwrap().data_type(), &ts);
        let mut d = Column::new(&DataType::Decimal128(4, 2), 1);
        d.push_decimal(123);
        assert_eq!(d.finish().unwrap().data_type(), &DataType::Decimal128(4, 2));
        let mut bad = Column::new(&DataType::Int32, 1);
        bad.push_str("x");
        assert_eq!(bad.len(), 1);
        assert_eq!(
            bad.finish().unwrap_err(),
            "internal: a STRING value appended to a Int32 column"
        );
    }
}

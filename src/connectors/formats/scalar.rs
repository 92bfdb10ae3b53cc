//! Between DataFusion `ScalarValue`s and the formats' view of a value.
//!
//! Encoders read values through [`Datum`], a plain tree that flattens the
//! Arrow representation (one-row `ListArray`, `StructArray`, `MapArray`
//! scalars) and widens the Arrow types ksqlDB lacks (`Int16`, `Float32`,
//! `Utf8View`, timestamps in other units...) to the ksqlDB type they stand
//! for. Decoders build nested scalars with [`make_list`], [`make_struct`] and
//! [`make_map`], whose types are exactly the target field's type (item field
//! names, nullability and map layout included), so the runtime can append
//! them to arrays of the declared schema.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_empty_array, Array, ArrayRef, ListArray, MapArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Fields};
use datafusion::common::ScalarValue;

/// A value as the formats see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Datum {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    /// Unscaled value, precision, scale.
    Decimal(i128, u8, i8),
    Str(String),
    Bytes(Vec<u8>),
    /// Epoch milliseconds.
    Timestamp(i64),
    /// Epoch days.
    Date(i32),
    /// Milliseconds of the day.
    Time(i32),
    List(Vec<Datum>),
    Map(Vec<(Datum, Datum)>),
    Struct(Vec<(String, Datum)>),
}

impl Datum {
    pub(crate) fn from_scalar(v: &ScalarValue) -> Result<Datum, String> {
        use ScalarValue as S;
        if v.is_null() {
            return Ok(Datum::Null);
        }
        let d = match v {
            S::Boolean(Some(b)) => Datum::Bool(*b),
            S::Int8(Some(x)) => Datum::Int(*x as i32),
            S::Int16(Some(x)) => Datum::Int(*x as i32),
            S::Int32(Some(x)) => Datum::Int(*x),
            S::UInt8(Some(x)) => Datum::Int(*x as i32),
            S::UInt16(Some(x)) => Datum::Int(*x as i32),
            S::Int64(Some(x)) => Datum::Long(*x),
            S::UInt32(Some(x)) => Datum::Long(*x as i64),
            S::UInt64(Some(x)) => Datum::Long(*x as i64),
            S::Float32(Some(x)) => Datum::Double(*x as f64),
            S::Float64(Some(x)) => Datum::Double(*x),
            S::Decimal128(Some(x), p, s) => Datum::Decimal(*x, *p, *s),
            S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => {
                Datum::Str(s.clone())
            }
            S::Binary(Some(b))
            | S::LargeBinary(Some(b))
            | S::BinaryView(Some(b))
            | S::FixedSizeBinary(_, Some(b)) => Datum::Bytes(b.clone()),
            S::TimestampSecond(Some(x), _) => Datum::Timestamp(x.saturating_mul(1000)),
            S::TimestampMillisecond(Some(x), _) => Datum::Timestamp(*x),
            S::TimestampMicrosecond(Some(x), _) => Datum::Timestamp(x.div_euclid(1000)),
            S::TimestampNanosecond(Some(x), _) => Datum::Timestamp(x.div_euclid(1_000_000)),
            S::Date32(Some(x)) => Datum::Date(*x),
            S::Date64(Some(x)) => Datum::Date(x.div_euclid(86_400_000) as i32),
            S::Time32Second(Some(x)) => Datum::Time(x.saturating_mul(1000)),
            S::Time32Millisecond(Some(x)) => Datum::Time(*x),
            S::Time64Microsecond(Some(x)) => Datum::Time((x / 1000) as i32),
            S::Time64Nanosecond(Some(x)) => Datum::Time((x / 1_000_000) as i32),
            S::List(a) => Datum::List(items(a.value(0).as_ref())?),
            S::LargeList(a) => Datum::List(items(a.value(0).as_ref())?),
            S::FixedSizeList(a) => Datum::List(items(a.value(0).as_ref())?),
            S::Struct(a) => {
                let mut fields = Vec::with_capacity(a.num_columns());
                for (f, col) in a.fields().iter().zip(a.columns()) {
                    fields.push((f.name().clone(), Self::at(col.as_ref(), 0)?));
                }
                Datum::Struct(fields)
            }
            S::Map(a) => {
                let entries = a.value(0);
                let keys = items(entries.column(0).as_ref())?;
                let values = items(entries.column(1).as_ref())?;
                Datum::Map(keys.into_iter().zip(values).collect())
            }
            S::Dictionary(_, inner) => Self::from_scalar(inner)?,
            other => return Err(format!("Type is not supported: {}", other.data_type())),
        };
        Ok(d)
    }

    fn at(array: &dyn Array, i: usize) -> Result<Datum, String> {
        let v = ScalarValue::try_from_array(array, i).map_err(|e| e.to_string())?;
        Self::from_scalar(&v)
    }
}

fn items(array: &dyn Array) -> Result<Vec<Datum>, String> {
    (0..array.len()).map(|i| Datum::at(array, i)).collect()
}

/// The null of a type.
pub(crate) fn null_of(dt: &DataType) -> Result<ScalarValue, String> {
    ScalarValue::try_new_null(dt).map_err(|e| e.to_string())
}

fn to_array(values: Vec<ScalarValue>, dt: &DataType) -> Result<ArrayRef, String> {
    if values.is_empty() {
        return Ok(new_empty_array(dt));
    }
    let array = ScalarValue::iter_to_array(values).map_err(|e| e.to_string())?;
    if array.data_type() != dt {
        return Err(format!("internal: built {} for {}", array.data_type(), dt));
    }
    Ok(array)
}

/// A one-row list scalar of type `dt` (a `List`) holding `items`.
pub(crate) fn make_list(items: Vec<ScalarValue>, dt: &DataType) -> Result<ScalarValue, String> {
    let DataType::List(field) = dt else {
        return Err(format!("internal: {dt} is not a list"));
    };
    let n = items.len();
    let values = to_array(items, field.data_type())?;
    let list = ListArray::try_new(field.clone(), OffsetBuffer::from_lengths([n]), values, None)
        .map_err(|e| e.to_string())?;
    Ok(ScalarValue::List(Arc::new(list)))
}

/// A one-row struct scalar with one value per field.
pub(crate) fn make_struct(
    values: Vec<ScalarValue>,
    fields: &Fields,
) -> Result<ScalarValue, String> {
    let mut arrays = Vec::with_capacity(values.len());
    for (v, f) in values.into_iter().zip(fields.iter()) {
        arrays.push(to_array(vec![v], f.data_type())?);
    }
    let s = StructArray::try_new(fields.clone(), arrays, None).map_err(|e| e.to_string())?;
    Ok(ScalarValue::Struct(Arc::new(s)))
}

/// A one-row map scalar of type `dt` (a `Map`) holding the entries in order.
pub(crate) fn make_map(
    keys: Vec<ScalarValue>,
    values: Vec<ScalarValue>,
    dt: &DataType,
) -> Result<ScalarValue, String> {
    let DataType::Map(entries_field, ordered) = dt else {
        return Err(format!("internal: {dt} is not a map"));
    };
    let DataType::Struct(kv) = entries_field.data_type() else {
        return Err(format!("internal: {dt} has no entries struct"));
    };
    if kv.len() != 2 {
        return Err(format!("internal: {dt} entries are not key/value"));
    }
    let n = keys.len();
    let key_array = to_array(keys, kv[0].data_type())?;
    let value_array = to_array(values, kv[1].data_type())?;
    let entries = StructArray::try_new(kv.clone(), vec![key_array, value_array], None)
        .map_err(|e| e.to_string())?;
    let map = MapArray::try_new(
        entries_field.clone(),
        OffsetBuffer::from_lengths([n]),
        entries,
        None,
        *ordered,
    )
    .map_err(|e| e.to_string())?;
    Ok(ScalarValue::Map(Arc::new(map)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::types::map_type;
    use datafusion::arrow::datatypes::Field;

    fn list_of(dt: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", dt, true)))
    }

    #[test]
    fn nested_values_build_with_exact_types_and_read_back() {
        let inner = Fields::from(vec![Field::new("A", DataType::Int32, true)]);
        let st = DataType::Struct(inner.clone());
        let lt = list_of(st.clone());
        let mt = map_type(DataType::Utf8, lt.clone());

        let s1 = make_struct(vec![ScalarValue::Int32(Some(1))], &inner).unwrap();
        let s2 = null_of(&st).unwrap();
        let list = make_list(vec![s1, s2], &lt).unwrap();
        assert_eq!(list.data_type(), lt);
        let empty = make_list(vec![], &lt).unwrap();
        let map = make_map(
            vec![
                ScalarValue::Utf8(Some("k".into())),
                ScalarValue::Utf8(Some("e".into())),
            ],
            vec![list, empty],
            &mt,
        )
        .unwrap();
        assert_eq!(map.data_type(), mt);

        assert_eq!(
            Datum::from_scalar(&map).unwrap(),
            Datum::Map(vec![
                (
                    Datum::Str("k".into()),
                    Datum::List(vec![
                        Datum::Struct(vec![("A".into(), Datum::Int(1))]),
                        Datum::Null
                    ])
                ),
                (Datum::Str("e".into()), Datum::List(vec![])),
            ])
        );
        assert_eq!(
            Datum::from_scalar(&null_of(&mt).unwrap()).unwrap(),
            Datum::Null
        );
    }

    #[test]
    fn widens_types_ksqldb_lacks() {
        assert_eq!(
            Datum::from_scalar(&ScalarValue::Int16(Some(7))).unwrap(),
            Datum::Int(7)
        );
        assert_eq!(
            Datum::from_scalar(&ScalarValue::TimestampMicrosecond(Some(1_500), None)).unwrap(),
            Datum::Timestamp(1)
        );
        assert_eq!(
            Datum::from_scalar(&ScalarValue::Utf8View(Some("x".into()))).unwrap(),
            Datum::Str("x".into())
        );
    }
}

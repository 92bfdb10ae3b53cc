//! The KAFKA format: Kafka's own primitive serdes for a single column.
//!
//! | column | bytes                                  |
//! |--------|----------------------------------------|
//! | INT    | 4 bytes, big-endian two's complement   |
//! | BIGINT | 8 bytes, big-endian two's complement   |
//! | DOUBLE | 8 bytes, big-endian IEEE 754           |
//! | STRING | UTF-8 (invalid sequences read as U+FFFD, as Java does) |
//! | BYTES  | the bytes themselves                   |
//!
//! Other types (BOOLEAN, DECIMAL, TIMESTAMP, nested types...) are rejected
//! at `CREATE` time with ksqlDB's message, as are several columns. A NULL
//! writes no bytes (a tombstone for values). With no columns at all the
//! format reads nothing and writes nothing, like ksqlDB's void serde.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;

use super::columns::Column;
use super::scalar::Datum;
use super::{base_type_name, column_list};

fn supported(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Utf8 | DataType::Binary
    )
}

/// Why the format cannot carry these columns, if it cannot.
pub(super) fn unsupported(fields: &[FieldRef], is_key: bool) -> Option<String> {
    if fields.len() > 1 {
        return Some(format!(
            "The 'KAFKA' format only supports a single field. Got: {}",
            column_list(fields, is_key)
        ));
    }
    let f = fields.first()?;
    (!supported(f.data_type())).then(|| {
        format!(
            "The 'KAFKA' format does not support type '{}'",
            base_type_name(f.data_type())
        )
    })
}

fn sized<const N: usize>(bytes: &[u8], deserializer: &str) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("Size of data received by {deserializer} is not {N}"))
}

pub(super) fn decode(bytes: &[u8], fields: &[FieldRef]) -> Result<Vec<ScalarValue>, String> {
    let v = match fields[0].data_type() {
        DataType::Int32 => ScalarValue::Int32(Some(i32::from_be_bytes(sized(
            bytes,
            "IntegerDeserializer",
        )?))),
        DataType::Int64 => {
            ScalarValue::Int64(Some(i64::from_be_bytes(sized(bytes, "LongDeserializer")?)))
        }
        DataType::Float64 => ScalarValue::Float64(Some(f64::from_be_bytes(sized(
            bytes,
            "DoubleDeserializer",
        )?))),
        DataType::Utf8 => ScalarValue::Utf8(Some(String::from_utf8_lossy(bytes).into_owned())),
        DataType::Binary => ScalarValue::Binary(Some(bytes.to_vec())),
        other => {
            return Err(format!(
                "The 'KAFKA' format does not support type '{}'",
                base_type_name(other)
            ))
        }
    };
    Ok(vec![v])
}

/// Decodes a record into the column buffer (as [`decode`]).
pub(super) fn decode_into(
    bytes: &[u8],
    fields: &[FieldRef],
    col: &mut Column,
) -> Result<(), String> {
    match fields[0].data_type() {
        DataType::Int32 => col.push_i32(i32::from_be_bytes(sized(bytes, "IntegerDeserializer")?)),
        DataType::Int64 => col.push_i64(i64::from_be_bytes(sized(bytes, "LongDeserializer")?)),
        DataType::Float64 => col.push_f64(f64::from_be_bytes(sized(bytes, "DoubleDeserializer")?)),
        DataType::Utf8 => col.push_str(&String::from_utf8_lossy(bytes)),
        DataType::Binary => col.push_bytes(bytes),
        _ => col.push_scalar(decode(bytes, fields)?.swap_remove(0)),
    }
    Ok(())
}

pub(super) fn encode(
    values: &[ScalarValue],
    fields: &[FieldRef],
) -> Result<Option<Vec<u8>>, String> {
    let d = Datum::from_scalar(&values[0])?;
    let bytes = match (fields[0].data_type(), d) {
        (_, Datum::Null) => return Ok(None),
        (DataType::Int32, Datum::Int(x)) => x.to_be_bytes().to_vec(),
        (DataType::Int64, Datum::Long(x)) => x.to_be_bytes().to_vec(),
        (DataType::Int64, Datum::Int(x)) => (x as i64).to_be_bytes().to_vec(),
        (DataType::Float64, Datum::Double(x)) => x.to_be_bytes().to_vec(),
        (DataType::Utf8, Datum::Str(s)) => s.into_bytes(),
        (DataType::Binary, Datum::Bytes(b)) => b,
        (dt, _) => {
            return Err(format!(
                "value does not match expected type. expected: {}, but got: {}",
                base_type_name(dt),
                base_type_name(&values[0].data_type())
            ))
        }
    };
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, TimeUnit};

    fn field(dt: DataType) -> Vec<FieldRef> {
        vec![Arc::new(Field::new("K", dt, true))]
    }

    #[test]
    fn round_trips_each_supported_type() {
        let cases = [
            (ScalarValue::Int32(Some(-2)), vec![0xff, 0xff, 0xff, 0xfe]),
            (ScalarValue::Int64(Some(1)), vec![0, 0, 0, 0, 0, 0, 0, 1]),
            (
                ScalarValue::Float64(Some(1.5)),
                1.5f64.to_be_bytes().to_vec(),
            ),
            (ScalarValue::Utf8(Some("bob".into())), b"bob".to_vec()),
            (ScalarValue::Utf8(Some("".into())), vec![]),
            (ScalarValue::Binary(Some(vec![0, 1])), vec![0, 1]),
        ];
        for (v, bytes) in cases {
            let f = field(v.data_type());
            assert_eq!(
                encode(std::slice::from_ref(&v), &f).unwrap(),
                Some(bytes.clone())
            );
            assert_eq!(decode(&bytes, &f).unwrap(), vec![v]);
        }
        assert_eq!(
            encode(&[ScalarValue::Int32(None)], &field(DataType::Int32)).unwrap(),
            None
        );
    }

    #[test]
    fn rejects_wrong_sizes_with_kafka_messages() {
        assert_eq!(
            decode(b"abc", &field(DataType::Int32)).unwrap_err(),
            "Size of data received by IntegerDeserializer is not 4"
        );
        assert_eq!(
            decode(b"", &field(DataType::Int64)).unwrap_err(),
            "Size of data received by LongDeserializer is not 8"
        );
        assert_eq!(
            decode(b"123456789", &field(DataType::Float64)).unwrap_err(),
            "Size of data received by DoubleDeserializer is not 8"
        );
        assert_eq!(
            decode(b"\xff", &field(DataType::Utf8)).unwrap(),
            vec![ScalarValue::Utf8(Some("\u{FFFD}".into()))]
        );
    }

    #[test]
    fn names_unsupported_schemas() {
        assert_eq!(
            unsupported(&field(DataType::Boolean), true).unwrap(),
            "The 'KAFKA' format does not support type 'BOOLEAN'"
        );
        assert_eq!(
            unsupported(&field(DataType::Decimal128(21, 19)), true).unwrap(),
            "The 'KAFKA' format does not support type 'DECIMAL'"
        );
        assert_eq!(
            unsupported(
                &field(DataType::Timestamp(TimeUnit::Millisecond, None)),
                false
            )
            .unwrap(),
            "The 'KAFKA' format does not support type 'TIMESTAMP'"
        );
        let two = vec![
            field(DataType::Int32).remove(0),
            field(DataType::Utf8).remove(0),
        ];
        assert_eq!(
            unsupported(&two, true).unwrap(),
            "The 'KAFKA' format only supports a single field. Got: [`K` INTEGER KEY, `K` STRING KEY]"
        );
        assert_eq!(unsupported(&[], true), None);
        assert_eq!(unsupported(&field(DataType::Binary), false), None);
    }

    #[test]
    fn rejects_values_of_another_type() {
        assert_eq!(
            encode(
                &[ScalarValue::Utf8(Some("x".into()))],
                &field(DataType::Int32)
            )
            .unwrap_err(),
            "value does not match expected type. expected: INTEGER, but got: STRING"
        );
    }
}

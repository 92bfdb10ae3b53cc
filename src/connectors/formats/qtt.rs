//! The conformance runner's record notation.
//!
//! ksqlDB's qtt files write records as JSON: JSON records as the JSON
//! itself, DELIMITED records as their text (`"a,b"`), KAFKA records as the
//! single scalar (`11`, `"bob"`, `1.5`), and `null` for a null record. These
//! helpers turn that notation into the bytes a source topic would hold, and
//! the bytes of an output topic back into it, for comparison.

use datafusion::arrow::datatypes::FieldRef;

use super::json::node_to_serde;
use super::{json_to_scalar, jsontree, scalar_to_json, Format, FormatError, FormatKind};

/// Turns a qtt record (its `key` or `value` JSON) into the bytes the source
/// topic would hold. `None` for a null record or a format without bytes.
pub(crate) fn test_json_to_bytes(
    format: &Format,
    json: &serde_json::Value,
    fields: &[FieldRef],
    is_key: bool,
) -> Result<Option<Vec<u8>>, FormatError> {
    if json.is_null() || fields.is_empty() {
        return Ok(None);
    }
    match format.kind {
        FormatKind::Json => Ok(Some(json.to_string().into_bytes())),
        FormatKind::Delimited => match json {
            serde_json::Value::String(s) => Ok(Some(s.clone().into_bytes())),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                Ok(Some(json.to_string().into_bytes()))
            }
            other => Err(FormatError::ser(
                is_key,
                format!("a DELIMITED test record must be a string, got {other}"),
            )),
        },
        FormatKind::Kafka => {
            let v = json_to_scalar(json, fields[0].data_type())
                .map_err(|e| FormatError::ser(is_key, e.to_string()))?;
            format.encode(&[v], &fields[..1], is_key)
        }
        FormatKind::ProtobufNoSr => {
            // Read the notation as a JSON record would be, then write it.
            let as_json = Format::new(FormatKind::Json).with_wrap_single(format.wrap_single);
            let values = as_json.decode(json.to_string().as_bytes(), fields, is_key)?;
            format.encode(&values, fields, is_key)
        }
        FormatKind::None => Ok(None),
    }
}

/// Turns the bytes of an output record back into the qtt JSON notation.
pub(crate) fn bytes_to_test_json(
    format: &Format,
    bytes: &[u8],
    fields: &[FieldRef],
    is_key: bool,
) -> Result<serde_json::Value, FormatError> {
    match format.kind {
        FormatKind::Json => jsontree::parse(bytes)
            .map(|node| node_to_serde(&node))
            .map_err(|e| FormatError::de(is_key, e)),
        FormatKind::Delimited => Ok(serde_json::Value::String(
            String::from_utf8_lossy(bytes).into_owned(),
        )),
        FormatKind::Kafka if !fields.is_empty() => {
            let values = format.decode(bytes, &fields[..1], is_key)?;
            Ok(scalar_to_json(&values[0]))
        }
        FormatKind::ProtobufNoSr if !fields.is_empty() => {
            let values = format.decode(bytes, fields, is_key)?;
            if format.unwrapped(fields.len(), is_key) {
                return Ok(scalar_to_json(&values[0]));
            }
            Ok(serde_json::Value::Object(
                fields
                    .iter()
                    .zip(&values)
                    .map(|(f, v)| (f.name().clone(), scalar_to_json(v)))
                    .collect(),
            ))
        }
        FormatKind::Kafka | FormatKind::ProtobufNoSr | FormatKind::None => {
            Ok(serde_json::Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::catalog::types::SqlType;
    use serde_json::json;

    fn cols(cols: &[(&str, SqlType)]) -> Vec<FieldRef> {
        crate::connectors::formats::test_fields(cols)
    }

    /// (format, columns, is_key, qtt notation, expected bytes if checked)
    type Case = (
        Format,
        Vec<FieldRef>,
        bool,
        serde_json::Value,
        Option<&'static [u8]>,
    );

    fn fmt(kind: FormatKind) -> Format {
        Format::new(kind)
    }

    #[test]
    fn conformance_notation_round_trips() {
        let cases: Vec<Case> = vec![
            (
                fmt(FormatKind::Kafka),
                cols(&[("K", SqlType::Int)]),
                true,
                json!(11),
                Some(&[0, 0, 0, 11]),
            ),
            (
                fmt(FormatKind::Kafka),
                cols(&[("K", SqlType::String)]),
                true,
                json!("bob"),
                Some(b"bob"),
            ),
            (
                fmt(FormatKind::Kafka),
                cols(&[("K", SqlType::Double)]),
                true,
                json!(1.1),
                None,
            ),
            (
                fmt(FormatKind::Kafka),
                cols(&[("V", SqlType::Bigint)]),
                false,
                json!(2),
                None,
            ),
            (
                fmt(FormatKind::Delimited),
                cols(&[("K1", SqlType::String), ("K2", SqlType::String)]),
                true,
                json!("foo,bar"),
                Some(b"foo,bar"),
            ),
            (
                fmt(FormatKind::Json),
                cols(&[("V", SqlType::Int)]),
                false,
                json!({"V": 0}),
                Some(br#"{"V":0}"#),
            ),
            (
                fmt(FormatKind::Json),
                cols(&[("K", SqlType::Array(Box::new(SqlType::Double)))]),
                true,
                json!([10.1]),
                Some(b"[10.1]"),
            ),
        ];
        for (format, fields, is_key, value, expected) in cases {
            let bytes = test_json_to_bytes(&format, &value, &fields, is_key)
                .unwrap()
                .unwrap();
            if let Some(e) = expected {
                assert_eq!(bytes, e, "{value}");
            }
            assert_eq!(
                bytes_to_test_json(&format, &bytes, &fields, is_key).unwrap(),
                value
            );
        }
        let k = cols(&[("K", SqlType::Int)]);
        assert_eq!(
            test_json_to_bytes(&fmt(FormatKind::Kafka), &json!(null), &k, true).unwrap(),
            None
        );
        assert_eq!(
            test_json_to_bytes(&fmt(FormatKind::None), &json!(1), &[], true).unwrap(),
            None
        );
        assert_eq!(
            bytes_to_test_json(&fmt(FormatKind::None), b"", &[], true).unwrap(),
            json!(null)
        );
        // The DELIMITED notation is the record text itself.
        let d = cols(&[("V", SqlType::Decimal(33, 16))]);
        let delimited = fmt(FormatKind::Delimited);
        let bytes = test_json_to_bytes(&delimited, &json!("\"-12345.12\""), &d, false)
            .unwrap()
            .unwrap();
        let v = delimited.decode(&bytes, &d, false).unwrap();
        let out = delimited.encode(&v, &d, false).unwrap().unwrap();
        assert_eq!(
            bytes_to_test_json(&delimited, &out, &d, false).unwrap(),
            json!("\"-12345.1200000000000000\"")
        );
    }
}

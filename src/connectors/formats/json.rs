//! The JSON format, after ksqlDB's `KsqlJsonDeserializer` and Kafka
//! Connect's `JsonConverter` (schemas off, decimals as numbers).
//!
//! Reading walks the parsed tree against the column type and applies
//! ksqlDB's coercions:
//!
//! | column    | accepts                                                        |
//! |-----------|----------------------------------------------------------------|
//! | BOOLEAN   | `true` / `false` only                                          |
//! | INT/BIGINT| numbers (fractions truncated, Jackson `intValue`), numeric strings |
//! | DOUBLE    | numbers, strings Java's `Double.parseDouble` accepts           |
//! | DECIMAL   | numbers and strings, exact; must fit without rounding          |
//! | STRING    | anything: text as is, numbers and booleans as written, objects as compact JSON, arrays as `[a, b]` |
//! | BYTES     | base64 strings                                                 |
//! | TIMESTAMP / DATE / TIME | epoch millis / epoch days / millis of day, as numbers or numeric strings |
//! | ARRAY / MAP / STRUCT | arrays / objects / objects (members matched exactly, else upper-cased) |
//!
//! A JSON `null` (or a missing member) is a NULL column; a wrapped record
//! that is `null` as a whole is a null record. Errors read like ksqlDB's:
//! "Can't convert type. sourceType: TextNode, requiredType: INTEGER, path: $.V".
//!
//! Writing produces compact JSON in column order: DOUBLE as Java prints it,
//! DECIMAL in plain notation with its scale (`3.40`), TIMESTAMP/DATE/TIME
//! as numbers, BYTES as base64, MAP as an object. An unwrapped NULL writes
//! no bytes.

use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::ScalarValue;

use super::jsontree::{self, is_integral, write_string, JsonNode};
use super::scalar::{self, Datum};
use super::text::{
    base64_decode, base64_encode, decimal_to_f64, format_decimal, java_double, parse_java_double,
    parse_java_long, DecimalText,
};
use super::FormatError;
use crate::catalog::types::display_arrow;

/// Why the format cannot carry these columns, if it cannot.
pub(super) fn unsupported(fields: &[FieldRef]) -> Option<String> {
    super::has_non_string_map_key(fields)
        .then(|| "JSON only supports MAP types with STRING keys".to_string())
}

/// Decodes a record; `Ok(None)` for a wrapped record that is `null`.
pub(super) fn decode(
    bytes: &[u8],
    fields: &[FieldRef],
    unwrapped: bool,
) -> Result<Option<Vec<ScalarValue>>, String> {
    let node = jsontree::parse(bytes)?;
    if unwrapped {
        let v = coerce(&node, fields[0].data_type()).map_err(CoerceError::finish)?;
        return Ok(Some(vec![v]));
    }
    match &node {
        JsonNode::Null => Ok(None),
        JsonNode::Object(_) => fields
            .iter()
            .map(|f| {
                let member = node.member(f.name()).unwrap_or(&JsonNode::Null);
                coerce(member, f.data_type())
                    .map_err(|e| e.under(&format!(".{}", f.name())).finish())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => {
            let row = DataType::Struct(fields.iter().cloned().collect());
            Err(CoerceError::convert(other, &display_arrow(&row)).finish())
        }
    }
}

/// Encodes a record; `None` for an unwrapped NULL.
pub(super) fn encode(
    values: &[ScalarValue],
    fields: &[FieldRef],
    unwrapped: bool,
) -> Result<Option<Vec<u8>>, String> {
    let mut out = String::new();
    if unwrapped {
        let d = Datum::from_scalar(&values[0])?;
        if d == Datum::Null {
            return Ok(None);
        }
        write_datum(&mut out, &d);
    } else {
        out.push('{');
        for (i, (v, f)) in values.iter().zip(fields).enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(&mut out, f.name());
            out.push(':');
            write_datum(&mut out, &Datum::from_scalar(v)?);
        }
        out.push('}');
    }
    Ok(Some(out.into_bytes()))
}

pub(super) fn write_datum(out: &mut String, d: &Datum) {
    match d {
        Datum::Null => out.push_str("null"),
        Datum::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Datum::Int(x) | Datum::Date(x) | Datum::Time(x) => out.push_str(&x.to_string()),
        Datum::Long(x) | Datum::Timestamp(x) => out.push_str(&x.to_string()),
        // Jackson quotes NaN and the infinities (QUOTE_NON_NUMERIC_NUMBERS).
        Datum::Double(x) if !x.is_finite() => write_string(out, &java_double(*x)),
        Datum::Double(x) => out.push_str(&java_double(*x)),
        Datum::Decimal(v, _, s) => out.push_str(&format_decimal(*v, *s)),
        Datum::Str(s) => write_string(out, s),
        Datum::Bytes(b) => write_string(out, &base64_encode(b)),
        Datum::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_datum(out, item);
            }
            out.push(']');
        }
        Datum::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, &key_text(k));
                out.push(':');
                write_datum(out, v);
            }
            out.push('}');
        }
        Datum::Struct(fields) => {
            out.push('{');
            for (i, (name, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_datum(out, v);
            }
            out.push('}');
        }
    }
}

/// A map key as an object member name.
fn key_text(k: &Datum) -> String {
    match k {
        Datum::Str(s) => s.clone(),
        other => {
            let mut s = String::new();
            write_datum(&mut s, other);
            s
        }
    }
}

/// A coercion failure: ksqlDB's message and the path to the value.
#[derive(Debug)]
pub(super) struct CoerceError {
    message: String,
    path: String,
}

impl CoerceError {
    pub(super) fn new(message: impl Into<String>) -> CoerceError {
        CoerceError {
            message: message.into(),
            path: String::new(),
        }
    }

    fn convert(node: &JsonNode, required: &str) -> CoerceError {
        CoerceError::convert_kind(node.jackson_kind(), required)
    }

    /// "Can't convert type" for a node of Jackson class `kind`.
    pub(super) fn convert_kind(kind: &str, required: &str) -> CoerceError {
        CoerceError::new(format!(
            "Can't convert type. sourceType: {kind}, requiredType: {required}"
        ))
    }

    pub(super) fn coerce_string(target: &str) -> CoerceError {
        CoerceError::new(format!("Can't coerce string to type. targetType: {target}"))
    }

    pub(super) fn under(mut self, part: &str) -> CoerceError {
        self.path.insert_str(0, part);
        self
    }

    pub(super) fn finish(self) -> String {
        format!("{}, path: ${}", self.message, self.path)
    }
}

/// Jackson's `asLong()` of a number: the low 64 bits of the integer part.
pub(super) fn jackson_long(n: &str) -> i64 {
    if is_integral(n) {
        let (neg, digits) = match n.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, n),
        };
        let v = digits.bytes().fold(0u64, |acc, b| {
            acc.wrapping_mul(10).wrapping_add((b - b'0') as u64)
        });
        let v = v as i64;
        if neg {
            v.wrapping_neg()
        } else {
            v
        }
    } else {
        n.parse::<f64>().map(|f| f as i64).unwrap_or(0)
    }
}

pub(super) fn coerce(node: &JsonNode, dt: &DataType) -> Result<ScalarValue, CoerceError> {
    if *node == JsonNode::Null {
        return scalar::null_of(dt).map_err(CoerceError::new);
    }
    let long_of = |target: &str| -> Result<i64, CoerceError> {
        match node {
            JsonNode::Number(n) => Ok(jackson_long(n)),
            JsonNode::String(s) => {
                parse_java_long(s).ok_or_else(|| CoerceError::coerce_string(target))
            }
            other => Err(CoerceError::convert(other, target)),
        }
    };
    Ok(match dt {
        DataType::Boolean => match node {
            JsonNode::Bool(b) => ScalarValue::Boolean(Some(*b)),
            other => return Err(CoerceError::convert(other, "BOOLEAN")),
        },
        DataType::Int32 => match node {
            JsonNode::Number(n) => ScalarValue::Int32(Some(jackson_long(n) as i32)),
            JsonNode::String(s) => ScalarValue::Int32(Some(
                super::text::parse_java_int(s)
                    .ok_or_else(|| CoerceError::coerce_string("INTEGER"))?,
            )),
            other => return Err(CoerceError::convert(other, "INTEGER")),
        },
        DataType::Int64 => ScalarValue::Int64(Some(long_of("BIGINT")?)),
        DataType::Float64 => match node {
            JsonNode::Number(n) => ScalarValue::Float64(Some(n.parse().unwrap_or(f64::NAN))),
            JsonNode::String(s) => ScalarValue::Float64(Some(
                parse_java_double(s).ok_or_else(|| CoerceError::coerce_string("DOUBLE"))?,
            )),
            other => return Err(CoerceError::convert(other, "DOUBLE")),
        },
        DataType::Decimal128(p, s) => {
            let text = match node {
                JsonNode::Number(n) | JsonNode::String(n) => n,
                other => return Err(CoerceError::convert(other, &display_arrow(dt))),
            };
            let d = DecimalText::parse(text.trim())
                .ok_or_else(|| CoerceError::coerce_string(&display_arrow(dt)))?;
            ScalarValue::Decimal128(
                Some(d.to_decimal128(*p, *s).map_err(CoerceError::new)?),
                *p,
                *s,
            )
        }
        DataType::Utf8 => ScalarValue::Utf8(Some(as_text(node)?)),
        DataType::Binary => match node {
            JsonNode::String(s) => {
                ScalarValue::Binary(Some(base64_decode(s).ok_or_else(|| {
                    CoerceError::new(format!("Value is not a valid Base64 encoded string: {s}"))
                })?))
            }
            other => return Err(CoerceError::convert(other, "BYTES")),
        },
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            ScalarValue::TimestampMillisecond(Some(long_of("TIMESTAMP")?), tz.clone())
        }
        DataType::Date32 => {
            let days = long_of("DATE")?;
            ScalarValue::Date32(Some(
                i32::try_from(days)
                    .map_err(|_| CoerceError::new(format!("Date out of range: {days} days")))?,
            ))
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let ms = long_of("TIME")?;
            if !(0..=86_400_000).contains(&ms) {
                return Err(CoerceError::new(
                    "Time values must use number of milliseconds greater than 0 and less than \
                     86400000.",
                ));
            }
            ScalarValue::Time32Millisecond(Some(ms as i32))
        }
        DataType::List(item) => match node {
            JsonNode::Array(items) => {
                let mut values = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    values.push(
                        coerce(it, item.data_type()).map_err(|e| e.under(&format!("[{i}]")))?,
                    );
                }
                scalar::make_list(values, dt).map_err(CoerceError::new)?
            }
            other => return Err(CoerceError::convert(other, &display_arrow(dt))),
        },
        DataType::Map(entries, _) => {
            let (JsonNode::Object(members), DataType::Struct(kv)) = (node, entries.data_type())
            else {
                return Err(CoerceError::convert(node, &display_arrow(dt)));
            };
            let mut keys = Vec::with_capacity(members.len());
            let mut values = Vec::with_capacity(members.len());
            for (k, v) in members {
                // Jackson keeps the last of duplicate members.
                if let Some(i) = keys
                    .iter()
                    .position(|x| x == &ScalarValue::Utf8(Some(k.clone())))
                {
                    keys.remove(i);
                    values.remove(i);
                }
                keys.push(
                    coerce(&JsonNode::String(k.clone()), kv[0].data_type())
                        .map_err(|e| e.under(&format!(".{k}.key")))?,
                );
                values.push(
                    coerce(v, kv[1].data_type()).map_err(|e| e.under(&format!(".{k}.value")))?,
                );
            }
            scalar::make_map(keys, values, dt).map_err(CoerceError::new)?
        }
        DataType::Struct(fields) => {
            if !matches!(node, JsonNode::Object(_)) {
                return Err(CoerceError::convert(node, &display_arrow(dt)));
            }
            let mut values = Vec::with_capacity(fields.len());
            for f in fields {
                let member = node.member(f.name()).unwrap_or(&JsonNode::Null);
                values.push(
                    coerce(member, f.data_type())
                        .map_err(|e| e.under(&format!(".{}", f.name())))?,
                );
            }
            scalar::make_struct(values, fields).map_err(CoerceError::new)?
        }
        other => return Err(CoerceError::new(format!("Type is not supported: {other}"))),
    })
}

/// ksqlDB's STRING coercion of any JSON value.
pub(super) fn as_text(node: &JsonNode) -> Result<String, CoerceError> {
    Ok(match node {
        JsonNode::String(s) => s.clone(),
        JsonNode::Null => "null".into(),
        JsonNode::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                parts.push(as_text(it).map_err(|e| e.under(&format!("[{i}]")))?);
            }
            format!("[{}]", parts.join(", "))
        }
        other => {
            let mut s = String::new();
            other.write(&mut s);
            s
        }
    })
}

/// A ScalarValue as a JSON value, as ksqlDB's JSON format writes it
/// (decimals become doubles: `serde_json::Value` has no exact decimals).
pub(crate) fn scalar_to_json(v: &ScalarValue) -> serde_json::Value {
    match Datum::from_scalar(v) {
        Ok(d) => datum_to_json(&d),
        Err(_) => serde_json::Value::Null,
    }
}

fn datum_to_json(d: &Datum) -> serde_json::Value {
    use serde_json::Value as J;
    match d {
        Datum::Null => J::Null,
        Datum::Bool(b) => J::Bool(*b),
        Datum::Int(x) | Datum::Date(x) | Datum::Time(x) => J::from(*x),
        Datum::Long(x) | Datum::Timestamp(x) => J::from(*x),
        Datum::Double(x) => serde_json::Number::from_f64(*x)
            .map(J::Number)
            .unwrap_or_else(|| J::String(java_double(*x))),
        Datum::Decimal(v, _, s) => serde_json::Number::from_f64(decimal_to_f64(*v, *s))
            .map(J::Number)
            .unwrap_or(J::Null),
        Datum::Str(s) => J::String(s.clone()),
        Datum::Bytes(b) => J::String(base64_encode(b)),
        Datum::List(items) => J::Array(items.iter().map(datum_to_json).collect()),
        Datum::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (key_text(k), datum_to_json(v)))
                .collect(),
        ),
        Datum::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), datum_to_json(v)))
                .collect(),
        ),
    }
}

/// A JSON value as a ScalarValue of type `dt`, with the JSON format's coercions.
pub(crate) fn json_to_scalar(
    v: &serde_json::Value,
    dt: &DataType,
) -> Result<ScalarValue, FormatError> {
    coerce(&JsonNode::from_serde(v), dt).map_err(|e| FormatError::Invalid(e.finish()))
}

/// A parsed tree as a `serde_json::Value` (integers stay integers, other
/// numbers become doubles, numbers beyond doubles keep their text).
pub(crate) fn node_to_serde(node: &JsonNode) -> serde_json::Value {
    use serde_json::Value as J;
    match node {
        JsonNode::Null => J::Null,
        JsonNode::Bool(b) => J::Bool(*b),
        JsonNode::Number(n) => {
            let as_int = is_integral(n)
                .then(|| {
                    n.parse::<i64>()
                        .map(J::from)
                        .or_else(|_| n.parse::<u64>().map(J::from))
                })
                .and_then(Result::ok);
            as_int
                .or_else(|| {
                    n.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(J::Number)
                })
                .unwrap_or_else(|| J::String(n.clone()))
        }
        JsonNode::String(s) => J::String(s.clone()),
        JsonNode::Array(items) => J::Array(items.iter().map(node_to_serde).collect()),
        JsonNode::Object(members) => J::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), node_to_serde(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::catalog::types::SqlType;

    fn fields(cols: &[(&str, SqlType)]) -> Vec<FieldRef> {
        crate::connectors::formats::test_fields(cols)
    }

    fn dec(
        bytes: &str,
        f: &[FieldRef],
        unwrapped: bool,
    ) -> Result<Option<Vec<ScalarValue>>, String> {
        decode(bytes.as_bytes(), f, unwrapped)
    }

    fn enc(values: &[ScalarValue], f: &[FieldRef], unwrapped: bool) -> Option<String> {
        encode(values, f, unwrapped)
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn matches_members_exactly_then_case_insensitively() {
        let f = fields(&[
            ("ID", SqlType::Bigint),
            ("name", SqlType::String),
            ("V", SqlType::Int),
        ]);
        assert_eq!(
            dec(r#"{"id": 1, "name": "a", "NAME": "b"}"#, &f, false).unwrap(),
            Some(vec![
                ScalarValue::Int64(Some(1)),
                ScalarValue::Utf8(Some("a".into())),
                ScalarValue::Int32(None),
            ])
        );
        assert_eq!(dec("null", &f, false).unwrap(), None);
    }

    #[test]
    fn coerces_as_ksqldb_does() {
        let f = fields(&[
            ("I", SqlType::Int),
            ("L", SqlType::Bigint),
            ("D", SqlType::Double),
            ("S", SqlType::String),
            ("S2", SqlType::String),
            ("S3", SqlType::String),
            ("E", SqlType::Decimal(3, 2)),
            ("T", SqlType::Timestamp),
            ("B", SqlType::Bytes),
        ]);
        let row = r#"{"I": "12", "L": 1.9, "D": "2.5", "S": 10, "S2": {"a": [1, "x"]},
                      "S3": [1, null, "b"], "E": "3.4", "T": "12", "B": "YQ=="}"#;
        assert_eq!(
            dec(row, &f, false).unwrap().unwrap(),
            vec![
                ScalarValue::Int32(Some(12)),
                ScalarValue::Int64(Some(1)),
                ScalarValue::Float64(Some(2.5)),
                ScalarValue::Utf8(Some("10".into())),
                ScalarValue::Utf8(Some(r#"{"a":[1,"x"]}"#.into())),
                ScalarValue::Utf8(Some("[1, null, b]".into())),
                ScalarValue::Decimal128(Some(340), 3, 2),
                ScalarValue::TimestampMillisecond(Some(12), None),
                ScalarValue::Binary(Some(b"a".to_vec())),
            ]
        );
    }

    #[test]
    fn reports_errors_with_ksqldb_wording_and_path() {
        let f = fields(&[("V", SqlType::Int)]);
        assert_eq!(
            dec(r#"{"V": true}"#, &f, false).unwrap_err(),
            "Can't convert type. sourceType: BooleanNode, requiredType: INTEGER, path: $.V"
        );
        assert_eq!(
            dec(r#"{"V": "x"}"#, &f, false).unwrap_err(),
            "Can't coerce string to type. targetType: INTEGER, path: $.V"
        );
        assert_eq!(
            dec("[1]", &f, false).unwrap_err(),
            "Can't convert type. sourceType: ArrayNode, requiredType: STRUCT<`V` INTEGER>, path: $"
        );
        let nested = fields(&[(
            "A",
            SqlType::Array(Box::new(SqlType::Map(
                Box::new(SqlType::String),
                Box::new(SqlType::Boolean),
            ))),
        )]);
        assert_eq!(
            dec(r#"{"A": [{"k": true}, {"k": 1}]}"#, &nested, false).unwrap_err(),
            "Can't convert type. sourceType: IntNode, requiredType: BOOLEAN, path: $.A[1].k.value"
        );
        assert_eq!(
            dec("10", &fields(&[("D", SqlType::Decimal(2, 1))]), true).unwrap_err(),
            "Numeric field overflow: A field with precision 2 and scale 1 must round to an \
             absolute value less than 10^1. Got 10, path: $"
        );
        for bad in ["", "{", "\u{1}", "[1,]", "01"] {
            assert!(dec(bad, &f, false).is_err(), "{bad:?}");
        }
        assert!(decode(b"{\"V\": \"\xff\"}", &f, false).is_err());
    }

    #[test]
    fn unwrapped_values_are_the_whole_document() {
        let f = fields(&[("FOO", SqlType::Array(Box::new(SqlType::String)))]);
        let v = dec("[1, 2, null]", &f, true).unwrap().unwrap();
        assert_eq!(enc(&v, &f, true).unwrap(), r#"["1","2",null]"#);
        assert_eq!(enc(&v, &f, false).unwrap(), r#"{"FOO":["1","2",null]}"#);
        // A bare null is a row with a NULL column, and writes no bytes.
        let null = dec("null", &f, true).unwrap().unwrap();
        assert!(null[0].is_null());
        assert_eq!(enc(&null, &f, true), None);
        assert_eq!(enc(&null, &f, false).unwrap(), r#"{"FOO":null}"#);
    }

    #[test]
    fn round_trips_every_type() {
        let f = fields(&[
            ("B", SqlType::Boolean),
            ("I", SqlType::Int),
            ("L", SqlType::Bigint),
            ("D", SqlType::Double),
            ("E", SqlType::Decimal(33, 16)),
            ("S", SqlType::String),
            ("Y", SqlType::Bytes),
            ("T", SqlType::Timestamp),
            ("DT", SqlType::Date),
            ("TM", SqlType::Time),
            (
                "M",
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
            ),
            (
                "ST",
                SqlType::Struct(vec![
                    ("a".into(), SqlType::Int),
                    ("B".into(), SqlType::Array(Box::new(SqlType::Int))),
                ]),
            ),
        ]);
        let json = r#"{"B":true,"I":-5,"L":998877665544332211,"D":1.0E10,"E":12345678987654321.2345678987654321,"S":"h\"i\n","Y":"YWI=","T":1600000000000,"DT":-1,"TM":86400000,"M":{"a":45.67,"b":null},"ST":{"a":1,"B":[1,null]}}"#;
        let v = dec(json, &f, false).unwrap().unwrap();
        assert_eq!(
            v[4],
            ScalarValue::Decimal128(Some(123456789876543212345678987654321), 33, 16)
        );
        assert_eq!(enc(&v, &f, false).unwrap(), json);
        assert_eq!(
            scalar_to_json(&v[11]),
            serde_json::json!({"a": 1, "B": [1, null]})
        );
        assert_eq!(scalar_to_json(&v[6]), serde_json::json!("YWI="));
        assert_eq!(scalar_to_json(&v[3]), serde_json::json!(1e10));
    }

    #[test]
    fn converts_test_json_values() {
        let dt = SqlType::Decimal(6, 4).to_arrow();
        assert_eq!(
            json_to_scalar(&serde_json::json!(12.365), &dt).unwrap(),
            ScalarValue::Decimal128(Some(123650), 6, 4)
        );
        assert_eq!(
            scalar_to_json(&ScalarValue::Decimal128(Some(123650), 6, 4)),
            serde_json::json!(12.365)
        );
        let st = SqlType::Struct(vec![("F".into(), SqlType::Double)]).to_arrow();
        let v = json_to_scalar(&serde_json::json!({"f": 45.67}), &st).unwrap();
        assert_eq!(scalar_to_json(&v), serde_json::json!({"F": 45.67}));
        assert!(json_to_scalar(&serde_json::json!("x"), &SqlType::Int.to_arrow()).is_err());
        assert_eq!(
            node_to_serde(&jsontree::parse(b"[1, 2.50, 1e400, 18446744073709551615]").unwrap()),
            serde_json::json!([1, 2.5, "1e400", 18446744073709551615u64])
        );
    }

    #[test]
    fn validates_map_keys() {
        let bad = fields(&[(
            "M",
            SqlType::Array(Box::new(SqlType::Map(
                Box::new(SqlType::Int),
                Box::new(SqlType::Int),
            ))),
        )]);
        assert_eq!(
            unsupported(&bad).unwrap(),
            "JSON only supports MAP types with STRING keys"
        );
        let good = fields(&[(
            "M",
            SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int)),
        )]);
        assert_eq!(unsupported(&good), None);
    }
}

//! The DELIMITED format: one CSV record per key or value, as ksqlDB reads
//! and writes it with Apache Commons CSV 1.4 (`CSVFormat.DEFAULT` with the
//! chosen delimiter).
//!
//! Reading: fields are split on the delimiter; a field that starts with `"`
//! is quoted (`""` inside is one quote, whitespace may follow the closing
//! quote, anything else is an error). Line breaks end a record; only the
//! first record counts, but every record must parse. An empty field, quoted
//! or not, is NULL whatever the column type, STRING included. The field
//! count must equal the column count. Values parse as Java does
//! (`Integer.parseInt`, `Boolean.parseBoolean`: anything but `true` is false,
//! ...); BYTES are base64; TIMESTAMP, DATE and TIME are numbers.
//!
//! Writing: NULL is an empty field. Commons CSV 1.4's minimal quoting
//! applies: a field is quoted if it contains the delimiter, a quote, CR or
//! LF, starts with a character up to `#`, ends with one up to space, or — for
//! the first field of the record only — is empty or starts with anything but
//! an ASCII letter or digit. That is why ksqlDB writes `"-1",a,1`.
//! DOUBLE prints as Java prints it; DECIMAL in plain notation with its scale.

use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::ScalarValue;

use super::base_type_name;
use super::columns::Column;
use super::scalar::{self, Datum};
use super::text::{
    base64_decode, base64_encode, format_decimal, java_double, parse_java_bool, parse_java_double,
    parse_java_int, parse_java_long, DecimalText,
};

/// Why the format cannot carry these columns, if it cannot.
pub(super) fn unsupported(fields: &[FieldRef]) -> Option<String> {
    fields.iter().find_map(|f| {
        matches!(
            f.data_type(),
            DataType::List(_) | DataType::Map(_, _) | DataType::Struct(_)
        )
        .then(|| {
            format!(
                "The 'DELIMITED' format does not support type '{}', column: `{}`",
                base_type_name(f.data_type()),
                f.name()
            )
        })
    })
}

pub(super) fn decode(
    bytes: &[u8],
    fields: &[FieldRef],
    delimiter: char,
) -> Result<Vec<ScalarValue>, String> {
    // Java decodes malformed UTF-8 to U+FFFD rather than failing.
    let text = String::from_utf8_lossy(bytes);
    let records = parse_records(&text, delimiter)?;
    let Some(record) = records.into_iter().next() else {
        return Err("No fields in record".into());
    };
    if record.len() != fields.len() {
        return Err(format!(
            "Column count mismatch on deserialization. expected: {}, got: {}",
            fields.len(),
            record.len()
        ));
    }
    record
        .iter()
        .zip(fields)
        .map(|(v, f)| parse_field(v, f.data_type()))
        .collect()
}

/// Decodes a record into one column buffer per field (as [`decode`]).
pub(super) fn decode_into(
    bytes: &[u8],
    fields: &[FieldRef],
    delimiter: char,
    cols: &mut [Column],
) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    // Without quotes or line breaks the record is its fields split on the
    // delimiter (what the lexer below does with such text).
    if !text.is_empty() && !text.contains(['"', '\n', '\r']) {
        let n = text.matches(delimiter).count() + 1;
        if n != fields.len() {
            return Err(format!(
                "Column count mismatch on deserialization. expected: {}, got: {n}",
                fields.len()
            ));
        }
        for ((v, f), col) in text.split(delimiter).zip(fields).zip(cols.iter_mut()) {
            parse_field_into(v, f.data_type(), col)?;
        }
        return Ok(());
    }
    let records = parse_records(&text, delimiter)?;
    let Some(record) = records.into_iter().next() else {
        return Err("No fields in record".into());
    };
    if record.len() != fields.len() {
        return Err(format!(
            "Column count mismatch on deserialization. expected: {}, got: {}",
            fields.len(),
            record.len()
        ));
    }
    for ((v, f), col) in record.iter().zip(fields).zip(cols.iter_mut()) {
        parse_field_into(v, f.data_type(), col)?;
    }
    Ok(())
}

/// [`parse_field`] into a column buffer.
fn parse_field_into(v: &str, dt: &DataType, col: &mut Column) -> Result<(), String> {
    if v.is_empty() {
        col.push_null();
        return Ok(());
    }
    let bad = || format!("For input string: \"{v}\"");
    match dt {
        DataType::Boolean => col.push_bool(parse_java_bool(v)),
        DataType::Int32 | DataType::Date32 => col.push_i32(parse_java_int(v).ok_or_else(bad)?),
        DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _) => {
            col.push_i64(parse_java_long(v).ok_or_else(bad)?)
        }
        DataType::Float64 => col.push_f64(parse_java_double(v).ok_or_else(bad)?),
        DataType::Utf8 => col.push_str(v),
        _ => col.push_scalar(parse_field(v, dt)?),
    }
    Ok(())
}

fn parse_field(v: &str, dt: &DataType) -> Result<ScalarValue, String> {
    if v.is_empty() {
        return scalar::null_of(dt);
    }
    let bad = || format!("For input string: \"{v}\"");
    Ok(match dt {
        DataType::Boolean => ScalarValue::Boolean(Some(parse_java_bool(v))),
        DataType::Int32 => ScalarValue::Int32(Some(parse_java_int(v).ok_or_else(bad)?)),
        DataType::Int64 => ScalarValue::Int64(Some(parse_java_long(v).ok_or_else(bad)?)),
        DataType::Float64 => ScalarValue::Float64(Some(parse_java_double(v).ok_or_else(bad)?)),
        DataType::Utf8 => ScalarValue::Utf8(Some(v.to_string())),
        DataType::Binary => {
            ScalarValue::Binary(Some(base64_decode(v).ok_or_else(|| {
                format!("Value is not a valid Base64 encoded string: {v}")
            })?))
        }
        DataType::Decimal128(p, s) => {
            let d = DecimalText::parse(v).ok_or_else(bad)?;
            ScalarValue::Decimal128(Some(d.to_decimal128(*p, *s)?), *p, *s)
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let ms = parse_java_long(v).ok_or_else(bad)?;
            if !(0..=86_400_000).contains(&ms) {
                return Err(
                    "Time values must use number of milliseconds greater than 0 and \
                            less than 86400000."
                        .into(),
                );
            }
            ScalarValue::Time32Millisecond(Some(ms as i32))
        }
        DataType::Date32 => ScalarValue::Date32(Some(parse_java_int(v).ok_or_else(bad)?)),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            ScalarValue::TimestampMillisecond(Some(parse_java_long(v).ok_or_else(bad)?), tz.clone())
        }
        other => {
            return Err(format!(
                "The 'DELIMITED' format does not support type '{}'",
                base_type_name(other)
            ))
        }
    })
}

/// Splits CSV text into records of fields, as Commons CSV 1.4's lexer does
/// with `CSVFormat.DEFAULT` (quote `"`, no escape, empty lines skipped).
pub(super) fn parse_records(text: &str, delimiter: char) -> Result<Vec<Vec<String>>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = 0;
    let mut line = 1;
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let is_eol = |c: char| c == '\n' || c == '\r';
    // Consumes an end of line at `pos` (CRLF counts once).
    let eat_eol = |pos: &mut usize, line: &mut usize| {
        if chars[*pos] == '\r' && chars.get(*pos + 1) == Some(&'\n') {
            *pos += 1;
        }
        *pos += 1;
        *line += 1;
    };
    loop {
        // At the start of a line, skip empty lines.
        if record.is_empty() {
            while pos < chars.len() && is_eol(chars[pos]) {
                eat_eol(&mut pos, &mut line);
            }
            if pos >= chars.len() {
                return Ok(records);
            }
        }
        let mut field = String::new();
        // How this field ends: delimiter, end of line, or end of input.
        let end: Option<char>;
        if chars.get(pos) == Some(&'"') {
            let start_line = line;
            pos += 1;
            loop {
                match chars.get(pos) {
                    None => {
                        return Err(format!(
                            "(startline {start_line}) EOF reached before encapsulated token \
                             finished"
                        ))
                    }
                    Some('"') if chars.get(pos + 1) == Some(&'"') => {
                        field.push('"');
                        pos += 2;
                    }
                    Some('"') => {
                        pos += 1;
                        break;
                    }
                    Some(&c) => {
                        if is_eol(c) && !(c == '\r' && chars.get(pos + 1) == Some(&'\n')) {
                            line += 1;
                        }
                        field.push(c);
                        pos += 1;
                    }
                }
            }
            // Only whitespace may follow the closing quote.
            loop {
                match chars.get(pos) {
                    None => {
                        end = None;
                        break;
                    }
                    Some(&c) if c == delimiter || is_eol(c) => {
                        end = Some(c);
                        break;
                    }
                    Some(&c) if c.is_whitespace() => pos += 1,
                    Some(_) => {
                        return Err(format!(
                            "(line {line}) invalid char between encapsulated token and delimiter"
                        ))
                    }
                }
            }
        } else {
            let start = pos;
            while pos < chars.len() && chars[pos] != delimiter && !is_eol(chars[pos]) {
                pos += 1;
            }
            field.extend(&chars[start..pos]);
            end = chars.get(pos).copied();
        }
        record.push(field);
        match end {
            Some(c) if c == delimiter => pos += 1,
            Some(_) => {
                eat_eol(&mut pos, &mut line);
                records.push(std::mem::take(&mut record));
            }
            None => {
                records.push(record);
                return Ok(records);
            }
        }
    }
}

pub(super) fn encode(values: &[ScalarValue], delimiter: char) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        let text = match Datum::from_scalar(v)? {
            Datum::Null => continue,
            Datum::Bool(b) => b.to_string(),
            Datum::Int(x) | Datum::Date(x) | Datum::Time(x) => x.to_string(),
            Datum::Long(x) | Datum::Timestamp(x) => x.to_string(),
            Datum::Double(x) => java_double(x),
            Datum::Decimal(x, _, s) => format_decimal(x, s),
            Datum::Str(s) => s,
            Datum::Bytes(b) => base64_encode(&b),
            Datum::List(_) | Datum::Map(_) | Datum::Struct(_) => {
                return Err(format!(
                    "The 'DELIMITED' format does not support type '{}'",
                    super::base_type_name(&v.data_type())
                ))
            }
        };
        write_field(&mut out, &text, i == 0, delimiter);
    }
    Ok(out.into_bytes())
}

/// Commons CSV 1.4 `QuoteMode.MINIMAL`.
fn needs_quotes(s: &str, first: bool, delimiter: char) -> bool {
    let Some(c) = s.chars().next() else {
        return first;
    };
    if first && !c.is_ascii_alphanumeric() {
        return true;
    }
    if c <= '#' {
        return true;
    }
    if s.chars()
        .any(|c| c == '\n' || c == '\r' || c == '"' || c == delimiter)
    {
        return true;
    }
    s.chars().last().is_some_and(|c| c <= ' ')
}

pub(super) fn write_field(out: &mut String, s: &str, first: bool, delimiter: char) {
    if needs_quotes(s, first, delimiter) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::Field;

    fn fields(types: &[DataType]) -> Vec<FieldRef> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Field::new(format!("C{i}"), t.clone(), true)))
            .collect()
    }

    fn rec(text: &str) -> Result<Vec<Vec<String>>, String> {
        parse_records(text, ',')
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_like_commons_csv() {
        assert_eq!(rec("a,b").unwrap(), vec![strs(&["a", "b"])]);
        assert_eq!(rec("\"foo\",\"bar\"").unwrap(), vec![strs(&["foo", "bar"])]);
        assert_eq!(rec("x,").unwrap(), vec![strs(&["x", ""])]);
        assert_eq!(rec(",").unwrap(), vec![strs(&["", ""])]);
        assert_eq!(rec("\"a\"\"b\" ,c").unwrap(), vec![strs(&["a\"b", "c"])]);
        assert_eq!(rec("a\"b").unwrap(), vec![strs(&["a\"b"])]);
        assert_eq!(rec("\"x\ny\",z").unwrap(), vec![strs(&["x\ny", "z"])]);
        assert_eq!(
            rec("\n\na\r\nb\n").unwrap(),
            vec![strs(&["a"]), strs(&["b"])]
        );
        assert_eq!(rec("").unwrap(), Vec::<Vec<String>>::new());
        assert_eq!(
            rec("\"a\"b").unwrap_err(),
            "(line 1) invalid char between encapsulated token and delimiter"
        );
        assert_eq!(
            rec("a\n\"b").unwrap_err(),
            "(startline 2) EOF reached before encapsulated token finished"
        );
        assert_eq!(
            parse_records("a;b,c", ';').unwrap(),
            vec![strs(&["a", "b,c"])]
        );
        assert_eq!(parse_records("a b", ' ').unwrap(), vec![strs(&["a", "b"])]);
    }

    #[test]
    fn decodes_typed_fields_with_empty_as_null() {
        let f = fields(&[
            DataType::Int64,
            DataType::Utf8,
            DataType::Int32,
            DataType::Boolean,
            DataType::Decimal128(6, 4),
            DataType::Float64,
        ]);
        assert_eq!(
            decode(b"0,zero,,yes,\"12.0\",1e3", &f, ',').unwrap(),
            vec![
                ScalarValue::Int64(Some(0)),
                ScalarValue::Utf8(Some("zero".into())),
                ScalarValue::Int32(None),
                ScalarValue::Boolean(Some(false)),
                ScalarValue::Decimal128(Some(120000), 6, 4),
                ScalarValue::Float64(Some(1000.0)),
            ]
        );
        let s = fields(&[DataType::Utf8, DataType::Utf8]);
        assert_eq!(
            decode(b"\"\",", &s, ',').unwrap(),
            vec![ScalarValue::Utf8(None), ScalarValue::Utf8(None)]
        );
    }

    #[test]
    fn rejects_bad_records() {
        let f = fields(&[DataType::Int32, DataType::Int32]);
        assert_eq!(
            decode(b"1", &f, ',').unwrap_err(),
            "Column count mismatch on deserialization. expected: 2, got: 1"
        );
        assert_eq!(decode(b"", &f, ',').unwrap_err(), "No fields in record");
        assert_eq!(
            decode(b"1,x", &f, ',').unwrap_err(),
            "For input string: \"x\""
        );
        assert_eq!(
            decode(b"1,2147483648", &f, ',').unwrap_err(),
            "For input string: \"2147483648\""
        );
        // Invalid UTF-8 is replaced, as Java does, and then fails to parse.
        assert!(decode(b"1,\xff", &f, ',').is_err());
        let d = fields(&[DataType::Decimal128(4, 2)]);
        assert!(decode(b"12.345", &d, ',')
            .unwrap_err()
            .starts_with("Cannot fit decimal"));
        assert!(decode(b"123.45", &d, ',')
            .unwrap_err()
            .starts_with("Numeric field overflow"));
    }

    #[test]
    fn encodes_with_minimal_quoting() {
        let enc = |vals: Vec<ScalarValue>| String::from_utf8(encode(&vals, ',').unwrap()).unwrap();
        assert_eq!(
            enc(vec![
                ScalarValue::Int32(Some(-1)),
                ScalarValue::Utf8(Some("a".into())),
                ScalarValue::Int32(Some(1))
            ]),
            "\"-1\",a,1"
        );
        assert_eq!(
            enc(vec![
                ScalarValue::Int64(None),
                ScalarValue::Utf8(None),
                ScalarValue::Int64(Some(100)),
                ScalarValue::Utf8(Some("newblah".into())),
            ]),
            ",,100,newblah"
        );
        assert_eq!(
            enc(vec![ScalarValue::Utf8(Some("\" x \"y\"".into()))]),
            "\"\"\" x \"\"y\"\"\""
        );
        assert_eq!(
            enc(vec![
                ScalarValue::Utf8(Some("".into())),
                ScalarValue::Utf8(Some("".into())),
                ScalarValue::Utf8(Some("a,b".into())),
                ScalarValue::Utf8(Some(" x".into())),
                ScalarValue::Utf8(Some("x ".into())),
                ScalarValue::Utf8(Some("-x".into())),
            ]),
            "\"\",,\"a,b\",\" x\",\"x \",-x"
        );
        assert_eq!(
            enc(vec![
                ScalarValue::Decimal128(Some(-123451200), 33, 4),
                ScalarValue::Float64(Some(100.0)),
                ScalarValue::Boolean(Some(true)),
                ScalarValue::Binary(Some(b"a".to_vec())),
            ]),
            "\"-12345.1200\",100.0,true,YQ=="
        );
        assert_eq!(
            encode(&[ScalarValue::Utf8(Some("a|b".into()))], '|').unwrap(),
            b"\"a|b\""
        );
    }

    #[test]
    fn round_trips_through_text() {
        let f = fields(&[
            DataType::Utf8,
            DataType::Float64,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Date32,
            DataType::Time32(TimeUnit::Millisecond),
            DataType::Binary,
        ]);
        let vals = vec![
            ScalarValue::Utf8(Some("multi\nline, \"quoted\"".into())),
            ScalarValue::Float64(Some(1.5e-7)),
            ScalarValue::TimestampMillisecond(Some(1_600_000_000_000), None),
            ScalarValue::Date32(Some(-3)),
            ScalarValue::Time32Millisecond(Some(1234)),
            ScalarValue::Binary(Some(vec![0, 255])),
        ];
        for delim in [',', '\t', ' ', '$'] {
            let bytes = encode(&vals, delim).unwrap();
            assert_eq!(decode(&bytes, &f, delim).unwrap(), vals, "{delim:?}");
        }
    }

    #[test]
    fn rejects_nested_types() {
        let f = vec![Arc::new(Field::new(
            "K",
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            true,
        ))];
        assert_eq!(
            unsupported(&f).unwrap(),
            "The 'DELIMITED' format does not support type 'ARRAY', column: `K`"
        );
        assert_eq!(unsupported(&fields(&[DataType::Binary])), None);
    }
}

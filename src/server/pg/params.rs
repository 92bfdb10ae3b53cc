//! Statement parameters (`$1`, `$2`, ...) of the extended protocol.
//!
//! A parameter's value arrives in text or binary form, typed by the OID the
//! client declared (or, when it declared none, by the type Sluice inferred
//! when the statement was prepared). It becomes a SQL literal of that type
//! in the statement's text, so every statement (a pull or push query, an
//! `INSERT ... VALUES`, DDL) takes parameters the same way and is planned
//! with its values, as ksqlDB plans a statement with its variables
//! substituted.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use pgwire::api::Type;
use tokio_postgres::types::FromSql;

use super::session::skip_quoted;
use super::values::decode_numeric;
use crate::error::{Error, Result};
use crate::server::MAX_PARAMETERS;

/// Where `$n` placeholders are in `text` (outside quotes and comments):
/// byte ranges and parameter numbers (1-based).
pub(crate) fn placeholders(text: &str) -> Vec<(std::ops::Range<usize>, usize)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_quoted(bytes, i) {
            i = end + 1;
            continue;
        }
        match bytes[i] {
            b'$' if i == 0 || !is_word(bytes[i - 1]) => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let end = i + 1 + digits;
                if digits > 0 && !bytes.get(end).copied().is_some_and(is_word) {
                    if let Ok(n) = text[i + 1..end].parse::<usize>() {
                        if n > 0 {
                            found.push((i..end, n));
                        }
                    }
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// How many parameters `text` takes (its highest `$n`); an error past
/// [`MAX_PARAMETERS`].
pub(crate) fn count(text: &str) -> Result<usize> {
    let n = placeholders(text)
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    if n > MAX_PARAMETERS {
        return Err(Error::BadParameter(format!(
            "there is no parameter ${n}: a statement takes at most {MAX_PARAMETERS}"
        )));
    }
    Ok(n)
}

/// `text` with each `$n` replaced by `literals[n - 1]`.
pub(crate) fn substitute(text: &str, literals: &[String]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, n) in placeholders(text) {
        let literal = literals
            .get(n - 1)
            .ok_or_else(|| Error::BadParameter(format!("there is no parameter ${n}")))?;
        out.push_str(&text[last..range.start]);
        out.push_str(literal);
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// The Sluice type a parameter of Postgres type `ty` has (STRING when
/// its type is not known).
pub(crate) fn sql_type(ty: Option<&Type>) -> &'static str {
    match ty {
        Some(&Type::BOOL) => "BOOLEAN",
        Some(&Type::INT2) | Some(&Type::INT4) => "INT",
        Some(&Type::INT8) | Some(&Type::OID) => "BIGINT",
        Some(&Type::FLOAT4) | Some(&Type::FLOAT8) | Some(&Type::NUMERIC) => "DOUBLE",
        Some(&Type::DATE) => "DATE",
        Some(&Type::TIME) => "TIME",
        Some(&Type::TIMESTAMP) | Some(&Type::TIMESTAMPTZ) => "TIMESTAMP",
        Some(&Type::BYTEA) => "BYTES",
        _ => "STRING",
    }
}

/// A SQL string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Parameter `n`'s value (None: NULL) as a SQL literal of type `ty`.
pub(crate) fn literal(n: usize, value: Option<&[u8]>, binary: bool, ty: &Type) -> Result<String> {
    let Some(raw) = value else {
        return Ok("NULL".into());
    };
    let bad = |why: String| Error::BadParameter(format!("parameter ${n} ({}): {why}", ty.name()));
    let literal = if binary {
        binary_literal(raw, ty).map_err(|e| bad(e.to_string()))?
    } else {
        let text = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8 text".into()))?;
        text_literal(text, ty).map_err(bad)?
    };
    // A negative number after a `-` in the statement (`x - $1`) must not
    // make a `--` comment of the rest of the line.
    Ok(if literal.starts_with('-') {
        format!(" {literal}")
    } else {
        literal
    })
}

/// A value sent in binary form, as a literal of `ty`.
fn binary_literal(raw: &[u8], ty: &Type) -> std::result::Result<String, BoxError> {
    match *ty {
        Type::BOOL => bool::from_sql(ty, raw).map(|b| if b { "TRUE" } else { "FALSE" }.into()),
        Type::INT2 => i16::from_sql(ty, raw).map(|i| i.to_string()),
        Type::INT4 => i32::from_sql(ty, raw).map(|i| i.to_string()),
        Type::INT8 => i64::from_sql(ty, raw).map(|i| i.to_string()),
        Type::OID => u32::from_sql(ty, raw).map(|i| i.to_string()),
        Type::FLOAT4 => f32::from_sql(ty, raw).and_then(|f| float(f64::from(f))),
        Type::FLOAT8 => f64::from_sql(ty, raw).and_then(float),
        Type::NUMERIC => decode_numeric(raw).and_then(|s| {
            text_literal(&s, &Type::NUMERIC).map_err(|_| format!("{s} has no SQL literal").into())
        }),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            String::from_sql(&Type::TEXT, raw).map(|s| quote(&s))
        }
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => String::from_sql(&Type::TEXT, json).map(|s| quote(&s)),
            _ => Err("unknown jsonb version".into()),
        },
        Type::BYTEA => {
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("TO_BYTES('{hex}', 'hex')"))
        }
        Type::DATE => {
            NaiveDate::from_sql(ty, raw).map(|d| quote(&d.format("%Y-%m-%d").to_string()))
        }
        Type::TIME => {
            NaiveTime::from_sql(ty, raw).map(|t| quote(&t.format("%H:%M:%S%.f").to_string()))
        }
        Type::TIMESTAMP => NaiveDateTime::from_sql(ty, raw)
            .map(|t| quote(&t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        Type::TIMESTAMPTZ => DateTime::<Utc>::from_sql(ty, raw)
            .map(|t| quote(&t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        _ => Err("Sluice does not take this type in binary form; send it as text".into()),
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A value sent as text, as a literal of `ty`: numbers and booleans are
/// checked and written bare, everything else is quoted.
fn text_literal(text: &str, ty: &Type) -> std::result::Result<String, String> {
    let t = text.trim();
    match *ty {
        Type::BOOL => match t.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" => Ok("TRUE".into()),
            "f" | "false" | "no" | "off" | "0" => Ok("FALSE".into()),
            _ => Err(format!("invalid boolean `{text}`")),
        },
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => t
            .parse::<i64>()
            .map(|i| i.to_string())
            .map_err(|_| format!("invalid integer `{text}`")),
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
            let ok = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                && t.parse::<f64>().is_ok_and(f64::is_finite);
            if ok {
                Ok(t.to_string())
            } else {
                Err(format!("invalid number `{text}`"))
            }
        }
        _ => Ok(quote(text)),
    }
}

/// Whether a parameter of type `ty` can be a key of type `key` on the
/// serving path ([`key_value`]).
pub(crate) fn is_key_type(ty: &Type, key: &DataType) -> bool {
    matches!(key, DataType::Utf8 | DataType::Int32 | DataType::Int64) && binds(ty, key)
}

/// Whether a value of a parameter of type `ty` binds, as it is, to a
/// planned parameter of type `want` ([`bound_value`]): text to STRING,
/// integers to INT and BIGINT, floats to DOUBLE, booleans to BOOLEAN.
pub(crate) fn binds(ty: &Type, want: &DataType) -> bool {
    match want {
        DataType::Utf8 => is_text(ty),
        DataType::Int32 | DataType::Int64 => matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8),
        DataType::Float64 => matches!(*ty, Type::FLOAT4 | Type::FLOAT8),
        DataType::Boolean => *ty == Type::BOOL,
        _ => false,
    }
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

/// A parameter's value (text or `binary`, of type `ty`) as a key of type
/// `key`, exactly as its literal would compare in the planned statement;
/// None for a value that does not make one (NULL, malformed, out of the
/// key's range), which the planned way answers (or refuses, in its words).
pub(crate) fn key_value(
    value: Option<&[u8]>,
    binary: bool,
    ty: &Type,
    key: &DataType,
) -> Option<ScalarValue> {
    if !is_key_type(ty, key) {
        return None;
    }
    bound_value(value, binary, ty, key)
}

/// A parameter's value (text or `binary`, of type `ty`) as a value of type
/// `want` bound into a planned statement, exactly as its literal would be
/// read; None for one that does not bind so (NULL, a type that does not
/// [`binds`], malformed, out of range, not finite), which goes the way of
/// literals pasted into the text, with its answer or error.
pub(crate) fn bound_value(
    value: Option<&[u8]>,
    binary: bool,
    ty: &Type,
    want: &DataType,
) -> Option<ScalarValue> {
    let raw = value?;
    if !binds(ty, want) {
        return None;
    }
    let text = || std::str::from_utf8(raw).ok().map(str::trim);
    match want {
        DataType::Utf8 => {
            let text = std::str::from_utf8(raw).ok()?;
            Some(ScalarValue::Utf8(Some(text.to_string())))
        }
        DataType::Int32 | DataType::Int64 => {
            let n: i64 = if binary {
                match *ty {
                    Type::INT2 => i16::from_sql(ty, raw).ok()?.into(),
                    Type::INT4 => i32::from_sql(ty, raw).ok()?.into(),
                    _ => i64::from_sql(ty, raw).ok()?,
                }
            } else {
                text()?.parse().ok()?
            };
            match want {
                DataType::Int32 => i32::try_from(n).ok().map(|n| ScalarValue::Int32(Some(n))),
                _ => Some(ScalarValue::Int64(Some(n))),
            }
        }
        DataType::Float64 => {
            let f: f64 = if binary {
                match *ty {
                    Type::FLOAT4 => f32::from_sql(ty, raw).ok()?.into(),
                    _ => f64::from_sql(ty, raw).ok()?,
                }
            } else {
                text()?.parse().ok()?
            };
            f.is_finite().then_some(ScalarValue::Float64(Some(f)))
        }
        DataType::Boolean => {
            let b = if binary {
                bool::from_sql(ty, raw).ok()?
            } else {
                match text()?.to_ascii_lowercase().as_str() {
                    "t" | "true" => true,
                    "f" | "false" => false,
                    _ => return None,
                }
            };
            Some(ScalarValue::Boolean(Some(b)))
        }
        _ => None,
    }
}

fn float(f: f64) -> std::result::Result<String, BoxError> {
    if f.is_finite() {
        Ok(format!("{f:?}"))
    } else {
        Err(format!("{f} has no SQL literal").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_quotes_and_comments() {
        let text = "SELECT '$1', a$1, $2 FROM t -- $3\n WHERE x = $1 /* $4 */ AND y=$10";
        let found: Vec<usize> = placeholders(text).into_iter().map(|(_, n)| n).collect();
        assert_eq!(found, vec![2, 1, 10]);
        assert_eq!(count(text).unwrap(), 10);
        let e = count("SELECT $65536").unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert!(count("SELECT $18446744073709551616").is_ok_and(|n| n == 0));
        assert_eq!(
            substitute(
                "SELECT * FROM t WHERE a = $1 AND b = $2",
                &["5".into(), "'x'".into()]
            )
            .unwrap(),
            "SELECT * FROM t WHERE a = 5 AND b = 'x'"
        );
        let missing = substitute("SELECT $2", &["1".into()]).unwrap_err();
        assert_eq!(missing.sqlstate(), "22023");
        assert_eq!(missing.to_string(), "there is no parameter $2");
    }

    #[test]
    fn values_become_literals_of_their_type() {
        assert_eq!(literal(1, None, false, &Type::INT8).unwrap(), "NULL");
        assert_eq!(literal(1, Some(b"42"), false, &Type::INT8).unwrap(), "42");
        assert_eq!(
            literal(1, Some(b"it's"), false, &Type::TEXT).unwrap(),
            "'it''s'"
        );
        assert_eq!(literal(1, Some(b"t"), false, &Type::BOOL).unwrap(), "TRUE");
        assert_eq!(
            literal(1, Some(&7i64.to_be_bytes()), true, &Type::INT8).unwrap(),
            "7"
        );
        assert_eq!(
            literal(1, Some(&2.5f64.to_be_bytes()), true, &Type::FLOAT8).unwrap(),
            "2.5"
        );
        assert_eq!(
            literal(1, Some(b"abc"), true, &Type::VARCHAR).unwrap(),
            "'abc'"
        );
        // An injection attempt stays one string literal.
        assert_eq!(
            literal(1, Some(b"1; DROP STREAM s"), false, &Type::TEXT).unwrap(),
            "'1; DROP STREAM s'"
        );
        let e = literal(2, Some(b"1; DROP STREAM s"), false, &Type::INT4).unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert_eq!(
            e.to_string(),
            "parameter $2 (int4): invalid integer `1; DROP STREAM s`"
        );
        let e = literal(1, Some(&[0, 1]), true, &Type::INT8).unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        // `x - $1` with -5 stays a subtraction, never a `--` comment.
        assert_eq!(
            substitute(
                "x - $1",
                &[literal(1, Some(b"-5"), false, &Type::INT4).unwrap()]
            )
            .unwrap(),
            "x -  -5"
        );
        assert_eq!(
            literal(1, Some(&(-2i64).to_be_bytes()), true, &Type::INT8).unwrap(),
            " -2"
        );
        // A numeric whose digit groups are out of range is refused.
        let bad = [0u8, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(
            literal(1, Some(&bad), true, &Type::NUMERIC)
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
    }

    #[test]
    fn values_become_keys_only_where_they_compare_as_their_literals() {
        let key = |v: &[u8], binary, ty: &Type, key: &DataType| key_value(Some(v), binary, ty, key);
        assert_eq!(
            key(b"it's", false, &Type::TEXT, &DataType::Utf8),
            Some(ScalarValue::Utf8(Some("it's".into())))
        );
        assert_eq!(
            key(b"a1", true, &Type::VARCHAR, &DataType::Utf8),
            Some(ScalarValue::Utf8(Some("a1".into())))
        );
        assert_eq!(
            key(b" 42 ", false, &Type::INT8, &DataType::Int32),
            Some(ScalarValue::Int32(Some(42)))
        );
        assert_eq!(
            key(&(-7i32).to_be_bytes(), true, &Type::INT4, &DataType::Int64),
            Some(ScalarValue::Int64(Some(-7)))
        );
        assert_eq!(
            key(&7i16.to_be_bytes(), true, &Type::INT2, &DataType::Int64),
            Some(ScalarValue::Int64(Some(7)))
        );
        // Out of the key's range, malformed, NULL, another type: the
        // planned way.
        let big = (1i64 << 40).to_be_bytes();
        assert_eq!(key(&big, true, &Type::INT8, &DataType::Int32), None);
        assert_eq!(key(b"4x", false, &Type::INT8, &DataType::Int64), None);
        assert_eq!(key(&[0, 1], true, &Type::INT8, &DataType::Int64), None);
        assert_eq!(key(&[0xff], false, &Type::TEXT, &DataType::Utf8), None);
        assert_eq!(key(b"1", false, &Type::INT8, &DataType::Utf8), None);
        assert_eq!(key(b"a", false, &Type::TEXT, &DataType::Int64), None);
        assert_eq!(key_value(None, false, &Type::TEXT, &DataType::Utf8), None);
    }
}

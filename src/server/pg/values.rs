//! Values as Postgres sends them: the type OID of every Sluice type, and
//! each value in the text form (what psql prints) and in the binary form
//! (what tokio-postgres, JDBC and psycopg ask for).
//!
//! Types: BOOLEAN → bool, INT → int4, BIGINT → int8, DOUBLE → float8,
//! DECIMAL → numeric, STRING → varchar, BYTES → bytea, DATE → date,
//! TIME → time, TIMESTAMP → timestamp; ARRAY, MAP and STRUCT, which have no
//! Postgres equivalent, are `json` text. The binary form of a value is the
//! one of the type its column is declared with, so a client decoding by the
//! declared type always reads what was meant.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql};

use crate::connectors::formats::scalar_to_json;
use crate::error::{Error, Result};

/// The Postgres type a column is sent as.
pub(crate) fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::VARCHAR,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => Type::JSON,
        _ => Type::TEXT,
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    /// A `numeric`, as decimal digits (`-12.50`).
    Numeric(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    /// An `interval`: months, days and microseconds, as Postgres keeps it;
    /// the text is how Sluice prints it.
    Interval {
        months: i32,
        days: i32,
        micros: i64,
        text: String,
    },
    /// `json` text (arrays, maps and structs).
    Json(String),
    /// A Postgres array of `element` values (catalog answers: `indkey`,
    /// `current_schemas(true)`).
    Array {
        element: Type,
        items: Vec<Value>,
    },
}

impl Value {
    /// The value of `column` at `row`, as its column's Postgres type
    /// ([`pg_type`]) holds it.
    pub(crate) fn of(column: &dyn Array, row: usize) -> Result<Value> {
        // A NULL literal's column has no null buffer: every value is NULL.
        if column.is_null(row) || column.data_type() == &DataType::Null {
            return Ok(Value::Null);
        }
        let v = ScalarValue::try_from_array(column, row)?;
        let unrepresentable = |what: &str| {
            Error::internal(format!(
                "cannot send {what} `{v}` as a Postgres {}",
                pg_type(column.data_type())
            ))
        };
        Ok(match &v {
            ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
            ScalarValue::Int8(Some(i)) => Value::Int2(i16::from(*i)),
            ScalarValue::Int16(Some(i)) => Value::Int2(*i),
            ScalarValue::UInt8(Some(i)) => Value::Int2(i16::from(*i)),
            ScalarValue::Int32(Some(i)) => Value::Int4(*i),
            ScalarValue::UInt16(Some(i)) => Value::Int4(i32::from(*i)),
            ScalarValue::Int64(Some(i)) => Value::Int8(*i),
            ScalarValue::UInt32(Some(i)) => Value::Int8(i64::from(*i)),
            ScalarValue::UInt64(Some(i)) => Value::Numeric(i.to_string()),
            ScalarValue::Float16(Some(f)) => Value::Float4(f32::from(*f)),
            ScalarValue::Float32(Some(f)) => Value::Float4(*f),
            ScalarValue::Float64(Some(f)) => Value::Float8(*f),
            ScalarValue::Decimal128(Some(_), ..) | ScalarValue::Decimal256(Some(_), ..) => {
                Value::Numeric(v.to_string())
            }
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Value::Text(s.clone()),
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b))
            | ScalarValue::FixedSizeBinary(_, Some(b)) => Value::Bytes(b.clone()),
            ScalarValue::Date32(Some(d)) => Value::Date(
                d.checked_add(719_163)
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .ok_or_else(|| unrepresentable("date"))?,
            ),
            ScalarValue::Date64(Some(ms)) => Value::Date(
                DateTime::from_timestamp_millis(*ms)
                    .ok_or_else(|| unrepresentable("date"))?
                    .date_naive(),
            ),
            ScalarValue::Time32Second(Some(t)) => time(i64::from(*t) * 1_000_000_000)?,
            ScalarValue::Time32Millisecond(Some(t)) => time(i64::from(*t) * 1_000_000)?,
            ScalarValue::Time64Microsecond(Some(t)) => time(
                t.checked_mul(1_000)
                    .ok_or_else(|| unrepresentable("time"))?,
            )?,
            ScalarValue::Time64Nanosecond(Some(t)) => time(*t)?,
            ScalarValue::TimestampSecond(Some(t), tz) => timestamp(*t, TimeUnit::Second, tz)?,
            ScalarValue::TimestampMillisecond(Some(t), tz) => {
                timestamp(*t, TimeUnit::Millisecond, tz)?
            }
            ScalarValue::TimestampMicrosecond(Some(t), tz) => {
                timestamp(*t, TimeUnit::Microsecond, tz)?
            }
            ScalarValue::TimestampNanosecond(Some(t), tz) => {
                timestamp(*t, TimeUnit::Nanosecond, tz)?
            }
            ScalarValue::IntervalYearMonth(Some(m)) => interval(*m, 0, 0, &v),
            ScalarValue::IntervalDayTime(Some(d)) => {
                interval(0, d.days, i64::from(d.milliseconds) * 1_000, &v)
            }
            ScalarValue::IntervalMonthDayNano(Some(i)) => {
                interval(i.months, i.days, i.nanoseconds / 1_000, &v)
            }
            ScalarValue::DurationSecond(Some(s)) => interval(
                0,
                0,
                s.checked_mul(1_000_000)
                    .ok_or_else(|| unrepresentable("interval"))?,
                &v,
            ),
            ScalarValue::DurationMillisecond(Some(s)) => interval(
                0,
                0,
                s.checked_mul(1_000)
                    .ok_or_else(|| unrepresentable("interval"))?,
                &v,
            ),
            ScalarValue::DurationMicrosecond(Some(s)) => interval(0, 0, *s, &v),
            ScalarValue::DurationNanosecond(Some(s)) => interval(0, 0, s / 1_000, &v),
            ScalarValue::List(_)
            | ScalarValue::LargeList(_)
            | ScalarValue::FixedSizeList(_)
            | ScalarValue::Struct(_)
            | ScalarValue::Map(_) => Value::Json(scalar_to_json(&v).to_string()),
            other => Value::Text(other.to_string()),
        })
    }

    /// The Postgres text form (None: NULL).
    pub(crate) fn text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Value::Int2(i) => i.to_string(),
            Value::Int4(i) => i.to_string(),
            Value::Int8(i) => i.to_string(),
            Value::Float4(f) => float_text(f64::from(*f), f.to_string()),
            Value::Float8(f) => float_text(*f, f.to_string()),
            Value::Numeric(s) | Value::Text(s) | Value::Json(s) => s.clone(),
            Value::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("\\x{hex}")
            }
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Time(t) => with_fraction(t.format("%H:%M:%S").to_string(), t.nanosecond()),
            Value::Timestamp(t) => with_fraction(
                t.format("%Y-%m-%d %H:%M:%S").to_string(),
                t.and_utc().timestamp_subsec_nanos(),
            ),
            Value::TimestampTz(t) => {
                let s = with_fraction(
                    t.format("%Y-%m-%d %H:%M:%S").to_string(),
                    t.timestamp_subsec_nanos(),
                );
                format!("{s}+00")
            }
            Value::Interval { text, .. } => text.clone(),
            Value::Array { items, .. } => array_text(items),
        })
    }
}

/// An array's text form: `{1,2}`, `{pg_catalog,public}`, elements quoted
/// where Postgres quotes them (empty, `NULL`, or holding `{},"\` or
/// spaces).
fn array_text(items: &[Value]) -> String {
    let cells: Vec<String> = items
        .iter()
        .map(|v| match v.text() {
            None => "NULL".to_string(),
            Some(s) => {
                let quoted = s.is_empty()
                    || s.eq_ignore_ascii_case("null")
                    || s.chars()
                        .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
                if quoted {
                    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                } else {
                    s
                }
            }
        })
        .collect();
    format!("{{{}}}", cells.join(","))
}

use chrono::Timelike;

fn time(nanos: i64) -> Result<Value> {
    let secs = u32::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(u32::MAX);
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos.rem_euclid(1_000_000_000) as u32)
        .map(Value::Time)
        .ok_or_else(|| Error::internal(format!("time of day out of range: {nanos} ns")))
}

fn timestamp(t: i64, unit: TimeUnit, tz: &Option<std::sync::Arc<str>>) -> Result<Value> {
    let nanos: i128 = match unit {
        TimeUnit::Second => i128::from(t) * 1_000_000_000,
        TimeUnit::Millisecond => i128::from(t) * 1_000_000,
        TimeUnit::Microsecond => i128::from(t) * 1_000,
        TimeUnit::Nanosecond => i128::from(t),
    };
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000))
        .map_err(|_| Error::internal(format!("timestamp out of range: {t}")))?;
    let at = DateTime::from_timestamp(secs, nanos.rem_euclid(1_000_000_000) as u32)
        .ok_or_else(|| Error::internal(format!("timestamp out of range: {t}")))?;
    Ok(match tz {
        Some(_) => Value::TimestampTz(at),
        None => Value::Timestamp(at.naive_utc()),
    })
}

fn interval(months: i32, days: i32, micros: i64, v: &ScalarValue) -> Value {
    Value::Interval {
        months,
        days,
        micros,
        text: v.to_string(),
    }
}

/// `secs[.fraction]` with the fraction's trailing zeros dropped, as
/// Postgres writes times.
fn with_fraction(mut s: String, nanos: u32) -> String {
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// Floats as Postgres writes them: `NaN`, `Infinity`, `-Infinity`.
fn float_text(f: f64, shortest: String) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shortest
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSqlText for Value {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _options: &FormatOptions,
    ) -> std::result::Result<IsNull, BoxError> {
        match self.text() {
            None => Ok(IsNull::Yes),
            Some(s) => {
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => return Ok(IsNull::Yes),
            Value::Bool(b) => out.put_u8(u8::from(*b)),
            Value::Int2(i) => out.put_i16(*i),
            Value::Int4(i) => out.put_i32(*i),
            Value::Int8(i) => out.put_i64(*i),
            Value::Float4(f) => out.put_f32(*f),
            Value::Float8(f) => out.put_f64(*f),
            Value::Numeric(s) => encode_numeric(s, out)?,
            Value::Text(s) | Value::Json(s) => out.put_slice(s.as_bytes()),
            Value::Bytes(b) => out.put_slice(b),
            Value::Date(d) => return d.to_sql(&Type::DATE, out),
            Value::Time(t) => return t.to_sql(&Type::TIME, out),
            Value::Timestamp(t) => return t.to_sql(&Type::TIMESTAMP, out),
            Value::TimestampTz(t) => return t.to_sql(&Type::TIMESTAMPTZ, out),
            Value::Interval {
                months,
                days,
                micros,
                ..
            } => {
                out.put_i64(*micros);
                out.put_i32(*days);
                out.put_i32(*months);
            }
            Value::Array { element, items } => {
                // ndim, has-null flag, element type, then one dimension:
                // its length and lower bound (1), then each element as
                // its length (-1: NULL) and bytes.
                out.put_i32(i32::from(!items.is_empty()));
                out.put_i32(i32::from(items.contains(&Value::Null)));
                out.put_u32(element.oid());
                if !items.is_empty() {
                    out.put_i32(i32::try_from(items.len())?);
                    out.put_i32(1);
                }
                for item in items {
                    let mut cell = BytesMut::new();
                    match item.to_sql(element, &mut cell)? {
                        IsNull::Yes => out.put_i32(-1),
                        IsNull::No => {
                            out.put_i32(i32::try_from(cell.len())?);
                            out.put_slice(&cell);
                        }
                    }
                }
            }
        }
        let _ = ty;
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A decimal number (`-12.050`) in `numeric`'s binary form: base-10000
/// digits with a weight, a sign and the display scale.
pub(crate) fn encode_numeric(text: &str, out: &mut BytesMut) -> std::result::Result<(), BoxError> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(format!("not a decimal number: `{text}`").into());
    }
    let dscale = i16::try_from(frac.len()).map_err(|_| "numeric scale too large")?;
    // Pad to whole groups of 4 digits on either side of the point.
    let int = int.trim_start_matches('0');
    let lead = (4 - int.len() % 4) % 4;
    let trail = (4 - frac.len() % 4) % 4;
    let all: Vec<u8> = std::iter::repeat_n(b'0', lead)
        .chain(int.bytes())
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', trail))
        .collect();
    let mut groups: Vec<i16> = all
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0')))
        .collect();
    let int_groups = (lead + int.len()) / 4;
    let mut weight = int_groups as i32 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len()).map_err(|_| "numeric too long")?);
    out.put_i16(i16::try_from(weight).map_err(|_| "numeric out of range")?);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_i16(dscale);
    for g in groups {
        out.put_i16(g);
    }
    Ok(())
}

/// `numeric`'s binary form as decimal digits (`-12.050`).
pub(crate) fn decode_numeric(raw: &[u8]) -> std::result::Result<String, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "numeric value too short".into())
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "bad numeric digit count")?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).map_err(|_| "bad numeric scale")?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err(format!("bad numeric sign {sign:#x}").into()),
    }
    if dscale > 1000 || ndigits > 1000 {
        return Err("numeric value too long".into());
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<std::result::Result<_, _>>()?;
    if digits.iter().any(|d| !(0..=9999).contains(d)) {
        return Err("numeric digit out of range".into());
    }
    let group = |w: i32| -> i16 {
        usize::try_from(weight - w)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut int = String::new();
    if !(-1000..=1000).contains(&weight) {
        return Err("numeric weight out of range".into());
    }
    for w in (0..=weight.max(0)).rev() {
        int.push_str(&format!("{:04}", group(w)));
    }
    let int = int.trim_start_matches('0');
    let mut frac = String::new();
    let mut w = -1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", group(w)));
        w -= 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, Int32Array, ListArray,
        TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::Int32Type;

    fn text(a: &dyn Array, row: usize) -> Option<String> {
        Value::of(a, row).unwrap().text()
    }

    #[test]
    fn values_in_postgres_text_form() {
        let b = BooleanArray::from(vec![Some(true), None]);
        assert_eq!(text(&b, 0).as_deref(), Some("t"));
        assert_eq!(text(&b, 1), None);
        let i = Int32Array::from(vec![-7]);
        assert_eq!(text(&i, 0).as_deref(), Some("-7"));
        let t = TimestampMillisecondArray::from(vec![1_500, 86_400_000]);
        assert_eq!(text(&t, 0).as_deref(), Some("1970-01-01 00:00:01.5"));
        assert_eq!(text(&t, 1).as_deref(), Some("1970-01-02 00:00:00"));
        let bytes = BinaryArray::from(vec![&b"\x01\xff"[..]]);
        assert_eq!(text(&bytes, 0).as_deref(), Some("\\x01ff"));
        let list =
            ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None])]);
        assert_eq!(text(&list, 0).as_deref(), Some("[1,null]"));
        assert_eq!(pg_type(list.data_type()), Type::JSON);
        assert_eq!(pg_type(&DataType::Int64), Type::INT8);
        let d = Date32Array::from(vec![19_000]);
        assert_eq!(text(&d, 0).as_deref(), Some("2022-01-08"));
        let dec = Decimal128Array::from(vec![-1205])
            .with_precision_and_scale(6, 2)
            .unwrap();
        assert_eq!(text(&dec, 0).as_deref(), Some("-12.05"));
    }

    fn binary(v: &Value, ty: &Type) -> Vec<u8> {
        let mut out = BytesMut::new();
        v.to_sql(ty, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn values_in_postgres_binary_form() {
        assert_eq!(binary(&Value::Int8(-2), &Type::INT8), (-2i64).to_be_bytes());
        assert_eq!(binary(&Value::Bool(true), &Type::BOOL), [1]);
        // 2000-01-01 is Postgres's epoch: 0 microseconds.
        let y2k = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        assert_eq!(
            binary(&Value::Timestamp(y2k.into()), &Type::TIMESTAMP),
            0i64.to_be_bytes()
        );
        assert_eq!(binary(&Value::Date(y2k), &Type::DATE), 0i32.to_be_bytes());
    }

    #[test]
    fn numerics_round_trip_through_the_binary_form() {
        let words = |s: &str| {
            let mut out = BytesMut::new();
            encode_numeric(s, &mut out).unwrap();
            out.chunks(2)
                .map(|c| i16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>()
        };
        // ndigits, weight, sign, dscale, digits.
        assert_eq!(words("12345.678"), vec![3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(words("-0.0001"), vec![1, -1, 0x4000, 4, 1]);
        assert_eq!(words("0.00"), vec![0, 0, 0, 2]);
        assert_eq!(words("10000"), vec![1, 1, 0, 0, 1]);
        for s in [
            "12345.678",
            "-0.0001",
            "0.00",
            "10000",
            "7",
            "-98765432109876543210.5",
        ] {
            let mut out = BytesMut::new();
            encode_numeric(s, &mut out).unwrap();
            assert_eq!(decode_numeric(&out).unwrap(), s);
        }
        assert!(encode_numeric("1e5", &mut BytesMut::new()).is_err());
    }
}

//! The PROTOBUF_NOSR format: proto3 messages whose schema is derived from the
//! declared columns, as ksqlDB's `ProtobufNoSRConverter` (Confluent's
//! `ProtobufData` over `DynamicMessage`) writes and reads them.
//!
//! The record is one message with a field per column, numbered 1..n in
//! column order. An unwrapped single column (a single key, or a value with
//! `WRAP_SINGLE_VALUE=false`) is wrapped the same way by `ProtobufData`, so
//! the bytes are identical; only a NULL differs (no bytes at all).
//!
//! | column    | proto3 field                                                   |
//! |-----------|----------------------------------------------------------------|
//! | BOOLEAN / INT / BIGINT | `bool` / `int32` / `int64` (varints, no zigzag)   |
//! | DOUBLE    | `double` (fixed64, little-endian)                              |
//! | STRING / BYTES | `string` / `bytes`                                        |
//! | DECIMAL   | `confluent.type.Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }`, value big-endian two's complement |
//! | TIMESTAMP | `google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }` |
//! | DATE      | `google.type.Date { int32 year = 1; int32 month = 2; int32 day = 3; }` |
//! | TIME      | `google.type.TimeOfDay { hours = 1; minutes = 2; seconds = 3; nanos = 4; }` |
//! | STRUCT    | a nested message, fields numbered 1..n                         |
//! | ARRAY     | `repeated` (numbers packed); an ARRAY or MAP element is wrapped in a message with the element as field 1 |
//! | MAP       | `map<string, V>`: repeated entry messages, key = 1, value = 2  |
//!
//! proto3 has no presence for scalars: a NULL scalar is written as absent,
//! exactly like its default (0, "", false), and reads back as the default.
//! ksqlDB's conformance cases expect this (a left join's missing `F1 STRING`
//! comes back as `""`, a NULL `BIGINT` as `0`). Message-typed fields (STRUCT,
//! DECIMAL, TIMESTAMP, DATE, TIME) have presence: absent reads as NULL.
//! Elements of an ARRAY cannot be absent: a NULL element is written as its
//! default.
//!
//! Reading follows protobuf-java: unknown field numbers and fields with an
//! unexpected wire type are skipped, the last occurrence of a scalar wins,
//! repeated occurrences of a message are merged, repeated numbers are read
//! packed or not. Recursion follows the declared type, never the input, and
//! every length is checked, so arbitrary bytes produce an error, not a panic.

use datafusion::arrow::datatypes::{DataType, FieldRef, Fields, TimeUnit};
use datafusion::common::ScalarValue;

use super::scalar::{self, Datum};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Why the format cannot carry these columns, if it cannot.
pub(super) fn unsupported(fields: &[FieldRef]) -> Option<String> {
    super::has_non_string_map_key(fields)
        .then(|| "PROTOBUF format only supports MAP types with STRING keys.".to_string())
}

/// Decodes a record: one value per field (wrapped or not, the bytes are the same).
pub(super) fn decode(bytes: &[u8], fields: &[FieldRef]) -> Result<Vec<ScalarValue>, String> {
    let slots = read_fields(bytes, fields.len())?;
    fields
        .iter()
        .zip(&slots)
        .map(|(f, occs)| singular(f.data_type(), occs))
        .collect()
}

/// Encodes a record; `None` for an unwrapped NULL.
pub(super) fn encode(
    values: &[ScalarValue],
    fields: &[FieldRef],
    unwrapped: bool,
) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    for (i, (v, f)) in values.iter().zip(fields).enumerate() {
        let d = Datum::from_scalar(v)?;
        if unwrapped && d == Datum::Null {
            return Ok(None);
        }
        write_field(&mut out, i as u32 + 1, f.data_type(), &d)?;
    }
    Ok(Some(out))
}

// ---------------------------------------------------------------- reading

const TRUNCATED: &str = "While parsing a protocol message, the input ended unexpectedly in the \
                         middle of a field. This could mean either that the input has been \
                         truncated or that an embedded message misreported its own length.";

/// One occurrence of a field on the wire.
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A fixed32 (no column type uses one; read and skipped).
    Fixed32,
    Len(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(TRUNCATED.into());
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("CodedInputStream encountered a malformed varint.".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| TRUNCATED.to_string())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn raw(&mut self, wire_type: u8) -> Result<Raw<'a>, String> {
        match wire_type {
            VARINT => self.varint().map(Raw::Varint),
            FIXED64 => {
                let b = self.take(8)?;
                Ok(Raw::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| TRUNCATED.to_string())?,
                )))
            }
            LEN => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| TRUNCATED.to_string())?;
                self.take(n).map(Raw::Len)
            }
            FIXED32 => self.take(4).map(|_| Raw::Fixed32),
            _ => Err("Protocol message tag had invalid wire type.".into()),
        }
    }
}

/// Reads a message, keeping the occurrences of fields 1..=n in order.
fn read_fields(bytes: &[u8], n: usize) -> Result<Vec<Vec<Raw<'_>>>, String> {
    let mut slots = vec![Vec::new(); n];
    let mut r = Reader::new(bytes);
    while !r.done() {
        let tag = r.varint()?;
        if tag > u64::from(u32::MAX) {
            return Err("Protocol message contained an invalid tag.".into());
        }
        let number = tag >> 3;
        if number == 0 {
            return Err("Protocol message contained an invalid tag (zero).".into());
        }
        let raw = r.raw((tag & 7) as u8)?;
        if let Some(slot) = slots.get_mut(number as usize - 1) {
            slot.push(raw);
        }
    }
    Ok(slots)
}

/// Types written as a nested message (with presence).
fn is_message(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Struct(_)
            | DataType::Decimal128(_, _)
            | DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Time32(_)
    )
}

/// The value of a non-repeated field from its occurrences.
fn singular(dt: &DataType, occs: &[Raw<'_>]) -> Result<ScalarValue, String> {
    match dt {
        DataType::List(item) => {
            let mut items = Vec::new();
            for raw in occs {
                repeated_item(item.data_type(), *raw, &mut items)?;
            }
            scalar::make_list(items, dt)
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!("internal: {dt} has no entries struct"));
            };
            let (kt, vt) = (kv[0].data_type(), kv[1].data_type());
            let (mut keys, mut values): (Vec<ScalarValue>, Vec<ScalarValue>) = (vec![], vec![]);
            for raw in occs {
                let Raw::Len(b) = raw else { continue };
                let slots = read_fields(b, 2)?;
                let k = singular(kt, &slots[0])?;
                let v = singular(vt, &slots[1])?;
                match keys.iter().position(|x| *x == k) {
                    Some(i) => values[i] = v,
                    None => {
                        keys.push(k);
                        values.push(v);
                    }
                }
            }
            scalar::make_map(keys, values, dt)
        }
        dt if is_message(dt) => {
            let parts: Vec<&[u8]> = occs
                .iter()
                .filter_map(|r| match r {
                    Raw::Len(b) => Some(*b),
                    _ => None,
                })
                .collect();
            match parts.as_slice() {
                [] => scalar::null_of(dt),
                [one] => message_value(dt, one),
                many => message_value(dt, &many.concat()),
            }
        }
        dt => match occs.iter().rev().find_map(|r| primitive(dt, *r)) {
            Some(v) => v,
            None => default_of(dt),
        },
    }
}

/// Appends the element(s) one occurrence of a repeated field carries.
fn repeated_item(dt: &DataType, raw: Raw<'_>, out: &mut Vec<ScalarValue>) -> Result<(), String> {
    match (dt, raw) {
        (DataType::Boolean | DataType::Int32 | DataType::Int64, Raw::Len(b)) => {
            let mut r = Reader::new(b);
            while !r.done() {
                let v = r.varint()?;
                out.extend(primitive(dt, Raw::Varint(v)).transpose()?);
            }
        }
        (DataType::Float64, Raw::Len(b)) => {
            if b.len() % 8 != 0 {
                return Err(TRUNCATED.into());
            }
            for c in b.chunks_exact(8) {
                let bits = u64::from_le_bytes(c.try_into().map_err(|_| TRUNCATED.to_string())?);
                out.push(ScalarValue::Float64(Some(f64::from_bits(bits))));
            }
        }
        (DataType::List(_) | DataType::Map(_, _), Raw::Len(b)) => {
            let slots = read_fields(b, 1)?;
            out.push(singular(dt, &slots[0])?);
        }
        (dt, Raw::Len(b)) if is_message(dt) => out.push(message_value(dt, b)?),
        (dt, raw) => out.extend(primitive(dt, raw).transpose()?),
    }
    Ok(())
}

/// A scalar from one occurrence; `None` when the wire type does not fit
/// (protobuf-java then keeps it as an unknown field).
fn primitive(dt: &DataType, raw: Raw<'_>) -> Option<Result<ScalarValue, String>> {
    let v = match (dt, raw) {
        (DataType::Boolean, Raw::Varint(v)) => ScalarValue::Boolean(Some(v != 0)),
        (DataType::Int32, Raw::Varint(v)) => ScalarValue::Int32(Some(v as i32)),
        (DataType::Int64, Raw::Varint(v)) => ScalarValue::Int64(Some(v as i64)),
        (DataType::Float64, Raw::Fixed64(v)) => ScalarValue::Float64(Some(f64::from_bits(v))),
        (DataType::Utf8, Raw::Len(b)) => match std::str::from_utf8(b) {
            Ok(s) => ScalarValue::Utf8(Some(s.to_string())),
            Err(_) => return Some(Err("Protocol message had invalid UTF-8.".into())),
        },
        (DataType::Binary, Raw::Len(b)) => ScalarValue::Binary(Some(b.to_vec())),
        (DataType::Boolean | DataType::Int32 | DataType::Int64, _)
        | (DataType::Float64 | DataType::Utf8 | DataType::Binary, _) => return None,
        (other, _) => return Some(Err(format!("Unsupported type for PROTOBUF_NOSR: {other}"))),
    };
    Some(Ok(v))
}

/// The proto3 default a scalar field reads as when absent.
fn default_of(dt: &DataType) -> Result<ScalarValue, String> {
    Ok(match dt {
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Int32 => ScalarValue::Int32(Some(0)),
        DataType::Int64 => ScalarValue::Int64(Some(0)),
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        DataType::Utf8 => ScalarValue::Utf8(Some(String::new())),
        DataType::Binary => ScalarValue::Binary(Some(Vec::new())),
        other => return Err(format!("Unsupported type for PROTOBUF_NOSR: {other}")),
    })
}

/// A varint field of a well-known message, as the int32 protobuf-java reads.
fn int_field(slots: &[Vec<Raw<'_>>], i: usize) -> i64 {
    slots[i]
        .iter()
        .rev()
        .find_map(|r| match r {
            Raw::Varint(v) => Some(*v),
            _ => None,
        })
        .unwrap_or(0) as i64
}

fn int32_field(slots: &[Vec<Raw<'_>>], i: usize) -> i64 {
    i64::from(int_field(slots, i) as i32)
}

/// The value of a present message-typed field.
fn message_value(dt: &DataType, bytes: &[u8]) -> Result<ScalarValue, String> {
    match dt {
        DataType::Struct(fields) => struct_value(fields, bytes),
        DataType::Decimal128(p, s) => {
            let slots = read_fields(bytes, 3)?;
            let unscaled = match slots[0].iter().rev().find_map(|r| match r {
                Raw::Len(b) => Some(*b),
                _ => None,
            }) {
                Some(b) => i128_from_be(b)?,
                None => 0,
            };
            let scale = int32_field(&slots, 2);
            let v = rescale(unscaled, scale, *s)?;
            if digits(v) > u32::from(*p) {
                return Err(format!(
                    "Cannot fit decimal with unscaled value {v} into DECIMAL({p}, {s})"
                ));
            }
            Ok(ScalarValue::Decimal128(Some(v), *p, *s))
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            let slots = read_fields(bytes, 2)?;
            let seconds = int_field(&slots, 0);
            let nanos = int32_field(&slots, 1);
            let ms = seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(nanos.div_euclid(1_000_000)))
                .ok_or_else(|| format!("Timestamp out of range: {seconds}s"))?;
            Ok(ScalarValue::TimestampMillisecond(Some(ms), tz.clone()))
        }
        DataType::Date32 => {
            let slots = read_fields(bytes, 3)?;
            let (y, m, d) = (
                int32_field(&slots, 0),
                int32_field(&slots, 1),
                int32_field(&slots, 2),
            );
            let days = if (1..=12).contains(&m) && (1..=31).contains(&d) {
                let days = days_from_civil(y, m as u32, d as u32);
                (civil_from_days(days) == (y, m as u32, d as u32))
                    .then(|| i32::try_from(days).ok())
                    .flatten()
            } else {
                None
            };
            days.map(|d| ScalarValue::Date32(Some(d)))
                .ok_or_else(|| format!("Invalid date: year {y}, month {m}, day {d}"))
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let slots = read_fields(bytes, 4)?;
            let (h, m, s, n) = (
                int32_field(&slots, 0),
                int32_field(&slots, 1),
                int32_field(&slots, 2),
                int32_field(&slots, 3),
            );
            if !(0..24).contains(&h)
                || !(0..60).contains(&m)
                || !(0..60).contains(&s)
                || !(0..1_000_000_000).contains(&n)
            {
                return Err(format!("Invalid time of day: {h}:{m}:{s}.{n}"));
            }
            let ms = ((h * 60 + m) * 60 + s) * 1000 + n / 1_000_000;
            Ok(ScalarValue::Time32Millisecond(Some(ms as i32)))
        }
        other => Err(format!("Unsupported type for PROTOBUF_NOSR: {other}")),
    }
}

fn struct_value(fields: &Fields, bytes: &[u8]) -> Result<ScalarValue, String> {
    let slots = read_fields(bytes, fields.len())?;
    let values = fields
        .iter()
        .zip(&slots)
        .map(|(f, occs)| singular(f.data_type(), occs))
        .collect::<Result<Vec<_>, _>>()?;
    scalar::make_struct(values, fields)
}

/// Big-endian two's complement bytes (Java's `BigInteger(byte[])`) as an i128.
fn i128_from_be(b: &[u8]) -> Result<i128, String> {
    let negative = b.first().is_some_and(|&x| x & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    let excess = b.len().saturating_sub(16);
    if b[..excess].iter().any(|&x| x != fill) || (excess > 0 && (b[excess] & 0x80 != 0) != negative)
    {
        return Err("Decimal value out of range".into());
    }
    let mut buf = [fill; 16];
    let tail = &b[excess..];
    buf[16 - tail.len()..].copy_from_slice(tail);
    Ok(i128::from_be_bytes(buf))
}

/// Minimal big-endian two's complement bytes (Java's `BigInteger.toByteArray`).
fn i128_to_be(v: i128) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (x, next) = (b[start], b[start + 1]);
        if (x == 0x00 && next & 0x80 == 0) || (x == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    b[start..].to_vec()
}

fn digits(v: i128) -> u32 {
    let mut n = v.unsigned_abs();
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// `v` at scale `from` expressed at scale `to`, exactly.
fn rescale(v: i128, from: i64, to: i8) -> Result<i128, String> {
    let to = i64::from(to);
    let out_of_range = || format!("Cannot rescale decimal {v} (scale {from}) to scale {to}");
    if from == to {
        return Ok(v);
    }
    let diff = u32::try_from((to - from).unsigned_abs()).map_err(|_| out_of_range())?;
    let factor = 10i128.checked_pow(diff).ok_or_else(out_of_range)?;
    if to > from {
        v.checked_mul(factor).ok_or_else(out_of_range)
    } else if v % factor == 0 {
        Ok(v / factor)
    } else {
        Err(out_of_range())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------- writing

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

fn put_len(out: &mut Vec<u8>, tag: u32, body: &[u8]) {
    put_key(out, tag, LEN);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A signed int32/int64 varint (negative numbers sign-extended to 10 bytes).
fn put_int(out: &mut Vec<u8>, tag: u32, v: i64) {
    if v != 0 {
        put_key(out, tag, VARINT);
        put_varint(out, v as u64);
    }
}

/// Writes one non-repeated field; NULLs and proto3 defaults write nothing.
fn write_field(out: &mut Vec<u8>, tag: u32, dt: &DataType, d: &Datum) -> Result<(), String> {
    match (d, dt) {
        (Datum::Null, _) => {}
        (Datum::Bool(b), _) => put_int(out, tag, i64::from(*b)),
        (Datum::Int(x), _) => put_int(out, tag, i64::from(*x)),
        (Datum::Long(x), _) => put_int(out, tag, *x),
        (Datum::Double(x), _) => {
            if x.to_bits() != 0 {
                put_key(out, tag, FIXED64);
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        (Datum::Str(s), _) => {
            if !s.is_empty() {
                put_len(out, tag, s.as_bytes());
            }
        }
        (Datum::Bytes(b), _) => {
            if !b.is_empty() {
                put_len(out, tag, b);
            }
        }
        (Datum::List(items), DataType::List(item)) => {
            write_list(out, tag, item.data_type(), items)?
        }
        (Datum::Map(entries), DataType::Map(entries_field, _)) => {
            let DataType::Struct(kv) = entries_field.data_type() else {
                return Err(format!("internal: {dt} has no entries struct"));
            };
            for (k, v) in entries {
                let mut body = Vec::new();
                write_field(&mut body, 1, kv[0].data_type(), k)?;
                write_field(&mut body, 2, kv[1].data_type(), v)?;
                put_len(out, tag, &body);
            }
        }
        (d, dt) => put_len(out, tag, &message_body(d, dt)?),
    }
    Ok(())
}

/// The body of a message-typed value (STRUCT, DECIMAL, TIMESTAMP, DATE, TIME).
fn message_body(d: &Datum, dt: &DataType) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    match (d, dt) {
        (Datum::Null, _) => {}
        (Datum::Struct(values), DataType::Struct(fields)) => {
            for (i, (f, (_, v))) in fields.iter().zip(values).enumerate() {
                write_field(&mut body, i as u32 + 1, f.data_type(), v)?;
            }
        }
        (Datum::Decimal(v, _, s), _) => {
            put_len(&mut body, 1, &i128_to_be(*v));
            put_int(&mut body, 2, i64::from(digits(*v)));
            put_int(&mut body, 3, i64::from(*s));
        }
        (Datum::Timestamp(ms), _) => {
            put_int(&mut body, 1, ms.div_euclid(1000));
            put_int(&mut body, 2, ms.rem_euclid(1000) * 1_000_000);
        }
        (Datum::Date(days), _) => {
            let (y, m, d) = civil_from_days(i64::from(*days));
            put_int(&mut body, 1, y);
            put_int(&mut body, 2, i64::from(m));
            put_int(&mut body, 3, i64::from(d));
        }
        (Datum::Time(ms), _) => {
            let ms = i64::from(*ms);
            put_int(&mut body, 1, ms / 3_600_000);
            put_int(&mut body, 2, ms / 60_000 % 60);
            put_int(&mut body, 3, ms / 1000 % 60);
            put_int(&mut body, 4, ms % 1000 * 1_000_000);
        }
        (d, dt) => return Err(format!("Cannot write {d:?} as PROTOBUF_NOSR type {dt}")),
    }
    Ok(body)
}

/// Writes a repeated field: numbers packed, other elements one by one (a
/// NULL element as its default).
fn write_list(out: &mut Vec<u8>, tag: u32, item: &DataType, items: &[Datum]) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    match item {
        DataType::Boolean | DataType::Int32 | DataType::Int64 | DataType::Float64 => {
            let mut packed = Vec::new();
            for d in items {
                match d {
                    Datum::Bool(b) => put_varint(&mut packed, u64::from(*b)),
                    Datum::Int(x) => put_varint(&mut packed, i64::from(*x) as u64),
                    Datum::Long(x) => put_varint(&mut packed, *x as u64),
                    Datum::Double(x) => packed.extend_from_slice(&x.to_le_bytes()),
                    Datum::Null if item == &DataType::Float64 => {
                        packed.extend_from_slice(&0f64.to_le_bytes())
                    }
                    Datum::Null => put_varint(&mut packed, 0),
                    other => return Err(format!("Cannot write {other:?} as {item}")),
                }
            }
            put_len(out, tag, &packed);
        }
        DataType::Utf8 | DataType::Binary => {
            for d in items {
                match d {
                    Datum::Str(s) => put_len(out, tag, s.as_bytes()),
                    Datum::Bytes(b) => put_len(out, tag, b),
                    Datum::Null => put_len(out, tag, &[]),
                    other => return Err(format!("Cannot write {other:?} as {item}")),
                }
            }
        }
        DataType::List(_) | DataType::Map(_, _) => {
            for d in items {
                let mut body = Vec::new();
                write_field(&mut body, 1, item, d)?;
                put_len(out, tag, &body);
            }
        }
        _ => {
            for d in items {
                put_len(out, tag, &message_body(d, item)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::catalog::types::SqlType;
    use crate::connectors::formats::{bytes_to_test_json, test_json_to_bytes, Format, FormatKind};
    use datafusion::arrow::datatypes::Field;
    use serde_json::json;

    fn cols(cols: &[(&str, SqlType)]) -> Vec<FieldRef> {
        crate::connectors::formats::test_fields(cols)
    }

    fn pb() -> Format {
        Format::new(FormatKind::ProtobufNoSr)
    }

    fn roundtrip(fields: &[FieldRef], values: Vec<ScalarValue>) {
        let bytes = pb().encode(&values, fields, false).unwrap().unwrap();
        assert_eq!(pb().decode(&bytes, fields, false).unwrap(), values);
    }

    #[test]
    fn writes_exact_proto3_bytes() {
        let f = cols(&[
            ("A", SqlType::Int),
            ("B", SqlType::String),
            ("C", SqlType::Double),
            ("D", SqlType::Bigint),
        ]);
        let v = [
            ScalarValue::Int32(Some(150)),
            ScalarValue::Utf8(Some("hi".into())),
            ScalarValue::Float64(Some(1.0)),
            ScalarValue::Int64(Some(-1)),
        ];
        assert_eq!(
            pb().encode(&v, &f, false).unwrap().unwrap(),
            [
                vec![0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x19],
                vec![0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x20],
                vec![0xff; 9],
                vec![0x01],
            ]
            .concat()
        );
        // Defaults and NULLs are absent: an all-default record is empty.
        let zero = [
            ScalarValue::Int32(Some(0)),
            ScalarValue::Utf8(None),
            ScalarValue::Float64(Some(0.0)),
            ScalarValue::Int64(None),
        ];
        assert_eq!(pb().encode(&zero, &f, false).unwrap().unwrap(), b"");
        // Packed repeated numbers, a decimal message, a map entry.
        let f = cols(&[
            ("L", SqlType::Array(Box::new(SqlType::Int))),
            ("D", SqlType::Decimal(4, 2)),
            (
                "M",
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int)),
            ),
        ]);
        let list = scalar::make_list(
            vec![ScalarValue::Int32(Some(1)), ScalarValue::Int32(Some(300))],
            f[0].data_type(),
        )
        .unwrap();
        let map = scalar::make_map(
            vec![ScalarValue::Utf8(Some("k".into()))],
            vec![ScalarValue::Int32(Some(2))],
            f[2].data_type(),
        )
        .unwrap();
        let v = [list, ScalarValue::Decimal128(Some(-150), 4, 2), map];
        assert_eq!(
            pb().encode(&v, &f, false).unwrap().unwrap(),
            vec![
                0x0a, 0x03, 0x01, 0xac, 0x02, // L: packed [1, 300]
                0x12, 0x08, 0x0a, 0x02, 0xff, 0x6a, 0x10, 0x03, 0x18, 0x02, // D: -1.50
                0x1a, 0x05, 0x0a, 0x01, b'k', 0x10, 0x02, // M: {k: 2}
            ]
        );
    }

    #[test]
    fn every_type_round_trips() {
        let inner = SqlType::Struct(vec![
            ("X".into(), SqlType::Int),
            ("Y".into(), SqlType::Array(Box::new(SqlType::String))),
        ]);
        let f = cols(&[
            ("B", SqlType::Boolean),
            ("I", SqlType::Int),
            ("L", SqlType::Bigint),
            ("D", SqlType::Double),
            ("S", SqlType::String),
            ("BY", SqlType::Bytes),
            ("DEC", SqlType::Decimal(20, 3)),
            ("TS", SqlType::Timestamp),
            ("DT", SqlType::Date),
            ("TM", SqlType::Time),
            ("ST", inner.clone()),
            ("AD", SqlType::Array(Box::new(SqlType::Double))),
            ("AS", SqlType::Array(Box::new(inner.clone()))),
            (
                "MT",
                SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Timestamp)),
            ),
            (
                "AA",
                SqlType::Array(Box::new(SqlType::Array(Box::new(SqlType::Bigint)))),
            ),
        ]);
        let dt = |i: usize| f[i].data_type().clone();
        let DataType::Struct(inner_fields) = inner.to_arrow() else {
            unreachable!()
        };
        let strs = scalar::make_list(
            vec![
                ScalarValue::Utf8(Some("a".into())),
                ScalarValue::Utf8(Some(String::new())),
            ],
            inner_fields[1].data_type(),
        )
        .unwrap();
        let st =
            scalar::make_struct(vec![ScalarValue::Int32(Some(-7)), strs], &inner_fields).unwrap();
        let longs = |xs: &[i64]| {
            let DataType::List(item) = dt(14) else {
                unreachable!()
            };
            scalar::make_list(
                xs.iter().map(|x| ScalarValue::Int64(Some(*x))).collect(),
                item.data_type(),
            )
            .unwrap()
        };
        let values = vec![
            ScalarValue::Boolean(Some(true)),
            ScalarValue::Int32(Some(i32::MIN)),
            ScalarValue::Int64(Some(i64::MAX)),
            ScalarValue::Float64(Some(-2.5)),
            ScalarValue::Utf8(Some("héllo".into())),
            ScalarValue::Binary(Some(vec![0, 1, 255])),
            ScalarValue::Decimal128(Some(-123_456_789_012_345), 20, 3),
            ScalarValue::TimestampMillisecond(Some(-1_500), None),
            ScalarValue::Date32(Some(-719_000)),
            ScalarValue::Time32Millisecond(Some(86_399_999)),
            st.clone(),
            scalar::make_list(
                vec![
                    ScalarValue::Float64(Some(1.5)),
                    ScalarValue::Float64(Some(0.0)),
                ],
                &dt(11),
            )
            .unwrap(),
            scalar::make_list(vec![st], &dt(12)).unwrap(),
            scalar::make_map(
                vec![
                    ScalarValue::Utf8(Some("a".into())),
                    ScalarValue::Utf8(Some("b".into())),
                ],
                vec![
                    ScalarValue::TimestampMillisecond(Some(10), None),
                    ScalarValue::TimestampMillisecond(None, None),
                ],
                &dt(13),
            )
            .unwrap(),
            scalar::make_list(vec![longs(&[1, -2]), longs(&[])], &dt(14)).unwrap(),
        ];
        roundtrip(&f, values);
        for days in [-1_000_000, -1, 0, 59, 60, 365, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
    }

    #[test]
    fn nulls_read_back_as_proto3_defaults_except_messages() {
        let f = cols(&[
            ("I", SqlType::Int),
            ("S", SqlType::String),
            ("B", SqlType::Boolean),
            ("D", SqlType::Decimal(4, 2)),
            ("TS", SqlType::Timestamp),
            ("ST", SqlType::Struct(vec![("X".into(), SqlType::String)])),
            ("A", SqlType::Array(Box::new(SqlType::Int))),
        ]);
        let nulls: Vec<ScalarValue> = f
            .iter()
            .map(|f| scalar::null_of(f.data_type()).unwrap())
            .collect();
        let bytes = pb().encode(&nulls, &f, false).unwrap().unwrap();
        assert!(bytes.is_empty());
        let back = pb().decode(&bytes, &f, false).unwrap();
        assert_eq!(back[0], ScalarValue::Int32(Some(0)));
        assert_eq!(back[1], ScalarValue::Utf8(Some(String::new())));
        assert_eq!(back[2], ScalarValue::Boolean(Some(false)));
        assert!(back[3].is_null() && back[4].is_null() && back[5].is_null());
        assert_eq!(
            back[6],
            scalar::make_list(vec![], f[6].data_type()).unwrap()
        );
        // A NULL inside a struct is a default too.
        let st = DataType::Struct(Fields::from(vec![Field::new("X", DataType::Utf8, true)]));
        let DataType::Struct(sf) = &st else {
            unreachable!()
        };
        let v = scalar::make_struct(vec![ScalarValue::Utf8(None)], sf).unwrap();
        let one = vec![Arc::new(Field::new("ST", st.clone(), true))];
        let bytes = pb().encode(&[v], &one, false).unwrap().unwrap();
        assert_eq!(bytes, [0x0a, 0x00]);
        assert_eq!(
            pb().decode(&bytes, &one, false).unwrap(),
            vec![scalar::make_struct(vec![ScalarValue::Utf8(Some(String::new()))], sf).unwrap()]
        );
        // An unwrapped NULL writes no bytes.
        let k = cols(&[("K", SqlType::Int)]);
        assert_eq!(
            pb().encode(&[ScalarValue::Int32(None)], &k, true).unwrap(),
            None
        );
    }

    #[test]
    fn qtt_notation_is_a_json_object() {
        let f = cols(&[("NAME", SqlType::String), ("VALUE", SqlType::Bigint)]);
        let bytes = test_json_to_bytes(&pb(), &json!({"name": "x", "VALUE": null}), &f, false)
            .unwrap()
            .unwrap();
        assert_eq!(bytes, [0x0a, 0x01, b'x']);
        assert_eq!(
            bytes_to_test_json(&pb(), &bytes, &f, false).unwrap(),
            json!({"NAME": "x", "VALUE": 0})
        );
        let k = cols(&[("K", SqlType::Int)]);
        let bytes = test_json_to_bytes(&pb(), &json!(7), &k, true)
            .unwrap()
            .unwrap();
        assert_eq!(bytes, [0x08, 0x07]);
        assert_eq!(
            bytes_to_test_json(&pb(), &bytes, &k, true).unwrap(),
            json!(7)
        );
    }

    #[test]
    fn reads_what_protobuf_java_accepts() {
        let f = cols(&[
            ("I", SqlType::Int),
            ("A", SqlType::Array(Box::new(SqlType::Int))),
            (
                "ST",
                SqlType::Struct(vec![("X".into(), SqlType::Int), ("Y".into(), SqlType::Int)]),
            ),
        ]);
        // Unknown field 9 skipped, wrong wire type for 1 skipped, last
        // occurrence wins, unpacked and packed elements mixed, message merged.
        let bytes = [
            0x48, 0x05, 0x0d, 1, 2, 3, 4, 0x08, 0x01, 0x08, 0x02, 0x10, 0x04, 0x12, 0x02, 0x05,
            0x06, 0x1a, 0x02, 0x08, 0x01, 0x1a, 0x02, 0x10, 0x02,
        ];
        let v = pb().decode(&bytes, &f, false).unwrap();
        assert_eq!(v[0], ScalarValue::Int32(Some(2)));
        assert_eq!(
            v[1],
            scalar::make_list(
                [4, 5, 6].map(|x| ScalarValue::Int32(Some(x))).to_vec(),
                f[1].data_type()
            )
            .unwrap()
        );
        let DataType::Struct(sf) = f[2].data_type() else {
            unreachable!()
        };
        assert_eq!(
            v[2],
            scalar::make_struct(
                vec![ScalarValue::Int32(Some(1)), ScalarValue::Int32(Some(2))],
                sf
            )
            .unwrap()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let f = cols(&[
            ("I", SqlType::Int),
            ("S", SqlType::String),
            ("D", SqlType::Decimal(4, 2)),
            ("DT", SqlType::Date),
            ("A", SqlType::Array(Box::new(SqlType::Double))),
        ]);
        let err = |b: &[u8]| pb().decode(b, &f, false).unwrap_err().to_string();
        assert!(err(&[0x08]).contains("input ended unexpectedly"));
        assert!(
            err(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .contains("malformed varint")
        );
        assert!(err(&[0x0b]).contains("invalid wire type"));
        assert!(err(&[0x00, 0x01]).contains("invalid tag (zero)"));
        assert!(err(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]).contains("input ended unexpectedly"));
        assert!(err(&[0x12, 0x01, 0xff]).contains("invalid UTF-8"));
        assert!(err(&[0x22, 0x04, 0x10, 0x0d, 0x18, 0x01]).contains("Invalid date"));
        assert!(err(&[0x2a, 0x03, 1, 2, 3]).contains("input ended unexpectedly"));
        assert!(err(&[0x1a, 0x05, 0x0a, 0x03, 0x0f, 0x42, 0x40]).contains("DECIMAL(4, 2)"));
        assert_eq!(
            err(&[0x08]),
            format!("Failed to deserialize value. {TRUNCATED}")
        );
        // Every prefix and every single-byte corruption of a valid record.
        let good = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1a, 0x08, 0x0a, 0x02, 0xff, 0x6a, 0x10,
            0x03, 0x18, 0x02, 0x22, 0x07, 0x08, 0xb2, 0x0f, 0x10, 0x01, 0x18, 0x01, 0x2a, 0x08, 0,
            0, 0, 0, 0, 0, 0xf0, 0x3f,
        ];
        assert!(pb().decode(&good, &f, false).is_ok());
        for n in 0..good.len() {
            let _ = pb().decode(&good[..n], &f, false);
            for x in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = good.to_vec();
                bad[n] = x;
                let _ = pb().decode(&bad, &f, false);
            }
        }
    }
}

//! Bytes and character codes: ENCODE, TO_BYTES, FROM_BYTES,
//! INT/BIGINT/DOUBLE_FROM_BYTES, CHR, UUID, MD5.
//!
//! Encodings are `hex`, `utf8`, `ascii` and `base64` (case-insensitive), as
//! ksqlDB's `BytesUtils`: `FROM_BYTES(.., 'hex')` prints upper-case hex,
//! `ENCODE(.., 'utf8', 'hex')` lower-case (commons-codec), ASCII maps
//! anything outside 7 bits to `?` (encoding) or U+FFFD (decoding). An unknown
//! encoding or undecodable text gives NULL.

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{ret_f64, ret_i32, ret_i64, ret_str, utf8, Arg::*, Call, Params, RowUdf};

pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "BIGINT_FROM_BYTES",
        "Reads a BIGINT from 8 bytes (BIG_ENDIAN or LITTLE_ENDIAN)",
    ),
    (
        "CHR",
        "The character for a Unicode code point or a '\\uXXXX' escape",
    ),
    (
        "DOUBLE_FROM_BYTES",
        "Reads a DOUBLE from 8 bytes (BIG_ENDIAN or LITTLE_ENDIAN)",
    ),
    (
        "ENCODE",
        "Re-encodes a string between hex, utf8, ascii and base64",
    ),
    (
        "FROM_BYTES",
        "Converts bytes to a string in the given encoding",
    ),
    (
        "INT_FROM_BYTES",
        "Reads an INT from 4 bytes (BIG_ENDIAN or LITTLE_ENDIAN)",
    ),
    (
        "MD5",
        "The MD5 hash of a string, as 32 lower-case hex digits",
    ),
    (
        "TO_BYTES",
        "Converts a string in the given encoding to bytes",
    ),
    ("UUID", "A random UUID, or the UUID of 16 bytes"),
];

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const NUM: Params = Params::Fixed(&[&[Bytes], &[Bytes, Str]]);
    vec![
        RowUdf::new(
            "encode",
            Params::Fixed(&[&[Str, Str, Str]]),
            ret_str,
            encode,
        )
        .build(),
        RowUdf::new(
            "to_bytes",
            Params::Fixed(&[&[Str, Str]]),
            |_| Ok(datafusion::arrow::datatypes::DataType::Binary),
            |c| {
                let (Some(s), Some(enc)) = (c.s(0), c.s(1)) else {
                    return c.null();
                };
                Ok(ScalarValue::Binary(
                    Encoding::from(enc).and_then(|e| e.decode(s)),
                ))
            },
        )
        .build(),
        RowUdf::new(
            "from_bytes",
            Params::Fixed(&[&[Bytes, Str]]),
            ret_str,
            |c| {
                let (Some(b), Some(enc)) = (c.bytes(0), c.s(1)) else {
                    return c.null();
                };
                Ok(ScalarValue::Utf8(
                    Encoding::from(enc).map(|e| e.encode(b, true)),
                ))
            },
        )
        .build(),
        RowUdf::new("int_from_bytes", NUM, ret_i32, |c| {
            Ok(ScalarValue::Int32(fixed::<4>(c).map(|(b, big)| {
                if big {
                    i32::from_be_bytes(b)
                } else {
                    i32::from_le_bytes(b)
                }
            })))
        })
        .build(),
        RowUdf::new("bigint_from_bytes", NUM, ret_i64, |c| {
            Ok(ScalarValue::Int64(fixed::<8>(c).map(|(b, big)| {
                if big {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                }
            })))
        })
        .build(),
        RowUdf::new("double_from_bytes", NUM, ret_f64, |c| {
            Ok(ScalarValue::Float64(fixed::<8>(c).map(|(b, big)| {
                if big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }
            })))
        })
        .build(),
        RowUdf::new("md5", Params::Fixed(&[&[Str]]), ret_str, |c| match c.s(0) {
            Some(s) => Ok(utf8(md5_hex(s.as_bytes()))),
            None => c.null(),
        })
        .build(),
        RowUdf::new("chr", Params::Fixed(&[&[Int], &[Str]]), ret_str, chr).build(),
        RowUdf::new("uuid", Params::Fixed(&[&[], &[Bytes]]), ret_str, uuid)
            .volatile()
            .build(),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Hex,
    Utf8,
    Ascii,
    Base64,
}

impl Encoding {
    fn from(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "hex" => Some(Self::Hex),
            "utf8" => Some(Self::Utf8),
            "ascii" => Some(Self::Ascii),
            "base64" => Some(Self::Base64),
            _ => None,
        }
    }

    fn encode(self, b: &[u8], upper_hex: bool) -> String {
        match self {
            Self::Hex => b
                .iter()
                .map(|x| {
                    if upper_hex {
                        format!("{x:02X}")
                    } else {
                        format!("{x:02x}")
                    }
                })
                .collect(),
            Self::Utf8 => String::from_utf8_lossy(b).into_owned(),
            Self::Ascii => b
                .iter()
                .map(|&x| {
                    if x.is_ascii() {
                        char::from(x)
                    } else {
                        '\u{FFFD}'
                    }
                })
                .collect(),
            Self::Base64 => base64_encode(b),
        }
    }

    fn decode(self, s: &str) -> Option<Vec<u8>> {
        match self {
            Self::Hex => hex_decode(s),
            Self::Utf8 => Some(s.as_bytes().to_vec()),
            Self::Ascii => Some(
                s.chars()
                    .map(|c| u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(b'?'))
                    .collect(),
            ),
            Self::Base64 => base64_decode(s),
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = char::from(*p.first()?).to_digit(16)?;
            let lo = char::from(*p.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn base64_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((v >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(B64.get(idx).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || (s.len() != body.len() && !s.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for ch in body.bytes() {
        let v = B64.iter().position(|&x| x == ch)?;
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xFF).ok()?);
        }
    }
    if body.len() % 4 == 1 {
        return None;
    }
    Some(out)
}

/// Strip `0x..` / `X'..'` around hex, as ksqlDB's `Encode.hexStrip`.
fn hex_strip(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("0x") {
        if !s.len().is_multiple_of(2) {
            return format!("0{rest}");
        }
        return rest.to_string();
    }
    if (s.starts_with("x'") || s.starts_with("X'")) && s.len() >= 3 && s.ends_with('\'') {
        return s.get(2..s.len() - 1).unwrap_or_default().to_string();
    }
    s.to_string()
}

fn encode(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(s), Some(from), Some(to)) = (c.s(0), c.s(1), c.s(2)) else {
        return c.null();
    };
    let (Some(from), Some(to)) = (Encoding::from(from), Encoding::from(to)) else {
        return c.null();
    };
    if from == to {
        return c.null();
    }
    let bytes = match from {
        Encoding::Hex => hex_decode(&hex_strip(s)),
        Encoding::Base64 => base64_decode(s),
        other => other.decode(s),
    };
    Ok(ScalarValue::Utf8(bytes.map(|b| to.encode(&b, false))))
}

fn fixed<const N: usize>(c: &Call<'_>) -> Option<([u8; N], bool)> {
    let b: [u8; N] = c.bytes(0)?.try_into().ok()?;
    let big = if c.len() > 1 {
        match c.s(1)?.to_ascii_uppercase().as_str() {
            "BIG_ENDIAN" => true,
            "LITTLE_ENDIAN" => false,
            _ => return None,
        }
    } else {
        true
    };
    Some((b, big))
}

fn chr(c: &mut Call<'_>) -> Result<ScalarValue> {
    if let Some(code) = c.i(0) {
        let ch = u32::try_from(code).ok().and_then(char::from_u32);
        return Ok(ScalarValue::Utf8(ch.map(String::from)));
    }
    // '\uXXXX' (possibly a surrogate pair '\uD83D\uDE00').
    let Some(s) = c.s(0) else { return c.null() };
    if s.len() < 6 || !s.starts_with("\\u") {
        return c.null();
    }
    let units: Option<Vec<u16>> = s
        .split("\\u")
        .skip(1)
        .map(|h| h.get(..4).and_then(|h| u16::from_str_radix(h, 16).ok()))
        .collect();
    Ok(ScalarValue::Utf8(
        units.and_then(|u| String::from_utf16(&u).ok()),
    ))
}

fn uuid(c: &mut Call<'_>) -> Result<ScalarValue> {
    let bytes: [u8; 16] = if c.len() == 1 {
        match c.bytes(0).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
            Some(b) => b,
            None => return c.null(),
        }
    } else {
        let mut b = [0u8; 16];
        let hi = rand_u64().to_be_bytes();
        let lo = rand_u64().to_be_bytes();
        b[..8].copy_from_slice(&hi);
        b[8..].copy_from_slice(&lo);
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // IETF variant
        b
    };
    let h: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or_default();
    Ok(utf8(format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )))
}

/// MD5 (RFC 1321) of `data` as lower-case hex, as commons-codec `md5Hex`.
fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32)
    let k: Vec<u32> = (0..64)
        .map(|i: u32| (f64::from(i + 1).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in msg.chunks_exact(64) {
        let w: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(w[g])
                .rotate_left(S[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        h = [
            h[0].wrapping_add(a),
            h[1].wrapping_add(b),
            h[2].wrapping_add(c),
            h[3].wrapping_add(d),
        ];
    }
    h.iter()
        .flat_map(|x| x.to_le_bytes())
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// 64 random bits from std's randomly seeded SipHash (no `rand` crate).
pub(super) fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;
    use super::*;

    #[test]
    fn md5_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        let long =
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(md5_hex(long), "57edf4a22be3c955ac49da2e2107b67a");
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).as_deref(), Some(s.as_bytes()), "{e}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8").as_deref(), Some(&b"fo"[..])); // padding optional, as Java
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Z!=="), None);
    }

    #[tokio::test]
    async fn encode_and_bytes() {
        assert_eq!(q1("SELECT encode('Hello', 'utf8', 'hex'), encode('48656c6c6f', 'hex', 'utf8'), encode('0x48', 'hex', 'ascii')").await, "48656c6c6f|Hello|H");
        assert_eq!(q1("SELECT encode('Hello', 'ascii', 'base64'), encode('SGVsbG8=', 'base64', 'utf8'), encode('a', 'nope', 'hex')").await, "SGVsbG8=|Hello|NULL");
        assert_eq!(q1("SELECT from_bytes(to_bytes('AbCd', 'hex'), 'hex'), from_bytes(to_bytes('hi', 'utf8'), 'base64'), to_bytes('xyz', 'hex')").await, "ABCD|aGk=|NULL");
        assert_eq!(q1("SELECT int_from_bytes(to_bytes('0000002A', 'hex')), int_from_bytes(to_bytes('2A000000', 'hex'), 'LITTLE_ENDIAN'), int_from_bytes(to_bytes('2A', 'hex'))").await, "42|42|NULL");
        assert_eq!(q1("SELECT bigint_from_bytes(to_bytes('000000000000002A', 'hex')), double_from_bytes(to_bytes('3FF0000000000000', 'hex'))").await, "42|1.0");
    }

    #[tokio::test]
    async fn chr_and_uuid() {
        assert_eq!(
            q1("SELECT chr(75), chr('\\u004b'), chr(-1), chr('x'), chr('\\ud83d\\ude00')").await,
            "K|K|NULL|NULL|😀"
        );
        assert_eq!(
            q1("SELECT len(uuid()), uuid(to_bytes('000102030405060708090a0b0c0d0e0f', 'hex'))")
                .await,
            "36|00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
    }
}

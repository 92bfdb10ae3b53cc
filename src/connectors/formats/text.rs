//! Text forms of scalars, as ksqlDB's JVM serdes write and read them.
//!
//! ksqlDB formats numbers with Java's `Double.toString`, `BigDecimal.toPlainString`
//! and parses with `Integer.parseInt`, `Long.parseLong`, `Double.parseDouble`,
//! `new BigDecimal(..)` and `Boolean.parseBoolean`. DELIMITED output is compared
//! byte for byte by the conformance cases, so these helpers reproduce the Java
//! behaviour where it differs from Rust's (`100.0` not `100`, `1.0E10` not
//! `10000000000`, `"yes"` parses as `false`).
//!
//! Decimals are handled as (unscaled `i128`, scale) pairs, the Arrow
//! `Decimal128` representation, with ksqlDB's `DecimalUtil.ensureFit` rules:
//! the value must be below `10^(precision - scale)` and must not need rounding.

/// Java's `Double.toString`: shortest round-trip digits, plain notation for
/// `1e-3 <= |d| < 1e7` (always with a fractional part), otherwise
/// `d.dddE[-]n`.
pub(crate) fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{d}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{d:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Java's `Double.parseDouble`: surrounding whitespace ignored, `NaN`,
/// `Infinity` and an optional `d`/`f` suffix accepted.
pub(crate) fn parse_java_double(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    match body {
        "NaN" => return Some(f64::NAN),
        "Infinity" => return Some(sign * f64::INFINITY),
        _ => {}
    }
    let body = body.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(body);
    // Rust also accepts "inf", "nan" and "infinity": Java does not.
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
    {
        return None;
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

/// Java's `Integer.parseInt` / `Long.parseLong`: optional sign, ASCII digits,
/// nothing else.
pub(crate) fn parse_java_long(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

pub(crate) fn parse_java_int(s: &str) -> Option<i32> {
    parse_java_long(s).and_then(|v| i32::try_from(v).ok())
}

/// Java's `Boolean.parseBoolean`: `true` in any case is true, anything else false.
pub(crate) fn parse_java_bool(s: &str) -> bool {
    s.eq_ignore_ascii_case("true")
}

/// A decimal number as written: its digits without sign or point, the
/// scale (digits after the point, minus the exponent) and the sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecimalText {
    pub negative: bool,
    /// Significant digits, leading zeros removed (empty for zero).
    pub digits: String,
    pub scale: i64,
}

impl DecimalText {
    /// Parses what Java's `new BigDecimal(String)` accepts:
    /// `[+-]digits[.digits][(e|E)[+-]digits]`, either side of the point may be empty.
    pub(crate) fn parse(s: &str) -> Option<DecimalText> {
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let exp: i64 = match exp {
            Some(e) => parse_java_long(e).filter(|e| e.abs() < 1_000_000)?,
            None => 0,
        };
        let all: String = format!("{int_part}{frac_part}");
        let digits = all.trim_start_matches('0').to_string();
        Some(DecimalText {
            negative,
            digits,
            scale: frac_part.len() as i64 - exp,
        })
    }

    /// Java's `BigDecimal.precision()` of this value (1 for zero).
    fn precision(&self) -> usize {
        self.digits.len().max(1)
    }

    fn plain(&self) -> String {
        let unscaled = if self.digits.is_empty() {
            "0"
        } else {
            &self.digits
        };
        format_unscaled(self.negative, unscaled, self.scale)
    }

    /// The unscaled `i128` of this value at `scale`, checked against
    /// `DECIMAL(precision, scale)` as ksqlDB's `DecimalUtil.ensureFit` does.
    pub(crate) fn to_decimal128(&self, precision: u8, scale: i8) -> Result<i128, String> {
        let int_digits = self.digits.len() as i64 - self.scale;
        let max_int_digits = precision as i64 - scale as i64;
        if !self.digits.is_empty() && int_digits > max_int_digits {
            return Err(format!(
                "Numeric field overflow: A field with precision {precision} and scale {scale} \
                 must round to an absolute value less than 10^{max_int_digits}. Got {}",
                self.plain()
            ));
        }
        let rounding = || {
            format!(
                "Cannot fit decimal '{}' into DECIMAL({precision}, {scale}) without rounding. \
                 (Requires {},{})",
                self.plain(),
                self.precision(),
                self.scale
            )
        };
        let shift = scale as i64 - self.scale;
        let mut digits = self.digits.as_str();
        if shift < 0 {
            // Dropping digits: only zeros may go.
            let keep = digits.len().saturating_sub((-shift) as usize);
            if !digits[keep..].bytes().all(|b| b == b'0') {
                return Err(rounding());
            }
            digits = &digits[..keep];
        }
        let mut v: i128 = 0;
        for b in digits.bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((b - b'0') as i128))
                .ok_or_else(rounding)?;
        }
        if shift > 0 {
            for _ in 0..shift {
                v = v.checked_mul(10).ok_or_else(rounding)?;
            }
        }
        Ok(if self.negative { -v } else { v })
    }
}

/// Java's `BigDecimal.toPlainString` of an unscaled value and scale.
pub(crate) fn format_decimal(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    format_unscaled(unscaled < 0, &digits, scale as i64)
}

fn format_unscaled(negative: bool, digits: &str, scale: i64) -> String {
    let sign = if negative && digits.bytes().any(|b| b != b'0') {
        "-"
    } else {
        ""
    };
    if scale <= 0 {
        let zeros = if digits == "0" { 0 } else { (-scale) as usize };
        return format!("{sign}{digits}{}", "0".repeat(zeros));
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        format!("{sign}{i}.{f}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

/// A decimal as an `f64`, for the JSON value model (which has no exact decimals).
pub(crate) fn decimal_to_f64(unscaled: i128, scale: i8) -> f64 {
    format_decimal(unscaled, scale).parse().unwrap_or(f64::NAN)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Java's `Base64.getEncoder()`).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (Java's `Base64.getDecoder()`): padding optional, but
/// if present it must be right; any other character is an error.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    if pad > 2 || (pad > 0 && !s.len().is_multiple_of(4)) || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in body.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(123.456), "123.456");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(-1.5e10), "-1.5E10");
        assert_eq!(java_double(9999999.0), "9999999.0");
        assert_eq!(java_double(-0.0), "-0.0");
        assert_eq!(java_double(f64::NAN), "NaN");
        assert_eq!(java_double(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn numbers_parse_like_java() {
        assert_eq!(parse_java_double(" 1.5d "), Some(1.5));
        assert_eq!(parse_java_double("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_java_double("inf"), None);
        assert_eq!(parse_java_double(""), None);
        assert_eq!(parse_java_int("+12"), Some(12));
        assert_eq!(parse_java_int("2147483648"), None);
        assert_eq!(parse_java_int(" 1"), None);
        assert_eq!(parse_java_long("-9223372036854775808"), Some(i64::MIN));
        assert!(parse_java_bool("TRUE"));
        assert!(!parse_java_bool("yes"));
    }

    #[test]
    fn decimals_fit_or_fail_like_ksqldb() {
        let d = |s: &str, p, sc| DecimalText::parse(s).unwrap().to_decimal128(p, sc);
        assert_eq!(d("12.365", 6, 4), Ok(123650));
        assert_eq!(d(".12", 33, 16), Ok(1_200_000_000_000_000));
        assert_eq!(d("-1.2e1", 4, 1), Ok(-120));
        assert_eq!(d("10.100", 4, 2), Ok(1010));
        assert_eq!(d("0", 4, 2), Ok(0));
        assert_eq!(
            d("100", 4, 2).unwrap_err(),
            "Numeric field overflow: A field with precision 4 and scale 2 must round to an \
             absolute value less than 10^2. Got 100"
        );
        assert_eq!(
            d("1.234", 3, 2).unwrap_err(),
            "Cannot fit decimal '1.234' into DECIMAL(3, 2) without rounding. (Requires 4,3)"
        );
        assert!(DecimalText::parse("1.2.3").is_none());
        assert!(DecimalText::parse("-").is_none());
        assert!(DecimalText::parse("1e99999999999").is_none());
        // Huge inputs fail cleanly.
        assert!(d(&"9".repeat(500), 38, 0).is_err());
        assert!(d(&format!("0.{}1", "0".repeat(500)), 38, 10).is_err());
    }

    #[test]
    fn decimals_print_plain() {
        assert_eq!(format_decimal(123650, 4), "12.3650");
        assert_eq!(format_decimal(-1234512, 2), "-12345.12");
        assert_eq!(format_decimal(5, 3), "0.005");
        assert_eq!(format_decimal(0, 2), "0.00");
        assert_eq!(format_decimal(12, -2), "1200");
        assert_eq!(decimal_to_f64(1010, 2), 10.1);
    }

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"a", "YQ=="),
            (b"ab", "YWI="),
            (b"abc", "YWJj"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).as_deref(), Some(raw));
        }
        assert_eq!(base64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("YQ=").as_deref(), None);
        assert_eq!(base64_decode("Y!=="), None);
    }
}

//! Math functions: ABS, CEIL, FLOOR, ROUND, TRUNC, SIGN, the DOUBLE
//! functions (SQRT, EXP, LN, LOG, POWER, CBRT, trigonometry, ...), PI, RANDOM.
//!
//! Types follow ksqlDB's overloads: ABS/CEIL/FLOOR keep the argument type;
//! ROUND and TRUNC of an integer or DOUBLE return BIGINT, of a DECIMAL(p, s)
//! return DECIMAL(p - s, 0); ROUND/TRUNC(x, n) keep DOUBLE or the DECIMAL type;
//! SIGN returns INT; everything else DOUBLE.
//!
//! ROUND is ksqlDB's "half up, towards positive infinity" (`Math.round`):
//! ROUND(-1.5) = -1, ROUND(1.5) = 2. ROUND(x, n) on a DOUBLE rounds the
//! shortest decimal representation of x (`BigDecimal.valueOf`), so
//! ROUND(1.005, 2) = 1.01 as in ksqlDB, not 1.0 as binary rounding would give.
//! Integer overflow wraps as in Java (ABS(INT_MIN) = INT_MIN).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;

use super::encoding::rand_u64;
use super::udf::{f64_of, ret_f64, ret_first, ret_i32, Arg::*, Call, Params, RowUdf};

pub(super) const CATALOG: &[(&str, &str)] = &[
    ("ABS", "Absolute value"),
    ("ACOS", "Inverse cosine"),
    ("ASIN", "Inverse sine"),
    ("ATAN", "Inverse tangent"),
    ("ATAN2", "Angle of the point (x, y): ATAN2(y, x)"),
    ("CBRT", "Cube root"),
    ("CEIL", "Smallest integral value not less than the argument"),
    ("COS", "Cosine"),
    ("COSH", "Hyperbolic cosine"),
    ("COT", "Cotangent"),
    ("DEGREES", "Radians to degrees"),
    ("EXP", "e raised to the argument"),
    (
        "FLOOR",
        "Largest integral value not greater than the argument",
    ),
    ("LN", "Natural logarithm"),
    ("LOG", "Logarithm: LOG(x) natural, LOG(base, x)"),
    ("PI", "The constant pi"),
    ("POWER", "POWER(base, exponent)"),
    ("RADIANS", "Degrees to radians"),
    ("RANDOM", "A random DOUBLE in [0, 1)"),
    ("ROUND", "Rounds half up; ROUND(x, n) to n decimal places"),
    ("SIGN", "Sign of the argument: -1, 0 or 1"),
    ("SIN", "Sine"),
    ("SINH", "Hyperbolic sine"),
    ("SQRT", "Square root"),
    ("TAN", "Tangent"),
    ("TANH", "Hyperbolic tangent"),
    (
        "TRUNC",
        "Truncates towards zero; TRUNC(x, n) to n decimal places",
    ),
];

fn double_fn(name: &'static str, eval: super::udf::EvalFn) -> ScalarUDF {
    RowUdf::new(name, Params::Fixed(&[&[Dbl]]), ret_f64, eval).build()
}

fn d1(c: &mut Call<'_>, f: fn(f64) -> f64) -> Result<ScalarValue> {
    Ok(ScalarValue::Float64(c.f(0).map(f)))
}

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const NUM: Params = Params::Fixed(&[&[Num]]);
    vec![
        RowUdf::new("abs", NUM, ret_first, abs).build(),
        RowUdf::new("ceil", NUM, ret_first, |c| {
            integral(c, f64::ceil, Towards::Ceil)
        })
        .alias("ceiling")
        .build(),
        RowUdf::new("floor", NUM, ret_first, |c| {
            integral(c, f64::floor, Towards::Floor)
        })
        .build(),
        RowUdf::new(
            "round",
            Params::Fixed(&[&[Num], &[Num, Int]]),
            ret_round,
            |c| round_like(c, Mode::HalfUp),
        )
        .build(),
        RowUdf::new(
            "trunc",
            Params::Fixed(&[&[Num], &[Num, Int]]),
            ret_round,
            |c| round_like(c, Mode::Down),
        )
        .alias("truncate")
        .build(),
        RowUdf::new("sign", Params::Fixed(&[&[Dbl]]), ret_i32, |c| {
            Ok(ScalarValue::Int32(c.f(0).map(|x| {
                if x > 0.0 {
                    1
                } else if x < 0.0 {
                    -1
                } else {
                    0
                }
            })))
        })
        .build(),
        double_fn("sqrt", |c| d1(c, f64::sqrt)),
        double_fn("cbrt", |c| d1(c, f64::cbrt)),
        double_fn("exp", |c| d1(c, f64::exp)),
        double_fn("ln", |c| d1(c, f64::ln)),
        double_fn("degrees", |c| d1(c, f64::to_degrees)),
        double_fn("radians", |c| d1(c, f64::to_radians)),
        double_fn("sin", |c| d1(c, f64::sin)),
        double_fn("cos", |c| d1(c, f64::cos)),
        double_fn("tan", |c| d1(c, f64::tan)),
        double_fn("asin", |c| d1(c, f64::asin)),
        double_fn("acos", |c| d1(c, f64::acos)),
        double_fn("atan", |c| d1(c, f64::atan)),
        double_fn("sinh", |c| d1(c, f64::sinh)),
        double_fn("cosh", |c| d1(c, f64::cosh)),
        double_fn("tanh", |c| d1(c, f64::tanh)),
        double_fn("cot", |c| d1(c, |x| 1.0 / x.tan())),
        RowUdf::new("atan2", Params::Fixed(&[&[Dbl, Dbl]]), ret_f64, |c| {
            let (Some(y), Some(x)) = (c.f(0), c.f(1)) else {
                return c.null();
            };
            Ok(ScalarValue::Float64(Some(y.atan2(x))))
        })
        .build(),
        RowUdf::new("power", Params::Fixed(&[&[Dbl, Dbl]]), ret_f64, |c| {
            let (Some(b), Some(e)) = (c.f(0), c.f(1)) else {
                return c.null();
            };
            Ok(ScalarValue::Float64(Some(b.powf(e))))
        })
        .alias("pow")
        .build(),
        RowUdf::new("log", Params::Fixed(&[&[Dbl], &[Dbl, Dbl]]), ret_f64, |c| {
            if c.len() == 1 {
                return d1(c, f64::ln);
            }
            let (Some(base), Some(x)) = (c.f(0), c.f(1)) else {
                return c.null();
            };
            let v = if base <= 0.0 || base == 1.0 {
                f64::NAN
            } else {
                x.ln() / base.ln()
            };
            Ok(ScalarValue::Float64(Some(v)))
        })
        .build(),
        RowUdf::new("pi", Params::Fixed(&[&[]]), ret_f64, |_| {
            Ok(ScalarValue::Float64(Some(std::f64::consts::PI)))
        })
        .build(),
        RowUdf::new("random", Params::Fixed(&[&[]]), ret_f64, |_| {
            // 53 random bits scaled into [0, 1).
            let v = (rand_u64() >> 11) as f64 / (1u64 << 53) as f64;
            Ok(ScalarValue::Float64(Some(v)))
        })
        .volatile()
        .build(),
    ]
}

fn abs(c: &mut Call<'_>) -> Result<ScalarValue> {
    Ok(match c.arg(0) {
        ScalarValue::Int32(v) => ScalarValue::Int32(v.map(i32::wrapping_abs)),
        ScalarValue::Int64(v) => ScalarValue::Int64(v.map(i64::wrapping_abs)),
        ScalarValue::Float64(v) => ScalarValue::Float64(v.map(f64::abs)),
        ScalarValue::Decimal128(v, p, s) => {
            ScalarValue::Decimal128(v.map(i128::wrapping_abs), *p, *s)
        }
        _ => return c.null(),
    })
}

#[derive(Clone, Copy)]
enum Towards {
    Ceil,
    Floor,
}

fn integral(c: &mut Call<'_>, f: fn(f64) -> f64, dir: Towards) -> Result<ScalarValue> {
    Ok(match c.arg(0) {
        ScalarValue::Float64(v) => ScalarValue::Float64(v.map(f)),
        ScalarValue::Decimal128(Some(v), p, s) => {
            let Some(unit) = pow10(i64::from(*s)) else {
                return c.null();
            };
            let q = v.div_euclid(unit);
            let r = v.rem_euclid(unit);
            let q = match dir {
                Towards::Floor => q,
                Towards::Ceil if r != 0 => q + 1,
                Towards::Ceil => q,
            };
            ScalarValue::Decimal128(q.checked_mul(unit), *p, *s)
        }
        other => other.clone(),
    })
}

fn ret_round(t: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(match (t.first(), t.len()) {
        (Some(DataType::Decimal128(p, s)), 1) => {
            let digits = i16::from(*p) - i16::from(*s);
            DataType::Decimal128(u8::try_from(digits.max(1)).unwrap_or(1), 0)
        }
        (Some(d @ DataType::Decimal128(_, _)), _) => d.clone(),
        (Some(DataType::Float64), 2) => DataType::Float64,
        (Some(_), 2) => DataType::Float64,
        _ => DataType::Int64,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// ksqlDB ROUND: half towards positive infinity.
    HalfUp,
    /// TRUNC: towards zero.
    Down,
}

fn pow10(n: i64) -> Option<i128> {
    10i128.checked_pow(u32::try_from(n).ok()?)
}

/// Round the unscaled decimal `v` (scale `scale`) to `places` decimals,
/// returning the unscaled value at scale `places`.
fn round_unscaled(v: i128, scale: i64, places: i64, mode: Mode) -> Option<i128> {
    if places >= scale {
        return v.checked_mul(pow10(places - scale)?);
    }
    let Some(unit) = pow10(scale - places) else {
        return Some(0); // dropping more than 38 digits of a 38-digit value
    };
    let q = v / unit; // truncated towards zero
    let r = v % unit;
    let q = match mode {
        Mode::Down => q,
        // HALF_UP for positive, HALF_DOWN for negative values.
        Mode::HalfUp if v >= 0 => q + i128::from(r.checked_mul(2)? >= unit),
        Mode::HalfUp => q - i128::from(r.checked_mul(-2)? > unit),
    };
    Some(q)
}

/// `x` as an unscaled decimal of its shortest representation, and its scale.
fn f64_decimal(x: f64) -> Option<(i128, i64)> {
    let s = format!("{x:e}");
    let (mantissa, exp) = s.split_once('e')?;
    let exp: i64 = exp.parse().ok()?;
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let v: i128 = digits.parse().ok()?;
    let scale = i64::try_from(digits.len()).ok()? - 1 - exp;
    Some((if neg { -v } else { v }, scale))
}

fn round_f64(x: f64, places: i64, mode: Mode) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let (v, scale) = f64_decimal(x)?;
    if places >= scale {
        return Some(x);
    }
    let r = round_unscaled(v, scale, places, mode)?;
    format!("{r}e{}", -places).parse().ok()
}

/// Java `(long) x` / `Math.round(x)`: saturating, NaN to 0.
fn to_i64(x: f64) -> i64 {
    x as i64
}

fn round_like(c: &mut Call<'_>, mode: Mode) -> Result<ScalarValue> {
    let places = if c.len() > 1 {
        match c.i(1) {
            Some(n) => Some(n.clamp(-400, 400)),
            None => return c.null(),
        }
    } else {
        None
    };
    Ok(match (c.arg(0), places) {
        (ScalarValue::Int32(v), None) => ScalarValue::Int64(v.map(i64::from)),
        (ScalarValue::Int64(v), None) => ScalarValue::Int64(*v),
        (ScalarValue::Float64(v), None) => ScalarValue::Int64(v.map(|x| match mode {
            Mode::HalfUp => to_i64((x + 0.5).floor()),
            Mode::Down => to_i64(x),
        })),
        (ScalarValue::Decimal128(v, _, s), None) => {
            let DataType::Decimal128(p, _) = c.ret else {
                return c.null();
            };
            let r = v.and_then(|v| round_unscaled(v, i64::from(*s), 0, mode));
            ScalarValue::Decimal128(r, *p, 0)
        }
        (ScalarValue::Decimal128(v, p, s), Some(n)) => {
            let scale = i64::from(*s);
            let r = v.and_then(|v| {
                let rounded = round_unscaled(v, scale, n.min(scale), mode)?;
                rounded.checked_mul(pow10(scale - n.min(scale))?)
            });
            ScalarValue::Decimal128(r, *p, *s)
        }
        (other, Some(n)) => ScalarValue::Float64(f64_of(other).and_then(|x| round_f64(x, n, mode))),
        _ => return c.null(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;
    use super::*;

    #[test]
    fn decimal_rounding_of_doubles() {
        assert_eq!(round_f64(1.005, 2, Mode::HalfUp), Some(1.01));
        assert_eq!(round_f64(-1.005, 2, Mode::HalfUp), Some(-1.0));
        assert_eq!(round_f64(-1.0051, 2, Mode::HalfUp), Some(-1.01));
        assert_eq!(round_f64(1234.5, -2, Mode::HalfUp), Some(1200.0));
        assert_eq!(round_f64(1.239, 2, Mode::Down), Some(1.23));
        assert_eq!(round_f64(-1.239, 2, Mode::Down), Some(-1.23));
        assert_eq!(round_f64(1e-30, 2, Mode::HalfUp), Some(0.0));
        assert_eq!(round_f64(f64::NAN, 2, Mode::HalfUp), None);
    }

    #[tokio::test]
    async fn abs_ceil_floor_keep_type() {
        assert_eq!(q1("SELECT abs(CAST(-3 AS INT)), arrow_typeof(abs(CAST(-3 AS INT))), abs(-2.5), abs(CAST(-1.25 AS DECIMAL(4,2)))").await, "3|Int32|2.5|1.25");
        assert_eq!(
            q1("SELECT ceil(1.2), floor(-1.2), ceil(CAST(5 AS INT)), arrow_typeof(floor(1.5))")
                .await,
            "2.0|-2.0|5|Float64"
        );
        assert_eq!(
            q1("SELECT ceil(CAST(1.21 AS DECIMAL(4,2))), floor(CAST(-1.21 AS DECIMAL(4,2)))").await,
            "2.00|-2.00"
        );
    }

    #[tokio::test]
    async fn round_and_trunc() {
        assert_eq!(q1("SELECT round(1.5), round(-1.5), round(-1.6), arrow_typeof(round(1.5)), round(CAST(7 AS INT))").await, "2|-1|-2|Int64|7");
        assert_eq!(q1("SELECT round(1.005, 2), round(123.456, -1), arrow_typeof(round(1.5, 1)), round(1.5, NULL)").await, "1.01|120.0|Float64|NULL");
        assert_eq!(q1("SELECT round(CAST(1.25 AS DECIMAL(4,2))), arrow_typeof(round(CAST(1.25 AS DECIMAL(4,2)))), round(CAST(-1.25 AS DECIMAL(4,2)), 1)").await, "1|Decimal128(2, 0)|-1.20");
        assert_eq!(
            q1("SELECT trunc(-1.7), trunc(1.789, 2), trunc(CAST(1.79 AS DECIMAL(4,2)))").await,
            "-1|1.78|1"
        );
    }

    #[tokio::test]
    async fn double_functions() {
        assert_eq!(
            q1("SELECT exp(CAST(10 AS INT)), sqrt(16), ln(1), log(100), log(10, 100), log(1, 5)")
                .await,
            "22026.465794806718|4.0|0.0|4.605170185988092|2.0|NaN"
        );
        assert_eq!(q1("SELECT power(2, 10), cbrt(27), sign(-2.5), sign(0), degrees(pi()), atan2(1, 1) * 4 = pi()").await, "1024.0|3.0|-1|0|180.0|true");
        assert_eq!(
            q1("SELECT sqrt(NULL), abs(NULL), random() < 1.0, random() >= 0.0").await,
            "NULL|NULL|true|true"
        );
    }
}

//! How an expected value of a case is compared with what Sluice wrote.
//!
//! The rules are those of ksqlDB's own harness (`ExpectedRecordComparator`
//! of its functional tests, which checks every output record with them),
//! made exact where Sluice's runner had been looser:
//!
//! - JSON types are distinct: a string never equals a number, a boolean or
//!   null. One exception, ksqlDB's own: a string expected where the actual
//!   column is a DECIMAL is read as a decimal (`"005.4"` is 5.4 with scale
//!   1) and must equal the value *and* the column's scale.
//! - Numbers compare by value, exactly: two integers as integers, anything
//!   else as doubles (ksqlDB compares a double with `==`); no tolerance. A
//!   number expected for a DECIMAL column must have its value (an integer
//!   literal also needs scale 0, as in ksqlDB). The JSON reader keeps a
//!   number as a double, so DECIMALs of more than 15 digits compare to
//!   double precision.
//! - Arrays compare element by element, with their length.
//! - Objects must have as many fields as expected; each expected field is
//!   looked up by its name exactly as the case writes it, and only if that
//!   finds nothing by its upper-cased name (ksqlDB's one fallback, for
//!   the upper-cased names of unquoted columns). Never case-insensitively.
//!
//! Column types come from the schema of the source the record belongs to
//! (the fields of a struct, the values of a map, the elements of an array);
//! without one (a topic no source reads) only the JSON rules apply.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use serde_json::{Number, Value};

/// The type of a record's key or value: its columns as a struct, or the
/// single column of an unwrapped value.
pub(crate) fn record_type(fields: &[FieldRef], got: &Value) -> Option<DataType> {
    match got {
        Value::Object(_) => Some(DataType::Struct(fields.to_vec().into())),
        _ if fields.len() == 1 => Some(fields[0].data_type().clone()),
        _ => None,
    }
}

/// Whether `got` (an actual value of type `ty`, when known) is what
/// `want` expects.
pub(crate) fn json_equal(want: &Value, got: &Value, ty: Option<&DataType>) -> bool {
    let scale = match ty {
        Some(DataType::Decimal128(_, s) | DataType::Decimal256(_, s)) => Some(i64::from(*s)),
        _ => None,
    };
    match (want, got) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::String(text), Value::Number(n)) => {
            scale.is_some_and(|s| decimal_text_equals(text, n, s))
        }
        (Value::Number(a), Value::Number(b)) => match scale {
            Some(s) if a.is_i64() || a.is_u64() => s <= 0 && numbers_equal(a, b),
            _ => numbers_equal(a, b),
        },
        (Value::Array(a), Value::Array(b)) => {
            let element = match ty {
                Some(
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _),
                ) => Some(f.data_type()),
                _ => None,
            };
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_equal(x, y, element))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, v)| {
                    let (name, found) = match b.get(k) {
                        Some(g) => (k.clone(), Some(g)),
                        None => {
                            let upper = k.to_uppercase();
                            let g = b.get(&upper);
                            (upper, g)
                        }
                    };
                    found.is_some_and(|g| json_equal(v, g, member_type(ty, &name).as_ref()))
                })
        }
        _ => false,
    }
}

/// The type of an object's member `name`: a struct's field, a map's value.
fn member_type(ty: Option<&DataType>, name: &str) -> Option<DataType> {
    match ty? {
        DataType::Struct(fields) => fields
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.data_type().clone()),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Some(kv[1].data_type().clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Two JSON numbers by value: integers exactly, otherwise as doubles.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// ksqlDB's `new BigDecimal(text).equals(actual)`: the text is a decimal
/// number whose scale is the column's and whose value is the actual one.
fn decimal_text_equals(text: &str, got: &Number, scale: i64) -> bool {
    let Some(text_scale) = decimal_scale(text) else {
        return false;
    };
    text_scale == scale
        && text
            .parse::<f64>()
            .ok()
            .zip(got.as_f64())
            .is_some_and(|(x, y)| x == y)
}

/// The scale of a decimal literal as `java.math.BigDecimal` reads it
/// (`-12.50` has 2, `1E+3` has -3); `None` if it is not one.
fn decimal_scale(text: &str) -> Option<i64> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let digits = mantissa.strip_prefix(['+', '-']).unwrap_or(mantissa);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some(frac.len() as i64 - exponent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use serde_json::json;
    use std::sync::Arc;

    fn eq(want: Value, got: Value) -> bool {
        json_equal(&want, &got, None)
    }

    #[test]
    fn json_types_are_distinct() {
        assert!(!eq(json!("2"), json!(2)));
        assert!(!eq(json!(2), json!("2")));
        assert!(!eq(json!("true"), json!(true)));
        assert!(!eq(json!(null), json!("")));
        assert!(!eq(json!(0), json!(null)));
        assert!(!eq(json!([1]), json!({"A": 1})));
        assert!(eq(json!("2"), json!("2")));
        assert!(eq(json!(null), json!(null)));
        assert!(eq(json!(false), json!(false)));
    }

    #[test]
    fn numbers_compare_exactly_by_value() {
        assert!(eq(json!(2), json!(2)));
        assert!(eq(json!(2), json!(2.0)));
        assert!(eq(json!(1.5), json!(1.5)));
        assert!(!eq(json!(1.5), json!(1.500_000_1)));
        assert!(!eq(json!(0.3), json!(0.1 + 0.2)));
        assert!(eq(json!(u64::MAX), json!(u64::MAX)));
        assert!(!eq(
            json!(9_007_199_254_740_993_i64),
            json!(9_007_199_254_740_992_i64)
        ));
    }

    #[test]
    fn field_names_are_exact_or_upper_cased_never_case_insensitive() {
        assert!(eq(json!({"A": 1}), json!({"A": 1})));
        // ksqlDB's one fallback: the expected name, upper-cased.
        assert!(eq(json!({"a": 1}), json!({"A": 1})));
        assert!(!eq(json!({"A": 1}), json!({"a": 1})));
        assert!(!eq(json!({"aB": 1}), json!({"Ab": 1})));
        assert!(!eq(json!({"A": 1}), json!({"A": 1, "B": 2})));
        assert!(!eq(json!({"A": 1, "B": 2}), json!({"A": 1, "C": 2})));
        assert!(eq(
            json!({"S": {"x": [1, "2"]}}),
            json!({"S": {"X": [1, "2"]}})
        ));
        assert!(!eq(
            json!({"S": {"x": [1, "2"]}}),
            json!({"S": {"X": [1, 2]}})
        ));
    }

    #[test]
    fn decimals_take_ksqldb_text_with_the_column_scale() {
        let d = DataType::Decimal128(4, 1);
        let dec = |want: Value, got: Value| json_equal(&want, &got, Some(&d));
        assert!(dec(json!("005.4"), json!(5.4)));
        assert!(dec(json!("5.4"), json!(5.4)));
        assert!(!dec(json!("5.40"), json!(5.4)));
        assert!(!dec(json!("5.5"), json!(5.4)));
        assert!(!dec(json!("abc"), json!(5.4)));
        assert!(dec(json!(5.4), json!(5.4)));
        // An integer literal needs an actual scale of 0.
        assert!(!dec(json!(5), json!(5.0)));
        let d0 = DataType::Decimal128(4, 0);
        assert!(json_equal(&json!(5), &json!(5), Some(&d0)));
        // A string for any other type stays a string.
        assert!(!json_equal(
            &json!("5.4"),
            &json!(5.4),
            Some(&DataType::Float64)
        ));
        assert!(!json_equal(&json!("5.4"), &json!(5.4), None));
        assert_eq!(decimal_scale("-12.50"), Some(2));
        assert_eq!(decimal_scale("1E+3"), Some(-3));
        assert_eq!(decimal_scale("7"), Some(0));
        assert_eq!(decimal_scale("."), None);
        assert_eq!(decimal_scale("1.2.3"), None);
    }

    #[test]
    fn types_reach_struct_fields_map_values_and_array_elements() {
        let dec = DataType::Decimal128(3, 2);
        let fields: Vec<FieldRef> = vec![
            Arc::new(Field::new("D", dec.clone(), true)),
            Arc::new(Field::new(
                "L",
                DataType::List(Arc::new(Field::new("item", dec.clone(), true))),
                true,
            )),
        ];
        let got = json!({"D": 1.5, "L": [2.25]});
        let ty = record_type(&fields, &got);
        assert!(json_equal(
            &json!({"D": "1.50", "L": ["2.25"]}),
            &got,
            ty.as_ref()
        ));
        assert!(!json_equal(
            &json!({"D": "1.5", "L": ["2.25"]}),
            &got,
            ty.as_ref()
        ));
        let single = vec![Arc::new(Field::new("V", dec, true)) as FieldRef];
        assert_eq!(
            record_type(&single, &json!(1.5)),
            Some(DataType::Decimal128(3, 2))
        );
    }
}

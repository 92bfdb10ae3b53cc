//! JSON functions over JSON text: EXTRACTJSONFIELD, JSON_ARRAY_CONTAINS,
//! JSON_ARRAY_LENGTH, JSON_CONCAT, JSON_ITEMS, JSON_KEYS, JSON_RECORDS,
//! IS_JSON_STRING, and TO_JSON_STRING from any SQL value.
//!
//! Parsing is serde_json (`preserve_order`, so keys keep document order).
//! Invalid JSON gives NULL (IS_JSON_STRING: false; JSON_ARRAY_CONTAINS:
//! false). EXTRACTJSONFIELD paths are ksqlDB's: `$.a.b`, `$.a[0]`,
//! `$['a b']`; a string result is unquoted, anything else is its compact
//! JSON text. TO_JSON_STRING writes struct fields and map keys sorted by
//! name (ksqlDB uses a TreeMap), DATE as `yyyy-MM-dd`, TIME as `HH:mm:ss`
//! (`.SSS` when non-zero), TIMESTAMP as ISO-8601 UTC and BYTES as base64.
//! Numbers go through f64/i64, so a DECIMAL's trailing zeros are not kept.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ScalarUDF;
use serde_json::{Map, Value};

use super::encoding::base64_encode;
use super::udf::{
    f64_of, i64_of, list_items, make_list, make_map, map_entries, map_type, ret_bool, ret_i32,
    ret_str, ret_str_list, str_of, utf8, Arg::*, Call, Params, RowUdf,
};

pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "EXTRACTJSONFIELD",
        "Extracts the value at a JSON path from JSON text",
    ),
    ("IS_JSON_STRING", "True if the string is valid JSON"),
    (
        "JSON_ARRAY_CONTAINS",
        "True if a JSON array contains a value",
    ),
    ("JSON_ARRAY_LENGTH", "Length of a JSON array"),
    (
        "JSON_CONCAT",
        "Merges JSON objects, or concatenates JSON arrays",
    ),
    ("JSON_ITEMS", "The elements of a JSON array as JSON strings"),
    ("JSON_KEYS", "The keys of a JSON object"),
    (
        "JSON_RECORDS",
        "The entries of a JSON object as a map of JSON strings",
    ),
    ("TO_JSON_STRING", "Serializes any value to JSON text"),
];

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const S: Params = Params::Fixed(&[&[Str]]);
    vec![
        RowUdf::new(
            "extractjsonfield",
            Params::Fixed(&[&[Str, Str]]),
            ret_str,
            extract,
        )
        .build(),
        RowUdf::new("is_json_string", S, ret_bool, |c| {
            Ok(ScalarValue::Boolean(Some(c.s(0).and_then(parse).is_some())))
        })
        .lenient()
        .build(),
        RowUdf::new("json_array_length", S, ret_i32, |c| {
            let n = c
                .s(0)
                .and_then(parse)
                .and_then(|v| v.as_array().map(Vec::len));
            Ok(ScalarValue::Int32(n.and_then(|n| i32::try_from(n).ok())))
        })
        .build(),
        RowUdf::new("json_keys", S, ret_str_list, |c| {
            let Some(Value::Object(o)) = c.s(0).and_then(parse) else {
                return c.null();
            };
            make_list(o.keys().map(utf8).collect(), &DataType::Utf8)
        })
        .build(),
        RowUdf::new("json_items", S, ret_str_list, |c| {
            let Some(Value::Array(a)) = c.s(0).and_then(parse) else {
                return c.null();
            };
            make_list(
                a.iter().map(|v| utf8(v.to_string())).collect(),
                &DataType::Utf8,
            )
        })
        .build(),
        RowUdf::new(
            "json_records",
            S,
            |_| Ok(map_type(DataType::Utf8, DataType::Utf8)),
            |c| {
                let Some(Value::Object(o)) = c.s(0).and_then(parse) else {
                    return c.null();
                };
                let entries = o
                    .iter()
                    .map(|(k, v)| (utf8(k.clone()), utf8(text_of(v))))
                    .collect();
                make_map(entries, c.ret)
            },
        )
        .build(),
        RowUdf::new(
            "json_concat",
            Params::Variadic {
                fixed: &[],
                rest: Str,
                min: 1,
            },
            ret_str,
            json_concat,
        )
        .build(),
        RowUdf::new(
            "json_array_contains",
            Params::Fixed(&[&[Str, Any]]),
            ret_bool,
            array_contains,
        )
        .lenient()
        .build(),
        RowUdf::new("to_json_string", Params::Fixed(&[&[Any]]), ret_str, |c| {
            Ok(utf8(to_json(c.arg(0))?.to_string()))
        })
        .lenient()
        .build(),
    ]
}

fn parse(s: &str) -> Option<Value> {
    serde_json::from_str(s).ok()
}

/// A string node as its text, anything else as compact JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// ksqlDB's `JsonPathTokenizer`: `$` then `.name`, `['name']` or `[index]`.
fn path_tokens(path: &str) -> Option<Vec<String>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out.push(r.get(..end)?.to_string());
            rest = r.get(end..)?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r.get(..end)?.trim();
            let unquoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                .unwrap_or(inner);
            out.push(unquoted.to_string());
            rest = r.get(end + 1..)?;
        } else {
            return None;
        }
    }
    Some(out)
}

fn extract(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(json), Some(path)) = (c.s(0), c.s(1)) else {
        return c.null();
    };
    let (Some(mut node), Some(tokens)) = (parse(json), path_tokens(path)) else {
        return c.null();
    };
    for t in tokens {
        let next = match node {
            Value::Array(mut a) => match t.parse::<usize>() {
                Ok(i) if i < a.len() => a.swap_remove(i),
                _ => return c.null(),
            },
            Value::Object(mut o) => match o.remove(&t) {
                Some(v) => v,
                None => return c.null(),
            },
            _ => return c.null(),
        };
        node = next;
    }
    Ok(utf8(text_of(&node)))
}

fn json_concat(c: &mut Call<'_>) -> Result<ScalarValue> {
    let mut nodes = Vec::with_capacity(c.len());
    for i in 0..c.len() {
        let Some(v) = c.s(i).and_then(parse) else {
            return c.null();
        };
        nodes.push(v);
    }
    let all_objects = nodes.iter().all(Value::is_object);
    let mut iter = nodes.into_iter();
    let Some(first) = iter.next() else {
        return c.null();
    };
    let result = if all_objects {
        let mut acc = match first {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        for n in iter {
            if let Value::Object(o) = n {
                acc.extend(o);
            }
        }
        Value::Object(acc)
    } else {
        let as_array = |v: Value| match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        let mut acc = as_array(first);
        for n in iter {
            acc.extend(as_array(n));
        }
        Value::Array(acc)
    };
    Ok(utf8(result.to_string()))
}

fn array_contains(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(json) = c.s(0) else { return c.null() };
    let Some(Value::Array(items)) = parse(json) else {
        return Ok(ScalarValue::Boolean(Some(false)));
    };
    let needle = c.arg(1);
    let found = items.iter().any(|item| match (item, needle) {
        (Value::Null, v) => v.is_null(),
        (_, v) if v.is_null() => false,
        (Value::Bool(b), ScalarValue::Boolean(Some(x))) => b == x,
        (Value::String(s), v) => str_of(v) == Some(s.as_str()),
        (Value::Number(n), ScalarValue::Float64(Some(x))) => {
            !n.is_i64() && !n.is_u64() && n.as_f64() == Some(*x)
        }
        (Value::Number(n), v) => n.as_i64().is_some() && n.as_i64() == i64_of(v),
        _ => false,
    });
    Ok(ScalarValue::Boolean(Some(found)))
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Any SQL value as JSON, the way ksqlDB's TO_JSON_STRING prepares it.
pub(super) fn to_json(v: &ScalarValue) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Float32(_) | ScalarValue::Float64(_) | ScalarValue::Decimal128(..) => {
            num(f64_of(v).unwrap_or(f64::NAN))
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => Value::String(base64_encode(b)),
        ScalarValue::Date32(Some(d)) => Value::String(
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(*d))))
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        ),
        ScalarValue::Time32Millisecond(Some(ms)) => {
            let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(ms / 1000).unwrap_or(0),
                u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000,
            );
            let fmt = if ms % 1000 == 0 {
                "%H:%M:%S"
            } else {
                "%H:%M:%S%.3f"
            };
            Value::String(t.map(|t| t.format(fmt).to_string()).unwrap_or_default())
        }
        ScalarValue::TimestampMillisecond(Some(ms), _) => Value::String(
            chrono::DateTime::from_timestamp_millis(*ms)
                .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
                .unwrap_or_default(),
        ),
        ScalarValue::List(_) | ScalarValue::LargeList(_) | ScalarValue::FixedSizeList(_) => {
            let items = list_items(v)?.unwrap_or_default();
            Value::Array(items.iter().map(to_json).collect::<Result<_>>()?)
        }
        ScalarValue::Map(_) => {
            let mut entries: Vec<(String, Value)> = map_entries(v)?
                .unwrap_or_default()
                .iter()
                .map(|(k, val)| Ok((key_text(k), to_json(val)?)))
                .collect::<Result<_>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        ScalarValue::Struct(s) => {
            let mut entries: Vec<(String, Value)> = s
                .fields()
                .iter()
                .zip(s.columns())
                .map(|(f, col)| {
                    Ok((
                        f.name().clone(),
                        to_json(&ScalarValue::try_from_array(col, 0)?)?,
                    ))
                })
                .collect::<Result<_>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        other => match i64_of(other) {
            Some(i) => Value::from(i),
            None => Value::String(other.to_string()),
        },
    })
}

fn key_text(k: &ScalarValue) -> String {
    str_of(k).map_or_else(|| k.to_string(), String::from)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;
    use super::*;

    #[test]
    fn path_tokenizer() {
        assert_eq!(
            path_tokens("$.a.b[0]['c d']"),
            Some(vec!["a".into(), "b".into(), "0".into(), "c d".into()])
        );
        assert_eq!(path_tokens("$"), Some(vec![]));
        assert_eq!(path_tokens("a.b"), None);
        assert_eq!(path_tokens("$[1"), None);
    }

    #[tokio::test]
    async fn extract_field() {
        let j = r#"'{"log":{"cloud":"gcp","app":["a",{"x":1.5}],"n":null}}'"#;
        assert_eq!(
            q1(&format!("SELECT extractjsonfield({j}, '$.log.cloud'), extractjsonfield({j}, '$.log.app[1]'), extractjsonfield({j}, '$.log.app[1].x'), extractjsonfield({j}, '$.log.missing'), extractjsonfield({j}, '$.log.app[7]')")).await,
            r#"gcp|{"x":1.5}|1.5|NULL|NULL"#
        );
        assert_eq!(
            q1("SELECT extractjsonfield('not json', '$.a'), extractjsonfield('[1,2]', '$[1]')")
                .await,
            "NULL|2"
        );
    }

    #[tokio::test]
    async fn json_inspection() {
        assert_eq!(q1(r#"SELECT is_json_string('{"a":1}'), is_json_string('{a'), is_json_string(NULL), json_array_length('[1,[2],3]'), json_array_length('{}')"#).await, "true|false|false|3|NULL");
        assert_eq!(q1(r#"SELECT json_keys('{"b":1,"a":2}'), json_items('[1,{"a":"x"}]'), json_records('{"a":"s","b":[1]}')"#).await, r#"[b, a]|[1, {"a":"x"}]|{a: s, b: [1]}"#);
        assert_eq!(q1(r#"SELECT json_concat('{"a":1}', '{"b":2,"a":3}'), json_concat('[1]', '2', '[3]'), json_concat('{}', NULL)"#).await, r#"{"a":3,"b":2}|[1,2,3]|NULL"#);
        assert_eq!(q1(r#"SELECT json_array_contains('[1,"a",2.5,null]', 1), json_array_contains('[1]', 'a'), json_array_contains('[2.5]', 2.5), json_array_contains('[null]', NULL), json_array_contains('x', 1)"#).await, "true|false|true|true|false");
    }

    #[tokio::test]
    async fn to_json_string_values() {
        assert_eq!(q1("SELECT to_json_string(1), to_json_string('a\"b'), to_json_string(NULL), to_json_string(2.5), to_json_string(true)").await, r#"1|"a\"b"|null|2.5|true"#);
        assert_eq!(q1("SELECT to_json_string(named_struct('b', 1, 'a', make_array(1, 2))), to_json_string(from_days(1)), to_json_string(from_unixtime(1))").await, r#"{"a":[1,2],"b":1}|"1970-01-02"|"1970-01-01T00:00:00.001""#);
    }
}

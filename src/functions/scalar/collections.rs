//! ARRAY and MAP functions: ARRAY_CONTAINS .. ARRAY_SORT, ARRAY_CONCAT,
//! SLICE, GENERATE_SERIES, AS_MAP, MAP_KEYS, MAP_VALUES, MAP_UNION, ENTRIES.
//!
//! Element-typed arguments are coerced to the array's element type (or both
//! arrays to a common element type, DataFusion's comparison coercion).
//! Equality is SQL value equality of `ScalarValue` (NULL equals NULL here, as
//! Java's `Objects.equals`); set-like results keep first-seen order. NULL
//! rules follow ksqlDB method by method: ARRAY_CONTAINS of a NULL array is
//! false, ARRAY_CONCAT and MAP_UNION skip a NULL side, ARRAY_JOIN prints a
//! NULL element as `null`, ARRAY_SORT puts NULLs last in both directions.
//!
//! The lambda functions TRANSFORM, FILTER and REDUCE are not here: they need
//! planner support for lambda arguments.
//!
//! GENERATE_SERIES returns NULL beyond 2^20 elements (ksqlDB has no limit
//! and would run out of memory).
//!
//! Operator access (`arr[i]`, `map['k']`, `s->F`) lives in `access`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::ScalarUDF;

use super::udf::{
    coerce_arg, java_text, list_item, list_items, list_type, make_list, make_map, map_entries,
    map_kv, map_type, ret_first, ret_i32, ret_str, to_array, utf8, Arg, Arg::*, Call, Params,
    RowUdf,
};

pub(super) const CATALOG: &[(&str, &str)] = &[
    ("ARRAY_CONCAT", "Concatenates two arrays"),
    ("ARRAY_CONTAINS", "True if the array contains the value"),
    (
        "ARRAY_DISTINCT",
        "The distinct elements of an array, in order",
    ),
    (
        "ARRAY_EXCEPT",
        "Distinct elements of the first array not in the second",
    ),
    (
        "ARRAY_INTERSECT",
        "Distinct elements present in both arrays",
    ),
    (
        "ARRAY_JOIN",
        "Joins the elements of an array into a string (default ',')",
    ),
    ("ARRAY_LENGTH", "Number of elements of an array"),
    ("ARRAY_MAX", "Largest non-NULL element of an array"),
    ("ARRAY_MIN", "Smallest non-NULL element of an array"),
    (
        "ARRAY_REMOVE",
        "The array without every element equal to the value",
    ),
    (
        "ARRAY_SORT",
        "Sorts an array, ASC (default) or DESC, NULLs last",
    ),
    ("ARRAY_UNION", "Distinct elements of both arrays"),
    (
        "AS_MAP",
        "Builds a map from an array of keys and an array of values",
    ),
    (
        "ENTRIES",
        "The entries of a map as an array of STRUCT<K, V>, optionally sorted",
    ),
    (
        "GENERATE_SERIES",
        "An array of values from start to end (inclusive) by step",
    ),
    ("MAP_KEYS", "The keys of a map"),
    (
        "MAP_UNION",
        "Merges two maps; the second wins on equal keys",
    ),
    ("MAP_VALUES", "The values of a map"),
    ("SLICE", "The 1-based, inclusive sub-array [from, to]"),
];

pub(super) fn udfs() -> Vec<ScalarUDF> {
    const L: Params = Params::Fixed(&[&[List]]);
    const LL: Params = Params::Custom(coerce_two_lists);
    const LE: Params = Params::Custom(coerce_list_elem);
    vec![
        RowUdf::new(
            "array_contains",
            LE,
            |_| Ok(DataType::Boolean),
            |c| {
                let items = list_items(c.arg(0))?;
                let needle = c.arg(1);
                let found = items.is_some_and(|items| items.iter().any(|v| same(v, needle)));
                Ok(ScalarValue::Boolean(Some(found)))
            },
        )
        .lenient()
        .build(),
        RowUdf::new("array_distinct", L, ret_first, |c| {
            let Some(items) = list_items(c.arg(0))? else {
                return c.null();
            };
            list_like(c, distinct(items))
        })
        .build(),
        RowUdf::new("array_except", LL, ret_first, |c| set_op(c, SetOp::Except)).build(),
        RowUdf::new("array_intersect", LL, ret_first, |c| {
            set_op(c, SetOp::Intersect)
        })
        .build(),
        RowUdf::new("array_union", LL, ret_first, |c| set_op(c, SetOp::Union)).build(),
        RowUdf::new("array_concat", LL, ret_first, |c| {
            let (a, b) = (list_items(c.arg(0))?, list_items(c.arg(1))?);
            if a.is_none() && b.is_none() {
                return c.null();
            }
            let mut out = a.unwrap_or_default();
            out.extend(b.unwrap_or_default());
            list_like(c, out)
        })
        .lenient()
        .build(),
        RowUdf::new("array_length", L, ret_i32, |c| {
            let n = list_items(c.arg(0))?.map(|v| v.len());
            Ok(ScalarValue::Int32(n.and_then(|n| i32::try_from(n).ok())))
        })
        .build(),
        RowUdf::new("array_max", L, ret_elem, |c| extreme(c, true)).build(),
        RowUdf::new("array_min", L, ret_elem, |c| extreme(c, false)).build(),
        RowUdf::new("array_remove", LE, ret_first, |c| {
            let Some(items) = list_items(c.arg(0))? else {
                return c.null();
            };
            let victim = c.arg(1);
            list_like(c, items.into_iter().filter(|v| !same(v, victim)).collect())
        })
        .lenient()
        .build(),
        RowUdf::new(
            "array_sort",
            Params::Fixed(&[&[List], &[List, Str]]),
            ret_first,
            array_sort,
        )
        .build(),
        RowUdf::new(
            "array_join",
            Params::Fixed(&[&[List], &[List, Str]]),
            ret_str,
            array_join,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "slice",
            Params::Fixed(&[&[List, Int, Int]]),
            ret_first,
            slice,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "generate_series",
            Params::Fixed(&[&[Num, Num], &[Num, Num, Num]]),
            ret_series,
            generate_series,
        )
        .build(),
        RowUdf::new(
            "as_map",
            Params::Fixed(&[&[List, List]]),
            ret_as_map,
            as_map,
        )
        .build(),
        RowUdf::new(
            "map_keys",
            Params::Fixed(&[&[Arg::Map]]),
            |t| map_part(t, true),
            |c| {
                let Some(e) = map_entries(c.arg(0))? else {
                    return c.null();
                };
                list_like(c, e.into_iter().map(|(k, _)| k).collect())
            },
        )
        .build(),
        RowUdf::new(
            "map_values",
            Params::Fixed(&[&[Arg::Map]]),
            |t| map_part(t, false),
            |c| {
                let Some(e) = map_entries(c.arg(0))? else {
                    return c.null();
                };
                list_like(c, e.into_iter().map(|(_, v)| v).collect())
            },
        )
        .build(),
        RowUdf::new(
            "map_union",
            Params::Custom(coerce_two_maps),
            ret_first,
            map_union,
        )
        .lenient()
        .build(),
        RowUdf::new(
            "entries",
            Params::Fixed(&[&[Arg::Map, Bool]]),
            ret_entries,
            entries,
        )
        .build(),
    ]
}

/// Java `Objects.equals` on SQL values (NULL equals NULL).
fn same(a: &ScalarValue, b: &ScalarValue) -> bool {
    (a.is_null() && b.is_null()) || a == b
}

fn list_like(c: &Call<'_>, items: Vec<ScalarValue>) -> Result<ScalarValue> {
    let item = list_item(c.ret).cloned().unwrap_or(DataType::Null);
    make_list(items, &item)
}

fn ret_elem(t: &[DataType]) -> std::result::Result<DataType, String> {
    t.first()
        .and_then(list_item)
        .cloned()
        .ok_or_else(|| "expects an ARRAY".to_string())
}

fn coerce_list_elem(t: &[DataType]) -> std::result::Result<Vec<DataType>, String> {
    let [list, elem] = t else {
        return Err("expects 2 arguments".into());
    };
    let list = coerce_arg(List, list).ok_or("expects an ARRAY first")?;
    let item = list_item(&list).cloned().unwrap_or(DataType::Null);
    if elem.is_null() || elem == &item || comparison_coercion(&item, elem).is_some() {
        Ok(vec![list, item])
    } else {
        Err(format!("cannot compare {elem} with the elements ({item})"))
    }
}

fn coerce_two_lists(t: &[DataType]) -> std::result::Result<Vec<DataType>, String> {
    let [a, b] = t else {
        return Err("expects 2 arguments".into());
    };
    let (a, b) = (
        coerce_arg(List, a).ok_or("expects ARRAY arguments")?,
        coerce_arg(List, b).ok_or("expects ARRAY arguments")?,
    );
    let common = match (list_item(&a), list_item(&b)) {
        (Some(x), Some(y)) => {
            comparison_coercion(x, y).ok_or("the arrays' element types differ")?
        }
        (Some(x), None) | (None, Some(x)) => x.clone(),
        (None, None) => DataType::Null,
    };
    let l = list_type(common);
    Ok(vec![l.clone(), l])
}

fn coerce_two_maps(t: &[DataType]) -> std::result::Result<Vec<DataType>, String> {
    let [a, b] = t else {
        return Err("expects 2 arguments".into());
    };
    match (map_kv(a), map_kv(b)) {
        (Some((ka, va)), Some((kb, vb))) => {
            let k = comparison_coercion(ka, kb).ok_or("the maps' key types differ")?;
            let v = comparison_coercion(va, vb).ok_or("the maps' value types differ")?;
            let m = map_type(k, v);
            Ok(vec![m.clone(), m])
        }
        (Some(_), None) if b.is_null() => Ok(vec![a.clone(), a.clone()]),
        (None, Some(_)) if a.is_null() => Ok(vec![b.clone(), b.clone()]),
        _ => Err("expects MAP arguments".into()),
    }
}

fn distinct(items: Vec<ScalarValue>) -> Vec<ScalarValue> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

#[derive(Clone, Copy)]
enum SetOp {
    Except,
    Intersect,
    Union,
}

fn set_op(c: &mut Call<'_>, op: SetOp) -> Result<ScalarValue> {
    let (Some(a), Some(b)) = (list_items(c.arg(0))?, list_items(c.arg(1))?) else {
        return c.null();
    };
    let out = match op {
        SetOp::Union => distinct(a.into_iter().chain(b).collect()),
        SetOp::Except | SetOp::Intersect => {
            let right: HashSet<ScalarValue> = b.into_iter().collect();
            let keep = matches!(op, SetOp::Intersect);
            distinct(a)
                .into_iter()
                .filter(|v| right.contains(v) == keep)
                .collect()
        }
    };
    list_like(c, out)
}

fn extreme(c: &mut Call<'_>, max: bool) -> Result<ScalarValue> {
    let Some(items) = list_items(c.arg(0))? else {
        return c.null();
    };
    let mut best: Option<ScalarValue> = None;
    for v in items.into_iter().filter(|v| !v.is_null()) {
        let better = match &best {
            None => true,
            Some(b) => match v.partial_cmp(b) {
                Some(std::cmp::Ordering::Greater) => max,
                Some(std::cmp::Ordering::Less) => !max,
                _ => false,
            },
        };
        if better {
            best = Some(v);
        }
    }
    best.map_or_else(|| c.null(), Ok)
}

fn array_sort(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(mut items) = list_items(c.arg(0))? else {
        return c.null();
    };
    let desc = if c.len() > 1 {
        match c.s(1).map(str::to_ascii_uppercase).as_deref() {
            Some("ASC" | "ASCENDING") => false,
            Some("DESC" | "DESCENDING") => true,
            _ => return c.null(),
        }
    } else {
        false
    };
    items.sort_by(|a, b| match (a.is_null(), b.is_null()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => {
            let o = a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    });
    list_like(c, items)
}

fn array_join(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(items) = list_items(c.arg(0))? else {
        return c.null();
    };
    let delim = if c.len() > 1 {
        c.s(1).unwrap_or("")
    } else {
        ","
    };
    let mut parts = Vec::with_capacity(items.len());
    for v in &items {
        match java_text(v) {
            Some(s) => parts.push(s),
            None => return c.null(), // nested types are not supported by ksqlDB
        }
    }
    Ok(utf8(parts.join(delim)))
}

fn slice(c: &mut Call<'_>) -> Result<ScalarValue> {
    let Some(items) = list_items(c.arg(0))? else {
        return c.null();
    };
    let start = c.i(1).map_or(Some(0), |f| f.checked_sub(1));
    let end = c.i(2).or_else(|| i64::try_from(items.len()).ok());
    let (Some(start), Some(end)) = (start, end) else {
        return c.null();
    };
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return c.null();
    };
    match items.get(start..end) {
        Some(s) if start <= end => list_like(c, s.to_vec()),
        _ => c.null(),
    }
}

fn ret_series(t: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(if t.iter().all(|t| t == &DataType::Int32) {
        list_type(DataType::Int32)
    } else if t.iter().all(DataType::is_integer) {
        list_type(DataType::Int64)
    } else {
        return Err("expects INT or BIGINT arguments".into());
    })
}

/// The longest array GENERATE_SERIES builds; longer series give NULL.
const MAX_SERIES: i128 = 1 << 20;

fn generate_series(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(start), Some(end)) = (c.i(0), c.i(1)) else {
        return c.null();
    };
    let step = if c.len() > 2 {
        c.i(2)
    } else {
        Some(if end > start { 1 } else { -1 })
    };
    let Some(step) = step else { return c.null() };
    let diff = i128::from(end) - i128::from(start);
    if step == 0 || (diff > 0 && step < 0) || (diff < 0 && step > 0) {
        return c.null(); // "step cannot be zero" / "step has wrong sign"
    }
    let size = diff / i128::from(step) + 1;
    if size > MAX_SERIES {
        return c.null();
    }
    let int32 = list_item(c.ret) == Some(&DataType::Int32);
    let values = (0..size)
        .filter_map(|k| i64::try_from(i128::from(start) + k * i128::from(step)).ok())
        .map(|v| {
            if int32 {
                ScalarValue::Int32(i32::try_from(v).ok())
            } else {
                ScalarValue::Int64(Some(v))
            }
        })
        .collect();
    list_like(c, values)
}

fn ret_as_map(t: &[DataType]) -> std::result::Result<DataType, String> {
    let key = t
        .first()
        .and_then(list_item)
        .cloned()
        .unwrap_or(DataType::Utf8);
    let value = t
        .get(1)
        .and_then(list_item)
        .cloned()
        .unwrap_or(DataType::Null);
    let key = if key.is_null() { DataType::Utf8 } else { key };
    Ok(map_type(key, value))
}

fn as_map(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(keys), Some(values)) = (list_items(c.arg(0))?, list_items(c.arg(1))?) else {
        return c.null();
    };
    let mut entries: Vec<(ScalarValue, ScalarValue)> = Vec::with_capacity(keys.len());
    for (i, k) in keys.into_iter().enumerate() {
        if k.is_null() {
            continue; // Arrow map keys cannot be NULL
        }
        let v = values.get(i).cloned().unwrap_or(ScalarValue::Null);
        match entries.iter_mut().find(|(ek, _)| ek == &k) {
            Some(slot) => slot.1 = v,
            None => entries.push((k, v)),
        }
    }
    make_map(entries, c.ret)
}

fn map_part(t: &[DataType], keys: bool) -> std::result::Result<DataType, String> {
    let (k, v) = t.first().and_then(map_kv).ok_or("expects a MAP")?;
    Ok(list_type(if keys { k.clone() } else { v.clone() }))
}

fn map_union(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (a, b) = (map_entries(c.arg(0))?, map_entries(c.arg(1))?);
    if a.is_none() && b.is_none() {
        return c.null();
    }
    let mut out: Vec<(ScalarValue, ScalarValue)> = a.unwrap_or_default();
    for (k, v) in b.unwrap_or_default() {
        match out.iter_mut().find(|(ek, _)| ek == &k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    make_map(out, c.ret)
}

fn entry_fields(t: &[DataType]) -> std::result::Result<Fields, String> {
    let (k, v) = t.first().and_then(map_kv).ok_or("expects a MAP")?;
    Ok(Fields::from(vec![
        Field::new("K", k.clone(), true),
        Field::new("V", v.clone(), true),
    ]))
}

fn ret_entries(t: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(list_type(DataType::Struct(entry_fields(t)?)))
}

fn entries(c: &mut Call<'_>) -> Result<ScalarValue> {
    let (Some(mut e), Some(sorted)) = (map_entries(c.arg(0))?, c.b(1)) else {
        return c.null();
    };
    if sorted {
        e.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    }
    let Some(DataType::Struct(fields)) = list_item(c.ret).cloned() else {
        return c.null();
    };
    let (Some(kf), Some(vf)) = (fields.first(), fields.get(1)) else {
        return c.null();
    };
    let structs = e
        .into_iter()
        .map(|(k, v)| {
            let cols: Vec<ArrayRef> = vec![
                to_array(vec![k], kf.data_type())?,
                to_array(vec![v], vf.data_type())?,
            ];
            Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
                fields.clone(),
                cols,
                None,
            )?)))
        })
        .collect::<Result<Vec<_>>>()?;
    list_like(c, structs)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;

    #[tokio::test]
    async fn membership_and_sets() {
        assert_eq!(q1("SELECT array_contains(make_array(1, 2), 2), array_contains(make_array('a'), 'b'), array_contains(CAST(NULL AS INT[]), 1), array_contains(make_array(1, NULL), NULL)").await, "true|false|false|true");
        assert_eq!(q1("SELECT array_distinct(make_array(3, 1, 3, NULL, NULL)), array_except(make_array(1, 2, 2, 3), make_array(2)), array_intersect(make_array(1, 2, 3), make_array(3, 1)), array_union(make_array(1, 1), make_array(2, 1))").await, "[3, 1, NULL]|[1, 3]|[1, 3]|[1, 2]");
        assert_eq!(q1("SELECT array_except(make_array(1), NULL), array_concat(make_array(1), make_array(2.5)), array_concat(NULL, make_array('a')), array_remove(make_array(1, 2, 1), 1)").await, "NULL|[1.0, 2.5]|[a]|[2]");
    }

    #[tokio::test]
    async fn ordering_and_text() {
        assert_eq!(q1("SELECT array_max(make_array(1, NULL, 7, 3)), array_min(make_array('b', 'a')), array_max(make_array(NULL)), array_length(make_array(1, 2))").await, "7|a|NULL|2");
        assert_eq!(q1("SELECT array_sort(make_array(3, NULL, 1)), array_sort(make_array(3, NULL, 1), 'desc'), array_sort(make_array(1), 'sideways')").await, "[1, 3, NULL]|[3, 1, NULL]|NULL");
        assert_eq!(q1("SELECT array_join(make_array(1, NULL, 3)), array_join(make_array(true, false), '|'), array_join(make_array(1.0, 1e10), NULL)").await, "1,null,3|true|false|1.01.0E10");
    }

    #[tokio::test]
    async fn slicing_and_series() {
        assert_eq!(q1("SELECT slice(make_array(1, 2, 3, 4), 2, 3), slice(make_array(1, 2), NULL, 1), slice(make_array(1, 2), 2, 5), slice(make_array(1), 0, 1)").await, "[2, 3]|[1]|NULL|NULL");
        assert_eq!(q1("SELECT generate_series(1, 4), generate_series(4, 0, -2), generate_series(1, 5, -1), generate_series(3, 3), generate_series(1, 2, 0)").await, "[1, 2, 3, 4]|[4, 2, 0]|NULL|[3]|NULL");
        assert_eq!(
            q1("SELECT arrow_typeof(generate_series(CAST(1 AS INT), CAST(2 AS INT)))").await,
            "List(Int32)"
        );
    }

    #[tokio::test]
    async fn maps() {
        assert_eq!(q1("SELECT as_map(make_array('a', 'b', 'a'), make_array(1, 2, 3)), as_map(make_array('x', 'y'), make_array(1))").await, "{a: 3, b: 2}|{x: 1, y: NULL}");
        assert_eq!(q1("SELECT map_keys(MAP {'a': 1, 'b': 2}), map_values(MAP {'a': 1, 'b': 2}), map_union(MAP {'a': 1, 'b': 2}, MAP {'b': 3}), map_union(NULL, MAP {'c': 1})").await, "[a, b]|[1, 2]|{a: 1, b: 3}|{c: 1}");
        assert_eq!(
            q1("SELECT entries(MAP {'b': 1, 'a': 2}, true), entries(MAP {'b': 1, 'a': 2}, false)")
                .await,
            "[{K: a, V: 2}, {K: b, V: 1}]|[{K: b, V: 1}, {K: a, V: 2}]"
        );
    }
}

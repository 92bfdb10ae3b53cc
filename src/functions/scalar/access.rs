//! The two functions the planner rewrites operators into.
//!
//! - `ksql_subscript(container, index)`: `arr[i]` with a 1-based `i`, a
//!   negative `i` counting from the end (`arr[-1]` is the last element) and
//!   NULL when out of range (`arr[0]` included); `map[key]` is the value or
//!   NULL. A NULL container or index gives NULL.
//! - `ksql_field(struct, 'NAME')`: `s->NAME`. The name must be a string
//!   literal; it matches a field exactly, else case-insensitively (ksqlDB
//!   upper-cases unquoted names, JSON data may not). The return type is the
//!   field's, so it is computed in `return_field_from_args`. A NULL struct
//!   gives NULL.
//!
//! Both are vectorized: the result is one `take` over the list values, the
//! map values or a struct child, not a row loop over `ScalarValue`s.

use std::sync::Arc;

use datafusion::arrow::array::{
    make_array, new_null_array, Array, ArrayRef, AsArray, StringArray, UInt64Builder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{exec_err, internal_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::udf::{coerce_arg, list_item, map_kv, str_of, Arg};

pub(super) const CATALOG: &[(&str, &str)] = &[];

pub(super) fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(Subscript {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(FieldAccess {
            signature: Signature::any(2, Volatility::Immutable),
        }),
    ]
}

/// Arguments as arrays of `number_rows`, and whether all were scalars.
fn arrays(args: &ScalarFunctionArgs) -> Result<(Vec<ArrayRef>, bool)> {
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let n = if scalar { 1 } else { args.number_rows };
    let arrays = args
        .args
        .iter()
        .map(|a| a.to_array(n))
        .collect::<Result<_>>()?;
    Ok((arrays, scalar))
}

fn finish(result: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &result, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(result))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Subscript {
    signature: Signature,
}

impl ScalarUDFImpl for Subscript {
    fn name(&self) -> &str {
        "ksql_subscript"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let [container, index] = t else {
            return plan_err!("KSQL_SUBSCRIPT expects 2 arguments, got {}", t.len());
        };
        if let Some(list) = coerce_arg(Arg::List, container).filter(|l| !l.is_null()) {
            return match coerce_arg(Arg::Int, index) {
                Some(i) => Ok(vec![list, i]),
                None => plan_err!("Array index must be an integer, got {index}"),
            };
        }
        if let Some((k, _)) = map_kv(container) {
            return Ok(vec![container.clone(), k.clone()]);
        }
        if container.is_null() {
            return Ok(vec![DataType::Null, index.clone()]);
        }
        plan_err!("Subscript [] needs an ARRAY or a MAP, got {container}")
    }
    fn return_type(&self, t: &[DataType]) -> Result<DataType> {
        match t.first() {
            Some(DataType::Null) => Ok(DataType::Null),
            Some(c) => match (list_item(c), map_kv(c)) {
                (Some(item), _) => Ok(item.clone()),
                (_, Some((_, v))) => Ok(v.clone()),
                _ => plan_err!("Subscript [] needs an ARRAY or a MAP, got {c}"),
            },
            None => plan_err!("KSQL_SUBSCRIPT expects 2 arguments"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = arrays(&args)?;
        let (Some(container), Some(index)) = (arrays.first(), arrays.get(1)) else {
            return exec_err!("KSQL_SUBSCRIPT expects 2 arguments");
        };
        let n = container.len();
        let mut idx = UInt64Builder::with_capacity(n);
        let result = match container.data_type() {
            DataType::List(_) => {
                let list = container.as_list::<i32>();
                let index = index.as_primitive::<Int64Type>();
                let offsets = list.value_offsets();
                for i in 0..n {
                    let (Some(&start), Some(&end)) = (offsets.get(i), offsets.get(i + 1)) else {
                        idx.append_null();
                        continue;
                    };
                    if list.is_null(i) || index.is_null(i) {
                        idx.append_null();
                        continue;
                    }
                    let len = i64::from(end) - i64::from(start);
                    let k = index.value(i);
                    let pos = if k >= 0 { k - 1 } else { len.saturating_add(k) };
                    match u64::try_from(i64::from(start) + pos) {
                        Ok(p) if (0..len).contains(&pos) => idx.append_value(p),
                        _ => idx.append_null(),
                    }
                }
                take(list.values().as_ref(), &idx.finish(), None)?
            }
            DataType::Map(_, _) => {
                let map = container.as_map();
                let keys = map.keys();
                let offsets = map.value_offsets();
                let str_keys = (
                    keys.as_any().downcast_ref::<StringArray>(),
                    index.as_any().downcast_ref::<StringArray>(),
                );
                for i in 0..n {
                    let (Some(&start), Some(&end)) = (offsets.get(i), offsets.get(i + 1)) else {
                        idx.append_null();
                        continue;
                    };
                    if map.is_null(i) || index.is_null(i) {
                        idx.append_null();
                        continue;
                    }
                    let range =
                        usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0);
                    // Scan from the end: a later duplicate key wins, as in a Java map.
                    let found = match str_keys {
                        (Some(k), Some(want)) => {
                            let want = want.value(i);
                            range.rev().find(|&j| k.is_valid(j) && k.value(j) == want)
                        }
                        _ => {
                            let want = ScalarValue::try_from_array(index, i)?;
                            let mut hit = None;
                            for j in range.rev() {
                                if ScalarValue::try_from_array(keys, j)? == want {
                                    hit = Some(j);
                                    break;
                                }
                            }
                            hit
                        }
                    };
                    match found.and_then(|j| u64::try_from(j).ok()) {
                        Some(j) => idx.append_value(j),
                        None => idx.append_null(),
                    }
                }
                take(map.values().as_ref(), &idx.finish(), None)?
            }
            DataType::Null => new_null_array(&DataType::Null, n),
            other => return exec_err!("Subscript [] needs an ARRAY or a MAP, got {other}"),
        };
        finish(result, scalar)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FieldAccess {
    signature: Signature,
}

/// The index of field `name`: exact match first, then case-insensitive.
fn field_index(fields: &Fields, name: &str) -> Option<usize> {
    fields.iter().position(|f| f.name() == name).or_else(|| {
        fields
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

impl ScalarUDFImpl for FieldAccess {
    fn name(&self) -> &str {
        "ksql_field"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        internal_err!("KSQL_FIELD: return_field_from_args computes the type")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = args
            .scalar_arguments
            .get(1)
            .copied()
            .flatten()
            .and_then(str_of);
        let Some(name) = name else {
            return plan_err!("KSQL_FIELD: the field name must be a string literal");
        };
        match args.arg_fields.first().map(|f| f.data_type()) {
            Some(DataType::Struct(fields)) => match field_index(fields, name) {
                Some(i) => {
                    let f = &fields[i];
                    Ok(Arc::new(Field::new(f.name(), f.data_type().clone(), true)))
                }
                None => plan_err!(
                    "Struct has no field '{name}' (fields: {})",
                    fields
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            Some(DataType::Null) => Ok(Arc::new(Field::new(name, DataType::Null, true))),
            Some(other) => plan_err!("Dereference -> needs a STRUCT, got {other}"),
            None => plan_err!("KSQL_FIELD expects 2 arguments"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match args.args.get(1) {
            Some(ColumnarValue::Scalar(s)) => str_of(s).map(String::from),
            _ => None,
        };
        let Some(name) = name else {
            return exec_err!("KSQL_FIELD: the field name must be a string literal");
        };
        let (arrays, scalar) = arrays(&args)?;
        let Some(container) = arrays.first() else {
            return exec_err!("KSQL_FIELD expects 2 arguments");
        };
        let result = match container.data_type() {
            DataType::Struct(fields) => {
                let Some(i) = field_index(fields, &name) else {
                    return exec_err!("Struct has no field '{name}'");
                };
                let s = container.as_struct();
                let child = s.column(i).clone();
                match s.nulls() {
                    None => child,
                    Some(parent) => {
                        let nulls = NullBuffer::union(Some(parent), child.nulls());
                        make_array(child.to_data().into_builder().nulls(nulls).build()?)
                    }
                }
            }
            _ => new_null_array(args.return_field.data_type(), container.len()),
        };
        finish(result, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::q1;

    #[tokio::test]
    async fn array_subscript() {
        assert_eq!(q1("SELECT ksql_subscript(make_array(10, 20, 30), 1), ksql_subscript(make_array(10, 20, 30), -1), ksql_subscript(make_array(10, 20, 30), 0), ksql_subscript(make_array(10, 20, 30), 4), ksql_subscript(make_array(10, 20, 30), -4)").await, "10|30|NULL|NULL|NULL");
        assert_eq!(q1("SELECT ksql_subscript(ksql_subscript(make_array(make_array(0, 1), make_array(2)), 1), 2), ksql_subscript(CAST(NULL AS INT[]), 1), ksql_subscript(make_array(1), NULL)").await, "1|NULL|NULL");
        assert_eq!(q1("SELECT ksql_subscript(a, i) FROM (VALUES (make_array(1, 2), 2), (make_array(3), -1), (NULL, 1), (make_array(5), 9)) AS t(a, i)").await, "2\n3\nNULL\nNULL");
    }

    #[tokio::test]
    async fn map_subscript() {
        assert_eq!(q1("SELECT ksql_subscript(MAP {'expected': 10}, 'expected'), ksql_subscript(MAP {'expected': 10}, 'missing'), ksql_subscript(MAP {1: 'one'}, 1)").await, "10|NULL|one");
        assert_eq!(q1("SELECT ksql_subscript(m, k) FROM (VALUES (MAP {'a': 1}, 'a'), (MAP {'a': 1}, 'b'), (NULL, 'a')) AS t(m, k)").await, "1\nNULL\nNULL");
    }

    #[tokio::test]
    async fn struct_field() {
        assert_eq!(q1("SELECT ksql_field(named_struct('Name', 'George', 'AGE', 3), 'NAME'), ksql_field(named_struct('Name', 'George', 'AGE', 3), 'AGE'), arrow_typeof(ksql_field(named_struct('a', 1), 'A'))").await, "George|3|Int64");
        assert_eq!(q1("SELECT ksql_field(ksql_field(s, 'PERSON'), 'NAME') FROM (SELECT CASE WHEN x = 1 THEN named_struct('Person', named_struct('Name', 'G')) END AS s FROM (VALUES (1), (2)) AS v(x)) t").await, "G\nNULL");
        let err = super::super::test_util::q("SELECT ksql_field(named_struct('a', 1), 'b')")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no field 'b'"), "{err}");
    }
}

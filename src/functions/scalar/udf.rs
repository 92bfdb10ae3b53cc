//! The one `ScalarUDFImpl` behind (almost) every ksqlDB scalar function.
//!
//! A ksqlDB UDF is a Java method called once per row with boxed arguments.
//! [`RowUdf`] mirrors that: a function is a name, a parameter spec (which
//! Arrow types it accepts and what they are coerced to), a return-type rule
//! and an evaluation function `fn(&mut Call) -> Result<ScalarValue>` that
//! sees one row of already-coerced [`ScalarValue`]s. The shared driver
//! handles the rest: constant folding (all-scalar arguments give a scalar),
//! the NULL rule (strict functions return NULL when any argument is NULL
//! without being called), typed NULLs, volatile functions (one value per row)
//! and assembling the output array.
//!
//! Row-at-a-time evaluation costs an allocation per value; it keeps each
//! function a few lines of plain Rust that reads like the ksqlDB source. A hot
//! function can later get a vectorized `ScalarUDFImpl` of its own without
//! changing its name or semantics.
//!
//! Errors: wrong argument types are `Plan` errors naming the function
//! (raised while coercing). Bad *data* (unparseable date, invalid JSON,
//! out-of-range index) gives NULL for that row, as ksqlDB does (it logs the
//! exception to its processing log and emits NULL). Evaluation never panics.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    new_empty_array, Array, ArrayRef, ListArray, MapArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::javatime::JavaFormat;

/// What one parameter accepts and what it is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arg {
    /// Any string type, coerced to `Utf8`.
    Str,
    /// Any integer, coerced to `Int64` (SQL literals are `Int64`; the
    /// function narrows where ksqlDB's parameter is an `INT`).
    Int,
    /// Any number, coerced to `Float64`.
    Dbl,
    /// Any number, kept: small ints to `Int32`, big ints to `Int64`, floats
    /// to `Float64`, decimals as they are.
    Num,
    Bool,
    /// Any binary type, coerced to `Binary`.
    Bytes,
    /// Any timestamp, coerced to `Timestamp(Millisecond, None)`.
    Ts,
    /// `Date32`.
    Date,
    /// `Time32(Millisecond)`.
    Time,
    /// Anything, unchanged.
    Any,
    /// Any list type, coerced to `List`.
    List,
    /// A `Map`.
    Map,
}

/// The accepted argument lists of a function.
#[derive(Debug, Clone, Copy)]
pub(super) enum Params {
    /// Alternative fixed argument lists, tried in order.
    Fixed(&'static [&'static [Arg]]),
    /// `fixed` arguments, then any number of `rest`, at least `min` in all.
    Variadic {
        fixed: &'static [Arg],
        rest: Arg,
        min: usize,
    },
    /// Hand-written coercion (element-typed collection functions).
    Custom(CoerceFn),
}

pub(super) type CoerceFn = fn(&[DataType]) -> std::result::Result<Vec<DataType>, String>;
pub(super) type ReturnFn = fn(&[DataType]) -> std::result::Result<DataType, String>;
pub(super) type EvalFn = fn(&mut Call<'_>) -> Result<ScalarValue>;

/// Per-invocation memo (one batch): compiled regexes and date formats, so a
/// constant pattern is compiled once per batch, not once per row.
#[derive(Default)]
pub(super) struct Cache {
    regex: HashMap<String, Option<regex::Regex>>,
    formats: HashMap<String, Option<Arc<JavaFormat>>>,
}

/// One row's arguments, the return type and the batch memo.
pub(super) struct Call<'a> {
    pub(super) args: &'a [ScalarValue],
    pub(super) ret: &'a DataType,
    cache: &'a mut Cache,
}

impl<'a> Call<'a> {
    pub(super) fn arg(&self, i: usize) -> &'a ScalarValue {
        self.args.get(i).unwrap_or(&ScalarValue::Null)
    }
    pub(super) fn len(&self) -> usize {
        self.args.len()
    }
    pub(super) fn s(&self, i: usize) -> Option<&'a str> {
        str_of(self.arg(i))
    }
    pub(super) fn i(&self, i: usize) -> Option<i64> {
        i64_of(self.arg(i))
    }
    pub(super) fn f(&self, i: usize) -> Option<f64> {
        f64_of(self.arg(i))
    }
    pub(super) fn b(&self, i: usize) -> Option<bool> {
        match self.arg(i) {
            ScalarValue::Boolean(b) => *b,
            _ => None,
        }
    }
    pub(super) fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        match self.arg(i) {
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b)) => Some(b.as_slice()),
            _ => None,
        }
    }
    /// Epoch milliseconds of a timestamp argument.
    pub(super) fn ts(&self, i: usize) -> Option<i64> {
        match self.arg(i) {
            ScalarValue::TimestampMillisecond(v, _) => *v,
            ScalarValue::TimestampSecond(v, _) => v.and_then(|v| v.checked_mul(1000)),
            ScalarValue::TimestampMicrosecond(v, _) => v.map(|v| v.div_euclid(1000)),
            ScalarValue::TimestampNanosecond(v, _) => v.map(|v| v.div_euclid(1_000_000)),
            _ => None,
        }
    }
    /// Days since the epoch of a date argument.
    pub(super) fn date(&self, i: usize) -> Option<i32> {
        match self.arg(i) {
            ScalarValue::Date32(v) => *v,
            _ => None,
        }
    }
    /// Milliseconds since midnight of a time argument.
    pub(super) fn time(&self, i: usize) -> Option<i32> {
        match self.arg(i) {
            ScalarValue::Time32Millisecond(v) => *v,
            _ => None,
        }
    }
    /// A NULL of the return type.
    pub(super) fn null(&self) -> Result<ScalarValue> {
        ScalarValue::try_new_null(self.ret)
    }
    /// The compiled regex for `pattern`, or `None` if it does not compile.
    pub(super) fn regex(&mut self, pattern: &str) -> Option<&regex::Regex> {
        if !self.cache.regex.contains_key(pattern) {
            if self.cache.regex.len() > 64 {
                self.cache.regex.clear();
            }
            self.cache
                .regex
                .insert(pattern.to_string(), regex::Regex::new(pattern).ok());
        }
        self.cache.regex.get(pattern).and_then(|r| r.as_ref())
    }
    /// The parsed Java date-time pattern, or `None` if it is invalid.
    pub(super) fn format(&mut self, pattern: &str) -> Option<Arc<JavaFormat>> {
        if !self.cache.formats.contains_key(pattern) {
            if self.cache.formats.len() > 64 {
                self.cache.formats.clear();
            }
            let parsed = JavaFormat::parse(pattern).ok().map(Arc::new);
            self.cache.formats.insert(pattern.to_string(), parsed);
        }
        self.cache.formats.get(pattern).cloned().flatten()
    }
}

/// A ksqlDB scalar function evaluated row by row (see the module doc).
#[derive(Debug)]
pub(super) struct RowUdf {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    params: Params,
    ret: ReturnFn,
    eval: EvalFn,
    strict: bool,
}

impl RowUdf {
    /// A strict, immutable function: NULL in any argument gives NULL.
    pub(super) fn new(name: &'static str, params: Params, ret: ReturnFn, eval: EvalFn) -> Self {
        let mut udf = Self {
            name,
            aliases: Vec::new(),
            signature: Signature::user_defined(Volatility::Immutable),
            params,
            ret,
            eval,
            strict: true,
        };
        udf.signature = udf.make_signature(Volatility::Immutable);
        udf
    }

    /// The function sees NULL arguments and decides itself.
    pub(super) fn lenient(mut self) -> Self {
        self.strict = false;
        self
    }

    /// A different value per row (RANDOM, UUID, UNIX_TIMESTAMP()).
    pub(super) fn volatile(mut self) -> Self {
        self.signature = self.make_signature(Volatility::Volatile);
        self
    }

    pub(super) fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_string());
        self
    }

    pub(super) fn build(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }

    fn make_signature(&self, volatility: Volatility) -> Signature {
        let zero = match self.params {
            Params::Fixed(lists) => lists.iter().any(|l| l.is_empty()),
            Params::Variadic { min, .. } => min == 0,
            Params::Custom(_) => false,
        };
        let only_zero =
            matches!(self.params, Params::Fixed(lists) if lists.iter().all(|l| l.is_empty()));
        if only_zero {
            Signature::nullary(volatility)
        } else if zero {
            Signature::one_of(
                vec![TypeSignature::Nullary, TypeSignature::UserDefined],
                volatility,
            )
        } else {
            Signature::user_defined(volatility)
        }
    }

    /// The coerced argument types, or why `arg_types` are not accepted.
    pub(super) fn coerce(
        &self,
        arg_types: &[DataType],
    ) -> std::result::Result<Vec<DataType>, String> {
        match self.params {
            Params::Fixed(lists) => lists
                .iter()
                .filter(|l| l.len() == arg_types.len())
                .find_map(|l| coerce_all(l.iter().copied(), arg_types))
                .ok_or_else(|| wrong_args(lists, arg_types)),
            Params::Variadic { fixed, rest, min } => {
                if arg_types.len() < min.max(fixed.len()) {
                    Err(format!(
                        "expects at least {} arguments",
                        min.max(fixed.len())
                    ))
                } else {
                    let specs = fixed.iter().copied().chain(std::iter::repeat(rest));
                    coerce_all(specs, arg_types).ok_or_else(|| "unsupported argument types".into())
                }
            }
            Params::Custom(f) => f(arg_types),
        }
    }

    fn upper(&self) -> String {
        self.name.to_uppercase()
    }

    fn call(&self, args: &[ScalarValue], ret: &DataType, cache: &mut Cache) -> Result<ScalarValue> {
        if self.strict && args.iter().any(|a| a.is_null()) {
            return ScalarValue::try_new_null(ret);
        }
        let mut call = Call { args, ret, cache };
        let out = (self.eval)(&mut call)?;
        if out.is_null() {
            if &out.data_type() == ret {
                Ok(out)
            } else {
                ScalarValue::try_new_null(ret)
            }
        } else if &out.data_type() == ret {
            Ok(out)
        } else {
            out.cast_to(ret).map_err(|e| {
                DataFusionError::Internal(format!("{}: result type mismatch: {e}", self.upper()))
            })
        }
    }
}

impl PartialEq for RowUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.signature == other.signature
    }
}
impl Eq for RowUdf {}
impl Hash for RowUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.signature.hash(state);
    }
}

impl ScalarUDFImpl for RowUdf {
    fn name(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn is_strict(&self) -> bool {
        self.strict
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        (self.ret)(arg_types).or_else(|msg| plan_err!("{}: {msg}", self.upper()))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let coerced = self.coerce(arg_types);
        coerced.or_else(|msg| {
            plan_err!(
                "Function '{}' does not accept parameters ({}): {msg}",
                self.upper(),
                arg_types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ret = args.return_field.data_type().clone();
        let volatile = self.signature.volatility == Volatility::Volatile;
        let mut cache = Cache::default();
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar && !volatile {
            let row: Vec<ScalarValue> = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Scalar(s) => s.clone(),
                    ColumnarValue::Array(_) => ScalarValue::Null,
                })
                .collect();
            return Ok(ColumnarValue::Scalar(self.call(&row, &ret, &mut cache)?));
        }
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let mut out = Vec::with_capacity(n);
        let mut row = Vec::with_capacity(arrays.len());
        for i in 0..n {
            row.clear();
            for a in &arrays {
                row.push(ScalarValue::try_from_array(a, i)?);
            }
            out.push(self.call(&row, &ret, &mut cache)?);
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(new_empty_array(&ret)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

fn wrong_args(lists: &[&[Arg]], got: &[DataType]) -> String {
    let arities: Vec<String> = lists.iter().map(|l| l.len().to_string()).collect();
    if lists.iter().any(|l| l.len() == got.len()) {
        "unsupported argument types".to_string()
    } else {
        format!("expects {} arguments", arities.join(" or "))
    }
}

fn coerce_all(specs: impl Iterator<Item = Arg>, types: &[DataType]) -> Option<Vec<DataType>> {
    specs.zip(types).map(|(s, t)| coerce_arg(s, t)).collect()
}

/// The type an argument of type `t` is coerced to for parameter `a`, if accepted.
pub(super) fn coerce_arg(a: Arg, t: &DataType) -> Option<DataType> {
    use DataType as D;
    let is_int = t.is_integer();
    let null = matches!(t, D::Null);
    Some(match a {
        Arg::Str if null || matches!(t, D::Utf8 | D::LargeUtf8 | D::Utf8View) => D::Utf8,
        Arg::Int if null || is_int => D::Int64,
        Arg::Dbl if null || t.is_numeric() => D::Float64,
        Arg::Num => match t {
            D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 => D::Int32,
            D::Int64 | D::UInt32 | D::UInt64 => D::Int64,
            D::Float16 | D::Float32 | D::Float64 | D::Null => D::Float64,
            D::Decimal128(_, _) => t.clone(),
            D::Decimal256(p, s) => D::Decimal128((*p).min(38), *s),
            _ => return None,
        },
        Arg::Bool if null || matches!(t, D::Boolean) => D::Boolean,
        Arg::Bytes
            if null
                || matches!(
                    t,
                    D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_)
                ) =>
        {
            D::Binary
        }
        Arg::Ts if null || matches!(t, D::Timestamp(_, _)) => {
            D::Timestamp(TimeUnit::Millisecond, None)
        }
        Arg::Date if null || matches!(t, D::Date32 | D::Date64) => D::Date32,
        Arg::Time if null || matches!(t, D::Time32(_) | D::Time64(_)) => {
            D::Time32(TimeUnit::Millisecond)
        }
        Arg::Any => t.clone(),
        Arg::List => match t {
            D::List(f) | D::LargeList(f) | D::FixedSizeList(f, _) => D::List(f.clone()),
            D::Null => D::Null,
            _ => return None,
        },
        Arg::Map => match t {
            D::Map(_, _) | D::Null => t.clone(),
            _ => return None,
        },
        _ => return None,
    })
}

// ---- value helpers shared by the families ----

pub(super) fn str_of(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.as_str()),
        _ => None,
    }
}

pub(super) fn i64_of(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int8(x) => x.map(i64::from),
        ScalarValue::Int16(x) => x.map(i64::from),
        ScalarValue::Int32(x) => x.map(i64::from),
        ScalarValue::Int64(x) => *x,
        ScalarValue::UInt8(x) => x.map(i64::from),
        ScalarValue::UInt16(x) => x.map(i64::from),
        ScalarValue::UInt32(x) => x.map(i64::from),
        ScalarValue::UInt64(x) => x.and_then(|x| i64::try_from(x).ok()),
        _ => None,
    }
}

pub(super) fn f64_of(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(x) => *x,
        ScalarValue::Float32(x) => x.map(f64::from),
        ScalarValue::Decimal128(Some(x), _, s) => Some(*x as f64 / 10f64.powi(i32::from(*s))),
        _ => i64_of(v).map(|x| x as f64),
    }
}

pub(super) fn utf8(s: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(s.into()))
}

/// A constant return type rule.
pub(super) fn ret_str(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Utf8)
}
pub(super) fn ret_i32(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Int32)
}
pub(super) fn ret_i64(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Int64)
}
pub(super) fn ret_f64(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Float64)
}
pub(super) fn ret_bool(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Boolean)
}
pub(super) fn ret_ts(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
}
pub(super) fn ret_date(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Date32)
}
pub(super) fn ret_time(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(DataType::Time32(TimeUnit::Millisecond))
}
pub(super) fn ret_str_list(_: &[DataType]) -> std::result::Result<DataType, String> {
    Ok(list_type(DataType::Utf8))
}
/// The return type is the first argument's type.
pub(super) fn ret_first(t: &[DataType]) -> std::result::Result<DataType, String> {
    t.first()
        .cloned()
        .ok_or_else(|| "expects an argument".to_string())
}

/// ksqlDB `ARRAY<T>`: a list of nullable `T` named `item`.
pub(super) fn list_type(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// ksqlDB `MAP<K, V>`; the same layout as `catalog::types::map_type`.
pub(super) fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

/// The element type of a list type.
pub(super) fn list_item(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

/// Key and value types of a map type.
pub(super) fn map_kv(t: &DataType) -> Option<(&DataType, &DataType)> {
    match t {
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Some((kv[0].data_type(), kv[1].data_type())),
            _ => None,
        },
        _ => None,
    }
}

/// The elements of a list value; `None` for a NULL list.
pub(super) fn list_items(v: &ScalarValue) -> Result<Option<Vec<ScalarValue>>> {
    let arr: &dyn Array = match v {
        ScalarValue::List(a) => a.as_ref(),
        ScalarValue::LargeList(a) => a.as_ref(),
        ScalarValue::FixedSizeList(a) => a.as_ref(),
        ScalarValue::Null => return Ok(None),
        other => return exec_err!("expected an ARRAY, got {}", other.data_type()),
    };
    if arr.is_empty() || arr.is_null(0) {
        return Ok(None);
    }
    let values: ArrayRef = match v {
        ScalarValue::List(a) => a.value(0),
        ScalarValue::LargeList(a) => a.value(0),
        ScalarValue::FixedSizeList(a) => a.value(0),
        _ => return Ok(None),
    };
    (0..values.len())
        .map(|i| ScalarValue::try_from_array(&values, i))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A one-row list value of `item` elements.
pub(super) fn make_list(items: Vec<ScalarValue>, item: &DataType) -> Result<ScalarValue> {
    let values = to_array(items, item)?;
    let field = Arc::new(Field::new("item", item.clone(), true));
    let offsets = OffsetBuffer::from_lengths([values.len()]);
    Ok(ScalarValue::List(Arc::new(ListArray::try_new(
        field, offsets, values, None,
    )?)))
}

/// Scalars of one type to an array of exactly `ty` (NULLs typed, values cast).
pub(super) fn to_array(items: Vec<ScalarValue>, ty: &DataType) -> Result<ArrayRef> {
    if items.is_empty() {
        return Ok(new_empty_array(ty));
    }
    let items = items
        .into_iter()
        .map(|v| {
            if v.is_null() {
                ScalarValue::try_new_null(ty)
            } else if &v.data_type() == ty {
                Ok(v)
            } else {
                v.cast_to(ty)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    ScalarValue::iter_to_array(items)
}

/// The entries of a map value; `None` for a NULL map.
pub(super) fn map_entries(v: &ScalarValue) -> Result<Option<Vec<(ScalarValue, ScalarValue)>>> {
    let arr = match v {
        ScalarValue::Map(a) => a,
        ScalarValue::Null => return Ok(None),
        other => return exec_err!("expected a MAP, got {}", other.data_type()),
    };
    if arr.is_empty() || arr.is_null(0) {
        return Ok(None);
    }
    let entries = arr.value(0);
    let (keys, values) = (entries.column(0), entries.column(1));
    (0..entries.len())
        .map(|i| {
            Ok((
                ScalarValue::try_from_array(keys, i)?,
                ScalarValue::try_from_array(values, i)?,
            ))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A one-row map value of type `map` (as built by [`map_type`]).
pub(super) fn make_map(
    entries: Vec<(ScalarValue, ScalarValue)>,
    map: &DataType,
) -> Result<ScalarValue> {
    let DataType::Map(field, sorted) = map else {
        return exec_err!("expected a MAP type, got {map}");
    };
    let DataType::Struct(kv) = field.data_type() else {
        return exec_err!("malformed MAP type {map}");
    };
    let (Some(kf), Some(vf)) = (kv.first(), kv.get(1)) else {
        return exec_err!("malformed MAP type {map}");
    };
    let (keys, values): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
    let n = keys.len();
    let keys = to_array(keys, kf.data_type())?;
    let values = to_array(values, vf.data_type())?;
    let entries = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
    let offsets = OffsetBuffer::from_lengths([n]);
    Ok(ScalarValue::Map(Arc::new(MapArray::try_new(
        field.clone(),
        offsets,
        entries,
        None,
        *sorted,
    )?)))
}

/// Java `String.valueOf` of a primitive SQL value (`null` for NULL); `None`
/// for nested or temporal values, which ksqlDB's ARRAY_JOIN rejects.
pub(super) fn java_text(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return Some("null".to_string());
    }
    match v {
        ScalarValue::Boolean(Some(b)) => Some(b.to_string()),
        ScalarValue::Float64(Some(x)) => Some(java_double(*x)),
        ScalarValue::Float32(Some(x)) => Some(java_double(f64::from(*x))),
        ScalarValue::Decimal128(..) => Some(v.to_string()),
        _ => str_of(v)
            .map(String::from)
            .or_else(|| i64_of(v).map(|i| i.to_string())),
    }
}

/// Java's `Double.toString`: `1.0`, `0.001`, `1.0E7`, `1.234E-5`.
pub(super) fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = x.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{x}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{x:e}");
    let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let m = if m.contains('.') {
        m.to_string()
    } else {
        format!("{m}.0")
    };
    format!("{m}E{e}")
}

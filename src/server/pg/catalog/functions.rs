//! The functions tools call in catalog queries (`version()`,
//! `current_schema()`, `format_type`, `pg_get_constraintdef`, ...),
//! answered from the query's [`Snapshot`].
//!
//! Each is a closure over the snapshot, evaluated row by row on
//! `ScalarValue`s: catalog queries read a few hundred rows, and a closure
//! keeps every function a line or two. Functions about objects Sluice has
//! none of (defaults, sequences, triggers) answer NULL; privileges are all
//! granted (Sluice has one role).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::snapshot::{namespace_name, Snapshot, PG_CATALOG_NS, PUBLIC_NS, ROLE};
use super::types;

type Eval = Arc<dyn Fn(&[ScalarValue]) -> Result<ScalarValue> + Send + Sync>;

/// A catalog function: a name, the argument counts it takes (any types:
/// the closure reads what it needs), its return type and its closure.
struct CatalogFn {
    name: &'static str,
    signature: Signature,
    ret: DataType,
    eval: Eval,
}

impl std::fmt::Debug for CatalogFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl PartialEq for CatalogFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFn {}

impl Hash for CatalogFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for CatalogFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.ret.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<Option<ArrayRef>> = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Array(a) => Some(a.clone()),
                ColumnarValue::Scalar(_) => None,
            })
            .collect();
        let row = |i: usize| -> Result<Vec<ScalarValue>> {
            args.args
                .iter()
                .zip(&arrays)
                .map(|(a, array)| match (a, array) {
                    (_, Some(array)) => ScalarValue::try_from_array(array, i),
                    (ColumnarValue::Scalar(s), None) => Ok(s.clone()),
                    (ColumnarValue::Array(_), None) => unreachable_arg(),
                })
                .collect()
        };
        let cast = |v: ScalarValue| -> Result<ScalarValue> {
            if v.is_null() {
                ScalarValue::try_from(&self.ret)
            } else {
                v.cast_to(&self.ret)
            }
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(cast((self.eval)(&row(0)?)?)?));
        }
        if args.number_rows == 0 {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.ret),
            ));
        }
        let values = (0..args.number_rows)
            .map(|i| cast((self.eval)(&row(i)?)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
    }
}

fn unreachable_arg() -> Result<ScalarValue> {
    Err(datafusion::error::DataFusionError::Internal(
        "an array argument without its array".into(),
    ))
}

/// A function taking any of `counts` arguments.
fn function(
    name: &'static str,
    counts: &[usize],
    ret: DataType,
    eval: impl Fn(&[ScalarValue]) -> Result<ScalarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    let signature = match counts {
        [] => Signature::variadic_any(Volatility::Stable),
        [0] => Signature::nullary(Volatility::Stable),
        [n] => Signature::any(*n, Volatility::Stable),
        many => Signature::one_of(
            many.iter()
                .map(|n| match n {
                    0 => TypeSignature::Nullary,
                    n => TypeSignature::Any(*n),
                })
                .collect(),
            Volatility::Stable,
        ),
    };
    ScalarUDF::new_from_impl(CatalogFn {
        name,
        signature,
        ret,
        eval: Arc::new(eval),
    })
}

fn int_of(v: Option<&ScalarValue>) -> Option<i64> {
    match v?.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(i) => i,
        _ => None,
    }
}

fn str_of(v: Option<&ScalarValue>) -> Option<String> {
    match v? {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        other if other.is_null() => None,
        other => Some(other.to_string()),
    }
}

fn utf8(s: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(s)
}

/// The server's version as `version()` answers it: a PostgreSQL version
/// string (what drivers parse), naming Sluice.
pub(crate) fn version_string() -> String {
    format!(
        "PostgreSQL {} (Sluice {}) on {}-linux, compiled by rustc, 64-bit",
        crate::server::pg::session::SERVER_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Every catalog function, over `snap`.
pub(super) fn all(snap: &Arc<Snapshot>) -> Vec<ScalarUDF> {
    use DataType::{Boolean, Int64, Utf8};
    let s = snap.clone();
    let user = snap.facts.user.clone();
    let database = snap.facts.database.clone();
    let settings = snap.facts.settings.clone();
    let constant = |name: &'static str, value: ScalarValue| {
        let ret = value.data_type();
        function(name, &[0], ret, move |_| Ok(value.clone()))
    };
    let null_text = |name: &'static str| function(name, &[], Utf8, |_| Ok(ScalarValue::Utf8(None)));
    let granted =
        |name: &'static str| function(name, &[], Boolean, |_| Ok(ScalarValue::Boolean(Some(true))));
    let mut all = vec![
        constant("version", ScalarValue::Utf8(Some(version_string()))),
        constant("current_database", ScalarValue::Utf8(Some(database))),
        constant("current_schema", ScalarValue::Utf8(Some("public".into()))),
        constant("current_user", ScalarValue::Utf8(Some(user.clone()))),
        constant("session_user", ScalarValue::Utf8(Some(user.clone()))),
        constant(
            "current_catalog",
            ScalarValue::Utf8(Some(snap.facts.database.clone())),
        ),
        constant("pg_is_in_recovery", ScalarValue::Boolean(Some(false))),
        constant(
            "pg_backend_pid",
            ScalarValue::Int32(Some(std::process::id() as i32)),
        ),
        function(
            "current_schemas",
            &[1],
            DataType::List(Arc::new(Field::new_list_field(Utf8, true))),
            |args| {
                let implicit = matches!(args.first(), Some(ScalarValue::Boolean(Some(true))));
                let names: Vec<ScalarValue> = implicit
                    .then_some("pg_catalog")
                    .into_iter()
                    .chain(["public"])
                    .map(|n| ScalarValue::Utf8(Some(n.into())))
                    .collect();
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &names, &Utf8,
                )))
            },
        ),
        function("pg_get_userbyid", &[1], Utf8, move |a| {
            Ok(utf8(int_of(a.first()).map(|oid| match oid {
                ROLE => user.clone(),
                other => format!("unknown (OID={other})"),
            })))
        }),
        function("format_type", &[2], Utf8, |a| {
            let typmod = int_of(a.get(1)).and_then(|m| i32::try_from(m).ok());
            Ok(utf8(
                int_of(a.first()).map(|oid| types::format_type(oid, typmod)),
            ))
        }),
        function("regtypeout", &[1], Utf8, |a| {
            Ok(utf8(int_of(a.first()).map(|oid| match oid {
                0 => "-".into(),
                oid => types::format_type(oid, None),
            })))
        }),
        function("to_regtype", &[1], Int64, |a| {
            let name = str_of(a.first());
            Ok(ScalarValue::Int64(
                name.and_then(|n| types::by_name(&n)).map(|t| t.oid),
            ))
        }),
        function("pg_type_is_visible", &[1], Boolean, |a| {
            Ok(ScalarValue::Boolean(
                int_of(a.first()).map(|oid| types::by_oid(oid).is_some()),
            ))
        }),
        function("regnamespaceout", &[1], Utf8, |a| {
            Ok(utf8(
                int_of(a.first()).map(|oid| namespace_name(oid).to_string()),
            ))
        }),
        null_text("pg_get_expr"),
        null_text("pg_get_serial_sequence"),
        null_text("pg_get_partkeydef"),
        null_text("pg_get_viewdef"),
        null_text("pg_get_triggerdef"),
        null_text("pg_get_statisticsobjdef"),
        null_text("pg_get_statisticsobjdef_columns"),
        null_text("pg_get_statisticsobjdef_expressions"),
        null_text("pg_get_ruledef"),
        null_text("pg_get_functiondef"),
        null_text("pg_get_function_identity_arguments"),
        null_text("pg_get_function_arguments"),
        null_text("pg_get_function_result"),
        null_text("shobj_description"),
        null_text("acldefault"),
        function("pg_relation_is_publishable", &[1], Boolean, |_| {
            Ok(ScalarValue::Boolean(Some(false)))
        }),
        granted("has_table_privilege"),
        granted("has_schema_privilege"),
        granted("has_database_privilege"),
        granted("has_column_privilege"),
        granted("has_any_column_privilege"),
        granted("has_function_privilege"),
        granted("has_sequence_privilege"),
        granted("pg_has_role"),
        function("set_config", &[3], Utf8, |a| Ok(utf8(str_of(a.get(1))))),
        function("current_setting", &[1, 2], Utf8, move |a| {
            let name = str_of(a.first()).unwrap_or_default().to_ascii_lowercase();
            let missing_ok = matches!(a.get(1), Some(ScalarValue::Boolean(Some(true))));
            match settings.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => Ok(utf8(Some(v.clone()))),
                None if missing_ok => Ok(utf8(None)),
                None => Err(datafusion::error::DataFusionError::Plan(format!(
                    "unrecognized configuration parameter \"{name}\""
                ))),
            }
        }),
        function("pg_encoding_to_char", &[1], Utf8, |a| {
            Ok(utf8(int_of(a.first()).map(|e| {
                match e {
                    6 => "UTF8",
                    0 => "SQL_ASCII",
                    _ => "",
                }
                .to_string()
            })))
        }),
        function("quote_ident", &[1], Utf8, |a| {
            Ok(utf8(
                str_of(a.first()).map(|n| super::snapshot::quote_ident(&n)),
            ))
        }),
        function("quote_literal", &[1], Utf8, |a| {
            Ok(utf8(
                str_of(a.first()).map(|v| format!("'{}'", v.replace('\'', "''"))),
            ))
        }),
        function("json_build_object", &[], Utf8, |a| {
            let mut object = serde_json::Map::new();
            for pair in a.chunks(2) {
                let key = str_of(pair.first()).unwrap_or_default();
                let value = pair.get(1).map_or(serde_json::Value::Null, |v| {
                    crate::connectors::formats::scalar_to_json(v)
                });
                object.insert(key, value);
            }
            Ok(utf8(Some(serde_json::Value::Object(object).to_string())))
        }),
        function("array_upper", &[2], Int64, |a| {
            Ok(ScalarValue::Int64(list_len(a.first()).filter(|n| *n > 0)))
        }),
        function("array_lower", &[2], Int64, |a| {
            Ok(ScalarValue::Int64(
                list_len(a.first()).filter(|n| *n > 0).map(|_| 1),
            ))
        }),
        function("pg_expandarray", &[1], expanded_type(), |a| {
            expand(a.first())
        }),
        function("regtype", &[1], Int64, |a| {
            Ok(ScalarValue::Int64(match a.first() {
                Some(ScalarValue::Utf8(Some(name))) => types::by_name(name).map(|t| t.oid),
                other => int_of(other),
            }))
        }),
        function("regnamespace", &[1], Int64, |a| {
            Ok(ScalarValue::Int64(match a.first() {
                Some(ScalarValue::Utf8(Some(name))) => super::snapshot::namespace_oid(name),
                other => int_of(other),
            }))
        }),
    ];
    all.extend(relation_functions(&s));
    all
}

/// The functions that look relations up.
fn relation_functions(snap: &Arc<Snapshot>) -> Vec<ScalarUDF> {
    use DataType::{Boolean, Int64, Utf8};
    let (s1, s2, s3, s4, s5, s6, s7, s8) = (
        snap.clone(),
        snap.clone(),
        snap.clone(),
        snap.clone(),
        snap.clone(),
        snap.clone(),
        snap.clone(),
        snap.clone(),
    );
    vec![
        function("pg_table_is_visible", &[1], Boolean, move |a| {
            Ok(ScalarValue::Boolean(int_of(a.first()).map(|oid| {
                s1.relation(oid)
                    .or_else(|| s1.keyed_by(oid))
                    .is_some_and(|r| matches!(r.namespace, PG_CATALOG_NS | PUBLIC_NS))
            })))
        }),
        function("regclass", &[1], Int64, move |a| {
            Ok(ScalarValue::Int64(match a.first() {
                Some(ScalarValue::Utf8(Some(name))) => s8.regclass_oid(name),
                other => int_of(other),
            }))
        }),
        function("regclassout", &[1], Utf8, move |a| {
            Ok(utf8(int_of(a.first()).map(|oid| s2.regclass_name(oid))))
        }),
        function("to_regclass", &[1], Int64, move |a| {
            Ok(ScalarValue::Int64(
                str_of(a.first()).and_then(|n| s3.regclass_oid(&n)),
            ))
        }),
        function("pg_get_constraintdef", &[1, 2], Utf8, move |a| {
            Ok(utf8(
                int_of(a.first())
                    .and_then(|oid| s4.keyed_by(oid))
                    .and_then(|r| r.key_definition()),
            ))
        }),
        function("pg_get_indexdef", &[1, 3], Utf8, move |a| {
            let Some(r) = int_of(a.first()).and_then(|oid| s5.keyed_by(oid)) else {
                return Ok(utf8(None));
            };
            let column = int_of(a.get(1)).unwrap_or(0);
            Ok(utf8(match (column, &r.primary_key) {
                (0, _) => r.index_definition(),
                (n, Some(key)) => usize::try_from(n.saturating_sub(1))
                    .ok()
                    .and_then(|i| key.attnums.get(i))
                    .and_then(|attnum| r.attributes.get(usize::try_from(*attnum - 1).ok()?))
                    .map(|a| super::snapshot::quote_ident(&a.name)),
                _ => None,
            }))
        }),
        function("obj_description", &[1, 2], Utf8, move |a| {
            Ok(utf8(
                int_of(a.first())
                    .and_then(|oid| s6.relation(oid))
                    .and_then(|r| r.description.clone()),
            ))
        }),
        function("col_description", &[2], Utf8, move |a| {
            let column = int_of(a.get(1)).and_then(|n| usize::try_from(n.checked_sub(1)?).ok());
            Ok(utf8(
                int_of(a.first())
                    .and_then(|oid| s7.relation(oid))
                    .and_then(|r| r.attributes.get(column?))
                    .and_then(|a| a.description.clone()),
            ))
        }),
    ]
}

fn list_len(v: Option<&ScalarValue>) -> Option<i64> {
    match v? {
        ScalarValue::List(l) if !l.is_null(0) => Some(l.value_length(0) as i64),
        _ => None,
    }
}

/// `information_schema._pg_expandarray`'s rows, `(x, n)`: each element
/// and its position.
fn expanded_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(expanded_fields()),
        true,
    )))
}

fn expanded_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("n", DataType::Int64, true),
    ])
}

fn expand(v: Option<&ScalarValue>) -> Result<ScalarValue> {
    let struct_type = DataType::Struct(expanded_fields());
    let Some(ScalarValue::List(list)) = v else {
        return ScalarValue::try_from(&expanded_type());
    };
    if list.is_null(0) {
        return ScalarValue::try_from(&expanded_type());
    }
    let items = list.value(0);
    let mut rows = Vec::with_capacity(items.len());
    for i in 0..items.len() {
        let x = ScalarValue::try_from_array(&items, i)?.cast_to(&DataType::Int64)?;
        let n = ScalarValue::Int64(Some(i as i64 + 1));
        rows.push(ScalarValue::Struct(Arc::new(
            datafusion::arrow::array::StructArray::try_new(
                expanded_fields(),
                vec![x.to_array()?, n.to_array()?],
                None,
            )?,
        )));
    }
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &rows,
        &struct_type,
    )))
}

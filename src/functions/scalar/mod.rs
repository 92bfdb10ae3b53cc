//! ksqlDB's scalar functions, one file per family.
//!
//! | file | functions |
//! |---|---|
//! | `udf` | the shared row-at-a-time `ScalarUDFImpl` and value helpers |
//! | `string` | LCASE .. INITCAP, regexes, SPLIT, ELT/FIELD, AS_VALUE |
//! | `mask` | MASK, MASK_KEEP_LEFT/RIGHT, MASK_LEFT/RIGHT |
//! | `url` | URL_EXTRACT_*, URL_ENCODE/DECODE_PARAM |
//! | `encoding` | ENCODE, TO/FROM_BYTES, *_FROM_BYTES, CHR, UUID, MD5 |
//! | `math` | ABS .. TRUNC, trigonometry, PI, RANDOM |
//! | `geo` | GEO_DISTANCE |
//! | `datetime` (+ `javatime`) | UNIX_*, *TOSTRING, PARSE_/FORMAT_*, *ADD/*SUB, CONVERT_TZ |
//! | `json` | EXTRACTJSONFIELD, JSON_*, IS_JSON_STRING, TO_JSON_STRING |
//! | `collections` | ARRAY_*, SLICE, GENERATE_SERIES, AS_MAP, MAP_*, ENTRIES |
//! | `access` | `ksql_subscript` (`a[i]`, `m[k]`), `ksql_field` (`s->F`) |
//!
//! DataFusion built-ins kept because they already behave as ksqlDB's:
//! COALESCE, IFNULL (DataFusion's `nvl` alias), NULLIF, GREATEST and LEAST
//! (all skip NULLs the same way). Every other ksqlDB name is registered here
//! and replaces a same-named DataFusion built-in.
//!
//! `SUBSTRING(a, b, c)` is special syntax to sqlparser, and DataFusion plans
//! it through an `ExprPlanner` that calls its own `substr` directly, not
//! through the registry; [`register`] therefore puts a planner in front that
//! plans it with ksqlDB's `substring`.

mod access;
mod collections;
mod datetime;
mod encoding;
mod geo;
mod javatime;
mod json;
mod mask;
mod math;
mod string;
mod udf;
mod url;

pub(crate) use datetime::parse_timestamp_millis;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{Expr, ScalarUDF};
use datafusion::prelude::SessionContext;

/// DataFusion built-ins that already implement ksqlDB's function.
const KEPT_BUILTINS: &[(&str, &str)] = &[
    ("COALESCE", "The first non-NULL argument"),
    ("GREATEST", "The largest non-NULL argument"),
    (
        "IFNULL",
        "The first argument, or the second if the first is NULL",
    ),
    ("LEAST", "The smallest non-NULL argument"),
    ("NULLIF", "NULL if both arguments are equal, else the first"),
];

/// Every scalar UDF of this module.
pub(super) fn udfs() -> Vec<ScalarUDF> {
    let mut all = Vec::new();
    all.extend(string::udfs());
    all.extend(mask::udfs());
    all.extend(url::udfs());
    all.extend(encoding::udfs());
    all.extend(math::udfs());
    all.extend(geo::udfs());
    all.extend(datetime::udfs());
    all.extend(json::udfs());
    all.extend(collections::udfs());
    all.extend(access::udfs());
    all
}

/// `(NAME, description)` of every ksqlDB scalar function, unsorted.
pub(super) fn catalog() -> Vec<(&'static str, &'static str)> {
    [
        string::CATALOG,
        mask::CATALOG,
        url::CATALOG,
        encoding::CATALOG,
        math::CATALOG,
        geo::CATALOG,
        datetime::CATALOG,
        json::CATALOG,
        collections::CATALOG,
        access::CATALOG,
        KEPT_BUILTINS,
    ]
    .concat()
}

/// Register the scalar functions and the SUBSTRING planner on `ctx`.
pub(super) fn register(ctx: &SessionContext) -> Result<()> {
    let udfs = udfs();
    if let Some(substring) = udfs.iter().find(|u| u.name() == "substring") {
        install_substring_planner(ctx, Arc::new(substring.clone()));
    }
    for udf in udfs {
        ctx.register_udf(udf);
    }
    Ok(())
}

/// Plans `SUBSTRING(x FROM a FOR b)` / `SUBSTRING(x, a, b)` with ksqlDB's function.
#[derive(Debug)]
struct KsqlSubstringPlanner {
    substring: Arc<ScalarUDF>,
}

impl ExprPlanner for KsqlSubstringPlanner {
    fn plan_substring(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::clone(&self.substring), args),
        )))
    }
}

fn install_substring_planner(ctx: &SessionContext, substring: Arc<ScalarUDF>) {
    let state_ref = ctx.state_ref();
    let mut state = state_ref.write();
    let mut planners: Vec<Arc<dyn ExprPlanner>> =
        vec![Arc::new(KsqlSubstringPlanner { substring })];
    planners.extend(
        state
            .expr_planners()
            .iter()
            .filter(|p| !format!("{p:?}").starts_with("KsqlSubstringPlanner"))
            .cloned(),
    );
    *state = SessionStateBuilder::new_from_existing(state.clone())
        .with_expr_planners(planners)
        .build();
}

#[cfg(test)]
pub(super) mod test_util {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::common::Result;
    use datafusion::prelude::SessionContext;

    /// Run `sql` on a context with the ksqlDB scalar functions.
    pub(crate) async fn q(sql: &str) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let ctx = SessionContext::new();
        super::register(&ctx)?;
        ctx.sql(sql).await?.collect().await
    }

    /// Run `sql` and render the result: columns joined by `|`, rows by newlines.
    pub(crate) async fn q1(sql: &str) -> String {
        let batches = match q(sql).await {
            Ok(b) => b,
            Err(e) => return format!("ERROR: {e}"),
        };
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &batches {
            let fmts: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<std::result::Result<_, _>>()
                .unwrap_or_default();
            for r in 0..b.num_rows() {
                let cells: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
                rows.push(cells.join("|"));
            }
        }
        rows.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::execution::FunctionRegistry;

    #[test]
    fn catalog_matches_registrations() {
        let ctx = SessionContext::new();
        register(&ctx).unwrap();
        let mut names: Vec<&str> = catalog().iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate catalog entries");
        for n in &names {
            assert!(
                ctx.udf(&n.to_lowercase()).is_ok(),
                "{n} is in the catalog but not registered"
            );
        }
        for u in udfs() {
            let listed = names.contains(&u.name().to_uppercase().as_str());
            assert!(
                listed || u.name().starts_with("ksql_"),
                "{} is not in the catalog",
                u.name()
            );
        }
    }

    #[tokio::test]
    async fn kept_builtins_behave_like_ksqldb() {
        use test_util::q1;
        assert_eq!(q1("SELECT coalesce(NULL, 1, 2), ifnull(NULL, 'x'), nullif(1, 1), greatest(1, NULL, 3), least(NULL, 2, 1)").await, "1|x|NULL|3|1");
        assert_eq!(
            q1("SELECT SUBSTRING('some string' FROM 0 FOR 2), SUBSTRING('abc', -2)").await,
            "so|bc"
        );
    }

    /// Sample values of each coerced argument type: NULLs, empties, extremes.
    fn pool(t: &DataType) -> Option<Vec<ScalarValue>> {
        use datafusion::arrow::datatypes::TimeUnit;
        let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));
        let mut v = match t {
            DataType::Utf8 => vec![
                s(""),
                s("a"),
                s("é😀 X1"),
                s("-1"),
                s("$.a[0]"),
                s("yyyy-MM-dd'T'HH:mm:ss.SSSX"),
                s(r#"{"a":[1,{"b":null}]}"#),
                s("\\u0041"),
                s("%zz+"),
                s("http://u@h:1/p?q=1&r#f"),
                s("(("),
                s("KM"),
                s("DESC"),
                s("MILLISECONDS"),
                s("America/New_York"),
                s("hex"),
            ],
            DataType::Int64 => [0, -1, 1, 3, i64::MIN, i64::MAX, 1 << 40]
                .iter()
                .map(|x| ScalarValue::Int64(Some(*x)))
                .collect(),
            DataType::Int32 => [0, -1, 7, i32::MIN, i32::MAX]
                .iter()
                .map(|x| ScalarValue::Int32(Some(*x)))
                .collect(),
            DataType::Float64 => [
                0.0,
                -0.0,
                1.5,
                -91.0,
                f64::NAN,
                f64::INFINITY,
                1e308,
                -1e-300,
            ]
            .iter()
            .map(|x| ScalarValue::Float64(Some(*x)))
            .collect(),
            DataType::Boolean => vec![
                ScalarValue::Boolean(Some(true)),
                ScalarValue::Boolean(Some(false)),
            ],
            DataType::Binary => vec![
                ScalarValue::Binary(Some(vec![])),
                ScalarValue::Binary(Some(vec![0xff; 4])),
                ScalarValue::Binary(Some((0..16).collect())),
            ],
            DataType::Timestamp(TimeUnit::Millisecond, None) => [0, i64::MIN, i64::MAX, -1]
                .iter()
                .map(|x| ScalarValue::TimestampMillisecond(Some(*x), None))
                .collect(),
            DataType::Date32 => [0, i32::MIN, i32::MAX]
                .iter()
                .map(|x| ScalarValue::Date32(Some(*x)))
                .collect(),
            DataType::Time32(TimeUnit::Millisecond) => [0, -1, 86_400_000, i32::MAX]
                .iter()
                .map(|x| ScalarValue::Time32Millisecond(Some(*x)))
                .collect(),
            DataType::Decimal128(p, sc) => vec![
                ScalarValue::Decimal128(Some(-12345), *p, *sc),
                ScalarValue::Decimal128(Some(10i128.pow(u32::from(*p)) - 1), *p, *sc),
            ],
            DataType::List(f) => {
                let items = pool(f.data_type())?;
                vec![
                    udf::make_list(vec![], f.data_type()).ok()?,
                    udf::make_list(items, f.data_type()).ok()?,
                ]
            }
            DataType::Map(_, _) => {
                let entries = vec![
                    (s("k"), ScalarValue::Int64(Some(1))),
                    (s("a"), ScalarValue::Int64(None)),
                ];
                vec![
                    udf::make_map(vec![], t).ok()?,
                    udf::make_map(entries, t).ok()?,
                ]
            }
            DataType::Null => vec![],
            _ => return None,
        };
        v.push(ScalarValue::try_new_null(t).ok()?);
        Some(v)
    }

    /// Every function, every accepted combination of argument types (up to
    /// 4 arguments), every combination of sample values: no panic, and the
    /// output has the declared type and one value per row.
    #[test]
    fn no_panics_on_any_input() {
        use datafusion::arrow::datatypes::{Field, TimeUnit};
        use datafusion::config::ConfigOptions;
        use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs};
        use udf::{list_type, map_type};
        let candidates = [
            DataType::Utf8,
            DataType::Int64,
            DataType::Int32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Binary,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Date32,
            DataType::Time32(TimeUnit::Millisecond),
            DataType::Decimal128(10, 2),
            DataType::Null,
            list_type(DataType::Int64),
            list_type(DataType::Utf8),
            map_type(DataType::Utf8, DataType::Int64),
        ];
        let config = Arc::new(ConfigOptions::default());
        let mut checked = 0;
        for u in udfs()
            .into_iter()
            .filter(|u| !u.name().starts_with("ksql_"))
        {
            let mut combos: Vec<Vec<DataType>> = vec![vec![]];
            for arity in 0..=4 {
                if arity > 0 {
                    // The fourth argument only from a few types, to keep this fast.
                    let pool_types = if arity < 4 {
                        &candidates[..]
                    } else {
                        &candidates[..5]
                    };
                    combos = combos
                        .iter()
                        .filter(|c| c.len() == arity - 1)
                        .flat_map(|c| {
                            pool_types
                                .iter()
                                .map(move |t| [c.clone(), vec![t.clone()]].concat())
                        })
                        .collect();
                }
                for types in &combos {
                    // RowUdf::coerce, not coerce_types: no DataFusionError (and
                    // its backtrace) per rejected combination.
                    let row_udf = u.inner().downcast_ref::<udf::RowUdf>();
                    let Some(Ok(coerced)) = row_udf.map(|r| r.coerce(types)) else {
                        continue;
                    };
                    if u.signature().volatility != datafusion::logical_expr::Volatility::Volatile
                        && arity == 0
                        && u.name() != "pi"
                    {
                        continue;
                    }
                    let Some(pools) = coerced.iter().map(pool).collect::<Option<Vec<_>>>() else {
                        continue;
                    };
                    let rows: usize = pools
                        .iter()
                        .map(|p| p.len().max(1))
                        .product::<usize>()
                        .clamp(1, 400);
                    let args: Vec<ColumnarValue> = pools
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let stride: usize = pools[..i].iter().map(|p| p.len().max(1)).product();
                            let vals: Vec<ScalarValue> = (0..rows)
                                .map(|r| {
                                    p.get((r / stride) % p.len().max(1))
                                        .cloned()
                                        .unwrap_or(ScalarValue::Null)
                                })
                                .collect();
                            ColumnarValue::Array(ScalarValue::iter_to_array(vals).unwrap())
                        })
                        .collect();
                    let arg_fields: Vec<_> = coerced
                        .iter()
                        .map(|t| Arc::new(Field::new("a", t.clone(), true)))
                        .collect();
                    let scalars = vec![None; arg_fields.len()];
                    let Ok(ret) = u.return_field_from_args(ReturnFieldArgs {
                        arg_fields: &arg_fields,
                        scalar_arguments: &scalars,
                    }) else {
                        continue; // a planning error, e.g. ARRAY_MAX(NULL)
                    };
                    let out = u
                        .invoke_with_args(ScalarFunctionArgs {
                            args,
                            arg_fields: arg_fields.clone(),
                            number_rows: rows,
                            return_field: ret.clone(),
                            config_options: Arc::clone(&config),
                        })
                        .unwrap_or_else(|e| panic!("{}({coerced:?}): {e}", u.name()));
                    let arr = out.into_array(rows).unwrap();
                    assert_eq!(arr.len(), rows, "{}", u.name());
                    assert_eq!(
                        arr.data_type(),
                        ret.data_type(),
                        "{}({coerced:?})",
                        u.name()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 200, "only {checked} signatures checked");
    }
}

//! ksqlDB's function library as DataFusion UDFs.
//!
//! - `scalar/`: the scalar functions, one file per family (see its doc).
//! - `aggregate/`: the aggregate functions (its own module, its own doc).
//!
//! Naming: a function is registered under its ksqlDB name in lower case (the
//! planner lower-cases function names), e.g. `timestamptostring`. Where
//! DataFusion has a built-in of the same name with different semantics
//! (SUBSTRING, ROUND, TRIM, SPLIT, ...), the ksqlDB version replaces it;
//! where the built-in already matches (COALESCE, IFNULL, NULLIF, GREATEST,
//! LEAST) it stays. Two internal functions carry operators the planner
//! rewrites: `ksql_subscript` (`a[i]`, `m['k']`) and `ksql_field` (`s->F`).
//!
//! ksqlDB types map to Arrow as `catalog::types` says (INT `Int32`, BIGINT
//! `Int64`, TIMESTAMP `Timestamp(ms)`, DATE `Date32`, TIME `Time32(ms)`,
//! ARRAY `List`, MAP `Map`, STRUCT `Struct`) and every function returns
//! exactly those types.
//!
//! Runtime behaviour follows ksqlDB: NULL in gives NULL out unless ksqlDB's
//! method says otherwise, and bad data (an unparseable date, invalid JSON) is
//! NULL for that row instead of a failed query. Wrong argument *types* are
//! planning errors that name the function.

pub(crate) mod aggregate;
pub(crate) mod limits;
mod scalar;

pub use limits::ValueLimits;

pub(crate) use scalar::parse_timestamp_millis;

use datafusion::prelude::SessionContext;

/// Table functions, listed for SHOW FUNCTIONS (planned by the planner).
/// ksqlDB's lambda functions, planned onto DataFusion's higher-order
/// array functions (`x => body` with one parameter).
const LAMBDA_FUNCTIONS: &[(&str, &str)] = &[
    (
        "FILTER",
        "The elements of an array a lambda accepts: FILTER(arr, x => x > 0)",
    ),
    (
        "TRANSFORM",
        "Apply a lambda to each element of an array: TRANSFORM(arr, x => x * 2)",
    ),
];

const TABLE_FUNCTIONS: &[(&str, &str)] = &[("EXPLODE", "One row per element of an array")];

/// Register every ksqlDB scalar function (and, via aggregate::register,
/// the aggregates) on the context, the functions that build values
/// bounded by `limits` ([`limits`]).
pub(crate) fn register_all(
    ctx: &SessionContext,
    limits: ValueLimits,
) -> datafusion::error::Result<()> {
    scalar::register(ctx)?;
    aggregate::register(ctx)?;
    limits::bound(ctx, limits);
    Ok(())
}

/// Names and one-line descriptions of all ksqlDB functions (scalar + aggregate + table), for SHOW FUNCTIONS; sorted by name; each entry (name_upper, kind: "SCALAR"|"AGGREGATE"|"TABLE", description).
pub(crate) fn catalog() -> Vec<(&'static str, &'static str, &'static str)> {
    // The aggregate module's entries first: on a duplicate name they win.
    let mut all = aggregate::catalog();
    all.extend(scalar::catalog().into_iter().map(|(n, d)| (n, "SCALAR", d)));
    all.extend(TABLE_FUNCTIONS.iter().map(|(n, d)| (*n, "TABLE", *d)));
    all.extend(LAMBDA_FUNCTIONS.iter().map(|(n, d)| (*n, "SCALAR", *d)));
    all.sort_by(|a, b| a.0.cmp(b.0));
    all.dedup_by(|a, b| a.0 == b.0);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::FunctionRegistry;

    #[test]
    fn catalog_is_sorted_and_complete() {
        let c = catalog();
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0));
        for name in [
            "SUBSTRING",
            "GEO_DISTANCE",
            "TIMESTAMPTOSTRING",
            "EXTRACTJSONFIELD",
            "MASK",
            "EXPLODE",
        ] {
            assert!(c.iter().any(|e| e.0 == name), "{name} missing");
        }
        assert!(c
            .iter()
            .all(|e| ["SCALAR", "AGGREGATE", "TABLE"].contains(&e.1)));
    }

    #[test]
    fn register_all_registers() {
        let ctx = SessionContext::new();
        register_all(&ctx, ValueLimits::default()).unwrap();
        assert!(ctx.udf("ksql_subscript").is_ok());
        assert!(ctx.udf("len").is_ok());
    }
}

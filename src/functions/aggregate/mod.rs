//! ksqlDB's aggregate functions as DataFusion `AggregateUDF`s.
//!
//! Registered under lower-case names that replace DataFusion's built-ins of
//! the same name (`count`, `sum`, `avg`, `min`, `max`, `stddev_samp`, ...),
//! because ksqlDB's result types and null handling differ (e.g. `SUM(INT)` is
//! INT and 0 on no rows, `AVG` of nothing is 0.0).
//!
//! How the streaming runtime drives them (every function is written for this):
//! - `update_batch` gets the argument columns (any number of rows, processed
//!   in order; constant arguments such as TOPK's `k` arrive as columns too);
//!   `retract_batch` gets the OLD values of a changed or deleted table row, for
//!   the functions where [`supports_undo`] is true;
//! - `evaluate` after every update, without changing the state;
//! - `state()` is the whole state; `merge_batch` on a fresh accumulator
//!   restores it exactly, and `merge_batch` of several states (rows) combines
//!   them (session-window merges).
//!
//! Argument forms the planner must produce:
//! - `COUNT(*)` and `COUNT()` as `COUNT(1)` (any non-null constant);
//! - TOPK's `k`, `*_BY_OFFSET`'s `n` and `ignoreNulls`: constant expressions
//!   (literals, possibly cast); they are read when the accumulator is built.
//!
//! One file per family; each starts with the semantics and state layout.

mod attr;
mod avg;
mod by_offset;
mod collect;
mod common;
mod correlation;
mod count;
mod histogram;
mod min_max;
mod stddev;
mod sum;
mod topk;

/// The functions the runtime's aggregations compute inline.
pub(crate) use count::Count;
pub(crate) use sum::Sum;

use datafusion::error::Result;
use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::SessionContext;

/// Settings that change how some aggregates behave (ksqlDB properties).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AggregateOptions {
    /// `ksql.functions.collect_list.limit`: at most this many values in a
    /// COLLECT_LIST result; `None` (ksqlDB's default) is unlimited.
    pub(crate) collect_list_limit: Option<usize>,
    /// `ksql.functions.collect_set.limit`, likewise for COLLECT_SET.
    pub(crate) collect_set_limit: Option<usize>,
}

/// Every aggregate function, built with `options`.
pub(crate) fn udafs(options: &AggregateOptions) -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(attr::Attr::new()),
        AggregateUDF::from(avg::Avg::new()),
        AggregateUDF::from(collect::Collect::list(options.collect_list_limit)),
        AggregateUDF::from(collect::Collect::set(options.collect_set_limit)),
        AggregateUDF::from(correlation::Correlation::new()),
        AggregateUDF::from(count::Count::new()),
        AggregateUDF::from(count::CountDistinct::new()),
        AggregateUDF::from(by_offset::ByOffset::earliest()),
        AggregateUDF::from(histogram::Histogram::new()),
        AggregateUDF::from(by_offset::ByOffset::latest()),
        AggregateUDF::from(min_max::MinMax::max()),
        AggregateUDF::from(min_max::MinMax::min()),
        AggregateUDF::from(stddev::Stddev::samp()),
        AggregateUDF::from(stddev::Stddev::sample()),
        AggregateUDF::from(sum::Sum::new()),
        AggregateUDF::from(sum::SumList::new()),
        AggregateUDF::from(topk::TopK::plain()),
        AggregateUDF::from(topk::TopK::topk_distinct()),
    ]
}

/// Registers every aggregate with default options, replacing DataFusion's
/// functions of the same names.
pub(crate) fn register(ctx: &SessionContext) -> Result<()> {
    register_with_options(ctx, &AggregateOptions::default())
}

/// Registers every aggregate built with `options` (e.g. a query's
/// `ksql.functions.collect_list.limit`).
pub(crate) fn register_with_options(
    ctx: &SessionContext,
    options: &AggregateOptions,
) -> Result<()> {
    for udf in udafs(options) {
        ctx.register_udaf(udf);
    }
    Ok(())
}

/// `(NAME_UPPER, "AGGREGATE", one-line description)`, sorted by name.
pub(crate) fn catalog() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out: Vec<_> = FUNCTIONS
        .iter()
        .map(|f| (f.upper, "AGGREGATE", f.description))
        .collect();
    out.sort_by_key(|(name, _, _)| *name);
    out
}

/// True if the named (lower-case) aggregate can run on a TABLE source, i.e.
/// supports undo (retract). Mirrors ksqlDB's `TableUdaf` implementations.
pub(crate) fn supports_undo(name: &str) -> bool {
    FUNCTIONS
        .iter()
        .any(|f| f.undo && f.upper.eq_ignore_ascii_case(name))
}

struct FunctionInfo {
    upper: &'static str,
    undo: bool,
    description: &'static str,
}

const FUNCTIONS: &[FunctionInfo] = &[
    FunctionInfo {
        upper: "ATTR",
        undo: true,
        description: "Returns the single value of a column in the group, or null if there is more than one.",
    },
    FunctionInfo {
        upper: "AVG",
        undo: true,
        description: "Returns the average of the non-null values of a numeric column, as DOUBLE.",
    },
    FunctionInfo {
        upper: "COLLECT_LIST",
        undo: true,
        description: "Returns an array of all the values of a column, in arrival order.",
    },
    FunctionInfo {
        upper: "COLLECT_SET",
        undo: false,
        description: "Returns an array of the distinct values of a column, in arrival order.",
    },
    FunctionInfo {
        upper: "CORRELATION",
        undo: true,
        description: "Returns the Pearson correlation coefficient of two numeric columns.",
    },
    FunctionInfo {
        upper: "COUNT",
        undo: true,
        description: "Counts the rows (COUNT(*)) or the non-null values of a column.",
    },
    FunctionInfo {
        upper: "COUNT_DISTINCT",
        undo: false,
        description: "Returns the number of distinct non-null values of a column.",
    },
    FunctionInfo {
        upper: "EARLIEST_BY_OFFSET",
        undo: false,
        description: "Returns the earliest value (or earliest N values) of a column by arrival order.",
    },
    FunctionInfo {
        upper: "HISTOGRAM",
        undo: true,
        description: "Returns a map from each distinct string to the number of times it occurs.",
    },
    FunctionInfo {
        upper: "LATEST_BY_OFFSET",
        undo: false,
        description: "Returns the latest value (or latest N values) of a column by arrival order.",
    },
    FunctionInfo {
        upper: "MAX",
        undo: false,
        description: "Returns the maximum non-null value of a column.",
    },
    FunctionInfo {
        upper: "MIN",
        undo: false,
        description: "Returns the minimum non-null value of a column.",
    },
    FunctionInfo {
        upper: "STDDEV_SAMP",
        undo: true,
        description: "Returns the sample variance of a numeric column (the square of the standard deviation, as in ksqlDB).",
    },
    FunctionInfo {
        upper: "STDDEV_SAMPLE",
        undo: true,
        description: "Returns the sample standard deviation of a numeric column.",
    },
    FunctionInfo {
        upper: "SUM",
        undo: true,
        description: "Sums the non-null values of a numeric column.",
    },
    FunctionInfo {
        upper: "SUM_LIST",
        undo: true,
        description: "Sums the elements of the arrays in a column.",
    },
    FunctionInfo {
        upper: "TOPK",
        undo: false,
        description: "Returns the K largest values of a column, optionally with other columns of their rows.",
    },
    FunctionInfo {
        upper: "TOPKDISTINCT",
        undo: false,
        description: "Returns the K largest distinct values of a column.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_matches_registered_functions() {
        let mut names: Vec<String> = udafs(&AggregateOptions::default())
            .iter()
            .map(|u| u.name().to_uppercase())
            .collect();
        names.sort();
        let listed: Vec<String> = catalog().iter().map(|(n, _, _)| n.to_string()).collect();
        assert_eq!(names, listed);
        assert!(catalog().iter().all(|(_, kind, _)| *kind == "AGGREGATE"));
    }

    #[test]
    fn undo_matches_accumulators() {
        assert!(supports_undo("count"));
        assert!(supports_undo("sum"));
        assert!(supports_undo("collect_list"));
        assert!(supports_undo("histogram"));
        assert!(!supports_undo("latest_by_offset"));
        assert!(!supports_undo("min"));
        assert!(!supports_undo("max"));
        assert!(!supports_undo("collect_set"));
        assert!(!supports_undo("topk"));
        assert!(!supports_undo("no_such_function"));
    }

    #[test]
    fn supports_undo_matches_retract_support() {
        use super::common::testing::{Arg, Harness};
        use datafusion::arrow::datatypes::DataType;
        use datafusion::common::ScalarValue;
        for udf in udafs(&AggregateOptions::default()) {
            let name = udf.name().to_string();
            let args = match name.as_str() {
                "histogram" => vec![Arg::Col(DataType::Utf8)],
                "sum_list" => vec![Arg::Col(common::list_type(DataType::Int32))],
                "correlation" => vec![Arg::Col(DataType::Int32), Arg::Col(DataType::Int32)],
                "topk" | "topkdistinct" => {
                    vec![
                        Arg::Col(DataType::Int32),
                        Arg::Lit(ScalarValue::Int64(Some(2))),
                    ]
                }
                _ => vec![Arg::Col(DataType::Int32)],
            };
            let acc = Harness::new(udf, args).acc();
            assert_eq!(acc.supports_retract_batch(), supports_undo(&name), "{name}");
        }
    }

    #[test]
    fn register_replaces_builtins() {
        let ctx = SessionContext::new();
        register(&ctx).unwrap();
        let state = ctx.state();
        let sum = state.aggregate_functions().get("sum").unwrap();
        assert_eq!(
            sum.return_type(&[datafusion::arrow::datatypes::DataType::Int32])
                .unwrap(),
            datafusion::arrow::datatypes::DataType::Int32
        );
        let count = state.aggregate_functions().get("count").unwrap();
        assert_eq!(
            count
                .return_type(&[datafusion::arrow::datatypes::DataType::Utf8])
                .unwrap(),
            datafusion::arrow::datatypes::DataType::Int64
        );
    }
}

//! Expressions printed the way ksqlDB prints them in its messages:
//! upper-case names, binary operations in parentheses, `a[i]` and `s->F`
//! for subscripts and field access, ksqlDB's literals.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};

/// `SUBSTRING(SOURCE, 0, 1)`, `(F1 * SUM(F2))`, `COL1['foo']`.
pub(crate) fn ksql(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(is) => is
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join("."),
        Expr::Nested(inner) => ksql(inner),
        Expr::BinaryOp { left, op, right } => format!("({} {op} {})", ksql(left), ksql(right)),
        Expr::UnaryOp { op, expr } => format!("{op}{}", ksql(expr)),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => format!("'{s}'"),
            Value::Null => "null".to_string(),
            other => other.to_string(),
        },
        // The planner's INT literals.
        Expr::Cast { expr, .. } if matches!(expr.as_ref(), Expr::Value(_)) => ksql(expr),
        Expr::IsNull(inner) => format!("({} IS NULL)", ksql(inner)),
        Expr::Cast {
            expr, data_type, ..
        } => format!("CAST({} AS {})", ksql(expr), type_name(data_type)),
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![ksql(expr)];
            args.extend(substring_from.iter().map(|e| ksql(e)));
            args.extend(substring_for.iter().map(|e| ksql(e)));
            format!("SUBSTRING({})", args.join(", "))
        }
        Expr::IsNotNull(inner) => format!("({} IS NOT NULL)", ksql(inner)),
        Expr::Function(f) => {
            let name = f.name.to_string();
            let args: Vec<&Expr> = match &f.args {
                FunctionArguments::List(l) => l
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            match (name.as_str(), args.as_slice()) {
                ("ksql_subscript", [a, i]) => format!("{}[{}]", ksql(a), ksql(i)),
                ("ksql_field", [s, Expr::Value(v)]) => match &v.value {
                    Value::SingleQuotedString(f) => format!("{}->{f}", ksql(s)),
                    other => format!("{}->{other}", ksql(s)),
                },
                // A comparison wrapped for ksqlDB's NULL semantics.
                ("coalesce", [cmp @ Expr::BinaryOp { .. }, Expr::Value(v)])
                    if matches!(v.value, Value::Boolean(false)) =>
                {
                    ksql(cmp)
                }
                // COUNT(*) and COUNT() count rows.
                ("count", [Expr::Cast { .. }]) => "COUNT()".to_string(),
                _ => format!(
                    "{}({})",
                    name.to_uppercase(),
                    args.iter().map(|a| ksql(a)).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        other => other.to_string(),
    }
}

/// A type as ksqlDB names it (`STRING`, `INTEGER`, ...).
fn type_name(t: &datafusion::sql::sqlparser::ast::DataType) -> String {
    use datafusion::sql::sqlparser::ast::DataType as T;
    match t {
        T::Varchar(_) | T::String(_) | T::Text | T::CharVarying(_) => "STRING".into(),
        T::Int(_) | T::Integer(_) => "INTEGER".into(),
        T::BigInt(_) => "BIGINT".into(),
        T::Double(_) | T::DoublePrecision => "DOUBLE".into(),
        T::Boolean | T::Bool => "BOOLEAN".into(),
        other => other.to_string().to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::rewrite::parse_rewritten;

    fn show(s: &str) -> String {
        let e = parse_rewritten(s);
        ksql(&e)
    }

    #[test]
    fn prints_like_ksqldb() {
        assert_eq!(show("substring(source, 0, 1)"), "SUBSTRING(SOURCE, 0, 1)");
        assert_eq!(show("f1 * sum(f2)"), "(F1 * SUM(F2))");
        assert_eq!(show("as_value(col1)"), "AS_VALUE(COL1)");
        assert_eq!(show("col1['foo']"), "COL1['foo']");
        assert_eq!(show("s->f + 1"), "(S->F + 1)");
        assert_eq!(show("a = b"), "(A = B)");
        assert_eq!(show("cast(a as string)"), "CAST(A AS STRING)");
    }
}

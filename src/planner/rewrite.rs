//! Rewrite sqlparser expressions from ksqlDB semantics to what DataFusion's
//! `SqlToRel` plans.
//!
//! - Unquoted identifiers are upper-cased (ksqlDB), all identifiers become
//!   quoted so DataFusion keeps their case.
//! - `s->f` becomes `ksql_field(s, 'F')`; `a[i]` becomes `ksql_subscript(a, i)`
//!   (1-based, negative from the end, maps by key).
//! - Function names are lower-cased (UDFs are registered lower-case);
//!   `COUNT(*)` counts rows as `count(1)`; `EXPLODE` is DataFusion's `unnest`.
//! - Integer literals that fit 32 bits are INT, as in ksqlDB.
//! - ksqlDB type names in `CAST` (STRING, BYTES) are mapped.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, BinaryOperator, CastKind, DataType as SqlDataType, Expr,
    Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Subscript, Value, ValueWithSpan,
};

use crate::error::{Error, Result};

/// Rewrite an expression in place.
pub(crate) fn rewrite(expr: &mut Expr) -> Result<()> {
    let mut error = None;
    let _ = visit_expressions_mut(expr, |e| {
        if let Err(err) = rewrite_one(e) {
            error = Some(err);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn quote(ident: &mut Ident) {
    if ident.quote_style.is_none() {
        ident.value = ident.value.to_uppercase();
    }
    ident.quote_style = Some('"');
}

/// A function call expression.
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn string_lit(s: &str) -> Expr {
    Expr::Value(ValueWithSpan::from(Value::SingleQuotedString(
        s.to_string(),
    )))
}

fn rewrite_one(e: &mut Expr) -> Result<()> {
    match e {
        Expr::Identifier(ident) => quote(ident),
        Expr::CompoundIdentifier(idents) => idents.iter_mut().for_each(quote),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Arrow,
            right,
        } => {
            let field = match right.as_ref() {
                Expr::Identifier(i) => i.value.clone(),
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                other => {
                    return Err(Error::syntax(
                        format!("Expected a field name after '->', found '{other}'"),
                        None,
                    ))
                }
            };
            let inner =
                std::mem::replace(left.as_mut(), Expr::Value(ValueWithSpan::from(Value::Null)));
            *e = call("ksql_field", vec![inner, string_lit(&field)]);
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            let mut acc =
                std::mem::replace(root.as_mut(), Expr::Value(ValueWithSpan::from(Value::Null)));
            for a in access_chain.drain(..) {
                acc = match a {
                    AccessExpr::Subscript(Subscript::Index { index }) => {
                        call("ksql_subscript", vec![acc, index])
                    }
                    AccessExpr::Subscript(Subscript::Slice { .. }) => {
                        return Err(Error::Unsupported("Array slices ([a:b])".into()))
                    }
                    AccessExpr::Dot(Expr::Identifier(i)) => {
                        call("ksql_field", vec![acc, string_lit(&i.value)])
                    }
                    AccessExpr::Dot(other) => {
                        return Err(Error::syntax(format!("Unexpected '.{other}'"), None));
                    }
                };
            }
            *e = acc;
        }
        Expr::Function(f) => {
            for part in f.name.0.iter_mut() {
                if let ObjectNamePart::Identifier(i) = part {
                    i.value = i.value.to_lowercase();
                    i.quote_style = None;
                }
            }
            let name = f.name.to_string();
            if let FunctionArguments::List(list) = &mut f.args {
                if name == "count" && list.args.len() == 1 {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Wildcard) = &list.args[0] {
                        list.args[0] = FunctionArg::Unnamed(FunctionArgExpr::Expr(int_lit(1)));
                    }
                }
                // ksqlDB lambdas: `x => body` (sqlparser reads it as a named
                // argument) for TRANSFORM and FILTER over arrays, planned as
                // DataFusion's higher-order array functions.
                let lambda_target = match name.as_str() {
                    "transform" => Some("array_transform"),
                    "filter" => Some("array_filter"),
                    _ => None,
                };
                for a in list.args.iter_mut() {
                    match a {
                        FunctionArg::Named { name: param, arg: FunctionArgExpr::Expr(body), operator }
                            if lambda_target.is_some()
                                && *operator == datafusion::sql::sqlparser::ast::FunctionArgOperator::RightArrow =>
                        {
                            let mut param = param.clone();
                            quote(&mut param);
                            *a = FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Lambda(
                                datafusion::sql::sqlparser::ast::LambdaFunction {
                                    params: datafusion::sql::sqlparser::ast::OneOrManyWithParens::One(
                                        datafusion::sql::sqlparser::ast::LambdaFunctionParameter {
                                            name: param,
                                            data_type: None,
                                        },
                                    ),
                                    body: Box::new(body.clone()),
                                    syntax: datafusion::sql::sqlparser::ast::LambdaSyntax::Arrow,
                                },
                            )));
                        }
                        FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. } => {
                            return Err(Error::Unsupported(format!(
                                "Named arguments and lambdas with several parameters (in {})",
                                name.to_uppercase()
                            )));
                        }
                        _ => {}
                    }
                }
                if let Some(target) = lambda_target {
                    if list.args.iter().any(|a| {
                        matches!(
                            a,
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Lambda(_)))
                        )
                    }) {
                        f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(target))]);
                    }
                }
            }
            if (name == "coalesce" || name == "ifnull")
                && matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty())
            {
                return Err(Error::semantic(format!(
                    "Function '{}' does not accept parameters ()",
                    name.to_uppercase()
                )));
            }
            if name == "ifnull" {
                // DataFusion's IFNULL coerces nested types to strings; COALESCE
                // of two arguments is ksqlDB's IFNULL.
                f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("coalesce"))]);
            }
            if name == "count" {
                if let FunctionArguments::List(list) = &mut f.args {
                    if list.args.is_empty() {
                        list.args
                            .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(int_lit(1))));
                    }
                } else if matches!(f.args, FunctionArguments::None) {
                    f.args = FunctionArguments::List(FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(int_lit(1)))],
                        clauses: vec![],
                    });
                }
            }
            if name == "explode" {
                f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("unnest"))]);
            }
            if name == "struct" || name == "map" {
                *e = constructor(&name, f)?;
            }
        }
        Expr::Value(v) => {
            if let Value::Number(n, _) = &v.value {
                if !n.contains(['.', 'e', 'E']) {
                    if let Ok(i) = n.parse::<i32>() {
                        *e = int_lit(i);
                    }
                }
            }
        }
        Expr::Cast { data_type, .. } => map_type(data_type)?,
        Expr::BinaryOp { left, op, right } if is_comparison(op) => {
            // ksqlDB compares like Java: a comparison involving NULL is
            // false, never NULL; comparing with a NULL literal is an error.
            if is_null(left) || is_null(right) {
                return Err(Error::semantic(format!(
                    "Comparison with NULL not supported: {} {op} {}",
                    left.to_string().to_uppercase(),
                    right.to_string().to_uppercase()
                )));
            }
            let cmp = e.clone();
            *e = call(
                "coalesce",
                vec![cmp, Expr::Value(ValueWithSpan::from(Value::Boolean(false)))],
            );
        }
        _ => {}
    }
    Ok(())
}

/// `STRUCT(a := x, ...)` → `named_struct('A', x, ...)`;
/// `MAP(k := v, ...)` → `map([k, ...], [v, ...])`.
fn constructor(name: &str, f: &Function) -> Result<Expr> {
    let mut pairs = Vec::new();
    if let FunctionArguments::List(list) = &f.args {
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Assignment,
                    right,
                })) => pairs.push((left.as_ref().clone(), right.as_ref().clone())),
                other => {
                    return Err(Error::syntax(
                        format!(
                            "{}(...) takes `name := value` pairs, found `{other}`",
                            name.to_uppercase()
                        ),
                        None,
                    ))
                }
            }
        }
    }
    if name == "struct" {
        let mut args = Vec::new();
        for (k, v) in pairs {
            let field = match k {
                Expr::Identifier(i) => i.value,
                other => {
                    return Err(Error::syntax(
                        format!("STRUCT field names must be identifiers, found `{other}`"),
                        None,
                    ))
                }
            };
            args.push(string_lit(&field));
            args.push(v);
        }
        if args.is_empty() {
            return Err(Error::Unsupported("An empty STRUCT() constructor".into()));
        }
        return Ok(call("named_struct", args));
    }
    let (keys, values): (Vec<Expr>, Vec<Expr>) = pairs.into_iter().unzip();
    Ok(call("map", vec![array(keys), array(values)]))
}

fn array(items: Vec<Expr>) -> Expr {
    Expr::Array(datafusion::sql::sqlparser::ast::Array {
        elem: items,
        named: false,
    })
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::Null))
}

/// An INT literal: `CAST(n AS INT)`.
fn int_lit(i: i32) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::Value(ValueWithSpan::from(Value::Number(
            i.to_string(),
            false,
        )))),
        data_type: SqlDataType::Int(None),
        array: false,
        format: None,
    }
}

fn map_type(t: &mut SqlDataType) -> Result<()> {
    use datafusion::sql::sqlparser::ast::ExactNumberInfo;
    match t {
        SqlDataType::Custom(name, _) => {
            let n = name.to_string().to_uppercase();
            if n == "STRING" {
                *t = SqlDataType::Varchar(None);
            } else if n == "BYTES" {
                *t = SqlDataType::Bytea;
            }
        }
        SqlDataType::String(_) | SqlDataType::Text => *t = SqlDataType::Varchar(None),
        SqlDataType::Bytes(_) => *t = SqlDataType::Bytea,
        SqlDataType::Array(datafusion::sql::sqlparser::ast::ArrayElemTypeDef::AngleBracket(
            inner,
        )) => map_type(inner)?,
        // DataFusion takes the precision modulo 256 (257 would be 1):
        // ksqlDB's bounds are checked here, as for a column's type.
        SqlDataType::Decimal(info)
        | SqlDataType::Numeric(info)
        | SqlDataType::Dec(info)
        | SqlDataType::BigDecimal(info)
        | SqlDataType::BigNumeric(info)
        | SqlDataType::DecimalUnsigned(info)
        | SqlDataType::DecUnsigned(info) => {
            let (p, s) = match info {
                ExactNumberInfo::None => return Ok(()),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if !(1..=38).contains(&p) || s < 0 || s.unsigned_abs() > p {
                return Err(Error::syntax(
                    format!("Invalid DECIMAL({p}, {s}): precision must be 1 to 38 and scale 0 to precision"),
                    None,
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parse one expression and rewrite it (tests of this module and others).
#[cfg(test)]
pub(crate) fn parse_rewritten(s: &str) -> Expr {
    use crate::planner::parser::KsqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let mut e = Parser::new(&KsqlDialect)
        .try_with_sql(s)
        .expect("tokenizes")
        .parse_expr()
        .expect("parses");
    rewrite(&mut e).expect("rewrites");
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cast_to_a_decimal_out_of_ksqldbs_bounds_is_an_error() {
        use crate::planner::parser::KsqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let rewrite_text = |s: &str| {
            let mut e = Parser::new(&KsqlDialect)
                .try_with_sql(s)
                .unwrap()
                .parse_expr()
                .unwrap();
            rewrite(&mut e)
                .map(|_| e.to_string())
                .map_err(|e| (e.sqlstate(), e.to_string()))
        };
        let bad = |p: i64, s: i64| {
            Err((
                "42601",
                format!(
                    "Invalid DECIMAL({p}, {s}): precision must be 1 to 38 and scale 0 to precision"
                ),
            ))
        };
        assert_eq!(rewrite_text("CAST(x AS DECIMAL(257,0))"), bad(257, 0));
        assert_eq!(rewrite_text("CAST(x AS DECIMAL(0,0))"), bad(0, 0));
        assert_eq!(rewrite_text("CAST(x AS DECIMAL(39))"), bad(39, 0));
        assert_eq!(rewrite_text("CAST(x AS DECIMAL(4,5))"), bad(4, 5));
        assert_eq!(rewrite_text("CAST(x AS NUMERIC(300,2))"), bad(300, 2));
        assert_eq!(
            rewrite_text("CAST(x AS ARRAY<DECIMAL(257,0)>)"),
            bad(257, 0)
        );
        assert_eq!(
            rewrite_text("CAST(x AS DECIMAL(38,38))"),
            Ok("CAST(\"X\" AS DECIMAL(38,38))".to_string())
        );
    }

    fn rw(s: &str) -> String {
        let e = parse_rewritten(s);
        e.to_string()
    }

    #[test]
    fn ksql_forms_become_datafusion_forms() {
        assert_eq!(rw("a->b"), "ksql_field(\"A\", 'B')");
        assert_eq!(rw("`x`[1]"), "ksql_subscript(\"x\", CAST(1 AS INT))");
        assert_eq!(rw("COUNT(*)"), "count(CAST(1 AS INT))");
        assert_eq!(rw("t.col + 5000000000"), "\"T\".\"COL\" + 5000000000");
        assert_eq!(rw("EXPLODE(arr)"), "unnest(\"ARR\")");
        assert_eq!(rw("CAST(x AS STRING)"), "CAST(\"X\" AS VARCHAR)");
        assert_eq!(
            rw("TRANSFORM(xs, x => x + 1)"),
            "array_transform(\"XS\", \"X\" -> \"X\" + CAST(1 AS INT))"
        );
        assert_eq!(
            rw("FILTER(xs, x => x > 1)"),
            "array_filter(\"XS\", \"X\" -> coalesce(\"X\" > CAST(1 AS INT), false))"
        );
    }
}

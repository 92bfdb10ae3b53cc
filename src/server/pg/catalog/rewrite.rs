//! Postgres syntax tools use in catalog queries, rewritten into what
//! DataFusion plans, on the statement's syntax tree:
//!
//! | Postgres | becomes |
//! |---|---|
//! | `'orders'::regclass`, `'int4'::regtype` (a literal) | the OID, found now (an unknown name is an error, as in Postgres) |
//! | `x::regclass` (a column) | `regclass(x)`, the OID; `regclassout(x)` where its text is wanted: `::text` after it, or as an output column |
//! | `x::oid`, `::"char"`, `::name`, `::int2vector`, `pg_catalog.int4` | `BIGINT`, `TEXT`, `SMALLINT[]`, `INT` |
//! | `a OPERATOR(pg_catalog.~) b` | `a ~ b` |
//! | `x COLLATE "C"` | `x` |
//! | `x = ANY('{r,p}')` (an array literal as text) | `x = ANY(ARRAY['r', 'p'])` |
//! | `pg_catalog.f(...)`, `information_schema.f(...)` | `f(...)` |
//! | `current_user`, `current_catalog` (no parentheses) | `current_user()`, `current_catalog()` |
//! | `generate_subscripts(a, 1)` | `unnest(generate_series(1, array_length(a)))` |
//! | `information_schema._pg_expandarray(a)` | `unnest(pg_expandarray(a))`: rows of `(x, n)` |
//! | `ARRAY(SELECT x ...)` | `(SELECT array_agg(x) ...)` |
//! | a scalar subquery of one non-aggregate column | its `first_value(...)`: DataFusion plans a correlated scalar subquery only when it is aggregated |
//! | `pg_type` (unqualified) | `pg_catalog.pg_type` |

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self as sql, BinaryOperator, DataType as SqlType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
    Value, VisitMut, VisitorMut,
};

use super::selects::{
    aggregated, expand_wildcards, first_value, name_literals, table_function_columns,
};
use super::snapshot::Snapshot;
use super::tables::PG_CATALOG;
use super::types;
use crate::error::{Error, Result};
pub(super) use crate::planner::call;

/// Rewrite `statement` (see the module's table).
pub(super) fn rewrite(statement: &mut Statement, snap: &Snapshot) -> Result<()> {
    let mut visitor = Rewriter { snap, error: None };
    let _ = statement.visit(&mut visitor);
    if let Some(e) = visitor.error {
        return Err(e);
    }
    if let Statement::Query(q) = statement {
        name_outputs(q);
    }
    Ok(())
}

struct Rewriter<'a> {
    snap: &'a Snapshot,
    error: Option<Error>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn post_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        if let [ObjectNamePart::Identifier(id)] = relation.0.as_slice() {
            let name = id.value.to_ascii_lowercase();
            if id.quote_style.is_none() && PG_CATALOG.iter().any(|d| d.name == name) {
                relation
                    .0
                    .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut sql::TableFactor) -> ControlFlow<()> {
        if let sql::TableFactor::Table {
            name,
            alias,
            args: Some(_),
            ..
        } = factor
        {
            if name.0.len() == 2 && name.0[0].to_string().eq_ignore_ascii_case("pg_catalog") {
                name.0.remove(0);
            }
            // A scalar function's one column is named by the table alias.
            if let Some(a) = alias.as_mut() {
                if a.columns.is_empty() && name.to_string().eq_ignore_ascii_case("generate_series")
                {
                    a.columns = vec![sql::TableAliasColumnDef::from_name(a.name.value.clone())];
                }
            }
            if let Some(columns) = table_function_columns(&name.to_string()) {
                let empty = format!("SELECT {columns} WHERE false");
                if let Ok(mut parsed) = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                    &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                    &empty,
                ) {
                    if let Some(Statement::Query(q)) = parsed.pop() {
                        *factor = sql::TableFactor::Derived {
                            lateral: false,
                            subquery: q,
                            alias: alias.take(),
                            sample: None,
                        };
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut sql::Select) -> ControlFlow<()> {
        name_literals(select);
        expand_wildcards(select);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match self.expr(std::mem::replace(expr, Expr::value(Value::Null))) {
            Ok(new) => {
                *expr = new;
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

impl Rewriter<'_> {
    fn expr(&self, expr: Expr) -> Result<Expr> {
        Ok(match expr {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => self.cast(*inner, &data_type)?,
            Expr::Collate { expr, .. } => *expr,
            Expr::BinaryOp {
                left,
                op: BinaryOperator::PGCustomBinaryOperator(parts),
                right,
            } => Expr::BinaryOp {
                left,
                op: operator(parts.last().map_or("", String::as_str))?,
                right,
            },
            Expr::AnyOp {
                left,
                compare_op,
                right,
                is_some,
            } => match array_literal(&right) {
                Some(Some(items)) => Expr::AnyOp {
                    left,
                    compare_op,
                    right: Box::new(array_expr(items)),
                    is_some,
                },
                Some(None) => cast_to(SqlType::Boolean, Expr::value(Value::Null)),
                None => Expr::AnyOp {
                    left,
                    compare_op,
                    right,
                    is_some,
                },
            },
            Expr::BinaryOp {
                left,
                op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq),
                right,
            } => match (array_literal(&left), array_literal(&right)) {
                (_, Some(Some(items))) => Expr::BinaryOp {
                    left,
                    op,
                    right: Box::new(array_expr(items)),
                },
                (Some(Some(items)), _) => Expr::BinaryOp {
                    left: Box::new(array_expr(items)),
                    op,
                    right,
                },
                _ => Expr::BinaryOp { left, op, right },
            },
            Expr::CompoundFieldAccess { root, access_chain } => {
                match name_character(&root, &access_chain) {
                    Some(e) => e,
                    None => Expr::CompoundFieldAccess {
                        root,
                        access_chain: access_chain.into_iter().map(field_by_name).collect(),
                    },
                }
            }
            Expr::Function(f) => function(f),
            Expr::Subquery(q) => Expr::Subquery(Box::new(first_value(*q))),
            other => other,
        })
    }

    /// `inner::data_type`.
    fn cast(&self, inner: Expr, data_type: &SqlType) -> Result<Expr> {
        let key = type_key(data_type);
        let literal = string_value(&inner);
        let to = cast_to;
        let reg = |name: &str, e: Expr| call(name, vec![e]);
        // `'{1,2}'::oid[]`: an array literal written as text.
        let array_type = key.ends_with("[]") || key == "int2vector" || key == "oidvector";
        if let (true, Some(Some(items))) = (array_type, array_literal(&inner)) {
            return self.cast(array_expr(items), data_type);
        }
        Ok(match key.as_str() {
            "regclass" => match literal {
                Some(Some(name)) => number(self.snap.regclass_oid(&name).ok_or_else(|| {
                    Error::NotFound(format!("relation \"{name}\" does not exist"))
                })?),
                Some(None) => to(SqlType::BigInt(None), inner),
                None => reg("regclass", inner),
            },
            "regtype" => match literal {
                Some(Some(name)) => number(
                    types::by_name(&name)
                        .ok_or_else(|| Error::NotFound(format!("type \"{name}\" does not exist")))?
                        .oid,
                ),
                Some(None) => to(SqlType::BigInt(None), inner),
                None => reg("regtype", inner),
            },
            "regnamespace" => match literal {
                Some(Some(name)) => number(
                    super::snapshot::namespace_oid(&name.to_ascii_lowercase()).ok_or_else(
                        || Error::NotFound(format!("schema \"{name}\" does not exist")),
                    )?,
                ),
                Some(None) => to(SqlType::BigInt(None), inner),
                None => reg("regnamespace", inner),
            },
            "regproc" | "regprocedure" => match literal {
                Some(Some(name)) => {
                    let bare = name
                        .strip_prefix("pg_catalog.")
                        .unwrap_or(&name)
                        .to_string();
                    Expr::value(Value::SingleQuotedString(bare))
                }
                _ => to(SqlType::Text, inner),
            },
            "oid" | "regrole" | "xid" | "cid" | "regconfig" | "regdictionary" | "int8" => {
                to(SqlType::BigInt(None), inner)
            }
            "text" | "varchar" | "name" | "\"char\"" | "bpchar" | "pg_node_tree" | "aclitem" => {
                match inner {
                    Expr::Function(f) if is_reg_marker(&f) => out_function(f),
                    other => to(SqlType::Text, other),
                }
            }
            "int2" | "smallint" => to(SqlType::SmallInt(None), inner),
            "int4" | "integer" | "int" => to(SqlType::Integer(None), inner),
            "bool" | "boolean" => to(SqlType::Boolean, inner),
            "float8" => to(SqlType::Double(sql::ExactNumberInfo::None), inner),
            "int2vector" | "int2[]" => to(array_of(SqlType::SmallInt(None)), inner),
            "oidvector" | "oid[]" | "regclass[]" | "regtype[]" => {
                to(array_of(SqlType::BigInt(None)), inner)
            }
            k if k.ends_with("[]") && k != "int[]" && k != "bigint[]" => {
                to(array_of(SqlType::Text), inner)
            }
            _ => to(data_type.clone(), inner),
        })
    }
}

/// A type's name as the rewrite matches it: lower case, without a
/// `pg_catalog.` schema, `"char"` kept quoted, `[]` after an array's
/// element type.
fn type_key(ty: &SqlType) -> String {
    match ty {
        SqlType::Custom(name, _) => match name.0.last() {
            Some(ObjectNamePart::Identifier(id)) if id.quote_style.is_some() => {
                format!("\"{}\"", id.value)
            }
            Some(ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
            _ => name.to_string().to_ascii_lowercase(),
        },
        SqlType::Regclass => "regclass".into(),
        SqlType::Array(sql::ArrayElemTypeDef::SquareBracket(elem, _))
        | SqlType::Array(sql::ArrayElemTypeDef::AngleBracket(elem)) => {
            format!("{}[]", type_key(elem))
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

pub(super) fn array_of(elem: SqlType) -> SqlType {
    SqlType::Array(sql::ArrayElemTypeDef::SquareBracket(Box::new(elem), None))
}

/// A string literal's value (Some(None): NULL), looking through casts to
/// text; None for anything else.
pub(super) fn string_value(expr: &Expr) -> Option<Option<String>> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(Some(s.clone())),
            Value::Number(n, _) => Some(Some(n.clone())),
            Value::Null => Some(None),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => string_value(expr),
        _ => None,
    }
}

/// The elements of an array literal written as text (`'{r,p,""}'`);
/// Some(None) for NULL; None when `expr` is not such a literal.
fn array_literal(expr: &Expr) -> Option<Option<Vec<String>>> {
    let text = match string_value(expr)? {
        None => return Some(None),
        Some(t) => t,
    };
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    let mut item = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in body.chars() {
        match c {
            _ if escaped => {
                item.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut item)),
            c => item.push(c),
        }
    }
    if !body.trim().is_empty() {
        items.push(item);
    }
    Some(Some(items))
}

/// `ARRAY[...]` of `items`: numbers if they all are, else strings.
fn array_expr(items: Vec<String>) -> Expr {
    let numbers = !items.is_empty() && items.iter().all(|i| i.parse::<i64>().is_ok());
    Expr::Array(sql::Array {
        elem: items
            .into_iter()
            .map(|s| match numbers {
                true => Expr::value(Value::Number(s, false)),
                false => Expr::value(Value::SingleQuotedString(s)),
            })
            .collect(),
        named: true,
    })
}

/// A Postgres operator named in `OPERATOR(schema.op)`.
fn operator(op: &str) -> Result<BinaryOperator> {
    Ok(match op {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "~~" => BinaryOperator::PGLikeMatch,
        other => {
            return Err(Error::Unsupported(format!(
                "operator {other} in a catalog query"
            )))
        }
    })
}

/// `typname[0]`: a `name` is a fixed array of characters in Postgres, so
/// it takes a subscript (from 0): `substr(typname, 1, 1)`.
fn name_character(root: &Expr, chain: &[sql::AccessExpr]) -> Option<Expr> {
    let column = match root {
        Expr::Identifier(id) => id,
        Expr::CompoundIdentifier(parts) => parts.last()?,
        _ => return None,
    };
    let names = [
        "typname", "relname", "proname", "attname", "nspname", "conname",
    ];
    if !names.contains(&column.value.to_ascii_lowercase().as_str()) {
        return None;
    }
    let [sql::AccessExpr::Subscript(sql::Subscript::Index { index })] = chain else {
        return None;
    };
    let n: i64 = string_value(index)??.parse().ok()?;
    Some(call(
        "substr",
        vec![root.clone(), number(n.checked_add(1)?), number(1)],
    ))
}

/// `(x).field` as `(x)['field']`, which DataFusion reads as a struct's
/// field.
fn field_by_name(access: sql::AccessExpr) -> sql::AccessExpr {
    match access {
        sql::AccessExpr::Dot(Expr::Identifier(id)) => {
            let name = match id.quote_style {
                Some(_) => id.value,
                None => id.value.to_ascii_lowercase(),
            };
            sql::AccessExpr::Subscript(sql::Subscript::Index {
                index: Expr::value(Value::SingleQuotedString(name)),
            })
        }
        other => other,
    }
}

pub(super) fn cast_to(data_type: SqlType, expr: Expr) -> Expr {
    Expr::Cast {
        kind: sql::CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

pub(super) fn number(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

const REG_MARKERS: &[(&str, &str)] = &[
    ("regclass", "regclassout"),
    ("regtype", "regtypeout"),
    ("regnamespace", "regnamespaceout"),
];

pub(super) fn function_name(f: &sql::Function) -> String {
    match f.name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Whether `f` is `regclass(x)` (an OID that prints as a name).
fn is_reg_marker(f: &sql::Function) -> bool {
    let name = function_name(f);
    REG_MARKERS.iter().any(|(m, _)| *m == name)
}

/// `regclass(x)` → `regclassout(x)`: the name.
fn out_function(mut f: sql::Function) -> Expr {
    let name = function_name(&f);
    if let Some((_, out)) = REG_MARKERS.iter().find(|(m, _)| *m == name) {
        f.name = ObjectName::from(vec![Ident::new(*out)]);
    }
    Expr::Function(f)
}

pub(super) fn args_of(f: &sql::Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A function call: its schema dropped, Postgres-only functions replaced.
fn function(mut f: sql::Function) -> Expr {
    if f.name.0.len() > 1 {
        let last = f.name.0.pop();
        f.name.0 = last.into_iter().collect();
    }
    let name = function_name(&f);
    if matches!(f.args, FunctionArguments::None)
        && matches!(
            name.as_str(),
            "current_user" | "session_user" | "user" | "current_catalog" | "current_role"
        )
    {
        let name = if name == "user" || name == "current_role" {
            "current_user"
        } else {
            name.as_str()
        };
        return call(name, vec![]);
    }
    match name.as_str() {
        "generate_subscripts" => {
            let array = args_of(&f)
                .into_iter()
                .next()
                .unwrap_or(Expr::value(Value::Null));
            let length = cast_to(SqlType::BigInt(None), call("array_length", vec![array]));
            call(
                "unnest",
                vec![call("generate_series", vec![number(1), length])],
            )
        }
        "_pg_expandarray" => call("unnest", vec![call("pg_expandarray", args_of(&f))]),
        "array" => match f.args {
            FunctionArguments::Subquery(q) => Expr::Subquery(Box::new(aggregated(*q))),
            _ => Expr::Function(f),
        },
        _ => Expr::Function(f),
    }
}

/// Output columns whose value is a reg-type OID print its name
/// (`SELECT c.oid::regclass` lists relation names), under the name
/// Postgres gives the column.
fn name_outputs(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
            if is_reg_marker(f) {
                let column = match args_of(f).first() {
                    Some(Expr::Identifier(id)) => id.value.clone(),
                    Some(Expr::CompoundIdentifier(parts)) => {
                        parts.last().map(|p| p.value.clone()).unwrap_or_default()
                    }
                    _ => function_name(f),
                };
                let expr = out_function(f.clone());
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::with_quote('"', column),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::pg::catalog::snapshot::Facts;
    use crate::server::pg::results::NameCase;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    /// A catalog with no streams or tables.
    fn empty() -> Snapshot {
        Snapshot::new(
            std::iter::empty(),
            Facts {
                database: "db".into(),
                user: "u".into(),
                case: NameCase::Lower,
                settings: vec![],
            },
        )
    }

    fn rewritten(sql: &str) -> String {
        let snap = empty();
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        rewrite(&mut statement, &snap).unwrap();
        statement.to_string()
    }

    #[test]
    fn postgres_syntax_becomes_what_datafusion_plans() {
        assert_eq!(
            rewritten("SELECT c.oid::regclass FROM pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default"),
            "SELECT regclassout(c.oid) AS \"oid\" FROM pg_catalog.pg_class c WHERE c.relname ~ '^(t)$'"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pg_type WHERE oid = 'int4'::regtype AND typname = ANY('{a,\"\"}')"),
            "SELECT 1 AS column1 FROM pg_catalog.pg_type WHERE oid = 23 AND typname = ANY(ARRAY['a', ''])"
        );
        assert_eq!(
            rewritten("SELECT x.n FROM pg_index i, unnest('{1,2}'::pg_catalog.oid[]) AS x(n)"),
            "SELECT x.n FROM pg_catalog.pg_index i, UNNEST(CAST(ARRAY[1, 2] AS BIGINT[])) AS x (n)"
        );
        assert_eq!(
            rewritten("SELECT typname[0], (information_schema._pg_expandarray(i.indkey)).n, current_user FROM pg_type, pg_index i"),
            "SELECT substr(typname, 1, 1), (unnest(pg_expandarray(i.indkey)))['n'], current_user() FROM pg_catalog.pg_type, pg_catalog.pg_index i"
        );
        assert_eq!(
            rewritten("SELECT * FROM pg_namespace n"),
            "SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n"
        );
        assert_eq!(
            rewritten("SELECT array(SELECT rolname FROM pg_roles ORDER BY 1)"),
            "SELECT (SELECT array_agg(rolname ORDER BY rolname) FROM pg_catalog.pg_roles)"
        );
    }

    #[test]
    fn unknown_names_are_errors_as_in_postgres() {
        let snap = empty();
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 'nope'::regclass")
            .unwrap()
            .pop()
            .unwrap();
        let e = rewrite(&mut statement, &snap).unwrap_err();
        // A subscript past i64's range is left for DataFusion to refuse.
        assert_eq!(
            rewritten("SELECT typname[9223372036854775807] FROM pg_type"),
            "SELECT typname[9223372036854775807] FROM pg_catalog.pg_type"
        );
        assert_eq!(e.to_string(), "relation \"nope\" does not exist");
        assert_eq!(
            array_literal(&Expr::value(Value::SingleQuotedString("{r,p}".into()))),
            Some(Some(vec!["r".into(), "p".into()]))
        );
        assert_eq!(
            array_literal(&Expr::value(Value::SingleQuotedString("{}".into()))),
            Some(Some(vec![]))
        );
    }
}

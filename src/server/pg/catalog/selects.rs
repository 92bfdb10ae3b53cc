//! Rewrites of whole selects and subqueries (see `rewrite.rs` for the
//! table of what each Postgres form becomes): `*` over catalog tables
//! spelled out, literal columns named apart, set-returning functions over
//! objects Sluice has none of, `ARRAY(SELECT ...)`, scalar subqueries made
//! aggregates, and the NULLs that replace the subqueries DataFusion cannot
//! plan.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self as sql, DataType as SqlType, Expr, FunctionArguments, Ident, Query, SelectItem, SetExpr,
    Statement, Value,
};

use super::rewrite::{args_of, array_of, call, cast_to, function_name, string_value};
use super::tables::{self, Def, INFORMATION_SCHEMA, PG_CATALOG};

/// `*` and `t.*` over catalog tables spelled out, so that `tableoid`
/// (a system column, which `*` does not list in Postgres) stays out.
/// Left as it is when the select reads anything else.
pub(super) fn expand_wildcards(select: &mut sql::Select) {
    let wildcard = |i: &SelectItem| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    };
    if !select.projection.iter().any(wildcard) {
        return;
    }
    // Each relation: the name its columns are qualified by, its table.
    let mut relations: Vec<(Vec<Ident>, &Def)> = Vec::new();
    for from in &select.from {
        let factors = std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation));
        for factor in factors {
            let sql::TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = factor
            else {
                return;
            };
            let parts: Vec<String> = name
                .0
                .iter()
                .map(|p| p.to_string().to_ascii_lowercase())
                .collect();
            let [schema, table] = parts.as_slice() else {
                return;
            };
            let defs = match schema.as_str() {
                "pg_catalog" => PG_CATALOG,
                "information_schema" => INFORMATION_SCHEMA,
                _ => return,
            };
            let Some(def) = defs.iter().find(|d| d.name == table) else {
                return;
            };
            let qualifier = match alias {
                Some(a) => vec![a.name.clone()],
                None => vec![Ident::new(schema.as_str()), Ident::new(table.as_str())],
            };
            relations.push((qualifier, def));
        }
    }
    let columns = |(qualifier, def): &(Vec<Ident>, &Def)| -> Vec<SelectItem> {
        tables::columns(def)
            .map(|(c, _)| {
                let mut parts = qualifier.clone();
                parts.push(Ident::new(c));
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts))
            })
            .collect()
    };
    let mut projection = Vec::new();
    for item in std::mem::take(&mut select.projection) {
        match &item {
            SelectItem::Wildcard(_) => projection.extend(relations.iter().flat_map(columns)),
            SelectItem::QualifiedWildcard(
                sql::SelectItemQualifiedWildcardKind::ObjectName(n),
                _,
            ) => {
                let name = n.to_string().to_ascii_lowercase();
                match relations.iter().find(|(q, _)| {
                    q.last()
                        .is_some_and(|i| i.value.eq_ignore_ascii_case(&name))
                        || q.iter()
                            .map(|i| i.value.as_str())
                            .collect::<Vec<_>>()
                            .join(".")
                            == name
                }) {
                    Some(r) => projection.extend(columns(r)),
                    None => projection.push(item),
                }
            }
            _ => projection.push(item),
        }
    }
    select.projection = projection;
}

/// The columns of a set-returning catalog function over objects Sluice
/// has none of (publications): it has no rows.
pub(super) fn table_function_columns(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().trim_start_matches("pg_catalog.") {
        "pg_options_to_table" => {
            Some("CAST(NULL AS TEXT) AS option_name, CAST(NULL AS TEXT) AS option_value")
        }
        "pg_get_publication_tables" => Some(
            "CAST(NULL AS BIGINT) AS pubid, CAST(NULL AS BIGINT) AS relid, \
             CAST(NULL AS SMALLINT[]) AS attrs, CAST(NULL AS TEXT) AS qual",
        ),
        _ => None,
    }
}

/// Literal output columns named apart: DataFusion wants distinct names
/// (`SELECT pubname, NULL, NULL`); the client is told Postgres's names,
/// taken before the rewrite (`output_names`).
pub(super) fn name_literals(select: &mut sql::Select) {
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(e @ Expr::Value(_)) = item {
            let expr = std::mem::replace(e, Expr::value(Value::Null));
            *item = SelectItem::ExprWithAlias {
                expr,
                alias: Ident::new(format!("column{}", i + 1)),
            };
        }
    }
}

/// Whether `query`'s one column is an `array_agg(...)`.
fn aggregates_array(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    matches!(
        select.projection.as_slice(),
        [SelectItem::UnnamedExpr(Expr::Function(f)) | SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }]
            if function_name(f) == "array_agg"
    )
}

/// Each scalar subquery in `statement`'s select lists replaced by a NULL
/// (see [`super::answer`] for when); false when it has none.
pub(super) fn null_subqueries(statement: &mut Statement) -> bool {
    let mut found = false;
    let _ = sql::visit_expressions_mut(statement, |e| {
        if let Expr::Subquery(q) = e {
            if aggregates_array(q) {
                // `ARRAY(SELECT ...)`: a NULL array, which array functions take.
                found = true;
                *e = cast_to(array_of(SqlType::Text), Expr::value(Value::Null));
                return ControlFlow::Continue(());
            }
        }
        let null = match e {
            Expr::Subquery(_) => true,
            // A set-returning `unnest` of it has no rows: NULL too.
            Expr::Function(f) if function_name(f) == "unnest" => {
                matches!(args_of(f).as_slice(), [a] if string_value(a) == Some(None))
            }
            _ => false,
        };
        if null {
            found = true;
            *e = Expr::value(Value::Null);
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = sql::visit_statements_mut(statement, |s| {
        if let Statement::Query(q) = s {
            if let SetExpr::Select(select) = q.body.as_mut() {
                name_literals(select);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `query`'s one column made `array_agg(...)`, in the query's order.
pub(super) fn aggregated(mut query: Query) -> Query {
    let order = query.order_by.take();
    if let SetExpr::Select(select) = query.body.as_mut() {
        if let [item] = select.projection.as_mut_slice() {
            wrap_item(item, "array_agg");
            let (SelectItem::UnnamedExpr(Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                ..
            }) = item
            else {
                return query;
            };
            let column = args_of(f).into_iter().next();
            if let (
                Some(sql::OrderBy {
                    kind: sql::OrderByKind::Expressions(mut exprs),
                    ..
                }),
                FunctionArguments::List(list),
                Some(column),
            ) = (order, &mut f.args, column)
            {
                // `ORDER BY 1` is the column itself.
                for e in &mut exprs {
                    if matches!(&e.expr, Expr::Value(v) if v.value == Value::Number("1".into(), false))
                    {
                        e.expr = column.clone();
                    }
                }
                list.clauses
                    .push(sql::FunctionArgumentClause::OrderBy(exprs));
            }
        }
    }
    query
}

/// A scalar subquery's one column made `first_value(...)`, unless it is
/// aggregated, grouped or has more than one column.
pub(super) fn first_value(mut query: Query) -> Query {
    if let SetExpr::Select(select) = query.body.as_mut() {
        let grouped = !matches!(
            &select.group_by,
            sql::GroupByExpr::Expressions(e, _) if e.is_empty()
        );
        if let ([item], false) = (select.projection.as_mut_slice(), grouped) {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => return query,
            };
            if !has_aggregate(expr) {
                wrap_item(item, "first_value");
            }
        }
    }
    query
}

fn wrap_item(item: &mut SelectItem, aggregate: &str) {
    match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            let inner = std::mem::replace(e, Expr::value(Value::Null));
            *e = call(aggregate, vec![inner]);
        }
        _ => {}
    }
}

fn has_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "bool_and",
        "bool_or",
        "string_agg",
        "first_value",
        "every",
    ];
    let mut found = false;
    let _ = sql::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            if AGGREGATES.contains(&function_name(f).as_str()) && f.over.is_none() {
                found = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

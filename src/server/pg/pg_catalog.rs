//! A small `pg_catalog`: what psql's `\dt`, `\d` and `\d NAME` ask, and
//! what drivers' metadata calls ask, answered from Sluice's catalog.
//!
//! Every stream and table is a relation of schema `public` (`relkind` 'r',
//! so `\dt` lists both; the Type column says `stream` or `table`), owned by
//! `sluice`, with a stable OID derived from its name. Its columns are
//! attributes whose type is the Sluice type (`BIGINT`, `STRING`,
//! `ARRAY<INT>`, ...), and key columns are described as `KEY`.
//!
//! psql's queries use Postgres-only syntax (`OPERATOR(pg_catalog.~)`,
//! `COLLATE`, `::regclass`), so they are not planned: the query is parsed
//! with sqlparser's Postgres dialect, and each column of its select list
//! is answered by what it names (`c.relname`, `c.relkind`, `a.attname`,
//! `pg_catalog.format_type(...)`, ...), for the relation or attributes its
//! `WHERE` picks (`c.relname OPERATOR(pg_catalog.~) '^(name)$'`,
//! `c.oid = '...'`, `a.attrelid = '...'`). A catalog query of any other
//! shape (constraints, indexes, policies, ...: Sluice has none) answers no
//! rows with the columns it asked for.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    Expr, SelectItem, SetExpr, Statement as SqlStatement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use futures::{stream, StreamExt};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use regex::Regex;

use super::results::Rows;
use super::values::Value;
use crate::catalog::{sql_type_name, ColumnKind, Source};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::planner::ast::SourceKind;

/// Whether `text` asks the Postgres catalog.
pub(crate) fn is_catalog_query(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("pg_catalog.") || lower.contains("information_schema.")
}

/// The answer to a catalog query: its columns and rows.
pub(crate) fn answer(engine: &Engine, text: &str) -> Result<(Arc<Vec<FieldInfo>>, Rows)> {
    let (items, from) = select_list(text)?;
    let fields = Arc::new(
        items
            .iter()
            .map(|(name, _)| {
                FieldInfo::new(name.clone(), None, None, Type::TEXT, FieldFormat::Text)
            })
            .collect::<Vec<_>>(),
    );
    let only = |allowed: &[&str]| from.iter().all(|t| allowed.contains(&t.as_str()));
    let mut sources: Vec<&Source> = engine.catalog().sources().collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    // Relations (`pg_class`, joined to their schema and access method) and
    // attributes; any other table (inheritance, indexes, constraints,
    // ...) has no rows in Sluice.
    let rows: Vec<Vec<Value>> = if from.first().is_some_and(|t| t == "pg_class")
        && only(&["pg_class", "pg_namespace", "pg_am"])
    {
        relations(text, &sources)
            .into_iter()
            .map(|s| {
                items
                    .iter()
                    .map(|(_, key)| relation_value(s, key))
                    .collect()
            })
            .collect()
    } else if from.first().is_some_and(|t| t == "pg_attribute") && only(&["pg_attribute"]) {
        attributes(text, &sources)
            .into_iter()
            .map(|(s, i)| {
                items
                    .iter()
                    .map(|(_, key)| attribute_value(s, i, key))
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok((fields, stream::iter(rows.into_iter().map(Ok)).boxed()))
}

/// The relations a `pg_class` query picks.
fn relations<'a>(text: &str, sources: &[&'a Source]) -> Vec<&'a Source> {
    let by_name = name_pattern(text);
    let by_oid = number_after(text, r"c\.oid\s*=\s*'?(\d+)'?");
    // `\dt` / `\d` list relations of the kinds they name: streams and
    // tables are ordinary tables ('r').
    let kinds_ok = Regex::new(r"(?i)c\.relkind\s+IN\s*\(([^)]*)\)")
        .ok()
        .and_then(|re| re.captures(text).map(|c| c[1].contains("'r'")))
        .unwrap_or(true);
    if !kinds_ok {
        return Vec::new();
    }
    sources
        .iter()
        .copied()
        .filter(|s| by_name.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .filter(|s| by_oid.is_none_or(|oid| oid == relation_oid(&s.name)))
        .collect()
}

/// The attributes (relation, column index) an attribute query picks: the
/// relation's columns, in order.
fn attributes<'a>(text: &str, sources: &[&'a Source]) -> Vec<(&'a Source, usize)> {
    let Some(oid) = number_after(text, r"a\.attrelid\s*=\s*'?(\d+)'?") else {
        return Vec::new();
    };
    sources
        .iter()
        .filter(|s| relation_oid(&s.name) == oid)
        .flat_map(|s| (0..s.columns.len()).map(move |i| (*s, i)))
        .collect()
}

/// psql's name filter, `relname OPERATOR(pg_catalog.~) '^(name)$'`, as a
/// case-insensitive regex (psql lower-cases unquoted names, Sluice
/// upper-cases them).
fn name_pattern(text: &str) -> Option<Regex> {
    let re = Regex::new(r"relname\s+OPERATOR\(pg_catalog\.~\)\s+'((?:[^']|'')*)'").ok()?;
    let pattern = re.captures(text)?[1].replace("''", "'");
    Regex::new(&format!("(?i){pattern}")).ok()
}

fn number_after(text: &str, pattern: &str) -> Option<i64> {
    Regex::new(pattern).ok()?.captures(text)?[1].parse().ok()
}

/// A relation's OID: stable for its name, above Postgres's reserved range.
pub(crate) fn relation_oid(name: &str) -> i64 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    16_384 + i64::from(hash % 1_000_000_000)
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// The value a `pg_class` column has for a relation.
fn relation_value(s: &Source, key: &str) -> Value {
    let kind = match s.kind {
        SourceKind::Stream => "stream",
        SourceKind::Table => "table",
    };
    match key {
        "oid" => text(relation_oid(&s.name).to_string()),
        "nspname" | "schema" => text("public"),
        "relname" | "name" => text(s.name.clone()),
        "type" => text(kind),
        "owner" | "pg_get_userbyid" => text("sluice"),
        "relkind" => text("r"),
        "relpersistence" => text("p"),
        "persistence" => text("permanent"),
        "relreplident" => text("d"),
        "relchecks" | "reltablespace" | "relnatts" => text("0"),
        "description" | "obj_description" => text(format!("{kind} on topic {}", s.topic)),
        k if k.starts_with("relhas")
            || k.starts_with("relrowsecurity")
            || k.starts_with("relforcerowsecurity")
            || k == "relispartition" =>
        {
            text("f")
        }
        "''" => text(""),
        _ => Value::Null,
    }
}

/// The value a `pg_attribute` column has for a relation's column.
fn attribute_value(s: &Source, i: usize, key: &str) -> Value {
    let c = &s.columns[i];
    match key {
        "attname" => text(c.name.clone()),
        "format_type" => text(sql_type_name(&c.data_type)),
        "attnum" => text((i + 1).to_string()),
        "attnotnull" | "attisdropped" | "atthasdef" => text("f"),
        "attidentity" | "attgenerated" | "''" => text(""),
        "attstorage" => text("p"),
        "col_description" => match &c.kind {
            ColumnKind::Key => text("KEY"),
            ColumnKind::Header(None) => text("HEADERS"),
            ColumnKind::Header(Some(k)) => text(format!("HEADER('{k}')")),
            ColumnKind::Value => Value::Null,
        },
        _ => Value::Null,
    }
}

/// A select list's column: its name, and the key it is answered by.
type Item = (String, String);

/// A query's select list: each column's name (as Postgres names it) and
/// the key it is answered by (the alias, else the column or function it
/// names, lower case); and the tables it reads (their last name part,
/// lower case, in order).
fn select_list(text: &str) -> Result<(Vec<Item>, Vec<String>)> {
    crate::planner::limits::check(text)?;
    let statements = SqlParser::parse_sql(&PostgreSqlDialect {}, text)
        .map_err(|e| Error::syntax(format!("cannot read this catalog query: {e}"), None))?;
    let Some(SqlStatement::Query(q)) = statements.first() else {
        return Err(Error::Unsupported(
            "a catalog statement other than SELECT".into(),
        ));
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Ok((vec![], vec![]));
    };
    let table = |f: &TableFactor| match f {
        TableFactor::Table { name, .. } => name
            .0
            .last()
            .map(|p| p.to_string().to_ascii_lowercase())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let from = select
        .from
        .iter()
        .flat_map(|t| {
            std::iter::once(table(&t.relation)).chain(t.joins.iter().map(|j| table(&j.relation)))
        })
        .collect();
    let items = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => {
                let named = expr_key(expr);
                let alias = alias.value.clone();
                // `... AS "Owner"` is answered by its alias; a function or
                // column with an alias of its own (`false AS relhasoids`)
                // by what the alias says.
                let key = if named == "case" || named.is_empty() {
                    alias.to_ascii_lowercase()
                } else if alias.eq_ignore_ascii_case(&named) {
                    named
                } else {
                    alias.to_ascii_lowercase()
                };
                (alias, key)
            }
            SelectItem::UnnamedExpr(expr) => {
                let key = expr_key(expr);
                let name = match expr {
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) => {
                        key.clone()
                    }
                    _ => "?column?".to_string(),
                };
                (name, key)
            }
            other => (other.to_string(), String::new()),
        })
        .collect();
    Ok((items, from))
}

/// What an expression names: a column's last part, a function's name,
/// `''` for the empty string, `case` for a CASE.
fn expr_key(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(i) => i.value.to_ascii_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_default(),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .map(|p| p.to_string().to_ascii_lowercase())
            .unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_key(expr),
        Expr::Case { .. } => "case".into(),
        Expr::Value(v) if v.to_string() == "''" => "''".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_lists_are_answered_by_what_they_name() {
        let (list, from) = select_list(
            "SELECT n.nspname as \"Schema\", c.relname as \"Name\", \
               CASE c.relkind WHEN 'r' THEN 'table' END as \"Type\", \
               pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\", c.oid, \
               false AS relhasoids, '' , pg_catalog.format_type(a.atttypid, a.atttypmod) \
             FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(s1)$' COLLATE pg_catalog.default",
        )
        .unwrap();
        assert_eq!(from, vec!["pg_class"]);
        let keys: Vec<&str> = list.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "schema",
                "name",
                "type",
                "owner",
                "oid",
                "relhasoids",
                "''",
                "format_type"
            ]
        );
        let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "Schema",
                "Name",
                "Type",
                "Owner",
                "oid",
                "relhasoids",
                "?column?",
                "format_type"
            ]
        );
    }

    #[test]
    fn psql_name_patterns_match_case_insensitively() {
        let re = name_pattern("WHERE c.relname OPERATOR(pg_catalog.~) '^(s1)$' COLLATE").unwrap();
        assert!(re.is_match("S1"));
        assert!(!re.is_match("S10"));
        assert_eq!(relation_oid("S1"), relation_oid("S1"));
        assert_ne!(relation_oid("S1"), relation_oid("S2"));
        assert!(relation_oid("S1") >= 16_384);
    }
}

//! The Postgres catalog: `pg_catalog` and `information_schema` as tables
//! that ordinary SQL runs over (joins, `WHERE`, aggregates, subqueries),
//! so that tools reading the catalog (psql, pgcli, SQLAlchemy, pgjdbc's
//! `DatabaseMetaData`, pg_dump) see Sluice's streams and tables.
//!
//! A catalog query is planned and run by DataFusion in a context of its
//! own: the tables it names are made from a [`Snapshot`] of Sluice's
//! catalog taken when it comes ([`contents`]), the functions tools call
//! are closures over the same snapshot ([`functions`]), and the
//! Postgres-only syntax in it is first rewritten into what DataFusion
//! plans ([`rewrite`]).
//!
//! What the catalog says:
//! - every stream and table is an ordinary table (`relkind` `r`) of schema
//!   `public`, with a stable OID derived from its name, described as
//!   `stream on topic T` / `table on topic T`;
//! - its columns have the Postgres types their values are sent as; key
//!   and header columns are described as `KEY`, `HEADERS`, `HEADER('k')`;
//! - a table's key columns are its primary key (constraint and unique
//!   index `<table>_pkey`); a stream has none (its keys are not unique);
//! - the catalog's own tables are in `pg_catalog` and
//!   `information_schema`, with Postgres's OIDs where it has them;
//! - one database (the one the client asked for), one role (the client's
//!   user, a superuser).
//!
//! DataFusion plans a correlated scalar subquery only when it can turn it
//! into a join; the ones tools send that it cannot (their correlation is
//! not an equality: a column's default in `pg_attrdef` `AND
//! a.atthasdef`, its collation where it differs from its type's, its
//! identity sequence, a foreign key's columns) ask about things Sluice
//! has none of (defaults, column collations, sequences, foreign keys), so
//! their answer is NULL: such a query is run again with its scalar
//! subqueries as NULL (so is one whose subquery DataFusion cannot plan
//! at all, psql's over the publications of a relation's columns).
//!
//! Names follow the session's [`NameCase`](super::results::NameCase): by default a stream `ORDERS`
//! is the relation `orders`, as Postgres clients expect.

mod contents;
mod functions;
mod rewrite;
mod selects;
mod snapshot;
mod tables;
mod types;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ListArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_relations, Expr, ObjectNamePart, SelectItem, SetExpr, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;

pub(crate) use snapshot::Facts;

use super::results::Rows;
use super::values::{pg_type, Value};
use crate::engine::Engine;
use crate::error::{Error, Result};
use snapshot::Snapshot;
use tables::{Def, INFORMATION_SCHEMA, PG_CATALOG};

/// Words one of which a catalog query has (a cheap test before parsing).
const MARKS: &[&str] = &[
    "pg_",
    "information_schema",
    "current_",
    "version",
    "session_user",
    "format_type",
    "to_reg",
    "has_",
    "set_config",
    "_description",
    "quote_ident",
];

/// Set-returning functions catalog queries read from (`FROM
/// unnest(...)`): they name no table.
const TABLE_FUNCTIONS: &[&str] = &[
    "unnest",
    "generate_series",
    "pg_options_to_table",
    "pg_get_publication_tables",
];

/// Whether `text` is a query over the Postgres catalog: a query that
/// reads only catalog tables, or reads no table and calls a catalog
/// function (`SELECT version()`, `SELECT current_schema()`).
pub(crate) fn is_catalog_query(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if !MARKS.iter().any(|m| lower.contains(m)) {
        return false;
    }
    let Ok(statements) = SqlParser::parse_sql(&PostgreSqlDialect {}, text) else {
        return false;
    };
    let [Statement::Query(query)] = statements.as_slice() else {
        return false;
    };
    let ctes: BTreeSet<String> = query
        .with
        .iter()
        .flat_map(|w| &w.cte_tables)
        .map(|c| c.alias.name.value.to_ascii_lowercase())
        .collect();
    let (mut catalog, mut other) = (0, 0);
    let _ = visit_relations(query.as_ref(), |name| {
        let parts = name_parts(name);
        match parts.as_slice() {
            [schema, table]
                if schema == "pg_catalog" && TABLE_FUNCTIONS.contains(&table.as_str()) => {}
            [schema, _] if schema == "pg_catalog" || schema == "information_schema" => catalog += 1,
            [table] if PG_CATALOG.iter().any(|d| d.name == table) => catalog += 1,
            [table] if ctes.contains(table) || TABLE_FUNCTIONS.contains(&table.as_str()) => {}
            _ => other += 1,
        }
        ControlFlow::<()>::Continue(())
    });
    if other > 0 {
        return false;
    }
    catalog > 0 || calls_catalog_function(query.as_ref())
}

fn calls_catalog_function(query: &datafusion::sql::sqlparser::ast::Query) -> bool {
    visit_expressions(query, |e| match e {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.rsplit('.').next().unwrap_or("");
            let catalog = name.starts_with("pg_")
                || name.starts_with("current_")
                || name.starts_with("has_")
                || matches!(
                    name,
                    "version"
                        | "session_user"
                        | "user"
                        | "format_type"
                        | "to_regtype"
                        | "to_regclass"
                        | "set_config"
                        | "obj_description"
                        | "col_description"
                        | "shobj_description"
                );
            if catalog {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// The answer to catalog query `text` (its `$n` placeholders, if any, are
/// read as NULL: that is how a statement is described before its values
/// come).
pub(crate) fn answer(
    engine: &Engine,
    facts: Facts,
    text: &str,
) -> Result<(Arc<Vec<FieldInfo>>, Rows)> {
    crate::planner::limits::check(text)?;
    let nulls = vec!["NULL".to_string(); super::params::count(text)?];
    let text = super::params::substitute(text, &nulls)?;
    let mut statements = SqlParser::parse_sql(&PostgreSqlDialect {}, &text)
        .map_err(|e| Error::syntax(format!("cannot read this catalog query: {e}"), None))?;
    let (Some(mut statement), true) = (statements.pop(), statements.is_empty()) else {
        return Err(Error::syntax("expected one catalog query", None));
    };
    let snap = Arc::new(Snapshot::new(engine.catalog().sources(), facts));
    let names = output_names(&statement);
    rewrite::rewrite(&mut statement, &snap)?;
    let (schema, batches) = match run(statement.clone(), &snap) {
        Ok(answer) => answer,
        Err(e) => {
            let mut simpler = statement;
            if !selects::null_subqueries(&mut simpler) {
                return Err(e);
            }
            run(simpler, &snap).map_err(|_| e)?
        }
    };
    let fields: Vec<FieldInfo> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = names
                .as_ref()
                .and_then(|n| n.get(i).cloned())
                .unwrap_or_else(|| f.name().clone());
            let ty = match f.metadata().get(tables::VECTOR).map(String::as_str) {
                Some("int2vector") => Type::INT2_VECTOR,
                Some("oidvector") => Type::OID_VECTOR,
                _ => wire_type(f.data_type()),
            };
            FieldInfo::new(name, None, None, ty, FieldFormat::Text)
        })
        .collect();
    let vectors: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.metadata().contains_key(tables::VECTOR))
        .collect();
    Ok((Arc::new(fields), rows(&batches, &vectors)?))
}

/// Plan and run `statement` in a context holding the catalog tables it
/// names and the catalog functions.
fn run(statement: Statement, snap: &Arc<Snapshot>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(1),
    );
    let named = relations(&statement);
    let default_catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| Error::internal("DataFusion's default catalog is missing"))?;
    for (schema_name, defs) in [
        ("pg_catalog", PG_CATALOG),
        ("information_schema", INFORMATION_SCHEMA),
    ] {
        let schema = MemorySchemaProvider::new();
        for def in defs {
            if named.contains(&(schema_name.to_string(), def.name.to_string())) {
                schema.register_table(
                    def.name.to_string(),
                    Arc::new(table(def, schema_name, snap)?),
                )?;
            }
        }
        default_catalog.register_schema(schema_name, Arc::new(schema))?;
    }
    for f in functions::all(snap) {
        ctx.register_udf(f);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let state = ctx.state();
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await?;
        let frame = ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        Ok((schema, batches))
    })
}

/// A relation's name, its parts in lower case (catalog names are).
fn name_parts(name: &datafusion::sql::sqlparser::ast::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => id.value.to_ascii_lowercase(),
            _ => String::new(),
        })
        .collect()
}

/// The catalog tables `statement` names, as `(schema, table)`.
fn relations(statement: &Statement) -> BTreeSet<(String, String)> {
    let mut named = BTreeSet::new();
    let _ = visit_relations(statement, |name| {
        let parts = name_parts(name);
        if let [schema, table] = parts.as_slice() {
            named.insert((schema.clone(), table.clone()));
        }
        ControlFlow::<()>::Continue(())
    });
    named
}

fn table(def: &Def, schema_name: &str, snap: &Snapshot) -> Result<MemTable> {
    let system = schema_name == "pg_catalog";
    let mut rows = match system {
        true => contents::pg_catalog(def.name, snap),
        false => contents::information_schema(def.name, snap),
    };
    if system {
        for row in &mut rows {
            row.push((tables::TABLEOID, tables::oid(def.oid)));
        }
    }
    let schema = tables::schema(def, system);
    let batch = tables::batch(&schema, &rows)?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

/// The names Postgres gives a query's output columns: an alias, else the
/// column's or function's name, `case` for a CASE, `?column?` for other
/// expressions (None when the list has a `*`: DataFusion's names then).
fn output_names(statement: &Statement) -> Option<Vec<String>> {
    let Statement::Query(q) = statement else {
        return None;
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(match alias.quote_style {
                Some(_) => alias.value.clone(),
                None => alias.value.to_ascii_lowercase(),
            }),
            SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
            _ => None,
        })
        .collect()
}

fn expr_name(e: &Expr) -> String {
    let folded = |id: &datafusion::sql::sqlparser::ast::Ident| match id.quote_style {
        Some(_) => id.value.clone(),
        None => id.value.to_ascii_lowercase(),
    };
    match e {
        Expr::Identifier(id) => folded(id),
        Expr::CompoundIdentifier(parts) => parts.last().map(folded).unwrap_or_default(),
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(id)) => match folded(id).as_str() {
                // The markers rewrite.rs puts in for reg-type casts.
                "regclass" | "regtype" | "regnamespace" => "?column?".into(),
                name => name.to_string(),
            },
            _ => "?column?".into(),
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_name(expr),
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

/// The Postgres type a catalog column is sent as: arrays as Postgres
/// arrays (`indkey`, `current_schemas(true)`, `array_agg(...)`), the rest
/// as any result's.
fn wire_type(dt: &DataType) -> Type {
    match dt {
        DataType::List(item) => match item.data_type() {
            DataType::Int16 => Type::INT2_ARRAY,
            DataType::Int32 => Type::INT4_ARRAY,
            DataType::Int64 => Type::INT8_ARRAY,
            DataType::Boolean => Type::BOOL_ARRAY,
            DataType::Float64 => Type::FLOAT8_ARRAY,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Type::TEXT_ARRAY,
            _ => pg_type(dt),
        },
        _ => pg_type(dt),
    }
}

fn rows(batches: &[RecordBatch], vectors: &[bool]) -> Result<Rows> {
    super::results::rows_with(batches, |column, i, r| {
        match (value(column, r)?, vectors.get(i).copied().unwrap_or(false)) {
            // `int2vector`'s text: `1 2`.
            (Value::Array { items, .. }, true) => Ok(Value::Text(
                items
                    .iter()
                    .filter_map(Value::text)
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
            (v, _) => Ok(v),
        }
    })
}

fn value(column: &dyn Array, row: usize) -> Result<Value> {
    let element = match wire_type(column.data_type()) {
        Type::INT2_ARRAY => Type::INT2,
        Type::INT4_ARRAY => Type::INT4,
        Type::INT8_ARRAY => Type::INT8,
        Type::BOOL_ARRAY => Type::BOOL,
        Type::FLOAT8_ARRAY => Type::FLOAT8,
        Type::TEXT_ARRAY => Type::TEXT,
        _ => return Value::of(column, row),
    };
    if column.is_null(row) {
        return Ok(Value::Null);
    }
    let Some(list) = column.as_any().downcast_ref::<ListArray>() else {
        return Value::of(column, row);
    };
    let items = list.value(row);
    let items = (0..items.len())
        .map(|i| Value::of(items.as_ref(), i))
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::Array { element, items })
}

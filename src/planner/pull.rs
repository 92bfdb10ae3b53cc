//! Pull queries: a `SELECT` without `EMIT`, answered from the tables'
//! current state.
//!
//! The text is parsed as SQL (so `ORDER BY`, `GROUP BY`, `LIMIT`, joins and
//! subqueries are all there), its names and expressions are rewritten to
//! ksqlDB's semantics as a persistent query's are (unquoted names upper
//! case, `->` field access, ksqlDB's operators and functions), and the
//! result is planned by DataFusion against the materialized tables the
//! caller hands in.
//!
//! `*` means the source's columns as ksqlDB declares them: key columns,
//! window bounds, value and header columns, but not the pseudo columns
//! (`ROWTIME`, `ROWPARTITION`, `ROWOFFSET`) the tables also carry, which a
//! query names to get. Unnamed expressions are named `KSQL_COL_<n>`, as
//! ksqlDB names them. In the WHERE clause a time column (`ROWTIME`,
//! `WINDOWSTART`, `WINDOWEND`) compares with a datetime text as ksqlDB
//! reads it: `yyyy-MM-ddTHH:mm:ss.SSS`, any tail left out, an optional
//! zone (`Z`, `+hh`, `+hhmm`, `+hh:mm`), UTC otherwise.
//!
//! What ksqlDB refuses in a pull query is refused with its words: `WINDOW`
//! clauses, the `ROWPARTITION` / `ROWOFFSET` pseudo columns, a negative or
//! non-integer `LIMIT`, and `LIMIT` at all when
//! `ksql.query.pull.limit.clause.enabled` is false.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, GroupByExpr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart,
    OrderByKind, Query, SelectItem, SetExpr, Statement as SqlStatement, TableFactor,
    TableWithJoins,
};
use datafusion::sql::sqlparser::parser::Parser as SqlParser;

use super::context::Provider;
use super::parser::PullDialect;
use super::pull_keys::{check_key_lookup, LookupKey};
use super::pull_types::check_where_types;
use super::{rewrite, Planner};
use crate::error::{Error, Result};
use crate::runtime::{ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART};

/// The tables a pull query may read.
#[derive(Default)]
pub(crate) struct PullTables {
    pub tables: HashMap<String, Arc<dyn TableProvider>>,
    /// The keys of the tables that are looked up by key (materialized
    /// views).
    pub keys: HashMap<String, LookupKey>,
    /// Tables whose `ROWPARTITION` and `ROWOFFSET` are stored columns (a
    /// sink's files), which pull queries may select.
    pub stored_positions: std::collections::HashSet<String>,
}

/// The session's settings for pull queries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PullOptions {
    /// `ksql.query.pull.limit.clause.enabled`
    pub limit: bool,
    /// `ksql.query.pull.table.scan.enabled`: off, a query must be key
    /// lookups ([`super::pull_keys`]).
    pub table_scan: bool,
    /// `ksql.query.pull.range.scan.enabled`
    pub range_scan: bool,
}

impl Planner {
    /// Plan a pull query's text.
    pub(crate) fn plan_pull(
        &self,
        text: &str,
        tables: PullTables,
        options: PullOptions,
    ) -> Result<LogicalPlan> {
        super::limits::check(text)?;
        let mut statements = SqlParser::parse_sql(&PullDialect, text).map_err(|e| {
            match unsupported_clause(text) {
                Some(clause) => Error::semantic(format!(
                    "Pull queries don't support {clause} clauses.{PULL_HINT}"
                )),
                None => Error::syntax(e.to_string(), None),
            }
        })?;
        let (Some(mut statement), true) = (statements.pop(), statements.is_empty()) else {
            return Err(Error::syntax("expected one SELECT statement", None));
        };
        let SqlStatement::Query(query) = &mut statement else {
            return Err(Error::syntax("expected a SELECT statement", None));
        };
        // The WHERE clause of a one-table query, as written: its types, and
        // without table scans, key lookups.
        if let SetExpr::Select(select) = query.body.as_ref() {
            let table = single_table(select);
            let key = table.as_ref().and_then(|t| tables.keys.get(t));
            let schema = table
                .as_ref()
                .and_then(|t| tables.tables.get(t))
                .map(|t| t.schema());
            if let (Some(selection), Some(schema)) = (&select.selection, schema) {
                let key_columns: Vec<String> = key
                    .map(|k| k.columns.iter().map(|(n, _)| n.clone()).collect())
                    .unwrap_or_default();
                check_where_types(selection, &schema, &key_columns)?;
            }
            if let (Some(key), false) = (key, options.table_scan) {
                check_key_lookup(select.selection.as_ref(), key, options.range_scan)?;
            }
        }
        rewrite_query(query)?;
        let positions_stored = match query.body.as_ref() {
            SetExpr::Select(select) => {
                single_table(select).is_some_and(|t| tables.stored_positions.contains(&t))
            }
            _ => false,
        };
        check_pull(query, options.limit, positions_stored)?;
        if let SetExpr::Select(select) = query.body.as_mut() {
            if let Some(e) = select.selection.as_mut() {
                time_texts_as_millis(e)?;
            }
        }
        expand_wildcards(&mut query.body, &tables.tables);
        name_expressions(&mut query.body);
        let mut provider = Provider::new(self.state());
        for (name, table) in tables.tables {
            provider.add_provider(&name, table);
        }
        let mut opts = ParserOptions::new();
        opts.enable_ident_normalization = false;
        opts.map_string_types_to_utf8view = false;
        let plan = SqlToRel::new_with_options(&provider, opts)
            .sql_statement_to_plan(statement)
            .map_err(plan_error)?;
        self.state()
            .analyzer()
            .execute_and_check(plan, self.state().config_options(), |_, _| {})
            .map_err(plan_error)
    }
}

/// DataFusion's planning errors, as statement errors where they are the
/// user's (an unknown name, a type mismatch).
fn plan_error(e: datafusion::error::DataFusionError) -> Error {
    use datafusion::error::DataFusionError as D;
    let root = e.find_root();
    let text = root.to_string();
    let text = text
        .strip_prefix("Error during planning: ")
        .map(str::to_string)
        .unwrap_or(text);
    match root {
        D::NotImplemented(m) => Error::Unsupported(m.clone()),
        D::Plan(_) | D::SchemaError(..)
            if text.contains("does not exist") || text.contains("not found") =>
        {
            Error::NotFound(text)
        }
        D::Plan(_) | D::SchemaError(..) => Error::semantic(text),
        _ => Error::DataFusion(e),
    }
}

fn upper(ident: &mut Ident) {
    if ident.quote_style.is_none() {
        ident.value = ident.value.to_ascii_uppercase();
    }
}

fn upper_name(name: &mut ObjectName) {
    for part in name.0.iter_mut() {
        let ObjectNamePart::Identifier(i) = part else {
            continue;
        };
        upper(i);
    }
}

/// Rewrite a query's names and expressions to ksqlDB's semantics.
fn rewrite_query(query: &mut Query) -> Result<()> {
    if let Some(with) = &mut query.with {
        for cte in with.cte_tables.iter_mut() {
            upper(&mut cte.alias.name);
            rewrite_query(&mut cte.query)?;
        }
    }
    rewrite_set_expr(&mut query.body)?;
    if let Some(order) = &mut query.order_by {
        if let OrderByKind::Expressions(exprs) = &mut order.kind {
            for o in exprs.iter_mut() {
                rewrite::rewrite(&mut o.expr)?;
            }
        }
    }
    Ok(())
}

fn rewrite_set_expr(body: &mut SetExpr) -> Result<()> {
    match body {
        SetExpr::Select(select) => {
            for item in select.projection.iter_mut() {
                match item {
                    SelectItem::UnnamedExpr(e) => rewrite::rewrite(e)?,
                    SelectItem::ExprWithAlias { expr, alias } => {
                        rewrite::rewrite(expr)?;
                        upper(alias);
                    }
                    SelectItem::QualifiedWildcard(kind, _) => {
                        if let datafusion::sql::sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n) = kind {
                            upper_name(n);
                        }
                    }
                    SelectItem::ExprWithAliases { expr, aliases } => {
                        rewrite::rewrite(expr)?;
                        aliases.iter_mut().for_each(upper);
                    }
                    SelectItem::Wildcard(_) => {}
                }
            }
            for t in select.from.iter_mut() {
                rewrite_table(t)?;
            }
            if let Some(e) = &mut select.selection {
                rewrite::rewrite(e)?;
            }
            if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
                for e in exprs.iter_mut() {
                    rewrite::rewrite(e)?;
                }
            }
            if let Some(e) = &mut select.having {
                rewrite::rewrite(e)?;
            }
            Ok(())
        }
        SetExpr::Query(q) => rewrite_query(q),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left)?;
            rewrite_set_expr(right)
        }
        _ => Ok(()),
    }
}

fn rewrite_table(t: &mut TableWithJoins) -> Result<()> {
    rewrite_factor(&mut t.relation)?;
    for j in t.joins.iter_mut() {
        rewrite_factor(&mut j.relation)?;
        let constraint = match &mut j.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c) => Some(c),
            _ => None,
        };
        if let Some(JoinConstraint::On(e)) = constraint {
            rewrite::rewrite(e)?;
        }
    }
    Ok(())
}

fn rewrite_factor(f: &mut TableFactor) -> Result<()> {
    match f {
        TableFactor::Table { name, alias, .. } => {
            upper_name(name);
            if let Some(a) = alias {
                upper(&mut a.name);
            }
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            rewrite_query(subquery)?;
            if let Some(a) = alias {
                upper(&mut a.name);
            }
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => rewrite_table(table_with_joins)?,
        _ => {}
    }
    Ok(())
}

/// Columns `*` leaves out.
const HIDDEN: &[&str] = &[ROWTIME, ROWPARTITION, ROWOFFSET];

/// Replace `*` and `t.*` over the given tables by their columns without
/// the pseudo columns. A `*` over anything else (a subquery) is left to
/// DataFusion.
fn expand_wildcards(body: &mut SetExpr, tables: &HashMap<String, Arc<dyn TableProvider>>) {
    let select = match body {
        SetExpr::Select(select) => select,
        SetExpr::Query(q) => return expand_wildcards(&mut q.body, tables),
        SetExpr::SetOperation { left, right, .. } => {
            expand_wildcards(left, tables);
            return expand_wildcards(right, tables);
        }
        _ => return,
    };
    // (qualifier, visible columns) of each relation, in FROM order.
    let mut relations: Vec<(String, Vec<String>)> = Vec::new();
    let mut all_known = true;
    for t in &select.from {
        for factor in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            let TableFactor::Table { name, alias, .. } = factor else {
                all_known = false;
                continue;
            };
            let Some(table) = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .and_then(|i| tables.get(&i.value))
            else {
                all_known = false;
                continue;
            };
            let qualifier = match alias {
                Some(a) => a.name.value.clone(),
                None => name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .unwrap_or_default(),
            };
            let columns = table
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !HIDDEN.contains(&n.as_str()))
                .collect();
            relations.push((qualifier, columns));
        }
    }
    let column = |q: &str, c: &str| {
        SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(vec![
            Ident::with_quote('"', q),
            Ident::with_quote('"', c),
        ]))
    };
    let mut items = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        match &item {
            SelectItem::Wildcard(opts) if all_known && *opts == Default::default() => {
                for (q, columns) in &relations {
                    items.extend(columns.iter().map(|c| column(q, c)));
                }
            }
            SelectItem::QualifiedWildcard(
                datafusion::sql::sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                opts,
            ) if *opts == Default::default() => {
                let wanted =
                    n.0.last()
                        .and_then(|p| p.as_ident())
                        .map(|i| i.value.clone());
                match relations.iter().find(|(q, _)| Some(q) == wanted.as_ref()) {
                    Some((q, columns)) => items.extend(columns.iter().map(|c| column(q, c))),
                    None => items.push(item),
                }
            }
            _ => items.push(item),
        }
    }
    select.projection = items;
}

/// What a refused pull query's message ends with (ksqlDB's words, without
/// its link to its own documentation).
const PULL_HINT: &str = "\nAdd EMIT CHANGES if you intended to issue a push query.";

/// The ksqlDB clause a pull query that SQL cannot parse uses, if it is one
/// pull queries do not support (a `WINDOW` or a stream-stream `JOIN ...
/// WITHIN`).
fn unsupported_clause(text: &str) -> Option<&'static str> {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    let has = |a: &str, bs: &[&str]| {
        words
            .windows(2)
            .any(|w| w[0] == a && bs.contains(&w[1].as_str()))
    };
    if has("WINDOW", &["TUMBLING", "HOPPING", "SESSION"]) {
        return Some("WINDOW");
    }
    if words.iter().any(|w| w == "JOIN") && words.iter().any(|w| w == "WITHIN") {
        return Some("JOIN");
    }
    None
}

/// Refuse what ksqlDB's pull queries do not support: the ROWPARTITION and
/// ROWOFFSET pseudo columns, a LIMIT that is negative or not an integer, or
/// any LIMIT when disabled.
fn check_pull(query: &Query, limit_enabled: bool, positions_stored: bool) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{LimitClause, UnaryOperator, Value};
    if let (SetExpr::Select(select), false) = (query.body.as_ref(), positions_stored) {
        let mut in_select = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e)
                | SelectItem::ExprWithAlias { expr: e, .. }
                | SelectItem::ExprWithAliases { expr: e, .. } => pseudo_columns(e, &mut in_select),
                _ => {}
            }
        }
        let mut in_where = Vec::new();
        if let Some(e) = &select.selection {
            pseudo_columns(e, &mut in_where);
        }
        for (clause, found) in [("SELECT", in_select), ("WHERE", in_where)] {
            if !found.is_empty() {
                let list: Vec<String> = found.iter().map(|c| format!("`{c}`")).collect();
                return Err(Error::semantic(format!(
                    "Pull queries don't support the following columns in {clause} clauses: {}",
                    list.join(", ")
                )));
            }
        }
    }
    let limit = match &query.limit_clause {
        Some(LimitClause::LimitOffset { limit, .. }) => limit.as_ref(),
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => Some(limit),
        None => None,
    };
    let Some(limit) = limit else { return Ok(()) };
    if !limit_enabled {
        return Err(Error::semantic(format!(
            "LIMIT clause in pull queries is currently disabled. You can enable them by setting ksql.query.pull.limit.clause.enabled=true.{PULL_HINT}"
        )));
    }
    match limit {
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            ..
        } => Err(Error::semantic(
            "Pull queries don't support negative integers in the LIMIT clause.",
        )),
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) if n.parse::<u64>().is_err() => Err(Error::semantic(
                "Failed to prepare statement: Value must be integer for command: LIMIT",
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The ROWPARTITION / ROWOFFSET columns an expression names.
fn pseudo_columns(e: &SqlExpr, found: &mut Vec<String>) {
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
        let name = match x {
            SqlExpr::Identifier(i) => Some(&i.value),
            SqlExpr::CompoundIdentifier(is) => is.last().map(|i| &i.value),
            _ => None,
        };
        if let Some(n) = name.filter(|n| [ROWPARTITION, ROWOFFSET].contains(&n.as_str())) {
            if !found.contains(n) {
                found.push(n.clone());
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Name the projection's unnamed expressions as ksqlDB does: a column keeps
/// its name, anything else is `KSQL_COL_<n>` (n counting those).
fn name_expressions(body: &mut SetExpr) {
    let SetExpr::Select(select) = body else {
        return;
    };
    let mut n = 0;
    for item in select.projection.iter_mut() {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        if matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) {
            continue;
        }
        let alias = Ident::with_quote('"', format!("KSQL_COL_{n}"));
        n += 1;
        *item = SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias,
        };
    }
}

/// Replace datetime texts compared with a time column by their epoch
/// milliseconds.
fn time_texts_as_millis(e: &mut SqlExpr) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator as B, Value};
    let is_time = |e: &SqlExpr| match e {
        SqlExpr::Identifier(i) => [ROWTIME, WINDOWSTART, WINDOWEND].contains(&i.value.as_str()),
        SqlExpr::CompoundIdentifier(is) => is
            .last()
            .is_some_and(|i| [ROWTIME, WINDOWSTART, WINDOWEND].contains(&i.value.as_str())),
        _ => false,
    };
    let mut bad = None;
    let mut convert = |e: &mut SqlExpr| {
        if let SqlExpr::Value(v) = e {
            if let Value::SingleQuotedString(text) = &v.value {
                match partial_datetime_millis(text) {
                    Some(ms) => v.value = Value::Number(ms.to_string(), false),
                    None => bad = Some(text.clone()),
                }
            }
        }
    };
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(e, |x| {
        match x {
            SqlExpr::BinaryOp {
                left,
                op: B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq,
                right,
            } => {
                if is_time(left) {
                    convert(right);
                } else if is_time(right) {
                    convert(left);
                }
            }
            SqlExpr::Between {
                expr, low, high, ..
            } if is_time(expr) => {
                convert(low);
                convert(high);
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    match bad {
        Some(text) => Err(Error::semantic(format!(
            "Failed to parse timestamp '{text}': expected yyyy-MM-ddTHH:mm:ss.SSS, with an optional time zone"
        ))),
        None => Ok(()),
    }
}

/// ksqlDB's partial datetime text (`yyyy[-MM[-dd[THH[:mm[:ss[.SSS]]]]]]`
/// and an optional zone) as epoch milliseconds; hour 24 is the next day's
/// midnight.
fn partial_datetime_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, t),
        None => (text, ""),
    };
    // The zone: `Z` or a sign in the time part.
    let (time, offset_ms) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], zone_offset_ms(&time[i..])?),
        None => (time, 0),
    };
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u32 = d.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u32 = d.next().map_or(Some(1), |x| x.parse().ok())?;
    if d.next().is_some() {
        return None;
    }
    let days = chrono::NaiveDate::from_ymd_opt(year, month, day)?
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    let (hms, fraction) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.split(':').filter(|p| !p.is_empty());
    let hour: i64 = t.next().map_or(Some(0), |h| h.parse().ok())?;
    let minute: i64 = t.next().map_or(Some(0), |m| m.parse().ok())?;
    let second: i64 = t.next().map_or(Some(0), |x| x.parse().ok())?;
    let millis: i64 = match fraction {
        "" => 0,
        f => format!("{f:0<3}").get(..3)?.parse().ok()?,
    };
    if t.next().is_some() || hour > 24 || minute > 59 || second > 59 {
        return None;
    }
    Some(
        days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis - offset_ms,
    )
}

/// `Z`, `+hh`, `+hhmm` or `+hh:mm` as milliseconds east of UTC.
fn zone_offset_ms(zone: &str) -> Option<i64> {
    if zone == "Z" {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    Some(sign * (h * 3_600_000 + m * 60_000))
}

/// The one table a SELECT reads, when it reads one table without joins.
fn single_table(select: &datafusion::sql::sqlparser::ast::Select) -> Option<String> {
    let [t] = select.from.as_slice() else {
        return None;
    };
    match &t.relation {
        TableFactor::Table { name, .. } if t.joins.is_empty() => {
            let mut i = name.0.last().and_then(|p| p.as_ident())?.clone();
            upper(&mut i);
            Some(i.value)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_datetimes_read_as_ksqldb_reads_them() {
        let p = partial_datetime_millis;
        assert_eq!(p("1970-01-01T00:00:00.000"), Some(0));
        assert_eq!(p("2020-02-23T23:45:12.000"), Some(1_582_501_512_000));
        assert_eq!(p("2020-02-23T22:45:12.000-0100"), Some(1_582_501_512_000));
        assert_eq!(p("2020-02-23T23:45:12Z"), Some(1_582_501_512_000));
        assert_eq!(p("2020-02-22T23:45"), Some(1_582_415_100_000));
        assert_eq!(p("2020-02-24T24"), Some(1_582_588_800_000));
        assert_eq!(p("2020"), Some(1_577_836_800_000));
        assert_eq!(p("1970-01-01T00:00:00.5"), Some(500));
        assert_eq!(p("junk"), None);
        assert_eq!(p("2020-13-01"), None);
    }
}

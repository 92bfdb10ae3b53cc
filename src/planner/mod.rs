//! The planner: ksqlDB SQL text → statements → DataFusion logical plans →
//! the runtime's `StreamPlan`.
//!
//! 1. [`parser`] turns text into [`ast::Statement`]s (sqlparser tokens and
//!    expressions, ksqlDB's statement grammar).
//! 2. [`rewrite`] maps ksqlDB expression semantics onto DataFusion's.
//! 3. A persistent query's SELECT becomes a sqlparser `Query` over the source
//!    as a table, planned by DataFusion's `SqlToRel` (types, function
//!    resolution) and its analyzer (type coercion). With JOINs, [`join`]
//!    plans the FROM clause into join specs and one virtual source of
//!    joined rows (`ALIAS_COLUMN` names, ksqlDB's), which the rest of the
//!    query is planned over.
//! 4. [`lower`] turns the logical plan into operator specs; the key and
//!    value columns of the result follow ksqlDB's rules (source key, GROUP
//!    BY, PARTITION BY), checked here with ksqlDB's messages.

pub(crate) mod ast;
mod context;
pub(crate) use context::Provider as ValuesProvider;
pub(crate) mod ddl;
mod display;
mod join;
pub(crate) mod limits;
pub(crate) mod lookup;
mod lower;

pub(crate) use lower::physical_expr;
pub(crate) mod parser;
pub(crate) mod pull;
pub(crate) mod pull_keys;
mod pull_types;
mod rewrite;
pub(crate) use rewrite::call;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, GroupByExpr, Ident, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Statement as SqlStatement,
};
use datafusion::sql::sqlparser::parser::Parser as SqlParser;

use crate::catalog::{Catalog, ColumnKind, Source};
use crate::connectors::formats::WindowKind;
use crate::error::{Error, Result};
use crate::runtime::{
    JoinStage, KeyWindow, OpSpec, SourceSpec, TimestampSpec, WindowAssign, WindowConfig,
    DEFAULT_GRACE_MS, ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART,
};
use ast::{Emit, Query, SourceKind, WindowSpec};
use ddl::RESERVED_COLUMNS;
use parser::KsqlDialect;

/// Plans statements against a catalog; holds the DataFusion session with
/// ksqlDB's functions registered.
pub(crate) struct Planner {
    state: SessionState,
    /// `ksql.new.query.planner.enabled`: a stream query may drop its key
    /// columns, and key columns follow projection order.
    new_planner: bool,
    /// `ksql.timestamp.throw.on.invalid`.
    fail_on_bad_timestamp: bool,
}

/// A planned persistent query, before its sink is attached.
pub(crate) struct PlannedQuery {
    pub source: SourceSpec,
    /// Joins of the source with further sources, in order.
    pub joins: Vec<JoinStage>,
    /// The key format the result inherits, when not the source's (a join
    /// takes the first source's that has a key).
    pub key_format: Option<crate::connectors::formats::Format>,
    pub ops: Vec<OpSpec>,
    /// The schema of the last operator's batches.
    pub output_schema: SchemaRef,
    /// Output columns (indices into `output_schema`) for the key and value.
    pub key_columns: Vec<usize>,
    pub value_columns: Vec<usize>,
    pub rowtime_column: usize,
    pub window_columns: Option<(usize, usize)>,
    /// The output key is the source's key passed through.
    pub key_from_source: bool,
    pub window: Option<KeyWindow>,
    /// The result is a table (aggregation or table source).
    pub is_table: bool,
    pub sources: Vec<String>,
    /// DataFusion's logical plan, indented (EXPLAIN).
    pub logical_plan: String,
}

/// Names of transient (push) queries start with this.
pub(crate) const TRANSIENT_PREFIX: &str = "transient_";

impl Planner {
    /// A planner with ksqlDB's functions, configured by the server's
    /// properties (`ksql.functions.collect_list.limit`, ...), the values
    /// functions build bounded by `limits`.
    pub(crate) fn try_new(
        properties: &std::collections::BTreeMap<String, String>,
        limits: crate::functions::ValueLimits,
    ) -> Result<Self> {
        let ctx = SessionContext::new();
        crate::functions::register_all(&ctx, limits)?;
        let limit = |k: &str| {
            properties
                .get(k)
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        let options = crate::functions::aggregate::AggregateOptions {
            collect_list_limit: limit("ksql.functions.collect_list.limit"),
            collect_set_limit: limit("ksql.functions.collect_set.limit"),
        };
        crate::functions::aggregate::register_with_options(&ctx, &options)?;
        let new_planner = properties
            .get("ksql.new.query.planner.enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let fail_on_bad_timestamp = properties
            .get("ksql.timestamp.throw.on.invalid")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Self {
            state: ctx.state(),
            new_planner,
            fail_on_bad_timestamp,
        })
    }

    pub(crate) fn state(&self) -> &SessionState {
        &self.state
    }

    /// The batch a source decodes into.
    pub(crate) fn source_spec(&self, src: &Source, window_columns: bool) -> Result<SourceSpec> {
        let mut fields: Vec<Field> = Vec::new();
        let key_fields: Vec<_> = src.key_columns().map(|c| c.field()).collect();
        let value_fields: Vec<_> = src.value_columns().map(|c| c.field()).collect();
        let header_fields: Vec<_> = src
            .header_columns()
            .map(|c| {
                let key = match &c.kind {
                    ColumnKind::Header(k) => k.clone(),
                    _ => None,
                };
                (c.field(), key)
            })
            .collect();
        for f in key_fields
            .iter()
            .chain(&value_fields)
            .chain(header_fields.iter().map(|h| &h.0))
        {
            fields.push(f.as_ref().clone());
        }
        let timestamp = match &src.timestamp {
            None => TimestampSpec::Record,
            Some((col, fmt)) => {
                let idx = fields
                    .iter()
                    .position(|f| f.name() == col)
                    .ok_or_else(|| Error::semantic(format!("Unknown TIMESTAMP column {col}")))?;
                match fmt {
                    Some(format) => TimestampSpec::Formatted {
                        column: idx,
                        format: format.clone(),
                    },
                    None => TimestampSpec::Column(idx),
                }
            }
        };
        fields.push(Field::new(ROWTIME, DataType::Int64, false));
        fields.push(Field::new(ROWPARTITION, DataType::Int32, false));
        fields.push(Field::new(ROWOFFSET, DataType::Int64, false));
        let window_columns = window_columns || src.window.is_some();
        if window_columns {
            fields.push(Field::new(WINDOWSTART, DataType::Int64, true));
            fields.push(Field::new(WINDOWEND, DataType::Int64, true));
        }
        Ok(SourceSpec {
            name: src.name.clone(),
            topic: src.topic.clone(),
            key_format: src.key_format.clone(),
            value_format: src.value_format.clone(),
            key_fields,
            value_fields,
            header_fields,
            timestamp,
            is_table: src.kind == SourceKind::Table,
            window: src.window,
            window_columns,
            fail_on_bad_timestamp: self.fail_on_bad_timestamp,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Plan the SELECT of a persistent query writing `target`.
    pub(crate) fn plan_query(
        &self,
        catalog: &Catalog,
        q: &Query,
        target: &str,
    ) -> Result<PlannedQuery> {
        let window = q
            .window
            .map(|w| window_config(w, q.emit == Some(Emit::Final)));
        // A query with joins reads the joined rows as its one source.
        let joined = if q.joins.is_empty() {
            None
        } else {
            Some(self.plan_joins(catalog, q, window.is_some())?)
        };
        let src = match &joined {
            Some(j) => &j.source,
            None => catalog.source(&q.from.name).ok_or_else(|| {
                Error::semantic(format!("Source `{}` does not exist.", q.from.name))
                    .with_position(q.from.position)
            })?,
        };
        let spec = match &joined {
            Some(j) => SourceSpec {
                name: src.name.clone(),
                schema: j.schema.clone(),
                is_table: src.kind == SourceKind::Table,
                key_fields: Vec::new(),
                value_fields: Vec::new(),
                header_fields: Vec::new(),
                window: src.window,
                window_columns: window.is_some() || src.window.is_some(),
                ..j.primary.clone()
            },
            None => self.source_spec(src, window.is_some())?,
        };
        let scope = joined.as_ref().map(|j| &j.scope);
        let windowed_source = src.window.is_some();
        let qualifier = q.from.alias.clone().unwrap_or_else(|| src.name.clone());
        // A push query's result is read, not written keyed to a topic: its
        // projection may name the pseudo columns and leave out the key.
        let transient = target.starts_with(TRANSIENT_PREFIX);

        // Select items: expand wildcards, rewrite, name.
        let mut items: Vec<(SqlExpr, String)> = Vec::new();
        let mut generated = 0;
        // `SELECT *` is the key, value and header columns; under PARTITION BY
        // the old key columns move after the values (they become values).
        let mut star_order: Vec<&crate::catalog::Column> = src.columns.iter().collect();
        if !q.partition_by.is_empty() {
            star_order.sort_by_key(|c| c.kind == ColumnKind::Key);
        }
        // A windowed source's bounds live in its key: `SELECT *` omits them,
        // but a push query shows them after the key columns (as ksqlDB does).
        let mut star_columns: Vec<String> = star_order.iter().map(|c| c.name.clone()).collect();
        if transient && windowed_source && q.partition_by.is_empty() {
            let keys = src.key_columns().count();
            star_columns.splice(keys..keys, [WINDOWSTART.to_string(), WINDOWEND.to_string()]);
        }
        for item in &q.items {
            match item {
                SelectItem::Wildcard(_) if scope.is_some() => {
                    for c in scope.map(|s| s.star(None)).transpose()?.unwrap_or_default() {
                        items.push((SqlExpr::Identifier(Ident::with_quote('"', &c)), c));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) if scope.is_some() => {
                    let n = name.to_string().trim_matches('"').to_uppercase();
                    for c in scope
                        .map(|s| s.star(Some(&n)))
                        .transpose()?
                        .unwrap_or_default()
                    {
                        items.push((SqlExpr::Identifier(Ident::with_quote('"', &c)), c));
                    }
                }
                SelectItem::Wildcard(_) => {
                    for c in &star_columns {
                        items.push((SqlExpr::Identifier(Ident::with_quote('"', c)), c.clone()));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => {
                    let n = name.to_string().trim_matches('"').to_string();
                    if n != qualifier && n != src.name {
                        return Err(Error::semantic(format!(
                            "'{n}' is not a valid stream/table name or alias."
                        )));
                    }
                    for c in &star_columns {
                        items.push((SqlExpr::Identifier(Ident::with_quote('"', c)), c.clone()));
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let mut e = e.clone();
                    rewrite::rewrite(&mut e)?;
                    let join_name = match scope {
                        Some(s) => {
                            let n = s.default_name(&e)?;
                            s.resolve(&mut e, None)?;
                            n
                        }
                        None => None,
                    };
                    let name = match join_name.or_else(|| default_name(&e)) {
                        Some(n) => n,
                        None => {
                            let n = format!("KSQL_COL_{generated}");
                            generated += 1;
                            n
                        }
                    };
                    items.push((e, name));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let mut e = expr.clone();
                    rewrite::rewrite(&mut e)?;
                    if let Some(s) = scope {
                        s.resolve(&mut e, None)?;
                    }
                    if RESERVED_COLUMNS.contains(&alias.value.as_str()) {
                        return Err(Error::semantic(format!(
                            "`{}` is a reserved column name. You cannot use it as an alias for a column.",
                            alias.value
                        )));
                    }
                    items.push((e, alias.value.clone()));
                }
                other => return Err(Error::Unsupported(format!("select item {other}"))),
            }
        }
        for (e, name) in &items {
            let pseudo = [ROWTIME, ROWPARTITION, ROWOFFSET].contains(&name.as_str());
            if RESERVED_COLUMNS.contains(&name.as_str())
                && !(windowed_source && is_window_bound(name))
                && !(transient && pseudo)
            {
                if matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))
                    && is_window_bound(name)
                    && window.is_some()
                {
                    continue;
                }
                return Err(Error::semantic(format!(
                    "Reserved column name in select: `{name}`. Please remove or alias the column."
                )));
            }
        }
        for (e, _) in &items {
            if let SqlExpr::Case {
                conditions,
                else_result,
                ..
            } = e
            {
                let all_null = conditions.iter().all(|c| is_null_literal(&c.result))
                    && else_result.as_deref().is_none_or(is_null_literal);
                if all_null {
                    return Err(Error::semantic(
                        "Invalid Case expression. All case branches have NULL type",
                    ));
                }
            }
            if is_null_literal(e) {
                return Err(Error::semantic(
                    "Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR).",
                ));
            }
        }
        let mut seen = HashMap::new();
        for (_, name) in &items {
            if seen.insert(name.clone(), ()).is_some() {
                return Err(Error::semantic(format!(
                    "Duplicate value columns found in schema: `{name}`"
                )));
            }
        }

        let resolve = |e: &mut SqlExpr| -> Result<()> {
            rewrite::rewrite(e)?;
            if let Some(s) = scope {
                s.resolve(e, None)?;
            }
            Ok(())
        };
        let mut selection = q.selection.clone();
        if let Some(s) = selection.as_mut() {
            resolve(s)?;
        }
        let mut having = q.having.clone();
        if let Some(h) = having.as_mut() {
            resolve(h)?;
        }
        let mut group_by = q.group_by.clone();
        for g in group_by.iter_mut() {
            resolve(g)?;
        }
        let mut partition_by = q.partition_by.clone();
        for p in partition_by.iter_mut() {
            resolve(p)?;
        }
        if partition_by.len() > 1 && partition_by.iter().any(is_null_literal) {
            return Err(Error::semantic(
                "Cannot PARTITION BY multiple columns including NULL",
            ));
        }
        // PARTITION BY applies to the input: its columns are the source's.
        for p in &partition_by {
            let mut unknown = None;
            let _ = datafusion::sql::sqlparser::ast::visit_expressions(p, |x| {
                if let Some(name) = bare_column(x) {
                    let known = src.columns.iter().any(|c| c.name == name)
                        || [ROWTIME, ROWPARTITION, ROWOFFSET].contains(&name.as_str())
                        || (windowed_source && is_window_bound(&name));
                    if !known && unknown.is_none() {
                        unknown = Some(name);
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            if let Some(name) = unknown {
                let mut msg = format!("PARTITION BY column '{name}' cannot be resolved.");
                if items.iter().any(|(_, n)| *n == name) {
                    msg.push_str(&format!(
                        " '{name}' must be a column in the source schema since PARTITION BY is applied on the input."
                    ));
                }
                return Err(Error::semantic(msg));
            }
        }
        // `SELECT *` with PARTITION BY an expression: the expression is the key.
        let has_wildcard = q.items.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
        if has_wildcard && !(partition_by.len() == 1 && is_null_literal(&partition_by[0])) {
            for p in &partition_by {
                if items.iter().any(|(e, _)| canonical(e) == canonical(p)) {
                    continue;
                }
                let name = match default_name(p) {
                    Some(n) => n,
                    None => {
                        let n = format!("KSQL_COL_{generated}");
                        generated += 1;
                        n
                    }
                };
                if items.iter().any(|(_, n)| *n == name) {
                    continue;
                }
                items.insert(0, (p.clone(), name));
            }
        }
        // Window bounds are only for the SELECT of windowed aggregations.
        let bound_allowed_in_select = window.is_some() || windowed_source;
        if let (Some(s), false) = (&selection, windowed_source) {
            if let Some(b) = window_bound_in(s) {
                return Err(Error::semantic(format!(
                    "Error in WHERE expression: Unknown column {b}."
                )));
            }
        }
        for (clause, exprs) in [
            ("WHERE", selection.iter().collect::<Vec<_>>()),
            ("HAVING", having.iter().collect()),
            ("GROUP BY", group_by.iter().collect()),
            ("PARTITION BY", partition_by.iter().collect()),
        ] {
            for e in exprs {
                if let Some(b) = window_bound_in(e) {
                    if !(windowed_source && clause == "WHERE") {
                        return Err(Error::semantic(format!(
                            "Window bounds column {b} can only be used in the SELECT clause of windowed aggregations and can not be passed to aggregate functions."
                        )));
                    }
                }
            }
        }
        for (e, _) in &items {
            let in_aggregate = window_bound_in_aggregate(self, e);
            if in_aggregate.is_some() || !bound_allowed_in_select {
                if let Some(b) = in_aggregate.or_else(|| window_bound_in(e)) {
                    return Err(Error::semantic(format!(
                        "Window bounds column {b} can only be used in the SELECT clause of windowed aggregations and can not be passed to aggregate functions."
                    )));
                }
            }
        }
        if q.emit == Some(Emit::Final) && window.is_none() {
            return Err(Error::semantic(
                "EMIT FINAL is only supported for windowed aggregations.",
            ));
        }
        if !group_by.is_empty() && !partition_by.is_empty() {
            return Err(Error::semantic(
                "PARTITION BY and GROUP BY in the same query is not supported.",
            ));
        }
        // Every function must exist.
        {
            let mut all: Vec<&SqlExpr> = items.iter().map(|(e, _)| e).collect();
            all.extend(selection.iter());
            all.extend(having.iter());
            all.extend(group_by.iter());
            all.extend(partition_by.iter());
            for e in all {
                if let Some(name) = unknown_function(self, e) {
                    return Err(Error::semantic(format!(
                        "Can't find any functions with the name '{name}'"
                    )));
                }
            }
        }
        let aggregate_query = !group_by.is_empty();
        if aggregate_query && src.value_format.kind == crate::connectors::formats::FormatKind::Kafka
        {
            return Err(Error::semantic(format!(
                "Source(s) {} are using the 'KAFKA' value format. This format does not yet support GROUP BY.",
                src.name
            )));
        }
        {
            let mut seen: Vec<String> = Vec::new();
            for g in &group_by {
                let c = canonical(g);
                if seen.contains(&c) {
                    return Err(Error::semantic(format!(
                        "Duplicate GROUP BY expression: {}.{}",
                        src.name,
                        c.replace('"', "")
                    )));
                }
                seen.push(c);
            }
        }
        if aggregate_query && src.kind == SourceKind::Table {
            let mut stream_only: Vec<String> = Vec::new();
            let mut all: Vec<&SqlExpr> = items.iter().map(|(e, _)| e).collect();
            all.extend(having.iter());
            for e in all {
                for name in aggregate_functions_in(self, e) {
                    if !crate::functions::aggregate::supports_undo(&name.to_lowercase())
                        && !stream_only.contains(&name)
                    {
                        stream_only.push(name);
                    }
                }
            }
            if !stream_only.is_empty() {
                let list = match stream_only.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} and {last}", rest.join(", "))
                    }
                    _ => stream_only.join(""),
                };
                return Err(Error::semantic(format!(
                    "The aggregation functions {list} cannot be applied to a table source, only to a stream source."
                )));
            }
        }
        for g in &group_by {
            if let Some(name) = aggregate_function_in(self, g) {
                return Err(Error::semantic(format!(
                    "GROUP BY does not support aggregate functions: {name} is an aggregate function."
                )));
            }
        }
        if aggregate_query {
            let has_agg = items
                .iter()
                .any(|(e, _)| aggregate_function_in(self, e).is_some())
                || having
                    .as_ref()
                    .is_some_and(|h| aggregate_function_in(self, h).is_some());
            if !has_agg {
                return Err(Error::semantic(
                    "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
                ));
            }
        }
        // ksqlDB: with aggregation, every select expression is an aggregate,
        // a GROUP BY expression, or built from those and literals.
        let aggregating = !group_by.is_empty()
            || items
                .iter()
                .any(|(e, _)| aggregate_function_in(self, e).is_some())
            || window.is_some();
        for (e, _) in &items {
            if let Some(nested) = nested_aggregate(self, e) {
                return Err(Error::semantic(format!(
                    "Aggregate functions can not be nested: {nested}"
                )));
            }
        }
        if aggregating {
            let mut groups: Vec<String> = group_by.iter().map(canonical).collect();
            if window.is_some() {
                for b in [WINDOWSTART, WINDOWEND] {
                    groups.push(canonical(&SqlExpr::Identifier(Ident::with_quote('"', b))));
                }
            }
            let bad: Vec<String> = items
                .iter()
                .filter(|(e, _)| not_grouped(self, e, &groups).is_some())
                .map(|(e, _)| display::ksql(e))
                .collect();
            if !bad.is_empty() {
                let list = bad.join(", ");
                let hint = if window.is_some() && group_by.is_empty() {
                    String::new()
                } else {
                    format!(": {list}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.")
                };
                return Err(Error::semantic(format!(
                    "Non-aggregate SELECT expression(s) not part of GROUP BY{hint}"
                )));
            }
            if let Some(h) = &having {
                if let Some(col) = not_grouped(self, h, &groups) {
                    return Err(Error::semantic(format!(
                        "Non-aggregate HAVING expression not part of GROUP BY: {col}"
                    )));
                }
            }
        }
        if window.is_some() && group_by.is_empty() {
            return Err(Error::semantic("WINDOW clause requires a GROUP BY clause."));
        }
        // A push query may aggregate the whole stream (`SELECT COUNT(*) FROM
        // s EMIT CHANGES`): one group, keyed by a constant it does not show.
        let mut df_group_by = group_by.clone();
        if group_by.is_empty() && window.is_none() {
            if let Some(name) = items
                .iter()
                .find_map(|(e, _)| aggregate_function_in(self, e))
            {
                if !transient {
                    return Err(Error::semantic(format!(
                        "Use of aggregate function {name} requires a GROUP BY clause."
                    )));
                }
                df_group_by.push(SqlExpr::Value(
                    datafusion::sql::sqlparser::ast::Value::SingleQuotedString(String::new())
                        .into(),
                ));
            }
        }
        if window.is_some() {
            df_group_by.push(SqlExpr::Identifier(Ident::with_quote('"', WINDOWSTART)));
            df_group_by.push(SqlExpr::Identifier(Ident::with_quote('"', WINDOWEND)));
        }

        // A join's result is keyed by the join key: the select item naming
        // it carries the key's value, whichever side's column it names.
        let join_keys = match &joined {
            Some(j) if group_by.is_empty() && partition_by.is_empty() => {
                let keys = join::key_items(&items, &j.key, target)?;
                if let join::JoinKey::Columns(parts) = &j.key {
                    for (&k, part) in keys.iter().zip(parts) {
                        items[k].0 = SqlExpr::Identifier(Ident::with_quote('"', &part.column));
                    }
                }
                Some(keys)
            }
            _ => None,
        };
        // The DataFusion query: SELECT items FROM source WHERE .. GROUP BY .. HAVING ..
        let alias = match (&q.from.alias, &joined) {
            (Some(a), None) => Some(a.as_str()),
            _ => None,
        };
        let projection = items
            .iter()
            .map(|(e, n)| SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', n),
            })
            .collect();
        // The planning schema is the decoded batch's.
        let plan = self
            .plan_select(
                (&src.name, alias, spec.schema.clone()),
                projection,
                selection,
                df_group_by,
                having,
            )
            .map_err(|e| planning_error(e, &items))?;
        let logical_plan = format!("{}", plan.display_indent());

        let source_keys: Vec<usize> = (0..spec.key_fields.len()).collect();
        let mut lowering = lower::Lowering::new(
            &self.state,
            spec.is_table,
            window.clone(),
            spec.schema.clone(),
            source_keys,
            joined.is_none(),
        );
        lowering.exact_filters = transient;
        let output_schema = lowering.lower_plan(&plan)?;
        let is_table = lowering.is_table;
        let mut ops = lowering.ops;
        if let LogicalPlan::Projection(_) = &plan {
        } else {
            return Err(Error::internal(
                "persistent query plan does not end in a projection",
            ));
        }

        // Key and value columns of the result.
        let index_of = |name: &str| output_schema.fields().iter().position(|f| f.name() == name);
        let key_items: Vec<usize> = if aggregate_query && transient {
            projected(&items, &group_by)
        } else if aggregate_query {
            key_items_for(&items, &group_by, target, "grouping expression")?
        } else if !partition_by.is_empty() {
            if partition_by.len() == 1 && is_null_literal(&partition_by[0]) {
                vec![]
            } else {
                let mut result =
                    key_items_for(&items, &partition_by, target, "partitioning expression");
                // ksqlDB names partitioning expressions with their source.
                if let Err(Error::Semantic { message, .. }) = &mut result {
                    if message.contains("partitioning expression") {
                        let shown: Vec<String> = partition_by
                            .iter()
                            .map(|p| display::ksql(&qualify(p, &qualifier)))
                            .collect();
                        for (p, s) in partition_by.iter().zip(&shown) {
                            *message = message.replace(&canonical(p).replace('"', ""), s);
                        }
                    }
                }
                result?
            }
        } else if let Some(keys) = &join_keys {
            keys.clone()
        } else {
            // The source's key columns. ksqlDB requires them all in the
            // projection, in key order; with its new query planner a stream
            // may drop them and keeps the projection's order.
            let key_names: Vec<String> = src.key_columns().map(|c| c.name.clone()).collect();
            let mut found: Vec<usize> = Vec::new();
            for name in &key_names {
                let uses: Vec<usize> = (0..items.len())
                    .filter(|&i| bare_column(&items[i].0).as_deref() == Some(name.as_str()))
                    .collect();
                if let [a, b, ..] = uses.as_slice() {
                    return Err(Error::semantic(format!(
                        "The projection contains a key column (`{name}`) more than once, aliased as: {} and {}.",
                        items[*a].1, items[*b].1
                    )));
                }
            }
            for (i, (e, _)) in items.iter().enumerate() {
                if bare_column(e).is_some_and(|n| key_names.contains(&n)) {
                    found.push(i);
                }
            }
            // A push query's result is not written anywhere keyed: it may
            // drop the key columns whatever the planner.
            if (src.kind == SourceKind::Table || !self.new_planner) && !transient {
                let key_exprs: Vec<SqlExpr> = key_names
                    .iter()
                    .map(|n| SqlExpr::Identifier(Ident::with_quote('"', n)))
                    .collect();
                key_items_for(&items, &key_exprs, target, "key column")?
            } else {
                found
            }
        };
        let key_columns: Vec<usize> = key_items.clone();
        let value_columns: Vec<usize> = (0..items.len())
            .filter(|i| !key_items.contains(i))
            .collect();
        for &k in &key_columns {
            let f = output_schema.field(k);
            ddl::check_key_type(f.name(), f.data_type())?;
        }
        if value_columns.is_empty() && !transient {
            return Err(Error::semantic("The projection contains no value columns."));
        }
        let rowtime_column =
            index_of(ROWTIME).ok_or_else(|| Error::internal("no ROWTIME in output"))?;
        let (window_columns, out_window) = if window.is_some() || windowed_source {
            // The window bounds as carried (last occurrence: the hidden ones).
            let ws = output_schema
                .fields()
                .iter()
                .rposition(|f| f.name() == WINDOWSTART);
            let we = output_schema
                .fields()
                .iter()
                .rposition(|f| f.name() == WINDOWEND);
            let kw = match (&window, src.window) {
                (Some(w), _) => KeyWindow {
                    kind: match w.assign {
                        WindowAssign::Session { .. } => WindowKind::Session,
                        _ => WindowKind::Time,
                    },
                    size: match w.assign {
                        WindowAssign::Tumbling { size } | WindowAssign::Hopping { size, .. } => {
                            Some(size)
                        }
                        WindowAssign::Session { .. } => None,
                    },
                },
                (None, Some(k)) => k,
                (None, None) => return Err(Error::internal("window without window")),
            };
            match (ws, we) {
                (Some(s), Some(e)) => (Some((s, e)), Some(kw)),
                _ => return Err(Error::internal("windowed output without window bounds")),
            }
        } else {
            (None, None)
        };
        if let (Some(w), Some((ws, _))) = (&window, window_columns) {
            if w.emit_final {
                let mut id = key_columns.clone();
                id.push(ws);
                let retention = match w.assign {
                    WindowAssign::Tumbling { size } | WindowAssign::Hopping { size, .. } => {
                        Some(w.retention.unwrap_or(size + w.grace).max(size + w.grace))
                    }
                    WindowAssign::Session { .. } => None,
                };
                ops.push(OpSpec::Suppress {
                    grace: w.grace,
                    key_columns: id,
                    retention,
                });
            }
        }
        let key_format = joined.as_ref().map(|j| j.key_format.clone());
        let (source, joins, sources) = match joined {
            Some(j) => {
                let mut stages = j.stages;
                // A table join writing straight to its sink forwards
                // ksqlDB's tombstones; one feeding an aggregation must not.
                if let Some(last) = stages.last_mut() {
                    last.spec.emit_unknown_deletes = !aggregate_query;
                }
                (j.primary, stages, j.sources)
            }
            None => (spec, Vec::new(), vec![src.name.clone()]),
        };
        Ok(PlannedQuery {
            source,
            joins,
            key_format,
            ops,
            output_schema,
            key_columns,
            value_columns,
            rowtime_column,
            window_columns,
            window: out_window,
            key_from_source: !aggregate_query && partition_by.is_empty(),
            is_table,
            sources,
            logical_plan,
        })
    }
}

impl Planner {
    /// Plan `SELECT projection FROM table [AS alias] [WHERE ..] [GROUP BY ..]
    /// [HAVING ..]` over a table of `schema` with DataFusion's `SqlToRel`,
    /// then its analyzer (type coercion).
    pub(crate) fn plan_select(
        &self,
        (table, alias, schema): (&str, Option<&str>, SchemaRef),
        projection: Vec<SelectItem>,
        selection: Option<SqlExpr>,
        group_by: Vec<SqlExpr>,
        having: Option<SqlExpr>,
    ) -> std::result::Result<LogicalPlan, datafusion::error::DataFusionError> {
        use datafusion::error::DataFusionError;
        let template = match alias {
            Some(a) => format!("SELECT 1 FROM \"{table}\" AS \"{a}\""),
            None => format!("SELECT 1 FROM \"{table}\""),
        };
        let mut stmts = SqlParser::parse_sql(&KsqlDialect, &template)
            .map_err(|e| DataFusionError::Internal(e.to_string()))?;
        let mut stmt = stmts
            .pop()
            .ok_or_else(|| DataFusionError::Internal("empty template".into()))?;
        let SqlStatement::Query(query) = &mut stmt else {
            return Err(DataFusionError::Internal("template is not a query".into()));
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Err(DataFusionError::Internal("template is not a select".into()));
        };
        select.projection = projection;
        select.selection = selection;
        select.group_by = GroupByExpr::Expressions(group_by, vec![]);
        select.having = having;
        let mut provider = context::Provider::new(&self.state);
        provider.add_table(table, schema);
        let mut opts = ParserOptions::new();
        opts.enable_ident_normalization = false;
        opts.map_string_types_to_utf8view = false;
        let plan = SqlToRel::new_with_options(&provider, opts).sql_statement_to_plan(stmt)?;
        self.state
            .analyzer()
            .execute_and_check(plan, self.state.config_options(), |_, _| {})
    }
}

/// A provider with no tables, for evaluating `INSERT ... VALUES`.
pub(crate) fn values_provider(state: &SessionState) -> context::Provider<'_> {
    context::Provider::new(state)
}

/// Rewrite an expression to DataFusion's semantics (see [`rewrite`]).
pub(crate) fn rewrite_expr(e: &mut SqlExpr) -> Result<()> {
    rewrite::rewrite(e)
}

fn window_config(w: WindowSpec, emit_final: bool) -> WindowConfig {
    let (assign, grace, retention) = match w {
        WindowSpec::Tumbling {
            size,
            grace,
            retention,
        } => (WindowAssign::Tumbling { size }, grace, retention),
        WindowSpec::Hopping {
            size,
            advance,
            grace,
            retention,
        } => (WindowAssign::Hopping { size, advance }, grace, retention),
        WindowSpec::Session {
            gap,
            grace,
            retention,
        } => (WindowAssign::Session { gap }, grace, retention),
    };
    WindowConfig {
        assign,
        // ksqlDB: without GRACE PERIOD, EMIT FINAL emits at window end;
        // EMIT CHANGES windows accept records 24 hours late.
        grace: grace.unwrap_or(if emit_final { 0 } else { DEFAULT_GRACE_MS }),
        retention,
        emit_final,
    }
}

fn is_window_bound(name: &str) -> bool {
    name == WINDOWSTART || name == WINDOWEND
}

fn is_null_literal(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Value(v) if matches!(v.value, datafusion::sql::sqlparser::ast::Value::Null))
}

/// The column name ksqlDB gives an unaliased select expression.
fn default_name(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Identifier(i) => Some(i.value.clone()),
        SqlExpr::CompoundIdentifier(is) => is.last().map(|i| i.value.clone()),
        SqlExpr::Function(f) if f.name.to_string() == "ksql_field" => match &f.args {
            datafusion::sql::sqlparser::ast::FunctionArguments::List(l) => match l.args.get(1) {
                Some(datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                    datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(SqlExpr::Value(v)),
                )) => match &v.value {
                    datafusion::sql::sqlparser::ast::Value::SingleQuotedString(s) => {
                        Some(s.clone())
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// A canonical text of an expression, with source qualifiers dropped.
fn canonical(e: &SqlExpr) -> String {
    let mut e = e.clone();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let SqlExpr::CompoundIdentifier(is) = x {
            if let Some(last) = is.last().cloned() {
                *x = SqlExpr::Identifier(last);
            }
        }
        if let SqlExpr::Nested(inner) = x {
            *x = inner.as_ref().clone();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    e.to_string()
}

fn window_bound_in(e: &SqlExpr) -> Option<&'static str> {
    let text = canonical(e);
    if text.contains("\"WINDOWSTART\"") {
        Some(WINDOWSTART)
    } else if text.contains("\"WINDOWEND\"") {
        Some(WINDOWEND)
    } else {
        None
    }
}

/// A window bound passed to an aggregate function inside `e`.
fn window_bound_in_aggregate(p: &Planner, e: &SqlExpr) -> Option<&'static str> {
    let mut found = None;
    let mut e = e.clone();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let SqlExpr::Function(f) = x {
            if p.state
                .aggregate_functions()
                .contains_key(&f.name.to_string())
            {
                if let Some(b) = window_bound_in(&SqlExpr::Function(f.clone())) {
                    found = Some(b);
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

/// The upper-case name of the first aggregate function call in `e`.
fn aggregate_function_in(p: &Planner, e: &SqlExpr) -> Option<String> {
    aggregate_functions_in(p, e).into_iter().next()
}

/// An aggregate call with another aggregate call among its arguments.
fn nested_aggregate(p: &Planner, e: &SqlExpr) -> Option<String> {
    let mut found = None;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
        if let SqlExpr::Function(f) = x {
            if found.is_none()
                && p.state
                    .aggregate_functions()
                    .contains_key(&f.name.to_string())
            {
                if let datafusion::sql::sqlparser::ast::FunctionArguments::List(l) = &f.args {
                    let inner = l.args.iter().any(|a| match a {
                        datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                            datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(arg),
                        ) => aggregate_function_in(p, arg).is_some(),
                        _ => false,
                    });
                    if inner {
                        found = Some(display::ksql(x));
                    }
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// The first column of `e` that is neither inside an aggregate call nor
/// part of a GROUP BY expression (`groups` are canonical texts).
fn not_grouped(p: &Planner, e: &SqlExpr, groups: &[String]) -> Option<String> {
    if groups.contains(&canonical(e)) {
        return None;
    }
    match e {
        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => Some(display::ksql(e)),
        SqlExpr::Value(_) => None,
        SqlExpr::Function(f)
            if p.state
                .aggregate_functions()
                .contains_key(&f.name.to_string()) =>
        {
            None
        }
        SqlExpr::Function(f) => match &f.args {
            datafusion::sql::sqlparser::ast::FunctionArguments::List(l) => {
                l.args.iter().find_map(|a| match a {
                    datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                        datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(x),
                    ) => not_grouped(p, x, groups),
                    _ => None,
                })
            }
            _ => None,
        },
        SqlExpr::BinaryOp { left, right, .. } => {
            not_grouped(p, left, groups).or_else(|| not_grouped(p, right, groups))
        }
        SqlExpr::UnaryOp { expr, .. }
        | SqlExpr::Nested(expr)
        | SqlExpr::Cast { expr, .. }
        | SqlExpr::IsNull(expr)
        | SqlExpr::IsNotNull(expr) => not_grouped(p, expr, groups),
        // Other forms (CASE, IN, BETWEEN, ...): check every column inside.
        other => {
            let mut found = None;
            let mut e = other.clone();
            // Columns inside aggregates and GROUP BY expressions are fine:
            // replace those subtrees (children first) before looking.
            let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
                let is_aggregate = matches!(x, SqlExpr::Function(f) if p.state.aggregate_functions().contains_key(&f.name.to_string()));
                if is_aggregate || groups.contains(&canonical(x)) {
                    *x = SqlExpr::Value(datafusion::sql::sqlparser::ast::Value::Null.into());
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            let _ = datafusion::sql::sqlparser::ast::visit_expressions(&e, |x| {
                if found.is_none()
                    && matches!(x, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))
                    && !groups.contains(&canonical(x))
                {
                    found = Some(display::ksql(x));
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            found
        }
    }
}

/// Upper-case names of every aggregate function called in `e`, in order.
fn aggregate_functions_in(p: &Planner, e: &SqlExpr) -> Vec<String> {
    let mut found = Vec::new();
    let mut e = e.clone();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let SqlExpr::Function(f) = x {
            let name = f.name.to_string();
            if p.state.aggregate_functions().contains_key(&name) {
                found.push(name.to_uppercase());
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// The upper-case name of the first function in `e` that does not exist.
fn unknown_function(p: &Planner, e: &SqlExpr) -> Option<String> {
    let mut found = None;
    let mut e = e.clone();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let SqlExpr::Function(f) = x {
            let name = f.name.to_string();
            let known = p.state.scalar_functions().contains_key(&name)
                || p.state.aggregate_functions().contains_key(&name)
                || p.state.window_functions().contains_key(&name)
                || p.state.higher_order_functions().contains_key(&name)
                || name == "unnest";
            if !known {
                found = Some(name.to_uppercase());
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

/// The expression with its bare column names qualified by `source`.
fn qualify(e: &SqlExpr, source: &str) -> SqlExpr {
    let mut e = e.clone();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let SqlExpr::Identifier(i) = x {
            *x = SqlExpr::CompoundIdentifier(vec![Ident::with_quote('"', source), i.clone()]);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    e
}

/// The column an expression names, if it is a bare (possibly qualified) column.
fn bare_column(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Identifier(i) => Some(i.value.clone()),
        SqlExpr::CompoundIdentifier(is) => is.last().map(|i| i.value.clone()),
        _ => None,
    }
}

/// For each key expression, the one select item equal to it.
/// The items that are these key expressions, for those that are there.
fn projected(items: &[(SqlExpr, String)], keys: &[SqlExpr]) -> Vec<usize> {
    keys.iter()
        .filter_map(|k| {
            let kc = canonical(k);
            (0..items.len()).find(|&i| canonical(&items[i].0) == kc)
        })
        .collect()
}

fn key_items_for(
    items: &[(SqlExpr, String)],
    keys: &[SqlExpr],
    target: &str,
    what: &str,
) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for k in keys {
        let kc = canonical(k);
        let matches: Vec<usize> = (0..items.len())
            .filter(|&i| canonical(&items[i].0) == kc)
            .collect();
        match matches.as_slice() {
            [] => missing.push(kc.replace('"', "")),
            [one] => out.push(*one),
            [a, b, ..] if what == "grouping expression" => {
                return Err(Error::semantic(format!(
                    "The projection contains a key column more than once: `{}` and `{}`.",
                    items[*a].1, items[*b].1
                )))
            }
            [a, b, ..] => {
                return Err(Error::semantic(format!(
                    "The projection contains a key column (`{}`) more than once, aliased as: {} and {}.",
                    kc.replace('"', ""),
                    items[*a].1,
                    items[*b].1
                )))
            }
        }
    }
    if !missing.is_empty() {
        // For the source's key columns ksqlDB names them all.
        if what == "key column" {
            missing = keys.iter().map(|k| canonical(k).replace('"', "")).collect();
        }
        let (noun, list) = if missing.len() == 1 {
            (what.to_string(), missing[0].clone())
        } else {
            let (last, rest) = missing
                .split_last()
                .map(|(l, r)| (l.clone(), r.to_vec()))
                .unwrap_or_default();
            (
                format!("{what}s"),
                format!("{} and {last}", rest.join(", ")),
            )
        };
        return Err(Error::semantic(format!(
            "The query used to build `{target}` must include the {noun} {list} in its projection (eg, SELECT {}...).",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// DataFusion planning errors in ksqlDB's words where they differ.
fn planning_error(e: datafusion::error::DataFusionError, items: &[(SqlExpr, String)]) -> Error {
    let msg = e.strip_backtrace();
    let msg = msg
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    if let Some(rest) = msg.strip_prefix("Invalid function '") {
        let name = rest.split('\'').next().unwrap_or_default().to_uppercase();
        return Error::semantic(format!("Can't find any functions with the name '{name}'"));
    }
    if msg.contains("must appear in the GROUP BY clause")
        || msg.contains("could not be resolved from available columns")
    {
        let offending: Vec<String> = items
            .iter()
            .filter(|(e, _)| {
                msg.contains(&canonical(e).replace('"', "")) || msg.contains(&e.to_string())
            })
            .map(|(e, _)| canonical(e).replace('"', ""))
            .collect();
        let what = if offending.is_empty() {
            msg.clone()
        } else {
            offending.join(", ")
        };
        return Error::semantic(format!(
            "Non-aggregate SELECT expression(s) not part of GROUP BY: {what}\nEither add the column(s) to the GROUP BY or remove them from the SELECT."
        ));
    }
    if let Some(rest) = msg.strip_prefix("No field named ") {
        let end = rest
            .find(".\n")
            .or_else(|| rest.find(". "))
            .unwrap_or(rest.len());
        let name = rest[..end].replace('"', "");
        return Error::semantic(format!("SELECT column '{name}' cannot be resolved."));
    }
    Error::semantic(msg)
}

//! Planning joins: the FROM clause of a query with JOINs becomes a chain of
//! two-way [`JoinSpec`]s and one virtual source, the joined rows, that the
//! rest of the query (WHERE, SELECT, GROUP BY, PARTITION BY) is planned
//! over like any single source.
//!
//! As in ksqlDB, the joined schema names every column `ALIAS_COLUMN`
//! (`L_ID`, `R_NAME`, also `L_ROWTIME`); the statement's column references
//! are resolved against it (`L.ID` → `L_ID`, an unqualified `NAME` to the
//! one source that has it). When neither side of the join criteria is a
//! plain column, or for FULL OUTER joins, the result carries a synthetic key
//! column `ROWKEY` holding the join key.
//!
//! The kinds follow the sides: stream-stream (needs WITHIN), stream-table
//! (the table side must be joined on its primary key), table-table on both
//! primary keys, and foreign-key table-table (a left expression against the
//! right table's primary key). Sides whose key is not the join expression
//! are re-keyed by the join operator itself: it evaluates the join
//! expression on each row, which is what repartitioning achieves across
//! instances.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr, Ident, SelectItem};

use super::ast::{self, Query, SourceKind};
use super::{display, lower, rewrite, Planner};
use crate::catalog::types::SqlType;
use crate::catalog::{Catalog, Column, ColumnKind, Source};
use crate::connectors::formats::{FormatKind, WindowKind};
use crate::error::{Error, Result};
use crate::runtime::{
    JoinInput, JoinKind, JoinSpec, JoinStage, JoinType, JoinWindow, SourceSpec, ROWOFFSET,
    ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART,
};

/// Compiled join expressions.
type CompiledKey = Vec<Arc<dyn PhysicalExpr>>;

/// Name of the virtual source of joined rows.
pub(crate) const JOINED: &str = "KSQL_JOINED";

/// One source of a join and its columns in the joined schema.
#[derive(Debug, Clone)]
pub(crate) struct ScopeSource {
    pub alias: String,
    pub name: String,
    /// (column name in the source, name in the joined schema, part of `*`).
    pub columns: Vec<(String, String, bool)>,
}

/// The sources visible to a join query's expressions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub sources: Vec<ScopeSource>,
    /// Synthetic key columns (ROWKEY) of the joins so far.
    pub synthetic: Vec<String>,
}

/// How a column reference is written after resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// The joined schema's name (`L_ID`).
    Joined,
    /// The source's own column name (`ID`), for expressions evaluated on
    /// a source's records before the join.
    Source,
    /// `ALIAS.COLUMN`, for messages.
    Qualified,
}

impl Scope {
    fn source_index(&self, qualifier: &str) -> Result<usize> {
        self.sources
            .iter()
            .position(|s| s.alias == qualifier || s.name == qualifier)
            .ok_or_else(|| {
                Error::semantic(format!(
                    "'{qualifier}' is not a valid stream/table name or alias."
                ))
            })
    }

    /// Resolve a column reference to (source index, column index).
    fn lookup(&self, qualifier: Option<&str>, column: &str) -> Result<Option<(usize, usize)>> {
        if let Some(q) = qualifier {
            let s = self.source_index(q)?;
            return Ok(self.sources[s]
                .columns
                .iter()
                .position(|c| c.0 == column)
                .map(|c| (s, c)));
        }
        let found: Vec<(usize, usize)> = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(s, src)| {
                src.columns
                    .iter()
                    .position(|c| c.0 == column)
                    .map(|c| (s, c))
            })
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(Error::semantic(format!(
                "Column '{column}' is ambiguous. Could be {}.",
                many.iter()
                    .map(|(s, _)| format!("{}.{column}", self.sources[*s].alias))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))),
        }
    }

    /// How many sources have a column of this name.
    fn sources_with(&self, column: &str) -> usize {
        self.sources
            .iter()
            .filter(|s| s.columns.iter().any(|c| c.0 == column))
            .count()
    }

    /// The name ksqlDB gives an unaliased column reference in a join:
    /// the column's own name when only one source has it, else
    /// `ALIAS_COLUMN`.
    pub(crate) fn default_name(&self, e: &SqlExpr) -> Result<Option<String>> {
        Ok(match e {
            SqlExpr::Identifier(i) => Some(i.value.clone()),
            SqlExpr::CompoundIdentifier(is) if is.len() == 2 => {
                let (q, c) = (&is[0].value, &is[1].value);
                let s = self.source_index(q)?;
                if self.sources_with(c) > 1 {
                    Some(format!("{}_{c}", self.sources[s].alias))
                } else {
                    Some(c.clone())
                }
            }
            _ => None,
        })
    }

    /// Rewrite the column references of `e` (already in ksqlDB's upper
    /// case) to the joined schema's names; returns the sources referenced.
    /// Unknown columns are errors when `clause` names the clause (`JOIN
    /// ON`), and are left for the planner to report otherwise.
    pub(crate) fn resolve(&self, e: &mut SqlExpr, clause: Option<&str>) -> Result<Vec<usize>> {
        self.resolve_as(e, clause, Naming::Joined)
    }

    fn resolve_as(
        &self,
        e: &mut SqlExpr,
        clause: Option<&str>,
        naming: Naming,
    ) -> Result<Vec<usize>> {
        let mut used: Vec<usize> = Vec::new();
        let mut error = None;
        // `alias.column[1]` parses as a field access on `alias`: make it
        // the qualified column it is.
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(e, |x| {
            if let Some((q, c)) = field_of_alias(x) {
                if self.source_index(&q.value).is_ok() {
                    *x = SqlExpr::CompoundIdentifier(vec![q, Ident::with_quote('"', c)]);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(e, |x| {
            let (qualifier, column, span) = match x {
                SqlExpr::Identifier(i) => (None, i.value.clone(), i.span),
                SqlExpr::CompoundIdentifier(is) if is.len() == 2 => {
                    (Some(is[0].value.clone()), is[1].value.clone(), is[0].span)
                }
                _ => return std::ops::ControlFlow::Continue(()),
            };
            let at = |err: Error| {
                if span.start.line > 0 {
                    err.with_position(crate::error::Position {
                        line: span.start.line,
                        column: span.start.column,
                    })
                } else {
                    err
                }
            };
            if qualifier.is_none()
                && (self.synthetic.contains(&column)
                    || [ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND]
                        .contains(&column.as_str()))
            {
                return std::ops::ControlFlow::Continue(());
            }
            match self.lookup(qualifier.as_deref(), &column) {
                Ok(Some((s, c))) => {
                    if !used.contains(&s) {
                        used.push(s);
                    }
                    let (orig, joined, _) = &self.sources[s].columns[c];
                    *x = match naming {
                        Naming::Joined => SqlExpr::Identifier(Ident::with_quote('"', joined)),
                        Naming::Source => SqlExpr::Identifier(Ident::with_quote('"', orig)),
                        Naming::Qualified => SqlExpr::CompoundIdentifier(vec![
                            Ident::new(&self.sources[s].alias),
                            Ident::new(orig),
                        ]),
                    };
                    std::ops::ControlFlow::Continue(())
                }
                Ok(None) => {
                    if let Some(clause) = clause {
                        let shown = match &qualifier {
                            Some(q) => format!("{q}.{column}"),
                            None => column.clone(),
                        };
                        error = Some(at(Error::semantic(format!(
                            "{clause} column '{shown}' cannot be resolved."
                        ))));
                        return std::ops::ControlFlow::Break(());
                    }
                    std::ops::ControlFlow::Continue(())
                }
                Err(e) => {
                    error = Some(at(e));
                    std::ops::ControlFlow::Break(())
                }
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(used),
        }
    }

    /// The joined names of `*` (all sources) or `alias.*`.
    pub(crate) fn star(&self, qualifier: Option<&str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        match qualifier {
            None => {
                out.extend(self.synthetic.iter().cloned());
                for s in &self.sources {
                    out.extend(s.columns.iter().filter(|c| c.2).map(|c| c.1.clone()));
                }
            }
            Some(q) => {
                let s = self.source_index(q)?;
                out.extend(
                    self.sources[s]
                        .columns
                        .iter()
                        .filter(|c| c.2)
                        .map(|c| c.1.clone()),
                );
            }
        }
        Ok(out)
    }
}

/// One column of a join result's key.
#[derive(Debug, Clone)]
pub(crate) struct KeyPart {
    /// Columns (joined names) equal to it: the first of them in the
    /// projection, by this order, is the key column.
    pub names: Vec<String>,
    /// Their names as written (`L.A`), for messages.
    pub shown: Vec<String>,
    /// The column holding the key's value (the named columns themselves
    /// may be NULL on an outer join's missing side).
    pub column: String,
}

/// How the joined rows are keyed.
#[derive(Debug, Clone)]
pub(crate) enum JoinKey {
    /// One part per join condition.
    Columns(Vec<KeyPart>),
    /// Synthetic key columns (`ROWKEY`, ...).
    Synthetic {
        names: Vec<String>,
        full_outer: bool,
    },
    /// A foreign-key join: the left table's primary key columns,
    /// (source name, joined name) each.
    Foreign {
        table: String,
        columns: Vec<(String, String)>,
    },
}

/// The FROM clause of a join query, planned.
pub(crate) struct JoinedFrom {
    /// The joined rows as a source (columns named as in the joined schema).
    pub source: Source,
    /// The batches the last join emits.
    pub schema: SchemaRef,
    pub primary: SourceSpec,
    pub stages: Vec<JoinStage>,
    pub scope: Scope,
    pub key: JoinKey,
    /// Names of every source joined.
    pub sources: Vec<String>,
    /// The result's key format: the first source's that has a key (NONE
    /// when none has).
    pub key_format: crate::connectors::formats::Format,
}

/// A planned side of the join criteria.
#[derive(Clone)]
struct Side {
    /// The expression, resolved for the side's input.
    expr: SqlExpr,
    /// The joined name when the expression is a plain column.
    column: Option<String>,
    /// The expression as written (upper case), for messages.
    shown: String,
    /// Source referenced.
    source: usize,
}

fn join_words(t: ast::JoinType) -> &'static str {
    match t {
        ast::JoinType::Inner => "[INNER] JOIN",
        ast::JoinType::Left => "LEFT [OUTER] JOIN",
        ast::JoinType::Right => "RIGHT [OUTER] JOIN",
        ast::JoinType::Full => "[FULL] OUTER JOIN",
    }
}

fn runtime_join_type(t: ast::JoinType) -> JoinType {
    match t {
        ast::JoinType::Inner => JoinType::Inner,
        ast::JoinType::Left => JoinType::Left,
        ast::JoinType::Right => JoinType::Right,
        ast::JoinType::Full => JoinType::Full,
    }
}

fn strip_nested(e: &SqlExpr) -> &SqlExpr {
    match e {
        SqlExpr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

/// The input of a join as the runtime sees it.
fn join_input(schema: &SchemaRef, width: usize) -> Result<JoinInput> {
    let find = |name: &str| {
        schema
            .fields()
            .iter()
            .rposition(|f| f.name() == name)
            .ok_or_else(|| Error::internal(format!("join input without {name}")))
    };
    let window = match (find(WINDOWSTART), find(WINDOWEND)) {
        (Ok(s), Ok(e)) => Some((s, e)),
        _ => None,
    };
    Ok(JoinInput {
        schema: schema.clone(),
        width,
        rowtime: find(ROWTIME)?,
        partition: find(ROWPARTITION)?,
        offset: find(ROWOFFSET)?,
        window,
    })
}

impl Planner {
    /// Plan expressions over a table of `schema`; returns them typed and
    /// coerced by DataFusion, with the input schema they refer to.
    fn plan_exprs_over(
        &self,
        schema: &SchemaRef,
        exprs: &[SqlExpr],
    ) -> Result<(Vec<Expr>, datafusion::common::DFSchemaRef)> {
        let projection = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', format!("KSQL_E{i}")),
            })
            .collect();
        let plan = self
            .plan_select(
                ("KSQL_INPUT", None, schema.clone()),
                projection,
                None,
                Vec::new(),
                None,
            )
            .map_err(|e| Error::semantic(e.strip_backtrace()))?;
        let LogicalPlan::Projection(p) = plan else {
            return Err(Error::internal("expression plan is not a projection"));
        };
        let exprs = p
            .expr
            .iter()
            .map(|e| match e {
                Expr::Alias(a) => a.expr.as_ref().clone(),
                other => other.clone(),
            })
            .collect();
        Ok((exprs, p.input.schema().clone()))
    }

    /// Compile expressions over a join input.
    fn compile_over(
        &self,
        schema: &SchemaRef,
        exprs: &[SqlExpr],
    ) -> Result<(CompiledKey, Vec<DataType>)> {
        let (planned, df) = self.plan_exprs_over(schema, exprs)?;
        let mut out = Vec::new();
        let mut types = Vec::new();
        for e in &planned {
            types.push(lower::normal_type(&e.get_type(&df)?));
            out.push(lower::physical_expr(self.state(), e, &df)?);
        }
        Ok((out, types))
    }

    /// Plan the FROM clause of a query with joins.
    pub(crate) fn plan_joins(
        &self,
        catalog: &Catalog,
        q: &Query,
        window_columns: bool,
    ) -> Result<JoinedFrom> {
        // The sources, in order; no source twice.
        let mut refs = vec![&q.from];
        refs.extend(q.joins.iter().map(|j| &j.right));
        let mut sources: Vec<&Source> = Vec::new();
        for r in &refs {
            let src = catalog.source(&r.name).ok_or_else(|| {
                Error::semantic(format!("Source `{}` does not exist.", r.name))
                    .with_position(r.position)
            })?;
            if sources.iter().any(|s| s.name == src.name) {
                return Err(if refs.len() == 2 {
                    Error::semantic(format!(
                        "Can not join '{0}' to '{0}': self joins are not yet supported.",
                        src.name
                    ))
                } else {
                    Error::semantic(format!(
                        "N-way joins do not support multiple occurrences of the same source. Source: '{}'",
                        src.name
                    ))
                });
            }
            sources.push(src);
        }
        let kafka: Vec<&str> = sources
            .iter()
            .filter(|s| s.value_format.kind == FormatKind::Kafka)
            .map(|s| s.name.as_str())
            .collect();
        if !kafka.is_empty() {
            return Err(Error::semantic(format!(
                "Source(s) {} are using the 'KAFKA' value format. This format does not yet support JOIN.",
                kafka.join(", ")
            )));
        }
        let specs = sources
            .iter()
            .map(|s| self.source_spec(s, false))
            .collect::<Result<Vec<_>>>()?;

        // Every source's columns, named ALIAS_COLUMN in the joined schema.
        let mut scope = Scope::default();
        for (r, (src, spec)) in refs.iter().zip(sources.iter().zip(&specs)) {
            let alias = r.alias.clone().unwrap_or_else(|| src.name.clone());
            let columns = spec
                .schema
                .fields()
                .iter()
                .map(|f| {
                    let pseudo = [ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND]
                        .contains(&f.name().as_str());
                    (f.name().clone(), format!("{alias}_{}", f.name()), !pseudo)
                })
                .collect();
            scope.sources.push(ScopeSource {
                alias,
                name: src.name.clone(),
                columns,
            });
        }
        // Names of all columns, for choosing a synthetic key's name.
        let taken: Vec<String> = sources
            .iter()
            .flat_map(|s| s.columns.iter().map(|c| c.name.clone()))
            .chain(
                scope
                    .sources
                    .iter()
                    .flat_map(|s| s.columns.iter().map(|c| c.1.clone())),
            )
            .collect();

        let mut stages: Vec<JoinStage> = Vec::new();
        // The left input so far: schema, width, kind, window, and which
        // sources it holds.
        let mut left_schema = specs[0].schema.clone();
        let mut left_width = left_schema.fields().len();
        let mut left_is_table = sources[0].kind == SourceKind::Table;
        let mut left_window = sources[0].window;
        let mut left_fields: Vec<Field> = left_schema
            .fields()
            .iter()
            .zip(&scope.sources[0].columns)
            .map(|(f, c)| Field::new(&c.1, f.data_type().clone(), true))
            .collect();
        let mut key: Option<JoinKey> = None;
        // Expressions (as shown, qualified) equal to the current key, and
        // the column holding it.
        let mut key_exprs: Vec<String> = Vec::new();
        let mut key_column = String::new();
        let mut visible = Scope {
            sources: vec![scope.sources[0].clone()],
            synthetic: Vec::new(),
        };
        // Every join's criteria first: which sides they reference.
        let mut criteria = Vec::new();
        {
            let mut seen = Scope {
                sources: vec![scope.sources[0].clone()],
                synthetic: Vec::new(),
            };
            for (j, join) in q.joins.iter().enumerate() {
                seen.sources.push(scope.sources[j + 1].clone());
                check_qualifiers(&join.on, &scope)?;
                criteria.push(join_criteria(join, j + 1, &seen, &sources[j + 1].name)?);
            }
        }
        for (j, join) in q.joins.iter().enumerate() {
            // Errors of a join without a position point at the join.
            let mut step = || -> Result<()> {
                let r = j + 1;
                let right = sources[r];
                let right_spec = &specs[r];
                visible.sources.push(scope.sources[r].clone());
                let pairs: Vec<(Side, Side, bool)> = criteria[j].clone();
                let l = pairs[0].0.clone();
                let left_name = visible.sources[l.source].name.clone();
                let left_src = sources[l.source];
                let got = pairs
                    .iter()
                    .map(|(l, rr, flipped)| {
                        if *flipped {
                            format!("{} = {}", rr.shown, l.shown)
                        } else {
                            format!("{} = {}", l.shown, rr.shown)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let right_is_table = right.kind == SourceKind::Table;
                let join_type = join.join_type;
                if left_is_table && !right_is_table {
                    return Err(Error::semantic(format!(
                        "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {left_name} {} {}.",
                        join_words(join_type),
                        right.name
                    )));
                }
                // Windowed sources join only matching windowed sources, on their keys.
                match (left_window, right.window) {
                    (Some(lw), Some(rw)) => {
                        if (lw.kind == WindowKind::Session) != (rw.kind == WindowKind::Session) {
                            let kind = |k: WindowKind| match k {
                                WindowKind::Session => "SESSION",
                                _ => "TUMBLING",
                            };
                            return Err(Error::semantic(format!(
                                "Incompatible windowed sources.\nLeft source: {}\nRight source: {}\nSession windowed sources can only be joined to other session windowed sources, and may still not result in expected behaviour as session bounds must be an exact match for the join to work\nHopping and tumbling windowed sources can only be joined to other hopping and tumbling windowed sources",
                                kind(lw.kind),
                                kind(rw.kind)
                            )));
                        }
                    }
                    (Some(w), None) | (None, Some(w)) => {
                        let (windowed, plain) = if left_window.is_some() {
                            (&left_name, &right.name)
                        } else {
                            (&right.name, &left_name)
                        };
                        return Err(Error::semantic(format!(
                            "Can not join windowed source to non-windowed source.\n`{windowed}` is {} windowed\n`{plain}` is not windowed",
                            match w.kind {
                                WindowKind::Session => "SESSION",
                                _ => "TUMBLING",
                            }
                        )));
                    }
                    (None, None) => {}
                }
                // Are a side's expressions exactly its source's key columns?
                let is_key = |sides: &[&Side], src: &Source| -> bool {
                    let keys: Vec<&str> = src.key_columns().map(|c| c.name.as_str()).collect();
                    let mut used: Vec<&str> = Vec::new();
                    for s in sides {
                        let Some(c) = &s.column else { return false };
                        let Some(col) = visible.sources[s.source]
                            .columns
                            .iter()
                            .find(|col| &col.1 == c)
                        else {
                            return false;
                        };
                        if visible.sources[s.source].name != src.name
                            || !keys.contains(&col.0.as_str())
                            || used.contains(&col.0.as_str())
                        {
                            return false;
                        }
                        used.push(&col.0);
                    }
                    !keys.is_empty() && used.len() == keys.len()
                };
                let lefts: Vec<&Side> = pairs.iter().map(|p| &p.0).collect();
                let rights: Vec<&Side> = pairs.iter().map(|p| &p.1).collect();
                // The left side is already keyed by this expression when it is
                // equivalent to the previous join's key.
                let continues = j > 0 && pairs.len() == 1 && key_exprs.contains(&l.shown);
                let left_keyed = if j == 0 {
                    is_key(&lefts, left_src)
                } else {
                    continues
                };
                let right_keyed = is_key(&rights, right);
                if let (Some(lw), Some(rw)) = (left_window, right.window) {
                    if lw.size != rw.size {
                        return Err(Error::semantic(
                            "Implicit repartitioning of windowed sources is not supported.",
                        ));
                    }
                }
                if (left_window.is_some() || right.window.is_some()) && !(left_keyed && right_keyed)
                {
                    return Err(Error::semantic(
                        "Implicit repartitioning of windowed sources is not supported.",
                    ));
                }
                let kind = match (left_is_table, right_is_table) {
                    (false, false) => JoinKind::StreamStream,
                    (false, true) => JoinKind::StreamTable,
                    (true, true) if left_keyed => JoinKind::TableTable,
                    (true, true) => JoinKind::ForeignKey,
                    (true, false) => return Err(Error::internal("table-stream join")),
                };
                match kind {
                    JoinKind::StreamTable => {
                        if matches!(join_type, ast::JoinType::Full | ast::JoinType::Right) {
                            return Err(Error::semantic(format!(
                                "Invalid join type: {} join not supported for stream-table join. Got {left_name} {} {}.",
                                if join_type == ast::JoinType::Full { "full-outer" } else { "right" },
                                join_words(join_type),
                                right.name
                            )));
                        }
                        if !right_keyed {
                            return Err(Error::semantic(format!(
                                "Invalid join condition: stream-table joins require to join on the table's primary key. Got {got}."
                            )));
                        }
                    }
                    JoinKind::TableTable | JoinKind::ForeignKey => {
                        if !right_keyed {
                            return Err(Error::semantic(format!(
                                "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {got}."
                            )));
                        }
                        if kind == JoinKind::ForeignKey {
                            match join_type {
                                ast::JoinType::Right => {
                                    return Err(Error::semantic(
                                        "RIGHT OUTER JOIN on a foreign key is not supported",
                                    ))
                                }
                                ast::JoinType::Full => {
                                    return Err(Error::semantic(
                                        "FULL OUTER JOIN on a foreign key is not supported",
                                    ))
                                }
                                _ => {}
                            }
                        }
                    }
                    JoinKind::StreamStream => {}
                }
                let window = match (kind, join.within) {
                    (JoinKind::StreamStream, None) => {
                        return Err(Error::semantic(
                            "Stream-Stream joins must have a WITHIN clause specified. None was provided. Add one, e.g. `JOIN s2 WITHIN 1 HOUR ON ...`.",
                        ))
                    }
                    (JoinKind::StreamStream, Some(w)) => Some(JoinWindow {
                        before: w.before,
                        after: w.after,
                        grace: w.grace,
                    }),
                    (_, Some(_)) => {
                        return Err(Error::semantic(format!(
                            "A window definition was provided for a {} join. These joins are not windowed. Please drop the window definition (ie. the WITHIN clause) and try to execute your join again.",
                            if kind == JoinKind::StreamTable { "Stream-Table" } else { "Table-Table" }
                        )))
                    }
                    (_, None) => None,
                };
                // Co-partitioning, when neither side needs re-keying.
                // (Only declared sources: a query's sink topic is Sluice's own.)
                if left_keyed
                    && right_keyed
                    && left_src.query.is_none()
                    && right.query.is_none()
                    && left_src.partitions != right.partitions
                {
                    return Err(Error::semantic(format!(
                        "Can't join `{left_name}` with `{}` since the number of partitions don't match. `{left_name}` partitions = {}; `{}` partitions = {}. Please repartition either one so that the number of partitions match.",
                        right.name, left_src.partitions, right.name, right.partitions
                    )));
                }

                // Compile both sides against their inputs.
                let mut left_exprs = Vec::new();
                let mut right_exprs = Vec::new();
                for (l, rr, _) in &pairs {
                    left_exprs.push(if continues {
                        // The previous join's key column holds this value even
                        // where an outer join left the column itself NULL.
                        SqlExpr::Identifier(Ident::with_quote('"', &key_column))
                    } else if j == 0 {
                        a_or_b(l, &visible, Naming::Source)?
                    } else {
                        l.expr.clone()
                    });
                    right_exprs.push(a_or_b(rr, &visible, Naming::Source)?);
                }
                // Windowed sources match on the window too.
                if left_window.is_some() && right.window.is_some() {
                    for b in [WINDOWSTART, WINDOWEND] {
                        left_exprs.push(SqlExpr::Identifier(Ident::with_quote('"', b)));
                        right_exprs.push(SqlExpr::Identifier(Ident::with_quote('"', b)));
                    }
                }
                let (left_key, left_types) = self.compile_over(&left_schema, &left_exprs)?;
                let (right_key, right_types) =
                    self.compile_over(&right_spec.schema, &right_exprs)?;
                for (i, (l, rr, flipped)) in pairs.iter().enumerate() {
                    let ty = |t: &[DataType]| {
                        t.get(i)
                            .and_then(SqlType::from_arrow)
                            .map(|t| t.to_string())
                            .unwrap_or_default()
                    };
                    if left_types.get(i) != right_types.get(i) {
                        let (first, first_t, second, second_t) = if *flipped {
                            (&rr.shown, ty(&right_types), &l.shown, ty(&left_types))
                        } else {
                            (&l.shown, ty(&left_types), &rr.shown, ty(&right_types))
                        };
                        return Err(Error::semantic(format!(
                            "Invalid join condition: types don't match. Got {first}{{{first_t}}} = {second}{{{second_t}}}."
                        )));
                    }
                    if let Some(t) = left_types.get(i) {
                        let name = l
                            .column
                            .clone()
                            .or(rr.column.clone())
                            .unwrap_or_else(|| "ROWKEY".into());
                        super::ddl::check_key_type(&name, t)?;
                    }
                }

                // The key of the result: one part per condition.
                let full_outer = join_type == ast::JoinType::Full;
                let last = j + 1 == q.joins.len();
                let mut parts: Vec<KeyPart> = Vec::new();
                let mut exprs: Vec<String> = Vec::new();
                for (i, (l, rr, _)) in pairs.iter().enumerate() {
                    let mut part = KeyPart {
                        names: Vec::new(),
                        shown: Vec::new(),
                        column: if i == 0 {
                            format!("KSQL_JOINKEY_{j}")
                        } else {
                            format!("KSQL_JOINKEY_{j}_{i}")
                        },
                    };
                    if continues {
                        if let Some(JoinKey::Columns(prev)) = &key {
                            if let Some(p) = prev.first() {
                                part.names.extend(p.names.iter().cloned());
                                part.shown.extend(p.shown.iter().cloned());
                            }
                        }
                        exprs.extend(key_exprs.iter().cloned());
                    }
                    for (side, never_null) in [
                        (
                            l,
                            matches!(join_type, ast::JoinType::Inner | ast::JoinType::Left),
                        ),
                        (
                            rr,
                            matches!(join_type, ast::JoinType::Inner | ast::JoinType::Right),
                        ),
                    ] {
                        if let Some(c) = &side.column {
                            if !part.names.contains(c) {
                                part.names.push(c.clone());
                                part.shown.push(side.shown.clone());
                            }
                        }
                        // A side an outer join may leave NULL is not the key.
                        if pairs.len() == 1 && never_null && !exprs.contains(&side.shown) {
                            exprs.push(side.shown.clone());
                        }
                    }
                    parts.push(part);
                }
                let synthetic = full_outer || parts.iter().any(|p| p.names.is_empty());
                if synthetic && last {
                    // Visible synthetic key columns: ROWKEY, then free ROWKEY_n.
                    let mut n = 0;
                    for part in parts.iter_mut() {
                        let mut name = "ROWKEY".to_string();
                        while taken.contains(&name) || visible.synthetic.contains(&name) {
                            n += 1;
                            name = format!("ROWKEY_{n}");
                        }
                        visible.synthetic.push(name.clone());
                        part.column = name;
                    }
                }
                let key_columns: Vec<String> = parts.iter().map(|p| p.column.clone()).collect();
                let new_key = if kind == JoinKind::ForeignKey {
                    let s = &visible.sources[l.source];
                    let cols = left_src
                        .key_columns()
                        .filter_map(|k| {
                            s.columns
                                .iter()
                                .find(|c| c.0 == k.name)
                                .map(|c| (c.0.clone(), c.1.clone()))
                        })
                        .collect();
                    JoinKey::Foreign {
                        table: left_src.name.clone(),
                        columns: cols,
                    }
                } else if synthetic {
                    JoinKey::Synthetic {
                        names: key_columns.clone(),
                        full_outer,
                    }
                } else {
                    JoinKey::Columns(parts)
                };

                // The output schema: the join key, both inputs, pseudo columns.
                let mut fields: Vec<Field> = key_columns
                    .iter()
                    .zip(&left_types)
                    .map(|(n, t)| Field::new(n, t.clone(), true))
                    .collect();
                fields.extend(left_fields.iter().cloned());
                let right_fields: Vec<Field> = right_spec
                    .schema
                    .fields()
                    .iter()
                    .zip(&scope.sources[r].columns)
                    .map(|(f, c)| Field::new(&c.1, f.data_type().clone(), true))
                    .collect();
                fields.extend(right_fields.iter().cloned());
                let joined_width = fields.len();
                fields.push(Field::new(ROWTIME, DataType::Int64, true));
                fields.push(Field::new(ROWPARTITION, DataType::Int32, true));
                fields.push(Field::new(ROWOFFSET, DataType::Int64, true));
                // A windowed aggregation over the joined rows fills placeholders.
                let windowed =
                    left_window.is_some() || right.window.is_some() || (last && window_columns);
                if windowed {
                    fields.push(Field::new(WINDOWSTART, DataType::Int64, true));
                    fields.push(Field::new(WINDOWEND, DataType::Int64, true));
                }
                let schema = Arc::new(Schema::new(fields.clone()));
                let left_primary_key = if kind == JoinKind::ForeignKey {
                    left_src
                        .key_columns()
                        .filter_map(|k| {
                            let joined = &visible.sources[l.source]
                                .columns
                                .iter()
                                .find(|c| c.0 == k.name)?
                                .1;
                            let name = if j == 0 { &k.name } else { joined };
                            left_schema.fields().iter().position(|f| f.name() == name)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let display = format!(
                    "Join: {} {} {} ON {}{}{}",
                    kind,
                    match join_type {
                        ast::JoinType::Inner => "INNER",
                        ast::JoinType::Left => "LEFT",
                        ast::JoinType::Right => "RIGHT",
                        ast::JoinType::Full => "FULL OUTER",
                    },
                    right.name,
                    pairs
                        .iter()
                        .map(|(l, rr, _)| format!("{} = {}", l.shown, rr.shown))
                        .collect::<Vec<_>>()
                        .join(" AND "),
                    match window {
                        Some(w) => format!(
                            " WITHIN (before={}ms, after={}ms){}",
                            w.before,
                            w.after,
                            match w.grace {
                                Some(g) => format!(" GRACE {g}ms"),
                                None => String::new(),
                            }
                        ),
                        None => String::new(),
                    },
                    match &new_key {
                        JoinKey::Synthetic { names, .. } => format!(" key=[{}]", names.join(", ")),
                        JoinKey::Columns(parts) => format!(
                            " key=[{}]",
                            parts
                                .iter()
                                .map(|p| p.names.join("|"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        JoinKey::Foreign { columns, .. } => format!(
                            " key=[{}]",
                            columns
                                .iter()
                                .map(|c| c.1.clone())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                );
                let spec = JoinSpec {
                    kind,
                    join_type: runtime_join_type(join_type),
                    left_key,
                    right_key,
                    left_primary_key,
                    key_width: pairs.len(),
                    left: join_input(&left_schema, left_width)?,
                    right: join_input(&right_spec.schema, right_spec.schema.fields().len())?,
                    window,
                    emit_unknown_deletes: false,
                    schema: schema.clone(),
                    display,
                };
                stages.push(JoinStage {
                    spec,
                    right: right_spec.clone(),
                });
                // The result is the next join's left input.
                left_schema = schema;
                left_width = joined_width;
                left_fields = fields[..joined_width].to_vec();
                left_is_table = left_is_table && right_is_table;
                left_window = left_window.or(right.window);
                key = Some(new_key);
                key_exprs = exprs;
                key_column = key_columns[0].clone();
                Ok(())
            };
            step().map_err(|e| e.with_position(join.position))?;
        }
        let key = key.ok_or_else(|| Error::internal("join without joins"))?;
        scope.synthetic = visible.synthetic.clone();

        // The joined rows as a source for the rest of the query.
        let columns = left_fields
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                kind: ColumnKind::Value,
            })
            .collect();
        let primary = sources[0];
        let source = Source {
            name: JOINED.to_string(),
            kind: if left_is_table {
                SourceKind::Table
            } else {
                SourceKind::Stream
            },
            topic: primary.topic.clone(),
            key_format: primary.key_format.clone(),
            value_format: primary.value_format.clone(),
            columns,
            timestamp: None,
            window: left_window,
            partitions: primary.partitions,
            replicas: primary.replicas,
            retention_ms: None,
            read_only: true,
            sql: String::new(),
            query: None,
        };
        Ok(JoinedFrom {
            source,
            schema: left_schema,
            primary: specs[0].clone(),
            stages,
            scope,
            key,
            sources: sources.iter().map(|s| s.name.clone()).collect(),
            key_format: sources
                .iter()
                .map(|s| s.key_format.clone())
                .find(|f| f.kind != FormatKind::None)
                .unwrap_or_else(|| primary.key_format.clone()),
        })
    }
}

/// `ksql_field(Q, 'C')` with a bare identifier `Q`: (Q, C).
fn field_of_alias(e: &SqlExpr) -> Option<(Ident, String)> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments, Value};
    let SqlExpr::Function(f) = e else { return None };
    if f.name.to_string() != "ksql_field" {
        return None;
    }
    let FunctionArguments::List(l) = &f.args else {
        return None;
    };
    match l.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(q))), FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v)))] => {
            match &v.value {
                Value::SingleQuotedString(c) => Some((q.clone(), c.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Unknown qualifiers anywhere in the criteria are reported first, as
/// ksqlDB does while preparing the statement.
fn check_qualifiers(on: &SqlExpr, scope: &Scope) -> Result<()> {
    let mut error = None;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(on, |x| {
        if let SqlExpr::CompoundIdentifier(is) = x {
            if is.len() == 2 {
                let q = match is[0].quote_style {
                    Some(_) => is[0].value.clone(),
                    None => is[0].value.to_uppercase(),
                };
                if scope.source_index(&q).is_err() {
                    error = Some(Error::semantic(format!(
                        "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                    )));
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The criteria of the join with source `r`: (side over the sources so
/// far, side over source `r`, whether they were written the other way).
fn join_criteria(
    join: &ast::Join,
    r: usize,
    visible: &Scope,
    right_name: &str,
) -> Result<Vec<(Side, Side, bool)>> {
    // Equalities joined by AND (beyond ksqlDB: several conditions make a
    // multi-column join key).
    fn conjuncts<'a>(e: &'a SqlExpr, out: &mut Vec<&'a SqlExpr>) {
        match strip_nested(e) {
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                conjuncts(left, out);
                conjuncts(right, out);
            }
            other => out.push(other),
        }
    }
    let mut parts = Vec::new();
    conjuncts(&join.on, &mut parts);
    let shown_on = || -> Result<String> {
        let mut shown = join.on.clone();
        rewrite::rewrite(&mut shown)?;
        Ok(display::ksql(&shown))
    };
    let mut pairs: Vec<(Side, Side, bool)> = Vec::new();
    for part in parts {
        let SqlExpr::BinaryOp {
            left: a,
            op: BinaryOperator::Eq,
            right: b,
        } = part
        else {
            return Err(Error::semantic(format!(
                "Invalid join condition: only equalities between the joined sources, combined with AND, are supported. Got {}.",
                shown_on()?
            )));
        };
        let pair = join_equality(join, a, b, r, visible, right_name)?;
        if pairs
            .iter()
            .any(|(l, rr, _)| l.shown == pair.0.shown && rr.shown == pair.1.shown)
        {
            // The same condition twice: ksqlDB's refusal.
            return Err(Error::semantic(format!(
                "Invalid join condition: joins on multiple conditions are not yet supported. Got {}.",
                shown_on()?
            )));
        }
        pairs.push(pair);
    }
    Ok(pairs)
}

/// One equality of the criteria: (side over the sources so far, side over
/// source `r`, whether it was written the other way).
fn join_equality(
    join: &ast::Join,
    a: &SqlExpr,
    b: &SqlExpr,
    r: usize,
    visible: &Scope,
    right_name: &str,
) -> Result<(Side, Side, bool)> {
    let mut a = strip_nested(a).clone();
    let mut b = strip_nested(b).clone();
    rewrite::rewrite(&mut a)?;
    rewrite::rewrite(&mut b)?;
    let whole = format!("({} = {})", display::ksql(&a), display::ksql(&b));
    let side = |e: &SqlExpr| -> Result<Side> {
        let mut resolved = e.clone();
        let used = visible
            .resolve(&mut resolved, Some("JOIN ON"))
            .map_err(|err| err.with_position(join.position))?;
        if used.len() != 1 {
            return Err(Error::semantic(format!(
                "Invalid comparison expression '{}' in join '{whole}'. Each side of the join comparision must contain references from exactly one source.",
                display::ksql(e)
            )));
        }
        let column = match &resolved {
            SqlExpr::Identifier(i) => Some(i.value.clone()),
            _ => None,
        };
        let mut qualified = e.clone();
        visible.resolve_as(&mut qualified, None, Naming::Qualified)?;
        Ok(Side {
            expr: resolved,
            column,
            shown: display::ksql(&qualified),
            source: used[0],
        })
    };
    let sa = side(&a)?;
    let sb = side(&b)?;
    if sb.source == r && sa.source != r {
        Ok((sa, sb, false))
    } else if sa.source == r && sb.source != r {
        Ok((sb, sa, true))
    } else if sa.source == sb.source {
        Err(Error::semantic(format!(
            "Each side of the join must reference exactly one source and not the same source. Left side references `{}` and right references `{}`",
            visible.sources[sa.source].name, visible.sources[sb.source].name
        )))
    } else {
        Err(Error::semantic(format!(
            "A join criteria is expected to reference the source (`{right_name}`) in the FROM clause, instead the right source references `{}` and the left source references `{}`",
            visible.sources[sb.source].name, visible.sources[sa.source].name
        )))
    }
}

/// A side's expression resolved for evaluation on its own source's rows.
fn a_or_b(s: &Side, scope: &Scope, naming: Naming) -> Result<SqlExpr> {
    // Map joined names back to the source's column names.
    let mut e = s.expr.clone();
    if naming == Naming::Source {
        let src = &scope.sources[s.source];
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
            if let SqlExpr::Identifier(i) = x {
                if let Some(c) = src.columns.iter().find(|c| c.1 == i.value) {
                    *x = SqlExpr::Identifier(Ident::with_quote('"', &c.0));
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    Ok(e)
}

/// The select items forming the key of a join query's result (ksqlDB
/// requires the join key in the projection).
pub(crate) fn key_items(
    items: &[(SqlExpr, String)],
    key: &JoinKey,
    target: &str,
) -> Result<Vec<usize>> {
    let column = |e: &SqlExpr| match e {
        SqlExpr::Identifier(i) => Some(i.value.clone()),
        _ => None,
    };
    let uses = |name: &str| -> Vec<usize> {
        (0..items.len())
            .filter(|&i| column(&items[i].0).as_deref() == Some(name))
            .collect()
    };
    let once = |name: &str, shown: &str| -> Result<Option<usize>> {
        let found = uses(name);
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => {
                let mut aliases: Vec<&str> = many.iter().map(|&i| items[i].1.as_str()).collect();
                aliases.sort();
                let (last, rest) = aliases.split_last().unwrap_or((&"", &[]));
                Err(Error::semantic(format!(
                    "The projection contains a key column (`{shown}`) more than once, aliased as: {} and {last}.",
                    rest.join(", ")
                )))
            }
        }
    };
    match key {
        JoinKey::Columns(parts) => {
            let mut out = Vec::new();
            for part in parts {
                let first = part.names.iter().find_map(|n| {
                    (0..items.len()).find(|&i| column(&items[i].0).as_deref() == Some(n.as_str()))
                });
                match first {
                    Some(i) => {
                        let name = column(&items[i].0).unwrap_or_default();
                        out.extend(once(&name, &name)?);
                    }
                    None => {
                        let shown = &part.shown;
                        let list = match shown.split_last() {
                            Some((last, rest)) if !rest.is_empty() => {
                                format!("{} or {last}", rest.join(", "))
                            }
                            _ => shown.join(""),
                        };
                        return Err(Error::semantic(format!(
                            "The query used to build `{target}` must include the join expression{} {list} in its projection (eg, SELECT {}...).",
                            if shown.len() > 1 { "s" } else { "" },
                            shown.first().cloned().unwrap_or_default()
                        )));
                    }
                }
            }
            Ok(out)
        }
        JoinKey::Synthetic { names, full_outer } => {
            let mut out = Vec::new();
            for name in names {
                match once(name, name)? {
                    Some(i) => out.push(i),
                    None => {
                        let core = format!(
                            "The query used to build `{target}` must include the join expression {name} in its projection (eg, SELECT {name}...).\n{name} was added as a synthetic key column because the join criteria did not match any source column."
                        );
                        return Err(Error::semantic(if *full_outer {
                            core
                        } else {
                            format!(
                                "Key missing from projection (ie, SELECT).\n{core} This expression must be included in the projection and may be aliased."
                            )
                        }));
                    }
                }
            }
            Ok(out)
        }
        JoinKey::Foreign { table, columns } => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for (orig, joined) in columns {
                match once(joined, joined)? {
                    Some(i) => out.push(i),
                    None => missing.push(format!("`{orig}`")),
                }
            }
            if !missing.is_empty() {
                let plural = missing.len() > 1;
                return Err(Error::semantic(format!(
                    "Primary key column{s} missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{table}`). Missing column{s}: {}.",
                    missing.join(", "),
                    s = if plural { "s" } else { "" }
                )));
            }
            Ok(out)
        }
    }
}

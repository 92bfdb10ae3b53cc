//! Lowering: DataFusion `LogicalPlan` → the runtime's operator specs.
//!
//! The logical plan of a persistent query is a chain: a scan of the source,
//! then Filter, Projection, Aggregate and Unnest nodes. Each becomes an
//! [`OpSpec`] whose expressions are DataFusion `PhysicalExpr`s compiled
//! against the node's input schema. Physical batches may carry extra
//! trailing columns the logical plan does not name (`ROWTIME` and the window
//! bounds, which every projection carries along so the sink always has the
//! record time and windowed keys their bounds); logical column indices stay
//! valid because the extras are always at the end.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::expressions::Column as PhysColumn;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;

use crate::catalog::types::SqlType;
use crate::error::{Error, Result};
use crate::runtime::{
    AggregateSpec, GroupColumn, OpSpec, TableMode, WindowConfig, ROWTIME, WINDOWEND, WINDOWSTART,
};

/// A lowered node: its logical schema and the physical batch schema.
struct Lowered {
    df: DFSchemaRef,
    phys: SchemaRef,
}

pub(crate) struct Lowering<'a> {
    state: &'a SessionState,
    pub ops: Vec<OpSpec>,
    /// The current rows form a table changelog.
    pub is_table: bool,
    window: Option<WindowConfig>,
    has_aggregate: bool,
    seen_aggregate: bool,
    /// The scan's physical schema (the decoded source batch).
    source_schema: SchemaRef,
    /// Key column indices of the source.
    source_keys: Vec<usize>,
    /// The source is a table's raw changelog (upserts and tombstones) that
    /// must be materialized first; joined rows arrive as changes already.
    materialize: bool,
    /// The rows go to a push query's session, not to a sink: a filter is
    /// exact (a row that never passed shows nothing), as ksqlDB shows a
    /// filtered table.
    pub exact_filters: bool,
}

/// The ksqlDB-normal Arrow type for a computed column (e.g. Utf8View → Utf8).
pub(crate) fn normal_type(dt: &DataType) -> DataType {
    match SqlType::from_arrow(dt) {
        Some(t) if !matches!(dt, DataType::Null) => t.to_arrow(),
        _ => dt.clone(),
    }
}

/// Simplify an expression (DataFusion's physical planner relies on it, e.g.
/// COALESCE becomes CASE) and compile it against `schema`.
pub(crate) fn physical_expr(
    state: &SessionState,
    e: &Expr,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>> {
    let simplified = simplify(e, schema)?;
    Ok(create_physical_expr(
        &simplified,
        schema,
        state.execution_props(),
        &PhysicalPlanningContext::default(),
    )?)
}

fn simplify(e: &Expr, schema: &DFSchema) -> Result<Expr> {
    let ctx = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .build();
    Ok(ExprSimplifier::new(ctx).simplify(e.clone())?)
}

fn contains_aggregate(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Aggregate(_)) || plan.inputs().iter().any(|p| contains_aggregate(p))
}

impl<'a> Lowering<'a> {
    pub(crate) fn new(
        state: &'a SessionState,
        is_table: bool,
        window: Option<WindowConfig>,
        source_schema: SchemaRef,
        source_keys: Vec<usize>,
        materialize: bool,
    ) -> Self {
        Self {
            materialize,
            state,
            ops: Vec::new(),
            is_table,
            window,
            has_aggregate: false,
            seen_aggregate: false,
            source_schema,
            source_keys,
            exact_filters: false,
        }
    }

    /// Lower the plan; returns the physical schema of the last operator.
    pub(crate) fn lower_plan(&mut self, plan: &LogicalPlan) -> Result<SchemaRef> {
        self.has_aggregate = contains_aggregate(plan);
        if self.is_table && self.materialize {
            self.ops.push(OpSpec::Materialize {
                key_columns: self.source_keys.clone(),
                emit_unknown_deletes: !self.has_aggregate,
            });
        }
        let out = self.lower(plan)?;
        Ok(out.phys)
    }

    fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        physical_expr(self.state, e, schema)
    }

    fn table_mode(&self) -> TableMode {
        if !self.is_table {
            TableMode::Stream
        } else if !self.materialize && !self.seen_aggregate {
            // Joined table rows arrive as exact changes (with old rows).
            TableMode::TableExact
        } else if self.has_aggregate && !self.seen_aggregate {
            // Before an aggregation: exact retractions with old rows.
            TableMode::TableExact
        } else if self.has_aggregate {
            // After it (HAVING): a tombstone only when the old result was
            // visible, stamped with the new record's time.
            TableMode::TableResult
        } else if self.exact_filters {
            TableMode::TableExact
        } else {
            TableMode::TableToSink
        }
    }

    fn lower(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.projection.is_some() || !scan.filters.is_empty() {
                    return Err(Error::internal("unexpected projected scan"));
                }
                Ok(Lowered {
                    df: scan.projected_schema.clone(),
                    phys: self.source_schema.clone(),
                })
            }
            LogicalPlan::SubqueryAlias(a) => {
                let inner = self.lower(&a.input)?;
                Ok(Lowered {
                    df: a.schema.clone(),
                    phys: inner.phys,
                })
            }
            LogicalPlan::Filter(f) => {
                let input = self.lower(&f.input)?;
                let predicate = self.physical(&f.predicate, &input.df)?;
                let exprs = identity(&input.phys);
                self.ops.push(OpSpec::FilterProject {
                    predicate: Some(predicate),
                    exprs,
                    schema: input.phys.clone(),
                    table_mode: self.table_mode(),
                    display: format!("Filter: {}", f.predicate.human_display()),
                });
                Ok(Lowered {
                    df: f.input.schema().clone(),
                    phys: input.phys,
                })
            }
            LogicalPlan::Projection(p) => {
                let input = self.lower(&p.input)?;
                let mut exprs = Vec::new();
                let mut fields = Vec::new();
                let mut shown = Vec::new();
                for (e, (_, field)) in p.expr.iter().zip(p.schema.iter()) {
                    exprs.push((self.physical(e, &input.df)?, field.name().clone()));
                    fields.push(Field::new(
                        field.name(),
                        normal_type(field.data_type()),
                        true,
                    ));
                    shown.push(match e {
                        Expr::Alias(a) => format!("{} := {}", a.name, a.expr.human_display()),
                        other => other.human_display().to_string(),
                    });
                }
                let logical_len = fields.len();
                carry_hidden(&input.phys, &mut exprs, &mut fields);
                let schema = Arc::new(Schema::new(fields));
                // A projection right after a filter joins it in one operator.
                let display = format!("Project: [{}]", shown.join(", "));
                let fused = match self.ops.last_mut() {
                    Some(OpSpec::FilterProject {
                        predicate: Some(_),
                        exprs: old,
                        schema: old_schema,
                        display: d,
                        ..
                    }) if is_identity(old, old_schema) => {
                        *old = exprs.clone();
                        *old_schema = schema.clone();
                        *d = format!("{d}\n{display}");
                        true
                    }
                    _ => false,
                };
                if !fused {
                    self.ops.push(OpSpec::FilterProject {
                        predicate: None,
                        exprs,
                        schema: schema.clone(),
                        table_mode: self.table_mode(),
                        display,
                    });
                }
                let _ = logical_len;
                Ok(Lowered {
                    df: p.schema.clone(),
                    phys: schema,
                })
            }
            LogicalPlan::Aggregate(a) => {
                let input = self.lower(&a.input)?;
                if !a
                    .group_expr
                    .iter()
                    .all(|g| !matches!(g, Expr::GroupingSet(_)))
                {
                    return Err(Error::Unsupported("GROUPING SETS, CUBE and ROLLUP".into()));
                }
                let mut group_exprs = Vec::new();
                let mut group_columns = Vec::new();
                for g in &a.group_expr {
                    match g {
                        Expr::Column(c) if self.window.is_some() && c.name == WINDOWSTART => {
                            group_columns.push(GroupColumn::WindowStart)
                        }
                        Expr::Column(c) if self.window.is_some() && c.name == WINDOWEND => {
                            group_columns.push(GroupColumn::WindowEnd)
                        }
                        other => {
                            group_columns.push(GroupColumn::Expr(group_exprs.len()));
                            group_exprs.push(self.physical(other, &input.df)?);
                        }
                    }
                }
                let input_arrow = input.df.as_arrow();
                let mut aggregates = Vec::new();
                for e in &a.aggr_expr {
                    let e = &simplify(e, &input.df)?;
                    #[allow(deprecated)]
                    let (agg, filter, _order) = create_aggregate_expr_and_maybe_filter(
                        e,
                        &input.df,
                        input_arrow,
                        self.state.execution_props(),
                    )?;
                    if filter.is_some() {
                        return Err(Error::Unsupported("FILTER clauses on aggregates".into()));
                    }
                    aggregates.push(agg);
                }
                let mut fields: Vec<Field> = a
                    .schema
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), normal_type(f.data_type()), true))
                    .collect();
                fields.push(Field::new(ROWTIME, DataType::Int64, false));
                let schema = Arc::new(Schema::new(fields));
                let display = format!(
                    "{}: group=[{}] aggregates=[{}]{}",
                    match self.window.as_ref().map(|w| w.assign) {
                        None => "Aggregate".to_string(),
                        Some(crate::runtime::WindowAssign::Tumbling { size }) =>
                            format!("TumblingWindow(size={size}ms)"),
                        Some(crate::runtime::WindowAssign::Hopping { size, advance }) => {
                            format!("HoppingWindow(size={size}ms, advance={advance}ms)")
                        }
                        Some(crate::runtime::WindowAssign::Session { gap }) =>
                            format!("SessionWindow(gap={gap}ms)"),
                    },
                    a.group_expr
                        .iter()
                        .map(|g| g.human_display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.aggr_expr
                        .iter()
                        .map(|g| g.human_display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    match &self.window {
                        Some(w) => format!(
                            " grace={}ms{}",
                            w.grace,
                            if w.emit_final { " emit=FINAL" } else { "" }
                        ),
                        None => String::new(),
                    }
                );
                self.ops.push(OpSpec::Aggregate(AggregateSpec {
                    group_exprs,
                    group_columns,
                    aggregates,
                    window: self.window.clone(),
                    table_input: self.is_table,
                    schema: schema.clone(),
                    display,
                }));
                self.is_table = true;
                self.seen_aggregate = true;
                let rowtime = DFSchema::try_from(Schema::new(vec![Field::new(
                    ROWTIME,
                    DataType::Int64,
                    false,
                )]))?;
                let mut df = a.schema.as_ref().clone();
                df.merge(&rowtime);
                Ok(Lowered {
                    df: Arc::new(df),
                    phys: schema,
                })
            }
            LogicalPlan::Unnest(u) => {
                let input = self.lower(&u.input)?;
                if self.is_table {
                    return Err(Error::semantic(
                        "Table source is not supported with table functions",
                    ));
                }
                let mut outputs = Vec::new();
                let mut fields = Vec::new();
                for (j, (_, field)) in u.schema.iter().enumerate() {
                    let input_idx = *u
                        .dependency_indices
                        .get(j)
                        .ok_or_else(|| Error::internal("unnest output without input"))?;
                    let element = u
                        .list_type_columns
                        .iter()
                        .any(|(i, l)| *i == input_idx && l.output_column.name == *field.name());
                    outputs.push((input_idx, element));
                    fields.push(Field::new(field.name(), field.data_type().clone(), true));
                }
                // Carry the physical extras (ROWTIME, window bounds) along.
                let logical_in = u.input.schema().fields().len();
                for (i, f) in input.phys.fields().iter().enumerate().skip(logical_in) {
                    outputs.push((i, false));
                    fields.push(f.as_ref().clone());
                }
                let schema = Arc::new(Schema::new(fields));
                self.ops.push(OpSpec::Explode {
                    outputs,
                    schema: schema.clone(),
                    display: format!(
                        "Explode: [{}]",
                        u.exec_columns
                            .iter()
                            .map(|c| c.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                Ok(Lowered {
                    df: u.schema.clone(),
                    phys: schema,
                })
            }
            other => Err(Error::Unsupported(format!(
                "{} in a persistent query",
                other.display()
            ))),
        }
    }
}

fn identity(schema: &SchemaRef) -> Vec<(Arc<dyn PhysicalExpr>, String)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                Arc::new(PhysColumn::new(f.name(), i)) as Arc<dyn PhysicalExpr>,
                f.name().clone(),
            )
        })
        .collect()
}

fn is_identity(exprs: &[(Arc<dyn PhysicalExpr>, String)], schema: &SchemaRef) -> bool {
    exprs.len() == schema.fields().len()
        && exprs.iter().enumerate().all(|(i, (e, _))| {
            e.downcast_ref::<PhysColumn>()
                .is_some_and(|c| c.index() == i)
        })
}

/// Append ROWTIME and the window bounds from the input, unless the
/// projection already outputs a column of that name.
fn carry_hidden(
    input: &SchemaRef,
    exprs: &mut Vec<(Arc<dyn PhysicalExpr>, String)>,
    fields: &mut Vec<Field>,
) {
    for name in [ROWTIME, WINDOWSTART, WINDOWEND] {
        if fields.iter().any(|f| f.name() == name) {
            continue;
        }
        if let Some((i, f)) = input
            .fields()
            .iter()
            .enumerate()
            .rev()
            .find(|(_, f)| f.name() == name)
        {
            exprs.push((Arc::new(PhysColumn::new(name, i)), name.to_string()));
            fields.push(Field::new(name, f.data_type().clone(), true));
        }
    }
}

//! The DataFusion `ContextProvider` the planner plans against: the catalog's
//! sources as tables, and the session's functions (DataFusion's built-ins
//! with ksqlDB's library registered over them).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::config::ConfigOptions;
use datafusion::common::DFSchema;
use datafusion::common::{plan_err, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::builder::LogicalTableSource;
use datafusion::logical_expr::planner::{
    ContextProvider, ExprPlanner, PlannerResult, RawBinaryExpr,
};
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::BinaryOperator;

pub(crate) struct Provider<'a> {
    state: &'a SessionState,
    tables: HashMap<String, Arc<dyn TableSource>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl<'a> Provider<'a> {
    pub(crate) fn new(state: &'a SessionState) -> Self {
        let mut planners: Vec<Arc<dyn ExprPlanner>> = vec![Arc::new(KsqlOperators)];
        planners.extend(state.expr_planners().iter().cloned());
        Self {
            state,
            tables: HashMap::new(),
            planners,
        }
    }

    /// A table that can be executed (a pull query's).
    pub(crate) fn add_provider(&mut self, name: &str, table: Arc<dyn TableProvider>) {
        self.tables
            .insert(name.to_string(), provider_as_source(table));
    }

    pub(crate) fn add_table(&mut self, name: &str, schema: SchemaRef) {
        self.tables
            .insert(name.to_string(), Arc::new(LogicalTableSource::new(schema)));
    }
}

impl ContextProvider for Provider<'_> {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion::error::Result<Arc<dyn TableSource>> {
        match self.tables.get(name.table()) {
            Some(t) => Ok(Arc::clone(t)),
            None => plan_err!("{} does not exist.", name.table()),
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.state.scalar_functions().get(name).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.state.higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state
            .higher_order_functions()
            .keys()
            .cloned()
            .collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}

/// ksqlDB's operators where they differ from DataFusion's: `+` on two
/// strings concatenates them.
#[derive(Debug)]
struct KsqlOperators;

impl ExprPlanner for KsqlOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> datafusion::error::Result<PlannerResult<RawBinaryExpr>> {
        if expr.op == BinaryOperator::Plus {
            let is_string = |e: &Expr| {
                matches!(
                    e.get_type(schema),
                    Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                )
            };
            if is_string(&expr.left) && is_string(&expr.right) {
                return Ok(PlannerResult::Planned(
                    datafusion::functions::string::expr_fn::concat(vec![expr.left, expr.right]),
                ));
            }
        }
        Ok(PlannerResult::Original(expr))
    }
}

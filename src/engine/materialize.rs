//! Source tables, materialized: `CREATE SOURCE TABLE` starts a query
//! (`CST_<TABLE>_<n>`, as ksqlDB names it) that reads the table's topic
//! and keeps its rows in a view, so that its pull queries are lookups in
//! RocksDB like those of a `CREATE TABLE AS SELECT`, not scans of the topic.
//!
//! The query is `SELECT * FROM <table>` with the table itself as its sink,
//! but it writes nothing to Kafka (besides processing-log entries): its
//! only output is the view ([`Output::View`]), and its positions are kept
//! with the view's rows in RocksDB. It is listed with the other queries and
//! goes when the table is dropped (or when it is terminated: the table's
//! pull queries then read its topic).

use super::Engine;
use crate::catalog::Source;
use crate::error::Result;
use crate::runtime::Output;

impl Engine {
    /// Start the query that materializes source table `table`, created by
    /// `statement`; its id.
    pub(super) fn materialize_source_table(
        &mut self,
        table: &Source,
        statement: &str,
    ) -> Result<String> {
        let id = self.next_id("CST", &table.name);
        let text = format!(
            "SELECT * FROM `{}` EMIT CHANGES;",
            table.name.replace('`', "``")
        );
        let (query, _) = super::push::parse_push_query(&text)?;
        let planned = self
            .planner
            .plan_query(&self.catalog, &query, &table.name)?;
        self.start_query(id.clone(), planned, table, statement, Output::View)?;
        tracing::info!(query_id = %id, table = %table.name, "source table materialized");
        Ok(id)
    }
}

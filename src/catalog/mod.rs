//! The catalog: streams, tables and persistent queries.
//!
//! A [`Source`] is a stream or table: its columns (key, value, header), the
//! topic it lives in and the formats of its keys and values. Queries are
//! recorded with the sources they read and write. The catalog is persisted
//! as the log of the statements that changed it (as ksqlDB's command topic
//! does): on restart the engine replays the log and every source and query
//! comes back, with queries resuming from their checkpointed offsets.

pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};

use crate::connectors::formats::Format;
use crate::planner::ast::SourceKind;
use crate::runtime::KeyWindow;
use types::SqlType;

/// What a column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Key,
    Value,
    /// A header column: all headers (None) or one header key.
    Header(Option<String>),
}

/// A column of a stream or table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub kind: ColumnKind,
}

impl Column {
    pub(crate) fn field(&self) -> FieldRef {
        Arc::new(Field::new(&self.name, self.data_type.clone(), true))
    }

    /// The ksqlDB spelling of the column's type.
    pub fn type_name(&self) -> String {
        types::display_arrow(&self.data_type)
    }
}

/// A stream or table.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub(crate) key_format: Format,
    pub(crate) value_format: Format,
    pub columns: Vec<Column>,
    /// `TIMESTAMP` column and optional `TIMESTAMP_FORMAT`.
    pub timestamp: Option<(String, Option<String>)>,
    pub(crate) window: Option<KeyWindow>,
    pub partitions: i32,
    /// `REPLICAS` and `RETENTION_MS` for the topic, when given.
    pub replicas: Option<i16>,
    pub retention_ms: Option<i64>,
    /// `CREATE SOURCE`: read-only.
    pub read_only: bool,
    /// The statement that created it.
    pub sql: String,
    /// The persistent query writing it (CSAS/CTAS).
    pub query: Option<String>,
}

impl Source {
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Key)
    }

    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Value)
    }

    pub fn header_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Header(_)))
    }

    pub fn is_windowed(&self) -> bool {
        self.window.is_some()
    }

    /// ksqlDB's schema string: `ID INT KEY, NAME STRING` (as in `post` checks).
    pub fn schema_string(&self) -> String {
        let mut parts = Vec::new();
        for c in self.key_columns() {
            let kw = match self.kind {
                SourceKind::Table => "PRIMARY KEY",
                SourceKind::Stream => "KEY",
            };
            parts.push(format!("{} {} {kw}", c.name, c.type_name()));
        }
        for c in self.value_columns() {
            parts.push(format!("{} {}", c.name, c.type_name()));
        }
        for c in self.header_columns() {
            match &c.kind {
                ColumnKind::Header(Some(k)) => {
                    parts.push(format!("{} {} HEADER('{k}')", c.name, c.type_name()))
                }
                _ => parts.push(format!("{} {} HEADERS", c.name, c.type_name())),
            }
        }
        parts.join(", ")
    }
}

/// A running persistent query.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    pub id: String,
    pub sql: String,
    pub sink: String,
    pub sources: Vec<String>,
}

/// Streams, tables and queries by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    sources: BTreeMap<String, Source>,
    queries: BTreeMap<String, QueryInfo>,
}

impl Catalog {
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }

    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    pub(crate) fn insert_source(&mut self, s: Source) {
        self.sources.insert(s.name.clone(), s);
    }

    pub(crate) fn remove_source(&mut self, name: &str) -> Option<Source> {
        self.sources.remove(name)
    }

    pub fn query(&self, id: &str) -> Option<&QueryInfo> {
        self.queries.get(id)
    }

    pub fn queries(&self) -> impl Iterator<Item = &QueryInfo> {
        self.queries.values()
    }

    pub(crate) fn insert_query(&mut self, q: QueryInfo) {
        self.queries.insert(q.id.clone(), q);
    }

    pub(crate) fn remove_query(&mut self, id: &str) -> Option<QueryInfo> {
        self.queries.remove(id)
    }

    /// Queries that read `source`.
    pub fn readers_of(&self, source: &str) -> Vec<&QueryInfo> {
        self.queries
            .values()
            .filter(|q| q.sources.iter().any(|s| s == source))
            .collect()
    }

    /// Queries that write `source`.
    pub fn writers_of(&self, source: &str) -> Vec<&QueryInfo> {
        self.queries.values().filter(|q| q.sink == source).collect()
    }
}

/// The ksqlDB type of a column, for messages.
pub(crate) fn sql_type_name(dt: &DataType) -> String {
    SqlType::from_arrow(dt)
        .map(|t| t.to_string())
        .unwrap_or_else(|| dt.to_string())
}

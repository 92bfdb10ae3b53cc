//! The ksqlDB statement tree.
//!
//! Statements are ksqlDB's own; expressions inside them are sqlparser
//! [`Expr`]s (already rewritten to ksqlDB semantics by `rewrite`), so that
//! DataFusion's `SqlToRel` can plan them.

use std::collections::BTreeMap;
use std::fmt;

use datafusion::sql::sqlparser::ast::{Expr, SelectItem};

use crate::catalog::types::SqlType;
use crate::error::Position;

/// Stream or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourceKind {
    Stream,
    Table,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKind::Stream => write!(f, "STREAM"),
            SourceKind::Table => write!(f, "TABLE"),
        }
    }
}

/// A column in `CREATE STREAM|TABLE (...)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    /// `KEY` (streams) or `PRIMARY KEY` (tables).
    pub key: Option<KeyKind>,
    /// `HEADERS` or `HEADER('name')`.
    pub header: Option<HeaderSpec>,
    pub position: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Key,
    PrimaryKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderSpec {
    All,
    Key(String),
}

/// A value in `WITH (...)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OptionValue {
    String(String),
    Number(String),
    Bool(bool),
}

impl OptionValue {
    pub(crate) fn as_string(&self) -> String {
        match self {
            OptionValue::String(s) | OptionValue::Number(s) => s.clone(),
            OptionValue::Bool(b) => b.to_string(),
        }
    }
}

/// `WITH (...)` options: upper-cased names, values with their positions.
pub(crate) type WithOptions = BTreeMap<String, (OptionValue, Position)>;

/// `CREATE SINK name FROM stream WITH (CONNECTOR='parquet', ...)`: a
/// stream's records landed outside Kafka.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CreateSink {
    pub name: String,
    pub if_not_exists: bool,
    pub source: String,
    pub with: WithOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CreateSource {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    /// `CREATE SOURCE STREAM|TABLE`: read-only, materialized for pull queries.
    pub is_source: bool,
    pub columns: Vec<ColumnDef>,
    pub with: WithOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CreateAs {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub with: WithOptions,
    pub query: Query,
}

/// Window size units and lengths, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowSpec {
    Tumbling {
        size: i64,
        grace: Option<i64>,
        retention: Option<i64>,
    },
    Hopping {
        size: i64,
        advance: i64,
        grace: Option<i64>,
        retention: Option<i64>,
    },
    Session {
        gap: i64,
        grace: Option<i64>,
        retention: Option<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emit {
    Changes,
    Final,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinType {
    Inner,
    Left,
    Right,
    Full,
}

/// `WITHIN n unit` or `WITHIN (before, after)`, with an optional grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Within {
    pub before: i64,
    pub after: i64,
    pub grace: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SourceRef {
    pub name: String,
    pub alias: Option<String>,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Join {
    pub join_type: JoinType,
    pub right: SourceRef,
    pub within: Option<Within>,
    pub on: Expr,
    pub position: Position,
}

/// A ksqlDB SELECT.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub items: Vec<SelectItem>,
    pub from: SourceRef,
    pub joins: Vec<Join>,
    pub window: Option<WindowSpec>,
    pub selection: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
    /// The SELECT's text as written (for EXPLAIN and SHOW QUERIES).
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ShowWhat {
    Streams,
    Tables,
    Queries,
    Topics,
    Functions,
    Properties,
    Sinks,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Statement {
    CreateSource(CreateSource),
    CreateAs(CreateAs),
    /// `CREATE SINK [IF NOT EXISTS] name FROM stream WITH (...)`
    CreateSink(CreateSink),
    /// `DROP SINK [IF EXISTS] name`
    DropSink {
        name: String,
        if_exists: bool,
    },
    InsertInto {
        target: String,
        query: Query,
    },
    InsertValues {
        target: String,
        columns: Option<Vec<String>>,
        /// One list of values per row (`VALUES (...), (...)`).
        rows: Vec<Vec<Expr>>,
        position: Position,
    },
    Select(Query),
    /// `ALTER STREAM|TABLE name ADD [COLUMN] c type, ...`
    Alter {
        kind: SourceKind,
        name: String,
        columns: Vec<(String, SqlType)>,
    },
    Drop {
        kind: SourceKind,
        name: String,
        if_exists: bool,
        delete_topic: bool,
    },
    Terminate {
        /// `None` for `TERMINATE ALL`.
        query_id: Option<String>,
    },
    Show {
        what: ShowWhat,
        extended: bool,
    },
    Describe {
        name: String,
        extended: bool,
    },
    DescribeFunction(String),
    Explain(Box<Statement>),
    ExplainQuery(String),
    Set {
        name: String,
        value: String,
    },
    Unset {
        name: String,
    },
    Print {
        topic: String,
        from_beginning: bool,
        limit: Option<u64>,
    },
}

impl Statement {
    /// Whether it leaves the catalog and the running queries as they are
    /// (it reads, or writes rows: `INSERT ... VALUES`).
    pub(crate) fn keeps_catalog(&self) -> bool {
        matches!(
            self,
            Statement::InsertValues { .. }
                | Statement::Select(_)
                | Statement::Show { .. }
                | Statement::Describe { .. }
                | Statement::DescribeFunction(_)
                | Statement::Explain(_)
                | Statement::ExplainQuery(_)
                | Statement::Print { .. }
        )
    }
}

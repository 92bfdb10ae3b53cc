//! The crate's error type.
//!
//! Each top-level module has its own error kind; [`Error`] wraps them, keeps
//! their source, knows its Postgres SQLSTATE (for the wire server) and, for
//! mistakes in a statement, the position (line and column, 1-based) where the
//! mistake is.

use std::fmt;

/// A position in a statement's text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}:{}", self.line, self.column)
    }
}

/// Everything that can go wrong in Sluice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement text is not valid ksqlDB SQL.
    #[error("{message}{}", at(.position))]
    Syntax {
        message: String,
        position: Option<Position>,
    },
    /// The statement is valid SQL but cannot run: unknown names, wrong
    /// types, illegal shapes.
    #[error("{message}{}", at(.position))]
    Semantic {
        message: String,
        position: Option<Position>,
    },
    /// A statement past one of the planner's limits on size, expression
    /// depth or nesting (`crate::planner::limits`).
    #[error("{message}{}", at(.position))]
    TooComplex {
        message: String,
        position: Option<Position>,
    },
    /// A construct Sluice does not support (yet), named.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// A stream, table, query or topic that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A statement parameter (`$1`, ...) missing, or not a value of its
    /// type.
    #[error("{0}")]
    BadParameter(String),
    /// A name that is already taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// A record could not be encoded or decoded, or a format cannot carry
    /// the columns it was given.
    #[error("{0}")]
    Format(String),
    /// DataFusion rejected or failed a plan or an expression.
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed on a batch.
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// RocksDB failed.
    #[error("state store: {0}")]
    State(#[from] rocksdb::Error),
    /// File system or network failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The Kafka cluster refused a request or could not be reached.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// A value out of the range of its column's type (an INSERT of
    /// 2147483648 into an INT).
    #[error("{0}")]
    OutOfRange(String),
    /// A statement asked for more than a configured limit allows (a value
    /// too large to build, a pull query's memory): it fails alone.
    #[error("{0}")]
    ResourceLimit(String),
    /// A statement in a transaction block that an earlier failure aborted.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,
    /// A statement that needs a transaction block, outside one.
    #[error("{0}")]
    NoTransaction(String),
    /// A cursor that does not exist.
    #[error("{0}")]
    NoCursor(String),
    /// A savepoint that does not exist.
    #[error("{0}")]
    Savepoint(String),
    /// A broken invariant inside Sluice: a bug, never the user's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

fn at(position: &Option<Position>) -> String {
    match position {
        Some(p) => format!(" (at {p})"),
        None => String::new(),
    }
}

impl From<crate::connectors::TopicError> for Error {
    fn from(e: crate::connectors::TopicError) -> Self {
        match e {
            crate::connectors::TopicError::Broker(m) => Error::Kafka(m),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<crate::connectors::formats::FormatError> for Error {
    fn from(e: crate::connectors::formats::FormatError) -> Self {
        Error::Format(e.to_string())
    }
}

/// DataFusion ran out of a memory pool, or a function refused to build a
/// value over its limit (`crate::functions::limits`), maybe wrapped in
/// context or in an Arrow error (`find_root` sees through both).
fn resources_exhausted(e: &datafusion::error::DataFusionError) -> bool {
    matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    )
}

/// A column that does not exist, as DataFusion says it.
fn no_such_field(e: &datafusion::error::DataFusionError) -> bool {
    match e.find_root() {
        datafusion::error::DataFusionError::SchemaError(e, _) => matches!(
            e.as_ref(),
            datafusion::common::SchemaError::FieldNotFound { .. }
        ),
        _ => false,
    }
}

/// A column that does not exist, as the planner says it (in ksqlDB's
/// words, which the conformance cases expect).
fn names_no_column(message: &str) -> bool {
    message.ends_with("cannot be resolved.")
        || (message.starts_with("Column name ") && message.ends_with(" does not exist."))
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn semantic(message: impl Into<String>) -> Self {
        Error::Semantic {
            message: message.into(),
            position: None,
        }
    }

    pub(crate) fn syntax(message: impl Into<String>, position: Option<Position>) -> Self {
        Error::Syntax {
            message: message.into(),
            position,
        }
    }

    pub(crate) fn too_complex(message: impl Into<String>, position: Option<Position>) -> Self {
        Error::TooComplex {
            message: message.into(),
            position,
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    /// The Postgres SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Syntax { .. } => "42601",
            Error::Semantic { message, .. } if names_no_column(message) => "42703",
            Error::Semantic { .. } => "42000",
            Error::TooComplex { .. } => "54001",
            Error::Unsupported(_) => "0A000",
            Error::NotFound(_) => "42P01",
            Error::AlreadyExists(_) => "42P07",
            Error::BadParameter(_) => "22023",
            Error::Format(_) => "22P02",
            Error::OutOfRange(_) => "22003",
            Error::ResourceLimit(_) => "53200",
            Error::DataFusion(e) if resources_exhausted(e) => "53200",
            Error::DataFusion(e) if no_such_field(e) => "42703",
            Error::DataFusion(_) => "42000",
            Error::Kafka(_) => "08006",
            Error::TransactionAborted => "25P02",
            Error::NoTransaction(_) => "25P01",
            Error::Savepoint(_) => "3B001",
            Error::NoCursor(_) => "34000",
            _ => "XX000",
        }
    }

    /// The message without the position (which the wire protocol sends on
    /// its own).
    pub fn message(&self) -> String {
        match self {
            Error::Syntax { message, .. }
            | Error::Semantic { message, .. }
            | Error::TooComplex { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Where in the statement the mistake is, when known.
    pub fn position(&self) -> Option<Position> {
        match self {
            Error::Syntax { position, .. }
            | Error::Semantic { position, .. }
            | Error::TooComplex { position, .. } => *position,
            _ => None,
        }
    }

    /// Move a statement error's position (errors without one are kept).
    pub(crate) fn replace_position(self, pos: Position) -> Self {
        match self {
            Error::Syntax { message, .. } => Error::Syntax {
                message,
                position: Some(pos),
            },
            Error::Semantic { message, .. } => Error::Semantic {
                message,
                position: Some(pos),
            },
            Error::TooComplex { message, .. } => Error::TooComplex {
                message,
                position: Some(pos),
            },
            other => other,
        }
    }

    /// Attach a position to a statement error that has none yet.
    pub(crate) fn with_position(self, pos: Position) -> Self {
        match self {
            Error::Syntax { message, position } => Error::Syntax {
                message,
                position: position.or(Some(pos)),
            },
            Error::Semantic { message, position } => Error::Semantic {
                message,
                position: position.or(Some(pos)),
            },
            Error::TooComplex { message, position } => Error::TooComplex {
                message,
                position: position.or(Some(pos)),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::{Column, SchemaError};
    use datafusion::error::DataFusionError;

    use super::*;

    #[test]
    fn an_unknown_column_is_42703_as_in_postgres() {
        let planner = Error::semantic("SELECT column 'X' cannot be resolved.");
        assert_eq!(planner.sqlstate(), "42703");
        assert_eq!(
            Error::semantic("Column name X does not exist.").sqlstate(),
            "42703"
        );
        let field = SchemaError::FieldNotFound {
            field: Box::new(Column::from_name("x")),
            valid_fields: vec![],
        };
        let datafusion = DataFusionError::SchemaError(Box::new(field), Box::new(None));
        assert_eq!(Error::DataFusion(datafusion).sqlstate(), "42703");
        assert_eq!(Error::semantic("Invalid result type.").sqlstate(), "42000");
    }
}

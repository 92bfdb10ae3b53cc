//! ksqlDB's SQL types and their Arrow representation.
//!
//! Every ksqlDB type maps to exactly one Arrow type, and back:
//!
//! | ksqlDB          | Arrow                                   |
//! |-----------------|-----------------------------------------|
//! | BOOLEAN         | Boolean                                 |
//! | INT / INTEGER   | Int32                                   |
//! | BIGINT          | Int64                                   |
//! | DOUBLE          | Float64                                 |
//! | DECIMAL(p, s)   | Decimal128(p, s)                        |
//! | STRING/VARCHAR  | Utf8                                    |
//! | BYTES           | Binary                                  |
//! | TIMESTAMP       | Timestamp(Millisecond, None)            |
//! | DATE            | Date32                                  |
//! | TIME            | Time32(Millisecond)                     |
//! | ARRAY<T>        | List(item: T, nullable)                 |
//! | MAP<K, V>       | Map(entries { key: K, value: V }) keys non-null |
//! | STRUCT<a T,...> | Struct(a: T, ...), all nullable         |
//!
//! Types are displayed as ksqlDB displays them in `DESCRIBE` and in the
//! conformance cases' `post` checks (`INTEGER`, `STRING`, `STRUCT<`A` INTEGER>`).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// A ksqlDB SQL type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    Boolean,
    Int,
    Bigint,
    Double,
    Decimal(u8, i8),
    String,
    Bytes,
    Timestamp,
    Date,
    Time,
    Array(Box<SqlType>),
    Map(Box<SqlType>, Box<SqlType>),
    Struct(Vec<(String, SqlType)>),
}

impl SqlType {
    /// The Arrow type this SQL type is stored as.
    pub fn to_arrow(&self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::Int => DataType::Int32,
            SqlType::Bigint => DataType::Int64,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal(p, s) => DataType::Decimal128(*p, *s),
            SqlType::String => DataType::Utf8,
            SqlType::Bytes => DataType::Binary,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time32(TimeUnit::Millisecond),
            SqlType::Array(item) => {
                DataType::List(Arc::new(Field::new("item", item.to_arrow(), true)))
            }
            SqlType::Map(k, v) => map_type(k.to_arrow(), v.to_arrow()),
            SqlType::Struct(fields) => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// The SQL type of an Arrow type, if ksqlDB has one. Integer and float
    /// widths ksqlDB lacks widen to the nearest ksqlDB type.
    pub fn from_arrow(dt: &DataType) -> Option<SqlType> {
        Some(match dt {
            DataType::Boolean => SqlType::Boolean,
            DataType::Int8 | DataType::Int16 | DataType::Int32 => SqlType::Int,
            DataType::UInt8 | DataType::UInt16 => SqlType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => SqlType::Bigint,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => SqlType::Double,
            DataType::Decimal128(p, s) => SqlType::Decimal(*p, *s),
            DataType::Decimal256(p, s) => SqlType::Decimal((*p).min(38), *s),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::String,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytes,
            DataType::FixedSizeBinary(_) => SqlType::Bytes,
            DataType::Timestamp(_, _) => SqlType::Timestamp,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                SqlType::Array(Box::new(SqlType::from_arrow(f.data_type())?))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => SqlType::Map(
                    Box::new(SqlType::from_arrow(kv[0].data_type())?),
                    Box::new(SqlType::from_arrow(kv[1].data_type())?),
                ),
                _ => return None,
            },
            DataType::Struct(fields) => SqlType::Struct(
                fields
                    .iter()
                    .map(|f| Some((f.name().clone(), SqlType::from_arrow(f.data_type())?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            DataType::Null => SqlType::String,
            _ => return None,
        })
    }

    /// True for the types ksqlDB can use as a numeric operand.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Int | SqlType::Bigint | SqlType::Double | SqlType::Decimal(_, _)
        )
    }
}

/// The Arrow map type with ksqlDB's layout: `entries { key, value }`, keys
/// non-null, values nullable, unsorted.
pub fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => write!(f, "BOOLEAN"),
            SqlType::Int => write!(f, "INTEGER"),
            SqlType::Bigint => write!(f, "BIGINT"),
            SqlType::Double => write!(f, "DOUBLE"),
            SqlType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            SqlType::String => write!(f, "STRING"),
            SqlType::Bytes => write!(f, "BYTES"),
            SqlType::Timestamp => write!(f, "TIMESTAMP"),
            SqlType::Date => write!(f, "DATE"),
            SqlType::Time => write!(f, "TIME"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            SqlType::Struct(fields) => {
                write!(f, "STRUCT<")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "`{n}` {t}")?;
                }
                write!(f, ">")
            }
        }
    }
}

/// Display an Arrow type the way ksqlDB names it, falling back to Arrow's
/// own name for types ksqlDB does not have.
pub fn display_arrow(dt: &DataType) -> String {
    match SqlType::from_arrow(dt) {
        Some(t) => t.to_string(),
        None => dt.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_arrow() {
        let t = SqlType::Struct(vec![
            ("A".into(), SqlType::Int),
            (
                "B".into(),
                SqlType::Map(
                    Box::new(SqlType::String),
                    Box::new(SqlType::Array(Box::new(SqlType::Decimal(4, 2)))),
                ),
            ),
        ]);
        assert_eq!(SqlType::from_arrow(&t.to_arrow()), Some(t.clone()));
        assert_eq!(
            t.to_string(),
            "STRUCT<`A` INTEGER, `B` MAP<STRING, ARRAY<DECIMAL(4, 2)>>>"
        );
    }
}

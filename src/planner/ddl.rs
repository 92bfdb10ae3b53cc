//! `CREATE STREAM|TABLE` and the `WITH (...)` options of every statement.
//!
//! Options are parsed into a typed [`SourceOptions`]; an unknown option is
//! rejected with its name and position; formats are checked against the
//! columns they must carry, with ksqlDB's messages.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;

use super::ast::{ColumnDef, CreateSource, KeyKind, OptionValue, SourceKind, WithOptions};
use crate::catalog::types::SqlType;
use crate::catalog::{sql_type_name, Column, ColumnKind, Source};
use crate::connectors::formats::{Format, FormatKind, WindowKind};
use crate::error::{Error, Result};
use crate::runtime::{KeyWindow, ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART};

/// Names no user column may take.
pub(crate) const RESERVED_COLUMNS: &[&str] =
    &[ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND];

const KNOWN_OPTIONS: &[&str] = &[
    "KAFKA_TOPIC",
    "KEY_FORMAT",
    "VALUE_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "RETENTION_MS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "KEY_DELIMITER",
    "VALUE_DELIMITER",
    "WRAP_SINGLE_VALUE",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
    "KEY_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "KEY_PROTOBUF_NULLABLE_REPRESENTATION",
    "VALUE_PROTOBUF_NULLABLE_REPRESENTATION",
    "SOURCE_CONNECTOR",
];

/// Typed `WITH (...)` options.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceOptions {
    pub topic: Option<String>,
    pub key_format: Option<Format>,
    pub value_format: Option<Format>,
    pub partitions: Option<i32>,
    pub replicas: Option<i16>,
    pub retention_ms: Option<i64>,
    pub timestamp: Option<String>,
    pub timestamp_format: Option<String>,
    pub wrap_single_value: Option<bool>,
    pub window: Option<KeyWindow>,
    /// Delimiters given without a format (they apply to an inherited one).
    pub key_delimiter: Option<char>,
    pub value_delimiter: Option<char>,
}

fn format_error(e: crate::connectors::formats::FormatError) -> Error {
    Error::semantic(e.to_string())
}

impl SourceOptions {
    /// Parse options; `defaults` are session properties (e.g.
    /// `ksql.persistence.default.format.value`).
    pub(crate) fn parse(with: &WithOptions, defaults: &BTreeMap<String, String>) -> Result<Self> {
        for (name, (_, pos)) in with {
            if !KNOWN_OPTIONS.contains(&name.as_str()) {
                return Err(Error::semantic(format!(
                    "Invalid config variable(s) in the WITH clause: {name}"
                ))
                .with_position(*pos));
            }
        }
        let get = |k: &str| with.get(k).map(|(v, _)| v.clone());
        let string = |k: &str| get(k).map(|v| v.as_string());
        let int = |k: &str| -> Result<Option<i64>> {
            match get(k) {
                None => Ok(None),
                Some(OptionValue::Number(n)) => n.parse::<i64>().map(Some).map_err(|_| {
                    Error::semantic(format!("Invalid value for {k}: '{n}' is not an integer"))
                }),
                Some(v) => v.as_string().parse::<i64>().map(Some).map_err(|_| {
                    Error::semantic(format!(
                        "Invalid value for {k}: '{}' is not an integer",
                        v.as_string()
                    ))
                }),
            }
        };
        if get("FORMAT").is_some() && (get("KEY_FORMAT").is_some() || get("VALUE_FORMAT").is_some())
        {
            return Err(Error::semantic(
                "Cannot supply both 'FORMAT' and 'KEY_FORMAT' or 'VALUE_FORMAT' properties, as 'FORMAT' sets both key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'.",
            ));
        }
        let fmt_name = |k: &str, default_prop: &str| -> Option<String> {
            string(k)
                .or_else(|| string("FORMAT"))
                .or_else(|| defaults.get(default_prop).cloned())
        };
        let mut key_format = match fmt_name("KEY_FORMAT", "ksql.persistence.default.format.key") {
            Some(n) => Some(Format::new(FormatKind::parse(&n).map_err(format_error)?)),
            None => None,
        };
        let mut value_format =
            match fmt_name("VALUE_FORMAT", "ksql.persistence.default.format.value") {
                Some(n) => Some(Format::new(FormatKind::parse(&n).map_err(format_error)?)),
                None => None,
            };
        let (mut key_delimiter, mut value_delimiter) = (None, None);
        for (opt, fmt) in [
            ("KEY_DELIMITER", &mut key_format),
            ("VALUE_DELIMITER", &mut value_format),
        ] {
            if let Some(d) = string(opt) {
                let delim = Format::parse_delimiter(&d).map_err(|e| {
                    Error::semantic(format!(
                        "Failed to prepare statement: Configuration {opt} is invalid: {e}"
                    ))
                })?;
                match fmt {
                    Some(f) if f.kind == FormatKind::Delimited => {
                        *f = f.clone().with_delimiter(delim)
                    }
                    Some(f) => {
                        return Err(Error::semantic(format!(
                            "{} does not support the following configs: [delimiter]",
                            f.kind
                        )))
                    }
                    None => {
                        if opt == "KEY_DELIMITER" {
                            key_delimiter = Some(delim);
                        } else {
                            value_delimiter = Some(delim);
                        }
                    }
                }
            }
        }
        let wrap = match get("WRAP_SINGLE_VALUE") {
            None => None,
            Some(OptionValue::Bool(b)) => Some(b),
            Some(v) => match v.as_string().to_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                other => {
                    return Err(Error::semantic(format!(
                        "Invalid value for WRAP_SINGLE_VALUE: '{other}'"
                    )))
                }
            },
        };
        if let Some(f) = value_format.as_mut() {
            *f = f.clone().with_wrap_single(wrap);
        }
        let window = match string("WINDOW_TYPE") {
            None => {
                if get("WINDOW_SIZE").is_some() {
                    return Err(Error::semantic(
                        "'WINDOW_SIZE' requires 'WINDOW_TYPE' to be set.",
                    ));
                }
                None
            }
            Some(t) => {
                let kind = match t.to_uppercase().as_str() {
                    "SESSION" => WindowKind::Session,
                    "TUMBLING" | "HOPPING" => WindowKind::Time,
                    other => return Err(Error::semantic(format!("Unknown WINDOW_TYPE '{other}'"))),
                };
                let size = match string("WINDOW_SIZE") {
                    Some(s) => {
                        if kind == WindowKind::Session {
                            return Err(Error::semantic(
                                "'WINDOW_SIZE' should not be set for SESSION windows.",
                            ));
                        }
                        Some(parse_duration(&s).map_err(|e| {
                            Error::semantic(format!("Configuration WINDOW_SIZE is invalid: {e}"))
                        })?)
                    }
                    None if kind == WindowKind::Time => {
                        return Err(Error::semantic(format!(
                            "{} windows require 'WINDOW_SIZE' to be provided in the WITH clause.",
                            t.to_uppercase()
                        )))
                    }
                    None => None,
                };
                Some(KeyWindow { kind, size })
            }
        };
        Ok(SourceOptions {
            topic: string("KAFKA_TOPIC"),
            key_format,
            value_format,
            partitions: int("PARTITIONS")?.map(|p| p as i32),
            replicas: int("REPLICAS")?.map(|r| r as i16),
            retention_ms: int("RETENTION_MS")?,
            timestamp: string("TIMESTAMP").map(|s| s.to_uppercase()),
            timestamp_format: string("TIMESTAMP_FORMAT"),
            wrap_single_value: wrap,
            window,
            key_delimiter,
            value_delimiter,
        })
    }
}

/// `'10 SECONDS'` → milliseconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<i64, String> {
    let mut parts = s.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "Invalid duration: '{s}'. Expected '<number> <unit>'"
        ));
    };
    let n: i64 = n
        .parse()
        .map_err(|_| format!("Invalid duration: '{s}'. '{n}' is not a number"))?;
    let ms = match unit.to_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => {
            return Err(format!(
                "Invalid duration: '{s}'. Unknown time unit: '{}'",
                unit.to_uppercase()
            ))
        }
    };
    n.checked_mul(ms)
        .ok_or_else(|| format!("Invalid duration: '{s}'. Too large"))
}

fn contains_map(t: &SqlType) -> bool {
    match t {
        SqlType::Map(_, _) => true,
        SqlType::Array(i) => contains_map(i),
        SqlType::Struct(fs) => fs.iter().any(|(_, t)| contains_map(t)),
        _ => false,
    }
}

/// ksqlDB rejects key columns whose type contains a MAP.
pub(crate) fn check_key_type(name: &str, dt: &DataType) -> Result<()> {
    if let Some(t) = SqlType::from_arrow(dt) {
        if contains_map(&t) {
            return Err(Error::semantic(format!(
                "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{name}`. Column type: {t}."
            )));
        }
    }
    Ok(())
}

/// Check the columns a format must carry.
pub(crate) fn check_formats(key: &Format, value: &Format, columns: &[Column]) -> Result<()> {
    let keys: Vec<_> = columns
        .iter()
        .filter(|c| c.kind == ColumnKind::Key)
        .map(|c| c.field())
        .collect();
    let values: Vec<_> = columns
        .iter()
        .filter(|c| c.kind == ColumnKind::Value)
        .map(|c| c.field())
        .collect();
    key.validate(&keys, true).map_err(format_error)?;
    value.validate(&values, false).map_err(format_error)?;
    Ok(())
}

/// Build the catalog entry of `CREATE [SOURCE] STREAM|TABLE`.
pub(crate) fn create_source(
    stmt: &CreateSource,
    sql: &str,
    defaults: &BTreeMap<String, String>,
    topic_partitions: Option<i32>,
) -> Result<(Source, SourceOptions)> {
    let opts = SourceOptions::parse(&stmt.with, defaults)?;
    let topic = opts.topic.clone().ok_or_else(|| {
        Error::semantic("Missing required property \"KAFKA_TOPIC\" which has no default value.")
    })?;
    let value_format = opts.value_format.clone().ok_or_else(|| {
        Error::semantic(
            "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one or set a default via the 'ksql.persistence.default.format.value' config.",
        )
    })?;
    let key_format = opts
        .key_format
        .clone()
        .unwrap_or_else(|| Format::new(FormatKind::Kafka));
    let mut columns = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut has_key = false;
    for c in &stmt.columns {
        check_column_name(c)?;
        if !seen.insert(c.name.clone()) {
            return Err(
                Error::semantic(format!("Duplicate column names: {}", c.name))
                    .with_position(c.position),
            );
        }
        let kind = match (c.key, &c.header) {
            (Some(k), _) => {
                match (stmt.kind, k) {
                    (SourceKind::Stream, KeyKind::PrimaryKey) => {
                        return Err(Error::semantic(format!(
                            "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                            c.name
                        ))
                        .with_position(c.position))
                    }
                    (SourceKind::Table, KeyKind::Key) => {
                        return Err(Error::semantic(format!(
                            "Column `{}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                            c.name
                        ))
                        .with_position(c.position))
                    }
                    _ => {}
                }
                has_key = true;
                ColumnKind::Key
            }
            (None, Some(super::ast::HeaderSpec::All)) => ColumnKind::Header(None),
            (None, Some(super::ast::HeaderSpec::Key(k))) => ColumnKind::Header(Some(k.clone())),
            (None, None) => ColumnKind::Value,
        };
        let data_type = c.ty.to_arrow();
        if kind == ColumnKind::Key {
            check_key_type(&c.name, &data_type)?;
        }
        match &kind {
            ColumnKind::Header(None) => {
                let want = SqlType::Array(Box::new(SqlType::Struct(vec![
                    ("KEY".into(), SqlType::String),
                    ("VALUE".into(), SqlType::Bytes),
                ])));
                if c.ty != want {
                    return Err(Error::semantic(format!(
                        "Invalid type for HEADERS column: expected {want}, got {}",
                        c.ty
                    )));
                }
            }
            ColumnKind::Header(Some(_)) if c.ty != SqlType::Bytes => {
                return Err(Error::semantic(format!(
                    "Invalid type for HEADER('{}') column: expected BYTES, got {}",
                    c.name, c.ty
                )));
            }
            _ => {}
        }
        columns.push(Column {
            name: c.name.clone(),
            data_type,
            kind,
        });
    }
    if stmt.kind == SourceKind::Table && !has_key {
        return Err(Error::semantic(
            "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.",
        ));
    }
    if columns.is_empty() {
        return Err(Error::semantic(
            "The statement does not define any columns.",
        ));
    }
    // Key columns first, as ksqlDB orders them.
    columns.sort_by_key(|c| match c.kind {
        ColumnKind::Key => 0,
        ColumnKind::Value => 1,
        ColumnKind::Header(_) => 2,
    });
    check_formats(&key_format, &value_format, &columns)?;
    let timestamp = match &opts.timestamp {
        Some(ts) => {
            let col = columns.iter().find(|c| &c.name == ts).ok_or_else(|| {
                Error::semantic(format!("The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"))
            })?;
            let ok = matches!(
                (&col.data_type, &opts.timestamp_format),
                (DataType::Utf8, Some(_)) | (DataType::Int64 | DataType::Timestamp(_, _), None)
            );
            if !ok {
                return Err(Error::semantic(format!(
                    "Timestamp column, `{ts}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified. Got {}",
                    sql_type_name(&col.data_type)
                )));
            }
            Some((ts.clone(), opts.timestamp_format.clone()))
        }
        None => None,
    };
    let partitions = opts.partitions.or(topic_partitions).unwrap_or(1);
    Ok((
        Source {
            name: stmt.name.clone(),
            kind: stmt.kind,
            topic,
            key_format,
            value_format,
            columns,
            timestamp,
            window: opts.window,
            partitions,
            replicas: opts.replicas,
            retention_ms: opts.retention_ms,
            read_only: stmt.is_source,
            sql: sql.to_string(),
            query: None,
        },
        opts,
    ))
}

fn check_column_name(c: &ColumnDef) -> Result<()> {
    if RESERVED_COLUMNS.contains(&c.name.as_str()) {
        return Err(Error::semantic(format!(
            "'{}' is a reserved column name. You cannot use it as a name for a column.",
            c.name
        ))
        .with_position(c.position));
    }
    Ok(())
}

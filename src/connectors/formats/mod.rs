//! Record formats for keys and values: JSON, DELIMITED, KAFKA,
//! PROTOBUF_NOSR and NONE, as ksqlDB writes and reads them.
//!
//! A [`Format`] turns the bytes of one Kafka key or value into one
//! `ScalarValue` per column, and back. Columns are Arrow fields whose types
//! follow `catalog::types` (INT is `Int32`, TIMESTAMP is
//! `Timestamp(Millisecond)`, MAP is `Map<entries{key, value}>`...).
//!
//! - **JSON** ([`json`]): an object with one member per column (names matched
//!   exactly, else case-insensitively), or, for a single column that is
//!   unwrapped, the bare value. Single key columns are always unwrapped;
//!   single value columns only with `WRAP_SINGLE_VALUE=false`. ksqlDB's type
//!   coercions apply (strings to numbers, anything to a string).
//! - **DELIMITED** ([`delimited`]): one CSV record, Apache Commons CSV 1.4
//!   rules (what ksqlDB ships), any single-character delimiter; empty fields
//!   are NULL; primitive types only.
//! - **KAFKA** ([`kafka`]): Kafka's primitive serdes for a single INT,
//!   BIGINT, DOUBLE, STRING or BYTES column; a NULL writes no bytes.
//! - **PROTOBUF_NOSR** ([`protobuf`]): a proto3 message with one field per
//!   column, numbered in column order, its schema derived from the columns
//!   (no registry). NULL scalars are absent and read back as 0, "", false.
//! - **NONE** ([`none`]): no columns, no bytes.
//!
//! Windowed keys wrap the inner key bytes with the window bounds the way
//! Kafka Streams does ([`windowed`]).
//!
//! Null bytes (tombstones, null keys) never reach a format: the caller maps
//! them to a null record. A JSON value that is the literal `null` is also a
//! null record in ksqlDB; [`Format::decode_record`] reports it as `None`.
//!
//! Decoding never panics: malformed UTF-8, truncated input, absurd numbers
//! and deep nesting all come back as [`FormatError::Deserialize`], which the
//! runtime counts and skips.
//!
//! The conformance runner's helpers ([`test_json_to_bytes`],
//! [`bytes_to_test_json`]) translate the JSON notation of the qtt files:
//! JSON and PROTOBUF_NOSR records as JSON objects, DELIMITED records as their
//! text, KAFKA records as the single scalar.

mod cells;
#[cfg(test)]
mod columnar_tests;
mod columns;
mod delimited;
mod json;
mod json_columns;
mod jsontree;
mod kafka;
mod none;
mod protobuf;
mod qtt;
mod row_decoder;
mod scalar;
mod text;
mod windowed;

use std::fmt;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;

use crate::catalog::types::{display_arrow, SqlType};

pub(crate) use columns::{Column, LastTime};
pub(crate) use json::{json_to_scalar, scalar_to_json};
pub(crate) use qtt::{bytes_to_test_json, test_json_to_bytes};
pub(crate) use row_decoder::{columnar_differs, RowDecoder};
pub(crate) use windowed::{decode_windowed_key, encode_windowed_key};

/// The serialization formats Sluice reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FormatKind {
    Json,
    Delimited,
    Kafka,
    ProtobufNoSr,
    None,
}

impl FormatKind {
    /// The format named in `KEY_FORMAT` / `VALUE_FORMAT` / `FORMAT`, in any case.
    pub(crate) fn parse(name: &str) -> Result<FormatKind, FormatError> {
        match name.to_ascii_uppercase().as_str() {
            "JSON" => Ok(FormatKind::Json),
            "DELIMITED" => Ok(FormatKind::Delimited),
            "KAFKA" => Ok(FormatKind::Kafka),
            "NONE" => Ok(FormatKind::None),
            "PROTOBUF_NOSR" => Ok(FormatKind::ProtobufNoSr),
            f @ ("AVRO" | "PROTOBUF" | "JSON_SR") => Err(FormatError::NeedsRegistry(f.into())),
            _ => Err(FormatError::UnknownFormat(name.into())),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            FormatKind::Json => "JSON",
            FormatKind::Delimited => "DELIMITED",
            FormatKind::Kafka => "KAFKA",
            FormatKind::ProtobufNoSr => "PROTOBUF_NOSR",
            FormatKind::None => "NONE",
        }
    }
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key or value format with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) kind: FormatKind,
    /// DELIMITED only; `,` by default.
    pub(crate) delimiter: char,
    /// `WRAP_SINGLE_VALUE` as given; `None` is ksqlDB's default (wrapped
    /// values, unwrapped single keys).
    pub(crate) wrap_single: Option<bool>,
}

/// The kind of window of a windowed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WindowKind {
    Time,
    Session,
}

/// What went wrong with a format, in ksqlDB's words where ksqlDB has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    #[error("Unknown format: {0}")]
    UnknownFormat(String),
    #[error("The '{0}' format needs a schema registry, which Sluice does not support yet")]
    NeedsRegistry(String),
    /// The format cannot carry these columns or options (statement error).
    #[error("{0}")]
    Invalid(String),
    /// A record could not be read; the runtime skips and counts it.
    #[error("Failed to deserialize {target}{}. {reason}", topic_part(.topic))]
    Deserialize {
        target: &'static str,
        topic: Option<String>,
        reason: String,
    },
    /// A row could not be written.
    #[error("Failed to serialize {target}{}. {reason}", topic_part(.topic))]
    Serialize {
        target: &'static str,
        topic: Option<String>,
        reason: String,
    },
}

fn topic_part(topic: &Option<String>) -> String {
    match topic {
        Some(t) => format!(" from topic: {t}"),
        None => String::new(),
    }
}

impl FormatError {
    fn de(is_key: bool, reason: impl Into<String>) -> FormatError {
        FormatError::Deserialize {
            target: target(is_key),
            topic: None,
            reason: reason.into(),
        }
    }

    fn ser(is_key: bool, reason: impl Into<String>) -> FormatError {
        FormatError::Serialize {
            target: target(is_key),
            topic: None,
            reason: reason.into(),
        }
    }

    /// Names the topic in a (de)serialization error.
    pub(crate) fn with_topic(self, name: &str) -> FormatError {
        match self {
            FormatError::Deserialize { target, reason, .. } => FormatError::Deserialize {
                target,
                topic: Some(name.to_string()),
                reason,
            },
            FormatError::Serialize { target, reason, .. } => FormatError::Serialize {
                target,
                topic: Some(name.to_string()),
                reason,
            },
            other => other,
        }
    }
}

fn target(is_key: bool) -> &'static str {
    if is_key {
        "key"
    } else {
        "value"
    }
}

impl Format {
    pub(crate) fn new(kind: FormatKind) -> Format {
        Format {
            kind,
            delimiter: ',',
            wrap_single: None,
        }
    }

    pub(crate) fn with_delimiter(mut self, delimiter: char) -> Format {
        self.delimiter = delimiter;
        self
    }

    pub(crate) fn with_wrap_single(mut self, wrap: Option<bool>) -> Format {
        self.wrap_single = wrap;
        self
    }

    /// Parses a `KEY_DELIMITER` / `VALUE_DELIMITER` value: one character, or
    /// `TAB` / `SPACE`. The caller prefixes ksqlDB's
    /// "Configuration VALUE_DELIMITER is invalid: ".
    pub(crate) fn parse_delimiter(s: &str) -> Result<char, FormatError> {
        if s.trim().is_empty() {
            return Err(FormatError::Invalid(
                "Delimiter cannot be empty, if you meant to have a tab or space for delimiter, \
                 please use the special values 'TAB' or 'SPACE'\nExample valid value: ';'"
                    .into(),
            ));
        }
        let mut chars = s.chars();
        match (chars.next(), chars.next(), s) {
            (Some(c), None, _) => Ok(c),
            (_, _, "TAB") => Ok('\t'),
            (_, _, "SPACE") => Ok(' '),
            _ => Err(FormatError::Invalid(format!(
                "Invalid delimiter value: '{s}'. Delimiter must be a single character or \
                 TAB,SPACE\nExample valid value: ';'"
            ))),
        }
    }

    /// True if a single column is written bare rather than inside an object.
    fn unwrapped(&self, n_fields: usize, is_key: bool) -> bool {
        // ksqlDB always unwraps single key columns; WRAP_SINGLE_VALUE is for values.
        n_fields == 1 && (is_key || self.wrap_single == Some(false))
    }

    /// Checks the format can carry these columns, with ksqlDB's messages.
    pub(crate) fn validate(&self, fields: &[FieldRef], is_key: bool) -> Result<(), FormatError> {
        if is_key {
            for f in fields {
                if contains_map(f.data_type()) {
                    return Err(FormatError::Invalid(format!(
                        "Map keys, including types that contain maps, are not supported as they \
                         may lead to unexpected behavior due to inconsistent serialization. Key \
                         column name: `{}`. Column type: {}.",
                        f.name(),
                        display_arrow(f.data_type())
                    )));
                }
            }
        } else if let Some(wrap) = self.wrap_single {
            let supported = match self.kind {
                FormatKind::Json | FormatKind::ProtobufNoSr => true,
                FormatKind::Delimited | FormatKind::Kafka => !wrap,
                FormatKind::None => false,
            };
            if !supported {
                return Err(FormatError::Invalid(format!(
                    "Format '{}' does not support 'WRAP_SINGLE_VALUE' set to '{wrap}'.",
                    self.kind
                )));
            }
            if fields.len() != 1 {
                return Err(FormatError::Invalid(
                    "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas".into(),
                ));
            }
        }
        let reason = match self.kind {
            FormatKind::Json => json::unsupported(fields),
            FormatKind::Delimited => delimited::unsupported(fields),
            FormatKind::Kafka => kafka::unsupported(fields, is_key),
            FormatKind::ProtobufNoSr => protobuf::unsupported(fields),
            FormatKind::None => none::unsupported(fields, is_key),
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(FormatError::Invalid(format!(
                "{} format does not support schema.\nformat: {}\nschema: Persistence{{columns={}, \
                 features=[{}]}}\nreason: {reason}",
                if is_key { "Key" } else { "Value" },
                self.kind,
                column_list(fields, is_key),
                self.features(fields.len(), is_key),
            ))),
        }
    }

    fn features(&self, n_fields: usize, is_key: bool) -> &'static str {
        match (is_key, self.wrap_single) {
            (true, _)
                if matches!(self.kind, FormatKind::Json | FormatKind::ProtobufNoSr)
                    && n_fields == 1 =>
            {
                "UNWRAP_SINGLES"
            }
            (false, Some(true)) => "WRAP_SINGLES",
            (false, Some(false)) => "UNWRAP_SINGLES",
            _ => "",
        }
    }

    /// Decodes one key or value into one scalar per field. A record that is
    /// null as a whole (JSON `null`) decodes to all nulls; use
    /// [`Format::decode_record`] to tell it apart.
    pub(crate) fn decode(
        &self,
        bytes: &[u8],
        fields: &[FieldRef],
        is_key: bool,
    ) -> Result<Vec<ScalarValue>, FormatError> {
        match self.decode_record(bytes, fields, is_key)? {
            Some(values) => Ok(values),
            None => fields
                .iter()
                .map(|f| scalar::null_of(f.data_type()).map_err(|e| FormatError::de(is_key, e)))
                .collect(),
        }
    }

    /// Like [`Format::decode`], but `None` when the bytes encode a null record
    /// (ksqlDB treats it as a tombstone, like absent bytes).
    pub(crate) fn decode_record(
        &self,
        bytes: &[u8],
        fields: &[FieldRef],
        is_key: bool,
    ) -> Result<Option<Vec<ScalarValue>>, FormatError> {
        if fields.is_empty() {
            // ksqlDB's void serde: whatever the bytes, there is nothing to read.
            return Ok(Some(Vec::new()));
        }
        let result = match self.kind {
            FormatKind::Json => json::decode(bytes, fields, self.unwrapped(fields.len(), is_key)),
            FormatKind::Delimited => delimited::decode(bytes, fields, self.delimiter).map(Some),
            FormatKind::Kafka => kafka::decode(bytes, fields).map(Some),
            FormatKind::ProtobufNoSr => protobuf::decode(bytes, fields).map(Some),
            FormatKind::None => Ok(Some(Vec::new())),
        };
        result.map_err(|reason| FormatError::de(is_key, reason))
    }

    /// Encodes one value per field. `None` where ksqlDB writes no bytes: no
    /// columns, an unwrapped or KAFKA single NULL, a single-column NULL key.
    pub(crate) fn encode(
        &self,
        values: &[ScalarValue],
        fields: &[FieldRef],
        is_key: bool,
    ) -> Result<Option<Vec<u8>>, FormatError> {
        if values.len() != fields.len() {
            return Err(FormatError::ser(
                is_key,
                format!(
                    "Column count mismatch on serialization. expected: {}, got: {}",
                    fields.len(),
                    values.len()
                ),
            ));
        }
        if fields.is_empty() {
            return Ok(None);
        }
        if is_key && values.len() == 1 && values[0].is_null() {
            return Ok(None);
        }
        let result = match self.kind {
            FormatKind::Json => json::encode(values, fields, self.unwrapped(fields.len(), is_key)),
            FormatKind::Delimited => delimited::encode(values, self.delimiter).map(Some),
            FormatKind::Kafka => kafka::encode(values, fields),
            FormatKind::ProtobufNoSr => {
                protobuf::encode(values, fields, self.unwrapped(fields.len(), is_key))
            }
            FormatKind::None => Ok(None),
        };
        result.map_err(|reason| FormatError::ser(is_key, reason))
    }
}

fn contains_map(dt: &DataType) -> bool {
    match dt {
        DataType::Map(_, _) => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            contains_map(f.data_type())
        }
        DataType::Struct(fields) => fields.iter().any(|f| contains_map(f.data_type())),
        _ => false,
    }
}

/// ksqlDB's base type name (`SqlBaseType`) of a column type.
fn base_type_name(dt: &DataType) -> String {
    match SqlType::from_arrow(dt) {
        Some(SqlType::Decimal(_, _)) => "DECIMAL".into(),
        Some(SqlType::Array(_)) => "ARRAY".into(),
        Some(SqlType::Map(_, _)) => "MAP".into(),
        Some(SqlType::Struct(_)) => "STRUCT".into(),
        Some(t) => t.to_string(),
        None => dt.to_string(),
    }
}

/// Columns as ksqlDB lists them: "[`A` INTEGER KEY, `B` STRING KEY]".
fn column_list(fields: &[FieldRef], is_key: bool) -> String {
    let cols: Vec<String> = fields
        .iter()
        .map(|f| {
            format!(
                "`{}` {}{}",
                f.name(),
                display_arrow(f.data_type()),
                if is_key { " KEY" } else { "" }
            )
        })
        .collect();
    format!("[{}]", cols.join(", "))
}

/// True if a column's type holds a MAP whose keys are not strings (JSON
/// and Protobuf can only carry string map keys).
pub(super) fn has_non_string_map_key(fields: &[FieldRef]) -> bool {
    fn bad_map(dt: &DataType) -> bool {
        match dt {
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) => {
                    kv.first().is_none_or(|k| k.data_type() != &DataType::Utf8)
                        || kv.iter().any(|f| bad_map(f.data_type()))
                }
                _ => true,
            },
            DataType::List(f) => bad_map(f.data_type()),
            DataType::Struct(fs) => fs.iter().any(|f| bad_map(f.data_type())),
            _ => false,
        }
    }
    fields.iter().any(|f| bad_map(f.data_type()))
}

/// Fields for column specs (tests of the format modules).
#[cfg(test)]
pub(crate) fn test_fields(cols: &[(&str, SqlType)]) -> Vec<FieldRef> {
    cols.iter()
        .map(|(n, t)| {
            std::sync::Arc::new(datafusion::arrow::datatypes::Field::new(
                *n,
                t.to_arrow(),
                true,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(cols: &[(&str, SqlType)]) -> Vec<FieldRef> {
        crate::connectors::formats::test_fields(cols)
    }

    fn fmt(kind: FormatKind) -> Format {
        Format::new(kind)
    }

    #[test]
    fn parses_format_names() {
        assert_eq!(FormatKind::parse("json"), Ok(FormatKind::Json));
        assert_eq!(FormatKind::parse("Delimited"), Ok(FormatKind::Delimited));
        assert_eq!(
            FormatKind::parse("avro"),
            Err(FormatError::NeedsRegistry("AVRO".into()))
        );
        assert_eq!(
            FormatKind::parse("protobuf_nosr"),
            Ok(FormatKind::ProtobufNoSr)
        );
        assert_eq!(FormatKind::ProtobufNoSr.name(), "PROTOBUF_NOSR");
        assert_eq!(
            FormatKind::parse("xml").unwrap_err().to_string(),
            "Unknown format: xml"
        );
        assert_eq!(Format::parse_delimiter("|"), Ok('|'));
        assert_eq!(Format::parse_delimiter("TAB"), Ok('\t'));
        assert_eq!(Format::parse_delimiter("SPACE"), Ok(' '));
        assert!(Format::parse_delimiter("<~>")
            .unwrap_err()
            .to_string()
            .starts_with("Invalid delimiter value: '<~>'. Delimiter must be a single character"));
        assert!(Format::parse_delimiter(" ")
            .unwrap_err()
            .to_string()
            .starts_with("Delimiter cannot be empty"));
    }

    #[test]
    fn validates_with_ksqldb_messages() {
        let err = |f: Format, c: &[(&str, SqlType)], key: bool| {
            f.validate(&cols(c), key).unwrap_err().to_string()
        };
        assert_eq!(
            err(fmt(FormatKind::Kafka), &[("K", SqlType::Boolean)], true),
            "Key format does not support schema.\nformat: KAFKA\nschema: \
             Persistence{columns=[`K` BOOLEAN KEY], features=[]}\nreason: The 'KAFKA' format \
             does not support type 'BOOLEAN'"
        );
        assert_eq!(
            err(
                fmt(FormatKind::Delimited),
                &[("K", SqlType::Array(Box::new(SqlType::Double)))],
                true
            ),
            "Key format does not support schema.\nformat: DELIMITED\nschema: \
             Persistence{columns=[`K` ARRAY<DOUBLE> KEY], features=[]}\nreason: The 'DELIMITED' \
             format does not support type 'ARRAY', column: `K`"
        );
        let map = SqlType::Map(Box::new(SqlType::Int), Box::new(SqlType::Double));
        assert_eq!(
            err(
                fmt(FormatKind::Json),
                &[("K", SqlType::Array(Box::new(map.clone())))],
                true
            ),
            "Map keys, including types that contain maps, are not supported as they may lead to \
             unexpected behavior due to inconsistent serialization. Key column name: `K`. Column \
             type: ARRAY<MAP<INTEGER, DOUBLE>>."
        );
        assert!(err(fmt(FormatKind::Json), &[("FOO", map)], false)
            .contains("JSON only supports MAP types with STRING keys"));
        assert_eq!(
            err(
                fmt(FormatKind::Kafka).with_wrap_single(Some(true)),
                &[("FOO", SqlType::Int)],
                false
            ),
            "Format 'KAFKA' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        );
        assert_eq!(
            err(
                fmt(FormatKind::Delimited).with_wrap_single(Some(true)),
                &[("FOO", SqlType::Int)],
                false
            ),
            "Format 'DELIMITED' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        );
        assert_eq!(
            err(
                fmt(FormatKind::Json).with_wrap_single(Some(false)),
                &[("A", SqlType::Int), ("B", SqlType::Int)],
                false
            ),
            "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas"
        );
        assert!(err(fmt(FormatKind::None), &[("K", SqlType::Int)], true)
            .contains("The 'NONE' format can only be used when no columns are defined."));
        let ok = |f: Format, c: &[(&str, SqlType)], key: bool| f.validate(&cols(c), key).is_ok();
        assert!(ok(fmt(FormatKind::Kafka), &[("K", SqlType::Bytes)], true));
        assert!(ok(
            fmt(FormatKind::Kafka).with_wrap_single(Some(false)),
            &[("V", SqlType::Int)],
            false
        ));
        assert!(ok(
            fmt(FormatKind::Delimited),
            &[("A", SqlType::Decimal(4, 2)), ("B", SqlType::Time)],
            false
        ));
        assert!(ok(fmt(FormatKind::None), &[], true));
    }

    #[test]
    fn json_keys_are_bare_when_single_and_objects_when_several() {
        let json = fmt(FormatKind::Json);
        let one = cols(&[("K", SqlType::Int)]);
        let two = cols(&[("K1", SqlType::String), ("K2", SqlType::String)]);
        let k = [ScalarValue::Int32(Some(33))];
        assert_eq!(json.encode(&k, &one, true).unwrap().unwrap(), b"33");
        assert_eq!(json.decode(b"33", &one, true).unwrap(), k);
        let wrapped = json.clone().with_wrap_single(Some(true));
        assert_eq!(wrapped.encode(&k, &one, true).unwrap().unwrap(), b"33");
        let kk = [
            ScalarValue::Utf8(Some("foo".into())),
            ScalarValue::Utf8(Some("bar".into())),
        ];
        assert_eq!(
            json.encode(&kk, &two, true).unwrap().unwrap(),
            br#"{"K1":"foo","K2":"bar"}"#
        );
        assert_eq!(
            json.decode(br#"{"k1":"foo","K2":"bar"}"#, &two, true)
                .unwrap(),
            kk
        );
        // Values: wrapped by default, bare with WRAP_SINGLE_VALUE=false.
        assert_eq!(
            json.encode(&k, &one, false).unwrap().unwrap(),
            br#"{"K":33}"#
        );
        let bare = json.clone().with_wrap_single(Some(false));
        assert_eq!(bare.encode(&k, &one, false).unwrap().unwrap(), b"33");
        assert_eq!(
            bare.encode(&[ScalarValue::Int32(None)], &one, false)
                .unwrap(),
            None
        );
    }

    #[test]
    fn null_records_and_null_keys() {
        let json = fmt(FormatKind::Json);
        let v = cols(&[("NAME", SqlType::String)]);
        assert_eq!(json.decode_record(b"null", &v, false).unwrap(), None);
        assert_eq!(
            json.decode(b"null", &v, false).unwrap(),
            vec![ScalarValue::Utf8(None)]
        );
        assert_eq!(
            json.decode_record(b"{}", &v, false).unwrap(),
            Some(vec![ScalarValue::Utf8(None)])
        );
        for kind in [FormatKind::Json, FormatKind::Delimited, FormatKind::Kafka] {
            assert_eq!(
                fmt(kind)
                    .encode(&[ScalarValue::Utf8(None)], &v, true)
                    .unwrap(),
                None
            );
        }
        // A DELIMITED value with a single NULL column is an empty record.
        assert_eq!(
            fmt(FormatKind::Delimited)
                .encode(&[ScalarValue::Utf8(None)], &v, false)
                .unwrap(),
            Some(vec![])
        );
        // No columns: nothing to read or write, whatever the format.
        assert_eq!(
            fmt(FormatKind::Kafka).decode(b"xyz", &[], true).unwrap(),
            vec![]
        );
        assert_eq!(fmt(FormatKind::Json).encode(&[], &[], true).unwrap(), None);
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = fmt(FormatKind::Json)
            .decode(br#"{"V": "x"}"#, &cols(&[("V", SqlType::Int)]), false)
            .unwrap_err()
            .with_topic("input_topic");
        assert_eq!(
            e.to_string(),
            "Failed to deserialize value from topic: input_topic. Can't coerce string to type. \
             targetType: INTEGER, path: $.V"
        );
        let e = fmt(FormatKind::Kafka)
            .decode(b"abc", &cols(&[("K", SqlType::Int)]), true)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Failed to deserialize key. Size of data received by IntegerDeserializer is not 4"
        );
        let e = fmt(FormatKind::Json)
            .encode(&[], &cols(&[("V", SqlType::Int)]), false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Failed to serialize value. Column count mismatch on serialization. expected: 1, got: 0"
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let all = cols(&[
            ("A", SqlType::Int),
            ("B", SqlType::Decimal(10, 2)),
            (
                "C",
                SqlType::Array(Box::new(SqlType::Struct(vec![("X".into(), SqlType::Time)]))),
            ),
        ]);
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xff; 9],
            b"{\"A\":1e999999,\"B\":1e999999,\"C\":[{\"X\":-1}]}".to_vec(),
            b"{\"A\":99999999999999999999999,\"B\":\"1e-999999\"}".to_vec(),
            "[".repeat(5000).into_bytes(),
            b"\"\\ud800\"".to_vec(),
            b"\"unterminated,\"x".to_vec(),
        ];
        for kind in [
            FormatKind::Json,
            FormatKind::Delimited,
            FormatKind::Kafka,
            FormatKind::ProtobufNoSr,
            FormatKind::None,
        ] {
            for is_key in [true, false] {
                for input in &inputs {
                    let _ = fmt(kind).decode(input, &all, is_key);
                    let _ = fmt(kind).decode(input, &all[..1], is_key);
                }
            }
        }
    }
}

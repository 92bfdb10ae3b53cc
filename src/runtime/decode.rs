//! Records to rows: a source's records decoded into one change batch.
//!
//! Each record's key and value are decoded by the source's formats (a
//! windowed key gives WINDOWSTART and WINDOWEND), its headers become the
//! HEADERS columns and its time ROWTIME, from the record or the TIMESTAMP
//! column. A record that cannot be decoded, or has no valid time, is
//! skipped and listed with its partition, offset and reason, for the caller
//! to count and write to the processing log; a null value is a tombstone.
//! Only `ksql.timestamp.throw.on.invalid` makes a bad time fatal.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef, Fields};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use super::changes::{Changes, Op};
use super::plan::{SourceSpec, TimestampSpec};
use crate::connectors::formats::{decode_windowed_key, Column, LastTime, RowDecoder};
use crate::connectors::Record;
use crate::error::{Error, Result};

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

/// Decode records into a change batch with the source schema; records that
/// cannot be decoded are skipped and listed in `skipped`.
///
/// Each record is decoded straight into one column buffer per field of the
/// schema; a record that fails is cut back out of every buffer.
pub(crate) fn decode_batch(
    src: &SourceSpec,
    records: &[Record],
    skipped: &mut Vec<Skipped>,
) -> Result<Option<Changes>> {
    let mut cols: Vec<Column> = src
        .schema
        .fields()
        .iter()
        .map(|f| Column::new(f.data_type(), records.len()))
        .collect();
    let mut decoders = Decoders {
        key: src.key_format.decoder(&src.key_fields, true),
        value: src.value_format.decoder(&src.value_fields, false),
    };
    let mut ops = Vec::with_capacity(records.len());
    for r in records {
        match decode_record(src, r, &mut decoders, &mut cols) {
            Ok(op) => ops.push(op),
            Err(e) => {
                for c in &mut cols {
                    c.truncate(ops.len());
                }
                let e = match e {
                    RecordError::Fatal(e) => return Err(e),
                    RecordError::Skip(e) => e,
                };
                tracing::warn!(source = %src.name, topic = %src.topic, partition = r.partition, offset = r.offset, error = %e, "skipping record that cannot be decoded");
                skipped.push(Skipped {
                    partition: r.partition,
                    offset: r.offset,
                    reason: e.to_string(),
                });
            }
        }
    }
    if ops.is_empty() {
        return Ok(None);
    }
    let arrays = cols
        .into_iter()
        .map(|c| c.finish().map_err(Error::internal))
        .collect::<Result<Vec<_>>>()?;
    let batch = RecordBatch::try_new(src.schema.clone(), arrays)?;
    Ok(Some(Changes::new(batch, ops)))
}

/// The source's key and value decoders, for one batch.
struct Decoders {
    key: RowDecoder,
    value: RowDecoder,
}

/// Why a record was not decoded: skipped (counted, the query goes on) or
/// fatal (the query fails).
enum RecordError {
    Skip(Error),
    Fatal(Error),
}

impl<E: Into<Error>> From<E> for RecordError {
    fn from(e: E) -> Self {
        RecordError::Skip(e.into())
    }
}

/// One record appended to `cols` (in source schema order); its op. On an
/// error, some columns may hold a value of it: the caller truncates.
fn decode_record(
    src: &SourceSpec,
    r: &Record,
    decoders: &mut Decoders,
    cols: &mut [Column],
) -> Result<Op, RecordError> {
    let n_key = src.key_fields.len();
    let n_value = src.value_fields.len();
    if cols.len() < n_key + n_value + src.header_fields.len() + 3 {
        return Err(RecordError::Fatal(Error::internal(
            "source schema has fewer columns than its key, value and headers",
        )));
    }
    let (key_cols, rest) = cols.split_at_mut(n_key);
    let (value_cols, rest) = rest.split_at_mut(n_value);
    let mut window = None;
    match &r.key {
        None => decoders.key.push_nulls(key_cols),
        Some(bytes) => {
            let inner: &[u8] = match src.window {
                Some(w) => {
                    let (inner, start, end) = decode_windowed_key(bytes, w.kind, w.size)?;
                    window = Some((start, end));
                    inner
                }
                None => bytes,
            };
            if !src.key_fields.is_empty() && !decoders.key.decode_into(inner, key_cols)? {
                decoders.key.push_nulls(key_cols);
            }
        }
    }
    // A null value (or a value that decodes to null, like JSON `null`) is a
    // tombstone on a table and a null row on a stream: projections pass it on
    // as a null value, filters and aggregations skip it (as ksqlDB does).
    let decoded = match &r.value {
        None => false,
        Some(bytes) => decoders
            .value
            .decode_into(bytes, value_cols)
            .map_err(|e| e.with_topic(&src.topic))?,
    };
    let op = if decoded {
        Op::Insert
    } else {
        decoders.value.push_nulls(value_cols);
        Op::Delete
    };
    let (header_cols, _) = rest.split_at_mut(src.header_fields.len());
    for ((field, key), col) in src.header_fields.iter().zip(header_cols.iter_mut()) {
        push_header(col, field, key.as_deref(), &r.headers)?;
    }
    // Only the columns this record has filled so far (as the row it was).
    let filled = n_key + n_value + src.header_fields.len();
    let rowtime = match record_time(src, &cols[..filled], r, op) {
        Ok(t) => t,
        Err(reason) if src.fail_on_bad_timestamp => {
            // `ksql.timestamp.throw.on.invalid`: the query fails.
            return Err(RecordError::Fatal(Error::semantic(format!(
                "Fatal user code error in TimestampExtractor callback for record at {}/{}@{}: {reason}",
                src.topic, r.partition, r.offset
            ))));
        }
        Err(reason) => return Err(RecordError::Skip(Error::semantic(reason))),
    };
    let meta = &mut cols[n_key + n_value + src.header_fields.len()..];
    meta[0].push_i64(rowtime);
    meta[1].push_i32(r.partition);
    meta[2].push_i64(r.offset);
    if src.window_columns {
        for (i, bound) in [(3, window.map(|w| w.0)), (4, window.map(|w| w.1))] {
            match (meta.get_mut(i), bound) {
                (Some(c), Some(v)) => c.push_i64(v),
                (Some(c), None) => c.push_null(),
                (None, _) => {
                    return Err(RecordError::Fatal(Error::internal(
                        "source schema has no window columns",
                    )))
                }
            }
        }
    }
    Ok(op)
}

/// A record's time (ROWTIME) from its timestamp or TIMESTAMP column (the
/// last value of `cols`, the columns the record has filled); the reason
/// when there is none.
fn record_time(
    src: &SourceSpec,
    cols: &[Column],
    r: &Record,
    op: Op,
) -> std::result::Result<i64, String> {
    let t = match &src.timestamp {
        TimestampSpec::Record => r.timestamp,
        TimestampSpec::Column(i) => match cols.get(*i).map(Column::last_time) {
            Some(LastTime::Millis(v)) => v,
            Some(LastTime::Null) if op == Op::Delete => r.timestamp,
            _ => return Err("timestamp column is NULL or not a time".to_string()),
        },
        TimestampSpec::Formatted { column, format } => {
            match cols.get(*column).map(Column::last_str) {
                Some(Ok(Some(s))) => crate::functions::parse_timestamp_millis(s, format)
                    .map_err(|e| format!("cannot parse timestamp '{s}' with '{format}': {e}"))?,
                Some(Err(())) if op == Op::Delete => r.timestamp,
                _ => return Err("timestamp column is NULL or not a string".to_string()),
            }
        }
    };
    if t < 0 {
        return Err(format!("negative record time {t}"));
    }
    Ok(t)
}

/// A header column's value appended to its column.
fn push_header(
    col: &mut Column,
    field: &FieldRef,
    key: Option<&str>,
    headers: &[(String, Option<Arc<[u8]>>)],
) -> Result<()> {
    if let Some(k) = key {
        match headers.iter().rev().find(|(n, _)| n == k) {
            Some((_, Some(v))) if col.data_type() == &DataType::Binary => col.push_bytes(v),
            Some((_, Some(v))) => col.push_scalar(ScalarValue::Binary(Some(v.to_vec()))),
            _ => col.push_null(),
        }
        return Ok(());
    }
    col.push_scalar(header_value(field, key, headers)?);
    Ok(())
}

fn header_value(
    field: &FieldRef,
    key: Option<&str>,
    headers: &[(String, Option<Arc<[u8]>>)],
) -> Result<ScalarValue> {
    match key {
        Some(k) => Ok(ScalarValue::Binary(
            headers
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.as_ref().map(|b| b.to_vec())),
        )),
        None => {
            let DataType::List(item) = field.data_type() else {
                return Err(Error::internal(
                    "HEADERS column is not ARRAY<STRUCT<KEY, VALUE>>",
                ));
            };
            let DataType::Struct(fields) = item.data_type() else {
                return Err(Error::internal(
                    "HEADERS column is not ARRAY<STRUCT<KEY, VALUE>>",
                ));
            };
            let items: Vec<ScalarValue> = headers
                .iter()
                .map(|(n, v)| header_struct(fields, n, v.as_deref()))
                .collect::<Result<_>>()?;
            Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                &items,
                item.data_type(),
            )))
        }
    }
}

fn header_struct(fields: &Fields, name: &str, value: Option<&[u8]>) -> Result<ScalarValue> {
    let arrays: Vec<ArrayRef> = vec![
        ScalarValue::Utf8(Some(name.to_string())).to_array()?,
        ScalarValue::Binary(value.map(|v| v.to_vec())).to_array()?,
    ];
    let s = datafusion::arrow::array::StructArray::try_new(fields.clone(), arrays, None)?;
    Ok(ScalarValue::Struct(Arc::new(s)))
}

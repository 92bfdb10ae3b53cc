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
use crate::connectors::formats::decode_windowed_key;
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
pub(crate) fn decode_batch(
    src: &SourceSpec,
    records: &[Record],
    skipped: &mut Vec<Skipped>,
) -> Result<Option<Changes>> {
    let n_fields = src.schema.fields().len();
    let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(records.len()); n_fields];
    let mut ops = Vec::with_capacity(records.len());
    for r in records {
        match decode_record(src, r) {
            Ok(Some((row, op))) => {
                for (c, v) in columns.iter_mut().zip(row) {
                    c.push(v);
                }
                ops.push(op);
            }
            Ok(None) => {}
            Err(RecordError::Fatal(e)) => return Err(e),
            Err(RecordError::Skip(e)) => {
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
    let arrays = columns
        .into_iter()
        .zip(src.schema.fields())
        .map(|(vals, f)| scalars_to_array(vals, f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    let batch = RecordBatch::try_new(src.schema.clone(), arrays)?;
    Ok(Some(Changes::new(batch, ops)))
}

pub(crate) fn scalars_to_array(vals: Vec<ScalarValue>, dt: &DataType) -> Result<ArrayRef> {
    if vals.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(dt));
    }
    let arr = ScalarValue::iter_to_array(vals)?;
    Ok(if arr.data_type() != dt {
        datafusion::arrow::compute::cast(&arr, dt)?
    } else {
        arr
    })
}

fn null_row(fields: &[FieldRef]) -> Result<Vec<ScalarValue>> {
    fields
        .iter()
        .map(|f| ScalarValue::try_from(f.data_type()).map_err(Error::from))
        .collect()
}

/// One record → (row values in source schema order, op). `None`: skip.
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

fn decode_record(
    src: &SourceSpec,
    r: &Record,
) -> Result<Option<(Vec<ScalarValue>, Op)>, RecordError> {
    let mut window = None;
    let key_vals = match &r.key {
        None => null_row(&src.key_fields)?,
        Some(bytes) => {
            let inner: &[u8] = match src.window {
                Some(w) => {
                    let (inner, start, end) = decode_windowed_key(bytes, w.kind, w.size)?;
                    window = Some((start, end));
                    inner
                }
                None => bytes,
            };
            if src.key_fields.is_empty() {
                Vec::new()
            } else {
                src.key_format.decode(inner, &src.key_fields, true)?
            }
        }
    };
    // A null value (or a value that decodes to null, like JSON `null`) is a
    // tombstone on a table and a null row on a stream: projections pass it on
    // as a null value, filters and aggregations skip it (as ksqlDB does).
    let decoded = match &r.value {
        None => None,
        Some(bytes) => src
            .value_format
            .decode_record(bytes, &src.value_fields, false)
            .map_err(|e| e.with_topic(&src.topic))?,
    };
    let (value_vals, op) = match decoded {
        None => (null_row(&src.value_fields)?, Op::Delete),
        Some(vals) => (vals, Op::Insert),
    };
    let mut row = key_vals;
    row.extend(value_vals);
    for (field, key) in &src.header_fields {
        row.push(header_value(field, key.as_deref(), &r.headers)?);
    }
    let rowtime = match record_time(src, &row, r, op) {
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
    row.push(ScalarValue::Int64(Some(rowtime)));
    row.push(ScalarValue::Int32(Some(r.partition)));
    row.push(ScalarValue::Int64(Some(r.offset)));
    if src.window_columns {
        row.push(ScalarValue::Int64(window.map(|w| w.0)));
        row.push(ScalarValue::Int64(window.map(|w| w.1)));
    }
    Ok(Some((row, op)))
}

/// A record's time (ROWTIME) from its timestamp or TIMESTAMP column; the
/// reason when there is none.
fn record_time(
    src: &SourceSpec,
    row: &[ScalarValue],
    r: &Record,
    op: Op,
) -> std::result::Result<i64, String> {
    let t = match &src.timestamp {
        TimestampSpec::Record => r.timestamp,
        TimestampSpec::Column(i) => match row.get(*i) {
            Some(ScalarValue::Int64(Some(v))) => *v,
            Some(ScalarValue::TimestampMillisecond(Some(v), _)) => *v,
            Some(v) if op == Op::Delete && v.is_null() => r.timestamp,
            _ => return Err("timestamp column is NULL or not a time".to_string()),
        },
        TimestampSpec::Formatted { column, format } => match row.get(*column) {
            Some(ScalarValue::Utf8(Some(s))) => crate::functions::parse_timestamp_millis(s, format)
                .map_err(|e| format!("cannot parse timestamp '{s}' with '{format}': {e}"))?,
            Some(v) if op == Op::Delete && v.is_null() => r.timestamp,
            _ => return Err("timestamp column is NULL or not a string".to_string()),
        },
    };
    if t < 0 {
        return Err(format!("negative record time {t}"));
    }
    Ok(t)
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

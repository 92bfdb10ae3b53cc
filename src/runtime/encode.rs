//! Encoding: a change batch into the records of the sink topic.

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use super::changes::{Changes, Op};
use super::plan::SinkSpec;
use super::processing_log::{Entry, ProcessingLog};
use crate::connectors::formats::encode_windowed_key;
use crate::connectors::OutRecord;
use crate::error::{Error, Result};

/// Encode a change batch into records for the sink topic; returns how many
/// were written and how many dropped (without a valid time: each in the
/// processing log).
pub(crate) fn write_sink(
    sink: &SinkSpec,
    changes: &Changes,
    out: &mut Vec<OutRecord>,
    log: &mut ProcessingLog,
) -> Result<(usize, usize)> {
    let batch = &changes.batch;
    let mut written = 0;
    let mut dropped = 0;
    let mut drop = |reason: String, bytes: usize| {
        let entry = Entry::Output {
            topic: &sink.topic,
            bytes,
            reason: &reason,
        };
        log.record(entry, chrono::Utc::now().timestamp_millis());
        dropped += 1;
    };
    for row in 0..changes.len() {
        let op = changes.ops[row];
        if op == Op::UpdateBefore {
            continue;
        }
        let key_vals = cells(batch, &sink.key_columns, row)?;
        // A key passed through from a record that had none stays null.
        let null_key = sink.key_from_source && key_vals.iter().all(|v| v.is_null());
        let mut key = if sink.key_columns.is_empty() || null_key {
            None
        } else {
            sink.key_format.encode(&key_vals, &sink.key_fields, true)?
        };
        if let (Some(w), Some((s, e))) = (sink.window, sink.window_columns) {
            let start = time_cell(batch.column(s).as_ref(), row)?;
            let end = time_cell(batch.column(e).as_ref(), row)?;
            key = Some(encode_windowed_key(
                key.as_deref().unwrap_or(&[]),
                start,
                end,
                w.kind,
            ));
        }
        let value = if op == Op::Delete {
            None
        } else {
            let vals = cells(batch, &sink.value_columns, row)?;
            sink.value_format.encode(&vals, &sink.value_fields, false)?
        };
        // A NULL in the sink's TIMESTAMP column: the record cannot be
        // timestamped and is dropped (ksqlDB does the same).
        let bytes = key.as_ref().map_or(0, |k| k.len()) + value.as_ref().map_or(0, |v| v.len());
        if batch.column(sink.rowtime_column).is_null(row) {
            drop("the record's TIMESTAMP column is NULL".into(), bytes);
            continue;
        }
        let ts = time_cell(batch.column(sink.rowtime_column).as_ref(), row)?;
        if ts < 0 {
            drop(format!("the record's time {ts} is negative"), bytes);
            continue;
        }
        out.push(OutRecord::new(
            sink.topic.clone(),
            key.map(Arc::from),
            value.map(Arc::from),
            ts,
        ));
        written += 1;
    }
    Ok((written, dropped))
}

fn cells(batch: &RecordBatch, columns: &[usize], row: usize) -> Result<Vec<ScalarValue>> {
    columns
        .iter()
        .map(|&c| ScalarValue::try_from_array(batch.column(c).as_ref(), row).map_err(Error::from))
        .collect()
}

fn time_cell(arr: &dyn Array, row: usize) -> Result<i64> {
    match ScalarValue::try_from_array(arr, row)? {
        ScalarValue::Int64(Some(v)) => Ok(v),
        ScalarValue::TimestampMillisecond(Some(v), _) => Ok(v),
        ScalarValue::Int64(None) | ScalarValue::TimestampMillisecond(None, _) => Ok(0),
        other => match other.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(0),
            dt => Err(Error::internal(format!("record time column has type {dt}"))),
        },
    }
}

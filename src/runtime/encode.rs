//! Encoding: a change batch into the records of the sink topic.

use std::sync::Arc;

use datafusion::arrow::array::{Array, PrimitiveArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
#[cfg(test)]
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
    let key_columns = sink.key_columns.iter().map(|&c| batch.column(c).as_ref());
    let mut keys = sink
        .key_format
        .batch_encoder(key_columns.collect(), &sink.key_fields, true);
    let value_columns = sink.value_columns.iter().map(|&c| batch.column(c).as_ref());
    let mut values =
        sink.value_format
            .batch_encoder(value_columns.collect(), &sink.value_fields, false);
    let rowtime = TimeColumn::new(batch.column(sink.rowtime_column).as_ref());
    let window = sink.window_columns.map(|(s, e)| {
        (
            TimeColumn::new(batch.column(s).as_ref()),
            TimeColumn::new(batch.column(e).as_ref()),
        )
    });
    for row in 0..changes.len() {
        let op = changes.ops[row];
        if op == Op::UpdateBefore {
            continue;
        }
        // A key passed through from a record that had none stays null.
        let null_key = sink.key_from_source && keys.all_null(row)?;
        let no_key = sink.key_columns.is_empty() || null_key;
        let key: Option<Arc<[u8]>> = match (sink.window, &window) {
            (Some(w), Some((start, end))) => {
                let inner = if no_key { None } else { keys.encode(row)? };
                Some(Arc::from(encode_windowed_key(
                    inner.as_deref().unwrap_or(&[]),
                    start.at(row)?,
                    end.at(row)?,
                    w.kind,
                )))
            }
            _ if no_key => None,
            _ => keys.encode_shared(row)?,
        };
        let value = if op == Op::Delete {
            None
        } else {
            values.encode_shared(row)?
        };
        // A NULL in the sink's TIMESTAMP column: the record cannot be
        // timestamped and is dropped (ksqlDB does the same).
        let bytes = key.as_ref().map_or(0, |k| k.len()) + value.as_ref().map_or(0, |v| v.len());
        if rowtime.array.is_null(row) {
            drop("the record's TIMESTAMP column is NULL".into(), bytes);
            continue;
        }
        let ts = rowtime.at(row)?;
        if ts < 0 {
            drop(format!("the record's time {ts} is negative"), bytes);
            continue;
        }
        out.push(OutRecord::new(sink.topic.clone(), key, value, ts));
        written += 1;
    }
    Ok((written, dropped))
}

/// A time column (BIGINT or TIMESTAMP millis), read as [`time_cell`] does.
struct TimeColumn<'a> {
    array: &'a dyn Array,
    millis: Option<&'a PrimitiveArray<Int64Type>>,
    timestamps: Option<&'a TimestampMillisecondArray>,
}

impl<'a> TimeColumn<'a> {
    fn new(array: &'a dyn Array) -> TimeColumn<'a> {
        TimeColumn {
            array,
            millis: array.as_any().downcast_ref(),
            timestamps: array.as_any().downcast_ref(),
        }
    }

    fn at(&self, row: usize) -> Result<i64> {
        if let Some(a) = self.millis {
            return Ok(if a.is_null(row) { 0 } else { a.value(row) });
        }
        if let Some(a) = self.timestamps {
            return Ok(if a.is_null(row) { 0 } else { a.value(row) });
        }
        time_cell(self.array, row)
    }
}

/// The old path of [`write_sink`]'s cells, kept as the tests' oracle.
#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::{Field, FieldRef, Schema};

    use crate::connectors::formats::{Format, FormatKind, WindowKind};
    use crate::runtime::plan::KeyWindow;

    /// `write_sink` as it was before it read columns directly: a
    /// `ScalarValue` per cell and `Format::encode` per row.
    fn scalar_write_sink(
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
            log.record(entry, 0);
            dropped += 1;
        };
        for row in 0..changes.len() {
            let op = changes.ops[row];
            if op == Op::UpdateBefore {
                continue;
            }
            let key_vals = cells(batch, &sink.key_columns, row)?;
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

    fn field(name: &str, a: &ArrayRef) -> FieldRef {
        Arc::new(Field::new(name, a.data_type().clone(), true))
    }

    #[test]
    fn writes_the_bytes_the_scalar_path_wrote() {
        let ts = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(TimestampMillisecondArray::from(v)) };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("k1"),
                None,
                Some("k,3"),
                Some("k4"),
                None,
                Some("-6"),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(-2),
                None,
                Some(i64::MAX),
                Some(0),
                Some(6),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                Some(1e10),
                Some(f64::NAN),
                None,
                Some(-0.0),
                Some(1e-4),
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(1234), None, Some(-5), Some(0), Some(1), Some(10)])
                    .with_precision_and_scale(6, 2)
                    .unwrap(),
            ),
            ts(vec![
                Some(1000),
                Some(2000),
                None,
                Some(-1),
                Some(5000),
                Some(6000),
            ]),
            Arc::new(Int64Array::from(vec![
                Some(10),
                Some(20),
                Some(30),
                Some(40),
                Some(50),
                None,
            ])),
            Arc::new(Int64Array::from(vec![
                Some(60),
                Some(70),
                None,
                Some(80),
                Some(90),
                Some(100),
            ])),
        ];
        let names = ["K", "L", "D", "E", "T", "WS", "WE"];
        let fields: Vec<FieldRef> = names
            .iter()
            .zip(&columns)
            .map(|(n, a)| field(n, a))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns).unwrap();
        let ops = vec![
            Op::Insert,
            Op::UpdateBefore,
            Op::UpdateAfter,
            Op::Delete,
            Op::Insert,
            Op::Insert,
        ];
        let changes = Changes::new(batch, ops);
        let formats = [
            (
                Format::new(FormatKind::Kafka),
                Format::new(FormatKind::Json),
            ),
            (
                Format::new(FormatKind::Json),
                Format::new(FormatKind::Delimited),
            ),
            (
                Format::new(FormatKind::Delimited),
                Format::new(FormatKind::Json).with_wrap_single(Some(false)),
            ),
        ];
        for (key_format, value_format) in formats {
            let single = value_format.wrap_single == Some(false);
            for window in [None, Some(WindowKind::Time), Some(WindowKind::Session)] {
                for (rowtime, key_from_source) in [(4, true), (1, false), (5, true)] {
                    let value_columns = if single { vec![2] } else { vec![1, 2, 3, 4] };
                    let sink = SinkSpec {
                        name: "S".into(),
                        topic: "out".into(),
                        key_format: key_format.clone(),
                        value_format: value_format.clone(),
                        key_columns: vec![0],
                        key_fields: vec![fields[0].clone()],
                        value_fields: value_columns.iter().map(|&c| fields[c].clone()).collect(),
                        value_columns,
                        window: window.map(|kind| KeyWindow {
                            kind,
                            size: Some(50),
                        }),
                        is_table: true,
                        rowtime_column: rowtime,
                        window_columns: window.map(|_| (5, 6)),
                        key_from_source,
                    };
                    let (mut new_out, mut old_out) = (vec![], vec![]);
                    let mut new_log = ProcessingLog::new("q", Some("log".into()));
                    let mut old_log = ProcessingLog::new("q", Some("log".into()));
                    let new = write_sink(&sink, &changes, &mut new_out, &mut new_log).unwrap();
                    let old =
                        scalar_write_sink(&sink, &changes, &mut old_out, &mut old_log).unwrap();
                    assert_eq!(new, old);
                    assert_eq!(new_out, old_out, "{sink:?}");
                    let values = |log: &mut ProcessingLog| -> Vec<_> {
                        log.take().into_iter().map(|r| r.value).collect()
                    };
                    assert_eq!(values(&mut new_log), values(&mut old_log));
                }
            }
        }
        // The first case by hand: KAFKA key, JSON value, ROWTIME from T.
        let sink = SinkSpec {
            name: "S".into(),
            topic: "out".into(),
            key_format: Format::new(FormatKind::Kafka),
            value_format: Format::new(FormatKind::Json),
            key_columns: vec![0],
            key_fields: vec![fields[0].clone()],
            value_columns: vec![1, 2, 3],
            value_fields: vec![fields[1].clone(), fields[2].clone(), fields[3].clone()],
            window: None,
            is_table: false,
            rowtime_column: 4,
            window_columns: None,
            key_from_source: true,
        };
        let mut out = vec![];
        let mut log = ProcessingLog::new("q", None);
        assert_eq!(
            write_sink(&sink, &changes, &mut out, &mut log).unwrap(),
            (3, 2)
        );
        let text =
            |b: &Option<Arc<[u8]>>| b.as_deref().map(|b| String::from_utf8_lossy(b).to_string());
        let got: Vec<_> = out
            .iter()
            .map(|r| (text(&r.key), text(&r.value), r.timestamp))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Some("k1".into()),
                    Some(r#"{"L":1,"D":0.5,"E":12.34}"#.into()),
                    1000
                ),
                (None, Some(r#"{"L":0,"D":-0.0,"E":0.01}"#.into()), 5000),
                (
                    Some("-6".into()),
                    Some(r#"{"L":6,"D":1.0E-4,"E":0.10}"#.into()),
                    6000
                ),
            ]
        );
    }
}

//! Query results as Postgres rows: a type OID for every Sluice type and the
//! Postgres text form of every value.
//!
//! Types: BOOLEAN → bool, INT → int4, BIGINT → int8, DOUBLE → float8,
//! DECIMAL → numeric, STRING → varchar, BYTES → bytea, DATE → date,
//! TIME → time, TIMESTAMP → timestamp; ARRAY, MAP and STRUCT, which have no
//! Postgres equivalent, are `json` text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use futures::stream::BoxStream;
use futures::{stream, StreamExt};
use pgwire::api::results::{
    CopyEncoder, CopyResponse, CopyTextOptions, DataRowEncoder, FieldFormat, FieldInfo,
    QueryResponse, Response,
};
use pgwire::api::Type;
use pgwire::error::PgWireError;

use crate::connectors::formats::scalar_to_json;
use crate::engine::PushQuery;
use crate::error::Result;
use crate::runtime::Op;

/// The Postgres type a column is sent as.
pub(crate) fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::VARCHAR,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => Type::JSON,
        DataType::Null => Type::TEXT,
        _ => Type::TEXT,
    }
}

/// The columns of a result, as the client is told them.
pub(crate) fn fields(schema: &SchemaRef) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                FieldInfo::new(
                    f.name().clone(),
                    None,
                    None,
                    pg_type(f.data_type()),
                    FieldFormat::Text,
                )
            })
            .collect(),
    )
}

/// A value in Postgres's text form (None: NULL).
pub(crate) fn text_value(column: &dyn Array, row: usize) -> Result<Option<String>> {
    if column.is_null(row) {
        return Ok(None);
    }
    let v = ScalarValue::try_from_array(column, row)?;
    Ok(Some(match &v {
        ScalarValue::Boolean(Some(b)) => if *b { "t" } else { "f" }.to_string(),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("\\x{hex}")
        }
        ScalarValue::TimestampMillisecond(Some(t), tz) => {
            timestamp_text(*t, TimeUnit::Millisecond, tz.is_some())
        }
        ScalarValue::TimestampMicrosecond(Some(t), tz) => {
            timestamp_text(*t, TimeUnit::Microsecond, tz.is_some())
        }
        ScalarValue::TimestampNanosecond(Some(t), tz) => {
            timestamp_text(*t, TimeUnit::Nanosecond, tz.is_some())
        }
        ScalarValue::TimestampSecond(Some(t), tz) => {
            timestamp_text(*t, TimeUnit::Second, tz.is_some())
        }
        ScalarValue::List(_)
        | ScalarValue::LargeList(_)
        | ScalarValue::FixedSizeList(_)
        | ScalarValue::Struct(_)
        | ScalarValue::Map(_) => scalar_to_json(&v).to_string(),
        other => other.to_string(),
    }))
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` (and `+00` with a zone), as Postgres writes.
fn timestamp_text(t: i64, unit: TimeUnit, zoned: bool) -> String {
    let nanos: i128 = match unit {
        TimeUnit::Second => i128::from(t) * 1_000_000_000,
        TimeUnit::Millisecond => i128::from(t) * 1_000_000,
        TimeUnit::Microsecond => i128::from(t) * 1_000,
        TimeUnit::Nanosecond => i128::from(t),
    };
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    let Some(dt) = chrono::DateTime::from_timestamp(secs, sub) else {
        return t.to_string();
    };
    let mut s = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    if sub > 0 {
        let frac = format!("{:09}", sub);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if zoned {
        s.push_str("+00");
    }
    s
}

/// One row of text values (None: NULL).
pub(crate) type Row = Vec<Option<String>>;

/// Rows as they become available.
pub(crate) type Rows = BoxStream<'static, Result<Row>>;

/// A push query's columns and rows as they come (a retraction's old row
/// is not sent; a table's delete is a row of its key with NULL values); the
/// rows end after `LIMIT`, and dropping them ends the query.
pub(crate) fn push_rows(push: PushQuery) -> (Arc<Vec<FieldInfo>>, Rows) {
    tracing::debug!(query_id = %push.id, limit = ?push.limit, "push query streams to its session");
    let fields = fields(&push.schema);
    let key_len = push.key_len;
    let changes = stream::unfold(push.changes, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    });
    let rows = changes.flat_map(move |c| {
        let mut rows = Vec::new();
        for (r, op) in c.ops.iter().enumerate() {
            let row: Result<Row> = c
                .batch
                .columns()
                .iter()
                .enumerate()
                .map(|(i, col)| match op {
                    Op::Delete if i >= key_len => Ok(None),
                    _ => text_value(col.as_ref(), r),
                })
                .collect();
            if *op != Op::UpdateBefore {
                rows.push(row);
            }
        }
        stream::iter(rows)
    });
    let rows = match push.limit {
        Some(n) => rows.take(n as usize).boxed(),
        None => rows.boxed(),
    };
    (fields, rows)
}

/// A pull query's columns and rows.
pub(crate) fn batch_rows(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(Arc<Vec<FieldInfo>>, Rows)> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .map(|c| text_value(c.as_ref(), r))
                .collect::<Result<Row>>()?;
            rows.push(Ok(row));
        }
    }
    Ok((fields(schema), stream::iter(rows).boxed()))
}

fn api_error(e: crate::error::Error) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Rows as a query response (text format).
pub(crate) fn rows_response(fields: Arc<Vec<FieldInfo>>, rows: Rows) -> Response {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let data = rows.map(move |row| {
        for cell in &row.map_err(api_error)? {
            encoder.encode_field(cell)?;
        }
        Ok(encoder.take_row())
    });
    Response::Query(QueryResponse::new(fields, data))
}

/// Rows as `COPY ... TO STDOUT` data (text format: tab-separated, `\N` for
/// NULL).
pub(crate) fn copy_response(fields: Arc<Vec<FieldInfo>>, rows: Rows) -> Response {
    let columns = fields.len();
    let mut encoder = CopyEncoder::new_text(fields, CopyTextOptions::default());
    let data = rows.map(move |row| {
        for cell in &row.map_err(api_error)? {
            encoder.encode_field(cell)?;
        }
        Ok(encoder.take_copy())
    });
    Response::CopyOut(CopyResponse::new(0, columns, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BinaryArray, BooleanArray, Int32Array, ListArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn values_in_postgres_text_form() {
        let b = BooleanArray::from(vec![Some(true), None]);
        assert_eq!(text_value(&b, 0).unwrap().as_deref(), Some("t"));
        assert_eq!(text_value(&b, 1).unwrap(), None);
        let i = Int32Array::from(vec![-7]);
        assert_eq!(text_value(&i, 0).unwrap().as_deref(), Some("-7"));
        let t = TimestampMillisecondArray::from(vec![1_500, 86_400_000]);
        assert_eq!(
            text_value(&t, 0).unwrap().as_deref(),
            Some("1970-01-01 00:00:01.5")
        );
        assert_eq!(
            text_value(&t, 1).unwrap().as_deref(),
            Some("1970-01-02 00:00:00")
        );
        let bytes = BinaryArray::from(vec![&b"\x01\xff"[..]]);
        assert_eq!(text_value(&bytes, 0).unwrap().as_deref(), Some("\\x01ff"));
        let list =
            ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None])]);
        assert_eq!(text_value(&list, 0).unwrap().as_deref(), Some("[1,null]"));
        assert_eq!(pg_type(list.data_type()), Type::JSON);
        assert_eq!(pg_type(&DataType::Int64), Type::INT8);
    }
}

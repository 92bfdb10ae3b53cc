//! Query results as Postgres rows: pull queries' batches, push queries'
//! changes as they come, as rows or as COPY data (types and values:
//! [`super::values`]).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::stream::BoxStream;
use futures::{stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::error::PgWireError;

use super::values::{pg_type, Value};
use crate::engine::PushQuery;
use crate::error::{Error, Result};
use crate::runtime::Op;

/// How column names are spelled over the wire. Sluice folds unquoted
/// names to upper case, as ksqlDB does; Postgres clients expect them in
/// lower case, as Postgres folds them: `Lower` (the default) writes a name
/// with no lower-case letter in lower case (`USER_ID` is `user_id`, a
/// quoted `userId` stays), `Upper` writes names as Sluice keeps them
/// (setting `sluice.identifier_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameCase {
    Lower,
    Upper,
}

impl NameCase {
    /// The setting's value (None: not one of `lower`, `upper`).
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "lower" => Some(NameCase::Lower),
            "upper" => Some(NameCase::Upper),
            _ => None,
        }
    }

    /// `name` as the client sees it.
    pub(crate) fn spell(self, name: &str) -> String {
        match self {
            NameCase::Lower if !name.chars().any(char::is_lowercase) => name.to_lowercase(),
            _ => name.to_string(),
        }
    }
}

/// The columns of a result, as the client is told them (in text form;
/// [`with_formats`] sets what a Bind asked for).
pub(crate) fn fields(schema: &SchemaRef, case: NameCase) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                FieldInfo::new(
                    case.spell(f.name()),
                    None,
                    None,
                    pg_type(f.data_type()),
                    FieldFormat::Text,
                )
            })
            .collect(),
    )
}

/// The same columns, each in the format `format` gives it.
pub(crate) fn with_formats(fields: &[FieldInfo], format: &Format) -> Result<Arc<Vec<FieldInfo>>> {
    if let Format::Individual(codes) = format {
        if codes.len() != fields.len() {
            return Err(Error::BadParameter(format!(
                "bind message has {} result formats but the query has {} columns",
                codes.len(),
                fields.len()
            )));
        }
    }
    Ok(Arc::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                FieldInfo::new(
                    f.name().to_string(),
                    None,
                    None,
                    f.datatype().clone(),
                    format.format_for(i),
                )
            })
            .collect(),
    ))
}

/// One row of values.
pub(crate) type Row = Vec<Value>;

/// Rows as they become available.
pub(crate) type Rows = BoxStream<'static, Result<Row>>;

/// A push query's columns: its SELECT's, and for a table's changes a last
/// text column, `OP`, saying what each row is: `insert` (a new key),
/// `update` (a key's new value) or `delete` (the key is gone: its other
/// columns are NULL).
pub(crate) fn push_fields(schema: &SchemaRef, table: bool, case: NameCase) -> Arc<Vec<FieldInfo>> {
    let mut columns = fields(schema, case).as_ref().clone();
    if table {
        let mut name = case.spell("OP");
        while columns.iter().any(|f| f.name() == name) {
            name.push('_');
        }
        columns.push(FieldInfo::new(
            name,
            None,
            None,
            pgwire::api::Type::VARCHAR,
            FieldFormat::Text,
        ));
    }
    Arc::new(columns)
}

/// A push query's columns and rows as they come (a retraction's old row
/// is not sent; a table's changes are marked, [`push_fields`]); the rows
/// end after `LIMIT`, and dropping them ends the query.
pub(crate) fn push_rows(push: PushQuery, case: NameCase) -> (Arc<Vec<FieldInfo>>, Rows) {
    tracing::debug!(query_id = %push.id, limit = ?push.limit, "push query streams to its session");
    let fields = push_fields(&push.schema, push.table, case);
    let table = push.table;
    let changes = stream::unfold(push.changes, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    });
    let rows = changes.flat_map(move |c| {
        let mut rows = Vec::new();
        for (r, op) in c.ops.iter().enumerate() {
            let mut row: Result<Row> = c
                .batch
                .columns()
                .iter()
                .map(|col| Value::of(col.as_ref(), r))
                .collect();
            if let (true, Ok(row)) = (table, &mut row) {
                let name = match op {
                    Op::Insert => "insert",
                    Op::UpdateAfter | Op::UpdateBefore => "update",
                    Op::Delete => "delete",
                };
                row.push(Value::Text(name.into()));
            }
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
    case: NameCase,
) -> Result<(Arc<Vec<FieldInfo>>, Rows)> {
    Ok((fields(schema, case), rows_of(batches)?))
}

/// The rows of `batches`.
pub(crate) fn rows_of(batches: &[RecordBatch]) -> Result<Rows> {
    rows_with(batches, |column, _, row| Value::of(column, row))
}

/// The rows of `batches`, each cell made by `cell(column, its index, row)`.
pub(crate) fn rows_with(
    batches: &[RecordBatch],
    cell: impl Fn(&dyn datafusion::arrow::array::Array, usize, usize) -> Result<Value>,
) -> Result<Rows> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| cell(c.as_ref(), i, r))
                .collect::<Result<Row>>()?;
            rows.push(Ok(row));
        }
    }
    Ok(stream::iter(rows).boxed())
}

fn api_error(e: crate::error::Error) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// A row that has exactly `width` cells (the encoders panic on more).
pub(crate) fn fitting(row: Result<Row>, width: usize) -> Result<Row, PgWireError> {
    let row = row.map_err(api_error)?;
    if row.len() != width {
        return Err(api_error(Error::internal(format!(
            "a row of {} values for {width} columns",
            row.len()
        ))));
    }
    Ok(row)
}

/// A cursor's rows as a query response, completed with `FETCH n`.
pub(crate) fn fetch_response(fields: Arc<Vec<FieldInfo>>, rows: Rows) -> Response {
    match rows_response(fields, rows) {
        Response::Query(mut q) => {
            q.set_command_tag("FETCH");
            Response::Query(q)
        }
        other => other,
    }
}

/// Rows as a query response, each column in its field's format.
pub(crate) fn rows_response(fields: Arc<Vec<FieldInfo>>, rows: Rows) -> Response {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let width = fields.len();
    let data = rows.map(move |row| {
        for cell in &fitting(row, width)? {
            encoder.encode_field(cell)?;
        }
        Ok(encoder.take_row())
    });
    Response::Query(QueryResponse::new(fields, data))
}

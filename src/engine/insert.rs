//! Rows written into a stream or table by statement: `INSERT INTO ...
//! VALUES` (one row or many) and `COPY ... FROM STDIN`.
//!
//! Every row is evaluated and encoded before any is written, and then all
//! are sent at once: a bad value anywhere writes nothing, and a statement
//! of many rows waits for the broker once, not once per row. A session in
//! a transaction keeps the encoded records until its COMMIT
//! ([`Engine::insert_records`] and [`Engine::write_records`] apart).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion::sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast::Expr;

use super::Engine;
use crate::catalog::{sql_type_name, Source};
use crate::connectors::OutRecord;
use crate::error::{Error, Result};
use crate::runtime::{ROWOFFSET, ROWPARTITION, ROWTIME};

/// Where rows go: the stream or table, and the columns each row gives, in
/// order, with their types.
struct Target {
    source: Source,
    columns: Vec<(String, DataType)>,
    /// The source's key and value fields, for encoding each record.
    key_fields: Vec<datafusion::arrow::datatypes::FieldRef>,
    value_fields: Vec<datafusion::arrow::datatypes::FieldRef>,
}

impl Engine {
    /// The records `INSERT INTO target [(columns)] VALUES (...), ...`
    /// writes, one per row, evaluated and encoded; nothing is written.
    pub(crate) fn insert_records(
        &self,
        target: &str,
        columns: Option<Vec<String>>,
        rows: Vec<Vec<Expr>>,
    ) -> Result<Vec<OutRecord>> {
        let source = self.insert_source(target)?;
        let names = columns.unwrap_or_else(|| all_columns(&source));
        let width = rows.first().map_or(names.len(), Vec::len);
        if names.len() != width {
            return Err(Error::semantic(format!(
                "Expected number columns and values to match: {}, {width}",
                names.len(),
            )));
        }
        let target = Target::new(source, names)?;
        let evaluate = Evaluator::new(self)?;
        let mut records = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            if row.len() != target.columns.len() {
                return Err(Error::semantic(format!(
                    "VALUES lists must all be the same length: row {} has {} values, the first has {}",
                    i + 1,
                    row.len(),
                    target.columns.len()
                )));
            }
            let mut given = BTreeMap::new();
            for ((name, want), e) in target.columns.iter().zip(row) {
                given.insert(name.clone(), evaluate.value(e, name, want)?);
            }
            records.push(target.record(&given)?);
        }
        Ok(records)
    }

    /// The records rows of text cells make (`COPY target [(columns)] FROM
    /// STDIN`; None: NULL), each cell read as its column's type; nothing
    /// is written. `line` names a row's line in errors.
    pub(crate) fn copy_records(
        &self,
        target: &str,
        columns: Option<Vec<String>>,
        rows: &[Vec<Option<String>>],
        line: impl Fn(usize) -> usize,
    ) -> Result<Vec<OutRecord>> {
        let source = self.insert_source(target)?;
        let names = columns.unwrap_or_else(|| all_columns(&source));
        let target = Target::new(source, names)?;
        let width = target.columns.len();
        if let Some(i) = rows.iter().position(|r| r.len() != width) {
            let what = if rows[i].len() < width {
                "missing data for a column"
            } else {
                "extra data after the last expected column"
            };
            return Err(Error::Format(format!(
                "COPY {}, line {}: {what} ({} values for {width} columns)",
                target.source.name,
                line(i),
                rows[i].len()
            )));
        }
        let mut cells = Vec::with_capacity(width);
        for (c, (name, want)) in target.columns.iter().enumerate() {
            let text: StringArray = rows.iter().map(|r| r[c].as_deref()).collect();
            let typed = read_cells(&text, want).map_err(|(row, why)| {
                Error::Format(format!(
                    "COPY {}, line {}, column {name}: {why}",
                    target.source.name,
                    line(row)
                ))
            })?;
            cells.push(typed);
        }
        (0..rows.len())
            .map(|r| {
                let given = target
                    .columns
                    .iter()
                    .zip(&cells)
                    .map(|((name, _), col)| {
                        Ok((name.clone(), ScalarValue::try_from_array(col, r)?))
                    })
                    .collect::<Result<BTreeMap<_, _>>>()?;
                target.record(&given)
            })
            .collect()
    }

    /// How many columns each row of a COPY into `target` gives (checked:
    /// the target can be written, the columns are its own).
    pub(crate) fn insert_width(&self, target: &str, columns: Option<Vec<String>>) -> Result<usize> {
        let source = self.insert_source(target)?;
        let names = columns.unwrap_or_else(|| all_columns(&source));
        Ok(Target::new(source, names)?.columns.len())
    }

    /// Write records made by [`Engine::insert_records`] or
    /// [`Engine::copy_records`], all in one send.
    pub(crate) fn write_records(&self, records: &[OutRecord]) -> Result<()> {
        self.topics.produce_now(records).map_err(Error::from)
    }

    /// The stream or table an INSERT or a COPY writes.
    fn insert_source(&self, target: &str) -> Result<Source> {
        let source = self
            .catalog
            .source(target)
            .ok_or_else(|| self.unknown_insert_target(target))?
            .clone();
        if source.read_only {
            return Err(Error::semantic(format!(
                "Cannot insert values into read-only {}: {target}",
                source.kind.to_string().to_lowercase()
            )));
        }
        Ok(source)
    }

    /// "Unknown source" for INSERT VALUES, with ksqlDB's hint when only the
    /// case differs.
    fn unknown_insert_target(&self, target: &str) -> Error {
        let mut msg = format!("Cannot insert values into an unknown stream/table: `{target}`");
        if let Some(other) = self
            .catalog
            .sources()
            .find(|s| s.name.eq_ignore_ascii_case(target))
        {
            if target == target.to_uppercase() {
                msg.push_str(&format!(
                    "\nDid you mean \"{}\"? Hint: wrap the source name in double quotes to make it case-sensitive.",
                    other.name
                ));
            } else {
                msg.push_str(&format!(
                    "\nDid you mean {}? Hint: try removing double quotes from the source name.",
                    other.name
                ));
            }
        }
        Error::NotFound(msg)
    }
}

/// A source's key and value columns, in order: what a row gives when the
/// statement names no columns.
fn all_columns(source: &Source) -> Vec<String> {
    source
        .key_columns()
        .chain(source.value_columns())
        .map(|c| c.name.clone())
        .collect()
}

impl Target {
    /// The columns `names` of `source` with their types (`ROWTIME` is a
    /// BIGINT; the other pseudo columns cannot be written).
    fn new(source: Source, names: Vec<String>) -> Result<Self> {
        let columns = names
            .into_iter()
            .map(|name| {
                let ty = if name == ROWTIME {
                    DataType::Int64
                } else if name == ROWPARTITION || name == ROWOFFSET {
                    return Err(Error::semantic(format!(
                        "Inserting into column `{name}` is not allowed."
                    )));
                } else {
                    source
                        .columns
                        .iter()
                        .find(|c| c.name == name)
                        .map(|c| c.data_type.clone())
                        .ok_or_else(|| {
                            Error::semantic(format!("Column name {name} does not exist."))
                        })?
                };
                Ok((name, ty))
            })
            .collect::<Result<_>>()?;
        let key_fields = source.key_columns().map(|c| c.field()).collect();
        let value_fields = source.value_columns().map(|c| c.field()).collect();
        Ok(Self {
            source,
            columns,
            key_fields,
            value_fields,
        })
    }

    /// The record of one row (`given`: its values by column; a column it
    /// does not give is NULL), with the target's formats, timestamped by
    /// its `ROWTIME`, else its timestamp column, else now.
    fn record(&self, given: &BTreeMap<String, ScalarValue>) -> Result<OutRecord> {
        let src = &self.source;
        let cell = |c: &crate::catalog::Column| -> Result<ScalarValue> {
            match given.get(&c.name) {
                Some(v) => Ok(v.clone()),
                None => Ok(ScalarValue::try_from(&c.data_type)?),
            }
        };
        let key_vals = src.key_columns().map(cell).collect::<Result<Vec<_>>>()?;
        let value_vals = src.value_columns().map(cell).collect::<Result<Vec<_>>>()?;
        let key = if self.key_fields.is_empty() {
            None
        } else {
            src.key_format.encode(&key_vals, &self.key_fields, true)?
        };
        let value = src
            .value_format
            .encode(&value_vals, &self.value_fields, false)?;
        let ts = match given.get(ROWTIME) {
            Some(ScalarValue::Int64(Some(t))) => *t,
            _ => match &src.timestamp {
                Some((col, None)) => match given.get(col) {
                    Some(ScalarValue::Int64(Some(t))) => *t,
                    Some(ScalarValue::TimestampMillisecond(Some(t), _)) => *t,
                    _ => now_millis(),
                },
                _ => now_millis(),
            },
        };
        Ok(OutRecord::new(
            src.topic.clone(),
            key.map(Arc::from),
            value.map(Arc::from),
            ts,
        ))
    }
}

/// Evaluates the constant expressions of VALUES lists.
struct Evaluator<'a> {
    engine: &'a Engine,
    provider: crate::planner::ValuesProvider<'a>,
    empty: DFSchema,
    one_row: RecordBatch,
}

impl<'a> Evaluator<'a> {
    fn new(engine: &'a Engine) -> Result<Self> {
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        Ok(Self {
            engine,
            provider: crate::planner::values_provider(engine.planner.state()),
            empty: DFSchema::empty(),
            one_row,
        })
    }

    /// The value of `e` for column `name` of type `want`: a number that
    /// does not fit is an error, never a NULL.
    fn value(&self, e: Expr, name: &str, want: &DataType) -> Result<ScalarValue> {
        let v = match literal(&e) {
            Some(v) => v.to_array_of_size(1)?,
            None => self.evaluate(e)?,
        };
        if v.data_type().is_numeric() && want.is_numeric() && v.data_type() != want {
            let strict = CastOptions {
                safe: false,
                ..Default::default()
            };
            if cast_with_options(&v, want, &strict).is_err() {
                return Err(Error::OutOfRange(format!(
                    "Value {} is out of range for column {name} of type {}",
                    ScalarValue::try_from_array(&v, 0)?,
                    sql_type_name(want)
                )));
            }
        }
        let v = datafusion::arrow::compute::cast(&v, want).map_err(|_| {
            Error::semantic(format!(
                "Expected type {} for field {name} but got {}",
                sql_type_name(want),
                sql_type_name(v.data_type())
            ))
        })?;
        Ok(ScalarValue::try_from_array(&v, 0)?)
    }
}

impl Evaluator<'_> {
    /// `e` evaluated by DataFusion, as ksqlDB's semantics rewrite it.
    fn evaluate(&self, mut e: Expr) -> Result<ArrayRef> {
        crate::planner::rewrite_expr(&mut e)?;
        let mut opts = ParserOptions::new();
        opts.enable_ident_normalization = false;
        opts.map_string_types_to_utf8view = false;
        let sql_to_rel = SqlToRel::new_with_options(&self.provider, opts);
        let expr = sql_to_rel.sql_to_expr(e, &self.empty, &mut PlannerContext::new())?;
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(self.empty.clone()))
            .build();
        let expr = ExprSimplifier::new(context).coerce(expr, &self.empty)?;
        let state = self.engine.planner.state();
        let phys = crate::planner::physical_expr(state, &expr, &self.empty)?;
        Ok(phys.evaluate(&self.one_row)?.into_array(1)?)
    }
}

/// The value of a plain literal (a number, a string, a boolean, NULL,
/// a negative number), as [`Evaluator::evaluate`] would make it, without
/// planning: what drivers paste into a many-row `VALUES` list. Whole
/// numbers are INT when they fit (ksqlDB's literals), else BIGINT; others
/// DOUBLE. None: anything else, which DataFusion evaluates.
fn literal(e: &Expr) -> Option<ScalarValue> {
    use datafusion::sql::sqlparser::ast::{UnaryOperator, Value};
    let number = |n: &str, negative: bool| -> Option<ScalarValue> {
        if n.contains(['.', 'e', 'E']) {
            let f: f64 = n.parse().ok()?;
            return Some(ScalarValue::Float64(Some(if negative { -f } else { f })));
        }
        let i: i64 = n.parse().ok()?;
        let i = if negative { i.checked_neg()? } else { i };
        Some(match i32::try_from(n.parse::<i64>().ok()?) {
            Ok(_) => ScalarValue::Int32(Some(i32::try_from(i).ok()?)),
            Err(_) => ScalarValue::Int64(Some(i)),
        })
    };
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, false) => number(n, false),
            Value::SingleQuotedString(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
            Value::Boolean(b) => Some(ScalarValue::Boolean(Some(*b))),
            Value::Null => Some(ScalarValue::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, false) => number(n, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Text cells read as `want`, as Postgres reads COPY text: numbers,
/// booleans (`t`, `true`, `yes`, `1`, ...), dates and timestamps in ISO
/// form, bytes as `\x` and hex digits. Err: the first cell that is not a
/// value of the type (its row) and why.
fn read_cells(text: &StringArray, want: &DataType) -> Result<ArrayRef, (usize, String)> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    if matches!(want, DataType::Binary | DataType::LargeBinary) {
        let bytes = (0..text.len())
            .map(|i| match text.is_null(i) {
                true => Ok(None),
                false => hex_bytes(text.value(i)).map(Some).map_err(|why| (i, why)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let array = datafusion::arrow::array::BinaryArray::from_iter(bytes);
        return cast_with_options(&array, want, &strict).map_err(|e| (0, e.to_string()));
    }
    if !datafusion::arrow::compute::can_cast_types(&DataType::Utf8, want) || want.is_nested() {
        return Err((
            0,
            format!(
                "COPY FROM does not read {} columns; write them with INSERT ... VALUES",
                sql_type_name(want)
            ),
        ));
    }
    match cast_with_options(text, want, &strict) {
        Ok(typed) => Ok(typed),
        // Find the first cell that fails, for the message.
        Err(e) => {
            let bad = (0..text.len())
                .find(|&i| cast_with_options(&text.slice(i, 1), want, &strict).is_err())
                .unwrap_or(0);
            let why = match text.is_valid(bad) {
                true => format!(
                    "invalid input for type {}: \"{}\"",
                    sql_type_name(want),
                    text.value(bad)
                ),
                false => e.to_string(),
            };
            Err((bad, why))
        }
    }
}

/// Bytes written as Postgres writes `bytea`: `\x` then hex digits (else
/// the text's own bytes).
fn hex_bytes(cell: &str) -> Result<Vec<u8>, String> {
    let Some(hex) = cell.strip_prefix("\\x") else {
        return Ok(cell.as_bytes().to_vec());
    };
    if hex.len() % 2 != 0 {
        return Err(format!(
            "invalid hexadecimal data: odd number of digits in \"{cell}\""
        ));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .map_err(|_| format!("invalid hexadecimal digit in \"{cell}\""))
        })
        .collect()
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_their_type_or_name_the_first_bad_one() {
        let text = StringArray::from(vec![Some("1"), None, Some("x"), Some("y")]);
        let (row, why) = read_cells(&text, &DataType::Int64).unwrap_err();
        assert_eq!(
            (row, why.as_str()),
            (2, "invalid input for type BIGINT: \"x\"")
        );
        let ok = StringArray::from(vec![Some("1"), None, Some("-3")]);
        let typed = read_cells(&ok, &DataType::Int64).unwrap();
        let typed = typed
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(
            typed.iter().collect::<Vec<_>>(),
            vec![Some(1), None, Some(-3)]
        );
    }

    #[test]
    fn literals_are_what_datafusion_makes_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(super::super::EngineConfig {
            data_dir: dir.path().to_path_buf(),
            properties: Default::default(),
        })
        .unwrap();
        let evaluator = Evaluator::new(&engine).unwrap();
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        for text in [
            "1",
            "-1",
            "2147483647",
            "-2147483648",
            "2147483648",
            "-9223372036854775807",
            "1.5",
            "-0.25",
            "1e3",
            "'text'",
            "''",
            "true",
            "false",
            "NULL",
        ] {
            let e = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
                .try_with_sql(text)
                .unwrap()
                .parse_expr()
                .unwrap();
            let fast = literal(&e).unwrap_or_else(|| panic!("{text} is a literal"));
            let planned = ScalarValue::try_from_array(&evaluator.evaluate(e).unwrap(), 0).unwrap();
            assert_eq!(fast, planned, "{text}");
        }
        // Past BIGINT, or not a literal: DataFusion's.
        let past = Expr::Value(
            datafusion::sql::sqlparser::ast::Value::Number("9223372036854775808".into(), false)
                .into(),
        );
        assert_eq!(literal(&past), None);
    }

    #[test]
    fn bytes_are_read_from_hex() {
        assert_eq!(hex_bytes("\\x00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(hex_bytes("ab").unwrap(), b"ab".to_vec());
        assert_eq!(
            hex_bytes("\\x0").unwrap_err(),
            "invalid hexadecimal data: odd number of digits in \"\\x0\""
        );
    }
}

//! Records into column buffers: [`RowDecoder`], one per format and list of
//! fields, and the check that it reads what the scalar path reads.

use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::ScalarValue;

use super::{delimited, json_columns, kafka, Column, Format, FormatError, FormatKind};

impl Format {
    /// A decoder of records into column buffers, for these fields.
    pub(crate) fn decoder(&self, fields: &[FieldRef], is_key: bool) -> RowDecoder {
        let json = (self.kind == FormatKind::Json && !fields.is_empty())
            .then(|| json_columns::JsonColumns::new(fields, self.unwrapped(fields.len(), is_key)));
        RowDecoder {
            format: self.clone(),
            fields: fields.to_vec(),
            is_key,
            json,
        }
    }
}

/// Decodes keys or values of one format and list of fields into column
/// buffers, one per field: the same values and errors as
/// [`Format::decode_record`], without a `ScalarValue` per cell for JSON,
/// DELIMITED and KAFKA.
#[derive(Debug)]
pub(crate) struct RowDecoder {
    format: Format,
    fields: Vec<FieldRef>,
    is_key: bool,
    json: Option<json_columns::JsonColumns>,
}

impl RowDecoder {
    /// Appends one record's values to `cols` (one per field); `Ok(false)`
    /// when the bytes encode a null record (nothing is appended). After an
    /// error, some columns may have a value more: the caller truncates.
    pub(crate) fn decode_into(
        &mut self,
        bytes: &[u8],
        cols: &mut [Column],
    ) -> Result<bool, FormatError> {
        if self.fields.is_empty() {
            return Ok(true);
        }
        let is_key = self.is_key;
        let result = match (self.format.kind, &mut self.json) {
            (FormatKind::Json, Some(json)) => json.decode(bytes, cols),
            (FormatKind::Delimited, _) => {
                delimited::decode_into(bytes, &self.fields, self.format.delimiter, cols)
                    .map(|()| true)
            }
            (FormatKind::Kafka, _) => match cols.first_mut() {
                Some(col) => kafka::decode_into(bytes, &self.fields, col).map(|()| true),
                None => Err("internal: no column for the KAFKA format".into()),
            },
            _ => {
                let Some(values) = self.format.decode_record(bytes, &self.fields, is_key)? else {
                    return Ok(false);
                };
                for (v, col) in values.into_iter().zip(cols.iter_mut()) {
                    col.push_scalar(v);
                }
                Ok(true)
            }
        };
        result.map_err(|reason| FormatError::de(is_key, reason))
    }

    /// Appends NULL to each column.
    pub(crate) fn push_nulls(&self, cols: &mut [Column]) {
        for col in cols.iter_mut().take(self.fields.len()) {
            col.push_null();
        }
    }
}

/// Decodes one record both ways, into column buffers and into scalars,
/// and says how they differ, if they do (the fuzzer's oracle check).
pub(crate) fn columnar_differs(
    format: &Format,
    bytes: &[u8],
    fields: &[FieldRef],
    is_key: bool,
) -> Option<String> {
    let mut cols: Vec<Column> = fields
        .iter()
        .map(|f| Column::new(f.data_type(), 1))
        .collect();
    let new = format.decoder(fields, is_key).decode_into(bytes, &mut cols);
    let old = format.decode_record(bytes, fields, is_key);
    match (old, new) {
        (Ok(None), Ok(false)) => None,
        (Err(a), Err(b)) if a == b => None,
        (Ok(Some(values)), Ok(true)) => {
            for ((col, v), f) in cols.into_iter().zip(&values).zip(fields) {
                let got = col
                    .finish()
                    .and_then(|a| ScalarValue::try_from_array(&a, 0).map_err(|e| e.to_string()));
                match got {
                    Ok(got) if format!("{got:?}") == format!("{v:?}") => {}
                    got => {
                        return Some(format!(
                            "column {}: columnar {got:?}, scalar {v:?}",
                            f.name()
                        ))
                    }
                }
            }
            None
        }
        (old, new) => Some(format!("columnar {new:?}, scalar {old:?}")),
    }
}

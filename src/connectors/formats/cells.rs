//! Encoding rows straight from Arrow columns.
//!
//! [`BatchEncoder`] writes the key or value of one row of a batch in its
//! format, reading each cell from its column ([`Cell`], a borrowed view of
//! what [`Datum`] is for one scalar) instead of building a `ScalarValue`
//! and a `Datum` per cell. The bytes are exactly those of
//! [`Format::encode`] (the tests compare the two for every type): JSON,
//! DELIMITED and KAFKA are written here; PROTOBUF_NOSR and NONE go through
//! [`Format::encode`]. Columns of types the formats do not write unboxed
//! (nested types, other widths and units) are read through `Datum`.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int32Array, Int64Array, StringArray, Time32MillisecondArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::ScalarValue;

use super::json::write_datum;
use super::jsontree::write_string;
use super::scalar::Datum;
use super::text::{base64_encode, format_decimal, java_double};
use super::{base_type_name, delimited, Format, FormatError, FormatKind};

/// One cell as the formats see it (a borrowed [`Datum`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    /// Unscaled value and scale.
    Decimal(i128, i8),
    Str(&'a str),
    Bytes(&'a [u8]),
    Timestamp(i64),
    Date(i32),
    Time(i32),
    /// Anything else, through a scalar.
    Other(Datum),
}

/// A column, downcast once.
enum Reader<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int32Array),
    Long(&'a Int64Array),
    Double(&'a Float64Array),
    Decimal(&'a Decimal128Array, i8),
    Str(&'a StringArray),
    Bytes(&'a BinaryArray),
    Timestamp(&'a TimestampMillisecondArray),
    Date(&'a Date32Array),
    Time(&'a Time32MillisecondArray),
    Other(&'a dyn Array),
}

impl<'a> Reader<'a> {
    fn new(a: &'a dyn Array) -> Reader<'a> {
        match a.data_type() {
            DataType::Boolean => Reader::Bool(a.as_boolean()),
            DataType::Int32 => Reader::Int(a.as_primitive()),
            DataType::Int64 => Reader::Long(a.as_primitive()),
            DataType::Float64 => Reader::Double(a.as_primitive()),
            DataType::Decimal128(_, s) => Reader::Decimal(a.as_primitive(), *s),
            DataType::Utf8 => Reader::Str(a.as_string()),
            DataType::Binary => Reader::Bytes(a.as_binary()),
            DataType::Timestamp(TimeUnit::Millisecond, _) => Reader::Timestamp(a.as_primitive()),
            DataType::Date32 => Reader::Date(a.as_primitive()),
            DataType::Time32(TimeUnit::Millisecond) => Reader::Time(a.as_primitive()),
            _ => Reader::Other(a),
        }
    }

    fn array(&self) -> &'a dyn Array {
        match self {
            Reader::Bool(a) => *a,
            Reader::Int(a) => *a,
            Reader::Long(a) => *a,
            Reader::Double(a) => *a,
            Reader::Decimal(a, _) => *a,
            Reader::Str(a) => *a,
            Reader::Bytes(a) => *a,
            Reader::Timestamp(a) => *a,
            Reader::Date(a) => *a,
            Reader::Time(a) => *a,
            Reader::Other(a) => *a,
        }
    }

    fn cell(&self, row: usize) -> Result<Cell<'a>, String> {
        if let Reader::Other(a) = self {
            let v = ScalarValue::try_from_array(*a, row).map_err(|e| e.to_string())?;
            return Ok(match Datum::from_scalar(&v)? {
                Datum::Null => Cell::Null,
                d => Cell::Other(d),
            });
        }
        if self.array().is_null(row) {
            return Ok(Cell::Null);
        }
        Ok(match self {
            Reader::Bool(a) => Cell::Bool(a.value(row)),
            Reader::Int(a) => Cell::Int(a.value(row)),
            Reader::Long(a) => Cell::Long(a.value(row)),
            Reader::Double(a) => Cell::Double(a.value(row)),
            Reader::Decimal(a, s) => Cell::Decimal(a.value(row), *s),
            Reader::Str(a) => Cell::Str(a.value(row)),
            Reader::Bytes(a) => Cell::Bytes(a.value(row)),
            Reader::Timestamp(a) => Cell::Timestamp(a.value(row)),
            Reader::Date(a) => Cell::Date(a.value(row)),
            Reader::Time(a) => Cell::Time(a.value(row)),
            Reader::Other(_) => Cell::Null,
        })
    }

    fn scalar(&self, row: usize) -> Result<ScalarValue, String> {
        ScalarValue::try_from_array(self.array(), row).map_err(|e| e.to_string())
    }
}

/// Encodes the rows of a batch's key or value columns.
pub(crate) struct BatchEncoder<'a> {
    format: Format,
    fields: &'a [FieldRef],
    is_key: bool,
    readers: Vec<Reader<'a>>,
    /// JSON: each member's `"NAME":`.
    names: Vec<String>,
    /// The last record's text (JSON and DELIMITED), reused.
    buf: String,
}

impl Format {
    /// An encoder of rows of `columns` (one per field).
    pub(crate) fn batch_encoder<'a>(
        &self,
        columns: Vec<&'a dyn Array>,
        fields: &'a [FieldRef],
        is_key: bool,
    ) -> BatchEncoder<'a> {
        let names = if self.kind == FormatKind::Json {
            fields
                .iter()
                .map(|f| {
                    let mut s = String::new();
                    write_string(&mut s, f.name());
                    s.push(':');
                    s
                })
                .collect()
        } else {
            Vec::new()
        };
        BatchEncoder {
            format: self.clone(),
            fields,
            is_key,
            readers: columns.into_iter().map(Reader::new).collect(),
            names,
            buf: String::new(),
        }
    }
}

impl<'a> BatchEncoder<'a> {
    /// True if every column is NULL in `row` (true with no columns).
    pub(crate) fn all_null(&self, row: usize) -> Result<bool, FormatError> {
        for r in &self.readers {
            if self.cell(r, row)? != Cell::Null {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn cell<'b>(&self, r: &Reader<'b>, row: usize) -> Result<Cell<'b>, FormatError> {
        r.cell(row).map_err(|e| FormatError::ser(self.is_key, e))
    }

    /// The bytes of `row`, exactly as [`Format::encode`] writes them.
    pub(crate) fn encode(&mut self, row: usize) -> Result<Option<Vec<u8>>, FormatError> {
        Ok(match self.encode_row(row)? {
            Encoded::Nothing => None,
            Encoded::Text => Some(self.buf.as_bytes().to_vec()),
            Encoded::Bytes(b) => Some(b),
            Encoded::Borrowed(b) => Some(b.to_vec()),
        })
    }

    /// As [`BatchEncoder::encode`], in one shared allocation.
    pub(crate) fn encode_shared(&mut self, row: usize) -> Result<Option<Arc<[u8]>>, FormatError> {
        Ok(match self.encode_row(row)? {
            Encoded::Nothing => None,
            Encoded::Text => Some(Arc::from(self.buf.as_bytes())),
            Encoded::Bytes(b) => Some(Arc::from(b)),
            Encoded::Borrowed(b) => Some(Arc::from(b)),
        })
    }

    fn encode_row(&mut self, row: usize) -> Result<Encoded<'a>, FormatError> {
        let is_key = self.is_key;
        if self.readers.len() != self.fields.len() {
            return Err(FormatError::ser(
                is_key,
                format!(
                    "Column count mismatch on serialization. expected: {}, got: {}",
                    self.fields.len(),
                    self.readers.len()
                ),
            ));
        }
        if self.fields.is_empty() {
            return Ok(Encoded::Nothing);
        }
        if is_key && self.readers.len() == 1 && self.cell(&self.readers[0], row)? == Cell::Null {
            return Ok(Encoded::Nothing);
        }
        let result = match self.format.kind {
            FormatKind::Json => self.json(row),
            FormatKind::Delimited => self.delimited(row),
            FormatKind::Kafka => self.kafka(row),
            FormatKind::ProtobufNoSr | FormatKind::None => {
                let values = self
                    .readers
                    .iter()
                    .map(|r| r.scalar(row))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| FormatError::ser(is_key, e))?;
                return Ok(match self.format.encode(&values, self.fields, is_key)? {
                    Some(b) => Encoded::Bytes(b),
                    None => Encoded::Nothing,
                });
            }
        };
        result.map_err(|reason| FormatError::ser(is_key, reason))
    }

    fn json(&mut self, row: usize) -> Result<Encoded<'a>, String> {
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        if self.format.unwrapped(self.fields.len(), self.is_key) {
            let cell = self.readers[0].cell(row)?;
            if cell == Cell::Null {
                self.buf = out;
                return Ok(Encoded::Nothing);
            }
            write_json(&mut out, &cell);
        } else {
            out.push('{');
            for (i, (r, name)) in self.readers.iter().zip(&self.names).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                write_json(&mut out, &r.cell(row)?);
            }
            out.push('}');
        }
        self.buf = out;
        Ok(Encoded::Text)
    }

    fn delimited(&mut self, row: usize) -> Result<Encoded<'a>, String> {
        let delimiter = self.format.delimiter;
        let mut out = std::mem::take(&mut self.buf);
        out.clear();
        let mut text = String::new();
        for (i, r) in self.readers.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            text.clear();
            let s: &str = match r.cell(row)? {
                Cell::Null => continue,
                Cell::Bool(b) => {
                    if b {
                        "true"
                    } else {
                        "false"
                    }
                }
                Cell::Int(x) | Cell::Date(x) | Cell::Time(x) => {
                    let _ = write!(text, "{x}");
                    &text
                }
                Cell::Long(x) | Cell::Timestamp(x) => {
                    let _ = write!(text, "{x}");
                    &text
                }
                Cell::Double(x) => {
                    text = java_double(x);
                    &text
                }
                Cell::Decimal(x, s) => {
                    text = format_decimal(x, s);
                    &text
                }
                Cell::Str(s) => s,
                Cell::Bytes(b) => {
                    text = base64_encode(b);
                    &text
                }
                Cell::Other(d) => {
                    text = match d {
                        Datum::Bool(b) => b.to_string(),
                        Datum::Int(x) | Datum::Date(x) | Datum::Time(x) => x.to_string(),
                        Datum::Long(x) | Datum::Timestamp(x) => x.to_string(),
                        Datum::Double(x) => java_double(x),
                        Datum::Decimal(x, _, s) => format_decimal(x, s),
                        Datum::Str(s) => s,
                        Datum::Bytes(b) => base64_encode(&b),
                        Datum::Null | Datum::List(_) | Datum::Map(_) | Datum::Struct(_) => {
                            return Err(format!(
                                "The 'DELIMITED' format does not support type '{}'",
                                base_type_name(r.array().data_type())
                            ));
                        }
                    };
                    &text
                }
            };
            delimited::write_field(&mut out, s, i == 0, delimiter);
        }
        self.buf = out;
        Ok(Encoded::Text)
    }

    fn kafka(&self, row: usize) -> Result<Encoded<'a>, String> {
        let r = &self.readers[0];
        let dt = self.fields[0].data_type();
        let cell = r.cell(row)?;
        let bytes = match (dt, cell) {
            (_, Cell::Null) => return Ok(Encoded::Nothing),
            (DataType::Int32, Cell::Int(x)) => x.to_be_bytes().to_vec(),
            (DataType::Int64, Cell::Long(x)) => x.to_be_bytes().to_vec(),
            (DataType::Int64, Cell::Int(x)) => (x as i64).to_be_bytes().to_vec(),
            (DataType::Float64, Cell::Double(x)) => x.to_be_bytes().to_vec(),
            (DataType::Utf8, Cell::Str(s)) => return Ok(Encoded::Borrowed(s.as_bytes())),
            (DataType::Binary, Cell::Bytes(b)) => return Ok(Encoded::Borrowed(b)),
            // Widths and units the typed readers do not cover.
            (_, Cell::Other(_)) => {
                return Ok(
                    match super::kafka::encode(&[r.scalar(row)?], self.fields)? {
                        Some(b) => Encoded::Bytes(b),
                        None => Encoded::Nothing,
                    },
                )
            }
            (dt, _) => {
                return Err(format!(
                    "value does not match expected type. expected: {}, but got: {}",
                    base_type_name(dt),
                    base_type_name(r.array().data_type())
                ))
            }
        };
        Ok(Encoded::Bytes(bytes))
    }
}

/// Where a row's bytes are.
enum Encoded<'a> {
    /// No bytes (a NULL where ksqlDB writes none).
    Nothing,
    /// In the encoder's text buffer.
    Text,
    Bytes(Vec<u8>),
    /// A cell's own bytes.
    Borrowed(&'a [u8]),
}

/// One JSON value (as `json::write_datum`).
fn write_json(out: &mut String, cell: &Cell<'_>) {
    match cell {
        Cell::Null => out.push_str("null"),
        Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Cell::Int(x) | Cell::Date(x) | Cell::Time(x) => {
            let _ = write!(out, "{x}");
        }
        Cell::Long(x) | Cell::Timestamp(x) => {
            let _ = write!(out, "{x}");
        }
        // Jackson quotes NaN and the infinities (QUOTE_NON_NUMERIC_NUMBERS).
        Cell::Double(x) if !x.is_finite() => write_string(out, &java_double(*x)),
        Cell::Double(x) => out.push_str(&java_double(*x)),
        Cell::Decimal(v, s) => out.push_str(&format_decimal(*v, *s)),
        Cell::Str(s) => write_string(out, s),
        Cell::Bytes(b) => write_string(out, &base64_encode(b)),
        Cell::Other(d) => write_datum(out, d),
    }
}

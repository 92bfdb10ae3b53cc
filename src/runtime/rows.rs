//! Row encoding for state keys and values, with arrow-row.
//!
//! arrow-row bytes are memcomparable (their byte order is the columns' sort
//! order) and round-trip every Arrow type Sluice uses, nested ones included,
//! so the same codec serves group keys (range-scannable) and stored rows.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::Result;

pub(crate) struct RowCodec {
    converter: RowConverter,
}

impl RowCodec {
    pub(crate) fn try_new(types: &[DataType]) -> Result<Self> {
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        Ok(Self {
            converter: RowConverter::new(fields)?,
        })
    }

    /// Encode columns (all of the codec's types, in order).
    pub(crate) fn encode(&self, columns: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// Decode encoded rows back into columns.
    pub(crate) fn decode<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        let parsed: Vec<_> = rows.into_iter().map(|b| parser.parse(b)).collect();
        Ok(self.converter.convert_rows(parsed)?)
    }
}

/// A codec for the key columns of a schema, one for whole rows, and the
/// schema (what keyed row stores keep).
pub(crate) fn key_and_row_codecs(
    schema: &SchemaRef,
    key_columns: &[usize],
) -> Result<(RowCodec, RowCodec, SchemaRef)> {
    let key_types: Vec<_> = key_columns
        .iter()
        .map(|&i| schema.field(i).data_type().clone())
        .collect();
    let row_types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    Ok((
        RowCodec::try_new(&key_types)?,
        RowCodec::try_new(&row_types)?,
        schema.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int32Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn round_trip_and_order() {
        let c = RowCodec::try_new(&[DataType::Utf8, DataType::Int32]).unwrap();
        let rows = c
            .encode(&[
                Arc::new(StringArray::from(vec![Some("b"), None, Some("a")])),
                Arc::new(Int32Array::from(vec![1, 2, 3])),
            ])
            .unwrap();
        assert!(rows.row(2).as_ref() < rows.row(0).as_ref());
        let bytes: Vec<Vec<u8>> = (0..3).map(|i| rows.row(i).as_ref().to_vec()).collect();
        let cols = c.decode(bytes.iter().map(|b| b.as_slice())).unwrap();
        let s = cols[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "b");
        assert!(s.is_null(1));
        assert_eq!(
            cols[1]
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .value(2),
            3
        );
    }
}

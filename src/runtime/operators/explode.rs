//! `Explode`: table functions (ksqlDB's EXPLODE).
//!
//! For each input row, the list columns are unnested side by side: the row
//! yields as many outputs as its longest list, shorter lists give NULL past
//! their end, and a row whose lists are all NULL or empty yields nothing
//! (ksqlDB's semantics). Other columns repeat. Output order is input order,
//! then element order.
//!
//! State: none.

use datafusion::arrow::array::{Array, ArrayRef, ListArray, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::Changes;

pub(crate) struct Explode {
    /// Input columns holding the lists to explode.
    list_columns: Vec<usize>,
    /// For each output column: its input column, and whether it is an
    /// element of that (list) column or the column repeated.
    outputs: Vec<(usize, bool)>,
    schema: SchemaRef,
    display: String,
}

impl Explode {
    pub(crate) fn new(outputs: Vec<(usize, bool)>, schema: SchemaRef, display: String) -> Self {
        let mut list_columns: Vec<usize> = outputs.iter().filter(|o| o.1).map(|o| o.0).collect();
        list_columns.dedup();
        Self {
            list_columns,
            outputs,
            schema,
            display,
        }
    }
}

impl Operator for Explode {
    fn display(&self) -> String {
        self.display.clone()
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        let batch = &input.batch;
        let lists: Vec<&ListArray> = self
            .list_columns
            .iter()
            .map(|&i| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<ListArray>()
                    .ok_or_else(|| Error::internal("EXPLODE argument is not an ARRAY"))
            })
            .collect::<Result<_>>()?;
        let len_at = |l: &ListArray, row: usize| -> usize {
            if l.is_null(row) {
                0
            } else {
                l.value_length(row).max(0) as usize
            }
        };
        let mut repeat: Vec<u32> = Vec::new();
        let mut elems: Vec<Vec<Option<u32>>> = vec![Vec::new(); lists.len()];
        for row in 0..batch.num_rows() {
            let n = lists.iter().map(|l| len_at(l, row)).max().unwrap_or(0);
            for j in 0..n {
                repeat.push(row as u32);
                for (k, l) in lists.iter().enumerate() {
                    let start = l.value_offsets()[row] as usize;
                    elems[k].push((j < len_at(l, row)).then(|| (start + j) as u32));
                }
            }
        }
        if repeat.is_empty() {
            return Ok(vec![]);
        }
        let rep = UInt32Array::from(repeat.clone());
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (&(input, element), field) in self.outputs.iter().zip(self.schema.fields()) {
            let list = if element {
                self.list_columns.iter().position(|&c| c == input)
            } else {
                None
            };
            let arr = match list {
                Some(k) => take(
                    lists[k].values().as_ref(),
                    &UInt32Array::from(elems[k].clone()),
                    None,
                )?,
                None => take(batch.column(input).as_ref(), &rep, None)?,
            };
            let arr = if arr.data_type() != field.data_type() {
                cast(&arr, field.data_type())?
            } else {
                arr
            };
            cols.push(arr);
        }
        let out = RecordBatch::try_new(self.schema.clone(), cols)?;
        let ops = repeat.iter().map(|&r| input.ops[r as usize]).collect();
        Ok(vec![Changes::new(out, ops)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    #[test]
    fn zips_lists_and_pads_with_nulls() {
        let a = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(3)]),
        ]);
        let b = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(10)]),
            None,
            None,
            Some(vec![Some(30), Some(31)]),
        ]);
        let k = StringArray::from(vec!["w", "x", "y", "z"]);
        let in_schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("A", a.data_type().clone(), true),
            Field::new("B", b.data_type().clone(), true),
        ]));
        let batch =
            RecordBatch::try_new(in_schema, vec![Arc::new(k), Arc::new(a), Arc::new(b)]).unwrap();
        let out_schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("A", DataType::Int64, true),
            Field::new("B", DataType::Int64, true),
        ]));
        let mut e = Explode::new(
            vec![(0, false), (1, true), (2, true)],
            out_schema,
            "Explode".into(),
        );
        let out = e.process(Changes::inserts(batch)).unwrap();
        let c = &out[0].batch;
        let k = c.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let a = c.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let b = c.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        let got: Vec<_> = (0..c.num_rows())
            .map(|i| {
                (
                    k.value(i),
                    a.is_valid(i).then(|| a.value(i)),
                    b.is_valid(i).then(|| b.value(i)),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("w", Some(1), Some(10)),
                ("w", Some(2), None),
                ("z", Some(3), Some(30)),
                ("z", None, Some(31))
            ]
        );
    }
}

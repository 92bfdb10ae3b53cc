//! A point get on a view by its key, without a query plan: the key value is
//! encoded as the view stores it ([`super::view`]), read with one RocksDB
//! `get` (a commit is one write batch, so the row is whole: some
//! checkpoint's), decoded and projected. Codecs are made once, when the
//! lookup is, and shared by every session that runs it.

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::ScalarValue;

use super::rows::RowCodec;
use super::state::StateStore;
use super::view::{view_prefix, ViewSpec};
use crate::error::Result;

/// The key types a lookup takes (the others go the planned way).
pub(crate) fn lookup_key_type(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Int32 | DataType::Int64)
}

/// Reads one row of a view by its key, as some of the view's columns.
pub(crate) struct KeyLookup {
    prefix: Vec<u8>,
    key_type: DataType,
    key_codec: RowCodec,
    row_codec: RowCodec,
    /// The view's columns the answer takes, in its order.
    projection: Vec<usize>,
    schema: SchemaRef,
    store: StateStore,
}

impl std::fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLookup")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("projection", &self.projection)
            .finish()
    }
}

impl KeyLookup {
    /// A lookup of `spec`'s view (one key column, unwindowed, of a type
    /// [`lookup_key_type`] takes; None otherwise) answering `projection`.
    pub(crate) fn try_new(
        spec: &ViewSpec,
        projection: Vec<usize>,
        store: StateStore,
    ) -> Result<Option<Self>> {
        let key_type = spec.schema.field(0).data_type().clone();
        if spec.windowed || spec.key_len != 1 || !lookup_key_type(&key_type) {
            return Ok(None);
        }
        Ok(Some(Self {
            prefix: view_prefix(&spec.table),
            key_codec: RowCodec::try_new(std::slice::from_ref(&key_type))?,
            row_codec: RowCodec::try_new(&spec.row_types())?,
            schema: SchemaRef::new(spec.schema.project(&projection)?),
            key_type,
            projection,
            store,
        }))
    }

    /// The key's type: what a value must be cast to before [`Self::get`].
    pub(crate) fn key_type(&self) -> &DataType {
        &self.key_type
    }

    /// The answer's columns.
    #[cfg(test)]
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The rows whose keys are `keys` (of [`Self::key_type`]), in their
    /// order, each key once (as a planned read of the view gives them).
    /// One key is one `get`; several are read from one snapshot of the
    /// store (taking one costs a lock inside RocksDB, which a single get,
    /// whole by itself, does not need).
    pub(crate) fn get(&self, keys: &[ScalarValue]) -> Result<RecordBatch> {
        let column = match keys {
            [key] => key.to_array()?,
            _ => ScalarValue::iter_to_array(keys.iter().cloned())?,
        };
        let encoded = self.key_codec.encode(&[column])?;
        let stored = |n: usize| {
            let key = encoded.row(n);
            let mut stored = Vec::with_capacity(self.prefix.len() + key.as_ref().len());
            stored.extend_from_slice(&self.prefix);
            stored.extend_from_slice(key.as_ref());
            stored
        };
        let mut rows = Vec::with_capacity(keys.len());
        if encoded.num_rows() == 1 {
            rows.extend(self.store.get(&stored(0))?);
        } else {
            let snapshot = self.store.snapshot();
            let mut seen = std::collections::HashSet::new();
            for n in 0..encoded.num_rows() {
                let key = stored(n);
                if seen.insert(key.clone()) {
                    rows.extend(snapshot.get(&key)?);
                }
            }
        }
        if rows.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let columns = self.row_codec.decode(rows.iter().map(Vec::as_slice))?;
        let picked: Vec<ArrayRef> = self
            .projection
            .iter()
            .map(|&i| columns[i].clone())
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), picked)?)
    }
}

/// The projection of `spec`'s columns that answers with `answer`'s columns
/// (same names, same types), if every one is a column of the view.
pub(crate) fn projection_of(spec: &ViewSpec, answer: &Schema) -> Option<Vec<usize>> {
    answer
        .fields()
        .iter()
        .map(|f| {
            let (i, v) = spec.schema.column_with_name(f.name())?;
            (v.data_type() == f.data_type()).then_some(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    use super::*;
    use crate::runtime::changes::{Changes, Op};
    use crate::runtime::state::StateBatch;
    use crate::runtime::view::ViewWriter;

    fn spec(key: DataType) -> ViewSpec {
        ViewSpec {
            table: "ACCOUNTS".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("ID", key, true),
                Field::new("BALANCE", DataType::Int64, true),
                Field::new("ROWTIME", DataType::Int64, true),
            ])),
            key_len: 1,
            windowed: false,
            columns: vec![0, 1, 2],
        }
    }

    #[test]
    fn a_lookup_reads_the_row_the_view_wrote_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let spec = spec(DataType::Utf8);
        let mut writer = ViewWriter::try_new(spec.clone(), &store).unwrap();
        let batch = RecordBatch::try_new(
            spec.schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "a"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Int64Array::from(vec![10, 20, 30])),
            ],
        )
        .unwrap();
        writer
            .apply(&Changes::new(batch, vec![Op::Insert; 3]))
            .unwrap();
        let mut state = StateBatch::default();
        writer.checkpoint(&mut state);
        store.commit(state).unwrap();

        let answer = Schema::new(vec![
            Field::new("BALANCE", DataType::Int64, false),
            Field::new("ID", DataType::Utf8, false),
        ]);
        let projection = projection_of(&spec, &answer).unwrap();
        assert_eq!(projection, vec![1, 0]);
        let lookup = KeyLookup::try_new(&spec, projection, store)
            .unwrap()
            .unwrap();
        let key = |k: &str| ScalarValue::Utf8(Some(k.into()));
        let got = lookup.get(&[key("a")]).unwrap();
        assert_eq!(got.num_rows(), 1);
        let balance = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let id = got
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((balance.value(0), id.value(0)), (3, "a"));
        let none = lookup.get(&[key("c")]).unwrap();
        assert_eq!(none.num_rows(), 0);
        assert_eq!(none.schema(), *lookup.schema());
        // Several keys: in their order, each once, the missing left out.
        let some = lookup
            .get(&[key("b"), key("c"), key("a"), key("b")])
            .unwrap();
        let id = some
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let ids: Vec<&str> = id.iter().flatten().collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[test]
    fn only_what_the_view_has_is_a_projection() {
        let spec = spec(DataType::Int64);
        let wrong_type = Schema::new(vec![Field::new("BALANCE", DataType::Utf8, true)]);
        let unknown = Schema::new(vec![Field::new("OWNER", DataType::Utf8, true)]);
        assert_eq!(projection_of(&spec, &wrong_type), None);
        assert_eq!(projection_of(&spec, &unknown), None);
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut windowed = spec.clone();
        windowed.windowed = true;
        assert!(KeyLookup::try_new(&windowed, vec![0], store.clone())
            .unwrap()
            .is_none());
        let mut float = spec.clone();
        float.schema = Arc::new(Schema::new(vec![Field::new("ID", DataType::Float64, true)]));
        assert!(KeyLookup::try_new(&float, vec![0], store)
            .unwrap()
            .is_none());
    }
}

//! A point get on a view by its key, without a query plan: the key value is
//! encoded as the view stores it ([`super::view`]), read with one RocksDB
//! `get` (a commit is one write batch, so the row is whole: some
//! checkpoint's), decoded and projected. A windowed view's key holds many
//! windows: they are read with one range scan of a snapshot, from the
//! key's first window at or after the range's start to its end (the key
//! and a `WINDOWSTART` encode to a prefix of the stored key, in window
//! order). Codecs are made once, when the lookup is, and shared by every
//! session that runs it.

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::ScalarValue;

use super::rows::RowCodec;
use super::state::{prefix_end, StateStore};
use super::view::{view_prefix, ViewSpec};
use crate::error::Result;

/// The key types a lookup takes (the others go the planned way).
pub(crate) fn lookup_key_type(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Int32 | DataType::Int64)
}

/// A range of windows by their start: `from <= WINDOWSTART < to`, either
/// end open. Narrowed by each bound a lookup's statement gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowRange {
    from: Option<i64>,
    to: Option<i64>,
    /// A bound no start meets (`> i64::MAX`).
    none: bool,
}

impl WindowRange {
    /// `WINDOWSTART >= v`.
    pub(crate) fn at_least(&mut self, v: i64) {
        self.from = Some(self.from.map_or(v, |f| f.max(v)));
    }

    /// `WINDOWSTART > v`.
    pub(crate) fn above(&mut self, v: i64) {
        match v.checked_add(1) {
            Some(n) => self.at_least(n),
            None => self.none = true,
        }
    }

    /// `WINDOWSTART < v`.
    pub(crate) fn below(&mut self, v: i64) {
        self.to = Some(self.to.map_or(v, |t| t.min(v)));
    }

    /// `WINDOWSTART <= v` (every start is, for `i64::MAX`).
    pub(crate) fn at_most(&mut self, v: i64) {
        if let Some(n) = v.checked_add(1) {
            self.below(n);
        }
    }

    fn is_empty(&self) -> bool {
        self.none || matches!((self.from, self.to), (Some(f), Some(t)) if f >= t)
    }
}

/// Reads the row of a view's key (its windows' rows, for a windowed
/// view), as some of the view's columns.
pub(crate) struct KeyLookup {
    prefix: Vec<u8>,
    key_type: DataType,
    key_codec: RowCodec,
    /// A windowed view's key and window start, as its stored keys begin.
    window_codec: Option<RowCodec>,
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
    /// A lookup of `spec`'s view (one key column, of a type
    /// [`lookup_key_type`] takes; None otherwise) answering `projection`.
    pub(crate) fn try_new(
        spec: &ViewSpec,
        projection: Vec<usize>,
        store: StateStore,
    ) -> Result<Option<Self>> {
        let key_type = spec.schema.field(0).data_type().clone();
        let key_len = if spec.windowed { 3 } else { 1 };
        if spec.key_len != key_len || !lookup_key_type(&key_type) {
            return Ok(None);
        }
        let window_codec = match spec.windowed {
            true => Some(RowCodec::try_new(&[key_type.clone(), DataType::Int64])?),
            false => None,
        };
        Ok(Some(Self {
            prefix: view_prefix(&spec.table),
            key_codec: RowCodec::try_new(std::slice::from_ref(&key_type))?,
            window_codec,
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

    /// Whether the view is windowed (read with [`Self::windows`]).
    pub(crate) fn windowed(&self) -> bool {
        self.window_codec.is_some()
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
        let stored = |n: usize| self.stored(encoded.row(n).as_ref());
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
        self.batch(rows)
    }

    /// The rows of `key`'s windows whose start is in `range`, in window
    /// order, from one snapshot (empty for an unwindowed view).
    pub(crate) fn windows(&self, key: &ScalarValue, range: WindowRange) -> Result<RecordBatch> {
        let Some(codec) = self.window_codec.as_ref().filter(|_| !range.is_empty()) else {
            return self.batch(Vec::new());
        };
        let column = key.to_array()?;
        let base = self.stored(
            self.key_codec
                .encode(std::slice::from_ref(&column))?
                .row(0)
                .as_ref(),
        );
        let at = |start: i64| -> Result<Vec<u8>> {
            let start: ArrayRef = std::sync::Arc::new(Int64Array::from(vec![start]));
            Ok(self.stored(codec.encode(&[column.clone(), start])?.row(0).as_ref()))
        };
        let from = match range.from {
            Some(start) => at(start)?,
            None => base.clone(),
        };
        let to = match range.to {
            Some(start) => at(start)?,
            // `base` starts with `v/`: never all 0xff.
            None => prefix_end(&base).unwrap_or_default(),
        };
        let mut rows = Vec::new();
        self.store.snapshot().scan(&from, &to, true, |_, row| {
            rows.push(row.to_vec());
            Ok(true)
        })?;
        self.batch(rows)
    }

    /// The view's stored key for an encoded key.
    fn stored(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// Stored rows as the answer's columns.
    fn batch(&self, rows: Vec<Vec<u8>>) -> Result<RecordBatch> {
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

    /// `batch`'s rows inserted into `spec`'s view and committed.
    fn write(spec: &ViewSpec, store: &StateStore, batch: RecordBatch) {
        let mut writer = ViewWriter::try_new(spec.clone(), store).unwrap();
        let inserts = vec![Op::Insert; batch.num_rows()];
        writer.apply(&Changes::new(batch, inserts)).unwrap();
        let mut state = StateBatch::default();
        writer.checkpoint(&mut state);
        store.commit(state).unwrap();
    }

    #[test]
    fn a_lookup_reads_the_row_the_view_wrote_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let spec = spec(DataType::Utf8);
        let batch = RecordBatch::try_new(
            spec.schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "a"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Int64Array::from(vec![10, 20, 30])),
            ],
        )
        .unwrap();
        write(&spec, &store, batch);

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
    fn a_windowed_lookup_reads_the_keys_windows_in_the_range_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let spec = ViewSpec {
            table: "COUNTS".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("ID", DataType::Utf8, true),
                Field::new("WINDOWSTART", DataType::Int64, true),
                Field::new("WINDOWEND", DataType::Int64, true),
                Field::new("N", DataType::Int64, true),
                Field::new("ROWTIME", DataType::Int64, true),
            ])),
            key_len: 3,
            windowed: true,
            columns: vec![0, 1, 2, 3, 4],
        };
        let (ids, starts) = (
            vec!["a", "ab", "a", "b", "a", "a"],
            vec![10, 0, 0, 10, 20, i64::MAX - 10],
        );
        let ends: Vec<i64> = starts.iter().map(|s| s.saturating_add(10)).collect();
        let n: Vec<i64> = (1..=6).collect();
        let batch = RecordBatch::try_new(
            spec.schema.clone(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(starts)),
                Arc::new(Int64Array::from(ends)),
                Arc::new(Int64Array::from(n)),
                Arc::new(Int64Array::from(vec![0; 6])),
            ],
        )
        .unwrap();
        write(&spec, &store, batch);

        let lookup = KeyLookup::try_new(&spec, vec![1, 3], store)
            .unwrap()
            .unwrap();
        assert!(lookup.windowed());
        let read = |key: &str, narrow: &dyn Fn(&mut WindowRange)| -> Vec<(i64, i64)> {
            let mut range = WindowRange::default();
            narrow(&mut range);
            let got = lookup
                .windows(&ScalarValue::Utf8(Some(key.into())), range)
                .unwrap();
            let column = |i: usize| got.column(i).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..got.num_rows())
                .map(|r| (column(0).value(r), column(1).value(r)))
                .collect()
        };
        let max = i64::MAX - 10;
        assert_eq!(read("a", &|_| {}), [(0, 3), (10, 1), (20, 5), (max, 6)]);
        assert_eq!(read("a", &|r| r.at_least(10)), [(10, 1), (20, 5), (max, 6)]);
        assert_eq!(read("a", &|r| r.below(20)), [(0, 3), (10, 1)]);
        assert_eq!(
            read("a", &|r| {
                r.above(0);
                r.at_most(10);
            }),
            [(10, 1)]
        );
        assert_eq!(read("a", &|r| r.at_most(i64::MAX)).len(), 4);
        assert_eq!(read("a", &|r| r.above(i64::MAX)), []);
        assert_eq!(
            read("a", &|r| {
                r.at_least(20);
                r.below(20);
            }),
            []
        );
        assert_eq!(read("ab", &|_| {}), [(0, 2)]);
        assert_eq!(read("c", &|_| {}), []);
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

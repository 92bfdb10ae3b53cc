//! `ViewTable`: a table's view ([`super::view`]) as a DataFusion
//! `TableProvider`, so that pull queries are planned and run by DataFusion
//! over RocksDB.
//!
//! Filters on the key decide how the view is read: equality or `IN` on
//! every key column (a non-windowed table's whole key, a windowed table's
//! key columns) becomes point gets or prefix scans of those keys, and for a
//! windowed table a range (or equality) on `WINDOWSTART` narrows each key's
//! prefix scan to a range scan of its windows; a range on a single-column
//! key becomes a range scan; anything else scans the view.
//! The pushed filters are `Inexact`: DataFusion applies them again, so the
//! answer never depends on which way the rows were found.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::state::{prefix_end, StateStore};
use super::view::{decode_rows, encode_key, view_prefix, ViewSpec};

/// How a scan reads the view.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Access {
    /// Every row.
    Scan,
    /// The rows of these keys (one value per key column each).
    Keys(Vec<Vec<ScalarValue>>),
    /// The windows of these keys (a windowed table) whose `WINDOWSTART`
    /// lies in the bounds (inclusive; DataFusion drops an excluded bound).
    KeyWindows {
        keys: Vec<Vec<ScalarValue>>,
        low: Option<ScalarValue>,
        high: Option<ScalarValue>,
    },
    /// Rows whose single key column lies in the bounds.
    Range {
        low: Option<(ScalarValue, bool)>,
        high: Option<(ScalarValue, bool)>,
    },
}

pub(crate) struct ViewTable {
    spec: ViewSpec,
    store: StateStore,
    /// Key columns proper (without window bounds).
    key_columns: usize,
    /// The most bytes of stored rows a scan may take.
    memory: u64,
}

impl ViewTable {
    pub(crate) fn new(spec: ViewSpec, store: StateStore) -> Self {
        let key_columns = spec.key_len - if spec.windowed { 2 } else { 0 };
        Self {
            spec,
            store,
            key_columns,
            memory: u64::MAX,
        }
    }

    /// Bounded to `bytes` of stored rows.
    pub(crate) fn with_memory(self, bytes: u64) -> Self {
        Self {
            memory: bytes,
            ..self
        }
    }

    fn key_name(&self, i: usize) -> &str {
        self.spec.schema.field(i).name()
    }

    /// The key column (or, for a windowed table, `WINDOWSTART`, right after
    /// the key columns) named `name`.
    fn key_index(&self, name: &str) -> Option<usize> {
        let searched = self.key_columns + usize::from(self.spec.windowed);
        (0..searched).find(|&i| self.key_name(i) == name)
    }

    /// The key column a filter constrains, with the values or bounds.
    fn key_constraint(&self, e: &Expr) -> Option<(usize, Constraint)> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col, lit, op) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
                    (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
                    _ => return None,
                };
                let i = self.key_index(&col.name)?;
                let c = match op {
                    Operator::Eq => Constraint::Values(vec![lit.clone()]),
                    Operator::Gt => Constraint::Low(lit.clone(), false),
                    Operator::GtEq => Constraint::Low(lit.clone(), true),
                    Operator::Lt => Constraint::High(lit.clone(), false),
                    Operator::LtEq => Constraint::High(lit.clone(), true),
                    _ => return None,
                };
                Some((i, c))
            }
            Expr::InList(l) if !l.negated => {
                let Expr::Column(c) = l.expr.as_ref() else {
                    return None;
                };
                let i = self.key_index(&c.name)?;
                let values = l
                    .list
                    .iter()
                    .map(|v| match v {
                        Expr::Literal(v, _) => Some(v.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((i, Constraint::Values(values)))
            }
            Expr::Between(b) if !b.negated => {
                let Expr::Column(c) = b.expr.as_ref() else {
                    return None;
                };
                let (Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                    (b.low.as_ref(), b.high.as_ref())
                else {
                    return None;
                };
                let i = self.key_index(&c.name)?;
                Some((i, Constraint::Between(lo.clone(), hi.clone())))
            }
            _ => None,
        }
    }

    /// How to read the view for these (AND-ed) filters.
    pub(crate) fn access(&self, filters: &[Expr]) -> Access {
        let mut values: Vec<Option<Vec<ScalarValue>>> = vec![None; self.key_columns];
        let mut low = None;
        let mut high = None;
        // Bounds on WINDOWSTART (a windowed table).
        let mut window_low = None;
        let mut window_high = None;
        for f in filters {
            let Some((i, c)) = self.key_constraint(f) else {
                continue;
            };
            if i == self.key_columns {
                match c {
                    Constraint::Values(v) if v.len() == 1 => {
                        window_low = v.first().cloned();
                        window_high = v.first().cloned();
                    }
                    Constraint::Low(v, _) => window_low = Some(v),
                    Constraint::High(v, _) => window_high = Some(v),
                    Constraint::Between(lo, hi) => {
                        window_low = Some(lo);
                        window_high = Some(hi);
                    }
                    Constraint::Values(_) => {}
                }
                continue;
            }
            match c {
                Constraint::Values(v) => {
                    // Two equalities on one column: their intersection.
                    values[i] = Some(match values[i].take() {
                        None => v,
                        Some(old) => old.into_iter().filter(|x| v.contains(x)).collect(),
                    });
                }
                Constraint::Low(v, inc) if self.key_columns == 1 => low = Some((v, inc)),
                Constraint::High(v, inc) if self.key_columns == 1 => high = Some((v, inc)),
                Constraint::Between(lo, hi) if self.key_columns == 1 => {
                    low = Some((lo, true));
                    high = Some((hi, true));
                }
                _ => {}
            }
        }
        if self.key_columns > 0 && values.iter().all(Option::is_some) {
            // Every combination of the columns' values.
            let mut keys: Vec<Vec<ScalarValue>> = vec![vec![]];
            for v in values.into_iter().flatten() {
                keys = keys
                    .into_iter()
                    .flat_map(|k| {
                        v.iter().map(move |x| {
                            let mut k = k.clone();
                            k.push(x.clone());
                            k
                        })
                    })
                    .collect();
            }
            if window_low.is_some() || window_high.is_some() {
                return Access::KeyWindows {
                    keys,
                    low: window_low,
                    high: window_high,
                };
            }
            return Access::Keys(keys);
        }
        if low.is_some() || high.is_some() {
            return Access::Range { low, high };
        }
        Access::Scan
    }

    /// The stored rows `access` selects, in key order (the first `limit`
    /// of them), read from one snapshot of the store.
    fn read(&self, access: &Access, limit: Option<usize>) -> crate::error::Result<Vec<Vec<u8>>> {
        let prefix = view_prefix(&self.spec.table);
        let all_key_types = self.spec.key_types();
        let full = |k: &[u8]| {
            let mut f = prefix.clone();
            f.extend_from_slice(k);
            f
        };
        // The leading key columns' values (the key, then WINDOWSTART), as
        // stored: a prefix of the stored keys that start with them.
        let encode = |values: &[ScalarValue]| -> crate::error::Result<Option<Vec<u8>>> {
            let key_types = &all_key_types[..values.len().min(all_key_types.len())];
            let mut columns: Vec<ArrayRef> = Vec::new();
            for (v, t) in values.iter().zip(key_types) {
                // A literal of another type (an INT literal against a BIGINT
                // key) is cast; one that cannot be matches nothing.
                match v.cast_to(t) {
                    Ok(v) => columns.push(v.to_array()?),
                    Err(_) => return Ok(None),
                }
            }
            Ok(encode_key(&key_types[..columns.len()], &columns)?.pop())
        };
        let end_of = |p: &[u8]| prefix_end(p).unwrap_or_else(|| vec![0xff; p.len() + 1]);
        let snap = self.store.snapshot();
        let mut rows = Taken {
            rows: Vec::new(),
            held: 0,
            memory: self.memory,
            limit: limit.unwrap_or(usize::MAX),
            table: &self.spec.table,
        };
        match access {
            Access::Scan => {
                snap.scan(&prefix, &end_of(&prefix), false, |_, v| rows.take(v))?;
            }
            Access::Keys(keys) => {
                let mut seen = BTreeSet::new();
                for k in keys {
                    let Some(encoded) = encode(k)? else { continue };
                    if !seen.insert(encoded.clone()) {
                        continue;
                    }
                    let key = full(&encoded);
                    let more = if self.key_columns == self.spec.key_len {
                        match snap.get(&key)? {
                            Some(v) => rows.take(&v)?,
                            None => true,
                        }
                    } else {
                        // A windowed table: every window of the key.
                        snap.scan(&key, &end_of(&key), true, |_, v| rows.take(v))?;
                        rows.rows.len() < rows.limit
                    };
                    if !more {
                        break;
                    }
                }
            }
            Access::KeyWindows { keys, low, high } => {
                let mut seen = BTreeSet::new();
                for k in keys {
                    let Some(key) = encode(k)? else { continue };
                    if !seen.insert(key.clone()) {
                        continue;
                    }
                    let bound = |b: &Option<ScalarValue>| -> crate::error::Result<Option<Vec<u8>>> {
                        match b {
                            Some(v) => {
                                let mut values = k.clone();
                                values.push(v.clone());
                                encode(&values)
                            }
                            None => Ok(Some(key.clone())),
                        }
                    };
                    let (Some(from), Some(to)) = (bound(low)?, bound(high)?) else {
                        continue;
                    };
                    // Up to and including every window starting at the
                    // high bound.
                    let mut to = full(&to);
                    to.push(0xff);
                    snap.scan(&full(&from), &to, true, |_, v| rows.take(v))?;
                }
            }
            Access::Range { low, high } => {
                let from = match low {
                    Some((v, _)) => match encode(std::slice::from_ref(v))? {
                        Some(k) => full(&k),
                        None => return Ok(Vec::new()),
                    },
                    None => prefix.clone(),
                };
                let to = match high {
                    Some((v, _)) => match encode(std::slice::from_ref(v))? {
                        // Up to and including every row starting with the
                        // high key (DataFusion drops the excluded bound).
                        Some(k) => {
                            let mut t = full(&k);
                            t.push(0xff);
                            t
                        }
                        None => return Ok(Vec::new()),
                    },
                    None => end_of(&prefix),
                };
                snap.scan(&from, &to, false, |_, v| rows.take(v))?;
            }
        }
        Ok(rows.rows)
    }
}

/// The rows a read takes, within the pull query's memory and its limit.
struct Taken<'a> {
    rows: Vec<Vec<u8>>,
    held: u64,
    memory: u64,
    limit: usize,
    table: &'a str,
}

impl Taken<'_> {
    /// Take a row; whether to go on.
    fn take(&mut self, row: &[u8]) -> crate::error::Result<bool> {
        if self.rows.len() >= self.limit {
            return Ok(false);
        }
        self.held += row.len() as u64;
        if self.held > self.memory {
            return Err(crate::error::Error::ResourceLimit(format!(
                "The pull query read more than {} bytes of table {} (limits.pull_query_memory in the server configuration): narrow it with a WHERE on the key, or a LIMIT",
                self.memory, self.table
            )));
        }
        self.rows.push(row.to_vec());
        Ok(self.rows.len() < self.limit)
    }
}

impl std::fmt::Debug for ViewTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewTable")
            .field("table", &self.spec.table)
            .field("key_columns", &self.key_columns)
            .finish()
    }
}

/// What one filter says about one key column.
enum Constraint {
    Values(Vec<ScalarValue>),
    Low(ScalarValue, bool),
    High(ScalarValue, bool),
    Between(ScalarValue, ScalarValue),
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        self.spec.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.key_constraint(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let access = self.access(filters);
        tracing::debug!(table = %self.spec.table, ?access, "pull query reads the view");
        let rows = self
            .read(&access, limit)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let batch = decode_rows(&self.spec, rows.iter().map(Vec::as_slice))
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::changes::{Changes, Op};
    use crate::runtime::state::StateBatch;
    use crate::runtime::view::ViewWriter;
    use crate::runtime::{WINDOWEND, WINDOWSTART};
    use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::{ident, lit};

    /// A windowed view of K's counts per 1-second window, holding windows
    /// 1000..=5000 of `a` and `b`.
    fn windowed() -> (tempfile::TempDir, ViewTable) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new(WINDOWSTART, DataType::Int64, true),
            Field::new(WINDOWEND, DataType::Int64, true),
            Field::new("N", DataType::Int64, true),
        ]));
        let spec = ViewSpec {
            table: "COUNTS".into(),
            schema: schema.clone(),
            key_len: 3,
            windowed: true,
            columns: vec![0, 1, 2, 3],
        };
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut writer = ViewWriter::try_new(spec.clone(), &store).unwrap();
        let mut ks = Vec::new();
        let mut starts = Vec::new();
        for k in ["a", "b"] {
            for s in 1..=5i64 {
                ks.push(k);
                starts.push(s * 1000);
            }
        }
        let n = ks.len();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ks)),
                Arc::new(Int64Array::from(starts.clone())),
                Arc::new(Int64Array::from(
                    starts.iter().map(|s| s + 1000).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(starts.clone())),
            ],
        )
        .unwrap();
        writer
            .apply(&Changes::new(batch, vec![Op::Insert; n]))
            .unwrap();
        let mut b = StateBatch::default();
        writer.checkpoint(&mut b);
        store.commit(b).unwrap();
        (dir, ViewTable::new(spec, store))
    }

    /// The (K, WINDOWSTART) of the rows an access reads.
    fn read(view: &ViewTable, access: &Access) -> Vec<(String, i64)> {
        read_limited(view, access, None)
    }

    fn read_limited(view: &ViewTable, access: &Access, limit: Option<usize>) -> Vec<(String, i64)> {
        let rows = view.read(access, limit).unwrap();
        let batch = decode_rows(&view.spec, rows.iter().map(Vec::as_slice)).unwrap();
        let k = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let s = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        (0..batch.num_rows())
            .map(|i| (k.value(i).to_string(), s.value(i)))
            .collect()
    }

    #[test]
    fn a_key_and_a_windowstart_range_read_only_those_windows() {
        let (_dir, view) = windowed();
        let access = view.access(&[
            ident("K").eq(lit("a")),
            ident(WINDOWSTART).gt_eq(lit(2000i64)),
            ident(WINDOWSTART).lt(lit(4000i64)),
        ]);
        assert_eq!(
            access,
            Access::KeyWindows {
                keys: vec![vec![ScalarValue::from("a")]],
                low: Some(ScalarValue::Int64(Some(2000))),
                high: Some(ScalarValue::Int64(Some(4000))),
            }
        );
        // The high bound is read inclusive; DataFusion drops 4000.
        assert_eq!(
            read(&view, &access),
            vec![("a".into(), 2000), ("a".into(), 3000), ("a".into(), 4000)]
        );
        // One window of two keys.
        let access = view.access(&[
            ident("K").in_list(vec![lit("a"), lit("b")], false),
            ident(WINDOWSTART).eq(lit(5000i64)),
        ]);
        assert_eq!(
            read(&view, &access),
            vec![("a".into(), 5000), ("b".into(), 5000)]
        );
        // Only a lower bound: the key's windows from there on.
        let access = view.access(&[ident("K").eq(lit("b")), ident(WINDOWSTART).gt(lit(4000i64))]);
        assert_eq!(
            read(&view, &access),
            vec![("b".into(), 4000), ("b".into(), 5000)]
        );
        // A key alone: all its windows; no key: a scan.
        let access = view.access(&[ident("K").eq(lit("a"))]);
        assert_eq!(access, Access::Keys(vec![vec![ScalarValue::from("a")]]));
        assert_eq!(read(&view, &access).len(), 5);
        let access = view.access(&[ident(WINDOWSTART).eq(lit(1000i64))]);
        assert_eq!(access, Access::Scan);
    }

    #[test]
    fn a_scan_stops_at_its_limit_and_within_the_memory_bound() {
        let (_dir, view) = windowed();
        assert_eq!(read(&view, &Access::Scan).len(), 10);
        assert_eq!(
            read_limited(&view, &Access::Scan, Some(3)),
            vec![("a".into(), 1000), ("a".into(), 2000), ("a".into(), 3000)]
        );
        let keys = Access::Keys(vec![
            vec![ScalarValue::from("a")],
            vec![ScalarValue::from("b")],
        ]);
        assert_eq!(
            read_limited(&view, &keys, Some(6)).last(),
            Some(&("b".into(), 1000))
        );
        let view = view.with_memory(20);
        let e = view.read(&Access::Scan, None).unwrap_err();
        assert_eq!(e.sqlstate(), "53200");
        assert!(
            e.to_string()
                .starts_with("The pull query read more than 20 bytes of table"),
            "{e}"
        );
    }
}

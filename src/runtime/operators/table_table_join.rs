//! `TableTableJoin`: two tables joined on their primary keys (INNER, LEFT,
//! RIGHT, FULL OUTER).
//!
//! Each input is a table changelog. A change on one side replaces that
//! side's stored row and re-joins it with the other side's current row:
//! the old joined row (if the join produced one) is retracted and the new
//! one emitted, as UpdateBefore/UpdateAfter, Insert or Delete, so that
//! aggregations downstream stay exact. Output time is the larger of the
//! two rows' times.
//!
//! When the result feeds a sink (`emit_unknown_deletes`), a tombstone on
//! one side for a key the result never held is forwarded like ksqlDB does
//! when the other side holds a row.
//!
//! State: `prefix + side + key` → the side's current row.

use super::join_output::{EncodedInput, JoinCodecs, JoinRow, Side};
use super::JoinOperator;
use crate::error::Result;
use crate::runtime::changes::{Changes, Op};
use crate::runtime::keyed_store::KeyedStore;
use crate::runtime::plan::{JoinSpec, JoinType};
use crate::runtime::state::{StateBatch, StateStore};

pub(crate) struct TableTableJoin {
    codecs: JoinCodecs,
    join_type: JoinType,
    emit_unknown_deletes: bool,
    rows: KeyedStore,
}

fn side_key(side: Side, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(match side {
        Side::Left => b'L',
        Side::Right => b'R',
    });
    k.extend_from_slice(key);
    k
}

/// Whether a pair of rows yields a joined row under `join_type`.
pub(crate) fn joined(join_type: JoinType, left: bool, right: bool) -> bool {
    match join_type {
        JoinType::Inner => left && right,
        JoinType::Left => left,
        JoinType::Right => right,
        JoinType::Full => left || right,
    }
}

impl TableTableJoin {
    pub(crate) fn try_new(spec: &JoinSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        Ok(Self {
            codecs: JoinCodecs::try_new(spec)?,
            join_type: spec.join_type,
            emit_unknown_deletes: spec.emit_unknown_deletes,
            rows: KeyedStore::new(store, prefix),
        })
    }
}

impl JoinOperator for TableTableJoin {
    fn codecs(&self) -> &JoinCodecs {
        &self.codecs
    }

    fn join(&mut self, side: Side, input: &Changes, enc: EncodedInput) -> Result<Vec<JoinRow>> {
        let mut out = Vec::new();
        for (i, op) in input.ops.iter().enumerate() {
            if *op == Op::UpdateBefore {
                continue;
            }
            let Some(key) = &enc.keys[i] else { continue };
            let new = op.is_add().then(|| enc.rows[i].clone());
            let old = self.rows.get(&side_key(side, key))?;
            self.rows.set(side_key(side, key), new.clone());
            let other = self.rows.get(&side_key(side.other(), key))?;
            let time = match &other {
                Some(o) => enc.times[i].max(self.codecs.row_time(side.other(), o)?),
                None => enc.times[i],
            };
            let pair = |this: Option<Vec<u8>>| match side {
                Side::Left => (this, other.clone()),
                Side::Right => (other.clone(), this),
            };
            let (old_l, old_r) = pair(old.clone());
            let (new_l, new_r) = pair(new.clone());
            let had = joined(self.join_type, old_l.is_some(), old_r.is_some());
            let has = joined(self.join_type, new_l.is_some(), new_r.is_some());
            let row = |left: Option<Vec<u8>>, right: Option<Vec<u8>>, op: Op| JoinRow {
                key: key.clone(),
                left,
                right,
                time,
                op,
            };
            match (had, has) {
                (true, true) => {
                    out.push(row(old_l, old_r, Op::UpdateBefore));
                    out.push(row(new_l, new_r, Op::UpdateAfter));
                }
                (false, true) => out.push(row(new_l, new_r, Op::Insert)),
                (true, false) => out.push(row(old_l, old_r, Op::Delete)),
                (false, false) => {
                    // A tombstone the result never held: ksqlDB still
                    // writes it when the other side has a row.
                    if self.emit_unknown_deletes && new.is_none() && other.is_some() {
                        let (l, r) = pair(Some(enc.rows[i].clone()));
                        out.push(row(l, r, Op::Delete));
                    }
                }
            }
        }
        Ok(out)
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        self.rows.checkpoint(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::testing::*;
    use crate::runtime::plan::JoinKind;

    fn join(join_type: JoinType, emit_unknown_deletes: bool, store: &StateStore) -> TableTableJoin {
        let mut spec = join_spec(JoinKind::TableTable, join_type);
        spec.emit_unknown_deletes = emit_unknown_deletes;
        TableTableJoin::try_new(&spec, store.clone(), JOIN_PREFIX.to_vec()).unwrap()
    }

    fn l(key: &str, v: Option<i64>, t: i64, op: Op) -> (Side, Changes) {
        (Side::Left, left_rows(&[(Some(key), v, t, op)]))
    }

    fn r(key: &str, w: Option<i64>, t: i64, op: Op) -> (Side, Changes) {
        (Side::Right, right_rows(&[(Some(key), w, t, op)]))
    }

    /// The output of each input batch.
    fn run(
        join_type: JoinType,
        emit_unknown_deletes: bool,
        inputs: Vec<(Side, Changes)>,
    ) -> Vec<Vec<String>> {
        let (store, _d) = store();
        let mut j = join(join_type, emit_unknown_deletes, &store);
        inputs
            .into_iter()
            .map(|(side, input)| join_dump(j.process(side, input).unwrap()))
            .collect()
    }

    fn inner_inputs() -> Vec<(Side, Changes)> {
        vec![
            l("a", Some(1), 1, INS),
            r("a", Some(10), 5, INS),
            // An update (its UpdateBefore is ignored): time is the later
            // of this record's and the right row's.
            (
                Side::Left,
                left_rows(&[(Some("a"), Some(1), 3, UB), (Some("a"), Some(2), 3, UA)]),
            ),
            r("a", Some(20), 7, INS),
            r("a", None, 8, DEL),
            // Nothing joined, nothing on the right: never emitted.
            l("a", None, 9, DEL),
            r("a", Some(30), 10, INS),
            l("a", Some(3), 4, INS),
            l("b", None, 11, DEL),
            r("b", Some(40), 12, INS),
            // A tombstone the result never held, the other side has a row.
            l("b", None, 13, DEL),
            // A delete older than the other side's row: its time.
            r("a", None, 2, DEL),
            // Again: the result no longer holds the key, the left does.
            r("a", None, 14, DEL),
        ]
    }

    fn inner_expected(emit_unknown_deletes: bool) -> Vec<Vec<String>> {
        let unknown = |row: &str| {
            if emit_unknown_deletes {
                lines(&[row])
            } else {
                lines(&[])
            }
        };
        vec![
            lines(&[]),
            lines(&["+I a l=a:1 r=a:10 @5 p0"]),
            lines(&["-U a l=a:1 r=a:10 @5 p0", "+U a l=a:2 r=a:10 @5 p0"]),
            lines(&["-U a l=a:2 r=a:10 @7 p0", "+U a l=a:2 r=a:20 @7 p0"]),
            lines(&["-D a l=a:2 r=a:20 @8 p0"]),
            lines(&[]),
            lines(&[]),
            lines(&["+I a l=a:3 r=a:30 @10 p0"]),
            lines(&[]),
            lines(&[]),
            unknown("-D b l=b:null r=b:40 @13 p0"),
            lines(&["-D a l=a:3 r=a:30 @4 p0"]),
            unknown("-D a l=a:3 r=a:null @14 p0"),
        ]
    }

    #[test]
    fn inner_join_emits_exact_changes() {
        assert_eq!(
            run(JoinType::Inner, false, inner_inputs()),
            inner_expected(false)
        );
    }

    #[test]
    fn inner_join_forwards_unknown_deletes_when_asked() {
        assert_eq!(
            run(JoinType::Inner, true, inner_inputs()),
            inner_expected(true)
        );
    }

    fn left_inputs() -> Vec<(Side, Changes)> {
        vec![
            l("a", Some(1), 1, INS),
            r("a", Some(10), 5, INS),
            r("a", None, 6, DEL),
            l("a", None, 7, DEL),
            r("a", Some(20), 8, INS),
            r("b", None, 9, DEL),
            l("a", None, 10, DEL),
            l("a", Some(2), 3, INS),
            r("a", None, 11, DEL),
            // A right tombstone for a row the right no longer has re-joins
            // the left row: the same row, retracted and emitted again.
            r("a", None, 12, DEL),
        ]
    }

    #[test]
    fn left_join_keeps_left_rows_without_a_right_row() {
        for emit_unknown_deletes in [false, true] {
            let unknown: &[&str] = if emit_unknown_deletes {
                &["-D a l=a:null r=a:20 @10 p0"]
            } else {
                &[]
            };
            assert_eq!(
                run(JoinType::Left, emit_unknown_deletes, left_inputs()),
                vec![
                    lines(&["+I a l=a:1 r=null @1 p0"]),
                    lines(&["-U a l=a:1 r=null @5 p0", "+U a l=a:1 r=a:10 @5 p0"]),
                    lines(&["-U a l=a:1 r=a:10 @6 p0", "+U a l=a:1 r=null @6 p0"]),
                    lines(&["-D a l=a:1 r=null @7 p0"]),
                    lines(&[]),
                    lines(&[]),
                    lines(unknown),
                    lines(&["+I a l=a:2 r=a:20 @8 p0"]),
                    lines(&["-U a l=a:2 r=a:20 @11 p0", "+U a l=a:2 r=null @11 p0"]),
                    lines(&["-U a l=a:2 r=null @12 p0", "+U a l=a:2 r=null @12 p0"]),
                ],
                "emit_unknown_deletes={emit_unknown_deletes}"
            );
        }
    }

    #[test]
    fn full_join_keeps_rows_of_either_side() {
        let inputs = || {
            vec![
                r("a", Some(10), 2, INS),
                l("a", Some(1), 1, INS),
                l("a", None, 3, DEL),
                r("a", None, 4, DEL),
                l("b", Some(5), 5, INS),
                r("b", Some(50), 6, INS),
                r("b", None, 7, DEL),
                l("b", None, 8, DEL),
                r("c", None, 9, DEL),
                l("c", None, 9, DEL),
            ]
        };
        // Partition and offset come from the left row when there is one.
        let expected = vec![
            lines(&["+I a l=null r=a:10 @2 p1"]),
            lines(&["-U a l=null r=a:10 @2 p1", "+U a l=a:1 r=a:10 @2 p0"]),
            lines(&["-U a l=a:1 r=a:10 @3 p0", "+U a l=null r=a:10 @3 p1"]),
            lines(&["-D a l=null r=a:10 @4 p1"]),
            lines(&["+I b l=b:5 r=null @5 p0"]),
            lines(&["-U b l=b:5 r=null @6 p0", "+U b l=b:5 r=b:50 @6 p0"]),
            lines(&["-U b l=b:5 r=b:50 @7 p0", "+U b l=b:5 r=null @7 p0"]),
            lines(&["-D b l=b:5 r=null @8 p0"]),
            lines(&[]),
            lines(&[]),
        ];
        assert_eq!(run(JoinType::Full, false, inputs()), expected);
        assert_eq!(run(JoinType::Full, true, inputs()), expected);
    }

    #[test]
    fn right_join_mirrors_the_left_join() {
        let inputs = || {
            vec![
                r("a", Some(10), 1, INS),
                l("a", Some(1), 2, INS),
                r("a", None, 3, DEL),
                l("a", None, 4, DEL),
                l("a", Some(2), 5, INS),
                r("a", None, 6, DEL),
            ]
        };
        let expected = |unknown: &[&str]| {
            vec![
                lines(&["+I a l=null r=a:10 @1 p1"]),
                lines(&["-U a l=null r=a:10 @2 p1", "+U a l=a:1 r=a:10 @2 p0"]),
                lines(&["-D a l=a:1 r=a:10 @3 p0"]),
                lines(&[]),
                lines(&[]),
                lines(unknown),
            ]
        };
        assert_eq!(run(JoinType::Right, false, inputs()), expected(&[]));
        assert_eq!(
            run(JoinType::Right, true, inputs()),
            expected(&["-D a l=a:2 r=a:null @6 p0"])
        );
    }

    #[test]
    fn rows_survive_a_restart() {
        let (store, _d) = store();
        let mut j = join(JoinType::Inner, false, &store);
        j.process(Side::Left, left_rows(&[(Some("a"), Some(1), 1, INS)]))
            .unwrap();
        j.process(Side::Right, right_rows(&[(Some("a"), Some(10), 2, INS)]))
            .unwrap();
        let mut cp = StateBatch::default();
        j.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();

        let mut j = join(JoinType::Inner, false, &store);
        let out = j
            .process(Side::Left, left_rows(&[(Some("a"), Some(2), 3, INS)]))
            .unwrap();
        assert_eq!(
            join_dump(out),
            lines(&["-U a l=a:1 r=a:10 @3 p0", "+U a l=a:2 r=a:10 @3 p0"])
        );
    }
}

//! `ForeignKeyJoin`: a table joined with another table through a foreign
//! key, a left column (or expression) matching the right table's primary
//! key (INNER or LEFT). The result is keyed by the left table's key.
//!
//! A left change re-joins that row with the right row of its (possibly new)
//! foreign key; a right change re-joins every left row that references it.
//! Old joined rows are retracted (UpdateBefore/Delete) so that aggregations
//! downstream stay exact. Output time: the larger of both rows' times for a
//! left change, the right record's time for a right change.
//!
//! When the result feeds a sink (`emit_unknown_deletes`), a deleted left
//! row, or a deleted right row's referencing left rows, are written as
//! tombstones even when the result never held them, as ksqlDB does.
//!
//! State: `L + left key` → foreign key and row; `R + right key` → row;
//! `I + foreign key + left key` → (), the index of references.

use super::join_output::{EncodedInput, JoinCodecs, JoinRow, Side};
use super::table_table_join::joined;
use super::JoinOperator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::keyed_store::KeyedStore;
use crate::runtime::plan::{JoinSpec, JoinType};
use crate::runtime::state::{StateBatch, StateStore};

pub(crate) struct ForeignKeyJoin {
    codecs: JoinCodecs,
    join_type: JoinType,
    left_primary_key: Vec<usize>,
    emit_unknown_deletes: bool,
    rows: KeyedStore,
}

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![tag];
    for p in parts {
        k.extend_from_slice(&(p.len() as u32).to_be_bytes());
        k.extend_from_slice(p);
    }
    k
}

/// A stored left row: its foreign key (None: NULL) and the row.
fn encode_left(fk: &Option<Vec<u8>>, row: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    match fk {
        Some(fk) => {
            v.push(1);
            v.extend_from_slice(&(fk.len() as u32).to_be_bytes());
            v.extend_from_slice(fk);
        }
        None => v.push(0),
    }
    v.extend_from_slice(row);
    v
}

fn decode_left(v: &[u8]) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
    let corrupt = || Error::internal("corrupt foreign-key join state");
    match v.first() {
        Some(0) => Ok((None, v[1..].to_vec())),
        Some(1) => {
            let len = u32::from_be_bytes(
                v.get(1..5)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(corrupt)?,
            ) as usize;
            let fk = v.get(5..5 + len).ok_or_else(corrupt)?.to_vec();
            Ok((Some(fk), v.get(5 + len..).ok_or_else(corrupt)?.to_vec()))
        }
        _ => Err(corrupt()),
    }
}

impl ForeignKeyJoin {
    pub(crate) fn try_new(spec: &JoinSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        Ok(Self {
            codecs: JoinCodecs::try_new(spec)?,
            join_type: spec.join_type,
            left_primary_key: spec.left_primary_key.clone(),
            emit_unknown_deletes: spec.emit_unknown_deletes,
            rows: KeyedStore::new(store, prefix),
        })
    }

    fn right_row(&mut self, fk: &Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        match fk {
            Some(fk) => self.rows.get(&tagged(b'R', &[fk])),
            None => Ok(None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        out: &mut Vec<JoinRow>,
        key: &[u8],
        old: (Option<Vec<u8>>, Option<Vec<u8>>),
        new: (Option<Vec<u8>>, Option<Vec<u8>>),
        tombstone_row: Option<Vec<u8>>,
        time: i64,
    ) {
        let had = old.0.is_some() && joined(self.join_type, true, old.1.is_some());
        let has = new.0.is_some() && joined(self.join_type, true, new.1.is_some());
        let row = |(left, right): (Option<Vec<u8>>, Option<Vec<u8>>), op: Op| JoinRow {
            key: key.to_vec(),
            left,
            right,
            time,
            op,
        };
        match (had, has) {
            (true, true) => {
                out.push(row(old, Op::UpdateBefore));
                out.push(row(new, Op::UpdateAfter));
            }
            (false, true) => out.push(row(new, Op::Insert)),
            (true, false) => out.push(row(old, Op::Delete)),
            (false, false) => {
                if self.emit_unknown_deletes {
                    if let Some(left) = tombstone_row {
                        out.push(row((Some(left), None), Op::Delete));
                    }
                }
            }
        }
    }
}

impl JoinOperator for ForeignKeyJoin {
    fn codecs(&self) -> &JoinCodecs {
        &self.codecs
    }

    fn join(&mut self, side: Side, input: &Changes, enc: EncodedInput) -> Result<Vec<JoinRow>> {
        let mut out = Vec::new();
        match side {
            Side::Left => {
                let primary = self
                    .codecs
                    .encode_key_columns(&self.left_primary_key, input)?;
                for (i, op) in input.ops.iter().enumerate() {
                    if *op == Op::UpdateBefore {
                        continue;
                    }
                    let lk = &primary[i];
                    let old = match self.rows.get(&tagged(b'L', &[lk]))? {
                        Some(v) => Some(decode_left(&v)?),
                        None => None,
                    };
                    let (old_fk, old_row) = match old {
                        Some((fk, row)) => (fk, Some(row)),
                        None => (None, None),
                    };
                    let new_fk = enc.keys[i].clone();
                    let new_row = op.is_add().then(|| enc.rows[i].clone());
                    if let Some(fk) = &old_fk {
                        self.rows.set(tagged(b'I', &[fk, lk]), None);
                    }
                    match &new_row {
                        Some(row) => {
                            self.rows
                                .set(tagged(b'L', &[lk]), Some(encode_left(&new_fk, row)));
                            if let Some(fk) = &new_fk {
                                self.rows.set(tagged(b'I', &[fk, lk]), Some(Vec::new()));
                            }
                        }
                        None => self.rows.set(tagged(b'L', &[lk]), None),
                    }
                    let old_right = self.right_row(&old_fk)?;
                    let new_right = if new_row.is_some() {
                        self.right_row(&new_fk)?
                    } else {
                        None
                    };
                    // The right row of the joined row: the new one, or for
                    // a deleted left row the one it was joined with.
                    let joined_right = if new_row.is_some() {
                        &new_right
                    } else {
                        &old_right
                    };
                    let time = match joined_right {
                        Some(r) => enc.times[i].max(self.codecs.row_time(Side::Right, r)?),
                        None => enc.times[i],
                    };
                    let key = match new_fk.clone().or(old_fk.clone()) {
                        Some(fk) => fk,
                        None => self.codecs.null_key()?,
                    };
                    // ksqlDB writes a tombstone for every deleted left row,
                    // joined or not.
                    let tombstone = new_row.is_none().then(|| enc.rows[i].clone());
                    self.emit(
                        &mut out,
                        &key,
                        (old_row, old_right),
                        (new_row, new_right),
                        tombstone,
                        time,
                    );
                }
            }
            Side::Right => {
                for (i, op) in input.ops.iter().enumerate() {
                    if *op == Op::UpdateBefore {
                        continue;
                    }
                    let Some(rk) = &enc.keys[i] else { continue };
                    let new_right = op.is_add().then(|| enc.rows[i].clone());
                    let old_right = self.rows.get(&tagged(b'R', &[rk]))?;
                    self.rows.set(tagged(b'R', &[rk]), new_right.clone());
                    // Every left row referencing this key.
                    let mut index_prefix = vec![b'I'];
                    index_prefix.extend_from_slice(&(rk.len() as u32).to_be_bytes());
                    index_prefix.extend_from_slice(rk);
                    let refs = self.rows.scan(&index_prefix)?;
                    for (k, _) in refs {
                        let lk = &k[index_prefix.len()..];
                        let lk = lk.get(4..).unwrap_or_default();
                        let Some(stored) = self.rows.get(&tagged(b'L', &[lk]))? else {
                            continue;
                        };
                        let (_, left_row) = decode_left(&stored)?;
                        self.emit(
                            &mut out,
                            rk,
                            (Some(left_row.clone()), old_right.clone()),
                            (Some(left_row.clone()), new_right.clone()),
                            Some(left_row),
                            enc.times[i],
                        );
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

    fn join(join_type: JoinType, emit_unknown_deletes: bool, store: &StateStore) -> ForeignKeyJoin {
        let spec = fk_join_spec(join_type, emit_unknown_deletes);
        ForeignKeyJoin::try_new(&spec, store.clone(), JOIN_PREFIX.to_vec()).unwrap()
    }

    /// A left row `key` referencing `fk` (a tombstone when `v` is None).
    fn l(key: &str, fk: Option<&str>, v: Option<i64>, t: i64) -> (Side, Changes) {
        let op = if v.is_some() { INS } else { DEL };
        (Side::Left, fk_left_rows(&[(key, fk, v, t, op)]))
    }

    /// A right row (a tombstone when `w` is None).
    fn r(key: &str, w: Option<i64>, t: i64) -> (Side, Changes) {
        let op = if w.is_some() { INS } else { DEL };
        (Side::Right, right_rows(&[(Some(key), w, t, op)]))
    }

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

    // Output rows: `<op> <foreign key> l=<K>:<FK>:<V> r=<K>:<W> @<time>`.

    #[test]
    fn inner_join_follows_left_rows_and_their_right_rows() {
        let out = run(
            JoinType::Inner,
            false,
            vec![
                l("a", Some("x"), Some(1), 1),
                // A right row joins every left row referencing it, at its time.
                r("x", Some(10), 5),
                // A left change: the later of both rows' times.
                l("b", Some("x"), Some(2), 3),
                r("x", Some(11), 4),
                // An update keeping its foreign key.
                (
                    Side::Left,
                    fk_left_rows(&[
                        ("a", Some("x"), Some(1), 6, UB),
                        ("a", Some("x"), Some(3), 6, UA),
                    ]),
                ),
                r("y", Some(20), 7),
                // The foreign key moves to another right row...
                l("a", Some("y"), Some(3), 8),
                // ...and to one that does not exist.
                l("a", Some("z"), Some(3), 9),
                r("z", Some(30), 10),
                // Only b still references x.
                r("x", None, 11),
                r("y", Some(21), 12),
                // b's right row is gone: nothing to retract.
                l("b", None, None, 12),
                l("a", None, None, 13),
                // A NULL foreign key never joins.
                l("c", None, Some(4), 14),
                r("z", Some(31), 15),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&["+I x l=a:x:1 r=x:10 @5 p0"]),
                lines(&["+I x l=b:x:2 r=x:10 @5 p0"]),
                lines(&[
                    "-U x l=a:x:1 r=x:10 @4 p0",
                    "+U x l=a:x:1 r=x:11 @4 p0",
                    "-U x l=b:x:2 r=x:10 @4 p0",
                    "+U x l=b:x:2 r=x:11 @4 p0",
                ]),
                lines(&["-U x l=a:x:1 r=x:11 @6 p0", "+U x l=a:x:3 r=x:11 @6 p0"]),
                lines(&[]),
                lines(&["-U y l=a:x:3 r=x:11 @8 p0", "+U y l=a:y:3 r=y:20 @8 p0"]),
                lines(&["-D z l=a:y:3 r=y:20 @9 p0"]),
                lines(&["+I z l=a:z:3 r=z:30 @10 p0"]),
                lines(&["-D x l=b:x:2 r=x:11 @11 p0"]),
                lines(&[]),
                lines(&[]),
                lines(&["-D z l=a:z:3 r=z:30 @13 p0"]),
                lines(&[]),
                lines(&[]),
            ]
        );
    }

    #[test]
    fn left_join_keeps_left_rows_without_a_right_row() {
        let out = run(
            JoinType::Left,
            false,
            vec![
                l("a", Some("x"), Some(1), 1),
                l("c", None, Some(5), 2),
                r("x", Some(10), 5),
                l("a", Some("y"), Some(1), 6),
                // Nothing references x any more.
                r("x", None, 7),
                r("y", Some(20), 3),
                // The foreign key becomes NULL.
                l("a", None, Some(1), 8),
                r("y", Some(21), 9),
                l("a", None, None, 10),
                // Never held: nothing without emit_unknown_deletes.
                l("q", None, None, 11),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&["+I x l=a:x:1 r=null @1 p0"]),
                lines(&["+I null l=c:null:5 r=null @2 p0"]),
                lines(&["-U x l=a:x:1 r=null @5 p0", "+U x l=a:x:1 r=x:10 @5 p0"]),
                lines(&["-U y l=a:x:1 r=x:10 @6 p0", "+U y l=a:y:1 r=null @6 p0"]),
                lines(&[]),
                lines(&["-U y l=a:y:1 r=null @3 p0", "+U y l=a:y:1 r=y:20 @3 p0"]),
                // The key column holds the new foreign key, or the old one
                // when the new one is NULL.
                lines(&["-U y l=a:y:1 r=y:20 @8 p0", "+U y l=a:null:1 r=null @8 p0"]),
                lines(&[]),
                lines(&["-D null l=a:null:1 r=null @10 p0"]),
                lines(&[]),
            ]
        );
    }

    #[test]
    fn left_delete_time_is_the_later_of_both_rows() {
        let out = run(
            JoinType::Inner,
            false,
            vec![
                r("x", Some(10), 20),
                l("a", Some("x"), Some(1), 5),
                l("a", Some("x"), Some(2), 25),
                l("a", None, None, 15),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&["+I x l=a:x:1 r=x:10 @20 p0"]),
                lines(&["-U x l=a:x:1 r=x:10 @25 p0", "+U x l=a:x:2 r=x:10 @25 p0"]),
                lines(&["-D x l=a:x:2 r=x:10 @20 p0"]),
            ]
        );
    }

    fn unknown_delete_inputs() -> Vec<(Side, Changes)> {
        vec![
            // A tombstone for a left row never seen.
            l("q", None, None, 1),
            r("x", Some(10), 2),
            l("b", Some("x"), Some(1), 3),
            l("b", None, None, 4),
            // c references y, which does not exist: never joined.
            l("c", Some("y"), Some(2), 5),
            r("y", None, 6),
            l("c", None, None, 7),
        ]
    }

    #[test]
    fn inner_join_forwards_unknown_deletes_when_asked() {
        assert_eq!(
            run(JoinType::Inner, true, unknown_delete_inputs()),
            vec![
                lines(&["-D null l=q:null:null r=null @1 p0"]),
                lines(&[]),
                lines(&["+I x l=b:x:1 r=x:10 @3 p0"]),
                lines(&["-D x l=b:x:1 r=x:10 @4 p0"]),
                lines(&[]),
                lines(&["-D y l=c:y:2 r=null @6 p0"]),
                lines(&["-D y l=c:null:null r=null @7 p0"]),
            ]
        );
        assert_eq!(
            run(JoinType::Inner, false, unknown_delete_inputs()),
            vec![
                lines(&[]),
                lines(&[]),
                lines(&["+I x l=b:x:1 r=x:10 @3 p0"]),
                lines(&["-D x l=b:x:1 r=x:10 @4 p0"]),
                lines(&[]),
                lines(&[]),
                lines(&[]),
            ]
        );
    }

    #[test]
    fn left_join_forwards_unknown_deletes_when_asked() {
        assert_eq!(
            run(
                JoinType::Left,
                true,
                vec![
                    l("q", None, None, 1),
                    l("a", Some("x"), Some(1), 2),
                    l("a", None, None, 3),
                ]
            ),
            vec![
                lines(&["-D null l=q:null:null r=null @1 p0"]),
                lines(&["+I x l=a:x:1 r=null @2 p0"]),
                lines(&["-D x l=a:x:1 r=null @3 p0"]),
            ]
        );
    }

    #[test]
    fn rows_and_references_survive_a_restart() {
        let (store, _d) = store();
        let mut j = join(JoinType::Inner, false, &store);
        for (side, input) in [
            l("a", Some("x"), Some(1), 1),
            l("b", Some("x"), Some(2), 2),
            r("x", Some(10), 3),
        ] {
            j.process(side, input).unwrap();
        }
        let mut cp = StateBatch::default();
        j.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();

        let mut j = join(JoinType::Inner, false, &store);
        let (side, input) = r("x", Some(11), 4);
        assert_eq!(
            join_dump(j.process(side, input).unwrap()),
            lines(&[
                "-U x l=a:x:1 r=x:10 @4 p0",
                "+U x l=a:x:1 r=x:11 @4 p0",
                "-U x l=b:x:2 r=x:10 @4 p0",
                "+U x l=b:x:2 r=x:11 @4 p0",
            ])
        );
    }
}

//! `StreamTableJoin`: each stream record meets the table row of its key as
//! it stands when the record is processed (INNER or LEFT).
//!
//! Right input: the table's changelog. Upserts replace the stored row,
//! tombstones remove it; table changes never emit. Left input: stream rows;
//! a row without a table row is dropped (INNER) or joined with NULLs
//! (LEFT), and so is a row whose join key is NULL. Output time is the stream
//! record's.
//!
//! State: `prefix + key` → the table's current row.

use super::join_output::{EncodedInput, JoinCodecs, JoinRow, Side};
use super::JoinOperator;
use crate::error::Result;
use crate::runtime::changes::{Changes, Op};
use crate::runtime::keyed_store::KeyedStore;
use crate::runtime::plan::{JoinSpec, JoinType};
use crate::runtime::state::{StateBatch, StateStore};

pub(crate) struct StreamTableJoin {
    codecs: JoinCodecs,
    join_type: JoinType,
    table: KeyedStore,
}

impl StreamTableJoin {
    pub(crate) fn try_new(spec: &JoinSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        Ok(Self {
            codecs: JoinCodecs::try_new(spec)?,
            join_type: spec.join_type,
            table: KeyedStore::new(store, prefix),
        })
    }
}

impl JoinOperator for StreamTableJoin {
    fn codecs(&self) -> &JoinCodecs {
        &self.codecs
    }

    fn join(&mut self, side: Side, input: &Changes, enc: EncodedInput) -> Result<Vec<JoinRow>> {
        if side == Side::Right {
            for (i, op) in input.ops.iter().enumerate() {
                let Some(key) = &enc.keys[i] else { continue };
                match op {
                    Op::Insert | Op::UpdateAfter => {
                        self.table.set(key.clone(), Some(enc.rows[i].clone()))
                    }
                    Op::Delete => self.table.set(key.clone(), None),
                    Op::UpdateBefore => {}
                }
            }
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (i, op) in input.ops.iter().enumerate() {
            // A stream record without a value joins nothing.
            if !op.is_add() {
                continue;
            }
            let right = match &enc.keys[i] {
                Some(key) => self.table.get(key)?,
                None => None,
            };
            if right.is_none() && self.join_type == JoinType::Inner {
                continue;
            }
            out.push(JoinRow {
                key: match &enc.keys[i] {
                    Some(k) => k.clone(),
                    None => self.codecs.null_key()?,
                },
                left: Some(enc.rows[i].clone()),
                right,
                time: enc.times[i],
                op: Op::Insert,
            });
        }
        Ok(out)
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        self.table.checkpoint(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::testing::*;
    use crate::runtime::plan::JoinKind;

    fn join(join_type: JoinType, store: &StateStore) -> StreamTableJoin {
        let spec = join_spec(JoinKind::StreamTable, join_type);
        StreamTableJoin::try_new(&spec, store.clone(), JOIN_PREFIX.to_vec()).unwrap()
    }

    /// The same changes for INNER and LEFT; the outputs of each step.
    fn run(join_type: JoinType) -> Vec<Vec<String>> {
        let (store, _d) = store();
        let mut j = join(join_type, &store);
        let mut steps = Vec::new();
        let mut step = |side: Side, input: Changes| {
            steps.push(join_dump(j.process(side, input).unwrap()));
        };
        // 0: a stream row before the table has its key.
        step(Side::Left, left_rows(&[(Some("a"), Some(1), 1, INS)]));
        // 1: table rows never emit; the last change of a key wins.
        step(
            Side::Right,
            right_rows(&[
                (Some("a"), Some(10), 2, INS),
                (Some("b"), Some(50), 2, INS),
                (Some("a"), Some(10), 3, UB),
                (Some("a"), Some(20), 3, UA),
            ]),
        );
        // 2: stream rows see the table as it stands; output time is the
        // stream row's, even when older than the table row.
        step(
            Side::Left,
            left_rows(&[
                (Some("a"), Some(2), 2, INS),
                (Some("b"), Some(3), 9, INS),
                (Some("c"), Some(4), 9, INS),
            ]),
        );
        // 3: a table update, then a stream row sees the new value.
        step(Side::Right, right_rows(&[(Some("a"), Some(30), 10, INS)]));
        step(Side::Left, left_rows(&[(Some("a"), Some(5), 11, INS)]));
        // 5: a tombstone removes the table row.
        step(Side::Right, right_rows(&[(Some("a"), None, 12, DEL)]));
        step(Side::Left, left_rows(&[(Some("a"), Some(6), 13, INS)]));
        // 7: a stream row without a value joins nothing; a NULL key never
        // matches.
        step(
            Side::Left,
            left_rows(&[(Some("b"), None, 14, DEL), (None, Some(7), 15, INS)]),
        );
        steps
    }

    #[test]
    fn inner_join_drops_rows_without_a_table_row() {
        assert_eq!(
            run(JoinType::Inner),
            vec![
                lines(&[]),
                lines(&[]),
                lines(&["+I a l=a:2 r=a:20 @2 p0", "+I b l=b:3 r=b:50 @9 p0"]),
                lines(&[]),
                lines(&["+I a l=a:5 r=a:30 @11 p0"]),
                lines(&[]),
                lines(&[]),
                lines(&[]),
            ]
        );
    }

    #[test]
    fn left_join_fills_missing_table_rows_with_nulls() {
        assert_eq!(
            run(JoinType::Left),
            vec![
                lines(&["+I a l=a:1 r=null @1 p0"]),
                lines(&[]),
                lines(&[
                    "+I a l=a:2 r=a:20 @2 p0",
                    "+I b l=b:3 r=b:50 @9 p0",
                    "+I c l=c:4 r=null @9 p0",
                ]),
                lines(&[]),
                lines(&["+I a l=a:5 r=a:30 @11 p0"]),
                lines(&[]),
                lines(&["+I a l=a:6 r=null @13 p0"]),
                lines(&["+I null l=null:7 r=null @15 p0"]),
            ]
        );
    }

    #[test]
    fn table_survives_a_restart() {
        let (store, _d) = store();
        let mut j = join(JoinType::Inner, &store);
        j.process(
            Side::Right,
            right_rows(&[(Some("a"), Some(10), 1, INS), (Some("b"), Some(20), 1, INS)]),
        )
        .unwrap();
        let mut cp = StateBatch::default();
        j.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();
        j.process(Side::Right, right_rows(&[(Some("b"), None, 2, DEL)]))
            .unwrap();
        let mut cp = StateBatch::default();
        j.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();

        let mut j = join(JoinType::Inner, &store);
        let out = j
            .process(
                Side::Left,
                left_rows(&[(Some("a"), Some(1), 3, INS), (Some("b"), Some(2), 3, INS)]),
            )
            .unwrap();
        assert_eq!(join_dump(out), lines(&["+I a l=a:1 r=a:10 @3 p0"]));
    }
}

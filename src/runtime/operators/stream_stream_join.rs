//! `StreamStreamJoin`: two streams joined within a time window (INNER,
//! LEFT, RIGHT, FULL OUTER), with ksqlDB's (Kafka Streams') semantics.
//!
//! A left record at `t` matches right records of its key in
//! `[t - before, t + after]` (a right record at `t`: left records in
//! `[t - after, t + before]`), in either arrival order; each match is
//! emitted once, at the later of the two times (several matches in the
//! other side's time order).
//!
//! Each side keeps its records for `before + after + grace` of stream time
//! (the largest record time that side has seen); older ones are dropped and
//! no longer match. Stream time of the join is the largest time of both
//! sides.
//!
//! Unmatched records of an outer side:
//! - without `GRACE PERIOD` (ksqlDB's older behaviour) they are emitted with
//!   NULLs at once, and a later match is emitted too;
//! - with `GRACE PERIOD` they wait in an outer store until their window has
//!   closed (`t + after + grace < stream time` for a left record) and are
//!   emitted then, unless a match arrived first. A record that arrives
//!   when stream time has already passed `t + after` is emitted with NULLs
//!   at once, grace or not (Kafka Streams does the same), so a match within
//!   its grace period is emitted as well.
//!
//! State (all of it bounded by the window, kept in memory and mirrored to
//! RocksDB at checkpoint):
//! `W side time seq` → key and row; `O time side key` → waiting outer row;
//! `T` → stream times and the sequence counter.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::HashMap;

use super::join_output::{EncodedInput, JoinCodecs, JoinRow, Side};
use super::JoinOperator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{JoinSpec, JoinType, JoinWindow};
use crate::runtime::state::{decode_time, encode_time, StateBatch, StateStore};

fn idx(side: Side) -> usize {
    match side {
        Side::Left => 0,
        Side::Right => 1,
    }
}

fn side_byte(side: Side) -> u8 {
    match side {
        // Right sorts first at equal times, as Kafka Streams' outer store.
        Side::Right => 0,
        Side::Left => 1,
    }
}

/// One key's records of one side: (time, sequence) → row.
type Entries = BTreeMap<(i64, u64), Vec<u8>>;

pub(crate) struct StreamStreamJoin {
    codecs: JoinCodecs,
    join_type: JoinType,
    window: JoinWindow,
    store: StateStore,
    prefix: Vec<u8>,
    /// Largest record time of both sides.
    stream_time: i64,
    /// Largest record time each side's store has seen.
    observed: [i64; 2],
    seq: u64,
    /// Per side: key → (time, seq) → row.
    windows: [HashMap<Vec<u8>, Entries>; 2],
    /// Per side: (time, seq, key), for expiry.
    by_time: [BTreeSet<(i64, u64, Vec<u8>)>; 2],
    /// Unmatched outer records waiting for their window to close.
    outer: BTreeMap<(i64, Side, Vec<u8>), Vec<u8>>,
    /// Pending writes, by full key.
    dirty: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    late: u64,
}

impl StreamStreamJoin {
    pub(crate) fn try_new(spec: &JoinSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        let window = spec
            .window
            .ok_or_else(|| Error::internal("stream-stream join without a window"))?;
        let mut op = Self {
            codecs: JoinCodecs::try_new(spec)?,
            join_type: spec.join_type,
            window,
            store,
            prefix,
            stream_time: i64::MIN,
            observed: [i64::MIN; 2],
            seq: 0,
            windows: [HashMap::default(), HashMap::default()],
            by_time: [BTreeSet::new(), BTreeSet::new()],
            outer: BTreeMap::new(),
            dirty: BTreeMap::new(),
            late: 0,
        };
        op.restore()?;
        Ok(op)
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        for p in parts {
            k.extend_from_slice(p);
        }
        k
    }

    fn window_key(&self, side: Side, time: i64, seq: u64) -> Vec<u8> {
        self.key(&[
            b"W",
            &[side_byte(side)],
            &encode_time(time),
            &seq.to_be_bytes(),
        ])
    }

    fn outer_key(&self, time: i64, side: Side, key: &[u8]) -> Vec<u8> {
        self.key(&[b"O", &encode_time(time), &[side_byte(side)], key])
    }

    /// Load the state written by earlier checkpoints.
    fn restore(&mut self) -> Result<()> {
        let corrupt = || Error::internal("corrupt stream-stream join state");
        let p = self.prefix.len();
        if let Some(t) = self.store.get(&self.key(&[b"T"]))? {
            let at = |i: usize| decode_time(t.get(i * 8..).unwrap_or_default()).ok_or_else(corrupt);
            self.stream_time = at(0)?;
            self.observed = [at(1)?, at(2)?];
            self.seq = at(3)? as u64;
        }
        for (k, v) in self.store.scan_prefix(&self.key(&[b"W"]))? {
            let rest = k.get(p + 1..).ok_or_else(corrupt)?;
            let side = if rest.first() == Some(&0) {
                Side::Right
            } else {
                Side::Left
            };
            let time = decode_time(rest.get(1..).unwrap_or_default()).ok_or_else(corrupt)?;
            let seq = u64::from_be_bytes(
                rest.get(9..17)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(corrupt)?,
            );
            let len = u32::from_be_bytes(
                v.get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(corrupt)?,
            ) as usize;
            let key = v.get(4..4 + len).ok_or_else(corrupt)?.to_vec();
            let row = v.get(4 + len..).ok_or_else(corrupt)?.to_vec();
            self.by_time[idx(side)].insert((time, seq, key.clone()));
            self.windows[idx(side)]
                .entry(key)
                .or_default()
                .insert((time, seq), row);
        }
        for (k, v) in self.store.scan_prefix(&self.key(&[b"O"]))? {
            let rest = k.get(p + 1..).ok_or_else(corrupt)?;
            let time = decode_time(rest).ok_or_else(corrupt)?;
            let side = if rest.get(8) == Some(&0) {
                Side::Right
            } else {
                Side::Left
            };
            let key = rest.get(9..).ok_or_else(corrupt)?.to_vec();
            self.outer.insert((time, side, key), v);
        }
        Ok(())
    }

    /// (before, after) as seen from `side`.
    fn bounds(&self, side: Side) -> (i64, i64) {
        match side {
            Side::Left => (self.window.before, self.window.after),
            Side::Right => (self.window.after, self.window.before),
        }
    }

    fn outer_side(&self, side: Side) -> bool {
        match side {
            Side::Left => self.join_type.left_outer(),
            Side::Right => self.join_type.right_outer(),
        }
    }

    /// The oldest time a side's store still holds.
    fn live_from(&self, side: Side) -> i64 {
        self.observed[idx(side)]
            .saturating_sub(self.window.retention())
            .saturating_add(1)
    }

    fn put(&mut self, side: Side, key: &[u8], time: i64, row: &[u8]) {
        let i = idx(side);
        self.observed[i] = self.observed[i].max(time);
        if time < self.live_from(side) {
            // Too late for the store: it can no longer be matched.
            self.late += 1;
        } else {
            self.seq += 1;
            let seq = self.seq;
            let mut value = (key.len() as u32).to_be_bytes().to_vec();
            value.extend_from_slice(key);
            value.extend_from_slice(row);
            self.dirty
                .insert(self.window_key(side, time, seq), Some(value));
            self.by_time[i].insert((time, seq, key.to_vec()));
            self.windows[i]
                .entry(key.to_vec())
                .or_default()
                .insert((time, seq), row.to_vec());
        }
        // Expire what fell out of the store.
        let from = self.live_from(side);
        while let Some(first) = self.by_time[i].first().cloned() {
            if first.0 >= from {
                break;
            }
            self.by_time[i].pop_first();
            let (t, s, k) = first;
            self.dirty.insert(self.window_key(side, t, s), None);
            if let Some(entries) = self.windows[i].get_mut(&k) {
                entries.remove(&(t, s));
                if entries.is_empty() {
                    self.windows[i].remove(&k);
                }
            }
        }
    }

    fn pair(
        side: Side,
        this: Option<Vec<u8>>,
        other: Option<Vec<u8>>,
    ) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        match side {
            Side::Left => (this, other),
            Side::Right => (other, this),
        }
    }

    /// Emit waiting outer records whose window has closed, oldest first.
    fn emit_closed(&mut self, out: &mut Vec<JoinRow>) {
        let grace = self.window.grace_ms();
        let mut open = [false, false];
        let mut closed = Vec::new();
        for (k, _) in self.outer.iter() {
            let (time, side, _) = k;
            let lookback = match side {
                Side::Left => self.window.after,
                Side::Right => self.window.before,
            };
            if time.saturating_add(lookback).saturating_add(grace) >= self.stream_time {
                open[idx(*side)] = true;
                if open[0] && open[1] {
                    break;
                }
                continue;
            }
            closed.push(k.clone());
        }
        for k in closed {
            if let Some(row) = self.outer.remove(&k) {
                let (time, side, key) = k;
                self.dirty.insert(self.outer_key(time, side, &key), None);
                let (left, right) = Self::pair(side, Some(row), None);
                out.push(JoinRow {
                    key,
                    left,
                    right,
                    time,
                    op: Op::Insert,
                });
            }
        }
    }
}

impl JoinOperator for StreamStreamJoin {
    fn codecs(&self) -> &JoinCodecs {
        &self.codecs
    }

    fn join(&mut self, side: Side, input: &Changes, enc: EncodedInput) -> Result<Vec<JoinRow>> {
        let other = side.other();
        let waits = self.window.grace.is_some();
        let mut out = Vec::new();
        for (i, op) in input.ops.iter().enumerate() {
            // A record without a value joins nothing.
            if !op.is_add() {
                continue;
            }
            let t = enc.times[i];
            let row = &enc.rows[i];
            let Some(key) = enc.keys[i].clone() else {
                // A NULL key never matches; an outer side still emits it.
                if self.outer_side(side) {
                    let (left, right) = Self::pair(side, Some(row.clone()), None);
                    out.push(JoinRow {
                        key: self.codecs.null_key()?,
                        left,
                        right,
                        time: t,
                        op: Op::Insert,
                    });
                }
                continue;
            };
            self.put(side, &key, t, row);
            self.stream_time = self.stream_time.max(t);
            if waits && t == self.stream_time {
                self.emit_closed(&mut out);
            }
            let (before, after) = self.bounds(side);
            let from = t.saturating_sub(before).max(0).max(self.live_from(other));
            let to = t.saturating_add(after).max(0);
            let matches: Vec<((i64, u64), Vec<u8>)> = match self.windows[idx(other)].get(&key) {
                Some(entries) if from <= to => entries
                    .range((from, 0)..=(to, u64::MAX))
                    .map(|(k, v)| (*k, v.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            for ((other_time, _), other_row) in &matches {
                if self
                    .outer
                    .remove(&(*other_time, other, key.clone()))
                    .is_some()
                {
                    self.dirty
                        .insert(self.outer_key(*other_time, other, &key), None);
                }
                let (left, right) = Self::pair(side, Some(row.clone()), Some(other_row.clone()));
                out.push(JoinRow {
                    key: key.clone(),
                    left,
                    right,
                    time: t.max(*other_time),
                    op: Op::Insert,
                });
            }
            if matches.is_empty() && self.outer_side(side) {
                if !waits || to < self.stream_time {
                    let (left, right) = Self::pair(side, Some(row.clone()), None);
                    out.push(JoinRow {
                        key,
                        left,
                        right,
                        time: t,
                        op: Op::Insert,
                    });
                } else {
                    self.dirty
                        .insert(self.outer_key(t, side, &key), Some(row.clone()));
                    self.outer.insert((t, side, key), row.clone());
                }
            }
        }
        Ok(out)
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        for (k, v) in std::mem::take(&mut self.dirty) {
            match v {
                Some(v) => batch.put(&k, &v),
                None => batch.delete(&k),
            }
        }
        let mut t = encode_time(self.stream_time).to_vec();
        t.extend_from_slice(&encode_time(self.observed[0]));
        t.extend_from_slice(&encode_time(self.observed[1]));
        t.extend_from_slice(&encode_time(self.seq as i64));
        batch.put(&self.key(&[b"T"]), &t);
        Ok(())
    }

    fn late_records(&self) -> u64 {
        self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::testing::*;

    fn join(spec: &JoinSpec, store: &StateStore) -> StreamStreamJoin {
        StreamStreamJoin::try_new(spec, store.clone(), JOIN_PREFIX.to_vec()).unwrap()
    }

    fn l(key: &str, v: i64, t: i64) -> (Side, Changes) {
        (Side::Left, left_rows(&[(Some(key), Some(v), t, INS)]))
    }

    fn r(key: &str, w: i64, t: i64) -> (Side, Changes) {
        (Side::Right, right_rows(&[(Some(key), Some(w), t, INS)]))
    }

    /// Feed `inputs` one batch at a time; the output of each.
    fn feed(j: &mut StreamStreamJoin, inputs: Vec<(Side, Changes)>) -> Vec<Vec<String>> {
        inputs
            .into_iter()
            .map(|(side, input)| join_dump(j.process(side, input).unwrap()))
            .collect()
    }

    fn run(spec: JoinSpec, inputs: Vec<(Side, Changes)>) -> Vec<Vec<String>> {
        let (store, _d) = store();
        feed(&mut join(&spec, &store), inputs)
    }

    fn checkpoint(j: &mut StreamStreamJoin, store: &StateStore) {
        let mut cp = StateBatch::default();
        j.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();
    }

    #[test]
    fn inner_join_matches_within_the_window_in_either_order() {
        let spec = stream_join_spec(JoinType::Inner, 10, 10, None);
        let out = run(
            spec,
            vec![
                l("a", 1, 100),
                // Right records matching left@100 are in [90, 110].
                r("a", 10, 105),
                r("a", 20, 85),
                r("a", 30, 90),
                // Out of order on the left: right records in [70, 90].
                l("a", 2, 80),
                l("b", 3, 100),
                r("a", 40, 111),
                r("a", 50, 110),
                // No value, or a NULL key: nothing.
                (
                    Side::Left,
                    left_rows(&[(None, Some(4), 100, INS), (Some("a"), None, 100, DEL)]),
                ),
                // Several matches come out in the other side's time order.
                l("a", 6, 100),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&["+I a l=a:1 r=a:10 @105 p0"]),
                lines(&[]),
                lines(&["+I a l=a:1 r=a:30 @100 p0"]),
                lines(&["+I a l=a:2 r=a:20 @85 p0", "+I a l=a:2 r=a:30 @90 p0"]),
                lines(&[]),
                lines(&[]),
                lines(&["+I a l=a:1 r=a:50 @110 p0"]),
                lines(&[]),
                lines(&[
                    "+I a l=a:6 r=a:30 @100 p0",
                    "+I a l=a:6 r=a:10 @105 p0",
                    "+I a l=a:6 r=a:50 @110 p0",
                ]),
            ]
        );
    }

    #[test]
    fn asymmetric_window_bounds() {
        // Left@t matches right in [t - 5, t + 20]; right@t left in [t - 20, t + 5].
        let spec = stream_join_spec(JoinType::Inner, 5, 20, None);
        let out = run(
            spec,
            vec![
                l("a", 1, 100),
                r("a", 10, 94),
                r("a", 11, 95),
                r("a", 12, 120),
                r("a", 13, 121),
                l("a", 2, 110),
                l("a", 3, 90),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&[]),
                lines(&["+I a l=a:1 r=a:11 @100 p0"]),
                lines(&["+I a l=a:1 r=a:12 @120 p0"]),
                lines(&[]),
                lines(&["+I a l=a:2 r=a:12 @120 p0", "+I a l=a:2 r=a:13 @121 p0"]),
                lines(&["+I a l=a:3 r=a:10 @94 p0", "+I a l=a:3 r=a:11 @95 p0"]),
            ]
        );
    }

    #[test]
    fn left_join_without_grace_emits_unmatched_rows_at_once() {
        let spec = stream_join_spec(JoinType::Left, 10, 10, None);
        let out = run(
            spec,
            vec![
                l("a", 1, 100),
                // A later match is emitted too.
                r("a", 10, 105),
                r("b", 20, 105),
                (Side::Left, left_rows(&[(None, Some(2), 106, INS)])),
                l("c", 3, 50),
                l("b", 4, 200),
                l("b", 5, 110),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&["+I a l=a:1 r=null @100 p0"]),
                lines(&["+I a l=a:1 r=a:10 @105 p0"]),
                lines(&[]),
                lines(&["+I null l=null:2 r=null @106 p0"]),
                lines(&["+I c l=c:3 r=null @50 p0"]),
                lines(&["+I b l=b:4 r=null @200 p0"]),
                lines(&["+I b l=b:5 r=b:20 @110 p0"]),
            ]
        );
    }

    #[test]
    fn full_join_without_grace_emits_both_sides_at_once() {
        let spec = stream_join_spec(JoinType::Full, 10, 10, None);
        let out = run(
            spec,
            vec![
                r("z", 5, 1),
                (Side::Right, right_rows(&[(None, Some(6), 2, INS)])),
                l("z", 1, 3),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&["+I z l=null r=z:5 @1 p1"]),
                lines(&["+I null l=null r=null:6 @2 p1"]),
                lines(&["+I z l=z:1 r=z:5 @3 p0"]),
            ]
        );
    }

    #[test]
    fn left_join_with_grace_waits_for_the_window_to_close() {
        // A left record at t closes once stream time passes t + 10 + 5.
        let spec = stream_join_spec(JoinType::Left, 10, 10, Some(5));
        let out = run(
            spec,
            vec![
                l("a", 1, 100),
                l("b", 2, 102),
                // A match cancels a's wait.
                r("a", 10, 108),
                // Stream time 115: b (closes after 117) still waits.
                r("c", 30, 115),
                // Closed on arrival (90 + 15 < 115): emitted at once.
                l("d", 4, 90),
                // Stream time 118 closes b; a was matched.
                r("c", 31, 118),
                r("x", 0, 200),
                (Side::Left, left_rows(&[(None, Some(5), 200, INS)])),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&[]),
                lines(&["+I a l=a:1 r=a:10 @108 p0"]),
                lines(&[]),
                lines(&["+I d l=d:4 r=null @90 p0"]),
                lines(&["+I b l=b:2 r=null @102 p0"]),
                lines(&[]),
                lines(&["+I null l=null:5 r=null @200 p0"]),
            ]
        );
    }

    #[test]
    fn full_join_with_grace_closes_each_side_after_its_own_bound() {
        // Left@t closes after t + after (2) + grace (5), right@t after
        // t + before (10) + grace.
        let spec = stream_join_spec(JoinType::Full, 10, 2, Some(5));
        let out = run(
            spec,
            vec![
                l("a", 1, 100),
                r("b", 10, 100),
                r("x", 0, 108),
                l("y", 0, 116),
                // Matches cancel the waits of x and y.
                l("x", 1, 110),
                r("y", 2, 118),
                l("m", 0, 120),
                r("n", 0, 121),
                // Closes m and n, oldest first.
                l("z", 0, 200),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&[]),
                lines(&["+I a l=a:1 r=null @100 p0"]),
                lines(&["+I b l=null r=b:10 @100 p1"]),
                lines(&["+I x l=x:1 r=x:0 @110 p0"]),
                lines(&["+I y l=y:0 r=y:2 @118 p0"]),
                lines(&[]),
                lines(&[]),
                lines(&["+I m l=m:0 r=null @120 p0", "+I n l=null r=n:0 @121 p1"]),
            ]
        );
    }

    #[test]
    fn records_older_than_retention_no_longer_match() {
        // Each side keeps 10 + 10 + 5 of its own largest time.
        let spec = stream_join_spec(JoinType::Inner, 10, 10, Some(5));
        let (store, _d) = store();
        let mut j = join(&spec, &store);
        let out = feed(
            &mut j,
            vec![
                r("a", 10, 100),
                // Right time 130: a@100 expires.
                r("b", 11, 130),
                l("a", 1, 105),
                l("b", 2, 125),
                // Too old for the left store (left time 125).
                l("a", 3, 70),
                // Too old for the right store (right time 130).
                r("c", 0, 100),
                l("c", 4, 101),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&[]),
                lines(&[]),
                lines(&["+I b l=b:2 r=b:11 @130 p0"]),
                lines(&[]),
                lines(&[]),
                lines(&[]),
            ]
        );
        assert_eq!(j.late_records(), 2);
    }

    #[test]
    fn without_grace_records_are_kept_a_day() {
        let day = 86_400_000;
        let spec = stream_join_spec(JoinType::Inner, 10, 10, None);
        let out = run(
            spec,
            vec![
                r("a", 10, 1_000),
                r("b", 11, 1_000 + day),
                l("a", 1, 1_005),
                // Now a@1000 is older than a day + 20ms.
                r("c", 12, 1_000 + day + 100),
                l("a", 2, 1_005),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&[]),
                lines(&[]),
                lines(&["+I a l=a:1 r=a:10 @1005 p0"]),
                lines(&[]),
                lines(&[]),
            ]
        );
    }

    #[test]
    fn windows_and_waiting_rows_survive_a_restart() {
        let spec = stream_join_spec(JoinType::Left, 10, 10, Some(5));
        let (store, _d) = store();
        let mut j = join(&spec, &store);
        let out = feed(&mut j, vec![l("a", 1, 100), l("b", 2, 101)]);
        assert_eq!(out, vec![lines(&[]), lines(&[])]);
        checkpoint(&mut j, &store);

        let mut j = join(&spec, &store);
        let out = feed(
            &mut j,
            vec![
                // Stream time 101 was restored: 80 + 15 < 101, closed.
                l("c", 3, 80),
                // The restored left record still matches...
                r("a", 10, 105),
                // ...and the restored waiting record is emitted at close.
                r("z", 0, 117),
            ],
        );
        assert_eq!(
            out,
            vec![
                lines(&["+I c l=c:3 r=null @80 p0"]),
                lines(&["+I a l=a:1 r=a:10 @105 p0"]),
                lines(&["+I b l=b:2 r=null @101 p0"]),
            ]
        );
        checkpoint(&mut j, &store);

        // The cancelled and the emitted waits are gone for good.
        let mut j = join(&spec, &store);
        let out = feed(&mut j, vec![l("z", 5, 120), r("y", 0, 300)]);
        assert_eq!(out, vec![lines(&["+I z l=z:5 r=z:0 @120 p0"]), lines(&[])]);
    }
}

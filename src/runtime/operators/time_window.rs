//! `TimeWindow`: tumbling and hopping windowed aggregation.
//!
//! Semantics (Kafka Streams / ksqlDB): a record at time `t` belongs to every
//! window `[s, s + size)` with `s` a non-negative multiple of the advance
//! (the size, for tumbling) and `s <= t < s + size`. Stream time is the
//! largest record time seen, updated by each record before it is placed. A
//! window is closed once `end + grace <= stream time`; a record for a closed
//! window is dropped and counted as late. Each accepted (record, window)
//! emits the window's new result (Insert for a new window, UpdateBefore and
//! UpdateAfter after), windows in ascending start order. The output row time
//! is the largest record time in the window.
//!
//! A batch resolves each (window, group) it touches to its slot in the
//! window table once; rows then update the slot in order, reading each
//! result from the window's running state.
//!
//! State: `prefix + start (8 bytes, ordered) + group key` → `max rowtime +
//! accumulator state`; `prefix + 0xff` holds stream time (written when it
//! moved). Windows whose end is older than stream time minus the retention
//! (default size + grace) are deleted with one range delete, written only
//! at a checkpoint where that cutoff has passed a window start since the
//! last one (windows start at multiples of the advance), and dropped from
//! memory through an index of the cached windows by start.

use std::collections::BTreeMap;

use datafusion::common::HashMap;

use super::accumulators::{i64_column, AccumulatorSet};
use super::aggregate::{load_group, prepare, time_at, write_dirty, Emitted, GROUP_CACHE_LIMIT};
use super::group_table::{Group, GroupTable};
use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{AggregateSpec, WindowAssign};
use crate::runtime::rows::RowCodec;
use crate::runtime::state::{decode_time, encode_time, StateBatch, StateStore};

pub(crate) struct TimeWindow {
    spec: AggregateSpec,
    size: i64,
    advance: i64,
    grace: i64,
    retention: i64,
    accs: AccumulatorSet,
    store: StateStore,
    prefix: Vec<u8>,
    group_codec: Option<RowCodec>,
    windows: GroupTable,
    /// Window start → slots of cached windows with that start (a slot may
    /// since hold another window: checked on expiry).
    by_start: BTreeMap<i64, Vec<u32>>,
    stream_time: Option<i64>,
    /// Stream time as last written to the store.
    stored_stream_time: Option<i64>,
    /// Every window starting before this is deleted from the store (by a
    /// range delete of this operator's lifetime); None: none issued yet.
    expired_to: Option<i64>,
    late: u64,
}

/// The window starts of a record time, ascending (see [`TimeWindow`]).
/// Saturating: a record time near `i64::MAX` has its windows too (the last
/// ending at `i64::MAX`), never an overflow.
struct Starts {
    next: Option<i64>,
    t: i64,
    size: i64,
    advance: i64,
}

impl Starts {
    fn new(t: i64, size: i64, advance: i64) -> Self {
        let first = t.saturating_sub(size).saturating_add(advance).max(0);
        Self {
            next: Some(first.div_euclid(advance) * advance),
            t,
            size,
            advance,
        }
    }
}

impl Iterator for Starts {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        loop {
            let s = self.next.filter(|&s| s <= self.t)?;
            self.next = s.checked_add(self.advance);
            if s.saturating_add(self.size) > self.t {
                return Some(s);
            }
        }
    }
}

impl TimeWindow {
    pub(crate) fn try_new(spec: AggregateSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        let w = spec
            .window
            .clone()
            .ok_or_else(|| Error::internal("TimeWindow without a window"))?;
        let (size, advance) = match w.assign {
            WindowAssign::Tumbling { size } => (size, size),
            WindowAssign::Hopping { size, advance } => (size, advance),
            WindowAssign::Session { .. } => {
                return Err(Error::internal("TimeWindow given a session window"))
            }
        };
        if size <= 0 || advance <= 0 {
            return Err(Error::semantic("Window size and advance must be positive"));
        }
        let retention = w.retention.unwrap_or(size + w.grace).max(size + w.grace);
        let accs = AccumulatorSet::try_new(spec.aggregates.clone())?;
        let stream_time = store
            .get(&stream_key(&prefix))?
            .and_then(|b| decode_time(&b));
        // The checkpoint that wrote stream time deleted what had expired.
        let expired_to = stream_time.map(|st| st.saturating_sub(retention).saturating_sub(size));
        Ok(Self {
            spec,
            size,
            advance,
            grace: w.grace,
            retention,
            accs,
            store,
            prefix,
            group_codec: None,
            windows: GroupTable::new(GROUP_CACHE_LIMIT),
            by_start: BTreeMap::new(),
            stream_time,
            stored_stream_time: stream_time,
            expired_to,
            late: 0,
        })
    }

    /// True if a window start `s` (a non-negative multiple of the advance)
    /// lies in `[expired_to, cutoff)`: a stored window may have expired
    /// since the last range delete.
    fn cutoff_passed_a_start(&self, cutoff: i64) -> bool {
        let from = self.expired_to.unwrap_or(0).max(0);
        let first = from.div_euclid(self.advance) * self.advance;
        let first = if first < from {
            first.saturating_add(self.advance)
        } else {
            first
        };
        first < cutoff
    }

    /// Drop cached windows starting before `cutoff`.
    fn expire_cached(&mut self, cutoff: i64) {
        while let Some(entry) = self.by_start.first_entry() {
            let start = *entry.key();
            if start >= cutoff {
                break;
            }
            for slot in entry.remove() {
                let same = self
                    .windows
                    .get(slot)
                    .is_some_and(|(k, _)| decode_time(k) == Some(start));
                if same {
                    self.windows.remove(slot);
                }
            }
        }
    }
}

fn stream_key(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.push(0xff);
    k
}

impl Operator for TimeWindow {
    fn display(&self) -> String {
        self.spec.display.clone()
    }

    fn late_records(&self) -> u64 {
        self.late
    }

    fn process(&mut self, input: Changes) -> Result<Vec<Changes>> {
        if input.is_empty() {
            return Ok(vec![]);
        }
        let p = prepare(&self.spec, &mut self.group_codec, &self.accs, &input.batch)?;
        let times = i64_column(p.rowtime.as_ref())?;
        self.windows.next_batch();
        // This batch's windows: (start, encoded group key) → slot.
        let mut local: HashMap<(i64, &[u8]), u32> = HashMap::default();
        let mut key = Vec::new();
        let mut out = Emitted::new(&self.accs);
        for i in 0..input.len() {
            if !input.ops[i].is_add() || p.has_null(i) {
                continue; // windowed aggregations read streams only
            }
            let ts = time_at(times, i);
            let st = self.stream_time.map_or(ts, |s| s.max(ts));
            self.stream_time = Some(st);
            let group_key = p.keys.row(i).data();
            for start in Starts::new(ts, self.size, self.advance) {
                let end = start.saturating_add(self.size);
                if end.saturating_add(self.grace) <= st {
                    self.late += 1;
                    tracing::debug!(start, end, ts, stream_time = st, "dropping late record");
                    continue;
                }
                let (slot, existed) = match local.get(&(start, group_key)) {
                    Some(&slot) => (slot, true),
                    None => {
                        key.clear();
                        key.extend_from_slice(&encode_time(start));
                        key.extend_from_slice(group_key);
                        let found = match self.windows.find(&key) {
                            Some(slot) => Some(slot),
                            None => {
                                let loaded = load_group(
                                    &self.store,
                                    &self.prefix,
                                    &self.accs,
                                    &mut self.windows,
                                    &key,
                                )?;
                                if let Some(slot) = loaded {
                                    self.by_start.entry(start).or_default().push(slot);
                                }
                                loaded
                            }
                        };
                        let slot = match found {
                            Some(slot) => (slot, true),
                            None => {
                                let accs = self.accs.create()?;
                                let slot = self.windows.insert(
                                    key.clone(),
                                    Group {
                                        accs,
                                        max_ts: i64::MIN,
                                    },
                                );
                                self.by_start.entry(start).or_default().push(slot);
                                (slot, false)
                            }
                        };
                        local.insert((start, group_key), slot.0);
                        slot
                    }
                };
                let w = self
                    .windows
                    .touch(slot)
                    .ok_or_else(|| Error::internal("window vanished"))?;
                if existed {
                    self.accs.evaluate_into(&mut w.accs, &mut out.results)?;
                    out.times.push(w.max_ts);
                    out.rows.push(i as u32);
                    out.ops.push(Op::UpdateBefore);
                    out.starts.push(start);
                    out.ends.push(end);
                }
                self.accs.apply(&mut w.accs, &p.args, i, false)?;
                w.max_ts = w.max_ts.max(ts);
                self.accs.evaluate_into(&mut w.accs, &mut out.results)?;
                out.times.push(w.max_ts);
                out.rows.push(i as u32);
                out.ops
                    .push(if existed { Op::UpdateAfter } else { Op::Insert });
                out.starts.push(start);
                out.ends.push(end);
            }
        }
        out.build(&self.spec, &p.groups, true)
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        if let Some(st) = self.stream_time {
            // Windows starting before the cutoff have ended before stream
            // time - retention: gone from memory, and from the store with a
            // range delete when the cutoff passed a window start since the
            // last one (a window of the dirty ones among them is not written).
            let cutoff = st.saturating_sub(self.retention).saturating_sub(self.size);
            self.expire_cached(cutoff);
            write_dirty(&mut self.windows, &self.accs, &self.prefix, batch)?;
            if self.stored_stream_time != Some(st) {
                batch.put(&stream_key(&self.prefix), &encode_time(st));
                self.stored_stream_time = Some(st);
            }
            if self.cutoff_passed_a_start(cutoff) {
                let mut from = self.prefix.clone();
                from.extend_from_slice(&encode_time(i64::MIN));
                let mut to = self.prefix.clone();
                to.extend_from_slice(&encode_time(cutoff));
                batch.delete_range(&from, &to);
                self.expired_to = Some(cutoff);
            }
        } else {
            write_dirty(&mut self.windows, &self.accs, &self.prefix, batch)?;
        }
        self.windows.evict();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::testing::*;
    use crate::runtime::plan::WindowConfig;

    fn window(assign: WindowAssign, grace: i64) -> WindowConfig {
        WindowConfig {
            assign,
            grace,
            retention: None,
            emit_final: false,
        }
    }

    #[test]
    fn tumbling_windows_drop_late_records() {
        let (store, _d) = store();
        let spec = count_sum_spec(Some(window(WindowAssign::Tumbling { size: 10 }, 5)));
        let mut w = TimeWindow::try_new(spec, store, b"s/q/0/".to_vec()).unwrap();
        // 3 -> [0,10); 12 -> [10,20); 8 still in grace (stream time 12 < 10+5);
        // 30 moves stream time to 30; 9 is late ([0,10) closed at 15).
        let out = w
            .process(inserts(&[
                ("a", Some(1), 3),
                ("a", Some(2), 12),
                ("a", Some(4), 8),
                ("a", Some(8), 30),
                ("a", Some(16), 9),
            ]))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["a", "0", "10", "1", "1", "3"], Op::Insert),
                row(&["a", "10", "20", "1", "2", "12"], Op::Insert),
                row(&["a", "0", "10", "1", "1", "3"], Op::UpdateBefore),
                row(&["a", "0", "10", "2", "5", "8"], Op::UpdateAfter),
                row(&["a", "30", "40", "1", "8", "30"], Op::Insert),
            ]
        );
        assert_eq!(w.late_records(), 1);
    }

    #[test]
    fn hopping_windows_place_a_record_in_each_window() {
        let (store, _d) = store();
        let spec = count_sum_spec(Some(window(
            WindowAssign::Hopping {
                size: 10,
                advance: 5,
            },
            100,
        )));
        let mut w = TimeWindow::try_new(spec, store.clone(), b"s/q/0/".to_vec()).unwrap();
        let out = w
            .process(inserts(&[("k", Some(1), 7), ("k", Some(2), 12)]))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["k", "0", "10", "1", "1", "7"], Op::Insert),
                row(&["k", "5", "15", "1", "1", "7"], Op::Insert),
                row(&["k", "5", "15", "1", "1", "7"], Op::UpdateBefore),
                row(&["k", "5", "15", "2", "3", "12"], Op::UpdateAfter),
                row(&["k", "10", "20", "1", "2", "12"], Op::Insert),
            ]
        );
        // State and stream time survive a restart.
        let mut cp = StateBatch::default();
        w.checkpoint(&mut cp).unwrap();
        store.commit(cp).unwrap();
        let spec = count_sum_spec(Some(window(
            WindowAssign::Hopping {
                size: 10,
                advance: 5,
            },
            100,
        )));
        let mut w = TimeWindow::try_new(spec, store, b"s/q/0/".to_vec()).unwrap();
        let out = w.process(inserts(&[("k", Some(3), 14)])).unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["k", "5", "15", "2", "3", "12"], Op::UpdateBefore),
                row(&["k", "5", "15", "3", "6", "14"], Op::UpdateAfter),
                row(&["k", "10", "20", "1", "2", "12"], Op::UpdateBefore),
                row(&["k", "10", "20", "2", "5", "14"], Op::UpdateAfter),
            ]
        );
    }

    fn run_in_chunks(
        spec: &AggregateSpec,
        rows: &[(Option<String>, Option<i64>, i64)],
        chunks: &[usize],
        inline: bool,
        cache: usize,
    ) -> (Vec<(Vec<String>, Op)>, u64) {
        let (store, _d) = store();
        let build = || {
            let mut w =
                TimeWindow::try_new(spec.clone(), store.clone(), b"s/q/0/".to_vec()).unwrap();
            if !inline {
                w.accs = AccumulatorSet::accumulators_only(spec.aggregates.clone()).unwrap();
            }
            w.windows = GroupTable::new(cache);
            w
        };
        let mut w = build();
        let (mut out, mut late) = (Vec::new(), 0);
        let (mut at, mut n) = (0, 0);
        while at < rows.len() {
            let len = chunks[n % chunks.len()].min(rows.len() - at);
            let ops = vec![Op::Insert; len];
            out.extend(dump(
                &w.process(batch_of(&rows[at..at + len], &ops)).unwrap(),
            ));
            let mut cp = StateBatch::default();
            w.checkpoint(&mut cp).unwrap();
            store.commit(cp).unwrap();
            at += len;
            n += 1;
            if n % 3 == 0 {
                late += w.late_records();
                w = build();
            }
        }
        (out, late + w.late_records())
    }

    #[test]
    fn batches_emit_what_single_rows_emit_through_accumulators() {
        let hopping = WindowAssign::Hopping {
            size: 20,
            advance: 5,
        };
        for (seed, assign, grace) in [
            (5, hopping, 10),
            (6, WindowAssign::Tumbling { size: 15 }, 0),
        ] {
            let spec = mixed_spec(Some(window(assign, grace)), false);
            let rows = random_rows(seed, 400);
            let (expected, late) = run_in_chunks(&spec, &rows, &[1], false, 100_000);
            assert!(late > 0 && expected.len() > rows.len());
            for (chunks, cache) in [(vec![400], 100_000), (vec![7, 1, 33, 2], 4)] {
                let got = run_in_chunks(&spec, &rows, &chunks, true, cache);
                assert_eq!(
                    got,
                    (expected.clone(), late),
                    "seed {seed}, chunks {chunks:?}"
                );
            }
        }
    }

    #[test]
    fn expired_windows_are_range_deleted_only_when_the_cutoff_passes_a_start() {
        let (store, _d) = store();
        // Size 10, grace 5: retention 15; windows start before stream time
        // - 25 have expired.
        let spec = count_sum_spec(Some(window(WindowAssign::Tumbling { size: 10 }, 5)));
        let mut w = TimeWindow::try_new(spec.clone(), store.clone(), b"s/q/0/".to_vec()).unwrap();
        let checkpoint = |w: &mut TimeWindow| {
            let mut cp = StateBatch::default();
            w.checkpoint(&mut cp).unwrap();
            let out = (cp.len(), cp.range_deletes().to_vec());
            store.commit(cp).unwrap();
            out
        };
        // Cutoff 0 - 25 < 0: nothing can have expired.
        w.process(inserts(&[("a", Some(1), 3)])).unwrap();
        assert_eq!(checkpoint(&mut w), (2, vec![])); // the window, stream time
                                                     // Cutoff 30 - 25 = 5 passes the window start 0.
        w.process(inserts(&[("a", Some(1), 30)])).unwrap();
        let to: Vec<u8> = [b"s/q/0/".as_slice(), &encode_time(5)].concat();
        let from: Vec<u8> = [b"s/q/0/".as_slice(), &encode_time(i64::MIN)].concat();
        assert_eq!(checkpoint(&mut w), (3, vec![(from.clone(), to)]));
        assert_eq!(w.windows.len(), 1, "the expired window left memory");
        // Cutoff 9: no window starts in [5, 9): no range delete; stream time
        // moved, so it is written with the window.
        w.process(inserts(&[("a", Some(1), 34)])).unwrap();
        assert_eq!(checkpoint(&mut w), (2, vec![]));
        // Nothing new: nothing written.
        assert_eq!(checkpoint(&mut w), (0, vec![]));
        // Cutoff 11 passes the start 10.
        w.process(inserts(&[("b", Some(1), 36)])).unwrap();
        let to: Vec<u8> = [b"s/q/0/".as_slice(), &encode_time(11)].concat();
        assert_eq!(checkpoint(&mut w), (3, vec![(from, to)]));
        // A restart does not delete again until the cutoff passes a start.
        let mut w = TimeWindow::try_new(spec, store.clone(), b"s/q/0/".to_vec()).unwrap();
        w.process(inserts(&[("b", Some(1), 37)])).unwrap();
        assert_eq!(checkpoint(&mut w), (2, vec![]));
        assert_eq!(
            store.scan_prefix(b"s/q/0/").unwrap().len(),
            3,
            "windows 30 of a and b, and stream time"
        );
    }
}

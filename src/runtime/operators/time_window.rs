//! `TimeWindow`: tumbling and hopping windowed aggregation.
//!
//! Semantics (Kafka Streams / ksqlDB): a record at time `t` belongs to every
//! window `[s, s + size)` with `s` a non-negative multiple of the advance
//! (the size, for tumbling) and `s <= t < s + size`. Stream time is the
//! largest record time seen, updated by each record before it is placed. A
//! window is closed once `end + grace <= stream time`; a record for a closed
//! window is dropped and counted as late. Each accepted (record, window)
//! emits the window's new result (Insert for a new window, UpdateAfter
//! after), windows in ascending start order. The output row time is the
//! largest record time in the window.
//!
//! State: `prefix + start (8 bytes, ordered) + group key` → `max rowtime +
//! accumulator state`; `prefix + 0xff` holds stream time. Windows whose end
//! is older than stream time minus the retention (default size + grace) are
//! deleted at checkpoint with one range delete.

use std::collections::{HashMap, HashSet};

use super::accumulators::{i64_at, AccumulatorSet};
use super::aggregate::{build_output, load_group, prepare, Group, Prepared, GROUP_CACHE_LIMIT};
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
    windows: HashMap<Vec<u8>, Group>,
    dirty: HashSet<Vec<u8>>,
    stream_time: Option<i64>,
    late: u64,
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
        let mut stream_key = prefix.clone();
        stream_key.push(0xff);
        let stream_time = store.get(&stream_key)?.and_then(|b| decode_time(&b));
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
            windows: HashMap::new(),
            dirty: HashSet::new(),
            stream_time,
            late: 0,
        })
    }

    /// Window starts for a record time, ascending.
    /// Saturating: a record time near `i64::MAX` has its windows too (the
    /// last ending at `i64::MAX`), never an overflow.
    fn starts(&self, t: i64) -> Vec<i64> {
        let first = t
            .saturating_sub(self.size)
            .saturating_add(self.advance)
            .max(0);
        let mut s = first.div_euclid(self.advance) * self.advance;
        let mut out = Vec::new();
        while s <= t {
            if s.saturating_add(self.size) > t {
                out.push(s);
            }
            match s.checked_add(self.advance) {
                Some(next) => s = next,
                None => break,
            }
        }
        out
    }

    fn load(&mut self, key: &[u8]) -> Result<bool> {
        load_group(
            &self.store,
            &self.prefix,
            &self.accs,
            &mut self.windows,
            key,
        )
    }
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
        let Prepared {
            groups,
            keys,
            args,
            rowtime,
        } = prepare(&self.spec, &mut self.group_codec, &self.accs, &input.batch)?;

        let (mut rows, mut ops, mut results, mut times) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut starts_out, mut ends_out) = (Vec::new(), Vec::new());
        for i in 0..input.len() {
            if !input.ops[i].is_add() || super::aggregate::has_null(&groups, i) {
                continue; // windowed aggregations read streams only
            }
            let ts = i64_at(rowtime.as_ref(), i)?;
            let st = self.stream_time.map_or(ts, |s| s.max(ts));
            self.stream_time = Some(st);
            for start in self.starts(ts) {
                let end = start.saturating_add(self.size);
                if end.saturating_add(self.grace) <= st {
                    self.late += 1;
                    tracing::debug!(start, end, ts, stream_time = st, "dropping late record");
                    continue;
                }
                let mut key = encode_time(start).to_vec();
                key.extend_from_slice(keys.row(i).as_ref());
                let existed = self.load(&key)?;
                if !existed {
                    let accs = self.accs.create()?;
                    self.windows.insert(
                        key.clone(),
                        Group {
                            accs,
                            max_ts: i64::MIN,
                        },
                    );
                }
                let Some(w) = self.windows.get_mut(&key) else {
                    continue;
                };
                if existed {
                    results.push(self.accs.evaluate(&mut w.accs)?);
                    times.push(w.max_ts);
                    rows.push(i as u32);
                    ops.push(Op::UpdateBefore);
                    starts_out.push(start);
                    ends_out.push(end);
                }
                self.accs.apply(&mut w.accs, &args, i, false)?;
                w.max_ts = w.max_ts.max(ts);
                results.push(self.accs.evaluate(&mut w.accs)?);
                times.push(w.max_ts);
                rows.push(i as u32);
                ops.push(if existed { Op::UpdateAfter } else { Op::Insert });
                starts_out.push(start);
                ends_out.push(end);
                self.dirty.insert(key);
            }
        }
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let out = build_output(
            &self.spec,
            &groups,
            &rows,
            Some((&starts_out, &ends_out)),
            results,
            times,
        )?;
        Ok(vec![Changes::new(out, ops)])
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        for key in self.dirty.drain() {
            if let Some(w) = self.windows.get_mut(&key) {
                let mut value = w.max_ts.to_be_bytes().to_vec();
                value.extend(self.accs.encode(&mut w.accs)?);
                let mut full = self.prefix.clone();
                full.extend_from_slice(&key);
                batch.put(&full, &value);
            }
        }
        if let Some(st) = self.stream_time {
            let mut stream_key = self.prefix.clone();
            stream_key.push(0xff);
            batch.put(&stream_key, &encode_time(st));
            // Expire windows whose end is before stream time - retention.
            let cutoff_start = st.saturating_sub(self.retention).saturating_sub(self.size);
            let mut from = self.prefix.clone();
            from.extend_from_slice(&encode_time(i64::MIN));
            let mut to = self.prefix.clone();
            to.extend_from_slice(&encode_time(cutoff_start));
            batch.delete_range(&from, &to);
            self.windows
                .retain(|k, _| decode_time(k).is_some_and(|s| s >= cutoff_start));
        }
        if self.windows.len() > GROUP_CACHE_LIMIT {
            self.windows.clear();
        }
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
}

//! `SessionWindow`: session-windowed aggregation.
//!
//! Semantics (Kafka Streams / ksqlDB): a record at time `t` for a group
//! starts the session `[t, t]`, which absorbs every existing session of the
//! group with `end >= t - gap` and `start <= t + gap`; their aggregates merge
//! into one. Stream time is the largest record time seen; if the merged
//! session's `end < stream time - grace - gap` the record is late: dropped
//! and counted. Sessions that ended more than the retention (gap + grace
//! unless RETENTION says more) before stream time have expired: they are
//! not merged any more. Otherwise each absorbed session is deleted (a Delete, which a
//! sink writes as a tombstone of that session's windowed key, at the
//! session's end time) and the merged session is emitted (Insert) with row
//! time = its end. Session bounds are inclusive: WINDOWEND is the last
//! record's time.
//!
//! State: `prefix + group key length (4 bytes) + group key + start (8
//! bytes)` → `end + accumulator state`; `prefix + 0xff` holds stream time.
//! A group's sessions are loaded on first use with one prefix scan.
//! Sessions ending before stream time minus the retention (default gap +
//! grace) are dropped from loaded groups at checkpoint.

use std::collections::HashSet;

use datafusion::common::HashMap;

use super::accumulators::{i64_at, Accs, AccumulatorSet};
use super::aggregate::{prepare, Emitted};
use super::Operator;
use crate::error::{Error, Result};
use crate::runtime::changes::{Changes, Op};
use crate::runtime::plan::{AggregateSpec, WindowAssign};
use crate::runtime::rows::RowCodec;
use crate::runtime::state::{decode_time, encode_time, StateBatch, StateStore};

struct Session {
    start: i64,
    end: i64,
    accs: Accs,
}

pub(crate) struct SessionWindow {
    spec: AggregateSpec,
    gap: i64,
    grace: i64,
    retention: i64,
    accs: AccumulatorSet,
    store: StateStore,
    prefix: Vec<u8>,
    group_codec: Option<RowCodec>,
    /// group key → its sessions, sorted by start.
    sessions: HashMap<Vec<u8>, Vec<Session>>,
    dirty: HashSet<Vec<u8>>,
    stream_time: Option<i64>,
    late: u64,
}

impl SessionWindow {
    pub(crate) fn try_new(spec: AggregateSpec, store: StateStore, prefix: Vec<u8>) -> Result<Self> {
        let w = spec
            .window
            .clone()
            .ok_or_else(|| Error::internal("SessionWindow without a window"))?;
        let WindowAssign::Session { gap } = w.assign else {
            return Err(Error::internal("SessionWindow given a time window"));
        };
        let accs = AccumulatorSet::try_new(spec.aggregates.clone())?;
        let mut stream_key = prefix.clone();
        stream_key.push(0xff);
        let stream_time = store.get(&stream_key)?.and_then(|b| decode_time(&b));
        Ok(Self {
            spec,
            gap,
            grace: w.grace,
            retention: w.retention.unwrap_or(gap + w.grace).max(gap + w.grace),
            accs,
            store,
            prefix,
            group_codec: None,
            sessions: HashMap::default(),
            dirty: HashSet::new(),
            stream_time,
            late: 0,
        })
    }

    fn group_prefix(&self, group: &[u8]) -> Vec<u8> {
        let mut p = self.prefix.clone();
        p.extend_from_slice(&(group.len() as u32).to_be_bytes());
        p.extend_from_slice(group);
        p
    }

    fn load(&mut self, group: &[u8]) -> Result<()> {
        if self.sessions.contains_key(group) {
            return Ok(());
        }
        let gp = self.group_prefix(group);
        let mut list = Vec::new();
        for (k, v) in self.store.scan_prefix(&gp)? {
            let (Some(start), Some(end)) = (decode_time(&k[gp.len()..]), decode_time(&v)) else {
                continue;
            };
            let accs = self.accs.decode(&v[8..])?;
            list.push(Session { start, end, accs });
        }
        self.sessions.insert(group.to_vec(), list);
        Ok(())
    }
}

impl Operator for SessionWindow {
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
        let mut out = Emitted::new(&self.accs);
        for i in 0..input.len() {
            if !input.ops[i].is_add() || p.has_null(i) {
                continue;
            }
            let ts = i64_at(p.rowtime.as_ref(), i)?;
            let st = self.stream_time.map_or(ts, |s| s.max(ts));
            self.stream_time = Some(st);
            let group = p.keys.row(i).as_ref().to_vec();
            self.load(&group)?;
            let gap = self.gap;
            let Some(list) = self.sessions.get_mut(&group) else {
                continue;
            };
            // Sessions that ended more than the retention ago have expired
            // from the store: they are neither found nor merged.
            let expiry = st.saturating_sub(self.retention);
            list.retain(|s| s.end >= expiry);
            let (overlapping, kept): (Vec<Session>, Vec<Session>) =
                std::mem::take(list).into_iter().partition(|s| {
                    s.end >= ts.saturating_sub(gap) && s.start <= ts.saturating_add(gap)
                });
            let start = overlapping
                .iter()
                .map(|s| s.start)
                .min()
                .unwrap_or(ts)
                .min(ts);
            let end = overlapping
                .iter()
                .map(|s| s.end)
                .max()
                .unwrap_or(ts)
                .max(ts);
            if end < st.saturating_sub(self.grace).saturating_sub(gap) {
                self.late += 1;
                let mut all = kept;
                all.extend(overlapping);
                all.sort_by_key(|s| s.start);
                *list = all;
                continue;
            }
            let mut merged = self.accs.create()?;
            for mut old in overlapping {
                self.accs.evaluate_into(&mut old.accs, &mut out.results)?;
                out.times.push(old.end);
                out.rows.push(i as u32);
                out.ops.push(Op::Delete);
                out.starts.push(old.start);
                out.ends.push(old.end);
                self.accs.merge(&mut merged, &mut old.accs)?;
            }
            self.accs.apply(&mut merged, &p.args, i, false)?;
            self.accs.evaluate_into(&mut merged, &mut out.results)?;
            out.times.push(end);
            out.rows.push(i as u32);
            out.ops.push(Op::Insert);
            out.starts.push(start);
            out.ends.push(end);
            let mut all = kept;
            all.push(Session {
                start,
                end,
                accs: merged,
            });
            all.sort_by_key(|s| s.start);
            *list = all;
            self.dirty.insert(group);
        }
        out.build(&self.spec, &p.groups, true)
    }

    fn checkpoint(&mut self, batch: &mut StateBatch) -> Result<()> {
        let cutoff = self.stream_time.map(|st| st.saturating_sub(self.retention));
        if let Some(cutoff) = cutoff {
            for list in self.sessions.values_mut() {
                list.retain(|s| s.end >= cutoff);
            }
        }
        let dirty: Vec<Vec<u8>> = self.dirty.drain().collect();
        for group in dirty {
            let gp = self.group_prefix(&group);
            let mut end_key = gp.clone();
            end_key.extend_from_slice(&[0xff; 9]);
            batch.delete_range(&gp, &end_key);
            if let Some(list) = self.sessions.get_mut(&group) {
                for s in list.iter_mut() {
                    let mut k = gp.clone();
                    k.extend_from_slice(&encode_time(s.start));
                    let mut v = encode_time(s.end).to_vec();
                    v.extend(self.accs.encode(&mut s.accs)?);
                    batch.put(&k, &v);
                }
            }
        }
        if let Some(st) = self.stream_time {
            let mut stream_key = self.prefix.clone();
            stream_key.push(0xff);
            batch.put(&stream_key, &encode_time(st));
        }
        if self.sessions.len() > super::aggregate::GROUP_CACHE_LIMIT {
            self.sessions.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::testing::*;
    use crate::runtime::plan::WindowConfig;

    #[test]
    fn sessions_merge_with_tombstones_and_late_records_drop() {
        let (store, _d) = store();
        let cfg = WindowConfig {
            assign: WindowAssign::Session { gap: 20 },
            grace: 30,
            retention: None,
            emit_final: false,
        };
        let mut w =
            SessionWindow::try_new(count_sum_spec(Some(cfg)), store, b"s/q/0/".to_vec()).unwrap();
        // 0 and 30 are separate sessions (gap 20); 15 bridges them (within 20 of both)
        // and merges both into [0, 30]; 100 opens a new session and moves
        // stream time (and expires [0,30], retention 50); 40 ends before
        // 100 - grace - gap: late.
        let out = w
            .process(inserts(&[
                ("a", Some(1), 0),
                ("a", Some(2), 30),
                ("a", Some(4), 15),
                ("a", Some(8), 100),
                ("a", Some(16), 40),
            ]))
            .unwrap();
        assert_eq!(
            dump(&out),
            vec![
                row(&["a", "0", "0", "1", "1", "0"], Op::Insert),
                row(&["a", "30", "30", "1", "2", "30"], Op::Insert),
                row(&["a", "0", "0", "1", "1", "0"], Op::Delete),
                row(&["a", "30", "30", "1", "2", "30"], Op::Delete),
                row(&["a", "0", "30", "3", "7", "30"], Op::Insert),
                row(&["a", "100", "100", "1", "8", "100"], Op::Insert),
            ]
        );
        assert_eq!(w.late_records(), 1);
    }
}

//! `GroupTable`: the in-memory groups (or windows) of an aggregation, a
//! write-back cache over the operator's RocksDB state.
//!
//! Groups live in a slab addressed by a `u32` slot; a hash index maps each
//! group's encoded key to its slot. A batch resolves each distinct key to
//! its slot once ([`GroupTable::find`] / [`GroupTable::insert`]) and then
//! works on slots. A group changed since the last checkpoint is dirty and
//! on the dirty list, so a checkpoint visits the changed groups only.
//!
//! Eviction: past the limit, a checkpoint (when every group is clean) drops
//! the least recently used quarter of the limit's worth of groups, not the
//! whole cache; recency is the number of the batch that last touched a group.
//! A dropped group is read back from RocksDB when its key comes again.

use datafusion::common::HashMap;

use super::accumulators::Accs;

/// One group's aggregates and the largest record time it has seen.
pub(crate) struct Group {
    pub accs: Accs,
    pub max_ts: i64,
}

struct Entry {
    key: Vec<u8>,
    group: Group,
    dirty: bool,
    /// The batch that last touched this group.
    used: u64,
}

pub(crate) struct GroupTable {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    index: HashMap<Vec<u8>, u32>,
    dirty: Vec<u32>,
    batch: u64,
    limit: usize,
}

impl GroupTable {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
            dirty: Vec::new(),
            batch: 0,
            limit: limit.max(4),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Start a batch: groups touched from now on are its.
    pub(crate) fn next_batch(&mut self) {
        self.batch += 1;
    }

    /// The slot of the group under `key`, if it is in memory.
    pub(crate) fn find(&self, key: &[u8]) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// Add a group (its key must not be present); returns its slot.
    pub(crate) fn insert(&mut self, key: Vec<u8>, group: Group) -> u32 {
        let entry = Entry {
            key: key.clone(),
            group,
            dirty: false,
            used: self.batch,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(entry);
                s
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        slot
    }

    /// The group in `slot`, marked used by this batch and dirty.
    pub(crate) fn touch(&mut self, slot: u32) -> Option<&mut Group> {
        let e = self.slots.get_mut(slot as usize)?.as_mut()?;
        e.used = self.batch;
        if !e.dirty {
            e.dirty = true;
            self.dirty.push(slot);
        }
        Some(&mut e.group)
    }

    /// The group in `slot` and its key, if the slot holds one.
    pub(crate) fn get(&self, slot: u32) -> Option<(&[u8], &Group)> {
        let e = self.slots.get(slot as usize)?.as_ref()?;
        Some((&e.key, &e.group))
    }

    /// Drop the group in `slot` (expired), dirty or not.
    pub(crate) fn remove(&mut self, slot: u32) {
        if let Some(e) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.index.remove(&e.key);
            self.free.push(slot);
        }
    }

    /// Every dirty group (in slot order), now clean.
    pub(crate) fn take_dirty(&mut self) -> Vec<(&[u8], &mut Group)> {
        let mut order = std::mem::take(&mut self.dirty);
        order.sort_unstable();
        order.dedup();
        let mut out = Vec::with_capacity(order.len());
        let mut rest: &mut [Option<Entry>] = &mut self.slots;
        let mut base = 0usize;
        for s in order {
            let Some(at) = (s as usize).checked_sub(base) else {
                continue;
            };
            if at >= rest.len() {
                break;
            }
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(at);
            let (head, tail) = tail.split_at_mut(1);
            rest = tail;
            base = s as usize + 1;
            if let Some(e) = head[0].as_mut().filter(|e| e.dirty) {
                e.dirty = false;
                out.push((e.key.as_slice(), &mut e.group));
            }
        }
        out
    }

    /// If past the limit, drop the least recently used clean groups until
    /// three quarters of the limit remain.
    pub(crate) fn evict(&mut self) {
        if self.len() <= self.limit {
            return;
        }
        let target = self.limit - self.limit / 4;
        let mut clean: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, e)| e.as_ref().filter(|e| !e.dirty).map(|e| (e.used, s as u32)))
            .collect();
        let excess = self.len().saturating_sub(target).min(clean.len());
        if excess == 0 {
            return;
        }
        clean.select_nth_unstable(excess - 1);
        for &(_, s) in &clean[..excess] {
            self.remove(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(ts: i64) -> Group {
        Group {
            accs: Vec::new(),
            max_ts: ts,
        }
    }

    #[test]
    fn dirty_groups_come_back_once() {
        let mut t = GroupTable::new(100);
        let a = t.insert(b"a".to_vec(), group(1));
        let b = t.insert(b"b".to_vec(), group(2));
        t.touch(b);
        t.touch(a);
        t.touch(b);
        let keys: Vec<Vec<u8>> = t.take_dirty().iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(t.take_dirty().is_empty());
        assert_eq!(t.find(b"a"), Some(a));
    }

    #[test]
    fn eviction_drops_the_least_recently_used_quarter() {
        let mut t = GroupTable::new(8);
        for i in 0..10u8 {
            t.next_batch();
            let s = t.insert(vec![i], group(i64::from(i)));
            t.touch(s);
        }
        // Key 0 is used again, so keys 1 to 4 are the oldest.
        t.next_batch();
        let zero = t.find(&[0]).unwrap();
        t.touch(zero);
        t.take_dirty();
        t.evict();
        assert_eq!(t.len(), 6);
        let left: Vec<u8> = (0..10u8).filter(|i| t.find(&[*i]).is_some()).collect();
        assert_eq!(left, vec![0, 5, 6, 7, 8, 9]);
        // A freed slot is reused, and the index follows.
        let s = t.insert(vec![42], group(42));
        assert_eq!(
            t.get(s).map(|(k, g)| (k.to_vec(), g.max_ts)),
            Some((vec![42], 42))
        );
    }

    #[test]
    fn dirty_groups_are_never_evicted() {
        let mut t = GroupTable::new(4);
        for i in 0..6u8 {
            let s = t.insert(vec![i], group(0));
            t.touch(s);
        }
        t.evict();
        assert_eq!(t.len(), 6);
        t.take_dirty();
        t.evict();
        assert_eq!(t.len(), 3);
    }
}

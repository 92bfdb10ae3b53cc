//! `KeyedStore`: one operator's key → row map in RocksDB, behind a
//! write-back cache.
//!
//! Reads go to the cache, then RocksDB; writes stay in the cache, their keys
//! listed as dirty, until the task checkpoints, when they join the task's
//! atomic write. A value is held once: [`KeyedStore::replace`] hands the old
//! one back instead of copying it.
//! Keys are arbitrary bytes under the operator's prefix.
//!
//! Past [`CACHE_LIMIT`] entries, a checkpoint drops the least recently used
//! quarter of the limit's worth of entries (recency: the checkpoint interval
//! that last read or wrote them), never the whole cache.

use datafusion::common::HashMap;

use super::state::{StateBatch, StateStore};
use crate::error::Result;

/// Entries kept in the read cache between checkpoints.
const CACHE_LIMIT: usize = 100_000;

pub(crate) struct KeyedStore {
    store: StateStore,
    prefix: Vec<u8>,
    /// key → its entry; kept as a read cache.
    cache: HashMap<Vec<u8>, Entry>,
    /// The keys of the dirty entries, each once.
    dirty: Vec<Vec<u8>>,
    /// Checkpoints so far: the current interval.
    interval: u64,
    limit: usize,
}

/// One key's current value in the cache.
struct Entry {
    /// None: absent.
    value: Option<Vec<u8>>,
    /// The interval that last read or wrote it.
    used: u64,
    /// Written since the last checkpoint (its key is in `dirty`).
    dirty: bool,
}

impl KeyedStore {
    pub(crate) fn new(store: StateStore, prefix: Vec<u8>) -> Self {
        Self {
            store,
            prefix,
            cache: HashMap::default(),
            dirty: Vec::new(),
            interval: 0,
            limit: CACHE_LIMIT,
        }
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.prefix.clone();
        full.extend_from_slice(key);
        full
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(e) = self.cache.get_mut(key) {
            e.used = self.interval;
            return Ok(e.value.clone());
        }
        let v = self.store.get(&self.full_key(key))?;
        self.insert(key.to_vec(), v.clone(), false);
        Ok(v)
    }

    pub(crate) fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match self.cache.get_mut(&key) {
            Some(e) => {
                e.value = value;
                e.used = self.interval;
                mark_dirty(e, &mut self.dirty, &key);
            }
            None => self.insert(key, value, true),
        }
    }

    /// Set `key` to `value` and return what it was: `get` then `set`
    /// without copying either value. Setting an absent key absent writes
    /// nothing.
    pub(crate) fn replace(
        &mut self,
        key: &[u8],
        value: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(e) = self.cache.get_mut(key) {
            e.used = self.interval;
            let old = std::mem::replace(&mut e.value, value);
            if old.is_some() || e.value.is_some() {
                mark_dirty(e, &mut self.dirty, key);
            }
            return Ok(old);
        }
        let old = self.store.get(&self.full_key(key))?;
        let dirty = old.is_some() || value.is_some();
        self.insert(key.to_vec(), value, dirty);
        Ok(old)
    }

    /// Cache `key`'s entry, listed as dirty if it is.
    fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, dirty: bool) {
        if dirty {
            self.dirty.push(key.clone());
        }
        let used = self.interval;
        self.cache.insert(key, Entry { value, used, dirty });
    }

    /// Keys (without the prefix) and values of every entry whose key starts
    /// with `key_prefix`, the pending writes applied, in key order.
    pub(crate) fn scan(&mut self, key_prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut found: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = self
            .store
            .scan_prefix(&self.full_key(key_prefix))?
            .into_iter()
            .map(|(k, v)| (k[self.prefix.len()..].to_vec(), v))
            .collect();
        for k in self.dirty.iter().filter(|k| k.starts_with(key_prefix)) {
            match self.cache.get(k).and_then(|e| e.value.as_ref()) {
                Some(v) => found.insert(k.clone(), v.clone()),
                None => found.remove(k),
            };
        }
        Ok(found.into_iter().collect())
    }

    /// Write the dirty entries into the checkpoint batch, in key order:
    /// RocksDB's memtable inserts a sorted run next to its previous insert
    /// instead of searching its skip list from the top for each key.
    pub(crate) fn checkpoint(&mut self, batch: &mut StateBatch) {
        let mut full = self.prefix.clone();
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        for k in dirty {
            // A dirty entry stays cached until it is written (eviction
            // follows checkpoints only).
            let Some(e) = self.cache.get_mut(&k) else {
                continue;
            };
            e.dirty = false;
            full.truncate(self.prefix.len());
            full.extend_from_slice(&k);
            match &e.value {
                Some(row) => batch.put(&full, row),
                None => batch.delete(&full),
            }
        }
        self.interval += 1;
        self.evict();
    }

    /// Past the limit, drop the least recently used entries until three
    /// quarters of the limit remain (all are clean after a checkpoint).
    fn evict(&mut self) {
        if self.cache.len() <= self.limit {
            return;
        }
        let target = self.limit - self.limit / 4;
        let mut used: Vec<u64> = self.cache.values().map(|e| e.used).collect();
        let excess = self.cache.len() - target;
        if excess >= used.len() {
            self.cache.clear();
            return;
        }
        let (_, &mut oldest_kept, _) = used.select_nth_unstable(excess);
        // Entries used before `oldest_kept` go; of those used in that very
        // interval, as many as still needed.
        let mut ties = excess - used.iter().filter(|&&u| u < oldest_kept).count();
        self.cache.retain(|_, e| {
            if e.used < oldest_kept {
                false
            } else if e.used == oldest_kept && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// List a written entry's key as dirty, once per checkpoint.
fn mark_dirty(e: &mut Entry, dirty: &mut Vec<Vec<u8>>, key: &[u8]) {
    if !e.dirty {
        e.dirty = true;
        dirty.push(key.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_hands_back_the_old_value_and_writes_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut s = KeyedStore::new(store.clone(), b"v/".to_vec());
        assert_eq!(s.replace(b"a", Some(b"1".to_vec())).unwrap(), None);
        assert_eq!(
            s.replace(b"a", Some(b"2".to_vec())).unwrap(),
            Some(b"1".to_vec())
        );
        // Absent, and set absent: nothing to write.
        assert_eq!(s.replace(b"b", None).unwrap(), None);
        let mut cp = StateBatch::default();
        s.checkpoint(&mut cp);
        store.commit(cp).unwrap();
        assert_eq!(
            store.scan_prefix(b"v/").unwrap(),
            [(b"v/a".to_vec(), b"2".to_vec())]
        );
        // A fresh store reads the written value; deleting it writes a delete.
        let mut s = KeyedStore::new(store.clone(), b"v/".to_vec());
        assert_eq!(s.replace(b"a", None).unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.scan(b"").unwrap(), Vec::<(Vec<u8>, Vec<u8>)>::new());
        let mut cp = StateBatch::default();
        s.checkpoint(&mut cp);
        store.commit(cp).unwrap();
        assert_eq!(store.scan_prefix(b"v/").unwrap(), Vec::new());
    }

    #[test]
    fn eviction_keeps_the_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut s = KeyedStore::new(store.clone(), b"v/".to_vec());
        s.limit = 8;
        for i in (0..10u8).rev() {
            s.set(vec![i], Some(vec![i]));
            let mut cp = StateBatch::default();
            s.checkpoint(&mut cp);
            store.commit(cp).unwrap();
        }
        // Key 9 was written first, then 8, ...: the ninth checkpoint finds 9
        // entries and drops the oldest three (9, 8, 7); then 0 came.
        let mut cached: Vec<u8> = s.cache.keys().map(|k| k[0]).collect();
        cached.sort();
        assert_eq!(cached, vec![0, 1, 2, 3, 4, 5, 6]);
        // An evicted entry is read back from the store.
        assert_eq!(s.get(&[9]).unwrap(), Some(vec![9]));
        assert_eq!(
            store.scan_prefix(b"v/").unwrap().len(),
            10,
            "every entry was written"
        );
    }
}

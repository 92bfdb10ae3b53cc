//! `KeyedStore`: one operator's key → row map in RocksDB, behind a
//! write-back cache.
//!
//! Reads go to the cache, then RocksDB; writes stay in the cache and a dirty
//! set until the task checkpoints, when they join the task's atomic write.
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
    /// key → (current value (None: absent), interval last used); kept
    /// as a read cache.
    cache: HashMap<Vec<u8>, (Option<Vec<u8>>, u64)>,
    dirty: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Checkpoints so far: the current interval.
    interval: u64,
    limit: usize,
}

impl KeyedStore {
    pub(crate) fn new(store: StateStore, prefix: Vec<u8>) -> Self {
        Self {
            store,
            prefix,
            cache: HashMap::default(),
            dirty: HashMap::default(),
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
        if let Some((v, used)) = self.cache.get_mut(key) {
            *used = self.interval;
            return Ok(v.clone());
        }
        let v = self.store.get(&self.full_key(key))?;
        self.cache.insert(key.to_vec(), (v.clone(), self.interval));
        Ok(v)
    }

    pub(crate) fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.cache
            .insert(key.clone(), (value.clone(), self.interval));
        self.dirty.insert(key, value);
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
        for (k, v) in &self.dirty {
            if k.starts_with(key_prefix) {
                match v {
                    Some(v) => found.insert(k.clone(), v.clone()),
                    None => found.remove(k),
                };
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Write the dirty entries into the checkpoint batch, in key order:
    /// RocksDB's memtable inserts a sorted run next to its previous insert
    /// instead of searching its skip list from the top for each key.
    pub(crate) fn checkpoint(&mut self, batch: &mut StateBatch) {
        let mut full = self.prefix.clone();
        let mut dirty: Vec<_> = std::mem::take(&mut self.dirty).into_iter().collect();
        dirty.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in dirty {
            full.truncate(self.prefix.len());
            full.extend_from_slice(&k);
            match v {
                Some(row) => batch.put(&full, &row),
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
        let mut used: Vec<u64> = self.cache.values().map(|(_, u)| *u).collect();
        let excess = self.cache.len() - target;
        if excess >= used.len() {
            self.cache.clear();
            return;
        }
        let (_, &mut oldest_kept, _) = used.select_nth_unstable(excess);
        // Entries used before `oldest_kept` go; of those used in that very
        // interval, as many as still needed.
        let mut ties = excess - used.iter().filter(|&&u| u < oldest_kept).count();
        self.cache.retain(|_, (_, u)| {
            if *u < oldest_kept {
                false
            } else if *u == oldest_kept && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! `KeyedStore`: one operator's key → row map in RocksDB, behind a
//! write-back cache.
//!
//! Reads go to the cache, then RocksDB; writes stay in the cache and a dirty
//! set until the task checkpoints, when they join the task's atomic write.
//! Keys are arbitrary bytes under the operator's prefix.

use std::collections::HashMap;

use super::state::{StateBatch, StateStore};
use crate::error::Result;

/// Entries kept in the read cache between checkpoints.
const CACHE_LIMIT: usize = 100_000;

pub(crate) struct KeyedStore {
    store: StateStore,
    prefix: Vec<u8>,
    /// key → current value (None: absent), dirty entries only until
    /// checkpoint, then kept as a read cache.
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
    dirty: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl KeyedStore {
    pub(crate) fn new(store: StateStore, prefix: Vec<u8>) -> Self {
        Self {
            store,
            prefix,
            cache: HashMap::new(),
            dirty: HashMap::new(),
        }
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.prefix.clone();
        full.extend_from_slice(key);
        full
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(v.clone());
        }
        let v = self.store.get(&self.full_key(key))?;
        self.cache.insert(key.to_vec(), v.clone());
        Ok(v)
    }

    pub(crate) fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.cache.insert(key.clone(), value.clone());
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

    /// Write the dirty entries into the checkpoint batch.
    pub(crate) fn checkpoint(&mut self, batch: &mut StateBatch) {
        for (k, v) in std::mem::take(&mut self.dirty) {
            let full = self.full_key(&k);
            match v {
                Some(row) => batch.put(&full, &row),
                None => batch.delete(&full),
            }
        }
        if self.cache.len() > CACHE_LIMIT {
            self.cache.clear();
        }
    }
}

//! Operator state in RocksDB.
//!
//! One RocksDB instance per data directory, shared by every query. Keys are
//! namespaced: `s/<query id>/<operator index>/` + the operator's own key
//! (memcomparable: group keys are arrow-row encoded, times are big-endian
//! with the sign bit flipped, so range scans follow time order). Source
//! offsets live under `o/<query id>/<topic>/<partition>`, the catalog's
//! statement log under `c/`.
//!
//! Operators keep a write-back cache and hand their dirty entries to a
//! [`StateBatch`] at checkpoint; the task adds its source offsets to the same
//! batch and commits it in one atomic write.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, Direction, IteratorMode, Options, WriteBatch, DB};

/// A store's state at one moment ([`StateStore::snapshot`]).
pub(crate) struct Snapshot<'a> {
    snap: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl Snapshot<'_> {
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get(key)?)
    }

    /// Give each entry with `from <= key < to`, in key order, to `each`
    /// until it returns false. The iterator never reads past `to`; with
    /// `cached` false the blocks it reads stay out of the block cache (a
    /// scan of a whole view must not push out the rows lookups read).
    pub(crate) fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        cached: bool,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(to.to_vec());
        read.fill_cache(cached);
        let mut iter = self.snap.raw_iterator_opt(read);
        iter.seek(from);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !each(k, v)? {
                return Ok(());
            }
            iter.next();
        }
        Ok(iter.status()?)
    }
}

/// The first key after every key that starts with `prefix` (None: there is
/// none, the prefix being all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The block cache of a store opened without a size (256 MiB).
pub(crate) const DEFAULT_BLOCK_CACHE: u64 = 256 << 20;

use crate::error::Result;

/// A handle on the shared RocksDB instance.
#[derive(Clone)]
pub(crate) struct StateStore {
    db: Arc<DB>,
}

impl StateStore {
    /// Open (or create) the store in `dir`, with the default block cache.
    #[cfg(test)]
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, DEFAULT_BLOCK_CACHE)
    }

    /// Open (or create) the store in `dir`, tuned for point reads (key
    /// lookups of views, operators' state): a bloom filter per table file,
    /// so a get skips the files that cannot hold its key, and a block
    /// cache of `cache_bytes` (uncompressed blocks: a hot row is read
    /// without decompressing), which also holds the files' indexes and
    /// filters, so that they count against it.
    pub(crate) fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        // HyperClockCache: lookups from many sessions at once take no lock
        // (an LRU cache's shards do).
        let cache =
            Cache::new_hyper_clock_cache(usize::try_from(cache_bytes).unwrap_or(usize::MAX), 0);
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // A hash index in each data block: a get finds its key's restart
        // point without a binary search of the block.
        table.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
        table.set_data_block_hash_ratio(0.75);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_block_based_table_factory(&table);
        // A bloom filter over the memtable's whole keys: a get of a key the
        // memtable does not hold skips its skip list.
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.02);
        let db = DB::open(&opts, dir)?;
        Ok(Self { db: Arc::new(db) })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    /// All entries whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Entries with `from <= key < to`, in key order.
    pub(crate) fn scan_range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(from, Direction::Forward))
        {
            let (k, v) = item?;
            if k.as_ref() >= to {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// A consistent view of the store now: every read through it sees the
    /// same commits, none half applied.
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            snap: self.db.snapshot(),
        }
    }

    pub(crate) fn commit(&self, batch: StateBatch) -> Result<()> {
        if batch.len > 0 {
            self.db.write(batch.inner)?;
        }
        Ok(())
    }

    /// Delete every key under `prefix` (a dropped query's state).
    pub(crate) fn delete_prefix(&self, prefix: &[u8]) -> Result<()> {
        let mut end = prefix.to_vec();
        end.push(0xff);
        let mut b = WriteBatch::default();
        for (k, _) in self.scan_prefix(prefix)? {
            b.delete(k);
        }
        self.db.write(b)?;
        Ok(())
    }

    /// Delete every key outside the `keep` prefixes, in one atomic write
    /// of range deletes (what a store held about topics that are gone),
    /// then compact, so that the space is given back.
    pub(crate) fn delete_all_except(&self, keep: &[&[u8]]) -> Result<()> {
        let Some(last) = self.db.iterator(IteratorMode::End).next() else {
            return Ok(());
        };
        let mut end = last?.0.to_vec();
        end.push(0);
        let mut keep: Vec<&[u8]> = keep.to_vec();
        keep.sort();
        let mut b = WriteBatch::default();
        let mut from: Vec<u8> = Vec::new();
        for prefix in keep {
            if from.as_slice() < prefix {
                b.delete_range(from.as_slice(), prefix);
            }
            match prefix_end(prefix) {
                Some(next) => from = from.max(next),
                None => return self.write_and_compact(b),
            }
        }
        if from < end {
            b.delete_range(from.as_slice(), end.as_slice());
        }
        self.write_and_compact(b)
    }

    fn write_and_compact(&self, b: WriteBatch) -> Result<()> {
        self.db.write(b)?;
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }
}

/// Writes collected for one atomic commit.
#[derive(Default)]
pub(crate) struct StateBatch {
    inner: WriteBatch,
    len: usize,
    /// The range deletes written (tests check when operators issue them).
    #[cfg(test)]
    range_deletes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StateBatch {
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) {
        self.inner.put(key, value);
        self.len += 1;
    }

    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.inner.delete(key);
        self.len += 1;
    }

    /// Delete `from <= key < to`.
    pub(crate) fn delete_range(&mut self, from: &[u8], to: &[u8]) {
        self.inner.delete_range(from, to);
        self.len += 1;
        #[cfg(test)]
        self.range_deletes.push((from.to_vec(), to.to_vec()));
    }

    /// Writes in the batch (puts, deletes and range deletes).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The range deletes in the batch, `(from, to)`.
    #[cfg(test)]
    pub(crate) fn range_deletes(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.range_deletes
    }
}

/// Big-endian i64 with the sign bit flipped: byte order equals numeric order.
pub(crate) fn encode_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1u64 << 63)).to_be_bytes()
}

pub(crate) fn decode_time(b: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1u64 << 63)) as i64)
}

/// Key prefix of an operator's state.
pub(crate) fn operator_prefix(query_id: &str, op_index: usize) -> Vec<u8> {
    format!("s/{query_id}/{op_index}/").into_bytes()
}

/// Key prefix of all state of a query.
pub(crate) fn query_prefix(query_id: &str) -> Vec<u8> {
    format!("s/{query_id}/").into_bytes()
}

pub(crate) fn offset_key(query_id: &str, topic: &str, partition: i32) -> Vec<u8> {
    format!("o/{query_id}/{topic}/{partition}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_is_ordered() {
        let ts = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let enc: Vec<_> = ts.iter().map(|&t| encode_time(t)).collect();
        let mut sorted = enc.clone();
        sorted.sort();
        assert_eq!(enc, sorted);
        for &t in &ts {
            assert_eq!(decode_time(&encode_time(t)), Some(t));
        }
    }

    #[test]
    fn a_snapshot_reads_one_moment_and_scans_stop_at_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut b = StateBatch::default();
        for k in ["v/T/a", "v/T/b", "v/T/c", "v/U/a"] {
            b.put(k.as_bytes(), k.as_bytes());
        }
        store.commit(b).unwrap();
        let snap = store.snapshot();
        let mut b = StateBatch::default();
        b.delete(b"v/T/a");
        b.put(b"v/T/d", b"new");
        store.commit(b).unwrap();
        assert_eq!(snap.get(b"v/T/a").unwrap().as_deref(), Some(&b"v/T/a"[..]));
        let end = prefix_end(b"v/T/").unwrap();
        assert_eq!(end, b"v/T0");
        let mut seen = Vec::new();
        snap.scan(b"v/T/", &end, false, |k, _| {
            seen.push(String::from_utf8_lossy(k).to_string());
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, ["v/T/a", "v/T/b", "v/T/c"]);
        let mut first = Vec::new();
        store
            .snapshot()
            .scan(b"v/T/", &end, true, |k, _| {
                first.push(String::from_utf8_lossy(k).to_string());
                Ok(first.len() < 2)
            })
            .unwrap();
        assert_eq!(first, ["v/T/b", "v/T/c"]);
        assert_eq!(prefix_end(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn atomic_batches_and_scans() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let mut b = StateBatch::default();
        b.put(b"s/q1/0/a", b"1");
        b.put(b"s/q1/0/b", b"2");
        b.put(b"s/q1/1/a", b"3");
        b.put(b"o/q1/t/0", b"9");
        s.commit(b).unwrap();
        assert_eq!(s.scan_prefix(b"s/q1/0/").unwrap().len(), 2);
        assert_eq!(s.scan_range(b"s/q1/0/b", b"s/q1/1/b").unwrap().len(), 2);
        s.delete_prefix(b"s/q1/").unwrap();
        assert!(s.scan_prefix(b"s/").unwrap().is_empty());
        assert_eq!(s.get(b"o/q1/t/0").unwrap(), Some(b"9".to_vec()));
        let mut b = StateBatch::default();
        for k in [
            "a",
            "c/1",
            "c/2",
            "c0",
            "k/x/flush",
            "ka",
            "o/q/t/0",
            "v/T/\u{ff}",
        ] {
            b.put(k.as_bytes(), b"1");
        }
        s.commit(b).unwrap();
        s.delete_all_except(&[b"k/", b"c/"]).unwrap();
        let left: Vec<String> = s
            .scan_prefix(b"")
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(left, ["c/1", "c/2", "k/x/flush"]);
    }
}

//! Tombstones: the versions of removals, so that a deleted key cannot come back.
//!
//! When a primary's change leaves a key without an item (a delete, a failed set, an
//! expired counter), the removal gets a fresh version from the store's clock, above the
//! removed item's. The primary and every replica keep `(key, version)` here, per
//! partition; hand-off and key merges carry them beside the items, and an item whose
//! version is at most a tombstone's is never merged. So an older copy (a paused node's,
//! a former owner's leftovers, a pull that raced the delete) loses to the delete.
//!
//! A tombstone is collected after [`TOMBSTONE_HORIZON`], longer than any copy of a
//! partition that stopped receiving writes is kept and merged from (see `sync`), or
//! earlier when a newer item for the key is written. Memory stays bounded: at most
//! [`MAX_TOMBSTONES`] are kept; past that the oldest are collected first and the count
//! is reported (`stats cluster`: `tombstones_collected_early`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::placement::{PartitionId, PARTITIONS};

/// How long a tombstone is kept.
pub const TOMBSTONE_HORIZON: Duration = Duration::from_secs(600);
/// The most tombstones one node keeps.
pub const MAX_TOMBSTONES: usize = 4 << 20;

/// One partition's tombstones, with their order of arrival for collection.
#[derive(Debug, Default)]
struct Partition {
    versions: HashMap<Bytes, u64>,
    arrivals: VecDeque<(Instant, Bytes, u64)>,
}

/// Every tombstone of one node.
#[derive(Debug)]
pub struct Tombstones {
    parts: Box<[Mutex<Partition>]>,
    count: AtomicUsize,
    collected_early: AtomicU64,
}

impl Default for Tombstones {
    fn default() -> Self {
        Tombstones {
            parts: (0..PARTITIONS)
                .map(|_| Mutex::new(Partition::default()))
                .collect(),
            count: AtomicUsize::new(0),
            collected_early: AtomicU64::new(0),
        }
    }
}

impl Tombstones {
    /// Records that `key` was removed at `version` (keeps the higher of two).
    pub fn record(&self, p: PartitionId, key: &Bytes, version: u64) {
        let mut part = self.parts[p.index()].lock();
        let entry = part.versions.entry(key.clone()).or_insert(0);
        if *entry >= version {
            return;
        }
        if *entry == 0 {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        *entry = version;
        part.arrivals
            .push_back((Instant::now(), key.clone(), version));
        drop(part);
        if self.count.load(Ordering::Relaxed) > MAX_TOMBSTONES {
            self.collect_oldest(p);
        }
    }

    /// The version `key` was removed at, if a tombstone is kept.
    pub fn version(&self, p: PartitionId, key: &[u8]) -> Option<u64> {
        self.parts[p.index()].lock().versions.get(key).copied()
    }

    /// Whether an item of `key` at `version` is older than its tombstone (so it is dead).
    pub fn buries(&self, p: PartitionId, key: &[u8], version: u64) -> bool {
        self.version(p, key).is_some_and(|v| version <= v)
    }

    /// Sets `key`'s tombstone back to `version` (none: forgets it), whatever it is now:
    /// an undone removal.
    pub fn reset(&self, p: PartitionId, key: &Bytes, version: Option<u64>) {
        let mut part = self.parts[p.index()].lock();
        let had = part.versions.remove(key.as_ref()).is_some();
        if let Some(v) = version {
            part.versions.insert(key.clone(), v);
            part.arrivals.push_back((Instant::now(), key.clone(), v));
            if !had {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        } else if had {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets `key`'s tombstone once a newer item is written.
    pub fn forget_below(&self, p: PartitionId, key: &[u8], version: u64) {
        let mut part = self.parts[p.index()].lock();
        if part.versions.get(key).is_some_and(|&v| v < version) {
            part.versions.remove(key);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every tombstone of `p`, for a hand-off.
    pub fn of_partition(&self, p: PartitionId) -> Vec<(Bytes, u64)> {
        let part = self.parts[p.index()].lock();
        part.versions.iter().map(|(k, &v)| (k.clone(), v)).collect()
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many were collected before their horizon because too many were kept.
    pub fn collected_early(&self) -> u64 {
        self.collected_early.load(Ordering::Relaxed)
    }

    /// Collects the tombstones older than the horizon.
    pub fn collect(&self) {
        let now = Instant::now();
        for part in self.parts.iter() {
            let mut part = part.lock();
            while part
                .arrivals
                .front()
                .is_some_and(|(at, _, _)| now.duration_since(*at) >= TOMBSTONE_HORIZON)
            {
                self.pop_front(&mut part);
            }
        }
    }

    /// Collects the oldest tombstones of `p` (and if it has none, of any partition) until
    /// the count is under the limit.
    fn collect_oldest(&self, p: PartitionId) {
        let order = std::iter::once(p.index()).chain(0..usize::from(PARTITIONS));
        for i in order {
            let mut part = self.parts[i].lock();
            while self.count.load(Ordering::Relaxed) > MAX_TOMBSTONES {
                if !self.pop_front(&mut part) {
                    break;
                }
                self.collected_early.fetch_add(1, Ordering::Relaxed);
            }
            if self.count.load(Ordering::Relaxed) <= MAX_TOMBSTONES {
                return;
            }
        }
    }

    /// Drops the oldest arrival of `part` (and its tombstone, unless a newer one for the
    /// key arrived since); false if there was none.
    fn pop_front(&self, part: &mut Partition) -> bool {
        let Some((_, key, version)) = part.arrivals.pop_front() else {
            return false;
        };
        if part.versions.get(&key) == Some(&version) {
            part.versions.remove(&key);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PartitionId {
        PartitionId::new(7).unwrap()
    }

    #[test]
    fn the_higher_version_is_kept_and_buries_older_items() {
        let t = Tombstones::default();
        let k = Bytes::from_static(b"k");
        t.record(p(), &k, 10);
        t.record(p(), &k, 5);
        assert_eq!(t.version(p(), b"k"), Some(10));
        assert!(t.buries(p(), b"k", 10));
        assert!(!t.buries(p(), b"k", 11));
        assert_eq!(t.len(), 1);
        t.forget_below(p(), b"k", 9);
        assert_eq!(t.len(), 1, "an older item does not clear a tombstone");
        t.forget_below(p(), b"k", 11);
        assert_eq!((t.len(), t.version(p(), b"k")), (0, None));
    }

    #[tokio::test(start_paused = true)]
    async fn tombstones_are_collected_after_the_horizon() {
        let t = Tombstones::default();
        t.record(p(), &Bytes::from_static(b"a"), 1);
        tokio::time::advance(TOMBSTONE_HORIZON / 2).await;
        t.record(p(), &Bytes::from_static(b"b"), 2);
        tokio::time::advance(TOMBSTONE_HORIZON / 2).await;
        t.collect();
        assert_eq!(t.version(p(), b"a"), None);
        assert_eq!(t.version(p(), b"b"), Some(2));
        assert_eq!(t.of_partition(p()), vec![(Bytes::from_static(b"b"), 2)]);
    }
}

//! Anti-entropy: the owners of a partition compare digests of their copies on a timer
//! and exchange what differs, so replicas converge without client traffic (a write that
//! reached the primary but not a replica before the deadline, a replica restarted from a
//! pull that raced a write).
//!
//! Every `repair_interval`, each node takes every partition it is the primary of and
//! holds, and for each replica of those: asks it for its digests ([`PeerRequest::Digests`]
//! — 16 buckets per partition by the top bits of the key's hash, each the wrapping sum of
//! a hash of (key, version) over the live items; tombstones are not digested, since they
//! are collected at different times), compares them with its own, and for the buckets
//! that differ sends its items and tombstones and gets the replica's back
//! ([`PeerRequest::Repair`]). Both sides merge by version (an item over an older one,
//! never over a tombstone at or above it; a tombstone removes older items), which is the
//! hand-off's merge. A node whose store evicted items since its last round takes nothing
//! from repairs: eviction is local to each replica of a cache, and putting evicted items
//! back would only evict others. `stats cluster` counts rounds and items repaired.
//!
//! Like every data request, repairs are fenced by the view: both sides agree on the
//! owners, and both hold the partition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_command::ReplicaItem;
use tokio::time::Instant;

use super::message::PeerRequest;
use super::{PeerResponse, Router, Waited};
use crate::placement::{partition_of, PartitionId, PARTITIONS};

/// Buckets per partition.
pub const BUCKETS: usize = 16;

/// One partition's digests.
pub type Digest = [u64; BUCKETS];

/// The bucket of a key within its partition.
pub fn bucket_of(key: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) >> 60) as usize
}

/// The digest contribution of one item.
fn item_hash(key: &[u8], version: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, version)
}

/// The digests of the live items of `partitions` in `store`, in one scan.
pub fn digests(store: &shoal_store::Store, partitions: &[u16]) -> BTreeMap<u16, Digest> {
    let mut wanted = vec![false; usize::from(PARTITIONS)];
    for &p in partitions {
        wanted[usize::from(p)] = true;
    }
    let mut out: BTreeMap<u16, Digest> = partitions.iter().map(|&p| (p, [0; BUCKETS])).collect();
    store.scan(
        |key| wanted[partition_of(key).index()],
        |item| {
            let p = partition_of(&item.key).get();
            if let Some(d) = out.get_mut(&p) {
                let b = bucket_of(&item.key);
                d[b] = d[b].wrapping_add(item_hash(&item.key, item.cas));
            }
        },
    );
    out
}

/// The live items of the given (partition, bucket) pairs in `store`, in one scan.
pub fn bucket_items(store: &shoal_store::Store, buckets: &[(u16, u8)]) -> Vec<ReplicaItem> {
    let mut wanted = vec![0u16; usize::from(PARTITIONS)];
    for &(p, b) in buckets {
        wanted[usize::from(p)] |= 1 << b;
    }
    let mut items = Vec::new();
    store.scan(
        |key| wanted[partition_of(key).index()] & (1 << bucket_of(key)) != 0,
        |item| items.push(item),
    );
    items
}

/// What repair did on this node.
#[derive(Debug, Default)]
pub struct RepairStats {
    /// Rounds that compared at least one partition with a replica.
    pub rounds: AtomicU64,
    /// Buckets found to differ.
    pub buckets: AtomicU64,
    /// Items (and tombstones) merged here by repair.
    pub items: AtomicU64,
    /// When the last round ended.
    pub last: Mutex<Option<Instant>>,
    /// The store's eviction count when last looked at, and when it last grew.
    evictions: AtomicU64,
    evicted_at: Mutex<Option<Instant>>,
}

impl RepairStats {
    /// Whether the store (now at `evictions` evictions) evicted within `window`. Every
    /// caller sees the same answer, whichever looks first.
    pub fn evicted_within(&self, evictions: u64, window: Duration) -> bool {
        let now = Instant::now();
        let mut at = self.evicted_at.lock();
        if self.evictions.swap(evictions, Ordering::AcqRel) != evictions {
            *at = Some(now);
        }
        at.is_some_and(|t| now.duration_since(t) < window)
    }
}

impl Router {
    /// Compares and repairs, forever.
    pub(super) async fn repair_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.repair_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if self.is_ready() {
                self.repair_round().await;
            }
        }
    }

    /// One round: every replica of every partition this node is the primary of.
    pub(super) async fn repair_round(&self) {
        let view = self.view();
        let mut by_replica: BTreeMap<std::net::SocketAddr, Vec<u16>> = BTreeMap::new();
        for p in PartitionId::all() {
            if view.is_primary(p) && self.sync.is_held(p) {
                for replica in view.other_owners(p) {
                    by_replica.entry(replica).or_default().push(p.get());
                }
            }
        }
        let accept = !self.evicting();
        let mut compared = false;
        for (replica, partitions) in by_replica {
            let until = Instant::now() + self.config.deadline;
            let response = self.call(replica, PeerRequest::Digests(partitions.clone()));
            let theirs = match self
                .wait_peer(response, until, |v| v.is_member(replica))
                .await
            {
                Waited::Answer(PeerResponse::Digests(theirs)) => theirs,
                other => {
                    tracing::debug!(%replica, answer = ?other.describe(), "no digests");
                    continue;
                }
            };
            compared = true;
            let store = Arc::clone(&self.store);
            let parts = partitions.clone();
            let Some(mine) = self.scan(move || digests(&store, &parts)).await else {
                continue;
            };
            let mut differ = Vec::new();
            for (p, their) in theirs {
                let Some(my) = mine.get(&p) else { continue };
                for (b, mine) in my.iter().enumerate() {
                    if their.get(b).copied().unwrap_or(0) != *mine {
                        differ.push((p, b as u8));
                    }
                }
            }
            if differ.is_empty() {
                continue;
            }
            self.repair
                .buckets
                .fetch_add(differ.len() as u64, Ordering::Relaxed);
            let (items, tombstones) = self.bucket_state(&differ).await;
            let request = PeerRequest::Repair {
                buckets: differ.clone(),
                items,
                tombstones,
            };
            let response = self.call(replica, request);
            if let Waited::Answer(PeerResponse::Repair { items, tombstones }) = self
                .wait_peer(response, until, |v| v.is_member(replica))
                .await
            {
                if accept {
                    self.merge_repair(&items, &tombstones);
                }
                tracing::info!(%replica, buckets = differ.len(), "repaired");
            }
        }
        if compared {
            self.repair.rounds.fetch_add(1, Ordering::Relaxed);
            *self.repair.last.lock() = Some(Instant::now());
        }
    }

    /// Whether this store evicted within the last repair interval (then it takes nothing
    /// from repairs).
    fn evicting(&self) -> bool {
        self.repair
            .evicted_within(self.store.stats().evictions, self.config.repair_interval)
    }

    /// This node's items and tombstones in the given buckets.
    async fn bucket_state(&self, buckets: &[(u16, u8)]) -> (Vec<ReplicaItem>, Vec<(Bytes, u64)>) {
        let store = Arc::clone(&self.store);
        let wanted = buckets.to_vec();
        let items = self
            .scan(move || bucket_items(&store, &wanted))
            .await
            .unwrap_or_default();
        let mut tombstones = Vec::new();
        for &(p, b) in buckets {
            if let Some(id) = PartitionId::new(p) {
                tombstones.extend(
                    self.tombstones
                        .of_partition(id)
                        .into_iter()
                        .filter(|(k, _)| bucket_of(k) == usize::from(b)),
                );
            }
        }
        (items, tombstones)
    }

    /// Merges what a repair brought; counts it.
    fn merge_repair(&self, items: &[ReplicaItem], tombstones: &[(Bytes, u64)]) {
        let merged = self.sync.merge_counted(self, items, tombstones, false);
        self.repair.items.fetch_add(merged, Ordering::Relaxed);
    }

    /// Answers a replica's digest request: the partitions this node holds.
    pub(super) async fn serve_digests(&self, partitions: Vec<u16>) -> PeerResponse {
        let held: Vec<u16> = partitions
            .into_iter()
            .filter(|&p| PartitionId::new(p).is_some_and(|id| self.sync.is_held(id)))
            .collect();
        let store = Arc::clone(&self.store);
        let scan = held.clone();
        let Some(mine) = self.scan(move || digests(&store, &scan)).await else {
            return PeerResponse::Digests(Vec::new());
        };
        PeerResponse::Digests(mine.into_iter().map(|(p, d)| (p, d.to_vec())).collect())
    }

    /// Answers a repair: merges what the primary sent (unless this store is evicting),
    /// and gives back this node's items and tombstones of those buckets.
    pub(super) async fn serve_repair(
        &self,
        buckets: Vec<(u16, u8)>,
        items: Vec<ReplicaItem>,
        tombstones: Vec<(Bytes, u64)>,
    ) -> PeerResponse {
        let buckets: Vec<(u16, u8)> = buckets
            .into_iter()
            .filter(|&(p, b)| {
                usize::from(b) < BUCKETS
                    && PartitionId::new(p).is_some_and(|id| self.sync.is_held(id))
            })
            .collect();
        let (mine, my_tombstones) = self.bucket_state(&buckets).await;
        if !self.evicting() {
            self.merge_repair(&items, &tombstones);
        }
        PeerResponse::Repair {
            items: mine,
            tombstones: my_tombstones,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_store::{Store, StoreConfig};

    fn item(key: &str, cas: u64) -> ReplicaItem {
        ReplicaItem {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            flags: 0,
            expires_at: 0,
            cas,
            stale: false,
            binary_key: false,
        }
    }

    #[test]
    fn digests_agree_on_equal_copies_and_point_at_the_differing_bucket() {
        let (a, b) = (
            Store::new(StoreConfig::default()),
            Store::new(StoreConfig::default()),
        );
        for n in 0..500 {
            let it = item(&format!("k{n}"), 100 + n);
            a.apply_replica(&it).unwrap();
            b.apply_replica(&it).unwrap();
        }
        let all: Vec<u16> = (0..PARTITIONS).collect();
        assert_eq!(digests(&a, &all), digests(&b, &all));
        b.apply_replica(&item("k7", 9999)).unwrap();
        let (da, db) = (digests(&a, &all), digests(&b, &all));
        let p = partition_of(b"k7").get();
        let differing: Vec<(u16, usize)> = all
            .iter()
            .flat_map(|&p| (0..BUCKETS).map(move |x| (p, x)))
            .filter(|&(p, x)| da[&p][x] != db[&p][x])
            .collect();
        assert_eq!(differing, vec![(p, bucket_of(b"k7"))]);
        let items = bucket_items(&b, &[(p, bucket_of(b"k7") as u8)]);
        assert!(items.iter().any(|i| &i.key[..] == b"k7" && i.cas == 9999));
        assert!(items.iter().all(|i| partition_of(&i.key).get() == p));
    }

    #[tokio::test(start_paused = true)]
    async fn an_eviction_counts_for_every_caller_within_the_window() {
        let stats = RepairStats::default();
        let window = Duration::from_secs(10);
        assert!(!stats.evicted_within(0, window));
        assert!(stats.evicted_within(3, window));
        assert!(
            stats.evicted_within(3, window),
            "a second caller sees it too"
        );
        tokio::time::advance(window).await;
        assert!(!stats.evicted_within(3, window));
    }
}

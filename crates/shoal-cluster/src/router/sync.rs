//! Hand-off: how an owner that gains a partition (a join, a failure, a restart, a
//! rejoin) gets its items, and how long the last copies are kept.
//!
//! Every node keeps, per partition, whether it *holds* an up-to-date copy ([`Holding`]).
//! When a view makes this node an owner of a partition it does not hold, the partition
//! starts *syncing*: the pull loop asks every other live member for the partition's items
//! and tombstones ([`PeerRequest::Pull`], 32 partitions a request, made on the same view
//! as the source's, so every later write of the partition reaches this node directly) and
//! merges them by version: an item is written only over an older one and never over a
//! tombstone at or above its version; a tombstone removes older items. A partition is
//! held once every member answered and at least one of them holds it as a current or
//! former owner; when every member answered and none does, no copy survives anywhere (a
//! new cluster, or more failures than replicas) and the partition starts empty.
//!
//! Until then, a primary merges a command's key from every member before executing it
//! ([`Router::merge_key`]), and fails the command rather than act on a partial copy.
//!
//! The last copy stays: a node that stops owning a partition it held keeps it as a
//! *former* owner, answers pulls with it, and drops it only when every current owner
//! reports (through the status poll, on the same view) that it holds the partition.
//!
//! Start-up: a node started with `--join` holds nothing until it has seen another member.
//! A node started without `--join` waits `bootstrap_wait` for members to reach it (a
//! restarted first node is found by the members that knew it) before it founds a new
//! cluster alone; until then it serves nothing. A node the cluster declared down rejoins
//! under a new incarnation and syncs every partition again. It starts empty if it was
//! paused (see `pause`: its sockets held stale requests, applied after it resumed) or
//! away longer than the tombstone horizon; otherwise (it was cut off) it keeps its copy
//! for the merge, and tombstones and the flush version bury what was deleted meanwhile.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_command::ReplicaItem;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::message::{Holding, KeyState, NodeStatus, PulledPartition};
use super::tombstones::TOMBSTONE_HORIZON;
use super::{PeerRequest, PeerResponse, Router, View, Waited};
use crate::placement::{partition_of, PartitionId, PARTITIONS};

/// Partitions asked for in one pull request.
const PULL_BATCH: usize = 32;
/// How long one pull request may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the pull loop looks for work without being woken.
const PULL_RETRY: Duration = Duration::from_millis(500);

/// A partition being pulled.
#[derive(Debug)]
struct Syncing {
    /// Members to pull from.
    sources: Vec<SocketAddr>,
}

#[derive(Debug)]
struct Inner {
    /// The node may act on its view: it has seen another member, or founded a cluster.
    authoritative: bool,
    /// A node started without seeds founds a cluster alone only after this.
    bootstrap_until: Option<Instant>,
    /// Partitions held up to date.
    held: Vec<bool>,
    syncing: BTreeMap<u16, Syncing>,
    /// Partitions held until the view moved them away, since when.
    former: BTreeMap<u16, Instant>,
    /// The last time this node was in a view with another member.
    last_company: Instant,
}

/// The hand-off state of one node.
#[derive(Debug)]
pub(super) struct SyncState {
    inner: Mutex<Inner>,
    /// Lock-free copy of "is held" per partition, for the request path.
    held: Box<[AtomicBool]>,
    /// Lock-free copy of `authoritative`.
    ready: AtomicBool,
    wake: Notify,
    pulled_items: AtomicU64,
    pulled_bytes: AtomicU64,
}

impl SyncState {
    /// The state of a node that joins a cluster (`bootstrap` None: it holds nothing until
    /// it has seen a member) or starts without seeds (it founds a cluster alone after
    /// `bootstrap`, unless a member reaches it first).
    pub(super) fn new(bootstrap: Option<Duration>) -> SyncState {
        SyncState {
            inner: Mutex::new(Inner {
                authoritative: false,
                bootstrap_until: bootstrap.map(|wait| Instant::now() + wait),
                held: vec![false; usize::from(PARTITIONS)],
                syncing: BTreeMap::new(),
                former: BTreeMap::new(),
                last_company: Instant::now(),
            }),
            held: (0..PARTITIONS).map(|_| AtomicBool::new(false)).collect(),
            ready: AtomicBool::new(false),
            wake: Notify::new(),
            pulled_items: AtomicU64::new(0),
            pulled_bytes: AtomicU64::new(0),
        }
    }

    /// Whether this node may act on its view at all.
    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether `p` is held up to date here.
    pub(super) fn is_held(&self, p: PartitionId) -> bool {
        self.held[p.index()].load(Ordering::Acquire)
    }

    /// Partitions still being pulled.
    pub(super) fn pending(&self) -> usize {
        self.inner.lock().syncing.len()
    }

    /// Partitions kept as a former owner (some new owner does not hold them yet).
    pub(super) fn former(&self) -> usize {
        self.inner.lock().former.len()
    }

    /// How this node holds `p`, as it answers pulls and exports.
    pub(super) fn holding(&self, p: PartitionId) -> Holding {
        let inner = self.inner.lock();
        if inner.held[p.index()] {
            Holding::Current
        } else if inner.former.contains_key(&p.get()) {
            Holding::Former
        } else if inner.syncing.contains_key(&p.get()) {
            Holding::Syncing
        } else {
            Holding::None
        }
    }

    /// The members `p` is pulled from, if it is syncing.
    fn sources(&self, p: PartitionId) -> Option<Vec<SocketAddr>> {
        let inner = self.inner.lock();
        inner.syncing.get(&p.get()).map(|s| s.sources.clone())
    }

    fn set_held(&self, inner: &mut Inner, i: usize, held: bool) {
        inner.held[i] = held;
        self.held[i].store(held, Ordering::Release);
    }

    /// Partition `i` is no longer vouched for as current here; if it was held, the copy
    /// stays as a former owner's (kept, merged, vouched for as complete until `now`).
    fn demote(&self, inner: &mut Inner, i: usize, now: Instant) {
        if inner.held[i] {
            inner.former.insert(i as u16, now);
        }
        self.set_held(inner, i, false);
    }

    /// The status this node reports to the poll.
    pub(super) fn status(&self, items: u64) -> NodeStatus {
        let inner = self.inner.lock();
        let mut held = vec![0u8; usize::from(PARTITIONS).div_ceil(8)];
        for (i, h) in inner.held.iter().enumerate() {
            if *h {
                held[i / 8] |= 1 << (i % 8);
            }
        }
        NodeStatus {
            items,
            held,
            syncing: inner.syncing.len() as u32,
            pulled_items: self.pulled_items.load(Ordering::Relaxed),
            pulled_bytes: self.pulled_bytes.load(Ordering::Relaxed),
            repaired_items: 0,
            last_repair_ms: None,
        }
    }

    /// Founds a cluster alone once the bootstrap wait is over and no member showed up.
    /// True if it did.
    pub(super) fn bootstrap_due(&self, view: &View) -> bool {
        let mut inner = self.inner.lock();
        let due = !inner.authoritative
            && view.counts.len() < 2
            && inner.bootstrap_until.is_some_and(|t| Instant::now() >= t);
        if due {
            tracing::info!("no member reached this node: founding a new cluster");
            inner.authoritative = true;
            inner.bootstrap_until = None;
            for i in 0..usize::from(PARTITIONS) {
                self.set_held(&mut inner, i, true);
            }
            self.ready.store(true, Ordering::Release);
        }
        due
    }

    /// Adjusts what is held and what syncs to a new view (`old` is the view it replaces;
    /// `renewed` says this node rejoined under a new identity, `discard` that it must
    /// start empty: it was paused meanwhile, so the others served without it).
    pub(super) fn on_view(
        &self,
        router: &Router,
        old: Option<&View>,
        new: &View,
        renewed: bool,
        discard: bool,
        quorum: bool,
    ) {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        let company = new.counts.len() >= 2;
        if renewed {
            let away = now.duration_since(inner.last_company);
            if discard || away >= TOMBSTONE_HORIZON / 2 {
                for i in 0..usize::from(PARTITIONS) {
                    self.set_held(&mut inner, i, false);
                }
                inner.former.clear();
                let removed = router.store.retain(|_| false);
                tracing::warn!(
                    ?away,
                    removed,
                    "rejoined after a pause or a long absence: starting empty"
                );
            } else {
                // Declared down, but not paused: what it held was complete when the view
                // moved, so it stays a former owner's copy (kept, merged, vouched for)
                // while every partition it owns is pulled again.
                for i in 0..usize::from(PARTITIONS) {
                    self.demote(&mut inner, i, now);
                }
                tracing::info!(
                    ?away,
                    "rejoined under a new incarnation: syncing everything"
                );
            }
        }
        if company {
            inner.last_company = now;
        }
        if !quorum {
            // Cut off: the other side may move on, so nothing here is vouched for; it is
            // all merged again once the quorum is back.
            for i in 0..usize::from(PARTITIONS) {
                self.demote(&mut inner, i, now);
            }
            inner.syncing.clear();
            return;
        }
        if !inner.authoritative {
            if !company {
                return;
            }
            inner.authoritative = true;
            inner.bootstrap_until = None;
            self.ready.store(true, Ordering::Release);
        }
        let others: Vec<SocketAddr> = new.others().collect();
        let mut stale = vec![false; usize::from(PARTITIONS)];
        let mut any_stale = false;
        for p in PartitionId::all() {
            let i = p.index();
            if !new.is_owner(p, new.local) {
                self.demote(&mut inner, i, now);
                inner.syncing.remove(&p.get());
                continue;
            }
            if inner.held[i] {
                continue;
            }
            if others.is_empty() {
                tracing::trace!(local = %new.local, partition = p.get(), "last member standing");
                // The last member standing: whatever it has is all there is.
                self.set_held(&mut inner, i, true);
                inner.syncing.remove(&p.get());
                inner.former.remove(&p.get());
                continue;
            }
            let was_owner = old.is_some_and(|o| o.is_owner(p, new.local));
            if !was_owner
                && !inner.former.contains_key(&p.get())
                && !inner.syncing.contains_key(&p.get())
            {
                // Items from an earlier, partial ownership: no copy to vouch for.
                stale[i] = true;
                any_stale = true;
            }
            inner.former.remove(&p.get());
            inner
                .syncing
                .entry(p.get())
                .or_insert_with(|| Syncing {
                    sources: Vec::new(),
                })
                .sources = others.clone();
        }
        if any_stale {
            let removed = router.store.retain(|key| !stale[partition_of(key).index()]);
            if removed > 0 {
                tracing::info!(removed, "dropped unvouched items of partitions gained");
            }
        }
        if !inner.syncing.is_empty() {
            tracing::info!(
                partitions = inner.syncing.len(),
                "pulling partitions gained"
            );
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// Merges one source's copy of a key or partition: items by version, unless a
    /// tombstone buries them; tombstones remove older items. Returns items merged.
    fn merge(&self, router: &Router, items: &[ReplicaItem], tombstones: &[(Bytes, u64)]) -> u64 {
        self.merge_counted(router, items, tombstones, true)
    }

    /// [`SyncState::merge`], counting what it merged as pulled (hand-off) or not
    /// (repair); items and removals it changed here.
    pub(super) fn merge_counted(
        &self,
        router: &Router,
        items: &[ReplicaItem],
        tombstones: &[(Bytes, u64)],
        pulled: bool,
    ) -> u64 {
        let mut merged = 0;
        for (key, version) in tombstones {
            let p = partition_of(key);
            let _guard = router.locks[p.index()].lock();
            router.tombstones.record(p, key, *version);
            if router.store.remove_if_older(key, *version) {
                merged += u64::from(!pulled);
            }
        }
        for item in items {
            let p = partition_of(&item.key);
            let _guard = router.locks[p.index()].lock();
            if router.tombstones.buries(p, &item.key, item.cas) {
                continue;
            }
            match router.store.apply_replica(item) {
                Ok(true) => {
                    merged += 1;
                    if pulled {
                        self.pulled_items.fetch_add(1, Ordering::Relaxed);
                        self.pulled_bytes.fetch_add(
                            (item.key.len() + item.value.len()) as u64,
                            Ordering::Relaxed,
                        );
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(?error, "a pulled item could not be stored"),
            }
        }
        merged
    }

    /// Marks `partitions` held if they are still syncing from exactly `sources`.
    fn finish(&self, partitions: &[u16], sources: &[SocketAddr]) {
        let mut inner = self.inner.lock();
        for &p in partitions {
            if inner.syncing.get(&p).is_some_and(|s| s.sources == sources) {
                inner.syncing.remove(&p);
                self.set_held(&mut inner, usize::from(p), true);
            }
        }
        if inner.syncing.is_empty() {
            tracing::info!("every partition gained is pulled");
        }
    }

    /// Drops the copies this node keeps as a former owner once every current owner holds
    /// the partition (`holds(owner, p)` from the status poll, on this view).
    fn drop_former(&self, router: &Router, view: &View, holds: impl Fn(SocketAddr, u16) -> bool) {
        let mut inner = self.inner.lock();
        let done: Vec<u16> = inner
            .former
            .keys()
            .copied()
            .filter(|&p| {
                let id = PartitionId::new(p).expect("a partition number");
                view.other_owners(id).all(|owner| holds(owner, p))
            })
            .collect();
        if done.is_empty() {
            return;
        }
        let mut drop_it = vec![false; usize::from(PARTITIONS)];
        for p in &done {
            inner.former.remove(p);
            drop_it[usize::from(*p)] = true;
        }
        // Still under the lock: a view that gives a partition back waits for this.
        let removed = router
            .store
            .retain(|key| !drop_it[partition_of(key).index()]);
        drop(inner);
        tracing::info!(
            partitions = done.len(),
            removed,
            "dropped copies of partitions every new owner holds"
        );
    }

    /// Those of `partitions` still syncing from exactly `sources`: a view change since
    /// [`work`](Self::work) was computed may have finished them, dropped them or given
    /// them other sources (the next round of the pull loop takes those).
    fn still_syncing_from(&self, partitions: &[u16], sources: &[SocketAddr]) -> Vec<u16> {
        let inner = self.inner.lock();
        partitions
            .iter()
            .copied()
            .filter(|p| inner.syncing.get(p).is_some_and(|s| s.sources == sources))
            .collect()
    }

    /// The syncing partitions grouped by their sources.
    fn work(&self) -> Vec<(Vec<SocketAddr>, Vec<u16>)> {
        let inner = self.inner.lock();
        let mut groups: BTreeMap<Vec<SocketAddr>, Vec<u16>> = BTreeMap::new();
        for (&p, s) in &inner.syncing {
            groups.entry(s.sources.clone()).or_default().push(p);
        }
        let mut work: Vec<_> = groups.into_iter().collect();
        for (_, partitions) in &mut work {
            partitions.sort_unstable();
        }
        work
    }
}

/// Whether a copy held this way may be merged.
fn mergeable(holding: Holding) -> bool {
    holding != Holding::None
}

/// Whether a copy held this way has every acknowledged write of its partition.
fn complete(holding: Holding) -> bool {
    matches!(holding, Holding::Current | Holding::Former)
}

impl Router {
    /// Pulls syncing partitions from their sources, forever; founds a cluster when the
    /// bootstrap wait ends alone, and drops former copies every owner now holds.
    pub(super) async fn pull_loop(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(PULL_RETRY, self.sync.wake.notified()).await;
            let view = self.view();
            if self.sync.bootstrap_due(&view) {
                self.views.touch();
            }
            self.tombstones.collect();
            self.sync
                .drop_former(&self, &view, |owner, p| self.peer_holds(&view, owner, p));
            for (sources, partitions) in self.sync.work() {
                for batch in partitions.chunks(PULL_BATCH) {
                    // Skip what a newer view changed: the next round takes it.
                    let batch = self.sync.still_syncing_from(batch, &sources);
                    if batch.is_empty() {
                        continue;
                    }
                    let done = self.pull(&sources, &batch).await;
                    tracing::trace!(local = %self.view().local, ?sources, ?done, "pull round");
                    if !done.is_empty() {
                        self.sync.finish(&done, &sources);
                    }
                }
            }
        }
    }

    /// Pulls `partitions` from every source; returns those that are now complete: every
    /// source answered, and one held it as a current or former owner or none had it.
    async fn pull(&self, sources: &[SocketAddr], partitions: &[u16]) -> Vec<u16> {
        let mut answered = vec![0usize; partitions.len()];
        let mut vouched = vec![false; partitions.len()];
        let pending: Vec<_> = sources
            .iter()
            .map(|&s| (s, self.call(s, PeerRequest::Pull(partitions.to_vec()))))
            .collect();
        let until = Instant::now() + PULL_TIMEOUT;
        for (source, response) in pending {
            // A view that changes what these partitions sync from abandons the pull.
            let still = |v: &View| {
                v.is_member(source)
                    && self.sync.still_syncing_from(partitions, sources).len() == partitions.len()
            };
            match self.wait_peer(response, until, still).await {
                Waited::Answer(PeerResponse::Partitions(pulled))
                    if pulled.len() == partitions.len() =>
                {
                    let mut merged = 0;
                    for (i, part) in pulled.iter().enumerate() {
                        answered[i] += 1;
                        vouched[i] |= complete(part.holding);
                        if mergeable(part.holding) {
                            merged += self.sync.merge(self, &part.items, &part.tombstones);
                        }
                    }
                    tracing::debug!(%source, merged, "pulled");
                }
                Waited::Moved => return Vec::new(),
                other => {
                    tracing::debug!(%source, answer = ?other.describe(), "pull failed, will retry");
                }
            }
        }
        let mut done = Vec::new();
        let mut unvouched = 0;
        for (i, &p) in partitions.iter().enumerate() {
            if answered[i] == sources.len() {
                unvouched += usize::from(!vouched[i]);
                done.push(p);
            }
        }
        if unvouched > 0 {
            // A new cluster, or more failures than replicas: what the members had is all
            // there is.
            tracing::info!(
                partitions = unvouched,
                "no member held a complete copy: starting from what was left"
            );
        }
        done
    }

    /// Before a primary uses `key` of syncing partition `p`: merges the key's item and
    /// tombstone from every member. False if some member did not answer (the command must
    /// not run on a partial copy).
    pub(super) async fn merge_key(&self, p: PartitionId, key: &Bytes, until: Instant) -> bool {
        let Some(sources) = self.sync.sources(p) else {
            return true;
        };
        let pending: Vec<_> = sources
            .iter()
            .map(|&s| (s, self.call(s, PeerRequest::Export(key.clone()))))
            .collect();
        let mut all = true;
        tracing::trace!(local = %self.view().local, partition = p.get(), ?key, ?sources, "merging a key");
        for (source, response) in pending {
            match self
                .wait_peer(response, until, |v| v.is_member(source))
                .await
            {
                Waited::Answer(PeerResponse::Key { state, holding }) => {
                    tracing::trace!(%source, ?holding, ?state, "key state");
                    if mergeable(holding) {
                        let KeyState { item, tombstone } = state;
                        let tombstones: Vec<(Bytes, u64)> =
                            tombstone.map(|v| (key.clone(), v)).into_iter().collect();
                        self.sync.merge(self, item.as_slice(), &tombstones);
                    }
                }
                Waited::Moved => {}
                _ => all = false,
            }
        }
        all
    }

    /// The state of `key` here, for a member merging it.
    pub(super) fn export_key(&self, key: &Bytes) -> PeerResponse {
        let p = partition_of(key);
        // Writes applied under the lock are in the answer.
        let _guard = self.locks[p.index()].lock();
        PeerResponse::Key {
            state: KeyState {
                item: self.store.export(key),
                tombstone: self.tombstones.version(p, key),
            },
            holding: self.sync.holding(p),
        }
    }

    /// Answers a pull (made on this node's view): once every write already applied here
    /// has left its partition's lock, each partition's items and tombstones.
    pub(super) async fn serve_pull(self: Arc<Self>, partitions: Vec<u16>) -> PeerResponse {
        let ids: Vec<PartitionId> = partitions
            .iter()
            .filter_map(|&p| PartitionId::new(p))
            .collect();
        let holdings: Vec<Holding> = ids
            .iter()
            .map(|&p| {
                drop(self.locks[p.index()].lock());
                self.sync.holding(p)
            })
            .collect();
        let tombstones: Vec<Vec<(Bytes, u64)>> = ids
            .iter()
            .map(|&p| self.tombstones.of_partition(p))
            .collect();
        let store = Arc::clone(&self.store);
        let scan_ids = ids.clone();
        let scan = self.scan(move || {
            let mut slot = vec![usize::MAX; usize::from(PARTITIONS)];
            for (n, p) in scan_ids.iter().enumerate() {
                slot[p.index()] = n;
            }
            let mut items: Vec<Vec<ReplicaItem>> = vec![Vec::new(); scan_ids.len()];
            store.scan(
                |key| slot[partition_of(key).index()] != usize::MAX,
                |item| items[slot[partition_of(&item.key).index()]].push(item),
            );
            items
        });
        let Some(items) = scan.await else {
            return PeerResponse::Refused(super::message::Refusal::NotReady);
        };
        let pulled = holdings
            .into_iter()
            .zip(items)
            .zip(tombstones)
            .map(|((holding, items), tombstones)| PulledPartition {
                holding,
                items: if mergeable(holding) {
                    items
                } else {
                    Vec::new()
                },
                tombstones,
            })
            .collect();
        PeerResponse::Partitions(pulled)
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;

//! Hand-off: how an owner that gains a partition (a join, a failure, a rejoin) gets its
//! items.
//!
//! Every node keeps, per partition, whether it *holds* an up-to-date copy. When a view
//! makes this node an owner of a partition it does not hold, the partition starts
//! *syncing*: its sources are the owners the partition would have without this node
//! (by rendezvous, exactly the live members that held it before). The pull loop asks each
//! source for the partition's items ([`PeerRequest::Pull`], 32 partitions a request) and
//! merges them by version; keys removed meanwhile are remembered so a pulled copy cannot
//! bring them back. Until the pull ends, a primary merges a command's key from the sources
//! before executing it, so reads see the data and CAS, incr and append act on it.
//!
//! A partition this node gains without having owned it before is first emptied of
//! leftovers (items from an earlier ownership, possibly deleted since). After a rejoin
//! (the cluster declared this node down), nothing it holds is trusted: every owned
//! partition syncs again, merging by version.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_command::ReplicaItem;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{PeerRequest, PeerResponse, Router, View, Waited};
use crate::node::NodeId;
use crate::placement::{partition_of, PartitionId, PlacementMap, PARTITIONS};

/// Partitions asked for in one pull request.
const PULL_BATCH: usize = 32;
/// How long one pull request may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the pull loop looks for work without being woken.
const PULL_RETRY: Duration = Duration::from_millis(500);
/// How long the items of a partition this node no longer owns are kept (new owners pull
/// them meanwhile) before they are dropped.
const LEFTOVER_GRACE: Duration = Duration::from_secs(30);

/// A partition being pulled.
#[derive(Debug)]
struct Syncing {
    /// Members to pull from.
    sources: Vec<SocketAddr>,
    /// Keys removed since the sync began.
    removed: HashSet<Bytes>,
}

#[derive(Debug)]
struct Inner {
    /// The node may trust its own view: it started alone, or has seen another member.
    authoritative: bool,
    /// Partitions held up to date.
    held: Vec<bool>,
    syncing: HashMap<u16, Syncing>,
    /// Partitions no longer owned, since when.
    lost: HashMap<u16, Instant>,
}

/// The hand-off state of one node.
#[derive(Debug)]
pub(super) struct SyncState {
    inner: Mutex<Inner>,
    /// Lock-free copy of "is syncing" per partition, for the request path.
    flags: Box<[AtomicBool]>,
    wake: Notify,
}

impl SyncState {
    /// The state of a node that starts alone (`authoritative`: it holds every partition,
    /// all empty) or joins a cluster (it holds nothing until it has pulled).
    pub(super) fn new(authoritative: bool) -> SyncState {
        SyncState {
            inner: Mutex::new(Inner {
                authoritative,
                held: vec![authoritative; usize::from(PARTITIONS)],
                syncing: HashMap::new(),
                lost: HashMap::new(),
            }),
            flags: (0..PARTITIONS).map(|_| AtomicBool::new(false)).collect(),
            wake: Notify::new(),
        }
    }

    /// Whether `p` is being pulled.
    pub(super) fn is_syncing(&self, p: PartitionId) -> bool {
        self.flags[p.index()].load(Ordering::Acquire)
    }

    /// Partitions still being pulled.
    pub(super) fn pending(&self) -> usize {
        self.inner.lock().syncing.len()
    }

    /// The members `p` is pulled from, if it is syncing.
    fn sources(&self, p: PartitionId) -> Option<Vec<SocketAddr>> {
        if !self.is_syncing(p) {
            return None;
        }
        let inner = self.inner.lock();
        inner.syncing.get(&p.get()).map(|s| s.sources.clone())
    }

    /// Remembers that `key` was removed, if its partition is syncing.
    pub(super) fn note_removed(&self, p: PartitionId, key: &Bytes) {
        if self.is_syncing(p) {
            if let Some(s) = self.inner.lock().syncing.get_mut(&p.get()) {
                s.removed.insert(key.clone());
            }
        }
    }

    /// Adjusts what is held and what syncs to a new view (`old` is the view it replaces;
    /// `renewed` says this node rejoined under a new identity).
    pub(super) fn on_view(&self, router: &Router, old: Option<&View>, new: &View, renewed: bool) {
        let mut inner = self.inner.lock();
        if renewed {
            inner.held.iter_mut().for_each(|h| *h = false);
        }
        if !inner.authoritative {
            if new.counts.len() < 2 {
                return;
            }
            inner.authoritative = true;
        }
        let others: Vec<NodeId> = new
            .map
            .members()
            .iter()
            .copied()
            .filter(|m| m.addr() != new.local)
            .collect();
        let without_me = PlacementMap::compute(&others, router.config.replicas);
        let mut leftovers = vec![false; usize::from(PARTITIONS)];
        let mut any_leftovers = false;
        for p in PartitionId::all() {
            let i = p.index();
            if !new.is_owner(p, new.local) {
                if old.is_none_or(|o| o.is_owner(p, new.local)) {
                    inner.lost.entry(p.get()).or_insert_with(Instant::now);
                }
                inner.held[i] = false;
                inner.syncing.remove(&p.get());
                self.flags[i].store(false, Ordering::Release);
                continue;
            }
            inner.lost.remove(&p.get());
            if inner.held[i] {
                continue;
            }
            let sources: Vec<SocketAddr> = if others.is_empty() {
                Vec::new()
            } else {
                without_me.owners(p).iter().map(NodeId::addr).collect()
            };
            if sources.is_empty() {
                inner.held[i] = true;
                inner.syncing.remove(&p.get());
                self.flags[i].store(false, Ordering::Release);
                continue;
            }
            let was_owner = old.is_some_and(|o| o.is_owner(p, new.local));
            if !was_owner && !inner.syncing.contains_key(&p.get()) {
                leftovers[i] = true;
                any_leftovers = true;
            }
            inner
                .syncing
                .entry(p.get())
                .or_insert_with(|| Syncing {
                    sources: Vec::new(),
                    removed: HashSet::new(),
                })
                .sources = sources;
            self.flags[i].store(true, Ordering::Release);
        }
        if any_leftovers {
            let removed = router
                .store
                .retain(|key| !leftovers[partition_of(key).index()]);
            tracing::info!(removed, "dropped leftovers of partitions gained");
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

    /// Merges pulled or fetched items, skipping keys removed since the sync began and
    /// partitions no longer syncing.
    fn merge(&self, router: &Router, items: &[ReplicaItem]) -> usize {
        let mut merged = 0;
        for item in items {
            let p = partition_of(&item.key);
            if !self.is_syncing(p) {
                continue;
            }
            let _guard = router.locks[p.index()].lock();
            let removed = {
                let inner = self.inner.lock();
                inner
                    .syncing
                    .get(&p.get())
                    .is_none_or(|s| s.removed.contains(&item.key))
            };
            if removed {
                continue;
            }
            match router.store.apply_replica(item) {
                Ok(true) => merged += 1,
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
                inner.held[usize::from(p)] = true;
                self.flags[usize::from(p)].store(false, Ordering::Release);
            }
        }
        if inner.syncing.is_empty() {
            tracing::info!("every partition gained is pulled");
        }
    }

    /// Drops the items of partitions lost longer than [`LEFTOVER_GRACE`] ago.
    fn drop_leftovers(&self, router: &Router) {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        let expired: Vec<u16> = inner
            .lost
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= LEFTOVER_GRACE)
            .map(|(&p, _)| p)
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut drop_it = vec![false; usize::from(PARTITIONS)];
        for p in &expired {
            inner.lost.remove(p);
            drop_it[usize::from(*p)] = true;
        }
        // Still under the lock: a view that gives a partition back waits for this.
        let removed = router
            .store
            .retain(|key| !drop_it[partition_of(key).index()]);
        drop(inner);
        tracing::info!(
            partitions = expired.len(),
            removed,
            "dropped items of partitions no longer owned"
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
        let mut groups: HashMap<Vec<SocketAddr>, Vec<u16>> = HashMap::new();
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

impl Router {
    /// Pulls syncing partitions from their sources, forever.
    pub(super) async fn pull_loop(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(PULL_RETRY, self.sync.wake.notified()).await;
            self.sync.drop_leftovers(&self);
            for (sources, partitions) in self.sync.work() {
                for batch in partitions.chunks(PULL_BATCH) {
                    // Skip what a newer view changed: a source asked for a partition its
                    // own view does not give us would hold the pull for seconds, and every
                    // command on a syncing partition costs a merge round trip meanwhile.
                    let batch = self.sync.still_syncing_from(batch, &sources);
                    if batch.is_empty() {
                        continue;
                    }
                    if self.pull(&sources, &batch).await {
                        self.sync.finish(&batch, &sources);
                    }
                }
            }
        }
    }

    /// Pulls `partitions` from every source; true if all of them answered.
    async fn pull(&self, sources: &[SocketAddr], partitions: &[u16]) -> bool {
        let local = self.view().local;
        let mut complete = true;
        for &source in sources {
            let request = PeerRequest::Pull {
                requester: local,
                partitions: partitions.to_vec(),
            };
            let response = self.peers.get(source).send(request);
            let until = Instant::now() + PULL_TIMEOUT;
            // A view that changes what these partitions sync from abandons the pull (the
            // source may be holding it until its own view agrees, for seconds): the next
            // round of the pull loop asks again for what is still wanted.
            let still = |v: &View| {
                v.is_member(source)
                    && self.sync.still_syncing_from(partitions, sources).len() == partitions.len()
            };
            match self.wait_peer(response, until, still).await {
                Waited::Answer(PeerResponse::Items(items)) => {
                    let merged = self.sync.merge(self, &items);
                    tracing::debug!(%source, received = items.len(), merged, "pulled");
                }
                Waited::Moved => {
                    // The source left, or the partitions' sources changed: the next round
                    // pulls what is still wanted.
                    return false;
                }
                _ => {
                    tracing::debug!(%source, "pull failed, will retry");
                    complete = false;
                }
            }
        }
        complete
    }

    /// Before a primary uses `key` of syncing partition `p`: merges the key's item from
    /// the sources.
    pub(super) async fn merge_key(&self, p: PartitionId, key: &Bytes) {
        let Some(sources) = self.sync.sources(p) else {
            return;
        };
        let pending: Vec<_> = sources
            .iter()
            .map(|&s| (s, self.peers.get(s).send(PeerRequest::Export(key.clone()))))
            .collect();
        let until = Instant::now() + self.config.read_timeout;
        for (source, response) in pending {
            if let Waited::Answer(PeerResponse::Item(Some(item))) = self
                .wait_peer(response, until, |v| v.is_member(source))
                .await
            {
                self.sync.merge(self, std::slice::from_ref(&item));
            }
        }
    }

    /// Answers a pull: once this node's view makes `requester` an owner of every partition
    /// asked (or after a while), and every write already applied here under the old view
    /// has left its lock, the partitions' items.
    pub(super) async fn serve_pull(
        self: Arc<Self>,
        requester: SocketAddr,
        partitions: Vec<u16>,
    ) -> PeerResponse {
        let ids: Vec<PartitionId> = partitions
            .iter()
            .filter_map(|&p| PartitionId::new(p))
            .collect();
        let mut views = self.view_tx.subscribe();
        let agreed = |v: &View| ids.iter().all(|&p| v.is_owner(p, requester));
        let until = Instant::now() + Duration::from_secs(3);
        while !agreed(&views.borrow_and_update()) {
            match tokio::time::timeout_at(until, views.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        for p in &ids {
            drop(self.locks[p.index()].lock());
        }
        let store = Arc::clone(&self.store);
        let scan = tokio::task::spawn_blocking(move || {
            let mut wanted = vec![false; usize::from(PARTITIONS)];
            for p in &ids {
                wanted[p.index()] = true;
            }
            let mut items = Vec::new();
            store.scan(
                |key| wanted[partition_of(key).index()],
                |item| items.push(item),
            );
            items
        });
        PeerResponse::Items(scan.await.unwrap_or_default())
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;

//! One membership view as the router uses it: the [`PlacementMap`] computed from the live
//! members, this node's identity, the view's digest (what node-to-node requests are
//! fenced by), and per-member partition counts for `stats cluster`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::node::NodeId;
use crate::placement::{PartitionId, PlacementMap};

/// A placement as seen from one node.
#[derive(Debug)]
pub struct View {
    /// The owners of every partition.
    pub map: PlacementMap,
    /// This node's cluster address.
    pub local: SocketAddr,
    /// This node's identity (address and incarnation).
    pub local_id: NodeId,
    /// A digest of the live members' identities and the replica count: two nodes with the
    /// same digest compute the same owners for every partition.
    pub digest: u64,
    /// Partitions held as (primary, replica) by each live member.
    pub counts: BTreeMap<SocketAddr, (u64, u64)>,
}

impl View {
    /// The view of `members` (self included) with `replicas` wanted owners per partition.
    pub fn new(members: &[NodeId], replicas: usize, local_id: NodeId) -> View {
        let local = local_id.addr();
        let map = PlacementMap::compute(members, replicas);
        let mut bytes = Vec::with_capacity(members.len() * 28 + 8);
        bytes.extend_from_slice(&(replicas as u64).to_be_bytes());
        for member in map.members() {
            bytes.extend_from_slice(&member.placement_key());
            bytes.extend_from_slice(&member.incarnation().to_be_bytes());
        }
        let digest = xxhash_rust::xxh3::xxh3_64(&bytes);
        let mut counts: BTreeMap<SocketAddr, (u64, u64)> =
            map.members().iter().map(|m| (m.addr(), (0, 0))).collect();
        for p in PartitionId::all() {
            for (rank, owner) in map.owners(p).iter().enumerate() {
                let entry = counts.entry(owner.addr()).or_default();
                if rank == 0 {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
        }
        View {
            map,
            local,
            local_id,
            digest,
            counts,
        }
    }

    /// The identity of the live member at `addr`.
    pub fn id_of(&self, addr: SocketAddr) -> Option<NodeId> {
        self.map
            .members()
            .iter()
            .copied()
            .find(|m| m.addr() == addr)
    }

    /// The owners of `p`, primary first.
    pub fn owners(&self, p: PartitionId) -> &[NodeId] {
        self.map.owners(p)
    }

    /// The address of `p`'s primary, if there are members.
    pub fn primary(&self, p: PartitionId) -> Option<SocketAddr> {
        self.map.primary(p).map(|n| n.addr())
    }

    /// Whether this node is `p`'s primary.
    pub fn is_primary(&self, p: PartitionId) -> bool {
        self.primary(p) == Some(self.local)
    }

    /// Whether `addr` is one of `p`'s owners.
    pub fn is_owner(&self, p: PartitionId, addr: SocketAddr) -> bool {
        self.owners(p).iter().any(|o| o.addr() == addr)
    }

    /// Every live member but this node.
    pub fn others(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let local = self.local;
        self.counts.keys().copied().filter(move |a| *a != local)
    }

    /// The other owners of `p` (its replicas, when this node is the primary).
    pub fn other_owners(&self, p: PartitionId) -> impl Iterator<Item = SocketAddr> + '_ {
        let local = self.local;
        self.owners(p)
            .iter()
            .map(|o| o.addr())
            .filter(move |a| *a != local)
    }

    /// Whether `addr` is a live member.
    pub fn is_member(&self, addr: SocketAddr) -> bool {
        self.counts.contains_key(&addr)
    }
}

/// How many `Notify`s the waiters of a [`ViewCell`] are spread over: every forwarded
/// request waits for a view change, and one waiter list would be a lock all worker
/// threads take twice per request.
const STRIPES: usize = 8;

/// The current [`View`] and a wake-up for whoever waits for the next one.
///
/// Not a `tokio::sync::watch`: it too spreads its waiters over several `Notify`s, but
/// picks one at random, so receivers wake in a random order, and the simulator must
/// replay a seed exactly. Here waiters take the stripes in turn, and a change wakes the
/// stripes in order.
#[derive(Debug)]
pub(super) struct ViewCell {
    current: parking_lot::RwLock<std::sync::Arc<View>>,
    version: std::sync::atomic::AtomicU64,
    changes: [tokio::sync::Notify; STRIPES],
    next_stripe: std::sync::atomic::AtomicUsize,
}

impl ViewCell {
    pub(super) fn new(view: std::sync::Arc<View>) -> ViewCell {
        ViewCell {
            current: parking_lot::RwLock::new(view),
            version: std::sync::atomic::AtomicU64::new(0),
            changes: std::array::from_fn(|_| tokio::sync::Notify::new()),
            next_stripe: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The current view.
    pub(super) fn get(&self) -> std::sync::Arc<View> {
        std::sync::Arc::clone(&self.current.read())
    }

    /// How many changes there were so far (what [`ViewCell::changed`] compares with).
    pub(super) fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Replaces the view and wakes every waiter.
    pub(super) fn set(&self, view: std::sync::Arc<View>) {
        *self.current.write() = view;
        self.touch();
    }

    /// Wakes every waiter as if the view changed (this node's standing changed).
    pub(super) fn touch(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        for stripe in &self.changes {
            stripe.notify_waiters();
        }
    }

    /// Waits for a change after version `seen`, and records the new version in it.
    pub(super) async fn changed(&self, seen: &mut u64) {
        let stripe = self
            .next_stripe
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % STRIPES;
        loop {
            let notified = self.changes[stripe].notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.version();
            if now != *seen {
                *seen = now;
                return;
            }
            notified.await;
        }
    }
}

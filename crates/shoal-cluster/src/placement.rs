//! Partitions and their owners.
//!
//! The key space is cut into [`PARTITIONS`] (1024) fixed partitions:
//! `partition_of(key) = xxh3_64(key) % 1024`. xxh3 (crate `xxhash-rust`) gives the same
//! value on every platform and version, unlike `std`'s or `ahash`'s hashers.
//!
//! Each partition has an ordered list of owners (primary first, then replicas), held in a
//! [`PlacementMap`]. A [`Placer`] builds the map from the member list; the default,
//! [`Rendezvous`], does highest-random-weight (rendezvous) hashing:
//!
//! ```text
//! score(node, p) = xxh3_64_with_seed(node.placement_key(), seed = p as u64)
//! owners(p)      = the min(R, N) members with the highest scores, best first
//!                  (ties, only possible for two identities at one address, go to the
//!                  smaller NodeId)
//! ```
//!
//! Because a partition's ranking of the other nodes does not change when a node joins or
//! leaves, a join moves to the new node only the ~1/N of partitions it wins, and a leave
//! moves only the departed node's partitions; nothing else changes. Plain rendezvous is
//! balanced enough for a handful of nodes (busiest ~1.1× the mean at 3 nodes) but not for
//! large clusters, where a bounded-load [`Placer`] can replace it.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::node::NodeId;

/// The fixed number of partitions.
pub const PARTITIONS: u16 = 1024;

/// The default replication factor (owners per partition), capped at the member count.
pub const DEFAULT_REPLICAS: usize = 2;

/// One of the [`PARTITIONS`] partitions of the key space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PartitionId(u16);

impl PartitionId {
    /// The partition with this number, if it is below [`PARTITIONS`].
    pub const fn new(n: u16) -> Option<Self> {
        if n < PARTITIONS {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The partition's number, `0..PARTITIONS`.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The partition's number as an index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Every partition, in order.
    pub fn all() -> impl Iterator<Item = PartitionId> {
        (0..PARTITIONS).map(PartitionId)
    }
}

/// The partition a key belongs to: `xxh3_64(key) % 1024`.
pub fn partition_of(key: &[u8]) -> PartitionId {
    // The remainder is below PARTITIONS, so it fits in u16.
    PartitionId((xxh3_64(key) % u64::from(PARTITIONS)) as u16)
}

/// Builds a [`PlacementMap`] from a member list; the seam where a bounded-load or table
/// based placement can replace [`Rendezvous`].
pub trait Placer {
    /// The owner lists of every partition for these members, each `min(replicas, N)` long
    /// (a `replicas` of 0 counts as 1). Must depend only on the set of members, not on
    /// their order, so that every node computes the same map.
    fn place(&self, members: &[NodeId], replicas: usize) -> PlacementMap;
}

/// Rendezvous (highest-random-weight) placement; see the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rendezvous;

impl Rendezvous {
    /// The score of `key` (a [`NodeId::placement_key`]) for partition `p`.
    pub fn score(key: &[u8], p: PartitionId) -> u64 {
        xxh3_64_with_seed(key, u64::from(p.get()))
    }
}

impl Placer for Rendezvous {
    fn place(&self, members: &[NodeId], replicas: usize) -> PlacementMap {
        let members = canonical_members(members);
        let r = replicas.max(1).min(members.len());
        let keys: Vec<Vec<u8>> = members.iter().map(NodeId::placement_key).collect();
        let mut owners = Vec::with_capacity(usize::from(PARTITIONS) * r);
        let mut ranked: Vec<(u64, usize)> = Vec::with_capacity(members.len());
        for p in PartitionId::all() {
            ranked.clear();
            ranked.extend(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| (Rendezvous::score(k, p), i)),
            );
            // Highest score first; members are sorted, so a smaller index is a smaller NodeId.
            ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            owners.extend(ranked.iter().take(r).map(|&(_, i)| members[i]));
        }
        PlacementMap {
            members,
            replicas: r,
            owners,
        }
    }
}

/// Sorted, deduplicated copy of a member list.
fn canonical_members(members: &[NodeId]) -> Vec<NodeId> {
    let mut m = members.to_vec();
    m.sort_unstable();
    m.dedup();
    m
}

/// Each partition's ordered owner list (primary first), for one membership view.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PlacementMap {
    /// The members the map was computed from, sorted and deduplicated.
    members: Vec<NodeId>,
    /// Owners per partition (`min(R, N)`).
    replicas: usize,
    /// `PARTITIONS * replicas` entries: partition `p`'s owners are
    /// `owners[p * replicas..(p + 1) * replicas]`.
    owners: Vec<NodeId>,
}

impl PlacementMap {
    /// The map for these members with [`Rendezvous`] placement. `replicas` is capped at
    /// the member count; with no members every owner list is empty.
    pub fn compute(members: &[NodeId], replicas: usize) -> PlacementMap {
        Rendezvous.place(members, replicas)
    }

    /// The owners of partition `p`, primary first. Empty only when there are no members.
    pub fn owners(&self, p: PartitionId) -> &[NodeId] {
        let start = p.index() * self.replicas;
        &self.owners[start..start + self.replicas]
    }

    /// The primary owner of partition `p`, if there are members.
    pub fn primary(&self, p: PartitionId) -> Option<NodeId> {
        self.owners(p).first().copied()
    }

    /// The partitions whose primary is `node`.
    pub fn partitions_primary(&self, node: &NodeId) -> Vec<PartitionId> {
        PartitionId::all()
            .filter(|&p| self.owners(p).first() == Some(node))
            .collect()
    }

    /// The partitions that `node` holds as a replica (an owner, but not the primary).
    pub fn partitions_replica(&self, node: &NodeId) -> Vec<PartitionId> {
        PartitionId::all()
            .filter(|&p| self.owners(p).iter().skip(1).any(|o| o == node))
            .collect()
    }

    /// The effective replication factor: owners per partition.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The members the map was computed from, sorted.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }
}

#[cfg(test)]
mod tests;

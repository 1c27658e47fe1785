//! The clustered side of a node: starts SWIM membership (`shoal-cluster`), recomputes the
//! [`PlacementMap`] on every membership change and publishes it, behind a cheap read, as
//! the server's [`ClusterView`] for `stats cluster` (and, later, for routing).
//!
//! Only started with `--cluster-listen`; a single node never builds any of this.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use shoal_cluster::{Membership, MembershipConfig, NodeId, PartitionId, PlacementMap, PARTITIONS};
use shoal_server::{ClusterSnapshot, ClusterView};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::ClusterSettings;

/// How long a graceful leave may take before the node exits anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// One membership view and the placement computed from it.
#[derive(Debug)]
pub struct Placement {
    /// The owners of every partition.
    pub map: PlacementMap,
    /// Distinct member addresses seen since start, alive or not.
    pub known: usize,
    /// Partitions whose primary is this node.
    pub primary: u64,
    /// Partitions this node holds as a replica (owner, not primary).
    pub replica: u64,
}

impl Placement {
    /// The placement for `members` with `replicas` wanted copies, counted for the node at
    /// `local` (compared by address: placement ignores incarnations).
    fn compute(members: &[NodeId], replicas: usize, local: SocketAddr, known: usize) -> Self {
        let map = PlacementMap::compute(members, replicas);
        let (mut primary, mut replica) = (0, 0);
        for p in PartitionId::all() {
            match map.owners(p).iter().position(|o| o.addr() == local) {
                Some(0) => primary += 1,
                Some(_) => replica += 1,
                None => {}
            }
        }
        Placement {
            map,
            known,
            primary,
            replica,
        }
    }
}

/// The current [`Placement`], replaced as a whole on every membership change; readers
/// take a short read lock and clone an `Arc`.
#[derive(Debug)]
pub struct PlacementView {
    current: RwLock<Arc<Placement>>,
}

impl PlacementView {
    /// The placement right now.
    pub fn current(&self) -> Arc<Placement> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn publish(&self, placement: Placement) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(placement);
    }
}

impl ClusterView for PlacementView {
    fn snapshot(&self) -> ClusterSnapshot {
        let placement = self.current();
        ClusterSnapshot {
            members: placement.known as u64,
            members_alive: placement.map.members().len() as u64,
            replicas: placement.map.replicas() as u64,
            partitions: u64::from(PARTITIONS),
            partitions_primary: placement.primary,
            partitions_replica: placement.replica,
            member_rows: Vec::new(),
        }
    }
}

/// A running cluster membership and the task keeping the placement up to date.
#[derive(Debug)]
pub struct ClusterNode {
    membership: Membership,
    view: Arc<PlacementView>,
    updater: JoinHandle<()>,
}

impl ClusterNode {
    /// Binds the gossip socket, starts membership and the placement updater.
    pub async fn start(settings: &ClusterSettings) -> Result<ClusterNode> {
        let config = MembershipConfig::new(settings.listen, settings.seeds.clone());
        let membership = Membership::start(config)
            .await
            .with_context(|| format!("cannot start cluster membership on {}", settings.listen))?;
        let local = membership.local_id().addr();
        let mut members = membership.members();
        let mut known = BTreeSet::new();
        let first = members.borrow_and_update().clone();
        known.extend(first.iter().map(NodeId::addr));
        let view = Arc::new(PlacementView {
            current: RwLock::new(Arc::new(Placement::compute(
                &first,
                settings.replicas,
                local,
                known.len(),
            ))),
        });
        let updater = tokio::spawn(update_placement(
            members,
            known,
            settings.replicas,
            local,
            Arc::clone(&view),
        ));
        tracing::info!(%local, replicas = settings.replicas, "cluster membership started");
        Ok(ClusterNode {
            membership,
            view,
            updater,
        })
    }

    /// The view the server reads.
    pub fn view(&self) -> Arc<PlacementView> {
        Arc::clone(&self.view)
    }

    /// Leaves the cluster gracefully (peers learn at once), waiting at most a second.
    pub async fn leave(self) {
        self.updater.abort();
        match tokio::time::timeout(LEAVE_TIMEOUT, self.membership.leave()).await {
            Ok(Ok(())) => tracing::info!("left the cluster"),
            Ok(Err(error)) => tracing::warn!(%error, "leaving the cluster failed"),
            Err(_) => tracing::warn!("leaving the cluster timed out"),
        }
    }
}

/// Recomputes and publishes the placement whenever the live member list changes.
async fn update_placement(
    mut members: watch::Receiver<Vec<NodeId>>,
    mut known: BTreeSet<SocketAddr>,
    replicas: usize,
    local: SocketAddr,
    view: Arc<PlacementView>,
) {
    while members.changed().await.is_ok() {
        let live = members.borrow_and_update().clone();
        known.extend(live.iter().map(NodeId::addr));
        let placement = Placement::compute(&live, replicas, local, known.len());
        tracing::info!(
            alive = live.len(),
            primary = placement.primary,
            replica = placement.replica,
            "membership changed, placement recomputed"
        );
        view.publish(placement);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_over_members() {
        let nodes: Vec<NodeId> = (0..3)
            .map(|i| NodeId::new(SocketAddr::from(([127, 0, 0, 1], 7000 + i)), 1))
            .collect();
        let placements: Vec<Placement> = nodes
            .iter()
            .map(|n| Placement::compute(&nodes, 2, n.addr(), 3))
            .collect();
        let primary: u64 = placements.iter().map(|p| p.primary).sum();
        let replica: u64 = placements.iter().map(|p| p.replica).sum();
        assert_eq!(primary, u64::from(PARTITIONS));
        assert_eq!(
            replica,
            u64::from(PARTITIONS),
            "R = 2: one replica per partition"
        );
        let alone = Placement::compute(&nodes[..1], 2, nodes[0].addr(), 1);
        assert_eq!(alone.map.replicas(), 1, "R is capped at the live members");
        assert_eq!((alone.primary, alone.replica), (u64::from(PARTITIONS), 0));
    }
}

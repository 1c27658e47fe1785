//! The clustered side of a node: starts SWIM membership and the [`Router`]
//! (`shoal-cluster`), serves node-to-node RPC on TCP at the gossip port's number, and
//! adapts the router to the server's [`Backend`] and [`ClusterView`] traits.
//!
//! Only started with `--cluster-listen`; a single node never builds any of this and runs
//! on the plain `LocalBackend`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use shoal_cluster::router::{Router, RouterConfig, RouterTasks};
use shoal_cluster::{Membership, MembershipConfig, PARTITIONS};
use shoal_command::{Command, Outcome};
use shoal_server::{Backend, ClusterSnapshot, ClusterView, MemberRow};
use shoal_store::{Store, StoreStats};
use tokio::net::TcpListener;

use crate::settings::ClusterSettings;

/// How long a stopping node waits for the other owners to hold its partitions.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a graceful leave may take before the node exits anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a leaving node keeps answering its peers' requests after telling them.
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// Keys of a multi-get handed to the router at once.
const CLUSTER_GET_BATCH: usize = 32;

/// A running cluster member: membership, router and their tasks.
#[derive(Debug)]
pub struct ClusterNode {
    membership: Membership,
    router: Arc<Router>,
    tasks: RouterTasks,
}

impl ClusterNode {
    /// Binds the gossip socket (UDP) and the peer socket (TCP, same address and port),
    /// starts membership and the router over `store`.
    pub async fn start(settings: &ClusterSettings, store: Arc<Store>) -> Result<ClusterNode> {
        let config = MembershipConfig::new(settings.listen, settings.seeds.clone());
        let membership = Membership::start(config)
            .await
            .with_context(|| format!("cannot start cluster membership on {}", settings.listen))?;
        let local = membership.local_id().addr();
        let rpc_addr = SocketAddr::new(settings.listen.ip(), local.port());
        let listener = TcpListener::bind(rpc_addr).await.with_context(|| {
            format!("cannot listen for cluster peers on TCP {rpc_addr} (the gossip port)")
        })?;
        let router_config = RouterConfig {
            replicas: settings.replicas,
            bootstrap_wait: settings.bootstrap_wait,
            ..RouterConfig::default()
        };
        let joining = settings.seeds.iter().any(|s| *s != local);
        let (router, tasks) = Router::start(store, &membership, listener, router_config, joining);
        tracing::info!(%local, replicas = settings.replicas, "cluster member started");
        Ok(ClusterNode {
            membership,
            router,
            tasks,
        })
    }

    /// The backend that routes item commands through the cluster.
    pub fn backend(&self) -> ClusterBackend {
        ClusterBackend(Arc::clone(&self.router))
    }

    /// What `stats cluster` reads.
    pub fn view(&self) -> Arc<dyn ClusterView> {
        Arc::new(StatusView(Arc::clone(&self.router)))
    }

    /// Leaves the cluster gracefully: waits until every partition it holds is held by
    /// another owner too (at most a minute), tells the peers first (they stop routing here at
    /// once), lets the requests they already sent finish for a moment, then stops serving
    /// them.
    pub async fn leave(self) {
        self.router.drain(DRAIN_TIMEOUT).await;
        self.router.announce_leave().await;
        match tokio::time::timeout(LEAVE_TIMEOUT, self.membership.leave()).await {
            Ok(Ok(())) => tracing::info!("left the cluster"),
            Ok(Err(error)) => tracing::warn!(%error, "leaving the cluster failed"),
            Err(_) => tracing::warn!("leaving the cluster timed out"),
        }
        tokio::time::sleep(DRAIN_GRACE).await;
        drop(self.tasks);
    }
}

/// The server's [`Backend`] over the cluster [`Router`].
#[derive(Debug, Clone)]
pub struct ClusterBackend(Arc<Router>);

impl Backend for ClusterBackend {
    fn execute(&self, command: Command) -> impl Future<Output = Outcome> + Send {
        let router = Arc::clone(&self.0);
        async move { router.execute(command).await }
    }

    fn store_stats(&self) -> StoreStats {
        self.0.store().stats()
    }

    fn get_batch(&self) -> usize {
        CLUSTER_GET_BATCH
    }
}

/// `stats cluster` from the router's status.
#[derive(Debug)]
struct StatusView(Arc<Router>);

impl ClusterView for StatusView {
    fn snapshot(&self) -> ClusterSnapshot {
        let status = self.0.status();
        let local = status.members.iter().find(|m| m.local);
        ClusterSnapshot {
            members: status.members.len() as u64,
            members_alive: status.members.iter().filter(|m| m.alive).count() as u64,
            replicas: status.replicas,
            partitions: u64::from(PARTITIONS),
            partitions_primary: local.map_or(0, |m| m.primary),
            partitions_replica: local.map_or(0, |m| m.replica),
            partitions_syncing: status.syncing,
            ready: status.ready,
            quorum: status.quorum.0,
            members_counted: status.quorum.1,
            tombstones: status.tombstones.0,
            tombstones_collected_early: status.tombstones.1,
            flush_version: status.flush_version,
            repairs: (status.repair.0, status.repair.1, status.repair.2),
            last_repair_secs: status.repair.3.map(|d| d.as_secs()),
            member_rows: status
                .members
                .iter()
                .map(|m| MemberRow {
                    addr: m.addr.to_string(),
                    alive: m.alive,
                    local: m.local,
                    partitions_primary: m.primary,
                    partitions_replica: m.replica,
                    items: m.items,
                    partitions_syncing: m.syncing.map(u64::from),
                    pulled: m.pulled,
                    repaired: m
                        .repaired
                        .map(|(items, last)| (items, last.map(|d| d.as_secs()))),
                })
                .collect(),
        }
    }
}

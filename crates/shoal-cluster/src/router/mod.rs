//! Server-side routing, replication and fail-over: the [`Router`] makes any node answer
//! for any key.
//!
//! * A command for a key goes to the primary of the key's partition: executed here when
//!   this node is the primary, else forwarded over a persistent, pipelined RPC connection
//!   ([`crate::rpc`]) as [`PeerRequest::Execute`].
//! * The primary applies a write under the partition's lock (so CAS, incr and append stay
//!   atomic per key), enqueues the resulting item ([`ReplicaOp`]) to the other owners
//!   before releasing the lock (so every replica applies one partition's changes in the
//!   primary's order), and acknowledges once every replica applied it or left the view.
//!   Items carry their CAS as version; the store's CAS counter observes every version it
//!   applies (a Lamport clock), so a promoted replica's CAS values exceed the old
//!   primary's, and replicas converge by last-writer-wins.
//! * A read whose primary does not answer within `read_timeout` is served by the next
//!   owner. A write whose primary fails waits for the failure detector to drop it (or for
//!   the deadline), then goes to the new primary: the client sees latency, not an error.
//! * Every node-to-node request is fenced ([`message::PeerEnvelope`]): it names the
//!   receiver's incarnation and the sender's view digest, and a receiver on another view
//!   (or in another life) refuses it; the sender waits for the views to agree and
//!   re-routes. A replica answers `Done` only for what it stored; a replica that refused
//!   (stale view) or was replaced (restarted) gets the key's current state again once the
//!   views agree, so a write is acknowledged only when every live owner stores it.
//! * Removals are versioned ([`tombstones`]), and `flush_all` is one cluster-wide version
//!   below which every item is gone, so no older copy brings back what was deleted.
//! * Hand-off ([`sync`]): an owner that gains a partition pulls it from the members,
//!   merging by version; until the pull ends, every command on that partition first
//!   merges its key from them, and former owners keep their copy until the new owners
//!   hold it.
//! * Multi-key gets are split by primary and answered in the client's order.

mod handler;
mod lease;
pub mod message;
mod pause;
mod quorum;
pub mod repair;
mod route;
#[cfg(test)]
mod sim;
mod sync;
#[cfg(test)]
mod tests;
pub mod tombstones;
pub mod transport;
pub mod view;
mod write;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_command::{Command, Outcome, ReadOptions, ServerError};
use shoal_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::membership::Membership;
use crate::node::NodeId;
use crate::placement::{PartitionId, PARTITIONS};
use crate::rpc::{self, Peers, RpcConfig, RpcError};

pub use message::{PeerEnvelope, PeerReply, PeerRequest, PeerResponse, Refusal, ReplicaOp};
pub use view::View;

use message::NodeStatus;
use pause::PauseWatch;
use quorum::Quorum;
use sync::SyncState;
use tombstones::Tombstones;

/// How the router waits and retries.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Owners wanted per partition (capped at the live members).
    pub replicas: usize,
    /// How long a command may wait for an owner (a failed primary to be replaced, a
    /// replica to acknowledge) before the client gets an error.
    pub deadline: Duration,
    /// How long a plain read waits for the primary before asking the next owner.
    pub read_timeout: Duration,
    /// How long a node started without `--join` waits for members to reach it before it
    /// founds a new cluster alone.
    pub bootstrap_wait: Duration,
    /// How often the owners of each partition compare digests (anti-entropy).
    pub repair_interval: Duration,
    /// Whole-store scans (pulls, digests) run on tokio's blocking threads; off, they run
    /// inline (the simulator, which must stay on one thread to be deterministic).
    pub offload_scans: bool,
    /// The transport's settings.
    pub rpc: RpcConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            replicas: crate::placement::DEFAULT_REPLICAS,
            deadline: Duration::from_secs(8),
            read_timeout: Duration::from_millis(300),
            bootstrap_wait: Duration::from_secs(4),
            repair_interval: Duration::from_secs(10),
            offload_scans: true,
            rpc: RpcConfig::default(),
        }
    }
}

/// One member as `stats cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its cluster address.
    pub addr: SocketAddr,
    /// In the current view.
    pub alive: bool,
    /// This node.
    pub local: bool,
    /// Partitions it is primary of.
    pub primary: u64,
    /// Partitions it is a replica of.
    pub replica: u64,
    /// Its item count at the last poll.
    pub items: Option<u64>,
    /// Partitions it was pulling at the last poll.
    pub syncing: Option<u32>,
    /// Items it had merged by anti-entropy, and how long before the poll its last
    /// repair round ended.
    pub repaired: Option<(u64, Option<Duration>)>,
    /// Items and bytes it had merged by hand-off at the last poll.
    pub pulled: Option<(u64, u64)>,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterStatus {
    /// Owners per partition now.
    pub replicas: u64,
    /// Partitions still being pulled by this node.
    pub syncing: u64,
    /// Whether this node acts on its view (it has found or founded a cluster).
    pub ready: bool,
    /// Tombstones kept, and collected early for want of room.
    pub tombstones: (u64, u64),
    /// The cluster flush version this node knows.
    pub flush_version: u64,
    /// Whether this node's view has the quorum, and of how many members counted.
    pub quorum: (bool, u64),
    /// Anti-entropy: rounds, buckets found to differ, items merged, and how long ago
    /// the last round ended.
    pub repair: (u64, u64, u64, Option<Duration>),
    /// Every member seen since start, in address order.
    pub members: Vec<MemberStatus>,
}

/// Routes item commands to the owners of their keys; see the module documentation.
pub struct Router {
    store: Arc<Store>,
    config: RouterConfig,
    views: view::ViewCell,
    link: transport::Link,
    /// One lock per partition, held while a primary applies a write and enqueues it.
    locks: Box<[Mutex<()>]>,
    sync: SyncState,
    tombstones: Tombstones,
    pause: PauseWatch,
    leases: lease::Leases,
    repair: repair::RepairStats,
    /// The members counted for the quorum, and whether the current view has it.
    quorum: Mutex<Quorum>,
    has_quorum: std::sync::atomic::AtomicBool,
    /// Every member address seen, with its status at the last poll (and the view digest
    /// it answered on).
    known: Mutex<BTreeMap<SocketAddr, Option<(u64, NodeStatus)>>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("local", &self.view().local)
            .finish_non_exhaustive()
    }
}

/// The tasks a running router owns; aborted on drop.
#[derive(Debug)]
pub struct RouterTasks {
    /// The peer RPC server (stops when dropped); none over another transport.
    server: Option<rpc::ServerHandle>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RouterTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether a read with these options changes nothing (no touch, no vivify).
fn read_is_plain(options: &ReadOptions) -> bool {
    options.touch.is_none() && options.vivify.is_none()
}

/// Whether a command only reads (no change to any item), so that any owner may answer it.
fn is_plain_read(command: &Command) -> bool {
    match command {
        Command::Get(get) => read_is_plain(&get.options),
        Command::MetaDebug(_) => true,
        _ => false,
    }
}

/// The key a single-key item command is about.
fn key_of(command: &Command) -> Option<&Bytes> {
    match command {
        Command::Get(get) => get.keys.first(),
        Command::Store(cmd) => Some(&cmd.key),
        Command::Delete(cmd) => Some(&cmd.key),
        Command::Arith(cmd) => Some(&cmd.key),
        Command::Touch(cmd) => Some(&cmd.key),
        Command::MetaDebug(key) => Some(key),
        _ => None,
    }
}

/// Whether executing `command` with this `outcome` may have changed its key's item.
fn changed(command: &Command, outcome: &Outcome) -> bool {
    use shoal_command::{ArithOutcome, DeleteOutcome, StoreOutcome};
    match outcome {
        Outcome::Stored(StoreOutcome::Stored { .. }) => true,
        Outcome::Stored(_) => false,
        // A set that fails for size or memory also removes the old item.
        Outcome::Error(_) => matches!(command, Command::Store(_)),
        Outcome::Deleted(DeleteOutcome::Deleted) => true,
        Outcome::Arith(ArithOutcome::Value { .. }) => true,
        Outcome::Touched(hit) => *hit,
        Outcome::Values(values) => !is_plain_read(command) && values.iter().any(Option::is_some),
        _ => false,
    }
}

fn cluster_error(message: &str) -> Outcome {
    Outcome::Error(ServerError::Other(message.to_string()))
}

/// What waiting on a peer came to.
enum Waited {
    /// It answered.
    Answer(PeerResponse),
    /// The transport failed (connection refused, closed).
    Failed(RpcError),
    /// The wait timed out.
    TimedOut,
    /// The peer no longer has the role it was asked for in the current view.
    Moved,
}

impl Waited {
    /// A short description for logs.
    fn describe(&self) -> String {
        match self {
            Waited::Answer(answer) => format!("{answer:?}").chars().take(80).collect(),
            Waited::Failed(error) => error.to_string(),
            Waited::TimedOut => "timed out".to_string(),
            Waited::Moved => "moved".to_string(),
        }
    }
}

impl Router {
    /// Starts a router over `store` for the node running `membership`: serves peers on
    /// `rpc_listener` (TCP, same port number as the gossip socket) and follows membership.
    /// `joining` says the node was started with seeds: until it has seen another member
    /// its solitary view holds no authority over the data.
    pub fn start(
        store: Arc<Store>,
        membership: &Membership,
        rpc_listener: TcpListener,
        config: RouterConfig,
        joining: bool,
    ) -> (Arc<Router>, RouterTasks) {
        let link = transport::Link::Tcp(Peers::new(config.rpc.clone()));
        let (router, mut tasks) = Router::start_on(
            store,
            membership.local_watch(),
            membership.members(),
            link,
            config,
            joining,
        );
        tasks.server = Some(rpc::serve(
            rpc_listener,
            Arc::new(handler::PeerHandler::new(Arc::clone(&router))),
            router.config.rpc.clone(),
        ));
        (router, tasks)
    }

    /// Starts a router that sends over `transport` and follows the identity and member
    /// list given (what a [`Membership`] publishes); its peers' requests are handed to
    /// [`Router::handle_peer`] by whoever runs the network (the simulator).
    pub fn start_with_transport(
        store: Arc<Store>,
        local: watch::Receiver<NodeId>,
        members: watch::Receiver<Vec<NodeId>>,
        transport: Arc<dyn transport::PeerTransport>,
        config: RouterConfig,
        joining: bool,
    ) -> (Arc<Router>, RouterTasks) {
        let link = transport::Link::Other(transport);
        Router::start_on(store, local, members, link, config, joining)
    }

    fn start_on(
        store: Arc<Store>,
        local: watch::Receiver<NodeId>,
        members: watch::Receiver<Vec<NodeId>>,
        link: transport::Link,
        config: RouterConfig,
        joining: bool,
    ) -> (Arc<Router>, RouterTasks) {
        let local_id = *local.borrow();
        // CAS values (item versions) end in a tag of this node: unique across the cluster.
        store.set_cas_tag(xxhash_rust::xxh3::xxh3_64(&local_id.placement_key()) as u16);
        let first = members.borrow().clone();
        let view = Arc::new(View::new(&first, config.replicas, local_id));
        let bootstrap = (!joining).then_some(config.bootstrap_wait);
        let router = Arc::new(Router {
            link,
            store,
            locks: (0..PARTITIONS).map(|_| Mutex::new(())).collect(),
            sync: SyncState::new(bootstrap),
            tombstones: Tombstones::default(),
            pause: PauseWatch::default(),
            leases: lease::Leases::default(),
            repair: repair::RepairStats::default(),
            quorum: Mutex::new(Quorum::default()),
            has_quorum: std::sync::atomic::AtomicBool::new(true),
            known: Mutex::new(first.iter().map(|m| (m.addr(), None)).collect()),
            views: view::ViewCell::new(view),
            config,
        });
        let quorum = router.quorum.lock().observe(&router.view());
        router.has_quorum.store(quorum, Ordering::Release);
        router
            .sync
            .on_view(&router, None, &router.view(), false, false, quorum);
        let follower = tokio::spawn(Arc::clone(&router).follow(members, local));
        let puller = tokio::spawn(Arc::clone(&router).pull_loop());
        let poller = tokio::spawn(Arc::clone(&router).poll_status());
        let repairer = tokio::spawn(Arc::clone(&router).repair_loop());
        let leaser = tokio::spawn(Arc::clone(&router).lease_loop());
        let heart = Arc::clone(&router);
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(pause::HEARTBEAT);
            loop {
                tick.tick().await;
                heart.pause.beat();
            }
        });
        let tasks = RouterTasks {
            server: None,
            tasks: vec![follower, puller, poller, heartbeat, repairer, leaser],
        };
        (router, tasks)
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.views.get()
    }

    /// The store behind this node.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Recomputes the view on every membership change (and on a change of our own
    /// identity: a rejoin after the cluster declared us down).
    async fn follow(
        self: Arc<Self>,
        mut members: watch::Receiver<Vec<NodeId>>,
        mut local: watch::Receiver<NodeId>,
    ) {
        let mut local_id = *local.borrow_and_update();
        loop {
            let renewed = tokio::select! {
                biased;
                changed = members.changed() => {
                    if changed.is_err() { return; }
                    false
                }
                changed = local.changed() => {
                    if changed.is_err() { return; }
                    local_id = *local.borrow_and_update();
                    true
                }
            };
            let live = members.borrow_and_update().clone();
            let old = self.view();
            let new = Arc::new(View::new(&live, self.config.replicas, local_id));
            {
                let mut known = self.known.lock();
                for member in &live {
                    known.entry(member.addr()).or_insert(None);
                }
                // A member's status from another view no longer tells what it holds.
                for status in known.values_mut() {
                    if status
                        .as_ref()
                        .is_some_and(|(digest, _)| *digest != new.digest)
                    {
                        *status = None;
                    }
                }
            }
            let discard = renewed && self.pause.take_paused();
            let quorum = self.quorum.lock().observe(&new);
            if quorum != self.has_quorum.swap(quorum, Ordering::AcqRel) {
                if quorum {
                    tracing::info!("this node's side of the cluster has the quorum again");
                } else {
                    tracing::warn!("cut off from most of the cluster: serving nothing");
                }
            }
            self.sync
                .on_view(&self, Some(&old), &new, renewed, discard, quorum);
            if renewed {
                // A new life: nothing it had is served before it is merged again.
                self.pause.trust();
            }
            tracing::info!(
                alive = live.len(),
                renewed,
                primary = new.counts.get(&new.local).map_or(0, |c| c.0),
                replica = new.counts.get(&new.local).map_or(0, |c| c.1),
                "membership changed, placement recomputed"
            );
            self.views.set(new);
        }
    }

    /// Keeps every member's status fresh: item counts for `stats cluster`, partitions
    /// held for dropping former copies.
    async fn poll_status(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let view = self.view();
            let pending: Vec<_> = view
                .others()
                .map(|a| (a, self.call_with_view(a, PeerRequest::Status)))
                .collect();
            let local = self.node_status();
            self.known
                .lock()
                .insert(view.local, Some((view.digest, local)));
            let mut confirmed = true;
            for (addr, response) in pending {
                let status = match tokio::time::timeout(Duration::from_millis(500), response).await
                {
                    Ok(Ok((digest, PeerResponse::Status(status)))) => Some((digest, status)),
                    _ => None,
                };
                confirmed &= status.as_ref().is_some_and(|(d, _)| *d == view.digest);
                self.known.lock().insert(addr, status);
            }
            if confirmed && self.view().digest == view.digest {
                self.pause.trust();
            }
        }
    }

    /// This node's status, as the poll reports it.
    pub(super) fn node_status(&self) -> NodeStatus {
        let mut status = self.sync.status(self.store.stats().curr_items);
        status.repaired_items = self.repair.items.load(Ordering::Relaxed);
        status.last_repair_ms = self
            .repair
            .last
            .lock()
            .map(|at| at.elapsed().as_millis() as u64);
        status
    }

    /// Whether `owner` reported, on `view`, that it holds partition `p`.
    fn peer_holds(&self, view: &View, owner: SocketAddr, p: u16) -> bool {
        let known = self.known.lock();
        known.get(&owner).is_some_and(|status| {
            status.as_ref().is_some_and(|(digest, status)| {
                let i = usize::from(p);
                *digest == view.digest
                    && status
                        .held
                        .get(i / 8)
                        .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
            })
        })
    }

    /// The members and their shares, for `stats cluster` and `shoal cluster status`.
    pub fn status(&self) -> RouterStatus {
        let view = self.view();
        let known = self.known.lock().clone();
        let members = known
            .into_iter()
            .map(|(addr, status)| {
                let counts = view.counts.get(&addr);
                let status = status.filter(|_| counts.is_some()).map(|(_, s)| s);
                MemberStatus {
                    addr,
                    alive: counts.is_some(),
                    local: addr == view.local,
                    primary: counts.map_or(0, |c| c.0),
                    replica: counts.map_or(0, |c| c.1),
                    items: status.as_ref().map(|s| s.items),
                    syncing: status.as_ref().map(|s| s.syncing),
                    pulled: status.as_ref().map(|s| (s.pulled_items, s.pulled_bytes)),
                    repaired: status.as_ref().map(|s| {
                        (
                            s.repaired_items,
                            s.last_repair_ms.map(Duration::from_millis),
                        )
                    }),
                }
            })
            .collect();
        RouterStatus {
            replicas: view.map.replicas() as u64,
            syncing: self.sync.pending() as u64,
            ready: self.is_ready(),
            tombstones: (
                self.tombstones.len() as u64,
                self.tombstones.collected_early(),
            ),
            flush_version: self.store.version_floor(),
            quorum: (
                self.has_quorum.load(Ordering::Acquire),
                self.quorum.lock().counted() as u64,
            ),
            repair: (
                self.repair.rounds.load(Ordering::Relaxed),
                self.repair.buckets.load(Ordering::Relaxed),
                self.repair.items.load(Ordering::Relaxed),
                self.repair.last.lock().map(|at| at.elapsed()),
            ),
            members,
        }
    }

    /// Sends `request` to the member at `addr`, fenced by this node's identity and view,
    /// and gives the answer with the digest of the view it was made on. Sent at once (so
    /// requests to one peer keep their order); the flush version an answer carries is
    /// applied here.
    fn call_with_view(
        &self,
        addr: SocketAddr,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = Result<(u64, PeerResponse), RpcError>> + Send + 'static
    {
        let view = self.view();
        let envelope = PeerEnvelope {
            from: view.local_id,
            to: view.id_of(addr).unwrap_or(NodeId::new(addr, 0)),
            view: view.digest,
            flush: self.store.version_floor(),
            request,
        };
        let response = self.link.send(addr, envelope);
        let store = Arc::clone(&self.store);
        async move {
            let reply = response.await?;
            if reply.flush > store.version_floor() {
                store.flush_below_version(reply.flush);
            }
            Ok((reply.view, reply.response))
        }
    }

    /// [`Router::call_with_view`] without the digest.
    fn call(
        &self,
        addr: SocketAddr,
        request: PeerRequest,
    ) -> impl std::future::Future<Output = Result<PeerResponse, RpcError>> + Send + 'static {
        let reply = self.call_with_view(addr, request);
        async move { reply.await.map(|(_, response)| response) }
    }

    /// Runs a whole-store scan off the runtime (or inline, see
    /// [`RouterConfig::offload_scans`]); None if it panicked.
    async fn scan<T: Send + 'static>(
        &self,
        scan: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if self.config.offload_scans {
            tokio::task::spawn_blocking(scan).await.ok()
        } else {
            Some(scan())
        }
    }

    /// Whether this node acts on its view: it has found or founded a cluster, and is not
    /// suspect of having been paused.
    fn is_ready(&self) -> bool {
        self.sync.is_ready() && self.has_quorum.load(Ordering::Acquire) && !self.pause.check()
    }

    /// A member says it leaves gracefully: it no longer counts for the quorum.
    pub(crate) fn forget_member(&self, addr: SocketAddr) {
        let mut quorum = self.quorum.lock();
        quorum.forget(addr);
        let holds = quorum.holds(&self.view());
        self.has_quorum.store(holds, Ordering::Release);
    }

    /// Before a graceful leave: waits, up to `timeout`, until every partition this node
    /// holds is held by another owner too and no new owner still needs its former copies,
    /// so that leaving drops no last copy (a rolling restart need not wait for hand-off
    /// between steps: each stop waits for it). True if it got there.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        let mut reported = started;
        loop {
            let view = self.view();
            let alone: Vec<PartitionId> = PartitionId::all()
                .filter(|&p| {
                    self.sync.is_held(p)
                        && view.other_owners(p).next().is_some()
                        && !view
                            .other_owners(p)
                            .any(|owner| self.peer_holds(&view, owner, p.get()))
                })
                .collect();
            let former = self.sync.former();
            if alone.is_empty() && former == 0 {
                if started.elapsed() > Duration::from_millis(100) {
                    tracing::info!(waited = ?started.elapsed(), "every partition held elsewhere: leaving");
                }
                return true;
            }
            if started.elapsed() >= timeout {
                tracing::warn!(
                    only_copy = alone.len(),
                    former,
                    "leaving although some partitions have no other up-to-date copy"
                );
                return false;
            }
            if reported.elapsed() >= Duration::from_secs(2) {
                reported = Instant::now();
                tracing::info!(
                    only_copy = alone.len(),
                    former,
                    "waiting for the other owners to hold this node's partitions before leaving"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tells every member this node leaves, so they stop counting it for the quorum.
    pub async fn announce_leave(&self) {
        let view = self.view();
        let pending: Vec<_> = view
            .others()
            .map(|a| (a, self.call(a, PeerRequest::Leaving)))
            .collect();
        let until = Instant::now() + Duration::from_millis(500);
        for (addr, response) in pending {
            if !matches!(
                self.wait_peer(response, until, |_| true).await,
                Waited::Answer(PeerResponse::Done)
            ) {
                tracing::debug!(%addr, "a member did not hear that this node leaves");
            }
        }
    }

    /// Runs one item command wherever it belongs.
    pub async fn execute(self: &Arc<Self>, command: Command) -> Outcome {
        match command {
            Command::FlushAll(flush) => self.flush_everywhere(flush).await,
            Command::Get(get) if get.keys.len() > 1 => self.multi_get(get).await,
            command => match key_of(&command).cloned() {
                Some(key) => self.route(key, command).await,
                None => self.store.execute(command),
            },
        }
    }

    /// Waits for `response` from `peer` until `until`; gives up early when the current
    /// view no longer lets `peer` play its part for `p` (`still` tells).
    async fn wait_peer<F>(
        &self,
        response: F,
        until: Instant,
        still: impl Fn(&View) -> bool,
    ) -> Waited
    where
        F: std::future::Future<Output = Result<PeerResponse, RpcError>>,
    {
        let mut seen = self.views.version();
        tokio::pin!(response);
        loop {
            tokio::select! {
                biased;
                result = &mut response => return match result {
                    Ok(answer) => Waited::Answer(answer),
                    Err(error) => Waited::Failed(error),
                },
                () = tokio::time::sleep_until(until) => return Waited::TimedOut,
                () = self.views.changed(&mut seen) => {
                    if !still(&self.view()) {
                        return Waited::Moved;
                    }
                }
            }
        }
    }

    /// Waits until the view changes or `pause` passes, whichever comes first.
    async fn pause_for_view(&self, pause: Duration) {
        let mut seen = self.views.version();
        let _ = tokio::time::timeout(pause, self.views.changed(&mut seen)).await;
    }
}

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
//! * Hand-off ([`sync`]): an owner that gains a partition pulls it from the members that
//!   held it, merging by version; until the pull ends, every command on that partition
//!   first merges its key from them.
//! * Multi-key gets are split by primary and answered in the client's order; `flush_all`
//!   is run on every live member.

mod handler;
pub mod message;
mod sync;
#[cfg(test)]
mod tests;
pub mod view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_command::{Command, FlushAll, Get, Outcome, ReadOptions, ServerError};
use shoal_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::membership::Membership;
use crate::node::NodeId;
use crate::placement::{partition_of, PartitionId, PARTITIONS};
use crate::rpc::{self, Peers, RpcConfig, RpcError};

pub use message::{PeerRequest, PeerResponse, ReplicaOp};
pub use view::View;

use sync::SyncState;

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
    /// The transport's settings.
    pub rpc: RpcConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            replicas: crate::placement::DEFAULT_REPLICAS,
            deadline: Duration::from_secs(8),
            read_timeout: Duration::from_millis(300),
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
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterStatus {
    /// Owners per partition now.
    pub replicas: u64,
    /// Partitions still being pulled by this node.
    pub syncing: u64,
    /// Every member seen since start, in address order.
    pub members: Vec<MemberStatus>,
}

/// Routes item commands to the owners of their keys; see the module documentation.
pub struct Router {
    store: Arc<Store>,
    config: RouterConfig,
    view_tx: watch::Sender<Arc<View>>,
    peers: Peers<PeerRequest, PeerResponse>,
    /// One lock per partition, held while a primary applies a write and enqueues it.
    locks: Box<[Mutex<()>]>,
    sync: SyncState,
    /// Every member address seen, with its item count at the last poll.
    known: Mutex<BTreeMap<SocketAddr, Option<u64>>>,
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
    /// The peer RPC server (stops when dropped).
    _server: rpc::ServerHandle,
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
        let local = membership.local_id();
        // CAS values (item versions) end in a tag of this node: unique across the cluster.
        store.set_cas_tag(xxhash_rust::xxh3::xxh3_64(&local.placement_key()) as u16);
        let members = membership.members();
        let first = members.borrow().clone();
        let view = Arc::new(View::new(&first, config.replicas, local.addr()));
        let (view_tx, _) = watch::channel(view);
        let router = Arc::new(Router {
            peers: Peers::new(config.rpc.clone()),
            store,
            locks: (0..PARTITIONS).map(|_| Mutex::new(())).collect(),
            sync: SyncState::new(!joining),
            known: Mutex::new(first.iter().map(|m| (m.addr(), None)).collect()),
            view_tx,
            config,
        });
        router.sync.on_view(&router, None, &router.view(), false);
        let server = rpc::serve(
            rpc_listener,
            Arc::new(handler::PeerHandler::new(Arc::clone(&router))),
            router.config.rpc.clone(),
        );
        let follower = tokio::spawn(Arc::clone(&router).follow(members, membership.local_watch()));
        let puller = tokio::spawn(Arc::clone(&router).pull_loop());
        let poller = tokio::spawn(Arc::clone(&router).poll_item_counts());
        let tasks = RouterTasks {
            _server: server,
            tasks: vec![follower, puller, poller],
        };
        (router, tasks)
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view_tx.borrow())
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
        local.borrow_and_update();
        loop {
            let renewed = tokio::select! {
                changed = members.changed() => {
                    if changed.is_err() { return; }
                    false
                }
                changed = local.changed() => {
                    if changed.is_err() { return; }
                    local.borrow_and_update();
                    true
                }
            };
            let live = members.borrow_and_update().clone();
            let old = self.view();
            let new = Arc::new(View::new(&live, self.config.replicas, old.local));
            {
                let mut known = self.known.lock();
                for member in &live {
                    known.entry(member.addr()).or_insert(None);
                }
            }
            self.sync.on_view(&self, Some(&old), &new, renewed);
            tracing::info!(
                alive = live.len(),
                renewed,
                primary = new.counts.get(&new.local).map_or(0, |c| c.0),
                replica = new.counts.get(&new.local).map_or(0, |c| c.1),
                "membership changed, placement recomputed"
            );
            self.view_tx.send_replace(new);
        }
    }

    /// Keeps every member's item count fresh for `stats cluster`.
    async fn poll_item_counts(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let view = self.view();
            let pending: Vec<_> = view
                .others()
                .map(|a| (a, self.peers.get(a).send(PeerRequest::ItemCount)))
                .collect();
            let local = self.store.stats().curr_items;
            self.known.lock().insert(view.local, Some(local));
            for (addr, response) in pending {
                let count = match tokio::time::timeout(Duration::from_millis(500), response).await {
                    Ok(Ok(PeerResponse::Count(n))) => Some(n),
                    _ => None,
                };
                self.known.lock().insert(addr, count);
            }
        }
    }

    /// The members and their shares, for `stats cluster` and `shoal cluster status`.
    pub fn status(&self) -> RouterStatus {
        let view = self.view();
        let known = self.known.lock().clone();
        let members = known
            .into_iter()
            .map(|(addr, items)| {
                let counts = view.counts.get(&addr);
                MemberStatus {
                    addr,
                    alive: counts.is_some(),
                    local: addr == view.local,
                    primary: counts.map_or(0, |c| c.0),
                    replica: counts.map_or(0, |c| c.1),
                    items: if counts.is_some() { items } else { None },
                }
            })
            .collect();
        RouterStatus {
            replicas: view.map.replicas() as u64,
            syncing: self.sync.pending() as u64,
            members,
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
        let mut views = self.view_tx.subscribe();
        tokio::pin!(response);
        loop {
            tokio::select! {
                result = &mut response => return match result {
                    Ok(answer) => Waited::Answer(answer),
                    Err(error) => Waited::Failed(error),
                },
                () = tokio::time::sleep_until(until) => return Waited::TimedOut,
                changed = views.changed() => {
                    if changed.is_err() || !still(&views.borrow_and_update()) {
                        return Waited::Moved;
                    }
                }
            }
        }
    }

    /// Waits until the view changes or `pause` passes, whichever comes first.
    async fn pause_for_view(&self, pause: Duration) {
        let mut views = self.view_tx.subscribe();
        let _ = tokio::time::timeout(pause, views.changed()).await;
    }

    /// Runs a single-key command at its partition's primary, retrying on the next primary
    /// when the one asked fails, until the deadline.
    async fn route(self: &Arc<Self>, key: Bytes, command: Command) -> Outcome {
        let p = partition_of(&key);
        let deadline = Instant::now() + self.config.deadline;
        let plain_read = is_plain_read(&command);
        loop {
            let view = self.view();
            let Some(primary) = view.primary(p) else {
                return cluster_error("no cluster member owns the key");
            };
            if primary == view.local {
                if let Some(outcome) = self
                    .run_as_primary(p, &key, command.clone(), deadline)
                    .await
                {
                    return outcome;
                }
            } else {
                let response = self
                    .peers
                    .get(primary)
                    .send(PeerRequest::Execute(command.clone()));
                let until = if plain_read {
                    deadline.min(Instant::now() + self.config.read_timeout)
                } else {
                    deadline
                };
                let waited = self
                    .wait_peer(response, until, |v| v.primary(p) == Some(primary))
                    .await;
                match waited {
                    Waited::Answer(PeerResponse::Outcome(outcome)) => return outcome,
                    Waited::Answer(PeerResponse::NotPrimary) => {
                        self.pause_for_view(Duration::from_millis(20)).await;
                    }
                    Waited::Answer(other) => {
                        tracing::warn!(?other, "unexpected answer to a forwarded command");
                        return cluster_error("unexpected answer from a cluster member");
                    }
                    Waited::Moved => {}
                    Waited::Failed(_) | Waited::TimedOut => {
                        if plain_read {
                            if let Some(outcome) = self.read_from_replicas(p, &command).await {
                                return outcome;
                            }
                        }
                        self.pause_for_view(Duration::from_millis(50)).await;
                    }
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(partition = p.get(), "no owner answered before the deadline");
                return cluster_error("no owner of the key answered in time");
            }
        }
    }

    /// Whether a plain read of partition `p` is answered from this node's store as it is:
    /// this node is the primary and holds the partition (nothing left to pull).
    fn reads_here(&self, view: &View, p: PartitionId) -> bool {
        view.is_primary(p) && !self.sync.is_syncing(p)
    }

    /// Read fail-over: the first replica of `p` that answers the read.
    async fn read_from_replicas(&self, p: PartitionId, command: &Command) -> Option<Outcome> {
        let view = self.view();
        for owner in view.owners(p).iter().skip(1).map(NodeId::addr) {
            if owner == view.local {
                return Some(self.store.execute(command.clone()));
            }
            let response = self
                .peers
                .get(owner)
                .send(PeerRequest::Read(command.clone()));
            let until = Instant::now() + self.config.read_timeout;
            if let Waited::Answer(PeerResponse::Outcome(outcome)) =
                self.wait_peer(response, until, |_| true).await
            {
                return Some(outcome);
            }
        }
        None
    }

    /// Runs `command` on this node as `p`'s primary and waits for its replicas. None when
    /// this node turned out not to be the primary any more.
    pub(crate) async fn run_as_primary(
        &self,
        p: PartitionId,
        key: &Bytes,
        command: Command,
        deadline: Instant,
    ) -> Option<Outcome> {
        if self.sync.is_syncing(p) {
            self.merge_key(p, key).await;
        }
        let (outcome, pending) = self.apply_as_primary(p, key, command)?;
        for (replica, response) in pending {
            let waited = self
                .wait_peer(response, deadline, |v| v.is_owner(p, replica))
                .await;
            match waited {
                Waited::Answer(_) | Waited::Moved => {}
                Waited::Failed(_) => {
                    // The replica's process is gone or restarting: the failure detector
                    // will drop it and its successor will pull the partition from us.
                    let wait = self
                        .wait_peer(std::future::pending(), deadline, |v| v.is_owner(p, replica))
                        .await;
                    if matches!(wait, Waited::TimedOut) {
                        tracing::warn!(%replica, "replica unreachable until the deadline");
                    }
                }
                Waited::TimedOut => {
                    tracing::warn!(%replica, "replica did not acknowledge before the deadline");
                }
            }
        }
        Some(outcome)
    }

    /// The synchronous part of a primary's work: under the partition lock, check the role,
    /// execute, and enqueue the resulting change to the other owners.
    #[allow(clippy::type_complexity)]
    fn apply_as_primary(
        &self,
        p: PartitionId,
        key: &Bytes,
        command: Command,
    ) -> Option<(
        Outcome,
        Vec<(SocketAddr, rpc::ResponseFuture<PeerResponse>)>,
    )> {
        if is_plain_read(&command) {
            return self
                .view()
                .is_primary(p)
                .then(|| (self.store.execute(command), Vec::new()));
        }
        let _guard = self.locks[p.index()].lock();
        let view = self.view();
        if !view.is_primary(p) {
            return None;
        }
        let probe = command.clone();
        let outcome = self.store.execute(command);
        if !changed(&probe, &outcome) {
            return Some((outcome, Vec::new()));
        }
        let op = match self.store.export(key) {
            Some(item) => ReplicaOp::Put(item),
            None => {
                self.sync.note_removed(p, key);
                ReplicaOp::Remove(key.clone())
            }
        };
        let pending = view
            .other_owners(p)
            .map(|owner| {
                let response = self
                    .peers
                    .get(owner)
                    .send(PeerRequest::Replicate(op.clone()));
                (owner, response)
            })
            .collect();
        Some((outcome, pending))
    }

    /// Applies a replicated change from a primary.
    pub(crate) fn apply_replica(&self, op: &ReplicaOp) {
        match op {
            ReplicaOp::Put(item) => {
                if let Err(error) = self.store.put_replica(item) {
                    tracing::warn!(?error, "a replicated item could not be stored");
                }
            }
            ReplicaOp::Remove(key) => {
                self.sync.note_removed(partition_of(key), key);
                self.store.remove_replica(key);
            }
        }
    }

    /// A multi-key read: one request per primary, answered in the client's order; keys
    /// whose batch fails are routed one by one.
    async fn multi_get(self: &Arc<Self>, get: Get) -> Outcome {
        let Get { keys, options } = get;
        let single = |key: &Bytes| {
            Command::Get(Get {
                keys: vec![key.clone()],
                options: options.clone(),
            })
        };
        let mut values = vec![None; keys.len()];
        if !read_is_plain(&options) {
            for (i, key) in keys.iter().enumerate() {
                if let Outcome::Values(mut v) = self.route(key.clone(), single(key)).await {
                    values[i] = v.pop().flatten();
                }
            }
            return Outcome::Values(values);
        }
        let view = self.view();
        let mut groups: BTreeMap<SocketAddr, Vec<usize>> = BTreeMap::new();
        let mut retry = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let p = partition_of(key);
            match view.primary(p) {
                Some(_) if self.reads_here(&view, p) => {
                    values[i] = self.store.get(key, &options);
                }
                Some(primary) => groups.entry(primary).or_default().push(i),
                None => retry.push(i),
            }
        }
        if let Some(local) = groups.remove(&view.local) {
            retry.extend(local);
        }
        let requests: Vec<_> = groups
            .into_iter()
            .map(|(addr, indexes)| {
                let command = Command::Get(Get {
                    keys: indexes.iter().map(|&i| keys[i].clone()).collect(),
                    options: options.clone(),
                });
                let response = self.peers.get(addr).send(PeerRequest::Execute(command));
                (addr, indexes, response)
            })
            .collect();
        let until = Instant::now() + self.config.read_timeout;
        for (addr, indexes, response) in requests {
            match self.wait_peer(response, until, |_| true).await {
                Waited::Answer(PeerResponse::Outcome(Outcome::Values(found)))
                    if found.len() == indexes.len() =>
                {
                    for (i, value) in indexes.into_iter().zip(found) {
                        values[i] = value;
                    }
                }
                _ => {
                    tracing::debug!(%addr, "multi-get batch failed, routing its keys one by one");
                    retry.extend(indexes);
                }
            }
        }
        for i in retry {
            if let Outcome::Values(mut v) = self.route(keys[i].clone(), single(&keys[i])).await {
                values[i] = v.pop().flatten();
            }
        }
        Outcome::Values(values)
    }

    /// `flush_all` on this node and every live member.
    async fn flush_everywhere(&self, flush: FlushAll) -> Outcome {
        self.store.flush_all(flush.delay);
        let view = self.view();
        let pending: Vec<_> = view
            .others()
            .map(|a| (a, self.peers.get(a).send(PeerRequest::Flush(flush.clone()))))
            .collect();
        let until = Instant::now() + self.config.deadline;
        for (addr, response) in pending {
            match self.wait_peer(response, until, |v| v.is_member(addr)).await {
                Waited::Answer(_) | Waited::Moved => {}
                Waited::Failed(error) => tracing::warn!(%addr, %error, "flush_all not delivered"),
                Waited::TimedOut => tracing::warn!(%addr, "flush_all not acknowledged"),
            }
        }
        Outcome::Ok
    }
}

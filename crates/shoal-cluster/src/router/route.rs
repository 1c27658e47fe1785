//! The request path of any node: a single-key command goes to its partition's primary
//! (here, or forwarded and waited for while that primary lives), a plain read fails over
//! to a replica that holds the partition under a lease, a multi-key get is split by
//! primary, and `flush_all` is one cluster-wide version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_command::{Command, FlushAll, Get, Outcome};
use tokio::time::Instant;

use super::{
    cluster_error, is_plain_read, read_is_plain, PeerRequest, PeerResponse, Router, View, Waited,
};
use crate::node::NodeId;
use crate::placement::{partition_of, PartitionId};
use crate::rpc::RpcError;

/// Whether running `command` twice does what running it once does and answers the same,
/// so a forwarded copy that may have been applied can be sent again elsewhere. Reads,
/// plain sets and touches are. Increments, appends, CAS and conditional stores are not,
/// and neither is a delete (a second run answers NOT_FOUND for what the first deleted):
/// one that may have been applied by a primary that then failed gets an error instead.
fn retry_is_safe(command: &Command) -> bool {
    use shoal_command::StoreMode;
    match command {
        Command::Get(_) | Command::MetaDebug(_) | Command::Touch(_) => true,
        Command::Store(store) => {
            store.mode == StoreMode::Set && store.compare_cas.is_none() && store.vivify.is_none()
        }
        _ => false,
    }
}

impl Router {
    /// Runs a single-key command at its partition's primary, retrying on the next primary
    /// when the one asked fails, until the deadline.
    pub(super) async fn route(self: &Arc<Self>, key: Bytes, command: Command) -> Outcome {
        let p = partition_of(&key);
        let deadline = Instant::now() + self.config.deadline;
        let plain_read = is_plain_read(&command);
        loop {
            if !self.has_quorum.load(Ordering::Acquire) {
                return cluster_error("this node is cut off from most of the cluster");
            }
            let view = self.view();
            let primary = view.primary(p).filter(|_| self.is_ready());
            match primary {
                None => self.pause_for_view(Duration::from_millis(50)).await,
                Some(primary) if primary == view.local => {
                    match self
                        .run_as_primary(p, &key, command.clone(), deadline)
                        .await
                    {
                        Some(outcome) => return outcome,
                        None => self.pause_for_view(Duration::from_millis(20)).await,
                    }
                }
                Some(primary) => {
                    let response = self.call(primary, PeerRequest::Execute(command.clone()));
                    let until = if plain_read {
                        deadline.min(Instant::now() + self.config.read_timeout)
                    } else {
                        deadline
                    };
                    // A read is re-routed as soon as the primary changes; a write waits for
                    // the answer while the primary lives (it may be applying it), so it is
                    // never run by two primaries.
                    let incarnation = view.id_of(primary);
                    let still = |v: &View| {
                        if plain_read {
                            v.primary(p) == Some(primary)
                        } else {
                            v.id_of(primary) == incarnation
                        }
                    };
                    let waited = self.wait_peer(response, until, still).await;
                    match waited {
                        Waited::Answer(PeerResponse::Outcome(outcome)) => return outcome,
                        Waited::Answer(PeerResponse::NotPrimary | PeerResponse::Refused(_)) => {
                            self.pause_for_view(Duration::from_millis(20)).await;
                        }
                        Waited::Answer(other) => {
                            tracing::warn!(?other, "unexpected answer to a forwarded command");
                            return cluster_error("unexpected answer from a cluster member");
                        }
                        Waited::Failed(RpcError::Connect(_)) => {
                            // Never sent: safe to send elsewhere.
                            self.pause_for_view(Duration::from_millis(50)).await;
                        }
                        Waited::Moved | Waited::Failed(_) | Waited::TimedOut
                            if !retry_is_safe(&command) =>
                        {
                            return cluster_error(
                                "the key's primary failed during the command; it may have been applied",
                            );
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
            }
            if Instant::now() >= deadline {
                tracing::warn!(partition = p.get(), "no owner answered before the deadline");
                return cluster_error("no owner of the key answered in time");
            }
        }
    }

    /// Whether a plain read of partition `p` is answered from this node's store as it is:
    /// this node is the primary and holds the partition (nothing left to pull).
    pub(super) fn reads_here(&self, view: &View, p: PartitionId) -> bool {
        view.is_primary(p) && self.sync.is_held(p) && self.leased(view, p)
    }

    /// Read fail-over: the first replica of `p` that holds it, under a lease, and answers
    /// the read.
    async fn read_from_replicas(&self, p: PartitionId, command: &Command) -> Option<Outcome> {
        let view = self.view();
        for owner in view.owners(p).iter().skip(1).map(NodeId::addr) {
            if owner == view.local {
                // Only under a lease: a replica cut off from the others may be what the
                // others have moved past.
                if self.sync.is_held(p) && self.leased(&view, p) {
                    return Some(self.store.execute(command.clone()));
                }
                continue;
            }
            let response = self.call(owner, PeerRequest::Read(command.clone()));
            let until = Instant::now() + self.config.read_timeout;
            if let Waited::Answer(PeerResponse::Outcome(outcome)) =
                self.wait_peer(response, until, |_| true).await
            {
                return Some(outcome);
            }
        }
        None
    }

    /// A multi-key read: one request per primary, answered in the client's order; keys
    /// whose batch fails are routed one by one.
    pub(super) async fn multi_get(self: &Arc<Self>, get: Get) -> Outcome {
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
                let response = self.call(addr, PeerRequest::Execute(command));
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

    /// `flush_all` on every live member. An immediate one is a cluster-wide version: the
    /// members' version clocks are read, and every item below the highest is gone on
    /// every member, including one that was away and learns the version later from any
    /// message it exchanges. A delayed one runs on each member's own clock.
    pub(super) async fn flush_everywhere(&self, flush: FlushAll) -> Outcome {
        let until = Instant::now() + self.config.deadline;
        let view = self.view();
        if flush.delay > 0 || !self.store.config().use_cas {
            self.store.flush_all(flush.delay);
            let pending: Vec<_> = view
                .others()
                .map(|a| (a, self.call(a, PeerRequest::Flush(flush.clone()))))
                .collect();
            return self.wait_all(pending, until, "flush_all").await;
        }
        let pending: Vec<_> = view
            .others()
            .map(|a| (a, self.call(a, PeerRequest::Clock)))
            .collect();
        let mut floor = self.store.new_version();
        for (addr, response) in pending {
            match self.wait_peer(response, until, |v| v.is_member(addr)).await {
                Waited::Answer(PeerResponse::Clock(clock)) => floor = floor.max(clock),
                Waited::Moved => {}
                other => {
                    tracing::warn!(%addr, answer = ?other.describe(), "flush_all: no clock");
                    return cluster_error("flush_all could not reach every member");
                }
            }
        }
        let floor = floor.saturating_add(1);
        self.store.flush_below_version(floor);
        let pending: Vec<_> = view
            .others()
            .map(|a| (a, self.call(a, PeerRequest::FlushBelow(floor))))
            .collect();
        self.wait_all(pending, until, "flush_all").await
    }

    /// Waits for every member's `Done`; members that leave the view are not waited for.
    async fn wait_all(
        &self,
        pending: Vec<(
            SocketAddr,
            impl std::future::Future<Output = Result<PeerResponse, RpcError>>,
        )>,
        until: Instant,
        what: &str,
    ) -> Outcome {
        let mut outcome = Outcome::Ok;
        for (addr, response) in pending {
            match self.wait_peer(response, until, |v| v.is_member(addr)).await {
                Waited::Answer(PeerResponse::Done) | Waited::Moved => {}
                other => {
                    tracing::warn!(%addr, answer = ?other.describe(), "{what} not acknowledged");
                    outcome = cluster_error("not every cluster member acknowledged");
                }
            }
        }
        outcome
    }
}

//! The write path of a partition's primary: apply a command under the partition lock,
//! replicate the result to every other owner, acknowledge only what every live owner
//! stored (re-sending the key's state to a replica that refused on another view or was
//! replaced), and undo the write here when that cannot be known; and the replica's side,
//! which answers `Done` only for what it stored.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_command::{Command, Outcome, ServerError};
use tokio::time::Instant;

use super::message::KeyState;
use super::{
    changed, cluster_error, is_plain_read, PeerRequest, PeerResponse, ReplicaOp, Router, View,
    Waited,
};
use crate::placement::{partition_of, PartitionId};
use crate::rpc::RpcError;

/// The answer to a write a replica refused for holding a newer version.
fn superseded() -> Outcome {
    cluster_error("a newer version of the key won over this write; it may not be stored")
}

/// The answer to a write whose replica left the view while this node lost its quorum.
fn lost_quorum() -> Outcome {
    cluster_error("this node was cut off during the write; it may not be stored")
}

/// How to put a key back as it was before a primary's write: its state before, and the
/// version the write gave it.
struct Undo {
    before: KeyState,
    written: u64,
}

/// What became of one replica's copy of a write.
enum ReplicaAck {
    /// Stored (or the replica left the owners).
    Stored,
    /// It could not store the item.
    NotStored(ServerError),
    /// It did not store it, for now: send the key's current state again once the views
    /// agree.
    Retry,
    /// No answer before the deadline.
    TimedOut,
    /// The replica left the view, but so did this node's quorum: it may be the view of
    /// a cut-off minority, where the replica still runs without this write.
    Unsure,
    /// The replica holds a newer version: this primary acted on an outdated copy.
    Superseded,
}

impl Router {
    /// Runs `command` on this node as `p`'s primary and waits until every other owner
    /// stored the result. None when this node turned out not to be the primary (or could
    /// not merge the key yet): the caller routes again.
    pub(super) async fn run_as_primary(
        &self,
        p: PartitionId,
        key: &Bytes,
        command: Command,
        deadline: Instant,
    ) -> Option<Outcome> {
        if !self.sync.is_held(p) && !self.merge_key(p, key, deadline).await {
            if Instant::now() >= deadline {
                return Some(cluster_error(
                    "the key's partition could not be merged in time",
                ));
            }
            return None;
        }
        let (mut outcome, pending, undo) = self.apply_as_primary(p, key, command)?;
        tracing::trace!(
            local = %self.view().local,
            partition = p.get(),
            ?key,
            held = self.sync.is_held(p),
            ?outcome,
            "applied as primary"
        );
        match self.await_replicas(p, key, pending, deadline).await {
            Ok(None) => {}
            Ok(Some(error)) => {
                self.undo_unstored(p, key);
                outcome = Outcome::Error(error);
            }
            Err(failed) => {
                // Not every live owner has it: it is not acknowledged, and this copy must
                // not keep a version no other copy knows of (it could outrank writes the
                // others acknowledge meanwhile).
                if let Some(undo) = undo {
                    self.undo(p, key, &undo);
                }
                return Some(failed);
            }
        }
        Some(outcome)
    }

    /// Waits until every replica in `pending` stored the write (re-sending the key's
    /// current state to those that refused on another view or were replaced). Ok(None)
    /// when all did, Ok(Some) when one could not store it, Err with the client's answer
    /// when it cannot be known to be stored everywhere.
    async fn await_replicas(
        &self,
        p: PartitionId,
        key: &Bytes,
        pending: Vec<(
            SocketAddr,
            impl std::future::Future<Output = Result<PeerResponse, RpcError>>,
        )>,
        deadline: Instant,
    ) -> Result<Option<ServerError>, Outcome> {
        let mut unstored = None;
        let mut retry = self.acks(p, pending, deadline, &mut unstored).await?;
        while !retry.is_empty() {
            // The replica refused (another view) or was replaced (a new incarnation): once
            // the views change, send it the key's current state.
            self.pause_for_view(Duration::from_millis(50)).await;
            if Instant::now() >= deadline {
                return Err(cluster_error("a replica did not store the write in time"));
            }
            let Some(pending) = self.resend_key(p, key, &retry) else {
                return Err(cluster_error(
                    "the key's owners changed during the write; it may not be stored",
                ));
            };
            retry = self.acks(p, pending, deadline, &mut unstored).await?;
        }
        Ok(unstored)
    }

    /// Puts `key` back as it was before a write that did not reach every owner, unless a
    /// later write changed it since.
    fn undo(&self, p: PartitionId, key: &Bytes, undo: &Undo) {
        let _guard = self.locks[p.index()].lock();
        let now = match self.store.export(key) {
            Some(item) => Some(item.cas),
            None => self.tombstones.version(p, key),
        };
        if now != Some(undo.written) {
            return;
        }
        match &undo.before.item {
            Some(item) => {
                if let Err(error) = self.store.restore_replica(item) {
                    tracing::warn!(?error, "an item could not be put back");
                }
            }
            None => {
                self.store.remove_replica(key);
            }
        }
        self.tombstones.reset(p, key, undo.before.tombstone);
        tracing::debug!(
            ?key,
            "a write that did not reach every owner was undone here"
        );
    }

    /// Waits for each replica's answer: the replicas to send the key's state again, or
    /// the client's answer when the write cannot be known to be stored everywhere. A
    /// replica that could not store it is noted in `unstored`.
    async fn acks<F>(
        &self,
        p: PartitionId,
        pending: Vec<(SocketAddr, F)>,
        deadline: Instant,
        unstored: &mut Option<ServerError>,
    ) -> Result<Vec<SocketAddr>, Outcome>
    where
        F: std::future::Future<Output = Result<PeerResponse, RpcError>>,
    {
        let mut retry = Vec::new();
        for (replica, response) in pending {
            match self.replica_ack(p, replica, response, deadline).await {
                ReplicaAck::Stored => {}
                ReplicaAck::NotStored(error) => *unstored = Some(error),
                ReplicaAck::Retry => retry.push(replica),
                ReplicaAck::TimedOut => {
                    return Err(cluster_error("a replica did not store the write in time"))
                }
                ReplicaAck::Unsure => return Err(lost_quorum()),
                ReplicaAck::Superseded => return Err(superseded()),
            }
        }
        Ok(retry)
    }

    /// What one replica did with a write.
    async fn replica_ack(
        &self,
        p: PartitionId,
        replica: SocketAddr,
        response: impl std::future::Future<Output = Result<PeerResponse, RpcError>>,
        deadline: Instant,
    ) -> ReplicaAck {
        let incarnation = self.view().id_of(replica);
        // Still the same owner: a new incarnation at the address is another node.
        let same = |v: &View| v.is_owner(p, replica) && v.id_of(replica) == incarnation;
        match self.wait_peer(response, deadline, same).await {
            Waited::Answer(PeerResponse::Done) => ReplicaAck::Stored,
            Waited::Answer(PeerResponse::NotStored(error)) => ReplicaAck::NotStored(error),
            Waited::Answer(PeerResponse::Superseded) => ReplicaAck::Superseded,
            Waited::Answer(_) => ReplicaAck::Retry,
            Waited::Moved => {
                if self.view().is_owner(p, replica) {
                    ReplicaAck::Retry
                } else if self.is_ready() {
                    ReplicaAck::Stored
                } else {
                    ReplicaAck::Unsure
                }
            }
            Waited::Failed(_) => {
                // The replica's process is gone or restarting: wait until the failure
                // detector drops it or its next incarnation shows up.
                match self.wait_peer(std::future::pending(), deadline, same).await {
                    Waited::TimedOut => {
                        tracing::warn!(%replica, "replica unreachable until the deadline");
                        ReplicaAck::TimedOut
                    }
                    _ if self.view().is_owner(p, replica) => ReplicaAck::Retry,
                    _ if self.is_ready() => ReplicaAck::Stored,
                    _ => ReplicaAck::Unsure,
                }
            }
            Waited::TimedOut => {
                tracing::warn!(%replica, "replica did not acknowledge before the deadline");
                ReplicaAck::TimedOut
            }
        }
    }

    /// The change a primary sends for `key` now: its item, or a versioned removal (the
    /// tombstone kept here too). Called under the partition's lock.
    fn replica_op(&self, p: PartitionId, key: &Bytes, removed_now: bool) -> ReplicaOp {
        match self.store.export(key) {
            Some(item) => {
                self.tombstones.forget_below(p, key, item.cas);
                ReplicaOp::Put(item)
            }
            None => {
                let version = match self.tombstones.version(p, key) {
                    Some(version) if !removed_now => version,
                    _ => self.store.new_version(),
                };
                self.tombstones.record(p, key, version);
                ReplicaOp::Remove {
                    key: key.clone(),
                    version,
                }
            }
        }
    }

    /// Sends `key`'s current state to `replicas` that are still owners, if this node is
    /// still the primary; None if it is not.
    #[allow(clippy::type_complexity)]
    fn resend_key(
        &self,
        p: PartitionId,
        key: &Bytes,
        replicas: &[SocketAddr],
    ) -> Option<
        Vec<(
            SocketAddr,
            impl std::future::Future<Output = Result<PeerResponse, RpcError>>,
        )>,
    > {
        let _guard = self.locks[p.index()].lock();
        let view = self.view();
        // A primary that no longer holds its partition (it rejoined meanwhile) has no
        // current state of the key to send.
        if !view.is_primary(p) || !self.is_ready() || !self.sync.is_held(p) {
            return None;
        }
        let op = self.replica_op(p, key, false);
        Some(
            replicas
                .iter()
                .filter(|r| view.is_owner(p, **r))
                .map(|&r| (r, self.call(r, PeerRequest::Replicate(op.clone()))))
                .collect(),
        )
    }

    /// A replica could not store a write: as memcached after a failed set, the key is
    /// gone, here and (best effort) on the other owners.
    fn undo_unstored(&self, p: PartitionId, key: &Bytes) {
        let _guard = self.locks[p.index()].lock();
        self.store.remove_replica(key);
        let op = self.replica_op(p, key, true);
        for owner in self.view().other_owners(p) {
            drop(self.call(owner, PeerRequest::Replicate(op.clone())));
        }
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
        Vec<(
            SocketAddr,
            impl std::future::Future<Output = Result<PeerResponse, RpcError>>,
        )>,
        Option<Undo>,
    )> {
        if is_plain_read(&command) {
            let view = self.view();
            let mine = view.is_primary(p) && self.is_ready() && self.leased(&view, p);
            return mine.then(|| (self.store.execute(command), Vec::new(), None));
        }
        let _guard = self.locks[p.index()].lock();
        let view = self.view();
        // Only under a lease: a primary cut off before its view shows it must neither
        // answer from a copy the other side has moved past (a miss, NOT_FOUND, EXISTS)
        // nor stamp a write on it with a version that could outrank the other side's.
        if !view.is_primary(p) || !self.is_ready() || !self.leased(&view, p) {
            return None;
        }
        let probe = command.clone();
        let before = KeyState {
            item: self.store.export(key),
            tombstone: self.tombstones.version(p, key),
        };
        let outcome = self.store.execute(command);
        if !changed(&probe, &outcome) {
            return Some((outcome, Vec::new(), None));
        }
        let op = self.replica_op(p, key, true);
        let written = match &op {
            ReplicaOp::Put(item) => item.cas,
            ReplicaOp::Remove { version, .. } => *version,
        };
        let pending = view
            .other_owners(p)
            .map(|owner| (owner, self.call(owner, PeerRequest::Replicate(op.clone()))))
            .collect();
        Some((outcome, pending, Some(Undo { before, written })))
    }

    /// Applies a replicated change from a primary: Done only if it is stored.
    pub(super) fn apply_replica(&self, op: &ReplicaOp) -> PeerResponse {
        match op {
            ReplicaOp::Put(item) => {
                let p = partition_of(&item.key);
                let _guard = self.locks[p.index()].lock();
                self.tombstones.forget_below(p, &item.key, item.cas);
                match self.store.put_replica(item) {
                    Ok(true) => PeerResponse::Done,
                    Ok(false) => PeerResponse::Superseded,
                    Err(error) => {
                        tracing::warn!(?error, "a replicated item could not be stored");
                        PeerResponse::NotStored(error)
                    }
                }
            }
            ReplicaOp::Remove { key, version } => {
                let p = partition_of(key);
                let _guard = self.locks[p.index()].lock();
                self.tombstones.record(p, key, *version);
                self.store.remove_if_older(key, *version);
                PeerResponse::Done
            }
        }
    }
}

//! The messages nodes exchange through the RPC transport ([`crate::rpc`]): forwarded
//! commands, replication, hand-off pulls and the few cluster-wide operations. They carry
//! the protocol-neutral [`Command`] and [`Outcome`] as they are, so a forwarded command
//! means exactly what it meant on the node that parsed it.
//!
//! Every request travels in a [`PeerEnvelope`] naming the sender's and the receiver's
//! identities (address and incarnation) and the digest of the sender's view; every answer
//! in a [`PeerReply`]. A receiver refuses a request for another incarnation of itself
//! (one sent to its previous life), and a data request (anything but the status poll, a
//! graceful leave and the flush messages) made on another view than its own, or while it
//! is not ready: a node acting on an old
//! view (paused, partitioned, not yet told of a join) is refused and the sender re-routes
//! once the views agree. Both carry the cluster's flush version, so a node that missed a
//! `flush_all` learns it from the first message it exchanges.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shoal_command::{Command, FlushAll, Outcome, ReplicaItem, ServerError};

use crate::node::NodeId;

/// A request with the identities and view it was made on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerEnvelope {
    /// The sender's identity.
    pub from: NodeId,
    /// The receiver's identity as the sender's view has it.
    pub to: NodeId,
    /// The digest of the sender's view ([`crate::router::View::digest`]).
    pub view: u64,
    /// The sender's cluster flush version (items below it are gone).
    pub flush: u64,
    /// The request.
    pub request: PeerRequest,
}

/// An answer with the receiver's view digest and flush version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerReply {
    /// The digest of the answering node's view.
    pub view: u64,
    /// Its cluster flush version.
    pub flush: u64,
    /// The answer.
    pub response: PeerResponse,
}

/// Why a request was refused without being looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// It was addressed to another incarnation of the receiver.
    WrongIncarnation,
    /// It was made on another view than the receiver's.
    StaleView,
    /// The receiver holds no authority yet (starting, not yet in a cluster).
    NotReady,
}

/// How a node holds a partition, as it answers a pull or a key export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holding {
    /// An owner with an up-to-date copy: every acknowledged write of the partition is in
    /// it.
    Current,
    /// It held the partition as an owner until the view moved it away (its copy may miss
    /// later writes, but tombstones bury what it has that was deleted since).
    Former,
    /// An owner still pulling: it has every write since it became an owner, not
    /// necessarily the older ones.
    Syncing,
    /// No copy to vouch for.
    None,
}

/// A request from one node to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Run this item command as the primary of its key's partition (the sender's view
    /// says the receiver is); answered [`PeerResponse::NotPrimary`] when the receiver's
    /// view disagrees.
    Execute(Command),
    /// Run this read here even if not the primary: read fail-over to a replica.
    Read(Command),
    /// Apply this change to the local copy (the sender is the partition's primary).
    /// Applied in the order sent.
    Replicate(ReplicaOp),
    /// The local item of this key, for a new owner that merges a key before using it.
    Export(Bytes),
    /// Run `flush_all` on the receiver only (a delayed one: an immediate one is a
    /// [`PeerRequest::FlushBelow`]).
    Flush(FlushAll),
    /// Step one of a cluster-wide immediate `flush_all`: the receiver's version clock.
    Clock,
    /// Step two: every item with a version below this one is gone (the envelope's flush
    /// version carries it too).
    FlushBelow(u64),
    /// Every item and tombstone of these partitions (numbers), with how the receiver
    /// holds each; made on the same view, so every later write reaches the requester.
    Pull(Vec<u16>),
    /// The receiver's state for `stats cluster` and hand-off: items, partitions held.
    Status,
    /// The sender leaves the cluster gracefully: stop counting it for the quorum.
    Leaving,
    /// A lease renewal: answered `Done` only on the sender's view, by a ready node.
    Lease,
    /// Anti-entropy: the receiver's digests of these partitions (those it holds).
    Digests(Vec<u16>),
    /// Anti-entropy: the sender's items and tombstones of these (partition, bucket)
    /// pairs, to merge; answered with the receiver's.
    Repair {
        /// (partition, bucket) pairs whose digests differ.
        buckets: Vec<(u16, u8)>,
        /// The sender's live items in them.
        items: Vec<ReplicaItem>,
        /// The sender's tombstones in them.
        tombstones: Vec<(Bytes, u64)>,
    },
}

/// One replicated change of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReplicaOp {
    /// The key now holds this item (last writer wins by CAS).
    Put(ReplicaItem),
    /// The key has no item any more: a removal at this version (a tombstone).
    Remove {
        /// The key.
        key: Bytes,
        /// The removal's version, above the removed item's.
        version: u64,
    },
}

/// One key's state on a node: its item or its tombstone (or neither).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyState {
    /// The live item.
    pub item: Option<ReplicaItem>,
    /// The version it was removed at, if a tombstone is kept.
    pub tombstone: Option<u64>,
}

/// A node's state as the status poll sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Items in its store.
    pub items: u64,
    /// One bit per partition: held as an up-to-date owner.
    pub held: Vec<u8>,
    /// Partitions it is pulling.
    pub syncing: u32,
    /// Items and bytes it has merged by hand-off since start.
    pub pulled_items: u64,
    /// See `pulled_items`.
    pub pulled_bytes: u64,
    /// Items merged by anti-entropy since start.
    pub repaired_items: u64,
    /// Milliseconds since its last repair round, if any.
    pub last_repair_ms: Option<u64>,
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerResponse {
    /// The command's outcome.
    Outcome(Outcome),
    /// The receiver is not the partition's primary in its view: retry after the views
    /// converge.
    NotPrimary,
    /// Refused unread: see [`Refusal`].
    Refused(Refusal),
    /// Done (replicate, flush): the change is stored.
    Done,
    /// A replicated item could not be stored (too large, out of memory); the receiver no
    /// longer holds the key.
    NotStored(ServerError),
    /// The receiver holds a newer version of the key than the one replicated (the sender
    /// was a primary acting on an outdated copy): the write did not take.
    Superseded,
    /// The exported key, and how the receiver holds its partition.
    Key {
        /// The key's state.
        state: KeyState,
        /// How the receiver holds the key's partition.
        holding: Holding,
    },
    /// The pulled partitions, in the order asked.
    Partitions(Vec<PulledPartition>),
    /// The receiver's version clock.
    Clock(u64),
    /// The receiver's status.
    Status(NodeStatus),
    /// Digests per partition held (see `router::repair`).
    Digests(Vec<(u16, Vec<u64>)>),
    /// The receiver's items and tombstones of the buckets asked.
    Repair {
        /// Live items.
        items: Vec<ReplicaItem>,
        /// Tombstones.
        tombstones: Vec<(Bytes, u64)>,
    },
}

/// One partition as a pull carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PulledPartition {
    /// How the sender holds it.
    pub holding: Holding,
    /// Its live items (none unless `holding` is not [`Holding::None`]).
    pub items: Vec<ReplicaItem>,
    /// Its tombstones.
    pub tombstones: Vec<(Bytes, u64)>,
}

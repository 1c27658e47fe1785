//! The messages nodes exchange through the RPC transport ([`crate::rpc`]): forwarded
//! commands, replication, hand-off pulls and the few cluster-wide operations. They carry
//! the protocol-neutral [`Command`] and [`Outcome`] as they are, so a forwarded command
//! means exactly what it meant on the node that parsed it.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shoal_command::{Command, FlushAll, Outcome, ReplicaItem};

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
    /// Run `flush_all` on the receiver only.
    Flush(FlushAll),
    /// Every item of these partitions, once the receiver's own view makes `requester`
    /// one of their owners (so that every later write reaches the requester directly).
    Pull {
        /// The new owner asking.
        requester: SocketAddr,
        /// Partition numbers.
        partitions: Vec<u16>,
    },
    /// How many items the receiver holds.
    ItemCount,
}

/// One replicated change of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReplicaOp {
    /// The key now holds this item (last writer wins by CAS).
    Put(ReplicaItem),
    /// The key has no item any more.
    Remove(Bytes),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerResponse {
    /// The command's outcome.
    Outcome(Outcome),
    /// The receiver is not the partition's primary in its view: retry after the views
    /// converge.
    NotPrimary,
    /// Done (replicate, flush).
    Done,
    /// The exported item, if any.
    Item(Option<ReplicaItem>),
    /// The pulled items.
    Items(Vec<ReplicaItem>),
    /// The receiver's item count.
    Count(u64),
}

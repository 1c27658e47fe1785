//! Shoal's cluster layer.
//!
//! * [`node`]: [`NodeId`], the identity of a cluster member (address + incarnation).
//! * [`placement`]: the fixed set of partitions, [`partition_of`] for keys and the
//!   [`PlacementMap`] (each partition's ordered owner list) computed by rendezvous hashing.
//! * [`membership`]: SWIM membership and failure detection (the `foca` library) over UDP,
//!   publishing the live member list through a `tokio::sync::watch` channel.
//! * [`rpc`]: node-to-node RPC over persistent, pipelined TCP connections, generic over
//!   the serde message types.
//!
//! Every node derives the same [`PlacementMap`] from the same member list, so routing needs
//! no coordination beyond membership.

pub mod error;
pub mod membership;
pub mod node;
pub mod placement;
pub mod router;
pub mod rpc;

pub use error::ClusterError;
pub use membership::{Membership, MembershipConfig, SwimTuning};
pub use node::NodeId;
pub use placement::{
    partition_of, PartitionId, PlacementMap, Placer, Rendezvous, DEFAULT_REPLICAS, PARTITIONS,
};
pub use rpc::{Peers, RpcClient, RpcConfig, RpcError};

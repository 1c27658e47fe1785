//! Typed errors of the cluster layer.

use std::net::SocketAddr;

/// Errors returned by the cluster layer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster UDP socket could not be bound.
    #[error("cannot bind cluster socket {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bound socket's local address could not be read.
    #[error("cannot read the cluster socket's local address: {0}")]
    LocalAddr(std::io::Error),
    /// The address other members would use to reach us is unspecified (0.0.0.0 or ::);
    /// an explicit advertised address is needed.
    #[error(
        "cluster address {0} is unspecified: set an advertised address other members can reach"
    )]
    UnspecifiedAddress(SocketAddr),
    /// The membership task has already stopped.
    #[error("the membership task has stopped")]
    Stopped,
}

//! The identity of a cluster member.
//!
//! A [`NodeId`] is the member's cluster address (what peers send gossip to) plus an
//! *incarnation*: a number chosen at start (nanoseconds since the Unix epoch) so that a
//! restarted node is a new member, distinct from its previous life at the same address.
//! When two identities share an address, the higher incarnation wins (see the `foca`
//! `Identity` impl in [`crate::membership`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A cluster member's identity: its cluster address and incarnation.
///
/// Ordered by address, then incarnation, so sorted member lists are the same everywhere.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct NodeId {
    addr: SocketAddr,
    incarnation: u64,
}

impl NodeId {
    /// An identity with an explicit incarnation.
    pub const fn new(addr: SocketAddr, incarnation: u64) -> Self {
        Self { addr, incarnation }
    }

    /// A fresh identity for a node starting now: the incarnation is the wall-clock time in
    /// nanoseconds since the Unix epoch (at least 1).
    pub fn fresh(addr: SocketAddr) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(1);
        Self::new(addr, nanos.max(1))
    }

    /// The cluster (gossip) address of this member.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The incarnation: larger means a later life of the member at the same address.
    pub const fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The same member with the next incarnation (used to rejoin after being declared
    /// down by mistake).
    pub const fn bumped(&self) -> Self {
        Self::new(self.addr, self.incarnation.wrapping_add(1))
    }

    /// The bytes placement hashes for this node: a platform-independent encoding of the
    /// address only — `[4, a, b, c, d, port_hi, port_lo]` for IPv4, `[6, 16 address bytes,
    /// port_hi, port_lo]` for IPv6 (flow info and scope id are ignored).
    ///
    /// The incarnation is deliberately left out: a node that restarts at the same address
    /// gets back the same partitions, so only its own (now empty) partitions need filling
    /// instead of a second reshuffle.
    pub fn placement_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19);
        match self.addr {
            SocketAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.ip().octets());
            }
        }
        out.extend_from_slice(&self.addr.port().to_be_bytes());
        out
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.addr, self.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_key_is_the_address_only() {
        let a = NodeId::new("10.0.0.1:7000".parse().unwrap(), 5);
        assert_eq!(a.placement_key(), vec![4, 10, 0, 0, 1, 0x1b, 0x58]);
        assert_eq!(a.placement_key(), a.bumped().placement_key());
        let b = NodeId::new("[::1]:7000".parse().unwrap(), 5);
        assert_eq!(b.placement_key().len(), 19);
        assert_eq!(b.placement_key()[0], 6);
    }

    #[test]
    fn later_incarnation_orders_after() {
        let a = NodeId::new("10.0.0.1:7000".parse().unwrap(), 5);
        assert!(a < a.bumped());
        assert_eq!(a.to_string(), "10.0.0.1:7000#5");
    }
}

//! Which side of a network partition serves: the side with a majority of the members.
//!
//! Every node counts the members it has seen alive since it started (a member that left
//! gracefully, with SIGTERM, is no longer counted: it said so with
//! [`super::PeerRequest::Leaving`]). A node whose view holds more than half of them — or
//! exactly half, including the lowest address of them all, so one of two equal halves
//! goes on — has the quorum. One without it serves nothing (clients get
//! `SERVER_ERROR`), refuses its peers' data requests, and stops vouching for every
//! partition it held: after the heal it merges everything again from the side that went
//! on. So no write is acknowledged on the losing side, nothing stale is read there, and
//! the two sides never both act as a partition's primary.
//!
//! The price, as in every majority system: a cluster that loses half its members or
//! more at once stops serving until they return (a 2-node cluster survives the loss of
//! its higher-addressed member only). Dynamo and Cassandra (at consistency ONE) keep both
//! sides writable and reconcile later, so acknowledged writes can be lost to concurrent
//! ones; Couchbase keeps serving the partitions each side already had active and promotes
//! replicas only on the side that can fail nodes over by quorum.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::View;

/// The members counted for the quorum.
#[derive(Debug, Default)]
pub(super) struct Quorum {
    counted: BTreeSet<SocketAddr>,
}

impl Quorum {
    /// Counts every member of `view`; whether the view has the quorum.
    pub(super) fn observe(&mut self, view: &View) -> bool {
        self.counted.extend(view.counts.keys().copied());
        self.holds(view)
    }

    /// Stops counting a member that left gracefully.
    pub(super) fn forget(&mut self, addr: SocketAddr) {
        self.counted.remove(&addr);
    }

    /// Whether `view` has the quorum of the members counted.
    pub(super) fn holds(&self, view: &View) -> bool {
        let counted: BTreeSet<SocketAddr> = self
            .counted
            .iter()
            .chain(view.counts.keys())
            .copied()
            .collect();
        let live = view.counts.len();
        let lowest = counted.first().copied();
        live * 2 > counted.len()
            || (live * 2 == counted.len() && lowest.is_some_and(|a| view.is_member(a)))
    }

    /// How many members are counted.
    pub(super) fn counted(&self) -> usize {
        self.counted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;

    fn ids(ports: &[u16]) -> Vec<NodeId> {
        ports
            .iter()
            .map(|&p| NodeId::new(SocketAddr::from(([127, 0, 0, 1], p)), 1))
            .collect()
    }

    fn view(ports: &[u16]) -> View {
        let members = ids(ports);
        View::new(&members, 2, members[0])
    }

    #[test]
    fn a_majority_keeps_the_quorum_and_a_minority_loses_it() {
        let mut q = Quorum::default();
        assert!(q.observe(&view(&[1, 2, 3])));
        assert!(q.holds(&view(&[1, 2])));
        assert!(q.holds(&view(&[2, 3])));
        assert!(!q.holds(&view(&[3])));
        assert!(!q.holds(&view(&[1])));
        assert_eq!(q.counted(), 3);
    }

    #[test]
    fn an_even_split_goes_to_the_half_with_the_lowest_address() {
        let mut q = Quorum::default();
        q.observe(&view(&[1, 2, 3, 4]));
        assert!(q.holds(&view(&[1, 4])));
        assert!(!q.holds(&view(&[2, 3])));
        let mut two = Quorum::default();
        two.observe(&view(&[1, 2]));
        assert!(two.holds(&view(&[1])));
        assert!(!two.holds(&view(&[2])));
    }

    #[test]
    fn a_member_that_left_is_not_counted() {
        let mut q = Quorum::default();
        q.observe(&view(&[1, 2, 3]));
        q.forget(SocketAddr::from(([127, 0, 0, 1], 2)));
        q.forget(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(
            q.holds(&view(&[3])),
            "the last member after two graceful leaves"
        );
    }
}

//! Keys picked by where a Shoal cluster places them, for the cluster benchmark: the keys
//! whose partition primary is a given node (served locally by that node) or the keys that
//! node does not own at all (every request to it is forwarded to another node).
//!
//! Placement is Shoal's own ([`shoal_cluster::partition_of`] and
//! [`shoal_cluster::PlacementMap`]); it depends only on the members' cluster addresses and
//! the replica count, so the generator computes the same owners as the running nodes.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use shoal_cluster::{partition_of, NodeId, PlacementMap};

use crate::keys::write_key;

/// Which keys of a node to pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Keys whose partition's primary owner is the node: it serves them itself (a write
    /// still goes to the replicas).
    Local,
    /// Keys the node is no owner of (neither primary nor replica): it forwards every one.
    Remote,
}

/// The first `count` key ids (in increasing order, scanning `0, 1, 2, ...`) that are
/// `placed` relative to `node`, in a cluster of `members` (cluster addresses) with
/// `replicas` owners per partition.
pub fn select(
    members: &[SocketAddr],
    replicas: usize,
    node: SocketAddr,
    placed: Placed,
    count: u64,
) -> Result<Vec<u64>> {
    if !members.contains(&node) {
        bail!("{node} is not one of the cluster members {members:?}");
    }
    let ids: Vec<NodeId> = members.iter().map(|&addr| NodeId::new(addr, 1)).collect();
    let map = PlacementMap::compute(&ids, replicas);
    if placed == Placed::Remote && map.replicas() >= map.members().len() {
        bail!(
            "every node owns every key with {} replicas on {} members: no remote keys",
            map.replicas(),
            map.members().len()
        );
    }
    let wanted = |owners: &[NodeId]| match placed {
        Placed::Local => owners.first().map(NodeId::addr) == Some(node),
        Placed::Remote => owners.iter().all(|owner| owner.addr() != node),
    };
    let mut picked = Vec::with_capacity(count as usize);
    let mut name = Vec::with_capacity(16);
    let mut id = 0u64;
    while (picked.len() as u64) < count {
        name.clear();
        write_key(&mut name, id);
        if wanted(map.owners(partition_of(&name))) {
            picked.push(id);
        }
        id += 1;
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<SocketAddr> {
        ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect()
    }

    fn owners(members: &[SocketAddr], replicas: usize, id: u64) -> Vec<SocketAddr> {
        let ids: Vec<NodeId> = members.iter().map(|&a| NodeId::new(a, 99)).collect();
        let map = PlacementMap::compute(&ids, replicas);
        let mut name = Vec::new();
        write_key(&mut name, id);
        map.owners(partition_of(&name))
            .iter()
            .map(NodeId::addr)
            .collect()
    }

    #[test]
    fn local_keys_have_the_node_as_primary() {
        let members = members();
        let keys = select(&members, 2, members[0], Placed::Local, 500).unwrap();
        assert_eq!(keys.len(), 500);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for &id in &keys {
            assert_eq!(owners(&members, 2, id)[0], members[0], "key {id}");
        }
        // Roughly a third of all keys: the scan did not have to go far.
        assert!(*keys.last().unwrap() < 3000, "{}", keys.last().unwrap());
    }

    #[test]
    fn remote_keys_are_not_owned_by_the_node() {
        let members = members();
        for replicas in [1, 2] {
            let keys = select(&members, replicas, members[1], Placed::Remote, 300).unwrap();
            assert_eq!(keys.len(), 300);
            for &id in &keys {
                let owners = owners(&members, replicas, id);
                assert_eq!(owners.len(), replicas);
                assert!(!owners.contains(&members[1]), "key {id}: {owners:?}");
            }
        }
    }

    #[test]
    fn impossible_selections_fail() {
        let members = members();
        assert!(select(&members, 3, members[0], Placed::Remote, 10).is_err());
        let stranger: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(select(&members, 2, stranger, Placed::Local, 10).is_err());
    }
}

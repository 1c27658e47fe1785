//! What the server knows of the cluster: a [`ClusterView`] that whoever runs the server
//! (the `shoal` binary) fills from its membership and placement, and the `stats cluster`
//! lines built from it.
//!
//! The server crate does not depend on `shoal-cluster`: it only reads numbers through this
//! trait, so how members are found and partitions placed can change without touching the
//! connection and dispatch code. A server without a view is a single node that owns every
//! partition.

use std::fmt::Debug;

/// The number of partitions a single node owns, all of them (must match `shoal-cluster`'s
/// `PARTITIONS`; the binary's view reports the real value).
pub const SINGLE_NODE_PARTITIONS: u64 = 1024;

/// A snapshot of the cluster as seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// Members known (the members the current placement was computed from).
    pub members: u64,
    /// Members currently alive according to the failure detector.
    pub members_alive: u64,
    /// The effective replication factor: owners per partition (R capped at the members).
    pub replicas: u64,
    /// The total number of partitions.
    pub partitions: u64,
    /// Partitions whose primary owner is this node.
    pub partitions_primary: u64,
    /// Partitions this node holds as a (non-primary) replica.
    pub partitions_replica: u64,
}

impl ClusterSnapshot {
    /// A node on its own: one member, owner of every partition.
    pub const fn single_node() -> Self {
        ClusterSnapshot {
            members: 1,
            members_alive: 1,
            replicas: 1,
            partitions: SINGLE_NODE_PARTITIONS,
            partitions_primary: SINGLE_NODE_PARTITIONS,
            partitions_replica: 0,
        }
    }
}

/// A live view of the cluster; must be cheap to read (a `stats cluster` calls it once).
pub trait ClusterView: Send + Sync + Debug + 'static {
    /// The cluster as this node sees it now.
    fn snapshot(&self) -> ClusterSnapshot;
}

/// The `stats cluster` lines: `cluster_enabled` then the snapshot (a single-node snapshot
/// when there is no view).
pub fn stats(view: Option<&dyn ClusterView>) -> Vec<(String, String)> {
    let snapshot = view.map_or(ClusterSnapshot::single_node(), ClusterView::snapshot);
    let lines = [
        ("cluster_enabled", u64::from(view.is_some())),
        ("cluster_members", snapshot.members),
        ("cluster_members_alive", snapshot.members_alive),
        ("replicas", snapshot.replicas),
        ("partitions", snapshot.partitions),
        ("partitions_primary", snapshot.partitions_primary),
        ("partitions_replica", snapshot.partitions_replica),
    ];
    lines
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(ClusterSnapshot);

    impl ClusterView for Fixed {
        fn snapshot(&self) -> ClusterSnapshot {
            self.0
        }
    }

    fn value<'a>(lines: &'a [(String, String)], name: &str) -> &'a str {
        &lines.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn single_node_owns_everything() {
        let lines = stats(None);
        assert_eq!(value(&lines, "cluster_enabled"), "0");
        assert_eq!(value(&lines, "cluster_members"), "1");
        assert_eq!(value(&lines, "partitions_primary"), "1024");
        assert_eq!(value(&lines, "partitions_replica"), "0");
    }

    #[test]
    fn a_view_is_reported_as_is() {
        let view = Fixed(ClusterSnapshot {
            members: 3,
            members_alive: 3,
            replicas: 2,
            partitions: 1024,
            partitions_primary: 300,
            partitions_replica: 350,
        });
        let lines = stats(Some(&view));
        assert_eq!(value(&lines, "cluster_enabled"), "1");
        assert_eq!(value(&lines, "cluster_members_alive"), "3");
        assert_eq!(value(&lines, "replicas"), "2");
        assert_eq!(value(&lines, "partitions_replica"), "350");
        assert_eq!(lines[0].0, "cluster_enabled");
    }
}

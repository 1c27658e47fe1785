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

/// One member of the cluster as this node sees it (a row of `shoal cluster status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// The member's cluster address (gossip over UDP, node-to-node RPC over TCP).
    pub addr: String,
    /// Whether the failure detector holds it alive.
    pub alive: bool,
    /// Whether it is the node answering.
    pub local: bool,
    /// Partitions whose primary it is.
    pub partitions_primary: u64,
    /// Partitions it holds as a replica.
    pub partitions_replica: u64,
    /// Items in its store, when it answered the last poll.
    pub items: Option<u64>,
    /// Partitions it is pulling (hand-off), when it answered the last poll.
    pub partitions_syncing: Option<u64>,
    /// Items and bytes it has merged by hand-off since it started, at the last poll.
    pub pulled: Option<(u64, u64)>,
    /// Items it has merged by anti-entropy, and seconds since its last repair round
    /// (None: none yet), at the last poll.
    pub repaired: Option<(u64, Option<u64>)>,
}

/// A snapshot of the cluster as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Partitions this node owns but is still pulling from their previous owners.
    pub partitions_syncing: u64,
    /// Whether this node acts on its view (0 while it starts, or after a pause until its
    /// view is confirmed).
    pub ready: bool,
    /// Whether this node's side has the quorum (a majority of the members counted).
    pub quorum: bool,
    /// Members counted for the quorum.
    pub members_counted: u64,
    /// Tombstones (versions of removals) kept.
    pub tombstones: u64,
    /// Tombstones collected before their horizon for want of room.
    pub tombstones_collected_early: u64,
    /// The cluster-wide `flush_all` version this node knows (items below it are gone).
    pub flush_version: u64,
    /// Anti-entropy rounds run, buckets found to differ, items merged.
    pub repairs: (u64, u64, u64),
    /// Seconds since the last repair round (None: none yet).
    pub last_repair_secs: Option<u64>,
    /// Every member known, alive or not, in address order.
    pub member_rows: Vec<MemberRow>,
}

impl ClusterSnapshot {
    /// A node on its own: one member, owner of every partition.
    pub fn single_node() -> Self {
        ClusterSnapshot {
            members: 1,
            members_alive: 1,
            replicas: 1,
            partitions: SINGLE_NODE_PARTITIONS,
            partitions_primary: SINGLE_NODE_PARTITIONS,
            partitions_replica: 0,
            partitions_syncing: 0,
            ready: true,
            quorum: true,
            members_counted: 1,
            tombstones: 0,
            tombstones_collected_early: 0,
            flush_version: 0,
            repairs: (0, 0, 0),
            last_repair_secs: None,
            member_rows: Vec::new(),
        }
    }
}

/// A live view of the cluster; must be cheap to read (a `stats cluster` calls it once).
pub trait ClusterView: Send + Sync + Debug + 'static {
    /// The cluster as this node sees it now.
    fn snapshot(&self) -> ClusterSnapshot;
}

/// A polled number, or `unknown` when the member did not answer.
fn unknown_or(value: Option<u64>) -> String {
    value.map_or_else(|| "unknown".to_string(), |n| n.to_string())
}

/// The `stats cluster` lines: `cluster_enabled` then the snapshot (a single-node snapshot
/// when there is no view), then `member_<i>_<field>` lines for every member.
pub fn stats(view: Option<&dyn ClusterView>) -> Vec<(String, String)> {
    let snapshot = view.map_or_else(ClusterSnapshot::single_node, ClusterView::snapshot);
    let lines = [
        ("cluster_enabled", u64::from(view.is_some())),
        ("cluster_members", snapshot.members),
        ("cluster_members_alive", snapshot.members_alive),
        ("replicas", snapshot.replicas),
        ("partitions", snapshot.partitions),
        ("partitions_primary", snapshot.partitions_primary),
        ("partitions_replica", snapshot.partitions_replica),
        ("partitions_syncing", snapshot.partitions_syncing),
        ("cluster_ready", u64::from(snapshot.ready)),
        ("cluster_quorum", u64::from(snapshot.quorum)),
        ("cluster_members_counted", snapshot.members_counted),
        ("tombstones", snapshot.tombstones),
        (
            "tombstones_collected_early",
            snapshot.tombstones_collected_early,
        ),
        ("flush_version", snapshot.flush_version),
        ("repair_rounds", snapshot.repairs.0),
        ("repair_buckets", snapshot.repairs.1),
        ("repair_items", snapshot.repairs.2),
    ];
    let mut out: Vec<(String, String)> = lines
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    out.push((
        "repair_last_secs".to_string(),
        unknown_or(snapshot.last_repair_secs).replace("unknown", "never"),
    ));
    for (i, member) in snapshot.member_rows.iter().enumerate() {
        let state = if member.alive { "alive" } else { "down" };
        let items = member
            .items
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        let fields = [
            ("addr", member.addr.clone()),
            ("state", state.to_string()),
            ("local", u8::from(member.local).to_string()),
            ("partitions_primary", member.partitions_primary.to_string()),
            ("partitions_replica", member.partitions_replica.to_string()),
            ("items", items),
            ("partitions_syncing", unknown_or(member.partitions_syncing)),
            ("pulled_items", unknown_or(member.pulled.map(|p| p.0))),
            ("pulled_bytes", unknown_or(member.pulled.map(|p| p.1))),
            ("repaired_items", unknown_or(member.repaired.map(|r| r.0))),
            (
                "repair_last_secs",
                match member.repaired {
                    None => "unknown".to_string(),
                    Some((_, None)) => "never".to_string(),
                    Some((_, Some(secs))) => secs.to_string(),
                },
            ),
        ];
        for (field, value) in fields {
            out.push((format!("member_{i}_{field}"), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(ClusterSnapshot);

    impl ClusterView for Fixed {
        fn snapshot(&self) -> ClusterSnapshot {
            self.0.clone()
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
            partitions_syncing: 7,
            ready: false,
            quorum: false,
            members_counted: 3,
            tombstones: 12,
            tombstones_collected_early: 0,
            flush_version: 99,
            repairs: (4, 2, 9),
            last_repair_secs: Some(3),
            member_rows: vec![MemberRow {
                addr: "127.0.0.1:7001".into(),
                alive: false,
                local: false,
                partitions_primary: 0,
                partitions_replica: 0,
                items: None,
                partitions_syncing: Some(3),
                pulled: Some((40, 4000)),
                repaired: Some((5, None)),
            }],
        });
        let lines = stats(Some(&view));
        assert_eq!(value(&lines, "cluster_enabled"), "1");
        assert_eq!(value(&lines, "cluster_members_alive"), "3");
        assert_eq!(value(&lines, "replicas"), "2");
        assert_eq!(value(&lines, "partitions_replica"), "350");
        assert_eq!(value(&lines, "partitions_syncing"), "7");
        assert_eq!(lines[0].0, "cluster_enabled");
        assert_eq!(value(&lines, "member_0_state"), "down");
        assert_eq!(value(&lines, "member_0_items"), "unknown");
        assert_eq!(value(&lines, "cluster_ready"), "0");
        assert_eq!(value(&lines, "cluster_quorum"), "0");
        assert_eq!(value(&lines, "cluster_members_counted"), "3");
        assert_eq!(value(&lines, "tombstones"), "12");
        assert_eq!(value(&lines, "flush_version"), "99");
        assert_eq!(value(&lines, "member_0_partitions_syncing"), "3");
        assert_eq!(value(&lines, "member_0_pulled_bytes"), "4000");
        assert_eq!(value(&lines, "repair_items"), "9");
        assert_eq!(value(&lines, "repair_last_secs"), "3");
        assert_eq!(value(&lines, "member_0_repaired_items"), "5");
        assert_eq!(value(&lines, "member_0_repair_last_secs"), "never");
    }
}

//! Tests of partitioning and rendezvous placement.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use proptest::prelude::*;

use super::*;

fn node(last: u8, port: u16, incarnation: u64) -> NodeId {
    NodeId::new(
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)),
        incarnation,
    )
}

/// 1..=max members with distinct addresses.
fn members(max: usize) -> impl Strategy<Value = Vec<NodeId>> {
    members_between(1, max)
}

/// min..=max members with distinct addresses.
fn members_between(min: usize, max: usize) -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::btree_set((any::<u8>(), 1u16..), min..=max).prop_flat_map(|addrs| {
        let n = addrs.len();
        (Just(addrs), prop::collection::vec(1u64.., n)).prop_map(|(addrs, incs)| {
            addrs
                .into_iter()
                .zip(incs)
                .map(|((a, port), inc)| node(a, port, inc))
                .collect()
        })
    })
}

fn primary_counts(map: &PlacementMap) -> Vec<usize> {
    map.members()
        .iter()
        .map(|m| map.partitions_primary(m).len())
        .collect()
}

#[test]
fn partition_of_is_xxh3_mod_1024() {
    // xxh3_64("") = 0x2D06800538D394C2, a published test vector; 0x...4C2 % 1024 = 0xC2.
    assert_eq!(partition_of(b"").get(), 0xC2);
    assert!(PartitionId::all().count() == usize::from(PARTITIONS));
    assert!(PartitionId::new(PARTITIONS).is_none());
}

#[test]
fn no_members_means_no_owners() {
    let map = PlacementMap::compute(&[], DEFAULT_REPLICAS);
    assert_eq!(map.replicas(), 0);
    assert!(map.owners(partition_of(b"k")).is_empty());
    assert_eq!(map.primary(partition_of(b"k")), None);
}

#[test]
fn primary_and_replica_lists_cover_every_owner_slot() {
    let ms = [node(1, 7000, 1), node(2, 7000, 1), node(3, 7000, 1)];
    let map = PlacementMap::compute(&ms, 2);
    let primaries: usize = ms.iter().map(|m| map.partitions_primary(m).len()).sum();
    let replicas: usize = ms.iter().map(|m| map.partitions_replica(m).len()).sum();
    assert_eq!(primaries, usize::from(PARTITIONS));
    assert_eq!(replicas, usize::from(PARTITIONS));
    for m in &ms {
        let p: BTreeSet<_> = map.partitions_primary(m).into_iter().collect();
        assert!(map.partitions_replica(m).iter().all(|r| !p.contains(r)));
    }
}

#[test]
fn restart_at_the_same_address_keeps_the_partitions() {
    let a = [node(1, 7000, 1), node(2, 7000, 1), node(3, 7000, 1)];
    let b = [node(1, 7000, 1), node(2, 7000, 1), node(3, 7000, 99)];
    let (ma, mb) = (PlacementMap::compute(&a, 2), PlacementMap::compute(&b, 2));
    assert_eq!(ma.partitions_primary(&a[2]), mb.partitions_primary(&b[2]));
}

proptest! {
    #[test]
    fn order_independent(ms in members(8), r in 0usize..5, seed in any::<u64>()) {
        let mut shuffled = ms.clone();
        // A deterministic permutation driven by `seed`.
        shuffled.sort_by_key(|m| xxh3_64_with_seed(&m.placement_key(), seed));
        shuffled.reverse();
        prop_assert_eq!(PlacementMap::compute(&ms, r), PlacementMap::compute(&shuffled, r));
    }

    #[test]
    fn owners_distinct_and_capped(ms in members(8), r in 0usize..10) {
        let map = PlacementMap::compute(&ms, r);
        let want = r.max(1).min(ms.len());
        prop_assert_eq!(map.replicas(), want);
        for p in PartitionId::all() {
            let owners = map.owners(p);
            prop_assert_eq!(owners.len(), want);
            let distinct: BTreeSet<_> = owners.iter().collect();
            prop_assert_eq!(distinct.len(), want);
            prop_assert!(owners.iter().all(|o| ms.contains(o)));
        }
    }

    #[test]
    fn balanced_at_three_nodes(ms in members_between(3, 3)) {
        let map = PlacementMap::compute(&ms, DEFAULT_REPLICAS);
        let counts = primary_counts(&map);
        let mean = f64::from(PARTITIONS) / 3.0;
        let max = *counts.iter().max().unwrap() as f64;
        prop_assert!(max <= 1.2 * mean, "primary counts {:?}", counts);
    }

    #[test]
    fn join_moves_only_to_the_new_node(ms in members(8), r in 1usize..4, a in any::<u8>(), port in 1u16..) {
        let newcomer = node(a, port, 7);
        prop_assume!(ms.iter().all(|m| m.addr() != newcomer.addr()));
        let before = PlacementMap::compute(&ms, r);
        let mut grown = ms.clone();
        grown.push(newcomer);
        let after = PlacementMap::compute(&grown, r);
        let mut moved = 0usize;
        for p in PartitionId::all() {
            let (old, new) = (before.owners(p), after.owners(p));
            // Removing the newcomer from the new list leaves a prefix of the old list.
            let rest: Vec<NodeId> = new.iter().copied().filter(|n| *n != newcomer).collect();
            prop_assert_eq!(&rest[..], &old[..rest.len()]);
            prop_assert_eq!(rest.len(), old.len().min(new.len() - usize::from(new.len() != rest.len())));
            if old[0] != new[0] {
                prop_assert_eq!(new[0], newcomer);
                moved += 1;
            }
        }
        let expected = f64::from(PARTITIONS) / grown.len() as f64;
        prop_assert!((moved as f64) > 0.5 * expected && (moved as f64) < 1.5 * expected,
            "moved {} of {} primaries, expected ~{}", moved, PARTITIONS, expected);
    }

    #[test]
    fn leave_moves_only_the_leavers_partitions(ms in members(8), r in 1usize..4, pick in any::<usize>()) {
        prop_assume!(ms.len() >= 2);
        let leaver = ms[pick % ms.len()];
        let before = PlacementMap::compute(&ms, r);
        let rest_members: Vec<NodeId> = ms.iter().copied().filter(|m| *m != leaver).collect();
        let after = PlacementMap::compute(&rest_members, r);
        let mut moved = 0usize;
        for p in PartitionId::all() {
            let (old, new) = (before.owners(p), after.owners(p));
            let kept: Vec<NodeId> = old.iter().copied().filter(|n| *n != leaver).collect();
            prop_assert_eq!(&kept[..], &new[..kept.len()]);
            if old[0] != new[0] {
                prop_assert_eq!(old[0], leaver);
                moved += 1;
            }
        }
        prop_assert_eq!(moved, before.partitions_primary(&leaver).len());
    }
}

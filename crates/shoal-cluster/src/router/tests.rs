//! Unit tests of the router's pure decisions: which commands change an item (and so are
//! replicated), which may be served by any owner, and how a view counts partitions.

use std::net::SocketAddr;

use bytes::Bytes;
use shoal_command::{
    Arith, ArithOp, ArithOutcome, Command, Delete, DeleteOutcome, FlagOrder, Get, Outcome,
    ReadOptions, ServerError, Store, StoreMode, StoreOutcome, Touch,
};

use super::{changed, is_plain_read, key_of, View};
use crate::node::NodeId;
use crate::placement::{PartitionId, PARTITIONS};

fn key() -> Bytes {
    Bytes::from_static(b"k")
}

fn get(options: ReadOptions) -> Command {
    Command::Get(Get {
        keys: vec![key()],
        options,
    })
}

fn set() -> Command {
    Command::Store(Store {
        mode: StoreMode::Set,
        key: key(),
        flags: 0,
        exptime: 0,
        data: Bytes::from_static(b"v"),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    })
}

fn incr() -> Command {
    Command::Arith(Arith {
        key: key(),
        op: ArithOp::Incr,
        delta: 1,
        compare_cas: None,
        new_cas: None,
        vivify: None,
        touch: None,
        order: FlagOrder::default(),
    })
}

#[test]
fn only_reads_without_side_effects_are_plain() {
    assert!(is_plain_read(&get(ReadOptions::default())));
    assert!(is_plain_read(&Command::MetaDebug(key())));
    let touch = ReadOptions {
        touch: Some(10),
        ..ReadOptions::default()
    };
    assert!(!is_plain_read(&get(touch)));
    let vivify = ReadOptions {
        vivify: Some(10),
        ..ReadOptions::default()
    };
    assert!(!is_plain_read(&get(vivify)));
    assert!(!is_plain_read(&set()));
    assert!(!is_plain_read(&Command::Delete(Delete::of(key()))));
}

#[test]
fn writes_that_change_nothing_are_not_replicated() {
    let stored = Outcome::Stored(StoreOutcome::Stored { cas: 1 });
    assert!(changed(&set(), &stored));
    assert!(!changed(&set(), &Outcome::Stored(StoreOutcome::NotStored)));
    assert!(!changed(&set(), &Outcome::Stored(StoreOutcome::Exists)));
    // A set refused for size removes the old item: the replicas must remove it too.
    assert!(changed(&set(), &Outcome::Error(ServerError::TooLarge)));
    let delete = Command::Delete(Delete::of(key()));
    assert!(changed(&delete, &Outcome::Deleted(DeleteOutcome::Deleted)));
    assert!(!changed(
        &delete,
        &Outcome::Deleted(DeleteOutcome::NotFound)
    ));
    let value = Outcome::Arith(ArithOutcome::Value {
        value: 2,
        cas: 3,
        ttl: None,
        created: false,
    });
    assert!(changed(&incr(), &value));
    assert!(!changed(&incr(), &Outcome::Arith(ArithOutcome::NonNumeric)));
    let touch = Command::Touch(Touch {
        key: key(),
        exptime: 5,
    });
    assert!(changed(&touch, &Outcome::Touched(true)));
    assert!(!changed(&touch, &Outcome::Touched(false)));
}

#[test]
fn reads_change_only_with_side_effects_on_a_hit() {
    let hit = Outcome::Values(vec![Some(shoal_command::ItemView::default())]);
    let miss = Outcome::Values(vec![None]);
    assert!(!changed(&get(ReadOptions::default()), &hit));
    let gat = get(ReadOptions {
        touch: Some(10),
        ..ReadOptions::default()
    });
    assert!(changed(&gat, &hit));
    assert!(!changed(&gat, &miss));
}

#[test]
fn every_item_command_has_its_key() {
    for command in [set(), incr(), get(ReadOptions::default())] {
        assert_eq!(key_of(&command), Some(&key()));
    }
    assert_eq!(key_of(&Command::Version), None);
}

#[test]
fn a_view_counts_each_partition_once_per_owner() {
    let members: Vec<NodeId> = (0..3)
        .map(|i| NodeId::new(SocketAddr::from(([127, 0, 0, 1], 7000 + i)), 1))
        .collect();
    let local = members[1].addr();
    let view = View::new(&members, 2, members[1]);
    let primary: u64 = view.counts.values().map(|c| c.0).sum();
    let replica: u64 = view.counts.values().map(|c| c.1).sum();
    assert_eq!(primary, u64::from(PARTITIONS));
    assert_eq!(replica, u64::from(PARTITIONS));
    for p in PartitionId::all() {
        let owners = view.owners(p);
        assert_eq!(owners.len(), 2);
        assert_ne!(owners[0], owners[1]);
        assert_eq!(view.is_primary(p), owners[0].addr() == local);
        assert_eq!(
            view.other_owners(p).count(),
            if view.is_owner(p, local) { 1 } else { 2 }
        );
    }
    let alone = View::new(&members[..1], 2, members[0]);
    assert_eq!(alone.map.replicas(), 1, "R is capped at the live members");
    assert!(PartitionId::all().all(|p| alone.is_primary(p)));
}

#[test]
fn views_of_the_same_members_share_a_digest_and_a_new_incarnation_changes_it() {
    let members: Vec<NodeId> = (0..3)
        .map(|i| NodeId::new(SocketAddr::from(([127, 0, 0, 1], 7000 + i)), 1))
        .collect();
    let a = View::new(&members, 2, members[0]);
    let b = View::new(&members, 2, members[2]);
    assert_eq!(a.digest, b.digest, "the same members seen from two nodes");
    let mut restarted = members.clone();
    restarted[1] = members[1].bumped();
    assert_ne!(View::new(&restarted, 2, members[0]).digest, a.digest);
    assert_ne!(View::new(&members, 3, members[0]).digest, a.digest);
    assert_ne!(View::new(&members[..2], 2, members[0]).digest, a.digest);
    assert_eq!(a.id_of(members[1].addr()), Some(members[1]));
}

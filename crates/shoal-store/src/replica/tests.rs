//! Tests of the replication API: last-writer-wins, export/apply round trips between
//! stores started at different times, expiry, the CAS Lamport clock, scan and retain
//! (against a HashMap model).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use shoal_command::{Delete, ReplicaItem, ServerError, StoreMode, StoreOutcome};

use crate::tests::{cmd, del, store_with, T0};
use crate::{ManualClock, Store, StoreConfig, StoreStats};

fn store() -> (Store, Arc<ManualClock>) {
    store_with(StoreConfig::default())
}

fn set(s: &Store, key: &str, value: &str) -> u64 {
    match s.store(&cmd(StoreMode::Set, key, value)) {
        Ok(StoreOutcome::Stored { cas }) => cas,
        other => panic!("set failed: {other:?}"),
    }
}

fn replica(key: &str, value: &str, cas: u64) -> ReplicaItem {
    ReplicaItem {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        flags: 0,
        expires_at: 0,
        cas,
        stale: false,
        binary_key: false,
    }
}

fn value_cas(s: &Store, key: &str) -> Option<(Vec<u8>, u64)> {
    s.peek(key.as_bytes()).map(|v| (v.value.to_vec(), v.cas))
}

/// Every live item, by key.
fn contents(s: &Store) -> BTreeMap<Vec<u8>, ReplicaItem> {
    let mut all = BTreeMap::new();
    s.scan(
        |_| true,
        |it| {
            assert!(all.insert(it.key.to_vec(), it).is_none(), "seen twice");
        },
    );
    all
}

/// The counters a client's commands move on reads.
fn read_counters(st: &StoreStats) -> (u64, u64) {
    (st.get_expired, st.get_flushed)
}

#[test]
fn last_writer_wins_on_cas() {
    let (s, _) = store();
    // missing: written, with exactly its CAS though the counter is lower
    assert_eq!(s.apply_replica(&replica("k", "v10", 10)), Ok(true));
    assert_eq!(value_cas(&s, "k"), Some((b"v10".to_vec(), 10)));
    // older and equal: ignored
    assert_eq!(s.apply_replica(&replica("k", "v9", 9)), Ok(false));
    assert_eq!(s.apply_replica(&replica("k", "other", 10)), Ok(false));
    assert_eq!(value_cas(&s, "k"), Some((b"v10".to_vec(), 10)));
    // newer: wins
    assert_eq!(s.apply_replica(&replica("k", "v11", 11)), Ok(true));
    assert_eq!(value_cas(&s, "k"), Some((b"v11".to_vec(), 11)));
    // a local set after it gets a higher CAS, so a replica of the old version loses
    let cas = set(&s, "k", "local");
    assert!(cas > 11);
    assert_eq!(s.apply_replica(&replica("k", "v11", 11)), Ok(false));
    assert_eq!(value_cas(&s, "k"), Some((b"local".to_vec(), cas)));
    assert_eq!(s.stats().curr_items, 1);
}

#[test]
fn dead_items_count_as_missing() {
    let (s, clock) = store();
    let mut c = cmd(StoreMode::Set, "k", "old");
    c.exptime = 5;
    c.new_cas = Some(100);
    s.store(&c).unwrap();
    clock.advance(5);
    // the expired item's higher CAS does not stop an older version from being written
    assert_eq!(s.apply_replica(&replica("k", "new", 50)), Ok(true));
    assert_eq!(value_cas(&s, "k"), Some((b"new".to_vec(), 50)));
    // nor does a flushed one's
    s.flush_all(0);
    clock.advance(1);
    assert_eq!(s.stats().curr_items, 1, "still linked, but flushed");
    assert!(s.peek(b"k").is_none());
    assert_eq!(s.apply_replica(&replica("k", "after", 1000)), Ok(true));
    assert_eq!(value_cas(&s, "k"), Some((b"after".to_vec(), 1000)));
}

#[test]
fn round_trip_between_stores_with_different_start_times() {
    let (a, clock_a) = store();
    let mut c = cmd(StoreMode::Set, "k", "value");
    c.flags = 0xdead_beef;
    c.exptime = 1000;
    c.binary_key = true;
    a.store(&c).unwrap();
    a.store(&cmd(StoreMode::Set, "plain", "p")).unwrap();
    // invalidated: stale, with a new CAS
    let inval = Delete {
        invalidate: true,
        ..del("k")
    };
    a.delete(&inval);
    clock_a.advance(300);
    let sent = a.export(b"k").expect("live");
    let want_cas = a.peek(b"k").unwrap().cas;
    assert_eq!(
        sent,
        ReplicaItem {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"value"),
            flags: 0xdead_beef,
            expires_at: T0 + 1000,
            cas: want_cas,
            stale: true,
            binary_key: true,
        }
    );
    // one store started earlier, one later than the export
    for offset in [-5000i64, 0, 250] {
        let start = (T0 as i64 + 300 + offset) as u64;
        let clock_b = Arc::new(ManualClock::new(start));
        let b = Store::with_clock(StoreConfig::default(), clock_b.clone());
        clock_b.set(T0 + 300);
        assert_eq!(b.apply_replica(&sent), Ok(true));
        assert_eq!(b.export(b"k"), Some(sent.clone()), "start offset {offset}");
        let (va, vb) = (a.peek(b"k").unwrap(), b.peek(b"k").unwrap());
        assert_eq!(vb.ttl, va.ttl, "the same moment, start offset {offset}");
        assert_eq!(vb.ttl, Some(700));
        assert_eq!((vb.stale, vb.binary_key, vb.cas), (true, true, want_cas));
        // and it expires in both at the same second
        clock_b.set(T0 + 999);
        assert!(b.export(b"k").is_some());
        clock_b.set(T0 + 1000);
        assert!(b.export(b"k").is_none());
    }
    let plain = a.export(b"plain").unwrap();
    assert_eq!(plain.expires_at, 0);
    assert!(!plain.stale && !plain.binary_key && plain.flags == 0);
}

#[test]
fn export_has_no_side_effect() {
    let (s, clock) = store();
    set(&s, "k", "v");
    clock.advance(100);
    let before = s.stats();
    assert!(s.export(b"k").is_some());
    assert!(s.export(b"missing").is_none());
    assert!(s.export(&[b'k'; 300]).is_none());
    let v = s.peek(b"k").unwrap();
    assert!(!v.fetched, "export does not mark it fetched");
    assert_eq!(v.last_access, 100, "export does not move its access time");
    assert_eq!(s.stats(), before);
}

#[test]
fn expired_items_are_neither_exported_nor_applied() {
    let (s, clock) = store();
    let mut c = cmd(StoreMode::Set, "short", "v");
    c.exptime = 10;
    s.store(&c).unwrap();
    clock.advance(10);
    assert!(s.export(b"short").is_none());
    assert_eq!(read_counters(&s.stats()), (0, 0), "not a client's read");
    let now = T0 + 10;
    // already past: not written
    let mut past = replica("gone", "v", 5);
    past.expires_at = now;
    assert_eq!(s.apply_replica(&past), Ok(false));
    assert!(s.peek(b"gone").is_none());
    // an expired newer version removes the older item
    let old_cas = set(&s, "k", "old");
    let mut newer_dead = replica("k", "new", old_cas + 1);
    newer_dead.expires_at = now - 1;
    assert_eq!(s.apply_replica(&newer_dead), Ok(false));
    assert!(s.peek(b"k").is_none());
    // but not a newer item
    let cas = set(&s, "k", "kept");
    let mut older_dead = replica("k", "x", cas - 1);
    older_dead.expires_at = now;
    assert_eq!(s.apply_replica(&older_dead), Ok(false));
    assert_eq!(value_cas(&s, "k"), Some((b"kept".to_vec(), cas)));
    // one second to go: written, then gone
    let mut soon = replica("soon", "v", 1);
    soon.expires_at = now + 1;
    assert_eq!(s.apply_replica(&soon), Ok(true));
    assert!(s.export(b"soon").is_some());
    clock.advance(1);
    assert!(s.export(b"soon").is_none());
    assert!(!contents(&s).contains_key(&b"soon"[..]));
}

#[test]
fn replica_covered_by_a_flush_is_not_written() {
    let (s, _) = store();
    set(&s, "a", "1");
    set(&s, "b", "2");
    s.flush_all(0);
    // versions from before the flush are dead on arrival
    assert_eq!(s.apply_replica(&replica("a", "old", 1)), Ok(false));
    assert!(s.peek(b"a").is_none());
    // versions from after it live
    assert_eq!(s.apply_replica(&replica("b", "new", 1000)), Ok(true));
    assert_eq!(value_cas(&s, "b"), Some((b"new".to_vec(), 1000)));
}

#[test]
fn observe_cas_raises_the_next_cas() {
    let (s, _) = store();
    assert_eq!(set(&s, "k", "v"), 1);
    s.observe_cas(1000);
    assert_eq!(set(&s, "k", "v"), 1001);
    s.observe_cas(5);
    assert_eq!(set(&s, "k", "v"), 1002, "never lowers the counter");
    // applying a replica observes its CAS, written or not
    s.apply_replica(&replica("r", "v", 5000)).unwrap();
    assert_eq!(set(&s, "other", "v"), 5001);
    assert_eq!(s.apply_replica(&replica("other", "v", 7000)), Ok(true));
    assert_eq!(s.apply_replica(&replica("other", "v", 6000)), Ok(false));
    assert_eq!(set(&s, "k", "v"), 7001);
    let big = replica("big", &"x".repeat(2 << 20), 9000);
    assert_eq!(s.apply_replica(&big), Err(ServerError::TooLarge));
    assert_eq!(set(&s, "k", "v"), 9001);
}

#[test]
fn without_cas_the_arrival_wins() {
    let (s, _) = store_with(StoreConfig {
        use_cas: false,
        ..StoreConfig::default()
    });
    s.observe_cas(u64::MAX);
    assert_eq!(set(&s, "k", "local"), 0);
    assert_eq!(s.apply_replica(&replica("k", "one", 0)), Ok(true));
    assert_eq!(value_cas(&s, "k"), Some((b"one".to_vec(), 0)));
    assert_eq!(s.apply_replica(&replica("k", "two", 7)), Ok(true));
    assert_eq!(value_cas(&s, "k"), Some((b"two".to_vec(), 0)));
    assert_eq!(set(&s, "k", "three"), 0);
}

#[test]
fn too_large_or_no_memory_errors_and_removes_the_older_item() {
    let (s, _) = store_with(StoreConfig {
        max_bytes: 1 << 20,
        item_size_max: 1024,
        evict: true,
        use_cas: true,
    });
    let cas = set(&s, "k", "old");
    let big = replica("k", &"x".repeat(1024), cas + 1);
    assert_eq!(s.apply_replica(&big), Err(ServerError::TooLarge));
    assert!(
        s.peek(b"k").is_none(),
        "the older item is removed, as a set does"
    );
    let cas = set(&s, "k", "newer");
    let older_big = replica("k", &"x".repeat(1024), cas - 1);
    assert_eq!(
        s.apply_replica(&older_big),
        Ok(false),
        "older: nothing to write"
    );
    assert!(s.peek(b"k").is_some());
    let long_key = replica(&"k".repeat(251), "v", 1);
    assert_eq!(s.apply_replica(&long_key), Err(ServerError::TooLarge));
    // no memory without eviction
    let (s, _) = store_with(StoreConfig {
        max_bytes: 4096,
        item_size_max: 1024,
        evict: false,
        use_cas: true,
    });
    let mut n = 0u64;
    let err = loop {
        n += 1;
        assert!(n < 1000);
        match s.apply_replica(&replica(&format!("key{n}"), &"v".repeat(100), n)) {
            Ok(written) => assert!(written),
            Err(e) => break e,
        }
    };
    assert_eq!(err, ServerError::OutOfMemory);
    assert!(s.stats().bytes <= 4096);
    assert_eq!(s.stats().curr_items, n - 1);
}

#[test]
fn replica_writes_move_no_read_counters() {
    let (s, clock) = store();
    for k in ["a", "b", "c", "d"] {
        let mut c = cmd(StoreMode::Set, k, "v");
        c.exptime = 1;
        s.store(&c).unwrap();
    }
    clock.advance(1);
    assert_eq!(s.apply_replica(&replica("a", "new", 100)), Ok(true));
    assert!(!s.remove_replica(b"b"));
    assert!(s.export(b"c").is_none());
    assert_eq!(
        s.retain(|k| k != b"d"),
        0,
        "the dead item removed is not counted"
    );
    let st = s.stats();
    assert_eq!(read_counters(&st), (0, 0));
    assert_eq!((st.curr_items, st.total_items), (1, 5));
    let v = s.peek(b"a").unwrap();
    assert!(!v.fetched);
}

#[test]
fn remove_replica_unlinks_whatever_the_version() {
    let (s, _) = store();
    s.apply_replica(&replica("k", "v", 1 << 40)).unwrap();
    assert!(s.remove_replica(b"k"));
    assert!(s.peek(b"k").is_none());
    assert!(!s.remove_replica(b"k"));
    assert!(!s.remove_replica(&[b'k'; 300]));
    assert_eq!((s.stats().curr_items, s.stats().bytes), (0, 0));
}

#[test]
fn a_versioned_removal_spares_newer_items_and_raises_the_clock() {
    let (s, _) = store();
    s.apply_replica(&replica("old", "v", 100)).unwrap();
    s.apply_replica(&replica("new", "v", 300)).unwrap();
    assert!(s.remove_if_older(b"old", 200));
    assert!(
        !s.remove_if_older(b"new", 200),
        "a newer item outlives the tombstone"
    );
    assert_eq!(value_cas(&s, "new"), Some((b"v".to_vec(), 300)));
    assert!(
        s.remove_if_older(b"new", 300),
        "an equal version is the one deleted"
    );
    assert!(!s.remove_if_older(b"gone", 400));
    assert!(s.new_version() > 400, "a tombstone's version is observed");
}

#[test]
fn a_restored_item_replaces_even_a_newer_one() {
    let (s, _) = store();
    s.apply_replica(&replica("k", "new", 500)).unwrap();
    assert!(s.restore_replica(&replica("k", "old", 100)).unwrap());
    assert_eq!(value_cas(&s, "k"), Some((b"old".to_vec(), 100)));
}

#[test]
fn a_cluster_flush_removes_older_versions_only() {
    let (s, _) = store();
    s.apply_replica(&replica("a", "v", 100)).unwrap();
    s.apply_replica(&replica("b", "v", 500)).unwrap();
    s.flush_below_version(300);
    assert!(s.peek(b"a").is_none());
    assert!(s.peek(b"b").is_some());
    assert!(
        !s.apply_replica(&replica("c", "v", 299)).unwrap(),
        "dead on arrival"
    );
    assert!(set(&s, "d", "v") >= 300, "new versions start at the floor");
    assert_eq!(s.version_floor(), 300);
    s.flush_below_version(10);
    assert_eq!(s.version_floor(), 300);
}

#[test]
fn scan_sees_exactly_the_matching_live_items() {
    let (s, clock) = store();
    for i in 0..300 {
        let mut c = cmd(StoreMode::Set, &format!("a{i}"), &format!("value {i}"));
        c.exptime = if i % 3 == 0 { 5 } else { 0 };
        s.store(&c).unwrap();
        set(&s, &format!("b{i}"), "other");
    }
    s.delete(&del("a1"));
    clock.advance(5);
    let mut seen = HashMap::new();
    let mut batches_checked = 0;
    s.scan(
        |k| k.starts_with(b"a"),
        |it| {
            // no shard lock is held while the sink runs
            assert!(s.shards.iter().all(|m| !m.is_locked()));
            batches_checked += 1;
            assert!(seen.insert(it.key.clone(), it).is_none(), "seen twice");
        },
    );
    let want: Vec<String> = (0..300)
        .filter(|i| i % 3 != 0 && *i != 1)
        .map(|i| format!("a{i}"))
        .collect();
    assert_eq!(seen.len(), want.len());
    assert_eq!(batches_checked, want.len());
    for k in want {
        let it = &seen[k.as_bytes()];
        assert_eq!(Some(it.clone()), s.export(k.as_bytes()));
        assert_eq!(it.value, format!("value {}", &k[1..]).as_bytes());
    }
    // the sink may use the store
    s.scan(
        |k| k.starts_with(b"b1"),
        |it| {
            s.remove_replica(&it.key);
        },
    );
    assert!(s.peek(b"b1").is_none() && s.peek(b"b2").is_some());
}

#[test]
fn retain_removes_exactly_the_refused_items() {
    let (s, _) = store_with(StoreConfig {
        max_bytes: 1 << 20,
        ..StoreConfig::default()
    });
    for i in 0..500 {
        set(&s, &format!("k{i}"), &"v".repeat(i % 50));
    }
    let bytes = s.stats().bytes;
    let removed =
        s.retain(|k| std::str::from_utf8(k).unwrap()[1..].parse::<u32>().unwrap() % 4 != 0);
    assert_eq!(removed, 125);
    let left = contents(&s);
    assert_eq!(left.len(), 375);
    for i in 0..500 {
        let k = format!("k{i}");
        assert_eq!(left.contains_key(k.as_bytes()), i % 4 != 0, "{k}");
        assert_eq!(s.peek(k.as_bytes()).is_some(), i % 4 != 0, "{k}");
    }
    let st = s.stats();
    assert_eq!(st.curr_items, 375);
    assert!(st.bytes < bytes);
    assert_eq!(s.retain(|_| false), 375);
    assert_eq!((s.stats().curr_items, s.stats().bytes), (0, 0));
    // the store works on after it
    set(&s, "k1", "again");
    assert_eq!(contents(&s).len(), 1);
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize),
    Apply(usize, usize, u64),
    Remove(usize),
    /// Keep the keys whose bit is set.
    Retain(u16),
}

const KEYS: usize = 12;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, 0usize..3000).prop_map(|(k, v)| Op::Set(k, v)),
        3 => (0..KEYS, 0usize..3000, 1u64..80).prop_map(|(k, v, c)| Op::Apply(k, v, c)),
        1 => (0..KEYS).prop_map(Op::Remove),
        1 => any::<u16>().prop_map(Op::Retain),
    ]
}

fn key(k: usize) -> String {
    format!("key-{k}")
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (s, _) = store_with(StoreConfig {
        max_bytes: 4 << 20,
        ..StoreConfig::default()
    });
    // key -> (value length, CAS)
    let mut m: HashMap<usize, (usize, u64)> = HashMap::new();
    for op in ops {
        match op {
            Op::Set(k, len) => {
                let cas = set(&s, &key(k), &"s".repeat(len));
                prop_assert!(m.values().all(|&(_, c)| c < cas), "CAS above all seen");
                m.insert(k, (len, cas));
            }
            Op::Apply(k, len, cas) => {
                let wins = m.get(&k).is_none_or(|&(_, held)| held < cas);
                let got = s.apply_replica(&replica(&key(k), &"r".repeat(len), cas));
                prop_assert_eq!(got, Ok(wins));
                if wins {
                    m.insert(k, (len, cas));
                }
            }
            Op::Remove(k) => {
                prop_assert_eq!(s.remove_replica(key(k).as_bytes()), m.remove(&k).is_some());
            }
            Op::Retain(mask) => {
                let keep = |k: usize| mask & (1 << k) != 0;
                let want = m.keys().filter(|&&k| !keep(k)).count();
                let got = s.retain(|kb| {
                    let k: usize = std::str::from_utf8(&kb[4..]).unwrap().parse().unwrap();
                    keep(k)
                });
                prop_assert_eq!(got, want);
                m.retain(|&k, _| keep(k));
            }
        }
        let got: BTreeMap<Vec<u8>, (usize, u64)> = contents(&s)
            .into_iter()
            .map(|(k, it)| (k, (it.value.len(), it.cas)))
            .collect();
        let want: BTreeMap<Vec<u8>, (usize, u64)> =
            m.iter().map(|(&k, &v)| (key(k).into_bytes(), v)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(s.stats().curr_items, m.len() as u64);
    }
    s.retain(|_| false);
    prop_assert_eq!((s.stats().curr_items, s.stats().bytes), (0, 0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replication_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run_model(ops)?;
    }
}

#[test]
fn tagged_cas_values_are_unique_across_nodes_and_follow_observed_versions() {
    let (a, _) = store();
    let (b, _) = store();
    a.set_cas_tag(3);
    b.set_cas_tag(40_000);
    let mask = (1u64 << crate::CAS_TAG_BITS) - 1;
    let from_a: Vec<u64> = (0..5).map(|i| set(&a, &format!("a{i}"), "x")).collect();
    let from_b: Vec<u64> = (0..5).map(|i| set(&b, &format!("b{i}"), "x")).collect();
    assert!(from_a.iter().all(|c| c & mask == 3));
    assert!(from_b.iter().all(|c| c & mask == 40_000));
    assert!(
        from_a.iter().all(|c| !from_b.contains(c)),
        "same counts, distinct CAS"
    );
    assert!(from_a.windows(2).all(|w| w[0] < w[1]));
    // b sees a's newest version: its next CAS is above it, and still b's own.
    let newest = *from_a.last().unwrap();
    b.observe_cas(newest << 4);
    let next = set(&b, "after", "x");
    assert!(next > newest << 4);
    assert_eq!(next & mask, 40_000);
}

#[test]
fn a_version_near_the_top_saturates_the_tagged_clock_instead_of_wrapping() {
    let (s, _) = store();
    s.set_cas_tag(7);
    s.observe_cas(u64::MAX - 5);
    let a = set(&s, "a", "x");
    let b = set(&s, "b", "x");
    assert!(a >= u64::MAX - 5 - (1 << crate::CAS_TAG_BITS), "{a:#x}");
    assert!(b >= a, "never backwards: {a:#x} then {b:#x}");
    assert_eq!(b & ((1 << crate::CAS_TAG_BITS) - 1), 7);
}

#[test]
fn nodes_sharing_a_tag_still_version_one_key_in_order() {
    // Two nodes whose addresses hash to the same 16-bit tag: a key's successive primaries
    // each observed the versions before (by replication or a merge), so its versions
    // still grow strictly; equal versions can only fall on different keys, which no
    // comparison looks at.
    let (a, _) = store();
    let (b, _) = store();
    a.set_cas_tag(42);
    b.set_cas_tag(42);
    let first = set(&a, "k", "1");
    b.put_replica(&a.export(b"k").unwrap()).unwrap();
    let second = set(&b, "k", "2");
    a.put_replica(&b.export(b"k").unwrap()).unwrap();
    let third = set(&a, "k", "3");
    assert!(first < second && second < third, "{first} {second} {third}");
    let (x, y) = (set(&a, "x", "v"), set(&b, "y", "v"));
    assert_eq!(x & 0xffff, y & 0xffff, "the same tag");
}

#[test]
fn a_primary_s_put_with_an_equal_cas_replaces_but_a_pulled_one_does_not() {
    let (a, _) = store();
    let mut item = replica("k", "v", 7);
    assert_eq!(a.apply_replica(&item), Ok(true));
    // A touch on the primary keeps the CAS and changes the expiry.
    item.expires_at = T0 + 1000;
    assert_eq!(a.apply_replica(&item), Ok(false), "a tie is not newer");
    assert_eq!(
        a.put_replica(&item),
        Ok(true),
        "the primary's order decides"
    );
    assert_eq!(a.export(b"k").map(|i| i.expires_at), Some(T0 + 1000));
    let older = replica("k", "old", 6);
    assert_eq!(
        a.put_replica(&older),
        Ok(false),
        "an older version never wins"
    );
}

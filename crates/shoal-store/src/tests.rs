//! Tests of the [`Store`] API, rule by rule, against memcached 1.6.18's behaviour.

use std::sync::Arc;

use bytes::Bytes;
use shoal_command::{
    Arith, ArithOp, ArithOutcome, Delete, DeleteOutcome, ItemView, ReadOptions, ServerError,
    Store as StoreCmd, StoreMode, StoreOutcome,
};

use crate::{ManualClock, Store, StoreConfig};

mod model;

pub(crate) const T0: u64 = 1_700_000_000;

pub(crate) fn store_with(config: StoreConfig) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (Store::with_clock(config, clock.clone()), clock)
}

fn store() -> (Store, Arc<ManualClock>) {
    store_with(StoreConfig::default())
}

pub(crate) fn cmd(mode: StoreMode, key: &str, value: &str) -> StoreCmd {
    StoreCmd {
        mode,
        key: Bytes::copy_from_slice(key.as_bytes()),
        flags: 0,
        exptime: 0,
        data: Bytes::copy_from_slice(value.as_bytes()),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    }
}

fn set(s: &Store, key: &str, value: &str) -> u64 {
    match s.store(&cmd(StoreMode::Set, key, value)) {
        Ok(StoreOutcome::Stored { cas }) => cas,
        other => panic!("set failed: {other:?}"),
    }
}

fn get(s: &Store, key: &str) -> Option<ItemView> {
    s.get(key.as_bytes(), &ReadOptions::default())
}

/// A read as mg does it: handing out recache wins.
fn mg(s: &Store, key: &str) -> Option<ItemView> {
    let o = ReadOptions {
        hand_out_wins: true,
        ..ReadOptions::default()
    };
    s.get(key.as_bytes(), &o)
}

fn value(s: &Store, key: &str) -> Option<Vec<u8>> {
    s.peek(key.as_bytes()).map(|v| v.value.to_vec())
}

pub(crate) fn del(key: &str) -> Delete {
    Delete {
        key: Bytes::copy_from_slice(key.as_bytes()),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        touch: None,
        clear_value: false,
    }
}

pub(crate) fn arith(key: &str, op: ArithOp, delta: u64) -> Arith {
    Arith {
        key: Bytes::copy_from_slice(key.as_bytes()),
        op,
        delta,
        compare_cas: None,
        new_cas: None,
        vivify: None,
        touch: None,
        order: Default::default(),
    }
}

#[test]
fn set_get_and_cas_counter() {
    let (s, _) = store();
    let c1 = set(&s, "a", "one");
    let c2 = set(&s, "b", "two");
    assert_eq!((c1, c2), (1, 2));
    let v = get(&s, "a").unwrap();
    assert_eq!(
        (&v.key[..], &v.value[..], v.flags, v.cas),
        (&b"a"[..], &b"one"[..], 0, 1)
    );
    assert_eq!(v.ttl, None);
    let c3 = set(&s, "a", "uno");
    assert_eq!(c3, 3);
    assert_eq!(value(&s, "a").unwrap(), b"uno");
    assert!(get(&s, "missing").is_none());
    let st = s.stats();
    assert_eq!((st.curr_items, st.total_items), (2, 3));
    assert!(st.bytes > 0);
}

#[test]
fn store_modes() {
    let (s, _) = store();
    assert_eq!(
        s.store(&cmd(StoreMode::Replace, "k", "x")),
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.store(&cmd(StoreMode::Append, "k", "x")),
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        s.store(&cmd(StoreMode::Prepend, "k", "x")),
        Ok(StoreOutcome::NotStored)
    );
    assert!(matches!(
        s.store(&cmd(StoreMode::Add, "k", "mid")),
        Ok(StoreOutcome::Stored { .. })
    ));
    assert_eq!(
        s.store(&cmd(StoreMode::Add, "k", "other")),
        Ok(StoreOutcome::NotStored)
    );
    assert!(matches!(
        s.store(&cmd(StoreMode::Append, "k", ">")),
        Ok(StoreOutcome::Stored { .. })
    ));
    assert!(matches!(
        s.store(&cmd(StoreMode::Prepend, "k", "<")),
        Ok(StoreOutcome::Stored { .. })
    ));
    assert_eq!(value(&s, "k").unwrap(), b"<mid>");
    assert!(matches!(
        s.store(&cmd(StoreMode::Replace, "k", "new")),
        Ok(StoreOutcome::Stored { .. })
    ));
    assert_eq!(value(&s, "k").unwrap(), b"new");
}

#[test]
fn append_keeps_flags_and_exptime_and_changes_cas() {
    let (s, _) = store();
    let mut c = cmd(StoreMode::Set, "k", "a");
    c.flags = 42;
    c.exptime = 100;
    s.store(&c).unwrap();
    let mut a = cmd(StoreMode::Append, "k", "b");
    a.flags = 7;
    a.exptime = 5;
    let Ok(StoreOutcome::Stored { cas }) = s.store(&a) else {
        panic!()
    };
    let v = get(&s, "k").unwrap();
    assert_eq!(
        (&v.value[..], v.flags, v.ttl, v.cas),
        (&b"ab"[..], 42, Some(100), cas)
    );
    assert_eq!(cas, 2);
}

#[test]
fn append_vivify_creates_missing_item() {
    let (s, _) = store();
    let mut a = cmd(StoreMode::Append, "k", "b");
    a.vivify = Some(30);
    a.flags = 3;
    assert!(matches!(s.store(&a), Ok(StoreOutcome::Stored { .. })));
    let v = get(&s, "k").unwrap();
    assert_eq!((&v.value[..], v.flags, v.ttl), (&b"b"[..], 3, Some(30)));
}

/// Verified against memcached 1.6.18: an item remembers whether the request that stored
/// it sent a base64 key (ITEM_KEY_BINARY); append, an incr that outgrows the value and
/// vivified items are new items without it; an incr in place and a touch keep it.
#[test]
fn binary_key_bit_follows_the_storing_request() {
    let (s, _) = store();
    let binary = |key: &str, value: &str| StoreCmd {
        binary_key: true,
        ..cmd(StoreMode::Set, key, value)
    };
    let is_binary = |key: &str| s.peek(key.as_bytes()).unwrap().binary_key;
    s.store(&binary("k", "9")).unwrap();
    assert!(get(&s, "k").unwrap().binary_key);
    assert!(s.touch(b"k", 0));
    s.arith(&arith("k", ArithOp::Decr, 1)).unwrap();
    assert!(is_binary("k"), "in place");
    s.arith(&arith("k", ArithOp::Incr, 10)).unwrap();
    assert!(!is_binary("k"), "outgrown");
    s.store(&binary("k", "x")).unwrap();
    s.store(&cmd(StoreMode::Append, "k", "y")).unwrap();
    assert!(!is_binary("k"), "appended");
    s.store(&binary("k", "x")).unwrap();
    s.store(&cmd(StoreMode::Set, "k", "y")).unwrap();
    assert!(!is_binary("k"), "overwritten through a plain key");
    let mut add = binary("new", "z");
    add.mode = StoreMode::Add;
    s.store(&add).unwrap();
    assert!(is_binary("new"));
    let vivify = ReadOptions {
        vivify: Some(0),
        ..ReadOptions::default()
    };
    assert!(!s.get(b"viv", &vivify).unwrap().binary_key);
}

#[test]
fn compare_and_swap() {
    let (s, _) = store();
    let mut c = cmd(StoreMode::Set, "k", "v2");
    c.compare_cas = Some(1);
    assert_eq!(s.store(&c), Ok(StoreOutcome::NotFound));
    let cas = set(&s, "k", "v1");
    c.compare_cas = Some(cas + 100);
    assert_eq!(s.store(&c), Ok(StoreOutcome::Exists));
    c.compare_cas = Some(0);
    assert_eq!(s.store(&c), Ok(StoreOutcome::Exists));
    c.compare_cas = Some(cas);
    assert_eq!(s.store(&c), Ok(StoreOutcome::Stored { cas: cas + 1 }));
    assert_eq!(s.store(&c), Ok(StoreOutcome::Exists), "CAS changed");
    // replace + cas works like cas
    let mut r = cmd(StoreMode::Replace, "k", "v3");
    r.compare_cas = Some(cas + 1);
    assert!(matches!(s.store(&r), Ok(StoreOutcome::Stored { .. })));
    // add ignores the CAS
    let mut a = cmd(StoreMode::Add, "new", "x");
    a.compare_cas = Some(999);
    assert!(matches!(s.store(&a), Ok(StoreOutcome::Stored { .. })));
    // append checks it
    let mut ap = cmd(StoreMode::Append, "k", "!");
    ap.compare_cas = Some(12345);
    assert_eq!(s.store(&ap), Ok(StoreOutcome::Exists));
    ap.compare_cas = Some(s.peek(b"k").unwrap().cas);
    assert!(matches!(s.store(&ap), Ok(StoreOutcome::Stored { .. })));
    assert_eq!(value(&s, "k").unwrap(), b"v3!");
}

#[test]
fn explicit_new_cas() {
    let (s, _) = store();
    let mut c = cmd(StoreMode::Set, "k", "v");
    c.new_cas = Some(777);
    assert_eq!(s.store(&c), Ok(StoreOutcome::Stored { cas: 777 }));
    assert_eq!(get(&s, "k").unwrap().cas, 777);
    // the counter is not used up by an explicit CAS
    assert_eq!(set(&s, "j", "v"), 1);
}

#[test]
fn no_cas_mode_gives_zero() {
    let (s, _) = store_with(StoreConfig {
        use_cas: false,
        ..StoreConfig::default()
    });
    assert_eq!(set(&s, "k", "5"), 0);
    assert_eq!(get(&s, "k").unwrap().cas, 0);
    match s.arith(&arith("k", ArithOp::Incr, 1)).unwrap() {
        ArithOutcome::Value { value, cas, .. } => assert_eq!((value, cas), (6, 0)),
        o => panic!("{o:?}"),
    }
}

#[test]
fn invalidating_cas_store_marks_stale_and_keeps_ttl() {
    let (s, _) = store();
    let mut c = cmd(StoreMode::Set, "k", "v1");
    c.exptime = 100;
    s.store(&c).unwrap();
    set(&s, "other", "x"); // cas 2
    let old = get(&s, "k").unwrap().cas; // 1
                                         // the item moves on (cas 3); a writer holding cas 1 may still store a stale value
    let mut w = cmd(StoreMode::Set, "k", "v2");
    w.exptime = 100;
    w.compare_cas = Some(old);
    s.store(&w).unwrap();
    let mut stale = cmd(StoreMode::Set, "k", "old");
    stale.compare_cas = Some(old);
    stale.exptime = 999;
    assert_eq!(s.store(&stale), Ok(StoreOutcome::Exists));
    stale.invalidate = true;
    assert!(matches!(s.store(&stale), Ok(StoreOutcome::Stored { .. })));
    let v = mg(&s, "k").unwrap();
    assert_eq!(
        (&v.value[..], v.stale, v.ttl),
        (&b"old"[..], true, Some(100))
    );
    assert!(v.won && !v.win_taken);
    let v = mg(&s, "k").unwrap();
    assert!(v.stale && !v.won && v.win_taken);
    // a higher CAS is not "stale"
    stale.compare_cas = Some(v.cas + 10);
    assert_eq!(s.store(&stale), Ok(StoreOutcome::Exists));
}

#[test]
fn too_large_boundary_like_memcached() {
    let (s, _) = store();
    let max = s.config().item_size_max;
    let mut c = cmd(StoreMode::Set, "k", "");
    c.data = Bytes::from(vec![b'x'; max]);
    assert_eq!(s.store(&c), Err(ServerError::TooLarge));
    c.data = Bytes::from(vec![b'x'; max - 100]);
    assert!(matches!(s.store(&c), Ok(StoreOutcome::Stored { .. })));
    // 48 + (1 + 1) + 2 + 8 = 60 bytes of memcached overhead for key "k" without flags
    c.data = Bytes::from(vec![b'x'; max - 60]);
    assert!(matches!(s.store(&c), Ok(StoreOutcome::Stored { .. })));
    c.data = Bytes::from(vec![b'x'; max - 59]);
    assert_eq!(s.store(&c), Err(ServerError::TooLarge));
    assert!(get(&s, "k").is_none(), "a failed set removes the old item");
    // append over the limit: NOT_STORED, old item kept
    c.data = Bytes::from(vec![b'x'; max - 100]);
    s.store(&c).unwrap();
    let a = StoreCmd {
        data: Bytes::from(vec![b'y'; 200]),
        ..cmd(StoreMode::Append, "k", "")
    };
    assert_eq!(s.store(&a), Ok(StoreOutcome::NotStored));
    assert_eq!(get(&s, "k").unwrap().value.len(), max - 100);
}

#[test]
fn out_of_memory_without_eviction() {
    let (s, _) = store_with(StoreConfig {
        max_bytes: 4096,
        item_size_max: 1024,
        evict: false,
        use_cas: true,
    });
    let mut stored = 0;
    let err = loop {
        let k = format!("key{stored}");
        match s.store(&cmd(StoreMode::Set, &k, &"v".repeat(100))) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000);
    };
    assert_eq!(err, ServerError::OutOfMemory);
    assert!(stored > 5);
    assert_eq!(s.stats().evictions, 0);
    assert!(s.stats().bytes <= 4096);
    // everything stored is still there
    for i in 0..stored {
        assert!(get(&s, &format!("key{i}")).is_some());
    }
}

#[test]
fn expired_items_are_reclaimed_even_without_eviction() {
    let (s, clock) = store_with(StoreConfig {
        max_bytes: 4096,
        item_size_max: 1024,
        evict: false,
        use_cas: true,
    });
    let mut n = 0;
    loop {
        let mut c = cmd(StoreMode::Set, &format!("key{n}"), &"v".repeat(100));
        c.exptime = 10;
        if s.store(&c).is_err() {
            break;
        }
        n += 1;
    }
    clock.advance(10);
    for i in 0..n {
        assert!(s
            .store(&cmd(StoreMode::Set, &format!("new{i}"), &"v".repeat(100)))
            .is_ok());
    }
    assert!(s.stats().reclaimed >= 1);
}

#[test]
fn eviction_keeps_bytes_under_limit() {
    let (s, _) = store_with(StoreConfig {
        max_bytes: 16 * 1024,
        item_size_max: 2048,
        evict: true,
        use_cas: true,
    });
    for i in 0..2000 {
        let k = format!("key{i}");
        assert!(s
            .store(&cmd(StoreMode::Set, &k, &"v".repeat(i % 300)))
            .is_ok());
        if i % 3 == 0 {
            get(&s, "key0");
        }
        assert!(s.stats().bytes <= 16 * 1024);
    }
    let st = s.stats();
    assert!(st.evictions > 0);
    assert!(st.evicted_unfetched > 0);
    assert!(get(&s, "key1999").is_some(), "the newest item is kept");
    assert!(get(&s, "key0").is_some(), "a hot item survives");
}

#[test]
fn expiry_rules() {
    let (s, clock) = store();
    let put = |k: &str, e: i64| {
        let mut c = cmd(StoreMode::Set, k, "v");
        c.exptime = e;
        s.store(&c).unwrap();
    };
    put("never", 0);
    put("neg", -1);
    put("rel", 10);
    put("30d", 30 * 24 * 3600);
    put("past_abs", 30 * 24 * 3600 + 1);
    put("abs", T0 as i64 + 5);
    assert!(get(&s, "neg").is_none());
    assert!(get(&s, "past_abs").is_none());
    assert_eq!(get(&s, "rel").unwrap().ttl, Some(10));
    assert_eq!(get(&s, "abs").unwrap().ttl, Some(5));
    assert_eq!(get(&s, "30d").unwrap().ttl, Some(30 * 24 * 3600));
    clock.advance(5);
    assert!(get(&s, "abs").is_none(), "dead at its exptime");
    assert_eq!(get(&s, "rel").unwrap().ttl, Some(5));
    clock.advance(5);
    assert!(get(&s, "rel").is_none());
    assert!(get(&s, "never").is_some());
    let st = s.stats();
    assert_eq!(st.get_expired, 4);
    assert_eq!(st.curr_items, 2);
}

#[test]
fn flush_all_now_keeps_later_items_of_the_same_second() {
    let (s, clock) = store();
    set(&s, "before", "v");
    s.flush_all(0);
    set(&s, "after", "v");
    assert!(get(&s, "before").is_none());
    assert!(get(&s, "after").is_some());
    clock.advance(1);
    assert!(get(&s, "after").is_some());
    assert_eq!(s.stats().get_flushed, 1);
}

#[test]
fn flush_all_consumes_a_cas_value() {
    let (s, _) = store();
    assert_eq!(set(&s, "a", "v"), 1);
    s.flush_all(0);
    assert_eq!(set(&s, "b", "v"), 3);
}

#[test]
fn delayed_flush() {
    let (s, clock) = store();
    set(&s, "a", "v");
    s.flush_all(2);
    set(&s, "b", "v");
    assert!(get(&s, "a").is_some());
    clock.advance(1);
    // oldest_live is now+1: in effect, and everything touched until then goes
    assert!(get(&s, "a").is_none());
    assert!(get(&s, "b").is_none());
    clock.advance(1);
    set(&s, "c", "v");
    assert!(get(&s, "c").is_some());
    clock.advance(10);
    assert!(get(&s, "c").is_some());
}

#[test]
fn flush_without_cas_takes_the_second() {
    let (s, clock) = store_with(StoreConfig {
        use_cas: false,
        ..StoreConfig::default()
    });
    s.flush_all(0);
    set(&s, "same_second", "v");
    assert!(get(&s, "same_second").is_none());
    clock.advance(1);
    set(&s, "later", "v");
    assert!(get(&s, "later").is_some());
}

fn arith_value(s: &Store, a: &Arith) -> (u64, u64) {
    match s.arith(a).unwrap() {
        ArithOutcome::Value { value, cas, .. } => (value, cas),
        o => panic!("{o:?}"),
    }
}

#[test]
fn arith_like_do_add_delta() {
    let (s, _) = store();
    assert_eq!(
        s.arith(&arith("n", ArithOp::Incr, 1)),
        Ok(ArithOutcome::NotFound)
    );
    let c0 = set(&s, "n", "10");
    let (v, c1) = arith_value(&s, &arith("n", ArithOp::Decr, 1));
    assert_eq!(v, 9);
    assert!(c1 > c0);
    assert_eq!(value(&s, "n").unwrap(), b"9 ");
    assert_eq!(arith_value(&s, &arith("n", ArithOp::Incr, 100)).0, 109);
    assert_eq!(value(&s, "n").unwrap(), b"109");
    assert_eq!(arith_value(&s, &arith("n", ArithOp::Decr, 1000)).0, 0);
    assert_eq!(value(&s, "n").unwrap(), b"0  ");
    set(&s, "n", "18446744073709551615");
    assert_eq!(arith_value(&s, &arith("n", ArithOp::Incr, 2)).0, 1);
    assert_eq!(value(&s, "n").unwrap(), b"1                   ");
    for bad in ["", "abc", "-5", "1a", "18446744073709551616"] {
        set(&s, "n", bad);
        assert_eq!(
            s.arith(&arith("n", ArithOp::Incr, 1)),
            Ok(ArithOutcome::NonNumeric),
            "{bad:?}"
        );
    }
    set(&s, "n", " 5");
    assert_eq!(arith_value(&s, &arith("n", ArithOp::Incr, 1)).0, 6);
}

#[test]
fn arith_keeps_flags_and_exptime_and_checks_cas() {
    let (s, _) = store();
    let mut c = cmd(StoreMode::Set, "n", "99");
    c.flags = 5;
    c.exptime = 50;
    s.store(&c).unwrap();
    let mut a = arith("n", ArithOp::Incr, 1);
    a.compare_cas = Some(12345);
    assert_eq!(s.arith(&a), Ok(ArithOutcome::Exists));
    a.compare_cas = Some(1);
    let (v, cas) = arith_value(&s, &a);
    assert_eq!((v, cas), (100, 2));
    let it = get(&s, "n").unwrap();
    assert_eq!(
        (&it.value[..], it.flags, it.ttl, it.cas),
        (&b"100"[..], 5, Some(50), 2)
    );
    let mut t = arith("n", ArithOp::Decr, 1);
    t.touch = Some(7);
    t.new_cas = Some(500);
    match s.arith(&t).unwrap() {
        ArithOutcome::Value {
            value, cas, ttl, ..
        } => {
            assert_eq!((value, cas, ttl), (99, 500, Some(7)))
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(get(&s, "n").unwrap().ttl, Some(7));
    // Verified against memcached 1.6.18: a value that outgrows its item goes to a new
    // item and the touch lands on the old one, so the TTL stays (`t` shows the touch).
    let mut t = arith("n", ArithOp::Incr, 1);
    t.touch = Some(-1);
    t.delta = 1000;
    match s.arith(&t).unwrap() {
        ArithOutcome::Value { value, ttl, .. } => {
            assert_eq!((value, ttl), (1099, Some((1 << 32) - 61)))
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(get(&s, "n").unwrap().ttl, Some(7));
}

#[test]
fn arith_vivify_uses_initial_value() {
    let (s, _) = store();
    let mut a = arith("n", ArithOp::Incr, 5);
    a.vivify = Some((42, 0));
    assert_eq!(
        s.arith(&a),
        Ok(ArithOutcome::Value {
            value: 42,
            cas: 1,
            ttl: None,
            created: true,
        })
    );
    assert_eq!(value(&s, "n").unwrap(), b"42");
    assert_eq!(arith_value(&s, &a).0, 47);
}

#[test]
fn touch_sets_exptime_marks_fetched_keeps_cas() {
    let (s, clock) = store();
    let cas = set(&s, "k", "v");
    assert!(!s.touch(b"missing", 10));
    assert!(s.touch(b"k", 10));
    let p = s.peek(b"k").unwrap();
    assert_eq!((p.cas, p.ttl, p.fetched), (cas, Some(10), true));
    clock.advance(10);
    assert!(get(&s, "k").is_none());
    set(&s, "k", "v");
    assert!(s.touch(b"k", -1));
    assert!(get(&s, "k").is_none());
}

#[test]
fn read_reports_state_before_the_access() {
    let (s, clock) = store();
    set(&s, "k", "v");
    clock.advance(2);
    let v = get(&s, "k").unwrap();
    assert_eq!((v.fetched, v.last_access), (false, 2));
    let v = get(&s, "k").unwrap();
    assert_eq!((v.fetched, v.last_access), (true, 2));
    clock.advance(3);
    let v = get(&s, "k").unwrap();
    assert_eq!((v.fetched, v.last_access), (true, 3));
    // no_update leaves it alone
    set(&s, "u", "v");
    let nu = ReadOptions {
        no_update: true,
        ..ReadOptions::default()
    };
    clock.advance(1);
    assert!(!s.get(b"u", &nu).unwrap().fetched);
    assert!(!s.get(b"u", &nu).unwrap().fetched);
    // peek has no side effect
    assert!(!s.peek(b"u").unwrap().fetched);
    assert!(!get(&s, "u").unwrap().fetched);
    assert!(get(&s, "u").unwrap().fetched);
}

#[test]
fn add_of_existing_key_bumps_access_time_after_interval() {
    let (s, clock) = store();
    set(&s, "k", "v");
    clock.advance(30);
    s.store(&cmd(StoreMode::Add, "k", "x")).unwrap();
    assert_eq!(s.peek(b"k").unwrap().last_access, 30);
    clock.advance(31);
    s.store(&cmd(StoreMode::Add, "k", "x")).unwrap();
    assert_eq!(s.peek(b"k").unwrap().last_access, 0);
    assert_eq!(value(&s, "k").unwrap(), b"v");
}

#[test]
fn get_and_touch() {
    let (s, _) = store();
    let cas = set(&s, "k", "v");
    let o = ReadOptions {
        touch: Some(100),
        ..ReadOptions::default()
    };
    let v = s.get(b"k", &o).unwrap();
    assert_eq!((v.ttl, v.cas), (Some(100), cas));
    assert_eq!(get(&s, "k").unwrap().ttl, Some(100));
}

#[test]
fn vivify_on_miss_gives_one_win() {
    let (s, _) = store();
    let o = ReadOptions {
        vivify: Some(30),
        hand_out_wins: true,
        ..ReadOptions::default()
    };
    let v = s.get(b"k", &o).unwrap();
    assert!(v.won && !v.win_taken && !v.fetched);
    assert_eq!((v.value.len(), v.ttl, v.cas), (0, Some(30), 1));
    let v = s.get(b"k", &o).unwrap();
    assert!(!v.won && v.win_taken && v.fetched);
    assert_eq!(v.cas, 1);
    // storing a value clears the token
    set(&s, "k", "real");
    let v = s.get(b"k", &o).unwrap();
    assert!(!v.won && !v.win_taken);
}

#[test]
fn recache_win_when_ttl_below_threshold() {
    let (s, clock) = store();
    let mut c = cmd(StoreMode::Set, "k", "v");
    c.exptime = 100;
    s.store(&c).unwrap();
    set(&s, "forever", "v");
    let r = ReadOptions {
        recache_below: Some(30),
        hand_out_wins: true,
        ..ReadOptions::default()
    };
    assert!(!s.get(b"k", &r).unwrap().won);
    assert!(!s.get(b"forever", &r).unwrap().won);
    clock.advance(71); // ttl 29
    let v = s.get(b"k", &r).unwrap();
    assert!(v.won && !v.win_taken);
    let v = s.get(b"k", &r).unwrap();
    assert!(!v.won && v.win_taken);
}

#[test]
fn delete_variants() {
    let (s, _) = store();
    assert_eq!(s.delete(&del("k")), DeleteOutcome::NotFound);
    let cas = set(&s, "k", "v");
    let mut d = del("k");
    d.compare_cas = Some(cas + 1);
    assert_eq!(s.delete(&d), DeleteOutcome::Exists);
    d.compare_cas = Some(cas);
    assert_eq!(s.delete(&d), DeleteOutcome::Deleted);
    assert!(get(&s, "k").is_none());
    assert_eq!(s.stats().curr_items, 0);
}

#[test]
fn delete_invalidate_marks_stale() {
    let (s, _) = store();
    let cas = set(&s, "k", "v");
    // a win handed out before is taken back
    let r = ReadOptions {
        vivify: Some(30),
        hand_out_wins: true,
        ..ReadOptions::default()
    };
    s.get(b"x", &r).unwrap();
    let mut d = del("k");
    d.invalidate = true;
    d.touch = Some(30);
    assert_eq!(s.delete(&d), DeleteOutcome::Deleted);
    // a read that hands out no wins (get, gat) leaves the win for the next mg
    let v = get(&s, "k").unwrap();
    assert!(v.stale && !v.won && !v.win_taken);
    let v = mg(&s, "k").unwrap();
    assert!(v.stale && v.won && !v.win_taken);
    assert!(v.cas > cas);
    assert_eq!((&v.value[..], v.ttl), (&b"v"[..], Some(30)));
    let v = mg(&s, "k").unwrap();
    assert!(v.stale && !v.won && v.win_taken);
    // invalidating again gives the next reader the win again
    assert_eq!(s.delete(&d), DeleteOutcome::Deleted);
    assert!(mg(&s, "k").unwrap().won);
    // a normal set clears staleness
    set(&s, "k", "fresh");
    assert!(!get(&s, "k").unwrap().stale);
}

#[test]
fn delete_clear_value_keeps_item() {
    let (s, _) = store();
    let mut c = cmd(StoreMode::Set, "k", "value");
    c.flags = 9;
    let Ok(StoreOutcome::Stored { cas }) = s.store(&c) else {
        panic!()
    };
    let mut d = del("k");
    d.clear_value = true;
    assert_eq!(s.delete(&d), DeleteOutcome::Deleted);
    let v = get(&s, "k").unwrap();
    assert_eq!((&v.value[..], v.flags, v.cas), (&b""[..], 0, cas));
}

#[test]
fn values_are_copied() {
    let (s, _) = store();
    let buf = Bytes::from(vec![b'a'; 64]);
    let c = StoreCmd {
        data: buf.slice(0..10),
        ..cmd(StoreMode::Set, "k", "")
    };
    s.store(&c).unwrap();
    let v = get(&s, "k").unwrap();
    assert_ne!(v.value.as_ptr(), buf.as_ptr());
}

#[test]
fn concurrent_increments_and_sets() {
    let (s, _) = store();
    let s = Arc::new(s);
    set(&s, "counter", "0");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..2000 {
                    s.arith(&arith("counter", ArithOp::Incr, 1)).unwrap();
                    let k = format!("t{t}-{}", i % 50);
                    s.store(&cmd(StoreMode::Set, &k, &i.to_string())).unwrap();
                    assert!(s.peek(k.as_bytes()).is_some());
                    if i % 7 == 0 {
                        s.delete(&del(&k));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(value(&s, "counter").unwrap(), b"8000");
    // every change got its own CAS: 1 set + 8000 incr + 8000 sets
    assert_eq!(set(&s, "last", "x"), 16002);
}

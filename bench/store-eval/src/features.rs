//! What a memcached server needs from its store, probed against each engine's API: each
//! row runs the operation on both engines where the API has it and reports what came
//! back; "no API" means the public API of segcache 0.4 has no call for it (its whole
//! surface: `insert`, `get`, `get_no_freq_incr`, `cas`, `delete`, `wrapping_add`,
//! `saturating_sub`, `try_into_numeric`, `expire`, `clear`; an `Item` gives `key`,
//! `value`, `cas`, `optional`, `is_deleted`).

use std::time::Duration;

use bytes::Bytes;
use segcache::{Segcache, SegcacheError, Value};
use shoal_command::{
    Arith, ArithOp, ArithOutcome, Delete, FlagOrder, ReadOptions, Store as StoreCmd, StoreMode,
    StoreOutcome,
};
use shoal_store::{Store, StoreConfig};

use crate::engines::{SegConfig, SegEngine};
use crate::keys::Rng;

/// Keys of the -M overwrite probe (5,000 items of 136 B: about 2/3 of 1 MiB).
const OVERWRITE_KEYS: usize = 5_000;
/// Overwrites in the -M probe.
const OVERWRITES: usize = 100_000;

/// One feature and what each engine did.
#[derive(Debug, Clone)]
pub struct Row {
    /// The feature.
    pub feature: &'static str,
    /// What shoal-store did.
    pub shoal: String,
    /// What segcache did.
    pub segcache: String,
    /// What a wrapper around segcache would have to do.
    pub wrapper: &'static str,
}

fn set(s: &Store, mode: StoreMode, key: &str, data: &[u8], exptime: i64) -> StoreOutcome {
    let cmd = StoreCmd {
        mode,
        key: Bytes::copy_from_slice(key.as_bytes()),
        flags: 0,
        exptime,
        data: Bytes::copy_from_slice(data),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    };
    match s.store(&cmd) {
        Ok(o) => o,
        Err(e) => panic!("store {key}: {e:?}"),
    }
}

fn store_with(s: &Store, cmd: StoreCmd) -> String {
    match s.store(&cmd) {
        Ok(o) => format!("{o:?}"),
        Err(e) => format!("{e:?}"),
    }
}

fn cmd(key: &str, data: &[u8]) -> StoreCmd {
    StoreCmd {
        mode: StoreMode::Set,
        key: Bytes::copy_from_slice(key.as_bytes()),
        flags: 0,
        exptime: 0,
        data: Bytes::copy_from_slice(data),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    }
}

fn get(s: &Store, key: &str) -> Option<shoal_command::ItemView> {
    s.get(key.as_bytes(), &ReadOptions::default())
}

fn seg_value(c: &Segcache, key: &str) -> String {
    match c.get(key.as_bytes()) {
        Some(item) => match item.value() {
            Value::Bytes(b) => format!("{:?}", String::from_utf8_lossy(b)),
            Value::U64(n) => format!("U64({n})"),
        },
        None => "miss".into(),
    }
}

fn hit(found: bool) -> &'static str {
    if found {
        "hit"
    } else {
        "miss"
    }
}

fn arith(s: &Store, key: &str, op: ArithOp, delta: u64) -> String {
    let a = Arith {
        key: Bytes::copy_from_slice(key.as_bytes()),
        op,
        delta,
        compare_cas: None,
        new_cas: None,
        vivify: None,
        touch: None,
        order: FlagOrder::default(),
    };
    match s.arith(&a) {
        Ok(ArithOutcome::Value { value, .. }) => value.to_string(),
        other => format!("{other:?}"),
    }
}

/// A small segcache (1 MiB heap of 64 KiB segments) with `policy`.
fn small_seg(policy: &str) -> Segcache {
    Segcache::builder()
        .hash_power(14)
        .segment_size(64 << 10)
        .heap_size(1 << 20)
        .eviction(crate::engines::policy(policy).expect("policy"))
        .build()
        .expect("segcache builds")
}

/// Writes `n` sets to one engine through `write`; gives how many were refused.
fn refusals(n: usize, mut write: impl FnMut(usize) -> bool) -> usize {
    (0..n).filter(|&i| !write(i)).count()
}

/// Runs every probe (about 3 s: two of them wait for the clock). `seg` is the
/// configuration the other measurements use.
pub fn probe(seg: &SegConfig) -> Vec<Row> {
    let s = Store::new(StoreConfig::default());
    let engine = SegEngine::new(seg);
    let c = engine.cache();
    let mut rows = Vec::new();
    let ttl5 = Duration::from_secs(5);

    // Clock-based probes first: set up, wait once, check together.
    set(&s, StoreMode::Set, "ttl5", b"x", 5);
    c.insert(b"ttl5", b"x", None, ttl5).expect("insert");
    // the delayed flush gets a store of its own: it would flush "ttl5" too
    let f = Store::new(StoreConfig::default());
    set(&f, StoreMode::Set, "flushed", b"x", 0);
    f.flush_all(2);
    let shoal_before_flush = get(&f, "flushed").is_some();
    std::thread::sleep(Duration::from_millis(2600));
    rows.push(Row {
        feature: "TTL per item, to the second (set exptime 5, read 2.6 s later)",
        shoal: format!("{} (t={:?})", hit(get(&s, "ttl5").is_some()), get(&s, "ttl5").and_then(|v| v.ttl)),
        segcache: format!(
            "{} (TTLs go to 1024 buckets, 1-2048 s in 8 s steps, bucket TTL = 1 s for 1-7 s; expiry = segment create time + bucket TTL; TTL 0 = ~97 days)",
            hit(c.get(b"ttl5").is_some())
        ),
        wrapper: "keep the exact exptime in the item's optional bytes (4 B) and check it on every read; insert with TTL 0 so segcache never expires early, which gives up its eager expiration",
    });
    rows.push(Row {
        feature: "Remaining TTL readable (mg t, gat)",
        shoal: format!(
            "yes: ItemView.ttl = {:?}",
            get(&s, "ttl5").and_then(|v| v.ttl)
        ),
        segcache: "no API (remaining_ttl is private)".into(),
        wrapper: "same 4 B exptime in optional",
    });
    let shoal_flush = get(&f, "flushed").is_none();
    c.insert(b"clear", b"x", None, Duration::ZERO)
        .expect("insert");
    c.clear();
    rows.push(Row {
        feature: "flush_all with delay (flush_all 2, read before and 2.6 s after)",
        shoal: format!(
            "before: {}, after: {}",
            hit(shoal_before_flush),
            hit(!shoal_flush)
        ),
        segcache: format!(
            "no delay: clear() drops everything now ({} after clear)",
            hit(c.get(b"clear").is_some())
        ),
        wrapper: "a write time or CAS per item in optional (4-8 B) compared with a flush stamp on every read, as memcached does",
    });

    // CAS
    let cas1 = match set(&s, StoreMode::Set, "cas", b"a", 0) {
        StoreOutcome::Stored { cas } => cas,
        o => panic!("{o:?}"),
    };
    let mut again = cmd("cas", b"b");
    again.compare_cas = Some(cas1);
    let first = store_with(&s, again.clone());
    let second = store_with(&s, again);
    c.insert(b"cas", b"a", None, Duration::ZERO)
        .expect("insert");
    let scas = c.get(b"cas").expect("get").cas();
    let sfirst = c.cas(b"cas", b"b", None, Duration::ZERO, scas);
    let ssecond = c.cas(b"cas", b"c", None, Duration::ZERO, scas);
    rows.push(Row {
        feature: "CAS per item (gets, cas twice with the same value)",
        shoal: format!("{first}, then {second}"),
        segcache: format!("cas {scas:#x}: {sfirst:?}, then {ssecond:?}"),
        wrapper: "none",
    });
    let mut explicit = cmd("explicit", b"a");
    explicit.new_cas = Some(0xABCD_0001);
    store_with(&s, explicit);
    rows.push(Row {
        feature: "Chosen CAS value (ms E; the cluster's last-writer-wins versions)",
        shoal: format!("cas = {:#x}", s.peek(b"explicit").map_or(0, |v| v.cas)),
        segcache: "no API: the CAS is made of the item's location, segment generation and seqlock version, and changes when the item moves".into(),
        wrapper: "8 B CAS in optional, its own compare on top of segcache's cas() (get, compare, cas, retry)",
    });

    // append / prepend
    set(&s, StoreMode::Set, "app", b"ab", 0);
    set(&s, StoreMode::Append, "app", b"cd", 0);
    set(&s, StoreMode::Prepend, "app", b"__", 0);
    rows.push(Row {
        feature: "append / prepend",
        shoal: format!("{:?}", get(&s, "app").map(|v| v.value)),
        segcache: "no API".into(),
        wrapper: "get, copy both parts, cas() the joined value, retry on Exists: two lookups and a full copy per append",
    });

    // incr / decr
    set(&s, StoreMode::Set, "n", b"5", 0);
    let shoal_incr = arith(&s, "n", ArithOp::Incr, 1);
    set(&s, StoreMode::Set, "n", b"18446744073709551615", 0);
    let shoal_wrap = arith(&s, "n", ArithOp::Incr, 1);
    let shoal_decr = arith(&s, "n", ArithOp::Decr, 5);
    c.insert(b"n", b"5", None, Duration::ZERO).expect("insert");
    let on_bytes = c.wrapping_add(b"n", 1);
    let converted = c.try_into_numeric(b"n", 0, Duration::ZERO);
    let after = c.wrapping_add(b"n", 1);
    let read_back = seg_value(c, "n");
    let below_zero = c.saturating_sub(b"n", 100);
    rows.push(Row {
        feature: "incr / decr on a value set as \"5\"",
        shoal: format!("incr 1 -> {shoal_incr}; 2^64-1 incr 1 -> {shoal_wrap}; decr 5 -> {shoal_decr}"),
        segcache: format!(
            "wrapping_add -> {on_bytes:?}; try_into_numeric -> {converted:?}, then wrapping_add -> {after:?}; get -> {read_back}; saturating_sub 100 -> {below_zero:?}"
        ),
        wrapper: "try_into_numeric before each incr (a rewrite the first time), format U64 values as ASCII on every read; memcached's in-place result keeps the old length (\"10\" decr 1 is \"9 \"), which a U64 loses",
    });

    // touch
    set(&s, StoreMode::Set, "touch", b"x", 0);
    let touched = s.touch(b"touch", 100);
    rows.push(Row {
        feature: "touch / gat (new TTL for an existing item)",
        shoal: format!("{touched}, t={:?}", get(&s, "touch").and_then(|v| v.ttl)),
        segcache: "no API: an item's TTL is its segment's".into(),
        wrapper: "rewrite the item (get, cas() with the new TTL) or update the exptime in optional, which segcache cannot do in place either: a full rewrite per touch",
    });

    // client flags
    let mut flagged = cmd("flags", b"x");
    flagged.flags = 0xDEAD_BEEF;
    store_with(&s, flagged);
    c.insert(
        b"flags",
        b"x",
        Some(&0xDEAD_BEEFu32.to_be_bytes()),
        Duration::ZERO,
    )
    .expect("insert");
    rows.push(Row {
        feature: "Client flags (32 bits)",
        shoal: format!("{:#x}", get(&s, "flags").map_or(0, |v| v.flags)),
        segcache: format!(
            "in optional: {:02x?}",
            c.get(b"flags")
                .and_then(|i| i.optional().map(<[u8]>::to_vec))
        ),
        wrapper: "none (4 B of optional)",
    });

    // meta-protocol per-item state
    set(&s, StoreMode::Set, "meta", b"x", 0);
    let g1 = get(&s, "meta").expect("hit");
    let g2 = get(&s, "meta").expect("hit");
    s.delete(&Delete {
        invalidate: true,
        ..Delete::of(Bytes::from_static(b"meta"))
    });
    let wins = ReadOptions {
        hand_out_wins: true,
        ..ReadOptions::default()
    };
    let g3 = s.get(b"meta", &wins).expect("hit");
    rows.push(Row {
        feature: "Meta state per item: fetched, last access, stale, win (mg h l W X Z, md I)",
        shoal: format!(
            "fetched {} then {}; last access {} s; after md I: stale={} won={}",
            g1.fetched, g2.fetched, g2.last_access, g3.stale, g3.won
        ),
        segcache: "no API: no mutable per-item state (optional is written once by insert; the 8-bit frequency counter is internal)".into(),
        wrapper: "bits and access time in optional, but changing them means rewriting the item: the first fetch of every item, every access-time bump and every win would become a write",
    });

    // -M: no eviction
    let small = StoreConfig {
        max_bytes: 1 << 20,
        evict: false,
        ..StoreConfig::default()
    };
    let full = Store::new(small);
    let value = vec![b'v'; 100];
    let shoal_refused = refusals(20_000, |i| {
        full.store(&cmd(&format!("k{i:015}"), &value)).is_ok()
    });
    // Overwrites in random order over keys taking about 2/3 of the memory: every
    // segment keeps some live items, so only compaction can reuse the dead bytes.
    let overwrite_keys: Vec<String> = (0..OVERWRITE_KEYS).map(|i| format!("o{i:015}")).collect();
    let over = Store::new(small);
    let mut rng = Rng::new(7);
    let shoal_over = refusals(OVERWRITES, |_| {
        let k = &overwrite_keys[(rng.next_u64() % OVERWRITE_KEYS as u64) as usize];
        over.store(&cmd(k, &value)).is_ok()
    });
    let seg_full = small_seg("none");
    let seg_refused = refusals(20_000, |i| {
        seg_full
            .insert(
                format!("k{i:015}").as_bytes(),
                &value[..],
                None,
                Duration::ZERO,
            )
            .is_ok()
    });
    let seg_over = small_seg("none");
    let mut rng = Rng::new(7);
    let mut last_err: Option<SegcacheError> = None;
    let seg_over_refused = refusals(OVERWRITES, |_| {
        let k = &overwrite_keys[(rng.next_u64() % OVERWRITE_KEYS as u64) as usize];
        match seg_over.insert(k.as_bytes(), &value[..], None, Duration::ZERO) {
            Ok(()) => true,
            Err(e) => {
                last_err = Some(e);
                false
            }
        }
    });
    rows.push(Row {
        feature: "-M: no eviction, refuse writes when full (1 MiB; 20k distinct sets; then, fresh, 100k random overwrites of 5,000 keys, about 2/3 of the memory)",
        shoal: format!("{shoal_refused} of 20k refused; overwrites refused: {shoal_over} (dead bytes are reclaimed by compaction)"),
        segcache: format!(
            "Policy::None: {seg_refused} of 20k refused; overwrites refused: {seg_over_refused} (last error {last_err:?})"
        ),
        wrapper: "refused overwrites: a policy that compacts segments without evicting live items, which segcache does not have",
    });

    // item size limit
    let big = vec![b'b'; 1_000_000];
    let too_big = vec![b'b'; 1_100_000];
    let shoal_big = store_with(&s, cmd("big", &big));
    let shoal_too_big = store_with(&s, cmd("big", &too_big));
    let seg_big = c.insert(b"big", &big[..], None, Duration::ZERO);
    let seg64k = small_seg("random");
    let seg_100k = seg64k.insert(b"mid", &vec![b'm'; 100_000][..], None, Duration::ZERO);
    rows.push(Row {
        feature: "Item size limit (-I 1m: 1,000,000 B stored, 1,100,000 B refused)",
        shoal: format!("{shoal_big}, {shoal_too_big}; independent of the 64 KiB segments (large values get their own allocation)"),
        segcache: format!(
            "{} segments: 1,000,000 B -> {seg_big:?}; 64 KiB segments: 100,000 B -> {seg_100k:?}",
            if seg.segment_size >= 1 << 20 { format!("{} MiB", seg.segment_size >> 20) } else { format!("{} KiB", seg.segment_size >> 10) }
        ),
        wrapper: "segment size >= -I, so eviction works in units of at least -I bytes (64 units in a 64 MiB cache at -I 1m); the limit itself is a size check",
    });
    rows
}

//! Property tests: random operation sequences against a plain model of memcached's rules
//! (a HashMap with exptimes, CAS values and the flush state), and a small-memory run
//! checking the byte limit.

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use shoal_command::{ArithOp, ArithOutcome, DeleteOutcome, ReadOptions, StoreMode, StoreOutcome};

use super::{arith, cmd, del, store_with, T0};
use crate::StoreConfig;

#[derive(Debug, Clone, Copy)]
enum CasChoice {
    None,
    Current,
    Wrong,
    Zero,
}

#[derive(Debug, Clone)]
enum Op {
    Store {
        mode: StoreMode,
        key: usize,
        value: usize,
        flags: u32,
        exptime: i64,
        cas: CasChoice,
    },
    Get {
        key: usize,
        touch: Option<i64>,
        no_update: bool,
    },
    Delete {
        key: usize,
        cas: CasChoice,
    },
    Arith {
        key: usize,
        incr: bool,
        delta: u64,
    },
    Touch {
        key: usize,
        exptime: i64,
    },
    Flush {
        delay: i64,
    },
    Advance(u64),
}

const KEYS: [&str; 4] = ["a", "b", "key-c", "d"];
const VALUES: [&str; 9] = [
    "",
    "0",
    "9",
    "10",
    "99",
    "abc",
    "18446744073709551615",
    "7 x",
    "12345678901234567890123",
];

fn exptime() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        1i64..6,
        Just(2_592_000),
        Just(2_592_001),
        (0i64..8).prop_map(|d| T0 as i64 + d),
    ]
}

fn cas_choice() -> impl Strategy<Value = CasChoice> {
    prop_oneof![
        3 => Just(CasChoice::None),
        2 => Just(CasChoice::Current),
        1 => Just(CasChoice::Wrong),
        1 => Just(CasChoice::Zero),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        Just(StoreMode::Set),
        Just(StoreMode::Add),
        Just(StoreMode::Replace),
        Just(StoreMode::Append),
        Just(StoreMode::Prepend),
    ];
    prop_oneof![
        4 => (mode, 0..KEYS.len(), 0..VALUES.len(), 0u32..3, exptime(), cas_choice()).prop_map(
            |(mode, key, value, flags, exptime, cas)| Op::Store { mode, key, value, flags, exptime, cas }
        ),
        4 => (0..KEYS.len(), proptest::option::weighted(0.2, exptime()), any::<bool>())
            .prop_map(|(key, touch, no_update)| Op::Get { key, touch, no_update }),
        1 => (0..KEYS.len(), cas_choice()).prop_map(|(key, cas)| Op::Delete { key, cas }),
        2 => (0..KEYS.len(), any::<bool>(), prop_oneof![0u64..20, Just(u64::MAX)])
            .prop_map(|(key, incr, delta)| Op::Arith { key, incr, delta }),
        1 => (0..KEYS.len(), exptime()).prop_map(|(key, exptime)| Op::Touch { key, exptime }),
        1 => prop_oneof![Just(0i64), 1i64..4].prop_map(|delay| Op::Flush { delay }),
        2 => prop_oneof![Just(0u64), 1u64..3, Just(59), Just(61)].prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone)]
struct MItem {
    value: Vec<u8>,
    flags: u32,
    exp: u64,
    cas: u64,
    time: u64,
    fetched: bool,
}

#[derive(Debug)]
struct Model {
    items: HashMap<&'static str, MItem>,
    last_cas: u64,
    oldest_live: u64,
    oldest_cas: u64,
    now: u64,
}

fn exp_abs(e: i64, now: u64) -> u64 {
    match e {
        0 => 0,
        e if e < 0 => 1,
        e if e <= 2_592_000 => now + e as u64,
        e if (e as u64) <= now => 1,
        e => e as u64,
    }
}

/// The TTL memcached's meta `t` shows for a model exptime: `exptime - current_time` on
/// its relative clock (which starts at 62 s when the store starts, at `T0`), as an
/// unsigned 32-bit number; an already expired exptime is 1 on that clock.
fn meta_ttl(exp: u64, now: u64) -> Option<i64> {
    let current = now as i64 - T0 as i64 + 62;
    let relative = match exp {
        0 => return None,
        1 => 1,
        e => e as i64 - T0 as i64 + 62,
    };
    Some((relative - current).rem_euclid(1 << 32))
}

fn model_parse(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim_start();
    let digits: &str = &s[..s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())];
    let rest = &s[digits.len()..];
    if digits.is_empty() || !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    digits.parse().ok()
}

impl Model {
    fn cas(&mut self) -> u64 {
        self.last_cas += 1;
        self.last_cas
    }

    fn live(&mut self, key: &'static str) -> Option<&mut MItem> {
        let (now, ol, oc) = (self.now, self.oldest_live, self.oldest_cas);
        let dead = self.items.get(key).is_some_and(|it| {
            (it.exp != 0 && it.exp <= now)
                || (ol != 0 && ol <= now && (it.time <= ol || (oc != 0 && it.cas < oc)))
        });
        if dead {
            self.items.remove(key);
        }
        self.items.get_mut(key)
    }

    fn new_item(&mut self, value: Vec<u8>, flags: u32, exp: u64) -> MItem {
        MItem {
            value,
            flags,
            exp,
            cas: self.cas(),
            time: self.now,
            fetched: false,
        }
    }
}

fn run_model_test(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (s, clock) = store_with(StoreConfig::default());
    let mut m = Model {
        items: HashMap::new(),
        last_cas: 0,
        oldest_live: 0,
        oldest_cas: 0,
        now: T0,
    };
    for (step, op) in ops.into_iter().enumerate() {
        let now = m.now;
        match op {
            Op::Store {
                mode,
                key,
                value,
                flags,
                exptime,
                cas,
            } => {
                let k = KEYS[key];
                let current = m.live(k).map(|it| it.cas);
                let compare = match cas {
                    CasChoice::None => None,
                    CasChoice::Current => Some(current.unwrap_or(1)),
                    CasChoice::Wrong => Some(current.unwrap_or(0) + 1000),
                    CasChoice::Zero => Some(0),
                };
                let mut c = cmd(mode, k, VALUES[value]);
                c.flags = flags;
                c.exptime = exptime;
                c.compare_cas = compare;
                let got = s.store(&c).unwrap();
                let is_cas =
                    compare.is_some() && matches!(mode, StoreMode::Set | StoreMode::Replace);
                let data = VALUES[value].as_bytes().to_vec();
                let exp = exp_abs(exptime, now);
                let want = match (current, mode) {
                    (None, _) if is_cas => StoreOutcome::NotFound,
                    (None, StoreMode::Replace | StoreMode::Append | StoreMode::Prepend) => {
                        StoreOutcome::NotStored
                    }
                    (Some(cur), _) if is_cas && compare != Some(cur) => StoreOutcome::Exists,
                    (Some(_), StoreMode::Add) => {
                        let it = m.live(k).unwrap();
                        if it.time < now - 60 {
                            it.time = now;
                        }
                        StoreOutcome::NotStored
                    }
                    (Some(cur), StoreMode::Append | StoreMode::Prepend)
                        if compare.is_some_and(|c| c != 0 && c != cur) =>
                    {
                        StoreOutcome::Exists
                    }
                    (Some(_), StoreMode::Append | StoreMode::Prepend) => {
                        let old = m.items[k].clone();
                        let v = if mode == StoreMode::Append {
                            [old.value, data].concat()
                        } else {
                            [data, old.value].concat()
                        };
                        let it = m.new_item(v, old.flags, old.exp);
                        let cas = it.cas;
                        m.items.insert(k, it);
                        StoreOutcome::Stored { cas }
                    }
                    _ => {
                        let it = m.new_item(data, flags, exp);
                        let cas = it.cas;
                        m.items.insert(k, it);
                        StoreOutcome::Stored { cas }
                    }
                };
                prop_assert_eq!(got, want, "step {} store", step);
            }
            Op::Get {
                key,
                touch,
                no_update,
            } => {
                let k = KEYS[key];
                let o = ReadOptions {
                    touch,
                    no_update,
                    ..ReadOptions::default()
                };
                let got = s.get(k.as_bytes(), &o).map(|v| {
                    (
                        v.value.to_vec(),
                        v.flags,
                        v.cas,
                        v.ttl,
                        v.fetched,
                        v.last_access,
                    )
                });
                let want = m.live(k).map(|it| {
                    let before = (it.fetched, now - it.time);
                    if let Some(t) = touch {
                        it.exp = exp_abs(t, now);
                    }
                    let ttl = meta_ttl(it.exp, now);
                    let r = (it.value.clone(), it.flags, it.cas, ttl, before.0, before.1);
                    if !no_update {
                        if it.fetched {
                            it.time = now;
                        }
                        it.fetched = true;
                    }
                    r
                });
                prop_assert_eq!(got, want, "step {} get", step);
            }
            Op::Delete { key, cas } => {
                let k = KEYS[key];
                let current = m.live(k).map(|it| it.cas);
                let compare = match cas {
                    CasChoice::None => None,
                    CasChoice::Current => Some(current.unwrap_or(1)),
                    CasChoice::Wrong => Some(current.unwrap_or(0) + 1000),
                    CasChoice::Zero => Some(0),
                };
                let mut d = del(k);
                d.compare_cas = compare;
                let got = s.delete(&d);
                let want = match current {
                    None => DeleteOutcome::NotFound,
                    Some(cur) if compare.is_some_and(|c| c != cur) => DeleteOutcome::Exists,
                    Some(_) => {
                        m.items.remove(k);
                        DeleteOutcome::Deleted
                    }
                };
                prop_assert_eq!(got, want, "step {} delete", step);
            }
            Op::Arith { key, incr, delta } => {
                let k = KEYS[key];
                let op = if incr { ArithOp::Incr } else { ArithOp::Decr };
                let got = s.arith(&arith(k, op, delta)).unwrap();
                let want = match m.live(k).map(|it| (it.value.clone(), it.exp, it.flags)) {
                    None => ArithOutcome::NotFound,
                    Some((v, exp, flags)) => match model_parse(&v) {
                        None => ArithOutcome::NonNumeric,
                        Some(n) => {
                            let n = if incr {
                                n.wrapping_add(delta)
                            } else {
                                n.saturating_sub(delta)
                            };
                            let digits = n.to_string().into_bytes();
                            let cas;
                            if digits.len() <= v.len() {
                                cas = m.cas();
                                let it = m.items.get_mut(k).unwrap();
                                let mut nv = digits;
                                nv.resize(v.len(), b' ');
                                it.value = nv;
                                it.cas = cas;
                                if it.time < now - 60 {
                                    it.time = now;
                                }
                            } else {
                                let it = m.new_item(digits, flags, exp);
                                cas = it.cas;
                                m.items.insert(k, it);
                            }
                            let ttl = meta_ttl(exp, now);
                            ArithOutcome::Value {
                                value: n,
                                cas,
                                ttl,
                                created: false,
                            }
                        }
                    },
                };
                prop_assert_eq!(got, want, "step {} arith", step);
            }
            Op::Touch { key, exptime } => {
                let k = KEYS[key];
                let got = s.touch(k.as_bytes(), exptime);
                let want = match m.live(k) {
                    None => false,
                    Some(it) => {
                        if it.fetched {
                            it.time = now;
                        }
                        it.fetched = true;
                        it.exp = exp_abs(exptime, now);
                        true
                    }
                };
                prop_assert_eq!(got, want, "step {} touch", step);
            }
            Op::Flush { delay } => {
                s.flush_all(delay);
                let new_oldest = if delay > 0 { exp_abs(delay, now) } else { now };
                m.oldest_live = new_oldest - 1;
                if m.oldest_live <= now {
                    m.oldest_cas = m.cas();
                }
            }
            Op::Advance(secs) => {
                clock.advance(secs);
                m.now += secs;
            }
        }
    }
    // finally every key agrees
    for k in KEYS {
        let got = s.peek(k.as_bytes()).map(|v| (v.value.to_vec(), v.cas));
        let want = m.live(k).map(|it| (it.value.clone(), it.cas));
        prop_assert_eq!(got, want);
    }
    let live = KEYS.iter().filter(|k| m.items.contains_key(*k)).count() as u64;
    prop_assert_eq!(s.stats().curr_items, live);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run_model_test(ops)?;
    }

    #[test]
    fn small_limit_never_exceeded(
        ops in proptest::collection::vec(
            (0usize..200, 0usize..3000, 0u8..10, any::<bool>()), 1..400),
    ) {
        let max = 32 * 1024;
        for evict in [true, false] {
            let (s, clock) = store_with(StoreConfig {
                max_bytes: max,
                item_size_max: 4096,
                evict,
                use_cas: true,
            });
            for &(key, len, what, flag) in &ops {
                let k = format!("key{key}");
                match what {
                    0..=4 => {
                        let mut c = cmd(StoreMode::Set, &k, "");
                        c.data = Bytes::from(vec![b'7'; len]);
                        c.exptime = if flag { 3 } else { 0 };
                        let _ = s.store(&c);
                    }
                    5 => {
                        let mut c = cmd(StoreMode::Append, &k, "");
                        c.data = Bytes::from(vec![b'1'; len / 4]);
                        let _ = s.store(&c);
                    }
                    6 => {
                        let _ = s.arith(&arith(&k, ArithOp::Incr, u64::MAX));
                    }
                    7 => {
                        let o = ReadOptions { vivify: Some(10), hand_out_wins: true, ..ReadOptions::default() };
                        let _ = s.get(k.as_bytes(), &o);
                    }
                    8 => {
                        s.delete(&del(&k));
                    }
                    _ => clock.advance(if flag { 1 } else { 0 }),
                }
                let st = s.stats();
                prop_assert!(st.bytes as usize <= max, "bytes {} > {}", st.bytes, max);
            }
        }
    }
}

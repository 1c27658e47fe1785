//! Tests of the binary protocol as a whole: each opcode parsed from the bytes a client
//! sends and answered with the bytes memcached 1.6.18 sends (captured from a real
//! memcached 1.6.18 with a python socket script), plus robustness properties.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use shoal_command::{
    Arith, ArithOp, ArithOutcome, Command, Delete, DeleteOutcome, FlushAll, Get, ItemView, Outcome,
    ReadOptions, ServerError, StatsGroup, Store, StoreMode, StoreOutcome,
};

use super::{encode, parse, BinaryReply, Header, Opcode, HEADER_LEN};
use crate::{Limits, Parse, ReplyTo, Request};

const OPAQUE: u32 = 0xdead_beef;

/// A request packet, as the python probe built them.
fn req(op: u8, key: &[u8], extras: &[u8], value: &[u8], cas: u64) -> BytesMut {
    let mut b = BytesMut::new();
    Header {
        magic: 0x80,
        opcode: op,
        key_len: key.len() as u16,
        extras_len: extras.len() as u8,
        data_type: 0,
        status: 0,
        body_len: (key.len() + extras.len() + value.len()) as u32,
        opaque: OPAQUE,
        cas,
    }
    .encode(&mut b);
    b.put_slice(extras);
    b.put_slice(key);
    b.put_slice(value);
    b
}

/// A response packet, as memcached sends it.
fn resp(op: u8, status: u16, extras: &[u8], key: &[u8], value: &[u8], cas: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    Header {
        magic: 0x81,
        opcode: op,
        key_len: key.len() as u16,
        extras_len: extras.len() as u8,
        data_type: 0,
        status,
        body_len: (key.len() + extras.len() + value.len()) as u32,
        opaque: OPAQUE,
        cas,
    }
    .encode(&mut b);
    b.put_slice(extras);
    b.put_slice(key);
    b.put_slice(value);
    b.to_vec()
}

fn one(mut buf: BytesMut) -> Request {
    match parse(&mut buf, &Limits::default()) {
        Parse::Request(r) => {
            assert!(buf.is_empty(), "left over: {buf:?}");
            r
        }
        other => panic!("expected a request, got {other:?}"),
    }
}

fn answer(r: &Request, outcome: Outcome) -> Vec<u8> {
    let ReplyTo::Binary(reply) = &r.reply else {
        panic!("not a binary reply")
    };
    let mut out = BytesMut::new();
    encode(reply, &outcome, &mut out);
    out.to_vec()
}

fn invalid(mut buf: BytesMut) -> (Vec<u8>, u64, bool, BytesMut) {
    match parse(&mut buf, &Limits::default()) {
        Parse::Invalid {
            reply,
            swallow,
            close,
            ..
        } => (reply.to_vec(), swallow, close, buf),
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn item(key: &[u8], value: &[u8], flags: u32, cas: u64) -> ItemView {
    ItemView {
        key: Bytes::copy_from_slice(key),
        value: Bytes::copy_from_slice(value),
        flags,
        cas,
        ..ItemView::default()
    }
}

fn u32b(x: u32) -> [u8; 4] {
    x.to_be_bytes()
}

fn get_cmd(key: &[u8], touch: Option<i64>) -> Command {
    Command::Get(Get {
        keys: vec![Bytes::copy_from_slice(key)],
        options: ReadOptions {
            touch,
            ..ReadOptions::default()
        },
    })
}

#[test]
fn get_hit_and_miss() {
    let r = one(req(0x00, b"k1", &[], &[], 0));
    assert_eq!(r.command, get_cmd(b"k1", None));
    let hit = Outcome::Values(vec![Some(item(b"k1", b"hello", 0xabcd, 2))]);
    assert_eq!(
        answer(&r, hit),
        resp(0x00, 0, &u32b(0xabcd), b"", b"hello", 2)
    );
    assert_eq!(
        answer(&r, Outcome::Values(vec![None])),
        resp(0x00, 1, b"", b"", b"Not found", 0)
    );
}

#[test]
fn getk_returns_the_key_on_hit_and_miss() {
    let r = one(req(0x0c, b"k1", &[], &[], 0));
    let hit = Outcome::Values(vec![Some(item(b"k1", b"hello", 0xabcd, 2))]);
    assert_eq!(
        answer(&r, hit),
        resp(0x0c, 0, &u32b(0xabcd), b"k1", b"hello", 2)
    );
    assert_eq!(
        answer(&r, Outcome::Values(vec![None])),
        resp(0x0c, 1, b"", b"k1", b"", 0)
    );
}

#[test]
fn quiet_gets_answer_hits_only() {
    for op in [0x09u8, 0x0d] {
        let r = one(req(op, b"a", &[], &[], 0));
        assert_eq!(answer(&r, Outcome::Values(vec![None])), Vec::<u8>::new());
        let hit = Outcome::Values(vec![Some(item(b"a", b"12", 7, 9))]);
        let key: &[u8] = if op == 0x0d { b"a" } else { b"" };
        assert_eq!(answer(&r, hit), resp(op, 0, &u32b(7), key, b"12", 9));
    }
}

#[test]
fn touch_gat_gatk() {
    let r = one(req(0x1c, b"k1", &u32b(100), &[], 0));
    assert_eq!(r.command, get_cmd(b"k1", Some(100)));
    let hit = || Outcome::Values(vec![Some(item(b"k1", b"hello", 0xabcd, 2))]);
    assert_eq!(answer(&r, hit()), resp(0x1c, 0, &u32b(0xabcd), b"", b"", 2));
    assert_eq!(
        answer(&r, Outcome::Values(vec![None])),
        resp(0x1c, 1, b"", b"", b"Not found", 0)
    );
    let r = one(req(0x1d, b"k1", &u32b(100), &[], 0));
    assert_eq!(
        answer(&r, hit()),
        resp(0x1d, 0, &u32b(0xabcd), b"", b"hello", 2)
    );
    let r = one(req(0x23, b"nokey", &u32b(100), &[], 0));
    assert_eq!(
        answer(&r, Outcome::Values(vec![None])),
        resp(0x23, 1, b"", b"nokey", b"", 0)
    );
    let r = one(req(0x1e, b"nokey", &u32b(100), &[], 0));
    assert_eq!(answer(&r, Outcome::Values(vec![None])), Vec::<u8>::new());
}

fn store(mode: StoreMode, key: &[u8], flags: u32, exptime: i64, data: &[u8]) -> Store {
    Store {
        mode,
        key: Bytes::copy_from_slice(key),
        flags,
        exptime,
        data: Bytes::copy_from_slice(data),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    }
}

#[test]
fn set_family_parses_and_answers() {
    let extras = [u32b(0xabcd), u32b(300)].concat();
    let r = one(req(0x01, b"k1", &extras, b"hello", 0));
    assert_eq!(
        r.command,
        Command::Store(store(StoreMode::Set, b"k1", 0xabcd, 300, b"hello"))
    );
    let stored = || Outcome::Stored(StoreOutcome::Stored { cas: 2 });
    assert_eq!(answer(&r, stored()), resp(0x01, 0, b"", b"", b"", 2));

    let r = one(req(0x02, b"k1", &extras, b"x", 0));
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::NotStored)),
        resp(0x02, 2, b"", b"", b"Data exists for key.", 0)
    );
    let r = one(req(0x03, b"nokey", &extras, b"x", 0));
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::NotStored)),
        resp(0x03, 1, b"", b"", b"Not found", 0)
    );
    // A CAS on any of SET/ADD/REPLACE makes it a plain CAS store, as in memcached.
    let r = one(req(0x02, b"k1", &extras, b"x", 999_999));
    let mut cas_store = store(StoreMode::Set, b"k1", 0xabcd, 300, b"x");
    cas_store.compare_cas = Some(999_999);
    assert_eq!(r.command, Command::Store(cas_store));
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::Exists)),
        resp(0x02, 2, b"", b"", b"Data exists for key.", 0)
    );
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::NotFound)),
        resp(0x02, 1, b"", b"", b"Not found", 0)
    );
    // An empty value is fine.
    let r = one(req(0x01, b"e", &[0; 8], b"", 0));
    assert_eq!(
        r.command,
        Command::Store(store(StoreMode::Set, b"e", 0, 0, b""))
    );
}

#[test]
fn quiet_stores_answer_errors_only() {
    let r = one(req(0x11, b"k2", &[0; 8], b"v", 0));
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::Stored { cas: 3 })),
        Vec::<u8>::new()
    );
    let r = one(req(0x12, b"k2", &[0; 8], b"v", 0));
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::NotStored)),
        resp(0x12, 2, b"", b"", b"Data exists for key.", 0)
    );
    assert_eq!(
        answer(&r, Outcome::Error(ServerError::TooLarge)),
        resp(0x12, 3, b"", b"", b"Too large.", 0)
    );
    assert_eq!(
        answer(&r, Outcome::Error(ServerError::OutOfMemory)),
        resp(0x12, 0x82, b"", b"", b"Out of memory", 0)
    );
}

#[test]
fn append_prepend() {
    let r = one(req(0x0e, b"nokey", &[], b"x", 0));
    assert_eq!(
        r.command,
        Command::Store(store(StoreMode::Append, b"nokey", 0, 0, b"x"))
    );
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::NotStored)),
        resp(0x0e, 5, b"", b"", b"Not stored.", 0)
    );
    let r = one(req(0x1a, b"a", &[], b"0", 7));
    let mut s = store(StoreMode::Prepend, b"a", 0, 0, b"0");
    s.compare_cas = Some(7);
    assert_eq!(r.command, Command::Store(s));
    assert_eq!(
        answer(&r, Outcome::Stored(StoreOutcome::Stored { cas: 10 })),
        Vec::<u8>::new()
    );
}

#[test]
fn delete_and_deleteq() {
    let r = one(req(0x04, b"k2", &[], &[], 0));
    assert_eq!(
        r.command,
        Command::Delete(Delete::of(Bytes::from_static(b"k2")))
    );
    assert_eq!(
        answer(&r, Outcome::Deleted(DeleteOutcome::Deleted)),
        resp(0x04, 0, b"", b"", b"", 0)
    );
    let r = one(req(0x14, b"nokey", &[], &[], 0));
    assert_eq!(
        answer(&r, Outcome::Deleted(DeleteOutcome::Deleted)),
        Vec::<u8>::new()
    );
    assert_eq!(
        answer(&r, Outcome::Deleted(DeleteOutcome::NotFound)),
        resp(0x14, 1, b"", b"", b"Not found", 0)
    );
}

fn arith_extras(delta: u64, initial: u64, exp: u32) -> Vec<u8> {
    [
        &delta.to_be_bytes()[..],
        &initial.to_be_bytes(),
        &exp.to_be_bytes(),
    ]
    .concat()
}

#[test]
fn incr_decr() {
    let r = one(req(0x05, b"cnt", &arith_extras(5, 10, 0), &[], 0));
    assert_eq!(
        r.command,
        Command::Arith(Arith {
            key: Bytes::from_static(b"cnt"),
            op: ArithOp::Incr,
            delta: 5,
            compare_cas: None,
            new_cas: None,
            vivify: Some((10, 0)),
            touch: None,
            order: Default::default(),
        })
    );
    let value = Outcome::Arith(ArithOutcome::Value {
        value: 10,
        cas: 4,
        ttl: None,
        created: false,
    });
    assert_eq!(
        answer(&r, value.clone()),
        resp(0x05, 0, b"", b"", &10u64.to_be_bytes(), 4)
    );
    assert_eq!(
        answer(&r, Outcome::Arith(ArithOutcome::NonNumeric)),
        resp(
            0x05,
            6,
            b"",
            b"",
            b"Non-numeric server-side value for incr or decr",
            0
        )
    );
    let r = one(req(
        0x06,
        b"nokey",
        &arith_extras(5, 10, 0xffff_ffff),
        &[],
        3,
    ));
    let Command::Arith(a) = &r.command else {
        panic!()
    };
    assert_eq!(
        (a.op, a.vivify, a.compare_cas),
        (ArithOp::Decr, None, Some(3))
    );
    assert_eq!(
        answer(&r, Outcome::Arith(ArithOutcome::NotFound)),
        resp(0x06, 1, b"", b"", b"Not found", 0)
    );
    let r = one(req(0x15, b"n", &arith_extras(1, 0, 0), &[], 0));
    assert_eq!(answer(&r, value), Vec::<u8>::new());
    assert_eq!(
        answer(&r, Outcome::Arith(ArithOutcome::Exists)),
        resp(0x15, 2, b"", b"", b"Data exists for key.", 0)
    );
}

#[test]
fn noop_version_quit_flush() {
    let r = one(req(0x0a, b"", &[], &[], 0));
    assert_eq!(r.command, Command::NoOp);
    assert_eq!(answer(&r, Outcome::NoOp), resp(0x0a, 0, b"", b"", b"", 0));
    let r = one(req(0x0b, b"", &[], &[], 0));
    assert_eq!(r.command, Command::Version);
    assert_eq!(
        answer(&r, Outcome::Version("1.6.18".into())),
        resp(0x0b, 0, b"", b"", b"1.6.18", 0)
    );
    let r = one(req(0x07, b"", &[], &[], 0));
    assert_eq!(r.command, Command::Quit);
    assert_eq!(answer(&r, Outcome::Quit), resp(0x07, 0, b"", b"", b"", 0));
    let r = one(req(0x17, b"", &[], &[], 0));
    assert_eq!(r.command, Command::Quit);
    assert_eq!(answer(&r, Outcome::Quit), Vec::<u8>::new());
    let r = one(req(0x08, b"", &[], &[], 0));
    assert_eq!(r.command, Command::FlushAll(FlushAll { delay: 0 }));
    assert_eq!(answer(&r, Outcome::Ok), resp(0x08, 0, b"", b"", b"", 0));
    let r = one(req(0x18, b"", &u32b(60), &[], 0));
    assert_eq!(r.command, Command::FlushAll(FlushAll { delay: 60 }));
    assert_eq!(answer(&r, Outcome::Ok), Vec::<u8>::new());
}

#[test]
fn stat_groups_and_packets() {
    let group = |k: &[u8]| match one(req(0x10, k, &[], &[], 0)).command {
        Command::Stats(g) => g,
        other => panic!("{other:?}"),
    };
    assert_eq!(group(b""), StatsGroup::General);
    assert_eq!(group(b"settingsX"), StatsGroup::Settings);
    assert_eq!(group(b"resetXY"), StatsGroup::Reset);
    assert_eq!(group(b"items"), StatsGroup::Items);
    assert_eq!(group(b"cluster"), StatsGroup::Cluster);
    assert_eq!(
        group(b"bogus"),
        StatsGroup::Other(Bytes::from_static(b"bogus"))
    );

    let r = one(req(0x10, b"", &[], &[], 0));
    let stats = Outcome::Stats(vec![("pid".into(), "5884".into()), ("x".into(), "".into())]);
    let expected = [
        resp(0x10, 0, b"", b"pid", b"5884", 0),
        resp(0x10, 0, b"", b"x", b"", 0),
        resp(0x10, 0, b"", b"", b"", 0),
    ]
    .concat();
    assert_eq!(answer(&r, stats), expected);
    assert_eq!(answer(&r, Outcome::Reset), resp(0x10, 0, b"", b"", b"", 0));
    assert_eq!(
        answer(&r, Outcome::UnknownCommand),
        resp(0x10, 1, b"", b"", b"Not found", 0)
    );
}

#[test]
fn stat_with_a_longer_body_leaves_the_rest_as_the_next_request() {
    // memcached consumes only header + extras + key of a STAT, TOUCH or GAT.
    let noop = req(0x0a, b"", &[], &[], 0);
    let mut buf = req(0x10, b"reset", &[], &noop, 0);
    let limits = Limits::default();
    assert!(matches!(parse(&mut buf, &limits), Parse::Request(_)));
    match parse(&mut buf, &limits) {
        Parse::Request(r) => assert_eq!(r.command, Command::NoOp),
        other => panic!("{other:?}"),
    }
    assert!(buf.is_empty());
}

#[test]
fn unknown_opcodes_are_refused_and_their_body_swallowed() {
    // VERBOSITY is not implemented by memcached 1.6.18's binary protocol.
    let (reply, swallow, close, rest) = invalid(req(0x1b, b"", &[], &[], 0));
    assert_eq!(reply, resp(0x1b, 0x81, b"", b"", b"Unknown command", 0));
    assert_eq!((swallow, close, rest.len()), (0, false, 0));
    // memcached swallows body_len bytes *after* the extras and key it already consumed.
    let (reply, swallow, close, rest) = invalid(req(0x40, b"abc", &[], b"xyz", 0));
    assert_eq!(reply, resp(0x40, 0x81, b"", b"", b"Unknown command", 0));
    assert_eq!((swallow, close, &rest[..]), (6, false, &b"xyz"[..]));
    // SASL is disabled: refused, the rest of the body swallowed exactly.
    let (reply, swallow, close, rest) = invalid(req(0x21, b"PLAIN", &[], b"\0a\0b", 0));
    assert_eq!(reply, resp(0x21, 0x81, b"", b"", b"Unknown command", 0));
    assert_eq!((swallow, close, &rest[..]), (4, false, &b"\0a\0b"[..]));
    let (reply, swallow, close, _) = invalid(req(0x20, b"", &[], &[], 0));
    assert_eq!(reply, resp(0x20, 0x81, b"", b"", b"Unknown command", 0));
    assert_eq!((swallow, close), (0, false));
}

#[test]
fn malformed_packets_are_answered_as_memcached_does() {
    let einval = |op| resp(op, 4, b"", b"", b"Invalid arguments", 0);
    let cases: Vec<(BytesMut, Vec<u8>)> = vec![
        (req(0x00, &[b'a'; 251], &[], &[], 0), einval(0x00)),
        (req(0x00, b"abc", b"1234", &[], 0), einval(0x00)),
        (
            req(0x05, b"n", &arith_extras(1, 0, 0), b"x", 0),
            einval(0x05),
        ),
        (req(0x01, b"", &[0; 8], b"x", 0), einval(0x01)),
        (req(0x04, b"a", &u32b(0), &[], 0), einval(0x04)),
        (req(0x0a, b"", &[], b"x", 0), einval(0x0a)),
        (req(0x08, b"k", &[], &[], 0), einval(0x08)),
        (req(0x1c, b"k", &[], &[], 0), einval(0x1c)),
        (req(0x20, b"", &[], b"x", 0), einval(0x20)),
    ];
    for (packet, expected) in cases {
        let (reply, swallow, close, _) = invalid(packet);
        assert_eq!((reply, swallow, close), (expected, 0, true));
    }
    // Key + extras longer than the body: "Unknown command" and close.
    let mut packet = req(0x00, b"abc", &[], &[], 0);
    packet[8..12].copy_from_slice(&2u32.to_be_bytes());
    let (reply, swallow, close, _) = invalid(packet);
    assert_eq!(reply, resp(0x00, 0x81, b"", b"", b"Unknown command", 0));
    assert_eq!((swallow, close), (0, true));
}

#[test]
fn wrong_magic_closes_silently() {
    let mut packet = req(0x0a, b"", &[], &[], 0);
    packet[0] = 0x81;
    let (reply, swallow, close, rest) = invalid(packet);
    assert!(reply.is_empty() && rest.is_empty());
    assert_eq!((swallow, close), (0, true));
}

#[test]
fn too_large_values_are_refused_without_buffering() {
    let limits = Limits {
        item_size_max: 1024,
        ..Limits::default()
    };
    // Only the header, extras and key have arrived; the value is announced as 1 MiB.
    let full = req(0x11, b"big", &[0; 8], &vec![b'x'; 1 << 20], 0);
    let mut buf = BytesMut::from(&full[..HEADER_LEN + 8 + 3]);
    match parse(&mut buf, &limits) {
        Parse::Invalid {
            reply,
            swallow,
            close,
            command,
        } => {
            assert_eq!(reply.to_vec(), resp(0x11, 3, b"", b"", b"Too large.", 0));
            assert_eq!((swallow, close), (1 << 20, false));
            // A refused SETQ removes the old value, as memcached does.
            assert!(
                matches!(command, Some(Command::Delete(ref d)) if &d.key[..] == b"big"),
                "{command:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(buf.is_empty());
    // The limit counts memcached's item overhead: 60 bytes with a 1-byte key, flags 0.
    let mut buf = req(0x01, b"k", &[0; 8], &[b'x'; 1024 - 60], 0);
    assert!(matches!(parse(&mut buf, &limits), Parse::Request(_)));
    let mut buf = req(0x01, b"k", &[0; 8], &[b'x'; 1024 - 59], 0);
    assert!(matches!(parse(&mut buf, &limits), Parse::Invalid { .. }));
}

#[test]
fn partial_packets_are_incomplete_and_untouched() {
    let full = req(0x01, b"key", &[0; 8], b"value", 0);
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(parse(&mut buf, &Limits::default()), Parse::Incomplete);
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn pipelined_multiget_with_noop() {
    // libmemcached's binary mget: GETKQ per key, then NOOP.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&req(0x0d, b"a", &[], &[], 0));
    buf.extend_from_slice(&req(0x0d, b"zz", &[], &[], 0));
    buf.extend_from_slice(&req(0x0a, b"", &[], &[], 0));
    let limits = Limits::default();
    let mut out = BytesMut::new();
    let outcomes = [
        Outcome::Values(vec![Some(item(b"a", b"12", 7, 9))]),
        Outcome::Values(vec![None]),
        Outcome::NoOp,
    ];
    for outcome in &outcomes {
        let Parse::Request(r) = parse(&mut buf, &limits) else {
            panic!()
        };
        let ReplyTo::Binary(reply) = &r.reply else {
            panic!()
        };
        encode(reply, outcome, &mut out);
    }
    let expected = [
        resp(0x0d, 0, &u32b(7), b"a", b"12", 9),
        resp(0x0a, 0, b"", b"", b"", 0),
    ]
    .concat();
    assert_eq!(out.to_vec(), expected);
}

#[test]
fn opaque_is_echoed_and_reply_keeps_the_opcode() {
    let r = one(req(0x0d, b"a", &[], &[], 0));
    assert_eq!(
        r.reply,
        ReplyTo::Binary(BinaryReply {
            opcode: 0x0d,
            op: Opcode::GetK,
            quiet: true,
            opaque: OPAQUE,
            key: Bytes::from_static(b"a"),
        })
    );
}

/// Well-formed requests of every implemented opcode.
fn valid_request() -> impl Strategy<Value = BytesMut> {
    let key = proptest::collection::vec(any::<u8>(), 1..40);
    let value = proptest::collection::vec(any::<u8>(), 0..100);
    (
        0usize..13,
        any::<bool>(),
        key,
        value,
        any::<u64>(),
        any::<[u8; 20]>(),
    )
        .prop_map(|(which, quiet, key, value, cas, ex)| {
            let q = |loud: u8, quiet_op: u8| if quiet { quiet_op } else { loud };
            match which {
                0 => req(q(0x00, 0x09), &key, &[], &[], 0),
                1 => req(q(0x0c, 0x0d), &key, &[], &[], 0),
                2 => req(q(0x01, 0x11), &key, &ex[..8], &value, cas),
                3 => req(q(0x02, 0x12), &key, &ex[..8], &value, cas),
                4 => req(q(0x03, 0x13), &key, &ex[..8], &value, 0),
                5 => req(q(0x0e, 0x19), &key, &[], &value, cas),
                6 => req(q(0x0f, 0x1a), &key, &[], &value, 0),
                7 => req(q(0x04, 0x14), &key, &[], &[], cas),
                8 => req(q(0x05, 0x15), &key, &ex, &[], cas),
                9 => req(q(0x06, 0x16), &key, &ex, &[], 0),
                10 => req(q(0x1d, 0x1e), &key, &ex[..4], &[], 0),
                11 => req(q(0x23, 0x24), &key, &ex[..4], &[], 0),
                _ => req(q(0x08, 0x18), b"", &ex[..4], &[], 0),
            }
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                   binary_magic: bool) {
        if binary_magic && !bytes.is_empty() {
            bytes[0] = 0x80;
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let limits = Limits { item_size_max: 64, ..Limits::default() };
        let mut out = BytesMut::new();
        loop {
            let before = buf.len();
            match parse(&mut buf, &limits) {
                Parse::Incomplete => break,
                Parse::Invalid { close: true, .. } => break,
                Parse::Invalid { .. } => {}
                Parse::Request(r) => {
                    let ReplyTo::Binary(reply) = &r.reply else { panic!() };
                    encode(reply, &Outcome::Values(vec![None]), &mut out);
                    encode(reply, &Outcome::Ok, &mut out);
                }
            }
            prop_assert!(buf.len() < before, "no progress");
        }
    }

    #[test]
    fn split_requests_parse_the_same(packet in valid_request(), cut in 0usize..1000) {
        let limits = Limits::default();
        let whole = {
            let mut buf = packet.clone();
            match parse(&mut buf, &limits) {
                Parse::Request(r) => { prop_assert!(buf.is_empty()); r }
                other => panic!("{other:?}"),
            }
        };
        let cut = cut % packet.len();
        let mut buf = BytesMut::from(&packet[..cut]);
        prop_assert_eq!(parse(&mut buf, &limits), Parse::Incomplete);
        buf.extend_from_slice(&packet[cut..]);
        prop_assert_eq!(parse(&mut buf, &limits), Parse::Request(whole));
        prop_assert!(buf.is_empty());
    }
}

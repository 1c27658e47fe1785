//! Tests of the text and meta protocols: expected bytes were taken from what memcached
//! 1.6.18 answered to the same input, plus property tests of the parser's framing.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shoal_command::*;

use super::*;
use crate::{Limits, Parse, ReplyTo, Request};

/// Parses `input` until it runs out, applying swallow and close like a server would, and
/// collects what was parsed.
fn run(input: &[u8]) -> (Vec<Parse>, BytesMut) {
    let limits = Limits::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        let before = buf.len();
        let p = parse(&mut buf, &limits);
        assert!(buf.len() <= before);
        match &p {
            Parse::Incomplete => break,
            Parse::Invalid { swallow, close, .. } => {
                let n = (*swallow as usize).min(buf.len());
                let _ = buf.split_to(n);
                let close = *close;
                out.push(p);
                if close {
                    break;
                }
            }
            Parse::Request(_) => out.push(p),
        }
    }
    (out, buf)
}

fn one(input: &[u8]) -> Parse {
    let (mut v, rest) = run(input);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(rest.is_empty(), "left over: {rest:?}");
    v.remove(0)
}

fn req(input: &[u8]) -> Request {
    match one(input) {
        Parse::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn command(input: &[u8]) -> Command {
    req(input).command
}

/// The error reply of a single invalid line.
fn err(input: &[u8]) -> Bytes {
    match one(input) {
        Parse::Invalid { reply, .. } => reply,
        other => panic!("not invalid: {other:?}"),
    }
}

/// What the connection would write for `input`, with `outcome` for every request.
fn answer(input: &[u8], outcome: impl Fn(&Command) -> Outcome) -> Bytes {
    let (parses, _) = run(input);
    let mut out = BytesMut::new();
    for p in parses {
        match p {
            Parse::Request(r) => crate::encode(&r.reply, &outcome(&r.command), &mut out),
            Parse::Invalid { reply, .. } => out.extend_from_slice(&reply),
            Parse::Incomplete => unreachable!(),
        }
    }
    out.freeze()
}

fn b<T: AsRef<[u8]> + ?Sized>(s: &'static T) -> Bytes {
    Bytes::from_static(s.as_ref())
}

fn store(
    mode: StoreMode,
    key: &'static [u8],
    flags: u32,
    exptime: i64,
    data: &'static [u8],
) -> Store {
    Store {
        mode,
        key: b(key),
        flags,
        exptime,
        data: b(data),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    }
}

fn item(key: &'static [u8], value: &'static [u8], flags: u32, cas: u64) -> ItemView {
    ItemView {
        key: b(key),
        value: b(value),
        flags,
        cas,
        ..ItemView::default()
    }
}

// ---------------------------------------------------------------- classic parsing

#[test]
fn set_family_maps_to_store() {
    assert_eq!(
        command(b"set a 5 10 3\r\nabc\r\n"),
        Command::Store(store(StoreMode::Set, b"a", 5, 10, b"abc"))
    );
    for (cmd, mode) in [
        ("add", StoreMode::Add),
        ("replace", StoreMode::Replace),
        ("append", StoreMode::Append),
        ("prepend", StoreMode::Prepend),
    ] {
        let line = format!("{cmd} k 0 0 1\r\nx\r\n");
        assert_eq!(
            command(line.as_bytes()),
            Command::Store(store(mode, b"k", 0, 0, b"x"))
        );
    }
    let mut cas = store(StoreMode::Set, b"k", 0, 0, b"x");
    cas.compare_cas = Some(77);
    assert_eq!(command(b"cas k 0 0 1 77\r\nx\r\n"), Command::Store(cas));
}

#[test]
fn set_accepts_bare_newlines_and_memcached_number_quirks() {
    assert_eq!(
        command(b"set a 0 0 1\nx\r\n"),
        Command::Store(store(StoreMode::Set, b"a", 0, 0, b"x"))
    );
    // memcached 1.6.18 truncates flags to 32 bits and accepts a leading '+'.
    assert_eq!(
        command(b"set a 4294967297 0 1\r\nx\r\n"),
        Command::Store(store(StoreMode::Set, b"a", 1, 0, b"x"))
    );
    assert_eq!(
        command(b"set a +5 0 1\r\nx\r\n"),
        Command::Store(store(StoreMode::Set, b"a", 5, 0, b"x"))
    );
    // A 33-bit length is truncated too: "4294967297" reads one byte.
    assert_eq!(
        command(b"set a 0 0 4294967297\r\nx\r\n"),
        Command::Store(store(StoreMode::Set, b"a", 0, 0, b"x"))
    );
    // A trailing token other than noreply is ignored.
    let r = req(b"set a 0 0 1 foo\r\nx\r\n");
    assert_eq!(
        r.reply,
        ReplyTo::Text(TextReply {
            command: TextCommand::Store,
            noreply: false
        })
    );
}

#[test]
fn set_errors_match_memcached() {
    let bad = b("CLIENT_ERROR bad command line format\r\n");
    assert_eq!(err(b"set a -1 0 1\r\n"), bad);
    assert_eq!(err(b"set a 0 0 -1\r\n"), bad);
    assert_eq!(err(b"set a 18446744073709551617 0 1\r\n"), bad);
    assert_eq!(err(b"cas a 0 0 1 abc\r\n"), bad);
    let long = format!("set {} 0 0 1\r\n", "k".repeat(251));
    assert_eq!(err(long.as_bytes()), bad);
    assert_eq!(err(b"set a 0 0\r\n"), b("ERROR\r\n"));
    assert_eq!(err(b"cas a 0 0 1\r\n"), b("ERROR\r\n"));
    // noreply silences errors too.
    assert_eq!(err(b"set a 0 0 -1 noreply\r\n"), Bytes::new());
}

#[test]
fn bad_data_chunk_consumes_declared_length_plus_two() {
    // memcached: "CLIENT_ERROR bad data chunk\r\nERROR\r\n" (the "f" is a new command).
    assert_eq!(
        answer(b"set a 0 0 3\r\nabcdef\r\n", |_| Outcome::Ok),
        b("CLIENT_ERROR bad data chunk\r\nERROR\r\n")
    );
    assert_eq!(
        answer(b"set a 0 0 3 noreply\r\nabcdef\r\nget a\r\n", |_| {
            Outcome::Values(vec![None])
        }),
        b("ERROR\r\nEND\r\n")
    );
    let (v, rest) = run(b"set a 0 0 1\r\nxyzw");
    assert_eq!(v.len(), 1);
    assert_eq!(&rest[..], b"w");
}

#[test]
fn too_large_is_answered_at_once_and_swallowed() {
    let limits = Limits::default();
    // With -I 1m memcached takes 1048516 bytes for a one-byte key, not 1048517.
    assert!(!item_too_large(1, 0, 1_048_516, &limits));
    assert!(item_too_large(1, 0, 1_048_517, &limits));
    assert!(!item_too_large(1, 1, 1_048_512, &limits));
    assert!(item_too_large(1, 1, 1_048_513, &limits));
    let mut buf = BytesMut::from(&b"set a 0 0 2000000\r\nxx"[..]);
    assert_eq!(
        parse(&mut buf, &limits),
        Parse::Invalid {
            reply: b("SERVER_ERROR object too large for cache\r\n"),
            swallow: 2_000_002,
            close: false,
            command: Some(Command::Delete(Delete::of(b(b"a")))),
        }
    );
    assert_eq!(&buf[..], b"xx");
    let mut buf = BytesMut::from(&b"set a 0 0 2000000 noreply\r\n"[..]);
    assert_eq!(
        parse(&mut buf, &limits),
        Parse::Invalid {
            reply: Bytes::new(),
            swallow: 2_000_002,
            close: false,
            command: Some(Command::Delete(Delete::of(b(b"a")))),
        }
    );
}

#[test]
fn storage_waits_for_its_data_without_consuming() {
    let limits = Limits::default();
    let mut buf = BytesMut::from(&b"set a 0 0 5\r\nab"[..]);
    assert_eq!(parse(&mut buf, &limits), Parse::Incomplete);
    assert_eq!(buf.len(), 15);
    buf.extend_from_slice(b"cde\r\n");
    assert!(matches!(parse(&mut buf, &limits), Parse::Request(_)));
    assert!(buf.is_empty());
}

#[test]
fn get_family() {
    assert_eq!(
        command(b"get a b\tc\r\n"),
        Command::Get(Get {
            keys: vec![b(b"a"), b(b"b\tc")],
            options: ReadOptions::default()
        })
    );
    assert_eq!(
        command(b"gats 10 a\r\n"),
        Command::Get(Get {
            keys: vec![b(b"a")],
            options: ReadOptions {
                touch: Some(10),
                ..ReadOptions::default()
            }
        })
    );
    // A NUL ends the command line (memcached uses strlen).
    assert_eq!(
        command(b"get a\0b c\r\n"),
        Command::Get(Get {
            keys: vec![b(b"a")],
            options: ReadOptions::default()
        })
    );
    let keys: Vec<String> = (0..100).map(|i| format!("key{i}")).collect();
    let line = format!("get {}\r\n", keys.join(" "));
    match command(line.as_bytes()) {
        Command::Get(g) => assert_eq!(g.keys.len(), 100),
        other => panic!("{other:?}"),
    }
    assert_eq!(err(b"get\r\n"), b("ERROR\r\n"));
    assert_eq!(err(b"get \r\n"), b("ERROR\r\n"));
    assert_eq!(
        err(b"gat x a\r\n"),
        b("CLIENT_ERROR invalid exptime argument\r\n")
    );
    // memcached reads the keys before a too-long one (a gat touches them), then drops
    // their values and answers only the error.
    let long = format!("gat 0 a b {} c\r\n", "k".repeat(251));
    let r = req(long.as_bytes());
    match &r.command {
        Command::Get(g) => assert_eq!(g.keys, vec![b(b"a"), b(b"b")]),
        other => panic!("{other:?}"),
    }
    let hit = Outcome::Values(vec![Some(item(b"a", b"1", 0, 1)), None]);
    assert_eq!(
        answer(long.as_bytes(), |_| hit.clone()),
        b("CLIENT_ERROR bad command line format\r\n")
    );
    let long = format!("get {} a\r\n", "k".repeat(251));
    assert_eq!(
        err(long.as_bytes()),
        b("CLIENT_ERROR bad command line format\r\n")
    );
    assert_eq!(
        answer(b"gat 10\r\n", |_| Outcome::Values(vec![])),
        b("END\r\n")
    );
}

#[test]
fn get_encoding() {
    let hit = item(b"a", b"x", 0, 10);
    let vals = Outcome::Values(vec![Some(hit.clone()), None, Some(item(b"c", b"yz", 7, 3))]);
    assert_eq!(
        answer(b"get a b c\r\n", |_| vals.clone()),
        b("VALUE a 0 1\r\nx\r\nVALUE c 7 2\r\nyz\r\nEND\r\n")
    );
    assert_eq!(
        answer(b"gets a\r\n", |_| Outcome::Values(vec![Some(hit.clone())])),
        b("VALUE a 0 1 10\r\nx\r\nEND\r\n")
    );
    assert_eq!(
        answer(b"gats 10 a\r\n", |_| Outcome::Values(vec![Some(
            hit.clone()
        )])),
        b("VALUE a 0 1 10\r\nx\r\nEND\r\n")
    );
}

#[test]
fn incr_decr() {
    assert_eq!(
        command(b"incr n 18446744073709551615\r\n"),
        Command::Arith(Arith {
            key: b(b"n"),
            op: ArithOp::Incr,
            delta: u64::MAX,
            compare_cas: None,
            new_cas: None,
            vivify: None,
            touch: None,
            order: Default::default(),
        })
    );
    let delta = b("CLIENT_ERROR invalid numeric delta argument\r\n");
    assert_eq!(err(b"incr n -1\r\n"), delta);
    assert_eq!(err(b"incr n abc\r\n"), delta);
    assert_eq!(err(b"decr n 18446744073709551616\r\n"), delta);
    assert_eq!(err(b"incr n abc noreply\r\n"), Bytes::new());
    assert_eq!(err(b"incr n\r\n"), b("ERROR\r\n"));
    let v = |value| {
        Outcome::Arith(ArithOutcome::Value {
            value,
            cas: 1,
            ttl: None,
            created: false,
        })
    };
    assert_eq!(answer(b"incr n 5\r\n", |_| v(15)), b("15\r\n"));
    assert_eq!(answer(b"incr n 5 noreply\r\n", |_| v(15)), Bytes::new());
    assert_eq!(answer(b"incr n 5 foo\r\n", |_| v(25)), b("25\r\n"));
    assert_eq!(
        answer(b"decr n 1\r\n", |_| Outcome::Arith(
            ArithOutcome::NonNumeric
        )),
        b("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
    );
    assert_eq!(
        answer(b"decr n 1\r\n", |_| Outcome::Arith(ArithOutcome::NotFound)),
        b("NOT_FOUND\r\n")
    );
    assert_eq!(
        answer(b"incr n 1\r\n", |_| Outcome::Error(
            ServerError::OutOfMemory
        )),
        b("SERVER_ERROR out of memory\r\n")
    );
}

#[test]
fn delete_touch_flush_verbosity_as_memcached() {
    let usage = b("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    let del = |o| Outcome::Deleted(o);
    let input = b"delete a 0\r\ndelete a 1\r\ndelete a noreply\r\ndelete a 0 noreply\r\n\
delete a 0 foo\r\ndelete a foo\r\ndelete zz\r\ndelete\r\ndelete a b c d\r\n";
    let mut expected = b"NOT_FOUND\r\n".to_vec();
    expected.extend_from_slice(&usage);
    expected.extend_from_slice(&usage);
    expected.extend_from_slice(&usage);
    expected.extend_from_slice(b"NOT_FOUND\r\nERROR\r\nERROR\r\n");
    assert_eq!(
        answer(input, |_| del(DeleteOutcome::NotFound)),
        Bytes::from(expected)
    );
    assert_eq!(
        answer(b"delete a\r\n", |_| del(DeleteOutcome::Deleted)),
        b("DELETED\r\n")
    );

    let input = b"touch a 10\r\ntouch a x\r\ntouch a 10 noreply\r\ntouch a\r\n";
    assert_eq!(
        answer(input, |_| Outcome::Touched(true)),
        b("TOUCHED\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\n")
    );
    assert_eq!(
        command(b"touch a -5\r\n"),
        Command::Touch(Touch {
            key: b(b"a"),
            exptime: -5
        })
    );

    let input = b"flush_all\r\nflush_all 0\r\nflush_all noreply\r\nflush_all x\r\n\
flush_all 10 20\r\nflush_all -1\r\nflush_all 0 noreply\r\nflush_all a b c\r\nflush_all x noreply\r\n";
    assert_eq!(
        answer(input, |_| Outcome::Ok),
        b("OK\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\nOK\r\nOK\r\nERROR\r\n")
    );
    assert_eq!(
        command(b"flush_all 10 20\r\n"),
        Command::FlushAll(FlushAll { delay: 10 })
    );

    let input = b"verbosity\r\nverbosity 1\r\nverbosity x\r\nverbosity 1 noreply\r\n\
verbosity noreply\r\nverbosity 1 2\r\n";
    assert_eq!(
        answer(input, |_| Outcome::Ok),
        b("ERROR\r\nOK\r\nCLIENT_ERROR bad command line format\r\nOK\r\n")
    );
}

#[test]
fn misc_commands() {
    assert_eq!(command(b"version foo bar\r\n"), Command::Version);
    assert_eq!(
        answer(b"version\r\n", |_| Outcome::Version("1.6.18".into())),
        b("VERSION 1.6.18\r\n")
    );
    assert_eq!(command(b"quit foo\r\n"), Command::Quit);
    assert_eq!(answer(b"quit\r\n", |_| Outcome::Quit), Bytes::new());
    assert_eq!(
        answer(b"shutdown foo bar\r\n", |_| Outcome::ShutdownDisabled),
        b("ERROR: shutdown not enabled\r\n")
    );
    assert_eq!(
        answer(b"shutdown foo\r\n", |_| Outcome::UnknownCommand),
        b("CLIENT_ERROR invalid shutdown mode\r\n")
    );
    assert_eq!(
        command(b"shutdown foo\r\n"),
        Command::Shutdown(ShutdownMode::Invalid)
    );
    assert_eq!(
        command(b"shutdown graceful\r\n"),
        Command::Shutdown(ShutdownMode::Graceful)
    );
    assert_eq!(
        answer(b"shutdown\r\n", |_| Outcome::ShuttingDown),
        Bytes::new()
    );
    for (line, group) in [
        (&b"stats\r\n"[..], StatsGroup::General),
        (b"stats reset foo\r\n", StatsGroup::Reset),
        (b"stats settings\r\n", StatsGroup::Settings),
        (b"stats items\r\n", StatsGroup::Items),
        (b"stats slabs\r\n", StatsGroup::Slabs),
        (b"stats sizes\r\n", StatsGroup::Sizes),
        (b"stats conns\r\n", StatsGroup::Conns),
        (b"stats cluster\r\n", StatsGroup::Cluster),
        (b"stats nope\r\n", StatsGroup::Other(b(b"nope"))),
        (b"stats detail on\r\n", StatsGroup::Other(b(b"detail on"))),
    ] {
        assert_eq!(command(line), Command::Stats(group));
    }
    assert_eq!(
        err(b"stats detail\r\n"),
        b("CLIENT_ERROR usage: stats detail on|off|dump\r\n")
    );
    let stats = Outcome::Stats(vec![
        ("pid".into(), "1".into()),
        ("uptime".into(), "2".into()),
    ]);
    assert_eq!(
        answer(b"stats\r\n", |_| stats.clone()),
        b("STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n")
    );
    assert_eq!(
        answer(b"stats reset\r\n", |_| Outcome::Reset),
        b("RESET\r\n")
    );
    assert_eq!(
        answer(b"stats nope\r\n", |_| Outcome::UnknownCommand),
        b("ERROR\r\n")
    );
}

#[test]
fn unknown_commands_and_http() {
    for line in [
        &b"\r\n"[..],
        b"\n",
        b"x\r\n",
        b"ge a\r\n",
        b"GETS a\r\n",
        b"mz\r\n",
        b"mgx a\r\n",
    ] {
        assert_eq!(err(line), b("ERROR\r\n"), "{line:?}");
    }
    assert_eq!(
        one(b"GET / HTTP/1.1\r\n"),
        Parse::Invalid {
            reply: Bytes::new(),
            swallow: 0,
            close: true,
            command: None,
        }
    );
    assert_eq!(command(b"bget a\r\n"), command(b"get a\r\n"));
}

#[test]
fn long_lines() {
    let mut line = b"set ".to_vec();
    line.extend_from_slice(&vec![b'k'; 3000]);
    let (v, _) = run(&line);
    assert_eq!(
        v,
        vec![Parse::Invalid {
            reply: Bytes::new(),
            swallow: 0,
            close: true,
            command: None,
        }]
    );
    let mut get = b"get ".to_vec();
    get.extend_from_slice(&vec![b'k'; 3000]);
    let (v, rest) = run(&get);
    assert!(v.is_empty());
    assert_eq!(rest.len(), get.len());
    // A long line that arrived whole is parsed (the key is too long).
    line.extend_from_slice(b" 0 0 1\r\n");
    assert_eq!(err(&line), b("CLIENT_ERROR bad command line format\r\n"));
    // Even a multi-get is refused past max_line.
    let limits = Limits {
        item_size_max: 1 << 20,
        max_line: 4096,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&get.repeat(2)[..]);
    assert!(matches!(
        parse(&mut buf, &limits),
        Parse::Invalid { close: true, .. }
    ));
}

#[test]
fn store_outcomes_encode() {
    let cases = [
        (StoreOutcome::Stored { cas: 1 }, "STORED\r\n"),
        (StoreOutcome::NotStored, "NOT_STORED\r\n"),
        (StoreOutcome::Exists, "EXISTS\r\n"),
        (StoreOutcome::NotFound, "NOT_FOUND\r\n"),
    ];
    for (o, want) in cases {
        assert_eq!(
            answer(b"set a 0 0 1\r\nx\r\n", |_| Outcome::Stored(o)),
            Bytes::from(want)
        );
        assert_eq!(
            answer(b"set a 0 0 1 noreply\r\nx\r\n", |_| Outcome::Stored(o)),
            Bytes::new()
        );
    }
    assert_eq!(
        answer(b"set a 0 0 1\r\nx\r\n", |_| Outcome::Error(
            ServerError::OutOfMemory
        )),
        b("SERVER_ERROR out of memory storing object\r\n")
    );
    assert_eq!(
        answer(b"set a 0 0 1\r\nx\r\n", |_| Outcome::Error(
            ServerError::TooLarge
        )),
        b("SERVER_ERROR object too large for cache\r\n")
    );
}

// ---------------------------------------------------------------- meta

fn meta_reply(input: &[u8]) -> MetaReply {
    match req(input).reply {
        ReplyTo::Meta(m) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn mg_parses_flags() {
    assert_eq!(
        command(b"mg foo v N30 T-1 R20 u E9 c\r\n"),
        Command::Get(Get {
            keys: vec![b(b"foo")],
            options: ReadOptions {
                touch: Some(-1),
                no_update: true,
                vivify: Some(30),
                recache_below: Some(20),
                new_cas: Some(9),
                order: FlagOrder {
                    vivify_after_touch: false,
                    ttl_before_touch: false,
                    ttl_before_vivify: false,
                    recache_before_touch: false,
                },
                hand_out_wins: true,
            }
        })
    );
    // t and R before T see the TTL from before the touch; a too-long opaque cuts the
    // flags after it, and no win is handed out.
    match command(b"mg foo t R5 T9 N1\r\n") {
        Command::Get(g) => assert_eq!(
            g.options.order,
            FlagOrder {
                vivify_after_touch: true,
                ttl_before_touch: true,
                ttl_before_vivify: true,
                recache_before_touch: true,
            }
        ),
        other => panic!("{other:?}"),
    }
    let long = format!("mg foo T9 O{} N1 R5\r\n", "a".repeat(32));
    match command(long.as_bytes()) {
        Command::Get(g) => {
            let o = g.options;
            assert_eq!(
                (o.touch, o.vivify, o.recache_below),
                (Some(9), Some(0), None)
            );
            assert!(!o.hand_out_wins && o.no_update && !o.order.vivify_after_touch);
        }
        other => panic!("{other:?}"),
    }
    let r = meta_reply(b"mg bWs= b k v q O123\r\n");
    assert_eq!(r.key, b(b"bWs="));
    assert!(r.base64_key && r.value && r.quiet);
    assert_eq!(
        r.flags,
        vec![ReturnFlag::Key, ReturnFlag::Opaque(b(b"O123"))]
    );
    match command(b"mg bWs= b\r\n") {
        Command::Get(g) => assert_eq!(g.keys, vec![b(b"mk")]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mg_encoding_as_memcached() {
    let mut it = item(b"mk", b"hi", 5, 25);
    it.fetched = false;
    it.last_access = 0;
    let hit = Outcome::Values(vec![Some(it.clone())]);
    assert_eq!(
        answer(b"mg mk v f c s t k O9 h l q\r\n", |_| hit.clone()),
        b("VA 2 f5 c25 s2 t-1 kmk O9 h0 l0\r\nhi\r\n")
    );
    assert_eq!(answer(b"mg mk\r\n", |_| hit.clone()), b("HD\r\n"));
    assert_eq!(
        answer(b"mg mk s v\r\n", |_| hit.clone()),
        b("VA 2 s2\r\nhi\r\n")
    );
    let miss = Outcome::Values(vec![None]);
    assert_eq!(
        answer(b"mg missing v q O1\r\n", |_| miss.clone()),
        Bytes::new()
    );
    assert_eq!(
        answer(b"mg missing v O1 k\r\n", |_| miss.clone()),
        b("EN O1 kmissing\r\n")
    );
    assert_eq!(
        answer(b"mg bWs= k v\r\n", |_| miss.clone()),
        b("EN kbWs=\r\n")
    );
    // A hit's `k` shows the item's key in the item's form (memcached's ITEM_KEY_BINARY):
    // base64 only for an item stored through a base64 key, whatever the request used.
    assert_eq!(
        answer(b"mg bWs= b k v\r\n", |_| hit.clone()),
        b("VA 2 kmk\r\nhi\r\n")
    );
    let mut binary = it.clone();
    binary.binary_key = true;
    assert_eq!(
        answer(b"mg mk k O1\r\n", |_| Outcome::Values(vec![Some(
            binary.clone()
        )])),
        b("HD kbWs= b O1\r\n")
    );
    let mut stale = item(b"dk", b"x", 0, 32);
    stale.ttl = Some(30);
    stale.stale = true;
    stale.won = true;
    assert_eq!(
        answer(b"mg dk v c t\r\n", |_| Outcome::Values(vec![Some(
            stale.clone()
        )])),
        b("VA 1 c32 t30 X W\r\nx\r\n")
    );
    stale.won = false;
    stale.win_taken = true;
    assert_eq!(
        answer(b"mg dk v\r\n", |_| Outcome::Values(vec![Some(
            stale.clone()
        )])),
        b("VA 1 Z X\r\nx\r\n")
    );
}

#[test]
fn meta_errors_as_memcached() {
    let cases: [(&[u8], &str); 17] = [
        (b"mg foo zz\r\n", "CLIENT_ERROR invalid flag"),
        (b"mg foo v v\r\n", "CLIENT_ERROR duplicate flag"),
        (b"mg foo x\r\n", "CLIENT_ERROR invalid flag"),
        (b"mg mk k b\r\n", "CLIENT_ERROR error decoding key"),
        (
            b"mg x T\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (b"mg\r\n", "ERROR"),
        (b"mg \r\n", "ERROR"),
        (b"ms\r\n", "ERROR"),
        (b"md\r\n", "ERROR"),
        (b"ma\r\n", "ERROR"),
        (b"me\r\n", "CLIENT_ERROR bad command line format"),
        (b"me x b\r\n", "CLIENT_ERROR bad command line format"),
        (
            b"mg a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\r\n",
            "CLIENT_ERROR options flags are too long",
        ),
        (b"md a zz\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"ma cnt Dabc\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"ma cnt Mx\r\n", "CLIENT_ERROR invalid mode for ma M token"),
        (b"ms mk x\r\n", "CLIENT_ERROR bad command line format"),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), Bytes::from(format!("{want}\r\n")), "{input:?}");
    }
    // A too-long opaque still lets mg read (memcached checks it while writing the reply).
    let long = b"mg a v O123456789012345678901234567890123\r\n";
    assert!(matches!(command(long), Command::Get(_)));
    assert_eq!(
        answer(long, |_| Outcome::Values(vec![Some(item(
            b"a", b"1", 0, 1
        ))])),
        b("CLIENT_ERROR opaque token too long\r\n")
    );
    let long = format!("mg {} v\r\n", "k".repeat(251));
    assert_eq!(
        err(long.as_bytes()),
        b("CLIENT_ERROR bad command line format\r\n")
    );
    assert_eq!(
        err(b"ms mk\r\n"),
        b("CLIENT_ERROR bad command line format\r\n")
    );
    assert_eq!(
        err(b"ms mk -1\r\n"),
        b("CLIENT_ERROR bad command line format\r\n")
    );
}

#[test]
fn ms_errors_swallow_the_data() {
    // memcached: each error swallows "hi\r\n" so the next command is mn.
    let input = b"ms mk 2 MZ\r\nhi\r\nms mk 2 Mxx\r\nhi\r\nms x 1 F-1\r\nb\r\nms x 1 T\r\nb\r\n\
ms nk 1 MS O12345678901234567890123456789012\r\nx\r\nms foo 2 E77 zz\r\nhi\r\nmn\r\n";
    assert_eq!(
        answer(input, |_| Outcome::NoOp),
        b("CLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR incorrect length for M token\r\n\
CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad token in command line format\r\n\
CLIENT_ERROR opaque token too long\r\nCLIENT_ERROR invalid flag\r\nMN\r\n")
    );
    // Bad data chunks are shown even in quiet mode; too large too.
    assert_eq!(
        answer(b"ms a 2 q\r\nhixx\r\n", |_| Outcome::Ok),
        b("CLIENT_ERROR bad data chunk\r\nERROR\r\n")
    );
    let mut big = b"ms a 2000000 T0 q\r\n".to_vec();
    big.extend_from_slice(&vec![b'x'; 2_000_002]);
    big.extend_from_slice(b"mn\r\n");
    assert_eq!(
        answer(&big, |_| Outcome::NoOp),
        b("SERVER_ERROR object too large for cache\r\nMN\r\n")
    );
}

#[test]
fn ms_maps_modes_and_encodes() {
    let mut s = store(StoreMode::Append, b"mk", 5, 30, b"zz");
    s.compare_cas = Some(3);
    assert_eq!(
        command(b"ms mk 2 MA F5 T30 C3\r\nzz\r\n"),
        Command::Store(s)
    );
    let mut s = store(StoreMode::Set, b"mk", 0, 0, b"zz");
    s.compare_cas = Some(3);
    s.invalidate = true;
    s.new_cas = Some(9);
    assert_eq!(command(b"ms mk 2 I C3 E9\r\nzz\r\n"), Command::Store(s));
    let s = store(StoreMode::Add, b"mk", 0, 0, b"zz");
    assert_eq!(command(b"ms mk 2 ME C3 I\r\nzz\r\n"), Command::Store(s));
    // The stored item remembers that its key came base64-encoded.
    let mut s = store(StoreMode::Set, b"mk", 0, 0, b"z");
    s.binary_key = true;
    assert_eq!(command(b"ms bWs= 1 b\r\nz\r\n"), Command::Store(s));

    let stored = |cas| Outcome::Stored(StoreOutcome::Stored { cas });
    assert_eq!(
        answer(b"ms mk 2 T0 F5 c k O123 q\r\nhi\r\n", |_| stored(25)),
        Bytes::new()
    );
    assert_eq!(
        answer(b"ms mk 2 O1 k c\r\nhi\r\n", |_| stored(27)),
        b("HD O1 kmk c27\r\n")
    );
    assert_eq!(
        answer(b"ms bWs= 1 b k c\r\nz\r\n", |_| stored(47)),
        b("HD kbWs= b c47\r\n")
    );
    assert_eq!(
        answer(b"ms x 1 ME c k O1\r\nb\r\n", |_| Outcome::Stored(
            StoreOutcome::NotStored
        )),
        b("NS c0 kx O1\r\n")
    );
    assert_eq!(
        answer(b"ms x 1 C1 c q\r\nb\r\n", |_| Outcome::Stored(
            StoreOutcome::Exists
        )),
        b("EX c0\r\n")
    );
    assert_eq!(
        answer(b"ms x 1 C1 q\r\nb\r\n", |_| Outcome::Stored(
            StoreOutcome::NotFound
        )),
        b("NF\r\n")
    );
}

#[test]
fn md_as_memcached() {
    assert_eq!(
        command(b"md dk I T30 C4 q\r\n"),
        Command::Delete(Delete {
            key: b(b"dk"),
            compare_cas: Some(4),
            new_cas: None,
            invalidate: true,
            touch: Some(30),
            clear_value: false
        })
    );
    let d = |o| Outcome::Deleted(o);
    assert_eq!(
        answer(b"md nokey q\r\n", |_| d(DeleteOutcome::NotFound)),
        b("NF\r\n")
    );
    assert_eq!(
        answer(b"md nokey O5 k\r\n", |_| d(DeleteOutcome::NotFound)),
        b("NF O5 knokey\r\n")
    );
    assert_eq!(
        answer(b"md dk q\r\n", |_| d(DeleteOutcome::Deleted)),
        Bytes::new()
    );
    assert_eq!(
        answer(b"md dk\r\n", |_| d(DeleteOutcome::Deleted)),
        b("HD\r\n")
    );
    assert_eq!(
        answer(b"md dk C1 q\r\n", |_| d(DeleteOutcome::Exists)),
        b("EX\r\n")
    );
}

#[test]
fn ma_as_memcached() {
    assert_eq!(
        command(b"ma cnt N0 J10 v MD D3 T5 C2\r\n"),
        Command::Arith(Arith {
            key: b(b"cnt"),
            op: ArithOp::Decr,
            delta: 3,
            compare_cas: Some(2),
            new_cas: None,
            vivify: Some((10, 0)),
            touch: Some(5),
            order: Default::default(),
        })
    );
    // memcached applies T and N in line order while writing the reply; t shows the TTL
    // at its own place.
    match command(b"ma cnt t T5 N0\r\n") {
        Command::Arith(a) => assert_eq!(
            a.order,
            FlagOrder {
                vivify_after_touch: true,
                ttl_before_touch: true,
                ttl_before_vivify: true,
                recache_before_touch: false,
            }
        ),
        other => panic!("{other:?}"),
    }
    match command(b"ma cnt\r\n") {
        Command::Arith(a) => assert_eq!((a.op, a.delta, a.vivify), (ArithOp::Incr, 1, None)),
        other => panic!("{other:?}"),
    }
    let v = |value, cas, ttl| {
        Outcome::Arith(ArithOutcome::Value {
            value,
            cas,
            ttl,
            created: false,
        })
    };
    assert_eq!(
        answer(b"ma cnt N0 J10 v\r\n", |_| v(10, 34, None)),
        b("VA 2\r\n10\r\n")
    );
    assert_eq!(
        answer(b"ma cnt v t c\r\n", |_| v(11, 35, None)),
        b("VA 2 t-1 c35\r\n11\r\n")
    );
    assert_eq!(answer(b"ma cnt\r\n", |_| v(12, 36, None)), b("HD\r\n"));
    assert_eq!(
        answer(b"ma cnt q D5\r\n", |_| v(12, 36, None)),
        Bytes::new()
    );
    assert_eq!(answer(b"ma cnt v q\r\n", |_| v(12, 36, None)), Bytes::new());
    // Verified against memcached 1.6.18: quiet mode does not hide a creation, and a
    // too-long opaque fails only after the counter was changed.
    let created = Outcome::Arith(ArithOutcome::Value {
        value: 0,
        cas: 37,
        ttl: None,
        created: true,
    });
    assert_eq!(
        answer(b"ma cnt q N0 k\r\n", |_| created.clone()),
        b("HD kcnt\r\n")
    );
    let long = format!("ma cnt v O{}\r\n", "a".repeat(32));
    let r = req(long.as_bytes());
    assert!(matches!(r.command, Command::Arith(_)));
    assert_eq!(
        answer(long.as_bytes(), |_| v(13, 38, None)),
        b("CLIENT_ERROR opaque token too long\r\n")
    );
    let a = |o| Outcome::Arith(o);
    assert_eq!(
        answer(b"ma cnt q\r\n", |_| a(ArithOutcome::NotFound)),
        b("NF\r\n")
    );
    assert_eq!(
        answer(b"ma cnt C1 q\r\n", |_| a(ArithOutcome::Exists)),
        b("EX\r\n")
    );
    assert_eq!(
        answer(b"ma s q\r\n", |_| a(ArithOutcome::NonNumeric)),
        b("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
    );
}

#[test]
fn mn_and_me() {
    assert_eq!(command(b"mn foo\r\n"), Command::NoOp);
    assert_eq!(answer(b"mn\r\n", |_| Outcome::NoOp), b("MN\r\n"));
    assert_eq!(command(b"me bWs= b\r\n"), Command::MetaDebug(b(b"mk")));
    let mut it = item(b"x", b"a", 0, 46);
    it.ttl = Some(30);
    assert_eq!(
        answer(b"me x\r\n", |_| Outcome::Debug(Some(it.clone()))),
        b("ME x exp=-30 la=0 cas=46 fetch=no cls=1 size=61\r\n")
    );
    // The key's form is the item's (memcached 1.6.18), whatever form the request used.
    let mut it = item(b"mk", b"z", 0, 47);
    it.fetched = true;
    assert_eq!(
        answer(b"me bWs= b\r\n", |_| Outcome::Debug(Some(it.clone()))),
        b("ME mk exp=-1 la=0 cas=47 fetch=yes cls=1 size=62\r\n")
    );
    it.binary_key = true;
    assert_eq!(
        answer(b"me mk\r\n", |_| Outcome::Debug(Some(it.clone()))),
        b("ME bWs= exp=-1 la=0 cas=47 fetch=yes cls=1 size=62\r\n")
    );
    assert_eq!(
        answer(b"me nope\r\n", |_| Outcome::Debug(None)),
        b("EN\r\n")
    );
}

// ---------------------------------------------------------------- properties

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no space, NUL, newline", |b| !matches!(b, b' ' | 0 | b'\n')),
        1..=250,
    )
}

proptest! {
    #[test]
    fn well_formed_set_round_trips(
        key in key_strategy(),
        flags in any::<u32>(),
        exptime in any::<i32>(),
        data in prop::collection::vec(any::<u8>(), 0..300),
        noreply in any::<bool>(),
    ) {
        let mut input = b"set ".to_vec();
        input.extend_from_slice(&key);
        input.extend_from_slice(format!(" {flags} {exptime} {}", data.len()).as_bytes());
        if noreply { input.extend_from_slice(b" noreply"); }
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&data);
        input.extend_from_slice(b"\r\n");
        let r = req(&input);
        prop_assert_eq!(r.command, Command::Store(Store {
            mode: StoreMode::Set,
            key: Bytes::from(key),
            flags,
            exptime: i64::from(exptime),
            data: Bytes::from(data),
            compare_cas: None,
            new_cas: None,
            invalidate: false,
            vivify: None,
            binary_key: false,
        }));
        prop_assert_eq!(r.reply, ReplyTo::Text(TextReply { command: TextCommand::Store, noreply }));
    }

    #[test]
    fn well_formed_get_round_trips(keys in prop::collection::vec(key_strategy(), 1..30)) {
        let mut input = b"get".to_vec();
        for k in &keys {
            input.push(b' ');
            input.extend_from_slice(k);
        }
        input.extend_from_slice(b" \r\n");
        prop_assert_eq!(command(&input), Command::Get(Get {
            keys: keys.into_iter().map(Bytes::from).collect(),
            options: ReadOptions::default(),
        }));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
        let limits = Limits { item_size_max: 1024, max_line: 256, ..Limits::default() };
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..input.len() + 1 {
            let before = buf.len();
            match parse(&mut buf, &limits) {
                Parse::Incomplete => { prop_assert_eq!(buf.len(), before); break }
                Parse::Invalid { close: true, .. } => break,
                _ => prop_assert!(buf.len() < before),
            }
        }
    }

    #[test]
    fn split_input_gives_incomplete_then_same_request(
        cut in 0usize..1000,
        which in 0usize..6,
    ) {
        let inputs: [&[u8]; 6] = [
            b"set key 1 2 10 noreply\r\n0123456789\r\n",
            b"get a bb ccc\r\n",
            b"ms mk 4 T10 F3 c k O77\r\nabcd\r\n",
            b"mg mk v c f t s k q\r\n",
            b"cas k 0 0 3 99\r\nxyz\r\n",
            b"ma cnt N0 J5 D2 v\r\n",
        ];
        let input = inputs[which];
        let cut = cut % input.len();
        let limits = Limits::default();
        let mut buf = BytesMut::from(&input[..cut]);
        prop_assert_eq!(parse(&mut buf, &limits), Parse::Incomplete);
        prop_assert_eq!(buf.len(), cut);
        buf.extend_from_slice(&input[cut..]);
        let whole = req(input);
        prop_assert_eq!(parse(&mut buf, &limits), Parse::Request(whole));
        prop_assert!(buf.is_empty());
    }
}

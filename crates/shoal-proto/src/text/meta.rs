//! The meta commands (mg, ms, md, ma, mn, me): memcached 1.6.18's flag pre-parsing
//! (`_meta_flag_preparse`), its per-command checks in its order, and its error lines.

use base64::Engine;
use bytes::Bytes;
use shoal_command::{
    Arith, ArithOp, Command, Delete, FlagOrder, Get, ReadOptions, Store, StoreMode, MAX_KEY_LEN,
};

use super::line::Line;
use super::num::{strtol32, strtoul32, strtoull};
use super::{item_too_large, MetaCommand, MetaReply, ReturnFlag, Step};
use crate::{Limits, ReplyTo};

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
const BAD_FLAG: &str = "CLIENT_ERROR invalid or duplicate flag";
/// memcached's `MFLAG_MAX_OPT_LENGTH`: most tokens (terminator included) a meta line has.
const MAX_OPT_TOKENS: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`: longest `O` token, the `O` included.
const MAX_OPAQUE_LEN: usize = 32;

/// Decodes a base64 key as memcached does (an empty result is a failure).
pub(crate) fn decode_key(token: &[u8]) -> Option<Bytes> {
    match base64::engine::general_purpose::STANDARD.decode(token) {
        Ok(k) if !k.is_empty() => Some(Bytes::from(k)),
        _ => None,
    }
}

/// What the flags of a meta line asked for.
struct Flags {
    key: Bytes,
    base64: bool,
    vivify: Option<i32>,
    touch: Option<i32>,
    recache: Option<i32>,
    value: bool,
    no_update: bool,
    quiet: bool,
    invalidate: bool,
    client_flags: u32,
    compare_cas: Option<u64>,
    new_cas: Option<u64>,
    mode: Option<u8>,
    delta: u64,
    initial: Option<u64>,
    ret: Vec<ReturnFlag>,
}

/// `_meta_flag_preparse`: reads the flags from token `start` on. A duplicate or unknown
/// flag stops at once; a bad value is noted and parsing goes on (the last message wins).
fn preparse(l: &Line, start: usize) -> Result<Flags, &'static str> {
    let mut f = Flags {
        key: l.bytes(1),
        base64: false,
        vivify: None,
        touch: None,
        recache: None,
        value: false,
        no_update: false,
        quiet: false,
        invalidate: false,
        client_flags: 0,
        compare_cas: None,
        new_cas: None,
        mode: None,
        delta: 1,
        initial: None,
        ret: Vec::new(),
    };
    let mut seen = [false; 127];
    let mut error: Option<&'static str> = None;
    let mut errstr = BAD_FORMAT;
    let mut fail = |msg: Option<&'static str>| {
        if let Some(m) = msg {
            errstr = m;
        }
        error = Some(errstr);
    };
    for i in start..l.len() {
        let t = l.tok(i);
        let o = t[0];
        if o >= 127 || seen[o as usize] {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen[o as usize] = true;
        let arg = &t[1..];
        match o {
            b'b' => match decode_key(l.tok(1)) {
                Some(k) => {
                    f.key = k;
                    f.base64 = true;
                }
                None => fail(Some("CLIENT_ERROR error decoding key")),
            },
            b'N' | b'T' | b'R' => match strtol32(arg) {
                Some(v) => {
                    let slot = match o {
                        b'N' => &mut f.vivify,
                        b'T' => &mut f.touch,
                        _ => &mut f.recache,
                    };
                    *slot = Some(v);
                }
                None => fail(Some(BAD_TOKEN)),
            },
            b'O' => f.ret.push(ReturnFlag::Opaque(l.bytes(i))),
            b'k' => f.ret.push(ReturnFlag::Key),
            b's' => f.ret.push(ReturnFlag::Size),
            b't' => f.ret.push(ReturnFlag::Ttl),
            b'c' => f.ret.push(ReturnFlag::Cas),
            b'f' => f.ret.push(ReturnFlag::ClientFlags),
            b'l' => f.ret.push(ReturnFlag::LastAccess),
            b'h' => f.ret.push(ReturnFlag::Hit),
            b'P' | b'L' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.quiet = true,
            b'I' => f.invalidate = true,
            b'F' => match strtoul32(arg) {
                Some(v) => f.client_flags = v,
                None => fail(None),
            },
            b'C' | b'E' => match strtoull(arg) {
                Some(v) if o == b'C' => f.compare_cas = Some(v),
                Some(v) => f.new_cas = Some(v),
                None => fail(Some(BAD_TOKEN)),
            },
            b'M' => {
                if t.len() != 2 {
                    fail(Some("CLIENT_ERROR incorrect length for M token"));
                } else {
                    f.mode = Some(t[1]);
                }
            }
            b'J' => match strtoull(arg) {
                Some(v) => f.initial = Some(v),
                None => fail(Some("CLIENT_ERROR invalid numeric initial value")),
            },
            b'D' => match strtoull(arg) {
                Some(v) => f.delta = v,
                None => fail(Some("CLIENT_ERROR invalid numeric delta value")),
            },
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

/// Whether an `O` token is longer than memcached accepts.
fn opaque_too_long(f: &Flags) -> bool {
    f.ret
        .iter()
        .any(|r| matches!(r, ReturnFlag::Opaque(o) if o.len() > MAX_OPAQUE_LEN))
}

fn reply(command: MetaCommand, l: &Line, f: Flags) -> ReplyTo {
    ReplyTo::Meta(MetaReply {
        command,
        key: l.bytes(1),
        base64_key: f.base64,
        value: f.value,
        quiet: f.quiet,
        opaque_too_long: opaque_too_long(&f),
        flags: f.ret,
    })
}

/// Where the flag starting with `letter` stands on the line, if given.
fn flag_at(l: &Line, letter: u8) -> Option<usize> {
    (2..l.len()).find(|&i| l.tok(i)[0] == letter)
}

/// Where `t`, `T`, `N` and `R` stand on the line.
fn flag_order(l: &Line) -> FlagOrder {
    let (ttl, touch, vivify) = (flag_at(l, b't'), flag_at(l, b'T'), flag_at(l, b'N'));
    let before = |a: Option<usize>, b: Option<usize>| matches!((a, b), (Some(a), Some(b)) if a < b);
    FlagOrder {
        vivify_after_touch: before(touch, vivify),
        ttl_before_touch: before(ttl, touch),
        ttl_before_vivify: before(ttl, vivify),
        recache_before_touch: before(flag_at(l, b'R'), touch),
    }
}

/// mg and ma apply `T`, `N` (and mg `R`) while writing the reply, in line order, and a
/// too-long opaque stops that at its place: whether the flag `letter` comes after it.
fn cut_by_opaque(l: &Line, letter: u8) -> bool {
    let long = (2..l.len()).find(|&i| l.tok(i)[0] == b'O' && l.tok(i).len() > MAX_OPAQUE_LEN);
    matches!((long, flag_at(l, letter)), (Some(o), Some(i)) if i > o)
}

/// Parses a meta command line (the command token is `m` plus one byte).
pub(crate) fn parse(l: &Line, data: Option<Bytes>, limits: &Limits) -> Step {
    match l.tok(0)[1] {
        b'g' => mg(l),
        b's' => ms(l, data, limits),
        b'd' => md(l),
        b'a' => ma(l),
        b'n' => Step::request(
            Command::NoOp,
            ReplyTo::Meta(MetaReply {
                command: MetaCommand::NoOp,
                key: Bytes::new(),
                base64_key: false,
                value: false,
                quiet: false,
                flags: Vec::new(),
                opaque_too_long: false,
            }),
        ),
        b'e' => me(l),
        _ => Step::error("ERROR", false),
    }
}

/// mg KEY FLAGS*.
fn mg(l: &Line) -> Step {
    if l.nt() < 3 {
        return Step::error("ERROR", false);
    }
    if l.tok(1).len() > MAX_KEY_LEN {
        return Step::error(BAD_FORMAT, false);
    }
    if l.nt() > MAX_OPT_TOKENS {
        return Step::error("CLIENT_ERROR options flags are too long", false);
    }
    let f = match preparse(l, 2) {
        Ok(f) => f,
        Err(e) => return Step::error(e, false),
    };
    let mut options = ReadOptions {
        touch: f.touch.map(i64::from),
        no_update: f.no_update,
        vivify: f.vivify.map(i64::from),
        recache_below: f.recache.map(i64::from),
        new_cas: f.new_cas,
        order: flag_order(l),
        hand_out_wins: true,
    };
    // A too-long opaque is only noticed while the reply is written (see `reply`): the
    // read is done, but the flags after the opaque are not applied, no win is marked,
    // and a locked read (N, T, R, l, h) skips its delayed LRU bump.
    if opaque_too_long(&f) {
        if cut_by_opaque(l, b'T') {
            options.touch = None;
        }
        if cut_by_opaque(l, b'R') {
            options.recache_below = None;
        }
        if cut_by_opaque(l, b'N') {
            options.vivify = options.vivify.map(|_| 0);
            options.order.vivify_after_touch = false;
        }
        options.hand_out_wins = false;
        options.no_update |= b"NTRlh".iter().any(|&c| flag_at(l, c).is_some());
    }
    let keys = vec![f.key.clone()];
    Step::request(
        Command::Get(Get { keys, options }),
        reply(MetaCommand::Get, l, f),
    )
}

/// ms KEY DATALEN FLAGS*, then the data block.
fn ms(l: &Line, data: Option<Bytes>, limits: &Limits) -> Step {
    if l.nt() < 3 {
        return Step::error("ERROR", false);
    }
    if l.tok(1).len() > MAX_KEY_LEN || l.nt() == 3 {
        return Step::error(BAD_FORMAT, false);
    }
    if l.nt() > MAX_OPT_TOKENS {
        return Step::error("CLIENT_ERROR options flags too long", false);
    }
    let vlen = match strtol32(l.tok(2)) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => v as usize,
        _ => return Step::error(BAD_FORMAT, false),
    };
    let swallow = vlen + 2;
    let f = match preparse(l, 3) {
        Ok(f) => f,
        Err(e) => return Step::swallow(e, false, swallow),
    };
    let mode = match f.mode {
        None | Some(b'S') => StoreMode::Set,
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        Some(_) => {
            return Step::swallow("CLIENT_ERROR invalid mode for ms M token", false, swallow)
        }
    };
    if opaque_too_long(&f) {
        return Step::swallow("CLIENT_ERROR opaque token too long", false, swallow);
    }
    if item_too_large(f.key.len(), f.client_flags, vlen, limits) {
        return Step::too_large(false, swallow, Some(f.key.clone()));
    }
    let Some(block) = data else {
        return Step::NeedData(swallow);
    };
    if !block.ends_with(b"\r\n") {
        return Step::error("CLIENT_ERROR bad data chunk", false);
    }
    // Add ignores a CAS; set and replace with one become a CAS store, the only mode in
    // which I (invalidate) applies.
    let compare_cas = if mode == StoreMode::Add {
        None
    } else {
        f.compare_cas
    };
    let cas_mode = compare_cas.is_some() && matches!(mode, StoreMode::Set | StoreMode::Replace);
    Step::request(
        Command::Store(Store {
            mode,
            key: f.key.clone(),
            flags: f.client_flags,
            exptime: f.touch.map_or(0, i64::from),
            data: block.slice(..vlen),
            compare_cas,
            new_cas: f.new_cas,
            invalidate: f.invalidate && cas_mode,
            vivify: None,
            binary_key: f.base64,
        }),
        reply(MetaCommand::Set, l, f),
    )
}

/// The checks md and ma share before their flags are parsed.
fn md_ma_flags(l: &Line) -> Result<Flags, &'static str> {
    if l.nt() < 3 {
        return Err("ERROR");
    }
    if l.tok(1).len() > MAX_KEY_LEN {
        return Err(BAD_FORMAT);
    }
    if l.nt() > MAX_OPT_TOKENS {
        return Err("CLIENT_ERROR options flags too long");
    }
    preparse(l, 2).map_err(|_| BAD_FLAG)
}

/// md KEY FLAGS*.
fn md(l: &Line) -> Step {
    let f = match md_ma_flags(l) {
        Ok(f) => f,
        Err(e) => return Step::error(e, false),
    };
    if opaque_too_long(&f) {
        return Step::error("CLIENT_ERROR opaque token too long", false);
    }
    Step::request(
        Command::Delete(Delete {
            key: f.key.clone(),
            compare_cas: f.compare_cas,
            new_cas: f.new_cas,
            invalidate: f.invalidate,
            touch: if f.invalidate {
                f.touch.map(i64::from)
            } else {
                None
            },
            clear_value: false,
        }),
        reply(MetaCommand::Delete, l, f),
    )
}

/// ma KEY FLAGS*.
fn ma(l: &Line) -> Step {
    let f = match md_ma_flags(l) {
        Ok(f) => f,
        Err(e) => return Step::error(e, false),
    };
    let op = match f.mode {
        None | Some(b'I') | Some(b'+') => ArithOp::Incr,
        Some(b'D') | Some(b'-') => ArithOp::Decr,
        Some(_) => return Step::error("CLIENT_ERROR invalid mode for ma M token", false),
    };
    let mut order = flag_order(l);
    let mut vivify = f.vivify.map(|exp| (f.initial.unwrap_or(0), i64::from(exp)));
    let mut touch = f.touch.map(i64::from);
    // A too-long opaque is only noticed once the counter has changed (see `reply`), and
    // stops the T and N that come after it.
    if opaque_too_long(&f) {
        if cut_by_opaque(l, b'T') {
            touch = None;
        }
        if cut_by_opaque(l, b'N') {
            vivify = vivify.map(|(initial, _)| (initial, 0));
            order.vivify_after_touch = false;
        }
    }
    Step::request(
        Command::Arith(Arith {
            key: f.key.clone(),
            op,
            delta: f.delta,
            compare_cas: f.compare_cas,
            new_cas: f.new_cas,
            vivify,
            touch,
            order,
        }),
        reply(MetaCommand::Arith, l, f),
    )
}

/// me KEY [b].
fn me(l: &Line) -> Step {
    if l.nt() < 3 || l.tok(1).len() > MAX_KEY_LEN {
        return Step::error(BAD_FORMAT, false);
    }
    let base64 = l.nt() >= 4 && l.tok(2) == b"b";
    let key = if base64 {
        match decode_key(l.tok(1)) {
            Some(k) => k,
            None => return Step::error(BAD_FORMAT, false),
        }
    } else {
        l.bytes(1)
    };
    Step::request(
        Command::MetaDebug(key),
        ReplyTo::Meta(MetaReply {
            command: MetaCommand::Debug,
            key: l.bytes(1),
            base64_key: base64,
            value: false,
            quiet: false,
            flags: Vec::new(),
            opaque_too_long: false,
        }),
    )
}

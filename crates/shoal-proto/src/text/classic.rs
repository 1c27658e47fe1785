//! The classic text commands (get, set, incr, delete, stats, ...): turning one tokenized
//! line (and, for storage commands, its data block) into a [`Command`], with memcached
//! 1.6.18's checks in memcached's order and its exact error lines.

use bytes::Bytes;
use shoal_command::{
    Arith, ArithOp, Command, Delete, FlushAll, Get, ReadOptions, ShutdownMode, StatsGroup, Store,
    StoreMode, Touch, MAX_KEY_LEN,
};

use super::line::Line;
use super::num::{strtol32, strtoul32, strtoull};
use super::{item_too_large, Step, TextCommand, TextReply};
use crate::{Limits, ReplyTo};

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";

fn reply(command: TextCommand, noreply: bool) -> ReplyTo {
    ReplyTo::Text(TextReply { command, noreply })
}

/// Parses a classic command line (the command token is at least two bytes long).
pub(crate) fn parse(l: &Line, data: Option<Bytes>, limits: &Limits) -> Step {
    let nt = l.nt();
    let cmd = l.tok(0);
    let store = |mode, cas| store(l, data.clone(), limits, mode, cas);
    match cmd {
        b"get" | b"gets" | b"gat" | b"gats" if nt >= 3 => get(l, cmd),
        b"get" | b"gets" | b"gat" | b"gats" => Step::error("ERROR", false),
        b"bget" if nt >= 3 => get(l, b"get"),
        b"set" | b"add" | b"append" | b"replace" | b"prepend" if nt == 6 || nt == 7 => {
            let mode = match cmd {
                b"set" => StoreMode::Set,
                b"add" => StoreMode::Add,
                b"append" => StoreMode::Append,
                b"replace" => StoreMode::Replace,
                _ => StoreMode::Prepend,
            };
            store(mode, false)
        }
        b"cas" if nt == 7 || nt == 8 => store(StoreMode::Set, true),
        b"incr" | b"decr" if nt == 4 || nt == 5 => arith(l, cmd == b"incr"),
        b"delete" if (3..=5).contains(&nt) => delete(l),
        b"touch" if nt == 4 || nt == 5 => touch(l),
        b"stats" => stats(l),
        b"shutdown" => {
            let mode = match (nt, nt == 3 && l.tok(1) == b"graceful") {
                (2, _) => ShutdownMode::Now,
                (_, true) => ShutdownMode::Graceful,
                _ => ShutdownMode::Invalid,
            };
            let valid_mode = mode != ShutdownMode::Invalid;
            Step::request(
                Command::Shutdown(mode),
                reply(TextCommand::Shutdown { valid_mode }, false),
            )
        }
        b"flush_all" if (2..=4).contains(&nt) => flush_all(l),
        b"version" => Step::request(Command::Version, reply(TextCommand::Version, false)),
        b"quit" => Step::request(Command::Quit, reply(TextCommand::Quit, false)),
        b"verbosity" if nt == 3 || nt == 4 => {
            let noreply = l.noreply();
            match strtoul32(l.tok(1)) {
                Some(level) => Step::request(
                    Command::Verbosity(level),
                    reply(TextCommand::Verbosity, noreply),
                ),
                None => Step::error(BAD_FORMAT, noreply),
            }
        }
        _ if l.last().starts_with(b"HTTP/") && !known_with_bad_count(cmd) => Step::close(),
        _ => Step::error("ERROR", false),
    }
}

/// Commands memcached recognizes before its HTTP check (a wrong token count answers
/// `ERROR` for them, never a close).
fn known_with_bad_count(cmd: &[u8]) -> bool {
    matches!(cmd[0], b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't')
        || matches!(
            cmd,
            b"replace"
                | b"prepend"
                | b"bget"
                | b"flush_all"
                | b"verbosity"
                | b"lru_crawler"
                | b"watch"
                | b"lru"
        )
}

/// get, gets, gat, gats. A key over 250 bytes fails the whole command, but only once the
/// keys before it have been read (memcached reads key by key).
fn get(l: &Line, cmd: &[u8]) -> Step {
    let (command, touch) = match cmd {
        b"get" => (TextCommand::Get, false),
        b"gets" => (TextCommand::Gets, false),
        b"gat" => (TextCommand::Gat, true),
        _ => (TextCommand::Gats, true),
    };
    let mut options = ReadOptions::default();
    let mut first = 1;
    if touch {
        match strtol32(l.tok(1)) {
            Some(t) => options.touch = Some(i64::from(t)),
            None => return Step::error(BAD_EXPTIME, false),
        }
        first = 2;
    }
    let mut keys = Vec::with_capacity(l.len().saturating_sub(first));
    let mut command = command;
    for i in first..l.len() {
        if l.tok(i).len() > MAX_KEY_LEN {
            if keys.is_empty() {
                return Step::error(BAD_FORMAT, false);
            }
            command = TextCommand::GetKeyTooLong;
            break;
        }
        keys.push(l.bytes(i));
    }
    Step::request(Command::Get(Get { keys, options }), reply(command, false))
}

/// set, add, replace, append, prepend, cas (`process_update_command`).
fn store(l: &Line, data: Option<Bytes>, limits: &Limits, mode: StoreMode, cas: bool) -> Step {
    let noreply = l.noreply();
    if l.tok(1).len() > MAX_KEY_LEN {
        return Step::error(BAD_FORMAT, noreply);
    }
    let (Some(flags), Some(exptime), Some(vlen)) =
        (strtoul32(l.tok(2)), strtol32(l.tok(3)), strtol32(l.tok(4)))
    else {
        return Step::error(BAD_FORMAT, noreply);
    };
    let compare_cas = if cas {
        match strtoull(l.tok(5)) {
            Some(c) => Some(c),
            None => return Step::error(BAD_FORMAT, noreply),
        }
    } else {
        None
    };
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return Step::error(BAD_FORMAT, noreply);
    }
    let vlen = vlen as usize;
    if item_too_large(l.tok(1).len(), flags, vlen, limits) {
        let unlink = (mode == StoreMode::Set && compare_cas.is_none()).then(|| l.bytes(1));
        return Step::too_large(noreply, vlen + 2, unlink);
    }
    let Some(block) = data else {
        return Step::NeedData(vlen + 2);
    };
    if !block.ends_with(b"\r\n") {
        return Step::error("CLIENT_ERROR bad data chunk", noreply);
    }
    Step::request(
        Command::Store(Store {
            mode,
            key: l.bytes(1),
            flags,
            exptime: i64::from(exptime),
            data: block.slice(..vlen),
            compare_cas,
            new_cas: None,
            invalidate: false,
            vivify: None,
            binary_key: false,
        }),
        reply(TextCommand::Store, noreply),
    )
}

/// incr, decr.
fn arith(l: &Line, incr: bool) -> Step {
    let noreply = l.noreply();
    if l.tok(1).len() > MAX_KEY_LEN {
        return Step::error(BAD_FORMAT, noreply);
    }
    let Some(delta) = strtoull(l.tok(2)) else {
        return Step::error("CLIENT_ERROR invalid numeric delta argument", noreply);
    };
    Step::request(
        Command::Arith(Arith {
            key: l.bytes(1),
            op: if incr { ArithOp::Incr } else { ArithOp::Decr },
            delta,
            compare_cas: None,
            new_cas: None,
            vivify: None,
            touch: None,
            order: Default::default(),
        }),
        reply(TextCommand::Arith, noreply),
    )
}

/// delete KEY [0] [noreply].
fn delete(l: &Line) -> Step {
    let nt = l.nt();
    let noreply = nt > 3 && l.noreply();
    if nt > 3 {
        let zero = l.tok(2) == b"0";
        let valid = (nt == 4 && (zero || noreply)) || (nt == 5 && zero && noreply);
        if !valid {
            return Step::error(
                "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                noreply,
            );
        }
    }
    if l.tok(1).len() > MAX_KEY_LEN {
        return Step::error(BAD_FORMAT, noreply);
    }
    Step::request(
        Command::Delete(Delete {
            key: l.bytes(1),
            compare_cas: None,
            new_cas: None,
            invalidate: false,
            touch: None,
            clear_value: false,
        }),
        reply(TextCommand::Delete, noreply),
    )
}

/// touch KEY EXPTIME [noreply].
fn touch(l: &Line) -> Step {
    let noreply = l.noreply();
    if l.tok(1).len() > MAX_KEY_LEN {
        return Step::error(BAD_FORMAT, noreply);
    }
    let Some(exptime) = strtol32(l.tok(2)) else {
        return Step::error(BAD_EXPTIME, noreply);
    };
    Step::request(
        Command::Touch(Touch {
            key: l.bytes(1),
            exptime: i64::from(exptime),
        }),
        reply(TextCommand::Touch, noreply),
    )
}

/// flush_all [delay] [noreply]; a delay of zero or less flushes now.
fn flush_all(l: &Line) -> Step {
    let noreply = l.noreply();
    let mut delay = 0;
    if l.nt() != if noreply { 3 } else { 2 } {
        match strtol32(l.tok(1)) {
            Some(d) => delay = i64::from(d.max(0)),
            None => return Step::error(BAD_EXPTIME, noreply),
        }
    }
    Step::request(
        Command::FlushAll(FlushAll { delay }),
        reply(TextCommand::FlushAll, noreply),
    )
}

/// stats [group ...].
fn stats(l: &Line) -> Step {
    let group = if l.nt() == 2 {
        StatsGroup::General
    } else {
        match l.tok(1) {
            b"reset" => StatsGroup::Reset,
            b"settings" => StatsGroup::Settings,
            b"items" => StatsGroup::Items,
            b"slabs" => StatsGroup::Slabs,
            b"sizes" => StatsGroup::Sizes,
            b"conns" => StatsGroup::Conns,
            b"cluster" => StatsGroup::Cluster,
            b"detail" if l.nt() < 4 || !matches!(l.tok(2), b"on" | b"off" | b"dump") => {
                return Step::error("CLIENT_ERROR usage: stats detail on|off|dump", false);
            }
            b"detail" | b"cachedump" => StatsGroup::Other(l.rest(1)),
            _ => StatsGroup::Other(l.bytes(1)),
        }
    };
    Step::request(Command::Stats(group), reply(TextCommand::Stats, false))
}

//! memcached's text protocol: the classic commands and the meta commands (mg, ms, md, ma,
//! mn, me), which share its line framing.
//!
//! Behaviour follows memcached 1.6.18's `proto_text.c` byte for byte (checked against the
//! real server), including its quirks: token-count errors answer `ERROR`, a trailing
//! `noreply` silences errors too, flags wider than 32 bits are truncated, and a data block
//! not ending in `\r\n` costs exactly the declared length plus two bytes. One addition:
//! the meta `E` flag (explicit CAS, from later memcached versions) is accepted.

mod classic;
mod encode;
mod line;
mod meta;
mod meta_encode;
mod num;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};

use crate::{Limits, Parse, Request};

pub use encode::{encode_get_part, encode_text};
pub use meta_encode::encode_meta;

/// Which classic command a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextCommand {
    /// get / bget.
    Get,
    /// gets: values carry their CAS.
    Gets,
    /// gat.
    Gat,
    /// gats: values carry their CAS.
    Gats,
    /// get, gets, gat or gats with a key over 250 bytes: as memcached, the keys before it
    /// are still read (and touched, for gat/gats), then every value is dropped and the
    /// only reply is `CLIENT_ERROR bad command line format`.
    GetKeyTooLong,
    /// set, add, replace, append, prepend, cas.
    Store,
    /// incr, decr.
    Arith,
    /// delete.
    Delete,
    /// touch.
    Touch,
    /// flush_all.
    FlushAll,
    /// verbosity.
    Verbosity,
    /// stats.
    Stats,
    /// version.
    Version,
    /// quit.
    Quit,
    /// shutdown; `valid_mode` is false for arguments other than none or `graceful`
    /// (memcached answers "CLIENT_ERROR invalid shutdown mode" when shutdown is enabled).
    Shutdown {
        /// Whether the mode argument was acceptable.
        valid_mode: bool,
    },
}

/// How to reply to a classic text command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReply {
    /// The command answered.
    pub command: TextCommand,
    /// `noreply` was given: write nothing, whatever the outcome.
    pub noreply: bool,
}

/// Which meta command a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCommand {
    /// mg.
    Get,
    /// ms.
    Set,
    /// md.
    Delete,
    /// ma.
    Arith,
    /// mn.
    NoOp,
    /// me.
    Debug,
}

/// A flag that asks for something in the reply line, kept in request order because
/// memcached writes them in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnFlag {
    /// `O`: the opaque token, echoed as sent (the `O` included).
    Opaque(Bytes),
    /// `k`: the key.
    Key,
    /// `c`: the CAS value.
    Cas,
    /// `f`: the client flags.
    ClientFlags,
    /// `s`: the value size.
    Size,
    /// `t`: the remaining TTL (`-1` for none).
    Ttl,
    /// `h`: whether the item had been fetched before.
    Hit,
    /// `l`: seconds since the last access.
    LastAccess,
}

/// How to reply to a meta command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaReply {
    /// The command answered.
    pub command: MetaCommand,
    /// The key token as sent (base64 text when `base64_key`).
    pub key: Bytes,
    /// `b`: the key is base64; `k` echoes it followed by ` b`.
    pub base64_key: bool,
    /// `v`: return the value (mg, ma).
    pub value: bool,
    /// `q`: quiet mode: leave out the nominal reply (EN for mg, HD for ms/md, HD/VA for ma).
    pub quiet: bool,
    /// The return flags, in request order.
    pub flags: Vec<ReturnFlag>,
    /// An `O` token is longer than 32 bytes. mg and ma still run (memcached checks it
    /// while writing the reply), then answer `CLIENT_ERROR opaque token too long`.
    pub opaque_too_long: bool,
}

/// The result of parsing one line: done, or a storage command waiting for its data block.
pub(crate) enum Step {
    /// Parsing is over: a request or an error.
    Done(Parse),
    /// The line is a valid storage command whose data block (this many bytes, `\r\n`
    /// included) has not arrived yet.
    NeedData(usize),
}

impl Step {
    /// A request.
    pub(crate) fn request(command: shoal_command::Command, reply: crate::ReplyTo) -> Step {
        Step::Done(Parse::Request(Request { command, reply }))
    }

    /// An error line (nothing when `silent`), then carry on with the connection.
    pub(crate) fn error(msg: &str, silent: bool) -> Step {
        Step::swallow(msg, silent, 0)
    }

    /// An error line (nothing when `silent`), then discard `swallow` bytes of input.
    pub(crate) fn swallow(msg: &str, silent: bool, swallow: usize) -> Step {
        let reply = if silent {
            Bytes::new()
        } else {
            let mut r = Vec::with_capacity(msg.len() + 2);
            r.extend_from_slice(msg.as_bytes());
            r.extend_from_slice(b"\r\n");
            Bytes::from(r)
        };
        Step::Done(Parse::Invalid {
            reply,
            swallow: swallow as u64,
            close: false,
            command: None,
        })
    }

    /// A storage command refused as too large: its data is swallowed and, as memcached
    /// does, the key's old value is removed when `unlink` (so a failed set leaves no stale
    /// value behind).
    pub(crate) fn too_large(silent: bool, swallow: usize, unlink: Option<Bytes>) -> Step {
        let mut step = Step::swallow("SERVER_ERROR object too large for cache", silent, swallow);
        if let Step::Done(Parse::Invalid { command, .. }) = &mut step {
            *command =
                unlink.map(|key| shoal_command::Command::Delete(shoal_command::Delete::of(key)));
        }
        step
    }

    /// Close the connection without a word.
    pub(crate) fn close() -> Step {
        Step::Done(Parse::Invalid {
            reply: Bytes::new(),
            swallow: 0,
            close: true,
            command: None,
        })
    }
}

/// Whether memcached 1.6.18 (with `-I item_size_max`) refuses an item as too large (see
/// [`shoal_command::item_size`]).
pub fn item_too_large(key_len: usize, flags: u32, value_len: usize, limits: &Limits) -> bool {
    shoal_command::item_size(key_len, flags, value_len) > limits.item_size_max
}

/// Parses one text or meta request from the front of `buf`.
///
/// Keys and values of the request are slices of `buf`'s memory. Nothing is consumed when
/// the result is [`Parse::Incomplete`]; a data block is only waited for once its command
/// line is known to be valid, and never when it is larger than the item size limit.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Parse {
    let (len, consumed) = match line::frame(buf, limits.max_line) {
        line::Frame::Incomplete => return Parse::Incomplete,
        line::Frame::Close => {
            buf.clear();
            return Parse::Invalid {
                reply: Bytes::new(),
                swallow: 0,
                close: true,
                command: None,
            };
        }
        line::Frame::Line { len, consumed } => (len, consumed),
    };
    if may_carry_data(&buf[..len]) {
        // Dry run on a copy of the line: is it a storage command waiting for data?
        let dry = line::Line::new(Bytes::copy_from_slice(&buf[..len]));
        if let Step::NeedData(n) = parse_line(&dry, None, limits) {
            if buf.len() - consumed < n {
                return Parse::Incomplete;
            }
            let l = line::Line::new(buf.split_to(consumed).freeze().slice(..len));
            let data = buf.split_to(n).freeze();
            return finish(parse_line(&l, Some(data), limits));
        }
    }
    let l = line::Line::new(buf.split_to(consumed).freeze().slice(..len));
    finish(parse_line(&l, None, limits))
}

/// A step that cannot ask for data any more.
fn finish(step: Step) -> Parse {
    match step {
        Step::Done(p) => p,
        // Only reachable if the dry run and the real parse disagreed, which they cannot.
        Step::NeedData(_) => Parse::Invalid {
            reply: Bytes::from_static(b"SERVER_ERROR internal parser error\r\n"),
            swallow: 0,
            close: true,
            command: None,
        },
    }
}

/// Whether the line starts with a command that is followed by a data block.
fn may_carry_data(line: &[u8]) -> bool {
    let start = line.iter().take_while(|&&b| b == b' ').count();
    let rest = &line[start..];
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    matches!(
        &rest[..end],
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" | b"ms"
    )
}

/// memcached's `process_command_ascii`: dispatch on the command token.
fn parse_line(l: &line::Line, data: Option<Bytes>, limits: &Limits) -> Step {
    let nt = l.nt();
    let cmd = l.tok(0);
    if nt < 2 || cmd.len() < 2 {
        return Step::error("ERROR", false);
    }
    if cmd[0] == b'm' && cmd.len() == 2 {
        return meta::parse(l, data, limits);
    }
    classic::parse(l, data, limits)
}

//! Parsing one binary request into a [`Request`], with memcached 1.6.18's validation
//! order and its answers to malformed packets.

use bytes::{Bytes, BytesMut};
use shoal_command::item_size;
use shoal_command::{
    Arith, ArithOp, Command, Delete, Exptime, FlushAll, Get, ReadOptions, StatsGroup, Store,
    StoreMode, MAX_KEY_LEN,
};

use super::encode::error_packet;
use super::header::{Header, HEADER_LEN};
use super::opcode::{Opcode, Status};
use super::{BinaryReply, REQUEST_MAGIC};
use crate::{Limits, Parse, ReplyTo, Request};

/// The incr/decr expiration that means "do not create a missing counter".
const NO_VIVIFY: u32 = 0xffff_ffff;

/// Parses one binary request from the front of `buf`; see [`crate::binary::parse`].
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Parse {
    let Some(h) = Header::decode(buf) else {
        return Parse::Incomplete;
    };
    if h.magic != REQUEST_MAGIC {
        // memcached closes the connection without a word.
        buf.clear();
        return Parse::Invalid {
            reply: Bytes::new(),
            swallow: 0,
            close: true,
            command: None,
        };
    }
    let extras_len = usize::from(h.extras_len);
    let key_len = usize::from(h.key_len);
    let body_len = h.body_len as usize;
    // memcached waits for the header, extras and key (at most 64 KiB + 279 bytes) before
    // it looks at anything else.
    let head_len = HEADER_LEN + extras_len + key_len;
    if buf.len() < head_len {
        return Parse::Incomplete;
    }
    if key_len + extras_len > body_len {
        return refuse(buf, head_len, &h, Status::UnknownCommand, 0, true);
    }
    if key_len > MAX_KEY_LEN {
        return refuse(buf, head_len, &h, Status::InvalidArguments, 0, true);
    }
    let Some((op, quiet)) = Opcode::decode(h.opcode) else {
        // memcached swallows a whole body length after the extras and key it has already
        // consumed (so it over-reads by extras + key); we do the same, to be
        // indistinguishable.
        return refuse(
            buf,
            head_len,
            &h,
            Status::UnknownCommand,
            body_len as u64,
            false,
        );
    };
    if !valid_lengths(op, extras_len, key_len, body_len) {
        return refuse(buf, head_len, &h, Status::InvalidArguments, 0, true);
    }
    let value_len = body_len - key_len - extras_len;
    match op {
        Opcode::SaslListMechs => {
            return refuse(buf, head_len, &h, Status::UnknownCommand, 0, false);
        }
        Opcode::SaslAuth => {
            let rest = (body_len - key_len) as u64;
            return refuse(buf, head_len, &h, Status::UnknownCommand, rest, false);
        }
        _ => {}
    }
    let has_value = matches!(
        op,
        Opcode::Set | Opcode::Add | Opcode::Replace | Opcode::Append | Opcode::Prepend
    );
    let packet_len = if has_value {
        let flags = if extras_len >= 4 {
            be_u32(&buf[HEADER_LEN..])
        } else {
            0
        };
        if item_size(key_len, flags, value_len) > limits.item_size_max {
            let key = Bytes::copy_from_slice(&buf[HEADER_LEN + extras_len..head_len]);
            let mut refused = refuse(buf, head_len, &h, Status::TooLarge, value_len as u64, false);
            if let (Opcode::Set, Parse::Invalid { command, .. }) = (op, &mut refused) {
                // As memcached: a failed SET must not leave the old value behind.
                *command = Some(Command::Delete(Delete::of(key)));
            }
            return refused;
        }
        head_len + value_len
    } else {
        // Like memcached, only the extras and key are consumed: a STAT, TOUCH or GAT whose
        // body is longer leaves the rest to be read as the next request.
        head_len
    };
    if buf.len() < packet_len {
        return Parse::Incomplete;
    }
    let packet = buf.split_to(packet_len).freeze();
    let extras = &packet[HEADER_LEN..HEADER_LEN + extras_len];
    let key = packet.slice(HEADER_LEN + extras_len..head_len);
    let value = packet.slice(head_len..);
    let command = command(op, &h, extras, key.clone(), value);
    Parse::Request(Request {
        command,
        reply: ReplyTo::Binary(BinaryReply {
            opcode: h.opcode,
            op,
            quiet,
            opaque: h.opaque,
            key,
        }),
    })
}

/// Whether the extras, key and body lengths are what memcached accepts for `op`.
fn valid_lengths(op: Opcode, extras: usize, key: usize, body: usize) -> bool {
    match op {
        Opcode::Version | Opcode::NoOp | Opcode::Quit | Opcode::SaslListMechs => {
            extras == 0 && key == 0 && body == 0
        }
        Opcode::Flush => key == 0 && body == extras && (extras == 0 || extras == 4),
        Opcode::Set | Opcode::Add | Opcode::Replace => extras == 8 && key != 0,
        Opcode::Get | Opcode::GetK | Opcode::Delete => extras == 0 && key != 0 && body == key,
        Opcode::Increment | Opcode::Decrement => extras == 20 && key != 0 && body == key + 20,
        Opcode::Append | Opcode::Prepend | Opcode::SaslAuth => extras == 0 && key != 0,
        Opcode::Stat => extras == 0,
        Opcode::Touch | Opcode::Gat | Opcode::GatK => extras == 4 && key != 0,
    }
}

/// Drops the first `consumed` bytes of `buf` and answers `status` with memcached's text.
fn refuse(
    buf: &mut BytesMut,
    consumed: usize,
    h: &Header,
    status: Status,
    swallow: u64,
    close: bool,
) -> Parse {
    if close {
        // The connection is closing: nothing after this matters.
        buf.clear();
    } else {
        let _ = buf.split_to(consumed);
    }
    let mut reply = BytesMut::new();
    error_packet(h.opcode, h.opaque, status, &mut reply);
    Parse::Invalid {
        reply: reply.freeze(),
        swallow,
        close,
        command: None,
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A binary expiration: an unsigned 32-bit exptime.
fn exptime(b: &[u8]) -> Exptime {
    Exptime::from(be_u32(b))
}

/// The command a well-formed request asks for. `extras` has the length `op` requires.
fn command(op: Opcode, h: &Header, extras: &[u8], key: Bytes, value: Bytes) -> Command {
    let compare_cas = (h.cas != 0).then_some(h.cas);
    let get = |touch: Option<Exptime>| {
        Command::Get(Get {
            keys: vec![key.clone()],
            options: ReadOptions {
                touch,
                ..ReadOptions::default()
            },
        })
    };
    match op {
        Opcode::Get | Opcode::GetK => get(None),
        Opcode::Touch | Opcode::Gat | Opcode::GatK => get(Some(exptime(extras))),
        Opcode::Set | Opcode::Add | Opcode::Replace | Opcode::Append | Opcode::Prepend => {
            let mode = match op {
                // memcached turns any SET/ADD/REPLACE with a CAS into a plain CAS store.
                _ if compare_cas.is_some() && extras.len() == 8 => StoreMode::Set,
                Opcode::Set => StoreMode::Set,
                Opcode::Add => StoreMode::Add,
                Opcode::Replace => StoreMode::Replace,
                Opcode::Append => StoreMode::Append,
                _ => StoreMode::Prepend,
            };
            let (flags, exptime) = if extras.len() == 8 {
                (be_u32(extras), exptime(&extras[4..]))
            } else {
                (0, 0)
            };
            Command::Store(Store {
                mode,
                key,
                flags,
                exptime,
                data: value,
                compare_cas,
                new_cas: None,
                invalidate: false,
                vivify: None,
                binary_key: false,
            })
        }
        Opcode::Delete => Command::Delete(Delete {
            compare_cas,
            ..Delete::of(key)
        }),
        Opcode::Increment | Opcode::Decrement => {
            let expiration = be_u32(&extras[16..]);
            Command::Arith(Arith {
                key,
                op: if op == Opcode::Increment {
                    ArithOp::Incr
                } else {
                    ArithOp::Decr
                },
                delta: be_u64(extras),
                compare_cas,
                new_cas: None,
                vivify: (expiration != NO_VIVIFY)
                    .then(|| (be_u64(&extras[8..]), Exptime::from(expiration))),
                touch: None,
                order: Default::default(),
            })
        }
        Opcode::Quit => Command::Quit,
        Opcode::Flush => Command::FlushAll(FlushAll {
            delay: if extras.len() == 4 {
                exptime(extras)
            } else {
                0
            },
        }),
        Opcode::NoOp => Command::NoOp,
        Opcode::Version => Command::Version,
        Opcode::Stat => Command::Stats(stats_group(key)),
        Opcode::SaslListMechs | Opcode::SaslAuth => unreachable!("refused before"),
    }
}

/// The statistics group a STAT key names, matched as memcached does (`reset` and
/// `settings` by prefix, the others exactly).
fn stats_group(key: Bytes) -> StatsGroup {
    match &key[..] {
        b"" => StatsGroup::General,
        k if k.starts_with(b"reset") => StatsGroup::Reset,
        k if k.starts_with(b"settings") => StatsGroup::Settings,
        b"items" => StatsGroup::Items,
        b"slabs" => StatsGroup::Slabs,
        b"sizes" => StatsGroup::Sizes,
        b"conns" => StatsGroup::Conns,
        b"cluster" => StatsGroup::Cluster,
        _ => StatsGroup::Other(key),
    }
}

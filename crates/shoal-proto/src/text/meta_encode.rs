//! Replies to the meta commands, as memcached 1.6.18 writes them: the status code, the
//! return flags in request order, then `Z`, `X`, `W`; quiet mode drops the nominal code.

use base64::Engine;
use bytes::BytesMut;
use shoal_command::{ArithOutcome, DeleteOutcome, ItemView, Outcome, StoreOutcome};

use super::encode::{put_line, server_error};
use super::{MetaCommand, MetaReply, ReturnFlag};

fn base64(key: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(key)
        .into_bytes()
}

/// The `k` flag's text: the key as sent, and ` b` when it is base64.
fn key_flag(key: &[u8], base64: bool) -> Vec<u8> {
    let mut out = b" k".to_vec();
    out.extend_from_slice(key);
    if base64 {
        out.extend_from_slice(b" b");
    }
    out
}

/// Appends ` <flag><value>` for the return flags `wanted` allows, in request order, with
/// the request's key form for `k`.
fn put_flags(
    line: &mut Vec<u8>,
    reply: &MetaReply,
    wanted: &dyn Fn(&ReturnFlag) -> Option<String>,
) {
    put_flags_key(line, reply, &key_flag(&reply.key, reply.base64_key), wanted)
}

/// [`put_flags`] with `key` (the ` k...` text) for the `k` flag.
fn put_flags_key(
    line: &mut Vec<u8>,
    reply: &MetaReply,
    key: &[u8],
    wanted: &dyn Fn(&ReturnFlag) -> Option<String>,
) {
    for flag in &reply.flags {
        match flag {
            ReturnFlag::Opaque(o) => {
                line.push(b' ');
                line.extend_from_slice(o);
            }
            ReturnFlag::Key => line.extend_from_slice(key),
            other => {
                if let Some(v) = wanted(other) {
                    line.push(b' ');
                    line.extend_from_slice(v.as_bytes());
                }
            }
        }
    }
}

fn ttl(t: Option<i64>) -> i64 {
    t.unwrap_or(-1)
}

/// The reply line (and value) of an mg hit.
///
/// Its `k` is the item's key in the item's form, not the request's: base64 (with ` b`)
/// only when the item was stored through a base64 key (memcached's ITEM_KEY_BINARY).
fn put_hit(out: &mut BytesMut, reply: &MetaReply, item: &ItemView) {
    let mut line = if reply.value {
        format!("VA {}", item.value.len()).into_bytes()
    } else {
        b"HD".to_vec()
    };
    let key = if item.binary_key {
        key_flag(&base64(&item.key), true)
    } else {
        key_flag(&item.key, false)
    };
    put_flags_key(&mut line, reply, &key, &|f| {
        Some(match f {
            ReturnFlag::Size => format!("s{}", item.value.len()),
            ReturnFlag::Ttl => format!("t{}", ttl(item.ttl)),
            ReturnFlag::Cas => format!("c{}", item.cas),
            ReturnFlag::ClientFlags => format!("f{}", item.flags),
            ReturnFlag::LastAccess => format!("l{}", item.last_access),
            ReturnFlag::Hit => format!("h{}", u8::from(item.fetched)),
            _ => return None,
        })
    });
    if item.win_taken {
        line.extend_from_slice(b" Z");
    }
    if item.stale {
        line.extend_from_slice(b" X");
    }
    if item.won {
        line.extend_from_slice(b" W");
    }
    put_line(out, &line);
    if reply.value {
        put_line(out, &item.value);
    }
}

/// A status code followed by the opaque and key flags only (misses and failures).
fn put_code(out: &mut BytesMut, reply: &MetaReply, code: &str) {
    let mut line = code.as_bytes().to_vec();
    put_flags(&mut line, reply, &|_| None);
    put_line(out, &line);
}

/// memcached's `ITEM_ntotal` for an item of this shape (the `size=` of `me`).
fn item_total(item: &ItemView) -> usize {
    let flags = if item.flags == 0 { 0 } else { 4 };
    48 + item.key.len() + 1 + item.value.len() + 2 + 8 + flags
}

/// Encodes the reply to a meta command.
pub fn encode_meta(reply: &MetaReply, outcome: &Outcome, out: &mut BytesMut) {
    let q = reply.quiet;
    let opaque_error = b"CLIENT_ERROR opaque token too long";
    match (reply.command, outcome) {
        (MetaCommand::Get, Outcome::Values(_)) if reply.opaque_too_long => {
            put_line(out, opaque_error)
        }
        (MetaCommand::Get, Outcome::Values(items)) => match items.first() {
            Some(Some(item)) => put_hit(out, reply, item),
            _ if q => {}
            _ => put_code(out, reply, "EN"),
        },
        (MetaCommand::Set, Outcome::Stored(s)) => {
            let (code, cas) = match s {
                StoreOutcome::Stored { .. } if q => return,
                StoreOutcome::Stored { cas } => ("HD", *cas),
                StoreOutcome::NotStored => ("NS", 0),
                StoreOutcome::Exists => ("EX", 0),
                StoreOutcome::NotFound => ("NF", 0),
            };
            let mut line = code.as_bytes().to_vec();
            put_flags(&mut line, reply, &|f| match f {
                ReturnFlag::Cas => Some(format!("c{cas}")),
                _ => None,
            });
            put_line(out, &line);
        }
        (MetaCommand::Delete, Outcome::Deleted(d)) => match d {
            DeleteOutcome::Deleted if q => {}
            DeleteOutcome::Deleted => put_code(out, reply, "HD"),
            DeleteOutcome::NotFound => put_code(out, reply, "NF"),
            DeleteOutcome::Exists => put_code(out, reply, "EX"),
        },
        (MetaCommand::Arith, Outcome::Arith(a)) => match a {
            ArithOutcome::NonNumeric => put_line(
                out,
                b"CLIENT_ERROR cannot increment or decrement non-numeric value",
            ),
            _ if reply.opaque_too_long => put_line(out, opaque_error),
            // Quiet mode drops the reply of a change, not that of a creation.
            ArithOutcome::Value { created: false, .. } if q => {}
            ArithOutcome::Value {
                value, cas, ttl: t, ..
            } => {
                let digits = value.to_string();
                let mut line = if reply.value {
                    format!("VA {}", digits.len()).into_bytes()
                } else {
                    b"HD".to_vec()
                };
                put_flags(&mut line, reply, &|f| match f {
                    ReturnFlag::Cas => Some(format!("c{cas}")),
                    ReturnFlag::Ttl => Some(format!("t{}", ttl(*t))),
                    _ => None,
                });
                put_line(out, &line);
                if reply.value {
                    put_line(out, digits.as_bytes());
                }
            }
            ArithOutcome::NotFound => put_code(out, reply, "NF"),
            ArithOutcome::Exists => put_code(out, reply, "EX"),
        },
        (MetaCommand::Debug, Outcome::Debug(Some(item))) => {
            // The item's key form decides, as for `mg k` (memcached 1.6.18).
            let key = if item.binary_key {
                base64(&item.key)
            } else {
                item.key.to_vec()
            };
            // memcached prints `current_time - exptime`: minus the remaining TTL.
            let exp = item.ttl.map_or(-1, |t| -t);
            let mut line = b"ME ".to_vec();
            line.extend_from_slice(&key);
            line.extend_from_slice(
                format!(
                    " exp={exp} la={} cas={} fetch={} cls=1 size={}",
                    item.last_access,
                    item.cas,
                    if item.fetched { "yes" } else { "no" },
                    item_total(item)
                )
                .as_bytes(),
            );
            put_line(out, &line);
        }
        (MetaCommand::Debug, Outcome::Debug(None)) => put_line(out, b"EN"),
        (_, Outcome::NoOp) => put_line(out, b"MN"),
        (cmd, Outcome::Error(e)) => {
            let oom = match cmd {
                MetaCommand::Set => "SERVER_ERROR out of memory storing object",
                _ => "SERVER_ERROR out of memory",
            };
            put_line(out, server_error(e, oom).as_bytes());
        }
        (_, Outcome::UnknownCommand) => put_line(out, b"ERROR"),
        _ => put_line(out, b"SERVER_ERROR unexpected outcome for meta command"),
    }
}

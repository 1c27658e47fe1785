//! Encoding [`Outcome`]s as binary responses, with memcached 1.6.18's statuses, error
//! texts, CAS values and quiet-mode rules.
//!
//! Quiet commands suppress success (and, for the GET/GAT family, misses), never errors;
//! hits of quiet GET/GAT commands are always sent.

use bytes::{BufMut, BytesMut};
use shoal_command::{ArithOutcome, DeleteOutcome, ItemView, Outcome, ServerError, StoreOutcome};

use super::header::{Header, RESPONSE_MAGIC};
use super::opcode::{Opcode, Status};
use super::BinaryReply;

/// Whom a response packet answers: the request's opcode and opaque, echoed.
#[derive(Clone, Copy)]
struct To {
    opcode: u8,
    opaque: u32,
}

impl To {
    fn of(reply: &BinaryReply) -> To {
        To {
            opcode: reply.opcode,
            opaque: reply.opaque,
        }
    }

    /// Appends a response header to `out`.
    fn header(
        self,
        status: Status,
        key_len: usize,
        extras_len: u8,
        body_len: usize,
        cas: u64,
        out: &mut BytesMut,
    ) {
        Header {
            magic: RESPONSE_MAGIC,
            opcode: self.opcode,
            key_len: key_len as u16,
            extras_len,
            data_type: 0,
            status: status as u16,
            body_len: body_len as u32,
            opaque: self.opaque,
            cas,
        }
        .encode(out);
    }
}

/// Appends memcached's error response for `status` (its text as the body, CAS 0).
pub(crate) fn error_packet(opcode: u8, opaque: u32, status: Status, out: &mut BytesMut) {
    let text = status.message();
    To { opcode, opaque }.header(status, 0, 0, text.len(), 0, out);
    out.put_slice(text.as_bytes());
}

/// Appends a success response with `body` and no key or extras, unless quiet.
fn success(reply: &BinaryReply, body: &[u8], cas: u64, out: &mut BytesMut) {
    if !reply.quiet {
        To::of(reply).header(Status::Success, 0, 0, body.len(), cas, out);
        out.put_slice(body);
    }
}

fn error(reply: &BinaryReply, status: Status, out: &mut BytesMut) {
    error_packet(reply.opcode, reply.opaque, status, out);
}

/// Encodes the reply to a binary request; see [`crate::binary::encode`].
pub fn encode(reply: &BinaryReply, outcome: &Outcome, out: &mut BytesMut) {
    match (reply.op, outcome) {
        (_, Outcome::Error(e)) => error(reply, server_error_status(reply.op, e), out),
        (Opcode::Get | Opcode::GetK | Opcode::Gat | Opcode::GatK | Opcode::Touch, o) => {
            read(reply, o, out)
        }
        (
            Opcode::Set | Opcode::Add | Opcode::Replace | Opcode::Append | Opcode::Prepend,
            Outcome::Stored(s),
        ) => match s {
            StoreOutcome::Stored { cas } => success(reply, &[], *cas, out),
            StoreOutcome::Exists => error(reply, Status::Exists, out),
            StoreOutcome::NotFound => error(reply, Status::NotFound, out),
            // memcached answers a failed ADD "exists" and a failed REPLACE "not found".
            StoreOutcome::NotStored => match reply.op {
                Opcode::Add => error(reply, Status::Exists, out),
                Opcode::Replace => error(reply, Status::NotFound, out),
                _ => error(reply, Status::NotStored, out),
            },
        },
        (Opcode::Delete, Outcome::Deleted(d)) => match d {
            DeleteOutcome::Deleted => success(reply, &[], 0, out),
            DeleteOutcome::NotFound => error(reply, Status::NotFound, out),
            DeleteOutcome::Exists => error(reply, Status::Exists, out),
        },
        (Opcode::Increment | Opcode::Decrement, Outcome::Arith(a)) => match a {
            ArithOutcome::Value { value, cas, .. } => {
                success(reply, &value.to_be_bytes(), *cas, out)
            }
            ArithOutcome::NotFound => error(reply, Status::NotFound, out),
            ArithOutcome::Exists => error(reply, Status::Exists, out),
            ArithOutcome::NonNumeric => error(reply, Status::NonNumeric, out),
        },
        (Opcode::Flush, Outcome::Ok)
        | (Opcode::NoOp, Outcome::NoOp)
        | (Opcode::Quit, Outcome::Quit) => success(reply, &[], 0, out),
        (Opcode::Version, Outcome::Version(v)) => success(reply, v.as_bytes(), 0, out),
        (Opcode::Stat, o) => stats(reply, o, out),
        _ => error(reply, Status::UnknownCommand, out),
    }
}

/// The status memcached answers when the server fails a request.
fn server_error_status(op: Opcode, e: &ServerError) -> Status {
    match e {
        ServerError::TooLarge => Status::TooLarge,
        ServerError::OutOfMemory => Status::OutOfMemory,
        // The only way a flush fails in memcached is when it is disabled (-F).
        ServerError::Other(_) if op == Opcode::Flush => Status::AuthError,
        // memcached's binary protocol reports every other server failure as ENOMEM.
        ServerError::Other(_) => Status::OutOfMemory,
    }
}

/// GET, GETK, GAT, GATK and TOUCH replies.
fn read(reply: &BinaryReply, outcome: &Outcome, out: &mut BytesMut) {
    match outcome {
        Outcome::Values(v) => match v.first() {
            Some(Some(item)) => hit(reply, item, out),
            _ => miss(reply, out),
        },
        // Only reachable if an executor answers TOUCH as a touch rather than a read:
        // memcached's TOUCH reply carries the item's flags and CAS, which this lacks.
        Outcome::Touched(true) => {
            To::of(reply).header(Status::Success, 0, 4, 4, 0, out);
            out.put_u32(0);
        }
        Outcome::Touched(false) => miss(reply, out),
        _ => error(reply, Status::UnknownCommand, out),
    }
}

fn hit(reply: &BinaryReply, item: &ItemView, out: &mut BytesMut) {
    let key: &[u8] = if reply.op.returns_key() {
        &reply.key
    } else {
        &[]
    };
    let value: &[u8] = if reply.op == Opcode::Touch {
        &[]
    } else {
        &item.value
    };
    let body_len = 4 + key.len() + value.len();
    out.reserve(24 + body_len);
    To::of(reply).header(Status::Success, key.len(), 4, body_len, item.cas, out);
    out.put_u32(item.flags);
    out.put_slice(key);
    out.put_slice(value);
}

fn miss(reply: &BinaryReply, out: &mut BytesMut) {
    if reply.quiet {
        return;
    }
    if reply.op.returns_key() {
        // GETK/GATK misses carry the key as key and body, and no error text.
        let key = &reply.key;
        To::of(reply).header(Status::NotFound, key.len(), 0, key.len(), 0, out);
        out.put_slice(key);
    } else {
        error(reply, Status::NotFound, out);
    }
}

/// STAT replies: one packet per statistic (key = name, value = value), then an empty one.
fn stats(reply: &BinaryReply, outcome: &Outcome, out: &mut BytesMut) {
    match outcome {
        Outcome::Stats(pairs) => {
            for (name, value) in pairs {
                let (name, value) = (name.as_bytes(), value.as_bytes());
                To::of(reply).header(
                    Status::Success,
                    name.len(),
                    0,
                    name.len() + value.len(),
                    0,
                    out,
                );
                out.put_slice(name);
                out.put_slice(value);
            }
            To::of(reply).header(Status::Success, 0, 0, 0, 0, out);
        }
        Outcome::Reset | Outcome::Ok => To::of(reply).header(Status::Success, 0, 0, 0, 0, out),
        // An unknown group is "not found" in the binary protocol.
        Outcome::UnknownCommand => error(reply, Status::NotFound, out),
        _ => error(reply, Status::UnknownCommand, out),
    }
}

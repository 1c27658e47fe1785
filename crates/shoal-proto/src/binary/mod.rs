//! memcached's binary protocol: 24-byte headers, opcodes, quiet variants, as memcached
//! 1.6.18 (`proto_bin.c`) implements them, SASL disabled.
//!
//! [`parse`] turns one request packet into a [`crate::Request`] (zero-copy: key and value
//! are slices of the input); [`encode`] writes the response(s) for an
//! [`shoal_command::Outcome`].

use bytes::{Bytes, BytesMut};
use shoal_command::Outcome;

use crate::{Limits, Parse};

mod encode;
mod header;
mod opcode;
mod request;

#[cfg(test)]
mod tests;

pub use header::{Header, HEADER_LEN, RESPONSE_MAGIC};
pub use opcode::{Opcode, Status};

/// The magic byte that starts every binary request.
pub const REQUEST_MAGIC: u8 = 0x80;

/// How to reply to a binary request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryReply {
    /// The opcode as sent (echoed in the response, quiet variants included).
    pub opcode: u8,
    /// What the opcode does, quiet variants folded in.
    pub op: Opcode,
    /// A quiet variant: success (and GET/GAT misses) is not answered; errors are.
    pub quiet: bool,
    /// The client's opaque value, echoed in every response packet.
    pub opaque: u32,
    /// The request's key (GETK/GATK return it; for STAT it is the group).
    pub key: Bytes,
}

/// Parses one binary request from the front of `buf`.
///
/// Consumes the request's bytes on success. A wrong magic byte closes the connection;
/// malformed lengths are answered as memcached does (and close it where memcached does);
/// a value larger than `limits.item_size_max` is answered "Too large." and its bytes are
/// left for the caller to swallow, never buffered; an unknown opcode is answered "Unknown
/// command" and its body swallowed.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Parse {
    request::parse(buf, limits)
}

/// Encodes the reply to a binary request (nothing for a quiet success or a quiet miss).
pub fn encode(reply: &BinaryReply, outcome: &Outcome, out: &mut BytesMut) {
    encode::encode(reply, outcome, out)
}

//! memcached's binary protocol: 24-byte headers, opcodes, quiet variants.

use bytes::BytesMut;
use shoal_command::Outcome;

use crate::{Limits, Parse};

/// The magic byte that starts every binary request.
pub const REQUEST_MAGIC: u8 = 0x80;

/// How to reply to a binary request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryReply {
    // Owned by the binary protocol implementation.
}

/// Parses one binary request from the front of `buf`.
pub fn parse(_buf: &mut BytesMut, _limits: &Limits) -> Parse {
    todo!("binary protocol parser")
}

/// Encodes the reply to a binary request.
pub fn encode(_reply: &BinaryReply, _outcome: &Outcome, _out: &mut BytesMut) {
    todo!("binary protocol encoder")
}

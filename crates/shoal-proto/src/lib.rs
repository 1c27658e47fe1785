//! memcached's wire protocols for Shoal: parsing requests into the protocol-neutral
//! [`shoal_command::Command`] and encoding [`shoal_command::Outcome`]s back, for the text,
//! meta and binary protocols. No I/O: the server feeds bytes in and writes bytes out.
//!
//! A connection's protocol is fixed by its first byte, as in memcached: `0x80` is the binary
//! protocol, anything else the text protocol (which includes the meta commands).

use bytes::{Bytes, BytesMut};
use shoal_command::{Command, Outcome};

pub mod binary;
pub mod text;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// memcached's text protocol, meta commands included.
    Text,
    /// memcached's binary protocol.
    Binary,
}

impl Protocol {
    /// The protocol a connection speaks, from its first byte.
    pub fn detect(first_byte: u8) -> Protocol {
        if first_byte == binary::REQUEST_MAGIC {
            Protocol::Binary
        } else {
            Protocol::Text
        }
    }
}

/// Limits the parsers enforce so that no input makes them buffer without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest value a storage command may declare (memcached's -I). Larger declared values
    /// are answered "too large" and their data is swallowed, never buffered.
    pub item_size_max: usize,
    /// Longest text command line (without its data block) the parser buffers.
    pub max_line: usize,
    /// Most keys one get line may ask for, 0 for no limit (memcached has none). Enforced
    /// by the server as it answers a multi-get key by key.
    pub max_get_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            item_size_max: 1024 * 1024,
            max_line: 64 * 1024,
            max_get_keys: 0,
        }
    }
}

/// One parsed request: what to do, and how to shape the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The protocol-neutral command.
    pub command: Command,
    /// The protocol-specific shape of the reply.
    pub reply: ReplyTo,
}

/// How a reply is shaped: what the encoder needs to know besides the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTo {
    /// A classic text command.
    Text(text::TextReply),
    /// A meta command.
    Meta(text::MetaReply),
    /// A binary request.
    Binary(binary::BinaryReply),
}

/// What the parser made of the start of a connection's input buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// The buffer does not hold a whole request yet: read more and call again.
    Incomplete,
    /// A whole request; its bytes have been removed from the buffer.
    Request(Request),
    /// The input was bad: the offending bytes have been removed from the buffer. Execute
    /// `command` if any, write `reply`, then discard the next `swallow` bytes of input (the data block of a refused
    /// storage command), then close the connection if `close`.
    Invalid {
        /// What to answer, in the protocol's own terms (may be empty).
        reply: Bytes,
        /// Bytes of input still to come that belong to the refused request.
        swallow: u64,
        /// Whether the connection must be closed after the reply.
        close: bool,
        /// A command to execute, its outcome unsent, before writing `reply`: a set refused
        /// as too large removes the key's old value, as memcached does, so that no stale
        /// value outlives a failed set.
        command: Option<Command>,
    },
}

/// Parses the next request of a connection speaking `protocol` from the front of `buf`.
pub fn parse(protocol: Protocol, buf: &mut BytesMut, limits: &Limits) -> Parse {
    match protocol {
        Protocol::Text => text::parse(buf, limits),
        Protocol::Binary => binary::parse(buf, limits),
    }
}

/// Appends the reply to `request` for `outcome` to `out`. Writes nothing where the protocol
/// says nothing is sent (noreply, quiet mode, binary quiet commands).
pub fn encode(reply: &ReplyTo, outcome: &Outcome, out: &mut BytesMut) {
    match reply {
        ReplyTo::Text(r) => text::encode_text(r, outcome, out),
        ReplyTo::Meta(r) => text::encode_meta(r, outcome, out),
        ReplyTo::Binary(r) => binary::encode(r, outcome, out),
    }
}

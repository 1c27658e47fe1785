//! memcached's text protocol: the classic commands and the meta commands (mg, ms, md, ma,
//! mn, me), which share its line framing.

use bytes::BytesMut;
use shoal_command::Outcome;

use crate::{Limits, Parse};

/// How to reply to a classic text command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReply {
    // Owned by the text protocol implementation.
}

/// How to reply to a meta command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaReply {
    // Owned by the meta protocol implementation.
}

/// Parses one text or meta request from the front of `buf`.
pub fn parse(_buf: &mut BytesMut, _limits: &Limits) -> Parse {
    todo!("text protocol parser")
}

/// Encodes the reply to a classic text command.
pub fn encode_text(_reply: &TextReply, _outcome: &Outcome, _out: &mut BytesMut) {
    todo!("text protocol encoder")
}

/// Encodes the reply to a meta command.
pub fn encode_meta(_reply: &MetaReply, _outcome: &Outcome, _out: &mut BytesMut) {
    todo!("meta protocol encoder")
}

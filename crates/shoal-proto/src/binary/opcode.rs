//! Binary protocol opcodes and response statuses, with memcached's error texts.

/// A binary opcode memcached 1.6.18 implements, with its quiet variants folded in: the
/// quiet flag is kept separately (see [`Opcode::decode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// GET (0x00), GETQ (0x09).
    Get,
    /// GETK (0x0c), GETKQ (0x0d): the reply carries the key.
    GetK,
    /// SET (0x01), SETQ (0x11).
    Set,
    /// ADD (0x02), ADDQ (0x12).
    Add,
    /// REPLACE (0x03), REPLACEQ (0x13).
    Replace,
    /// DELETE (0x04), DELETEQ (0x14).
    Delete,
    /// INCREMENT (0x05), INCREMENTQ (0x15).
    Increment,
    /// DECREMENT (0x06), DECREMENTQ (0x16).
    Decrement,
    /// QUIT (0x07), QUITQ (0x17).
    Quit,
    /// FLUSH (0x08), FLUSHQ (0x18).
    Flush,
    /// NOOP (0x0a).
    NoOp,
    /// VERSION (0x0b).
    Version,
    /// APPEND (0x0e), APPENDQ (0x19).
    Append,
    /// PREPEND (0x0f), PREPENDQ (0x1a).
    Prepend,
    /// STAT (0x10).
    Stat,
    /// TOUCH (0x1c).
    Touch,
    /// GAT (0x1d), GATQ (0x1e).
    Gat,
    /// GATK (0x23), GATKQ (0x24): the reply carries the key.
    GatK,
    /// SASL_LIST_MECHS (0x20): refused, SASL is not enabled.
    SaslListMechs,
    /// SASL_AUTH (0x21), SASL_STEP (0x22): refused, SASL is not enabled.
    SaslAuth,
}

impl Opcode {
    /// The opcode and whether it is the quiet variant, or `None` for an opcode memcached
    /// does not implement (VERBOSITY, MULTIPLY, the range operations, ...).
    pub fn decode(byte: u8) -> Option<(Opcode, bool)> {
        use Opcode::*;
        Some(match byte {
            0x00 => (Get, false),
            0x01 => (Set, false),
            0x02 => (Add, false),
            0x03 => (Replace, false),
            0x04 => (Delete, false),
            0x05 => (Increment, false),
            0x06 => (Decrement, false),
            0x07 => (Quit, false),
            0x08 => (Flush, false),
            0x09 => (Get, true),
            0x0a => (NoOp, false),
            0x0b => (Version, false),
            0x0c => (GetK, false),
            0x0d => (GetK, true),
            0x0e => (Append, false),
            0x0f => (Prepend, false),
            0x10 => (Stat, false),
            0x11 => (Set, true),
            0x12 => (Add, true),
            0x13 => (Replace, true),
            0x14 => (Delete, true),
            0x15 => (Increment, true),
            0x16 => (Decrement, true),
            0x17 => (Quit, true),
            0x18 => (Flush, true),
            0x19 => (Append, true),
            0x1a => (Prepend, true),
            0x1c => (Touch, false),
            0x1d => (Gat, false),
            0x1e => (Gat, true),
            0x20 => (SaslListMechs, false),
            0x21 | 0x22 => (SaslAuth, false),
            0x23 => (GatK, false),
            0x24 => (GatK, true),
            _ => return None,
        })
    }

    /// Whether the reply to a hit carries the key (GETK, GATK and their quiet variants).
    pub fn returns_key(self) -> bool {
        matches!(self, Opcode::GetK | Opcode::GatK)
    }
}

/// A binary response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// No error.
    Success = 0x00,
    /// Key not found.
    NotFound = 0x01,
    /// Key exists (or CAS mismatch).
    Exists = 0x02,
    /// Value too large.
    TooLarge = 0x03,
    /// Invalid arguments.
    InvalidArguments = 0x04,
    /// Item not stored.
    NotStored = 0x05,
    /// Incr/decr on a non-numeric value.
    NonNumeric = 0x06,
    /// Authentication error (memcached also answers it to a flush when flush is disabled).
    AuthError = 0x20,
    /// Unknown command.
    UnknownCommand = 0x81,
    /// Out of memory.
    OutOfMemory = 0x82,
}

impl Status {
    /// The error text memcached's `write_bin_error` sends as the body of this status.
    pub fn message(self) -> &'static str {
        match self {
            Status::Success => "",
            Status::NotFound => "Not found",
            Status::Exists => "Data exists for key.",
            Status::TooLarge => "Too large.",
            Status::InvalidArguments => "Invalid arguments",
            Status::NotStored => "Not stored.",
            Status::NonNumeric => "Non-numeric server-side value for incr or decr",
            Status::AuthError => "Auth failure.",
            Status::UnknownCommand => "Unknown command",
            Status::OutOfMemory => "Out of memory",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_variants_fold_into_their_base() {
        assert_eq!(Opcode::decode(0x09), Some((Opcode::Get, true)));
        assert_eq!(Opcode::decode(0x0d), Some((Opcode::GetK, true)));
        assert_eq!(Opcode::decode(0x11), Some((Opcode::Set, true)));
        assert_eq!(Opcode::decode(0x24), Some((Opcode::GatK, true)));
        assert_eq!(Opcode::decode(0x1c), Some((Opcode::Touch, false)));
    }

    #[test]
    fn unimplemented_opcodes_are_unknown() {
        // VERBOSITY and MULTIPLY are not implemented by memcached 1.6.18's binary protocol.
        for op in [0x1b, 0x1f, 0x25, 0x38, 0x40, 0xff] {
            assert_eq!(Opcode::decode(op), None, "opcode {op:#x}");
        }
    }
}

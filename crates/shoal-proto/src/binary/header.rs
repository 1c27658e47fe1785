//! The fixed 24-byte header that starts every binary request and response.

use bytes::{BufMut, BytesMut};

/// Size of a binary protocol header, in bytes.
pub const HEADER_LEN: usize = 24;

/// The magic byte that starts every binary response.
pub const RESPONSE_MAGIC: u8 = 0x81;

/// A decoded binary header (request or response; the 16-bit field at offset 6 is the
/// vbucket id in a request and the status in a response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// 0x80 for a request, 0x81 for a response.
    pub magic: u8,
    /// The command.
    pub opcode: u8,
    /// Length of the key, in bytes.
    pub key_len: u16,
    /// Length of the extras, in bytes.
    pub extras_len: u8,
    /// Data type (always 0, raw bytes).
    pub data_type: u8,
    /// Response status, or request vbucket id.
    pub status: u16,
    /// Length of extras + key + value, in bytes.
    pub body_len: u32,
    /// Copied from request to response unchanged.
    pub opaque: u32,
    /// The CAS value.
    pub cas: u64,
}

impl Header {
    /// Decodes a header from the first [`HEADER_LEN`] bytes of `b`, or `None` if `b` is
    /// shorter.
    pub fn decode(b: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            magic: b[0],
            opcode: b[1],
            key_len: u16::from_be_bytes([b[2], b[3]]),
            extras_len: b[4],
            data_type: b[5],
            status: u16::from_be_bytes([b[6], b[7]]),
            body_len: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            opaque: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            cas: u64::from_be_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        })
    }

    /// Appends the header's 24 bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER_LEN);
        out.put_u8(self.magic);
        out.put_u8(self.opcode);
        out.put_u16(self.key_len);
        out.put_u8(self.extras_len);
        out.put_u8(self.data_type);
        out.put_u16(self.status);
        out.put_u32(self.body_len);
        out.put_u32(self.opaque);
        out.put_u64(self.cas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_known_bytes() {
        let raw = [
            0x80, 0x01, 0x00, 0x02, 0x08, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x0f, 0xde, 0xad,
            0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
        ];
        let h = Header::decode(&raw).unwrap();
        assert_eq!(h.magic, 0x80);
        assert_eq!(h.opcode, 0x01);
        assert_eq!(h.key_len, 2);
        assert_eq!(h.extras_len, 8);
        assert_eq!(h.status, 5);
        assert_eq!(h.body_len, 15);
        assert_eq!(h.opaque, 0xdead_beef);
        assert_eq!(h.cas, 0x0102);
        assert_eq!(Header::decode(&raw[..23]), None);
    }

    proptest! {
        #[test]
        fn header_round_trips(magic: u8, opcode: u8, key_len: u16, extras_len: u8,
                              data_type: u8, status: u16, body_len: u32, opaque: u32,
                              cas: u64) {
            let h = Header { magic, opcode, key_len, extras_len, data_type, status, body_len,
                             opaque, cas };
            let mut out = BytesMut::new();
            h.encode(&mut out);
            prop_assert_eq!(out.len(), HEADER_LEN);
            prop_assert_eq!(Header::decode(&out), Some(h));
        }
    }
}

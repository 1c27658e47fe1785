//! The memcached text protocol, as much as the generator needs: encoding `get` and `set`
//! requests and recognising complete replies in a read buffer.

use anyhow::{bail, Result};

use crate::keys::write_key;

/// Appends `get k1 k2 ...\r\n` to `buf`.
pub fn encode_get(buf: &mut Vec<u8>, keys: &[u64]) {
    buf.extend_from_slice(b"get");
    for &key in keys {
        buf.push(b' ');
        write_key(buf, key);
    }
    buf.extend_from_slice(b"\r\n");
}

/// Appends `set KEY 0 0 LEN\r\nVALUE\r\n` to `buf`.
pub fn encode_set(buf: &mut Vec<u8>, key: u64, value: &[u8]) {
    buf.extend_from_slice(b"set ");
    write_key(buf, key);
    buf.extend_from_slice(b" 0 0 ");
    buf.extend_from_slice(value.len().to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// One complete reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A retrieval reply: this many `VALUE` blocks, then `END`.
    Values(u32),
    /// `STORED`.
    Stored,
    /// Any other single line (`NOT_STORED`, `SERVER_ERROR ...`, `ERROR`, ...).
    Other,
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// Parses the reply at the start of `buf` to a request of the given kind (`retrieval`:
/// `get`). Returns the reply and how many bytes it took, or `None` if incomplete.
pub fn parse_reply(buf: &[u8], retrieval: bool) -> Result<Option<(Reply, usize)>> {
    let Some(end) = line_end(buf, 0) else {
        return Ok(None);
    };
    if !retrieval {
        let reply = if &buf[..end] == b"STORED" {
            Reply::Stored
        } else {
            Reply::Other
        };
        return Ok(Some((reply, end + 2)));
    }
    let mut pos = 0;
    let mut values = 0;
    loop {
        let Some(end) = line_end(buf, pos) else {
            return Ok(None);
        };
        let line = &buf[pos..end];
        if line == b"END" {
            return Ok(Some((Reply::Values(values), end + 2)));
        }
        if let Some(rest) = line.strip_prefix(b"VALUE ") {
            let text = std::str::from_utf8(rest)?;
            let Some(len) = text.split(' ').nth(2) else {
                bail!("malformed VALUE line: {text:?}");
            };
            let len: usize = len.parse()?;
            let next = end + 2 + len + 2;
            if buf.len() < next {
                return Ok(None);
            }
            values += 1;
            pos = next;
        } else if pos == 0 {
            return Ok(Some((Reply::Other, end + 2)));
        } else {
            bail!(
                "unexpected line in a retrieval reply: {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests() {
        let mut buf = Vec::new();
        encode_get(&mut buf, &[1, 2]);
        encode_set(&mut buf, 3, b"ab");
        assert_eq!(
            buf,
            b"get k000000000000001 k000000000000002\r\nset k000000000000003 0 0 2\r\nab\r\n"
        );
    }

    #[test]
    fn parses_complete_and_partial_replies() {
        let full = b"VALUE k 0 3\r\nabc\r\nVALUE j 5 1 77\r\nx\r\nEND\r\nSTORED\r\n";
        assert_eq!(
            parse_reply(full, true).unwrap(),
            Some((Reply::Values(2), 42))
        );
        assert_eq!(
            parse_reply(&full[42..], false).unwrap(),
            Some((Reply::Stored, 8))
        );
        for cut in 0..42 {
            assert_eq!(parse_reply(&full[..cut], true).unwrap(), None, "cut {cut}");
        }
        assert_eq!(
            parse_reply(b"END\r\n", true).unwrap(),
            Some((Reply::Values(0), 5))
        );
        assert_eq!(
            parse_reply(b"SERVER_ERROR out of memory\r\n", false).unwrap(),
            Some((Reply::Other, 28))
        );
        assert_eq!(
            parse_reply(b"ERROR\r\n", true).unwrap(),
            Some((Reply::Other, 7))
        );
    }
}

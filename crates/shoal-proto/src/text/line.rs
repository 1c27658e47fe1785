//! Line framing and tokenizing as memcached's `try_read_command_ascii` and
//! `tokenize_command` do it: a line ends at `\n` (an `\r` before it is dropped), a NUL
//! byte ends the command early, tokens are separated by spaces only, and a line without a
//! newline in its first 2048 bytes closes the connection unless it is a `get`/`gets`.

use std::ops::Range;

use bytes::Bytes;

/// memcached closes a connection whose first 2048 bytes hold no newline (unless it is a
/// multi-get).
pub(crate) const SHORT_LINE_MAX: usize = 2048;

/// memcached's `MAX_TOKENS`: the tokenizer stops after `MAX_TOKENS - 1` tokens.
const MAX_TOKENS: usize = 24;

/// Where the next line of the buffer is, if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// No whole line yet; keep reading.
    Incomplete,
    /// The line is too long: close the connection.
    Close,
    /// A line: the command is `buf[..len]`; `consumed` bytes (through the `\n`) belong to it.
    Line {
        /// Length of the command text (without line end, cut at a NUL byte).
        len: usize,
        /// Bytes up to and including the `\n`.
        consumed: usize,
    },
}

/// Finds the first line of `buf`, never looking (or waiting) past `max_line` bytes.
pub(crate) fn frame(buf: &[u8], max_line: usize) -> Frame {
    let window = &buf[..buf.len().min(max_line)];
    match memchr::memchr(b'\n', window) {
        Some(nl) => {
            let mut end = nl;
            if nl > 1 && buf[nl - 1] == b'\r' {
                end -= 1;
            }
            let end = memchr::memchr(0, &buf[..end]).unwrap_or(end);
            Frame::Line {
                len: end,
                consumed: nl + 1,
            }
        }
        None if buf.len() >= max_line => Frame::Close,
        None if buf.len() > SHORT_LINE_MAX && !is_multiget(buf) => Frame::Close,
        None => Frame::Incomplete,
    }
}

/// memcached's test for a long line that may keep growing: at most 100 leading spaces,
/// then `get ` or `gets `.
fn is_multiget(buf: &[u8]) -> bool {
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[spaces..];
    spaces <= 100 && (rest.starts_with(b"get ") || rest.starts_with(b"gets "))
}

/// A command line split into tokens, keys sliced from it without copying.
pub(crate) struct Line {
    raw: Bytes,
    toks: Vec<Range<usize>>,
}

impl Line {
    /// Splits `raw` (one command, without its line end) on spaces.
    pub(crate) fn new(raw: Bytes) -> Line {
        let mut toks = Vec::new();
        let mut start = None;
        for (i, &b) in raw.iter().enumerate() {
            match (b == b' ', start) {
                (true, Some(s)) => {
                    toks.push(s..i);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            toks.push(s..raw.len());
        }
        Line { raw, toks }
    }

    /// memcached's `ntokens`: the tokens of the first tokenizer pass plus the terminator.
    pub(crate) fn nt(&self) -> usize {
        self.toks.len().min(MAX_TOKENS - 1) + 1
    }

    /// How many tokens the line has in all.
    pub(crate) fn len(&self) -> usize {
        self.toks.len()
    }

    /// Token `i` (empty past the end).
    pub(crate) fn tok(&self, i: usize) -> &[u8] {
        self.toks.get(i).map_or(&[][..], |r| &self.raw[r.clone()])
    }

    /// Token `i` as shared bytes of the line.
    pub(crate) fn bytes(&self, i: usize) -> Bytes {
        self.toks
            .get(i)
            .map_or_else(Bytes::new, |r| self.raw.slice(r.clone()))
    }

    /// The line from the start of token `i` to its end.
    pub(crate) fn rest(&self, i: usize) -> Bytes {
        self.toks
            .get(i)
            .map_or_else(Bytes::new, |r| self.raw.slice(r.start..))
    }

    /// memcached's `tokens[ntokens - 2]`: the last token of the first tokenizer pass.
    pub(crate) fn last(&self) -> &[u8] {
        self.tok(self.nt() - 2)
    }

    /// memcached's `set_noreply_maybe`: whether that last token is `noreply`.
    pub(crate) fn noreply(&self) -> bool {
        self.nt() >= 2 && self.last() == b"noreply"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_crlf_lf_and_nul() {
        assert_eq!(
            frame(b"get a\r\nx", 100),
            Frame::Line {
                len: 5,
                consumed: 7
            }
        );
        assert_eq!(
            frame(b"get a\n", 100),
            Frame::Line {
                len: 5,
                consumed: 6
            }
        );
        assert_eq!(
            frame(b"get a\0b\r\n", 100),
            Frame::Line {
                len: 5,
                consumed: 9
            }
        );
        // memcached keeps the \r of a line that is only "\r\n".
        assert_eq!(
            frame(b"\r\n", 100),
            Frame::Line {
                len: 1,
                consumed: 2
            }
        );
        assert_eq!(frame(b"get a", 100), Frame::Incomplete);
    }

    #[test]
    fn long_lines_close_unless_multiget() {
        let long = vec![b'k'; 3000];
        assert_eq!(frame(&long, 65536), Frame::Close);
        let mut get = b"get ".to_vec();
        get.extend_from_slice(&long);
        assert_eq!(frame(&get, 65536), Frame::Incomplete);
        assert_eq!(frame(&get, 2500), Frame::Close);
        let mut spaced = vec![b' '; 101];
        spaced.extend_from_slice(&get);
        assert_eq!(frame(&spaced, 65536), Frame::Close);
    }

    #[test]
    fn tokenizes_on_spaces_only() {
        let l = Line::new(Bytes::from_static(b"  set a\tb  0 "));
        assert_eq!(l.len(), 3);
        assert_eq!(l.tok(1), b"a\tb");
        assert_eq!(l.nt(), 4);
        assert_eq!(l.last(), b"0");
        let many = Line::new(Bytes::from(vec!["x"; 30].join(" ")));
        assert_eq!(many.nt(), 24);
        assert_eq!(many.len(), 30);
    }
}

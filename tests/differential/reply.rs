//! Reading one framed reply: everything a server sends up to the `MN` line that answers
//! the `mn` the test appends to every command. Value blocks (`VALUE`/`VA`) are read by
//! their announced length, so data that looks like `MN` cannot end the frame early.

use std::io::ErrorKind;

use crate::common::TextClient;

/// One piece of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// A line, with its terminator.
    Line(Vec<u8>),
    /// A data block, with its trailing CRLF.
    Data(Vec<u8>),
}

/// How a reply frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The `MN` line arrived.
    Mn,
    /// The server closed the connection (or reset it).
    Closed,
    /// Nothing arrived within the client's read timeout.
    TimedOut,
}

/// A reply frame (the `MN` line itself is not included).
#[derive(Debug, Clone)]
pub struct RawReply {
    /// What arrived before the end.
    pub chunks: Vec<Chunk>,
    /// How it ended.
    pub end: End,
}

impl RawReply {
    /// The reply as escaped text, truncated for reports.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for chunk in &self.chunks {
            let bytes = match chunk {
                Chunk::Line(b) | Chunk::Data(b) => b,
            };
            let shown = &bytes[..bytes.len().min(200)];
            text.push_str(&escape(shown));
            if bytes.len() > 200 {
                text.push_str(&format!("...({} bytes)", bytes.len()));
            }
        }
        format!("{text} <{:?}>", self.end)
    }
}

/// Escapes CR/LF and non-printable bytes.
pub fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| match b {
            b'\r' => "\\r".chars().collect::<Vec<_>>(),
            b'\n' => "\\n".chars().collect(),
            0x20..=0x7e => vec![b as char],
            _ => format!("\\x{b:02x}").chars().collect(),
        })
        .collect()
}

/// Sends `request` followed by `mn\r\n` and reads the reply frame.
pub fn exchange(client: &mut TextClient, request: &[u8]) -> RawReply {
    let mut bytes = request.to_vec();
    bytes.extend_from_slice(b"mn\r\n");
    if client.send(&bytes).is_err() {
        return RawReply {
            chunks: Vec::new(),
            end: End::Closed,
        };
    }
    read_frame(client)
}

fn read_frame(client: &mut TextClient) -> RawReply {
    let mut chunks = Vec::new();
    loop {
        let line = match client.read_line() {
            Ok(line) if line.is_empty() => {
                return RawReply {
                    chunks,
                    end: End::Closed,
                }
            }
            Ok(line) => line,
            Err(e) => {
                return RawReply {
                    chunks,
                    end: failure_end(&e),
                }
            }
        };
        if line == b"MN\r\n" {
            return RawReply {
                chunks,
                end: End::Mn,
            };
        }
        let data_len = announced_len(&line);
        chunks.push(Chunk::Line(line));
        if let Some(len) = data_len {
            match client.read_exact(len + 2) {
                Ok(data) => chunks.push(Chunk::Data(data)),
                Err(e) => {
                    return RawReply {
                        chunks,
                        end: failure_end(&e),
                    }
                }
            }
        }
    }
}

fn failure_end(e: &std::io::Error) -> End {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => End::TimedOut,
        _ => End::Closed,
    }
}

/// The data length announced by a `VALUE key flags len [cas]` or `VA len ...` line.
fn announced_len(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    let tokens: Vec<&str> = text.trim_end_matches(['\r', '\n']).split(' ').collect();
    match *tokens.first()? {
        "VALUE" if tokens.len() >= 4 => tokens[3].parse().ok(),
        "VA" if tokens.len() >= 2 => tokens[1].parse().ok(),
        _ => None,
    }
}

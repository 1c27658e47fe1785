//! A generated command as a template: raw bytes plus CAS-token slots that are filled in
//! per server (each server has its own real CAS values for the same logical token).

use std::collections::HashMap;

/// One part of a command's bytes.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes sent unchanged to every server.
    Raw(Vec<u8>),
    /// A canonical CAS token, rendered as that server's real CAS number.
    Cas(usize),
}

/// A command (one request line, maybe with a data block) sent to every server.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    /// The bytes, with CAS slots.
    pub pieces: Vec<Piece>,
    /// The (decoded) key a single-key meta command is about, used to attribute `c` flags.
    pub key_hint: Option<Vec<u8>>,
}

impl Cmd {
    /// An empty command about `key`.
    pub fn for_key(key: &[u8]) -> Self {
        Cmd {
            pieces: Vec::new(),
            key_hint: Some(key.to_vec()),
        }
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        match self.pieces.last_mut() {
            Some(Piece::Raw(v)) => v.extend_from_slice(bytes.as_ref()),
            _ => self.pieces.push(Piece::Raw(bytes.as_ref().to_vec())),
        }
        self
    }

    /// Appends a CAS slot for canonical token `canon`.
    pub fn cas(&mut self, canon: usize) -> &mut Self {
        self.pieces.push(Piece::Cas(canon));
        self
    }

    /// The bytes for one server, given its canonical -> real CAS translation.
    pub fn render(&self, real_of: impl Fn(usize) -> Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Raw(bytes) => out.extend_from_slice(bytes),
                // A token this server never showed: the servers already disagreed, so any
                // number will do; 0 is never a live CAS.
                Piece::Cas(canon) => {
                    out.extend_from_slice(real_of(*canon).unwrap_or(0).to_string().as_bytes())
                }
            }
        }
        out
    }

    /// A short printable form (for failure reports), data blocks truncated.
    pub fn describe(&self) -> String {
        let mut bytes = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Raw(raw) => bytes.extend_from_slice(raw),
                Piece::Cas(canon) => bytes.extend_from_slice(format!("<cas#{canon}>").as_bytes()),
            }
        }
        let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(160)]).to_string();
        if bytes.len() > 160 {
            text.push_str(&format!("...({} bytes)", bytes.len()));
        }
        text.replace('\r', "\\r").replace('\n', "\\n")
    }
}

/// What the test knows about CAS tokens, in canonical numbering (shared by all servers).
#[derive(Debug, Default)]
pub struct CasBook {
    /// The last canonical token seen per key.
    pub last: HashMap<Vec<u8>, usize>,
    /// How many canonical tokens exist (they are numbered 0..count).
    pub count: usize,
}

//! Replies to the classic text commands, as memcached 1.6.18 writes them.

use bytes::{BufMut, BytesMut};
use shoal_command::{ArithOutcome, DeleteOutcome, ItemView, Outcome, ServerError, StoreOutcome};

use super::{TextCommand, TextReply};

/// Writes `line` and `\r\n`.
pub(crate) fn put_line(out: &mut BytesMut, line: &[u8]) {
    out.reserve(line.len() + 2);
    out.put_slice(line);
    out.put_slice(b"\r\n");
}

/// The line memcached writes for a server error, given the command's out-of-memory text.
pub(crate) fn server_error(e: &ServerError, oom: &'static str) -> String {
    match e {
        ServerError::TooLarge => "SERVER_ERROR object too large for cache".to_owned(),
        ServerError::OutOfMemory => oom.to_owned(),
        ServerError::Other(m) if m.starts_with("SERVER_ERROR") => m.clone(),
        ServerError::Other(m) => format!("SERVER_ERROR {m}"),
    }
}

/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`, without allocating: this is
/// the hottest reply there is.
fn put_value(out: &mut BytesMut, item: &ItemView, with_cas: bool) {
    let mut number = itoa::Buffer::new();
    out.reserve(item.key.len() + item.value.len() + 64);
    out.put_slice(b"VALUE ");
    out.put_slice(&item.key);
    out.put_u8(b' ');
    out.put_slice(number.format(item.flags).as_bytes());
    out.put_u8(b' ');
    out.put_slice(number.format(item.value.len()).as_bytes());
    if with_cas {
        out.put_u8(b' ');
        out.put_slice(number.format(item.cas).as_bytes());
    }
    out.put_slice(b"\r\n");
    out.put_slice(&item.value);
    out.put_slice(b"\r\n");
}

/// Encodes the values of one part of a multi-get's reply, without its closing `END`, for
/// a server that answers a long multi-get a few keys at a time. A line refused for a key
/// over 250 bytes shows nothing until its last part (then `encode_text` gives the error).
pub fn encode_get_part(reply: &TextReply, outcome: &Outcome, out: &mut BytesMut) {
    if reply.command == TextCommand::GetKeyTooLong {
        return;
    }
    if let Outcome::Values(items) = outcome {
        let with_cas = matches!(reply.command, TextCommand::Gets | TextCommand::Gats);
        for item in items.iter().flatten() {
            put_value(out, item, with_cas);
        }
    }
}

/// Encodes the reply to a classic text command.
pub fn encode_text(reply: &TextReply, outcome: &Outcome, out: &mut BytesMut) {
    if let (TextCommand::GetKeyTooLong, Outcome::Values(_)) = (reply.command, outcome) {
        put_line(out, b"CLIENT_ERROR bad command line format");
        return;
    }
    if let Outcome::Values(_) = outcome {
        encode_get_part(reply, outcome, out);
        out.put_slice(b"END\r\n");
        return;
    }
    if reply.noreply {
        return;
    }
    let line: String = match outcome {
        Outcome::Values(_) => unreachable!("handled above"),
        Outcome::Stored(s) => match s {
            StoreOutcome::Stored { .. } => "STORED",
            StoreOutcome::NotStored => "NOT_STORED",
            StoreOutcome::Exists => "EXISTS",
            StoreOutcome::NotFound => "NOT_FOUND",
        }
        .into(),
        Outcome::Deleted(d) => match d {
            DeleteOutcome::Deleted => "DELETED",
            DeleteOutcome::NotFound => "NOT_FOUND",
            DeleteOutcome::Exists => "EXISTS",
        }
        .into(),
        Outcome::Arith(a) => match a {
            ArithOutcome::Value { value, .. } => value.to_string(),
            ArithOutcome::NotFound => "NOT_FOUND".into(),
            ArithOutcome::Exists => "EXISTS".into(),
            ArithOutcome::NonNumeric => {
                "CLIENT_ERROR cannot increment or decrement non-numeric value".into()
            }
        },
        Outcome::Touched(true) => "TOUCHED".into(),
        Outcome::Touched(false) => "NOT_FOUND".into(),
        Outcome::Ok => "OK".into(),
        Outcome::Stats(stats) => {
            for (name, value) in stats {
                put_line(out, format!("STAT {name} {value}").as_bytes());
            }
            "END".into()
        }
        Outcome::Reset => "RESET".into(),
        Outcome::Version(v) => format!("VERSION {v}"),
        Outcome::NoOp => "MN".into(),
        Outcome::Quit | Outcome::ShuttingDown => return,
        Outcome::UnknownCommand
            if reply.command == (TextCommand::Shutdown { valid_mode: false }) =>
        {
            "CLIENT_ERROR invalid shutdown mode".into()
        }
        Outcome::ShutdownDisabled => "ERROR: shutdown not enabled".into(),
        Outcome::Debug(_) | Outcome::UnknownCommand => "ERROR".into(),
        Outcome::Error(e) => server_error(
            e,
            match reply.command {
                TextCommand::Arith => "SERVER_ERROR out of memory",
                _ => "SERVER_ERROR out of memory storing object",
            },
        ),
    };
    put_line(out, line.as_bytes());
}

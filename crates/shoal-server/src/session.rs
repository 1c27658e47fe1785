//! The per-connection protocol state machine, without I/O: it takes the bytes a client
//! sent, parses requests, has the [`Dispatcher`] execute them and encodes the replies.
//!
//! [`crate::connection`] drives a [`Session`] over a TCP stream, [`crate::udp`] over
//! one datagram at a time, and the fuzzers over arbitrary byte chunks, so all three
//! exercise the same code. A session keeps what one client can make the server hold
//! bounded:
//!
//! - the input buffer never has to hold more than [`Session::input_bound`] bytes (a
//!   command line of at most `max_line` bytes plus one item's data, or a binary header,
//!   extras and key plus one item's value);
//! - a text multi-get line longer than `max_line` is answered piece by piece as its keys
//!   arrive (memcached buffers the whole line instead), so a get of any number of keys is
//!   answered with bounded memory;
//! - a multi-get is executed one key at a time, and [`Session::process`] returns after a
//!   key once the output holds [`OUTPUT_FLUSH`] bytes, so the caller can write it out:
//!   the output never holds more than that plus one item.

use bytes::{Buf, Bytes, BytesMut};
use shoal_command::{Command, Get, Outcome};
use shoal_proto::{Limits, Parse, Protocol, ReplyTo};

use crate::backend::Backend;
use crate::dispatch::Dispatcher;

/// The caller should write the output out once it holds this much.
pub const OUTPUT_FLUSH: usize = 64 * 1024;

/// Longest binary request head (header, extras, key) the binary parser waits for.
const BINARY_HEAD_MAX: usize = 24 + 255 + 65_535;

/// The reply memcached gives to a get line with a key longer than 250 bytes.
const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";

/// The reply to a get line with more keys than `--max-get-keys` allows.
const TOO_MANY_KEYS: &[u8] = b"CLIENT_ERROR too many keys in one get\r\n";

/// What a call to [`Session::process`] left the session needing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Something was done: write the output out if it is large, then call again.
    Continue,
    /// Nothing more can be done with the input held: read more.
    NeedInput,
    /// Write the output out, then close the connection.
    Close,
}

/// A multi-get being answered one key at a time.
#[derive(Debug)]
struct PendingGet {
    keys: std::vec::IntoIter<Bytes>,
    options: shoal_command::ReadOptions,
    reply: ReplyTo,
    /// Whether the request ends here (write `END`), or the rest of its line is to come.
    last: bool,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    protocol: Option<Protocol>,
    /// Bytes of input still to discard (the data block of a refused request).
    swallow: u64,
    /// Discarding input up to the next newline (the rest of a refused multi-get line).
    skip_line: bool,
    /// The multi-get being answered.
    pending: Option<PendingGet>,
    /// Keys of the current over-long get line answered in earlier pieces.
    get_keys_seen: usize,
    /// A reply asked for the connection to close once the output is written.
    closing: bool,
}

impl Session {
    /// A new connection's session with the parser `limits`.
    pub fn new(limits: Limits) -> Session {
        Session {
            limits,
            protocol: None,
            swallow: 0,
            skip_line: false,
            pending: None,
            get_keys_seen: 0,
            closing: false,
        }
    }

    /// The most input the session can need buffered while it waits for the rest of one
    /// request; a caller may close a connection whose input grows past it.
    pub fn input_bound(&self) -> usize {
        self.limits.max_line.max(BINARY_HEAD_MAX) + self.limits.item_size_max + 2
    }

    /// The protocol the connection speaks, once its first byte is known.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// Whether the session holds work that needs no more input (a multi-get half done).
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Does one step: answers one request, or part of a multi-get, from the front of
    /// `input`, appending the reply to `output`. Consumes nothing when it returns
    /// [`Progress::NeedInput`] with nothing done.
    pub async fn process<B: Backend>(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
        dispatcher: &Dispatcher<B>,
    ) -> Progress {
        if self.closing {
            return Progress::Close;
        }
        if self.pending.is_some() {
            self.run_pending(output, dispatcher).await;
            return Progress::Continue;
        }
        if self.swallow > 0 {
            let skip = self.swallow.min(input.len() as u64);
            input.advance(skip as usize);
            self.swallow -= skip;
            if self.swallow > 0 {
                return Progress::NeedInput;
            }
        }
        if self.skip_line {
            match input.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    input.advance(nl + 1);
                    self.skip_line = false;
                }
                None => {
                    input.clear();
                    return Progress::NeedInput;
                }
            }
        }
        if input.is_empty() {
            return Progress::NeedInput;
        }
        let protocol = *self
            .protocol
            .get_or_insert_with(|| Protocol::detect(input[0]));
        if protocol == Protocol::Text && self.long_multiget(input) {
            return self.multiget_piece(input, output, dispatcher).await;
        }
        match shoal_proto::parse(protocol, input, &self.limits) {
            Parse::Incomplete => Progress::NeedInput,
            Parse::Request(request) => match request.command {
                // A multi-get is answered key by key (bounded output); a single key needs no
                // such care and takes the direct path below.
                Command::Get(get)
                    if get.keys.len() > 1 && matches!(request.reply, ReplyTo::Text(_)) =>
                {
                    if self.too_many_keys(get.keys.len()) {
                        output.extend_from_slice(TOO_MANY_KEYS);
                        return Progress::Continue;
                    }
                    self.pending = Some(PendingGet {
                        keys: get.keys.into_iter(),
                        options: get.options,
                        reply: request.reply,
                        last: true,
                    });
                    self.run_pending(output, dispatcher).await;
                    Progress::Continue
                }
                command => {
                    let outcome = dispatcher.dispatch(command).await;
                    shoal_proto::encode(&request.reply, &outcome, output);
                    if matches!(outcome, Outcome::Quit | Outcome::ShuttingDown) {
                        self.closing = true;
                        return Progress::Close;
                    }
                    Progress::Continue
                }
            },
            Parse::Invalid {
                reply,
                swallow,
                close,
                command,
            } => {
                if let Some(command) = command {
                    dispatcher.dispatch(command).await;
                }
                if close {
                    // memcached's conn_closing drops the replies it has not sent yet (those
                    // of the requests read in the same batch).
                    output.clear();
                }
                output.extend_from_slice(&reply);
                self.swallow = swallow;
                if close {
                    self.closing = true;
                    return Progress::Close;
                }
                Progress::Continue
            }
        }
    }

    /// Whether a get line of `keys` keys is over the `--max-get-keys` limit.
    fn too_many_keys(&self, keys: usize) -> bool {
        self.limits.max_get_keys != 0 && keys > self.limits.max_get_keys
    }

    /// Answers keys of the pending multi-get until it is done or the output is full.
    async fn run_pending<B: Backend>(&mut self, output: &mut BytesMut, dispatcher: &Dispatcher<B>) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        let batch = dispatcher.backend().get_batch().max(1);
        loop {
            let keys: Vec<Bytes> = pending.keys.by_ref().take(batch).collect();
            if keys.is_empty() {
                // Only a line with no key gets here (the parser refuses those): answer it
                // as one command.
                let outcome = dispatcher
                    .dispatch(Command::Get(Get {
                        keys,
                        options: pending.options.clone(),
                    }))
                    .await;
                self.finish_get(&outcome, output);
                return;
            }
            let outcome = dispatcher
                .dispatch(Command::Get(Get {
                    keys,
                    options: pending.options.clone(),
                }))
                .await;
            if pending.keys.len() == 0 {
                self.finish_get(&outcome, output);
                return;
            }
            encode_without_end(&pending.reply, &outcome, output);
            if output.len() >= OUTPUT_FLUSH {
                return;
            }
        }
    }

    /// Encodes the last part of the pending multi-get and forgets it.
    fn finish_get(&mut self, outcome: &Outcome, output: &mut BytesMut) {
        if let Some(pending) = self.pending.take() {
            if pending.last {
                shoal_proto::encode(&pending.reply, outcome, output);
            } else {
                encode_without_end(&pending.reply, outcome, output);
            }
        }
    }

    /// Whether `input` starts with a `get`/`gets` line longer than the line limit, which
    /// is answered in pieces (any other line that long closes the connection).
    fn long_multiget(&self, input: &[u8]) -> bool {
        let max = self.limits.max_line;
        input.len() >= max && !input[..max].contains(&b'\n') && multiget_command(input).is_some()
    }

    /// Answers the keys that arrived whole of an over-long multi-get line, and leaves the
    /// command word in front of the rest of the line.
    async fn multiget_piece<B: Backend>(
        &mut self,
        input: &mut BytesMut,
        output: &mut BytesMut,
        dispatcher: &Dispatcher<B>,
    ) -> Progress {
        let Some(word_end) = multiget_command(input) else {
            return Progress::NeedInput;
        };
        // The piece plus its line end must fit the parser's line limit.
        let window = &input[..self.limits.max_line.saturating_sub(2)];
        let (cut, last) = match window.iter().position(|&b| b == 0) {
            // A NUL byte ends the command: what follows it on the line is ignored.
            Some(nul) => (nul, true),
            None => match window.iter().rposition(|&b| b == b' ') {
                Some(space) if space > word_end => (space, false),
                _ => {
                    // One key longer than the whole line limit: memcached refuses the line.
                    output.extend_from_slice(BAD_FORMAT);
                    self.skip_line = true;
                    return Progress::Continue;
                }
            },
        };
        let mut line = BytesMut::with_capacity(cut + 2);
        line.extend_from_slice(&input[..cut]);
        line.extend_from_slice(b"\r\n");
        if last {
            input.advance(cut);
            self.skip_line = true;
        } else {
            let rest = input.split_off(cut);
            input.truncate(word_end);
            input.extend_from_slice(&rest);
        }
        if !last
            && line[word_end..]
                .iter()
                .all(|&b| b == b' ' || b == b'\r' || b == b'\n')
        {
            // Only spaces so far: they have been dropped.
            return Progress::Continue;
        }
        match shoal_proto::parse(Protocol::Text, &mut line, &self.limits) {
            Parse::Request(request) => match request.command {
                Command::Get(get) => {
                    self.get_keys_seen += get.keys.len();
                    let too_many = self.too_many_keys(self.get_keys_seen);
                    if last || too_many {
                        self.get_keys_seen = 0;
                    }
                    if too_many {
                        // The rest of the line is refused with it (values of earlier
                        // pieces have been answered already).
                        output.extend_from_slice(TOO_MANY_KEYS);
                        self.skip_line = !last;
                        return Progress::Continue;
                    }
                    self.pending = Some(PendingGet {
                        keys: get.keys.into_iter(),
                        options: get.options,
                        reply: request.reply,
                        last,
                    });
                    self.run_pending(output, dispatcher).await;
                    Progress::Continue
                }
                // A `get`/`gets` line parses as a get or not at all.
                _ => {
                    self.closing = true;
                    Progress::Close
                }
            },
            Parse::Invalid { reply, close, .. } => {
                // A key too long: the rest of the line is refused with it.
                output.extend_from_slice(&reply);
                self.skip_line = true;
                if close {
                    self.closing = true;
                    return Progress::Close;
                }
                Progress::Continue
            }
            Parse::Incomplete => {
                self.closing = true;
                Progress::Close
            }
        }
    }
}

/// Encodes a part of a multi-get's reply: its values, without the closing `END`.
fn encode_without_end(reply: &ReplyTo, outcome: &Outcome, output: &mut BytesMut) {
    match reply {
        ReplyTo::Text(reply) => shoal_proto::text::encode_get_part(reply, outcome, output),
        // Only text multi-gets are answered in parts.
        other => shoal_proto::encode(other, outcome, output),
    }
}

/// For a line starting as memcached's long multi-get (at most 100 spaces, then `get ` or
/// `gets `), the end of its command word.
fn multiget_command(input: &[u8]) -> Option<usize> {
    let spaces = input.iter().take_while(|&&b| b == b' ').count();
    let rest = &input[spaces..];
    if spaces > 100 {
        None
    } else if rest.starts_with(b"get ") {
        Some(spaces + 3)
    } else if rest.starts_with(b"gets ") {
        Some(spaces + 4)
    } else {
        None
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

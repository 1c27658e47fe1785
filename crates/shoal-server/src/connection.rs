//! One client connection: read bytes, parse requests, dispatch them, encode the replies and
//! write them back, with memory bounded whatever the client sends.
//!
//! Replies are batched: everything answerable from the bytes already read is encoded into
//! one output buffer, written once. The output buffer is flushed early when it grows past
//! [`OUTPUT_FLUSH`], so a client that pipelines many large gets but never reads only ever
//! holds one batch in the server's memory (the write then blocks and reading stops).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use shoal_command::Outcome;
use shoal_proto::{Parse, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::dispatch::Dispatcher;

/// Initial capacity of a connection's read buffer.
const READ_CAPACITY: usize = 16 * 1024;
/// Write the output buffer as soon as it holds this much.
const OUTPUT_FLUSH: usize = 64 * 1024;
/// A read buffer that grew beyond this for one big request is given back once empty.
const READ_KEEP: usize = 256 * 1024;

/// Serves one client until it quits, errs, or sends something that closes the connection.
pub async fn serve<B: Backend>(mut stream: TcpStream, dispatcher: Arc<Dispatcher<B>>) {
    let _ = stream.set_nodelay(true);
    let limits = dispatcher.config().limits;
    let stats = dispatcher.stats();
    let mut input = BytesMut::with_capacity(READ_CAPACITY);
    let mut output = BytesMut::with_capacity(READ_CAPACITY);
    let mut protocol: Option<Protocol> = None;
    let mut swallow: u64 = 0;

    loop {
        if input.is_empty() && input.capacity() > READ_KEEP {
            input = BytesMut::with_capacity(READ_CAPACITY);
        }
        // Room for a whole READ_CAPACITY buffer, as memcached reads into its 16 KiB
        // buffer (after moving what is left to its front): a line arriving whole is then
        // read whole, and one over 2048 bytes is not closed on for being cut by a small read.
        input.reserve(READ_CAPACITY.saturating_sub(input.len()));
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                stats.bytes_read.fetch_add(n as u64, Relaxed);
            }
        }
        let mut close = false;
        loop {
            if swallow > 0 {
                let skip = swallow.min(input.len() as u64);
                input.advance(skip as usize);
                swallow -= skip;
                if swallow > 0 {
                    break;
                }
            }
            if input.is_empty() {
                break;
            }
            let proto = *protocol.get_or_insert_with(|| Protocol::detect(input[0]));
            match shoal_proto::parse(proto, &mut input, &limits) {
                Parse::Incomplete => break,
                Parse::Request(request) => {
                    let outcome = dispatcher.dispatch(request.command).await;
                    shoal_proto::encode(&request.reply, &outcome, &mut output);
                    if matches!(outcome, Outcome::Quit | Outcome::ShuttingDown) {
                        close = true;
                        break;
                    }
                }
                Parse::Invalid {
                    reply,
                    swallow: rest,
                    close: must_close,
                    command,
                } => {
                    if let Some(command) = command {
                        dispatcher.dispatch(command).await;
                    }
                    if must_close {
                        // memcached's conn_closing drops the replies it has not sent yet
                        // (those of the requests read in the same batch).
                        output.clear();
                    }
                    output.extend_from_slice(&reply);
                    swallow = rest;
                    if must_close {
                        close = true;
                        break;
                    }
                }
            }
            if output.len() >= OUTPUT_FLUSH
                && !flush(&mut stream, &mut output, dispatcher.as_ref()).await
            {
                return;
            }
        }
        if !flush(&mut stream, &mut output, dispatcher.as_ref()).await || close {
            return;
        }
    }
}

/// Writes out and clears `output`; false when the client is gone.
async fn flush<B: Backend>(
    stream: &mut TcpStream,
    output: &mut BytesMut,
    dispatcher: &Dispatcher<B>,
) -> bool {
    if output.is_empty() {
        return true;
    }
    let ok = stream.write_all(output).await.is_ok();
    dispatcher
        .stats()
        .bytes_written
        .fetch_add(output.len() as u64, Relaxed);
    output.clear();
    if output.capacity() > READ_KEEP {
        *output = BytesMut::with_capacity(READ_CAPACITY);
    }
    ok
}

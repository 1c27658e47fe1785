//! One client connection: reads bytes, lets the connection's [`Session`] answer them, and
//! writes the replies back, with memory bounded whatever the client sends.
//!
//! Replies are batched: everything answerable from the bytes already read is encoded into
//! one output buffer, written once. The output buffer is written out as soon as it holds
//! [`OUTPUT_FLUSH`] bytes, and nothing more is read or executed while a write blocks, so a
//! client that pipelines many large gets but never reads only ever holds one batch in the
//! server's memory. The input buffer never holds more than one request
//! ([`Session::input_bound`]). With an idle timeout, a connection that neither sends nor
//! reads for that long is closed (memcached's `-o idle_timeout`).

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::dispatch::Dispatcher;
use crate::session::{Progress, Session, OUTPUT_FLUSH};

/// Initial capacity of a connection's read buffer (it grows for bigger requests; idle
/// connections stay cheap).
const READ_CAPACITY: usize = 4 * 1024;
/// A buffer that grew beyond this for one big request is given back once empty.
const READ_KEEP: usize = 256 * 1024;
/// Room made before each read, as memcached reads into its 16 KiB buffer: a line that
/// arrived whole is read whole, and one over 2048 bytes is not closed on for having been
/// cut by a small read.
const READ_BATCH: usize = 16 * 1024;

/// Serves one client until it quits, errs, idles too long, or sends something that closes
/// the connection.
pub async fn serve<B: Backend>(mut stream: TcpStream, dispatcher: Arc<Dispatcher<B>>) {
    let _ = stream.set_nodelay(true);
    let idle = dispatcher.config().idle_timeout;
    let stats = dispatcher.stats();
    let mut session = Session::new(dispatcher.config().limits);
    let bound = session.input_bound();
    let mut input = BytesMut::with_capacity(READ_CAPACITY);
    let mut output = BytesMut::new();

    loop {
        if input.is_empty() && input.capacity() > READ_KEEP {
            input = BytesMut::with_capacity(READ_CAPACITY);
        }
        input.reserve(READ_BATCH.saturating_sub(input.len()));
        match within(idle, stream.read_buf(&mut input)).await {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(n)) => {
                stats.bytes_read.fetch_add(n as u64, Relaxed);
            }
            None => {
                stats.idle_kicks.fetch_add(1, Relaxed);
                return;
            }
        }
        loop {
            let progress = session
                .process(&mut input, &mut output, dispatcher.as_ref())
                .await;
            match progress {
                Progress::Continue => {}
                Progress::NeedInput => break,
                Progress::Close => {
                    flush(&mut stream, &mut output, &dispatcher, idle).await;
                    return;
                }
            }
            if output.len() >= OUTPUT_FLUSH
                && !flush(&mut stream, &mut output, &dispatcher, idle).await
            {
                return;
            }
        }
        if input.len() > bound {
            // Cannot happen with the parsers' limits; never let a bug grow memory.
            tracing::warn!(
                len = input.len(),
                bound,
                "input buffer over its bound, closing"
            );
            return;
        }
        if !flush(&mut stream, &mut output, &dispatcher, idle).await {
            return;
        }
    }
}

/// Runs `io`, giving up (None) after `limit` when there is one.
async fn within<T>(limit: Option<Duration>, io: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, io).await.ok(),
        None => Some(io.await),
    }
}

/// Writes out and clears `output`; false when the client is gone (or, with an idle
/// timeout, has read nothing for that long).
async fn flush<B: Backend>(
    stream: &mut TcpStream,
    output: &mut BytesMut,
    dispatcher: &Dispatcher<B>,
    idle: Option<Duration>,
) -> bool {
    if output.is_empty() {
        return true;
    }
    let stats = dispatcher.stats();
    let mut written = 0;
    let mut ok = true;
    while written < output.len() {
        match within(idle, stream.write(&output[written..])).await {
            Some(Ok(0)) | Some(Err(_)) => {
                ok = false;
                break;
            }
            Some(Ok(n)) => written += n,
            None => {
                stats.idle_kicks.fetch_add(1, Relaxed);
                ok = false;
                break;
            }
        }
    }
    stats.bytes_written.fetch_add(written as u64, Relaxed);
    output.clear();
    if output.capacity() > READ_KEEP {
        *output = BytesMut::new();
    }
    ok
}

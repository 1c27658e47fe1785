//! The server side: the [`Handler`] trait and [`serve`], which accepts connections and
//! answers their requests.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::frame::{self, AbortOnDrop, FrameReader};
use super::outbox::{CloseOnDrop, Outbox};
use super::{RpcConfig, RpcError};

/// Answers requests.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Called on the connection's reader task, in arrival order, one request at a time:
    /// whatever it does before returning its future is done in the order the peer sent
    /// the requests. The returned future is polled once right away on the reader task
    /// (so keep its synchronous parts short); if not ready, it then runs on its own task,
    /// concurrently with later requests. Its output is the response, written back with the
    /// request's id (responses may go out in any order). The future is dropped unfinished
    /// if the connection closes.
    fn handle(&self, from: SocketAddr, req: Req) -> impl Future<Output = Resp> + Send + 'static;
}

/// A [`Handler`] made of a function; see [`handler_fn`].
pub struct FnHandler<F, Fut> {
    f: F,
    _fut: PhantomData<fn() -> Fut>,
}

/// Wraps `f(from, req) -> future of the response` as a [`Handler`]. The synchronous part
/// of `f` runs in arrival order, as [`Handler::handle`] says.
pub fn handler_fn<Req, Resp, F, Fut>(f: F) -> FnHandler<F, Fut>
where
    F: Fn(SocketAddr, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    FnHandler {
        f,
        _fut: PhantomData,
    }
}

impl<Req, Resp, F, Fut> Handler<Req, Resp> for FnHandler<F, Fut>
where
    F: Fn(SocketAddr, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    fn handle(&self, from: SocketAddr, req: Req) -> impl Future<Output = Resp> + Send + 'static {
        (self.f)(from, req)
    }
}

/// The running server of [`serve`]. Dropping it (or [`abort`](Self::abort)) stops
/// accepting and closes every connection; handler futures still running are dropped.
#[derive(Debug)]
pub struct ServerHandle {
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Stops the server, like dropping the handle.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the server has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves connections on `listener` until the returned handle is dropped or aborted.
///
/// Per connection, the connection's task reads requests and calls `handler` for each (in
/// arrival order); each returned future is polled once there and, unless ready at once,
/// runs on its own task; at most [`RpcConfig::max_in_flight`] requests are in flight
/// (handled and not yet written back; the reader waits for a slot before reading the next
/// request). Responses are written in batches, by whoever produced them while the socket
/// takes them, else by a writer task. A frame over
/// [`RpcConfig::max_frame`] or a request that does not decode closes that connection, as
/// does a response that cannot be encoded within `max_frame` (its caller sees
/// [`super::RpcError::Closed`] rather than waiting for a timeout). Must be called within a
/// tokio runtime.
pub fn serve<Req, Resp, H>(
    listener: TcpListener,
    handler: Arc<H>,
    config: RpcConfig,
) -> ServerHandle
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    ServerHandle {
        task: tokio::spawn(accept_loop(listener, handler, config)),
    }
}

/// Accepts connections; the connection tasks live in a `JoinSet`, so they end with it.
async fn accept_loop<Req, Resp, H>(listener: TcpListener, handler: Arc<H>, config: RpcConfig)
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let config = Arc::new(config);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    connections.spawn(serve_connection(stream, from, handler.clone(), config.clone()));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "rpc accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One connection: this task reads requests and answers those whose handler future is
/// ready at once; the others run on their own tasks. Responses go out through the
/// connection's [`Outbox`] (whose writer task only steps in when the socket is full).
/// When reading or writing ends, the handler futures still running are dropped.
async fn serve_connection<Req, Resp, H>(
    stream: TcpStream,
    from: SocketAddr,
    handler: Arc<H>,
    config: Arc<RpcConfig>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let outbox = Arc::new(Outbox::new(Some(slots.clone())));
    // Stops the handler futures still running when this task ends (even aborted, as when
    // the server stops): nobody will read their responses.
    let _close = CloseOnDrop(outbox.clone());
    outbox.attach(write);
    let mut writer = AbortOnDrop(tokio::spawn(outbox.clone().run_writer()));
    let outcome = tokio::select! {
        read = read_requests(read, from, &*handler, &config, &outbox, slots) => read,
        written = &mut writer.0 => written.unwrap_or_else(|e| Err(io::Error::other(e))),
    };
    match outcome {
        Ok(()) => tracing::debug!(%from, "rpc peer closed its connection"),
        Err(e) => tracing::debug!(%from, error = %e, "rpc connection closed"),
    }
}

/// Reads requests and starts their handlers, in arrival order, until the peer closes or
/// sends something invalid. Each handler's future is polled once here: if it is ready,
/// its response is queued at once, and the responses queued are written in one go
/// whenever the reader is about to wait (for more bytes, or for a slot).
async fn read_requests<Req, Resp, H>(
    read: OwnedReadHalf,
    from: SocketAddr,
    handler: &H,
    config: &RpcConfig,
    outbox: &Arc<Outbox>,
    slots: Arc<Semaphore>,
) -> io::Result<()>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let max_frame = config.max_frame;
    let mut frames = FrameReader::new(read, max_frame);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                outbox.flush();
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(io::Error::other)?
            }
        };
        let (id, payload) = loop {
            if let Some(frame) = frames.next_buffered()? {
                break frame;
            }
            outbox.flush();
            if !frames.fill().await? {
                return Ok(());
            }
        };
        let req: Req = postcard::from_bytes(frames.payload(payload))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut response = Box::pin(handler.handle(from, req));
        // A first poll without a waker: most handlers answer at once. One that is not
        // ready is polled again, with its task's waker, as soon as it is spawned.
        match response
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(resp) => respond(outbox, &resp, id, slot, from, max_frame),
            Poll::Pending => {
                let outbox = outbox.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        resp = response => {
                            respond(&outbox, &resp, id, slot, from, max_frame);
                            outbox.flush();
                        }
                        // The connection is gone: nobody will read the response.
                        () = outbox.closed() => {}
                    }
                });
            }
        }
    }
}

/// Queues the response `resp` to request `id`; `slot` is held until it is written. A
/// response that cannot be encoded within `max_frame` closes the connection, so its
/// caller learns at once rather than after a timeout.
fn respond<Resp: Serialize>(
    outbox: &Outbox,
    resp: &Resp,
    id: u64,
    slot: OwnedSemaphorePermit,
    from: SocketAddr,
    max_frame: usize,
) {
    match outbox.push(Some(slot), |buf| {
        frame::encode_into(buf, resp, id, max_frame)
    }) {
        Ok(()) | Err(RpcError::Closed) => {}
        Err(e) => {
            tracing::warn!(%from, error = %e, "rpc response cannot be sent; closing the connection");
            outbox.close(io::ErrorKind::InvalidData);
        }
    }
}

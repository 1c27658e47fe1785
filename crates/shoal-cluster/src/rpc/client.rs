//! The client side: [`RpcClient`], one lazily connected, auto-reconnecting connection to
//! one peer, and [`ResponseFuture`], the pending response of one call.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::frame::{self, AbortOnDrop, FrameReader};
use super::outbox::{CloseOnDrop, Outbox};
use super::{RpcConfig, RpcError};

/// Where a call's outcome is delivered.
type Waiter<Resp> = oneshot::Sender<Result<Resp, RpcError>>;

/// One lazily connected, auto-reconnecting connection to one peer address.
///
/// Not `Clone`: share it through an [`Arc`] (as [`super::Peers`] does). Dropping it closes
/// its connection, and every call still in flight fails with [`RpcError::Closed`].
pub struct RpcClient<Req, Resp> {
    shared: Arc<Shared<Resp>>,
    _req: PhantomData<fn(Req)>,
}

/// What the client, its connection task and its response futures share.
struct Shared<Resp> {
    addr: SocketAddr,
    config: RpcConfig,
    state: Mutex<State<Resp>>,
}

/// The mutable part of [`Shared`], under one lock so that enqueueing a request, starting a
/// connection and failing a dead connection's calls are atomic with respect to each other.
///
/// Invariant: every entry of `pending` was sent on `conn`; when `conn` is cleared all of
/// them are failed at once (so `pending` is empty whenever `conn` is `None`).
struct State<Resp> {
    next_id: u64,
    next_generation: u64,
    conn: Option<Conn>,
    pending: HashMap<u64, Waiter<Resp>>,
}

/// The current connection (possibly still connecting).
struct Conn {
    /// Identifies this connection among the client's successive ones.
    generation: u64,
    /// Where requests are encoded, in `send` order, and written from.
    outbox: Arc<Outbox>,
    /// The connection task (connect, then read responses; it owns the writer task).
    task: AbortHandle,
}

impl<Resp> Shared<Resp> {
    fn lock(&self) -> MutexGuard<'_, State<Resp>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Clears the current connection if it is `generation` (any, if `None`) and fails all
    /// its calls with `error()`; returns the connection task if one was cleared.
    fn end_connection(
        &self,
        generation: Option<u64>,
        error: impl Fn() -> RpcError,
    ) -> Option<AbortHandle> {
        let (conn, waiters) = {
            let mut state = self.lock();
            match &state.conn {
                Some(c) if generation.is_none_or(|g| g == c.generation) => {}
                _ => return None,
            }
            (state.conn.take(), std::mem::take(&mut state.pending))
        };
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(error()));
        }
        conn.map(|c| c.task)
    }
}

impl<Req, Resp> RpcClient<Req, Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
{
    /// A client for the peer at `addr`. Does not connect: the first [`send`](Self::send)
    /// does.
    pub fn new(addr: SocketAddr, config: RpcConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                addr,
                config,
                state: Mutex::new(State {
                    next_id: 0,
                    next_generation: 0,
                    conn: None,
                    pending: HashMap::new(),
                }),
            }),
            _req: PhantomData,
        }
    }

    /// Sends `req` and returns the future of its response.
    ///
    /// The request is encoded and enqueued now, before this returns (no await): requests
    /// sent through one client are written to the socket in exactly the order `send` was
    /// called, even from several threads, and nothing is reordered across a reconnect
    /// (requests queued while connecting go out in order once connected). The write itself
    /// happens once the tasks ready on this thread have run, so that requests sent by
    /// several of them share one `write` (see the module documentation). Without a
    /// connection, this starts connecting (so it must be called within a tokio runtime;
    /// outside one the call fails with [`RpcError::Connect`]).
    ///
    /// The future resolves to the response, or to an error: [`RpcError::TooLarge`] or
    /// [`RpcError::Encode`] at once (nothing sent); [`RpcError::Connect`] if connecting
    /// failed; [`RpcError::Closed`] if the connection closed first; [`RpcError::Decode`]
    /// if the response is not a `Resp`. It never times out by itself. Dropping it forgets
    /// the call (a late response is discarded).
    pub fn send(&self, req: Req) -> ResponseFuture<Resp> {
        let max_frame = self.shared.config.max_frame;
        let mut state = self.shared.lock();
        let id = state.next_id;
        state.next_id += 1;
        if state.conn.is_none() {
            match self.start_connection(&mut state) {
                Ok(conn) => state.conn = Some(conn),
                Err(e) => return ResponseFuture::ready(Err(e)),
            }
        }
        let Some(conn) = &state.conn else {
            return ResponseFuture::ready(Err(RpcError::Closed));
        };
        // Encoded straight into the outbox, under the lock that orders the sends. Fails
        // with `Closed` if the connection is failing (its task is about to clear it).
        if let Err(e) = conn
            .outbox
            .push(None, |buf| frame::encode_into(buf, &req, id, max_frame))
        {
            return ResponseFuture::ready(Err(e));
        }
        let outbox = conn.outbox.clone();
        let (waiter, response) = oneshot::channel();
        state.pending.insert(id, waiter);
        drop(state);
        drop(req);
        outbox.schedule();
        ResponseFuture {
            inner: Inner::Waiting {
                shared: self.shared.clone(),
                id,
                response,
                done: false,
            },
        }
    }

    /// Spawns a connection task (called with the state locked and no connection).
    fn start_connection(&self, state: &mut State<Resp>) -> Result<Conn, RpcError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| RpcError::Connect(io::Error::other(e)))?;
        let generation = state.next_generation;
        state.next_generation += 1;
        let outbox = Arc::new(Outbox::new(None));
        let task = runtime.spawn(run_connection(
            self.shared.clone(),
            generation,
            outbox.clone(),
        ));
        Ok(Conn {
            generation,
            outbox,
            task: task.abort_handle(),
        })
    }
}

impl<Req, Resp> RpcClient<Req, Resp> {
    /// Drops the current connection, if any: every call in flight on it (sent or still
    /// queued) fails with [`RpcError::Closed`]; the next [`send`](RpcClient::send)
    /// reconnects.
    pub fn reset(&self) {
        if let Some(task) = self.shared.end_connection(None, || RpcError::Closed) {
            task.abort();
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// How many calls await a response (sent or queued, futures not dropped).
    pub fn pending(&self) -> usize {
        self.shared.lock().pending.len()
    }
}

impl<Req, Resp> Drop for RpcClient<Req, Resp> {
    fn drop(&mut self) {
        self.reset();
    }
}

impl<Req, Resp> std::fmt::Debug for RpcClient<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

/// A connection's life: connect (within the timeout), then write the requests queued
/// meanwhile, deliver responses (and let the outbox's writer task finish writes the
/// socket could not take at once) until either side fails; then fail every call in
/// flight. Aborted by [`RpcClient::reset`], which fails the calls itself.
async fn run_connection<Resp: DeserializeOwned + Send + 'static>(
    shared: Arc<Shared<Resp>>,
    generation: u64,
    outbox: Arc<Outbox>,
) {
    let addr = shared.addr;
    let stream = tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(addr));
    let stream = match stream.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "rpc connect failed");
            shared.end_connection(Some(generation), || {
                RpcError::Connect(io::Error::new(e.kind(), e.to_string()))
            });
            return;
        }
        Err(_) => {
            tracing::debug!(%addr, "rpc connect timed out");
            shared.end_connection(Some(generation), || {
                RpcError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection to {addr} within the connect timeout"),
                ))
            });
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let _close = CloseOnDrop(outbox.clone());
    let mut writer = AbortOnDrop(tokio::spawn(outbox.clone().run_writer()));
    outbox.attach(write);
    let outcome = tokio::select! {
        read = read_responses(read, &shared) => read,
        written = &mut writer.0 => written.unwrap_or_else(|e| Err(io::Error::other(e))),
    };
    match outcome {
        Ok(()) => tracing::debug!(%addr, "rpc connection closed by peer"),
        Err(e) => tracing::debug!(%addr, error = %e, "rpc connection failed"),
    }
    shared.end_connection(Some(generation), || RpcError::Closed);
}

/// Delivers each response frame to its waiting call until the connection ends.
async fn read_responses<Resp: DeserializeOwned>(
    read: OwnedReadHalf,
    shared: &Shared<Resp>,
) -> io::Result<()> {
    let mut frames = FrameReader::new(read, shared.config.max_frame);
    loop {
        while let Some((id, payload)) = frames.next_buffered()? {
            let waiter = shared.lock().pending.remove(&id);
            if let Some(waiter) = waiter {
                let response = postcard::from_bytes(frames.payload(payload));
                let _ = waiter.send(response.map_err(RpcError::Decode));
            }
        }
        if !frames.fill().await? {
            return Ok(());
        }
    }
}

/// The response of one [`RpcClient::send`] call.
///
/// `Send + 'static`; never times out by itself. Dropping it before it resolves removes the
/// call from the client's pending map.
#[must_use = "a response future does nothing unless awaited; dropping it forgets the call"]
pub struct ResponseFuture<Resp> {
    inner: Inner<Resp>,
}

enum Inner<Resp> {
    /// Failed before anything was sent.
    Ready(Option<Result<Resp, RpcError>>),
    /// Sent or queued.
    Waiting {
        shared: Arc<Shared<Resp>>,
        id: u64,
        response: oneshot::Receiver<Result<Resp, RpcError>>,
        done: bool,
    },
}

// Nothing is pinned structurally: the response is moved out, never polled in place.
impl<Resp> Unpin for ResponseFuture<Resp> {}

impl<Resp> ResponseFuture<Resp> {
    fn ready(result: Result<Resp, RpcError>) -> Self {
        Self {
            inner: Inner::Ready(Some(result)),
        }
    }
}

impl<Resp> Future for ResponseFuture<Resp> {
    type Output = Result<Resp, RpcError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            Inner::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ),
            Inner::Waiting { response, done, .. } => {
                let result = std::task::ready!(Pin::new(response).poll(cx));
                *done = true;
                // A dropped waiter means the call was forgotten without an answer.
                Poll::Ready(result.unwrap_or(Err(RpcError::Closed)))
            }
        }
    }
}

impl<Resp> Drop for ResponseFuture<Resp> {
    fn drop(&mut self) {
        if let Inner::Waiting {
            shared,
            id,
            done: false,
            ..
        } = &self.inner
        {
            shared.lock().pending.remove(id);
        }
    }
}

impl<Resp> std::fmt::Debug for ResponseFuture<Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Ready(_) => f.write_str("ResponseFuture(failed)"),
            Inner::Waiting { id, done, .. } => f
                .debug_struct("ResponseFuture")
                .field("id", id)
                .field("done", done)
                .finish(),
        }
    }
}

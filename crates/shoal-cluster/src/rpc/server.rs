//! The server side: the [`Handler`] trait and [`serve`], which accepts connections and
//! answers their requests.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::BufReader;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::frame::{self, AbortOnDrop, OutFrame};
use super::RpcConfig;

/// Answers requests.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Called on the connection's reader task, in arrival order, one request at a time:
    /// whatever it does before returning its future is done in the order the peer sent
    /// the requests. The returned future then runs concurrently with later requests; its
    /// output is the response, written back with the request's id (responses may go out
    /// in any order). The future is dropped unfinished if the connection closes.
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
/// arrival order); each returned future runs on its own task, at most
/// [`RpcConfig::max_in_flight`] at once (the reader waits for a slot before reading the
/// next request); a writer task writes the responses. A frame over
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

/// A queued response. Holds its request's in-flight slot until written, so responses the
/// peer is slow to read still count against [`RpcConfig::max_in_flight`].
enum Outgoing {
    Frame {
        bytes: Vec<u8>,
        _slot: OwnedSemaphorePermit,
    },
    /// A response could not be encoded: close the connection.
    Close,
}

impl OutFrame for Outgoing {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Outgoing::Frame { bytes, .. } => Some(bytes),
            Outgoing::Close => None,
        }
    }
}

/// One connection: this task reads requests; a writer task writes responses. When either
/// ends, the other is stopped and the handler futures still running are dropped.
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
    let (read, mut write) = stream.into_split();
    let (responses, mut queue) = mpsc::unbounded_channel::<Outgoing>();
    let mut writer = AbortOnDrop(tokio::spawn(async move {
        frame::write_frames(&mut write, &mut queue).await
    }));
    let outcome = tokio::select! {
        read = read_requests(read, from, &*handler, &config, responses) => read,
        written = &mut writer.0 => written.unwrap_or_else(|e| Err(io::Error::other(e))),
    };
    match outcome {
        Ok(()) => tracing::debug!(%from, "rpc peer closed its connection"),
        Err(e) => tracing::debug!(%from, error = %e, "rpc connection closed"),
    }
}

/// Reads requests and starts their handlers, in arrival order, until the peer closes or
/// sends something invalid.
async fn read_requests<Req, Resp, H>(
    read: OwnedReadHalf,
    from: SocketAddr,
    handler: &H,
    config: &RpcConfig,
    responses: mpsc::UnboundedSender<Outgoing>,
) -> io::Result<()>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut read = BufReader::with_capacity(frame::READ_BUFFER, read);
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let Some((id, payload)) = frame::read_frame(&mut read, config.max_frame).await? else {
            return Ok(());
        };
        let req: Req = postcard::from_bytes(&payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        drop(payload);
        let response = handler.handle(from, req);
        let responses = responses.clone();
        let max_frame = config.max_frame;
        tokio::spawn(async move {
            tokio::select! {
                resp = response => {
                    let out = match frame::encode(&resp, id, max_frame) {
                        Ok(bytes) => Outgoing::Frame { bytes, _slot: slot },
                        Err(e) => {
                            tracing::warn!(%from, error = %e, "rpc response cannot be sent; closing the connection");
                            Outgoing::Close
                        }
                    };
                    let _ = responses.send(out);
                }
                // The connection is gone: nobody will read the response.
                _ = responses.closed() => {}
            }
        });
    }
}

//! Accepting client connections: one accept loop per listening address, the connection
//! limit (memcached's -c), and the hand-off of each connection to a worker thread
//! ([`crate::workers`]).

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::backend::Backend;
use crate::dispatch::Dispatcher;
use crate::workers::{Distributor, Slot};

/// What memcached answers a connection it cannot take.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// Accepts connections on `listener` until the server shuts down, handing each to a
/// worker through `workers`.
pub async fn accept_loop<B: Backend>(
    listener: TcpListener,
    dispatcher: Arc<Dispatcher<B>>,
    workers: Distributor<B>,
) {
    let mut shutdown = dispatcher.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        match Slot::take(&dispatcher) {
            Some(slot) => workers.hand_off(stream, slot),
            None => {
                tokio::spawn(refuse(stream));
            }
        }
    }
}

/// Tells a connection over the limit why it is closed, as memcached does.
async fn refuse(mut stream: TcpStream) {
    let _ = stream.write_all(TOO_MANY_CONNECTIONS).await;
    let _ = stream.shutdown().await;
}

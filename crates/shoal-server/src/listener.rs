//! Accepting client connections: one accept loop per listening address, the connection
//! limit (memcached's -c), and the hand-off of each connection to its own task.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::backend::Backend;
use crate::connection;
use crate::dispatch::Dispatcher;

/// What memcached answers a connection it cannot take.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// Accepts connections on `listener` until the server shuts down.
pub async fn accept_loop<B: Backend>(listener: TcpListener, dispatcher: Arc<Dispatcher<B>>) {
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
        let stats = dispatcher.stats();
        let open = stats.curr_connections.fetch_add(1, Relaxed) + 1;
        if open > dispatcher.config().max_connections as u64 {
            stats.curr_connections.fetch_sub(1, Relaxed);
            stats.rejected_connections.fetch_add(1, Relaxed);
            tokio::spawn(refuse(stream));
            continue;
        }
        stats.total_connections.fetch_add(1, Relaxed);
        let dispatcher = Arc::clone(&dispatcher);
        tokio::spawn(async move {
            connection::serve(stream, Arc::clone(&dispatcher)).await;
            dispatcher.stats().curr_connections.fetch_sub(1, Relaxed);
        });
    }
}

/// Tells a connection over the limit why it is closed, as memcached does.
async fn refuse(mut stream: TcpStream) {
    let _ = stream.write_all(TOO_MANY_CONNECTIONS).await;
    let _ = stream.shutdown().await;
}

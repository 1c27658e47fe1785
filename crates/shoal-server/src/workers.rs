//! Thread-per-core serving of client connections, as memcached's `-t` worker threads:
//! each worker is an OS thread running its own single-threaded tokio runtime (its own
//! epoll loop), and every accepted connection is handed to one worker, round-robin, and
//! served there until it closes. Connections never migrate and a request never wakes
//! another thread, so an operation costs its read, its write and a share of one
//! `epoll_wait`, with no futex wake-ups or work stealing between threads.
//!
//! The accept loops, UDP and (in a cluster) membership and peer RPC run on the caller's
//! runtime; only client TCP connections are served here. A task a connection spawns (a
//! peer RPC connection, started on first use) lives on that connection's worker, which
//! runs until [`Workers::stop`].

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::connection;
use crate::dispatch::Dispatcher;

/// A connection counted in `curr_connections` until this is dropped (whether it was served
/// to its end, refused, or dropped with its worker at shutdown).
#[derive(Debug)]
pub struct Slot<B: Backend> {
    dispatcher: Arc<Dispatcher<B>>,
}

impl<B: Backend> Slot<B> {
    /// Takes one connection slot; None (counted as rejected) when `-c` are open already.
    pub fn take(dispatcher: &Arc<Dispatcher<B>>) -> Option<Slot<B>> {
        let stats = dispatcher.stats();
        let open = stats.curr_connections.fetch_add(1, Relaxed) + 1;
        if open > dispatcher.config().max_connections as u64 {
            stats.curr_connections.fetch_sub(1, Relaxed);
            stats.rejected_connections.fetch_add(1, Relaxed);
            return None;
        }
        stats.total_connections.fetch_add(1, Relaxed);
        Some(Slot {
            dispatcher: Arc::clone(dispatcher),
        })
    }
}

impl<B: Backend> Drop for Slot<B> {
    fn drop(&mut self) {
        self.dispatcher
            .stats()
            .curr_connections
            .fetch_sub(1, Relaxed);
    }
}

/// An accepted connection on its way to a worker.
type Handoff<B> = (std::net::TcpStream, Slot<B>);

/// Hands accepted connections to the workers, round-robin; cheap to clone.
#[derive(Debug)]
pub struct Distributor<B: Backend> {
    queues: Arc<[mpsc::UnboundedSender<Handoff<B>>]>,
    next: Arc<AtomicUsize>,
}

impl<B: Backend> Clone for Distributor<B> {
    fn clone(&self) -> Self {
        Distributor {
            queues: Arc::clone(&self.queues),
            next: Arc::clone(&self.next),
        }
    }
}

impl<B: Backend> Distributor<B> {
    /// Gives `stream` (holding `slot`) to the next worker. A stream that cannot leave the
    /// caller's runtime, or finds its worker stopped, is dropped (closed).
    pub fn hand_off(&self, stream: TcpStream, slot: Slot<B>) {
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let index = self.next.fetch_add(1, Relaxed) % self.queues.len();
        let _ = self.queues[index].send((stream, slot));
    }
}

/// The running worker threads; stopped (their connections closed) by [`Workers::stop`]
/// or when dropped.
#[derive(Debug)]
pub struct Workers<B: Backend> {
    distributor: Distributor<B>,
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl<B: Backend> Workers<B> {
    /// Starts `count` (at least one) workers serving connections for `dispatcher`.
    pub fn start(count: usize, dispatcher: &Arc<Dispatcher<B>>) -> io::Result<Workers<B>> {
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (queue, incoming) = mpsc::unbounded_channel();
            let (stop, stopped) = oneshot::channel();
            let dispatcher = Arc::clone(dispatcher);
            let thread = std::thread::Builder::new()
                .name(format!("shoal-worker-{index}"))
                .spawn(move || runtime.block_on(serve(incoming, stopped, dispatcher)))?;
            queues.push(queue);
            threads.push((stop, thread));
        }
        Ok(Workers {
            distributor: Distributor {
                queues: queues.into(),
                next: Arc::new(AtomicUsize::new(0)),
            },
            threads,
        })
    }

    /// What accept loops hand their connections to.
    pub fn distributor(&self) -> &Distributor<B> {
        &self.distributor
    }

    /// Stops every worker, closing the connections it serves, and waits for its thread.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        let threads: Vec<JoinHandle<()>> = self
            .threads
            .drain(..)
            .map(|(stop, thread)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl<B: Backend> Drop for Workers<B> {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// One worker's loop: serves every connection it is handed, each as a task of this
/// thread's runtime, until stopped (dropping the runtime then closes them all).
async fn serve<B: Backend>(
    mut incoming: mpsc::UnboundedReceiver<Handoff<B>>,
    mut stopped: oneshot::Receiver<()>,
    dispatcher: Arc<Dispatcher<B>>,
) {
    loop {
        let (stream, slot) = tokio::select! {
            handoff = incoming.recv() => match handoff {
                Some(handoff) => handoff,
                None => return,
            },
            _ = &mut stopped => return,
        };
        let Ok(stream) = TcpStream::from_std(stream) else {
            continue;
        };
        let dispatcher = Arc::clone(&dispatcher);
        tokio::spawn(async move {
            connection::serve(stream, dispatcher).await;
            drop(slot);
        });
    }
}

//! Shoal's network server: TCP listeners (and UDP with -U), the worker threads that serve
//! client connections (one single-threaded runtime per `-t`, see [`workers`]), the
//! per-connection state machine and loop, and the dispatch of parsed commands to a
//! [`Backend`] (the local store or the cluster), with memcached's statistics. It knows
//! nothing of how keys are placed across nodes.

pub mod backend;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod listener;
pub mod session;
pub mod stats;
pub mod udp;
pub mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use backend::{Backend, LocalBackend};
pub use cluster::{ClusterSnapshot, ClusterView, MemberRow};
pub use config::ServerConfig;
pub use dispatch::{Dispatcher, VERSION};
pub use shoal_command::{Command, Outcome};
use tokio::net::{TcpListener, UdpSocket};
pub use workers::Workers;

/// A bound, not yet running server (its worker threads started, idle).
#[derive(Debug)]
pub struct Server<B: Backend> {
    dispatcher: Arc<Dispatcher<B>>,
    listeners: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
    workers: Workers<B>,
}

impl<B: Backend> Server<B> {
    /// Binds every listening address of `config`, for a single node.
    pub async fn bind(config: ServerConfig, backend: B) -> io::Result<Server<B>> {
        Self::bind_with_cluster(config, backend, None).await
    }

    /// Binds every listening address of `config` and starts its `threads` workers;
    /// `cluster`, when given, is what `stats cluster` reports (None: a single node).
    pub async fn bind_with_cluster(
        config: ServerConfig,
        backend: B,
        cluster: Option<Arc<dyn ClusterView>>,
    ) -> io::Result<Server<B>> {
        let mut listeners = Vec::with_capacity(config.listen.len());
        for addr in &config.listen {
            let listener = TcpListener::bind(addr).await.map_err(|error| {
                io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
            })?;
            listeners.push(listener);
        }
        let mut udp = Vec::new();
        if config.udp_port != 0 {
            for addr in &config.listen {
                let addr = SocketAddr::new(addr.ip(), config.udp_port);
                let socket = UdpSocket::bind(addr).await.map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("cannot listen on UDP {addr}: {error}"),
                    )
                })?;
                udp.push(socket);
            }
        }
        let threads = config.threads;
        let dispatcher = Dispatcher::with_cluster(backend, config, cluster);
        let workers = Workers::start(threads, &dispatcher).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot start the worker threads: {error}"),
            )
        })?;
        Ok(Server {
            dispatcher,
            listeners,
            udp,
            workers,
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The UDP addresses bound (none unless UDP is on).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The dispatcher, to request a shutdown from outside.
    pub fn dispatcher(&self) -> &Arc<Dispatcher<B>> {
        &self.dispatcher
    }

    /// Serves until a shutdown is requested (signal or `shutdown` command): accept loops
    /// and UDP run as tasks of the caller's runtime, connections on the workers. Returns
    /// once nothing more is accepted; the workers go on serving the open connections (and
    /// any task they spawned) until they are stopped or dropped.
    #[must_use = "dropping the workers closes every connection at once"]
    pub async fn run(self) -> Workers<B> {
        let mut shutdown = self.dispatcher.shutdown_signal();
        let mut loops = Vec::new();
        for listener in self.listeners {
            loops.push(tokio::spawn(listener::accept_loop(
                listener,
                Arc::clone(&self.dispatcher),
                self.workers.distributor().clone(),
            )));
        }
        for socket in self.udp {
            let udp = udp::Udp::new(socket, Arc::clone(&self.dispatcher));
            loops.push(tokio::spawn(udp.run()));
        }
        let _ = shutdown.wait_for(|stop| *stop).await;
        for accept in loops {
            let _ = accept.await;
        }
        self.workers
    }
}

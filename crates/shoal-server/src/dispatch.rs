//! Turns parsed commands into outcomes: server-level commands (stats, version, verbosity,
//! quit, shutdown, noop) are answered here, item commands go to the [`Backend`], and every
//! command is counted for `stats`.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use shoal_command::{Command, Outcome, ShutdownMode, StatsGroup};
use tokio::sync::watch;

use crate::backend::Backend;
use crate::cluster::{self, ClusterView};
use crate::config::ServerConfig;
use crate::stats::{self, Counted, ServerStats};

/// The version Shoal reports: the memcached version whose behaviour it matches, then its own.
pub const VERSION: &str = concat!("1.6.18-shoal-", env!("CARGO_PKG_VERSION"));

/// Shared by every connection of a server.
#[derive(Debug)]
pub struct Dispatcher<B> {
    backend: B,
    config: ServerConfig,
    stats: ServerStats,
    verbosity: AtomicU32,
    shutdown: watch::Sender<bool>,
    cluster: Option<Arc<dyn ClusterView>>,
}

impl<B: Backend> Dispatcher<B> {
    /// A dispatcher over `backend`, for a single node.
    pub fn new(backend: B, config: ServerConfig) -> Arc<Dispatcher<B>> {
        Self::with_cluster(backend, config, None)
    }

    /// A dispatcher over `backend` that reports `cluster` in `stats cluster` (None: a
    /// single node).
    pub fn with_cluster(
        backend: B,
        config: ServerConfig,
        cluster: Option<Arc<dyn ClusterView>>,
    ) -> Arc<Dispatcher<B>> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Dispatcher {
            backend,
            verbosity: AtomicU32::new(config.verbosity),
            config,
            stats: ServerStats::default(),
            shutdown,
            cluster,
        })
    }

    /// The backend item commands go to.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// A receiver that turns true when the server must stop.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Asks every part of the server to stop.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Executes one command.
    pub async fn dispatch(&self, command: Command) -> Outcome {
        let counted = Counted::of(&command);
        let outcome = match &command {
            Command::Stats(group) => return self.stats_outcome(group),
            Command::Version => return Outcome::Version(VERSION.to_string()),
            Command::Verbosity(level) => {
                self.verbosity.store(*level, Relaxed);
                return Outcome::Ok;
            }
            Command::NoOp => return Outcome::NoOp,
            Command::Quit => return Outcome::Quit,
            Command::Shutdown(_) if !self.config.allow_shutdown => {
                return Outcome::ShutdownDisabled
            }
            Command::Shutdown(ShutdownMode::Invalid) => return Outcome::UnknownCommand,
            Command::Shutdown(_) => {
                self.request_shutdown();
                return Outcome::ShuttingDown;
            }
            _ => self.backend.execute(command).await,
        };
        self.stats.count(counted, &outcome);
        outcome
    }

    fn stats_outcome(&self, group: &StatsGroup) -> Outcome {
        let store = self.backend.store_stats();
        match group {
            StatsGroup::General => {
                Outcome::Stats(self.stats.general(&self.config, &store, VERSION))
            }
            StatsGroup::Settings => {
                Outcome::Stats(stats::settings(&self.config, self.verbosity.load(Relaxed)))
            }
            StatsGroup::Items => Outcome::Stats(stats::items(&store)),
            StatsGroup::Slabs => Outcome::Stats(stats::slabs(&store)),
            StatsGroup::Sizes => {
                Outcome::Stats(vec![("sizes_status".to_string(), "disabled".to_string())])
            }
            StatsGroup::Reset => {
                self.stats.reset();
                Outcome::Reset
            }
            StatsGroup::Cluster => Outcome::Stats(cluster::stats(self.cluster.as_deref())),
            StatsGroup::Conns | StatsGroup::Other(_) => Outcome::UnknownCommand,
        }
    }
}

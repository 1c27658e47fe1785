//! The settings a server runs with, already resolved from flags, config file and defaults.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_proto::Limits;
use shoal_store::StoreConfig;

/// Everything the server needs to know to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The TCP addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Maximum simultaneous client connections (memcached's -c); more are refused.
    pub max_connections: usize,
    /// The UDP port (memcached's -U), on every listening IP; 0 is off, the default.
    pub udp_port: u16,
    /// Close a connection that neither sends nor reads for this long (memcached's
    /// `-o idle_timeout`); None, the default, never does.
    pub idle_timeout: Option<Duration>,
    /// Worker threads (memcached's -t).
    pub threads: usize,
    /// Whether the `shutdown` command is allowed (memcached's -A).
    pub allow_shutdown: bool,
    /// Initial verbosity (memcached's -v count).
    pub verbosity: u32,
    /// Parser limits.
    pub limits: Limits,
    /// Storage engine settings.
    pub store: StoreConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let store = StoreConfig::default();
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 11211))],
            max_connections: 1024,
            udp_port: 0,
            idle_timeout: None,
            threads: 4,
            allow_shutdown: false,
            verbosity: 0,
            limits: Limits {
                item_size_max: store.item_size_max,
                ..Limits::default()
            },
            store,
        }
    }
}

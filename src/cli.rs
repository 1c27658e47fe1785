//! The command line: memcached's own flags (so existing init scripts keep working), their
//! long forms, and Shoal's subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Shoal: a memcached-compatible in-memory cache.
#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Cli {
    /// What to run; without a subcommand, a server.
    #[command(subcommand)]
    pub command: Option<Subcommands>,
    /// Server options, when no subcommand is given.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shoal's subcommands.
// Parsed once at start: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Subcommands {
    /// Run a cache node (the default).
    #[command(args_override_self = true)]
    Server(ServerArgs),
    /// Inspect a running cluster.
    Cluster(ClusterArgs),
}

/// `shoal cluster ...`: tools that talk to a running cluster.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The `shoal cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print the members as one node sees them: state, partitions held, items.
    Status {
        /// The node to ask: HOST:PORT of its memcached client port.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:11211")]
        node: String,
    },
}

/// A node's options. Every one may also come from the config file; the command line wins.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// TOML config file with the same settings (long names, with '_' for '-').
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP port to listen on [default: 11211].
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,
    /// Interface(s) to listen on, comma-separated, each IP or IP:PORT [default: 127.0.0.1].
    /// Listening on every interface takes an explicit `-l 0.0.0.0`.
    #[arg(short = 'l', long = "listen", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Item memory in megabytes [default: 64].
    #[arg(short = 'm', long = "memory-limit", value_name = "MB")]
    pub memory_limit: Option<u64>,
    /// Maximum simultaneous connections [default: 1024].
    #[arg(short = 'c', long = "conn-limit", value_name = "N")]
    pub conn_limit: Option<usize>,
    /// Worker threads [default: 4].
    #[arg(short = 't', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Largest item, in bytes with an optional k or m suffix [default: 1m].
    #[arg(short = 'I', long = "max-item-size", value_name = "SIZE")]
    pub max_item_size: Option<String>,
    /// UDP port on the listening interfaces, 0 is off [default: 0]. UDP speaks memcached's
    /// 8-byte frame header; each request must fit in one datagram.
    #[arg(short = 'U', long = "udp-port", value_name = "PORT")]
    pub udp_port: Option<u16>,
    /// Close connections idle for this many seconds, 0 is never (memcached's
    /// `-o idle_timeout`) [default: 0].
    #[arg(long = "idle-timeout", value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Longest request line, in bytes with an optional k or m suffix; a longer line
    /// closes the connection, except a get line, answered piece by piece [default: 64k].
    #[arg(long = "max-line", value_name = "SIZE")]
    pub max_line: Option<String>,
    /// Most keys one get line may ask for; more get `CLIENT_ERROR too many keys in one
    /// get`. 0 is no limit, as in memcached [default: 0].
    #[arg(long = "max-get-keys", value_name = "N")]
    pub max_get_keys: Option<usize>,
    /// Join a cluster: the UDP address (IP:PORT) to gossip membership on. Without it the
    /// node runs alone and starts no cluster machinery.
    #[arg(long = "cluster-listen", value_name = "ADDR:PORT")]
    pub cluster_listen: Option<String>,
    /// Cluster members to announce this node to, comma-separated ADDR:PORT gossip
    /// addresses (needs --cluster-listen); the first node of a cluster needs none.
    #[arg(long = "join", value_name = "ADDR:PORT[,ADDR:PORT...]")]
    pub join: Option<String>,
    /// Copies of each partition, capped at the live members (needs --cluster-listen)
    /// [default: 2].
    #[arg(long = "replicas", value_name = "R")]
    pub replicas: Option<usize>,
    /// Seconds a node started without --join waits for members that knew it (a restart)
    /// before it founds a new cluster alone (needs --cluster-listen) [default: 4].
    #[arg(long = "bootstrap-wait", value_name = "SECONDS")]
    pub bootstrap_wait: Option<u64>,
    /// Verbose logging; -vv for more.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Return an error when memory is exhausted instead of evicting.
    #[arg(short = 'M', long = "disable-evictions")]
    pub disable_evictions: bool,
    /// Do not use CAS values.
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Allow the `shutdown` command.
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
}

//! Resolving a node's settings: command line over config file over defaults, validated
//! into a [`ServerConfig`].

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use shoal_proto::Limits;
use shoal_server::ServerConfig;
use shoal_store::StoreConfig;

use crate::cli::ServerArgs;

/// The config file: the long option names, with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    port: Option<u16>,
    listen: Option<String>,
    memory_limit: Option<u64>,
    conn_limit: Option<usize>,
    threads: Option<usize>,
    max_item_size: Option<String>,
    udp_port: Option<u16>,
    idle_timeout: Option<u64>,
    max_line: Option<String>,
    max_get_keys: Option<usize>,
    cluster_listen: Option<String>,
    join: Option<String>,
    replicas: Option<usize>,
    bootstrap_wait: Option<u64>,
    verbose: Option<u8>,
    disable_evictions: Option<bool>,
    disable_cas: Option<bool>,
    enable_shutdown: Option<bool>,
}

impl FileSettings {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("bad config file {}", path.display()))
    }
}

/// The smallest `--max-line`: a little more than memcached's 2048-byte line rule.
const MIN_MAX_LINE: usize = 4 * 1024;
/// The largest `--max-line`: every connection may buffer this much.
const MAX_MAX_LINE: usize = 16 * 1024 * 1024;

/// Parses memcached's item size syntax: bytes, or a number with a `k` or `m` suffix.
pub fn parse_size(text: &str) -> Result<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1024),
        Some((i, 'm' | 'M')) => (&text[..i], 1024 * 1024),
        _ => (text, 1),
    };
    let n: usize = digits
        .parse()
        .with_context(|| format!("bad size {text:?}: expected bytes, or a number with k or m"))?;
    n.checked_mul(unit).context("size too large")
}

/// The default `--replicas`.
pub const DEFAULT_REPLICAS: usize = 2;

/// The default `--bootstrap-wait`, in seconds: longer than the 2 s in which members
/// re-announce themselves to a member they hold down.
pub const DEFAULT_BOOTSTRAP_WAIT: u64 = 4;

/// How a clustered node finds its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The UDP gossip address (`--cluster-listen`).
    pub listen: SocketAddr,
    /// Members to announce ourselves to (`--join`).
    pub seeds: Vec<SocketAddr>,
    /// Wanted copies of each partition (`--replicas`), at least 1.
    pub replicas: usize,
    /// How long a node without seeds waits for members before founding a cluster.
    pub bootstrap_wait: std::time::Duration,
}

/// Everything a node needs besides the server config.
#[derive(Debug)]
pub struct NodeSettings {
    /// The server configuration.
    pub server: ServerConfig,
    /// The cluster settings; None for a single node.
    pub cluster: Option<ClusterSettings>,
    /// The verbosity for logging.
    pub verbose: u8,
}

/// Combines the command line, the config file and the defaults.
pub fn resolve(args: &ServerArgs) -> Result<NodeSettings> {
    let file = match &args.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    let port = args.port.or(file.port).unwrap_or(11211);
    let listen_text = args
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let listen = parse_listen(&listen_text, port)?;
    let memory_mb = args.memory_limit.or(file.memory_limit).unwrap_or(64);
    if memory_mb == 0 {
        bail!("-m must be at least 1 megabyte");
    }
    let item_size_max = match args.max_item_size.clone().or(file.max_item_size) {
        Some(text) => parse_size(&text)?,
        None => 1024 * 1024,
    };
    if !(1024..=1024 * 1024 * 1024).contains(&item_size_max) {
        bail!("-I must be between 1k and 1024m");
    }
    let max_bytes = usize::try_from(memory_mb)
        .ok()
        .and_then(|mb| mb.checked_mul(1024 * 1024))
        .context("-m is too large")?;
    if item_size_max > max_bytes / 2 {
        bail!("-I cannot be larger than half of -m ({memory_mb} megabytes)");
    }
    let udp_port = args.udp_port.or(file.udp_port).unwrap_or(0);
    let idle_timeout = match args.idle_timeout.or(file.idle_timeout).unwrap_or(0) {
        0 => None,
        secs => Some(std::time::Duration::from_secs(secs)),
    };
    let max_line = match args.max_line.clone().or(file.max_line) {
        Some(text) => parse_size(&text)?,
        None => Limits::default().max_line,
    };
    if !(MIN_MAX_LINE..=MAX_MAX_LINE).contains(&max_line) {
        bail!("--max-line must be between 4k and 16m");
    }
    let threads = args.threads.or(file.threads).unwrap_or(4);
    if threads == 0 {
        bail!("-t must be at least 1");
    }
    let conn_limit = args.conn_limit.or(file.conn_limit).unwrap_or(1024);
    if conn_limit == 0 {
        bail!("-c must be at least 1");
    }
    let cluster = resolve_cluster(
        args.cluster_listen.clone().or(file.cluster_listen),
        args.join.clone().or(file.join),
        args.replicas.or(file.replicas),
        args.bootstrap_wait.or(file.bootstrap_wait),
    )?;
    let verbose = if args.verbose > 0 {
        args.verbose
    } else {
        file.verbose.unwrap_or(0)
    };
    let store = StoreConfig {
        max_bytes,
        item_size_max,
        evict: !(args.disable_evictions || file.disable_evictions.unwrap_or(false)),
        use_cas: !(args.disable_cas || file.disable_cas.unwrap_or(false)),
    };
    let server = ServerConfig {
        listen,
        max_connections: conn_limit,
        udp_port,
        idle_timeout,
        threads,
        allow_shutdown: args.enable_shutdown || file.enable_shutdown.unwrap_or(false),
        verbosity: u32::from(verbose),
        limits: Limits {
            item_size_max,
            max_line,
            max_get_keys: args.max_get_keys.or(file.max_get_keys).unwrap_or(0),
        },
        store,
    };
    Ok(NodeSettings {
        server,
        cluster,
        verbose,
    })
}

/// Validates the cluster flags: none of them without `--cluster-listen`.
fn resolve_cluster(
    listen: Option<String>,
    join: Option<String>,
    replicas: Option<usize>,
    bootstrap_wait: Option<u64>,
) -> Result<Option<ClusterSettings>> {
    let Some(listen) = listen else {
        if join.is_some() {
            bail!("--join needs --cluster-listen (the UDP address this node gossips on)");
        }
        if replicas.is_some() {
            bail!("--replicas needs --cluster-listen (a single node keeps one copy)");
        }
        if bootstrap_wait.is_some() {
            bail!("--bootstrap-wait needs --cluster-listen");
        }
        return Ok(None);
    };
    let listen = resolve_addr(&listen, "--cluster-listen")?;
    let mut seeds = Vec::new();
    for part in join.iter().flat_map(|j| j.split(',')).map(str::trim) {
        if !part.is_empty() {
            seeds.push(resolve_addr(part, "--join")?);
        }
    }
    let replicas = replicas.unwrap_or(DEFAULT_REPLICAS);
    if replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    Ok(Some(ClusterSettings {
        listen,
        seeds,
        replicas,
        bootstrap_wait: std::time::Duration::from_secs(
            bootstrap_wait.unwrap_or(DEFAULT_BOOTSTRAP_WAIT),
        ),
    }))
}

/// Resolves one `HOST:PORT` (or `IP:PORT`) to its first address.
fn resolve_addr(text: &str, flag: &str) -> Result<SocketAddr> {
    text.to_socket_addrs()
        .with_context(|| format!("bad {flag} address {text:?}: expected ADDR:PORT"))?
        .next()
        .with_context(|| format!("{flag} address {text:?} resolves to nothing"))
}

/// Parses `-l`: comma-separated IPs or IP:PORTs; a bare IP takes `port`.
fn parse_listen(text: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr = if let Ok(ip) = part.trim_matches(['[', ']']).parse::<IpAddr>() {
            SocketAddr::new(ip, port)
        } else {
            part.parse::<SocketAddr>()
                .with_context(|| format!("bad listen address {part:?}"))?
        };
        addrs.push(addr);
    }
    if addrs.is_empty() {
        bail!("-l needs at least one address");
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_memcached_suffixes() {
        assert_eq!(parse_size("1m").unwrap(), 1024 * 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn defaults_are_safe() {
        let node = resolve(&ServerArgs::default()).unwrap();
        assert_eq!(node.server.listen, vec!["127.0.0.1:11211".parse().unwrap()]);
        assert_eq!(node.server.store.max_bytes, 64 * 1024 * 1024);
        assert_eq!(node.server.store.item_size_max, 1024 * 1024);
        assert!(node.server.store.evict);
        assert_eq!(node.server.udp_port, 0, "UDP is off by default");
        assert_eq!(node.server.idle_timeout, None);
        assert_eq!(node.server.limits.max_line, 64 * 1024);
    }

    #[test]
    fn idle_timeout_udp_and_max_line_come_from_flags_or_file() {
        let dir = std::env::temp_dir().join(format!("shoal-settings-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shoal.toml");
        std::fs::write(
            &path,
            "idle_timeout = 30\nudp_port = 9000\nmax_line = \"8k\"\nmax_get_keys = 100\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(path),
            ..ServerArgs::default()
        };
        let node = resolve(&args).unwrap();
        assert_eq!(
            node.server.idle_timeout,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(node.server.udp_port, 9000);
        assert_eq!(node.server.limits.max_line, 8 * 1024);
        assert_eq!(node.server.limits.max_get_keys, 100);
        let args = ServerArgs {
            idle_timeout: Some(0),
            max_line: Some("100".into()),
            ..args
        };
        assert!(resolve(&args).is_err(), "a 100-byte line limit is refused");
        let args = ServerArgs {
            max_line: None,
            ..args
        };
        assert_eq!(resolve(&args).unwrap().server.idle_timeout, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cluster_flags_need_cluster_listen() {
        let node = resolve(&ServerArgs::default()).unwrap();
        assert_eq!(node.cluster, None, "no cluster without --cluster-listen");
        let join_alone = ServerArgs {
            join: Some("127.0.0.1:7000".into()),
            ..ServerArgs::default()
        };
        let error = resolve(&join_alone).unwrap_err().to_string();
        assert!(error.contains("--join needs --cluster-listen"), "{error}");
        let replicas_alone = ServerArgs {
            replicas: Some(3),
            ..ServerArgs::default()
        };
        assert!(resolve(&replicas_alone).is_err());
        let clustered = ServerArgs {
            cluster_listen: Some("127.0.0.1:7001".into()),
            join: Some("127.0.0.1:7000, 127.0.0.1:7002".into()),
            ..ServerArgs::default()
        };
        let cluster = resolve(&clustered).unwrap().cluster.unwrap();
        assert_eq!(cluster.listen, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(cluster.seeds.len(), 2);
        assert_eq!(cluster.replicas, DEFAULT_REPLICAS);
        let zero = ServerArgs {
            replicas: Some(0),
            ..clustered.clone()
        };
        let error = resolve(&zero).unwrap_err().to_string();
        assert!(error.contains("at least 1"), "{error}");
        let bad = ServerArgs {
            join: Some("nowhere".into()),
            ..clustered
        };
        assert!(resolve(&bad).is_err(), "a seed without a port is refused");
    }

    #[test]
    fn cluster_settings_come_from_the_config_file() {
        let dir = std::env::temp_dir().join(format!("shoal-settings-cl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shoal.toml");
        std::fs::write(
            &path,
            "cluster_listen = \"127.0.0.1:7100\"\njoin = \"127.0.0.1:7000\"\nreplicas = 3\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(path),
            ..ServerArgs::default()
        };
        let cluster = resolve(&args).unwrap().cluster.unwrap();
        assert_eq!(cluster.listen.port(), 7100);
        assert_eq!(cluster.seeds, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(cluster.replicas, 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn listen_takes_ips_and_ports() {
        let addrs = parse_listen("127.0.0.1, [::1]:5000", 7).unwrap();
        assert_eq!(addrs[0], "127.0.0.1:7".parse().unwrap());
        assert_eq!(addrs[1], "[::1]:5000".parse().unwrap());
    }

    #[test]
    fn command_line_beats_config_file() {
        let dir = std::env::temp_dir().join(format!("shoal-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shoal.toml");
        std::fs::write(
            &path,
            "port = 4000\nmemory_limit = 8\nmax_item_size = \"2m\"\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(path),
            port: Some(5000),
            ..ServerArgs::default()
        };
        let node = resolve(&args).unwrap();
        assert_eq!(node.server.listen[0].port(), 5000);
        assert_eq!(node.server.store.max_bytes, 8 * 1024 * 1024);
        assert_eq!(node.server.store.item_size_max, 2 * 1024 * 1024);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

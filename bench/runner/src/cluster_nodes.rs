//! A Shoal cluster on loopback for the cluster benchmark: N nodes started with the same
//! flags as the single-node runs plus `--cluster-listen` / `--join` / `--replicas`, each on
//! a free client port and a free cluster port (UDP gossip and TCP node-to-node on the same
//! number), ready once every node sees every member alive; stopped when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::server::{free_port, Kind, Launch, Server};

/// How long a cluster may take to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// One running cluster member.
#[derive(Debug)]
pub struct Node {
    /// The process (its `addr` is the client address).
    pub server: Server,
    /// Its cluster address (gossip and peer RPC).
    pub cluster: SocketAddr,
}

/// A running cluster; every node is stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    /// The members, in start order (the first is the seed the others join).
    pub nodes: Vec<Node>,
}

/// A loopback port free for both TCP and UDP a moment ago.
fn free_cluster_port() -> Result<u16> {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for both TCP and UDP")
}

/// The exact command line of a cluster node: the single-node flags, then the cluster ones.
pub fn node_command_line(
    launch: &Launch,
    port: u16,
    cluster_port: u16,
    join: Option<u16>,
    replicas: usize,
) -> Vec<String> {
    let mut argv = launch.command_line(Kind::Shoal, port);
    argv.push("--cluster-listen".into());
    argv.push(format!("127.0.0.1:{cluster_port}"));
    if let Some(seed) = join {
        argv.push("--join".into());
        argv.push(format!("127.0.0.1:{seed}"));
    }
    argv.push("--replicas".into());
    argv.push(replicas.to_string());
    argv
}

impl Cluster {
    /// Starts `size` nodes with `replicas` owners per partition and waits until every node
    /// reports `size` members, all alive.
    pub fn start(launch: &Launch, size: usize, replicas: usize) -> Result<Cluster> {
        let mut nodes: Vec<Node> = Vec::with_capacity(size);
        for _ in 0..size {
            let port = free_port()?;
            let cluster_port = free_cluster_port()?;
            let join = nodes.first().map(|seed| seed.cluster.port());
            let argv = node_command_line(launch, port, cluster_port, join, replicas);
            nodes.push(Node {
                server: Server::spawn(&argv, port)?,
                cluster: SocketAddr::from(([127, 0, 0, 1], cluster_port)),
            });
        }
        let cluster = Cluster { nodes };
        cluster.wait_formed(size as u64)?;
        Ok(cluster)
    }

    fn wait_formed(&self, size: u64) -> Result<()> {
        let started = Instant::now();
        loop {
            let mut formed = true;
            for node in &self.nodes {
                let stats = stats(node.server.addr, "cluster")?;
                let count = |name: &str| stats.get(name).and_then(|v| v.parse::<u64>().ok());
                if count("cluster_members") != Some(size)
                    || count("cluster_members_alive") != Some(size)
                {
                    formed = false;
                    break;
                }
            }
            if formed {
                return Ok(());
            }
            if started.elapsed() > FORM_TIMEOUT {
                bail!(
                    "the {size}-node cluster did not form within {} s",
                    FORM_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cluster addresses of every member.
    pub fn members(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.cluster).collect()
    }

    /// The process ids of every member.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.server.pid()).collect()
    }
}

/// `stats GROUP` (empty: plain `stats`) of the server at `addr`, as a name -> value map.
pub fn stats(addr: SocketAddr, group: &str) -> Result<HashMap<String, String>> {
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = if group.is_empty() {
        "stats\r\n".to_string()
    } else {
        format!("stats {group}\r\n")
    };
    stream.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"END\r\n") {
        let n = stream
            .read(&mut chunk)
            .with_context(|| format!("no stats reply from {addr}"))?;
        if n == 0 {
            bail!("{addr} closed the connection during stats");
        }
        if buf.len() > 1 << 20 {
            bail!("stats reply from {addr} too long");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("STAT ")?.splitn(2, ' ');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

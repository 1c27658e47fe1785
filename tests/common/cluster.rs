//! A multi-process cluster harness: starts N `shoal` nodes on free loopback ports (each
//! with a client port and a gossip port free for both UDP and TCP, since node-to-node RPC
//! listens on TCP at the gossip port number), has them join the first node, waits until
//! every node sees N live members, and offers fault injection (SIGKILL, SIGSTOP/SIGCONT)
//! and condition waits. Every child is SIGKILLed on Drop, even a stopped one, even when
//! the test panics; a panicking test also prints the tail of every node's log. A killed
//! node can be restarted with exactly its old arguments and ports (as a supervisor would),
//! and nodes can be added to a running cluster.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shoal_cluster::{partition_of, NodeId, PlacementMap};

use super::process::{free_port, shoal_binary, target_is_memcached};
use super::TextClient;

/// How long a cluster may take to form, or to notice a failure or a return.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node may take to answer `version` after being spawned.
const NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a node's start is retried on new ports when it exits early.
const START_ATTEMPTS: usize = 5;
/// How many log lines per node a failing test prints.
const LOG_TAIL_LINES: usize = 40;
/// How many times a restart on the same ports is tried when the node exits early (its
/// ports still held a moment after the kill), and the pause between tries.
const RESTART_ATTEMPTS: usize = 10;
const RESTART_PAUSE: Duration = Duration::from_millis(200);
/// How long [`Cluster::wait_settled`]'s condition must hold without a break before the
/// cluster counts as settled (a view change may start a sync a moment after it is seen).
const SETTLE_STABLE: Duration = Duration::from_millis(1000);

/// True (after saying so on stderr) when `SHOAL_TEST_TARGET=memcached`: a memcached
/// cannot form a cluster, so cluster tests have nothing to check against it.
pub fn skip_for_memcached() -> bool {
    let skip = target_is_memcached();
    if skip {
        eprintln!("cluster tests need Shoal nodes; nothing to run against memcached");
    }
    skip
}

/// What the harness did to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running normally.
    Running,
    /// Paused with SIGSTOP.
    Stopped,
    /// Killed with SIGKILL (or otherwise exited).
    Killed,
}

/// One `shoal` node of a [`Cluster`].
struct Node {
    child: Child,
    /// The exact arguments the node was spawned with (reused by [`Cluster::restart`]).
    args: Vec<String>,
    client_port: u16,
    gossip: SocketAddr,
    log: PathBuf,
    state: NodeState,
}

impl Node {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("<no log: {e}>"))
    }
}

/// A running cluster of `shoal` processes on loopback.
pub struct Cluster {
    nodes: Vec<Node>,
    replicas: usize,
    /// The extra server arguments every node got (reused by [`Cluster::add_node`]).
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes with `--replicas replicas` (nodes 1.. join node 0) and waits
    /// until every node's `stats cluster` reports `cluster_members_alive n`.
    pub fn start(n: usize, replicas: usize) -> Cluster {
        Cluster::start_with_args(n, replicas, &[])
    }

    /// [`Cluster::start`] with `extra` server arguments on every node (e.g. `-m 256`).
    pub fn start_with_args(n: usize, replicas: usize, extra: &[&str]) -> Cluster {
        let per_node = vec![extra; n];
        Cluster::start_with_node_args(replicas, &per_node)
    }

    /// A cluster of `per_node.len()` nodes, node `i` with the extra arguments
    /// `per_node[i]` ([`Cluster::add_node`] uses node 0's).
    pub fn start_with_node_args(replicas: usize, per_node: &[&[&str]]) -> Cluster {
        let n = per_node.len();
        assert!(n > 0, "a cluster needs a node");
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(n),
            replicas,
            extra: per_node[0].iter().map(|s| s.to_string()).collect(),
        };
        for (i, extra) in per_node.iter().enumerate() {
            let join = cluster.nodes.first().map(|first| first.gossip);
            let node = spawn_node(i, join, replicas, extra);
            cluster.nodes.push(node);
        }
        let started = Instant::now();
        for i in 0..n {
            cluster.wait_alive(i, n);
        }
        eprintln!(
            "cluster of {n} (R={replicas}) formed {:?} after the last start; client ports {:?}",
            started.elapsed(),
            cluster.ports()
        );
        cluster
    }

    /// How many nodes were started.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The `--replicas` every node was started with.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Node `i`'s memcached client port (on 127.0.0.1).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].client_port
    }

    /// Every node's client port, in node order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.client_port).collect()
    }

    /// Node `i`'s memcached client address.
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client_port))
    }

    /// Node `i`'s cluster address (UDP gossip and TCP node-to-node RPC).
    pub fn gossip_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].gossip
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.id()
    }

    /// What the harness did to node `i`.
    pub fn state(&self, i: usize) -> NodeState {
        self.nodes[i].state
    }

    /// A new text-protocol connection to node `i`.
    pub fn client(&self, i: usize) -> TextClient {
        self.assert_running(i);
        TextClient::connect(self.port(i))
    }

    /// Node `i`'s `stats` (or `stats ARG`), on a fresh connection.
    pub fn stats(&self, i: usize, arg: Option<&str>) -> HashMap<String, String> {
        self.client(i).stats(arg)
    }

    /// `cluster_members_alive` as node `i` sees it.
    pub fn alive_seen_by(&self, i: usize) -> usize {
        let stats = self.stats(i, Some("cluster"));
        let value = stats
            .get("cluster_members_alive")
            .unwrap_or_else(|| panic!("node {i}: no cluster_members_alive in {stats:?}"));
        value.parse().expect("numeric cluster_members_alive")
    }

    /// Node `i`'s `curr_items` (plain `stats`).
    pub fn curr_items(&self, i: usize) -> u64 {
        let stats = self.stats(i, None);
        stats
            .get("curr_items")
            .unwrap_or_else(|| panic!("node {i}: no curr_items in {stats:?}"))
            .parse()
            .expect("numeric curr_items")
    }

    /// Field `name` of node `i`'s `stats cluster` (e.g. `cluster_members_alive`,
    /// `partitions_syncing`), as a number.
    pub fn cluster_stat(&self, i: usize, name: &str) -> u64 {
        let stats = self.stats(i, Some("cluster"));
        stats
            .get(name)
            .unwrap_or_else(|| panic!("node {i}: no {name} in {stats:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("node {i}: {name} is not a number: {e}"))
    }

    /// Waits until every node in `live` reports `cluster_members_alive == live.len()` and
    /// `partitions_syncing == 0`, and that has held for [`SETTLE_STABLE`] without a
    /// break; returns how long it took, or panics with every log after `timeout`.
    pub fn wait_settled(&self, live: &[usize], timeout: Duration) -> Duration {
        let mut since: Option<Instant> = None;
        let took = self.wait_until(
            &format!("nodes {live:?} to settle (all alive, nothing syncing)"),
            timeout,
            || {
                let settled = live.iter().all(|&i| {
                    let stats = self.stats(i, Some("cluster"));
                    let field = |name: &str| stats.get(name).and_then(|v| v.parse::<u64>().ok());
                    field("cluster_members_alive") == Some(live.len() as u64)
                        && field("partitions_syncing") == Some(0)
                });
                if !settled {
                    since = None;
                    return false;
                }
                since.get_or_insert_with(Instant::now).elapsed() >= SETTLE_STABLE
            },
        );
        eprintln!("nodes {live:?} settled {took:?} after the wait began");
        took
    }

    /// Waits until node `observer` reports `count` live members; returns how long that
    /// took, or panics with every log after [`CLUSTER_TIMEOUT`].
    pub fn wait_alive(&self, observer: usize, count: usize) -> Duration {
        self.wait_until(
            &format!("node {observer} to see {count} alive members"),
            CLUSTER_TIMEOUT,
            || self.alive_seen_by(observer) == count,
        )
    }

    /// Polls `condition` every 10 ms until it holds (returns the time taken) or
    /// `timeout` passes (panics, naming `what`, with every node's log).
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if condition() {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs node `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.child.kill().expect("SIGKILL");
        node.child.wait().expect("reaping a killed node");
        node.state = NodeState::Killed;
    }

    /// Stops node `i` with SIGTERM (a graceful leave, as `systemctl stop` does) and waits
    /// until it has exited; panics if it has not within `timeout`.
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> Duration {
        self.assert_running(i);
        let started = Instant::now();
        signal(self.pid(i), "TERM");
        loop {
            if self.nodes[i].child.try_wait().expect("try_wait").is_some() {
                self.nodes[i].state = NodeState::Killed;
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                panic!(
                    "node {i} did not exit within {timeout:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Pauses node `i` with SIGSTOP.
    pub fn stop(&mut self, i: usize) {
        self.assert_running(i);
        signal(self.pid(i), "STOP");
        self.nodes[i].state = NodeState::Stopped;
    }

    /// Resumes node `i` (paused by [`Cluster::stop`]) with SIGCONT.
    pub fn cont(&mut self, i: usize) {
        assert_eq!(self.state(i), NodeState::Stopped, "node {i} is not stopped");
        signal(self.pid(i), "CONT");
        self.nodes[i].state = NodeState::Running;
    }

    /// Re-spawns node `i`, which must have been killed, with exactly the arguments and
    /// ports it had (as a supervisor's restart would), appending to its log, and waits
    /// until it answers `version`. While the old ports are still held the new process may
    /// exit at once: that is retried on the same ports after a short pause.
    pub fn restart(&mut self, i: usize) {
        assert_eq!(self.state(i), NodeState::Killed, "node {i} is not killed");
        let node = &mut self.nodes[i];
        let mut failures = String::new();
        for attempt in 1..=RESTART_ATTEMPTS {
            let mut log_file = std::fs::OpenOptions::new()
                .append(true)
                .open(&node.log)
                .expect("opening node log file to append");
            writeln!(
                log_file,
                "--- harness: restart attempt {attempt} of node {i} with the same arguments ---"
            )
            .expect("writing to node log file");
            node.child = Command::new(shoal_binary())
                .args(&node.args)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("cloning log file handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning shoal {:?}: {e}", node.args));
            node.state = NodeState::Running;
            match wait_ready(node) {
                Ok(()) => return,
                Err(why) => {
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    node.state = NodeState::Killed;
                    failures.push_str(&format!("attempt {attempt}: {why}\n"));
                    if why.starts_with("did not answer") {
                        break;
                    }
                    std::thread::sleep(RESTART_PAUSE);
                }
            }
        }
        panic!(
            "restarting node {i} (`shoal {}`) failed:\n{failures}output:\n{}",
            node.args.join(" "),
            node.output()
        );
    }

    /// Spawns one more node (fresh ports, the same `--replicas` and extra arguments as
    /// the others) joining node `join`'s cluster address, waits until it answers
    /// `version`, and returns its index. It does not wait for membership to agree.
    pub fn add_node(&mut self, join: usize) -> usize {
        let index = self.nodes.len();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let node = spawn_node(index, Some(self.gossip_addr(join)), self.replicas, &extra);
        self.nodes.push(node);
        index
    }

    /// Whether node `i`'s process has exited (without reaping it twice).
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        self.nodes[i].child.try_wait().expect("try_wait")
    }

    /// The owners (node indices, primary first) of `key` when exactly the nodes in
    /// `live` are alive, by the same placement the nodes compute.
    pub fn owners_among(&self, key: &[u8], live: &[usize]) -> Vec<usize> {
        let ids: Vec<NodeId> = live
            .iter()
            .map(|&i| NodeId::new(self.gossip_addr(i), 1))
            .collect();
        let map = PlacementMap::compute(&ids, self.replicas);
        map.owners(partition_of(key))
            .iter()
            .map(|owner| {
                (0..self.len())
                    .find(|&i| self.gossip_addr(i) == owner.addr())
                    .expect("an owner is a node of this cluster")
            })
            .collect()
    }

    /// The owners of `key` (node indices, primary first) with every node alive.
    pub fn owners_of(&self, key: &[u8]) -> Vec<usize> {
        let all: Vec<usize> = (0..self.len()).collect();
        self.owners_among(key, &all)
    }

    /// Everything node `i` logged so far.
    pub fn output(&self, i: usize) -> String {
        self.nodes[i].output()
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let text = node.output();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "--- node {i} ({:?}, client {}, cluster {}, log {}) last {} lines ---\n{}\n",
                node.state,
                node.client_port,
                node.gossip,
                node.log.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    fn assert_running(&self, i: usize) {
        assert_eq!(self.state(i), NodeState::Running, "node {i} is not running");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster logs at the failure:\n{}", self.logs());
        }
        for node in &mut self.nodes {
            // SIGKILL ends a SIGSTOPped process too.
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

/// Spawns node `index` on fresh ports, retrying on new ports when it exits early (a port
/// taken between choosing and binding), and waits until it answers `version`.
fn spawn_node(index: usize, join: Option<SocketAddr>, replicas: usize, extra: &[&str]) -> Node {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let mut failures = String::new();
    for attempt in 1..=START_ATTEMPTS {
        let client_port = free_port();
        let gossip = SocketAddr::from(([127, 0, 0, 1], free_cluster_port(client_port)));
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "cluster-{}-{serial}-node{index}-{client_port}.log",
            std::process::id()
        ));
        let log_file = File::create(&log).expect("creating node log file");
        let mut args: Vec<String> = [
            "-U",
            "0",
            "-l",
            "127.0.0.1",
            "-p",
            &client_port.to_string(),
            "-v",
            "--cluster-listen",
            &gossip.to_string(),
            "--replicas",
            &replicas.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(join) = join {
            args.extend(["--join".to_string(), join.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(shoal_binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning log file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning shoal {args:?}: {e}"));
        let mut node = Node {
            child,
            args: args.clone(),
            client_port,
            gossip,
            log,
            state: NodeState::Running,
        };
        match wait_ready(&mut node) {
            Ok(()) => return node,
            Err(why) => {
                failures.push_str(&format!(
                    "attempt {attempt}: `shoal {}` {why}; output:\n{}\n",
                    args.join(" "),
                    node.output()
                ));
                let _ = node.child.kill();
                let _ = node.child.wait();
                if why.starts_with("did not answer") {
                    break;
                }
            }
        }
    }
    panic!("cluster node {index} failed to start:\n{failures}");
}

/// Polls until the node answers `version`, or returns why it did not.
fn wait_ready(node: &mut Node) -> Result<(), String> {
    let deadline = Instant::now() + NODE_STARTUP_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = node.child.try_wait().expect("try_wait") {
            return Err(format!("exited early with {status}"));
        }
        if super::process::answers_version(&SocketAddr::from(([127, 0, 0, 1], node.client_port))) {
            // Another process may own the port while ours died.
            return match node.child.try_wait().expect("try_wait") {
                Some(status) => Err(format!("exited early with {status}")),
                None => Ok(()),
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "did not answer `version` within {NODE_STARTUP_TIMEOUT:?}"
    ))
}

/// A loopback port number that was free a moment ago for both TCP and UDP, and differs
/// from `avoid`.
pub fn free_cluster_port(avoid: u16) -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("binding TCP 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if port != avoid && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("found no loopback port free for both TCP and UDP in 100 tries");
}

/// Sends `name` (e.g. "STOP") to `pid` with the `kill` utility (no `unsafe` in tests).
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

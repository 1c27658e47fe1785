//! A network lab for whole-binary partition tests: `shoal` nodes each in their own Linux
//! network namespace, on one private subnet, with the network between chosen nodes cut
//! and healed while the test (in the root namespace) still reaches every node.
//!
//! Layout, for a lab of n nodes in test process `P` on subnet `10.201.Z.0/24` (Z from
//! `P`, skipping a subnet some other interface already uses):
//!
//! - namespace `shoal-P-sw` holds the bridge `shbP` (the switch);
//! - the root namespace is on the bridge through the veth pair `shvPr` (10.201.Z.1/24)
//!   / `shvPrb`;
//! - node i runs in namespace `shoal-P-i`, on the bridge through the veth pair `eth0`
//!   (10.201.Z.(10+i)/24) / `shvPxi`, and listens on 10.201.Z.(10+i), port 11211 for
//!   clients and port 7000 for the cluster (UDP gossip and TCP node-to-node RPC).
//!
//! The bridge is in a namespace of its own rather than in the root namespace because a
//! host running Docker has `net.bridge.bridge-nf-call-iptables = 1` and an iptables
//! `FORWARD` policy of `DROP`: frames bridged in the root namespace go through that chain
//! and node-to-node traffic would be dropped. A fresh namespace has no iptables rules.
//!
//! [`NetLab::cut`] drops, inside each node's namespace, every IPv4 packet arriving on
//! `eth0` from the other side (an `ip rule ... iif eth0 blackhole`, placed before the
//! `local` table lookup, which is moved from preference 0 to 1000 for that). Packets are
//! discarded silently on arrival, as in a real partition: senders see no error, TCP
//! connections (established or new) and UDP gossip just stop getting through; a route
//! cache entry is invalidated when a rule changes, so established connections are cut
//! too. The root namespace's packets come from 10.201.Z.1, which is never cut.
//!
//! Only `ip` (iproute2) is needed, and root: [`NetLab::new`] panics, naming what is
//! missing, rather than skipping. Leftovers of an earlier run of a process with the same
//! id (namespaces, the root veth) are removed first. On Drop every child is SIGKILLed
//! (even a stopped one, even when the test panics; a panicking test also prints the tail
//! of every node's log) and the namespaces and the root veth are deleted; Drop never
//! panics.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shoal_cluster::{partition_of, NodeId, PlacementMap};

use super::process::{answers_version, shoal_binary};
use super::TextClient;

/// Every node's memcached client port (on its own address).
pub const CLIENT_PORT: u16 = 11211;
/// Every node's cluster port (UDP gossip and TCP node-to-node RPC).
pub const CLUSTER_PORT: u16 = 7000;
/// How long a cluster may take to form, or to notice a cut or a heal.
pub const LAB_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node may take to answer `version` after being spawned.
const NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`NetLab::wait_settled`]'s condition must hold without a break.
const SETTLE_STABLE: Duration = Duration::from_millis(1000);
/// How many log lines per node a failing test prints.
const LOG_TAIL_LINES: usize = 40;
/// How many times a restart is tried when the node exits at once, and the pause between.
const RESTART_ATTEMPTS: usize = 10;
const RESTART_PAUSE: Duration = Duration::from_millis(200);
/// How long a leftover root veth may take to vanish after its namespace is deleted.
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// The interface of a node's namespace that is on the bridge.
const NODE_DEVICE: &str = "eth0";
/// Where the `local` table lookup moves to, so that cut rules can come before it.
const LOCAL_RULE_PREF: u32 = 1000;
/// The preference of the rule in node i's namespace that drops node j's packets is
/// `CUT_RULE_PREF + j`.
const CUT_RULE_PREF: usize = 100;
/// How long [`NetLab::assert_tcp`] waits for a connection.
const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Nodes get 10.201.Z.10 upwards.
const MAX_NODES: usize = 200;

/// What the harness did to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabNodeState {
    /// Not spawned yet.
    NotStarted,
    /// Running normally.
    Running,
    /// Paused with SIGSTOP.
    Stopped,
    /// Killed with SIGKILL (or otherwise exited).
    Killed,
}

/// One node's namespace and, once started, its `shoal` process.
struct LabNode {
    ns: String,
    addr: Ipv4Addr,
    child: Option<Child>,
    /// The `shoal` arguments it was spawned with (reused by [`NetLab::restart`]).
    args: Vec<String>,
    log: PathBuf,
    state: LabNodeState,
}

impl LabNode {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("<no log: {e}>"))
    }
}

/// Network namespaces on a private bridge, with `shoal` nodes started in them.
pub struct NetLab {
    subnet: u8,
    switch_ns: String,
    root_link: String,
    nodes: Vec<LabNode>,
    /// Installed drop rules: (node whose namespace holds it, node whose packets it drops).
    cuts: BTreeSet<(usize, usize)>,
    replicas: usize,
}

impl NetLab {
    /// Creates the switch namespace with its bridge, the root namespace's link to it,
    /// and `n` node namespaces on it (nothing started yet). Panics when not root or
    /// when `ip` is missing.
    pub fn new(n: usize) -> NetLab {
        assert!(
            (1..=MAX_NODES).contains(&n),
            "a lab has 1 to {MAX_NODES} nodes"
        );
        require_root_and_ip();
        let pid = std::process::id();
        remove_leftovers(pid);
        let subnet = free_subnet(pid);
        let mut lab = NetLab {
            subnet,
            switch_ns: format!("shoal-{pid}-sw"),
            root_link: format!("shv{pid}r"),
            nodes: Vec::with_capacity(n),
            cuts: BTreeSet::new(),
            replicas: 0,
        };
        // Everything made so far is in `lab`, so a failing step cleans up on Drop.
        let bridge = format!("shb{pid}");
        let sw = lab.switch_ns.clone();
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "set", "lo", "up"]);
        ip(&["-n", &sw, "link", "add", &bridge, "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", &bridge, "up"]);
        let root_peer = format!("shv{pid}rb");
        ip(&[
            "link",
            "add",
            &lab.root_link,
            "type",
            "veth",
            "peer",
            "name",
            &root_peer,
            "netns",
            &sw,
        ]);
        ip(&[
            "-n", &sw, "link", "set", &root_peer, "master", &bridge, "up",
        ]);
        let root_addr = format!("{}/24", lab.root_addr());
        ip(&["addr", "add", &root_addr, "dev", &lab.root_link]);
        ip(&["link", "set", &lab.root_link, "up"]);
        for i in 0..n {
            let ns = format!("shoal-{pid}-{i}");
            let addr = Ipv4Addr::new(10, 201, subnet, 10 + i as u8);
            ip(&["netns", "add", &ns]);
            lab.nodes.push(LabNode {
                ns: ns.clone(),
                addr,
                child: None,
                args: Vec::new(),
                log: PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("netlab-{pid}-node{i}.log")),
                state: LabNodeState::NotStarted,
            });
            let port = format!("shv{pid}x{i}");
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "link",
                "add",
                NODE_DEVICE,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &sw,
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", &bridge, "up"]);
            let cidr = format!("{addr}/24");
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", NODE_DEVICE]);
            ip(&["-n", &ns, "link", "set", NODE_DEVICE, "up"]);
            // Move the `local` lookup behind the preferences cut rules use.
            let pref = LOCAL_RULE_PREF.to_string();
            ip(&["-n", &ns, "rule", "add", "pref", &pref, "lookup", "local"]);
            ip(&["-n", &ns, "rule", "del", "pref", "0"]);
        }
        eprintln!(
            "netlab: {n} namespaces shoal-{pid}-0.. on bridge {bridge} (namespace {sw}), \
             subnet 10.201.{subnet}.0/24, root namespace at {} on {}",
            lab.root_addr(),
            lab.root_link
        );
        lab
    }

    /// How many node namespaces the lab has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The root namespace's address on the lab's subnet.
    pub fn root_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.subnet, 1)
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.nodes[i].addr
    }

    /// Node `i`'s memcached client address.
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.addr(i), CLIENT_PORT))
    }

    /// Node `i`'s cluster address (UDP gossip and TCP node-to-node RPC).
    pub fn cluster_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.addr(i), CLUSTER_PORT))
    }

    /// Node `i`'s network namespace.
    pub fn namespace(&self, i: usize) -> &str {
        &self.nodes[i].ns
    }

    /// What the harness did to node `i`.
    pub fn state(&self, i: usize) -> LabNodeState {
        self.nodes[i].state
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} was never started"))
            .id()
    }

    /// Starts every node with `--replicas replicas` and `extra` arguments (nodes 1..
    /// join node 0) and waits until every node reports `cluster_members_alive` = all.
    pub fn start_cluster(&mut self, replicas: usize, extra: &[&str]) {
        let n = self.len();
        for i in 0..n {
            let join = (i > 0).then_some(0);
            self.start_node(i, replicas, join, extra);
        }
        let started = Instant::now();
        for i in 0..n {
            self.wait_alive(i, n);
        }
        eprintln!(
            "netlab: cluster of {n} (R={replicas}) formed {:?} after the last start",
            started.elapsed()
        );
    }

    /// Spawns `shoal` in node `i`'s namespace, listening on its address (client port
    /// [`CLIENT_PORT`], cluster port [`CLUSTER_PORT`]), joining node `join` if given,
    /// with output to its log file; waits until it answers `version` from the root
    /// namespace.
    pub fn start_node(&mut self, i: usize, replicas: usize, join: Option<usize>, extra: &[&str]) {
        assert_eq!(
            self.state(i),
            LabNodeState::NotStarted,
            "node {i} was already started"
        );
        self.replicas = replicas;
        let mut args: Vec<String> = [
            "-U",
            "0",
            "-v",
            "-l",
            &self.addr(i).to_string(),
            "-p",
            &CLIENT_PORT.to_string(),
            "--cluster-listen",
            &self.cluster_addr(i).to_string(),
            "--replicas",
            &replicas.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(j) = join {
            args.extend(["--join".to_string(), self.cluster_addr(j).to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.nodes[i].args = args;
        File::create(&self.nodes[i].log).expect("creating node log file");
        self.spawn(i, "start");
        if let Err(why) = self.wait_ready(i) {
            panic!(
                "node {i} (`ip netns exec {} shoal {}`) {why}; output:\n{}",
                self.nodes[i].ns,
                self.nodes[i].args.join(" "),
                self.nodes[i].output()
            );
        }
    }

    /// Spawns node `i`'s process with its recorded arguments, appending to its log.
    fn spawn(&mut self, i: usize, what: &str) {
        let node = &mut self.nodes[i];
        let mut log = OpenOptions::new()
            .append(true)
            .open(&node.log)
            .expect("opening node log file to append");
        writeln!(
            log,
            "--- netlab: {what} of node {i} in {}: shoal {} ---",
            node.ns,
            node.args.join(" ")
        )
        .expect("writing to node log file");
        // `ip netns exec` execs the program (no fork), so the child is `shoal` itself.
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns, shoal_binary()])
            .args(&node.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning ip netns exec {} shoal: {e}", node.ns));
        node.child = Some(child);
        node.state = LabNodeState::Running;
    }

    /// Polls until node `i` answers `version` from the root namespace, or says why not.
    fn wait_ready(&mut self, i: usize) -> Result<(), String> {
        let addr = self.client_addr(i);
        let deadline = Instant::now() + NODE_STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.exited(i) {
                return Err(format!("exited early with {status}"));
            }
            if answers_version(&addr) {
                return match self.exited(i) {
                    Some(status) => Err(format!("exited early with {status}")),
                    None => Ok(()),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "did not answer `version` on {addr} within {NODE_STARTUP_TIMEOUT:?}"
        ))
    }

    /// Whether node `i`'s process has exited (marking it killed if so).
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        let node = &mut self.nodes[i];
        let status = node.child.as_mut()?.try_wait().expect("try_wait")?;
        node.state = LabNodeState::Killed;
        Some(status)
    }

    /// A new text-protocol connection to node `i`, from the root namespace.
    pub fn client(&self, i: usize) -> TextClient {
        assert_eq!(
            self.state(i),
            LabNodeState::Running,
            "node {i} is not running"
        );
        TextClient::connect_addr(self.client_addr(i))
    }

    /// Node `i`'s `stats` (or `stats ARG`), on a fresh connection.
    pub fn stats(&self, i: usize, arg: Option<&str>) -> HashMap<String, String> {
        self.client(i).stats(arg)
    }

    /// Field `name` of node `i`'s `stats cluster` as a number, or None when the binary
    /// has no such field.
    pub fn cluster_stat(&self, i: usize, name: &str) -> Option<u64> {
        let stats = self.stats(i, Some("cluster"));
        stats.get(name).map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("node {i}: {name} = {v:?} is not a number: {e}"))
        })
    }

    /// `cluster_members_alive` as node `i` sees it.
    pub fn alive_seen_by(&self, i: usize) -> u64 {
        self.cluster_stat(i, "cluster_members_alive")
            .unwrap_or_else(|| panic!("node {i}: no cluster_members_alive in `stats cluster`"))
    }

    /// Waits until node `observer` reports `count` live members; returns how long that
    /// took, or panics with every log after [`LAB_TIMEOUT`].
    pub fn wait_alive(&self, observer: usize, count: usize) -> Duration {
        self.wait_until(
            &format!("node {observer} to see {count} alive members"),
            LAB_TIMEOUT,
            || self.alive_seen_by(observer) == count as u64,
        )
    }

    /// Waits until every node in `group` reports `cluster_members_alive == group.len()`
    /// and `partitions_syncing == 0`, and that has held for a second without a break;
    /// returns how long it took, or panics with every log after `timeout`.
    pub fn wait_settled(&self, group: &[usize], timeout: Duration) -> Duration {
        let mut since: Option<Instant> = None;
        let took = self.wait_until(
            &format!("nodes {group:?} to settle (all of them alive, nothing syncing)"),
            timeout,
            || {
                let settled = group.iter().all(|&i| {
                    let stats = self.stats(i, Some("cluster"));
                    let field = |name: &str| stats.get(name).and_then(|v| v.parse::<u64>().ok());
                    field("cluster_members_alive") == Some(group.len() as u64)
                        && field("partitions_syncing") == Some(0)
                });
                if !settled {
                    since = None;
                    return false;
                }
                since.get_or_insert_with(Instant::now).elapsed() >= SETTLE_STABLE
            },
        );
        eprintln!("netlab: nodes {group:?} settled {took:?} after the wait began");
        took
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

    /// Cuts node `i` off from every node in `others`, both ways: each drops whatever
    /// arrives from the other. The root namespace still reaches every node.
    pub fn cut(&mut self, i: usize, others: &[usize]) {
        for &j in others {
            assert_ne!(i, j, "a node cannot be cut off from itself");
            for (at, from) in [(i, j), (j, i)] {
                if self.cuts.insert((at, from)) {
                    let pref = (CUT_RULE_PREF + from).to_string();
                    let source = self.addr(from).to_string();
                    ip(&[
                        "-n",
                        &self.nodes[at].ns,
                        "rule",
                        "add",
                        "pref",
                        &pref,
                        "from",
                        &source,
                        "iif",
                        NODE_DEVICE,
                        "blackhole",
                    ]);
                }
            }
        }
        eprintln!("netlab: node {i} cut off from nodes {others:?}");
    }

    /// Checks, with TCP connections made from inside the namespaces, that node `i` and
    /// each node of `others` reach each other's cluster port (`connected`) or do not
    /// (not `connected`); panics otherwise. A self-check of [`NetLab::cut`] and
    /// [`NetLab::heal`] (gossip is UDP: a cut shows there as members declared down).
    pub fn assert_tcp(&self, i: usize, others: &[usize], connected: bool) {
        let probes: Vec<(usize, usize, Child)> = others
            .iter()
            .flat_map(|&j| [(i, j), (j, i)])
            .map(|(from, to)| (from, to, self.spawn_tcp_probe(from, self.cluster_addr(to))))
            .collect();
        let mut wrong = Vec::new();
        for (from, to, mut probe) in probes {
            let status = probe.wait().expect("waiting for a TCP probe");
            if status.success() != connected {
                wrong.push(format!(
                    "node {from} -> node {to} ({}): {status}",
                    self.cluster_addr(to)
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "TCP between node {i} and nodes {others:?} should be {}, but: {wrong:?}; cuts in \
             place (node, dropping from): {:?}",
            if connected { "possible" } else { "cut" },
            self.cuts
        );
    }

    /// A child that exits successfully if a TCP connection from inside node `from`'s
    /// namespace to `to` is established within [`TCP_PROBE_TIMEOUT`] (bash's `/dev/tcp`
    /// under coreutils' `timeout`).
    fn spawn_tcp_probe(&self, from: usize, to: SocketAddr) -> Child {
        let secs = format!("{:.1}", TCP_PROBE_TIMEOUT.as_secs_f64());
        let script = format!("exec 3<>/dev/tcp/{}/{}", to.ip(), to.port());
        Command::new("ip")
            .args(["netns", "exec", &self.nodes[from].ns, "timeout", &secs])
            .args(["bash", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning a TCP probe in {}: {e}", self.nodes[from].ns))
    }

    /// Undoes [`NetLab::cut`] between node `i` and every node in `others`.
    pub fn heal(&mut self, i: usize, others: &[usize]) {
        for &j in others {
            for (at, from) in [(i, j), (j, i)] {
                if self.cuts.remove(&(at, from)) {
                    let pref = (CUT_RULE_PREF + from).to_string();
                    ip(&["-n", &self.nodes[at].ns, "rule", "del", "pref", &pref]);
                }
            }
        }
        eprintln!("netlab: node {i} reconnected to nodes {others:?}");
    }

    /// Undoes every cut.
    pub fn heal_all(&mut self) {
        let cuts: Vec<(usize, usize)> = self.cuts.iter().copied().collect();
        for (at, from) in cuts {
            self.heal(at, &[from]);
        }
    }

    /// The cuts in place, as (node, node it drops packets from) pairs.
    pub fn cuts(&self) -> Vec<(usize, usize)> {
        self.cuts.iter().copied().collect()
    }

    /// SIGKILLs node `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = node.child.as_mut().expect("killing a node never started");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping a killed node");
        node.state = LabNodeState::Killed;
    }

    /// SIGKILLs and reaps node `i` if it still runs, ignoring errors.
    fn reap(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(child) = node.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.state = LabNodeState::Killed;
    }

    /// Pauses node `i` with SIGSTOP.
    pub fn stop(&mut self, i: usize) {
        assert_eq!(
            self.state(i),
            LabNodeState::Running,
            "node {i} is not running"
        );
        signal(self.pid(i), "STOP");
        self.nodes[i].state = LabNodeState::Stopped;
    }

    /// Resumes node `i` (paused by [`NetLab::stop`]) with SIGCONT.
    pub fn cont(&mut self, i: usize) {
        assert_eq!(
            self.state(i),
            LabNodeState::Stopped,
            "node {i} is not stopped"
        );
        signal(self.pid(i), "CONT");
        self.nodes[i].state = LabNodeState::Running;
    }

    /// Re-spawns node `i`, which must have been killed, with exactly its old arguments
    /// in its namespace, and waits until it answers `version`; an immediate exit (its
    /// ports still held a moment after the kill) is retried after a short pause.
    pub fn restart(&mut self, i: usize) {
        assert_eq!(
            self.state(i),
            LabNodeState::Killed,
            "node {i} is not killed"
        );
        let mut failures = String::new();
        for attempt in 1..=RESTART_ATTEMPTS {
            self.spawn(i, &format!("restart attempt {attempt}"));
            match self.wait_ready(i) {
                Ok(()) => return,
                Err(why) => {
                    self.reap(i);
                    let timed_out = why.starts_with("did not answer");
                    failures.push_str(&format!("attempt {attempt}: {why}\n"));
                    if timed_out {
                        break;
                    }
                    std::thread::sleep(RESTART_PAUSE);
                }
            }
        }
        panic!(
            "restarting node {i} failed:\n{failures}output:\n{}",
            self.nodes[i].output()
        );
    }

    /// The owners (node indices, primary first) of `key` when exactly the nodes in
    /// `live` are alive, by the placement the nodes compute.
    pub fn owners_among(&self, key: &[u8], live: &[usize]) -> Vec<usize> {
        let ids: Vec<NodeId> = live
            .iter()
            .map(|&i| NodeId::new(self.cluster_addr(i), 1))
            .collect();
        let map = PlacementMap::compute(&ids, self.replicas.max(1));
        map.owners(partition_of(key))
            .iter()
            .map(|owner| {
                (0..self.len())
                    .find(|&i| self.cluster_addr(i) == owner.addr())
                    .expect("an owner is a node of this lab")
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

    /// The last lines of every node's log and the cuts in place, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "netlab cuts in place (node, dropping from): {:?}\n",
            self.cuts
        );
        for (i, node) in self.nodes.iter().enumerate() {
            let text = node.output();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "--- node {i} ({:?}, {} in {}, log {}) last {} lines ---\n{}\n",
                node.state,
                node.addr,
                node.ns,
                node.log.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("netlab logs at the failure:\n{}", self.logs());
        }
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                // SIGKILL ends a SIGSTOPped process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let mut namespaces: Vec<String> = self.nodes.iter().map(|n| n.ns.clone()).collect();
        namespaces.push(self.switch_ns.clone());
        for ns in &namespaces {
            // Anything else still running in a namespace of this lab is a leftover of it.
            kill_processes_in(ns);
        }
        if link_exists(&self.root_link) {
            if let Err(e) = run_ip(&["link", "del", &self.root_link]) {
                eprintln!("netlab cleanup: {e}");
            }
        }
        for ns in &namespaces {
            if let Err(e) = run_ip(&["netns", "del", ns]) {
                eprintln!("netlab cleanup: {e}");
            }
        }
    }
}

/// Panics unless the test runs as root with `ip` (iproute2) available.
fn require_root_and_ip() {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|e| panic!("running id -u: {e}"));
    assert!(
        uid == "0",
        "network-partition tests create network namespaces and need root (uid {uid}); \
         run them as root (as CI does)"
    );
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`ip -V` failed ({}); network-partition tests need iproute2",
            out.status
        ),
        Err(e) => panic!(
            "`ip` is missing ({e}); network-partition tests need iproute2: run \
             scripts/install-test-deps"
        ),
    }
}

/// Removes what an earlier run of a process with id `pid` left behind: its namespaces
/// (with anything still running in them) and its root veth.
fn remove_leftovers(pid: u32) {
    let prefix = format!("shoal-{pid}-");
    let list = ip(&["netns", "list"]);
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if ns.starts_with(&prefix) {
            eprintln!("netlab: removing namespace {ns} left over from an earlier run");
            kill_processes_in(ns);
            ip(&["netns", "del", ns]);
        }
    }
    let root_link = format!("shv{pid}r");
    if link_exists(&root_link) {
        eprintln!("netlab: removing link {root_link} left over from an earlier run");
        // It may already be going away with its peer's namespace.
        let _ = run_ip(&["link", "del", &root_link]);
    }
    let deadline = Instant::now() + LEFTOVER_TIMEOUT;
    while link_exists(&root_link) {
        assert!(
            Instant::now() < deadline,
            "link {root_link}, left over from an earlier run, did not go away within \
             {LEFTOVER_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A third octet Z such that no interface of the root namespace has an address in
/// 10.201.Z.0/24, starting from one derived from `pid`.
fn free_subnet(pid: u32) -> u8 {
    let listing = ip(&["-4", "-o", "addr", "show"]);
    let used: BTreeSet<u8> = listing
        .split_whitespace()
        .filter_map(|word| word.split('/').next())
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .filter(|a| a.octets()[..2] == [10, 201])
        .map(|a| a.octets()[2])
        .collect();
    (0..250u32)
        .map(|k| (1 + (pid % 250 + k) % 250) as u8)
        .find(|z| !used.contains(z))
        .expect("every subnet 10.201.1-250.0/24 is in use in the root namespace")
}

/// SIGKILLs every process in namespace `ns` (which belongs to this lab).
fn kill_processes_in(ns: &str) {
    let Ok(pids) = run_ip(&["netns", "pids", ns]) else {
        return;
    };
    for pid in pids.split_whitespace() {
        let _ = Command::new("kill")
            .args(["-KILL", pid])
            .stderr(Stdio::null())
            .status();
    }
}

fn link_exists(name: &str) -> bool {
    run_ip(&["link", "show", "dev", name]).is_ok()
}

/// Runs `ip ARGS`; its stdout, or a description of the failure.
fn run_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS` and panics if it fails.
fn ip(args: &[&str]) -> String {
    run_ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `name` (e.g. "STOP") to `pid` with the `kill` utility (no `unsafe` in tests).
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

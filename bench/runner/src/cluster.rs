//! The cluster benchmark's workloads and how one sample of each is taken.
//!
//! * `hop`, `hop-r1`: a 3-node cluster (R = 2, R = 1); all load goes to node A, once with
//!   keys whose primary is A (`local`: served by A; a set is replicated first) and once
//!   with keys A does not own at all (`remote`: every request is forwarded to the
//!   primary over the node-to-node connection).
//! * `cluster3`: uniform keys to one node of a 3-node cluster (R = 2) vs to a single
//!   Shoal node started exactly as in the single-node benchmark.
//!
//! Each sample starts fresh servers, preloads the keys (unmeasured), measures latency at
//! a fixed offered rate, then throughput (closed loop), and stops the servers.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use shoal_loadgen::report::RunReport;

use crate::cluster_nodes::{stats, Cluster};
use crate::measure::{loadgen_command, run_json, RunContext};
use crate::memcaslap::{self, Load};
use crate::procfs;
use crate::server::{Kind, Launch, Server};

/// Nodes in every cluster of this benchmark.
pub const NODES: usize = 3;

/// Distinct keys of every loadgen run (all preloaded).
pub const KEYS: u64 = 100_000;

/// Connections of every run (as the single-node latency workload).
pub const CONNS: usize = 64;

/// Memory limit (`-m`) of every node, MiB (as the single-node latency workload).
pub const MEMORY_MB: u64 = 1024;

/// Knobs of the cluster benchmark.
#[derive(Debug, Clone)]
pub struct ClusterScale {
    /// Seconds per measured run.
    pub secs: u64,
    /// Server threads (`-t`) of every node.
    pub threads: usize,
    /// Offered rate of the latency runs, requests/s.
    pub rate: f64,
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Keys whose primary is the loaded node.
    Local,
    /// Keys the loaded node does not own.
    Remote,
    /// A single Shoal node (no cluster flags).
    Single,
    /// One node of a 3-node cluster, uniform keys.
    Cluster,
}

impl Side {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Remote => "remote",
            Side::Single => "single",
            Side::Cluster => "cluster3",
        }
    }

    /// Column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Side::Local => "local (A is primary)",
            Side::Remote => "remote (A owns nothing: 1 hop)",
            Side::Single => "single node",
            Side::Cluster => "node A of 3 (R=2)",
        }
    }
}

/// How a workload loads the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Node A of a 3-node cluster with this R, keys picked by placement, loadgen only.
    Hop {
        /// Owners per partition.
        replicas: usize,
    },
    /// Uniform keys, loadgen for latency and memcaslap for throughput.
    Cluster3,
}

/// One cluster workload: two sides, compared as `sides[1] / sides[0]`.
#[derive(Debug, Clone)]
pub struct ClusterWorkload {
    /// Short id, for `--only`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// How it loads the servers.
    pub shape: Shape,
    /// Baseline side, then the compared one.
    pub sides: [Side; 2],
}

/// Every cluster workload, in run order.
pub fn all() -> Vec<ClusterWorkload> {
    vec![
        ClusterWorkload {
            id: "hop".into(),
            title: "Hop, 3 nodes, R=2".into(),
            shape: Shape::Hop { replicas: 2 },
            sides: [Side::Local, Side::Remote],
        },
        ClusterWorkload {
            id: "hop-r1".into(),
            title: "Hop, 3 nodes, R=1 (no replication)".into(),
            shape: Shape::Hop { replicas: 1 },
            sides: [Side::Local, Side::Remote],
        },
        ClusterWorkload {
            id: "cluster3".into(),
            title: "3-node cluster (R=2) vs single node".into(),
            shape: Shape::Cluster3,
            sides: [Side::Single, Side::Cluster],
        },
    ]
}

/// What one sample measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterSample {
    /// Closed-loop (loadgen) or memcaslap throughput, operations/s.
    pub throughput: f64,
    /// Operations of the throughput run.
    pub ops: f64,
    /// CPU of every server process over the throughput run, seconds.
    pub cpu_secs: f64,
    /// `cpu_secs` per operation, microseconds.
    pub cpu_us_per_op: f64,
    /// Requests/s the latency run achieved (should equal the offered rate).
    pub achieved_rate: f64,
    /// Latency percentiles at the offered rate, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// Get hit ratio of the latency run (all keys preloaded: should be 1).
    pub hit_ratio: f64,
}

/// The servers of one sample.
enum Servers {
    Single(Server),
    Cluster(Cluster),
}

impl Servers {
    fn target(&self) -> SocketAddr {
        match self {
            Servers::Single(server) => server.addr,
            Servers::Cluster(cluster) => cluster.nodes[0].server.addr,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Servers::Single(server) => vec![server.pid()],
            Servers::Cluster(cluster) => cluster.pids(),
        }
    }
}

/// The server launch settings every node uses.
pub fn launch(ctx: &RunContext, scale: &ClusterScale) -> Launch {
    Launch {
        memcached: ctx.memcached.clone(),
        shoal: ctx.shoal.clone(),
        threads: scale.threads,
        memory_mb: MEMORY_MB,
        core: None,
    }
}

/// The memcaslap load of `cluster3` (as the single-node `w1-c64`).
pub fn memcaslap_load(scale: &ClusterScale) -> Load {
    Load {
        concurrency: CONNS,
        threads: 2,
        get_ratio: 0.9,
        value_size: 100,
        mget: 1,
        secs: scale.secs,
    }
}

/// The loadgen arguments choosing keys by placement (empty when keys are uniform).
/// `members` are the cluster addresses, the first being the loaded node.
pub fn placement_args(workload: &ClusterWorkload, side: Side, members: &[String]) -> Vec<String> {
    let Shape::Hop { replicas } = workload.shape else {
        return Vec::new();
    };
    let placed = match side {
        Side::Remote => "remote",
        _ => "local",
    };
    vec![
        "--placed".into(),
        placed.into(),
        "--cluster-members".into(),
        members.join(","),
        "--cluster-node".into(),
        members[0].clone(),
        "--cluster-replicas".into(),
        replicas.to_string(),
    ]
}

/// The three loadgen invocations of a sample: preload, latency at the offered rate,
/// closed-loop throughput (unused by `cluster3`, which uses memcaslap).
pub fn loadgen_phases(scale: &ClusterScale, placement: &[String]) -> [Vec<String>; 3] {
    let keys = KEYS.to_string();
    let conns = CONNS.to_string();
    let secs = scale.secs.to_string();
    let rate = format!("{:.0}", scale.rate);
    let with = |args: &[&str]| {
        let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        argv.extend(placement.iter().cloned());
        argv
    };
    [
        with(&["--keys", &keys, "--preload", &keys, "--duration", "0"]),
        with(&[
            "--keys",
            &keys,
            "--conns",
            &conns,
            "--rate",
            &rate,
            "--duration",
            &secs,
        ]),
        with(&["--keys", &keys, "--conns", &conns, "--duration", &secs]),
    ]
}

fn checked(report: RunReport, what: &str) -> Result<RunReport> {
    if report.errors > 0 {
        bail!("{} unexpected replies in the {what} run", report.errors);
    }
    Ok(report)
}

/// Checks that the bench's placement agrees with the cluster's: after the preload, the
/// loaded node holds every key when it is their primary, none when it owns none of them.
fn check_placement(target: SocketAddr, side: Side) -> Result<()> {
    let items: u64 = stats(target, "")?
        .get("curr_items")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let expected = if side == Side::Remote { 0 } else { KEYS };
    if items != expected {
        bail!(
            "node A holds {items} items after preloading {KEYS} {} keys, not {expected}: \
             the bench's key placement disagrees with the cluster's",
            side.name()
        );
    }
    Ok(())
}

/// Runs one sample of `workload`'s `side`.
pub fn sample(
    workload: &ClusterWorkload,
    side: Side,
    ctx: &RunContext,
    scale: &ClusterScale,
) -> Result<ClusterSample> {
    let launch = launch(ctx, scale);
    let servers = match (workload.shape, side) {
        (Shape::Cluster3, Side::Single) => Servers::Single(Server::start(Kind::Shoal, &launch)?),
        (Shape::Cluster3, _) => Servers::Cluster(Cluster::start(&launch, NODES, 2)?),
        (Shape::Hop { replicas }, _) => Servers::Cluster(Cluster::start(&launch, NODES, replicas)?),
    };
    let members: Vec<String> = match &servers {
        Servers::Cluster(cluster) => cluster.members().iter().map(|a| a.to_string()).collect(),
        Servers::Single(_) => Vec::new(),
    };
    let target = servers.target().to_string();
    let placement = placement_args(workload, side, &members);
    let [preload, latency, closed] = loadgen_phases(scale, &placement);
    let run = |args: &[String]| -> Result<RunReport> {
        run_json(&loadgen_command(ctx, false, "run", args, &target))
    };
    checked(run(&preload)?, "preload")?;
    if let Shape::Hop { .. } = workload.shape {
        check_placement(servers.target(), side)?;
    }
    let latency = checked(run(&latency)?, "latency")?;
    let pids = servers.pids();
    let cpu = || -> Result<f64> { pids.iter().map(|&pid| procfs::cpu_seconds(pid)).sum() };
    let before = cpu()?;
    let (ops, throughput) = match workload.shape {
        Shape::Hop { .. } => {
            let report = checked(run(&closed)?, "throughput")?;
            (report.key_ops as f64, report.key_ops_per_sec)
        }
        Shape::Cluster3 => {
            let config = ctx.scratch.join(format!("{}.memcaslap.cfg", workload.id));
            std::fs::create_dir_all(&ctx.scratch)?;
            let outcome = memcaslap::run(&memcaslap_load(scale), servers.target(), &config)?;
            (outcome.ops, outcome.tps)
        }
    };
    let cpu_secs = cpu()? - before;
    drop(servers);
    Ok(ClusterSample {
        throughput,
        ops,
        cpu_secs,
        cpu_us_per_op: if ops > 0.0 { cpu_secs * 1e6 / ops } else { 0.0 },
        achieved_rate: latency.requests_per_sec,
        p50_us: latency.p50_us,
        p99_us: latency.p99_us,
        p999_us: latency.p999_us,
        hit_ratio: latency.hit_ratio,
    })
}

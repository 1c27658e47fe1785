//! `shoal-loadgen`: command line over the load generator; prints one JSON report (or a
//! human line with `--text`) on stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use shoal_loadgen::conn::Mix;
use shoal_loadgen::keys::{KeyDist, KeyNames, ZipfTable};
use shoal_loadgen::placed::{select, Placed};
use shoal_loadgen::run::{run, RunSpec};

/// A memcached text-protocol load generator.
#[derive(Debug, Parser)]
#[command(name = "shoal-loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Preload keys, then drive a get/set mix and report throughput, hits and latency.
    Run(RunArgs),
    /// Write keys 0..N, then count how many a get still finds (items held).
    Held(HeldArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Placement {
    /// Keys whose partition primary is --cluster-node.
    Local,
    /// Keys --cluster-node owns neither as primary nor as replica.
    Remote,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dist {
    Uniform,
    Zipf,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:11211")]
    server: SocketAddr,
    /// Runtime worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Print a human-readable line instead of JSON.
    #[arg(long)]
    text: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Requests in flight per connection (pipelining); ignored with --rate.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Measured phase, seconds (0 with no --ops: preload only).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests instead of after --duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Fixed offered rate, requests per second over all connections (open loop, depth 1).
    #[arg(long)]
    rate: Option<f64>,
    /// Fraction of requests that are gets.
    #[arg(long, default_value_t = 0.9)]
    get_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Key distribution.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    dist: Dist,
    /// Zipf exponent.
    #[arg(long, default_value_t = 0.99)]
    zipf_s: f64,
    /// Keys per get (multi-get width).
    #[arg(long, default_value_t = 1)]
    mget: usize,
    /// Set a key after a get misses it (cache-aside).
    #[arg(long)]
    set_on_miss: bool,
    /// Set keys 0..N before the measured phase.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use only keys placed this way relative to --cluster-node in a Shoal cluster of
    /// --cluster-members (key index i is then the i-th such key).
    #[arg(long, value_enum, requires_all = ["cluster_members", "cluster_node"])]
    placed: Option<Placement>,
    /// Cluster (gossip) addresses of every member, comma-separated (with --placed).
    #[arg(long, value_delimiter = ',')]
    cluster_members: Vec<SocketAddr>,
    /// Cluster address of the node the load goes to (with --placed).
    #[arg(long)]
    cluster_node: Option<SocketAddr>,
    /// Owners per partition of that cluster (with --placed).
    #[arg(long, default_value_t = 2)]
    cluster_replicas: usize,
}

#[derive(Debug, clap::Args)]
struct HeldArgs {
    #[command(flatten)]
    common: Common,
    /// Keys to write.
    #[arg(long)]
    write: u64,
    /// Connections.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Sets in flight per connection.
    #[arg(long, default_value_t = 64)]
    depth: usize,
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    Ok(runtime)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            if args.keys == 0 || args.mget == 0 {
                bail!("--keys and --mget must be at least 1");
            }
            let dist = match args.dist {
                Dist::Uniform => KeyDist::Uniform { count: args.keys },
                Dist::Zipf => KeyDist::Zipf(Arc::new(ZipfTable::new(args.keys, args.zipf_s))),
            };
            let names = match (args.placed, args.cluster_node) {
                (Some(placed), Some(node)) => {
                    let placed = match placed {
                        Placement::Local => Placed::Local,
                        Placement::Remote => Placed::Remote,
                    };
                    let count = args.keys.max(args.preload);
                    KeyNames::table(select(
                        &args.cluster_members,
                        args.cluster_replicas,
                        node,
                        placed,
                        count,
                    )?)
                }
                _ => KeyNames::identity(),
            };
            let spec = RunSpec {
                addr: args.common.server,
                conns: args.conns,
                depth: args.depth,
                mix: Mix {
                    get_ratio: args.get_ratio,
                    mget: args.mget,
                    dist,
                    names,
                    value: Arc::new(vec![b'v'; args.common.value_size]),
                    set_on_miss: args.set_on_miss,
                },
                duration: Duration::from_secs_f64(args.duration),
                ops: args.ops,
                rate: args.rate,
                preload: args.preload,
                seed: args.seed,
            };
            let report = runtime(args.common.threads)?.block_on(run(spec))?;
            if args.common.text {
                println!(
                    "{:.0} req/s {:.0} keys/s hit {:.4} p50 {:.1}us p99 {:.1}us p999 {:.1}us errors {} (preload {} keys in {:.1}s)",
                    report.requests_per_sec, report.key_ops_per_sec, report.hit_ratio,
                    report.p50_us, report.p99_us, report.p999_us, report.errors,
                    report.preload_keys, report.preload_secs
                );
            } else {
                println!("{}", serde_json::to_string(&report)?);
            }
        }
        Command::Held(args) => {
            let value = Arc::new(vec![b'v'; args.common.value_size]);
            let report = runtime(args.common.threads)?.block_on(shoal_loadgen::held::held(
                args.common.server,
                args.write,
                value,
                args.conns,
                args.depth,
            ))?;
            if args.common.text {
                println!(
                    "written {} readable {} curr_items {:?} evictions {:?} errors {}",
                    report.written,
                    report.readable,
                    report.curr_items,
                    report.evictions,
                    report.errors
                );
            } else {
                println!("{}", serde_json::to_string(&report)?);
            }
        }
    }
    Ok(())
}

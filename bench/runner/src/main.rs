//! `shoal-bench`: runs memcached and Shoal in alternating rounds through every workload
//! and writes `latest.md`, `latest.png` and `latest.json` to the results directory; with
//! `--cluster` (or cluster workload ids in `--only`) runs the cluster benchmark instead
//! and writes `cluster.md` and `cluster.json`.
//! Normally started by `bench/run`, which installs the tools and builds everything first.

mod cluster;
mod cluster_nodes;
mod cluster_report;
mod cluster_run;
mod machine;
mod measure;
mod memcaslap;
mod metrics;
mod plot;
mod procfs;
mod report;
mod server;
mod workloads;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::measure::{launch, loadgen_command, RunContext};
use crate::report::Samples;
use crate::server::Kind;
use crate::workloads::{Driver, Scale};

/// Shoal vs memcached benchmark runner.
#[derive(Debug, Parser)]
#[command(name = "shoal-bench")]
struct Cli {
    /// Short runs, one round per server (a smoke run; numbers are indicative only).
    #[arg(long)]
    quick: bool,
    /// Rounds per server [default: 3, quick: 1; --cluster: 5 per side, quick: 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measured run [default: 10, quick: 3].
    #[arg(long)]
    secs: Option<u64>,
    /// Server threads (`-t`) of the unpinned workloads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Offered rate of the latency workload, requests/s.
    #[arg(long, default_value_t = 25_000.0)]
    rate: f64,
    /// Run the cluster benchmark (hop, hop-r1, cluster3) instead of the single-node one;
    /// writes cluster.{md,json}.
    #[arg(long)]
    cluster: bool,
    /// Offered rate of the cluster benchmark's latency runs, requests/s.
    #[arg(long, default_value_t = CLUSTER_RATE)]
    cluster_rate: f64,
    /// Key counts of the growth workload, smaller first [default: 1000000,10000000;
    /// quick: 200000,2000000].
    #[arg(long, value_delimiter = ',')]
    growth: Vec<u64>,
    /// Run only these workload ids (comma-separated; see --list).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    /// Shoal binary.
    #[arg(long, default_value = "target/release/shoal")]
    shoal: PathBuf,
    /// memcached binary.
    #[arg(long, default_value = "/usr/bin/memcached")]
    memcached: PathBuf,
    /// shoal-loadgen binary [default: next to this binary].
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Results directory.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// The command to record as "the exact command" [default: this process's arguments].
    #[arg(long)]
    command: Option<String>,
    /// A note for the results header (e.g. that the machine was busy).
    #[arg(long)]
    note: Option<String>,
}

/// The default offered rate of the cluster latency runs: about half what the remote path
/// of a 3-node cluster sharing 2 cores with the load generator sustains.
const CLUSTER_RATE: f64 = 10_000.0;

/// Rounds per side of the cluster benchmark in full mode (its numbers are noisier than the
/// single-node ones: four processes share the CPUs).
const CLUSTER_ROUNDS: usize = 5;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let cluster_list = cluster::all();
    let cluster_ids: Vec<&str> = cluster_list.iter().map(|w| w.id.as_str()).collect();
    let wants_cluster = cli.cluster
        || (!cli.only.is_empty() && cli.only.iter().all(|id| cluster_ids.contains(&id.as_str())));
    if cli.only.iter().any(|id| cluster_ids.contains(&id.as_str())) && !wants_cluster {
        bail!("--only mixes cluster and single-node workloads: run them separately");
    }
    if wants_cluster && !cli.list {
        return cluster_main(&cli, cluster_list);
    }
    let scale = Scale {
        secs: cli.secs.unwrap_or(if cli.quick { 3 } else { 10 }),
        threads: cli.threads,
        rate: cli.rate,
        growth: match cli.growth.as_slice() {
            [] if cli.quick => [200_000, 2_000_000],
            [] => [1_000_000, 10_000_000],
            [small, large] => [*small, *large],
            _ => bail!("--growth takes two key counts"),
        },
    };
    let rounds = cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }).max(1);
    let mut list = workloads::all(&scale);
    if cli.list {
        for w in &list {
            println!("{:10} {}", w.id, w.title);
        }
        for w in &cluster_list {
            println!("{:10} {} (cluster benchmark)", w.id, w.title);
        }
        return Ok(());
    }
    if !cli.only.is_empty() {
        list.retain(|w| cli.only.contains(&w.id));
        if list.is_empty() {
            bail!("no workload matches --only (see --list)");
        }
    }
    let ctx = context(&cli)?;
    let command = recorded_command(&cli);
    let header = Header {
        date: machine::date(),
        machine: machine::describe(),
        load_before: machine::load_average(),
        memcached: machine::memcached_version(&cli.memcached),
        shoal: machine::shoal_version(&cli.shoal),
    };
    let started = Instant::now();
    let mut samples = vec![Samples::default(); list.len()];
    for (workload, got) in list.iter().zip(samples.iter_mut()) {
        for round in 0..rounds {
            for kind in [Kind::Memcached, Kind::Shoal] {
                let sample = measure::sample(workload, kind, &ctx).with_context(|| {
                    format!("{} on {} (round {})", workload.id, kind.name(), round + 1)
                })?;
                eprintln!(
                    "[{:6.1}s] {:9} round {} {:9}: {:.0} ops/s, {:.2} us CPU/op, RSS {:.1} MiB, p99 {:.0} us, hit {:.4}, items {:.0}",
                    started.elapsed().as_secs_f64(),
                    workload.id,
                    round + 1,
                    kind.name(),
                    sample.throughput,
                    sample.cpu_us_per_op,
                    sample.rss_mib,
                    sample.p99_us,
                    sample.hit_ratio,
                    sample.items
                );
                match kind {
                    Kind::Memcached => got.memcached.push(sample),
                    Kind::Shoal => got.shoal.push(sample),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&ctx.scratch);
    let elapsed = started.elapsed().as_secs_f64();
    let rows = report::rows(&list, &samples);
    std::fs::create_dir_all(&cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;
    let mode = format!(
        "{} ({} round(s) per server, alternating memcached/Shoal; {} s runs; {:.0} s in all)",
        if cli.quick { "quick" } else { "full" },
        rounds,
        scale.secs,
        elapsed
    );
    let markdown = render(
        &header,
        &command,
        &mode,
        cli.note.as_deref(),
        &report::table(&rows),
        &list,
        &ctx,
    );
    std::fs::write(cli.out.join("latest.md"), markdown)?;
    let json = serde_json::json!({
        "date": header.date, "machine": header.machine, "command": command, "mode": mode,
        "workloads": list.iter().zip(&samples).map(|(w, s)| serde_json::json!({"id": w.id, "title": w.title, "samples": s})).collect::<Vec<_>>(),
    });
    std::fs::write(
        cli.out.join("latest.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    plot::draw(
        &rows,
        &format!(
            "Shoal vs memcached 1.6, {} mode, {}",
            if cli.quick { "quick" } else { "full" },
            header.date
        ),
        &cli.out.join("latest.png"),
    )?;
    println!("{}", report::table(&rows));
    eprintln!(
        "wrote {}/latest.{{md,png,json}} in {elapsed:.0} s",
        cli.out.display()
    );
    Ok(())
}

fn context(cli: &Cli) -> Result<RunContext> {
    let loadgen = match cli.loadgen.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("shoal-loadgen"),
    };
    for path in [&cli.shoal, &cli.memcached, &loadgen] {
        if !path.exists() {
            bail!("{} not found", path.display());
        }
    }
    Ok(RunContext {
        memcached: cli.memcached.clone(),
        shoal: cli.shoal.clone(),
        loadgen,
        scratch: std::env::temp_dir().join(format!("shoal-bench-{}", std::process::id())),
    })
}

fn recorded_command(cli: &Cli) -> String {
    cli.command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "))
}

/// The cluster benchmark: `list` filtered by `--only`, written to cluster.{md,json}.
fn cluster_main(cli: &Cli, mut list: Vec<cluster::ClusterWorkload>) -> Result<()> {
    if !cli.only.is_empty() {
        list.retain(|w| cli.only.contains(&w.id));
        if list.is_empty() {
            bail!("no cluster workload matches --only (see --list)");
        }
    }
    let plan = cluster_run::Plan {
        list,
        rounds: cli
            .rounds
            .unwrap_or(if cli.quick { 1 } else { CLUSTER_ROUNDS })
            .max(1),
        scale: cluster::ClusterScale {
            secs: cli.secs.unwrap_or(if cli.quick { 3 } else { 10 }),
            threads: cli.threads,
            rate: cli.cluster_rate,
        },
        quick: cli.quick,
        command: recorded_command(cli),
        note: cli.note.clone(),
    };
    cluster_run::run(&plan, &context(cli)?, &cli.out)
}

struct Header {
    date: String,
    machine: String,
    load_before: String,
    memcached: String,
    shoal: String,
}

fn render(
    header: &Header,
    command: &str,
    mode: &str,
    note: Option<&str>,
    table: &str,
    list: &[workloads::Workload],
    ctx: &RunContext,
) -> String {
    let mut out = String::from("# Shoal vs memcached: latest benchmark results\n\n");
    let _ = writeln!(out, "- Date: {}", header.date);
    let _ = writeln!(out, "- Machine: {}", header.machine);
    let _ = writeln!(
        out,
        "- Load average before the run: {} (1/5/15 min)",
        header.load_before
    );
    let _ = writeln!(out, "- memcached: {}", header.memcached);
    let _ = writeln!(out, "- Shoal: {}", header.shoal);
    let _ = writeln!(out, "- Command: `{command}`");
    let _ = writeln!(out, "- Mode: {mode}");
    if let Some(note) = note {
        let _ = writeln!(out, "- Note: {note}");
    }
    let _ = writeln!(
        out,
        "\nMedians over rounds (peak RSS: the largest of the rounds). Ratio = Shoal / memcached. \
         See bench/README.md for what each workload and metric means.\n"
    );
    out.push_str(table);
    out.push_str("\n![ratios vs targets](latest.png)\n\n## Commands of one round\n\nPORT is a free loopback port chosen per run.\n\n");
    for workload in list {
        let launch = launch(workload, ctx);
        let _ = writeln!(out, "**{}** (`{}`)", workload.title, workload.id);
        for kind in [Kind::Memcached, Kind::Shoal] {
            let _ = writeln!(
                out,
                "- `{}`",
                launch
                    .command_line(kind, 0)
                    .join(" ")
                    .replace("-p 0", "-p PORT")
            );
        }
        let addr = "127.0.0.1:PORT";
        match &workload.driver {
            Driver::Memcaslap(load) => {
                let argv = memcaslap::command_line(load, addr, std::path::Path::new("CFG"));
                let _ = writeln!(
                    out,
                    "- `{}` (CFG: 16 B keys, {} B values, get {:.2} / set {:.2})",
                    argv.join(" "),
                    load.value_size,
                    load.get_ratio,
                    1.0 - load.get_ratio
                );
            }
            Driver::Loadgen {
                preload,
                warmup,
                args,
            } => {
                if !preload.is_empty() {
                    let _ = writeln!(
                        out,
                        "- preload (unmeasured): `{}`",
                        loadgen_command(ctx, workload.pinned, "run", preload, addr).join(" ")
                    );
                }
                let prefix = if *warmup {
                    "warm-up once (unmeasured), then measured: "
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "- {prefix}`{}`",
                    loadgen_command(ctx, workload.pinned, "run", args, addr).join(" ")
                );
            }
            Driver::Held(args) => {
                let _ = writeln!(
                    out,
                    "- `{}`",
                    loadgen_command(ctx, workload.pinned, "held", args, addr).join(" ")
                );
            }
        }
        out.push('\n');
    }
    out
}

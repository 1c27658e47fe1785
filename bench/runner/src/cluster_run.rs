//! Running the cluster benchmark: alternating rounds of each workload's two sides, then
//! `cluster.md` and `cluster.json` in the results directory.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cluster::{self, ClusterScale, ClusterWorkload, CONNS, KEYS, MEMORY_MB, NODES};
use crate::cluster_report::{self, SidePair};
use crate::machine;
use crate::measure::RunContext;

/// What the run was asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workloads, in run order.
    pub list: Vec<ClusterWorkload>,
    /// Rounds per side.
    pub rounds: usize,
    /// Durations, threads and offered rate.
    pub scale: ClusterScale,
    /// Whether this is a quick (smoke) run.
    pub quick: bool,
    /// The command to record.
    pub command: String,
    /// A note for the header.
    pub note: Option<String>,
}

/// Runs every round and writes `cluster.{md,json}` into `out`.
pub fn run(plan: &Plan, ctx: &RunContext, out: &Path) -> Result<()> {
    let date = machine::date();
    let machine_text = machine::describe();
    let load_before = machine::load_average();
    let shoal = machine::shoal_version(&ctx.shoal);
    let started = Instant::now();
    let mut samples = vec![SidePair::default(); plan.list.len()];
    for (workload, got) in plan.list.iter().zip(samples.iter_mut()) {
        for round in 0..plan.rounds {
            for (index, side) in workload.sides.into_iter().enumerate() {
                let sample =
                    cluster::sample(workload, side, ctx, &plan.scale).with_context(|| {
                        format!("{} {} (round {})", workload.id, side.name(), round + 1)
                    })?;
                eprintln!(
                    "[{:6.1}s] {:8} round {} {:8}: {:.0} ops/s, {:.2} us CPU/op, {:.0} req/s p50 {:.0} us p99 {:.0} us, hit {:.4}",
                    started.elapsed().as_secs_f64(),
                    workload.id,
                    round + 1,
                    side.name(),
                    sample.throughput,
                    sample.cpu_us_per_op,
                    sample.achieved_rate,
                    sample.p50_us,
                    sample.p99_us,
                    sample.hit_ratio,
                );
                if index == 0 {
                    got.baseline.push(sample);
                } else {
                    got.compared.push(sample);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&ctx.scratch);
    let load_after = machine::load_average();
    let elapsed = started.elapsed().as_secs_f64();
    let rows = cluster_report::rows(&plan.list, &samples, &plan.scale);
    let tables = cluster_report::tables(&plan.list, &rows);
    let mode = format!(
        "{} ({} round(s) per side, sides alternating; {} s runs; {:.0} s in all)",
        if plan.quick { "quick" } else { "full" },
        plan.rounds,
        plan.scale.secs,
        elapsed
    );
    let mut md = String::from("# Shoal cluster benchmark: latest results\n\n");
    let _ = writeln!(md, "- Date: {date}");
    let _ = writeln!(md, "- Machine: {machine_text}");
    let _ = writeln!(
        md,
        "- Load average (1/5/15 min): {load_before} before the run, {load_after} after"
    );
    let _ = writeln!(md, "- Shoal: {shoal}");
    let _ = writeln!(md, "- Command: `{}`", plan.command);
    let _ = writeln!(md, "- Mode: {mode}");
    if let Some(note) = &plan.note {
        let _ = writeln!(md, "- Note: {note}");
    }
    let _ = writeln!(
        md,
        "\n**Read this first.** {cores_note} The {NODES} nodes (each `-t {t} -m {MEMORY_MB}`) \
         and the load generator all share the machine's CPUs, so these numbers are the cost \
         of the hop (and of replication) on this box, not a scaling result: a cluster on \
         more cores than one node could use would be needed for that.\n",
        cores_note = cores_note(),
        t = plan.scale.threads,
    );
    let _ = writeln!(
        md,
        "All load goes to node A. {KEYS} keys (16 B), 100 B values, 90 % gets / 10 % sets, \
         {CONNS} connections, every key preloaded (unmeasured). Latency: shoal-loadgen at a \
         fixed {rate:.0} req/s offered (open loop; \"achieved rate\" below it means the \
         servers could not keep up and the latencies include the backlog). Throughput: \
         shoal-loadgen closed loop (one request in flight per connection) for `hop*`, \
         memcaslap as the single-node `w1-c64` for `cluster3`. Server CPU per op: utime + \
         stime of every server process over the throughput run / its operations. Medians \
         over rounds; the last column is each round's own ratio. `local`: keys whose \
         partition primary is A (a set is still replicated to the other owner when R=2); \
         `remote`: keys of which A is no owner, so A forwards every request to the primary \
         over its persistent pipelined node-to-node connection (after each preload the \
         runner checks that A's `curr_items` is all the keys, or none, as placement says). \
         `cluster3`: uniform keys, \
         so about 1/3 of the requests are served by A itself and the rest take a hop.\n",
        rate = plan.scale.rate
    );
    md.push_str(&tables);
    md.push_str("## Commands of one round\n\nPORT_X is node X's free client port, G_X its free cluster port (UDP gossip and TCP peers).\n\n");
    md.push_str(&cluster_report::commands(&plan.list, ctx, &plan.scale));
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("cluster.md"), md)?;
    let json = serde_json::json!({
        "date": date, "machine": machine_text, "load_before": load_before,
        "load_after": load_after, "shoal": shoal, "command": plan.command, "mode": mode,
        "rate": plan.scale.rate, "threads": plan.scale.threads, "memory_mb": MEMORY_MB,
        "rows": rows,
        "workloads": plan.list.iter().zip(&samples).map(|(w, s)| serde_json::json!({
            "id": w.id, "title": w.title,
            "baseline": w.sides[0].name(), "compared": w.sides[1].name(),
            "samples": s,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("cluster.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{tables}");
    eprintln!(
        "wrote {}/cluster.{{md,json}} in {elapsed:.0} s",
        out.display()
    );
    Ok(())
}

fn cores_note() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("This machine has {cores} cores.")
}

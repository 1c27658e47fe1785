//! The cluster benchmark's results: medians per side, the compared / baseline ratio (and
//! each round's own ratio, to show the spread), as markdown and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cluster::{
    launch, loadgen_phases, memcaslap_load, placement_args, ClusterSample, ClusterScale,
    ClusterWorkload, Shape, NODES,
};
use crate::cluster_nodes::node_command_line;
use crate::measure::{loadgen_command, RunContext};
use crate::memcaslap;
use crate::metrics::median;
use crate::server::Kind;

/// Samples of one workload per side, in round order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SidePair {
    /// The baseline side's samples (`sides[0]`).
    pub baseline: Vec<ClusterSample>,
    /// The compared side's samples (`sides[1]`).
    pub compared: Vec<ClusterSample>,
}

/// One table row.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRow {
    /// Workload id.
    pub id: String,
    /// Metric label.
    pub metric: String,
    /// Baseline median.
    pub baseline: f64,
    /// Compared median.
    pub compared: f64,
    /// compared / baseline of the medians.
    pub ratio: f64,
    /// compared / baseline of each round.
    pub round_ratios: Vec<f64>,
}

type Getter = fn(&ClusterSample) -> f64;

fn metrics(workload: &ClusterWorkload, scale: &ClusterScale) -> Vec<(String, Getter)> {
    let rate = format!("{:.0}", scale.rate);
    let throughput = match workload.shape {
        Shape::Hop { .. } => "throughput, loadgen closed loop, 64 conns (ops/s)".to_string(),
        Shape::Cluster3 => "throughput, memcaslap 64 conns (ops/s)".to_string(),
    };
    vec![
        (throughput, |s| s.throughput),
        ("server CPU per op, all nodes (us)".into(), |s| {
            s.cpu_us_per_op
        }),
        (format!("achieved rate of {rate} req/s offered"), |s| {
            s.achieved_rate
        }),
        (format!("p50 at {rate} req/s (us)"), |s| s.p50_us),
        (format!("p99 at {rate} req/s (us)"), |s| s.p99_us),
        (format!("p99.9 at {rate} req/s (us)"), |s| s.p999_us),
    ]
}

/// The rows of every workload with samples on both sides.
pub fn rows(
    list: &[ClusterWorkload],
    samples: &[SidePair],
    scale: &ClusterScale,
) -> Vec<ClusterRow> {
    let mut rows = Vec::new();
    for (workload, pair) in list.iter().zip(samples) {
        if pair.baseline.is_empty() || pair.compared.is_empty() {
            continue;
        }
        for (label, get) in metrics(workload, scale) {
            let a: Vec<f64> = pair.baseline.iter().map(get).collect();
            let b: Vec<f64> = pair.compared.iter().map(get).collect();
            let (baseline, compared) = (median(&a), median(&b));
            rows.push(ClusterRow {
                id: workload.id.clone(),
                metric: label,
                baseline,
                compared,
                ratio: compared / baseline,
                round_ratios: a.iter().zip(&b).map(|(x, y)| y / x).collect(),
            });
        }
    }
    rows
}

fn number(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// One markdown table per workload shape (hop: local vs remote; cluster3: single vs
/// cluster).
pub fn tables(list: &[ClusterWorkload], rows: &[ClusterRow]) -> String {
    let mut out = String::new();
    let mut shown: Vec<[crate::cluster::Side; 2]> = Vec::new();
    for workload in list {
        if shown.contains(&workload.sides) {
            continue;
        }
        let group: Vec<&ClusterWorkload> =
            list.iter().filter(|w| w.sides == workload.sides).collect();
        let group_rows: Vec<&ClusterRow> = rows
            .iter()
            .filter(|r| group.iter().any(|w| w.id == r.id))
            .collect();
        if group_rows.is_empty() {
            continue;
        }
        shown.push(workload.sides);
        let [a, b] = workload.sides;
        let _ = writeln!(
            out,
            "| Workload | Metric | {} | {} | {}/{} | per round |\n|---|---|---:|---:|---:|---|",
            a.heading(),
            b.heading(),
            b.name(),
            a.name()
        );
        for row in group_rows {
            let title = group
                .iter()
                .find(|w| w.id == row.id)
                .map_or(row.id.as_str(), |w| w.title.as_str());
            let rounds: Vec<String> = row.round_ratios.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(
                out,
                "| {title} (`{}`) | {} | {} | {} | {:.2} | {} |",
                row.id,
                row.metric,
                number(row.baseline),
                number(row.compared),
                row.ratio,
                rounds.join(", ")
            );
        }
        out.push('\n');
    }
    out
}

/// The exact commands of one round of every workload, ports as placeholders (`PORT_A`,
/// `G_A`, ...).
pub fn commands(list: &[ClusterWorkload], ctx: &RunContext, scale: &ClusterScale) -> String {
    let mut out = String::new();
    let launch = launch(ctx, scale);
    let names = ["A", "B", "C"];
    let members: Vec<String> = names
        .iter()
        .take(NODES)
        .map(|n| format!("127.0.0.1:G_{n}"))
        .collect();
    // Paths under the working directory (the repository root) are shown relative to it.
    let cwd = std::env::current_dir()
        .map(|d| format!("{}/", d.display()))
        .unwrap_or_default();
    let placeholders = |argv: Vec<String>| {
        let mut text = argv.join(" ");
        if !cwd.is_empty() {
            text = text.replace(&cwd, "");
        }
        for (i, n) in names.iter().enumerate() {
            text = text
                .replace(&format!("-p {}", 60001 + i), &format!("-p PORT_{n}"))
                .replace(&format!(":{}", 61001 + i), &format!(":G_{n}"));
        }
        text
    };
    for workload in list {
        let _ = writeln!(out, "**{}** (`{}`)", workload.title, workload.id);
        let replicas = match workload.shape {
            Shape::Hop { replicas } => replicas,
            Shape::Cluster3 => 2,
        };
        if workload.shape == Shape::Cluster3 {
            let single = launch.command_line(Kind::Shoal, 60001);
            let _ = writeln!(out, "- single: `{}`", placeholders(single));
        }
        for (i, name) in (0u16..).zip(names.iter().take(NODES)) {
            let join = (i > 0).then_some(61001);
            let argv = node_command_line(&launch, 60001 + i, 61001 + i, join, replicas);
            let _ = writeln!(out, "- node {name}: `{}`", placeholders(argv));
        }
        let target = "127.0.0.1:PORT_A";
        for side in workload.sides {
            let placement = placement_args(workload, side, &members);
            let phases = loadgen_phases(scale, &placement);
            let what = ["preload (unmeasured)", "latency", "throughput"];
            let last = if workload.shape == Shape::Cluster3 {
                2
            } else {
                3
            };
            for (phase, args) in what.iter().zip(&phases).take(last) {
                let argv = loadgen_command(ctx, false, "run", args, target);
                let _ = writeln!(out, "- {} {phase}: `{}`", side.name(), placeholders(argv));
            }
        }
        if workload.shape == Shape::Cluster3 {
            let load = memcaslap_load(scale);
            let argv = memcaslap::command_line(&load, target, std::path::Path::new("CFG"));
            let _ = writeln!(
                out,
                "- both, throughput: `{}` (CFG: 16 B keys, 100 B values, get 0.90 / set 0.10)",
                argv.join(" ")
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::all;

    fn sample(throughput: f64, p99_us: f64) -> ClusterSample {
        ClusterSample {
            throughput,
            p99_us,
            ..ClusterSample::default()
        }
    }

    #[test]
    fn rows_hold_medians_and_per_round_ratios() {
        let list = all();
        let scale = ClusterScale {
            secs: 1,
            threads: 2,
            rate: 5000.0,
        };
        let pair = SidePair {
            baseline: vec![
                sample(100.0, 10.0),
                sample(300.0, 30.0),
                sample(200.0, 20.0),
            ],
            compared: vec![sample(50.0, 40.0), sample(60.0, 90.0), sample(100.0, 60.0)],
        };
        let samples = vec![pair, SidePair::default(), SidePair::default()];
        let rows = rows(&list, &samples, &scale);
        assert!(
            rows.iter().all(|r| r.id == "hop"),
            "only workloads with samples"
        );
        let throughput = &rows[0];
        assert!(throughput.metric.starts_with("throughput"));
        assert_eq!((throughput.baseline, throughput.compared), (200.0, 60.0));
        assert!((throughput.ratio - 0.3).abs() < 1e-9);
        assert_eq!(throughput.round_ratios, vec![0.5, 0.2, 0.5]);
        let p99 = rows
            .iter()
            .find(|r| r.metric.starts_with("p99 at 5000"))
            .unwrap();
        assert_eq!((p99.baseline, p99.compared, p99.ratio), (20.0, 60.0, 3.0));
        let table = tables(&list, &rows);
        assert!(table.contains("| remote/local |"), "{table}");
        assert!(!table.contains("cluster3/single"), "{table}");
    }
}

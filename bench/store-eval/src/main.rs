//! store-eval: measures the `segcache` crate (pelikan-io) against `shoal-store`, for
//! issue 3's choice of storage engine. Prints a Markdown report: items held in 64 MiB,
//! get/set throughput on one and two threads (medians of several runs), and which
//! memcached features each API has, probed.
//!
//! `cargo run --release --manifest-path bench/Cargo.toml -p store-eval [-- --runs 5
//! --ops 2000000 --only held,throughput,features]`

mod engines;
mod features;
mod held;
mod keys;
mod throughput;

use engines::{Engine, SegConfig, SegEngine, ShoalEngine};
use throughput::Mix;

/// The segcache configuration used for throughput and the feature probes: the one of
/// the held runs that holds the most items while fitting 64 MiB.
fn main_config() -> SegConfig {
    SegConfig {
        hash_power: 20,
        segment_size: 1 << 20,
        policy: "fifo".into(),
        optional: 0,
    }
}

/// The segcache configurations the held run tries.
fn held_configs() -> Vec<SegConfig> {
    let c = |hash_power, segment_size, policy: &str, optional| SegConfig {
        hash_power,
        segment_size,
        policy: policy.into(),
        optional,
    };
    vec![
        c(19, 1 << 20, "random", 0),
        c(19, 1 << 20, "fifo", 0),
        c(20, 1 << 20, "random", 0),
        c(21, 1 << 20, "fifo", 0),
        c(20, 1 << 20, "fifo", 0),
        c(20, 1 << 20, "s3fifo", 0),
        c(20, 1 << 20, "merge", 0),
        c(20, 64 << 10, "fifo", 0),
        c(20, 1 << 20, "fifo", 17),
    ]
}

const SECTIONS: [&str; 3] = ["held", "throughput", "features"];
const USAGE: &str = "takes --runs N, --ops N, --only held,throughput,features";

struct Args {
    runs: usize,
    ops: usize,
    /// Sections to run: `held`, `throughput`, `features` (all when empty).
    only: Vec<String>,
}

impl Args {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        runs: 5,
        ops: 2_000_000,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--held-child" => {
                held::child(&value()?)?;
                return Ok(None);
            }
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--ops" => args.ops = value()?.parse().map_err(|e| format!("--ops: {e}"))?,
            "--only" => {
                args.only = value()?.split(',').map(str::to_string).collect();
                if let Some(bad) = args.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!("unknown section {bad}: {USAGE}"));
                }
            }
            _ => return Err(format!("unknown argument {a}: {USAGE}")),
        }
    }
    Ok(Some(args))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_held() -> Result<(), String> {
    println!("## Items held (64 MiB, 16 B keys, 100 B values, 1.2M distinct sets)\n");
    println!("load average before: {}\n", loadavg());
    println!("| engine | heap + table | items held | refused sets (error) | B/item (64 MiB / held) | RSS growth empty / filled | write time |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let row = |name: String, sizes: String, h: held::Held| {
        println!(
            "| {name} | {sizes} | {} | {} ({}) | {:.1} | {:.1} / {:.1} MiB | {:.2} s |",
            h.held,
            h.refused,
            h.errors,
            engines::LIMIT as f64 / h.held.max(1) as f64,
            h.rss_empty_kib as f64 / 1024.0,
            h.rss_growth_kib as f64 / 1024.0,
            h.write_secs
        )
    };
    row(
        "shoal-store".into(),
        "64 MiB incl. index".into(),
        held::measure("shoal")?,
    );
    for c in held_configs() {
        let sizes = format!(
            "{:.2} + {} MiB",
            c.heap_bytes() as f64 / (1 << 20) as f64,
            c.table_bytes() >> 20
        );
        row(c.label(), sizes, held::measure(&c.spec())?);
    }
    println!();
    Ok(())
}

fn print_throughput(args: &Args) {
    let seg = main_config();
    println!(
        "## Throughput ({} keys preloaded, uniform, {} ops per run, median of {} runs)\n",
        throughput::WORKING_SET,
        args.ops,
        args.runs
    );
    println!("segcache: {}\n", seg.label());
    println!("load average before: {}\n", loadavg());
    let keys = keys::keys(throughput::WORKING_SET);
    let mixes = [
        Mix {
            name: "90% get / 10% set",
            get_percent: 90,
        },
        Mix {
            name: "100% set",
            get_percent: 0,
        },
        Mix {
            name: "100% get",
            get_percent: 100,
        },
    ];
    println!("| workload | threads | shoal-store Mops/s wall | segcache Mops/s wall | shoal / segcache wall | shoal-store Mops per CPU-s | segcache Mops per CPU-s | shoal / segcache CPU | wall runs (shoal; segcache) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for threads in [1, 2] {
        let shoal = ShoalEngine::new();
        let segc = SegEngine::new(&seg);
        let engines: [&dyn Engine; 2] = [&shoal, &segc];
        for e in engines {
            throughput::preload(e, &keys);
        }
        for mix in mixes {
            let mut wall = [Vec::new(), Vec::new()];
            let mut cpu = [Vec::new(), Vec::new()];
            for run in 0..args.runs {
                // alternate which engine goes first, to spread the machine's noise
                for i in 0..2 {
                    let which = (i + run) % 2;
                    let r = throughput::run(engines[which], &keys, mix, threads, args.ops);
                    wall[which].push(r.wall / 1e6);
                    cpu[which].push(r.cpu / 1e6);
                }
            }
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let runs = format!("{}; {}", fmt(&wall[0]), fmt(&wall[1]));
            let [a, b] = wall.each_mut().map(|v| throughput::median(v));
            let [c, d] = cpu.each_mut().map(|v| throughput::median(v));
            println!(
                "| {} | {threads} | {a:.2} | {b:.2} | {:.2}x | {c:.2} | {d:.2} | {:.2}x | {runs} |",
                mix.name,
                a / b,
                c / d
            );
        }
    }
    println!("\nload average after: {}\n", loadavg());
}

fn print_features() {
    println!("## Features a memcached server needs (probed)\n");
    println!("| feature | shoal-store | segcache 0.4 | what wrapping segcache would take |");
    println!("|---|---|---|---|");
    for r in features::probe(&main_config()) {
        println!(
            "| {} | {} | {} | {} |",
            r.feature, r.shoal, r.segcache, r.wrapper
        );
    }
    println!();
}

fn main() {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            eprintln!("store-eval: {e}");
            std::process::exit(2);
        }
    };
    println!("# store-eval: segcache vs shoal-store\n");
    println!(
        "cores: {}, load average at start: {}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if args.wants("held") {
        if let Err(e) = print_held() {
            eprintln!("store-eval: {e}");
            std::process::exit(1);
        }
    }
    if args.wants("throughput") {
        print_throughput(&args);
    }
    if args.wants("features") {
        print_features();
    }
}

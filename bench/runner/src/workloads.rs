//! The benchmark's workloads: what drives each one (memcaslap or shoal-loadgen), the
//! server settings, and which metrics it reports against which targets.

use crate::memcaslap::Load;
use crate::metrics::{Metric, Target};

/// How a workload is driven.
#[derive(Debug, Clone)]
pub enum Driver {
    /// memcaslap, unpinned, alongside the server.
    Memcaslap(Load),
    /// `shoal-loadgen run`: an optional preload-only invocation (not measured), an
    /// optional identical warm-up invocation (not measured), then the measured one.
    Loadgen {
        /// Arguments of the unmeasured preload invocation (empty: none).
        preload: Vec<String>,
        /// Run `args` once unmeasured first (cache warm-up), with another key seed so the
        /// measured run does not replay the warm-up's exact key sequence.
        warmup: bool,
        /// Arguments of the measured invocation.
        args: Vec<String>,
    },
    /// `shoal-loadgen held`.
    Held(Vec<String>),
}

/// One workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Short id (`w1-c64`, ...), for `--only`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Memory limit (`-m`) of both servers, MiB.
    pub memory_mb: u64,
    /// Server worker threads (`-t`).
    pub threads: usize,
    /// Pin the server to CPU 0 and the load generator to CPU 1.
    pub pinned: bool,
    /// The load.
    pub driver: Driver,
    /// Reported metrics with their targets.
    pub metrics: Vec<(Metric, Target)>,
}

/// Knobs that differ between quick and full mode.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Seconds per measured run.
    pub secs: u64,
    /// Server threads for unpinned workloads (memcached's `-t`).
    pub threads: usize,
    /// Offered rate of the latency workload, requests/s.
    pub rate: f64,
    /// Key counts of the growth workload.
    pub growth: [u64; 2],
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn memcaslap_workload(id: &str, title: &str, load: Load, scale: &Scale) -> Workload {
    Workload {
        id: id.into(),
        title: title.into(),
        memory_mb: 1024,
        threads: scale.threads,
        pinned: false,
        driver: Driver::Memcaslap(load),
        metrics: vec![
            (Metric::Throughput, Target::RatioAtLeast(1.0)),
            (Metric::CpuPerOp, Target::RatioAtMost(0.8)),
            (Metric::PeakRss, Target::RssBound),
        ],
    }
}

fn millions(keys: u64) -> String {
    if keys.is_multiple_of(1_000_000) {
        format!("{}M", keys / 1_000_000)
    } else {
        format!("{}k", keys / 1000)
    }
}

/// Every workload, in run order.
pub fn all(scale: &Scale) -> Vec<Workload> {
    let secs = scale.secs.to_string();
    let load = |concurrency, get_ratio, value_size, mget| Load {
        concurrency,
        threads: 2,
        get_ratio,
        value_size,
        mget,
        secs: scale.secs,
    };
    let mut list = vec![
        memcaslap_workload(
            "w1-c64",
            "W1 90/10 100 B, 64 conns (memcaslap)",
            load(64, 0.9, 100, 1),
            scale,
        ),
        memcaslap_workload(
            "w1-c256",
            "W1 90/10 100 B, 256 conns (memcaslap)",
            load(256, 0.9, 100, 1),
            scale,
        ),
        memcaslap_workload(
            "w2-mget",
            "W2 16-key multi-get, 90/10 (memcaslap -d 16)",
            load(64, 0.9, 100, 16),
            scale,
        ),
        memcaslap_workload(
            "w3-1k",
            "W3 50/50 1 KiB, 64 conns (memcaslap)",
            load(64, 0.5, 1024, 1),
            scale,
        ),
    ];
    let preload_100k = strings(&["--keys", "100000", "--preload", "100000", "--duration", "0"]);
    list.push(Workload {
        id: "capacity".into(),
        title: "Capacity: server pinned to 1 core (-t 1), pipelined loadgen on the other".into(),
        memory_mb: 1024,
        threads: 1,
        pinned: true,
        driver: Driver::Loadgen {
            preload: preload_100k.clone(),
            warmup: false,
            args: strings(&[
                "--keys",
                "100000",
                "--conns",
                "16",
                "--depth",
                "32",
                "--duration",
                &secs,
            ]),
        },
        metrics: vec![
            (Metric::Throughput, Target::RatioAtLeast(1.2)),
            (Metric::CpuPerOp, Target::Info),
            (Metric::PeakRss, Target::RssBound),
        ],
    });
    let rate = format!("{:.0}", scale.rate);
    list.push(Workload {
        id: "latency".into(),
        title: format!("Latency at a fixed {rate} req/s, 90/10 100 B, 64 conns"),
        memory_mb: 1024,
        threads: scale.threads,
        pinned: false,
        driver: Driver::Loadgen {
            preload: preload_100k,
            warmup: false,
            args: strings(&[
                "--keys",
                "100000",
                "--conns",
                "64",
                "--rate",
                &rate,
                "--duration",
                &secs,
            ]),
        },
        metrics: vec![
            (Metric::Throughput, Target::Info),
            (Metric::P50, Target::Info),
            (Metric::P99, Target::RatioAtMost(1.0)),
            (Metric::P999, Target::Info),
            (Metric::PeakRss, Target::RssBound),
        ],
    });
    list.push(Workload {
        id: "w4-zipf".into(),
        title: "W4 Zipf(0.99) over 10M keys, cache-aside gets, -m 64".into(),
        memory_mb: 64,
        threads: scale.threads,
        pinned: false,
        driver: Driver::Loadgen {
            preload: Vec::new(),
            warmup: true,
            args: strings(&[
                "--keys",
                "10000000",
                "--dist",
                "zipf",
                "--zipf-s",
                "0.99",
                "--get-ratio",
                "1",
                "--set-on-miss",
                "--conns",
                "16",
                "--depth",
                "8",
                "--ops",
                "1000000",
            ]),
        },
        metrics: vec![
            (Metric::HitRatio, Target::RatioAtLeast(1.0)),
            (Metric::Throughput, Target::Info),
            (Metric::PeakRss, Target::RssBound),
        ],
    });
    list.push(Workload {
        id: "held".into(),
        title: "Items held under -m 64, 16 B keys, 100 B values (1.2M written)".into(),
        memory_mb: 64,
        threads: scale.threads,
        pinned: false,
        driver: Driver::Held(strings(&["--write", "1200000", "--value-size", "100"])),
        metrics: vec![
            (Metric::Items, Target::RatioAtLeast(1.3)),
            (Metric::PeakRss, Target::RssBound),
        ],
    });
    for (index, keys) in scale.growth.iter().enumerate() {
        let count = keys.to_string();
        let target = if index == 0 {
            Target::Info
        } else {
            Target::GrowthAtLeast(0.9)
        };
        list.push(Workload {
            id: format!("w5-{}", millions(*keys)),
            title: format!(
                "W5 growth: {} keys, 90/10 100 B, pinned + pipelined",
                millions(*keys)
            ),
            memory_mb: 4096,
            threads: 1,
            pinned: true,
            driver: Driver::Loadgen {
                preload: strings(&[
                    "--keys",
                    &count,
                    "--preload",
                    &count,
                    "--duration",
                    "0",
                    "--conns",
                    "8",
                ]),
                warmup: false,
                args: strings(&[
                    "--keys",
                    &count,
                    "--conns",
                    "16",
                    "--depth",
                    "32",
                    "--duration",
                    &secs,
                ]),
            },
            metrics: vec![
                (Metric::Throughput, target),
                (Metric::PeakRss, Target::RssBound),
            ],
        });
    }
    list
}

//! A measured run: optional preload, then N connections (closed-loop with a pipeline
//! depth, or at a fixed offered rate) for a duration or an operation count.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::conn::{closed_loop, fixed_rate, ConnResult, Mix, Stop};
use crate::preload::{bulk, Bulk};
use crate::report::RunReport;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections.
    pub conns: usize,
    /// Requests in flight per connection (closed loop only).
    pub depth: usize,
    /// What to send.
    pub mix: Mix,
    /// Measured phase length (ignored when `ops` is set).
    pub duration: Duration,
    /// Total requests instead of a duration (closed loop only).
    pub ops: Option<u64>,
    /// Offered rate in requests per second over all connections (open loop).
    pub rate: Option<f64>,
    /// Keys `0..preload` are set before the measured phase.
    pub preload: u64,
    /// Seed of the key generators (connection `i` uses `seed + i`).
    pub seed: u64,
}

/// Runs the spec and summarises it.
pub async fn run(spec: RunSpec) -> Result<RunReport> {
    let mut report = RunReport::default();
    if spec.preload > 0 {
        let started = Instant::now();
        let errors = bulk(
            spec.addr,
            spec.preload,
            &spec.mix.names,
            Bulk::Write(spec.mix.value.clone()),
            spec.conns.min(16),
            64,
        )
        .await?;
        if errors > 0 {
            bail!("{errors} preload sets were not stored");
        }
        report.preload_keys = spec.preload;
        report.preload_secs = started.elapsed().as_secs_f64();
    }
    if spec.duration.is_zero() && spec.ops.is_none() {
        return Ok(report);
    }
    let conns = spec.conns.max(1);
    let started = Instant::now();
    let deadline = started + spec.duration;
    let mut tasks = Vec::with_capacity(conns);
    for index in 0..conns {
        let mix = spec.mix.clone();
        let seed = spec.seed.wrapping_add(index as u64);
        let addr = spec.addr;
        let task = if let Some(rate) = spec.rate {
            let interval = Duration::from_secs_f64(conns as f64 / rate);
            let first = started + interval.mul_f64(index as f64 / conns as f64);
            tokio::spawn(fixed_rate(addr, mix, interval, first, deadline, seed))
        } else {
            let stop = match spec.ops {
                Some(total) => Stop::Count(
                    total / conns as u64 + u64::from((index as u64) < total % conns as u64),
                ),
                None => Stop::At(deadline),
            };
            tokio::spawn(closed_loop(addr, mix, spec.depth.max(1), stop, seed))
        };
        tasks.push(task);
    }
    let mut total = ConnResult::new();
    for task in tasks {
        total.merge(&task.await.context("connection task panicked")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let micros = |q: f64| total.latency.value_at_quantile(q) as f64 / 1000.0;
    report.requests = total.requests;
    report.get_keys = total.get_keys;
    report.hits = total.hits;
    report.sets = total.sets;
    report.key_ops = total.get_keys + total.sets;
    report.errors = total.errors;
    report.elapsed_secs = elapsed;
    report.requests_per_sec = total.requests as f64 / elapsed;
    report.key_ops_per_sec = report.key_ops as f64 / elapsed;
    report.hit_ratio = if total.get_keys > 0 {
        total.hits as f64 / total.get_keys as f64
    } else {
        0.0
    };
    report.offered_rate = spec.rate;
    report.p50_us = micros(0.5);
    report.p99_us = micros(0.99);
    report.p999_us = micros(0.999);
    report.max_us = total.latency.max() as f64 / 1000.0;
    Ok(report)
}

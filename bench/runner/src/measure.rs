//! One sample: start a fresh server, run the workload's driver against it, and read the
//! server's CPU time and peak RSS around the measured part.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use shoal_loadgen::report::{HeldReport, RunReport};

use crate::memcaslap;
use crate::metrics::Sample;
use crate::procfs;
use crate::server::{Kind, Launch, Server};
use crate::workloads::{Driver, Workload};

/// Key seed of warm-up runs (measured runs use the load generator's default, 1).
pub const WARMUP_SEED: u64 = 1000;

/// Paths and settings shared by every sample.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// memcached binary.
    pub memcached: PathBuf,
    /// Shoal binary.
    pub shoal: PathBuf,
    /// shoal-loadgen binary.
    pub loadgen: PathBuf,
    /// Scratch directory (memcaslap config files).
    pub scratch: PathBuf,
}

/// The server launch settings of `workload`.
pub fn launch(workload: &Workload, ctx: &RunContext) -> Launch {
    Launch {
        memcached: ctx.memcached.clone(),
        shoal: ctx.shoal.clone(),
        threads: workload.threads,
        memory_mb: workload.memory_mb,
        core: workload.pinned.then_some(0),
    }
}

/// The load generator command line for `sub` (`run`/`held`) with `args`, against `addr`.
pub fn loadgen_command(
    ctx: &RunContext,
    pinned: bool,
    sub: &str,
    args: &[String],
    addr: &str,
) -> Vec<String> {
    let mut argv = Vec::new();
    if pinned {
        argv.extend(["taskset".to_string(), "-c".to_string(), "1".to_string()]);
    }
    argv.push(ctx.loadgen.display().to_string());
    argv.push(sub.to_string());
    argv.extend(["--server".to_string(), addr.to_string()]);
    argv.extend(args.iter().cloned());
    argv
}

/// Runs `argv` to completion and parses its stdout as JSON.
pub fn run_json<T: DeserializeOwned>(argv: &[String]) -> Result<T> {
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("cannot run {}", argv.join(" ")))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("bad JSON from {}", argv.join(" ")))
}

/// Runs one sample of `workload` on `kind`.
pub fn sample(workload: &Workload, kind: Kind, ctx: &RunContext) -> Result<Sample> {
    let server = Server::start(kind, &launch(workload, ctx))?;
    let addr = server.addr.to_string();
    let pid = server.pid();
    let mut sample = Sample::default();
    let measured =
        |sample: &mut Sample, run: &mut dyn FnMut(&mut Sample) -> Result<()>| -> Result<()> {
            let before = procfs::cpu_seconds(pid)?;
            run(sample)?;
            sample.cpu_secs = procfs::cpu_seconds(pid)? - before;
            sample.rss_mib = procfs::peak_rss_mib(pid)?;
            if sample.ops > 0.0 {
                sample.cpu_us_per_op = sample.cpu_secs * 1e6 / sample.ops;
            }
            Ok(())
        };
    match &workload.driver {
        Driver::Memcaslap(load) => {
            let config = scratch_file(&ctx.scratch, &workload.id)?;
            measured(&mut sample, &mut |s| {
                let outcome = memcaslap::run(load, server.addr, &config)?;
                s.ops = outcome.ops;
                s.throughput = outcome.tps;
                Ok(())
            })?;
        }
        Driver::Loadgen {
            preload,
            warmup,
            args,
        } => {
            if !preload.is_empty() {
                let argv = loadgen_command(ctx, workload.pinned, "run", preload, &addr);
                run_json::<RunReport>(&argv)?;
            }
            let argv = loadgen_command(ctx, workload.pinned, "run", args, &addr);
            if *warmup {
                let mut warm = argv.clone();
                warm.extend(["--seed".to_string(), WARMUP_SEED.to_string()]);
                run_json::<RunReport>(&warm)?;
            }
            measured(&mut sample, &mut |s| {
                let report: RunReport = run_json(&argv)?;
                if report.errors > 0 {
                    bail!("{} unexpected replies from {}", report.errors, kind.name());
                }
                s.ops = report.key_ops as f64;
                s.throughput = report.key_ops_per_sec;
                s.p50_us = report.p50_us;
                s.p99_us = report.p99_us;
                s.p999_us = report.p999_us;
                s.hit_ratio = report.hit_ratio;
                Ok(())
            })?;
        }
        Driver::Held(args) => {
            let argv = loadgen_command(ctx, workload.pinned, "held", args, &addr);
            measured(&mut sample, &mut |s| {
                let report: HeldReport = run_json(&argv)?;
                s.ops = report.written as f64;
                s.items = report.readable as f64;
                Ok(())
            })?;
        }
    }
    drop(server);
    Ok(sample)
}

fn scratch_file(dir: &Path, id: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join(format!("{id}.memcaslap.cfg")))
}

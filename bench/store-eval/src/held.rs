//! Items held: 1.2M distinct 16-byte keys with 100-byte values written into an engine
//! limited to 64 MiB, then every key read back; also the process's resident memory
//! growth. Each engine runs in a child process of its own so that one's freed memory
//! cannot hide the other's growth.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use crate::engines::{Engine, SegConfig, SegEngine, ShoalEngine};
use crate::keys;

/// Distinct keys written.
pub const WRITES: usize = 1_200_000;

/// What one child measured.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Keys a get still finds after all the writes.
    pub held: usize,
    /// Writes the engine refused.
    pub refused: usize,
    /// The refusals by error, `Name:count,...` (`-` for none).
    pub errors: String,
    /// Resident memory growth over building and filling the engine, in KiB.
    pub rss_growth_kib: u64,
    /// Resident memory growth over building the (empty) engine alone, in KiB.
    pub rss_empty_kib: u64,
    /// Seconds the writes took.
    pub write_secs: f64,
}

/// The process's resident set in KiB, from /proc/self/statm (0 if unreadable).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Runs in the child: `engine` is `shoal` or a [`SegConfig::spec`]. Prints one line.
pub fn child(engine: &str) -> Result<(), String> {
    let keys = keys::keys(WRITES);
    let value = keys::value();
    let before = rss_kib();
    let e: Box<dyn Engine> = if engine == "shoal" {
        Box::new(ShoalEngine::new())
    } else {
        let c = SegConfig::parse(engine).ok_or_else(|| format!("bad engine spec {engine}"))?;
        Box::new(SegEngine::new(&c))
    };
    let empty = rss_kib();
    let t = Instant::now();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &keys {
        if let Err(name) = e.set(k, &value) {
            *errors.entry(name).or_default() += 1;
        }
    }
    let refused: usize = errors.values().sum();
    let errors: Vec<String> = errors.iter().map(|(n, c)| format!("{n}:{c}")).collect();
    let write_secs = t.elapsed().as_secs_f64();
    let mut buf = Vec::new();
    let held = keys.iter().filter(|k| e.get(k, &mut buf)).count();
    let after = rss_kib();
    println!(
        "held={held} refused={refused} errors={} rss_growth_kib={} rss_empty_kib={} write_secs={write_secs:.3}",
        if errors.is_empty() { "-".to_string() } else { errors.join(",") },
        after.saturating_sub(before),
        empty.saturating_sub(before)
    );
    Ok(())
}

/// Runs the child for `engine` and parses its line.
pub fn measure(engine: &str) -> Result<Held, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--held-child", engine])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "child for {engine} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let mut h = Held::default();
    for field in line.split_whitespace() {
        let (name, v) = field.split_once('=').ok_or("bad child output")?;
        let bad = |_| format!("bad value in {field}");
        match name {
            "held" => h.held = v.parse().map_err(bad)?,
            "refused" => h.refused = v.parse().map_err(bad)?,
            "errors" => h.errors = v.to_string(),
            "rss_growth_kib" => h.rss_growth_kib = v.parse().map_err(bad)?,
            "rss_empty_kib" => h.rss_empty_kib = v.parse().map_err(bad)?,
            "write_secs" => h.write_secs = v.parse().map_err(|_| format!("bad {field}"))?,
            _ => {}
        }
    }
    Ok(h)
}

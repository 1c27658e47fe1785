//! The JSON reports the generator prints (one object on stdout) and the runner reads.

use serde::{Deserialize, Serialize};

/// Result of `shoal-loadgen run`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Keys written by the preload phase.
    pub preload_keys: u64,
    /// Seconds the preload phase took.
    pub preload_secs: f64,
    /// Requests completed in the measured phase (a multi-get counts once).
    pub requests: u64,
    /// Key operations completed: keys asked for by gets plus sets.
    pub key_ops: u64,
    /// Keys asked for by gets.
    pub get_keys: u64,
    /// Keys found.
    pub hits: u64,
    /// Sets sent (workload sets plus cache-aside refills).
    pub sets: u64,
    /// Replies that were neither a retrieval reply nor `STORED`.
    pub errors: u64,
    /// Length of the measured phase, seconds.
    pub elapsed_secs: f64,
    /// `requests / elapsed_secs`.
    pub requests_per_sec: f64,
    /// `key_ops / elapsed_secs`.
    pub key_ops_per_sec: f64,
    /// `hits / get_keys` (0 when there were no gets).
    pub hit_ratio: f64,
    /// Offered rate, requests per second, when the run was rate-limited.
    pub offered_rate: Option<f64>,
    /// Latency percentiles of requests, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: f64,
    /// Largest latency seen, microseconds.
    pub max_us: f64,
}

/// Result of `shoal-loadgen held`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeldReport {
    /// Keys written, in order, `0..written`.
    pub written: u64,
    /// Of those, how many a `get` still finds afterwards.
    pub readable: u64,
    /// The server's `curr_items` stat afterwards, if it reports one.
    pub curr_items: Option<u64>,
    /// The server's `evictions` stat afterwards, if it reports one.
    pub evictions: Option<u64>,
    /// Sets that were not answered `STORED`.
    pub errors: u64,
}

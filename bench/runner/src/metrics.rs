//! The measured quantities of one run (a sample), the metrics read from it, and the
//! targets a metric's medians are judged against.

use serde::{Deserialize, Serialize};

/// What one run of one server measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Operations per second (memcaslap TPS, or loadgen key operations per second).
    pub throughput: f64,
    /// Operations completed.
    pub ops: f64,
    /// Server CPU (utime + stime) over the measured run, seconds.
    pub cpu_secs: f64,
    /// Server CPU per operation, microseconds.
    pub cpu_us_per_op: f64,
    /// Server peak resident memory (VmHWM) at the end of the run, MiB.
    pub rss_mib: f64,
    /// Latency percentiles, microseconds (loadgen runs only).
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// Get hit ratio (loadgen runs only).
    pub hit_ratio: f64,
    /// Items still readable (items-held runs only).
    pub items: f64,
}

/// A reported metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Operations per second.
    Throughput,
    /// Server CPU microseconds per operation.
    CpuPerOp,
    /// Peak RSS, MiB.
    PeakRss,
    /// Median latency.
    P50,
    /// 99th percentile latency.
    P99,
    /// 99.9th percentile latency.
    P999,
    /// Get hit ratio.
    HitRatio,
    /// Items held.
    Items,
}

impl Metric {
    /// Name with unit.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput (ops/s)",
            Metric::CpuPerOp => "server CPU per op (us)",
            Metric::PeakRss => "peak RSS (MiB)",
            Metric::P50 => "p50 latency (us)",
            Metric::P99 => "p99 latency (us)",
            Metric::P999 => "p99.9 latency (us)",
            Metric::HitRatio => "hit ratio",
            Metric::Items => "items held",
        }
    }

    /// The metric's value in a sample.
    pub fn of(self, sample: &Sample) -> f64 {
        match self {
            Metric::Throughput => sample.throughput,
            Metric::CpuPerOp => sample.cpu_us_per_op,
            Metric::PeakRss => sample.rss_mib,
            Metric::P50 => sample.p50_us,
            Metric::P99 => sample.p99_us,
            Metric::P999 => sample.p999_us,
            Metric::HitRatio => sample.hit_ratio,
            Metric::Items => sample.items,
        }
    }
}

/// What a metric must achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Reported only.
    Info,
    /// Shoal / memcached at least this.
    RatioAtLeast(f64),
    /// Shoal / memcached at most this.
    RatioAtMost(f64),
    /// Shoal's value at most the memory limit + 10% + 16 MiB.
    RssBound,
    /// Shoal's throughput at least this fraction of its own on the first growth workload.
    GrowthAtLeast(f64),
}

/// The median of `values` (mean of the middle two for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The resident memory bound for a memory limit of `limit_mb` MiB.
pub fn rss_bound(limit_mb: u64) -> f64 {
    limit_mb as f64 * 1.1 + 16.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn rss_bound_is_limit_plus_ten_percent_plus_16() {
        assert_eq!(rss_bound(64), 64.0 * 1.1 + 16.0);
    }
}

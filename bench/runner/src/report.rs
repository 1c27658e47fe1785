//! Turning samples into the results table (medians, Shoal/memcached ratios, targets) and
//! writing it as markdown.

use std::fmt::Write as _;

use crate::metrics::{median, rss_bound, Metric, Sample, Target};
use crate::workloads::Workload;

/// Samples of one workload, per server, in round order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Samples {
    /// memcached's samples.
    pub memcached: Vec<Sample>,
    /// Shoal's samples.
    pub shoal: Vec<Sample>,
}

/// A value judged against a target, for the plot: `value` should be at least (or, when
/// `lower_is_better`, at most) `target`.
#[derive(Debug, Clone, Copy)]
pub struct Score {
    /// The judged value (a ratio).
    pub value: f64,
    /// The target it is judged against.
    pub target: f64,
    /// Whether lower values are better.
    pub lower_is_better: bool,
}

impl Score {
    /// Whether the target is met.
    pub fn met(&self) -> bool {
        if self.lower_is_better {
            self.value <= self.target
        } else {
            self.value >= self.target
        }
    }
}

/// One table row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload title.
    pub workload: String,
    /// Workload id (short, for the plot).
    pub id: String,
    /// Metric label.
    pub metric: String,
    /// memcached's median (or max, for RSS).
    pub memcached: f64,
    /// Shoal's median (or max, for RSS).
    pub shoal: f64,
    /// The ratio column's text.
    pub ratio: String,
    /// The target column's text.
    pub target: String,
    /// The judged score, when there is a target.
    pub score: Option<Score>,
}

fn column(samples: &[Sample], metric: Metric) -> Vec<f64> {
    samples.iter().map(|s| metric.of(s)).collect()
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// Builds the rows of every workload that has samples.
pub fn rows(workloads: &[Workload], samples: &[Samples]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, (workload, got)) in workloads.iter().zip(samples).enumerate() {
        if got.memcached.is_empty() || got.shoal.is_empty() {
            continue;
        }
        for &(metric, target) in &workload.metrics {
            let (m_values, s_values) = (column(&got.memcached, metric), column(&got.shoal, metric));
            let (memcached, shoal, label) = if metric == Metric::PeakRss {
                (
                    max(&m_values),
                    max(&s_values),
                    format!("{} (max of rounds)", metric.label()),
                )
            } else {
                (
                    median(&m_values),
                    median(&s_values),
                    metric.label().to_string(),
                )
            };
            let ratio = if memcached > 0.0 {
                shoal / memcached
            } else {
                f64::NAN
            };
            let (target_text, score) = match target {
                Target::Info => ("-".to_string(), None),
                Target::RatioAtLeast(t) => (
                    format!("ratio >= {t:.2}"),
                    Some(Score {
                        value: ratio,
                        target: t,
                        lower_is_better: false,
                    }),
                ),
                Target::RatioAtMost(t) => (
                    format!("ratio <= {t:.2}"),
                    Some(Score {
                        value: ratio,
                        target: t,
                        lower_is_better: true,
                    }),
                ),
                Target::RssBound => {
                    let bound = rss_bound(workload.memory_mb);
                    (
                        format!("Shoal <= {bound:.0} MiB"),
                        Some(Score {
                            value: shoal / bound,
                            target: 1.0,
                            lower_is_better: true,
                        }),
                    )
                }
                Target::GrowthAtLeast(_) => ("-".to_string(), None),
            };
            rows.push(Row {
                workload: workload.title.clone(),
                id: workload.id.clone(),
                metric: label,
                memcached,
                shoal,
                ratio: format!("{ratio:.2}"),
                target: target_text,
                score,
            });
            if let Target::GrowthAtLeast(t) = target {
                rows.extend(growth_row(
                    workloads, samples, index, metric, t, memcached, shoal,
                ));
            }
        }
    }
    rows
}

/// The row comparing a growth workload's throughput with the workload before it.
fn growth_row(
    workloads: &[Workload],
    samples: &[Samples],
    index: usize,
    metric: Metric,
    target: f64,
    memcached: f64,
    shoal: f64,
) -> Option<Row> {
    let base = samples.get(index.checked_sub(1)?)?;
    let base_m = median(&column(&base.memcached, metric));
    let base_s = median(&column(&base.shoal, metric));
    if base_m <= 0.0 || base_s <= 0.0 {
        return None;
    }
    let score = Score {
        value: shoal / base_s,
        target,
        lower_is_better: false,
    };
    Some(Row {
        workload: format!(
            "W5 growth: {} vs {}",
            workloads[index].id,
            workloads[index - 1].id
        ),
        id: format!("{} vs {}", workloads[index].id, workloads[index - 1].id),
        metric: "throughput, larger / smaller key count, per server".into(),
        memcached: memcached / base_m,
        shoal: score.value,
        ratio: "-".into(),
        target: format!("Shoal >= {target:.2}"),
        score: Some(score),
    })
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

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Workload | Metric | memcached | Shoal | Shoal/memcached | Target | Met? |\n|---|---|---:|---:|---:|---|---|\n",
    );
    for row in rows {
        let met = match row.score {
            None => "",
            Some(score) if score.met() => "yes",
            Some(_) => "**no**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.workload,
            row.metric,
            number(row.memcached),
            number(row.shoal),
            row.ratio,
            row.target,
            met
        );
    }
    let judged: Vec<&Score> = rows.iter().filter_map(|r| r.score.as_ref()).collect();
    let met = judged.iter().filter(|s| s.met()).count();
    let _ = writeln!(out, "\nTargets met: {met} of {}.", judged.len());
    out
}

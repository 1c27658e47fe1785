//! Throughput: a mix of gets and sets on uniformly chosen keys of a working set that fits
//! (so nothing is evicted), on one thread or on several sharing one engine, as the
//! server's few worker threads share its store.

use std::sync::Barrier;
use std::time::Instant;

use bytes::Bytes;

use crate::engines::Engine;
use crate::keys::{self, Rng};

/// Keys in the working set (about 14 MB of items: well inside 64 MiB).
pub const WORKING_SET: usize = 100_000;

/// One workload.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Short name for tables.
    pub name: &'static str,
    /// Percent of operations that are gets; the rest are sets.
    pub get_percent: u64,
}

/// Writes every key of the working set once.
pub fn preload(e: &dyn Engine, keys: &[Bytes]) {
    let value = keys::value();
    for k in keys {
        if let Err(err) = e.set(k, &value) {
            panic!("preload refused a set: {err}");
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Operations per second of wall time.
    pub wall: f64,
    /// Operations per second of CPU time of the threads doing them (summed over the
    /// threads): what a loaded machine distorts least, though it leaves out time spent
    /// waiting for a lock while parked.
    pub cpu: f64,
}

/// This thread's CPU time so far, in nanoseconds, from /proc/thread-self/schedstat (0 if
/// unreadable).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One thread's share: `ops` operations of `mix`; gives the hits (to keep the work
/// observable) and the CPU time it took.
fn worker(e: &dyn Engine, keys: &[Bytes], mix: Mix, ops: usize, seed: u64) -> (usize, u64) {
    let cpu = thread_cpu_ns();
    let value = keys::value();
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(256);
    let mut hits = 0;
    for _ in 0..ops {
        let r = rng.next_u64();
        let k = &keys[(((r >> 32) * keys.len() as u64) >> 32) as usize];
        if r % 100 < mix.get_percent {
            hits += usize::from(e.get(k, &mut buf));
        } else {
            let _ = std::hint::black_box(e.set(k, &value));
        }
    }
    (hits, thread_cpu_ns().saturating_sub(cpu))
}

/// Runs `ops` operations in total over `threads` threads on `e` (preloaded) and gives
/// the rates, wall time counted from the moment all threads start to the last one's end.
pub fn run(e: &dyn Engine, keys: &[Bytes], mix: Mix, threads: usize, ops: usize) -> Rate {
    let per = ops / threads;
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    worker(e, keys, mix, per, 0x9E37_79B9 + t as u64 * 7919)
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        let (mut hits, mut cpu) = (0, 0);
        for h in handles {
            let (n, ns) = h.join().expect("worker");
            hits += n;
            cpu += ns;
        }
        std::hint::black_box(hits);
        (t.elapsed(), cpu)
    });
    let (elapsed, cpu_ns) = elapsed;
    let done = (per * threads) as f64;
    Rate {
        wall: done / elapsed.as_secs_f64(),
        cpu: done / (cpu_ns.max(1) as f64 / 1e9),
    }
}

/// The median of `v` (sorted in place); 0 for none.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}

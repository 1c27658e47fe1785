//! Time sources: the [`Clock`] trait, the system clock (kept as memcached keeps it) and a
//! manual clock for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A source of the current unix time in seconds. Tests use a manual clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the unix epoch.
    fn now(&self) -> u64;
}

/// The system clock as memcached 1.6.18 keeps it: the wall-clock second at creation,
/// advanced by the whole seconds of monotonic time since. Like memcached's
/// `clock_handler`, it ticks in phase with the start rather than with the wall clock's
/// seconds (so both agree on TTLs to the second), and never jumps when the wall clock is
/// set.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start_wall: u64,
    start: Instant,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> SystemClock {
        SystemClock {
            start_wall: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        self.start_wall + self.start.elapsed().as_secs()
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock showing `now` (unix seconds).
    pub fn new(now: u64) -> ManualClock {
        ManualClock {
            now: AtomicU64::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(100);
        assert_eq!(c.now(), 100);
        c.advance(5);
        assert_eq!(c.now(), 105);
        c.set(7);
        assert_eq!(c.now(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock::new().now() > 1_577_836_800);
    }
}

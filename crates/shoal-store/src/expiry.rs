//! Time rules: memcached's conversion of a client exptime into an absolute time
//! (`realtime()`), the dead-item test, and `flush_all`'s oldest-live state.

use std::sync::atomic::{AtomicU64, Ordering};

use shoal_command::{Exptime, RELATIVE_EXPTIME_MAX};

/// The stored exptime of an item that has already expired (memcached's `realtime()`
/// gives 1 for such times; 0 means never).
pub(crate) const EXPIRED: u32 = 1;

/// Converts a client exptime into an absolute unix time as memcached does: 0 never,
/// negative already expired, up to 30 days relative to `now`, above an absolute time
/// (at or before now: expired).
pub(crate) fn absolute(exptime: Exptime, now: u64) -> u32 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        EXPIRED
    } else if exptime <= RELATIVE_EXPTIME_MAX {
        clamp(now.saturating_add(exptime as u64))
    } else if (exptime as u64) <= now {
        EXPIRED
    } else {
        clamp(exptime as u64)
    }
}

fn clamp(t: u64) -> u32 {
    t.min(u32::MAX as u64) as u32
}

/// `now` as the store keeps times.
pub(crate) fn now32(now: u64) -> u32 {
    clamp(now).max(2)
}

/// Whether an item with this absolute exptime has expired at `now`.
pub(crate) fn is_expired(exptime: u32, now: u32) -> bool {
    exptime != 0 && exptime <= now
}

/// How far ahead of its start memcached sets its clock (`process_started` is
/// `ITEM_UPDATE_INTERVAL + 2` seconds before the real start).
const CLOCK_HEADSTART: i64 = 62;

/// Seconds left before an absolute exptime, as memcached's meta `t` shows it; `None`
/// for never. `started` is when the store started.
///
/// memcached prints `exptime - current_time` as an unsigned 32-bit number of its
/// relative clock. An item touched in the past by the same command (`T-1`) keeps its
/// `realtime()` exptime of 1 until the command ends, so `t` shows `1 - current_time`
/// wrapped: 2^32 + 1 - (62 + seconds since the start).
pub(crate) fn ttl(exptime: u32, now: u32, started: u32) -> Option<i64> {
    let current = now as i64 - started as i64 + CLOCK_HEADSTART;
    let relative = match exptime {
        0 => return None,
        EXPIRED => 1,
        t => t as i64 - started as i64 + CLOCK_HEADSTART,
    };
    Some((relative - current).rem_euclid(1 << 32))
}

/// The state `flush_all` leaves behind, as memcached's `settings.oldest_live` and
/// `settings.oldest_cas`.
#[derive(Debug, Default)]
pub(crate) struct FlushState {
    oldest_live: AtomicU64,
    oldest_cas: AtomicU64,
    /// A cluster-wide flush: every item with a (non-zero) CAS below it is gone, whatever
    /// its time (see `Store::flush_below_version`).
    version_floor: AtomicU64,
}

impl FlushState {
    /// Records a flush. `new_oldest` is `now` for an immediate flush, else the absolute
    /// time of the delay; `next_cas` hands out a CAS value (only called with CAS on).
    pub fn flush(&self, new_oldest: u32, now: u32, use_cas: bool, next_cas: impl FnOnce() -> u64) {
        if use_cas {
            let oldest_live = new_oldest.saturating_sub(1);
            if oldest_live <= now {
                self.oldest_cas.store(next_cas(), Ordering::SeqCst);
            }
            self.oldest_live.store(oldest_live as u64, Ordering::SeqCst);
        } else {
            self.oldest_live.store(new_oldest as u64, Ordering::SeqCst);
        }
    }

    /// Raises the version floor to `floor` (never lowers it).
    pub fn raise_version_floor(&self, floor: u64) {
        self.version_floor.fetch_max(floor, Ordering::SeqCst);
    }

    /// The version floor (0: none).
    pub fn version_floor(&self) -> u64 {
        self.version_floor.load(Ordering::Relaxed)
    }

    /// memcached's `item_is_flushed`: a flush has come into effect and the item was last
    /// touched no later than it, or (same second) got its CAS before it.
    pub fn is_flushed(&self, time: u32, cas: u64, now: u32) -> bool {
        if cas != 0 && cas < self.version_floor.load(Ordering::Relaxed) {
            return true;
        }
        let oldest_live = self.oldest_live.load(Ordering::Relaxed);
        if oldest_live == 0 || oldest_live > now as u64 {
            return false;
        }
        let oldest_cas = self.oldest_cas.load(Ordering::Relaxed);
        time as u64 <= oldest_live || (oldest_cas != 0 && cas != 0 && cas < oldest_cas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn realtime_rules() {
        assert_eq!(absolute(0, NOW), 0);
        assert_eq!(absolute(-1, NOW), EXPIRED);
        assert_eq!(absolute(i64::MIN, NOW), EXPIRED);
        assert_eq!(absolute(1, NOW), (NOW + 1) as u32);
        assert_eq!(
            absolute(RELATIVE_EXPTIME_MAX, NOW),
            (NOW + RELATIVE_EXPTIME_MAX as u64) as u32
        );
        // just above 30 days: an absolute time long past
        assert_eq!(absolute(RELATIVE_EXPTIME_MAX + 1, NOW), EXPIRED);
        assert_eq!(absolute(NOW as i64, NOW), EXPIRED);
        assert_eq!(absolute(NOW as i64 + 10, NOW), (NOW + 10) as u32);
    }

    #[test]
    fn expiry_is_at_or_after_exptime() {
        let n = now32(NOW);
        assert!(!is_expired(0, n));
        assert!(is_expired(n, n));
        assert!(!is_expired(n + 1, n));
        assert!(is_expired(EXPIRED, n));
        assert_eq!(ttl(0, n, n), None);
        assert_eq!(ttl(n + 5, n, n - 100), Some(5));
        // memcached 1.6.18, 1 s after its start: `mg k T-1 t` shows t4294967234.
        assert_eq!(ttl(EXPIRED, n, n - 1), Some(4_294_967_234));
    }

    #[test]
    fn immediate_flush_keeps_items_stored_after_it_in_the_same_second() {
        let f = FlushState::default();
        let n = now32(NOW);
        assert!(!f.is_flushed(n, 5, n));
        f.flush(n, n, true, || 10);
        assert!(f.is_flushed(n, 9, n), "stored earlier in the same second");
        assert!(!f.is_flushed(n, 11, n), "stored after the flush");
        assert!(f.is_flushed(n - 1, 11, n), "stored in an earlier second");
        assert!(!f.is_flushed(n + 1, 11, n + 1));
    }

    #[test]
    fn delayed_flush_comes_into_effect_later() {
        let f = FlushState::default();
        let n = now32(NOW);
        f.flush(n + 2, n, true, || panic!("no cas for a delayed flush"));
        assert!(!f.is_flushed(n, 1, n));
        assert!(f.is_flushed(n, 1, n + 1));
        assert!(f.is_flushed(n + 1, 1, n + 1));
        assert!(!f.is_flushed(n + 2, 1, n + 2));
    }

    #[test]
    fn version_floor_flushes_older_versions_whatever_their_time() {
        let f = FlushState::default();
        let n = now32(NOW);
        f.raise_version_floor(100);
        assert!(f.is_flushed(n + 10, 99, n + 10));
        assert!(!f.is_flushed(n, 100, n));
        assert!(!f.is_flushed(n, 0, n), "an item without CAS has no version");
        f.raise_version_floor(50);
        assert_eq!(f.version_floor(), 100, "the floor never goes down");
    }

    #[test]
    fn flush_without_cas_takes_the_whole_second() {
        let f = FlushState::default();
        let n = now32(NOW);
        f.flush(n, n, false, || unreachable!());
        assert!(f.is_flushed(n, 0, n));
        assert!(!f.is_flushed(n + 1, 0, n + 1));
    }
}

//! Shoal's storage engine: items in memory under a hard limit counted in bytes (data and
//! metadata), evicted when full, expired lazily and reclaimed, each change stamped with a
//! new CAS value. It executes the item-level parts of [`shoal_command`] commands and knows
//! nothing of protocols or the network.

use std::sync::Arc;

use shoal_command::{
    Arith, ArithOutcome, Delete, DeleteOutcome, Exptime, ItemView, ReadOptions, ServerError,
    Store as StoreCmd, StoreOutcome,
};

/// A source of the current unix time in seconds. Tests use a manual clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the unix epoch.
    fn now(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// How a store is sized and behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// The memory limit for items, data and metadata, in bytes (memcached's -m).
    pub max_bytes: usize,
    /// The largest item, in bytes (memcached's -I).
    pub item_size_max: usize,
    /// Evict to make room when full; when false, a full store refuses writes (-M).
    pub evict: bool,
    /// Hand out CAS values (false with -C: every CAS reads 0).
    pub use_cas: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_bytes: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            evict: true,
            use_cas: true,
        }
    }
}

/// Counters and gauges of the store, named as memcached names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items stored now.
    pub curr_items: u64,
    /// Items ever stored.
    pub total_items: u64,
    /// Bytes used by items now.
    pub bytes: u64,
    /// Items evicted to make room.
    pub evictions: u64,
    /// Expired items whose memory was reclaimed.
    pub reclaimed: u64,
}

/// The storage engine. Cheap to share between threads behind an [`Arc`].
#[derive(Debug)]
pub struct Store {
    _config: StoreConfig,
    _clock: Arc<dyn Clock>,
}

impl Store {
    /// A store on the system clock.
    pub fn new(config: StoreConfig) -> Store {
        Store::with_clock(config, Arc::new(SystemClock))
    }

    /// A store on the given clock.
    pub fn with_clock(config: StoreConfig, clock: Arc<dyn Clock>) -> Store {
        Store {
            _config: config,
            _clock: clock,
        }
    }

    /// Reads one key, applying the read's side effects (touch, vivify, recache win, access
    /// time). `None` is a miss.
    pub fn get(&self, _key: &[u8], _options: &ReadOptions) -> Option<ItemView> {
        todo!()
    }

    /// Reads one key without any side effect (for `me` and internal use).
    pub fn peek(&self, _key: &[u8]) -> Option<ItemView> {
        todo!()
    }

    /// Writes one item.
    pub fn store(&self, _cmd: &StoreCmd) -> Result<StoreOutcome, ServerError> {
        todo!()
    }

    /// Deletes (or invalidates) one item.
    pub fn delete(&self, _cmd: &Delete) -> DeleteOutcome {
        todo!()
    }

    /// Increments or decrements one counter.
    pub fn arith(&self, _cmd: &Arith) -> Result<ArithOutcome, ServerError> {
        todo!()
    }

    /// Sets one item's exptime; false if it does not exist.
    pub fn touch(&self, _key: &[u8], _exptime: Exptime) -> bool {
        todo!()
    }

    /// Invalidates every item, now (`delay` 0) or when `delay` (an exptime) comes.
    pub fn flush_all(&self, _delay: Exptime) {
        todo!()
    }

    /// The store's counters now.
    pub fn stats(&self) -> StoreStats {
        todo!()
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self._config
    }
}

//! The store's counters, named as memcached names them.

/// Counters and gauges of the store, named as memcached names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items stored now.
    pub curr_items: u64,
    /// Items ever stored (each store, append, vivify or growing incr links a new item).
    pub total_items: u64,
    /// Bytes used by items now, as charged against the limit (data, header, allocator
    /// rounding and per-item index overhead).
    pub bytes: u64,
    /// Live items evicted to make room.
    pub evictions: u64,
    /// Expired or flushed items whose memory was reclaimed while making room.
    pub reclaimed: u64,
    /// Of the items evicted, those never fetched.
    pub evicted_unfetched: u64,
    /// Of the items reclaimed, those never fetched.
    pub expired_unfetched: u64,
    /// Reads that found an item expired (and removed it).
    pub get_expired: u64,
    /// Reads that found an item flushed (and removed it).
    pub get_flushed: u64,
}

impl StoreStats {
    /// Adds another shard's counters to these.
    pub(crate) fn add(&mut self, o: &StoreStats) {
        self.curr_items += o.curr_items;
        self.total_items += o.total_items;
        self.bytes += o.bytes;
        self.evictions += o.evictions;
        self.reclaimed += o.reclaimed;
        self.evicted_unfetched += o.evicted_unfetched;
        self.expired_unfetched += o.expired_unfetched;
        self.get_expired += o.get_expired;
        self.get_flushed += o.get_flushed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sums_every_field() {
        let one = StoreStats {
            curr_items: 1,
            total_items: 2,
            bytes: 3,
            evictions: 4,
            reclaimed: 5,
            evicted_unfetched: 6,
            expired_unfetched: 7,
            get_expired: 8,
            get_flushed: 9,
        };
        let mut sum = one.clone();
        sum.add(&one);
        assert_eq!(
            sum,
            StoreStats {
                curr_items: 2,
                total_items: 4,
                bytes: 6,
                evictions: 8,
                reclaimed: 10,
                evicted_unfetched: 12,
                expired_unfetched: 14,
                get_expired: 16,
                get_flushed: 18,
            }
        );
    }
}

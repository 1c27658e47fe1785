//! The store's side of replication and hand-off: an item exported as a [`ReplicaItem`]
//! and written into another store by last-writer-wins on its CAS (its version), the CAS
//! counter kept as a Lamport clock, and whole-store scans and pruning by key.
//!
//! None of these is a client's command: they move no access time, no fetched bit and no
//! read counter (`get_expired`, `get_flushed`); only `curr_items`, `bytes` and (for each
//! item written) `total_items` change.
//!
//! Times: the store keeps an item's exptime as unix seconds of its clock (see
//! `expiry::absolute`), 0 for never and 1 for already expired; memcached's
//! process-relative clock (`started`) only shows in the TTLs reported (`expiry::ttl`). So
//! a replica's `expires_at` is that exptime, and another store, whatever its start time,
//! reads it as the same moment, up to the skew between the two clocks (a
//! [`SystemClock`](crate::SystemClock) ticks in phase with its start: less than a second).

use bytes::Bytes;
use shoal_command::{ReplicaItem, ServerError, MAX_KEY_LEN};

use crate::item::{memcached_size, ItemRef, Meta, NewItem, BINARY_KEY, STALE};
use crate::shard::{Ctx, Shard};
use crate::Store;
use std::sync::atomic::Ordering;

/// A stored exptime as unix seconds (0 never).
fn expires_at(exptime: u32) -> u64 {
    exptime as u64
}

/// The exptime to store for a replica's `expires_at` at `now`; None if it has passed.
fn exptime_of(expires_at: u64, now: u32) -> Option<u32> {
    match expires_at {
        0 => Some(0),
        t if t <= now as u64 => None,
        t => Some(t.min(u32::MAX as u64) as u32),
    }
}

/// Whether an incoming version replaces the held one: a higher CAS wins. CAS 0 on both
/// sides means neither has a version (a store run without CAS, -C): the arrival wins.
fn supersedes(incoming: u64, held: u64) -> bool {
    incoming > held || (incoming == 0 && held == 0)
}

/// The replica of a stored item.
fn replica_of(it: &ItemRef) -> ReplicaItem {
    ReplicaItem {
        key: Bytes::copy_from_slice(it.key()),
        value: Bytes::copy_from_slice(it.value()),
        flags: it.flags(),
        expires_at: expires_at(it.exptime()),
        cas: it.cas(),
        stale: it.has(STALE),
        binary_key: it.has(BINARY_KEY),
    }
}

/// Which held versions an incoming replica replaces.
#[derive(Debug, Clone, Copy)]
enum Wins {
    /// Only older ones (a pull, a merge: last writer wins).
    Newer,
    /// Older and equal ones (the primary's own order: a touch keeps the CAS).
    NewerOrEqual,
    /// Any (an undo).
    Always,
}

/// Removes the live item with this key, if any; whether there was one.
fn unlink(sh: &mut Shard, ctx: &Ctx, hash: u64, key: &[u8]) -> bool {
    match sh.get_live_quiet(ctx, hash, key) {
        Some(idx) => {
            sh.remove(ctx, idx);
            true
        }
        None => false,
    }
}

impl Store {
    /// The live item with this key (not expired, not flushed) as a replica holds it, or
    /// None. Reads without side effect: the access time and fetched bit stay.
    pub fn export(&self, key: &[u8]) -> Option<ReplicaItem> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let ctx = self.ctx(self.now());
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let idx = sh.get_live_quiet(&ctx, hash, key)?;
        Some(replica_of(&sh.item(idx)))
    }

    /// Writes a replica by last-writer-wins; Ok(true) if it was written.
    ///
    /// It is written, with its exact value, flags, expiry, stale and binary-key bits and
    /// exactly its CAS (even above this store's counter), when the key has no live item
    /// or its live item's CAS is lower (see the module doc for CAS 0); otherwise the
    /// store is left as it is. A replica that would be dead on arrival (its `expires_at`
    /// has passed, or a flush that has come into effect covers its CAS) is not written,
    /// and the older item it replaces is removed (Ok(false)). As for a set, a replica too
    /// large for this store (-I, or a key over 250 bytes) gives
    /// [`ServerError::TooLarge`] and one no memory can be found for
    /// [`ServerError::OutOfMemory`], both removing the older item.
    ///
    /// It always observes the CAS ([`Store::observe_cas`]) first.
    pub fn apply_replica(&self, item: &ReplicaItem) -> Result<bool, ServerError> {
        self.write_replica(item, Wins::Newer)
    }

    /// Writes a replica that a partition's primary sent, in the primary's order: as
    /// [`Store::apply_replica`], except that an equal CAS also gives way, because a
    /// `touch` (or `gat`, or an invalidation) changes an item without changing its CAS.
    pub fn put_replica(&self, item: &ReplicaItem) -> Result<bool, ServerError> {
        self.write_replica(item, Wins::NewerOrEqual)
    }

    /// Puts back an item as it was, whatever version the key holds now: a primary undoing
    /// its own write that no replica took. Otherwise as [`Store::apply_replica`].
    pub fn restore_replica(&self, item: &ReplicaItem) -> Result<bool, ServerError> {
        self.write_replica(item, Wins::Always)
    }

    fn write_replica(&self, item: &ReplicaItem, wins: Wins) -> Result<bool, ServerError> {
        self.observe_cas(item.cas);
        let cfg = &self.config;
        let key = &item.key[..];
        if key.len() > MAX_KEY_LEN {
            return Err(ServerError::TooLarge);
        }
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let old = sh.get_live_quiet(&ctx, hash, key);
        let gives_way = |held: u64| match wins {
            Wins::Newer => supersedes(item.cas, held),
            Wins::NewerOrEqual => supersedes(item.cas, held) || item.cas == held,
            Wins::Always => true,
        };
        if old.is_some_and(|idx| !gives_way(sh.item(idx).cas())) {
            return Ok(false);
        }
        let cas = if cfg.use_cas { item.cas } else { 0 };
        let exptime = exptime_of(item.expires_at, now);
        let Some(exptime) = exptime.filter(|_| !self.flush.is_flushed(now, cas, now)) else {
            unlink(&mut sh, &ctx, hash, key);
            return Ok(false);
        };
        if memcached_size(key.len(), item.flags, item.value.len(), cfg.use_cas) > cfg.item_size_max
        {
            unlink(&mut sh, &ctx, hash, key);
            return Err(ServerError::TooLarge);
        }
        let mut bits = 0;
        if item.stale {
            bits |= STALE;
        }
        if item.binary_key {
            bits |= BINARY_KEY;
        }
        let meta = Meta {
            cas: 0,
            exptime,
            time: now,
            flags: item.flags,
            bits,
        };
        let it = NewItem::new(key, &[&item.value], meta);
        match self.link(&mut sh, &ctx, hash, old, it, Some(item.cas)) {
            Some(_) => Ok(true),
            None => {
                // the old item may have moved while room was sought
                unlink(&mut sh, &ctx, hash, key);
                Err(ServerError::OutOfMemory)
            }
        }
    }

    /// Removes the item with this key whatever its version (a replica dropped or handed
    /// off); true if a live item was there. Not a client's delete.
    pub fn remove_replica(&self, key: &[u8]) -> bool {
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        let ctx = self.ctx(self.now());
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        unlink(&mut sh, &ctx, hash, key)
    }

    /// Removes the item with this key if its version (CAS) is at most `version`: a
    /// versioned delete (a tombstone) applied to a replica or merged in a hand-off. A
    /// newer item stays. True if a live item was removed.
    pub fn remove_if_older(&self, key: &[u8], version: u64) -> bool {
        self.observe_cas(version);
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        let ctx = self.ctx(self.now());
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        match sh.get_live_quiet(&ctx, hash, key) {
            Some(idx) if sh.item(idx).cas() <= version => {
                sh.remove(&ctx, idx);
                true
            }
            _ => false,
        }
    }

    /// Raises the CAS counter to at least `cas`, so that every CAS this store hands out
    /// from now on is above every version it has seen (a Lamport clock: after a
    /// fail-over the new primary's versions exceed the old primary's). Harmless without
    /// CAS (-C), where the counter is not used for items.
    pub fn observe_cas(&self, cas: u64) {
        let count = match self.cas_tag.load(Ordering::Relaxed) {
            0 => cas,
            _ => cas >> crate::CAS_TAG_BITS,
        };
        self.cas.fetch_max(count, Ordering::Relaxed);
    }

    /// Gives `sink` every live item whose key `want` accepts, shard by shard, in no
    /// particular order. Each shard's lock is held only while its matching items are
    /// copied out (`want` runs under it, and must not use the store), never while `sink`
    /// runs. Items written during the scan may or may not be seen.
    pub fn scan(&self, mut want: impl FnMut(&[u8]) -> bool, mut sink: impl FnMut(ReplicaItem)) {
        for shard in self.shards.iter() {
            let ctx = self.ctx(self.now());
            let batch: Vec<ReplicaItem> = {
                let sh = shard.lock();
                sh.addrs()
                    .map(|addr| sh.item(addr))
                    .filter(|it| !ctx.is_dead(it) && want(it.key()))
                    .map(|it| replica_of(&it))
                    .collect()
            };
            batch.into_iter().for_each(&mut sink);
        }
    }

    /// Removes every item whose key `keep` refuses (the partitions this node no longer
    /// owns); returns how many live items were removed (dead ones refused are reclaimed
    /// too, uncounted). `keep` runs under a shard's lock and must not use the store. Not
    /// a client's delete.
    pub fn retain(&self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let ctx = self.ctx(self.now());
            let mut sh = shard.lock();
            let refused: Vec<(u32, bool)> = sh
                .addrs()
                .filter_map(|addr| {
                    let it = sh.item(addr);
                    (!keep(it.key())).then(|| (addr, !ctx.is_dead(&it)))
                })
                .collect();
            // removing an item shifts index entries but moves no record
            for (addr, live) in refused {
                sh.remove(&ctx, addr);
                removed += usize::from(live);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests;

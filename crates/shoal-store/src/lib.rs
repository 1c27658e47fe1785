//! Shoal's storage engine: items in memory under a hard limit counted in bytes (data and
//! metadata), evicted when full, expired lazily and reclaimed, each change stamped with a
//! new CAS value. It executes the item-level parts of [`shoal_command`] commands and knows
//! nothing of protocols or the network.
//!
//! The rules are memcached 1.6.18's (`do_item_get`, `do_store_item`, `do_add_delta`,
//! `process_mget_command`, `process_mdelete_command`, `flush_all`).
//!
//! Memory: `max_bytes` is split evenly among the shards; each shard appends its items,
//! with a compact header (19 bytes for a 16-byte key without flags, `item.rs`), into
//! segments of up to 64 KiB and indexes them in a table of 4-byte entries; segments, large
//! values and the table are all counted against the limit (`shard.rs`).
//!
//! For the cluster, items also leave and enter the store as replicas, by last-writer-wins
//! on their CAS, outside the client commands (`replica.rs`).

mod arith;
mod clock;
mod execute;
mod expiry;
mod hash;
mod index;
mod item;
mod replica;
mod shard;
mod stats;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use shoal_command::{
    Arith, ArithOutcome, Delete, DeleteOutcome, Exptime, FlagOrder, ItemView, ReadOptions,
    ServerError, Store as StoreCmd, StoreMode, StoreOutcome, MAX_KEY_LEN,
};

pub use clock::{Clock, ManualClock, SystemClock};
pub use stats::StoreStats;

use expiry::{absolute, now32, ttl, FlushState};
use hash::KeyHasher;
use item::{
    memcached_size, ItemMut, ItemRef, Meta, NewItem, BINARY_KEY, FETCHED, REF, STALE, TOKEN_SENT,
};
use shard::{Ctx, Shard};

/// memcached's ITEM_UPDATE_INTERVAL: an item's access time moves at most this often on
/// the paths that use `do_item_update`.
const ITEM_UPDATE_INTERVAL: u32 = 60;

/// Bits of a clustered node's tag at the bottom of every CAS it hands out.
pub const CAS_TAG_BITS: u32 = 16;

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

/// The storage engine. Cheap to share between threads behind an [`Arc`].
pub struct Store {
    config: StoreConfig,
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
    shard_bits: u32,
    hasher: KeyHasher,
    cas: AtomicU64,
    /// In a cluster, this node's tag in the low [`CAS_TAG_BITS`] bits of every CAS it
    /// hands out (0: a single node, whose CAS values count 1, 2, 3... as memcached's).
    cas_tag: AtomicU64,
    flush: FlushState,
    /// When the store started (memcached's relative clock starts there).
    started: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// Up to 64 shards, as many as keep each shard at least twice the largest item; more if
/// needed to keep each under 2 GiB (a shard's addresses fit in 31 bits).
fn shard_bits(config: &StoreConfig) -> u32 {
    let mut bits = 6;
    while bits > 0 && (config.max_bytes >> bits) < 2 * (config.item_size_max + 64) {
        bits -= 1;
    }
    while (config.max_bytes >> bits) >= 1 << 31 {
        bits += 1;
    }
    bits
}

/// memcached's `do_item_bump` on a fetch: the first fetch sets the fetched bit, later
/// ones move the access time (memcached marks the item active and moves its time from
/// the second fetch on).
fn bump(it: &mut ItemMut, now: u32) {
    if !it.has(FETCHED) {
        it.set(FETCHED, true);
    } else {
        it.set_time(now);
    }
    it.set(REF, true);
}

/// memcached's `do_item_update`: moves the access time if it is older than the interval.
fn update(it: &mut ItemMut, now: u32) {
    if it.time() < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
        it.set_time(now);
    }
    it.set(REF, true);
}

fn view_of(it: &ItemRef, now: u32, started: u32, fetched: bool, last_access: u64) -> ItemView {
    ItemView {
        key: Bytes::copy_from_slice(it.key()),
        value: Bytes::copy_from_slice(it.value()),
        flags: it.flags(),
        cas: it.cas(),
        ttl: ttl(it.exptime(), now, started),
        last_access,
        fetched,
        won: false,
        win_taken: false,
        stale: it.has(STALE),
        binary_key: it.has(BINARY_KEY),
    }
}

/// For an item mg or ma creates: the exptime its `t` flag shows and the one it keeps.
///
/// memcached 1.6.18 creates it without expiry, then applies `T` (`touch`) and `N`
/// (`vivify`), both absolute, in line order; `t` shows the exptime reached at its place.
fn created_exptimes(touch: Option<u32>, vivify: u32, order: FlagOrder) -> (u32, u32) {
    let touch = touch.map(|t| (t, order.ttl_before_touch));
    let vivify = Some((vivify, order.ttl_before_vivify));
    let steps = if order.vivify_after_touch {
        [touch, vivify]
    } else {
        [vivify, touch]
    };
    let (mut shown, mut exptime) = (0, 0);
    for (value, after_ttl) in steps.into_iter().flatten() {
        exptime = value;
        if !after_ttl {
            shown = value;
        }
    }
    (shown, exptime)
}

/// How a compare-and-swap value relates to an item's (memcached's `cas_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CasResult {
    None,
    Match,
    Stale,
    BadVal,
}

impl Store {
    /// A store on the system clock.
    pub fn new(config: StoreConfig) -> Store {
        Store::with_clock(config, Arc::new(SystemClock::new()))
    }

    /// A store on the given clock.
    pub fn with_clock(config: StoreConfig, clock: Arc<dyn Clock>) -> Store {
        let bits = shard_bits(&config);
        let n = 1usize << bits;
        let shards = (0..n)
            .map(|_| Mutex::new(Shard::new(config.max_bytes / n)))
            .collect();
        Store {
            config,
            shards,
            shard_bits: bits,
            hasher: KeyHasher::random(),
            cas: AtomicU64::new(0),
            cas_tag: AtomicU64::new(0),
            flush: FlushState::default(),
            started: now32(clock.now()),
            clock,
        }
    }

    fn now(&self) -> u32 {
        now32(self.clock.now())
    }

    /// The TTL meta `t` shows for an absolute exptime.
    fn ttl(&self, exptime: u32, now: u32) -> Option<i64> {
        ttl(exptime, now, self.started)
    }

    fn ctx(&self, now: u32) -> Ctx<'_> {
        Ctx {
            now,
            flush: &self.flush,
            hasher: self.hasher,
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        if self.shard_bits == 0 {
            &self.shards[0]
        } else {
            &self.shards[(hash >> (64 - self.shard_bits)) as usize]
        }
    }

    fn next_cas(&self) -> u64 {
        let count = self.cas.fetch_add(1, Ordering::Relaxed) + 1;
        match self.cas_tag.load(Ordering::Relaxed) {
            0 => count,
            // The counter saturates rather than wrap past the top of the tagged range (an
            // explicit meta `E` near 2^64 seen as a version): versions never go backwards.
            tag => (count.min(u64::MAX >> CAS_TAG_BITS) << CAS_TAG_BITS) | tag,
        }
    }

    /// Makes every CAS this store hands out from now on end in `tag` (taken modulo
    /// 2^[`CAS_TAG_BITS`], 0 counts as 1): the nodes of a cluster use distinct tags so
    /// that a CAS, which is also an item's version, is unique across the cluster. Call
    /// it before the store is used.
    pub fn set_cas_tag(&self, tag: u16) {
        let tag = u64::from(tag) & ((1 << CAS_TAG_BITS) - 1);
        self.cas_tag.store(tag.max(1), Ordering::Relaxed);
    }

    /// The CAS a change stamps: the explicit one if given, else a fresh one; 0 without CAS.
    fn cas_for(&self, explicit: Option<u64>) -> u64 {
        if !self.config.use_cas {
            0
        } else {
            explicit.unwrap_or_else(|| self.next_cas())
        }
    }

    /// Finds room for `it` and links it, in the place of the item at `old` if given.
    /// Its CAS is stamped only once it fits. Gives the CAS and the item's address; None
    /// if no memory could be found (then `old` may have moved: find it again).
    fn link(
        &self,
        sh: &mut Shard,
        ctx: &Ctx,
        hash: u64,
        old: Option<u32>,
        mut it: NewItem,
        cas: Option<u64>,
    ) -> Option<(u64, u32)> {
        let old = sh.reserve(ctx, &it, self.config.evict, old)?;
        let cas = self.cas_for(cas);
        it.meta.cas = cas;
        Some((cas, sh.write(ctx, hash, old, &it)))
    }

    /// Reads one key, applying the read's side effects (touch, vivify, recache win, access
    /// time). `None` is a miss.
    pub fn get(&self, key: &[u8], options: &ReadOptions) -> Option<ItemView> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let Some(idx) = sh.get_live(&ctx, hash, key) else {
            return self.vivify(&mut sh, &ctx, hash, key, options);
        };
        let mut it = sh.item_mut(idx);
        let fetched = it.has(FETCHED);
        let last_access = now.saturating_sub(it.time()) as u64;
        // `t` and `R` see the exptime from before `T` when they come before it.
        let old_exptime = it.exptime();
        let touch = options.touch.map(|t| absolute(t, now as u64));
        let seen = |before_touch: bool| match touch {
            Some(t) if !before_touch => t,
            _ => old_exptime,
        };
        if let Some(t) = touch {
            it.set_exptime(t);
        }
        let win_taken = it.has(TOKEN_SENT);
        let mut won = false;
        if let Some(r) = options.recache_below {
            let exptime = seen(options.order.recache_before_touch);
            if !win_taken && exptime != 0 && exptime < absolute(r, now as u64) {
                won = true;
            }
        }
        if it.has(STALE) && !win_taken {
            won = true;
        }
        won &= options.hand_out_wins;
        if won {
            it.set(TOKEN_SENT, true);
        }
        let mut view = view_of(&it.as_ref(), now, self.started, fetched, last_access);
        view.ttl = self.ttl(seen(options.order.ttl_before_touch), now);
        view.won = won;
        view.win_taken = win_taken;
        if !options.no_update {
            bump(&mut it, now);
        }
        Some(view)
    }

    /// mg `N` on a miss: an empty item, and the win for this caller.
    fn vivify(
        &self,
        sh: &mut Shard,
        ctx: &Ctx,
        hash: u64,
        key: &[u8],
        options: &ReadOptions,
    ) -> Option<ItemView> {
        let vivify = options.vivify?;
        let now = ctx.now;
        let touch = options.touch.map(|t| absolute(t, now as u64));
        let vivify = absolute(vivify, now as u64);
        let (shown, exptime) = created_exptimes(touch, vivify, options.order);
        let won = options.hand_out_wins;
        let mut bits = if won { TOKEN_SENT } else { 0 };
        if !options.no_update {
            // `bump` of a new item: fetched from now on, time unchanged
            bits |= FETCHED | REF;
        }
        let it = NewItem::new(
            key,
            &[],
            Meta {
                cas: 0,
                exptime,
                time: now,
                flags: 0,
                bits,
            },
        );
        let (cas, _) = self.link(sh, ctx, hash, None, it, options.new_cas)?;
        Some(ItemView {
            key: Bytes::copy_from_slice(key),
            value: Bytes::new(),
            flags: 0,
            cas,
            ttl: self.ttl(shown, now),
            last_access: 0,
            fetched: false,
            won,
            win_taken: false,
            stale: false,
            binary_key: false,
        })
    }

    /// Reads one key without any side effect (for `me` and internal use).
    pub fn peek(&self, key: &[u8]) -> Option<ItemView> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let idx = sh.get_live(&ctx, hash, key)?;
        let it = sh.item(idx);
        let mut view = view_of(
            &it,
            now,
            self.started,
            it.has(FETCHED),
            now.saturating_sub(it.time()) as u64,
        );
        view.win_taken = it.has(TOKEN_SENT);
        Some(view)
    }

    /// Writes one item.
    ///
    /// As in memcached: a set that fails for size or memory also removes the key's old
    /// item; append and prepend that cannot be done for size or memory answer NotStored.
    pub fn store(&self, cmd: &StoreCmd) -> Result<StoreOutcome, ServerError> {
        let cfg = &self.config;
        let key = &cmd.key[..];
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let old = sh.get_live(&ctx, hash, key);
        if key.len() > MAX_KEY_LEN
            || memcached_size(key.len(), cmd.flags, cmd.data.len(), cfg.use_cas) > cfg.item_size_max
        {
            if let (StoreMode::Set, Some(idx)) = (cmd.mode, old) {
                sh.remove(&ctx, idx);
            }
            return Err(ServerError::TooLarge);
        }
        let is_cas =
            cmd.compare_cas.is_some() && matches!(cmd.mode, StoreMode::Set | StoreMode::Replace);
        let meta = |flags: u32, exptime: u32, bits: u8| Meta {
            cas: 0,
            exptime,
            time: now,
            flags,
            bits,
        };
        let data: &[u8] = &cmd.data;
        let exptime = absolute(cmd.exptime, now as u64);
        // An item made from the request's own data keeps the request's key form; one
        // built by append/prepend is new and plain (memcached's do_item_alloc).
        let binary = if cmd.binary_key { BINARY_KEY } else { 0 };
        let Some(idx) = old else {
            let it = match cmd.mode {
                _ if is_cas => return Ok(StoreOutcome::NotFound),
                StoreMode::Replace => return Ok(StoreOutcome::NotStored),
                StoreMode::Append | StoreMode::Prepend => match cmd.vivify {
                    Some(v) => NewItem::new(
                        key,
                        &[data],
                        meta(cmd.flags, absolute(v, now as u64), binary),
                    ),
                    None => return Ok(StoreOutcome::NotStored),
                },
                StoreMode::Set | StoreMode::Add => {
                    NewItem::new(key, &[data], meta(cmd.flags, exptime, binary))
                }
            };
            let appending = matches!(cmd.mode, StoreMode::Append | StoreMode::Prepend);
            return match self.link(&mut sh, &ctx, hash, None, it, cmd.new_cas) {
                Some((cas, _)) => Ok(StoreOutcome::Stored { cas }),
                None if appending => Ok(StoreOutcome::NotStored),
                None => Err(ServerError::OutOfMemory),
            };
        };
        let mut joined = Vec::new();
        let old_it = sh.item(idx);
        let old_cas = old_it.cas();
        let cas_res = match cmd.compare_cas {
            None | Some(0) => CasResult::None,
            Some(c) if c == old_cas => CasResult::Match,
            Some(c) if cmd.invalidate && c < old_cas => CasResult::Stale,
            Some(_) => CasResult::BadVal,
        };
        let it = if is_cas {
            match cas_res {
                CasResult::Match => NewItem::new(key, &[data], meta(cmd.flags, exptime, binary)),
                CasResult::Stale => {
                    // keeps the old TTL; marked stale, and keeps a win already handed out
                    let bits = STALE | (old_it.bits() & TOKEN_SENT) | binary;
                    NewItem::new(key, &[data], meta(cmd.flags, old_it.exptime(), bits))
                }
                CasResult::None | CasResult::BadVal => return Ok(StoreOutcome::Exists),
            }
        } else {
            match cmd.mode {
                StoreMode::Add => {
                    update(&mut sh.item_mut(idx), now);
                    return Ok(StoreOutcome::NotStored);
                }
                StoreMode::Set | StoreMode::Replace => {
                    NewItem::new(key, &[data], meta(cmd.flags, exptime, binary))
                }
                StoreMode::Append | StoreMode::Prepend => {
                    if !matches!(cas_res, CasResult::None | CasResult::Match) {
                        return Ok(StoreOutcome::Exists);
                    }
                    let (flags, old_value) = (old_it.flags(), old_it.value());
                    let total = old_value.len() + cmd.data.len();
                    if memcached_size(key.len(), flags, total, cfg.use_cas) > cfg.item_size_max {
                        return Ok(StoreOutcome::NotStored);
                    }
                    // copied out: the old value lies in memory the new item may reuse
                    joined.reserve_exact(total);
                    if cmd.mode == StoreMode::Append {
                        joined.extend_from_slice(old_value);
                        joined.extend_from_slice(data);
                    } else {
                        joined.extend_from_slice(data);
                        joined.extend_from_slice(old_value);
                    }
                    NewItem::new(key, &[&joined], meta(flags, old_it.exptime(), 0))
                }
            }
        };
        match self.link(&mut sh, &ctx, hash, Some(idx), it, cmd.new_cas) {
            Some((cas, _)) => Ok(StoreOutcome::Stored { cas }),
            None => match cmd.mode {
                StoreMode::Append | StoreMode::Prepend => Ok(StoreOutcome::NotStored),
                StoreMode::Set => {
                    if let Some(idx) = sh.get_live(&ctx, hash, key) {
                        sh.remove(&ctx, idx);
                    }
                    Err(ServerError::OutOfMemory)
                }
                _ => Err(ServerError::OutOfMemory),
            },
        }
    }

    /// Deletes (or invalidates) one item.
    pub fn delete(&self, cmd: &Delete) -> DeleteOutcome {
        let key = &cmd.key[..];
        if key.len() > MAX_KEY_LEN {
            return DeleteOutcome::NotFound;
        }
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let Some(mut idx) = sh.get_live(&ctx, hash, key) else {
            return DeleteOutcome::NotFound;
        };
        let old_cas = sh.item(idx).cas();
        if cmd.compare_cas.is_some_and(|c| c != old_cas) {
            return DeleteOutcome::Exists;
        }
        if cmd.clear_value {
            // an empty item in its place, keeping the CAS unless a new one is given
            let exptime = cmd.touch.map_or(0, |t| absolute(t, now as u64));
            let meta = Meta {
                cas: 0,
                exptime,
                time: now,
                flags: 0,
                bits: 0,
            };
            let empty = NewItem::new(key, &[], meta);
            let cas = Some(cmd.new_cas.unwrap_or(old_cas));
            match self.link(&mut sh, &ctx, hash, Some(idx), empty, cas) {
                Some((_, at)) => idx = at,
                // full without eviction: the item stays as it is (it may have moved)
                None => match sh.get_live(&ctx, hash, key) {
                    Some(at) => idx = at,
                    None => return DeleteOutcome::Deleted,
                },
            }
        }
        if cmd.invalidate {
            let cas = self.cas_for(cmd.new_cas);
            let mut it = sh.item_mut(idx);
            if let Some(t) = cmd.touch {
                it.set_exptime(absolute(t, now as u64));
            }
            it.set(STALE, true);
            it.set(TOKEN_SENT, false);
            it.set_cas(cas);
        } else if !cmd.clear_value {
            sh.remove(&ctx, idx);
        }
        DeleteOutcome::Deleted
    }

    /// Increments or decrements one counter.
    pub fn arith(&self, cmd: &Arith) -> Result<ArithOutcome, ServerError> {
        let key = &cmd.key[..];
        if key.len() > MAX_KEY_LEN {
            return Ok(ArithOutcome::NotFound);
        }
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let Some(idx) = sh.get_live(&ctx, hash, key) else {
            let Some((initial, vivify)) = cmd.vivify else {
                return Ok(ArithOutcome::NotFound);
            };
            let touch = cmd.touch.map(|t| absolute(t, now as u64));
            let vivify = absolute(vivify, now as u64);
            let (shown, exptime) = created_exptimes(touch, vivify, cmd.order);
            let digits = initial.to_string();
            let meta = Meta {
                cas: 0,
                exptime,
                time: now,
                flags: 0,
                bits: 0,
            };
            let it = NewItem::new(key, &[digits.as_bytes()], meta);
            let (cas, _) = self
                .link(&mut sh, &ctx, hash, None, it, cmd.new_cas)
                .ok_or(ServerError::OutOfMemory)?;
            return Ok(ArithOutcome::Value {
                value: initial,
                cas,
                ttl: self.ttl(shown, now),
                created: true,
            });
        };
        let it = sh.item(idx);
        if it.value().is_empty() {
            return Ok(ArithOutcome::NonNumeric);
        }
        if cmd.compare_cas.is_some_and(|c| c != 0 && c != it.cas()) {
            return Ok(ArithOutcome::Exists);
        }
        let Some(value) = arith::parse(it.value()) else {
            return Ok(ArithOutcome::NonNumeric);
        };
        let value = arith::apply(cmd.op, value, cmd.delta);
        let digits = value.to_string();
        let in_place = digits.len() <= it.value().len();
        let mut idx = idx;
        let cas = if in_place {
            let cas = self.cas_for(cmd.new_cas);
            let mut it = sh.item_mut(idx);
            arith::write_in_place(it.value_mut(), digits.as_bytes());
            it.set_cas(cas);
            update(&mut it, now);
            cas
        } else {
            let meta = Meta {
                cas: 0,
                exptime: it.exptime(),
                time: now,
                flags: it.flags(),
                bits: 0,
            };
            let grown = NewItem::new(key, &[digits.as_bytes()], meta);
            let (cas, at) = self
                .link(&mut sh, &ctx, hash, Some(idx), grown, cmd.new_cas)
                .ok_or(ServerError::OutOfMemory)?;
            idx = at;
            cas
        };
        // memcached applies T to the item do_add_delta hands back: the one changed in
        // place, or the old one a grown value replaced, so the new item keeps its TTL
        // (the old one's, copied) while `t` after `T` still shows the touched one.
        let mut it = sh.item_mut(idx);
        let mut shown = it.exptime();
        if let Some(t) = cmd.touch {
            let touched = absolute(t, now as u64);
            if in_place {
                it.set_exptime(touched);
            }
            if !cmd.order.ttl_before_touch {
                shown = touched;
            }
        }
        Ok(ArithOutcome::Value {
            value,
            cas,
            ttl: self.ttl(shown, now),
            created: false,
        })
    }

    /// Sets one item's exptime; false if it does not exist. Like a fetch, it marks the
    /// item fetched and moves its access time; the CAS does not change.
    pub fn touch(&self, key: &[u8], exptime: Exptime) -> bool {
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        let now = self.now();
        let ctx = self.ctx(now);
        let hash = self.hasher.hash(key);
        let mut sh = self.shard(hash).lock();
        let Some(idx) = sh.get_live(&ctx, hash, key) else {
            return false;
        };
        let mut it = sh.item_mut(idx);
        bump(&mut it, now);
        it.set_exptime(absolute(exptime, now as u64));
        true
    }

    /// Invalidates every item, now (`delay` 0) or when `delay` (an exptime) comes.
    ///
    /// As memcached: items last touched before the flush second, or stamped with a CAS
    /// before the flush, are gone; items stored after an immediate flush in the same
    /// second stay (without CAS, the whole second is flushed).
    pub fn flush_all(&self, delay: Exptime) {
        let now = self.now();
        let new_oldest = if delay > 0 {
            absolute(delay, now as u64)
        } else {
            now
        };
        self.flush
            .flush(new_oldest, now, self.config.use_cas, || self.next_cas());
    }

    /// A cluster-wide `flush_all`: every item whose version (CAS) is below `floor` is gone
    /// from now on, on whatever clock it was stored, and every CAS handed out from now on
    /// is at least `floor`. A floor at or below the current one changes nothing.
    pub fn flush_below_version(&self, floor: u64) {
        self.observe_cas(floor);
        self.flush.raise_version_floor(floor);
    }

    /// The version floor of the last [`Store::flush_below_version`] (0: none).
    pub fn version_floor(&self) -> u64 {
        self.flush.version_floor()
    }

    /// A fresh version, above every version this store has handed out or observed: what
    /// a cluster stamps a delete (a tombstone) or a flush with.
    pub fn new_version(&self) -> u64 {
        self.next_cas()
    }

    /// The store's counters now.
    pub fn stats(&self) -> StoreStats {
        let mut total = StoreStats::default();
        for s in self.shards.iter() {
            total.add(&s.lock().stats());
        }
        total
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
}

//! One shard: a slab of items, the key index, the byte account and the eviction clock
//! (CLOCK, a second-chance approximation of LRU that reclaims expired and flushed items
//! first as its hand passes them). Always used under the shard's lock.

use crate::expiry::{is_expired, FlushState};
use crate::hash::KeyHasher;
use crate::index::Index;
use crate::item::{Item, FETCHED, REF};
use crate::stats::StoreStats;

/// What a shard needs to know of the store to judge an item alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub now: u32,
    pub flush: &'a FlushState,
    pub hasher: KeyHasher,
}

impl Ctx<'_> {
    /// Expired or flushed.
    pub fn is_dead(&self, it: &Item) -> bool {
        is_expired(it.exptime(), self.now) || self.flush.is_flushed(it.time(), it.cas(), self.now)
    }
}

/// How many slots a store without eviction looks at for dead items to reclaim.
const RECLAIM_SCAN: usize = 256;

/// One shard of the store.
#[derive(Debug)]
pub(crate) struct Shard {
    slab: Vec<Option<Item>>,
    free: Vec<u32>,
    index: Index,
    hand: usize,
    used: usize,
    limit: usize,
    stats: StoreStats,
}

impl Shard {
    /// An empty shard that may hold `limit` bytes.
    pub fn new(limit: usize) -> Shard {
        Shard {
            slab: Vec::new(),
            free: Vec::new(),
            index: Index::default(),
            hand: 0,
            used: 0,
            limit,
            stats: StoreStats::default(),
        }
    }

    /// The shard's counters.
    pub fn stats(&self) -> StoreStats {
        let mut s = self.stats.clone();
        s.bytes = self.used as u64;
        s
    }

    /// Counts a read that found an expired or flushed item.
    fn count_dead_read(&mut self, ctx: &Ctx, it: &Item) {
        if is_expired(it.exptime(), ctx.now) {
            self.stats.get_expired += 1;
        } else {
            self.stats.get_flushed += 1;
        }
    }

    /// The slot of a live item with this key; a dead one found is removed.
    pub fn get_live(&mut self, ctx: &Ctx, hash: u64, key: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        let (_, idx) = self.index.find(hash, |v| {
            slab[v as usize].as_ref().is_some_and(|it| it.key() == key)
        })?;
        if ctx.is_dead(self.item(idx)) {
            let it = self.remove(ctx, idx);
            self.count_dead_read(ctx, &it);
            return None;
        }
        Some(idx)
    }

    /// The item in a slot.
    pub fn item(&self, idx: u32) -> &Item {
        self.slab[idx as usize].as_ref().expect("live slot")
    }

    /// The item in a slot, writable.
    pub fn item_mut(&mut self, idx: u32) -> &mut Item {
        self.slab[idx as usize].as_mut().expect("live slot")
    }

    /// Removes the item in a slot.
    pub fn remove(&mut self, ctx: &Ctx, idx: u32) -> Item {
        let it = self.slab[idx as usize].take().expect("live slot");
        let hash = ctx.hasher.hash(it.key());
        let (pos, _) = self.index.find(hash, |v| v == idx).expect("indexed slot");
        let slab = &self.slab;
        let hasher = ctx.hasher;
        self.index.remove_at(pos, |v| {
            hasher.hash(slab[v as usize].as_ref().expect("indexed").key())
        });
        self.free.push(idx);
        self.used -= it.charge();
        self.stats.curr_items -= 1;
        it
    }

    /// Adds an item whose key is absent.
    pub fn insert(&mut self, ctx: &Ctx, hash: u64, it: Item) -> u32 {
        self.used += it.charge();
        self.stats.curr_items += 1;
        self.stats.total_items += 1;
        let idx = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(it);
                i
            }
            None => {
                self.slab.push(Some(it));
                (self.slab.len() - 1) as u32
            }
        };
        let slab = &self.slab;
        let hasher = ctx.hasher;
        self.index.insert(hash, idx, |v| {
            hasher.hash(slab[v as usize].as_ref().expect("indexed").key())
        });
        idx
    }

    /// Puts a new item (same key) in the place of the one in slot `idx`.
    pub fn replace(&mut self, idx: u32, it: Item) {
        let old = self.slab[idx as usize].replace(it).expect("live slot");
        debug_assert_eq!(old.key(), self.item(idx).key());
        self.used = self.used - old.charge() + self.item(idx).charge();
        self.stats.total_items += 1;
    }

    /// Makes room for `need` more bytes, counting `credit` bytes that the caller will
    /// free (an item it replaces, which is in slot `protect` and never evicted here).
    /// Reclaims dead items; evicts live ones only when `evict`. False if the bytes
    /// cannot be found.
    pub fn make_room(
        &mut self,
        ctx: &Ctx,
        need: usize,
        credit: usize,
        evict: bool,
        protect: Option<u32>,
    ) -> bool {
        let fits = |s: &Shard| s.used + need <= s.limit + credit;
        if fits(self) {
            return true;
        }
        if need > self.limit {
            return false;
        }
        let n = self.slab.len();
        let steps = if evict {
            2 * n + 1
        } else {
            n.min(RECLAIM_SCAN)
        };
        for _ in 0..steps {
            if self.hand >= n {
                self.hand = 0;
            }
            let idx = self.hand as u32;
            self.hand += 1;
            if Some(idx) == protect {
                continue;
            }
            let Some(it) = self.slab[idx as usize].as_mut() else {
                continue;
            };
            let fetched = it.has(FETCHED);
            if ctx.is_dead(it) {
                self.remove(ctx, idx);
                self.stats.reclaimed += 1;
                if !fetched {
                    self.stats.expired_unfetched += 1;
                }
            } else if !evict {
                continue;
            } else if it.has(REF) {
                it.set(REF, false);
                continue;
            } else {
                self.remove(ctx, idx);
                self.stats.evictions += 1;
                if !fetched {
                    self.stats.evicted_unfetched += 1;
                }
            }
            if fits(self) {
                return true;
            }
        }
        fits(self)
    }

    /// Number of items.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Meta;

    fn item(key: &[u8], exptime: u32) -> Item {
        Item::new(
            key,
            &[b"value"],
            Meta {
                cas: 1,
                exptime,
                time: 100,
                flags: 0,
                bits: 0,
            },
        )
    }

    #[test]
    fn insert_find_remove_account_bytes() {
        let flush = FlushState::default();
        let ctx = Ctx {
            now: 100,
            flush: &flush,
            hasher: KeyHasher::random(),
        };
        let mut s = Shard::new(1 << 20);
        let mut total = 0;
        for i in 0..100u32 {
            let k = format!("key{i}");
            let it = item(k.as_bytes(), 0);
            total += it.charge();
            s.insert(&ctx, ctx.hasher.hash(k.as_bytes()), it);
        }
        assert_eq!(s.stats().bytes as usize, total);
        assert_eq!(s.len(), 100);
        for i in (0..100u32).step_by(2) {
            let k = format!("key{i}");
            let idx = s
                .get_live(&ctx, ctx.hasher.hash(k.as_bytes()), k.as_bytes())
                .unwrap();
            s.remove(&ctx, idx);
        }
        for i in 0..100u32 {
            let k = format!("key{i}");
            let found = s.get_live(&ctx, ctx.hasher.hash(k.as_bytes()), k.as_bytes());
            assert_eq!(found.is_some(), i % 2 == 1);
        }
        assert_eq!(s.stats().curr_items, 50);
        assert_eq!(s.stats().bytes as usize, total / 2);
    }

    #[test]
    fn clock_prefers_dead_items_and_spares_referenced_ones() {
        let flush = FlushState::default();
        let ctx = Ctx {
            now: 100,
            flush: &flush,
            hasher: KeyHasher::random(),
        };
        let one = item(b"k0", 0).charge();
        let mut s = Shard::new(one * 3);
        let h = |k: &[u8]| ctx.hasher.hash(k);
        let a = s.insert(&ctx, h(b"k0"), item(b"k0", 0));
        s.insert(&ctx, h(b"k1"), item(b"k1", 50)); // expired at now=100
        s.insert(&ctx, h(b"k2"), item(b"k2", 0));
        s.item_mut(a).set(REF, true);
        assert!(s.make_room(&ctx, one, 0, true, None));
        let st = s.stats();
        assert_eq!(
            (st.reclaimed, st.evictions, st.expired_unfetched),
            (1, 0, 1)
        );
        s.insert(&ctx, h(b"k3"), item(b"k3", 0));
        assert!(s.make_room(&ctx, one, 0, true, None));
        // k0 was referenced: the hand spares it once and takes k2
        assert!(s.get_live(&ctx, h(b"k0"), b"k0").is_some());
        assert!(s.get_live(&ctx, h(b"k2"), b"k2").is_none());
        assert_eq!(s.stats().evictions, 1);
        assert!(!s.make_room(&ctx, one * 4, 0, true, None));
    }

    #[test]
    fn without_eviction_only_dead_items_are_reclaimed() {
        let flush = FlushState::default();
        let ctx = Ctx {
            now: 100,
            flush: &flush,
            hasher: KeyHasher::random(),
        };
        let one = item(b"k0", 0).charge();
        let mut s = Shard::new(one * 2);
        s.insert(&ctx, ctx.hasher.hash(b"k0"), item(b"k0", 0));
        s.insert(&ctx, ctx.hasher.hash(b"k1"), item(b"k1", 0));
        assert!(!s.make_room(&ctx, one, 0, false, None));
        assert!(
            s.make_room(&ctx, one, one, false, None),
            "credit of a replaced item"
        );
        assert_eq!(s.stats().curr_items, 2);
    }
}

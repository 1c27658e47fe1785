//! One shard: items appended log-structured into fixed-size segments, the key index, the
//! byte account and eviction. Always used under the shard's lock.
//!
//! Memory is what the shard allocates: its segments (allocated as needed, each
//! `seg_size` bytes), the values too large for a segment (each in its own allocation,
//! counted with malloc's rounding and 16 bytes for its slot), and the index table. The
//! three together never exceed the shard's limit.
//!
//! An item is a record (`item.rs`) at an address: segment number times `seg_size` plus
//! offset. Replacing or deleting an item leaves dead bytes in its segment. When no more
//! memory can be allocated, the oldest segment is compacted in place: dead bytes and
//! expired or flushed items are dropped; live items read since the last pass (the
//! reference bit) are kept and moved to its front, the others evicted (FIFO with
//! reinsertion, a CLOCK over segments); without eviction every live item is kept. The
//! compacted segment then takes new writes (or is freed if empty): kept items thus move
//! to the young end of the queue.

use std::collections::VecDeque;

use crate::expiry::{is_expired, FlushState};
use crate::hash::KeyHasher;
use crate::index::Index;
use crate::item::{malloc_size, ItemMut, ItemRef, Layout, NewItem, FETCHED, REF};
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
    pub fn is_dead(&self, it: &ItemRef) -> bool {
        is_expired(it.exptime(), self.now) || self.flush.is_flushed(it.time(), it.cas(), self.now)
    }
}

/// The largest segment.
pub(crate) const MAX_SEGMENT: usize = 64 * 1024;
/// The smallest segment (it must hold the record of a large value with a 250-byte key).
const MIN_SEGMENT: usize = 512;
/// How many segments a write without eviction compacts at most to find room.
const RECLAIM_SEGMENTS: usize = 4;
/// Bytes counted for a large value's slot besides its allocation.
const LARGE_SLOT: usize = 16;

/// The segment size for a shard limited to `limit` bytes: a power of two near a 32nd of
/// it, between [`MIN_SEGMENT`] and [`MAX_SEGMENT`].
fn segment_size(limit: usize) -> usize {
    let target = (limit / 32).clamp(MIN_SEGMENT, MAX_SEGMENT);
    1 << (usize::BITS - 1 - target.leading_zeros())
}

/// One segment: its bytes and how many of them are written.
#[derive(Debug)]
struct Segment {
    data: Box<[u8]>,
    len: usize,
}

/// One shard of the store.
#[derive(Debug)]
pub(crate) struct Shard {
    segs: Vec<Option<Segment>>,
    free_nums: Vec<u32>,
    /// Segments allocated.
    nsegs: usize,
    /// Full segments, oldest first.
    fifo: VecDeque<u32>,
    /// The segment taking writes.
    open: Option<u32>,
    seg_shift: u32,
    /// Bits of an address; the index entry's bits above them hold hash bits.
    addr_bits: u32,
    large: Vec<Option<Box<[u8]>>>,
    large_free: Vec<u32>,
    /// Bytes charged for large values.
    large_bytes: usize,
    index: Index,
    /// Bytes of live records and their large values.
    live_bytes: usize,
    limit: usize,
    stats: StoreStats,
}

/// The record at `addr` and its layout.
fn record(segs: &[Option<Segment>], shift: u32, addr: u32) -> (&[u8], Layout) {
    let seg = segs[(addr >> shift) as usize]
        .as_ref()
        .expect("live segment");
    let off = (addr & ((1 << shift) - 1)) as usize;
    let lay = Layout::parse(&seg.data[off..]);
    (&seg.data[off..off + lay.len], lay)
}

fn key_at(segs: &[Option<Segment>], shift: u32, addr: u32) -> &[u8] {
    let (rec, lay) = record(segs, shift, addr);
    &rec[lay.key]
}

impl Shard {
    /// An empty shard that may hold `limit` bytes (less than 2^31).
    pub fn new(limit: usize) -> Shard {
        assert!(limit < 1 << 31, "shard limit {limit} too large");
        let seg = segment_size(limit);
        let seg_shift = seg.trailing_zeros();
        let max_segs = (limit >> seg_shift).max(1);
        let addr_bits = seg_shift + usize::BITS - (max_segs - 1).leading_zeros();
        Shard {
            segs: Vec::new(),
            free_nums: Vec::new(),
            nsegs: 0,
            fifo: VecDeque::new(),
            open: None,
            seg_shift,
            addr_bits,
            large: Vec::new(),
            large_free: Vec::new(),
            large_bytes: 0,
            index: Index::default(),
            live_bytes: 0,
            limit,
            stats: StoreStats::default(),
        }
    }

    /// The shard's counters.
    pub fn stats(&self) -> StoreStats {
        let mut s = self.stats.clone();
        s.bytes = self.live_bytes as u64;
        s
    }

    fn seg_size(&self) -> usize {
        1 << self.seg_shift
    }

    /// Bytes allocated: segments, large values, index.
    pub fn memory(&self) -> usize {
        (self.nsegs << self.seg_shift) + self.large_bytes + self.index.bytes()
    }

    fn addr_mask(&self) -> u32 {
        ((1u64 << self.addr_bits) - 1) as u32
    }

    /// The hash bits an index entry keeps above the address.
    fn tag(&self, hash: u64) -> u32 {
        ((hash >> 20) as u32)
            .checked_shl(self.addr_bits)
            .unwrap_or(0)
    }

    fn addr(&self, num: u32, off: usize) -> u32 {
        (num << self.seg_shift) | off as u32
    }

    /// Whether a value goes to its own allocation rather than inline.
    fn is_large(&self, it: &NewItem) -> bool {
        it.inline_len() > self.seg_size() / 4
    }

    fn large_charge(len: usize) -> usize {
        malloc_size(len) + LARGE_SLOT
    }

    /// The address of the indexed item with this key, live or dead.
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let (tag, mask, shift) = (self.tag(hash), self.addr_mask(), self.seg_shift);
        let segs = &self.segs;
        let (_, e) = self.index.find(hash, |e| {
            e & !mask == tag && key_at(segs, shift, e & mask) == key
        })?;
        Some(e & mask)
    }

    /// The address of a live item with this key; a dead one found is removed.
    pub fn get_live(&mut self, ctx: &Ctx, hash: u64, key: &[u8]) -> Option<u32> {
        let addr = self.find(hash, key)?;
        let it = self.item(addr);
        if !ctx.is_dead(&it) {
            return Some(addr);
        }
        if is_expired(it.exptime(), ctx.now) {
            self.stats.get_expired += 1;
        } else {
            self.stats.get_flushed += 1;
        }
        self.remove(ctx, addr);
        None
    }

    /// Like [`Shard::get_live`], but a dead item found is removed without counting it
    /// as a read that found it expired or flushed (for replication, not a client's read).
    pub fn get_live_quiet(&mut self, ctx: &Ctx, hash: u64, key: &[u8]) -> Option<u32> {
        let addr = self.find(hash, key)?;
        if !ctx.is_dead(&self.item(addr)) {
            return Some(addr);
        }
        self.remove(ctx, addr);
        None
    }

    /// The addresses of every indexed item, live or dead, in no particular order.
    pub fn addrs(&self) -> impl Iterator<Item = u32> + '_ {
        let mask = self.addr_mask();
        self.index.entries().map(move |e| e & mask)
    }

    /// The item at an address.
    pub fn item(&self, addr: u32) -> ItemRef<'_> {
        let (rec, lay) = record(&self.segs, self.seg_shift, addr);
        let large = lay
            .large
            .map(|n| &self.large[n as usize].as_ref().expect("live large value")[..]);
        ItemRef::new(rec, &lay, large)
    }

    /// The item at an address, writable.
    pub fn item_mut(&mut self, addr: u32) -> ItemMut<'_> {
        let shift = self.seg_shift;
        let seg = self.segs[(addr >> shift) as usize]
            .as_mut()
            .expect("live segment");
        let off = (addr & ((1 << shift) - 1)) as usize;
        let lay = Layout::parse(&seg.data[off..]);
        let rec = &mut seg.data[off..off + lay.len];
        let large = match lay.large {
            Some(n) => Some(&mut self.large[n as usize].as_mut().expect("live large value")[..]),
            None => None,
        };
        ItemMut::new(rec, lay, large)
    }

    /// The index position of the entry pointing at `addr`, if any (records no entry
    /// points at are dead bytes).
    fn entry_pos(&self, ctx: &Ctx, addr: u32) -> Option<usize> {
        let key = key_at(&self.segs, self.seg_shift, addr);
        let hash = ctx.hasher.hash(key);
        let want = self.tag(hash) | addr;
        self.index.find(hash, |e| e == want).map(|(pos, _)| pos)
    }

    fn unindex(&mut self, ctx: &Ctx, pos: usize) {
        let (segs, shift, mask, hasher) =
            (&self.segs, self.seg_shift, self.addr_mask(), ctx.hasher);
        self.index
            .remove_at(pos, |e| hasher.hash(key_at(segs, shift, e & mask)));
    }

    /// Forgets the record at `addr` (no longer indexed): its bytes are dead, its large
    /// value freed.
    fn release(&mut self, addr: u32) {
        let (_, lay) = record(&self.segs, self.seg_shift, addr);
        self.live_bytes -= lay.len;
        if let Some(n) = lay.large {
            let v = self.large[n as usize].take().expect("live large value");
            let charge = Shard::large_charge(v.len());
            self.large_bytes -= charge;
            self.live_bytes -= charge;
            self.large_free.push(n);
        }
    }

    /// Removes the item at an address.
    pub fn remove(&mut self, ctx: &Ctx, addr: u32) {
        let pos = self.entry_pos(ctx, addr).expect("indexed item");
        self.unindex(ctx, pos);
        self.release(addr);
        self.stats.curr_items -= 1;
    }

    /// Makes room to write `it` (with [`Shard::write`]), in the place of the item at
    /// `old` if given, which is kept (and may move). Reclaims dead items; evicts live
    /// ones only when `evict`. Returns `old`'s address now, or None if the room cannot
    /// be found.
    pub fn reserve(
        &mut self,
        ctx: &Ctx,
        it: &NewItem,
        evict: bool,
        mut old: Option<u32>,
    ) -> Option<Option<u32>> {
        let large = self.is_large(it);
        let rec = if large {
            it.stub_len()
        } else {
            it.inline_len()
        };
        let mut extra = if large {
            Shard::large_charge(it.value_len())
        } else {
            0
        };
        if old.is_none() {
            extra += self.index.growth_bytes();
        }
        let seg = self.seg_size();
        if rec > seg || extra + seg > self.limit {
            return None;
        }
        // with eviction: two passes at most (the first may spend reference bits); without,
        // a few segments per write, the queue rotating so that later writes look further
        let mut budget = if evict {
            2 * (self.nsegs + 1)
        } else {
            RECLAIM_SEGMENTS.min(self.nsegs + 1)
        };
        loop {
            let base = self.memory() + extra;
            let open_fits = self
                .open
                .is_some_and(|n| self.segs[n as usize].as_ref().expect("open").len + rec <= seg);
            if open_fits && base <= self.limit {
                return Some(old);
            }
            if !open_fits && base + seg <= self.limit {
                self.open_new_segment();
                return Some(old);
            }
            if budget == 0 {
                return None;
            }
            budget -= 1;
            let num = match self.fifo.pop_front() {
                Some(n) => n,
                None => self.open.take()?,
            };
            old = self.compact(ctx, num, evict, old);
        }
    }

    fn open_new_segment(&mut self) {
        let num = match self.free_nums.pop() {
            Some(n) => n,
            None => {
                self.segs.push(None);
                (self.segs.len() - 1) as u32
            }
        };
        self.segs[num as usize] = Some(Segment {
            data: vec![0; self.seg_size()].into_boxed_slice(),
            len: 0,
        });
        self.nsegs += 1;
        if let Some(o) = self.open.replace(num) {
            self.fifo.push_back(o);
        }
    }

    /// Compacts segment `num` (out of the queue): see the module doc. It then takes new
    /// writes, or is freed if nothing is left in it. Returns `keep`'s new address.
    fn compact(&mut self, ctx: &Ctx, num: u32, evict: bool, keep: Option<u32>) -> Option<u32> {
        let len = self.segs[num as usize].as_ref().expect("segment").len;
        let (mut off, mut w) = (0, 0);
        let mut kept = keep;
        while off < len {
            let addr = self.addr(num, off);
            let (rec_len, live) = {
                let (rec, _) = record(&self.segs, self.seg_shift, addr);
                (rec.len(), self.entry_pos(ctx, addr).map(|p| (p, rec[0])))
            };
            if let Some((pos, bits)) = live {
                let protect = keep == Some(addr);
                let fetched = bits & FETCHED != 0;
                if !protect && ctx.is_dead(&self.item(addr)) {
                    self.drop_item(ctx, pos, addr);
                    self.stats.reclaimed += 1;
                    if !fetched {
                        self.stats.expired_unfetched += 1;
                    }
                } else if protect || !evict || bits & REF != 0 {
                    let seg = self.segs[num as usize].as_mut().expect("segment");
                    seg.data.copy_within(off..off + rec_len, w);
                    if evict {
                        seg.data[w] &= !REF;
                    }
                    let to = self.addr(num, w);
                    let entry = self.index.get(pos);
                    self.index.set_at(pos, (entry & !self.addr_mask()) | to);
                    if protect {
                        kept = Some(to);
                    }
                    w += rec_len;
                } else {
                    self.drop_item(ctx, pos, addr);
                    self.stats.evictions += 1;
                    if !fetched {
                        self.stats.evicted_unfetched += 1;
                    }
                }
            }
            off += rec_len;
        }
        self.segs[num as usize].as_mut().expect("segment").len = w;
        if w == 0 {
            self.segs[num as usize] = None;
            self.free_nums.push(num);
            self.nsegs -= 1;
            if self.open == Some(num) {
                self.open = None;
            }
        } else if self.open != Some(num) {
            if let Some(o) = self.open.replace(num) {
                self.fifo.push_back(o);
            }
        }
        kept
    }

    fn drop_item(&mut self, ctx: &Ctx, pos: usize, addr: u32) {
        self.unindex(ctx, pos);
        self.release(addr);
        self.stats.curr_items -= 1;
    }

    /// Writes `it` (room made by [`Shard::reserve`]) in the place of the item at `old`
    /// (same key) if given; returns its address.
    pub fn write(&mut self, ctx: &Ctx, hash: u64, old: Option<u32>, it: &NewItem) -> u32 {
        let slot = if self.is_large(it) {
            let mut v = vec![0; it.value_len()].into_boxed_slice();
            it.write_value(&mut v);
            let charge = Shard::large_charge(v.len());
            self.large_bytes += charge;
            self.live_bytes += charge;
            Some(match self.large_free.pop() {
                Some(n) => {
                    self.large[n as usize] = Some(v);
                    n
                }
                None => {
                    self.large.push(Some(v));
                    (self.large.len() - 1) as u32
                }
            })
        } else {
            None
        };
        let num = self.open.expect("room reserved");
        let seg = self.segs[num as usize].as_mut().expect("open segment");
        let off = seg.len;
        let len = it.write(&mut seg.data[off..], slot);
        seg.len += len;
        self.live_bytes += len;
        self.stats.total_items += 1;
        let addr = self.addr(num, off);
        let entry = self.tag(hash) | addr;
        match old {
            Some(o) => {
                let pos = self.entry_pos(ctx, o).expect("indexed item");
                self.index.set_at(pos, entry);
                self.release(o);
            }
            None => {
                let (segs, shift, mask, hasher) =
                    (&self.segs, self.seg_shift, self.addr_mask(), ctx.hasher);
                self.index
                    .insert(hash, entry, |e| hasher.hash(key_at(segs, shift, e & mask)));
                self.stats.curr_items += 1;
            }
        }
        debug_assert!(self.memory() <= self.limit);
        addr
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

    fn meta(exptime: u32) -> Meta {
        Meta {
            cas: 1,
            exptime,
            time: 100,
            flags: 0,
            bits: 0,
        }
    }

    fn ctx(flush: &FlushState) -> Ctx<'_> {
        Ctx {
            now: 100,
            flush,
            hasher: KeyHasher::random(),
        }
    }

    /// Stores `key` (replacing a live item of that key); None if no room.
    fn put(s: &mut Shard, ctx: &Ctx, key: &[u8], value: &[u8], exptime: u32) -> Option<u32> {
        let hash = ctx.hasher.hash(key);
        let old = s.get_live(ctx, hash, key);
        let it = NewItem::new(key, &[value], meta(exptime));
        let old = s.reserve(ctx, &it, true, old)?;
        Some(s.write(ctx, hash, old, &it))
    }

    fn find(s: &mut Shard, ctx: &Ctx, key: &[u8]) -> Option<Vec<u8>> {
        let at = s.get_live(ctx, ctx.hasher.hash(key), key)?;
        Some(s.item(at).value().to_vec())
    }

    #[test]
    fn insert_find_replace_remove_account_bytes() {
        let flush = FlushState::default();
        let ctx = ctx(&flush);
        let mut s = Shard::new(1 << 20);
        let one = NewItem::new(b"key00", &[b"value"], meta(0)).inline_len();
        for i in 0..100 {
            put(&mut s, &ctx, format!("key{i:02}").as_bytes(), b"value", 0).unwrap();
        }
        assert_eq!(s.stats().bytes as usize, 100 * one);
        // replacing leaves the old record dead, not counted
        put(&mut s, &ctx, b"key07", b"VALUE", 0).unwrap();
        assert_eq!(find(&mut s, &ctx, b"key07").unwrap(), b"VALUE");
        assert_eq!((s.len(), s.stats().bytes as usize), (100, 100 * one));
        for i in (0..100).step_by(2) {
            let k = format!("key{i:02}");
            let at = s.get_live(&ctx, ctx.hasher.hash(k.as_bytes()), k.as_bytes());
            s.remove(&ctx, at.unwrap());
        }
        for i in 0..100 {
            let k = format!("key{i:02}");
            assert_eq!(find(&mut s, &ctx, k.as_bytes()).is_some(), i % 2 == 1);
        }
        assert_eq!(s.stats().curr_items, 50);
        assert_eq!(s.stats().bytes as usize, 50 * one);
        assert!(s.memory() <= 1 << 20);
    }

    #[test]
    fn compaction_reclaims_dead_keeps_referenced_and_evicts_the_rest() {
        let flush = FlushState::default();
        let ctx = ctx(&flush);
        let limit = 16 * 1024;
        let mut s = Shard::new(limit);
        assert_eq!(s.seg_size(), MIN_SEGMENT);
        let value = [b'v'; 80];
        let mut i = 0;
        // the first segment: one hot item, one expired, the rest cold
        let hot = put(&mut s, &ctx, b"hot", &value, 0).unwrap();
        s.item_mut(hot).set(REF, true);
        put(&mut s, &ctx, b"expired", &value, 50).unwrap();
        while s.stats().evictions == 0 {
            put(&mut s, &ctx, format!("k{i}").as_bytes(), &value, 0).unwrap();
            i += 1;
            assert!(s.memory() <= limit);
        }
        let st = s.stats();
        assert_eq!((st.reclaimed, st.expired_unfetched), (1, 1));
        assert!(st.evicted_unfetched > 0);
        assert!(find(&mut s, &ctx, b"hot").is_some(), "referenced: kept");
        assert!(
            find(&mut s, &ctx, b"k0").is_none(),
            "cold and oldest: evicted"
        );
        assert!(find(&mut s, &ctx, format!("k{}", i - 1).as_bytes()).is_some());
        // the reference bit is spent: a second pass evicts it
        for j in i..i + 400 {
            put(&mut s, &ctx, format!("k{j}").as_bytes(), &value, 0).unwrap();
        }
        assert!(find(&mut s, &ctx, b"hot").is_none());
        assert!(s.memory() <= limit);
    }

    #[test]
    fn without_eviction_only_dead_bytes_are_reclaimed() {
        let flush = FlushState::default();
        let ctx = ctx(&flush);
        let mut s = Shard::new(4096);
        let value = [b'v'; 100];
        let mut n = 0;
        loop {
            let k = format!("k{n}");
            let it = NewItem::new(k.as_bytes(), &[&value], meta(0));
            let Some(old) = s.reserve(&ctx, &it, false, None) else {
                break;
            };
            s.write(&ctx, ctx.hasher.hash(k.as_bytes()), old, &it);
            n += 1;
        }
        assert!(n > 5);
        // overwriting an item needs room too: its segment's dead bytes give it
        let k = b"k0";
        let hash = ctx.hasher.hash(k);
        let at = s.get_live(&ctx, hash, k).unwrap();
        s.remove(&ctx, at);
        let it = NewItem::new(k, &[&value], meta(0));
        let old = s
            .reserve(&ctx, &it, false, None)
            .expect("dead bytes reclaimed");
        s.write(&ctx, hash, old, &it);
        for i in 0..n {
            assert!(find(&mut s, &ctx, format!("k{i}").as_bytes()).is_some());
        }
        assert_eq!(s.stats().evictions, 0);
    }

    #[test]
    fn protected_item_survives_and_moves_while_room_is_made() {
        let flush = FlushState::default();
        let ctx = ctx(&flush);
        let mut s = Shard::new(4096);
        let value = [b'v'; 100];
        put(&mut s, &ctx, b"old", &value, 0).unwrap();
        for i in 0..200 {
            put(&mut s, &ctx, format!("k{i}").as_bytes(), &value, 0).unwrap();
            // the replaced item is never evicted by its own replacement
            put(&mut s, &ctx, b"old", format!("{i:0100}").as_bytes(), 0).unwrap();
            let want = format!("{i:0100}").into_bytes();
            assert_eq!(find(&mut s, &ctx, b"old"), Some(want));
            assert!(s.memory() <= 4096);
        }
    }

    #[test]
    fn large_values_get_their_own_counted_allocation() {
        let flush = FlushState::default();
        let ctx = ctx(&flush);
        let limit = 64 * 1024;
        let mut s = Shard::new(limit);
        let big = vec![b'b'; 10_000];
        let at = put(&mut s, &ctx, b"big", &big, 0).unwrap();
        assert!(s.item(at).value() == &big[..]);
        let charge = malloc_size(10_000) + LARGE_SLOT;
        assert_eq!(s.large_bytes, charge);
        s.item_mut(at).value_mut()[0] = b'B';
        assert_eq!(find(&mut s, &ctx, b"big").unwrap()[0], b'B');
        for i in 0..20 {
            put(&mut s, &ctx, format!("big{i}").as_bytes(), &big, 0).unwrap();
            assert!(s.memory() <= limit);
        }
        assert!(s.stats().evictions > 0);
        assert!(find(&mut s, &ctx, b"big19").is_some());
        // a value larger than the whole shard never fits
        let huge = vec![0; limit];
        let it = NewItem::new(b"huge", &[&huge], meta(0));
        assert!(s.reserve(&ctx, &it, true, None).is_none());
    }
}

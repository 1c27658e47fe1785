//! Item records as they lie in a shard's segments: a compact header, the key, then the
//! value inline, or, for a value too large for a segment, the number of its own
//! allocation (see `shard.rs`).
//!
//! Layout (little endian), 18 fixed bytes then the variable part:
//!
//! | bytes  | field                                                             |
//! |--------|-------------------------------------------------------------------|
//! | 0      | bits: fetched, clock reference, stale, win token sent, binary key, has flags, large |
//! | 1      | key length                                                        |
//! | 2..10  | CAS                                                               |
//! | 10..14 | exptime, absolute unix seconds (0 never, 1 already expired)       |
//! | 14..18 | last access time, absolute unix seconds                           |
//! | +4     | client flags, only when non-zero                                  |
//! | +1..5  | value length, LEB128                                              |
//! | +4     | the value's allocation number, only for a large value             |
//! | +nkey  | key                                                               |
//! | +nval  | value, unless large                                               |
//!
//! A 16-byte key with a 100-byte value and no flags takes 19 + 116 = 135 bytes.
//! Fields that change in place (bits, CAS, exptime, access time, the value's bytes) have
//! fixed places; lengths and flags never change once written.

use std::ops::Range;

/// The item has been read at least once (meta `h`).
pub(crate) const FETCHED: u8 = 1;
/// The eviction clock's reference bit: read since its segment was last compacted.
pub(crate) const REF: u8 = 2;
/// The item was invalidated (meta `X`).
pub(crate) const STALE: u8 = 4;
/// A client already holds the right to recache it (meta `W` given, `Z` for the others).
pub(crate) const TOKEN_SENT: u8 = 8;
/// The item was created through a base64 key (memcached's ITEM_KEY_BINARY).
pub(crate) const BINARY_KEY: u8 = 16;
/// The header holds client flags.
const HAS_FLAGS: u8 = 32;
/// The value lives in its own allocation.
const LARGE: u8 = 64;

/// Bytes of header before the optional fields.
const FIXED: usize = 18;

/// What one allocation of `len` bytes really costs with glibc's malloc on 64-bit: an
/// 8-byte chunk header, rounded up to 16 bytes, at least 32; whole pages from 128 KiB
/// on (mmap'd).
pub(crate) fn malloc_size(len: usize) -> usize {
    if len >= 128 * 1024 {
        (len + 16 + 4095) & !4095
    } else {
        ((len + 8 + 15) & !15).max(32)
    }
}

/// The size memcached 1.6.18 gives this item, which decides whether it is too large:
/// [`shoal_command::item_size`], less the 8 bytes of CAS when CAS is off (-C).
pub(crate) fn memcached_size(nkey: usize, flags: u32, nvalue: usize, use_cas: bool) -> usize {
    let size = shoal_command::item_size(nkey, flags, nvalue);
    if use_cas {
        size
    } else {
        size - 8
    }
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// The fields of a new item besides key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub cas: u64,
    pub exptime: u32,
    pub time: u32,
    pub flags: u32,
    pub bits: u8,
}

/// An item about to be written: its key, its value in up to two parts (append and
/// prepend join two without an intermediate copy) and its fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewItem<'a> {
    key: &'a [u8],
    parts: [&'a [u8]; 2],
    /// The fields; the store stamps the CAS once the item fits.
    pub meta: Meta,
}

impl<'a> NewItem<'a> {
    /// An item whose value is the concatenation of `parts` (at most two).
    pub fn new(key: &'a [u8], parts: &[&'a [u8]], meta: Meta) -> NewItem<'a> {
        debug_assert!(key.len() <= u8::MAX as usize && parts.len() <= 2);
        let mut p: [&[u8]; 2] = [&[], &[]];
        for (slot, part) in p.iter_mut().zip(parts) {
            *slot = part;
        }
        NewItem {
            key,
            parts: p,
            meta,
        }
    }

    /// The value's length.
    pub fn value_len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }

    fn header_len(&self, large: bool) -> usize {
        FIXED
            + if self.meta.flags != 0 { 4 } else { 0 }
            + varint_len(self.value_len())
            + if large { 4 } else { 0 }
    }

    /// Bytes of the record in a segment with the value inline.
    pub fn inline_len(&self) -> usize {
        self.header_len(false) + self.key.len() + self.value_len()
    }

    /// Bytes of the record in a segment with the value in its own allocation.
    pub fn stub_len(&self) -> usize {
        self.header_len(true) + self.key.len()
    }

    /// Writes the record at the start of `out` (with the value inline unless `large`
    /// gives the value's allocation number); returns its length.
    pub fn write(&self, out: &mut [u8], large: Option<u32>) -> usize {
        let m = &self.meta;
        let mut bits = m.bits & !(HAS_FLAGS | LARGE);
        if m.flags != 0 {
            bits |= HAS_FLAGS;
        }
        if large.is_some() {
            bits |= LARGE;
        }
        out[0] = bits;
        out[1] = self.key.len() as u8;
        out[2..10].copy_from_slice(&m.cas.to_le_bytes());
        out[10..14].copy_from_slice(&m.exptime.to_le_bytes());
        out[14..18].copy_from_slice(&m.time.to_le_bytes());
        let mut at = FIXED;
        if m.flags != 0 {
            out[at..at + 4].copy_from_slice(&m.flags.to_le_bytes());
            at += 4;
        }
        let mut v = self.value_len();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out[at] = byte;
                at += 1;
                break;
            }
            out[at] = byte | 0x80;
            at += 1;
        }
        if let Some(n) = large {
            out[at..at + 4].copy_from_slice(&n.to_le_bytes());
            at += 4;
        }
        out[at..at + self.key.len()].copy_from_slice(self.key);
        at += self.key.len();
        if large.is_none() {
            at += self.write_value(&mut out[at..]);
        }
        at
    }

    /// Copies the value to the start of `out`; returns its length.
    pub fn write_value(&self, out: &mut [u8]) -> usize {
        let (a, b) = (self.parts[0], self.parts[1]);
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }
}

/// Where a record's parts lie, relative to its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes of the record in its segment.
    pub len: usize,
    /// The key.
    pub key: Range<usize>,
    /// The value's length.
    pub nvalue: usize,
    /// The value's allocation number, if large.
    pub large: Option<u32>,
    flags_at: Option<usize>,
}

impl Layout {
    /// Reads the layout of the record starting at `rec[0]`.
    pub fn parse(rec: &[u8]) -> Layout {
        let bits = rec[0];
        let nkey = rec[1] as usize;
        let mut at = FIXED;
        let flags_at = (bits & HAS_FLAGS != 0).then(|| {
            at += 4;
            at - 4
        });
        let mut nvalue = 0usize;
        let mut shift = 0;
        loop {
            let b = rec[at];
            at += 1;
            nvalue |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let large = (bits & LARGE != 0).then(|| {
            at += 4;
            u32::from_le_bytes(rec[at - 4..at].try_into().expect("4 bytes"))
        });
        let key = at..at + nkey;
        let len = key.end + if large.is_some() { 0 } else { nvalue };
        Layout {
            len,
            key,
            nvalue,
            large,
            flags_at,
        }
    }

    /// The inline value's place.
    fn value(&self) -> Range<usize> {
        self.key.end..self.key.end + self.nvalue
    }
}

fn u32_at(rec: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(rec[at..at + 4].try_into().expect("4 bytes"))
}

/// A stored item, read-only: its record and, if large, its value's allocation.
#[derive(Debug, Clone)]
pub(crate) struct ItemRef<'a> {
    rec: &'a [u8],
    key: Range<usize>,
    value: &'a [u8],
    flags_at: Option<usize>,
}

impl<'a> ItemRef<'a> {
    /// The item whose record is `rec` (laid out as `lay`), with its large value if any.
    pub fn new(rec: &'a [u8], lay: &Layout, large: Option<&'a [u8]>) -> ItemRef<'a> {
        ItemRef {
            rec,
            key: lay.key.clone(),
            value: match large {
                Some(v) => v,
                None => &rec[lay.value()],
            },
            flags_at: lay.flags_at,
        }
    }

    /// The CAS value.
    pub fn cas(&self) -> u64 {
        u64::from_le_bytes(self.rec[2..10].try_into().expect("8 bytes"))
    }

    /// Absolute expiry time (0: never).
    pub fn exptime(&self) -> u32 {
        u32_at(self.rec, 10)
    }

    /// Last access time.
    pub fn time(&self) -> u32 {
        u32_at(self.rec, 14)
    }

    /// Client flags.
    pub fn flags(&self) -> u32 {
        self.flags_at.map_or(0, |at| u32_at(self.rec, at))
    }

    /// The state bits (without the layout bits).
    pub fn bits(&self) -> u8 {
        self.rec[0] & !(HAS_FLAGS | LARGE)
    }

    /// Whether a bit is set.
    pub fn has(&self, bit: u8) -> bool {
        self.rec[0] & bit != 0
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        &self.rec[self.key.clone()]
    }

    /// The value.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
}

/// A stored item, writable in its changing fields and its value's bytes.
#[derive(Debug)]
pub(crate) struct ItemMut<'a> {
    rec: &'a mut [u8],
    lay: Layout,
    large: Option<&'a mut [u8]>,
}

impl<'a> ItemMut<'a> {
    /// The item whose record is `rec` (laid out as `lay`), with its large value if any.
    pub fn new(rec: &'a mut [u8], lay: Layout, large: Option<&'a mut [u8]>) -> ItemMut<'a> {
        ItemMut { rec, lay, large }
    }

    /// A read-only view.
    pub fn as_ref(&self) -> ItemRef<'_> {
        ItemRef::new(self.rec, &self.lay, self.large.as_deref())
    }

    /// Absolute expiry time (0: never).
    pub fn exptime(&self) -> u32 {
        u32_at(self.rec, 10)
    }

    /// Last access time.
    pub fn time(&self) -> u32 {
        u32_at(self.rec, 14)
    }

    /// Whether a bit is set.
    pub fn has(&self, bit: u8) -> bool {
        self.rec[0] & bit != 0
    }

    /// Sets the CAS value.
    pub fn set_cas(&mut self, cas: u64) {
        self.rec[2..10].copy_from_slice(&cas.to_le_bytes());
    }

    /// Sets the absolute expiry time.
    pub fn set_exptime(&mut self, t: u32) {
        self.rec[10..14].copy_from_slice(&t.to_le_bytes());
    }

    /// Sets the last access time.
    pub fn set_time(&mut self, t: u32) {
        self.rec[14..18].copy_from_slice(&t.to_le_bytes());
    }

    /// Sets or clears a state bit.
    pub fn set(&mut self, bit: u8, on: bool) {
        debug_assert_eq!(bit & (HAS_FLAGS | LARGE), 0);
        if on {
            self.rec[0] |= bit;
        } else {
            self.rec[0] &= !bit;
        }
    }

    /// The value, writable in place (its length cannot change).
    pub fn value_mut(&mut self) -> &mut [u8] {
        match self.large.as_deref_mut() {
            Some(v) => v,
            None => &mut self.rec[self.lay.value()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(flags: u32) -> Meta {
        Meta {
            cas: 0x0102_0304_0506_0708,
            exptime: 77,
            time: 66,
            flags,
            bits: FETCHED,
        }
    }

    fn round_trip(key: &[u8], parts: &[&[u8]], flags: u32, large: Option<u32>) {
        let new = NewItem::new(key, parts, meta(flags));
        let mut buf = vec![0xAA; 70_000];
        let len = new.write(&mut buf, large);
        let want = if large.is_some() {
            new.stub_len()
        } else {
            new.inline_len()
        };
        assert_eq!(len, want);
        let value: Vec<u8> = parts.concat();
        let mut out_of_line = value.clone();
        let lay = Layout::parse(&buf);
        assert_eq!((lay.len, lay.nvalue, lay.large), (len, value.len(), large));
        let mut it = ItemMut::new(&mut buf[..len], lay, large.map(|_| &mut out_of_line[..]));
        {
            let r = it.as_ref();
            assert_eq!((r.key(), r.value()), (key, &value[..]));
            assert_eq!(
                (r.cas(), r.exptime(), r.time(), r.flags(), r.bits()),
                (0x0102_0304_0506_0708, 77, 66, flags, FETCHED)
            );
        }
        it.set(STALE, true);
        it.set(FETCHED, false);
        it.set_cas(9);
        it.set_exptime(1);
        it.set_time(2);
        if !value.is_empty() {
            it.value_mut()[0] = b'V';
        }
        let r = it.as_ref();
        assert_eq!((r.cas(), r.exptime(), r.time(), r.bits()), (9, 1, 2, STALE));
        assert_eq!((r.key(), r.flags()), (key, flags));
        if !value.is_empty() {
            assert_eq!(r.value()[0], b'V');
            assert_eq!(&r.value()[1..], &value[1..]);
        }
    }

    #[test]
    fn fields_round_trip_in_every_layout() {
        round_trip(b"key", &[b"val", b"ue"], 0, None);
        round_trip(b"key", &[b"value"], 0xdead_beef, None);
        round_trip(b"", &[], 0, None);
        round_trip(&[b'k'; 250], &[&[b'v'; 200], &[b'w'; 60_000]], 1, None);
        round_trip(b"big", &[&[b'v'; 5000]], 0, Some(7));
        round_trip(b"big", &[&[b'v'; 127], b"x"], 3, Some(u32::MAX));
    }

    #[test]
    fn header_is_compact() {
        // 16-byte key, 100-byte value, no flags: 18 + 1 (length) + 116.
        let v = [b'v'; 100];
        let it = NewItem::new(&[b'k'; 16], &[&v], meta(0));
        assert_eq!(it.inline_len(), 135);
        let it = NewItem::new(&[b'k'; 16], &[&v], meta(1));
        assert_eq!(it.inline_len(), 139);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(1 << 20), 3);
    }

    #[test]
    fn malloc_size_counts_rounding() {
        assert_eq!(malloc_size(1), 32);
        assert_eq!(malloc_size(24), 32);
        assert_eq!(malloc_size(25), 48);
        assert_eq!(malloc_size(1 << 20), (1 << 20) + 4096);
    }

    #[test]
    fn memcached_size_matches_1_6_18() {
        // Verified against memcached 1.6.18 with -I 1m: key "big", flags 0, a value of
        // 1048514 bytes is stored and 1048515 refused; with flags 1, 1048510 / 1048511.
        let max = 1024 * 1024;
        assert!(memcached_size(3, 0, 1_048_514, true) <= max);
        assert!(memcached_size(3, 0, 1_048_515, true) > max);
        assert!(memcached_size(3, 1, 1_048_510, true) <= max);
        assert!(memcached_size(3, 1, 1_048_511, true) > max);
    }
}

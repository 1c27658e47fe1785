//! One item in one heap allocation: a fixed header, then the key, then the value.
//!
//! Layout (little endian), [`HEADER`] = 22 bytes:
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..8   | CAS                                                          |
//! | 8..12  | exptime, absolute unix seconds (0 never, 1 already expired)  |
//! | 12..16 | last access time, absolute unix seconds                      |
//! | 16..20 | client flags                                                 |
//! | 20     | key length                                                   |
//! | 21     | bits: fetched, clock reference, stale, win token sent, binary key |
//!
//! The value's length is what remains of the allocation. Values are always copied into
//! the item's own allocation.

/// Bytes of header before the key.
pub(crate) const HEADER: usize = 22;

/// The item has been read at least once (meta `h`).
pub(crate) const FETCHED: u8 = 1;
/// The eviction clock's reference bit: read since the hand last passed.
pub(crate) const REF: u8 = 2;
/// The item was invalidated (meta `X`).
pub(crate) const STALE: u8 = 4;
/// A client already holds the right to recache it (meta `W` given, `Z` for the others).
pub(crate) const TOKEN_SENT: u8 = 8;
/// The item was created through a base64 key (memcached's ITEM_KEY_BINARY).
pub(crate) const BINARY_KEY: u8 = 16;

/// Bytes the store charges for an item of `len` allocated bytes, besides its allocation:
/// its 16-byte slot in the shard's slab (a boxed slice pointer) and its share of the
/// index (a 4-byte entry in a table grown at 3/4 load, so at least 3/8 full after
/// growing: at most 11 bytes).
pub(crate) const SLOT_OVERHEAD: usize = 16 + 11;

/// What one allocation of `len` bytes really costs with glibc's malloc on 64-bit:
/// an 8-byte chunk header, rounded up to 16 bytes, at least 32.
pub(crate) fn malloc_size(len: usize) -> usize {
    ((len + 8 + 15) & !15).max(32)
}

/// The bytes an item with this key and value length is charged against the limit.
#[cfg(test)]
pub(crate) fn charge_for(nkey: usize, nvalue: usize) -> usize {
    malloc_size(HEADER + nkey + nvalue) + SLOT_OVERHEAD
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

/// The fields of a new item besides key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub cas: u64,
    pub exptime: u32,
    pub time: u32,
    pub flags: u32,
    pub bits: u8,
}

/// An item: header, key and value in one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item(Box<[u8]>);

impl Item {
    /// Builds an item whose value is the concatenation of `parts` (append and prepend
    /// build theirs from two parts without an intermediate copy).
    pub fn new(key: &[u8], parts: &[&[u8]], meta: Meta) -> Item {
        debug_assert!(key.len() <= u8::MAX as usize);
        let nvalue: usize = parts.iter().map(|p| p.len()).sum();
        let mut buf = Vec::with_capacity(HEADER + key.len() + nvalue);
        buf.extend_from_slice(&meta.cas.to_le_bytes());
        buf.extend_from_slice(&meta.exptime.to_le_bytes());
        buf.extend_from_slice(&meta.time.to_le_bytes());
        buf.extend_from_slice(&meta.flags.to_le_bytes());
        buf.push(key.len() as u8);
        buf.push(meta.bits);
        buf.extend_from_slice(key);
        for p in parts {
            buf.extend_from_slice(p);
        }
        Item(buf.into_boxed_slice())
    }

    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[at..at + 4]);
        u32::from_le_bytes(b)
    }

    fn set_u32_at(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// The CAS value.
    pub fn cas(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[0..8]);
        u64::from_le_bytes(b)
    }

    /// Sets the CAS value.
    pub fn set_cas(&mut self, cas: u64) {
        self.0[0..8].copy_from_slice(&cas.to_le_bytes());
    }

    /// Absolute expiry time (0: never).
    pub fn exptime(&self) -> u32 {
        self.u32_at(8)
    }

    /// Sets the absolute expiry time.
    pub fn set_exptime(&mut self, t: u32) {
        self.set_u32_at(8, t)
    }

    /// Last access time.
    pub fn time(&self) -> u32 {
        self.u32_at(12)
    }

    /// Sets the last access time.
    pub fn set_time(&mut self, t: u32) {
        self.set_u32_at(12, t)
    }

    /// Client flags.
    pub fn flags(&self) -> u32 {
        self.u32_at(16)
    }

    /// The state bits.
    pub fn bits(&self) -> u8 {
        self.0[21]
    }

    /// Whether a bit is set.
    pub fn has(&self, bit: u8) -> bool {
        self.0[21] & bit != 0
    }

    /// Sets or clears a bit.
    pub fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0[21] |= bit;
        } else {
            self.0[21] &= !bit;
        }
    }

    fn nkey(&self) -> usize {
        self.0[20] as usize
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.0[HEADER..HEADER + self.nkey()]
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.0[HEADER + self.nkey()..]
    }

    /// The value, writable in place (its length cannot change).
    pub fn value_mut(&mut self) -> &mut [u8] {
        let start = HEADER + self.nkey();
        &mut self.0[start..]
    }

    /// The bytes this item is charged against the memory limit.
    pub fn charge(&self) -> usize {
        malloc_size(self.0.len()) + SLOT_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            cas: 0x0102_0304_0506_0708,
            exptime: 77,
            time: 66,
            flags: 0xdead_beef,
            bits: FETCHED,
        }
    }

    #[test]
    fn fields_round_trip() {
        let mut it = Item::new(b"key", &[b"val", b"ue"], meta());
        assert_eq!(it.key(), b"key");
        assert_eq!(it.value(), b"value");
        assert_eq!(it.cas(), 0x0102_0304_0506_0708);
        assert_eq!(it.exptime(), 77);
        assert_eq!(it.time(), 66);
        assert_eq!(it.flags(), 0xdead_beef);
        assert!(it.has(FETCHED) && !it.has(STALE));
        it.set(STALE, true);
        it.set(FETCHED, false);
        it.set_cas(9);
        it.set_exptime(1);
        it.set_time(2);
        assert_eq!(it.bits(), STALE);
        assert_eq!((it.cas(), it.exptime(), it.time()), (9, 1, 2));
        it.value_mut()[0] = b'V';
        assert_eq!(it.value(), b"Value");
        assert_eq!(it.key(), b"key");
    }

    #[test]
    fn empty_key_and_value() {
        let it = Item::new(b"", &[], meta());
        assert_eq!(it.key(), b"");
        assert_eq!(it.value(), b"");
    }

    #[test]
    fn charge_counts_malloc_rounding_and_slot() {
        assert_eq!(malloc_size(1), 32);
        assert_eq!(malloc_size(24), 32);
        assert_eq!(malloc_size(25), 48);
        // 16-byte key, 100-byte value: 138 bytes -> 160-byte chunk + 27.
        assert_eq!(charge_for(16, 100), 187);
        let it = Item::new(&[b'k'; 16], &[&[b'v'; 100]], meta());
        assert_eq!(it.charge(), 187);
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

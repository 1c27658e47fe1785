//! A shard's key index: an open-addressing hash table (linear probing, backward-shift
//! deletion, at most 7/8 full) of 4-byte entries, each a record's address in the shard's
//! segments with a few bits of the key's hash above it (see `shard.rs`). Keys live only
//! in the records; the table asks its caller to compare keys and to rehash entries when
//! it grows.

const EMPTY: u32 = u32::MAX;

/// The index of one shard.
#[derive(Debug, Default)]
pub(crate) struct Index {
    slots: Vec<u32>,
    len: usize,
}

impl Index {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the table.
    pub fn bytes(&self) -> usize {
        self.slots.len() * 4
    }

    fn must_grow(&self) -> bool {
        (self.len + 1) * 8 > self.slots.len() * 7
    }

    /// The bytes the next insert adds to the table (when it grows: the bigger table's
    /// size less the old one's, freed right after).
    pub fn growth_bytes(&self) -> usize {
        if self.must_grow() {
            (self.slots.len() * 2).max(16) * 4 - self.bytes()
        } else {
            0
        }
    }

    /// Every entry, in table order.
    pub fn entries(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().copied().filter(|&v| v != EMPTY)
    }

    /// The entry at `pos` (from [`Index::find`]).
    pub fn get(&self, pos: usize) -> u32 {
        self.slots[pos]
    }

    /// Replaces the entry at `pos` (from [`Index::find`]) with one of the same hash.
    pub fn set_at(&mut self, pos: usize, value: u32) {
        debug_assert_ne!(value, EMPTY);
        self.slots[pos] = value;
    }

    /// The position and value of the entry with this hash for which `is` is true.
    pub fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        loop {
            let v = self.slots[pos];
            if v == EMPTY {
                return None;
            }
            if is(v) {
                return Some((pos, v));
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Adds an entry (the caller knows it is absent). `hash_of` rehashes existing
    /// entries when the table grows.
    pub fn insert(&mut self, hash: u64, value: u32, hash_of: impl Fn(u32) -> u64) {
        debug_assert_ne!(value, EMPTY);
        if self.must_grow() {
            self.grow(&hash_of);
        }
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        while self.slots[pos] != EMPTY {
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = value;
        self.len += 1;
    }

    fn grow(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let new_len = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len]);
        let mask = self.mask();
        for v in old.into_iter().filter(|&v| v != EMPTY) {
            let mut pos = hash_of(v) as usize & mask;
            while self.slots[pos] != EMPTY {
                pos = (pos + 1) & mask;
            }
            self.slots[pos] = v;
        }
    }

    /// Removes the entry at `pos` (from [`Index::find`]), shifting later entries of the
    /// probe run back so that lookups stay correct without tombstones.
    pub fn remove_at(&mut self, pos: usize, hash_of: impl Fn(u32) -> u64) {
        let mask = self.mask();
        let mut hole = pos;
        let mut next = (pos + 1) & mask;
        loop {
            let v = self.slots[next];
            if v == EMPTY {
                break;
            }
            let home = hash_of(v) as usize & mask;
            // move v into the hole unless its home lies cyclically in (hole, next]
            let dist_next = next.wrapping_sub(home) & mask;
            let dist_hole = hole.wrapping_sub(home) & mask;
            if dist_hole < dist_next {
                self.slots[hole] = v;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn insert_find_remove_with_collisions() {
        // values are their own keys; hash puts many into the same buckets
        let hash_of = |v: u32| (v % 7) as u64;
        let mut idx = Index::default();
        let mut model = HashMap::new();
        let mut x: u64 = 12345;
        for step in 0..5000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 300) as u32;
            let found = idx.find(hash_of(v), |e| e == v);
            assert_eq!(found.is_some(), model.contains_key(&v), "step {step}");
            match found {
                Some((pos, _)) => {
                    idx.remove_at(pos, hash_of);
                    model.remove(&v);
                }
                None => {
                    idx.insert(hash_of(v), v, hash_of);
                    model.insert(v, ());
                }
            }
            assert_eq!(idx.len(), model.len());
        }
        for v in 0..300u32 {
            assert_eq!(
                idx.find(hash_of(v), |e| e == v).is_some(),
                model.contains_key(&v)
            );
        }
        assert!(idx.bytes() * 7 >= idx.len() * 4 * 8);
    }
}

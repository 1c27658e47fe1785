//! Key hashing: a fast seeded 64-bit hash. High bits choose the shard, low bits the
//! index slot.

/// A seeded hash of keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher {
    seed: u64,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut x: u64) -> u64 {
    // murmur3's 64-bit finalizer
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

impl KeyHasher {
    /// A hasher with a random seed (from the standard library's random hasher keys).
    pub fn random() -> KeyHasher {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        KeyHasher { seed: h.finish() }
    }

    /// The hash of `key`.
    pub fn hash(&self, key: &[u8]) -> u64 {
        let mut h = self.seed ^ (key.len() as u64).wrapping_mul(K);
        let mut chunks = key.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
        }
        mix(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_hash_and_keys_differ() {
        let h = KeyHasher { seed: 1 };
        assert_eq!(h.hash(b"abc"), h.hash(b"abc"));
        assert_ne!(h.hash(b"abc"), h.hash(b"abd"));
        assert_ne!(h.hash(b"a"), h.hash(b"a\0"));
        assert_ne!(h.hash(b"12345678"), h.hash(b"123456789"));
    }
}

//! Key names (fixed 16 bytes, `k` + 15 digits) and the key-choice distributions.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::Rng;

/// Length in bytes of every key the generator writes.
pub const KEY_LEN: usize = 16;

/// Appends the 16-byte name of key `index` (`k000000000000042`) to `buf`.
pub fn write_key(buf: &mut Vec<u8>, index: u64) {
    let start = buf.len();
    buf.resize(start + KEY_LEN, b'0');
    buf[start] = b'k';
    let mut rest = index;
    for slot in buf[start + 1..start + KEY_LEN].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// Which key id the `i`-th key of a run is: `i` itself, or entry `i` of a table (keys
/// picked by where a cluster places them, see [`crate::placed`]). Distributions and bulk
/// phases work on indices `0..count`; this maps an index to the key actually sent.
#[derive(Debug, Clone, Default)]
pub struct KeyNames(Option<Arc<Vec<u64>>>);

impl KeyNames {
    /// Index `i` is key `i`.
    pub fn identity() -> Self {
        KeyNames(None)
    }

    /// Index `i` is key `ids[i]`; indices past the table's end are not allowed.
    pub fn table(ids: Vec<u64>) -> Self {
        KeyNames(Some(Arc::new(ids)))
    }

    /// The key id of index `index`.
    pub fn id(&self, index: u64) -> u64 {
        match &self.0 {
            None => index,
            Some(ids) => ids[index as usize],
        }
    }
}

/// How keys are chosen among `0..count`.
#[derive(Debug, Clone)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform {
        /// Number of keys.
        count: u64,
    },
    /// Zipf-skewed: key `i` has weight `1 / (i + 1)^s`.
    Zipf(Arc<ZipfTable>),
}

impl KeyDist {
    /// Draws one key index.
    pub fn sample(&self, rng: &mut SmallRng) -> u64 {
        match self {
            KeyDist::Uniform { count } => rng.gen_range(0..*count),
            KeyDist::Zipf(table) => table.sample(rng),
        }
    }
}

/// The cumulative distribution of a Zipf law over a finite key set, sampled by binary
/// search (exact; 8 bytes per key, fine up to tens of millions of keys).
#[derive(Debug)]
pub struct ZipfTable {
    cdf: Vec<f64>,
}

impl ZipfTable {
    /// Builds the table for `count` keys and exponent `s`.
    pub fn new(count: u64, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(count as usize);
        let mut total = 0.0;
        for rank in 0..count {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        ZipfTable { cdf }
    }

    /// Draws one key index (0 is the most popular).
    pub fn sample(&self, rng: &mut SmallRng) -> u64 {
        let u: f64 = rng.gen();
        let index = self.cdf.partition_point(|&c| c < u);
        index.min(self.cdf.len().saturating_sub(1)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_are_sixteen_bytes_and_distinct() {
        let mut a = Vec::new();
        write_key(&mut a, 42);
        assert_eq!(a, b"k000000000000042");
        let mut b = Vec::new();
        write_key(&mut b, 999_999_999_999_999);
        assert_eq!(b, b"k999999999999999");
    }

    #[test]
    fn key_names_map_indices() {
        assert_eq!(KeyNames::identity().id(7), 7);
        let table = KeyNames::table(vec![5, 9, 12]);
        assert_eq!((table.id(0), table.id(2)), (5, 12));
    }

    #[test]
    fn zipf_favours_low_ranks() {
        let table = ZipfTable::new(1000, 1.0);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut first = 0;
        for _ in 0..10_000 {
            let k = table.sample(&mut rng);
            assert!(k < 1000);
            if k == 0 {
                first += 1;
            }
        }
        // P(rank 0) = 1 / H(1000) ~= 0.134.
        assert!((1100..1600).contains(&first), "{first}");
    }
}

//! The keys and values the measurements use, made once so that neither engine pays for
//! building them: 16-byte keys `k000000000000042` over one leaked buffer (cloning one is
//! free), a static 100-byte value, and a small xorshift generator for uniform picks.

use bytes::Bytes;

/// Key length in bytes.
pub const KEY_LEN: usize = 16;
/// Value length in bytes.
pub const VALUE_LEN: usize = 100;

static VALUE: [u8; VALUE_LEN] = [b'v'; VALUE_LEN];

/// The 100-byte value every set writes (static: cloning it costs nothing).
pub fn value() -> Bytes {
    Bytes::from_static(&VALUE)
}

/// `n` distinct 16-byte keys, `k` then the index in 15 digits.
pub fn keys(n: usize) -> Vec<Bytes> {
    let mut buf = Vec::with_capacity(n * KEY_LEN);
    for i in 0..n {
        buf.extend_from_slice(format!("k{i:015}").as_bytes());
    }
    let buf: &'static [u8] = buf.leak();
    buf.chunks_exact(KEY_LEN).map(Bytes::from_static).collect()
}

/// xorshift64*: uniform enough for picking keys, and costs a few cycles.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

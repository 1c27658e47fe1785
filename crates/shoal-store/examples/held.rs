//! Items held: fills a store limited to 64 MiB with 1.2M sets of 16-byte keys and
//! 100-byte values, then counts how many keys still read back.

use bytes::Bytes;
use shoal_command::{ReadOptions, Store as StoreCmd, StoreMode};
use shoal_store::{Store, StoreConfig};

fn main() {
    let s = Store::new(StoreConfig::default());
    let n = 1_200_000u64;
    let value = Bytes::from(vec![b'v'; 100]);
    let t = std::time::Instant::now();
    for i in 0..n {
        let c = StoreCmd {
            mode: StoreMode::Set,
            key: Bytes::from(format!("k{i:015}")),
            flags: 0,
            exptime: 0,
            data: value.clone(),
            compare_cas: None,
            new_cas: None,
            invalidate: false,
            vivify: None,
            binary_key: false,
        };
        s.store(&c).expect("stored");
    }
    let set_time = t.elapsed();
    let t = std::time::Instant::now();
    let held = (0..n)
        .filter(|i| {
            s.get(format!("k{i:015}").as_bytes(), &ReadOptions::default())
                .is_some()
        })
        .count();
    let st = s.stats();
    println!(
        "held {held} ({:.2}x memcached's 349504), bytes {} ({:.1} B/item), sets {:?}, gets {:?}",
        held as f64 / 349_504.0,
        st.bytes,
        (64 << 20) as f64 / held as f64,
        set_time,
        t.elapsed()
    );
}

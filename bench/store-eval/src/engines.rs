//! The two engines behind one small interface (set, get), each used the way Shoal's
//! server would use it: `shoal_store::Store` through its `Store`/`ReadOptions` commands,
//! `segcache::Segcache` through `insert`/`get`, copying the value out of the pinned item
//! (a server must, before the pin is dropped).

use std::time::Duration;

use bytes::Bytes;
use segcache::{Policy, Segcache, SegcacheError, Value};
use shoal_command::{ReadOptions, ServerError, Store as StoreCmd, StoreMode};
use shoal_store::{Store, StoreConfig};

/// The memory limit both engines get: 64 MiB, everything included.
pub const LIMIT: usize = 64 << 20;

/// One engine under test. `Sync`: the two-thread runs share one instance.
pub trait Engine: Sync {
    /// Stores `value` under `key`; the engine's error, named, if it refused it.
    fn set(&self, key: &Bytes, value: &Bytes) -> Result<(), &'static str>;
    /// Reads `key`, copying its value into `buf`; false on a miss.
    fn get(&self, key: &Bytes, buf: &mut Vec<u8>) -> bool;
}

/// shoal-store with memcached's defaults (-m 64, -I 1m, evicting, CAS on).
pub struct ShoalEngine(pub Store);

impl ShoalEngine {
    /// A store limited to [`LIMIT`] bytes, index included.
    pub fn new() -> ShoalEngine {
        ShoalEngine(Store::new(StoreConfig {
            max_bytes: LIMIT,
            ..StoreConfig::default()
        }))
    }
}

impl Engine for ShoalEngine {
    fn set(&self, key: &Bytes, value: &Bytes) -> Result<(), &'static str> {
        let cmd = StoreCmd {
            mode: StoreMode::Set,
            key: key.clone(),
            flags: 0,
            exptime: 0,
            data: value.clone(),
            compare_cas: None,
            new_cas: None,
            invalidate: false,
            vivify: None,
            binary_key: false,
        };
        match self.0.store(&cmd) {
            Ok(_) => Ok(()),
            Err(ServerError::OutOfMemory) => Err("OutOfMemory"),
            Err(_) => Err("other error"),
        }
    }

    fn get(&self, key: &Bytes, buf: &mut Vec<u8>) -> bool {
        // the view already holds a copy of the value (as the server gets it)
        match self.0.get(key, &ReadOptions::default()) {
            Some(view) => {
                std::hint::black_box(&view);
                buf.clear();
                true
            }
            None => false,
        }
    }
}

/// segcache's eviction policies by name, for the command line of a child process.
pub fn policy(name: &str) -> Option<Policy> {
    Some(match name {
        "random" => Policy::Random,
        "fifo" => Policy::Fifo,
        "randomfifo" => Policy::RandomFifo,
        "s3fifo" => Policy::S3Fifo {
            admission_ratio: 0.1,
        },
        "merge" => Policy::Merge {
            max: 8,
            merge: 4,
            compact: 2,
        },
        "none" => Policy::None,
        _ => return None,
    })
}

/// How a segcache instance is built, sized to fit [`LIMIT`] with its hash table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegConfig {
    /// log2 of the hash table's slots (8 bytes each).
    pub hash_power: u8,
    /// Segment size in bytes (also the largest item).
    pub segment_size: usize,
    /// Eviction policy name (see [`policy`]).
    pub policy: String,
    /// Bytes of per-item "optional" data stored with each item: 0 for the bare engine,
    /// 17 for what a memcached wrapper would need (CAS 8, exptime 4, access time 4,
    /// state bits 1; flags only when non-zero).
    pub optional: usize,
}

impl SegConfig {
    /// Bytes of the hash table: 2^power slots of 8 bytes (64-byte buckets of 8).
    pub fn table_bytes(&self) -> usize {
        8 << self.hash_power
    }

    /// The heap left for segments once the table and the 64-byte segment headers are
    /// paid for, in whole segments.
    pub fn heap_bytes(&self) -> usize {
        let left = LIMIT - self.table_bytes();
        let segments = left / (self.segment_size + 64);
        segments * self.segment_size
    }

    /// `power:segment_size:policy:optional`, as a child process takes it.
    pub fn spec(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.hash_power, self.segment_size, self.policy, self.optional
        )
    }

    /// Parses [`SegConfig::spec`].
    pub fn parse(spec: &str) -> Option<SegConfig> {
        let mut it = spec.split(':');
        let c = SegConfig {
            hash_power: it.next()?.parse().ok()?,
            segment_size: it.next()?.parse().ok()?,
            policy: it.next()?.to_string(),
            optional: it.next()?.parse().ok()?,
        };
        policy(&c.policy)?;
        Some(c)
    }

    /// A short label for tables.
    pub fn label(&self) -> String {
        let seg = if self.segment_size >= 1 << 20 {
            format!("{} MiB", self.segment_size >> 20)
        } else {
            format!("{} KiB", self.segment_size >> 10)
        };
        let mut s = format!(
            "segcache p{} ({} MiB table), {seg} segs, {}",
            self.hash_power,
            self.table_bytes() >> 20,
            self.policy
        );
        if self.optional > 0 {
            s.push_str(&format!(", +{} B meta", self.optional));
        }
        s
    }
}

/// A segcache error's name.
fn error_name(e: SegcacheError) -> &'static str {
    match e {
        SegcacheError::HashTableInsertEx => "HashTableInsertEx",
        SegcacheError::EvictionEx => "EvictionEx",
        SegcacheError::ItemOversized { .. } => "ItemOversized",
        SegcacheError::NoFreeSegments => "NoFreeSegments",
        SegcacheError::Exists => "Exists",
        SegcacheError::NotFound => "NotFound",
        SegcacheError::DataCorrupted => "DataCorrupted",
        SegcacheError::NotNumeric => "NotNumeric",
    }
}

/// segcache behind the [`Engine`] interface.
pub struct SegEngine {
    cache: Segcache,
    optional: Vec<u8>,
}

impl SegEngine {
    /// Builds the instance `config` describes.
    pub fn new(config: &SegConfig) -> SegEngine {
        let cache = Segcache::builder()
            .hash_power(config.hash_power)
            .segment_size(config.segment_size as i32)
            .heap_size(config.heap_bytes())
            .eviction(policy(&config.policy).expect("known policy"))
            .build()
            .expect("segcache builds");
        SegEngine {
            cache,
            optional: vec![0; config.optional],
        }
    }

    /// The instance itself, for the feature probes.
    pub fn cache(&self) -> &Segcache {
        &self.cache
    }
}

impl Engine for SegEngine {
    fn set(&self, key: &Bytes, value: &Bytes) -> Result<(), &'static str> {
        let optional = (!self.optional.is_empty()).then_some(&self.optional[..]);
        self.cache
            .insert(key, &value[..], optional, Duration::ZERO)
            .map_err(error_name)
    }

    fn get(&self, key: &Bytes, buf: &mut Vec<u8>) -> bool {
        match self.cache.get(key) {
            Some(item) => {
                buf.clear();
                match item.value() {
                    Value::Bytes(b) => buf.extend_from_slice(b),
                    Value::U64(n) => buf.extend_from_slice(n.to_string().as_bytes()),
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_sizes_fit_the_limit() {
        for (power, seg) in [(19, 1 << 20), (20, 1 << 20), (20, 64 << 10), (21, 1 << 20)] {
            let c = SegConfig {
                hash_power: power,
                segment_size: seg,
                policy: "fifo".into(),
                optional: 17,
            };
            assert_eq!(SegConfig::parse(&c.spec()), Some(c.clone()));
            let segments = c.heap_bytes() / seg;
            let total = c.heap_bytes() + c.table_bytes() + 64 * segments;
            assert!(total <= LIMIT, "{c:?} takes {total}");
            assert!(total + seg + 64 > LIMIT, "{c:?} leaves a segment unused");
        }
        assert_eq!(SegConfig::parse("20:1048576:lru:0"), None);
    }
}

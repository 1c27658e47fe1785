//! The protocol-neutral command and result types of Shoal.
//!
//! Every front end (memcached text, meta and binary protocols) parses its requests into a
//! [`Command`]; every backend (the local store today, the cluster later) executes a
//! [`Command`] into an [`Outcome`]; every front end encodes that [`Outcome`] in its own
//! terms. Semantic rules (expiry, CAS, limits, vivify, invalidation) are therefore written
//! once, in the backend, and never per protocol.
//!
//! Every type is `serde`-serializable: the cluster forwards commands and outcomes between
//! nodes as they are.
//!
//! The types carry only what the semantics need. How a reply is shaped (which meta flags to
//! echo, the binary opaque, noreply) stays in the protocol crate.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The longest key memcached accepts, in bytes.
pub const MAX_KEY_LEN: usize = 250;

/// Expiration time exactly as the client sent it, with memcached's rules: `0` never
/// expires, a negative value has expired already, up to 30 days (2,592,000 s) is relative
/// to now, anything larger is an absolute unix time.
pub type Exptime = i64;

/// The boundary at which an exptime stops being relative and becomes a unix timestamp.
pub const RELATIVE_EXPTIME_MAX: Exptime = 60 * 60 * 24 * 30;

/// The bytes an item counts against the item size limit (memcached's -I), as memcached
/// 1.6 counts them: a 48-byte header, the key and its terminator, the value and its
/// `\r\n`, the 8-byte CAS, and 4 bytes for non-zero client flags. With `-I 1m` and a
/// 1-byte key, a value of 1,048,516 bytes fits and one of 1,048,517 does not.
pub fn item_size(key_len: usize, flags: u32, value_len: usize) -> usize {
    let flags_size = if flags == 0 { 0 } else { 4 };
    48 + key_len + 1 + value_len + 2 + 8 + flags_size
}

/// One request, whatever protocol it came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// get, gets, gat, gats, mg, binary GET/GETK/GAT family.
    Get(Get),
    /// set, add, replace, append, prepend, cas, ms, binary SET/ADD/... family.
    Store(Store),
    /// delete, md, binary DELETE.
    Delete(Delete),
    /// incr, decr, ma, binary INCREMENT/DECREMENT.
    Arith(Arith),
    /// touch, binary TOUCH.
    Touch(Touch),
    /// flush_all [delay].
    FlushAll(FlushAll),
    /// stats [group].
    Stats(StatsGroup),
    /// version.
    Version,
    /// verbosity N.
    Verbosity(u32),
    /// mn, binary NOOP: a no-op that marks the end of a pipeline.
    NoOp,
    /// quit: close the connection after the replies written so far.
    Quit,
    /// shutdown: stop the server (only when enabled with -A).
    Shutdown(ShutdownMode),
    /// me KEY: the meta debug line of one item.
    MetaDebug(Bytes),
}

/// How `shutdown` was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShutdownMode {
    /// `shutdown`: stop now.
    Now,
    /// `shutdown graceful`.
    Graceful,
    /// Any other argument: refused, but only once shutdown is known to be enabled.
    Invalid,
}

/// Options of a read, shared by every key of a multi-get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// On a hit, set this new exptime (gat, gats, mg `T`, binary GAT).
    pub touch: Option<Exptime>,
    /// Leave the item's access time, LRU position and fetched bit alone (mg `u`).
    pub no_update: bool,
    /// On a miss, create an empty item with this exptime and give the caller the win
    /// (mg `N`).
    pub vivify: Option<Exptime>,
    /// Give the caller the win when the remaining TTL is below this many seconds (mg `R`).
    pub recache_below: Option<i64>,
    /// CAS value to use for an item this read creates (mg `E`, with `N`).
    pub new_cas: Option<u64>,
    /// Where mg's `t`, `T`, `N` and `R` stand on the line.
    pub order: FlagOrder,
    /// Hand out recache wins (meta `W`) and mark them on the item: only mg does, and not
    /// when its opaque is too long (memcached fails it after the read, before the win).
    pub hand_out_wins: bool,
}

/// A read of one or more keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// The keys, in the client's order (one for meta and binary).
    pub keys: Vec<Bytes>,
    /// What the read does besides reading.
    pub options: ReadOptions,
}

/// How a store treats an existing or missing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if the key is missing.
    Add,
    /// Store only if the key exists.
    Replace,
    /// Add the data after the existing value; the item's flags and exptime are kept.
    Append,
    /// Add the data before the existing value; the item's flags and exptime are kept.
    Prepend,
}

/// A write of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// How to treat an existing or missing item.
    pub mode: StoreMode,
    /// The key.
    pub key: Bytes,
    /// The client's opaque 32-bit flags.
    pub flags: u32,
    /// Expiration time.
    pub exptime: Exptime,
    /// The value.
    pub data: Bytes,
    /// Store only if the item exists and its CAS equals this (text `cas`, binary with a
    /// non-zero CAS, ms `C`).
    pub compare_cas: Option<u64>,
    /// The CAS value the stored item gets instead of a fresh one (ms `E`).
    pub new_cas: Option<u64>,
    /// ms `I`: when `compare_cas` is lower than the item's CAS, store it marked stale
    /// instead of failing.
    pub invalidate: bool,
    /// ms `N`: for append and prepend, create the item with this exptime when missing.
    pub vivify: Option<Exptime>,
    /// The key came base64-encoded (meta `b`): an item this store creates from the
    /// request remembers it (memcached's ITEM_KEY_BINARY), so that `mg k` returns its key
    /// base64-encoded. Append and prepend build a new item that never has it.
    pub binary_key: bool,
}

/// A delete of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// The key.
    pub key: Bytes,
    /// Delete only if the item's CAS equals this (md `C`, binary non-zero CAS).
    pub compare_cas: Option<u64>,
    /// The CAS value the item gets when it is kept stale rather than removed (md `E`).
    pub new_cas: Option<u64>,
    /// md `I`: mark the item stale (and give the next reader the win) instead of removing it.
    pub invalidate: bool,
    /// md `T`, with `I`: the stale item's new exptime.
    pub touch: Option<Exptime>,
    /// md `x`: remove the value (and client flags) but keep the item.
    pub clear_value: bool,
}

impl Delete {
    /// A plain delete of `key`: no CAS, no invalidation.
    pub fn of(key: Bytes) -> Delete {
        Delete {
            key,
            compare_cas: None,
            new_cas: None,
            invalidate: false,
            touch: None,
            clear_value: false,
        }
    }
}

/// Increment or decrement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    /// Add, wrapping at 2^64.
    Incr,
    /// Subtract, stopping at 0.
    Decr,
}

/// An increment or decrement of a decimal counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arith {
    /// The key.
    pub key: Bytes,
    /// Incr or decr.
    pub op: ArithOp,
    /// The amount.
    pub delta: u64,
    /// Apply only if the item's CAS equals this (ma `C`, binary non-zero CAS).
    pub compare_cas: Option<u64>,
    /// The CAS value the item gets instead of a fresh one (ma `E`).
    pub new_cas: Option<u64>,
    /// When the key is missing, create it with this initial value and exptime, without
    /// applying the delta (binary incr/decr, ma `N` + `J`).
    pub vivify: Option<(u64, Exptime)>,
    /// On success, also set this exptime (ma `T`).
    pub touch: Option<Exptime>,
    /// Where ma's `t`, `T` and `N` stand on the line (the default: `N`, `T`, then `t`).
    pub order: FlagOrder,
}

/// Where the meta flags `t` (show the TTL), `T` (touch), `N` (vivify) and `R` (recache)
/// stand on an mg or ma line.
///
/// memcached 1.6.18 creates a vivified item without expiry, then, while writing the
/// reply, applies `T`, and `N` to an item it just created, in line order: the TTL that `t`
/// shows, the TTL `R` compares, and a created item's final TTL depend on that order. The
/// default (all false) is `N`, then `T`, then `t` and `R`: `T` wins over `N` and `t` and
/// `R` see the final TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagOrder {
    /// `N` comes after `T`: a created item keeps `N`'s exptime.
    pub vivify_after_touch: bool,
    /// `t` comes before `T`: it shows the TTL from before the touch.
    pub ttl_before_touch: bool,
    /// `t` comes before `N`: for a created item, it shows the TTL from before `N`.
    pub ttl_before_vivify: bool,
    /// `R` comes before `T`: it compares the TTL from before the touch.
    pub recache_before_touch: bool,
}

/// A change of one item's exptime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// The key.
    pub key: Bytes,
    /// The new exptime.
    pub exptime: Exptime,
}

/// Invalidate every item, now or after a delay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushAll {
    /// When to flush, as an exptime (0 or missing: now).
    pub delay: Exptime,
}

/// Which statistics `stats` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatsGroup {
    /// `stats`: the general counters.
    General,
    /// `stats settings`.
    Settings,
    /// `stats items`.
    Items,
    /// `stats slabs`.
    Slabs,
    /// `stats sizes`.
    Sizes,
    /// `stats conns`.
    Conns,
    /// `stats reset`: zero the resettable counters.
    Reset,
    /// `stats cluster` (Shoal's own): membership and partition ownership of this node.
    Cluster,
    /// Anything else, as sent.
    Other(Bytes),
}

/// An item as a read (or a write that returns the item) sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The client's flags.
    pub flags: u32,
    /// The item's CAS value.
    pub cas: u64,
    /// Seconds until the item expires, `None` if it never does (meta `t` gives `-1`), as
    /// the `t` flag sees it at its place on an mg line (see [`FlagOrder`]).
    pub ttl: Option<i64>,
    /// Seconds since the item was last accessed, before this request (meta `l`).
    pub last_access: u64,
    /// Whether the item had been fetched before this request (meta `h`).
    pub fetched: bool,
    /// This client won the right to recache the item (meta `W`).
    pub won: bool,
    /// Another client already holds the win (meta `Z`).
    pub win_taken: bool,
    /// The item is stale: invalidated, serve with care (meta `X`).
    pub stale: bool,
    /// The item was stored through a base64 key (memcached's ITEM_KEY_BINARY): meta `k`
    /// and `me` show its key base64-encoded.
    pub binary_key: bool,
}

/// The result of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOutcome {
    /// Stored; the item's new CAS value.
    Stored {
        /// The new CAS value.
        cas: u64,
    },
    /// The mode's condition failed (add of an existing key, replace/append of a missing one).
    NotStored,
    /// The CAS did not match.
    Exists,
    /// A CAS store of a missing key.
    NotFound,
}

/// The result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteOutcome {
    /// Deleted (or marked stale).
    Deleted,
    /// No such item.
    NotFound,
    /// The CAS did not match.
    Exists,
}

/// The result of an incr or decr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOutcome {
    /// The new value.
    Value {
        /// The counter after the operation.
        value: u64,
        /// The item's new CAS value.
        cas: u64,
        /// Seconds until the item expires, `None` if it never does, as the `t` flag
        /// sees it at its place on the line (see [`FlagOrder`]).
        ttl: Option<i64>,
        /// The item was missing and this command created it (vivify): ma answers even
        /// in quiet mode.
        created: bool,
    },
    /// No such item (and no vivify).
    NotFound,
    /// The CAS did not match.
    Exists,
    /// The value is not a decimal number that fits 64 bits.
    NonNumeric,
}

/// A failure of the server rather than of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerError {
    /// The item is larger than the item size limit.
    TooLarge,
    /// No memory could be found for the item (full and eviction is off, or nothing to evict).
    OutOfMemory,
    /// Anything else, with a message in memcached's style.
    Other(String),
}

/// What executing a [`Command`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// One entry per requested key, in order: `None` for a miss.
    Values(Vec<Option<ItemView>>),
    /// A store's result.
    Stored(StoreOutcome),
    /// A delete's result.
    Deleted(DeleteOutcome),
    /// An incr/decr's result.
    Arith(ArithOutcome),
    /// A touch's result: whether the item existed.
    Touched(bool),
    /// flush_all, verbosity: done.
    Ok,
    /// Statistics as name/value pairs, in memcached's order and naming.
    Stats(Vec<(String, String)>),
    /// stats reset: done.
    Reset,
    /// The version string (without the "VERSION " prefix).
    Version(String),
    /// mn / NOOP.
    NoOp,
    /// quit: close after writing what came before.
    Quit,
    /// shutdown accepted: the server is stopping.
    ShuttingDown,
    /// shutdown refused: not enabled with -A.
    ShutdownDisabled,
    /// me: the item, if present.
    Debug(Option<ItemView>),
    /// The command's group or argument is not known (e.g. an unknown stats group).
    UnknownCommand,
    /// The server could not do it.
    Error(ServerError),
}

/// One item as replication and hand-off carry it between the owners of its partition:
/// everything a replica needs to hold the same item, with its version (the CAS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaItem {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The client's flags.
    pub flags: u32,
    /// When the item expires, in unix seconds; 0 never.
    pub expires_at: u64,
    /// The item's CAS, which is also its version: a replica keeps the higher one.
    pub cas: u64,
    /// The item is stale (meta invalidation).
    pub stale: bool,
    /// The item was stored through a base64 key (meta `b`).
    pub binary_key: bool,
}

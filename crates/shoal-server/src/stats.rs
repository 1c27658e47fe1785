//! Server counters and the `stats` replies built from them, with memcached's field names
//! and order so that existing dashboards and exporters read Shoal unchanged.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shoal_command::{
    ArithOp, ArithOutcome, Command, DeleteOutcome, Outcome, ServerError, StoreOutcome,
};
use shoal_store::StoreStats;

use crate::config::ServerConfig;

/// Declares the resettable command counters once: the struct, the reset and the list.
macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Counters of commands and their results, named as in memcached's `stats`.
        #[derive(Debug, Default)]
        pub struct CommandCounters {
            $(
                #[doc = concat!("memcached's `", stringify!($name), "`.")]
                pub $name: AtomicU64,
            )*
        }

        impl CommandCounters {
            /// Sets every counter back to zero (`stats reset`).
            pub fn reset(&self) {
                $(self.$name.store(0, Relaxed);)*
            }

            /// The counters as `stats` lines, in memcached's order.
            fn lines(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
);

/// What counting needs to remember of a command once the command has been handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A read; `touch` for gat/gats.
    Get {
        /// Whether the read also touched.
        touch: bool,
    },
    /// A store; `cas` when it compared a CAS.
    Store {
        /// Whether the store compared a CAS.
        cas: bool,
    },
    /// A delete.
    Delete,
    /// An incr or decr.
    Arith(ArithOp),
    /// A touch.
    Touch,
    /// A flush_all.
    FlushAll,
    /// Anything not counted.
    Other,
}

impl Counted {
    /// What `command` will need counted.
    pub fn of(command: &Command) -> Counted {
        match command {
            Command::Get(get) => Counted::Get {
                touch: get.options.touch.is_some(),
            },
            Command::Store(store) => Counted::Store {
                cas: store.compare_cas.is_some(),
            },
            Command::Delete(_) => Counted::Delete,
            Command::Arith(arith) => Counted::Arith(arith.op),
            Command::Touch(_) => Counted::Touch,
            Command::FlushAll(_) => Counted::FlushAll,
            _ => Counted::Other,
        }
    }
}

/// Counters of the whole server.
#[derive(Debug)]
pub struct ServerStats {
    started: Instant,
    started_unix: u64,
    /// Open client connections.
    pub curr_connections: AtomicU64,
    /// Client connections ever accepted.
    pub total_connections: AtomicU64,
    /// Connections refused because of the connection limit.
    pub rejected_connections: AtomicU64,
    /// Connections closed by the idle timeout.
    pub idle_kicks: AtomicU64,
    /// Bytes read from clients.
    pub bytes_read: AtomicU64,
    /// Bytes written to clients.
    pub bytes_written: AtomicU64,
    /// Command counters.
    pub commands: CommandCounters,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            started: Instant::now(),
            started_unix: unix_now(),
            curr_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            idle_kicks: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            commands: CommandCounters::default(),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The process's user and system CPU time, in seconds.
fn rusage() -> (f64, f64) {
    // SAFETY: getrusage only writes into the zeroed struct we pass; RUSAGE_SELF is valid.
    // Exercised by `tests::general_stats_have_memcached_names`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

impl ServerStats {
    /// Counts one executed command by its outcome, as memcached counts it.
    pub fn count(&self, command: Counted, outcome: &Outcome) {
        let c = &self.commands;
        let one = |counter: &AtomicU64| {
            counter.fetch_add(1, Relaxed);
        };
        match (command, outcome) {
            (Counted::Get { touch }, Outcome::Values(values)) => {
                let hits = values.iter().filter(|v| v.is_some()).count() as u64;
                let misses = values.len() as u64 - hits;
                if touch {
                    c.cmd_touch.fetch_add(values.len() as u64, Relaxed);
                    c.touch_hits.fetch_add(hits, Relaxed);
                    c.touch_misses.fetch_add(misses, Relaxed);
                }
                c.cmd_get.fetch_add(values.len() as u64, Relaxed);
                c.get_hits.fetch_add(hits, Relaxed);
                c.get_misses.fetch_add(misses, Relaxed);
            }
            (Counted::Store { cas }, outcome) => {
                one(&c.cmd_set);
                match (cas, outcome) {
                    (true, Outcome::Stored(StoreOutcome::Stored { .. })) => one(&c.cas_hits),
                    (true, Outcome::Stored(StoreOutcome::Exists)) => one(&c.cas_badval),
                    (true, Outcome::Stored(StoreOutcome::NotFound)) => one(&c.cas_misses),
                    (_, Outcome::Error(ServerError::TooLarge)) => one(&c.store_too_large),
                    (_, Outcome::Error(ServerError::OutOfMemory)) => one(&c.store_no_memory),
                    _ => {}
                }
            }
            (Counted::Delete, Outcome::Deleted(DeleteOutcome::NotFound)) => one(&c.delete_misses),
            (Counted::Delete, Outcome::Deleted(_)) => one(&c.delete_hits),
            (Counted::Arith(op), Outcome::Arith(result)) => {
                let hit = !matches!(result, ArithOutcome::NotFound);
                match (op, hit) {
                    (ArithOp::Incr, true) => one(&c.incr_hits),
                    (ArithOp::Incr, false) => one(&c.incr_misses),
                    (ArithOp::Decr, true) => one(&c.decr_hits),
                    (ArithOp::Decr, false) => one(&c.decr_misses),
                }
            }
            (Counted::Touch, Outcome::Touched(hit)) => {
                one(&c.cmd_touch);
                one(if *hit { &c.touch_hits } else { &c.touch_misses });
            }
            (Counted::FlushAll, _) => one(&c.cmd_flush),
            _ => {}
        }
    }

    /// `stats` (general), from these counters, the store's and the configuration.
    pub fn general(
        &self,
        config: &ServerConfig,
        store: &StoreStats,
        version: &str,
    ) -> Vec<(String, String)> {
        let (user, system) = rusage();
        let uptime = self.started.elapsed().as_secs();
        let mut lines: Vec<(String, String)> = vec![
            ("pid".into(), std::process::id().to_string()),
            ("uptime".into(), uptime.to_string()),
            ("time".into(), (self.started_unix + uptime).to_string()),
            ("version".into(), version.to_string()),
            ("pointer_size".into(), (usize::BITS).to_string()),
            ("rusage_user".into(), format!("{user:.6}")),
            ("rusage_system".into(), format!("{system:.6}")),
            ("max_connections".into(), config.max_connections.to_string()),
        ];
        let gauges = [
            ("curr_connections", &self.curr_connections),
            ("total_connections", &self.total_connections),
            ("rejected_connections", &self.rejected_connections),
        ];
        for (name, value) in gauges {
            lines.push((name.into(), value.load(Relaxed).to_string()));
        }
        for (name, value) in self.commands.lines() {
            lines.push((name.into(), value.to_string()));
        }
        let tail = [
            ("bytes_read", self.bytes_read.load(Relaxed)),
            ("bytes_written", self.bytes_written.load(Relaxed)),
            ("limit_maxbytes", config.store.max_bytes as u64),
            ("threads", config.threads as u64),
            ("idle_kicks", self.idle_kicks.load(Relaxed)),
            ("bytes", store.bytes),
            ("curr_items", store.curr_items),
            ("total_items", store.total_items),
            ("evictions", store.evictions),
            ("reclaimed", store.reclaimed),
        ];
        for (name, value) in tail {
            lines.push((name.into(), value.to_string()));
        }
        lines
    }

    /// Zeroes what `stats reset` zeroes.
    pub fn reset(&self) {
        self.commands.reset();
        self.total_connections.store(0, Relaxed);
        self.rejected_connections.store(0, Relaxed);
        self.idle_kicks.store(0, Relaxed);
        self.bytes_read.store(0, Relaxed);
        self.bytes_written.store(0, Relaxed);
    }
}

/// `stats settings`: the settings this server runs with, under memcached's names.
pub fn settings(config: &ServerConfig, verbosity: u32) -> Vec<(String, String)> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let port = config.listen.first().map(|a| a.port()).unwrap_or(0);
    let inter = config
        .listen
        .iter()
        .map(|a| a.ip().to_string())
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("maxbytes".into(), config.store.max_bytes.to_string()),
        ("maxconns".into(), config.max_connections.to_string()),
        ("tcpport".into(), port.to_string()),
        ("udpport".into(), config.udp_port.to_string()),
        ("inter".into(), inter),
        ("verbosity".into(), verbosity.to_string()),
        (
            "evictions".into(),
            if config.store.evict { "on" } else { "off" }.into(),
        ),
        ("shutdown_command".into(), yes_no(config.allow_shutdown)),
        ("num_threads".into(), config.threads.to_string()),
        ("cas_enabled".into(), yes_no(config.store.use_cas)),
        ("binding_protocol".into(), "auto-negotiate".into()),
        (
            "item_size_max".into(),
            config.store.item_size_max.to_string(),
        ),
        ("flush_enabled".into(), "yes".into()),
        (
            "idle_timeout".into(),
            config.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
        ),
    ]
}

/// `stats items`: Shoal has no slab classes, so it reports its items as one class, 1.
pub fn items(store: &StoreStats) -> Vec<(String, String)> {
    if store.curr_items == 0 {
        return Vec::new();
    }
    vec![
        ("items:1:number".into(), store.curr_items.to_string()),
        ("items:1:mem_requested".into(), store.bytes.to_string()),
        ("items:1:evicted".into(), store.evictions.to_string()),
        ("items:1:reclaimed".into(), store.reclaimed.to_string()),
    ]
}

/// `stats slabs`: no slab allocator, so only the totals memcached prints after its classes.
pub fn slabs(store: &StoreStats) -> Vec<(String, String)> {
    vec![
        ("active_slabs".into(), "0".into()),
        ("total_malloced".into(), store.bytes.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_stats_have_memcached_names() {
        let stats = ServerStats::default();
        let lines = stats.general(&ServerConfig::default(), &StoreStats::default(), "1.6.18");
        let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
        for needed in [
            "pid",
            "uptime",
            "curr_connections",
            "total_connections",
            "cmd_get",
            "cmd_set",
            "get_hits",
            "get_misses",
            "bytes",
            "curr_items",
            "total_items",
            "limit_maxbytes",
            "evictions",
            "rusage_user",
        ] {
            assert!(names.contains(&needed), "missing {needed}");
        }
        let user: f64 = lines
            .iter()
            .find(|(n, _)| n == "rusage_user")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert!(user >= 0.0);
    }

    #[test]
    fn reset_zeroes_command_counters() {
        let stats = ServerStats::default();
        stats.commands.cmd_get.fetch_add(5, Relaxed);
        stats.reset();
        assert_eq!(stats.commands.cmd_get.load(Relaxed), 0);
    }
}

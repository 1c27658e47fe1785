//! Whole-binary failover: nothing acknowledged is lost when a node dies or pauses under
//! load. A writer (several connections, all to node 0) sets distinct keys as fast as it
//! can in a 3-node, R=2 cluster; node 2 is SIGKILLed (or SIGSTOPped) a second in and the
//! load goes on for a few seconds. Every `set` must be answered `STORED` (anything else is
//! a client error), and every acknowledged key must then read back through the surviving
//! nodes — and, for a paused node, through node 2 itself once it has rejoined and synced.
//! Figures (keys, errors, write latencies, detection time) are printed (`--nocapture`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::client::READ_TIMEOUT;
use common::cluster::{skip_for_memcached, Cluster, NodeState, CLUSTER_TIMEOUT};
use common::TextClient;

/// Client connections writing, all to node 0.
const WRITERS: usize = 2;
/// Load before the fault.
const WARMUP: Duration = Duration::from_secs(1);
/// Load after the fault (extended until a second past node 0 noticing it).
const AFTER_FAULT: Duration = Duration::from_secs(3);
/// Load keeps going at least this long after node 0 saw the failure.
const AFTER_DETECTION: Duration = Duration::from_secs(1);
/// Most keys written, so the data always fits in memory (nothing may be evicted).
const MAX_KEYS: u64 = 1_000_000;
/// Memory per node, far above MAX_KEYS items.
const MEMORY_MB: &str = "512";
/// Keys per multi-get when reading back.
const BATCH: usize = 100;
/// The node the client talks to; the victim is never this one.
const CLIENT_NODE: usize = 0;
const VICTIM: usize = 2;

fn key(n: u64) -> String {
    format!("k{n}")
}

fn value(n: u64) -> String {
    format!("v{n}-{}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_003)
}

/// How the victim fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Stop,
}

/// What one writer connection saw.
#[derive(Default)]
struct WriterOutcome {
    acked: Vec<u64>,
    errors: Vec<String>,
    max_latency_before: Duration,
    max_latency_during: Duration,
}

/// Sets fresh keys on `port` until `stop`; a reply other than `STORED` or a socket error
/// is recorded and ends this writer (its connection's state is then unknown).
fn write_load(
    port: u16,
    next: &AtomicU64,
    stop: &AtomicBool,
    fault_at: &OnceLock<Instant>,
) -> WriterOutcome {
    let mut out = WriterOutcome::default();
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            out.errors.push(format!("connect: {e}"));
            return out;
        }
    };
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().expect("cloning the stream"));
    let mut writer = stream;
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_KEYS {
            break;
        }
        let data = value(n);
        let request = format!("set {} 0 0 {}\r\n{data}\r\n", key(n), data.len());
        let sent = Instant::now();
        line.clear();
        let result = writer
            .write_all(request.as_bytes())
            .and_then(|()| reader.read_line(&mut line));
        let latency = sent.elapsed();
        match fault_at.get() {
            Some(&fault) if sent + latency >= fault => {
                out.max_latency_during = out.max_latency_during.max(latency);
            }
            _ => out.max_latency_before = out.max_latency_before.max(latency),
        }
        match result {
            Ok(_) if line == "STORED\r\n" => out.acked.push(n),
            Ok(0) => {
                out.errors.push(format!("{}: connection closed", key(n)));
                break;
            }
            Ok(_) => {
                out.errors.push(format!("{}: replied {line:?}", key(n)));
                break;
            }
            Err(e) => {
                out.errors.push(format!("{}: {e}", key(n)));
                break;
            }
        }
    }
    out
}

/// The acknowledged keys that do not read back with their value through `node`.
fn missing_through(cluster: &Cluster, node: usize, acked: &[u64]) -> Vec<u64> {
    let mut client = cluster.client(node);
    let mut missing = Vec::new();
    for chunk in acked.chunks(BATCH) {
        let keys: Vec<String> = chunk.iter().map(|&n| key(n)).collect();
        let found = multi_get(&mut client, &keys);
        for &n in chunk {
            if found.get(&key(n)) != Some(&value(n)) {
                missing.push(n);
            }
        }
    }
    missing
}

/// `get k1 k2 ...`: the key -> value pairs answered.
fn multi_get(
    client: &mut TextClient,
    keys: &[String],
) -> std::collections::HashMap<String, String> {
    client
        .send(format!("get {}\r\n", keys.join(" ")).as_bytes())
        .expect("sending get");
    let mut found = std::collections::HashMap::new();
    loop {
        let line = client.read_line().expect("reading get reply");
        assert!(!line.is_empty(), "connection closed during get");
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text == "END" {
            return found;
        }
        let parts: Vec<&str> = text.split(' ').collect();
        assert!(
            parts.len() == 4 && parts[0] == "VALUE",
            "bad get line {text:?}"
        );
        let len: usize = parts[3].parse().expect("length");
        let mut data = client.read_exact(len + 2).expect("reading a value");
        data.truncate(len);
        found.insert(
            parts[1].to_string(),
            String::from_utf8_lossy(&data).into_owned(),
        );
    }
}

/// Describes missing keys for a failure message: how many, the first few with their
/// owners with every node alive and with the running nodes only, and evictions.
fn describe_missing(cluster: &Cluster, missing: &[u64]) -> String {
    let running: Vec<usize> = (0..cluster.len())
        .filter(|&i| cluster.state(i) == NodeState::Running)
        .collect();
    let first: Vec<String> = missing
        .iter()
        .take(10)
        .map(|&n| {
            let k = key(n);
            format!(
                "{k} owners {:?} then {:?}",
                cluster.owners_of(k.as_bytes()),
                cluster.owners_among(k.as_bytes(), &running)
            )
        })
        .collect();
    let evictions: Vec<String> = running
        .iter()
        .map(|&i| {
            let stats = cluster.stats(i, None);
            format!("node {i}: {}", stats.get("evictions").map_or("?", |v| v))
        })
        .collect();
    format!(
        "{} keys; first: {first:?}; evictions: {evictions:?}",
        missing.len()
    )
}

/// The two tests load the machine as hard as they can: one at a time keeps the figures
/// meaningful and false failure detections away.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs the load, injects `fault` on node 2, and checks every acknowledged key.
fn survive(fault: Fault) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start_with_args(3, 2, &["-m", MEMORY_MB]);
    let port = cluster.port(CLIENT_NODE);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let fault_at = OnceLock::new();
    let mut detection = None;
    let outcomes: Vec<WriterOutcome> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| s.spawn(|| write_load(port, &next, &stop, &fault_at)))
            .collect();
        let start = Instant::now();
        while start.elapsed() < WARMUP {
            std::thread::sleep(Duration::from_millis(10));
        }
        let written_before = next.load(Ordering::Relaxed);
        match fault {
            Fault::Kill => cluster.kill(VICTIM),
            Fault::Stop => cluster.stop(VICTIM),
        }
        let faulted = Instant::now();
        fault_at.set(faulted).expect("one fault");
        eprintln!("{fault:?} of node {VICTIM} after {written_before} keys were sent");
        // Keep the load on, watching node 0's view of the membership.
        loop {
            let elapsed = faulted.elapsed();
            if detection.is_none() && cluster.alive_seen_by(CLIENT_NODE) == 2 {
                detection = Some(elapsed);
            }
            let enough = detection.is_some_and(|d| elapsed >= AFTER_FAULT.max(d + AFTER_DETECTION));
            if enough || elapsed > CLUSTER_TIMEOUT {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        writers
            .into_iter()
            .map(|w| w.join().expect("writer thread"))
            .collect()
    });

    let mut acked: Vec<u64> = outcomes.iter().flat_map(|o| o.acked.clone()).collect();
    acked.sort_unstable();
    let errors: Vec<String> = outcomes.iter().flat_map(|o| o.errors.clone()).collect();
    let before = outcomes
        .iter()
        .map(|o| o.max_latency_before)
        .max()
        .unwrap_or_default();
    let during = outcomes
        .iter()
        .map(|o| o.max_latency_during)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{fault:?}: {} keys acknowledged by {WRITERS} connections, {} client errors; \
         max set latency before the fault {before:?}, after it {during:?}; \
         node {CLIENT_NODE} saw 2 alive members {detection:?} after the fault",
        acked.len(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "client errors during {fault:?} (first 10): {:?}\n{}",
        &errors[..errors.len().min(10)],
        cluster.logs()
    );
    assert!(
        detection.is_some(),
        "node {CLIENT_NODE} never saw node {VICTIM} fail within {CLUSTER_TIMEOUT:?}\n{}",
        cluster.logs()
    );
    assert!(!acked.is_empty(), "no set was acknowledged");

    for node in [0, 1] {
        let missing = missing_through(&cluster, node, &acked);
        assert!(
            missing.is_empty(),
            "{fault:?}: acknowledged keys missing or wrong through node {node}: {}",
            describe_missing(&cluster, &missing)
        );
    }

    if fault == Fault::Stop {
        cluster.cont(VICTIM);
        let resumed = Instant::now();
        for node in 0..3 {
            cluster.wait_alive(node, 3);
        }
        let rejoined = resumed.elapsed();
        // The resumed node may still be catching up: poll until every key reads back.
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let synced = loop {
            let missing = missing_through(&cluster, VICTIM, &acked);
            if missing.is_empty() {
                break resumed.elapsed() - rejoined;
            }
            assert!(
                Instant::now() < deadline,
                "{CLUSTER_TIMEOUT:?} after rejoining, keys still missing or wrong through \
                 node {VICTIM}: {}\n{}",
                describe_missing(&cluster, &missing),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        eprintln!(
            "after SIGCONT: 3 alive on every node in {rejoined:?}; every key through node \
             {VICTIM} {synced:?} later"
        );
        for node in [0, 1] {
            let missing = missing_through(&cluster, node, &acked);
            assert!(
                missing.is_empty(),
                "after node {VICTIM} rejoined, keys missing or wrong through node {node}: {}",
                describe_missing(&cluster, &missing)
            );
        }
    }
}

#[test]
fn acknowledged_writes_survive_a_killed_node() {
    if skip_for_memcached() {
        return;
    }
    survive(Fault::Kill);
}

#[test]
fn acknowledged_writes_survive_a_paused_node() {
    if skip_for_memcached() {
        return;
    }
    survive(Fault::Stop);
}

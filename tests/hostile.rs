//! The hostile-client storm: `shoal -m 64` must keep answering a well-behaved client and
//! stay under 128 MiB resident through idle floods, slowloris half-lines, a 4 MiB line
//! with no newline, declared value lengths of 2^32 and 2^64-1, binary headers announcing
//! 4 GiB bodies, random garbage, a multi-get of 200,000 keys, thousands of malformed meta
//! commands and a client that pipelines gets of a 500 KB value but never reads, with the
//! cache filled to its limit first.
//!
//! The peak resident set is read from /proc/PID/status (VmRSS polled, VmHWM at the end)
//! and printed. With `SHOAL_TEST_TARGET=memcached` the same storm runs against memcached
//! and the figure is printed but not asserted (memcached 1.6.18 buffers long get lines).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::process::target_is_memcached;
use common::{ShoalProcess, TextClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The resident-memory ceiling under attack with `-m 64`.
const RSS_LIMIT_KIB: u64 = 128 * 1024;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Writes `data` in pieces until done or the server closes; returns bytes written.
fn pour(stream: &mut TcpStream, data: &[u8]) -> usize {
    let mut written = 0;
    for piece in data.chunks(64 * 1024) {
        match stream.write(piece) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    written
}

/// A binary request header.
fn binary_header(opcode: u8, key_len: u16, extras: u8, body: u32) -> Vec<u8> {
    let mut h = vec![0x80, opcode];
    h.extend_from_slice(&key_len.to_be_bytes());
    h.push(extras);
    h.extend_from_slice(&[0, 0, 0]);
    h.extend_from_slice(&body.to_be_bytes());
    h.extend_from_slice(&[0; 12]);
    h
}

/// Sets and reads back keys on its own connection until `stop`; returns round trips.
fn well_behaved(port: u16, stop: Arc<AtomicBool>, slowest_ms: Arc<AtomicU64>) -> u64 {
    let mut client = TextClient::connect(port);
    let mut rng = StdRng::seed_from_u64(7);
    let mut trips = 0;
    while !stop.load(Relaxed) || trips < 20 {
        let started = Instant::now();
        let key = format!("good:{}", trips % 50);
        let len = rng.gen_range(1..4000);
        let value: Vec<u8> = (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect();
        client.set(&key, trips as u32, &value);
        assert_eq!(client.get(&key).as_deref(), Some(&value[..]), "get {key}");
        slowest_ms.fetch_max(started.elapsed().as_millis() as u64, Relaxed);
        trips += 1;
        thread::sleep(Duration::from_millis(5));
    }
    trips
}

/// 500 idle connections, held until `stop`.
fn idle_flood(port: u16, stop: Arc<AtomicBool>) {
    let conns: Vec<TcpStream> = (0..500).map(|_| connect(port)).collect();
    while !stop.load(Relaxed) {
        thread::sleep(Duration::from_millis(50));
    }
    drop(conns);
}

/// 200 connections each sending a get line a byte at a time, never finishing it.
fn slowloris(port: u16, stop: Arc<AtomicBool>) {
    let mut conns: Vec<TcpStream> = (0..200).map(|_| connect(port)).collect();
    let line = b"get slowly-growing-key-that-never-ends";
    let mut i = 0;
    while !stop.load(Relaxed) {
        for conn in &mut conns {
            let _ = conn.write(&line[i % line.len()..][..1]);
        }
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
}

/// 4 MiB with no newline: a plain line, a get line of one huge key, a get line of keys.
fn long_lines(port: u16) {
    let size = 4 * 1024 * 1024;
    let plain = vec![b'x'; size];
    let mut one_key = b"get ".to_vec();
    one_key.resize(size, b'k');
    let keys: Vec<u8> = b"get"
        .iter()
        .copied()
        .chain((0..).flat_map(|i: u32| format!(" long:{i}").into_bytes()))
        .take(size)
        .collect();
    for data in [plain, one_key, keys] {
        let mut conn = connect(port);
        pour(&mut conn, &data);
        thread::sleep(Duration::from_millis(200));
    }
}

/// Declared value lengths of 2^32, 2^64-1 and just under 2^31, each followed by 8 MiB.
fn huge_declared_lengths(port: u16) {
    let data = vec![b'v'; 8 * 1024 * 1024];
    for line in [
        &b"set k 0 0 4294967296\r\n"[..],
        b"set k 0 0 18446744073709551615\r\n",
        b"set k 0 0 2147483645\r\n",
        b"ms k 4294967296 T0\r\n",
        b"ms k 18446744073709551615\r\n",
    ] {
        let mut conn = connect(port);
        pour(&mut conn, line);
        pour(&mut conn, &data);
    }
}

/// Binary headers announcing 4 GiB bodies, each followed by 8 MiB.
fn binary_bombs(port: u16) {
    let data = vec![0u8; 8 * 1024 * 1024];
    let mut set = binary_header(0x01, 1, 8, u32::MAX);
    set.extend_from_slice(&[0; 8]);
    set.push(b'k');
    let unknown = binary_header(0x55, 0, 0, u32::MAX);
    let mut long_key = binary_header(0x00, 65535, 0, u32::MAX);
    long_key.extend_from_slice(&[b'k'; 65535]);
    let sasl = binary_header(0x21, 5, 0, u32::MAX);
    for head in [set, unknown, long_key, sasl] {
        let mut conn = connect(port);
        pour(&mut conn, &head);
        pour(&mut conn, &data);
    }
}

/// Random bytes on 16 connections, half of them starting as the binary protocol.
fn garbage(port: u16) {
    let mut rng = StdRng::seed_from_u64(42);
    for i in 0..16 {
        let mut data: Vec<u8> = (0..1024 * 1024).map(|_| rng.gen()).collect();
        data[0] = if i % 2 == 0 { 0x80 } else { b'g' };
        let mut conn = connect(port);
        pour(&mut conn, &data);
    }
}

/// A get of 200,000 keys, 100 of them stored: the reply must be exactly those 100.
fn huge_multiget(port: u16) {
    let mut client = TextClient::connect(port);
    for i in (0..200_000).step_by(2000) {
        client.set(&format!("many:{i}"), 0, format!("value-{i}").as_bytes());
    }
    let mut line = b"get".to_vec();
    for i in 0..200_000 {
        line.extend_from_slice(format!(" many:{i}").as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    client.send(&line).expect("sending the multi-get");
    for i in (0..200_000).step_by(2000) {
        let value = format!("value-{i}");
        let header = format!("VALUE many:{i} 0 {}\r\n", value.len());
        assert_eq!(
            String::from_utf8_lossy(&client.read_line().unwrap()),
            header
        );
        assert_eq!(
            client.read_exact(value.len() + 2).unwrap(),
            format!("{value}\r\n").as_bytes()
        );
    }
    assert_eq!(client.read_line().unwrap(), b"END\r\n");
}

/// Thousands of malformed meta commands, pipelined; the connection still answers after.
fn malformed_meta(port: u16) {
    let bad: [&[u8]; 12] = [
        b"mg\r\n",
        b"ms k notanumber\r\n",
        b"ms k 5 I\r\nabc\r\n",
        b"ma k N-1 D\r\n",
        b"mg k zzzzz\r\n",
        b"md\r\n",
        b"ms k -1\r\n",
        b"mg k O\r\n",
        b"me\r\n",
        b"ma k MX\r\n",
        b"mg k T99999999999999999999 v\r\n",
        b"ms k 4294967296\r\n",
    ];
    let mut req = Vec::new();
    for i in 0..5000 {
        req.extend_from_slice(bad[i % bad.len()]);
        if i % 7 == 0 {
            req.extend_from_slice(b"mg ");
            req.extend_from_slice(&[b'x'; 300]);
            req.extend_from_slice(b" v\r\n");
        }
    }
    req.extend_from_slice(b"mn\r\n");
    let mut conn = connect(port);
    let writer = {
        let mut conn = conn.try_clone().unwrap();
        thread::spawn(move || pour(&mut conn, &req))
    };
    let replies = drain_until(&mut conn, b"MN\r\n");
    writer.join().unwrap();
    assert!(
        replies.ends_with(b"MN\r\n"),
        "no MN after the malformed meta commands"
    );
}

/// Reads until the data ends with `end` (or EOF).
fn drain_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !out.ends_with(end) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Fills the cache past its 64 MiB (1,900 values of 50 KB, evicting), so that the storm
/// meets a full store.
fn fill_the_cache(port: u16) {
    let value = vec![b'f'; 50_000];
    let mut conn = connect(port);
    let mut batch = Vec::new();
    for i in 0..1900 {
        batch.extend_from_slice(format!("set fill:{i} 0 0 50000 noreply\r\n").as_bytes());
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        if i % 100 == 99 {
            assert_eq!(pour(&mut conn, &batch), batch.len(), "filling the cache");
            batch.clear();
        }
    }
    let mut client = TextClient::connect(port);
    assert_eq!(conn.write(b"mn\r\n").unwrap(), 4);
    let mut reply = [0u8; 4];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"MN\r\n");
    assert!(
        client.get("fill:1899").is_some(),
        "the last value filled is there"
    );
}

/// Pipelines 2,000 gets of a 500 KB value (a gigabyte of replies) and never reads;
/// returns the connection, to close at the end.
fn never_reads(port: u16) -> TcpStream {
    let mut client = TextClient::connect(port);
    client.set("big", 0, &vec![b'b'; 500 * 1000]);
    let mut conn = connect(port);
    let gets = b"get big\r\n".repeat(2000);
    pour(&mut conn, &gets);
    conn
}

#[test]
fn a_storm_of_hostile_clients_leaves_memory_bounded_and_others_served() {
    let mut node = ShoalProcess::start(&["-m", "64"]);
    let port = node.port();
    let pid = node.pid();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    peak.fetch_max(rss, Relaxed);
                }
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // A full cache first: what the storm then stores evicts the oldest of these.
    fill_the_cache(port);
    let slowest = Arc::new(AtomicU64::new(0));
    let good = {
        let (stop, slowest) = (Arc::clone(&stop), Arc::clone(&slowest));
        thread::spawn(move || well_behaved(port, stop, slowest))
    };
    let background: Vec<_> = [idle_flood as fn(u16, Arc<AtomicBool>), slowloris]
        .into_iter()
        .map(|f| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || f(port, stop))
        })
        .collect();
    let silent = never_reads(port);
    let attacks: Vec<_> = [
        long_lines as fn(u16),
        huge_declared_lengths,
        binary_bombs,
        garbage,
        huge_multiget,
        malformed_meta,
    ]
    .into_iter()
    .map(|f| thread::spawn(move || f(port)))
    .collect();
    let mut failures = Vec::new();
    for attack in attacks {
        if let Err(panic) = attack.join() {
            failures.push(panic);
        }
    }
    // Let the server work through what it was sent before the storm ends.
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Relaxed);
    let trips = good.join().expect("the well-behaved client failed");
    for thread in background {
        thread.join().expect("a background attacker failed");
    }
    monitor.join().unwrap();
    let polled = peak.load(Relaxed);
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    let mut client = TextClient::connect(port);
    assert!(client.request_line("version").starts_with("VERSION "));
    drop(silent);
    println!(
        "{}: storm of {:.1}s, peak RSS {:.1} MiB (VmHWM), {:.1} MiB polled; \
         well-behaved client: {trips} set/get round trips, slowest {} ms",
        node.name(),
        started.elapsed().as_secs_f64(),
        hwm as f64 / 1024.0,
        polled as f64 / 1024.0,
        slowest.load(Relaxed)
    );
    assert!(failures.is_empty(), "{} attack(s) failed", failures.len());
    assert!(node.is_running(), "the server died");
    assert!(trips >= 20, "only {trips} round trips for the good client");
    if !target_is_memcached() {
        assert!(
            hwm.max(polled) < RSS_LIMIT_KIB,
            "peak RSS {hwm} KiB over {RSS_LIMIT_KIB} KiB"
        );
    }
}

//! Connection limits: `-c` refuses connections over the limit cleanly (memcached's
//! "ERROR Too many open connections", counted in `rejected_connections`), and
//! `--idle-timeout` closes idle connections (counted in `idle_kicks`) but not busy ones.
//! Shoal-only: memcached counts its own file descriptors against -c.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::process::target_is_memcached;
use common::{ShoalProcess, TextClient};

/// Waits until `stats` reports `open` current connections (the startup probe's own
/// connection may take a moment to be counted out).
fn wait_for_connections(client: &mut TextClient, open: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.stats(None)["curr_connections"] != open {
        assert!(
            Instant::now() < deadline,
            "curr_connections never reached {open}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    if target_is_memcached() {
        return;
    }
    let node = ShoalProcess::start(&["-c", "3"]);
    let mut first = TextClient::connect(node.port());
    wait_for_connections(&mut first, "1");
    let mut others: Vec<TextClient> = (0..2).map(|_| TextClient::connect(node.port())).collect();
    for client in &mut others {
        assert!(client.request_line("version").starts_with("VERSION "));
    }
    let mut refused = TextClient::connect(node.port());
    assert_eq!(
        refused.read_line().unwrap(),
        b"ERROR Too many open connections\r\n"
    );
    assert_eq!(
        refused.read_line().unwrap(),
        b"",
        "refused connection not closed"
    );
    let stats = first.stats(None);
    assert_eq!(stats["rejected_connections"], "1");
    assert_eq!(stats["curr_connections"], "3");
    assert_eq!(stats["max_connections"], "3");
    // A slot freed is a slot usable again.
    drop(others.pop());
    wait_for_connections(&mut first, "2");
    let mut again = TextClient::connect(node.port());
    assert!(again.request_line("version").starts_with("VERSION "));
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    if target_is_memcached() {
        return;
    }
    let node = ShoalProcess::start(&["--idle-timeout", "1"]);
    let mut idle = TextClient::connect(node.port());
    let mut busy = TextClient::connect(node.port());
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert!(busy.request_line("version").starts_with("VERSION "));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(idle.read_line().unwrap(), b"", "idle connection still open");
    let stats = busy.stats(None);
    assert_eq!(stats["idle_kicks"], "1");
    assert_eq!(busy.stats(Some("settings"))["idle_timeout"], "1");
}

#[test]
fn no_idle_timeout_by_default() {
    if target_is_memcached() {
        return;
    }
    let node = ShoalProcess::start(&[]);
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", node.port())).unwrap();
    idle.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = idle.read(&mut byte);
    assert!(read.is_err(), "the server closed or wrote: {read:?}");
    let mut client = TextClient::connect(node.port());
    assert_eq!(client.stats(None)["idle_kicks"], "0");
}

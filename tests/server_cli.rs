//! Basic checks of the `shoal` binary as a program: `--help`, answering `version` (also
//! via the `server` subcommand), a clean exit on SIGTERM, and serving with a tiny memory
//! limit (`-m 1`) by evicting. With `SHOAL_TEST_TARGET=memcached` the same checks run
//! against a real memcached (`memcached -h` for the help text).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{shoal_binary, target_is_memcached};
use common::{ShoalProcess, TextClient};

#[test]
fn help_exits_zero_and_lists_port_and_memory_flags() {
    let (program, flag) = if target_is_memcached() {
        ("memcached", "-h")
    } else {
        (shoal_binary(), "--help")
    };
    let output = Command::new(program)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program} {flag}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {flag} exited with {}:\n{text}",
        output.status
    );
    for needle in ["-p", "-m"] {
        assert!(
            text.contains(needle),
            "{program} {flag} does not mention {needle}:\n{text}"
        );
    }
}

fn assert_answers_version(node: &ShoalProcess) {
    let mut client = TextClient::connect(node.port());
    let reply = client.request_line("version");
    assert!(
        reply.starts_with("VERSION ") && reply.len() > "VERSION ".len(),
        "unexpected version reply {reply:?}"
    );
}

#[test]
fn node_answers_version() {
    let node = ShoalProcess::start(&["-m", "64"]);
    assert_answers_version(&node);
}

#[test]
fn server_subcommand_answers_version() {
    let node = ShoalProcess::start_server_subcommand(&["-m", "64"]);
    assert_answers_version(&node);
}

#[test]
fn sigterm_exits_cleanly_with_status_zero() {
    let mut node = ShoalProcess::start(&["-m", "64"]);
    let mut client = TextClient::connect(node.port());
    client.set("before-term", 0, b"v");
    let status = node
        .terminate(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{} did not exit within 10 s of SIGTERM", node.name()));
    assert!(
        status.success(),
        "{} exited with {status} after SIGTERM; output:\n{}",
        node.name(),
        node.output()
    );
}

#[test]
fn tiny_memory_limit_still_serves_and_evicts() {
    // Like memcached, Shoal refuses `-m 1` with the default 1 MB item size limit (it must
    // be at most half the memory), so both get the smallest memory they accept.
    let mut node = ShoalProcess::start(&["-m", "2"]);
    let mut client = TextClient::connect(node.port());
    let value = vec![b'e'; 10_000];
    // 2,000 x 10 kB = 20 MB through a 2 MB cache.
    for i in 0..2_000 {
        client.set(&format!("evict-{i}"), 0, &value);
    }
    assert!(node.is_running(), "node died under memory pressure");
    assert_eq!(
        client.get("evict-1999").as_deref(),
        Some(&value[..]),
        "the most recent item should still be there"
    );
    assert_eq!(
        client.get("evict-0"),
        None,
        "the oldest item should have been evicted"
    );
    let stats = client.stats(None);
    let evictions: u64 = stats
        .get("evictions")
        .unwrap_or_else(|| panic!("stats has no `evictions`: {stats:?}"))
        .parse()
        .expect("numeric evictions");
    assert!(evictions > 0, "no evictions reported: {stats:?}");
    assert_answers_version(&node);
}

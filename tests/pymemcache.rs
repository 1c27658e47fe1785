//! Runs `tests/clients/pymemcache_check.py` (the pymemcache client library from PyPI)
//! against a Shoal node; the script asserts every result and must exit 0.
//! With `SHOAL_TEST_TARGET=memcached` it runs against a real memcached instead.

mod common;

use std::process::{Command, Stdio};

use common::tools::require_pymemcache;
use common::ShoalProcess;

#[test]
fn pymemcache_client_works() {
    require_pymemcache();
    let node = ShoalProcess::start(&["-m", "64"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pymemcache_check.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("127.0.0.1:{}", node.port()))
        .stdin(Stdio::null())
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "pymemcache check against {} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server output ---\n{}",
        node.name(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        node.output()
    );
}

//! Runs libmemcached's `memccapable` conformance suite (ascii and binary protocol
//! tests) against a Shoal node; it must report "All tests passed" and exit 0.
//! With `SHOAL_TEST_TARGET=memcached` it runs against a real memcached instead.

mod common;

use common::memccapable::run_memccapable;
use common::ShoalProcess;

fn run_against_a_node(protocol_flag: &str) {
    let node = ShoalProcess::start(&["-m", "64"]);
    run_memccapable(node.port(), protocol_flag, node.name(), &|| node.output());
}

#[test]
fn memccapable_ascii_protocol_passes() {
    run_against_a_node("-a");
}

#[test]
fn memccapable_binary_protocol_passes() {
    run_against_a_node("-b");
}

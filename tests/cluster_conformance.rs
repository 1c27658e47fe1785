//! Conformance through a cluster: a client talking to one node of a 3-node, R=2 cluster
//! must see a memcached. libmemcached's `memccapable` (ascii and binary) runs against node
//! 1, and the differential test (`differential/`) compares node 1 with a real memcached
//! command by command (seeds 1-2 × 3000 commands; `SHOAL_DIFF_SEED` and
//! `SHOAL_DIFF_COMMANDS` override, as in `differential.rs`). Most keys then live on other
//! nodes, so every command crosses the routing layer.

mod common;

#[path = "differential/command.rs"]
mod command;
#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/gen.rs"]
mod gen;
#[path = "differential/normalize.rs"]
mod normalize;
#[path = "differential/reply.rs"]
mod reply;

use std::time::Instant;

use common::cluster::{skip_for_memcached, Cluster};
use common::memccapable::run_memccapable;
use common::MemcachedProcess;

/// The node clients talk to.
const ENTRY: usize = 1;
const SEEDS: [u64; 2] = [1, 2];
const COMMANDS: usize = 3000;

fn memccapable_through_a_cluster(protocol_flag: &str) {
    let cluster = Cluster::start_with_args(3, 2, &["-m", "64"]);
    run_memccapable(
        cluster.port(ENTRY),
        protocol_flag,
        &format!("node {ENTRY} of a 3-node cluster"),
        &|| cluster.logs(),
    );
}

#[test]
fn memccapable_ascii_passes_through_a_cluster() {
    if skip_for_memcached() {
        return;
    }
    memccapable_through_a_cluster("-a");
}

#[test]
fn memccapable_binary_passes_through_a_cluster() {
    if skip_for_memcached() {
        return;
    }
    memccapable_through_a_cluster("-b");
}

#[test]
fn a_cluster_node_answers_like_memcached() {
    if skip_for_memcached() {
        return;
    }
    let (seeds, commands) = compare::seeds_and_commands(&SEEDS, COMMANDS);
    for seed in seeds {
        let started = Instant::now();
        // Fresh servers per seed, so one seed alone reproduces.
        let memcached = MemcachedProcess::start(&["-m", "64"]);
        let cluster = Cluster::start_with_args(3, 2, &["-m", "64"]);
        compare::compare(
            seed,
            commands,
            memcached.port(),
            cluster.port(ENTRY),
            &|| cluster.logs(),
        );
        eprintln!(
            "cluster differential: seed {seed}: {commands} commands through node {ENTRY} \
             agreed with memcached in {:.1?}",
            started.elapsed()
        );
    }
}

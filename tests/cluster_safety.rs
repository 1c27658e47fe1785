//! Whole-binary data safety under faults: what the client was told must stay true after a
//! node pauses, dies, restarts with the same arguments (as a supervisor would restart
//! it), or freezes while another node joins. Every test starts a 3-node, R=2 cluster
//! (one adds a fourth node), keeps a model of the acknowledged state (key -> value, or
//! absent; a key whose request got an error or no answer is unknown and not checked),
//! lets the cluster settle (every live node sees every live member and nothing is
//! syncing), and then reads every key through every live node. Deleted and flushed keys
//! must not come back; stored keys must read back with their last acknowledged value; an
//! `incr` counter must count exactly the acknowledged increments, and neither an `incr`
//! nor a `delete` of a key that exists may be answered `NOT_FOUND`. The tests run one at
//! a time; figures are printed (`--nocapture`).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::cluster::{skip_for_memcached, Cluster, CLUSTER_TIMEOUT};
use common::model::*;
use common::TextClient;

/// How long a cluster may take to settle after a fault.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a paused node stays paused (at least; longer if the requests meant to run
/// while it is paused take longer).
const PAUSE: Duration = Duration::from_secs(4);

/// One cluster at a time: the tests time faults against the failure detector, which a
/// second cluster loading the same cores could trip on its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until nodes 0 and 1 have declared node 2 down (see 2 alive members).
fn wait_node2_down(cluster: &Cluster) -> Duration {
    cluster.wait_until(
        "nodes 0 and 1 to declare node 2 down",
        CLUSTER_TIMEOUT,
        || cluster.alive_seen_by(0) == 2 && cluster.alive_seen_by(1) == 2,
    )
}

/// Keeps a fault going until `PAUSE` has passed since `since` (this sleep makes the
/// fault last; it synchronises nothing).
fn hold_fault(since: Instant) {
    if let Some(rest) = PAUSE.checked_sub(since.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// 2,000 keys stored, node 2 paused (4 s), every key deleted through node 1 meanwhile;
/// once node 2 is back and the cluster settled, no node may serve any of them.
#[test]
fn paused_node_does_not_bring_back_deleted_keys() {
    if skip_for_memcached() {
        return;
    }
    let _turn = one_at_a_time();
    let label = "deletes while node 2 paused";
    let mut cluster = Cluster::start(3, 2);
    let mut model = write_keys(cluster.port(0), "del", "v1", 2000);

    cluster.stop(2);
    let paused = Instant::now();
    let (deleted, not_found, unknown) = delete_all(cluster.port(1), &mut model);
    eprintln!(
        "{label}: {deleted} DELETED, {not_found} NOT_FOUND, {unknown} unknown, through node 1 \
         in {:?} after SIGSTOP",
        paused.elapsed()
    );
    let down = wait_node2_down(&cluster);
    hold_fault(paused);
    if let Some(failure) = check_nodes(&cluster, &[0, 1], &model, "before SIGCONT") {
        panic!("deleted keys served while node 2 was paused:\n{failure}");
    }
    cluster.cont(2);
    eprintln!(
        "{label}: node 2 paused {:?} (declared down within {down:?} of the deletes ending)",
        paused.elapsed()
    );
    cluster.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);

    let mut failures = check_nodes(&cluster, &[0, 1, 2], &model, label).unwrap_or_default();
    if not_found > 0 {
        failures.push_str(&format!(
            "{not_found} deletes of stored keys answered NOT_FOUND\n"
        ));
    }
    assert!(
        failures.is_empty(),
        "{label}: keys acknowledged as deleted came back:\n{failures}"
    );
}

/// 2,000 keys stored, node 2 paused (4 s), one `flush_all` through node 1 once node 2
/// is out of the view; once node 2 is back and the cluster settled, no node may serve
/// any of the keys.
#[test]
fn paused_node_does_not_bring_back_flushed_keys() {
    if skip_for_memcached() {
        return;
    }
    let _turn = one_at_a_time();
    let label = "flush_all while node 2 paused";
    let mut cluster = Cluster::start(3, 2);
    let mut model = write_keys(cluster.port(0), "flush", "v1", 2000);

    cluster.stop(2);
    let paused = Instant::now();
    // Flushing once node 2 is out of the view: a flush sent while it is still a member
    // sits in its socket and is applied when it resumes, which would hide the case of a
    // node that misses the flush altogether.
    let down = wait_node2_down(&cluster);
    let reply = request(&mut cluster.client(1), b"flush_all\r\n");
    eprintln!(
        "{label}: node 2 declared down {down:?} after SIGSTOP; flush_all through node 1 \
         answered {reply:?} {:?} after SIGSTOP",
        paused.elapsed()
    );
    assert_eq!(reply.as_deref(), Some("OK"), "flush_all through node 1");
    for v in model.values_mut() {
        *v = None;
    }
    hold_fault(paused);
    if let Some(failure) = check_nodes(&cluster, &[0, 1], &model, "before SIGCONT") {
        panic!("flushed keys served while node 2 was paused:\n{failure}");
    }
    cluster.cont(2);
    eprintln!("{label}: node 2 paused {:?}", paused.elapsed());
    cluster.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);

    if let Some(failure) = check_nodes(&cluster, &[0, 1, 2], &model, label) {
        panic!("{label}: keys flushed with an acknowledged flush_all came back:\n{failure}");
    }
}

/// Writes 6,000 keys through node 1, SIGKILLs `victim`, restarts it at once with the
/// same arguments, lets the cluster settle, and checks every key through every node.
fn restarted_node_keeps_data(victim: usize) {
    let label = format!("node {victim} killed and restarted");
    let mut cluster = Cluster::start(3, 2);
    let model = write_keys(cluster.port(1), "restart", "v1", 6000);
    if let Some(failure) = check_nodes(&cluster, &[1], &model, "before the kill") {
        panic!("stored keys missing before any fault:\n{failure}");
    }

    cluster.kill(victim);
    let killed = Instant::now();
    cluster.restart(victim);
    eprintln!(
        "{label}: answering `version` again {:?} after SIGKILL",
        killed.elapsed()
    );
    cluster.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);
    eprintln!("{label}: settled {:?} after SIGKILL", killed.elapsed());

    if let Some(failure) = check_nodes(&cluster, &[0, 1, 2], &model, &label) {
        panic!("{label}: acknowledged keys lost:\n{failure}");
    }
}

/// The node started without `--join` is SIGKILLed and restarted as it was started.
#[test]
fn first_node_restarted_with_same_arguments_keeps_data() {
    if skip_for_memcached() {
        return;
    }
    let _turn = one_at_a_time();
    restarted_node_keeps_data(0);
}

/// A node started with `--join` is SIGKILLed and restarted as it was started.
#[test]
fn joining_node_restarted_with_same_arguments_keeps_data() {
    if skip_for_memcached() {
        return;
    }
    let _turn = one_at_a_time();
    restarted_node_keeps_data(2);
}

/// 6,000 keys stored; node 2 frozen; a fourth node joins through node 0; once nodes 0, 1
/// and 3 have settled without node 2, node 2 is killed: every key must still read back
/// through nodes 0, 1 and 3.
#[test]
fn frozen_node_during_join_then_killed_loses_nothing() {
    if skip_for_memcached() {
        return;
    }
    let _turn = one_at_a_time();
    let label = "node 3 joined while node 2 frozen, node 2 then killed";
    let mut cluster = Cluster::start(3, 2);
    let model = write_keys(cluster.port(0), "join", "v1", 6000);

    cluster.stop(2);
    let paused = Instant::now();
    let added = cluster.add_node(0);
    assert_eq!(added, 3);
    eprintln!(
        "{label}: node 3 answering `version` {:?} after SIGSTOP of node 2",
        paused.elapsed()
    );
    // Settled without node 2: nodes 0, 1 and 3 see 3 alive members (node 2 declared
    // down) and have nothing left to sync.
    cluster.wait_settled(&[0, 1, 3], SETTLE_TIMEOUT);
    eprintln!(
        "{label}: nodes 0, 1, 3 settled {:?} after SIGSTOP; killing node 2",
        paused.elapsed()
    );
    cluster.kill(2);
    cluster.wait_settled(&[0, 1, 3], SETTLE_TIMEOUT);

    if let Some(failure) = check_nodes(&cluster, &[0, 1, 3], &model, label) {
        panic!("{label}: acknowledged keys lost:\n{failure}");
    }
}

/// Keys overwritten (`0..OVERWRITTEN`) and deleted (`OVERWRITTEN..2*OVERWRITTEN`) in the
/// restart-under-load test, out of `LOADED` keys.
const OVERWRITTEN: usize = 1000;
const LOADED: usize = 3000;
/// Writer operations (and increments) done before the kill; the rest come during and
/// after the restart.
const WRITES_BEFORE_KILL: usize = 400;
const INCRS: usize = 200;
const INCRS_BEFORE_KILL: usize = 40;
/// Connections sharing the increments (more of them land in the moments right after the
/// restart, when the restarted node is catching up).
const INCR_CONNECTIONS: usize = 4;

/// What the increments through node 0 were told.
#[derive(Debug, Default)]
struct IncrOutcome {
    acked: u64,
    /// SERVER_ERROR or no answer: applied or not.
    unknown: u64,
    /// NOT_FOUND: the counter (which always exists) was reported absent.
    not_found: u64,
    other: Vec<String>,
    max_latency: Duration,
}

impl IncrOutcome {
    fn add(mut self, other: IncrOutcome) -> IncrOutcome {
        self.acked += other.acked;
        self.unknown += other.unknown;
        self.not_found += other.not_found;
        self.other.extend(other.other);
        self.max_latency = self.max_latency.max(other.max_latency);
        self
    }
}

/// Sends one request and times it.
fn timed_request(client: &mut TextClient, req: &[u8], max: &mut Duration) -> Option<String> {
    let sent = Instant::now();
    let reply = request(client, req);
    *max = (*max).max(sent.elapsed());
    reply
}

/// 3,000 keys stored (v1); while node 1 overwrites a third of them (v2) and deletes
/// another third, one request at a time, and node 0 increments a counter whose primary
/// is node 2, node 2 is SIGKILLed and restarted as it was started. After the load and
/// settling, every node must serve exactly the acknowledged state.
#[test]
fn overwrites_and_deletes_survive_a_restart_under_load() {
    if skip_for_memcached() {
        return;
    }
    let _turn = one_at_a_time();
    let label = "overwrites/deletes/incrs while node 2 restarted";
    let mut cluster = Cluster::start(3, 2);
    let mut model = write_keys(cluster.port(0), "load", "v1", LOADED);
    // A counter whose primary is the victim, so the fault is on its path.
    let counter = (0..)
        .map(|n| key("counter", n))
        .find(|k| cluster.owners_of(k.as_bytes())[0] == 2)
        .expect("some key has node 2 as primary");
    let reply = request(&mut cluster.client(0), &set_request(&counter, b"0"));
    assert_eq!(reply.as_deref(), Some("STORED"), "setting {counter}");

    let port0 = cluster.port(0);
    let port1 = cluster.port(1);
    let writes_done = AtomicUsize::new(0);
    let incrs_done = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let wait_for_kill = || {
        while !killed.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    let ((writes, write_latency), incrs, at_restart) = std::thread::scope(|s| {
        // Node 1: overwrite key i with v2 and delete key OVERWRITTEN + i, alternately.
        let writer = s.spawn(|| {
            let mut client = TextClient::connect(port1);
            let mut outcomes = Vec::with_capacity(2 * OVERWRITTEN);
            let mut max_latency = Duration::ZERO;
            for op in 0..2 * OVERWRITTEN {
                if op == WRITES_BEFORE_KILL {
                    wait_for_kill();
                }
                let i = op / 2;
                let (k, req, intended) = if op % 2 == 0 {
                    let k = key("load", i);
                    let v = value("v2", i);
                    (k.clone(), set_request(&k, &v), Some(v))
                } else {
                    let k = key("load", OVERWRITTEN + i);
                    (k.clone(), delete_request(&k), None)
                };
                let reply = timed_request(&mut client, &req, &mut max_latency);
                if reply.is_none() {
                    client = TextClient::connect(port1);
                }
                outcomes.push((k, intended, reply));
                writes_done.fetch_add(1, Ordering::Relaxed);
            }
            (outcomes, max_latency)
        });
        // Node 0: increment the counter, on several connections.
        let increment = || {
            let mut client = TextClient::connect(port0);
            let mut out = IncrOutcome::default();
            for n in 0..INCRS / INCR_CONNECTIONS {
                if n == INCRS_BEFORE_KILL / INCR_CONNECTIONS {
                    wait_for_kill();
                }
                let req = format!("incr {counter} 1\r\n");
                let reply = timed_request(&mut client, req.as_bytes(), &mut out.max_latency);
                match reply.as_deref() {
                    Some(r) if r.parse::<u64>().is_ok() => out.acked += 1,
                    Some("NOT_FOUND") => out.not_found += 1,
                    Some(r) if r.starts_with("SERVER_ERROR") => out.unknown += 1,
                    None => {
                        out.unknown += 1;
                        client = TextClient::connect(port0);
                    }
                    Some(r) => {
                        out.unknown += 1;
                        out.other.push(r.to_string());
                    }
                }
                incrs_done.fetch_add(1, Ordering::Relaxed);
            }
            out
        };
        let incrementers: Vec<_> = (0..INCR_CONNECTIONS).map(|_| s.spawn(increment)).collect();

        cluster.wait_until("the load to reach the kill point", CLUSTER_TIMEOUT, || {
            writes_done.load(Ordering::Relaxed) >= WRITES_BEFORE_KILL
                && incrs_done.load(Ordering::Relaxed) >= INCRS_BEFORE_KILL
        });
        cluster.kill(2);
        killed.store(true, Ordering::Relaxed);
        let at_kill = Instant::now();
        cluster.restart(2);
        let at_restart = (
            at_kill.elapsed(),
            writes_done.load(Ordering::Relaxed),
            incrs_done.load(Ordering::Relaxed),
        );
        (
            writer.join().expect("writer thread"),
            incrementers
                .into_iter()
                .map(|t| t.join().expect("incr thread"))
                .fold(IncrOutcome::default(), IncrOutcome::add),
            at_restart,
        )
    });
    eprintln!(
        "{label}: node 2 answering `version` {:?} after SIGKILL, when {} of {} writes and \
         {} of {INCRS} incrs were done",
        at_restart.0,
        at_restart.1,
        2 * OVERWRITTEN,
        at_restart.2
    );

    let (mut stored, mut deleted, mut not_found, mut unknown) = (0, 0, 0, 0);
    for (k, intended, reply) in writes {
        let acked = match (&intended, reply.as_deref()) {
            (Some(_), Some("STORED")) => {
                stored += 1;
                true
            }
            (None, Some("DELETED")) => {
                deleted += 1;
                true
            }
            // The key was stored: a wrong answer, but the client was told it is absent.
            (None, Some("NOT_FOUND")) => {
                not_found += 1;
                true
            }
            _ => false,
        };
        if acked {
            model.insert(k, intended);
        } else {
            if unknown < SHOWN {
                eprintln!("{k}: {reply:?} (unknown from now on)");
            }
            unknown += 1;
            model.remove(&k);
        }
    }
    eprintln!(
        "{label}: {stored} overwrites STORED, {deleted} deletes DELETED, {not_found} deletes \
         NOT_FOUND, {unknown} unknown (slowest {write_latency:?}); incrs: {incrs:?}"
    );
    // A replica restarted at the same address is a new member: a write waiting for the
    // old one's acknowledgement goes to the new one instead of running into the 8 s
    // deadline.
    assert!(
        write_latency < Duration::from_secs(6),
        "a write waited {write_latency:?} for a restarted replica"
    );

    cluster.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);

    let mut failures = check_nodes(&cluster, &[0, 1, 2], &model, label).unwrap_or_default();
    for node in 0..3 {
        let got = read_back(cluster.port(node), [&counter]);
        let got = got
            .get(&counter)
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let value: Option<u64> = got.as_deref().and_then(|v| v.trim().parse().ok());
        eprintln!(
            "{label}: through node {node}: {counter} = {got:?} ({} acked, {} unknown)",
            incrs.acked, incrs.unknown
        );
        let ok = value.is_some_and(|v| v >= incrs.acked && v <= incrs.acked + incrs.unknown);
        if !ok {
            failures.push_str(&format!(
                "node {node}: {counter} = {got:?}, expected {} acknowledged increments \
                 (+ up to {} unknown)\n",
                incrs.acked, incrs.unknown
            ));
        }
    }
    if not_found > 0 {
        failures.push_str(&format!(
            "{not_found} deletes of stored keys answered NOT_FOUND\n"
        ));
    }
    if incrs.not_found > 0 {
        failures.push_str(&format!(
            "{} incrs of {counter} answered NOT_FOUND\n",
            incrs.not_found
        ));
    }
    assert!(failures.is_empty(), "{label}:\n{failures}");
}

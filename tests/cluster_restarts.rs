//! Whole-binary data safety through the operations an operator runs and the races the
//! cluster used to lose: a rolling restart of five nodes under write load (each node
//! stopped with SIGTERM and started again with the same arguments, the next step as soon
//! as it answers), two SIGKILLs one after the other at R=3, increments and CAS while a
//! node joins, a replica that cannot store what its primary stored, and writes that
//! waited in a frozen primary's socket. Every check is against what the client was told
//! (`common::model`); figures are printed (`--nocapture`). One cluster at a time.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{skip_for_memcached, Cluster, CLUSTER_TIMEOUT};
use common::model::*;
use common::TextClient;

/// How long a cluster may take to settle after a fault.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping node may take (it waits for its partitions to be held elsewhere).
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends one request on `client` (reconnecting to `port` first if needed) and returns
/// its reply line; None (and the connection dropped) when no answer came.
fn ask(client: &mut Option<TextClient>, port: u16, req: &[u8]) -> Option<String> {
    if client.is_none() {
        *client = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| TextClient::connect(port));
    }
    let conn = client.as_mut()?;
    let line = conn
        .send(req)
        .ok()
        .and_then(|()| conn.read_line().ok())
        .filter(|l| !l.is_empty());
    match line {
        Some(l) => Some(
            String::from_utf8_lossy(&l)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => {
            *client = None;
            None
        }
    }
}

/// What a writer was told, and how many requests got no clear answer.
#[derive(Default)]
struct Written {
    model: Model,
    unknown: usize,
    acked: usize,
}

impl Written {
    /// Records the answer to a set of `key` to `value`.
    fn set(&mut self, key: String, value: Vec<u8>, reply: Option<String>) {
        if reply.as_deref() == Some("STORED") {
            self.acked += 1;
            self.model.insert(key, Some(value));
        } else {
            self.unknown += 1;
            self.model.remove(&key);
        }
    }

    /// Records the answer to a delete of `key`.
    fn delete(&mut self, key: String, reply: Option<String>) {
        match reply.as_deref() {
            Some("DELETED") => {
                self.acked += 1;
                self.model.insert(key, None);
            }
            other => {
                if other == Some("NOT_FOUND") {
                    eprintln!("delete {key}: NOT_FOUND for a key acknowledged as stored");
                }
                self.unknown += 1;
                self.model.remove(&key);
            }
        }
    }
}

#[test]
fn rolling_restart_of_five_nodes_under_write_load_loses_nothing() {
    if skip_for_memcached() {
        return;
    }
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start(5, 2);
    let ports = cluster.ports();
    let down = Arc::new(AtomicUsize::new(usize::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (down, done, ports) = (Arc::clone(&down), Arc::clone(&done), ports.clone());
        thread::spawn(move || {
            let mut written = Written::default();
            let mut clients: Vec<Option<TextClient>> = ports.iter().map(|_| None).collect();
            let mut n = 0usize;
            while !done.load(Ordering::Acquire) {
                let node = (0..ports.len())
                    .map(|j| (n + j) % ports.len())
                    .find(|&j| j != down.load(Ordering::Acquire))
                    .expect("a node that is up");
                // Overwrite a key written three steps before, or delete one written two
                // steps before; else a new key.
                let (key_n, kind) = match n % 4 {
                    1 if n >= 3 => (n - 3, "overwrite"),
                    2 if n >= 2 => (n - 2, "delete"),
                    _ => (n, "set"),
                };
                let k = key("roll", key_n);
                match kind {
                    "delete" => {
                        let reply = ask(&mut clients[node], ports[node], &delete_request(&k));
                        written.delete(k, reply);
                    }
                    _ => {
                        let v = value(if kind == "set" { "v1" } else { "v2" }, key_n);
                        let reply = ask(&mut clients[node], ports[node], &set_request(&k, &v));
                        written.set(k, v, reply);
                    }
                }
                n += 1;
            }
            written
        })
    };
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    for i in 0..5 {
        down.store(i, Ordering::Release);
        let stop = cluster.terminate(i, STOP_TIMEOUT);
        cluster.restart(i);
        down.store(usize::MAX, Ordering::Release);
        eprintln!("node {i}: stopped in {stop:?}, answering again; next step at once");
    }
    eprintln!("rolling restart of 5 nodes took {:?}", started.elapsed());
    thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Release);
    let written = writer.join().expect("writer thread");
    eprintln!(
        "writer: {} acknowledged, {} without a clear answer, {} keys in the model",
        written.acked,
        written.unknown,
        written.model.len()
    );
    assert!(written.acked > 1000, "too few writes to say anything");
    cluster.wait_settled(&[0, 1, 2, 3, 4], SETTLE_TIMEOUT);
    if let Some(failure) = check_nodes(&cluster, &[0, 1, 2, 3, 4], &written.model, "rolling") {
        panic!("rolling restart: acknowledged state lost:\n{failure}");
    }
}

#[test]
fn two_nodes_killed_one_after_the_other_at_r3_lose_nothing() {
    if skip_for_memcached() {
        return;
    }
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start(5, 3);
    let mut model = write_keys(cluster.port(0), "r3", "v1", 6000);
    cluster.kill(4);
    cluster.wait_until("the survivors to see node 4 down", CLUSTER_TIMEOUT, || {
        (0..4).all(|i| cluster.alive_seen_by(i) == 4)
    });
    // Overwrite a third of the keys while node 3's copies are the only third ones.
    let keys: Vec<String> = model.keys().take(2000).cloned().collect();
    let requests: Vec<Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(n, k)| set_request(k, &value("v2", n)))
        .collect();
    for ((n, k), reply) in keys
        .iter()
        .enumerate()
        .zip(pipeline(cluster.port(1), &requests))
    {
        if reply.as_deref() == Some("STORED") {
            model.insert(k.clone(), Some(value("v2", n)));
        } else {
            model.remove(k);
        }
    }
    // The second kill as soon as the first is detected, before any hand-off ends.
    cluster.kill(3);
    cluster.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);
    let mut deleted: Model = model
        .iter()
        .skip(3000)
        .take(1000)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (ok, not_found, unknown) = delete_all(cluster.port(2), &mut deleted);
    eprintln!("after two kills: {ok} deleted, {not_found} not found, {unknown} unknown");
    assert_eq!(not_found, 0, "keys acknowledged as stored were not found");
    for (k, v) in deleted {
        model.insert(k, v);
    }
    if let Some(failure) = check_nodes(&cluster, &[0, 1, 2], &model, "two kills at R=3") {
        panic!("two kills at R=3: acknowledged state lost:\n{failure}");
    }
}

#[test]
fn increments_and_cas_stay_exact_while_a_node_joins() {
    if skip_for_memcached() {
        return;
    }
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start(3, 2);
    let counters: Vec<String> = (0..10).map(|n| key("ctr", n)).collect();
    let mut setup = cluster.client(0);
    for c in &counters {
        assert_eq!(setup.request_line(&format!("set {c} 0 0 1\r\n0")), "STORED");
    }
    assert_eq!(setup.request_line("set casctr 0 0 1\r\n0"), "STORED");
    let ports = cluster.ports();
    let incrs: Vec<_> = (0..3)
        .map(|t| {
            let (port, counters) = (ports[t], counters.clone());
            thread::spawn(move || {
                let mut client = None;
                let mut acked = vec![0u64; counters.len()];
                let mut errors = vec![0u64; counters.len()];
                for i in 0..600 {
                    let c = i % counters.len();
                    let reply = ask(
                        &mut client,
                        port,
                        format!("incr {} 1\r\n", counters[c]).as_bytes(),
                    );
                    match reply.as_deref().map(str::parse::<u64>) {
                        Some(Ok(_)) => acked[c] += 1,
                        _ => {
                            eprintln!("incr {}: {reply:?}", counters[c]);
                            errors[c] += 1;
                        }
                    }
                }
                (acked, errors)
            })
        })
        .collect();
    let cas_wins = Arc::new(AtomicUsize::new(0));
    let cas_threads: Vec<_> = (0..2)
        .map(|t| {
            let (port, wins) = (ports[t + 1], Arc::clone(&cas_wins));
            thread::spawn(move || {
                let mut client = TextClient::connect(port);
                for _ in 0..150 {
                    client.send(b"gets casctr\r\n").expect("gets");
                    let header =
                        String::from_utf8_lossy(&client.read_line().expect("gets")).to_string();
                    let parts: Vec<&str> = header.split_whitespace().collect();
                    assert_eq!(parts.first(), Some(&"VALUE"), "gets casctr: {header:?}");
                    let len: usize = parts[3].parse().unwrap();
                    let token = parts[4].to_string();
                    let data = client.read_exact(len + 2).expect("value");
                    assert_eq!(client.read_line().expect("END"), b"END\r\n");
                    let n: u64 = String::from_utf8_lossy(&data[..len]).parse().unwrap();
                    let next = (n + 1).to_string();
                    let reply = client
                        .request_line(&format!("cas casctr 0 0 {} {token}\r\n{next}", next.len()));
                    if reply == "STORED" {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let joined = cluster.add_node(0);
    let mut acked = vec![0u64; counters.len()];
    let mut errors = vec![0u64; counters.len()];
    for t in incrs {
        let (a, e) = t.join().expect("incr thread");
        for c in 0..counters.len() {
            acked[c] += a[c];
            errors[c] += e[c];
        }
    }
    for t in cas_threads {
        t.join().expect("cas thread");
    }
    cluster.wait_settled(&[0, 1, 2, joined], SETTLE_TIMEOUT);
    for node in [0, 1, 2, joined] {
        let mut client = cluster.client(node);
        for (c, name) in counters.iter().enumerate() {
            let got: u64 = String::from_utf8_lossy(&client.get(name).expect("counter exists"))
                .parse()
                .expect("numeric counter");
            assert!(
                got >= acked[c] && got <= acked[c] + errors[c],
                "node {node}: {name} is {got}, {} increments acknowledged, {} unclear",
                acked[c],
                errors[c]
            );
        }
        let cas: u64 = String::from_utf8_lossy(&client.get("casctr").expect("cas counter"))
            .parse()
            .unwrap();
        assert_eq!(
            cas,
            cas_wins.load(Ordering::Relaxed) as u64,
            "node {node}: every successful cas adds one; a token that won twice would show"
        );
    }
    eprintln!(
        "while a node joined: {} increments acknowledged, {} unclear; {} cas wins",
        acked.iter().sum::<u64>(),
        errors.iter().sum::<u64>(),
        cas_wins.load(Ordering::Relaxed)
    );
}

#[test]
fn a_replica_that_cannot_store_fails_the_write_everywhere() {
    if skip_for_memcached() {
        return;
    }
    let _serial = one_at_a_time();
    let small: &[&str] = &["-I", "64k"];
    let cluster = Cluster::start_with_node_args(2, &[&[], &[], small]);
    let big = vec![b'x'; 100 * 1024];
    let mut by_role: HashMap<&str, Vec<String>> = HashMap::new();
    for n in 0..400 {
        let k = key("big", n);
        let owners = cluster.owners_of(k.as_bytes());
        let role = match owners.iter().position(|&o| o == 2) {
            Some(0) => "node 2 primary",
            Some(_) => "node 2 replica",
            None => "node 2 not an owner",
        };
        by_role.entry(role).or_default().push(k);
    }
    let mut client = cluster.client(0);
    for (role, keys) in &by_role {
        for k in keys.iter().take(20) {
            let reply = client.request_line(&format!(
                "set {k} 0 0 {}\r\n{}",
                big.len(),
                String::from_utf8_lossy(&big)
            ));
            if *role == "node 2 not an owner" {
                assert_eq!(reply, "STORED", "{k} ({role})");
            } else {
                assert!(
                    reply.starts_with("SERVER_ERROR"),
                    "{k} ({role}): a write node 2 cannot store must not be acknowledged, got {reply:?}"
                );
            }
        }
    }
    for node in 0..3 {
        let mut client = cluster.client(node);
        for (role, keys) in &by_role {
            for k in keys.iter().take(20) {
                let found = client.get(k).is_some();
                assert_eq!(
                    found,
                    *role == "node 2 not an owner",
                    "node {node}: {k} ({role}) served: {found}"
                );
            }
        }
    }
    eprintln!(
        "items too large for node 2: refused on all {} keys it owns, stored on the {} it does not",
        by_role
            .iter()
            .filter(|(r, _)| **r != "node 2 not an owner")
            .map(|(_, k)| k.len().min(20))
            .sum::<usize>(),
        by_role
            .get("node 2 not an owner")
            .map_or(0, |k| k.len().min(20))
    );
}

#[test]
fn writes_that_waited_in_a_frozen_primarys_socket_do_not_win() {
    if skip_for_memcached() {
        return;
    }
    let _serial = one_at_a_time();
    let mut cluster = Cluster::start(3, 2);
    let keys: Vec<String> = (0..2000)
        .map(|n| key("frozen", n))
        .filter(|k| cluster.owners_of(k.as_bytes())[0] == 2)
        .take(200)
        .collect();
    let first: Vec<Vec<u8>> = keys.iter().map(|k| set_request(k, b"v0")).collect();
    assert!(pipeline(cluster.port(0), &first)
        .iter()
        .all(|r| r.as_deref() == Some("STORED")));
    cluster.stop(2);
    // These go to node 2 (their primary), wait in its socket, and are retried on the
    // new primary once node 2 is declared down.
    let v1: Vec<Vec<u8>> = keys.iter().map(|k| set_request(k, b"v1")).collect();
    let replies = pipeline(cluster.port(0), &v1);
    let stored = replies
        .iter()
        .filter(|r| r.as_deref() == Some("STORED"))
        .count();
    let v2: Vec<Vec<u8>> = keys.iter().map(|k| set_request(k, b"v2")).collect();
    let mut model = Model::new();
    for (k, reply) in keys.iter().zip(pipeline(cluster.port(1), &v2)) {
        if reply.as_deref() == Some("STORED") {
            model.insert(k.clone(), Some(b"v2".to_vec()));
        }
    }
    eprintln!(
        "{stored} of {} v1 writes acknowledged while node 2 was frozen, {} v2 after",
        keys.len(),
        model.len()
    );
    cluster.cont(2);
    cluster.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);
    if let Some(failure) = check_nodes(
        &cluster,
        &[0, 1, 2],
        &model,
        "after the frozen primary resumed",
    ) {
        panic!("stale writes from a frozen primary's socket won:\n{failure}");
    }
}

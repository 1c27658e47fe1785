//! Whole-binary routing: any node of a cluster answers for any key. Keys written through
//! one node read back identically through every node (text, binary and meta protocols);
//! a multi-get answers in the client's order; the data is spread over the nodes (R copies
//! of every item, about R/N of them on each node); incr/decr/append/prepend/cas through a
//! node that owns no copy stay exact and atomic; `flush_all` through one node empties all;
//! and `shoal cluster status` prints the members as a node sees them.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use common::client::READ_TIMEOUT;
use common::cluster::{skip_for_memcached, Cluster};
use common::process::{free_port, shoal_binary};
use common::{ShoalProcess, TextClient};

/// Keys written in the read-back and distribution tests.
const KEYS: usize = 2000;

fn key(i: usize) -> String {
    format!("route-{i}")
}

/// A value derived from `i`; some embed `\r\nEND\r\n` so framing bugs in forwarding show.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-{}", "abcdefghij".repeat(i % 7)).into_bytes();
    if i.is_multiple_of(5) {
        v.extend_from_slice(b"\r\nEND\r\n");
    }
    v
}

fn flags(i: usize) -> u32 {
    (i as u32).wrapping_mul(2_654_435_761)
}

/// `get key` over the text protocol: `(flags, data)` or None on a miss.
fn text_get(client: &mut TextClient, key: &str) -> Option<(u32, Vec<u8>)> {
    let got = text_retrieve(client, "get", &[key.to_string()]);
    assert!(got.len() <= 1, "one key asked, several answered: {got:?}");
    got.into_iter().next().map(|item| (item.flags, item.data))
}

/// One `VALUE` block of a retrieval reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    key: String,
    flags: u32,
    data: Vec<u8>,
    cas: Option<u64>,
}

/// Sends `verb k1 k2 ...` and returns the `VALUE` blocks in the order they came.
fn text_retrieve(client: &mut TextClient, verb: &str, keys: &[String]) -> Vec<Item> {
    let line = format!("{verb} {}\r\n", keys.join(" "));
    client.send(line.as_bytes()).expect("sending a retrieval");
    let mut items = Vec::new();
    loop {
        let reply = client.read_line().expect("reading a retrieval reply");
        assert!(!reply.is_empty(), "connection closed during {verb}");
        let text = String::from_utf8_lossy(&reply).trim_end().to_string();
        if text == "END" {
            return items;
        }
        let parts: Vec<&str> = text.split(' ').collect();
        assert!(
            parts[0] == "VALUE" && (parts.len() == 4 || parts.len() == 5),
            "bad {verb} reply line {text:?}"
        );
        let len: usize = parts[3].parse().expect("value length");
        let mut data = client.read_exact(len + 2).expect("reading a value");
        assert_eq!(&data[len..], b"\r\n", "value not followed by CRLF");
        data.truncate(len);
        items.push(Item {
            key: parts[1].to_string(),
            flags: parts[2].parse().expect("flags"),
            data,
            cas: parts.get(4).map(|c| c.parse().expect("cas")),
        });
    }
}

/// Sends one storage-style command with a data block and returns the reply line.
fn text_store(client: &mut TextClient, line: &str, data: &[u8]) -> String {
    let mut req = format!("{line}\r\n").into_bytes();
    req.extend_from_slice(data);
    req.extend_from_slice(b"\r\n");
    client.send(&req).expect("sending a storage command");
    let reply = client.read_line().expect("reading a storage reply");
    String::from_utf8_lossy(&reply).trim_end().to_string()
}

/// A minimal memcached binary-protocol client (set and get only).
struct BinaryClient {
    stream: TcpStream,
}

/// One binary-protocol response.
struct BinaryResponse {
    status: u16,
    extras: Vec<u8>,
    value: Vec<u8>,
}

impl BinaryClient {
    fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting (binary)");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        BinaryClient { stream }
    }

    fn request(&mut self, opcode: u8, extras: &[u8], key: &[u8], value: &[u8]) -> BinaryResponse {
        let body = extras.len() + key.len() + value.len();
        let mut req = vec![0x80, opcode];
        req.extend_from_slice(&(key.len() as u16).to_be_bytes());
        req.push(extras.len() as u8);
        req.extend_from_slice(&[0, 0, 0]);
        req.extend_from_slice(&(body as u32).to_be_bytes());
        req.extend_from_slice(&0xfeed_u32.to_be_bytes());
        req.extend_from_slice(&0u64.to_be_bytes());
        req.extend_from_slice(extras);
        req.extend_from_slice(key);
        req.extend_from_slice(value);
        self.stream
            .write_all(&req)
            .expect("sending a binary request");
        let mut header = [0u8; 24];
        self.stream
            .read_exact(&mut header)
            .expect("reading a binary header");
        assert_eq!(header[0], 0x81, "bad response magic");
        assert_eq!(header[1], opcode, "response to another opcode");
        assert_eq!(&header[12..16], &0xfeed_u32.to_be_bytes(), "opaque");
        let key_len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let extras_len = header[4] as usize;
        let status = u16::from_be_bytes([header[6], header[7]]);
        let body_len = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
        let mut body = vec![0; body_len];
        self.stream
            .read_exact(&mut body)
            .expect("reading a binary body");
        BinaryResponse {
            status,
            extras: body[..extras_len].to_vec(),
            value: body[extras_len + key_len..].to_vec(),
        }
    }

    fn set(&mut self, key: &str, flags: u32, value: &[u8]) {
        let mut extras = flags.to_be_bytes().to_vec();
        extras.extend_from_slice(&0u32.to_be_bytes());
        let response = self.request(0x01, &extras, key.as_bytes(), value);
        assert_eq!(response.status, 0, "binary set {key}: status");
    }

    fn get(&mut self, key: &str) -> Option<(u32, Vec<u8>)> {
        let response = self.request(0x00, &[], key.as_bytes(), &[]);
        match response.status {
            0 => {
                let flags = u32::from_be_bytes(response.extras[..4].try_into().unwrap());
                Some((flags, response.value))
            }
            1 => None,
            other => panic!("binary get {key}: status {other:#x}"),
        }
    }
}

/// `ms key len F<flags>` over the meta protocol; asserts `HD`.
fn meta_set(client: &mut TextClient, key: &str, flags: u32, data: &[u8]) {
    let reply = text_store(client, &format!("ms {key} {} F{flags}", data.len()), data);
    assert_eq!(reply, "HD", "meta set {key}");
}

/// `mg key v f` over the meta protocol: `(flags, data)` or None on `EN`.
fn meta_get(client: &mut TextClient, key: &str) -> Option<(u32, Vec<u8>)> {
    client
        .send(format!("mg {key} v f\r\n").as_bytes())
        .expect("sending mg");
    let line = client.read_line().expect("reading mg reply");
    let text = String::from_utf8_lossy(&line).trim_end().to_string();
    if text == "EN" {
        return None;
    }
    let parts: Vec<&str> = text.split(' ').collect();
    assert!(
        parts[0] == "VA" && parts.len() >= 2,
        "bad mg reply {text:?}"
    );
    let len: usize = parts[1].parse().expect("mg length");
    let flags = parts
        .iter()
        .find_map(|p| p.strip_prefix('f'))
        .unwrap_or_else(|| panic!("no f flag in {text:?}"))
        .parse()
        .expect("mg flags");
    let mut data = client.read_exact(len + 2).expect("reading mg value");
    data.truncate(len);
    Some((flags, data))
}

/// Writes KEYS keys through node 0 (text), reads them through every node, checks the
/// spread, then crosses binary and meta protocols between different nodes.
fn route_everywhere(nodes: usize) {
    let replicas = 2;
    let cluster = Cluster::start(nodes, replicas);
    let mut writer = cluster.client(0);
    for i in 0..KEYS {
        writer.set(&key(i), flags(i), &value(i));
    }
    for n in 0..nodes {
        let mut reader = cluster.client(n);
        let mut wrong = Vec::new();
        for i in 0..KEYS {
            let got = text_get(&mut reader, &key(i));
            if got.as_ref() != Some(&(flags(i), value(i))) {
                wrong.push((key(i), cluster.owners_of(key(i).as_bytes()), got.is_some()));
            }
        }
        assert!(
            wrong.is_empty(),
            "through node {n}: {} of {KEYS} keys missing or wrong; first (key, owners, \
             present): {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        );
    }

    // Nothing is evicted, so the nodes hold exactly R copies, spread about evenly.
    let items: Vec<u64> = (0..nodes).map(|n| cluster.curr_items(n)).collect();
    let copies = (replicas * KEYS) as u64;
    eprintln!("{nodes} nodes, {KEYS} keys, R={replicas}: curr_items per node {items:?}");
    assert_eq!(
        items.iter().sum::<u64>(),
        copies,
        "curr_items over the nodes {items:?} should add up to R x keys"
    );
    let fair = copies as f64 / nodes as f64;
    for (n, &count) in items.iter().enumerate() {
        assert!(
            (0.5 * fair..=1.5 * fair).contains(&(count as f64)),
            "node {n} holds {count} items, outside 0.5..1.5 x {fair:.0}: {items:?}"
        );
    }

    // Binary set through node 1, read with meta through the last node and text through 0.
    let last = nodes - 1;
    let mut binary = BinaryClient::connect(cluster.port(1));
    let mut meta = cluster.client(last);
    let mut text = cluster.client(0);
    for i in 0..200 {
        let k = format!("bin-{i}");
        binary.set(&k, flags(i), &value(i));
        let expected = Some((flags(i), value(i)));
        assert_eq!(
            meta_get(&mut meta, &k),
            expected,
            "{k} via meta on node {last}"
        );
        assert_eq!(text_get(&mut text, &k), expected, "{k} via text on node 0");
    }
    // Meta set through the last node, read with binary through node 1.
    for i in 0..200 {
        let k = format!("meta-{i}");
        meta_set(&mut meta, &k, flags(i), &value(i));
        assert_eq!(
            binary.get(&k),
            Some((flags(i), value(i))),
            "{k} via binary on node 1"
        );
    }
    assert_eq!(binary.get("never-set"), None);
    assert_eq!(meta_get(&mut meta, "never-set"), None);
}

#[test]
fn three_nodes_answer_every_key_through_every_node() {
    if skip_for_memcached() {
        return;
    }
    route_everywhere(3);
}

#[test]
fn five_nodes_answer_every_key_through_every_node() {
    if skip_for_memcached() {
        return;
    }
    route_everywhere(5);
}

#[test]
fn multi_get_answers_in_the_clients_order_and_skips_misses() {
    if skip_for_memcached() {
        return;
    }
    let cluster = Cluster::start(3, 2);
    let mut writer = cluster.client(0);
    // Keys spread over every partition owner; a third of them are never stored.
    let stored = |i: usize| !i.is_multiple_of(3);
    for i in (0..100).filter(|&i| stored(i)) {
        writer.set(&format!("mget-{i}"), flags(i), &value(i));
    }
    let order: Vec<usize> = (0..100).map(|i| (i * 37 + 11) % 100).collect();
    let keys: Vec<String> = order.iter().map(|i| format!("mget-{i}")).collect();
    let expected: Vec<(String, u32, Vec<u8>)> = order
        .iter()
        .filter(|&&i| stored(i))
        .map(|&i| (format!("mget-{i}"), flags(i), value(i)))
        .collect();
    for n in 0..3 {
        let mut reader = cluster.client(n);
        for verb in ["get", "gets"] {
            let items = text_retrieve(&mut reader, verb, &keys);
            let got: Vec<(String, u32, Vec<u8>)> = items
                .iter()
                .map(|it| (it.key.clone(), it.flags, it.data.clone()))
                .collect();
            assert_eq!(got, expected, "{verb} of 100 keys through node {n}");
            assert!(
                items.iter().all(|it| it.cas.is_some() == (verb == "gets")),
                "{verb}: CAS values present exactly for gets"
            );
        }
    }
    // The same key's CAS is the same through every node.
    let cas_by_node: Vec<Vec<Option<u64>>> = (0..3)
        .map(|n| {
            let mut reader = cluster.client(n);
            text_retrieve(&mut reader, "gets", &keys)
                .into_iter()
                .map(|it| it.cas)
                .collect()
        })
        .collect();
    assert_eq!(cas_by_node[0], cas_by_node[1], "CAS via node 0 vs node 1");
    assert_eq!(cas_by_node[0], cas_by_node[2], "CAS via node 0 vs node 2");
}

#[test]
fn arithmetic_append_and_cas_through_a_non_owner_stay_exact() {
    if skip_for_memcached() {
        return;
    }
    let cluster = Cluster::start(3, 2);
    let mut clients: Vec<TextClient> = (0..3).map(|n| cluster.client(n)).collect();
    for i in 0..20 {
        let k = format!("rmw-{i}");
        let owners = cluster.owners_of(k.as_bytes());
        let outsider = (0..3)
            .find(|n| !owners.contains(n))
            .expect("R=2 of 3 leaves one non-owner");
        let c = &mut clients[outsider];
        let via = format!("{k} through non-owner node {outsider} (owners {owners:?})");

        assert_eq!(c.request_line(&format!("incr {k} 1")), "NOT_FOUND", "{via}");
        assert_eq!(text_store(c, &format!("set {k} 7 0 1"), b"5"), "STORED");
        assert_eq!(text_store(c, &format!("add {k} 0 0 1"), b"9"), "NOT_STORED");
        assert_eq!(c.request_line(&format!("incr {k} 10")), "15", "{via}");
        assert_eq!(c.request_line(&format!("decr {k} 3")), "12", "{via}");
        assert_eq!(text_store(c, &format!("append {k} 0 0 1"), b"x"), "STORED");
        assert_eq!(text_store(c, &format!("prepend {k} 0 0 1"), b"y"), "STORED");
        for (n, client) in clients.iter_mut().enumerate() {
            assert_eq!(
                text_get(client, &k),
                Some((7, b"y12x".to_vec())),
                "{via}, read through node {n}"
            );
        }

        let c = &mut clients[outsider];
        let before = text_retrieve(c, "gets", std::slice::from_ref(&k));
        let token = before[0].cas.expect("gets returns a CAS");
        let cas = |c: &mut TextClient, data: &[u8]| {
            text_store(c, &format!("cas {k} 3 0 {} {token}", data.len()), data)
        };
        assert_eq!(
            cas(c, b"swapped"),
            "STORED",
            "{via}: cas with the fresh token"
        );
        assert_eq!(cas(c, b"again"), "EXISTS", "{via}: cas with a stale token");
        let after: Vec<Item> = clients
            .iter_mut()
            .map(|client| text_retrieve(client, "gets", std::slice::from_ref(&k)))
            .map(|items| items.into_iter().next().expect("the key is present"))
            .collect();
        for (n, item) in after.iter().enumerate() {
            assert_eq!(item.data, b"swapped", "{via}: value through node {n}");
            assert_eq!(item.flags, 3, "{via}: flags through node {n}");
            assert_eq!(item.cas, after[0].cas, "{via}: same CAS through node {n}");
            assert_ne!(item.cas, Some(token), "{via}: a new CAS after the swap");
        }
    }

    // Concurrent increments of one key through all three nodes lose nothing.
    let k = "rmw-counter";
    clients[0].set(k, 0, b"0");
    const PER_NODE: u64 = 200;
    std::thread::scope(|s| {
        for n in 0..3 {
            let port = cluster.port(n);
            s.spawn(move || {
                let mut c = TextClient::connect(port);
                for _ in 0..PER_NODE {
                    let reply = c.request_line(&format!("incr {k} 1"));
                    assert!(reply.parse::<u64>().is_ok(), "incr via node {n}: {reply:?}");
                }
            });
        }
    });
    for (n, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            text_get(client, k),
            Some((0, (3 * PER_NODE).to_string().into_bytes())),
            "counter through node {n}"
        );
    }
}

#[test]
fn flush_all_through_one_node_empties_every_node() {
    if skip_for_memcached() {
        return;
    }
    let cluster = Cluster::start(3, 2);
    let keys: Vec<String> = (0..300).map(|i| format!("flush-{i}")).collect();
    let mut writer = cluster.client(0);
    for (i, k) in keys.iter().enumerate() {
        writer.set(k, 0, &value(i));
    }
    let present = |n: usize| -> usize {
        let mut reader = cluster.client(n);
        keys.chunks(100)
            .map(|chunk| text_retrieve(&mut reader, "get", chunk).len())
            .sum()
    };
    assert_eq!(
        present(2),
        keys.len(),
        "all keys visible through node 2 before the flush"
    );
    assert_eq!(cluster.client(1).request_line("flush_all"), "OK");
    for n in 0..3 {
        assert_eq!(
            present(n),
            0,
            "keys left through node {n} after flush_all via node 1"
        );
    }
    // The cluster still stores after the flush.
    writer.set("after-flush", 0, b"yes");
    assert_eq!(
        text_get(&mut cluster.client(2), "after-flush"),
        Some((0, b"yes".to_vec()))
    );
}

/// Runs `shoal cluster status --node ADDR`; returns (success, stdout, stderr).
fn cluster_status(node: &str) -> (bool, String, String) {
    let output = Command::new(shoal_binary())
        .args(["cluster", "status", "--node", node])
        .stdin(Stdio::null())
        .output()
        .expect("running shoal cluster status");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cluster_status_lists_every_member() {
    if skip_for_memcached() {
        return;
    }
    let cluster = Cluster::start(3, 2);
    let node = cluster.client_addr(1).to_string();
    let (ok, out, err) = cluster_status(&node);
    assert!(ok, "shoal cluster status --node {node} failed:\n{out}{err}");
    eprintln!("{out}");
    // Member rows start with the member's cluster address; columns: address, state,
    // local, partitions primary, partitions replica, items.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| {
            cols.first()
                .is_some_and(|c| c.parse::<SocketAddr>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 3, "three member rows expected:\n{out}");
    let addrs: HashSet<SocketAddr> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    let expected: HashSet<SocketAddr> = (0..3).map(|i| cluster.gossip_addr(i)).collect();
    assert_eq!(addrs, expected, "member addresses:\n{out}");
    let column = |i: usize| -> u64 {
        rows.iter()
            .map(|r| {
                r[i].parse::<u64>()
                    .unwrap_or_else(|_| panic!("column {i}:\n{out}"))
            })
            .sum()
    };
    assert_eq!(column(3), 1024, "primary partitions add up to 1024:\n{out}");
    assert_eq!(
        column(4),
        1024,
        "replica partitions add up to 1024 (R=2):\n{out}"
    );
    for row in &rows {
        assert_eq!(row[1], "alive", "{out}");
        let local = row[0] == cluster.gossip_addr(1).to_string();
        assert_eq!(
            row[2],
            if local { "yes" } else { "no" },
            "local column:\n{out}"
        );
    }
    assert!(
        out.lines().any(|l| l.starts_with("TOTAL")),
        "a totals line:\n{out}"
    );
}

#[test]
fn cluster_status_fails_clearly_when_the_node_is_unreachable() {
    let node = format!("127.0.0.1:{}", free_port());
    let (ok, out, err) = cluster_status(&node);
    assert!(!ok, "status of a dead address succeeded:\n{out}");
    assert!(err.contains(&node), "the error names the address:\n{err}");
}

#[test]
fn cluster_status_fails_clearly_on_a_single_node() {
    let server = ShoalProcess::start(&[]);
    let node = format!("127.0.0.1:{}", server.port());
    let (ok, out, err) = cluster_status(&node);
    assert!(!ok, "status of a non-cluster node succeeded:\n{out}");
    assert!(
        err.contains("not a cluster node"),
        "the error says why:\n{err}"
    );
}

/// Hand-off ends promptly: once a 5-node cluster has formed (four joins, each changing
/// every node's view), every node soon holds all the partitions it owns (nothing left to
/// pull), instead of serving them through per-key fetches from their previous owners.
#[test]
fn every_node_finishes_pulling_soon_after_the_cluster_forms() {
    if skip_for_memcached() {
        return;
    }
    let cluster = Cluster::start(5, 2);
    for i in 0..cluster.len() {
        let took = cluster.wait_until(
            &format!("node {i} to have no partition left to pull"),
            std::time::Duration::from_secs(10),
            || cluster.stats(i, Some("cluster"))["partitions_syncing"] == "0",
        );
        eprintln!("node {i}: nothing left to pull {took:?} after the cluster formed");
    }
}

//! Whole-binary replication of every kind of change: in a 3-node, R=2 cluster, keys whose
//! primary is node 2 are changed through node 0 by each command that changes an item
//! (set, touch, gat, incr, append, cas, delete, meta invalidation); then node 2 is
//! SIGKILLed and the promoted replica must show every change, through node 0 and node 1.
//! (A touch keeps the CAS: a replica that only took newer CAS values would miss it.)

mod common;

use common::cluster::{skip_for_memcached, Cluster};
use common::TextClient;

/// Keys whose primary is `node`, one per change tested.
fn keys_with_primary(cluster: &Cluster, node: usize, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("change-{i}"))
        .filter(|key| cluster.owners_of(key.as_bytes())[0] == node)
        .take(count)
        .collect()
}

/// `set key 0 exptime value`, asserting `STORED`.
fn set_with_exptime(client: &mut TextClient, key: &str, exptime: u32, value: &str) {
    let line = format!("set {key} 0 {exptime} {}\r\n{value}", value.len());
    assert_eq!(client.request_line(&line), "STORED", "set {key}");
}

/// `mg key t v`: the TTL the item reports and its value, or None on a miss.
fn ttl_and_value(client: &mut TextClient, key: &str) -> Option<(String, Vec<u8>)> {
    let head = client.request_line(&format!("mg {key} t v"));
    if head == "EN" {
        return None;
    }
    let parts: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(parts[0], "VA", "mg {key}: {head:?}");
    let len: usize = parts[1].parse().expect("value length");
    let ttl = parts
        .iter()
        .find_map(|p| p.strip_prefix('t'))
        .expect("a t flag")
        .to_string();
    let mut data = client.read_exact(len + 2).expect("reading the value");
    data.truncate(len);
    Some((ttl, data))
}

/// Reads the rest of a one-item text retrieval (`VALUE` line already read): data, END.
fn finish_retrieval(client: &mut TextClient, head: &str) -> Vec<u8> {
    let len: usize = head
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad VALUE line {head:?}"));
    let mut data = client.read_exact(len + 2).expect("reading the value");
    data.truncate(len);
    assert_eq!(client.read_line().expect("END"), b"END\r\n");
    data
}

#[test]
fn every_kind_of_change_survives_the_primary() {
    if skip_for_memcached() {
        return;
    }
    let mut cluster = Cluster::start(3, 2);
    let keys = keys_with_primary(&cluster, 2, 8);
    let [touched, gat, counter, appended, swapped, deleted, invalidated, plain] =
        <[String; 8]>::try_from(keys).expect("eight keys");
    let mut client = cluster.client(0);

    set_with_exptime(&mut client, &touched, 1000, "t");
    assert_eq!(
        client.request_line(&format!("touch {touched} 0")),
        "TOUCHED"
    );

    set_with_exptime(&mut client, &gat, 1000, "g");
    let head = client.request_line(&format!("gat 0 {gat}"));
    assert_eq!(finish_retrieval(&mut client, &head), b"g");

    set_with_exptime(&mut client, &counter, 0, "10");
    assert_eq!(client.request_line(&format!("incr {counter} 5")), "15");

    set_with_exptime(&mut client, &appended, 0, "a");
    assert_eq!(
        client.request_line(&format!("append {appended} 0 0 1\r\nb")),
        "STORED"
    );

    set_with_exptime(&mut client, &swapped, 0, "old");
    let head = client.request_line(&format!("gets {swapped}"));
    let cas = head.split_whitespace().nth(4).expect("a CAS").to_string();
    finish_retrieval(&mut client, &head);
    assert_eq!(
        client.request_line(&format!("cas {swapped} 0 0 3 {cas}\r\nnew")),
        "STORED"
    );

    set_with_exptime(&mut client, &deleted, 0, "d");
    assert_eq!(client.request_line(&format!("delete {deleted}")), "DELETED");

    set_with_exptime(&mut client, &invalidated, 0, "i");
    assert_eq!(client.request_line(&format!("md {invalidated} I")), "HD");

    set_with_exptime(&mut client, &plain, 0, "p");

    cluster.kill(2);
    cluster.wait_alive(0, 2);
    cluster.wait_alive(1, 2);

    for node in [0, 1] {
        let mut client = cluster.client(node);
        let at = format!("through node {node}");
        let (ttl, value) = ttl_and_value(&mut client, &touched).expect(&at);
        assert_eq!((ttl.as_str(), &value[..]), ("-1", &b"t"[..]), "touch {at}");
        let (ttl, _) = ttl_and_value(&mut client, &gat).expect(&at);
        assert_eq!(ttl, "-1", "gat {at}");
        let (ttl, _) = ttl_and_value(&mut client, &plain).expect(&at);
        assert_eq!(ttl, "-1", "set {at}");
        assert_eq!(client.get(&counter), Some(b"15".to_vec()), "incr {at}");
        assert_eq!(client.get(&appended), Some(b"ab".to_vec()), "append {at}");
        assert_eq!(client.get(&swapped), Some(b"new".to_vec()), "cas {at}");
        assert_eq!(client.get(&deleted), None, "delete {at}");
        let head = client.request_line(&format!("mg {invalidated} v"));
        assert!(
            head.starts_with("VA 1") && head.split_whitespace().any(|f| f == "X"),
            "invalidation {at}: {head:?}"
        );
        client.read_line().expect("the value line");
    }
}

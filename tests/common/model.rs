//! A model of what clients were told, for the cluster fault tests: key -> last
//! acknowledged value (or absent), pipelined writers and deleters that record each
//! answer, and read-back through any node compared key by key with the model.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::cluster::Cluster;
use super::TextClient;

/// Requests per write when pipelining, and keys per multi-get when reading back.
pub const BATCH: usize = 100;
/// How many discrepancies per node a failure message lists.
pub const SHOWN: usize = 8;

/// The acknowledged state: key -> `Some(value)` (stored) or `None` (deleted / flushed).
pub type Model = BTreeMap<String, Option<Vec<u8>>>;

pub fn key(prefix: &str, n: usize) -> String {
    format!("{prefix}-{n}")
}

/// A value derived from `tag` and `n`, distinct per key and per tag.
pub fn value(tag: &str, n: usize) -> Vec<u8> {
    format!(
        "{tag}-{n}-{}",
        (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_003
    )
    .into_bytes()
}

pub fn set_request(key: &str, value: &[u8]) -> Vec<u8> {
    let mut req = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    req
}

pub fn delete_request(key: &str) -> Vec<u8> {
    format!("delete {key}\r\n").into_bytes()
}

/// Sends `requests` (each answered by exactly one line) to `port`, [`BATCH`] per write,
/// reading all of a batch's replies before the next. Returns each reply line without
/// its CRLF, or None when no answer came (socket error or closed connection: the rest
/// of that batch is then unanswered too, and the next batch goes on a new connection).
pub fn pipeline(port: u16, requests: &[Vec<u8>]) -> Vec<Option<String>> {
    let mut replies = Vec::with_capacity(requests.len());
    let mut client: Option<TextClient> = None;
    for chunk in requests.chunks(BATCH) {
        let conn = client.get_or_insert_with(|| TextClient::connect(port));
        let answered = conn.send(&chunk.concat()).is_ok();
        let mut broken = !answered;
        for _ in chunk {
            if broken {
                replies.push(None);
                continue;
            }
            match conn.read_line() {
                Ok(line) if !line.is_empty() => replies.push(Some(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                )),
                _ => {
                    broken = true;
                    replies.push(None);
                }
            }
        }
        if broken {
            client = None;
        }
    }
    replies
}

/// One request and its reply line (None: no answer), on `client`.
pub fn request(client: &mut TextClient, req: &[u8]) -> Option<String> {
    client.send(req).ok()?;
    let line = client.read_line().ok()?;
    if line.is_empty() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    )
}

/// Stores `count` keys `prefix-n` with `value(tag, n)` through `port`, all pipelined,
/// and returns the model of what was acknowledged; asserts every set was `STORED`.
pub fn write_keys(port: u16, prefix: &str, tag: &str, count: usize) -> Model {
    let keys: Vec<String> = (0..count).map(|n| key(prefix, n)).collect();
    let requests: Vec<Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(n, k)| set_request(k, &value(tag, n)))
        .collect();
    let started = Instant::now();
    let replies = pipeline(port, &requests);
    let failed: Vec<String> = keys
        .iter()
        .zip(&replies)
        .filter(|(_, r)| r.as_deref() != Some("STORED"))
        .map(|(k, r)| format!("{k}: {r:?}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {count} sets not STORED (first: {:?})",
        failed.len(),
        &failed[..failed.len().min(SHOWN)]
    );
    eprintln!("{count} keys stored in {:?}", started.elapsed());
    keys.into_iter()
        .enumerate()
        .map(|(n, k)| (k, Some(value(tag, n))))
        .collect()
}

/// `get k1 k2 ...` in batches of [`BATCH`] on one connection to `port`: what was served.
pub fn read_back<'a>(
    port: u16,
    keys: impl IntoIterator<Item = &'a String>,
) -> HashMap<String, Vec<u8>> {
    let keys: Vec<&String> = keys.into_iter().collect();
    let mut client = TextClient::connect(port);
    let mut found = HashMap::new();
    for chunk in keys.chunks(BATCH) {
        let line: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
        client
            .send(format!("get {}\r\n", line.join(" ")).as_bytes())
            .expect("sending get");
        loop {
            let reply = client.read_line().expect("reading get reply");
            assert!(!reply.is_empty(), "connection closed during get");
            let text = String::from_utf8_lossy(&reply).trim_end().to_string();
            if text == "END" {
                break;
            }
            let parts: Vec<&str> = text.split(' ').collect();
            assert!(
                parts.len() == 4 && parts[0] == "VALUE",
                "bad get line {text:?}"
            );
            let len: usize = parts[3].parse().expect("value length");
            let mut data = client.read_exact(len + 2).expect("reading a value");
            assert_eq!(&data[len..], b"\r\n", "value not followed by CRLF");
            data.truncate(len);
            found.insert(parts[1].to_string(), data);
        }
    }
    found
}

/// How one node's answers differ from the model.
#[derive(Default)]
pub struct Discrepancies {
    /// Stored (acknowledged) keys not served.
    pub missing: Vec<String>,
    /// Stored keys served with another value than the last acknowledged one.
    pub wrong: Vec<String>,
    /// Deleted or flushed (acknowledged) keys served again.
    pub resurrected: Vec<String>,
}

impl Discrepancies {
    pub fn total(&self) -> usize {
        self.missing.len() + self.wrong.len() + self.resurrected.len()
    }
}

/// Reads every key of `model` through node `node` and compares.
pub fn check_node(cluster: &Cluster, node: usize, model: &Model) -> Discrepancies {
    let found = read_back(cluster.port(node), model.keys());
    let mut out = Discrepancies::default();
    for (k, expected) in model {
        match (expected, found.get(k)) {
            (Some(_), None) => out.missing.push(k.clone()),
            (Some(want), Some(got)) if want != got => out.wrong.push(k.clone()),
            (None, Some(_)) => out.resurrected.push(k.clone()),
            _ => {}
        }
    }
    out
}

/// Checks the model through each of `nodes`, printing a line per node; returns a
/// failure description naming, for the first few bad keys, their owners with all nodes
/// alive, or None when every node agrees with the model.
pub fn check_nodes(
    cluster: &Cluster,
    nodes: &[usize],
    model: &Model,
    label: &str,
) -> Option<String> {
    let stored = model.values().filter(|v| v.is_some()).count();
    let gone = model.len() - stored;
    let mut failures = String::new();
    for &node in nodes {
        let d = check_node(cluster, node, model);
        eprintln!(
            "{label}: through node {node}: {} of {stored} stored keys missing, {} wrong; \
             {} of {gone} deleted/flushed keys served again",
            d.missing.len(),
            d.wrong.len(),
            d.resurrected.len()
        );
        if d.total() == 0 {
            continue;
        }
        let describe = |keys: &[String]| -> Vec<String> {
            keys.iter()
                .take(SHOWN)
                .map(|k| format!("{k} (owners {:?})", cluster.owners_of(k.as_bytes())))
                .collect()
        };
        failures.push_str(&format!(
            "node {node}: {} missing {:?}; {} wrong {:?}; {} served again {:?}\n",
            d.missing.len(),
            describe(&d.missing),
            d.wrong.len(),
            describe(&d.wrong),
            d.resurrected.len(),
            describe(&d.resurrected)
        ));
    }
    (!failures.is_empty()).then_some(failures)
}

/// Deletes every key of `model` through `port` (pipelined) and records the outcome:
/// `DELETED` (or `NOT_FOUND`: a wrong answer for a stored key, which the caller reports,
/// but the client was told it is absent) makes the key absent, anything else makes it
/// unknown (dropped from the model). Returns (deleted, not found, unknown) counts.
pub fn delete_all(port: u16, model: &mut Model) -> (usize, usize, usize) {
    let keys: Vec<String> = model.keys().cloned().collect();
    let requests: Vec<Vec<u8>> = keys.iter().map(|k| delete_request(k)).collect();
    let replies = pipeline(port, &requests);
    let (mut deleted, mut not_found, mut unknown) = (0, 0, 0);
    for (k, reply) in keys.iter().zip(replies) {
        match reply.as_deref() {
            Some("DELETED") => {
                deleted += 1;
                model.insert(k.clone(), None);
            }
            Some("NOT_FOUND") => {
                not_found += 1;
                model.insert(k.clone(), None);
            }
            other => {
                if unknown < SHOWN {
                    eprintln!("delete {k}: {other:?} (unknown from now on)");
                }
                unknown += 1;
                model.remove(k);
            }
        }
    }
    (deleted, not_found, unknown)
}

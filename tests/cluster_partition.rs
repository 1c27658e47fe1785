//! Whole-binary network partition: three `shoal` nodes (R=2), each in its own Linux
//! network namespace (see `common::netns`), have the network between node 2 and nodes 0
//! and 1 cut while the test, in the root namespace, still reaches every node. The cut is
//! checked from both sides: TCP connections between the namespaces fail, and each side
//! declares the other down.
//!
//! The side with a majority of the members (nodes 0 and 1) goes on serving; the cut-off
//! node must serve nothing (every request answered `SERVER_ERROR`): a write it
//! acknowledged would be lost at the heal, a value it served could be stale or deleted.
//! After the heal and settling (every node sees every member and nothing is syncing),
//! every node must serve exactly what was acknowledged: deleted keys absent, overwritten
//! keys with their new value, untouched keys with their old one, and every write
//! acknowledged anywhere. Figures are printed (`--nocapture`); the test needs root and
//! `ip` (iproute2), and fails rather than skips without them.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, Instant};

use common::cluster::skip_for_memcached;
use common::netns::{NetLab, LAB_TIMEOUT};
use common::TextClient;

const NODES: usize = 3;
const REPLICAS: usize = 2;
/// Keys written before the cut, and what happens to them during it.
const KEYS: usize = 3000;
const DELETED: Range<usize> = 0..1000;
const OVERWRITTEN: Range<usize> = 1000..2000;
const UNTOUCHED: Range<usize> = 2000..3000;
/// The node cut off, and the majority it is cut off from.
const MINORITY: usize = 2;
const MAJORITY: [usize; 2] = [0, 1];
/// Keys of each kind (deleted, overwritten, untouched) read through the cut-off node,
/// and new keys written through it.
const PROBED: usize = 100;
/// Requests per write when pipelining, and keys per multi-get when reading back.
const BATCH: usize = 100;
/// How long the nodes may take to settle after the cut or the heal.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many bad keys per node a failure message lists.
const SHOWN: usize = 8;

/// The acknowledged state: key -> `Some(value)` (stored) or `None` (deleted).
type Model = BTreeMap<String, Option<Vec<u8>>>;

fn key(n: usize) -> String {
    format!("part-{n}")
}

/// A value derived from `tag` and `n`, distinct per key and per tag.
fn value(tag: &str, n: usize) -> Vec<u8> {
    format!(
        "{tag}-{n}-{}",
        (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_003
    )
    .into_bytes()
}

fn set_request(key: &str, value: &[u8]) -> Vec<u8> {
    let mut req = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    req
}

/// Everything a node answered to one request: read up to the `MN` that answers the
/// `mn` (meta no-op) sent right after it, so any shape of answer (one line, values and
/// `END`, an error in the middle of a multi-get) is read whole.
#[derive(Debug, Default)]
struct Answer {
    /// `VALUE` items served: (key, data).
    values: Vec<(String, Vec<u8>)>,
    /// Every other line (`STORED`, `END`, `SERVER_ERROR ...`), without CRLF.
    lines: Vec<String>,
}

impl Answer {
    /// The single line of a one-line answer (e.g. `STORED`), or a summary of it.
    fn line(&self) -> String {
        if self.values.is_empty() && self.lines.len() == 1 {
            return self.lines[0].clone();
        }
        format!("{} values, lines {:?}", self.values.len(), self.lines)
    }

    /// The first `SERVER_ERROR` line, if any.
    fn server_error(&self) -> Option<&str> {
        self.lines
            .iter()
            .map(String::as_str)
            .find(|l| l.starts_with("SERVER_ERROR"))
    }
}

/// Reads one answer up to `MN`.
fn read_answer(client: &mut TextClient) -> std::io::Result<Answer> {
    let mut answer = Answer::default();
    loop {
        let raw = client.read_line()?;
        if raw.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if line == "MN" {
            return Ok(answer);
        }
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() == 4 && parts[0] == "VALUE" {
            let len: usize = parts[3]
                .parse()
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, line.clone()))?;
            let mut data = client.read_exact(len + 2)?;
            data.truncate(len);
            answer.values.push((parts[1].to_string(), data));
        } else {
            answer.lines.push(line);
        }
    }
}

/// Sends `requests` to node `node`, each followed by `mn`, [`BATCH`] per write, and
/// reads all of a batch's answers before the next. None: no answer (socket error,
/// closed connection or read timeout); after one, nothing more is sent and the rest
/// are None too (a node that stops answering would otherwise cost a timeout a batch).
fn exchange(lab: &NetLab, node: usize, requests: &[Vec<u8>]) -> Vec<Option<Answer>> {
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(requests.len());
    let mut client = lab.client(node);
    'batches: for chunk in requests.chunks(BATCH) {
        let mut bytes = Vec::new();
        for req in chunk {
            bytes.extend_from_slice(req);
            bytes.extend_from_slice(b"mn\r\n");
        }
        if let Err(e) = client.send(&bytes) {
            eprintln!("node {node}: sending a batch failed: {e}");
            break;
        }
        for _ in chunk {
            match read_answer(&mut client) {
                Ok(answer) => answers.push(Some(answer)),
                Err(e) => {
                    eprintln!("node {node}: no answer: {e}");
                    break 'batches;
                }
            }
        }
    }
    answers.resize_with(requests.len(), || None);
    answers
}

/// Sends one write per key (`requests[i]` for `keys[i]`) through `node`; the keys whose
/// answer was not `expected`, with the answer.
fn write_all(
    lab: &NetLab,
    node: usize,
    keys: &[String],
    requests: &[Vec<u8>],
    expected: &str,
) -> Vec<String> {
    let answers = exchange(lab, node, requests);
    keys.iter()
        .zip(&answers)
        .filter(|(_, a)| a.as_ref().map(Answer::line).as_deref() != Some(expected))
        .map(|(k, a)| format!("{k}: {:?}", a.as_ref().map(Answer::line)))
        .collect()
}

/// `get k1 k2 ...` of [`BATCH`] keys at a time through `node`: the values served, and
/// the answers that were errors or missing (one entry per batch).
fn read_back<'a>(
    lab: &NetLab,
    node: usize,
    keys: impl IntoIterator<Item = &'a String>,
) -> (HashMap<String, Vec<u8>>, Vec<String>) {
    let keys: Vec<&String> = keys.into_iter().collect();
    let requests: Vec<Vec<u8>> = keys
        .chunks(BATCH)
        .map(|chunk| {
            let names: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
            format!("get {}\r\n", names.join(" ")).into_bytes()
        })
        .collect();
    let mut found = HashMap::new();
    let mut errors = Vec::new();
    for (n, answer) in exchange(lab, node, &requests).into_iter().enumerate() {
        match answer {
            Some(answer) => {
                if answer.lines.last().map(String::as_str) != Some("END") {
                    errors.push(format!("get batch {n}: {:?}", answer.lines));
                }
                found.extend(answer.values);
            }
            None => errors.push(format!("get batch {n}: no answer")),
        }
    }
    (found, errors)
}

/// How one node's answers differ from the model.
#[derive(Default)]
struct Discrepancies {
    /// Stored (acknowledged) keys not served.
    lost: Vec<String>,
    /// Stored keys served with another value than the last acknowledged one.
    wrong: Vec<String>,
    /// Deleted (acknowledged) keys served again.
    served_again: Vec<String>,
    /// Get batches answered with an error or not at all.
    errors: Vec<String>,
}

impl Discrepancies {
    fn total(&self) -> usize {
        self.lost.len() + self.wrong.len() + self.served_again.len() + self.errors.len()
    }
}

/// Reads every key of `model` through each of `nodes` and compares, printing a line per
/// node; returns a failure description (naming the first few bad keys and their owners
/// with every node alive), empty when every node agrees with the model.
fn check_nodes(lab: &NetLab, nodes: &[usize], model: &Model, label: &str) -> String {
    let stored = model.values().filter(|v| v.is_some()).count();
    let gone = model.len() - stored;
    let mut failures = String::new();
    for &node in nodes {
        let (found, errors) = read_back(lab, node, model.keys());
        let mut d = Discrepancies {
            errors,
            ..Discrepancies::default()
        };
        for (k, expected) in model {
            match (expected, found.get(k)) {
                (Some(_), None) => d.lost.push(k.clone()),
                (Some(want), Some(got)) if want != got => d.wrong.push(k.clone()),
                (None, Some(_)) => d.served_again.push(k.clone()),
                _ => {}
            }
        }
        eprintln!(
            "{label}: through node {node}: {} of {gone} deleted keys served again, {} of \
             {stored} stored keys lost, {} wrong; {} get batches failed",
            d.served_again.len(),
            d.lost.len(),
            d.wrong.len(),
            d.errors.len()
        );
        if d.total() == 0 {
            continue;
        }
        let describe = |keys: &[String]| -> Vec<String> {
            keys.iter()
                .take(SHOWN)
                .map(|k| format!("{k} (owners {:?})", lab.owners_of(k.as_bytes())))
                .collect()
        };
        failures.push_str(&format!(
            "{label}: node {node}: {} served again {:?}; {} lost {:?}; {} wrong {:?}; \
             failed gets {:?}\n",
            d.served_again.len(),
            describe(&d.served_again),
            d.lost.len(),
            describe(&d.lost),
            d.wrong.len(),
            describe(&d.wrong),
            &d.errors[..d.errors.len().min(SHOWN)]
        ));
    }
    failures
}

/// What the cut-off node answered.
#[derive(Debug, Default)]
struct MinorityFigures {
    gets: usize,
    /// Gets answered `SERVER_ERROR` (the intended answer).
    gets_refused: usize,
    /// Deleted keys served.
    served_deleted: usize,
    /// Overwritten keys served with the value from before the overwrite.
    served_stale: usize,
    /// Keys served with their current value (harmless, but not the intended answer).
    served_current: usize,
    /// Keys served with a value never written to them.
    served_wrong: usize,
    /// Gets answered `END` alone (a miss).
    misses: usize,
    sets: usize,
    /// Sets answered `STORED`: would be lost at the heal.
    sets_acknowledged: usize,
    /// Sets answered `SERVER_ERROR` (the intended answer).
    sets_refused: usize,
    /// Requests not answered at all.
    unanswered: usize,
    /// Any other answer.
    other: Vec<String>,
    /// The first error line, for the record.
    first_error: Option<String>,
}

/// Reads deleted, overwritten and untouched keys through the cut-off node and writes
/// new keys through it; the writes it acknowledged go into `model` (they must survive
/// the heal like any other acknowledged write).
fn probe_minority(lab: &NetLab, model: &mut Model) -> MinorityFigures {
    let mut f = MinorityFigures::default();
    let probed: Vec<usize> = [DELETED, OVERWRITTEN, UNTOUCHED]
        .into_iter()
        .flat_map(|range| range.take(PROBED))
        .collect();
    let gets: Vec<Vec<u8>> = probed
        .iter()
        .map(|&n| format!("get {}\r\n", key(n)).into_bytes())
        .collect();
    for (&n, answer) in probed.iter().zip(exchange(lab, MINORITY, &gets)) {
        f.gets += 1;
        let Some(answer) = answer else {
            f.unanswered += 1;
            continue;
        };
        if let Some(error) = answer.server_error() {
            f.first_error.get_or_insert_with(|| error.to_string());
            f.gets_refused += 1;
            continue;
        }
        match answer.values.first() {
            None if answer.lines == ["END"] => f.misses += 1,
            None => f.other.push(format!("get {}: {:?}", key(n), answer.lines)),
            Some((_, got)) => match model.get(&key(n)) {
                Some(None) => f.served_deleted += 1,
                Some(Some(want)) if want == got => f.served_current += 1,
                Some(Some(_)) if OVERWRITTEN.contains(&n) && *got == value("v1", n) => {
                    f.served_stale += 1
                }
                _ => f.served_wrong += 1,
            },
        }
    }

    let new_keys: Vec<String> = (0..PROBED).map(|n| format!("minority-{n}")).collect();
    let sets: Vec<Vec<u8>> = new_keys
        .iter()
        .enumerate()
        .map(|(n, k)| set_request(k, &value("m", n)))
        .collect();
    for ((n, k), answer) in new_keys
        .iter()
        .enumerate()
        .zip(exchange(lab, MINORITY, &sets))
    {
        f.sets += 1;
        let Some(answer) = answer else {
            f.unanswered += 1;
            continue;
        };
        if let Some(error) = answer.server_error() {
            f.first_error.get_or_insert_with(|| error.to_string());
            f.sets_refused += 1;
        } else if answer.line() == "STORED" {
            f.sets_acknowledged += 1;
            model.insert(k.clone(), Some(value("m", n)));
        } else {
            f.other.push(format!("set {k}: {}", answer.line()));
        }
    }
    f
}

/// Waits until `stats cluster` field `cluster_quorum` is 1 on every node of `with` and
/// 0 on every node of `without`; returns whether the binary has the field at all.
fn wait_quorum(lab: &NetLab, with: &[usize], without: &[usize]) -> bool {
    if lab.cluster_stat(0, "cluster_quorum").is_none() {
        eprintln!("this binary has no cluster_quorum in `stats cluster`: not checked");
        return false;
    }
    let took = lab.wait_until(
        &format!("cluster_quorum 1 on nodes {with:?} and 0 on nodes {without:?}"),
        LAB_TIMEOUT,
        || {
            with.iter()
                .all(|&i| lab.cluster_stat(i, "cluster_quorum") == Some(1))
                && without
                    .iter()
                    .all(|&i| lab.cluster_stat(i, "cluster_quorum") == Some(0))
        },
    );
    eprintln!(
        "cluster_quorum 1 on nodes {with:?}, 0 on nodes {without:?} ({took:?} after the \
         wait began)"
    );
    true
}

#[test]
fn a_network_partition_loses_no_acknowledged_write_and_brings_back_no_deleted_key() {
    if skip_for_memcached() {
        return;
    }
    let began = Instant::now();
    let mut lab = NetLab::new(NODES);
    lab.start_cluster(REPLICAS, &[]);

    // 1. Every key stored (v1) through node 0.
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let sets: Vec<Vec<u8>> = (0..KEYS)
        .map(|n| set_request(&keys[n], &value("v1", n)))
        .collect();
    let started = Instant::now();
    let failed = write_all(&lab, 0, &keys, &sets, "STORED");
    assert!(
        failed.is_empty(),
        "{} of {KEYS} sets not STORED before the cut (first: {:?})",
        failed.len(),
        &failed[..failed.len().min(SHOWN)]
    );
    eprintln!(
        "{KEYS} keys stored through node 0 in {:?}",
        started.elapsed()
    );
    let mut model: Model = (0..KEYS).map(|n| (key(n), Some(value("v1", n)))).collect();

    // 2. Node 2 cut off from nodes 0 and 1; both sides notice.
    lab.cut(MINORITY, &MAJORITY);
    let cut_at = Instant::now();
    let noticed = lab.wait_until(
        "nodes 0 and 1 to see 2 alive members and node 2 to see 1",
        LAB_TIMEOUT,
        || MAJORITY.iter().all(|&i| lab.alive_seen_by(i) == 2) && lab.alive_seen_by(MINORITY) == 1,
    );
    eprintln!("the cut noticed on both sides {noticed:?} after it");
    lab.assert_tcp(MINORITY, &MAJORITY, false);
    lab.assert_tcp(MAJORITY[0], &MAJORITY[1..], true);
    let quorum_field = wait_quorum(&lab, &MAJORITY, &[MINORITY]);
    lab.wait_settled(&MAJORITY, SETTLE_TIMEOUT);

    // 3. Deletes and overwrites through the majority.
    let deleted: Vec<String> = DELETED.map(key).collect();
    let deletes: Vec<Vec<u8>> = deleted
        .iter()
        .map(|k| format!("delete {k}\r\n").into_bytes())
        .collect();
    let failed = write_all(&lab, 0, &deleted, &deletes, "DELETED");
    assert!(
        failed.is_empty(),
        "{} of {} deletes through node 0 (majority side) not DELETED (first: {:?})",
        failed.len(),
        deleted.len(),
        &failed[..failed.len().min(SHOWN)]
    );
    for k in deleted {
        model.insert(k, None);
    }
    let overwritten: Vec<String> = OVERWRITTEN.map(key).collect();
    let overwrites: Vec<Vec<u8>> = OVERWRITTEN
        .map(|n| set_request(&key(n), &value("v2", n)))
        .collect();
    let failed = write_all(&lab, 1, &overwritten, &overwrites, "STORED");
    assert!(
        failed.is_empty(),
        "{} of {} overwrites through node 1 (majority side) not STORED (first: {:?})",
        failed.len(),
        overwritten.len(),
        &failed[..failed.len().min(SHOWN)]
    );
    for n in OVERWRITTEN {
        model.insert(key(n), Some(value("v2", n)));
    }
    eprintln!(
        "majority side: {} deletes DELETED through node 0, {} overwrites STORED through \
         node 1, {:?} after the cut",
        DELETED.len(),
        OVERWRITTEN.len(),
        cut_at.elapsed()
    );
    let mut failures = check_nodes(&lab, &MAJORITY, &model, "during the cut");

    // 4. What the cut-off node answers.
    let f = probe_minority(&lab, &mut model);
    eprintln!(
        "cut-off node {MINORITY}: {} gets: {} refused, {} deleted keys served, {} stale \
         values served, {} current values served, {} wrong values served, {} misses; {} \
         sets: {} acknowledged, {} refused; {} unanswered; other answers {:?}; first \
         error {:?}",
        f.gets,
        f.gets_refused,
        f.served_deleted,
        f.served_stale,
        f.served_current,
        f.served_wrong,
        f.misses,
        f.sets,
        f.sets_acknowledged,
        f.sets_refused,
        f.unanswered,
        f.other,
        f.first_error
    );
    if f.sets_acknowledged + f.served_deleted + f.served_stale + f.served_wrong > 0 {
        failures.push_str(&format!(
            "cut-off node {MINORITY} acknowledged {} writes (lost at the heal unless \
             merged) and served {} deleted keys, {} stale values and {} wrong values; it \
             should refuse everything\n",
            f.sets_acknowledged, f.served_deleted, f.served_stale, f.served_wrong
        ));
    }
    if quorum_field {
        let quorum: Vec<Option<u64>> = (0..NODES)
            .map(|i| lab.cluster_stat(i, "cluster_quorum"))
            .collect();
        eprintln!("cluster_quorum after the probes: {quorum:?}");
        if quorum != [Some(1), Some(1), Some(0)] {
            failures.push_str(&format!(
                "cluster_quorum during the cut was {quorum:?}, expected [1, 1, 0]\n"
            ));
        }
    }

    // 5. Heal; everything settles.
    lab.heal(MINORITY, &MAJORITY);
    let healed_at = Instant::now();
    lab.assert_tcp(MINORITY, &MAJORITY, true);
    lab.wait_settled(&[0, 1, 2], SETTLE_TIMEOUT);
    eprintln!(
        "settled {:?} after the heal (the cut lasted {:?})",
        healed_at.elapsed(),
        healed_at.duration_since(cut_at)
    );
    if quorum_field {
        wait_quorum(&lab, &[0, 1, 2], &[]);
    }

    // 6. Every node serves exactly what was acknowledged.
    failures.push_str(&check_nodes(&lab, &[0, 1, 2], &model, "after the heal"));
    eprintln!("partition test took {:?} in all", began.elapsed());
    assert!(failures.is_empty(), "network partition:\n{failures}");
}

//! The lock-step comparison loop of the differential test: generates one seed's
//! commands, sends each to the reference memcached and to the server under test, and
//! panics with the recent history at the first reply that differs after normalisation.
//! Shared by `differential.rs` (a single node) and `cluster_conformance.rs` (a node of a
//! cluster).

use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use super::command::{CasBook, Cmd};
use super::gen;
use super::normalize::{self, describe, equivalent, normalize, CasMap};
use super::reply::{self, exchange, End, RawReply};
use crate::common::TextClient;

const HISTORY: usize = 10;

/// The seeds and commands per seed to run: the defaults, or `SHOAL_DIFF_SEED` (one seed)
/// and `SHOAL_DIFF_COMMANDS` from the environment.
pub fn seeds_and_commands(default_seeds: &[u64], default_commands: usize) -> (Vec<u64>, usize) {
    let seeds = match env_number("SHOAL_DIFF_SEED") {
        Some(seed) => vec![seed],
        None => default_seeds.to_vec(),
    };
    let commands = env_number("SHOAL_DIFF_COMMANDS").map_or(default_commands, |n| n as usize);
    (seeds, commands)
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// One server under comparison: its connection and its CAS translation.
struct Side {
    label: &'static str,
    port: u16,
    client: TextClient,
    cas: CasMap,
}

impl Side {
    fn new(label: &'static str, port: u16) -> Self {
        Side {
            label,
            port,
            client: TextClient::connect(port),
            cas: CasMap::default(),
        }
    }
}

/// Runs `commands` commands of `seed` in lock-step against the reference memcached on
/// `reference_port` and the server under test on `subject_port` (both freshly started,
/// so a seed alone reproduces); panics at the first mismatch, with `subject_output()`
/// (the server's log) in the message.
pub fn compare(
    seed: u64,
    commands: usize,
    reference_port: u16,
    subject_port: u16,
    subject_output: &dyn Fn() -> String,
) {
    let mut reference = Side::new("memcached", reference_port);
    let mut subject = Side::new("shoal", subject_port);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let probe = std::env::var("SHOAL_DIFF_PROBE").is_ok_and(|v| v == "1");
    let mut generator = gen::Generator::new(seed, now);
    let mut book = CasBook::default();
    let mut history: VecDeque<String> = VecDeque::new();
    let mut all: Vec<(Option<Vec<u8>>, String)> = Vec::new();
    let mut coverage: BTreeMap<String, usize> = BTreeMap::new();

    for index in 0..commands {
        let mut cmd = generator.next_cmd(&book);
        if probe {
            if let Some(key) = cmd.key_hint.clone().filter(|k| k.len() <= 250) {
                cmd.raw(format!("mg {} b s v f\r\n", gen::base64(&key)));
            }
        }
        let (expected_raw, expected) = run_one(&mut reference, &cmd);
        let (actual_raw, actual) = run_one(&mut subject, &cmd);
        history.push_back(format!("#{index}: {}", cmd.describe()));
        all.push((
            cmd.key_hint.clone(),
            format!("#{index}: {}", cmd.describe()),
        ));
        if history.len() > HISTORY {
            history.pop_front();
        }
        assert!(
            expected.end != End::TimedOut,
            "harness bug (seed {seed}, command #{index}): memcached did not answer {}",
            cmd.describe()
        );
        if !equivalent(&expected, &actual) {
            let recent: Vec<String> = history.iter().cloned().collect();
            let same_key: Vec<String> = match &cmd.key_hint {
                Some(key) => {
                    let mut hits: Vec<String> = all
                        .iter()
                        .filter(|(k, text)| k.as_ref() == Some(key) || mentions_key(text, key))
                        .rev()
                        .take(HISTORY)
                        .map(|(_, text)| text.clone())
                        .collect();
                    hits.reverse();
                    hits
                }
                None => Vec::new(),
            };
            panic!(
                "differential mismatch: seed {seed}, command #{index} \
                 (reproduce with SHOAL_DIFF_SEED={seed} SHOAL_DIFF_COMMANDS={})\n\
                 last commands:\n  {}\n\
                 last commands on the same key:\n  {}\n\
                 {} (normalised): {}\n\
                 {} (normalised): {}\n\
                 {} (raw): {}\n\
                 {} (raw): {}\n\
                 server output:\n{}",
                index + 1,
                recent.join("\n  "),
                same_key.join("\n  "),
                reference.label,
                describe(&expected),
                subject.label,
                describe(&actual),
                reference.label,
                expected_raw.describe(),
                subject.label,
                actual_raw.describe(),
                subject_output()
            );
        }
        *coverage.entry(first_word(&expected_raw)).or_default() += 1;
        for (key, canon) in &expected.cas_seen {
            book.last.insert(key.clone(), *canon);
        }
        book.count = reference.cas.len();
        for side in [&mut reference, &mut subject] {
            if expected.end == End::Closed {
                side.client = TextClient::connect(side.port);
            }
        }
    }
    eprintln!("differential: seed {seed}: first reply words: {coverage:?}");
}

/// The first word of a reply (what kind of answer it was), for the coverage summary.
fn first_word(raw: &RawReply) -> String {
    match raw.chunks.first() {
        Some(reply::Chunk::Line(line)) | Some(reply::Chunk::Data(line)) => {
            let word = line.split(|&b| b == b' ').next().unwrap_or_default();
            let word = String::from_utf8_lossy(word).trim_end().to_string();
            if word.chars().all(|c| c.is_ascii_digit()) && !word.is_empty() {
                "<number>".into()
            } else {
                word
            }
        }
        None => format!("<silent, {:?}>", raw.end),
    }
}

/// Whether a described command mentions `key` as a whole word (e.g. in a multi-get).
fn mentions_key(text: &str, key: &[u8]) -> bool {
    let key = String::from_utf8_lossy(key);
    text.split([' ', '\\']).any(|word| word == key)
}

/// Sends `cmd` (with this side's CAS values) and returns the normalised reply.
fn run_one(side: &mut Side, cmd: &Cmd) -> (RawReply, normalize::Normalized) {
    let bytes = cmd.render(|canon| side.cas.real(canon));
    let raw = exchange(&mut side.client, &bytes);
    let normalized = normalize(&raw, &mut side.cas, cmd.key_hint.as_deref());
    (raw, normalized)
}

//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, seeds and every input
//! that once crashed a target) through the same checks the libFuzzer targets run, so the
//! stable test command covers them without nightly or cargo-fuzz.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>/`; returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", file.display());
    }
    files.len()
}

#[test]
fn text_parse_corpus() {
    assert!(replay("text_parse", harness::text_parse) > 10);
}

#[test]
fn meta_parse_corpus() {
    assert!(replay("meta_parse", harness::meta_parse) > 10);
}

#[test]
fn binary_parse_corpus() {
    assert!(replay("binary_parse", harness::binary_parse) > 10);
}

#[test]
fn connection_corpus() {
    assert!(replay("connection", harness::connection) > 10);
}

//! What Shoal's fuzz targets check, one function per target, shared by the libFuzzer
//! binaries (`fuzz_targets/`, nightly) and the stable replay of the committed corpus
//! (`tests/fuzz_corpus.rs` in the main workspace includes this file).
//!
//! - [`text_parse`], [`meta_parse`], [`binary_parse`]: the parsers alone, fed the input
//!   in chunks. A parse that answers `Incomplete` consumes nothing, every other answer
//!   consumes bytes (or closes), and the parser never waits with more buffered than a
//!   session's input bound.
//! - [`connection`]: the real per-connection state machine ([`Session`]) over a real
//!   dispatcher and a small real store, fed arbitrary chunks: no panic, no endless loop,
//!   the input and output buffers stay within their bounds, and a session that needs
//!   input leaves it alone when asked again.

use std::sync::Arc;

use bytes::BytesMut;
use shoal_proto::{Limits, Parse, Protocol};
use shoal_server::session::{Progress, Session, OUTPUT_FLUSH};
use shoal_server::{Dispatcher, LocalBackend, ServerConfig};
use shoal_store::{Store, StoreConfig};

/// Small limits, so that inputs a fuzzer can make reach them.
pub fn limits() -> Limits {
    Limits {
        item_size_max: 4096,
        max_line: 3000,
        max_get_keys: 64,
    }
}

/// The read sizes a selector byte picks: single bytes, sizes around the line limits, and
/// everything at once.
pub fn chunk_size(selector: u8) -> usize {
    const SIZES: [usize; 16] = [
        1,
        2,
        3,
        5,
        8,
        13,
        64,
        100,
        256,
        512,
        1000,
        1500,
        2049,
        3001,
        4097,
        usize::MAX,
    ];
    SIZES[usize::from(selector % 16)]
}

/// Parses `data` fed in chunks (sizes picked by its first byte) with `protocol`.
fn parse_chunked(protocol: Protocol, data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let limits = limits();
    let bound = Session::new(limits).input_bound();
    let chunk = chunk_size(selector);
    let mut buf = BytesMut::new();
    let mut swallow: u64 = 0;
    let mut fed = 0usize;
    while fed < data.len() {
        let end = fed.saturating_add(chunk).min(data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            if swallow > 0 {
                let skip = swallow.min(buf.len() as u64) as usize;
                let _ = buf.split_to(skip);
                swallow -= skip as u64;
            }
            if buf.is_empty() {
                break;
            }
            // The parser only ever splits bytes off the front: an unchanged start and
            // length mean nothing was consumed.
            let before = (buf.as_ptr(), buf.len());
            match shoal_proto::parse(protocol, &mut buf, &limits) {
                Parse::Incomplete => {
                    assert_eq!(
                        (buf.as_ptr(), buf.len()),
                        before,
                        "Incomplete consumed input"
                    );
                    assert!(
                        buf.len() <= bound,
                        "waiting with {} bytes buffered, bound {bound}",
                        buf.len()
                    );
                    break;
                }
                Parse::Request(request) => {
                    assert!(buf.len() < before.1, "a request consumed nothing");
                    let mut out = BytesMut::new();
                    let outcome = shoal_proto_outcome_for(&request);
                    shoal_proto::encode(&request.reply, &outcome, &mut out);
                }
                Parse::Invalid {
                    swallow: rest,
                    close,
                    ..
                } => {
                    if close {
                        return;
                    }
                    assert!(buf.len() < before.1, "an error consumed nothing");
                    swallow = rest;
                }
            }
        }
    }
}

/// An outcome to encode for `request`, to run the encoders over parsed replies.
fn shoal_proto_outcome_for(request: &shoal_proto::Request) -> shoal_server::Outcome {
    shoal_server::Outcome::Values(vec![None; request_key_count(request)])
}

/// How many keys a request names (a get's keys, else one).
fn request_key_count(request: &shoal_proto::Request) -> usize {
    match &request.command {
        shoal_server::Command::Get(get) => get.keys.len(),
        _ => 1,
    }
}

/// Fuzz target `text_parse`: the text protocol parser on arbitrary bytes.
pub fn text_parse(data: &[u8]) {
    parse_chunked(Protocol::Text, data);
}

/// The meta commands a `meta_parse` input line starts with, picked by its first byte.
pub const META_COMMANDS: [&[u8]; 8] = [b"mg ", b"ms ", b"md ", b"ma ", b"mn", b"me ", b"mg", b"ms"];

/// Turns arbitrary bytes into meta-command-shaped lines: the first byte of every line
/// picks a meta command that replaces it.
pub fn meta_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some((&first, rest)) = line.split_first() {
            out.extend_from_slice(META_COMMANDS[usize::from(first) % META_COMMANDS.len()]);
            out.extend_from_slice(rest);
        }
    }
    out
}

/// Fuzz target `meta_parse`: the text parser on meta-command-shaped lines.
pub fn meta_parse(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut input = vec![selector];
    input.extend_from_slice(&meta_lines(rest));
    parse_chunked(Protocol::Text, &input);
}

/// Fuzz target `binary_parse`: the binary parser on arbitrary bytes that start with the
/// request magic.
pub fn binary_parse(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let mut input = data.to_vec();
    input[1] = shoal_proto::binary::REQUEST_MAGIC;
    parse_chunked(Protocol::Binary, &input);
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// A dispatcher over a small real store, with the fuzzing limits.
pub fn small_dispatcher() -> Arc<Dispatcher<LocalBackend>> {
    let limits = limits();
    let store_config = StoreConfig {
        max_bytes: 256 * 1024,
        item_size_max: limits.item_size_max,
        ..StoreConfig::default()
    };
    let config = ServerConfig {
        limits,
        store: store_config,
        ..ServerConfig::default()
    };
    Dispatcher::new(
        LocalBackend::new(Arc::new(Store::new(store_config))),
        config,
    )
}

/// Fuzz target `connection`: a whole connection's state machine over a real store, fed
/// `data` in chunks whose sizes its first byte picks.
pub fn connection(data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let dispatcher = small_dispatcher();
    RUNTIME.with(|runtime| {
        runtime.block_on(drive(&dispatcher, selector, data));
    });
}

/// Feeds `data` to a fresh session, checking its invariants.
async fn drive(dispatcher: &Dispatcher<LocalBackend>, selector: u8, data: &[u8]) {
    let limits = limits();
    let mut session = Session::new(limits);
    let bound = session.input_bound();
    let output_bound = OUTPUT_FLUSH + limits.item_size_max + 8192;
    let chunk = chunk_size(selector);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut steps = 0usize;
    let step_limit = 4 * data.len() + 16;
    let mut fed = 0usize;
    loop {
        let end = fed.saturating_add(chunk).min(data.len());
        input.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            steps += 1;
            assert!(steps <= step_limit, "more steps than the input can explain");
            let progress = session.process(&mut input, &mut output, dispatcher).await;
            assert!(
                output.len() <= output_bound,
                "output grew to {} bytes",
                output.len()
            );
            match progress {
                Progress::Continue => {
                    if output.len() >= OUTPUT_FLUSH {
                        output.clear();
                    }
                }
                Progress::Close => return,
                Progress::NeedInput => {
                    assert!(
                        input.len() <= bound,
                        "waiting with {} bytes buffered, bound {bound}",
                        input.len()
                    );
                    assert!(!session.has_pending(), "needs input with work pending");
                    let before = input.clone();
                    let again = session.process(&mut input, &mut output, dispatcher).await;
                    assert_eq!(again, Progress::NeedInput, "input-less step did something");
                    assert_eq!(input, before, "a waiting session consumed input");
                    break;
                }
            }
        }
        output.clear();
        if fed == data.len() {
            return;
        }
    }
}

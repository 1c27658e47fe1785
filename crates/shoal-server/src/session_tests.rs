//! Tests of [`Session`]: multi-gets answered in pieces with bounded buffers, the line
//! rules, and the input bound.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use shoal_proto::Limits;
use shoal_store::{Store, StoreConfig};

use super::*;
use crate::{LocalBackend, ServerConfig};

fn dispatcher(limits: Limits) -> Arc<Dispatcher<LocalBackend>> {
    let store = StoreConfig {
        item_size_max: limits.item_size_max,
        ..StoreConfig::default()
    };
    let config = ServerConfig {
        limits,
        store,
        ..ServerConfig::default()
    };
    Dispatcher::new(LocalBackend::new(Arc::new(Store::new(store))), config)
}

/// Feeds `input` in `chunk`-byte reads; returns everything answered, whether the session
/// closed, and the largest the input and output buffers grew.
async fn run(
    dispatcher: &Dispatcher<LocalBackend>,
    input_bytes: &[u8],
    chunk: usize,
) -> (Vec<u8>, bool, usize, usize) {
    let mut session = Session::new(dispatcher.config().limits);
    let (mut input, mut output) = (BytesMut::new(), BytesMut::new());
    let (mut answered, mut max_in, mut max_out) = (Vec::new(), 0, 0);
    for piece in input_bytes.chunks(chunk) {
        input.extend_from_slice(piece);
        max_in = max_in.max(input.len());
        loop {
            let progress = session.process(&mut input, &mut output, dispatcher).await;
            max_out = max_out.max(output.len());
            if output.len() >= OUTPUT_FLUSH || progress != Progress::Continue {
                answered.extend_from_slice(&output);
                output.clear();
            }
            match progress {
                Progress::Continue => {}
                Progress::NeedInput => break,
                Progress::Close => return (answered, true, max_in, max_out),
            }
        }
    }
    (answered, false, max_in, max_out)
}

#[tokio::test]
async fn a_multiget_longer_than_the_line_limit_is_answered_in_pieces() {
    let limits = Limits {
        max_line: 4096,
        ..Limits::default()
    };
    let d = dispatcher(limits);
    let mut req = b"set key:17 0 0 2\r\nhi\r\nset key:19999 3 0 1\r\nx\r\nget".to_vec();
    for i in 0..20_000 {
        req.extend_from_slice(format!(" key:{i}").as_bytes());
    }
    req.extend_from_slice(b"\r\nversion\r\n");
    let (out, closed, max_in, _) = run(&d, &req, 1000).await;
    assert!(!closed);
    assert!(max_in < 4096 + 1000 + 16, "input grew to {max_in}");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        format!(
            "STORED\r\nSTORED\r\nVALUE key:17 0 2\r\nhi\r\nVALUE key:19999 3 1\r\nx\r\nEND\r\nVERSION {}\r\n",
            crate::VERSION
        )
    );
    let counters = &d.stats().commands;
    assert_eq!(counters.cmd_get.load(Relaxed), 20_000);
    assert_eq!(counters.get_hits.load(Relaxed), 2);
}

#[tokio::test]
async fn a_multiget_of_one_big_value_many_times_flushes_between_keys() {
    let d = dispatcher(Limits::default());
    let value = vec![b'v'; 500 * 1000];
    let mut req = b"set big 0 0 500000\r\n".to_vec();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\nget");
    req.extend_from_slice(&b" big".repeat(100));
    req.extend_from_slice(b"\r\n");
    let (out, closed, _, max_out) = run(&d, &req, 64 * 1024).await;
    assert!(!closed);
    assert!(max_out < OUTPUT_FLUSH + 501_000, "output grew to {max_out}");
    assert_eq!(
        out.len(),
        8 + 100 * (500_000 + 2 + b"VALUE big 0 500000\r\n".len()) + 5
    );
    assert!(out.ends_with(b"\r\nEND\r\n"));
}

#[tokio::test]
async fn a_key_longer_than_the_line_limit_refuses_the_line_only() {
    let limits = Limits {
        max_line: 4096,
        ..Limits::default()
    };
    let d = dispatcher(limits);
    let mut req = b"get a ".to_vec();
    req.extend_from_slice(&vec![b'k'; 10_000]);
    req.extend_from_slice(b" b\r\nversion\r\n");
    let (out, closed, _, _) = run(&d, &req, 512).await;
    assert!(!closed);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "CLIENT_ERROR bad command line format\r\nVERSION {}\r\n",
            crate::VERSION
        )
    );
}

#[tokio::test]
async fn a_long_non_get_line_closes_and_a_nul_ends_a_long_get() {
    let d = dispatcher(Limits {
        max_line: 4096,
        ..Limits::default()
    });
    let (out, closed, _, _) = run(&d, &vec![b'x'; 3000], 3000).await;
    assert!(closed && out.is_empty());
    let mut req = b"set b 0 0 1\r\nB\r\ngets".to_vec();
    req.extend_from_slice(&b" a".repeat(3000));
    req.extend_from_slice(b" b\0 b b b\r\nversion\r\n");
    let (out, closed, _, _) = run(&d, &req, 700).await;
    assert!(!closed);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("STORED\r\nVALUE b 0 1 "), "{text}");
    assert!(
        text.ends_with("\r\nB\r\nEND\r\nVERSION 1.6.18-shoal-0.1.0\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn waiting_input_stays_within_the_bound() {
    let limits = Limits {
        max_line: 4096,
        item_size_max: 8192,
        ..Limits::default()
    };
    let d = dispatcher(limits);
    let session = Session::new(limits);
    // A storage command waiting for the largest value it may carry.
    let mut req = b"set k 0 0 8000\r\n".to_vec();
    req.extend_from_slice(&[b'v'; 7999]);
    let (out, closed, max_in, _) = run(&d, &req, 100).await;
    assert!(!closed && out.is_empty());
    assert!(max_in <= session.input_bound());
    // A value over the limit is refused and swallowed, never buffered.
    let mut req = b"set k 0 0 2000000000\r\n".to_vec();
    req.extend_from_slice(&[b'v'; 100_000]);
    let (out, closed, max_in, _) = run(&d, &req, 100).await;
    assert!(!closed);
    assert!(max_in <= 200, "input grew to {max_in}");
    assert_eq!(out, b"SERVER_ERROR object too large for cache\r\n");
    // A length past 32 bits is refused; its data is then a line too long: closed.
    let mut req = b"set k 0 0 4294967296\r\n".to_vec();
    req.extend_from_slice(&[b'v'; 100_000]);
    let (out, closed, max_in, _) = run(&d, &req, 100).await;
    assert!(closed);
    assert!(max_in <= 2200, "input grew to {max_in}");
    assert!(out.starts_with(b"CLIENT_ERROR "), "{out:?}");
}

#[tokio::test]
async fn a_multiget_of_200000_keys_read_in_big_chunks_is_answered() {
    let d = dispatcher(Limits::default());
    let mut req = b"set many:0 0 0 1\r\nx\r\nset many:199999 0 0 1\r\ny\r\nget".to_vec();
    for i in 0..200_000 {
        req.extend_from_slice(format!(" many:{i}").as_bytes());
    }
    req.extend_from_slice(b"\r\nmn\r\n");
    for chunk in [2_000_000, 65_533, 65_536, 70_000] {
        let (out, closed, _, _) = run(&d, &req, chunk).await;
        assert!(!closed);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "STORED\r\nSTORED\r\nVALUE many:0 0 1\r\nx\r\nVALUE many:199999 0 1\r\ny\r\nEND\r\nMN\r\n",
            "read in chunks of {chunk}"
        );
    }
}

#[tokio::test]
async fn a_get_line_with_a_too_long_key_answers_only_the_error() {
    let dispatcher = dispatcher(Limits::default());
    let long_key = "k".repeat(251);
    let input = format!("set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\nget a b {long_key} a\r\n");
    let (answered, closed, _, _) = run(&dispatcher, input.as_bytes(), 1 << 20).await;
    assert!(!closed);
    assert_eq!(
        String::from_utf8(answered).unwrap(),
        "STORED\r\nSTORED\r\nCLIENT_ERROR bad command line format\r\n"
    );
}

#[tokio::test]
async fn max_get_keys_refuses_longer_get_lines_short_or_in_pieces() {
    let limits = Limits {
        max_line: 4096,
        max_get_keys: 3,
        ..Limits::default()
    };
    let d = dispatcher(limits);
    let (out, closed, _, _) = run(
        &d,
        b"set a 0 0 1\r\nx\r\nget a a a\r\nget a a a a\r\n",
        1 << 20,
    )
    .await;
    assert!(!closed);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "STORED\r\nVALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n\
         CLIENT_ERROR too many keys in one get\r\n"
    );
    // A line longer than max_line, answered in pieces, is cut off once over the limit and
    // the connection goes on with the next line.
    let mut long = b"get".to_vec();
    for i in 0..2000 {
        long.extend_from_slice(format!(" key{i}").as_bytes());
    }
    long.extend_from_slice(b"\r\nversion\r\n");
    let (out, closed, _, _) = run(&d, &long, 1000).await;
    assert!(!closed);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("CLIENT_ERROR too many keys in one get\r\nVERSION "),
        "{text}"
    );
}

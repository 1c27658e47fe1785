//! Tests of the RPC transport over loopback TCP.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;

/// Generous bound for anything that should happen "promptly".
const WAIT: Duration = Duration::from_secs(10);

async fn start<Req, Resp, H>(handler: H, config: RpcConfig) -> (ServerHandle, SocketAddr)
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (serve(listener, Arc::new(handler), config), addr)
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("timed out waiting")
}

/// A handler that reports every request on a channel, answers `"hang"` never and anything
/// else with the request upper-cased.
fn hang_or_upper(seen: mpsc::UnboundedSender<String>) -> impl Handler<String, String> {
    handler_fn(move |_from, req: String| {
        let _ = seen.send(req.clone());
        async move {
            if req == "hang" {
                std::future::pending::<()>().await;
            }
            req.to_uppercase()
        }
    })
}

#[tokio::test]
async fn round_trip() {
    let (_server, addr) = start(
        handler_fn(|from: SocketAddr, req: String| async move {
            assert!(from.ip().is_loopback());
            format!("{req}!")
        }),
        RpcConfig::default(),
    )
    .await;
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    assert_eq!(client.addr(), addr);
    let resp = within(client.send("hello".to_owned())).await.unwrap();
    assert_eq!(resp, "hello!");
    let resp = within(client.send("again".to_owned())).await.unwrap();
    assert_eq!(resp, "again!");
    assert_eq!(client.pending(), 0);
}

#[tokio::test]
async fn pipelined_calls_answered_out_of_order() {
    let completed = Arc::new(Mutex::new(Vec::new()));
    let done = completed.clone();
    let (_server, addr) = start(
        handler_fn(move |_, n: u64| {
            let done = done.clone();
            async move {
                // Within each run of 50 requests, later ones finish first.
                tokio::time::sleep(Duration::from_millis((1000 - n) % 50)).await;
                done.lock().unwrap().push(n);
                n * 3 + 1
            }
        }),
        RpcConfig::default(),
    )
    .await;
    let client = RpcClient::<u64, u64>::new(addr, RpcConfig::default());
    let calls: Vec<_> = (0..1000u64).map(|n| (n, client.send(n))).collect();
    assert_eq!(client.pending(), 1000);
    for (n, call) in calls {
        assert_eq!(within(call).await.unwrap(), n * 3 + 1);
    }
    let completed = completed.lock().unwrap().clone();
    assert_eq!(completed.len(), 1000);
    assert!(
        completed.windows(2).any(|w| w[0] > w[1]),
        "responses were not produced out of order"
    );
    assert_eq!(client.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handler_sees_requests_in_send_order_across_senders() {
    let arrived = Arc::new(Mutex::new(Vec::new()));
    let log = arrived.clone();
    let (_server, addr) = start(
        handler_fn(move |_, req: (u32, u32)| {
            log.lock().unwrap().push(req);
            async move {
                // Answer out of order, so responses do not pace the senders.
                tokio::time::sleep(Duration::from_micros(u64::from(req.1 % 7) * 100)).await;
                req.0 + req.1
            }
        }),
        RpcConfig::default(),
    )
    .await;
    let client = Arc::new(RpcClient::<(u32, u32), u32>::new(
        addr,
        RpcConfig::default(),
    ));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for sender in 0..4u32 {
        let client = client.clone();
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            for seq in 0..250u32 {
                let call = {
                    let mut sent = sent.lock().unwrap();
                    sent.push((sender, seq));
                    client.send((sender, seq))
                };
                calls.push((sender + seq, call));
                if seq % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            for (expected, call) in calls {
                assert_eq!(within(call).await.unwrap(), expected);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    let arrived = arrived.lock().unwrap().clone();
    assert_eq!(sent.len(), 1000);
    assert_eq!(arrived, sent);
}

#[tokio::test]
async fn server_drop_fails_calls_in_flight_and_client_reconnects() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (server, addr) = start(hang_or_upper(seen_tx), RpcConfig::default()).await;
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    let calls: Vec<_> = (0..3).map(|_| client.send("hang".to_owned())).collect();
    for _ in 0..3 {
        assert_eq!(within(seen.recv()).await.unwrap(), "hang");
    }
    assert_eq!(client.pending(), 3);

    drop(server);
    for call in calls {
        assert!(matches!(within(call).await, Err(RpcError::Closed)));
    }
    assert_eq!(client.pending(), 0);

    // A server restarted on the same port is reached by the next send.
    let deadline = Instant::now() + WAIT;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot rebind {addr}: {e}"),
        }
    };
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    let _server = serve(
        listener,
        Arc::new(hang_or_upper(seen_tx)),
        RpcConfig::default(),
    );
    let resp = within(client.send("back".to_owned())).await.unwrap();
    assert_eq!(resp, "BACK");
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    let first = client.send("a".to_owned());
    let second = client.send("b".to_owned());
    let started = Instant::now();
    assert!(matches!(within(first).await, Err(RpcError::Connect(_))));
    assert!(matches!(within(second).await, Err(RpcError::Connect(_))));
    assert!(started.elapsed() < RpcConfig::default().connect_timeout);
    assert_eq!(client.pending(), 0);
    // Each send after a failure tries again (and fails again here).
    assert!(matches!(
        within(client.send("c".to_owned())).await,
        Err(RpcError::Connect(_))
    ));
}

#[tokio::test]
async fn invalid_incoming_frames_close_only_that_connection() {
    let config = RpcConfig {
        max_frame: 1024,
        ..RpcConfig::default()
    };
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(hang_or_upper(seen_tx), config.clone()).await;
    let client = RpcClient::<String, String>::new(addr, config);
    assert_eq!(within(client.send("a".to_owned())).await.unwrap(), "A");

    let too_long = [&1025u32.to_be_bytes()[..], &7u64.to_be_bytes()[..]].concat();
    let too_short = 3u32.to_be_bytes().to_vec();
    // A valid frame whose payload is not a postcard `String` (length 200, no bytes).
    let undecodable = [
        &9u32.to_be_bytes()[..],
        &7u64.to_be_bytes()[..],
        &[200u8][..],
    ]
    .concat();
    for bad in [too_long, too_short, undecodable] {
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&bad).await.unwrap();
        let mut buf = [0u8; 16];
        // Closed: end of stream, or a reset if our bytes were still unread.
        match within(raw.read(&mut buf)).await {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("server answered an invalid frame with {n} bytes"),
        }
    }

    // The established connection and new ones still work.
    assert_eq!(within(client.send("b".to_owned())).await.unwrap(), "B");
    let other = RpcClient::<String, String>::new(addr, RpcConfig::default());
    assert_eq!(within(other.send("c".to_owned())).await.unwrap(), "C");
}

#[tokio::test]
async fn oversized_response_closes_the_client_connection() {
    let (_server, addr) = start(
        handler_fn(|_, size: usize| async move { vec![7u8; size] }),
        RpcConfig::default(),
    )
    .await;
    let client = RpcClient::<usize, Vec<u8>>::new(
        addr,
        RpcConfig {
            max_frame: 1024,
            ..RpcConfig::default()
        },
    );
    assert_eq!(within(client.send(10)).await.unwrap(), vec![7u8; 10]);
    assert!(matches!(
        within(client.send(2000)).await,
        Err(RpcError::Closed)
    ));
    // The next call reconnects.
    assert_eq!(within(client.send(20)).await.unwrap(), vec![7u8; 20]);
}

#[tokio::test]
async fn response_over_the_server_limit_closes_the_connection() {
    let (_server, addr) = start(
        handler_fn(|_, size: usize| async move { vec![7u8; size] }),
        RpcConfig {
            max_frame: 1024,
            ..RpcConfig::default()
        },
    )
    .await;
    let client = RpcClient::<usize, Vec<u8>>::new(addr, RpcConfig::default());
    assert!(matches!(
        within(client.send(2000)).await,
        Err(RpcError::Closed)
    ));
    assert_eq!(within(client.send(20)).await.unwrap(), vec![7u8; 20]);
}

#[tokio::test]
async fn oversized_request_fails_with_too_large_and_sends_nothing() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(hang_or_upper(seen_tx), RpcConfig::default()).await;
    let client = RpcClient::<String, String>::new(
        addr,
        RpcConfig {
            max_frame: 100,
            ..RpcConfig::default()
        },
    );
    match within(client.send("x".repeat(200))).await {
        Err(RpcError::TooLarge(len)) => assert!(len > 200, "reported {len} bytes"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(client.pending(), 0);
    assert_eq!(within(client.send("ok".to_owned())).await.unwrap(), "OK");
    // The server saw only the small request.
    assert_eq!(seen.try_recv().unwrap(), "ok");
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn dropped_response_future_leaves_no_pending_entry() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(hang_or_upper(seen_tx), RpcConfig::default()).await;
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    let call = client.send("hang".to_owned());
    assert_eq!(client.pending(), 1);
    assert_eq!(within(seen.recv()).await.unwrap(), "hang");
    // The caller's own timeout gives up and drops the future.
    assert!(tokio::time::timeout(Duration::from_millis(50), call)
        .await
        .is_err());
    assert_eq!(client.pending(), 0);
    // The connection is still usable.
    assert_eq!(within(client.send("x".to_owned())).await.unwrap(), "X");
    assert_eq!(client.pending(), 0);
}

#[tokio::test]
async fn reset_fails_calls_in_flight_and_reconnects() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(hang_or_upper(seen_tx), RpcConfig::default()).await;
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    let calls: Vec<_> = (0..2).map(|_| client.send("hang".to_owned())).collect();
    for _ in 0..2 {
        within(seen.recv()).await.unwrap();
    }
    client.reset();
    assert_eq!(client.pending(), 0);
    for call in calls {
        assert!(matches!(within(call).await, Err(RpcError::Closed)));
    }
    assert_eq!(within(client.send("y".to_owned())).await.unwrap(), "Y");
}

#[tokio::test]
async fn dropping_the_client_fails_its_calls() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(hang_or_upper(seen_tx), RpcConfig::default()).await;
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    let call = client.send("hang".to_owned());
    within(seen.recv()).await.unwrap();
    drop(client);
    assert!(matches!(within(call).await, Err(RpcError::Closed)));
}

#[tokio::test]
async fn peers_share_one_client_per_address() {
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(hang_or_upper(seen_tx), RpcConfig::default()).await;
    let peers = Peers::<String, String>::new(RpcConfig::default());
    let a = peers.get(addr);
    let b = peers.get(addr);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(within(a.send("p".to_owned())).await.unwrap(), "P");
    peers.remove(addr);
    let c = peers.get(addr);
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(within(c.send("q".to_owned())).await.unwrap(), "Q");
}

#[tokio::test]
async fn frames_of_all_sizes_round_trip_pipelined() {
    let (_server, addr) = start(
        handler_fn(
            |_, data: Vec<u8>| async move { data.iter().rev().copied().collect::<Vec<u8>>() },
        ),
        RpcConfig::default(),
    )
    .await;
    let client = RpcClient::<Vec<u8>, Vec<u8>>::new(addr, RpcConfig::default());
    // Sizes around and far beyond the writer's batch size, interleaved with tiny ones.
    let sizes = [
        0,
        1,
        100,
        65_000,
        3,
        65_536,
        70_000,
        5,
        1 << 20,
        7,
        200_000,
        0,
    ];
    let calls: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let data: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            (data.clone(), client.send(data))
        })
        .collect();
    for (data, call) in calls {
        let mut expected = data;
        expected.reverse();
        assert_eq!(within(call).await.unwrap(), expected);
    }
}

#[tokio::test]
async fn in_flight_limit_stops_reading_until_a_handler_finishes() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (release_tx, release) = tokio::sync::watch::channel(0u32);
    let (_server, addr) = start(
        handler_fn(move |_, n: u32| {
            let _ = seen_tx.send(n);
            let mut release = release.clone();
            async move {
                // Finishes once `release` reaches n.
                release.wait_for(|&r| r >= n).await.unwrap();
                n
            }
        }),
        RpcConfig {
            max_in_flight: 2,
            ..RpcConfig::default()
        },
    )
    .await;
    let client = RpcClient::<u32, u32>::new(addr, RpcConfig::default());
    let calls: Vec<_> = (1..=4u32).map(|n| client.send(n)).collect();
    assert_eq!(within(seen.recv()).await, Some(1));
    assert_eq!(within(seen.recv()).await, Some(2));
    // Two handlers are running: the third request is not read yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), seen.recv())
            .await
            .is_err()
    );
    release_tx.send(1).unwrap();
    assert_eq!(within(seen.recv()).await, Some(3));
    release_tx.send(4).unwrap();
    assert_eq!(within(seen.recv()).await, Some(4));
    for (n, call) in (1..=4u32).zip(calls) {
        assert_eq!(within(call).await.unwrap(), n);
    }
}

#[tokio::test]
async fn responses_the_peer_does_not_read_hold_their_slots() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_server, addr) = start(
        handler_fn(move |_, n: u32| {
            let _ = seen_tx.send(n);
            // A string: encoded with one copy, so the test is quick even unoptimized.
            async move {
                char::from(b'a' + (n % 26) as u8)
                    .to_string()
                    .repeat(1 << 20)
            }
        }),
        RpcConfig {
            max_in_flight: 4,
            ..RpcConfig::default()
        },
    )
    .await;
    // A raw peer sends 64 requests for 1 MiB each and reads nothing for now.
    const CALLS: u32 = 64;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut requests = Vec::new();
    for n in 0..CALLS {
        super::frame::encode_into(&mut requests, &n, u64::from(n), usize::MAX).unwrap();
    }
    stream.write_all(&requests).await.unwrap();
    // The server answers until the socket is full and the unwritten responses hold every
    // slot; then it stops reading requests.
    let mut handled = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), seen.recv()).await {
        handled += 1;
    }
    assert!(
        handled < CALLS,
        "{handled} requests handled with no response read"
    );
    // Reading the responses frees the slots: every request gets its answer, in order.
    for n in 0..CALLS {
        let len = within(stream.read_u32()).await.unwrap() as usize;
        let mut frame = vec![0; len];
        within(stream.read_exact(&mut frame)).await.unwrap();
        assert_eq!(
            u64::from_be_bytes(frame[..8].try_into().unwrap()),
            u64::from(n)
        );
        let payload: String = postcard::from_bytes(&frame[8..]).unwrap();
        let expected = char::from(b'a' + (n % 26) as u8)
            .to_string()
            .repeat(1 << 20);
        assert!(payload == expected, "response {n} is not its request's");
    }
}

#[tokio::test]
async fn peer_that_never_answers_does_not_hold_the_caller() {
    // Accepts connections (through the kernel backlog) but never reads, like a peer frozen
    // with SIGSTOP.
    let frozen = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = frozen.local_addr().unwrap();
    let client = RpcClient::<String, String>::new(addr, RpcConfig::default());
    let call = client.send("anyone?".to_owned());
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    assert_eq!(client.pending(), 0);
    let call = client.send("still there?".to_owned());
    client.reset();
    assert!(matches!(within(call).await, Err(RpcError::Closed)));
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_static<T: Send + 'static>() {}
    fn send_sync<T: Send + Sync + 'static>() {}
    send_static::<ResponseFuture<String>>();
    send_sync::<RpcClient<String, String>>();
    send_sync::<Peers<String, String>>();
    send_sync::<ServerHandle>();
    send_sync::<RpcError>();
}

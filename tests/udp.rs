//! UDP: off by default (memcached since 1.5.6); with `-U PORT`, memcached's 8-byte frame
//! header, replies cut into numbered datagrams, and no answer at all to a malformed
//! datagram.

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{free_port, shoal_binary, target_is_memcached};
use common::TextClient;

/// A Shoal started with exactly `args` plus `-p PORT -l 127.0.0.1`, killed on drop.
struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let port = free_port();
        let child = Command::new(shoal_binary())
            .args(["-p", &port.to_string(), "-l", "127.0.0.1"])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning shoal");
        let node = Node { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "shoal did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    socket
}

fn frame(request_id: u16, sequence: u16, total: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    for field in [request_id, sequence, total, 0] {
        d.extend_from_slice(&field.to_be_bytes());
    }
    d.extend_from_slice(payload);
    d
}

/// Sends `datagram` and gathers the (first) reply message: (request id, payload),
/// checking the sequence numbers and total; None when nothing comes back.
fn exchange(socket: &UdpSocket, port: u16, datagram: &[u8]) -> Option<(u16, Vec<u8>)> {
    socket.send_to(datagram, ("127.0.0.1", port)).unwrap();
    message(socket)
}

/// Gathers one reply message.
fn message(socket: &UdpSocket) -> Option<(u16, Vec<u8>)> {
    let mut parts: Vec<Option<Vec<u8>>> = Vec::new();
    let mut request_id = None;
    let mut buf = [0u8; 2048];
    loop {
        let Ok(n) = socket.recv(&mut buf) else {
            assert!(parts.is_empty(), "reply incomplete: {parts:?}");
            return None;
        };
        assert!((9..=1400).contains(&n), "datagram of {n} bytes");
        let field = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
        let (id, seq, total) = (field(0), field(2), field(4));
        assert_eq!(field(6), 0, "reserved field");
        request_id.get_or_insert(id);
        assert_eq!(request_id, Some(id));
        if parts.is_empty() {
            parts = vec![None; usize::from(total)];
        }
        assert_eq!(parts.len(), usize::from(total));
        assert!(parts[usize::from(seq)].is_none(), "sequence {seq} twice");
        parts[usize::from(seq)] = Some(buf[8..n].to_vec());
        if parts.iter().all(Option::is_some) {
            return Some((id, parts.into_iter().flatten().flatten().collect()));
        }
    }
}

#[test]
fn udp_is_off_by_default() {
    if target_is_memcached() {
        return;
    }
    let node = Node::start(&[]);
    let socket = socket();
    let get = frame(1, 0, 1, b"version\r\n");
    assert_eq!(exchange(&socket, node.port, &get), None);
    assert_eq!(exchange(&socket, 11211, &get), None);
    let mut client = TextClient::connect(node.port);
    assert_eq!(client.stats(Some("settings"))["udpport"], "0");
}

#[test]
fn udp_answers_framed_requests_and_ignores_malformed_datagrams() {
    if target_is_memcached() {
        return;
    }
    let udp_port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let node = Node::start(&["-U", &udp_port.to_string()]);
    let socket = socket();
    let ask = |id: u16, payload: &[u8]| exchange(&socket, udp_port, &frame(id, 0, 1, payload));

    // Two requests in a datagram: two reply messages, as memcached sends them.
    let (id, reply) = ask(0x1234, b"set k 5 0 3\r\nabc\r\nget k\r\n").unwrap();
    assert_eq!(id, 0x1234);
    assert_eq!(reply, b"STORED\r\n");
    let (id, reply) = message(&socket).unwrap();
    assert_eq!(id, 0x1234);
    assert_eq!(reply, b"VALUE k 5 3\r\nabc\r\nEND\r\n");
    // A reply of many datagrams, numbered in order.
    let value = vec![b'v'; 5000];
    let mut set = b"set big 0 0 5000\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    assert_eq!(ask(2, &set).unwrap().1, b"STORED\r\n");
    let (_, reply) = ask(3, b"get big\r\n").unwrap();
    let mut expected = b"VALUE big 0 5000\r\n".to_vec();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    assert_eq!(reply, expected);
    // The binary protocol too.
    let mut noop = vec![0x80, 0x0a];
    noop.extend_from_slice(&[0; 22]);
    let (_, reply) = ask(4, &noop).unwrap();
    assert_eq!(&reply[..2], &[0x81, 0x0a]);

    // Malformed datagrams: no answer.
    let short = [0u8, 9, 0, 0, 0];
    assert_eq!(exchange(&socket, udp_port, &short), None);
    let header_only = frame(5, 0, 1, b"");
    assert_eq!(exchange(&socket, udp_port, &header_only), None);
    let multi = frame(6, 0, 2, b"get k\r\n");
    assert_eq!(exchange(&socket, udp_port, &multi), None);
    let second = frame(7, 1, 2, b"get k\r\n");
    assert_eq!(exchange(&socket, udp_port, &second), None);
    let mut garbage: Vec<u8> = (0..1200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage[4..6].copy_from_slice(&[0xde, 0xad]);
    assert_eq!(exchange(&socket, udp_port, &garbage), None);
    // A bad command in a good frame is answered, as memcached does.
    assert_eq!(ask(10, b"bogus\r\n").unwrap().1, b"ERROR\r\n");
    // A request whose data does not fit its datagram: nothing to answer.
    assert_eq!(ask(8, b"set k 0 0 100\r\nabc"), None);

    // Still serving, over UDP and TCP.
    assert_eq!(
        ask(9, b"get k\r\n").unwrap().1,
        b"VALUE k 5 3\r\nabc\r\nEND\r\n"
    );
    let mut client = TextClient::connect(node.port);
    assert_eq!(client.get("k").as_deref(), Some(&b"abc"[..]));
    assert_eq!(
        client.stats(Some("settings"))["udpport"],
        udp_port.to_string()
    );
}

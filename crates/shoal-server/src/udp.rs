//! memcached's UDP transport (`-U PORT`, off by default as in memcached since 1.5.6):
//! every datagram starts with an 8-byte frame header (request id, sequence number, total
//! datagrams, reserved, all big-endian u16), followed by requests that must fit in that
//! one datagram. The replies to a datagram go back under the same request id, cut into
//! datagrams of at most [`DATAGRAM_MAX`] bytes numbered 0..total.
//!
//! A datagram that is not one whole request frame (shorter than the header, part of a
//! multi-datagram request, nothing after the header) gets no answer; neither does a
//! datagram whose replies would exceed [`Udp::reply_max`] (amplification).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::net::UdpSocket;

use crate::backend::Backend;
use crate::dispatch::Dispatcher;
use crate::session::{Progress, Session};

/// The frame header's length.
pub const HEADER_LEN: usize = 8;
/// The largest datagram memcached sends (`UDP_MAX_PAYLOAD_SIZE`), header included.
pub const DATAGRAM_MAX: usize = 1400;
/// The largest datagram read.
const RECEIVE_MAX: usize = 64 * 1024;

/// The frame header of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The client's request id, echoed in every reply datagram.
    pub request_id: u16,
    /// This datagram's number within its message.
    pub sequence: u16,
    /// How many datagrams the message has.
    pub total: u16,
}

impl Frame {
    /// Reads a request datagram's header; None unless it is a whole one-datagram request.
    pub fn request(datagram: &[u8]) -> Option<Frame> {
        if datagram.len() <= HEADER_LEN {
            return None;
        }
        let u16_at = |i: usize| u16::from_be_bytes([datagram[i], datagram[i + 1]]);
        let frame = Frame {
            request_id: u16_at(0),
            sequence: u16_at(2),
            total: u16_at(4),
        };
        (frame.sequence == 0 && frame.total == 1).then_some(frame)
    }
}

/// Cuts `reply` into datagrams under `request_id`; None when it needs more than 65535.
pub fn datagrams(request_id: u16, reply: &[u8]) -> Option<Vec<BytesMut>> {
    let chunk = DATAGRAM_MAX - HEADER_LEN;
    let total = u16::try_from(reply.len().div_ceil(chunk)).ok()?;
    let mut out = Vec::with_capacity(usize::from(total));
    for (sequence, piece) in (0..total).zip(reply.chunks(chunk)) {
        let mut datagram = BytesMut::with_capacity(HEADER_LEN + piece.len());
        datagram.put_u16(request_id);
        datagram.put_u16(sequence);
        datagram.put_u16(total);
        datagram.put_u16(0);
        datagram.put_slice(piece);
        out.push(datagram);
    }
    Some(out)
}

/// Answers the requests of one datagram's payload: one reply message per request, as
/// memcached sends them (empty when nothing is to be sent, or when the replies would
/// exceed `reply_max` bytes in all).
pub async fn answer<B: Backend>(
    payload: &[u8],
    dispatcher: &Dispatcher<B>,
    reply_max: usize,
) -> Vec<BytesMut> {
    let mut session = Session::new(dispatcher.config().limits);
    let mut input = BytesMut::from(payload);
    let mut output = BytesMut::new();
    let mut messages = Vec::new();
    let mut total = 0;
    loop {
        let progress = session.process(&mut input, &mut output, dispatcher).await;
        if total + output.len() > reply_max {
            return Vec::new();
        }
        if !session.has_pending() && !output.is_empty() {
            total += output.len();
            messages.push(output.split());
        }
        match progress {
            Progress::Continue => {}
            Progress::NeedInput | Progress::Close => break,
        }
    }
    messages
}

/// One UDP socket's server.
#[derive(Debug)]
pub struct Udp<B> {
    socket: UdpSocket,
    dispatcher: Arc<Dispatcher<B>>,
}

impl<B: Backend> Udp<B> {
    /// A server on `socket`.
    pub fn new(socket: UdpSocket, dispatcher: Arc<Dispatcher<B>>) -> Udp<B> {
        Udp { socket, dispatcher }
    }

    /// The largest reply sent to one datagram: one item plus 64 KiB.
    pub fn reply_max(&self) -> usize {
        self.dispatcher.config().limits.item_size_max + 64 * 1024
    }

    /// Serves datagrams until the server shuts down.
    pub async fn run(self) {
        let mut shutdown = self.dispatcher.shutdown_signal();
        let mut buf = vec![0u8; RECEIVE_MAX];
        loop {
            let received = tokio::select! {
                received = self.socket.recv_from(&mut buf) => received,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let Ok((len, peer)) = received else {
                continue;
            };
            let stats = self.dispatcher.stats();
            stats.bytes_read.fetch_add(len as u64, Relaxed);
            let datagram = &buf[..len];
            let Some(frame) = Frame::request(datagram) else {
                continue;
            };
            let messages =
                answer(&datagram[HEADER_LEN..], &self.dispatcher, self.reply_max()).await;
            let mut outgoing = Vec::new();
            for message in &messages {
                outgoing.extend(datagrams(frame.request_id, message).unwrap_or_default());
            }
            for datagram in outgoing {
                if let Ok(sent) = self.socket.send_to(&datagram, peer).await {
                    stats.bytes_written.fetch_add(sent as u64, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_one_datagram_requests_are_read() {
        let frame = Frame::request(b"\x12\x34\x00\x00\x00\x01\x00\x00get a\r\n").unwrap();
        assert_eq!(frame.request_id, 0x1234);
        assert!(Frame::request(b"\x00\x01\x00\x00\x00\x01\x00\x00").is_none());
        assert!(Frame::request(b"\x00\x01\x00").is_none());
        assert!(Frame::request(b"\x00\x01\x00\x00\x00\x02\x00\x00get a\r\n").is_none());
        assert!(Frame::request(b"\x00\x01\x00\x01\x00\x02\x00\x00get a\r\n").is_none());
    }

    #[test]
    fn replies_are_cut_and_numbered() {
        let reply = vec![b'x'; 3000];
        let parts = datagrams(7, &reply).unwrap();
        assert_eq!(parts.len(), 3);
        for (i, part) in parts.iter().enumerate() {
            assert!(part.len() <= DATAGRAM_MAX);
            assert_eq!(&part[..8], &[0, 7, 0, i as u8, 0, 3, 0, 0]);
        }
        let joined: Vec<u8> = parts.iter().flat_map(|p| p[8..].to_vec()).collect();
        assert_eq!(joined, reply);
        assert!(datagrams(1, &vec![0; 65_536 * 1392]).is_none());
    }
}

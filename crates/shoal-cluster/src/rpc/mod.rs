//! Node-to-node RPC: persistent, pipelined, multiplexed TCP connections carrying serde
//! messages, generic over the request and response types (the router defines them).
//!
//! # Wire format
//!
//! Every frame, in both directions, is a `u32` big-endian length of the rest of the frame,
//! a `u64` big-endian request id, then the message encoded with `postcard`. A response
//! carries the id of its request. The length (id + payload bytes) may not exceed
//! [`RpcConfig::max_frame`]: a peer sending a larger frame has its connection closed, so
//! memory stays bounded whatever a peer sends; a larger outgoing request fails that call
//! with [`RpcError::TooLarge`] and sends nothing.
//!
//! # Client
//!
//! [`RpcClient`] is one lazily connected, auto-reconnecting connection to one peer.
//! [`RpcClient::send`] encodes the request straight into the connection's outgoing buffer
//! (no await), so requests sent through one client reach the socket in the order `send`
//! was called (even across threads and reconnects). The buffer is written once the tasks
//! ready to run on the sender's thread have run (the connection's writer task yields
//! once, then writes): requests sent by many tasks in one round of the scheduler go out in
//! one write. Responses may come back in any order. When the connection fails, every call
//! in flight on it fails at once with [`RpcError::Closed`] (or [`RpcError::Connect`] if it
//! never connected) and the next `send` reconnects. The transport has no request timeout:
//! a peer frozen by `SIGSTOP` accepts connections but never answers, so callers wrap
//! [`ResponseFuture`]s in their own timeout; dropping one forgets its call. [`Peers`]
//! keeps one client per peer address.
//!
//! # Server
//!
//! [`serve`] accepts connections and runs one task per connection. It reads as much as the
//! socket holds and, for each request in arrival order, calls [`Handler::handle`] and
//! polls the returned future once: a response ready at once is queued; a future still
//! pending runs on its own task, concurrently with later requests. At most
//! [`RpcConfig::max_in_flight`] requests per connection are in flight (handled and not
//! yet written back); beyond that the reader stops reading, which pushes back on the
//! peer. The responses queued are written in one write whenever the reader is about to
//! wait; a late response is written by the task that produced it.
//!
//! # Writing
//!
//! Both sides write through an outbox (module `outbox`): frames are appended under a lock,
//! and whoever flushes an idle outbox writes everything queued with non-blocking writes on
//! its own thread; only when the socket is full does the connection's writer task wait for
//! it to drain. A server's response costs no task wake-up; a client's batch of requests
//! one (its writer task's); either costs one `write` per batch.

mod client;
mod frame;
mod outbox;
mod peers;
mod server;
#[cfg(test)]
mod tests;

use std::io;
use std::time::Duration;

pub use client::{ResponseFuture, RpcClient};
pub use peers::Peers;
pub use server::{handler_fn, serve, FnHandler, Handler, ServerHandle};

/// Settings of the RPC transport, for clients and servers alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// The largest frame accepted or sent, counted as the length field counts it (8 bytes
    /// of request id plus the encoded message).
    pub max_frame: usize,
    /// How long a client waits for a TCP connection before failing the queued calls.
    pub connect_timeout: Duration,
    /// Server side: how many handler futures may run at once per connection.
    pub max_in_flight: usize,
}

impl Default for RpcConfig {
    /// 256 MiB frames, a 1 s connect timeout, 1024 requests in flight per connection.
    fn default() -> Self {
        Self {
            max_frame: 256 << 20,
            connect_timeout: Duration::from_secs(1),
            max_in_flight: 1024,
        }
    }
}

/// Why an RPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No connection to the peer could be made (refused, unreachable, or no answer within
    /// [`RpcConfig::connect_timeout`], reported as `TimedOut`).
    #[error("cannot connect to peer: {0}")]
    Connect(io::Error),
    /// The connection closed (peer gone, I/O error, protocol violation, or
    /// [`RpcClient::reset`]) before the response arrived. The peer may or may not have
    /// processed the request.
    #[error("connection to peer closed before the response arrived")]
    Closed,
    /// The request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(postcard::Error),
    /// The response could not be decoded as the expected type.
    #[error("cannot decode response: {0}")]
    Decode(postcard::Error),
    /// The request's frame (id + payload, this many bytes) exceeds
    /// [`RpcConfig::max_frame`]; nothing was sent.
    #[error("request frame of {0} bytes exceeds the maximum frame size")]
    TooLarge(usize),
}

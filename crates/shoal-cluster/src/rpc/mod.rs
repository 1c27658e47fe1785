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
//! [`RpcClient::send`] enqueues synchronously, so requests sent through one client reach
//! the socket in the order `send` was called (even across threads and reconnects); one
//! writer task drains the queue into a buffer and writes it when the queue is empty, so
//! pipelined load costs few syscalls. Responses may come back in any order. When the
//! connection fails, every call in flight on it fails at once with [`RpcError::Closed`]
//! (or [`RpcError::Connect`] if it never connected) and the next `send` reconnects. The
//! transport has no request timeout: a peer frozen by `SIGSTOP` accepts connections but
//! never answers, so callers wrap [`ResponseFuture`]s in their own timeout; dropping one
//! forgets its call. [`Peers`] keeps one client per peer address.
//!
//! # Server
//!
//! [`serve`] accepts connections and, per connection, runs one reader task and one writer
//! task. The reader calls [`Handler::handle`] for each request in arrival order, then runs
//! the returned future concurrently with later requests (at most
//! [`RpcConfig::max_in_flight`] per connection; beyond that the reader stops reading,
//! which pushes back on the peer). Each future's output is written back as the response.

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

//! Where a router's node-to-node requests go: the TCP transport ([`crate::rpc`]) in
//! production, or any [`PeerTransport`] — the deterministic simulator's in-memory network
//! in tests. The router's code is the same over both; a request sent through either keeps
//! its order with the earlier requests to the same peer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::message::{PeerEnvelope, PeerReply};
use crate::rpc::{Peers, ResponseFuture, RpcError};

/// A future answer from a [`PeerTransport`].
pub type PeerCall = Pin<Box<dyn Future<Output = Result<PeerReply, RpcError>> + Send>>;

/// A network a router can send its requests over.
pub trait PeerTransport: Send + Sync + 'static {
    /// Sends `envelope` to `to` now (in order with the earlier sends to `to`); the
    /// future resolves to the answer, or to the transport's error.
    fn send(&self, to: SocketAddr, envelope: PeerEnvelope) -> PeerCall;
}

/// The transport a router uses.
pub(super) enum Link {
    /// Persistent pipelined TCP connections.
    Tcp(Peers<PeerEnvelope, PeerReply>),
    /// Another network (the simulator's).
    Other(Arc<dyn PeerTransport>),
}

impl Link {
    /// Sends `envelope` to `to`.
    pub(super) fn send(&self, to: SocketAddr, envelope: PeerEnvelope) -> Sent {
        match self {
            Link::Tcp(peers) => Sent::Tcp(peers.get(to).send(envelope)),
            Link::Other(transport) => Sent::Other(transport.send(to, envelope)),
        }
    }
}

/// A request sent over a [`Link`], until its answer.
pub(super) enum Sent {
    Tcp(ResponseFuture<PeerReply>),
    Other(PeerCall),
}

impl Future for Sent {
    type Output = Result<PeerReply, RpcError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Sent::Tcp(response) => Pin::new(response).poll(cx),
            Sent::Other(call) => call.as_mut().poll(cx),
        }
    }
}

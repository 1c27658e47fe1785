//! [`Peers`]: one [`RpcClient`] per peer address, created on first use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{RpcClient, RpcConfig};

/// Clients by peer address, created on first use, all with the same [`RpcConfig`].
pub struct Peers<Req, Resp> {
    config: RpcConfig,
    clients: Mutex<HashMap<SocketAddr, Arc<RpcClient<Req, Resp>>>>,
}

impl<Req, Resp> Peers<Req, Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
{
    /// No clients yet.
    pub fn new(config: RpcConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `addr`, created (unconnected) if there is none.
    pub fn get(&self, addr: SocketAddr) -> Arc<RpcClient<Req, Resp>> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(addr)
            .or_insert_with(|| Arc::new(RpcClient::new(addr, self.config.clone())))
            .clone()
    }

    /// Forgets the client for `addr` (the next [`get`](Self::get) makes a new one). Its
    /// connection closes when the last `Arc` to it is dropped; calls still in flight then
    /// fail with [`super::RpcError::Closed`].
    pub fn remove(&self, addr: SocketAddr) {
        let removed = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr);
        // Dropped outside the lock: the last drop closes the connection.
        drop(removed);
    }
}

impl<Req, Resp> std::fmt::Debug for Peers<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Peers")
            .field("config", &self.config)
            .field("peers", &clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

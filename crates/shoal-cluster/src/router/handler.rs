//! The receiving side of [`PeerRequest`]s: what a node does when another asks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use shoal_command::Command;
use tokio::time::Instant;

use super::{is_plain_read, key_of, PeerRequest, PeerResponse, Router};
use crate::placement::partition_of;
use crate::rpc::Handler;

/// Serves one node's peers.
#[derive(Debug)]
pub(super) struct PeerHandler {
    router: Arc<Router>,
}

impl PeerHandler {
    pub(super) fn new(router: Arc<Router>) -> PeerHandler {
        PeerHandler { router }
    }
}

impl Handler<PeerRequest, PeerResponse> for PeerHandler {
    fn handle(
        &self,
        _from: SocketAddr,
        request: PeerRequest,
    ) -> impl Future<Output = PeerResponse> + Send + 'static {
        let router = Arc::clone(&self.router);
        // Done here, in arrival order: replication must apply in the primary's order.
        let ready = match &request {
            PeerRequest::Replicate(op) => {
                router.apply_replica(op);
                Some(PeerResponse::Done)
            }
            PeerRequest::Flush(flush) => {
                router.store.flush_all(flush.delay);
                Some(PeerResponse::Done)
            }
            PeerRequest::ItemCount => Some(PeerResponse::Count(router.store.stats().curr_items)),
            PeerRequest::Export(key) => Some(PeerResponse::Item(router.store.export(key))),
            PeerRequest::Read(command) => {
                Some(PeerResponse::Outcome(router.store.execute(command.clone())))
            }
            PeerRequest::Execute(_) | PeerRequest::Pull { .. } => None,
        };
        async move {
            if let Some(response) = ready {
                return response;
            }
            match request {
                PeerRequest::Execute(command) => router.execute_as_primary(command).await,
                PeerRequest::Pull {
                    requester,
                    partitions,
                } => router.serve_pull(requester, partitions).await,
                _ => unreachable!("answered above"),
            }
        }
    }
}

impl Router {
    /// A forwarded command: run it if this node is the primary of its key(s), else say so.
    async fn execute_as_primary(&self, command: Command) -> PeerResponse {
        let view = self.view();
        if let Command::Get(get) = &command {
            if get.keys.len() > 1 {
                let mine = is_plain_read(&command)
                    && get
                        .keys
                        .iter()
                        .all(|key| self.reads_here(&view, partition_of(key)));
                return if mine {
                    PeerResponse::Outcome(self.store.execute(command))
                } else {
                    PeerResponse::NotPrimary
                };
            }
        }
        let Some(key) = key_of(&command).cloned() else {
            return PeerResponse::Outcome(self.store.execute(command));
        };
        let p = partition_of(&key);
        if !view.is_primary(p) {
            return PeerResponse::NotPrimary;
        }
        let deadline = Instant::now() + self.config.deadline;
        match self.run_as_primary(p, &key, command, deadline).await {
            Some(outcome) => PeerResponse::Outcome(outcome),
            None => PeerResponse::NotPrimary,
        }
    }
}

//! The receiving side of [`PeerRequest`]s: what a node does when another asks, after
//! the fence ([`Router::admit`]) let the request in.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use shoal_command::Command;
use tokio::time::Instant;

use super::message::{PeerEnvelope, PeerReply, Refusal};
use super::{is_plain_read, key_of, PeerRequest, PeerResponse, Router, View};
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

impl Handler<PeerEnvelope, PeerReply> for PeerHandler {
    fn handle(
        &self,
        _from: SocketAddr,
        envelope: PeerEnvelope,
    ) -> impl Future<Output = PeerReply> + Send + 'static {
        self.router.handle_peer(envelope)
    }
}

impl Router {
    /// Serves one request from a peer: the fence first, then what it asks. The changes a
    /// request makes (replication above all) are applied here, before this returns, so
    /// requests handed over in arrival order are applied in that order; what must wait
    /// (a forwarded command, a pull) runs in the returned future.
    pub fn handle_peer(
        self: &Arc<Self>,
        envelope: PeerEnvelope,
    ) -> impl Future<Output = PeerReply> + Send + 'static {
        let router = Arc::clone(self);
        if envelope.flush > router.store.version_floor() {
            router.store.flush_below_version(envelope.flush);
        }
        let view = router.view();
        let admitted = router.admit(&view, &envelope);
        let from = envelope.from.addr();
        let request = envelope.request;
        // Done here, in arrival order: replication must apply in the primary's order.
        let ready = match admitted {
            Err(refusal) => Some(PeerResponse::Refused(refusal)),
            Ok(()) => match &request {
                PeerRequest::Replicate(op) => Some(router.apply_replica(op)),
                PeerRequest::Flush(flush) => {
                    router.store.flush_all(flush.delay);
                    Some(PeerResponse::Done)
                }
                PeerRequest::Clock => Some(PeerResponse::Clock(router.store.new_version())),
                PeerRequest::FlushBelow(floor) => {
                    router.store.flush_below_version(*floor);
                    Some(PeerResponse::Done)
                }
                PeerRequest::Status => Some(PeerResponse::Status(router.node_status())),
                PeerRequest::Export(key) => Some(router.export_key(key)),
                PeerRequest::Lease => Some(PeerResponse::Done),
                PeerRequest::Leaving => {
                    router.forget_member(from);
                    Some(PeerResponse::Done)
                }
                PeerRequest::Read(command) => Some(router.read_here(command)),
                PeerRequest::Execute(_)
                | PeerRequest::Pull(_)
                | PeerRequest::Digests(_)
                | PeerRequest::Repair { .. } => None,
            },
        };
        // Answered on the spot: the view it was admitted on is the one to report.
        let answered_on = ready.as_ref().map(|_| view.digest);
        drop(view);
        async move {
            let response = match ready {
                Some(response) => response,
                None => match request {
                    PeerRequest::Execute(command) => router.execute_as_primary(command).await,
                    PeerRequest::Pull(partitions) => {
                        Arc::clone(&router).serve_pull(partitions).await
                    }
                    PeerRequest::Digests(partitions) => router.serve_digests(partitions).await,
                    PeerRequest::Repair {
                        buckets,
                        items,
                        tombstones,
                    } => router.serve_repair(buckets, items, tombstones).await,
                    _ => unreachable!("answered above"),
                },
            };
            PeerReply {
                view: answered_on.unwrap_or_else(|| router.view().digest),
                flush: router.store.version_floor(),
                response,
            }
        }
    }

    /// The fence: a request for another incarnation of this node is refused, and so is a
    /// data request made on another view, or before this node acts on any view.
    fn admit(&self, view: &View, envelope: &PeerEnvelope) -> Result<(), Refusal> {
        if envelope.to != view.local_id {
            return Err(Refusal::WrongIncarnation);
        }
        let fenced = !matches!(
            envelope.request,
            PeerRequest::Status
                | PeerRequest::Leaving
                | PeerRequest::Clock
                | PeerRequest::Flush(_)
                | PeerRequest::FlushBelow(_)
        );
        if fenced && !self.is_ready() {
            return Err(Refusal::NotReady);
        }
        if fenced && envelope.view != view.digest {
            return Err(Refusal::StaleView);
        }
        Ok(())
    }

    /// Read fail-over: a plain read served by an owner that holds the key's partition
    /// under a lease (see `lease`).
    fn read_here(&self, command: &Command) -> PeerResponse {
        let view = self.view();
        let held = key_of(command).is_some_and(|key| {
            let p = partition_of(key);
            self.sync.is_held(p) && self.leased(&view, p)
        });
        if held && is_plain_read(command) {
            PeerResponse::Outcome(self.store.execute(command.clone()))
        } else {
            PeerResponse::NotPrimary
        }
    }

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

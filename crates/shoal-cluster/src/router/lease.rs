//! Read leases: a primary answers from its own copy alone (a read, a miss, a NOT_FOUND
//! delete, a failed CAS) only while every other owner of the partition has confirmed, on
//! the same view, within the last [`LEASE`].
//!
//! A primary cut off from its replicas keeps its view until the failure detector speaks,
//! and meanwhile the others may already have moved the partition to a new primary and
//! written to it. The others drop a member only after it stayed silent for the
//! detector's probe and suspicion time (about 0.75 s at the least); a lease counted from
//! when its renewal was *sent* runs out before that, so the old primary stops answering
//! from its copy before a new one can start. Writes need no lease: every live owner
//! stores them before they are acknowledged, on the same view.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::time::Instant;

use super::message::PeerRequest;
use super::{PeerResponse, Router, View};
use crate::placement::PartitionId;

/// How long a confirmation lasts, counted from when it was asked for.
pub(super) const LEASE: Duration = Duration::from_millis(500);
/// How often confirmations are asked for.
pub(super) const RENEW_EVERY: Duration = Duration::from_millis(150);

/// The last confirmation from each member: the view digest and when it was asked for.
#[derive(Debug, Default)]
pub(super) struct Leases {
    confirmed: RwLock<BTreeMap<SocketAddr, (u64, Instant)>>,
}

impl Leases {
    fn confirm(&self, member: SocketAddr, digest: u64, asked: Instant) {
        let mut confirmed = self.confirmed.write();
        let entry = confirmed.entry(member).or_insert((digest, asked));
        if entry.0 != digest || entry.1 < asked {
            *entry = (digest, asked);
        }
    }

    /// Whether `member` confirmed view `digest` less than [`LEASE`] ago.
    fn holds(&self, member: SocketAddr, digest: u64, now: Instant) -> bool {
        self.confirmed
            .read()
            .get(&member)
            .is_some_and(|(d, at)| *d == digest && now.duration_since(*at) < LEASE)
    }
}

impl Router {
    /// Whether this node may answer for `p` from its own copy: every other owner
    /// confirmed this view within the lease.
    pub(super) fn leased(&self, view: &View, p: PartitionId) -> bool {
        let now = Instant::now();
        view.other_owners(p)
            .all(|owner| self.leases.holds(owner, view.digest, now))
    }

    /// Asks every member to confirm the view, every [`RENEW_EVERY`], forever.
    pub(super) async fn lease_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let view = self.view();
            let asked = Instant::now();
            for member in view.others() {
                let answer = self.call_with_view(member, PeerRequest::Lease);
                let router = Arc::clone(&self);
                let digest = view.digest;
                tokio::spawn(async move {
                    if let Ok(Ok((theirs, PeerResponse::Done))) =
                        tokio::time::timeout(LEASE, answer).await
                    {
                        if theirs == digest {
                            router.leases.confirm(member, digest, asked);
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_confirmation_lasts_the_lease_from_when_it_was_asked_and_only_for_its_view() {
        let leases = Leases::default();
        let member = SocketAddr::from(([127, 0, 0, 1], 7001));
        let asked = Instant::now();
        tokio::time::advance(LEASE / 2).await;
        leases.confirm(member, 9, asked);
        assert!(leases.holds(member, 9, Instant::now()));
        assert!(!leases.holds(member, 8, Instant::now()), "another view");
        tokio::time::advance(LEASE / 2).await;
        assert!(
            !leases.holds(member, 9, Instant::now()),
            "counted from the ask"
        );
    }
}

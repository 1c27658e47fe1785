//! Cluster membership and failure detection: SWIM gossip through the `foca` library over
//! one UDP socket.
//!
//! [`Membership::start`] binds the cluster socket (`--cluster-listen`), spawns a tokio task
//! that drives `foca`, announces itself to the seeds (`--join`) until it has heard from a
//! member, and publishes the live member list (self included, sorted) through a
//! [`tokio::sync::watch`] channel. [`Membership::leave`] leaves gracefully (peers learn at
//! once); dropping a [`Membership`] stops the task abruptly, like a crash.
//!
//! Failure detection (see [`SwimTuning`]): every `probe_period` each node pings one member
//! (round-robin in random order); without an ack within `probe_rtt` it asks
//! `indirect_probes` others to ping it; still no ack by the next period, the member becomes
//! *suspect*, and unless it refutes within `suspect_to_down_after` it is declared down and
//! gossiped. The defaults (300 ms period, 150 ms rtt, 600 ms suspicion) bound detection on
//! a 3-node loopback cluster to about 2 × 300 + 300 + 600 ms = 1.5 s.

mod driver;
#[cfg(test)]
mod sim;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::ClusterError;
use crate::node::NodeId;

/// Timing of the SWIM protocol. Every member of a cluster must use the same values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwimTuning {
    /// How often a node probes one member.
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly
    /// (must be below `probe_period`).
    pub probe_rtt: Duration,
    /// How many members are asked to probe indirectly.
    pub indirect_probes: usize,
    /// How long a suspect member has to refute before it is declared down.
    pub suspect_to_down_after: Duration,
    /// How often membership updates are pushed to a few random members (speeds up
    /// dissemination of joins, leaves and deaths beyond piggybacking on probes).
    pub gossip_period: Duration,
    /// How often a node with no live peer, or not active after a rejoin, re-announces
    /// itself to the seeds (and a few known members).
    pub seed_retry: Duration,
    /// How many times each membership update is piggybacked before it is dropped (foca's
    /// `new_lan(16)` says 4; the simulator showed suspicions and deaths then sometimes
    /// never reach a member).
    pub max_transmissions: u8,
    /// How often a node tries members it holds down (foca's default, 65 s, is how long
    /// the two sides of a healed network partition took to find each other).
    pub announce_to_down_every: Duration,
}

impl Default for SwimTuning {
    /// Tuned for a LAN or loopback: a dead or paused member is declared down within ~1.5 s.
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(300),
            probe_rtt: Duration::from_millis(150),
            indirect_probes: 2,
            suspect_to_down_after: Duration::from_millis(600),
            gossip_period: Duration::from_millis(100),
            seed_retry: Duration::from_millis(500),
            max_transmissions: 8,
            announce_to_down_every: Duration::from_secs(2),
        }
    }
}

impl SwimTuning {
    /// The `foca` configuration for these timings: `Config::new_lan` (sized for a small
    /// cluster) with the probe, suspicion and gossip timings replaced.
    pub fn foca_config(&self) -> foca::Config {
        let mut config = foca::Config::new_lan(std::num::NonZeroU32::MIN.saturating_add(15));
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_rtt;
        config.num_indirect_probes =
            NonZeroUsize::new(self.indirect_probes).unwrap_or(NonZeroUsize::MIN);
        config.suspect_to_down_after = self.suspect_to_down_after;
        config.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.gossip_period,
            num_members: NonZeroUsize::MIN.saturating_add(2),
        });
        config.max_transmissions =
            std::num::NonZeroU8::new(self.max_transmissions).unwrap_or(std::num::NonZeroU8::MIN);
        if let Some(params) = &mut config.periodic_announce_to_down_members {
            params.frequency = self.announce_to_down_every;
        }
        config
    }
}

/// What a node needs to join a cluster.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// The UDP address to bind for gossip (`--cluster-listen`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The address peers should use to reach us; defaults to the bound address, which must
    /// then not be unspecified (0.0.0.0 or ::).
    pub advertise: Option<SocketAddr>,
    /// Members to announce ourselves to (`--join`); our own address is ignored.
    pub seeds: Vec<SocketAddr>,
    /// Protocol timings.
    pub tuning: SwimTuning,
}

impl MembershipConfig {
    /// A configuration with the default [`SwimTuning`].
    pub fn new(listen: SocketAddr, seeds: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            advertise: None,
            seeds,
            tuning: SwimTuning::default(),
        }
    }
}

/// Requests from the handle to the membership task.
#[derive(Debug)]
enum Request {
    /// Leave the cluster gracefully, then stop; reply once the leave was sent.
    Leave(oneshot::Sender<()>),
}

/// A running membership task: this node's identity and the live member list.
///
/// Dropping it stops the task abruptly (no leave message): peers detect the node as failed.
#[derive(Debug)]
pub struct Membership {
    local: watch::Receiver<NodeId>,
    members: watch::Receiver<Vec<NodeId>>,
    requests: mpsc::Sender<Request>,
    task: JoinHandle<()>,
}

impl Membership {
    /// Binds the cluster socket, spawns the membership task and starts announcing to the
    /// seeds. Must be called within a tokio runtime.
    pub async fn start(config: MembershipConfig) -> Result<Membership, ClusterError> {
        let socket = UdpSocket::bind(config.listen)
            .await
            .map_err(|source| ClusterError::Bind {
                addr: config.listen,
                source,
            })?;
        let bound = socket.local_addr().map_err(ClusterError::LocalAddr)?;
        let addr = config.advertise.unwrap_or(bound);
        if addr.ip().is_unspecified() {
            return Err(ClusterError::UnspecifiedAddress(addr));
        }
        let id = NodeId::fresh(addr);
        let seeds = config
            .seeds
            .iter()
            .filter(|s| **s != addr)
            .map(|s| NodeId::new(*s, 0))
            .collect();
        let (local_tx, local) = watch::channel(id);
        let (members_tx, members) = watch::channel(vec![id]);
        let (requests, requests_rx) = mpsc::channel(4);
        let driver = driver::Driver::new(id, &config.tuning, socket, seeds, local_tx, members_tx);
        let task = tokio::spawn(driver.run(requests_rx));
        Ok(Membership {
            local,
            members,
            requests,
            task,
        })
    }

    /// This node's current identity (it changes only if the cluster wrongly declared us
    /// down and we rejoined with the next incarnation).
    pub fn local_id(&self) -> NodeId {
        *self.local.borrow()
    }

    /// A receiver of this node's identity: it changes when the node rejoins under the
    /// next incarnation after the cluster declared it down.
    pub fn local_watch(&self) -> watch::Receiver<NodeId> {
        self.local.clone()
    }

    /// A receiver of the live member list: sorted, self included, updated on every change.
    pub fn members(&self) -> watch::Receiver<Vec<NodeId>> {
        self.members.clone()
    }

    /// The live member list right now.
    pub fn current(&self) -> Vec<NodeId> {
        self.members.borrow().clone()
    }

    /// Leaves the cluster gracefully: tells a few members we are down, then stops the task.
    pub async fn leave(mut self) -> Result<(), ClusterError> {
        let (ack, done) = oneshot::channel();
        self.requests
            .send(Request::Leave(ack))
            .await
            .map_err(|_| ClusterError::Stopped)?;
        done.await.map_err(|_| ClusterError::Stopped)?;
        (&mut self.task).await.map_err(|_| ClusterError::Stopped)
    }
}

impl Membership {
    /// Stops abruptly, as a crash would (no leave message: peers must detect the failure),
    /// and waits until the task is gone and its socket closed. Dropping the handle does the
    /// same without waiting.
    pub async fn kill(mut self) {
        self.task.abort();
        // The task was aborted on purpose; its JoinError (cancelled) says nothing new.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! The membership task: feeds `foca` with datagrams, timer events and requests, and carries
//! out what it asks for (send datagrams, schedule timers), publishing the member list.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use foca::{
    AccumulatingRuntime, Codec, Foca, Identity, Message, NoCustomBroadcast, OwnedNotification,
    PostcardCodec, Timer,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::{Request, SwimTuning};
use crate::node::NodeId;

impl Identity for NodeId {
    type Addr = std::net::SocketAddr;

    /// After being declared down by mistake, rejoin as the next incarnation.
    fn renew(&self) -> Option<Self> {
        Some(self.bumped())
    }

    fn addr(&self) -> Self::Addr {
        NodeId::addr(self)
    }

    /// At one address, the later incarnation (a restart or a rejoin) wins.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation() > adversary.incarnation()
    }
}

type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

/// Timer events due at an instant; the sequence number keeps equal instants in FIFO order.
type TimerQueue = BinaryHeap<Reverse<(Instant, u64, Timer<NodeId>)>>;

/// State of the membership task.
pub(super) struct Driver {
    foca: Swim,
    runtime: AccumulatingRuntime<NodeId>,
    socket: UdpSocket,
    timers: TimerQueue,
    timer_seq: u64,
    seeds: Vec<NodeId>,
    seed_retry: Duration,
    max_packet: usize,
    local_tx: watch::Sender<NodeId>,
    members_tx: watch::Sender<Vec<NodeId>>,
    /// Whether foca last reported itself active (not after `Idle`, `Defunct`, `Rejoin`).
    active: bool,
}

impl Driver {
    pub(super) fn new(
        id: NodeId,
        tuning: &SwimTuning,
        socket: UdpSocket,
        seeds: Vec<NodeId>,
        local_tx: watch::Sender<NodeId>,
        members_tx: watch::Sender<Vec<NodeId>>,
    ) -> Self {
        let config = tuning.foca_config();
        let max_packet = config.max_packet_size.get();
        let seed = id.incarnation() ^ xxhash_rust::xxh3::xxh3_64(&id.placement_key());
        let foca = Foca::new(id, config, StdRng::seed_from_u64(seed), PostcardCodec);
        Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            socket,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            seeds,
            seed_retry: tuning.seed_retry,
            max_packet,
            local_tx,
            members_tx,
            active: false,
        }
    }

    /// Runs until a leave request is served or the handle is gone.
    pub(super) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut buf = vec![0u8; self.max_packet.max(2048)];
        let mut seed_tick = tokio::time::interval(self.seed_retry);
        seed_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Leave(ack)) => {
                        let result = self.foca.leave_cluster(&mut self.runtime);
                        log_error("leave", result);
                        self.flush().await;
                        let _ = ack.send(());
                        return;
                    }
                    None => return,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, _from)) => {
                        let result = self.foca.handle_data(&buf[..len], &mut self.runtime);
                        log_error("datagram", result);
                    }
                    // e.g. an ICMP port unreachable reported for an earlier send: not fatal.
                    Err(e) => tracing::debug!(error = %e, "cluster socket receive error"),
                },
                () = sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    self.fire_due_timers();
                }
                _ = seed_tick.tick() => self.reannounce(),
            }
            self.flush().await;
        }
    }

    /// Announces to the seeds while we know no member, and also to a few known members
    /// while foca is not active: after a rejoin under a renewed identity, foca waits
    /// for a message to reach the new identity, and if the few that carry it are lost it
    /// would otherwise stay silent until the next announce to down members.
    fn reannounce(&mut self) {
        if self.foca.num_members() > 0 && self.active {
            return;
        }
        let mut targets = self.seeds.clone();
        if !self.active {
            targets.extend(self.foca.iter_members().take(3).map(|m| *m.id()));
        }
        for target in targets {
            let result = self.foca.announce(target, &mut self.runtime);
            log_error("announce", result);
        }
    }

    /// Hands every timer event that is due to foca, in order.
    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, _, timer))) = self.timers.pop() {
                let result = self.foca.handle_timer(timer, &mut self.runtime);
                log_error("timer", result);
            }
        }
    }

    /// Sends what foca queued, schedules its timers and publishes membership changes.
    async fn flush(&mut self) {
        while let Some(notification) = self.runtime.to_notify() {
            tracing::debug!(?notification, "membership notification");
            match notification {
                OwnedNotification::Active => self.active = true,
                OwnedNotification::Idle
                | OwnedNotification::Defunct
                | OwnedNotification::Rejoin(_) => self.active = false,
                _ => {}
            }
        }
        while let Some((to, data)) = self.runtime.to_send() {
            if is_turn_undead(&data) && self.foca.iter_members().any(|m| *m.id() == to) {
                // foca 2.0.0 sends TurnUndead when a suspicion times out even if the member
                // refuted it in time: a live member would rejoin under a new identity.
                continue;
            }
            if let Err(e) = self.socket.send_to(&data, to.addr()).await {
                tracing::debug!(to = %to, error = %e, "cluster socket send error");
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timer_seq += 1;
            self.timers
                .push(Reverse((now + after, self.timer_seq, timer)));
        }
        self.publish();
    }

    /// Publishes our identity and the sorted live member list, if they changed.
    fn publish(&self) {
        let local = *self.foca.identity();
        self.local_tx.send_if_modified(|current| {
            let changed = *current != local;
            *current = local;
            changed
        });
        let mut members: Vec<NodeId> = self.foca.iter_members().map(|m| *m.id()).collect();
        members.push(local);
        members.sort_unstable();
        members.dedup();
        self.members_tx.send_if_modified(|current| {
            let changed = *current != members;
            if changed {
                *current = members;
            }
            changed
        });
    }
}

/// Whether a datagram foca produced is a `TurnUndead` message (telling its destination
/// that it was declared down).
pub(super) fn is_turn_undead(data: &[u8]) -> bool {
    let mut buf = data;
    matches!(
        Codec::<NodeId>::decode_header(&mut PostcardCodec, &mut buf),
        Ok(header) if header.message == Message::TurnUndead
    )
}

/// Foca's errors are about single bad packets or events; it stays usable, so log them.
fn log_error(what: &str, result: Result<(), foca::Error>) {
    if let Err(error) = result {
        tracing::debug!(%what, %error, "foca error");
    }
}

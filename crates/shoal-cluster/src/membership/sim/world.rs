//! A deterministic, seeded simulation of a cluster's membership layer: `foca` instances
//! configured exactly as in production (same [`SwimTuning::foca_config`], same `Identity`
//! impl for [`NodeId`], same RNG seeding and seed re-announce loop as the driver), a
//! virtual clock and a simulated datagram network.
//!
//! Nothing here touches real time, sockets or tokio: every datagram, foca timer and
//! seed re-announce tick is an event in one priority queue ordered by virtual time (then
//! by insertion order), and every random choice of the network comes from one seeded RNG,
//! so a run is a pure function of its seed and the scenario.
//!
//! The network delivers each datagram after a uniformly random latency, drops a fraction
//! of them, and drops every datagram whose sender and receiver are in different partition
//! groups at delivery time. A node is a slot with a fixed address (`10.0.0.<slot+1>:7000`);
//! it can be started (fresh incarnation, like a process start), crashed (it stops at once
//! and every datagram to it is lost), left (graceful `leave_cluster`), or paused (it
//! handles nothing; what it would have handled is kept and handled, in order, when it
//! resumes — like a `SIGSTOP`ped process whose socket buffer fills up).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::policy::{is_turn_undead, Policy};
use crate::membership::SwimTuning;
use crate::node::NodeId;

/// The same foca instantiation as the production driver.
type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

/// The network's behaviour.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Fraction of datagrams lost, `0.0..=1.0`.
    pub loss: f64,
    /// Smallest one-way latency.
    pub min_latency: Duration,
    /// Largest one-way latency.
    pub max_latency: Duration,
}

impl NetConfig {
    /// A LAN-like network: 0.1-2 ms latency with this loss rate.
    pub fn lan(loss: f64) -> Self {
        Self {
            loss,
            min_latency: Duration::from_micros(100),
            max_latency: Duration::from_millis(2),
        }
    }
}

/// The address of slot `slot`.
pub fn addr_of(slot: usize) -> SocketAddr {
    let host = u8::try_from(slot + 1).expect("at most 254 slots");
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), 7000))
}

/// The slot of an address made by [`addr_of`].
fn slot_of(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(a) if a.port() == 7000 => {
            let host = a.ip().octets()[3];
            usize::from(host).checked_sub(1)
        }
        _ => None,
    }
}

/// What happens at an instant.
#[derive(Clone, Debug)]
enum Event {
    /// A datagram arrives at an address.
    Datagram { from: usize, to: usize, data: Bytes },
    /// A foca timer of one life (`life`) of a node fires.
    Timer {
        slot: usize,
        life: u64,
        timer: Timer<NodeId>,
    },
    /// The driver's seed re-announce interval ticks.
    SeedTick { slot: usize, life: u64 },
}

impl Event {
    /// The slot that handles this event.
    fn slot(&self) -> usize {
        match self {
            Event::Datagram { to, .. } => *to,
            Event::Timer { slot, .. } | Event::SeedTick { slot, .. } => *slot,
        }
    }
}

/// An event at a virtual instant; `seq` keeps equal instants in insertion order.
struct Scheduled {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Whether a slot's process runs.
enum Run {
    /// Never started, crashed or left: datagrams to it are lost.
    Stopped,
    /// Handles events as they come.
    Running,
    /// Frozen: events for it are kept, in order, until it resumes.
    Paused(Vec<Event>),
}

/// One slot: a node process and its foca state.
struct Node {
    foca: Swim,
    runtime: AccumulatingRuntime<NodeId>,
    seeds: Vec<NodeId>,
    /// Which start of this slot the foca instance belongs to (stale timers are ignored).
    life: u64,
    run: Run,
    /// The live member list the driver would publish (sorted, self included).
    view: Vec<NodeId>,
    /// Whether foca last reported itself active (`Active` vs `Idle`, `Defunct`, `Rejoin`).
    active: bool,
    /// How often this life rejoined under a renewed identity (it was declared down).
    rejoins: u32,
}

/// A change of one node's published view.
#[derive(Clone, Debug)]
pub struct ViewChange {
    /// When it happened.
    pub at: Duration,
    /// Whose view changed.
    pub slot: usize,
    /// The new view.
    pub view: Vec<NodeId>,
}

/// The simulated cluster.
pub struct World {
    now: Duration,
    rng: StdRng,
    net: NetConfig,
    tuning: SwimTuning,
    policy: Policy,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    nodes: Vec<Option<Node>>,
    lives: u64,
    /// Partition group of each slot; `None` = no partition.
    groups: Option<Vec<usize>>,
    /// Every change of a running node's view, in order.
    pub log: Vec<ViewChange>,
    /// Print every handled event to stderr (for debugging a failing seed).
    pub trace: bool,
}

impl World {
    /// An empty world with the default (production) tuning.
    pub fn new(seed: u64, net: NetConfig) -> Self {
        Self {
            now: Duration::ZERO,
            rng: StdRng::seed_from_u64(seed),
            net,
            tuning: SwimTuning::default(),
            policy: Policy::from_env(),
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: Vec::new(),
            lives: 0,
            groups: None,
            log: Vec::new(),
            trace: std::env::var_os("SHOAL_SIM_TRACE").is_some(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The scenario's random source (the same seeded RNG as the network's).
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Starts a process at `slot` announcing to `seeds` (slots; its own is ignored, as the
    /// driver does), with a fresh incarnation above any earlier life at that address.
    /// Like the driver, it announces at once and again every `seed_retry` while it knows
    /// no member.
    pub fn start(&mut self, slot: usize, seeds: &[usize]) -> NodeId {
        if self.nodes.len() <= slot {
            self.nodes.resize_with(slot + 1, || None);
        }
        let addr = addr_of(slot);
        // Production uses wall-clock nanoseconds; the virtual clock plays that part.
        let mut incarnation = u64::try_from(self.now.as_nanos()).unwrap_or(u64::MAX) + 1;
        if let Some(old) = &self.nodes[slot] {
            assert!(matches!(old.run, Run::Stopped), "slot {slot} still runs");
            incarnation = incarnation.max(old.foca.identity().incarnation() + 1_000);
        }
        let id = NodeId::new(addr, incarnation);
        self.note(format_args!("start {slot} as {id}"));
        let config = self.policy.config(&self.tuning);
        let rng_seed = id.incarnation() ^ xxhash_rust::xxh3::xxh3_64(&id.placement_key());
        let foca = Foca::new(id, config, StdRng::seed_from_u64(rng_seed), PostcardCodec);
        let seeds = seeds
            .iter()
            .map(|s| addr_of(*s))
            .filter(|s| *s != addr)
            .map(|s| NodeId::new(s, 0))
            .collect();
        self.lives += 1;
        let life = self.lives;
        self.nodes[slot] = Some(Node {
            foca,
            runtime: AccumulatingRuntime::new(),
            seeds,
            life,
            run: Run::Running,
            view: vec![id],
            active: false,
            rejoins: 0,
        });
        self.log.push(ViewChange {
            at: self.now,
            slot,
            view: vec![id],
        });
        self.schedule(Duration::ZERO, Event::SeedTick { slot, life });
        id
    }

    /// Crashes the process at `slot`: it stops at once, without a word.
    pub fn crash(&mut self, slot: usize) {
        self.note(format_args!("crash {slot}"));
        let node = self.node_mut(slot);
        node.run = Run::Stopped;
    }

    /// Leaves gracefully, as `Membership::leave` does: foca declares itself down to a few
    /// members, the datagrams go out, and the process stops.
    pub fn leave(&mut self, slot: usize) {
        self.note(format_args!("leave {slot}"));
        let node = self.node_mut(slot);
        assert!(
            matches!(node.run, Run::Running),
            "slot {slot} is not running"
        );
        let _ = node.foca.leave_cluster(&mut node.runtime);
        self.flush(slot);
        self.node_mut(slot).run = Run::Stopped;
    }

    /// Freezes the process at `slot`.
    pub fn pause(&mut self, slot: usize) {
        self.note(format_args!("pause {slot}"));
        let node = self.node_mut(slot);
        assert!(
            matches!(node.run, Run::Running),
            "slot {slot} is not running"
        );
        node.run = Run::Paused(Vec::new());
    }

    /// Unfreezes the process at `slot`: what it missed is handled now, in order.
    pub fn resume(&mut self, slot: usize) {
        self.note(format_args!("resume {slot}"));
        let node = self.node_mut(slot);
        let Run::Paused(held) = std::mem::replace(&mut node.run, Run::Running) else {
            panic!("slot {slot} is not paused");
        };
        for event in held {
            self.schedule(Duration::ZERO, event);
        }
    }

    /// Splits the network: `groups[slot]` is the group of each slot (slots beyond the list
    /// are in group `usize::MAX`). Datagrams between groups are lost from now on.
    pub fn partition(&mut self, groups: Vec<usize>) {
        self.note(format_args!("partition {groups:?}"));
        self.groups = Some(groups);
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.note(format_args!("heal"));
        self.groups = None;
    }

    /// Whether the process at `slot` runs (paused counts as alive).
    pub fn is_alive(&self, slot: usize) -> bool {
        matches!(
            self.nodes.get(slot),
            Some(Some(Node {
                run: Run::Running | Run::Paused(_),
                ..
            }))
        )
    }

    /// The slots whose process runs or is paused.
    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|s| self.is_alive(*s))
            .collect()
    }

    /// The slots that were used at least once.
    pub fn slots(&self) -> usize {
        self.nodes.len()
    }

    /// The current identity of the process at `slot`.
    pub fn id(&self, slot: usize) -> NodeId {
        *self.node(slot).foca.identity()
    }

    /// How often the current life at `slot` rejoined under a renewed identity.
    pub fn rejoins(&self, slot: usize) -> u32 {
        self.node(slot).rejoins
    }

    /// The view the process at `slot` publishes (sorted live members, self included).
    pub fn view(&self, slot: usize) -> &[NodeId] {
        &self.node(slot).view
    }

    /// The current identities of `slots`, sorted: the view they should all agree on.
    pub fn ids_of(&self, slots: &[usize]) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = slots.iter().map(|s| self.id(*s)).collect();
        ids.sort_unstable();
        ids
    }

    /// Whether every one of `slots` publishes exactly the identities of `slots`.
    pub fn agree(&self, slots: &[usize]) -> bool {
        let expected = self.ids_of(slots);
        slots.iter().all(|s| self.view(*s) == expected.as_slice())
    }

    /// Prints a scenario step when tracing.
    fn note(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("{:?} ==== {what}", self.now);
        }
    }

    /// Handles events up to `until` (inclusive); the clock ends at `until`.
    pub fn run_until(&mut self, until: Duration) {
        while self.step(until) {}
        self.now = self.now.max(until);
    }

    /// Handles events until `done` holds or the clock passes `deadline`; returns the
    /// instant `done` first held. `done` must depend only on the nodes' views and
    /// identities: it is checked now and after every event that changed a view (an
    /// identity change always changes the node's own view).
    pub fn run_until_true(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> Option<Duration> {
        if done(self) {
            return Some(self.now);
        }
        let mut seen = self.log.len();
        while self.step(deadline) {
            if self.log.len() != seen {
                seen = self.log.len();
                if done(self) {
                    return Some(self.now);
                }
            }
        }
        self.now = self.now.max(deadline);
        None
    }

    /// Handles the next event if it is due by `until`; false when there is none.
    fn step(&mut self, until: Duration) -> bool {
        match self.queue.peek() {
            Some(next) if next.at <= until => {}
            _ => return false,
        }
        let Some(Scheduled { at, event, .. }) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        self.handle(event);
        true
    }

    /// Hands an event to its node, if that node can take it.
    fn handle(&mut self, event: Event) {
        let slot = event.slot();
        if let Event::Datagram { from, to, .. } = &event {
            if !self.connected(*from, *to) {
                return;
            }
        }
        let Some(Some(node)) = self.nodes.get_mut(slot) else {
            return;
        };
        match &mut node.run {
            Run::Stopped => return,
            Run::Paused(held) => {
                held.push(event);
                return;
            }
            Run::Running => {}
        }
        if self.trace {
            eprintln!("{:?} {slot} {}", self.now, describe(&event));
        }
        match event {
            Event::Datagram { data, .. } => {
                // Errors are about single bad datagrams; the driver logs and goes on.
                let _ = node.foca.handle_data(&data, &mut node.runtime);
            }
            Event::Timer { life, timer, .. } => {
                if life != node.life {
                    return;
                }
                let _ = node.foca.handle_timer(timer, &mut node.runtime);
            }
            Event::SeedTick { life, .. } => {
                if life != node.life {
                    return;
                }
                let inactive = self.policy.reannounce_while_inactive && !node.active;
                if node.foca.num_members() == 0 || inactive {
                    let mut targets = node.seeds.clone();
                    if inactive {
                        targets.extend(node.foca.iter_members().take(3).map(|m| *m.id()));
                    }
                    for target in targets {
                        let _ = node.foca.announce(target, &mut node.runtime);
                    }
                }
                let retry = self.tuning.seed_retry;
                self.schedule(retry, Event::SeedTick { slot, life });
            }
        }
        self.flush(slot);
    }

    /// Whether a datagram from `from` to `to` crosses no partition.
    fn connected(&self, from: usize, to: usize) -> bool {
        match &self.groups {
            None => true,
            Some(groups) => {
                let group = |s: usize| groups.get(s).copied().unwrap_or(usize::MAX);
                group(from) == group(to)
            }
        }
    }

    /// Carries out what foca asked for (datagrams, timers) and publishes the view, as the
    /// driver's `flush` does.
    fn flush(&mut self, slot: usize) {
        let mut sends = Vec::new();
        let mut timers = Vec::new();
        let life;
        let drop_stale_turn_undead = self.policy.drop_stale_turn_undead;
        {
            let node = self.node_mut(slot);
            while let Some(out) = node.runtime.to_send() {
                sends.push(out);
            }
            while let Some(timer) = node.runtime.to_schedule() {
                timers.push(timer);
            }
            while let Some(notification) = node.runtime.to_notify() {
                match notification {
                    OwnedNotification::Active => node.active = true,
                    OwnedNotification::Idle | OwnedNotification::Defunct => node.active = false,
                    OwnedNotification::Rejoin(_) => {
                        node.active = false;
                        node.rejoins += 1;
                    }
                    _ => {}
                }
            }
            if drop_stale_turn_undead {
                let foca = &node.foca;
                sends.retain(|(to, data)| {
                    !(is_turn_undead(data) && foca.iter_members().any(|m| m.id() == to))
                });
            }
            life = node.life;
        }
        for (to, data) in sends {
            if self.rng.random_bool(self.net.loss) {
                continue;
            }
            let Some(to) = slot_of(to.addr()) else {
                continue;
            };
            let latency = self
                .rng
                .random_range(self.net.min_latency..=self.net.max_latency);
            self.schedule(
                latency,
                Event::Datagram {
                    from: slot,
                    to,
                    data,
                },
            );
        }
        for (after, timer) in timers {
            self.schedule(after, Event::Timer { slot, life, timer });
        }
        self.publish(slot);
    }

    /// Recomputes the view of `slot` and logs it if it changed.
    fn publish(&mut self, slot: usize) {
        let now = self.now;
        let node = self.node_mut(slot);
        let local = *node.foca.identity();
        let mut members: Vec<NodeId> = node.foca.iter_members().map(|m| *m.id()).collect();
        members.push(local);
        members.sort_unstable();
        members.dedup();
        if members != node.view {
            node.view = members.clone();
            self.log.push(ViewChange {
                at: now,
                slot,
                view: members,
            });
        }
    }

    /// Queues an event `after` from now.
    fn schedule(&mut self, after: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after,
            seq: self.seq,
            event,
        });
    }

    fn node(&self, slot: usize) -> &Node {
        self.nodes
            .get(slot)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("slot {slot} was never started"))
    }

    fn node_mut(&mut self, slot: usize) -> &mut Node {
        self.nodes
            .get_mut(slot)
            .and_then(Option::as_mut)
            .unwrap_or_else(|| panic!("slot {slot} was never started"))
    }
}

/// A readable form of an event, decoding datagrams, for traces.
fn describe(event: &Event) -> String {
    use bytes::Buf;
    use foca::Codec;
    match event {
        Event::Datagram { from, data, .. } => {
            let mut buf: &[u8] = data;
            let mut codec = PostcardCodec;
            let Ok(header) = Codec::<NodeId>::decode_header(&mut codec, &mut buf) else {
                return format!("undecodable datagram from {from}");
            };
            let mut updates = Vec::new();
            if buf.remaining() >= 2 {
                for _ in 0..buf.get_u16() {
                    match Codec::<NodeId>::decode_member(&mut codec, &mut buf) {
                        Ok(m) => {
                            updates.push(format!("{}@{}:{:?}", m.id(), m.incarnation(), m.state()))
                        }
                        Err(_) => break,
                    }
                }
            }
            format!(
                "<- {}@{} to {} {:?} {updates:?}",
                header.src, header.src_incarnation, header.dst, header.message
            )
        }
        Event::Timer { timer, .. } => format!("timer {timer:?}"),
        Event::SeedTick { .. } => "seed tick".to_owned(),
    }
}

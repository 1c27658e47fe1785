//! The simulator's network: an in-memory [`PeerTransport`] between routers on one tokio
//! thread with paused time. Like the TCP transport, it keeps each sender's requests to
//! one receiver in order (one lane per ordered pair, delivered one at a time, each after
//! a seeded latency) and answers out of order. A cut between two nodes holds their
//! traffic until the heal (TCP retransmits); a crashed node refuses connections, and the
//! requests waiting on it fail as a reset connection would.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::router::message::{PeerEnvelope, PeerReply};
use crate::router::transport::{PeerCall, PeerTransport};
use crate::router::Router;
use crate::rpc::RpcError;

/// How often held traffic looks again for a heal.
const HOLD_POLL: Duration = Duration::from_millis(10);

/// One request on its way.
struct Delivery {
    envelope: PeerEnvelope,
    reply: oneshot::Sender<PeerReply>,
}

/// A node's place on the network: its router while it runs, and the tasks serving its
/// peers (aborted when it crashes).
#[derive(Default)]
struct Slot {
    router: Option<Arc<Router>>,
    /// Bumped at every crash: work of an earlier life is not delivered.
    life: u64,
    serving: Vec<AbortHandle>,
}

struct Inner {
    rng: StdRng,
    slots: BTreeMap<SocketAddr, Slot>,
    /// Unordered pairs that cannot talk.
    cut: BTreeSet<(SocketAddr, SocketAddr)>,
    lanes: BTreeMap<(SocketAddr, SocketAddr), mpsc::UnboundedSender<Delivery>>,
}

/// The network.
pub(crate) struct Net {
    inner: Mutex<Inner>,
}

fn pair(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Net {
    pub(crate) fn new(rng: StdRng) -> Arc<Net> {
        Arc::new(Net {
            inner: Mutex::new(Inner {
                rng,
                slots: BTreeMap::new(),
                cut: BTreeSet::new(),
                lanes: BTreeMap::new(),
            }),
        })
    }

    /// A latency: mostly a millisecond or two, sometimes tens.
    fn latency(&self) -> Duration {
        let mut inner = self.inner.lock();
        let micros = if inner.rng.random_bool(0.05) {
            inner.rng.random_range(5_000..50_000u64)
        } else {
            inner.rng.random_range(100..2_000u64)
        };
        Duration::from_micros(micros)
    }

    /// Puts `router` on the network at `addr` (a start or a restart).
    pub(crate) fn attach(&self, addr: SocketAddr, router: Arc<Router>) {
        let mut inner = self.inner.lock();
        let slot = inner.slots.entry(addr).or_default();
        slot.router = Some(router);
    }

    /// Takes the node at `addr` off the network at once, as a crash: what it was serving
    /// stops, and requests waiting on it fail.
    pub(crate) fn crash(&self, addr: SocketAddr) {
        let mut inner = self.inner.lock();
        let slot = inner.slots.entry(addr).or_default();
        slot.router = None;
        slot.life += 1;
        for task in slot.serving.drain(..) {
            task.abort();
        }
        // Lanes to and from it are dropped: their queued requests fail.
        inner
            .lanes
            .retain(|(from, to), _| *from != addr && *to != addr);
    }

    /// Whether the node at `addr` runs, and in which life.
    fn life(&self, addr: SocketAddr) -> Option<u64> {
        let inner = self.inner.lock();
        inner
            .slots
            .get(&addr)
            .and_then(|s| s.router.as_ref().map(|_| s.life))
    }

    /// Cuts (or heals) the link between `a` and `b`.
    pub(crate) fn set_cut(&self, a: SocketAddr, b: SocketAddr, cut: bool) {
        let mut inner = self.inner.lock();
        if cut {
            inner.cut.insert(pair(a, b));
        } else {
            inner.cut.remove(&pair(a, b));
        }
    }

    /// Whether `a` and `b` can talk.
    pub(crate) fn linked(&self, a: SocketAddr, b: SocketAddr) -> bool {
        !self.inner.lock().cut.contains(&pair(a, b))
    }

    /// Waits until `a` and `b` can talk.
    async fn hold(&self, a: SocketAddr, b: SocketAddr) {
        while !self.linked(a, b) {
            tokio::time::sleep(HOLD_POLL).await;
        }
    }

    /// The transport the node at `from` sends through.
    pub(crate) fn transport(self: &Arc<Self>, from: SocketAddr) -> Arc<SimTransport> {
        Arc::new(SimTransport {
            net: Arc::clone(self),
            from,
            life: self.inner.lock().slots.get(&from).map_or(0, |s| s.life),
        })
    }

    /// The lane from `from` to `to`, started on first use: delivers in order, one at a
    /// time, each after a latency; hands each request to the receiver's router (which
    /// applies its changes before the next) and sends the answer back after another
    /// latency.
    fn lane(self: &Arc<Self>, from: SocketAddr, to: SocketAddr) -> mpsc::UnboundedSender<Delivery> {
        let mut inner = self.inner.lock();
        if let Some(lane) = inner.lanes.get(&(from, to)) {
            return lane.clone();
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        inner.lanes.insert((from, to), tx.clone());
        let lives = |a: SocketAddr| inner.slots.get(&a).map_or(0, |s| s.life);
        let (from_life, to_life) = (lives(from), lives(to));
        drop(inner);
        let net = Arc::clone(self);
        let task = tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                tokio::time::sleep(net.latency()).await;
                net.hold(from, to).await;
                // Either end crashed meanwhile: the connection is gone, the call fails.
                if net.life(from) != Some(from_life) {
                    continue;
                }
                let Some((router, life)) = net.router_of(to).filter(|(_, l)| *l == to_life) else {
                    continue;
                };
                let answer = router.handle_peer(delivery.envelope);
                let back = Arc::clone(&net);
                let reply = delivery.reply;
                let serving = tokio::spawn(async move {
                    let answer = answer.await;
                    tokio::time::sleep(back.latency()).await;
                    back.hold(from, to).await;
                    if back.life(to) == Some(life) {
                        let _ = reply.send(answer);
                    }
                });
                net.serving(to, life, serving.abort_handle());
            }
        });
        self.serving(to, self.life(to).unwrap_or(0), task.abort_handle());
        tx
    }

    fn router_of(&self, addr: SocketAddr) -> Option<(Arc<Router>, u64)> {
        let inner = self.inner.lock();
        let slot = inner.slots.get(&addr)?;
        slot.router.clone().map(|r| (r, slot.life))
    }

    /// Records a task serving `addr`'s peers in its life `life`, to abort at its crash.
    fn serving(&self, addr: SocketAddr, life: u64, task: AbortHandle) {
        let mut inner = self.inner.lock();
        let slot = inner.slots.entry(addr).or_default();
        if slot.life == life {
            slot.serving.retain(|t| !t.is_finished());
            slot.serving.push(task);
        } else {
            task.abort();
        }
    }
}

/// One node's way onto the network.
pub(crate) struct SimTransport {
    net: Arc<Net>,
    from: SocketAddr,
    /// The life of the sender this transport belongs to: a crashed node's leftover
    /// tasks send nothing.
    life: u64,
}

impl PeerTransport for SimTransport {
    fn send(&self, to: SocketAddr, envelope: PeerEnvelope) -> PeerCall {
        let refused = || {
            Box::pin(async {
                Err(RpcError::Connect(io::Error::from(
                    io::ErrorKind::ConnectionRefused,
                )))
            }) as PeerCall
        };
        if self.net.life(self.from) != Some(self.life) || self.net.life(to).is_none() {
            return refused();
        }
        let (reply, answer) = oneshot::channel();
        if self
            .net
            .lane(self.from, to)
            .send(Delivery { envelope, reply })
            .is_err()
        {
            return refused();
        }
        Box::pin(async move { answer.await.map_err(|_| RpcError::Closed) })
    }
}

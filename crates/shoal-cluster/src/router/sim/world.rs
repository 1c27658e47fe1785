//! The simulated cluster: real [`Router`]s over real stores on the in-memory network
//! ([`super::net`]), a membership stand-in that gives each node the live members it can
//! reach after its own seeded detection delay (so views disagree for a while, as with
//! gossip), clients that keep a model of what they were told, and the faults: crash,
//! restart empty, join, graceful leave, a node cut off and healed.
//!
//! Membership is modelled, not run: foca has its own simulator (`membership::sim`), and
//! what the router must survive is what membership hands it — views that change late and
//! differently on each node, members that come back under a new incarnation (a restart,
//! or a node the others declared down that rejoins after a heal).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal_command::{
    Arith, ArithOp, ArithOutcome, Command, Delete, DeleteOutcome, FlagOrder, Get, Outcome,
    ReadOptions, Store as StoreCmd, StoreMode, StoreOutcome,
};
use shoal_store::{Store, StoreConfig};
use tokio::sync::watch;
use tokio::time::Instant;

use super::net::Net;
use crate::node::NodeId;
use crate::router::{Router, RouterConfig, RouterTasks};

/// How long a client waits for one command.
const OP_TIMEOUT: Duration = Duration::from_secs(20);

/// One node slot of the world.
struct SimNode {
    id: NodeId,
    router: Option<Arc<Router>>,
    tasks: Option<RouterTasks>,
    local_tx: watch::Sender<NodeId>,
    members_tx: watch::Sender<Vec<NodeId>>,
    /// The members this node was last given.
    view: Vec<NodeId>,
    /// A view it will be given, and when.
    pending: Option<(Vec<NodeId>, Instant)>,
    /// Some member dropped it from its view while it ran: it rejoins under a new
    /// incarnation once it can reach everyone again.
    declared_down: bool,
}

/// What the clients were told about one key.
#[derive(Debug, Clone)]
struct KeyModel {
    /// The values the key may hold now (None: absent).
    possible: BTreeSet<Option<Vec<u8>>>,
}

/// What the clients were told about one counter: acknowledged increments and those
/// whose answer never came.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    acked: u64,
    unclear: u64,
}

/// The model of everything clients were told.
#[derive(Debug, Default)]
struct Model {
    keys: BTreeMap<String, KeyModel>,
    counters: BTreeMap<String, Counter>,
    cas_wins: u64,
    cas_unclear: u64,
    violations: Vec<String>,
}

/// The simulated cluster.
pub(crate) struct World {
    net: Arc<Net>,
    rng: Mutex<StdRng>,
    nodes: Mutex<BTreeMap<SocketAddr, SimNode>>,
    config: RouterConfig,
    model: Mutex<Model>,
    next_port: Mutex<u16>,
    trace: bool,
    started: Instant,
    /// Clients start no command while set (a flush runs with no command in flight).
    quiet: AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
    /// Nodes whose view is frozen (they do not notice being cut off: a stalled VM).
    frozen: Mutex<BTreeSet<SocketAddr>>,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, 1], port))
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(key: &str, value: &[u8]) -> Command {
    Command::Store(StoreCmd {
        mode: StoreMode::Set,
        key: bytes(key),
        flags: 0,
        exptime: 0,
        data: Bytes::copy_from_slice(value),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    })
}

fn cas(key: &str, value: &[u8], token: u64) -> Command {
    match set(key, value) {
        Command::Store(mut store) => {
            store.compare_cas = Some(token);
            Command::Store(store)
        }
        _ => unreachable!(),
    }
}

fn delete(key: &str) -> Command {
    Command::Delete(Delete {
        key: bytes(key),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        clear_value: false,
        touch: None,
    })
}

fn incr(key: &str) -> Command {
    Command::Arith(Arith {
        key: bytes(key),
        op: ArithOp::Incr,
        delta: 1,
        compare_cas: None,
        new_cas: None,
        vivify: None,
        touch: None,
        order: FlagOrder::default(),
    })
}

fn get(key: &str) -> Command {
    Command::Get(Get {
        keys: vec![bytes(key)],
        options: ReadOptions::default(),
    })
}

impl World {
    pub(crate) fn new(seed: u64, trace: bool) -> Arc<World> {
        let config = RouterConfig {
            replicas: 2,
            bootstrap_wait: Duration::from_millis(500),
            repair_interval: Duration::from_secs(3),
            offload_scans: false,
            ..RouterConfig::default()
        };
        Arc::new(World {
            net: Net::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            nodes: Mutex::new(BTreeMap::new()),
            config,
            model: Mutex::new(Model::default()),
            next_port: Mutex::new(7000),
            trace,
            started: Instant::now(),
            quiet: AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            frozen: Mutex::new(BTreeSet::new()),
        })
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!(
                "[{:>8.3}s] {}",
                self.started.elapsed().as_secs_f64(),
                what()
            );
        }
    }

    pub(crate) fn range(&self, range: std::ops::Range<u64>) -> u64 {
        self.rng.lock().random_range(range)
    }

    /// Starts a router at `at` with an empty store and identity `id`.
    fn boot(&self, id: NodeId, joining: bool) -> SimNode {
        let (local_tx, local_rx) = watch::channel(id);
        let (members_tx, members_rx) = watch::channel(vec![id]);
        let store = Arc::new(Store::new(StoreConfig::default()));
        let transport = self.net.transport(id.addr());
        let (router, tasks) = Router::start_with_transport(
            store,
            local_rx,
            members_rx,
            transport,
            self.config.clone(),
            joining,
        );
        self.net.attach(id.addr(), Arc::clone(&router));
        SimNode {
            id,
            router: Some(router),
            tasks: Some(tasks),
            local_tx,
            members_tx,
            view: vec![id],
            pending: None,
            declared_down: false,
        }
    }

    /// Adds a new node (the first founds the cluster, the others join).
    pub(crate) fn add_node(&self) -> SocketAddr {
        let port = {
            let mut next = self.next_port.lock();
            *next += 1;
            *next
        };
        let joining = !self.nodes.lock().is_empty();
        let id = NodeId::new(addr(port), 1);
        let node = self.boot(id, joining);
        self.nodes.lock().insert(id.addr(), node);
        self.log(|| format!("start {id}"));
        id.addr()
    }

    /// Crashes the node at `at`: its process is gone, its store with it.
    pub(crate) fn crash(&self, at: SocketAddr) {
        self.net.crash(at);
        let mut nodes = self.nodes.lock();
        if let Some(node) = nodes.get_mut(&at) {
            node.router = None;
            node.tasks = None;
            node.pending = None;
        }
        drop(nodes);
        self.log(|| format!("crash {at}"));
    }

    /// Restarts a crashed node with an empty store and the next incarnation.
    pub(crate) fn restart(&self, at: SocketAddr) {
        let id = {
            let nodes = self.nodes.lock();
            let old = nodes[&at].id;
            NodeId::new(at, old.incarnation() + 1000)
        };
        let node = self.boot(id, true);
        self.nodes.lock().insert(at, node);
        self.log(|| format!("restart {id} empty"));
    }

    /// Stops the node at `at` gracefully: waits for its partitions to be held
    /// elsewhere, says it leaves, then goes.
    pub(crate) async fn leave(&self, at: SocketAddr) {
        let Some(router) = self.router(at) else {
            return;
        };
        self.log(|| format!("leave {at}: draining"));
        router.drain(Duration::from_secs(60)).await;
        router.announce_leave().await;
        self.net.crash(at);
        let mut nodes = self.nodes.lock();
        nodes.remove(&at);
        drop(nodes);
        self.log(|| format!("left {at}"));
    }

    /// Cuts `at` off from every other node (clients still reach it), or heals it.
    pub(crate) fn isolate(&self, at: SocketAddr, cut: bool) {
        let others: Vec<SocketAddr> = self.nodes.lock().keys().copied().collect();
        for other in others.into_iter().filter(|o| *o != at) {
            self.net.set_cut(at, other, cut);
        }
        self.log(|| format!("{} {at}", if cut { "cut off" } else { "heal" }));
    }

    /// Addresses of the running nodes.
    pub(crate) fn running(&self) -> Vec<SocketAddr> {
        let nodes = self.nodes.lock();
        nodes
            .iter()
            .filter(|(_, n)| n.router.is_some())
            .map(|(a, _)| *a)
            .collect()
    }

    /// Every node slot, running or crashed.
    pub(crate) fn slots(&self) -> Vec<SocketAddr> {
        self.nodes.lock().keys().copied().collect()
    }

    fn router(&self, at: SocketAddr) -> Option<Arc<Router>> {
        self.nodes.lock().get(&at).and_then(|n| n.router.clone())
    }

    /// The membership stand-in, every 50 ms: each running node is given the running
    /// nodes it can reach, after a delay of its own (0.8-1.5 s to notice a member gone,
    /// 0.1-1.2 s to see a new one); a node that
    /// some member dropped while it ran rejoins under the next incarnation once it can
    /// reach every running node.
    pub(crate) async fn membership(self: Arc<Self>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = Instant::now();
            let mut nodes = self.nodes.lock();
            let running: Vec<(SocketAddr, NodeId)> = nodes
                .iter()
                .filter(|(_, n)| n.router.is_some())
                .map(|(a, n)| (*a, n.id))
                .collect();
            // Rejoins first: a node declared down that reaches everyone again.
            for (at, _) in &running {
                let healed = running.iter().all(|(o, _)| self.net.linked(*at, *o));
                let node = nodes.get_mut(at).expect("running node");
                if node.declared_down && healed {
                    node.declared_down = false;
                    node.id = node.id.bumped();
                    node.local_tx.send_replace(node.id);
                    let id = node.id;
                    self.log(|| format!("rejoin as {id}"));
                }
            }
            let running: Vec<(SocketAddr, NodeId)> = nodes
                .iter()
                .filter(|(_, n)| n.router.is_some())
                .map(|(a, n)| (*a, n.id))
                .collect();
            let mut dropped = Vec::new();
            for (at, _) in &running {
                if self.frozen.lock().contains(at) {
                    continue;
                }
                let target: Vec<NodeId> = running
                    .iter()
                    .filter(|(o, _)| o == at || self.net.linked(*at, *o))
                    .map(|(_, id)| *id)
                    .collect();
                let node = nodes.get_mut(at).expect("running node");
                // A member is declared down only after it stayed silent through a probe
                // and the suspicion time (SWIM: 0.75 s at the least); news of a member
                // (a join, a rejoin) travels faster.
                let removes = node
                    .view
                    .iter()
                    .any(|m| !target.iter().any(|t| t.addr() == m.addr()));
                let delay = Duration::from_millis(if removes {
                    self.range(800..1500)
                } else {
                    self.range(100..1200)
                });
                if node.view == target {
                    node.pending = None;
                    continue;
                }
                match &node.pending {
                    Some((pending, due)) if *pending == target => {
                        if now < *due {
                            continue;
                        }
                    }
                    _ => {
                        node.pending = Some((target, now + delay));
                        continue;
                    }
                }
                for member in &node.view {
                    let still = target.iter().any(|t| t.addr() == member.addr());
                    if !still && running.iter().any(|(o, _)| *o == member.addr()) {
                        dropped.push(member.addr());
                    }
                }
                node.view = target.clone();
                node.pending = None;
                node.members_tx.send_replace(target.clone());
                let (me, n) = (*at, target.len());
                self.log(|| format!("{me} now sees {n} members"));
            }
            for at in dropped {
                if let Some(node) = nodes.get_mut(&at) {
                    node.declared_down = true;
                }
            }
        }
    }

    /// Whether every running node sees exactly the running nodes, acts on its view and
    /// pulls nothing.
    pub(crate) fn settled(&self) -> bool {
        let nodes = self.nodes.lock();
        let running: Vec<NodeId> = nodes
            .values()
            .filter(|n| n.router.is_some())
            .map(|n| n.id)
            .collect();
        nodes.values().filter(|n| n.router.is_some()).all(|n| {
            let status = n.router.as_ref().expect("running").status();
            n.view == running && !n.declared_down && status.ready && status.syncing == 0
        })
    }

    /// Waits until [`World::settled`] holds (checked every 100 ms), up to `limit`.
    pub(crate) async fn settle(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.settled() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// A random running node's router, and its address.
    fn pick(&self) -> Option<(SocketAddr, Arc<Router>)> {
        let running = self.running();
        if running.is_empty() {
            return None;
        }
        let at = running[self.range(0..running.len() as u64) as usize];
        self.router(at).map(|r| (at, r))
    }

    /// Runs one command through a random running node; None when no answer counts (a
    /// timeout, or the node crashed before answering).
    async fn run(&self, command: Command) -> Option<Outcome> {
        let (at, router) = self.pick()?;
        let what = if self.trace {
            let owners: Vec<u16> = super::super::key_of(&command)
                .map(|k| {
                    router
                        .view()
                        .owners(crate::placement::partition_of(k))
                        .iter()
                        .map(|o| o.addr().port())
                        .collect()
                })
                .unwrap_or_default();
            let text: String = format!("{command:?}").chars().take(60).collect();
            format!("{text} owners {owners:?}")
        } else {
            String::new()
        };
        let outcome = tokio::time::timeout(OP_TIMEOUT, router.execute(command))
            .await
            .ok();
        self.log(|| {
            format!(
                "{at} {what} -> {:?}",
                outcome
                    .as_ref()
                    .map(|o| format!("{o:?}").chars().take(50).collect::<String>())
            )
        });
        let outcome = outcome?;
        // An answer from a node that crashed meanwhile never reached the client.
        let same = self
            .router(at)
            .is_some_and(|now| Arc::ptr_eq(&now, &router));
        same.then_some(outcome)
    }

    /// Sets up client `c`'s keys and counter, and the shared CAS key.
    pub(crate) async fn client_setup(&self, c: usize, keys: usize) {
        for k in 0..keys {
            let key = format!("c{c}-k{k}");
            self.model.lock().keys.insert(
                key,
                KeyModel {
                    possible: [None].into(),
                },
            );
        }
        let counter = format!("c{c}-ctr");
        loop {
            if let Some(Outcome::Stored(StoreOutcome::Stored { .. })) =
                self.run(set(&counter, b"0")).await
            {
                break;
            }
        }
        self.model
            .lock()
            .counters
            .insert(counter, Counter::default());
        if c == 0 {
            loop {
                if let Some(Outcome::Stored(StoreOutcome::Stored { .. })) =
                    self.run(set("shared-cas", b"0")).await
                {
                    break;
                }
            }
        }
    }

    /// Client `c`: random commands on its own keys (so each key's history is one line)
    /// and CAS increments on the shared key, until `stop`.
    pub(crate) async fn client(self: Arc<Self>, c: usize, keys: usize, stop: Arc<AtomicBool>) {
        let mut serial = 0u64;
        while !stop.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(self.range(5..60))).await;
            if self.quiet.load(Ordering::Acquire) {
                continue;
            }
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            serial += 1;
            let roll = self.range(0..100);
            let key = format!("c{c}-k{}", self.range(0..keys as u64));
            if roll < 35 {
                let value = format!("c{c}-v{serial}").into_bytes();
                let outcome = self.run(set(&key, &value)).await;
                self.record_set(&key, value, outcome);
            } else if roll < 50 {
                let outcome = self.run(get(&key)).await;
                self.check_read(&key, outcome);
            } else if roll < 65 {
                let outcome = self.run(delete(&key)).await;
                self.record_delete(&key, outcome);
            } else if roll < 85 {
                let counter = format!("c{c}-ctr");
                let outcome = self.run(incr(&counter)).await;
                self.record_incr(&counter, outcome);
            } else {
                self.cas_increment().await;
            }
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// `flush_all` with no client command in flight: every key is then absent (or, if
    /// the flush got no clear answer, may be), and the counters start again from 0.
    pub(crate) async fn flush(&self) -> bool {
        self.quiet.store(true, Ordering::Release);
        while self.in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let flush = Command::FlushAll(shoal_command::FlushAll { delay: 0 });
        let outcome = self.run(flush).await;
        let acked = matches!(outcome, Some(Outcome::Ok));
        self.log(|| format!("flush_all -> {outcome:?}"));
        {
            let mut model = self.model.lock();
            for key in model.keys.values_mut() {
                if acked {
                    key.possible = [None].into();
                } else {
                    key.possible.insert(None);
                }
            }
            model.counters.clear();
            model.cas_wins = 0;
            model.cas_unclear = 0;
        }
        let clients: Vec<String> = {
            let model = self.model.lock();
            model
                .keys
                .keys()
                .map(|k| k.split('-').next().unwrap_or("").to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        for client in clients {
            let counter = format!("{client}-ctr");
            self.store_exactly(&counter, b"0").await;
            self.model
                .lock()
                .counters
                .insert(counter, Counter::default());
        }
        self.store_exactly("shared-cas", b"0").await;
        self.quiet.store(false, Ordering::Release);
        acked
    }

    /// Sets `key` to `value` until a set of it is acknowledged.
    async fn store_exactly(&self, key: &str, value: &[u8]) {
        loop {
            if let Some(Outcome::Stored(StoreOutcome::Stored { .. })) =
                self.run(set(key, value)).await
            {
                return;
            }
        }
    }

    /// Freezes (or thaws) `at`: cut off from every node while its own view stays as it
    /// was, as a stalled VM's would; what was sent to it waits, and is delivered on thaw.
    pub(crate) fn freeze(&self, at: SocketAddr, frozen: bool) {
        if frozen {
            self.frozen.lock().insert(at);
        } else {
            self.frozen.lock().remove(&at);
        }
        self.isolate(at, frozen);
    }

    fn record_set(&self, key: &str, value: Vec<u8>, outcome: Option<Outcome>) {
        let mut model = self.model.lock();
        let entry = model.keys.get_mut(key).expect("a client's key");
        match outcome {
            Some(Outcome::Stored(StoreOutcome::Stored { .. })) => {
                entry.possible = [Some(value)].into();
            }
            _ => {
                entry.possible.insert(Some(value));
            }
        }
    }

    /// A read of a key only this client writes must see what the client was told last
    /// (or a write whose answer never came): anything else is a stale or lost value.
    fn check_read(&self, key: &str, outcome: Option<Outcome>) {
        let Some(Outcome::Values(mut values)) = outcome else {
            return;
        };
        let value = values.pop().flatten().map(|item| item.value.to_vec());
        let mut model = self.model.lock();
        let possible = &model.keys[key].possible;
        if !possible.contains(&value) {
            let line = format!(
                "get {key} at {:?} read {:?}, the client was told one of {:?}",
                self.started.elapsed(),
                value.map(|v| String::from_utf8_lossy(&v).to_string()),
                possible
                    .iter()
                    .map(|p| p.as_ref().map(|v| String::from_utf8_lossy(v).to_string()))
                    .collect::<Vec<_>>()
            );
            model.violations.push(line);
        }
    }

    fn record_delete(&self, key: &str, outcome: Option<Outcome>) {
        let mut model = self.model.lock();
        let entry = model.keys.get_mut(key).expect("a client's key");
        match outcome {
            Some(Outcome::Deleted(DeleteOutcome::Deleted)) => entry.possible = [None].into(),
            Some(Outcome::Deleted(DeleteOutcome::NotFound)) => {
                if !entry.possible.contains(&None) {
                    let line = format!(
                        "delete {key} at {:?}: NOT_FOUND, but it was acknowledged stored as one of {:?}",
                        self.started.elapsed(),
                        entry.possible
                    );
                    model.violations.push(line);
                }
                let entry = model.keys.get_mut(key).expect("a client's key");
                entry.possible = [None].into();
            }
            _ => {
                entry.possible.insert(None);
            }
        }
    }

    fn record_incr(&self, counter: &str, outcome: Option<Outcome>) {
        let mut model = self.model.lock();
        let before = model.counters[counter];
        match outcome {
            Some(Outcome::Arith(ArithOutcome::Value { value, .. })) => {
                if value < before.acked + 1 || value > before.acked + before.unclear + 1 {
                    let line = format!(
                        "incr {counter} answered {value}: {} acknowledged before, {} unclear",
                        before.acked, before.unclear
                    );
                    model.violations.push(line);
                }
                model.counters.get_mut(counter).expect("counter").acked += 1;
            }
            Some(Outcome::Arith(other)) => {
                let line = format!("incr {counter} answered {other:?}");
                model.violations.push(line);
            }
            _ => model.counters.get_mut(counter).expect("counter").unclear += 1,
        }
    }

    /// gets + cas +1 on the shared key.
    async fn cas_increment(&self) {
        let Some(Outcome::Values(values)) = self.run(get("shared-cas")).await else {
            return;
        };
        let Some(Some(item)) = values.into_iter().next() else {
            self.model
                .lock()
                .violations
                .push("shared-cas is missing".to_string());
            return;
        };
        let n: u64 = String::from_utf8_lossy(&item.value).parse().unwrap_or(0);
        let next = (n + 1).to_string();
        let outcome = self.run(cas("shared-cas", next.as_bytes(), item.cas)).await;
        let mut model = self.model.lock();
        match outcome {
            Some(Outcome::Stored(StoreOutcome::Stored { .. })) => model.cas_wins += 1,
            Some(Outcome::Stored(_)) => {}
            _ => model.cas_unclear += 1,
        }
    }

    /// Reads every key, counter and the CAS key through every running node and checks
    /// them against the model; the violations found (with those seen while running).
    pub(crate) async fn check(&self) -> Vec<String> {
        let mut violations = std::mem::take(&mut self.model.lock().violations);
        let (keys, counters, cas_wins, cas_unclear) = {
            let m = self.model.lock();
            (
                m.keys.clone(),
                m.counters.clone(),
                m.cas_wins,
                m.cas_unclear,
            )
        };
        for at in self.running() {
            let Some(router) = self.router(at) else {
                continue;
            };
            let read = |key: String| {
                let router = Arc::clone(&router);
                async move {
                    match router.execute(get(&key)).await {
                        Outcome::Values(mut v) => Ok(v.pop().flatten().map(|i| i.value.to_vec())),
                        other => Err(format!("get {key} through {at}: {other:?}")),
                    }
                }
            };
            for (key, model) in &keys {
                match read(key.clone()).await {
                    Ok(value) if model.possible.contains(&value) => {}
                    Ok(value) => violations.push(format!(
                        "{key} through {at}: {:?}, the client was told one of {:?}",
                        value.map(|v| String::from_utf8_lossy(&v).to_string()),
                        model
                            .possible
                            .iter()
                            .map(|p| p.as_ref().map(|v| String::from_utf8_lossy(v).to_string()))
                            .collect::<Vec<_>>()
                    )),
                    Err(e) => violations.push(e),
                }
            }
            for (counter, c) in &counters {
                match read(counter.clone()).await {
                    Ok(Some(v)) => {
                        let n: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(u64::MAX);
                        if n < c.acked || n > c.acked + c.unclear {
                            violations.push(format!(
                                "{counter} through {at} is {n}: {} increments acknowledged, {} unclear",
                                c.acked, c.unclear
                            ));
                        }
                    }
                    other => violations.push(format!("{counter} through {at}: {other:?}")),
                }
            }
            match read("shared-cas".to_string()).await {
                Ok(Some(v)) => {
                    let n: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(u64::MAX);
                    if n < cas_wins || n > cas_wins + cas_unclear {
                        violations.push(format!(
                            "shared-cas through {at} is {n}: {cas_wins} cas won, {cas_unclear} unclear"
                        ));
                    }
                }
                other => violations.push(format!("shared-cas through {at}: {other:?}")),
            }
        }
        violations
    }

    /// Figures for the report: (acknowledged-or-not ops are in the model) keys, cas wins.
    pub(crate) fn figures(&self) -> (usize, u64, u64) {
        let m = self.model.lock();
        let incrs = m.counters.values().map(|c| c.acked).sum();
        (m.keys.len(), incrs, m.cas_wins)
    }
}

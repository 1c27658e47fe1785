//! The router's deterministic simulation: real routers and stores on one tokio thread
//! with paused time, an in-memory network ([`net`]) and a membership stand-in
//! ([`world`]), driven through seeded fault schedules and checked against what the
//! clients were told.
//!
//! Each seed: 3-4 nodes (R=2) form a cluster; three clients run sets, deletes,
//! increments and gets+CAS through random nodes; one fault at a time — a crash followed
//! by a restart with an empty store, a join, a graceful leave, a node cut off from the
//! others and healed, a node frozen (cut off while its own view stays as it was, as a
//! stalled VM's; what was sent to it is delivered when it thaws), a `flush_all` (with no
//! client command in flight) — with the cluster left to settle (every view agrees,
//! nothing is pulled) before the next, as R=2 promises to survive one failure at a time.
//! At the end
//! every key is read through every node: each must hold a value the clients may have
//! left there (the last acknowledged one, or one whose answer never came after it), every
//! counter between its acknowledged and its attempted increments, the shared CAS counter
//! between its wins and its attempts; no `delete` of a stored key may have answered
//! NOT_FOUND and no `incr` a value off the count.
//!
//! `SHOAL_ROUTER_SIM_SEEDS=N` runs N seeds (default 500, in CI too); `SHOAL_ROUTER_SIM_SEED=S`
//! runs one, and `SHOAL_ROUTER_SIM_TRACE=1` prints its events. A failing seed prints the
//! line that replays it.

mod net;
mod world;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use world::World;

/// Clients, and keys per client.
const CLIENTS: usize = 3;
const KEYS: usize = 12;
/// Faults per seed.
const FAULTS: usize = 4;
/// How long the cluster may take to settle after a fault.
const SETTLE: Duration = Duration::from_secs(60);

/// What one seed showed.
struct Run {
    violations: Vec<String>,
    events: Vec<String>,
    figures: (usize, u64, u64),
}

/// Runs seed `seed` on a fresh single-threaded runtime with paused time.
fn run_seed(seed: u64, trace: bool) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let world = World::new(seed, trace);
        let stop = Arc::new(AtomicBool::new(false));
        let membership = tokio::spawn(Arc::clone(&world).membership(Arc::clone(&stop)));
        let mut events = Vec::new();
        let n = 3 + world.range(0..2) as usize;
        for _ in 0..n {
            world.add_node();
        }
        if !world.settle(SETTLE).await {
            return Run {
                violations: vec![format!("{n} nodes did not form a settled cluster")],
                events,
                figures: world.figures(),
            };
        }
        for c in 0..CLIENTS {
            world.client_setup(c, KEYS).await;
        }
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(Arc::clone(&world).client(c, KEYS, Arc::clone(&stop))))
            .collect();
        let mut violations = Vec::new();
        for _ in 0..FAULTS {
            tokio::time::sleep(Duration::from_millis(world.range(200..2000))).await;
            let running = world.running();
            let victim = running[world.range(0..running.len() as u64) as usize];
            match world.range(0..6) {
                0 => {
                    world.crash(victim);
                    tokio::time::sleep(Duration::from_millis(world.range(100..3000))).await;
                    world.restart(victim);
                    events.push(format!("crash+restart {victim}"));
                }
                1 if running.len() < 5 => {
                    let at = world.add_node();
                    events.push(format!("join {at}"));
                }
                2 if running.len() > 3 => {
                    world.leave(victim).await;
                    events.push(format!("leave {victim}"));
                }
                3 => {
                    world.freeze(victim, true);
                    tokio::time::sleep(Duration::from_millis(world.range(500..5000))).await;
                    world.freeze(victim, false);
                    events.push(format!("freeze+thaw {victim}"));
                }
                4 => {
                    let acked = world.flush().await;
                    events.push(format!("flush_all (acknowledged: {acked})"));
                }
                _ => {
                    world.isolate(victim, true);
                    tokio::time::sleep(Duration::from_millis(world.range(500..5000))).await;
                    world.isolate(victim, false);
                    events.push(format!("cut+heal {victim}"));
                }
            }
            if !world.settle(SETTLE).await {
                violations.push(format!("no settled cluster after {:?}", events.last()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(world.range(100..1000))).await;
        stop.store(true, Ordering::Release);
        for client in clients {
            let _ = client.await;
        }
        for at in world.slots() {
            world.isolate(at, false);
        }
        let _ = membership.await;
        let restart = Arc::new(AtomicBool::new(false));
        let membership = tokio::spawn(Arc::clone(&world).membership(Arc::clone(&restart)));
        if !world.settle(SETTLE).await {
            violations.push("no settled cluster at the end".to_string());
        }
        violations.extend(world.check().await);
        restart.store(true, Ordering::Release);
        let _ = membership.await;
        Run {
            violations,
            events,
            figures: world.figures(),
        }
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

#[test]
fn acknowledged_writes_survive_and_deleted_keys_stay_deleted_over_seeded_fault_schedules() {
    let trace = std::env::var("SHOAL_ROUTER_SIM_TRACE").is_ok_and(|v| !v.is_empty());
    if trace {
        // The routers' own logs, between the simulator's events.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("shoal_cluster=info")),
            )
            .without_time()
            .with_test_writer()
            .try_init();
    }
    let seeds: Vec<u64> = match env_u64("SHOAL_ROUTER_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SHOAL_ROUTER_SIM_SEEDS").unwrap_or(500)).collect(),
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seeds = Arc::new(seeds);
    let results: Vec<(u64, Run)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, seeds) = (Arc::clone(&next), Arc::clone(&seeds));
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&seed) = seeds.get(i) else { break };
                        out.push((seed, run_seed(seed, trace)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a simulation thread"))
            .collect()
    });
    let (mut keys, mut incrs, mut cas) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut faults = std::collections::BTreeMap::<String, usize>::new();
    for (seed, run) in &results {
        keys += run.figures.0;
        incrs += run.figures.1;
        cas += run.figures.2;
        for event in &run.events {
            let kind = event.split(' ').next().unwrap_or("").to_string();
            *faults.entry(kind).or_default() += 1;
        }
        if !run.violations.is_empty() {
            failures.push(format!(
                "seed {seed} (replay: SHOAL_ROUTER_SIM_SEED={seed} SHOAL_ROUTER_SIM_TRACE=1 \
                 cargo test -p shoal-cluster router::sim -- --nocapture)\n  faults: {:?}\n  {}",
                run.events,
                run.violations
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    eprintln!(
        "router simulation: {} seeds, faults {faults:?}; {keys} keys, {incrs} acknowledged \
         increments, {cas} cas wins checked; {} seeds failed",
        results.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Membership over real loopback UDP sockets: three in-process members converge, compute
//! the same placement, and see an abrupt stop (no leave message) or a graceful leave.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal_cluster::{Membership, MembershipConfig, NodeId, PlacementMap, DEFAULT_REPLICAS};
use tokio::sync::watch;

/// Generous bound for conditions that normally take well under a second or two; the
/// measured times are printed.
const PATIENCE: Duration = Duration::from_secs(10);

async fn start(seeds: &[SocketAddr]) -> Membership {
    let config = MembershipConfig::new("127.0.0.1:0".parse().unwrap(), seeds.to_vec());
    Membership::start(config).await.expect("start membership")
}

/// Waits until `pred` holds for the member list; returns how long that took.
async fn wait_for(
    mut rx: watch::Receiver<Vec<NodeId>>,
    limit: Duration,
    pred: impl Fn(&[NodeId]) -> bool,
) -> Result<Duration, Vec<NodeId>> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if pred(&rx.borrow_and_update()) {
            return Ok(start.elapsed());
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return Err(rx.borrow().clone()),
        }
    }
}

/// Three members, the second and third joining through the first; waits for all to agree.
async fn three() -> [Membership; 3] {
    let a = start(&[]).await;
    let seed = a.local_id().addr();
    let b = start(&[seed]).await;
    let c = start(&[seed]).await;
    let nodes = [a, b, c];
    let ids: Vec<NodeId> = {
        let mut v: Vec<NodeId> = nodes.iter().map(Membership::local_id).collect();
        v.sort();
        v
    };
    for n in &nodes {
        let took = wait_for(n.members(), PATIENCE, |m| m == ids.as_slice())
            .await
            .unwrap_or_else(|seen| panic!("{} never saw all 3, saw {seen:?}", n.local_id()));
        println!("{} converged in {took:?}", n.local_id());
    }
    nodes
}

#[tokio::test]
async fn three_members_converge_to_one_view_and_one_placement() {
    let nodes = three().await;
    let views: Vec<Vec<NodeId>> = nodes.iter().map(Membership::current).collect();
    assert_eq!(views[0].len(), 3);
    assert!(views.iter().all(|v| *v == views[0]));
    let maps: Vec<PlacementMap> = views
        .iter()
        .map(|v| PlacementMap::compute(v, DEFAULT_REPLICAS))
        .collect();
    assert!(maps.iter().all(|m| *m == maps[0]));
    assert_eq!(maps[0].replicas(), 2);
    for n in &nodes {
        assert!(!maps[0].partitions_primary(&n.local_id()).is_empty());
    }
}

#[tokio::test]
async fn an_abruptly_stopped_member_is_detected() {
    let [a, b, c] = three().await;
    let dead = c.local_id();
    c.kill().await; // aborts the task and closes its socket: no leave message
    let gone = |m: &[NodeId]| m.len() == 2 && !m.contains(&dead);
    let (ta, tb) = tokio::join!(
        wait_for(a.members(), PATIENCE, gone),
        wait_for(b.members(), PATIENCE, gone)
    );
    let (ta, tb) = (ta.expect("a sees c gone"), tb.expect("b sees c gone"));
    println!("abrupt stop detected by a in {ta:?}, by b in {tb:?}");
    assert!(ta < Duration::from_secs(5) && tb < Duration::from_secs(5));
}

#[tokio::test]
async fn a_graceful_leave_is_seen_quickly() {
    let [a, b, c] = three().await;
    let left = c.local_id();
    let t0 = Instant::now();
    c.leave().await.expect("leave");
    let gone = |m: &[NodeId]| m.len() == 2 && !m.contains(&left);
    let (ta, tb) = tokio::join!(
        wait_for(a.members(), PATIENCE, gone),
        wait_for(b.members(), PATIENCE, gone)
    );
    let (ta, tb) = (ta.expect("a sees c leave"), tb.expect("b sees c leave"));
    println!(
        "graceful leave seen by a in {ta:?}, by b in {tb:?} (leave took {:?})",
        t0.elapsed()
    );
    assert!(ta < Duration::from_secs(2) && tb < Duration::from_secs(2));
}

#[tokio::test]
async fn a_restarted_member_replaces_its_previous_life() {
    let [a, b, c] = three().await;
    let old = c.local_id();
    c.kill().await;
    // Same address, new incarnation: a new member that wins the address.
    let config = MembershipConfig::new(old.addr(), vec![a.local_id().addr()]);
    let c2 = Membership::start(config)
        .await
        .expect("restart on the same port");
    let new = c2.local_id();
    assert!(new.incarnation() > old.incarnation());
    let replaced = |m: &[NodeId]| m.len() == 3 && m.contains(&new) && !m.contains(&old);
    let (ta, tb) = tokio::join!(
        wait_for(a.members(), PATIENCE, replaced),
        wait_for(b.members(), PATIENCE, replaced)
    );
    let (ta, tb) = (
        ta.expect("a sees the restart"),
        tb.expect("b sees the restart"),
    );
    println!("restart seen by a in {ta:?}, by b in {tb:?}");
    wait_for(c2.members(), PATIENCE, |m| m.len() == 3)
        .await
        .expect("the restarted member sees the cluster");
}

//! Anti-entropy between two in-process routers over real loopback sockets: copies made to
//! diverge behind the routers' backs (a replica that missed a write, lost an item, kept a
//! deleted one) converge again with no client traffic, and the repairs are counted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shoal_cluster::router::{Router, RouterConfig, RouterTasks};
use shoal_cluster::{Membership, MembershipConfig};
use shoal_command::{Command, Delete, Outcome, ReplicaItem, Store as StoreCmd, StoreMode};
use shoal_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(20);

struct Node {
    membership: Membership,
    router: Arc<Router>,
    _tasks: RouterTasks,
}

async fn node(seeds: &[std::net::SocketAddr]) -> Node {
    loop {
        let config = MembershipConfig::new("127.0.0.1:0".parse().unwrap(), seeds.to_vec());
        let membership = Membership::start(config).await.expect("membership");
        let addr = membership.local_id().addr();
        // Node-to-node RPC listens on TCP at the gossip port's number.
        let Ok(listener) = TcpListener::bind(addr).await else {
            continue;
        };
        let config = RouterConfig {
            repair_interval: Duration::from_millis(200),
            bootstrap_wait: Duration::from_millis(200),
            ..RouterConfig::default()
        };
        let store = Arc::new(Store::new(StoreConfig::default()));
        let (router, tasks) =
            Router::start(store, &membership, listener, config, !seeds.is_empty());
        return Node {
            membership,
            router,
            _tasks: tasks,
        };
    }
}

fn set(key: &str, value: &str) -> Command {
    Command::Store(StoreCmd {
        mode: StoreMode::Set,
        key: Bytes::copy_from_slice(key.as_bytes()),
        flags: 0,
        exptime: 0,
        data: Bytes::copy_from_slice(value.as_bytes()),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify: None,
        binary_key: false,
    })
}

fn delete(key: &str) -> Command {
    Command::Delete(Delete {
        key: Bytes::copy_from_slice(key.as_bytes()),
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        clear_value: false,
        touch: None,
    })
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diverged_replicas_converge_without_client_traffic() {
    let a = node(&[]).await;
    let b = node(&[a.membership.local_id().addr()]).await;
    wait_until(
        "both routers to see two members and hold everything",
        || {
            [&a, &b].iter().all(|n| {
                let s = n.router.status();
                s.members.iter().filter(|m| m.alive).count() == 2 && s.syncing == 0 && s.ready
            })
        },
    )
    .await;
    for n in 0..200 {
        let outcome = a.router.execute(set(&format!("k{n}"), "v1")).await;
        assert!(
            matches!(outcome, Outcome::Stored(_)),
            "set k{n}: {outcome:?}"
        );
    }
    let outcome = a.router.execute(delete("k199")).await;
    assert!(matches!(outcome, Outcome::Deleted(_)), "{outcome:?}");
    // R=2 of two members: both hold every key. Diverge behind the routers' backs.
    let (sa, sb) = (a.router.store(), b.router.store());
    assert_eq!(sa.stats().curr_items, 199);
    assert_eq!(sb.stats().curr_items, 199);
    let newer = ReplicaItem {
        value: Bytes::from_static(b"v2"),
        cas: sa
            .export(b"k1")
            .unwrap()
            .cas
            .max(sb.export(b"k1").unwrap().cas)
            + (1 << 20),
        ..sa.export(b"k1").unwrap()
    };
    sb.apply_replica(&newer).unwrap();
    assert!(sa.remove_replica(b"k2"), "a missed item");
    let deleted = ReplicaItem {
        key: Bytes::from_static(b"k199"),
        ..sa.export(b"k3").unwrap()
    };
    sb.apply_replica(&deleted).unwrap();
    wait_until("the copies to converge", || {
        sa.export(b"k1").is_some_and(|i| i.value == "v2")
            && sb.export(b"k1").is_some_and(|i| i.value == "v2")
            && sa.export(b"k2").is_some()
            && sb.export(b"k199").is_none()
            && sa.export(b"k199").is_none()
    })
    .await;
    let repaired: u64 = [&a, &b].iter().map(|n| n.router.status().repair.2).sum();
    assert!(repaired >= 3, "repairs counted: {repaired}");
    assert_eq!(sa.stats().curr_items, sb.stats().curr_items);
}

//! Unit tests of the hand-off bookkeeping that needs no running router.

use std::net::SocketAddr;

use super::{SyncState, Syncing};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn syncing_from(state: &SyncState, p: u16, sources: &[SocketAddr]) {
    state.inner.lock().syncing.insert(
        p,
        Syncing {
            sources: sources.to_vec(),
        },
    );
}

#[test]
fn a_batch_keeps_only_partitions_still_syncing_from_its_sources() {
    let state = SyncState::new(None);
    let (a, b) = (addr(7001), addr(7002));
    syncing_from(&state, 1, &[a]);
    syncing_from(&state, 2, &[a]);
    syncing_from(&state, 3, &[a]);
    let work = state.work();
    assert_eq!(work, vec![(vec![a], vec![1, 2, 3])]);
    // A newer view: partition 2 now syncs from b, partition 3 is held (or lost).
    syncing_from(&state, 2, &[b]);
    state.finish(&[3], &[a]);
    assert_eq!(state.still_syncing_from(&[1, 2, 3], &[a]), vec![1]);
    assert_eq!(state.still_syncing_from(&[1, 2, 3], &[b]), vec![2]);
    assert!(state.still_syncing_from(&[3], &[a]).is_empty());
}

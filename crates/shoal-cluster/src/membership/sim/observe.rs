//! Reading the outcome of a simulated run: when a node dropped a member, which live
//! members were dropped by mistake, and whether every node derives the same placement.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::world::{addr_of, World};
use crate::node::NodeId;
use crate::placement::{PartitionId, PlacementMap};

/// The first instant at or after `from` at which the view of `slot` lacks every member
/// at `addr` (any incarnation).
pub fn first_without(
    world: &World,
    slot: usize,
    from: Duration,
    addr: SocketAddr,
) -> Option<Duration> {
    let lacks = |view: &[NodeId]| !view.iter().any(|m| m.addr() == addr);
    let mine = world.log.iter().filter(|c| c.slot == slot);
    let at_from = mine.clone().take_while(|c| c.at <= from).last();
    if at_from.is_some_and(|c| lacks(&c.view)) {
        return Some(from);
    }
    mine.filter(|c| c.at > from)
        .find(|c| lacks(&c.view))
        .map(|c| c.at)
}

/// Every view change of a slot in `watched` after `from` that lacks the address of a slot
/// in `live` (a live member dropped by mistake), and every slot in `live` that rejoined
/// under a renewed identity (somebody declared it down, even if no view shows a gap).
pub fn false_positives(
    world: &World,
    from: Duration,
    watched: &[usize],
    live: &[usize],
) -> Vec<String> {
    let mut found: Vec<String> = world
        .log
        .iter()
        .filter(|c| c.at >= from && watched.contains(&c.slot))
        .filter_map(|c| {
            let missing: Vec<usize> = live
                .iter()
                .copied()
                .filter(|s| !c.view.iter().any(|m| m.addr() == addr_of(*s)))
                .collect();
            (!missing.is_empty())
                .then(|| format!("at {:?} node {} dropped live {missing:?}", c.at, c.slot))
        })
        .collect();
    for &s in live {
        let rejoins = world.rejoins(s);
        if rejoins > 0 {
            found.push(format!(
                "live node {s} was declared down and rejoined {rejoins}×"
            ));
        }
    }
    found
}

/// Checks that every node in `alive` computes the same placement from its view, with
/// `min(2, N)` distinct live owners per partition.
pub fn same_placement(world: &World, alive: &[usize]) -> Result<(), String> {
    let maps: Vec<PlacementMap> = alive
        .iter()
        .map(|s| PlacementMap::compute(world.view(*s), 2))
        .collect();
    let Some(first) = maps.first() else {
        return Err("no live node".to_owned());
    };
    for (s, map) in alive.iter().zip(&maps) {
        if map != first {
            return Err(format!(
                "node {s} computes another placement than node {}",
                alive[0]
            ));
        }
    }
    let expected = world.ids_of(alive);
    let want = expected.len().min(2);
    for p in PartitionId::all() {
        let owners = first.owners(p);
        let distinct: BTreeSet<&NodeId> = owners.iter().collect();
        if distinct.len() != want || !owners.iter().all(|o| expected.contains(o)) {
            return Err(format!("partition {} has owners {owners:?}", p.get()));
        }
    }
    Ok(())
}

/// Every running node's view, for failure messages.
pub fn views(world: &World) -> Vec<(usize, Vec<String>)> {
    world
        .alive()
        .into_iter()
        .map(|s| (s, world.view(s).iter().map(NodeId::to_string).collect()))
        .collect()
}

//! The items-held count: write keys `0..written` in order (well past what the memory limit
//! holds, so eviction has run), then count how many of them a `get` still finds.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;

use crate::keys::KeyNames;
use crate::preload::{bulk, Bulk};
use crate::report::HeldReport;
use crate::stats;

/// Runs the count and reads `curr_items` / `evictions` afterwards.
pub async fn held(
    addr: SocketAddr,
    written: u64,
    value: Arc<Vec<u8>>,
    conns: usize,
    depth: usize,
) -> Result<HeldReport> {
    let names = KeyNames::identity();
    let errors = bulk(addr, written, &names, Bulk::Write(value), conns, depth).await?;
    let readable = bulk(addr, written, &names, Bulk::Read(100), conns, 4).await?;
    let stats = stats::fetch(addr).await?;
    Ok(HeldReport {
        written,
        readable,
        curr_items: stats::number(&stats, "curr_items"),
        evictions: stats::number(&stats, "evictions"),
        errors,
    })
}

//! Sequential bulk phases over a key range, split across pipelined connections: writing
//! keys `0..count` (the preload, and the writes of the items-held count) and counting how
//! many of them a `get` still finds. Indices go through [`KeyNames`] to the keys sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::keys::KeyNames;
use crate::protocol::{encode_get, encode_set, parse_reply, Reply};

/// Which bulk phase to run on a key range.
#[derive(Debug, Clone)]
pub enum Bulk {
    /// Set every key to this value.
    Write(Arc<Vec<u8>>),
    /// Get every key, this many per multi-get, and count the hits.
    Read(usize),
}

/// Splits indices `0..count` across `conns` connections and runs `bulk` on each part with
/// `depth` requests in flight, on the keys `names` gives those indices. Returns the sum of
/// the parts' results: for writes, the sets not answered `STORED`; for reads, the keys
/// found.
pub async fn bulk(
    addr: SocketAddr,
    count: u64,
    names: &KeyNames,
    bulk: Bulk,
    conns: usize,
    depth: usize,
) -> Result<u64> {
    let conns = conns.max(1) as u64;
    let per = count.div_ceil(conns);
    let mut tasks = Vec::new();
    for part in 0..conns {
        let range = (part * per).min(count)..((part + 1) * per).min(count);
        if range.is_empty() {
            continue;
        }
        let bulk = bulk.clone();
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            bulk_range(addr, range, names, bulk, depth).await
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.context("bulk task panicked")??;
    }
    Ok(total)
}

async fn bulk_range(
    addr: SocketAddr,
    range: Range<u64>,
    names: KeyNames,
    bulk: Bulk,
    depth: usize,
) -> Result<u64> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let retrieval = matches!(bulk, Bulk::Read(_));
    let step = match bulk {
        Bulk::Read(width) => width.max(1) as u64,
        Bulk::Write(_) => 1,
    };
    let mut next = range.start;
    let mut in_flight = 0usize;
    let mut counted = 0u64;
    let mut wbuf = Vec::with_capacity(64 * 1024);
    let mut rbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut keys: VecDeque<u64> = VecDeque::new();
    loop {
        while in_flight < depth.max(1) && next < range.end {
            let end = (next + step).min(range.end);
            match &bulk {
                Bulk::Write(value) => encode_set(&mut wbuf, names.id(next), value),
                Bulk::Read(_) => {
                    keys.clear();
                    keys.extend((next..end).map(|index| names.id(index)));
                    encode_get(&mut wbuf, keys.make_contiguous());
                }
            }
            next = end;
            in_flight += 1;
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if in_flight == 0 {
            return Ok(counted);
        }
        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        if stream.read_buf(&mut rbuf).await? == 0 {
            bail!("the server closed the connection");
        }
        let mut consumed = 0;
        while in_flight > 0 {
            let Some((reply, used)) = parse_reply(&rbuf[consumed..], retrieval)? else {
                break;
            };
            consumed += used;
            in_flight -= 1;
            match reply {
                Reply::Values(found) => counted += found as u64,
                Reply::Stored => {}
                Reply::Other => {
                    if !retrieval {
                        counted += 1;
                    }
                }
            }
        }
        rbuf.drain(..consumed);
    }
}

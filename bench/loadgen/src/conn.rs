//! One connection's request loop: closed-loop with a pipeline depth (throughput), or
//! open-loop at a fixed rate (latency at a given offered load).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::keys::{KeyDist, KeyNames};
use crate::protocol::{encode_get, encode_set, parse_reply, Reply};

/// A rate-limited send that the timer woke up to this much after its slot still counts
/// its latency from the actual send (tokio timers have 1 ms granularity); a send later
/// than that counts from its slot, so a stalled server is not hidden (coordinated
/// omission).
pub const TIMER_SLACK: Duration = Duration::from_millis(2);

/// What a connection sends.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Fraction of requests that are gets (the rest are sets).
    pub get_ratio: f64,
    /// Keys per get (1: plain get; more: multi-get).
    pub mget: usize,
    /// How key indices are chosen.
    pub dist: KeyDist,
    /// Which key each index names.
    pub names: KeyNames,
    /// The value every set writes.
    pub value: Arc<Vec<u8>>,
    /// After a single-key get misses, set that key (cache-aside).
    pub set_on_miss: bool,
}

/// When a closed-loop connection stops issuing requests.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// At this instant.
    At(Instant),
    /// After this many requests.
    Count(u64),
}

/// Counters and latencies of one or more connections.
#[derive(Debug, Clone)]
pub struct ConnResult {
    /// Requests completed.
    pub requests: u64,
    /// Keys asked for by gets.
    pub get_keys: u64,
    /// Keys found.
    pub hits: u64,
    /// Sets completed.
    pub sets: u64,
    /// Unexpected replies.
    pub errors: u64,
    /// Request latencies, nanoseconds.
    pub latency: Histogram<u64>,
}

impl ConnResult {
    /// Empty counters.
    pub fn new() -> Self {
        ConnResult {
            requests: 0,
            get_keys: 0,
            hits: 0,
            sets: 0,
            errors: 0,
            latency: Histogram::new_with_bounds(1, 120_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Adds another connection's counters.
    pub fn merge(&mut self, other: &ConnResult) {
        self.requests += other.requests;
        self.get_keys += other.get_keys;
        self.hits += other.hits;
        self.sets += other.sets;
        self.errors += other.errors;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds merge");
    }

    fn record(&mut self, sent: &Pending, reply: Reply, latency: Duration, refills: &mut Refills) {
        self.requests += 1;
        self.latency
            .saturating_record(latency.as_nanos().min(u64::MAX as u128) as u64);
        match (sent.retrieval, reply) {
            (true, Reply::Values(found)) => {
                self.get_keys += sent.keys as u64;
                self.hits += found as u64;
                if found == 0 && sent.keys == 1 {
                    if let Some(queue) = refills.as_mut() {
                        queue.push_back(sent.key);
                    }
                }
            }
            (false, Reply::Stored) => self.sets += 1,
            (false, _) => {
                self.sets += 1;
                self.errors += 1;
            }
            (true, _) => self.errors += 1,
        }
    }
}

impl Default for ConnResult {
    fn default() -> Self {
        Self::new()
    }
}

/// Keys to set after they missed, when cache-aside refills are on.
type Refills = Option<VecDeque<u64>>;

/// A request on the wire, waiting for its reply.
#[derive(Debug)]
struct Pending {
    sent: Instant,
    retrieval: bool,
    keys: usize,
    key: u64,
}

/// A connection with its buffers and key generator.
struct Driver {
    stream: TcpStream,
    mix: Mix,
    rng: SmallRng,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    keys: Vec<u64>,
    refills: Refills,
}

impl Driver {
    async fn connect(addr: SocketAddr, mix: Mix, seed: u64) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let refills = mix.set_on_miss.then(VecDeque::new);
        Ok(Driver {
            stream,
            keys: Vec::with_capacity(mix.mget),
            mix,
            rng: SmallRng::seed_from_u64(seed),
            wbuf: Vec::with_capacity(64 * 1024),
            rbuf: Vec::with_capacity(64 * 1024),
            refills,
        })
    }

    /// Encodes the next request into the write buffer.
    fn next_request(&mut self, now: Instant) -> Pending {
        if let Some(key) = self.refills.as_mut().and_then(VecDeque::pop_front) {
            encode_set(&mut self.wbuf, key, &self.mix.value);
            return Pending {
                sent: now,
                retrieval: false,
                keys: 1,
                key,
            };
        }
        if self.rng.gen::<f64>() < self.mix.get_ratio {
            self.keys.clear();
            for _ in 0..self.mix.mget {
                let key = self.mix.names.id(self.mix.dist.sample(&mut self.rng));
                self.keys.push(key);
            }
            encode_get(&mut self.wbuf, &self.keys);
            Pending {
                sent: now,
                retrieval: true,
                keys: self.keys.len(),
                key: self.keys[0],
            }
        } else {
            let key = self.mix.names.id(self.mix.dist.sample(&mut self.rng));
            encode_set(&mut self.wbuf, key, &self.mix.value);
            Pending {
                sent: now,
                retrieval: false,
                keys: 1,
                key,
            }
        }
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        if self.stream.read_buf(&mut self.rbuf).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}

/// Runs one closed-loop connection keeping `depth` requests in flight until `stop`.
pub async fn closed_loop(
    addr: SocketAddr,
    mix: Mix,
    depth: usize,
    stop: Stop,
    seed: u64,
) -> Result<ConnResult> {
    let mut driver = Driver::connect(addr, mix, seed).await?;
    let mut result = ConnResult::new();
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(depth);
    let mut issued = 0u64;
    loop {
        let now = Instant::now();
        let open = match stop {
            Stop::At(end) => now < end,
            Stop::Count(limit) => issued < limit,
        };
        if open {
            while pending.len() < depth {
                if let Stop::Count(limit) = stop {
                    if issued >= limit {
                        break;
                    }
                }
                let request = driver.next_request(now);
                pending.push_back(request);
                issued += 1;
            }
        }
        driver.flush().await?;
        if pending.is_empty() {
            break;
        }
        driver.read_more().await?;
        let done = Instant::now();
        let mut consumed = 0;
        while let Some(front) = pending.front() {
            let Some((reply, used)) = parse_reply(&driver.rbuf[consumed..], front.retrieval)?
            else {
                break;
            };
            consumed += used;
            let sent = pending.pop_front().expect("front exists");
            result.record(&sent, reply, done - sent.sent, &mut driver.refills);
        }
        driver.rbuf.drain(..consumed);
    }
    Ok(result)
}

/// Runs one open-loop connection: one request every `interval` from `first` until
/// `deadline`, one at a time.
pub async fn fixed_rate(
    addr: SocketAddr,
    mix: Mix,
    interval: Duration,
    first: Instant,
    deadline: Instant,
    seed: u64,
) -> Result<ConnResult> {
    let mut driver = Driver::connect(addr, mix, seed).await?;
    let mut result = ConnResult::new();
    let mut slot = first;
    while slot < deadline {
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
        let sent_at = Instant::now();
        let request = driver.next_request(sent_at);
        driver.flush().await?;
        let reply = loop {
            if let Some((reply, used)) = parse_reply(&driver.rbuf, request.retrieval)? {
                driver.rbuf.drain(..used);
                break reply;
            }
            driver.read_more().await?;
        };
        let done = Instant::now();
        let origin = if sent_at.duration_since(slot) <= TIMER_SLACK {
            sent_at
        } else {
            slot
        };
        result.record(&request, reply, done - origin, &mut driver.refills);
        slot += interval;
    }
    Ok(result)
}

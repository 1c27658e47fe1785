//! Reading a server's `stats` (for `curr_items` and `evictions`).

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `stats` and returns every `STAT name value` line as a map.
pub async fn fetch(addr: SocketAddr) -> Result<HashMap<String, String>> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.write_all(b"stats\r\n").await?;
    let mut buf = Vec::new();
    while !buf.ends_with(b"END\r\n") {
        if buf.len() > 1 << 20 {
            bail!("stats reply too long");
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("the server closed the connection during stats");
        }
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("STAT ")?.splitn(2, ' ');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

/// A numeric stat, if present and numeric.
pub fn number(stats: &HashMap<String, String>, name: &str) -> Option<u64> {
    stats.get(name)?.trim().parse().ok()
}

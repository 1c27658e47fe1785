//! `shoal cluster status`: asks one node (on its memcached client port, text protocol)
//! for `stats cluster` and prints the members as that node sees them — address, state,
//! whether it is the node asked, partitions held as primary and as replica, items — and a
//! totals line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long connecting, and each read or write, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `STAT` lines accepted before the reply is judged runaway.
const MAX_STAT_LINES: usize = 100_000;

/// Prints the cluster as seen by the node at `node` (HOST:PORT of its client port).
pub fn run(node: &str) -> Result<()> {
    let stats = fetch_cluster_stats(node)?;
    let report = Report::parse(&stats).with_context(|| format!("node {node}"))?;
    print!("{}", report.render(node));
    Ok(())
}

/// Sends `stats cluster` to `node` and returns its `STAT name value` pairs.
fn fetch_cluster_stats(node: &str) -> Result<HashMap<String, String>> {
    let addrs: Vec<_> = node
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {node} (expected HOST:PORT)"))?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, IO_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(stream) = stream else {
        return Err(match last_error {
            Some(e) => anyhow::Error::new(e),
            None => anyhow::anyhow!("no address"),
        })
        .with_context(|| format!("cannot connect to {node}"));
    };
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    (&stream)
        .write_all(b"stats cluster\r\n")
        .with_context(|| format!("cannot send `stats cluster` to {node}"))?;
    let mut reader = BufReader::new(&stream);
    let mut stats = HashMap::new();
    for _ in 0..MAX_STAT_LINES {
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading `stats cluster` from {node}"))?;
        if read == 0 {
            bail!("{node} closed the connection during `stats cluster`");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "END" {
            return Ok(stats);
        }
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("STAT"), Some(name), value) => {
                stats.insert(name.to_string(), value.unwrap_or_default().to_string());
            }
            _ if line.ends_with("ERROR") || line.contains("ERROR ") => {
                bail!("{node} is not a cluster node: it answered `stats cluster` with {line:?}")
            }
            _ => bail!("{node} answered `stats cluster` with {line:?}: is it a Shoal node?"),
        }
    }
    bail!("{node} sent more than {MAX_STAT_LINES} stat lines")
}

/// One member as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    addr: String,
    alive: bool,
    local: bool,
    primary: u64,
    replica: u64,
    /// None when the member did not answer ("unknown").
    items: Option<u64>,
    /// Partitions it is pulling; None when unknown.
    syncing: Option<u64>,
    /// Items and bytes it merged by hand-off; None when unknown.
    pulled: Option<(u64, u64)>,
    /// Its last repair (`member_<i>_repair_last_secs` and `_repaired_items` as given).
    repair: Option<String>,
}

/// A member's hand-off as one cell: a progress bar over the partitions it owns while it
/// pulls, `synced` when done.
fn sync_cell(m: &Member) -> String {
    let owned = m.primary + m.replica;
    match m.syncing {
        None => "unknown".into(),
        Some(0) => "synced".into(),
        Some(left) => {
            let done = owned.saturating_sub(left);
            let filled = (done * 10).checked_div(owned).unwrap_or(0) as usize;
            format!(
                "[{}{}] {done}/{owned}",
                "#".repeat(filled),
                ".".repeat(10 - filled.min(10))
            )
        }
    }
}

/// Items and bytes pulled, as one cell.
fn pulled_cell(m: &Member) -> String {
    m.pulled.map_or_else(
        || "unknown".into(),
        |(items, bytes)| format!("{items} ({} KiB)", bytes / 1024),
    )
}

/// The parsed `stats cluster` reply of a cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    replicas: u64,
    partitions: u64,
    members: Vec<Member>,
}

impl Report {
    /// Parses the stats; errors when the node is not a cluster node or lists no members.
    fn parse(stats: &HashMap<String, String>) -> Result<Report> {
        match stats.get("cluster_enabled").map(String::as_str) {
            Some("1") => {}
            Some(_) => bail!(
                "not a cluster node (cluster_enabled 0): it was started without --cluster-listen"
            ),
            None => bail!(
                "not a cluster node: `stats cluster` has no cluster_enabled line (is it Shoal?)"
            ),
        }
        let number = |name: &str| -> Result<u64> {
            let value = stats
                .get(name)
                .with_context(|| format!("`stats cluster` lacks {name}"))?;
            value
                .parse()
                .with_context(|| format!("{name} is not a number: {value:?}"))
        };
        let count = number("cluster_members")?;
        let mut members = Vec::new();
        for i in 0..count {
            let field = |name: &str| -> Result<&String> {
                stats.get(&format!("member_{i}_{name}")).with_context(|| {
                    format!("`stats cluster` lacks member_{i}_{name}: this node does not list its members")
                })
            };
            let state = field("state")?;
            let items = match field("items")?.as_str() {
                "unknown" => None,
                n => Some(
                    n.parse()
                        .with_context(|| format!("member_{i}_items is not a number: {n:?}"))?,
                ),
            };
            members.push(Member {
                addr: field("addr")?.clone(),
                alive: match state.as_str() {
                    "alive" => true,
                    "down" => false,
                    other => bail!("member_{i}_state is {other:?}, not alive or down"),
                },
                local: field("local")? == "1",
                primary: number(&format!("member_{i}_partitions_primary"))?,
                replica: number(&format!("member_{i}_partitions_replica"))?,
                items,
                syncing: stats
                    .get(&format!("member_{i}_partitions_syncing"))
                    .and_then(|v| v.parse().ok()),
                repair: stats
                    .get(&format!("member_{i}_repair_last_secs"))
                    .map(|last| {
                        let items = stats
                            .get(&format!("member_{i}_repaired_items"))
                            .map_or("?", String::as_str);
                        match last.as_str() {
                            "never" | "unknown" => last.clone(),
                            secs => format!("{secs}s ago, {items} items"),
                        }
                    }),
                pulled: stats
                    .get(&format!("member_{i}_pulled_items"))
                    .and_then(|v| v.parse().ok())
                    .zip(
                        stats
                            .get(&format!("member_{i}_pulled_bytes"))
                            .and_then(|v| v.parse().ok()),
                    ),
            });
        }
        if members.is_empty() {
            bail!("`stats cluster` lists no members");
        }
        Ok(Report {
            replicas: number("replicas")?,
            partitions: number("partitions")?,
            members,
        })
    }

    /// The table: a summary line, a header, one row per member, and a totals line.
    fn render(&self, node: &str) -> String {
        let alive = self.members.iter().filter(|m| m.alive).count();
        let total = self.members.len();
        let known_items: u64 = self.members.iter().filter_map(|m| m.items).sum();
        let unknown = self.members.iter().filter(|m| m.items.is_none()).count();
        let items_total = if unknown == 0 {
            known_items.to_string()
        } else {
            format!("{known_items}+ ({unknown} unknown)")
        };
        let mut rows: Vec<[String; 9]> = vec![[
            "MEMBER".into(),
            "STATE".into(),
            "LOCAL".into(),
            "PRIMARY".into(),
            "REPLICA".into(),
            "ITEMS".into(),
            "HAND-OFF".into(),
            "PULLED".into(),
            "LAST REPAIR".into(),
        ]];
        for m in &self.members {
            rows.push([
                m.addr.clone(),
                if m.alive { "alive" } else { "down" }.into(),
                if m.local { "yes" } else { "no" }.into(),
                m.primary.to_string(),
                m.replica.to_string(),
                m.items.map_or_else(|| "unknown".into(), |n| n.to_string()),
                sync_cell(m),
                pulled_cell(m),
                m.repair.clone().unwrap_or_else(|| "unknown".into()),
            ]);
        }
        rows.push([
            "TOTAL".into(),
            format!("{alive}/{total}"),
            String::new(),
            self.members
                .iter()
                .map(|m| m.primary)
                .sum::<u64>()
                .to_string(),
            self.members
                .iter()
                .map(|m| m.replica)
                .sum::<u64>()
                .to_string(),
            items_total,
            String::new(),
            String::new(),
            String::new(),
        ]);
        let widths: Vec<usize> = (0..9)
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        let mut out = format!(
            "cluster seen by {node}: {total} members, {alive} alive, {} replicas, {} partitions\n",
            self.replicas, self.partitions
        );
        for row in &rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(lines: &str) -> HashMap<String, String> {
        lines
            .lines()
            .map(|l| {
                let (k, v) = l.trim().split_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    const TWO: &str = "cluster_enabled 1
        cluster_members 2
        cluster_members_alive 1
        replicas 2
        partitions 1024
        member_0_addr 127.0.0.1:7001
        member_0_state alive
        member_0_local 1
        member_0_partitions_primary 1024
        member_0_partitions_replica 0
        member_0_items 10
        member_0_partitions_syncing 0
        member_0_pulled_items 5
        member_0_pulled_bytes 4096
        member_0_repaired_items 3
        member_0_repair_last_secs 7
        member_1_addr 127.0.0.1:7002
        member_1_state down
        member_1_local 0
        member_1_partitions_primary 0
        member_1_partitions_replica 0
        member_1_items unknown";

    #[test]
    fn a_hand_off_in_progress_shows_a_progress_bar() {
        let member = Member {
            addr: "a".into(),
            alive: true,
            local: false,
            primary: 300,
            replica: 300,
            items: Some(1),
            syncing: Some(150),
            pulled: Some((10, 2048)),
            repair: None,
        };
        assert_eq!(sync_cell(&member), "[#######...] 450/600");
        assert_eq!(pulled_cell(&member), "10 (2 KiB)");
    }

    #[test]
    fn parses_and_renders_members_and_totals() {
        let report = Report::parse(&stats(TWO)).unwrap();
        assert_eq!(report.members.len(), 2);
        assert_eq!(report.members[1].items, None);
        assert!(!report.members[1].alive && report.members[0].local);
        let text = report.render("h:1");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].contains("2 members, 1 alive"), "{text}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            [
                "127.0.0.1:7001",
                "alive",
                "yes",
                "1024",
                "0",
                "10",
                "synced",
                "5",
                "(4",
                "KiB)",
                "7s",
                "ago,",
                "3",
                "items"
            ]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            [
                "127.0.0.1:7002",
                "down",
                "no",
                "0",
                "0",
                "unknown",
                "unknown",
                "unknown",
                "unknown"
            ]
        );
        assert_eq!(
            lines[4].split_whitespace().collect::<Vec<_>>(),
            ["TOTAL", "1/2", "1024", "0", "10+", "(1", "unknown)"]
        );
    }

    #[test]
    fn refuses_a_single_node_and_a_node_without_member_lines() {
        let single = stats("cluster_enabled 0\ncluster_members 1");
        let error = Report::parse(&single).unwrap_err().to_string();
        assert!(error.contains("not a cluster node"), "{error}");
        let error = Report::parse(&HashMap::new()).unwrap_err().to_string();
        assert!(error.contains("not a cluster node"), "{error}");
        let bare = stats("cluster_enabled 1\ncluster_members 3\nreplicas 2\npartitions 1024");
        let error = format!("{:#}", Report::parse(&bare).unwrap_err());
        assert!(error.contains("member_0_state"), "{error}");
    }

    #[test]
    fn rejects_an_unknown_state() {
        let odd = TWO.replace("member_1_state down", "member_1_state sleepy");
        let error = Report::parse(&stats(&odd)).unwrap_err().to_string();
        assert!(error.contains("sleepy"), "{error}");
    }
}

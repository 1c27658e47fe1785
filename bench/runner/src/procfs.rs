//! What the runner reads about a server process from /proc: CPU time (utime + stime) and
//! peak resident memory (VmHWM).

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux when unknown).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User plus system CPU time of process `pid` so far, in seconds (all its threads).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    cpu_seconds_from_stat(&stat, clock_ticks())
}

/// Parses utime (field 14) and stime (field 15) out of a /proc/PID/stat line.
pub fn cpu_seconds_from_stat(stat: &str, ticks: f64) -> Result<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let Some(close) = stat.rfind(')') else {
        bail!("malformed stat line");
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("stat line too short");
    };
    let total: f64 = utime.parse::<f64>()? + stime.parse::<f64>()?;
    Ok(total / ticks)
}

/// Peak resident set size of process `pid` (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    peak_rss_from_status(&status)
}

/// Parses `VmHWM: N kB` out of /proc/PID/status, in MiB.
pub fn peak_rss_from_status(status: &str) -> Result<f64> {
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmHWM:") {
            let kib: f64 = rest.trim().trim_end_matches("kB").trim().parse()?;
            return Ok(kib / 1024.0);
        }
    }
    bail!("no VmHWM line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 3 0 100 0";
        assert_eq!(cpu_seconds_from_stat(line, 100.0).unwrap(), 4.0);
    }

    #[test]
    fn parses_vmhwm() {
        let status = "Name:\tmemcached\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(peak_rss_from_status(status).unwrap(), 2.0);
        assert!(peak_rss_from_status("Name: x\n").is_err());
    }
}

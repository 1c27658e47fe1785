//! A description of the machine and the software under test, for the results header.

use std::path::Path;
use std::process::Command;

fn first_line(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .map(|out| {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `N cores, CPU model, kernel, RAM`.
pub fn describe() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!(
        "{cores} cores (nproc), {model}, {ram_gib:.0} GiB RAM, {}",
        first_line(&["uname", "-srm"])
    )
}

/// The date and time, UTC.
pub fn date() -> String {
    first_line(&["date", "-u", "+%Y-%m-%d %H:%M:%S UTC"])
}

/// `memcached -V`.
pub fn memcached_version(binary: &Path) -> String {
    first_line(&[&binary.display().to_string(), "-V"])
}

/// `shoal --version` plus the git commit of the working tree.
pub fn shoal_version(binary: &Path) -> String {
    let version = first_line(&[&binary.display().to_string(), "--version"]);
    let commit = first_line(&["git", "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!bench",
        ])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    format!(
        "{version} (git {commit}{})",
        if dirty {
            ", uncommitted changes outside bench/"
        } else {
            ""
        }
    )
}

/// The load (1, 5, 15 min) from /proc/loadavg, to show how busy the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

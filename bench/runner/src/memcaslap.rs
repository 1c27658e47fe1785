//! Driving a server with `memcaslap` (libmemcached-tools): writes its config file (key
//! size, value size, get/set proportion) and parses its final `Ops: N TPS: N` line.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One memcaslap load.
#[derive(Debug, Clone)]
pub struct Load {
    /// Concurrency (`-c`).
    pub concurrency: usize,
    /// Client threads (`-T`).
    pub threads: usize,
    /// Fraction of gets; the rest are sets.
    pub get_ratio: f64,
    /// Fixed value size (`-X`).
    pub value_size: usize,
    /// Keys per get (`-d`, 1 = single get).
    pub mget: usize,
    /// Seconds (`-t`).
    pub secs: u64,
}

/// What memcaslap reports.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Operations completed (each key of a multi-get counts).
    pub ops: f64,
    /// Operations per second.
    pub tps: f64,
}

/// The memcaslap command line for `load` against `addr`, with its config at `config`.
pub fn command_line(load: &Load, server: &str, config: &Path) -> Vec<String> {
    vec![
        "memcaslap".into(),
        "-s".into(),
        server.to_string(),
        "-F".into(),
        config.display().to_string(),
        "-X".into(),
        load.value_size.to_string(),
        "-c".into(),
        load.concurrency.to_string(),
        "-T".into(),
        load.threads.to_string(),
        "-d".into(),
        load.mget.to_string(),
        "-t".into(),
        format!("{}s", load.secs),
    ]
}

/// Writes the config file: 16-byte keys, fixed values, the get/set proportion.
pub fn write_config(load: &Load, path: &Path) -> Result<()> {
    let text = format!(
        "key\n16 16 1\nvalue\n{size} {size} 1\ncmd\n0 {set:.2}\n1 {get:.2}\n",
        size = load.value_size,
        set = 1.0 - load.get_ratio,
        get = load.get_ratio
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs memcaslap to completion.
pub fn run(load: &Load, addr: SocketAddr, config: &Path) -> Result<Outcome> {
    write_config(load, config)?;
    let argv = command_line(load, &addr.to_string(), config);
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("cannot run {}", argv.join(" ")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse(&text).with_context(|| {
        format!(
            "{} gave no throughput line; stdout: {text}; stderr: {}",
            argv.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Parses the last `Run time: 10.0s Ops: 1399427 TPS: 139879 Net_rate: 17.2M/s` line.
pub fn parse(text: &str) -> Result<Outcome> {
    let Some(start) = text.rfind("Run time:") else {
        bail!("no 'Run time:' line");
    };
    let line = &text[start..];
    let field = |name: &str| -> Result<f64> {
        let Some(at) = line.find(name) else {
            bail!("no {name} field");
        };
        let value = line[at + name.len()..]
            .split_whitespace()
            .next()
            .unwrap_or("");
        Ok(value.parse()?)
    };
    Ok(Outcome {
        ops: field("Ops:")?,
        tps: field("TPS:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_final_line() {
        let text = "cmd_get: 132430\nRun time: 5.0s Ops: 147175 TPS: 29406 Net_rate: 4.4M/sfailed";
        let outcome = parse(text).unwrap();
        assert_eq!(outcome.ops, 147175.0);
        assert_eq!(outcome.tps, 29406.0);
        assert!(parse("nothing here").is_err());
    }
}

//! Starting and stopping the two servers under test with the same flags, on a free
//! loopback port, optionally pinned to one core.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// memcached 1.6 (the reference).
    Memcached,
    /// Shoal (under test).
    Shoal,
}

impl Kind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memcached => "memcached",
            Kind::Shoal => "shoal",
        }
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Binary of memcached.
    pub memcached: PathBuf,
    /// Binary of Shoal.
    pub shoal: PathBuf,
    /// Worker threads (`-t`).
    pub threads: usize,
    /// Memory limit in MiB (`-m`).
    pub memory_mb: u64,
    /// Pin the server to this CPU (`taskset -c`).
    pub core: Option<usize>,
}

impl Launch {
    /// The exact command line for `kind` on `port`, as run.
    pub fn command_line(&self, kind: Kind, port: u16) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(core) = self.core {
            argv.extend(["taskset".to_string(), "-c".to_string(), core.to_string()]);
        }
        match kind {
            Kind::Memcached => {
                argv.push(self.memcached.display().to_string());
                argv.extend(["-u".to_string(), "root".to_string()]);
            }
            Kind::Shoal => argv.push(self.shoal.display().to_string()),
        }
        for flag in [
            "-U".to_string(),
            "0".to_string(),
            "-l".to_string(),
            "127.0.0.1".to_string(),
            "-p".to_string(),
            port.to_string(),
            "-t".to_string(),
            self.threads.to_string(),
            "-m".to_string(),
            self.memory_mb.to_string(),
            "-c".to_string(),
            "4096".to_string(),
        ] {
            argv.push(flag);
        }
        argv
    }
}

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts `kind` and waits until it accepts connections.
    pub fn start(kind: Kind, launch: &Launch) -> Result<Server> {
        let port = free_port()?;
        Server::spawn(&launch.command_line(kind, port), port)
    }

    /// Runs `argv` (a server listening on 127.0.0.1:`port`) and waits until it accepts
    /// connections.
    pub fn spawn(argv: &[String], port: u16) -> Result<Server> {
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", argv.join(" ")))?;
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let started = Instant::now();
        while TcpStream::connect(server.addr).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("{} exited at start: {status}", argv.join(" "));
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("{} does not listen after 10 s", argv.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The server's process id (with `taskset`, it execs into the server: same pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

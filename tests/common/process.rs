//! Starting server processes (Shoal, or a real memcached) on free loopback ports, waiting
//! until they answer `version`, and killing them on Drop so they die even when a test
//! panics.
//!
//! Setting `SHOAL_TEST_TARGET=memcached` makes [`ShoalProcess::start`] start a real
//! memcached instead of the Shoal binary: that validates the harness itself (the
//! differential test then compares memcached with memcached).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::tools::require_program;

/// Environment variable selecting what [`ShoalProcess::start`] runs: unset or `shoal` for
/// the Shoal binary, `memcached` for a real memcached (harness self-validation).
pub const TARGET_ENV: &str = "SHOAL_TEST_TARGET";

/// How long a server may take to answer `version` after being spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times startup is retried when the child exits early (e.g. port race).
const START_ATTEMPTS: usize = 5;

/// True when `SHOAL_TEST_TARGET=memcached` asks the tests to run against memcached.
pub fn target_is_memcached() -> bool {
    match std::env::var(TARGET_ENV) {
        Ok(v) if v == "memcached" => true,
        Ok(v) if v.is_empty() || v == "shoal" => false,
        Ok(v) => panic!("{TARGET_ENV}={v:?} is not understood; use `shoal` or `memcached`"),
        Err(_) => false,
    }
}

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A running server child process listening on `127.0.0.1:port`.
pub struct ServerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    name: String,
}

/// Outcome of waiting for a freshly spawned child.
enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

impl ServerProcess {
    /// Spawns `program` with `args_for(port)` on a fresh free port and waits until it
    /// answers `version`; retries on a new port if the child exits early.
    fn spawn(name: &str, program: &str, args_for: impl Fn(u16) -> Vec<String>) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
            let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("{name}-{}-{serial}-{port}.log", std::process::id()));
            let log_file = File::create(&log).expect("creating server log file");
            let args = args_for(port);
            let child = Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("cloning log file handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {program} {args:?}: {e}"));
            let mut process = ServerProcess {
                child,
                port,
                log,
                name: name.to_string(),
            };
            match process.wait_ready() {
                Startup::Ready => return process,
                Startup::Exited(status) => {
                    failures.push_str(&format!(
                        "attempt {attempt}: `{program} {}` exited early with {status}; output:\n{}\n",
                        args.join(" "),
                        process.output()
                    ));
                }
                Startup::TimedOut => panic!(
                    "{name} on port {port} did not answer `version` within {STARTUP_TIMEOUT:?}; \
                     command `{program} {}`; output:\n{}",
                    args.join(" "),
                    process.output()
                ),
            }
        }
        panic!("{name} failed to start {START_ATTEMPTS} times:\n{failures}");
    }

    /// Polls (connect + `version`) until the server answers, exits, or times out.
    fn wait_ready(&mut self) -> Startup {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Startup::Exited(status);
            }
            if answers_version(&addr) {
                // Guard against another process owning the port while ours died.
                return match self.child.try_wait().expect("try_wait") {
                    Some(status) => Startup::Exited(status),
                    None => Startup::Ready,
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Startup::TimedOut
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A human name for messages ("shoal" or "memcached").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status (None if still running).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        send_signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` (a `kill` name such as "KILL", "STOP", "CONT") to the child.
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

/// Sends `signal` (e.g. "TERM") to `pid` with the `kill` utility (keeps tests free of
/// `unsafe`).
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// True if a server on `addr` accepts a connection and answers `version` with `VERSION `.
pub fn answers_version(addr: &SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_secs(1)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .is_err()
        || stream.write_all(b"version\r\n").is_err()
    {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("VERSION ")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Shoal node (or, with `SHOAL_TEST_TARGET=memcached`, a real memcached standing in).
pub struct ShoalProcess(ServerProcess);

impl ShoalProcess {
    /// Starts `shoal -p PORT -l 127.0.0.1 -U 0 ARGS...` (memcached-style flags).
    pub fn start(args: &[&str]) -> Self {
        Self::start_inner(false, args)
    }

    /// Starts `shoal server -p PORT -l 127.0.0.1 -U 0 ARGS...` (the subcommand form).
    pub fn start_server_subcommand(args: &[&str]) -> Self {
        Self::start_inner(true, args)
    }

    fn start_inner(subcommand: bool, args: &[&str]) -> Self {
        if target_is_memcached() {
            return ShoalProcess(MemcachedProcess::start(args).0);
        }
        let extra: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        ShoalProcess(ServerProcess::spawn("shoal", shoal_binary(), |port| {
            let mut argv = Vec::new();
            if subcommand {
                argv.push("server".to_string());
            }
            argv.extend(listen_args(port));
            argv.extend(extra.iter().cloned());
            argv
        }))
    }
}

/// Path of the Shoal binary built by cargo for these tests.
pub fn shoal_binary() -> &'static str {
    env!("CARGO_BIN_EXE_shoal")
}

/// A real memcached, the reference implementation.
pub struct MemcachedProcess(ServerProcess);

impl MemcachedProcess {
    /// Starts `memcached [-u root] -U 0 -p PORT -l 127.0.0.1 ARGS...`.
    pub fn start(args: &[&str]) -> Self {
        require_program("memcached");
        let extra: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        MemcachedProcess(ServerProcess::spawn("memcached", "memcached", |port| {
            let mut argv = Vec::new();
            if running_as_root() {
                argv.extend(["-u".to_string(), "root".to_string()]);
            }
            argv.extend(listen_args(port));
            argv.extend(extra.iter().cloned());
            argv
        }))
    }
}

fn listen_args(port: u16) -> Vec<String> {
    vec![
        "-U".into(),
        "0".into(),
        "-p".into(),
        port.to_string(),
        "-l".into(),
        "127.0.0.1".into(),
    ]
}

/// memcached refuses to run as root without `-u root`, and rejects `-u` otherwise.
fn running_as_root() -> bool {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .expect("running id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Deref for ShoalProcess {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for ShoalProcess {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

impl Deref for MemcachedProcess {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl DerefMut for MemcachedProcess {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

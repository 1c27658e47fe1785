//! Running libmemcached's `memccapable` conformance suite (ascii `-a` or binary `-b`
//! protocol tests) against a server on 127.0.0.1: it must report "All tests passed" and
//! exit 0. Used by `memccapable.rs` (a single node) and `cluster_conformance.rs` (a node
//! of a cluster).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::require_program;

/// memccapable's own I/O timeout (seconds), generous for a loaded machine.
const IO_TIMEOUT_SECS: &str = "30";
/// Upper bound for a whole memccapable run.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `memccapable PROTOCOL_FLAG` against `127.0.0.1:port` and panics unless it passes;
/// `server` names the target and `server_output()` gives its log for the failure message.
pub fn run_memccapable(
    port: u16,
    protocol_flag: &str,
    server: &str,
    server_output: &dyn Fn() -> String,
) {
    require_program("memccapable");
    let port = port.to_string();
    let mut child = Command::new("memccapable")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            IO_TIMEOUT_SECS,
            protocol_flag,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning memccapable");
    // Read output on helper threads so a chatty run cannot block on a full pipe.
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || read_all(stdout));
    let err_thread = std::thread::spawn(move || read_all(stderr));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}{}",
        out_thread.join().expect("stdout reader"),
        err_thread.join().expect("stderr reader")
    );
    let report = format!(
        "memccapable {protocol_flag} against {server} on port {port}:\n{output}\n--- server output ---\n{}",
        server_output()
    );
    let Some(status) = status else {
        panic!("memccapable did not finish within {RUN_TIMEOUT:?}\n{report}");
    };
    assert!(
        status.success(),
        "memccapable exited with {status}\n{report}"
    );
    assert!(
        output.contains("All tests passed"),
        "memccapable did not say \"All tests passed\"\n{report}"
    );
}

fn read_all(mut reader: impl std::io::Read) -> String {
    let mut bytes = Vec::new();
    let _ = reader.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

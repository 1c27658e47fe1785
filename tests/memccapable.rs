//! Runs libmemcached's `memccapable` conformance suite (ascii and binary protocol
//! tests) against a Shoal node; it must report "All tests passed" and exit 0.
//! With `SHOAL_TEST_TARGET=memcached` it runs against a real memcached instead.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tools::require_program;
use common::ShoalProcess;

/// memccapable's own I/O timeout (seconds), generous for a loaded machine.
const IO_TIMEOUT_SECS: &str = "30";
/// Upper bound for a whole memccapable run.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

fn run_memccapable(protocol_flag: &str) {
    require_program("memccapable");
    let node = ShoalProcess::start(&["-m", "64"]);
    let port = node.port().to_string();
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
        "memccapable {protocol_flag} against {} on port {port}:\n{output}\n--- server output ---\n{}",
        node.name(),
        node.output()
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

#[test]
fn memccapable_ascii_protocol_passes() {
    run_memccapable("-a");
}

#[test]
fn memccapable_binary_protocol_passes() {
    run_memccapable("-b");
}

//! Checks for the external programs the integration tests drive. A missing tool makes the
//! test FAIL with a message saying what to install; tests never skip silently.

use std::process::{Command, Stdio};

/// How to install everything the integration tests need.
pub const INSTALL_HINT: &str = "run `bash .ci/run` (as root), or install by hand: \
`apt-get update && apt-get install -y memcached libmemcached-tools python3 python3-pip` \
and `pip install pymemcache`";

/// Panics with an install hint unless `program` can be found on PATH.
pub fn require_program(program: &str) {
    if which(program).is_none() {
        panic!("required program `{program}` was not found on PATH; {INSTALL_HINT}");
    }
}

/// Panics with an install hint unless python3 can import pymemcache.
pub fn require_pymemcache() {
    require_program("python3");
    let status = Command::new("python3")
        .args(["-c", "import pymemcache"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawning python3");
    if !status.success() {
        panic!("python3 cannot `import pymemcache`; {INSTALL_HINT}");
    }
}

/// The full path of `program` if it is an executable file in a PATH directory.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

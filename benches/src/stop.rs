//! Stopping a proxy the benchmark started: by the signal an operator would
//! send, so that it exits through its own shutdown (and an instrumented
//! build writes its profile, see docs/benchmarks.md's profile-guided
//! build), and by SIGKILL only if it does not exit in time.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Sends `signal` (a name for kill(1): `TERM`, `INT`) to `child`, waits up
/// to `grace` for its exit, then kills it.
pub fn stop(child: &mut Child, signal: &str, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .is_ok_and(|s| s.success());
    let deadline = Instant::now() + grace;
    while sent && Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

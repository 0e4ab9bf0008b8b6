//! How a test says it did not run, or ran with less: `skip` and `note`,
//! written straight to stderr so that the line shows for passing tests too.

use std::io::Write;

/// Report that the running test cannot run here because a tool or a
/// system facility is missing (a client binary, `setpriv`, a group, an
/// inotify limit, a tmpfs), and why. Call it, then `return` from the test.
/// Written straight to stderr (not `eprintln!`, which the test runner
/// captures for passing tests), so the reason always shows:
/// `SKIPPED <test>: <reason>`.
///
/// Under `FERRY_REQUIRE_ALL=1`, which the test command sets in CI, such a
/// skip is a failure: CI installs what the tests need, so a test that
/// cannot run there would be a test that always passes.
///
/// A client's own inability (rclone cannot presign a PUT) is not a skip:
/// say it with [`note`].
pub fn skip(test: &str, reason: &str) {
    if require_all() {
        panic!("{test} cannot run here ({reason}), and FERRY_REQUIRE_ALL=1 forbids skipping it");
    }
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether every test must run (`FERRY_REQUIRE_ALL=1`, set by the test
/// command in CI).
fn require_all() -> bool {
    std::env::var("FERRY_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Records what a test leaves out because a client or store cannot do it
/// (not because this machine lacks something): `NOTE <test>: <what>`.
pub fn note(test: &str, what: &str) {
    let line = format!("NOTE {test}: {what}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

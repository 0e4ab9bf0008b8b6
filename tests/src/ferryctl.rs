//! One `ferryctl` run and what the tests expect of it, for every crate's
//! tests that drive a daemon through the real `ferryctl`.

use std::io::Write;
use std::process::{Command, Stdio};

pub use crate::ferryctl_bin;

/// What one `ferryctl` run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "ferryctl failed: {self:?}");
        self
    }

    /// Exit 1, and the reason on stderr's first line, after `ferryctl: `.
    #[track_caller]
    pub fn refused(self) -> Run {
        assert_eq!(
            self.code, 1,
            "ferryctl should be refused (exit 1): {self:?}"
        );
        assert_eq!(
            self.stderr
                .lines()
                .next()
                .map(|l| l.starts_with("ferryctl: ")),
            Some(true),
            "{self:?}"
        );
        self
    }

    /// Refused by the admin socket's peer check (run as uid 65534, not in
    /// `group`): the API's AccessDenied, naming the group and the caller.
    #[track_caller]
    pub fn refused_by_peer_check(&self, group: &str) {
        assert_eq!(
            self.code, 1,
            "refused by the API, not a connection error: {self:?}"
        );
        assert!(self.stderr.contains("AccessDenied"), "{self:?}");
        assert!(
            self.stderr.contains(&format!("group {group}")),
            "names the group: {self:?}"
        );
        assert!(
            self.stderr.contains("65534") || self.stderr.contains("nobody"),
            "{self:?}"
        );
    }

    #[track_caller]
    pub fn usage_error(self) -> Run {
        assert_eq!(self.code, 2, "ferryctl should fail with exit 2: {self:?}");
        self
    }

    /// Exit 3: the daemon could not be reached, said in one sentence on
    /// stderr with a hint, never a backtrace.
    #[track_caller]
    pub fn unreachable(self) -> Run {
        assert_eq!(
            self.code, 3,
            "ferryctl should exit 3 (unreachable): {self:?}"
        );
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:?}");
        assert!(self.stderr.starts_with("ferryctl: "), "{self:?}");
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `cmd` (a `ferryctl` command) with `input` on its stdin.
pub fn run(mut cmd: Command, input: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferryctl");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes())
        .expect("write ferryctl's stdin");
    let out = child.wait_with_output().expect("wait for ferryctl");
    Run {
        code: out.status.code().expect("ferryctl exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

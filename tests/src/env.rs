//! Environment for child processes that talk to loopback stores.
//!
//! Some machines set `AWS_CA_BUNDLE`; rclone 1.60 then fails on every S3
//! remote (`LoadCustomCABundleError ... unsupported transport`). Children get
//! a copy of our environment without it. Nothing here mutates our own
//! environment.

use std::ffi::OsString;
use std::process::Command;

const REMOVED: &[&str] = &["AWS_CA_BUNDLE"];
const NO_PROXY_HOSTS: &str = "127.0.0.1,localhost";

/// A copy of this process's environment for a child that talks to loopback
/// stores: `AWS_CA_BUNDLE` removed, and `127.0.0.1,localhost` appended to
/// `NO_PROXY`/`no_proxy` when either is set (so an HTTP proxy, if any, is
/// never used for loopback).
pub fn loopback_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| !REMOVED.iter().any(|r| k == r))
        .map(|(k, v)| {
            if k == "NO_PROXY" || k == "no_proxy" {
                let v = with_loopback_hosts(v);
                (k, v)
            } else {
                (k, v)
            }
        })
        .collect()
}

/// Apply [`loopback_env`]'s changes to `cmd` (which otherwise inherits our
/// environment). Returns `cmd` for chaining.
pub fn apply_loopback_env(cmd: &mut Command) -> &mut Command {
    for r in REMOVED {
        cmd.env_remove(r);
    }
    for k in ["NO_PROXY", "no_proxy"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, with_loopback_hosts(v));
        }
    }
    cmd
}

fn with_loopback_hosts(v: OsString) -> OsString {
    if v.is_empty() {
        return OsString::from(NO_PROXY_HOSTS);
    }
    let mut v = v;
    v.push(",");
    v.push(NO_PROXY_HOSTS);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_ca_bundle_from_child_environment() {
        assert!(loopback_env().iter().all(|(k, _)| k != "AWS_CA_BUNDLE"));
        let mut cmd = Command::new("env");
        apply_loopback_env(&mut cmd);
        let removed = cmd
            .get_envs()
            .any(|(k, v)| k == "AWS_CA_BUNDLE" && v.is_none());
        assert!(removed, "AWS_CA_BUNDLE must be explicitly removed");
        let out = cmd.output().expect("run env");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.lines().any(|l| l.starts_with("AWS_CA_BUNDLE=")));
    }
}

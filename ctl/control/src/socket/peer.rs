//! Who may use the admin socket: root, and members of the socket's group
//! (primary or supplementary). Each connection's peer is read with
//! SO_PEERCRED when it connects.

use std::fs;

use nix::sys::socket::{UnixCredentials, getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The socket's access rule: root, or group `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    group: String,
    /// `None` when the group does not exist on this host: root only.
    gid: Option<u32>,
}

impl AccessPolicy {
    /// The rule for group `group`, resolved now.
    pub fn new(group: &str) -> AccessPolicy {
        let gid = match Group::from_name(group) {
            Ok(Some(g)) => Some(g.gid.as_raw()),
            Ok(None) => {
                tracing::warn!(
                    group,
                    "admin socket group does not exist: only root may use the admin API"
                );
                None
            }
            Err(e) => {
                tracing::warn!(group, error = %e, "cannot look up the admin socket group: only root may use the admin API");
                None
            }
        };
        AccessPolicy {
            group: group.to_owned(),
            gid,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The group's id, if the group exists.
    pub fn gid(&self) -> Option<u32> {
        self.gid
    }

    /// The peer of a connected Unix socket, checked.
    pub fn check_peer(&self, stream: &tokio::net::UnixStream) -> Result<(), String> {
        let cred: UnixCredentials = getsockopt(stream, PeerCredentials)
            .map_err(|e| format!("access denied: cannot read the peer's credentials: {e}"))?;
        self.check(cred.uid(), cred.gid(), cred.pid())
    }

    /// May the process `pid`, running as `uid`/`gid`, act? The refusal is
    /// one line naming the group.
    pub fn check(&self, uid: u32, gid: u32, pid: i32) -> Result<(), String> {
        if uid == 0 {
            return Ok(());
        }
        let group = &self.group;
        let who = match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(u)) => format!("user {} (uid {uid})", u.name),
            _ => format!("uid {uid}"),
        };
        let Some(want) = self.gid else {
            return Err(format!(
                "access denied: {who} is not root, and group {group} does not exist on this host, \
                 so only root may use this socket"
            ));
        };
        if gid == want || supplementary_groups(uid, gid, pid).contains(&want) {
            return Ok(());
        }
        Err(format!(
            "access denied: {who} is neither root nor in group {group}; ask an administrator to \
             add the user to group {group}, or run as root"
        ))
    }
}

/// The peer process's supplementary groups as the kernel has them
/// (`/proc/PID/status`); failing that (the process is gone or in another pid
/// namespace), the user's groups from the group database.
fn supplementary_groups(uid: u32, gid: u32, pid: i32) -> Vec<u32> {
    if pid > 0
        && let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status"))
        && let Some(groups) = parse_status_groups(&status)
    {
        return groups;
    }
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return Vec::new();
    };
    getgrouplist(&name, Gid::from_raw(gid))
        .map(|v| v.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
}

/// The `Groups:` line of `/proc/PID/status`.
fn parse_status_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace().map(|g| g.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(gid: Option<u32>) -> AccessPolicy {
        AccessPolicy {
            group: "ferry".into(),
            gid,
        }
    }

    #[test]
    fn root_and_primary_group_may_act() {
        assert_eq!(policy(Some(4242)).check(0, 0, 0), Ok(()));
        assert_eq!(policy(None).check(0, 0, 0), Ok(()));
        assert_eq!(policy(Some(4242)).check(1000, 4242, 0), Ok(()));
    }

    #[test]
    fn others_are_refused_naming_the_group() {
        let e = policy(Some(4242)).check(1000, 1000, 0).unwrap_err();
        assert!(e.contains("group ferry"), "{e}");
        let e = policy(None).check(1000, 1000, 0).unwrap_err();
        assert!(e.contains("group ferry does not exist"), "{e}");
    }

    #[test]
    fn supplementary_groups_come_from_proc() {
        // This test process: its own supplementary groups, read from /proc.
        let me = std::process::id() as i32;
        let groups = parse_status_groups(&fs::read_to_string("/proc/self/status").unwrap())
            .expect("a Groups: line");
        assert_eq!(supplementary_groups(12345, 12345, me), groups);
        assert_eq!(
            parse_status_groups("Name:\tx\nGroups:\t4 24 27 \nUid:\t0\n"),
            Some(vec![4, 24, 27])
        );
        assert_eq!(parse_status_groups("Groups:\t\n"), Some(vec![]));
        assert_eq!(parse_status_groups("Uid:\t0\n"), None);
    }
}

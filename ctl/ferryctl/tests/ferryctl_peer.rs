//! The admin socket lets root and members of its group act, and refuses
//! everyone else by SO_PEERCRED, with a message naming the group. The
//! socket is made 0666 here so that a refusal can only come from the peer
//! check, not from file permissions. ferryctl runs as uid 65534 through
//! `setpriv` (util-linux).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{FERRYCTL, Proxy, Run, run};

const NOBODY: u32 = 65534;

/// A group that exists here and that uid 65534 is not a member of.
fn test_group() -> Option<(String, u32)> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (name, gid, members) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?);
        (["daemon", "sys", "adm"].contains(name) && gid != NOBODY && members.is_empty())
            .then(|| (name.to_string(), gid))
    })
}

fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// ferryctl copied where uid 65534 can run it (the target dir may sit under
/// a 0700 home).
fn public_ferryctl(p: &Proxy) -> PathBuf {
    let bin = p.dir.path().join("ferryctl");
    std::fs::copy(FERRYCTL, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn as_user(setpriv: &Path, ids: &[&str], bin: &Path, socket: &Path) -> Run {
    let mut cmd = Command::new(setpriv);
    cmd.args(ids)
        .arg(bin)
        .arg("--socket")
        .arg(socket)
        .args(["s3", "bucket", "migrate", "list"]);
    run(cmd, "")
}

/// Everything the test needs, or why it cannot run here.
fn setup(test: &str) -> Option<(Proxy, PathBuf, PathBuf, String, u32)> {
    let Some(setpriv) = setpriv() else {
        ferry_harness::skip(test, "setpriv (util-linux) is not installed");
        return None;
    };
    let Some((group, gid)) = test_group() else {
        ferry_harness::skip(test, "no system group (daemon, sys, adm) without members");
        return None;
    };
    let p = Proxy::start_with_group(&group);
    std::fs::set_permissions(&p.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let bin = public_ferryctl(&p);
    // Can uid 65534 run anything at all through setpriv here? A process
    // another test forks while the copy is open for writing holds it open
    // until its exec: the copy is then briefly busy (ETXTBSY), so ask again.
    let probe = || {
        Command::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("--version")
            .output()
    };
    let mut probe_out = probe();
    for _ in 0..50 {
        let busy = probe_out
            .as_ref()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("Text file busy"));
        if !busy {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        probe_out = probe();
    }
    let probe = probe_out;
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        ferry_harness::skip(
            test,
            &format!("cannot run ferryctl as uid 65534 through setpriv: {probe:?}"),
        );
        return None;
    }
    Some((p, setpriv, bin, group, gid))
}

#[test]
fn a_peer_neither_root_nor_in_the_group_is_refused() {
    let Some((p, setpriv, bin, group, _)) =
        setup("a_peer_neither_root_nor_in_the_group_is_refused")
    else {
        return;
    };
    let out = as_user(
        &setpriv,
        &["--reuid=65534", "--regid=65534", "--clear-groups"],
        &bin,
        &p.socket,
    );
    out.refused_by_peer_check(&group);

    // Root, the test process, is accepted on the same socket.
    let mut cmd = Command::new(&bin);
    cmd.arg("--socket")
        .arg(&p.socket)
        .args(["s3", "bucket", "migrate", "list"]);
    run(cmd, "").ok();
}

#[test]
fn refused_peer_cannot_change_anything() {
    let Some((p, setpriv, bin, _, _)) = setup("refused_peer_cannot_change_anything") else {
        return;
    };
    p.attach("photos", "http://127.0.0.1:9000").ok();
    let mut cmd = Command::new(&setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("--socket")
        .arg(&p.socket)
        .args(["s3", "bucket", "migrate", "detach", "photos"]);
    let out = run(cmd, "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("AccessDenied"), "{out:?}");
    assert!(p.admin.table().buckets.contains_key("photos"));
    p.assert_persisted();
}

#[test]
fn group_members_are_accepted_by_primary_or_supplementary_group() {
    let Some((p, setpriv, bin, _, gid)) =
        setup("group_members_are_accepted_by_primary_or_supplementary_group")
    else {
        return;
    };
    let supplementary = format!("--groups={gid}");
    let out = as_user(
        &setpriv,
        &["--reuid=65534", "--regid=65534", &supplementary],
        &bin,
        &p.socket,
    );
    assert_eq!(out.code, 0, "member by supplementary group: {out:?}");

    let primary = format!("--regid={gid}");
    let out = as_user(
        &setpriv,
        &["--reuid=65534", &primary, "--clear-groups"],
        &bin,
        &p.socket,
    );
    assert_eq!(out.code, 0, "member by primary group: {out:?}");
}

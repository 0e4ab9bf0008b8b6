//! The agent's admin API: secrets go in and never come out; the socket
//! refuses peers that are neither root nor in its group (SO_PEERCRED, as
//! the proxy's); the config is checked before anything binds; scans,
//! the reserved `watch` kind and the metrics.

use ferry_harness::agent as agent_support;
use ferry_harness::s3migrate as common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_support::*;
use common::{data, pair, rt};
use ferry_control::Client;
use ferry_harness::{StoreKind, put_objects};

const SRC_SECRET: &str = "SRC-secret-marker-7Qz91";
const DEST_SECRET: &str = "DEST-secret-marker-Kp44x";

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A gauge's value in a Prometheus text page: the line that has every
/// fragment in `with`.
fn metric(page: &str, name: &str, with: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| with.iter().all(|w| l.contains(w)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn the_api_never_returns_a_secret_and_metrics_count_per_job() {
    // moto checks no signatures: any secret works, so unique markers do.
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let rt = rt();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        (0..20u64).map(|i| (format!("k{i:02}"), data(i, 100))),
        8,
    ))
    .unwrap();
    let port = ferry_harness::free_port().unwrap();
    let agent = Agent::start(&format!("metrics_addr = \"127.0.0.1:{port}\""));
    let tmp = tempfile::tempdir().unwrap();
    let dest_file = secret_file(tmp.path(), "dest.secret", DEST_SECRET);

    // A secret on the command line is refused before anything is sent.
    let mut args = migrate_args(&src, &dest, &dest_file);
    args.extend(["--src-secret".to_owned(), SRC_SECRET.to_owned()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = agent.ferryctl(&a);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--src-secret-file"), "{out:?}");
    assert!(!out.stderr.contains(SRC_SECRET));

    // A refused start does not echo the secret either.
    let mut bad = migrate_args(&src, &dest, &dest_file);
    bad.extend(["--hash-count", "2", "--hash-value", "2"].map(String::from));
    let b: Vec<&str> = bad.iter().map(String::as_str).collect();
    let out = agent
        .ferryctl_env(&b, &[("S3MIGRATE_SRC_SECRET", SRC_SECRET)])
        .refused();
    assert!(out.stderr.contains("--hash-value"), "{out:?}");

    let args = migrate_args(&src, &dest, &dest_file);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = agent
        .ferryctl_env(&a, &[("S3MIGRATE_SRC_SECRET", SRC_SECRET)])
        .ok()
        .json();
    let id = v["id"].as_u64().unwrap();
    assert_eq!(id, 1, "the refused start made no job");
    let v = agent.wait_state(id, "completed", Duration::from_secs(60));
    assert_eq!(v["passes"][0]["objects"]["copied"], 20, "{v:#}");

    // Nothing the API answers holds a secret.
    let id_s = id.to_string();
    let mut answers = vec![
        agent
            .ferryctl(&["job", "show", &id_s, "--json"])
            .ok()
            .stdout,
        agent.ferryctl(&["job", "show", &id_s]).ok().stdout,
        agent.ferryctl(&["job", "list", "--json"]).ok().stdout,
        agent.ferryctl(&["job", "list"]).ok().stdout,
        agent.ferryctl(&["job", "logs", &id_s]).ok().stdout,
    ];
    let client = Client::new(&agent.socket);
    for path in [
        "/v1/jobs".to_owned(),
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/logs?lines=10000"),
    ] {
        let raw = client.call_raw("GET", &path, None).unwrap();
        assert_eq!(raw.status, 200, "{path}");
        answers.push(String::from_utf8(raw.body).unwrap());
    }
    // Pause and cancel answers on a finished job, and a resume.
    for verb in ["pause", "resume", "cancel"] {
        let raw = client
            .call_raw("POST", &format!("/v1/jobs/{id}/{verb}"), None)
            .unwrap();
        answers.push(String::from_utf8(raw.body).unwrap());
    }
    assert!(answers[4].contains("completed"), "the log: {}", answers[4]);
    for a in &answers {
        assert!(
            !a.contains(SRC_SECRET) && !a.contains(DEST_SECRET),
            "a secret in an answer: {a}"
        );
    }
    assert!(answers[0].contains(&src.access_key), "keys are not secret");

    // On disk: only secrets.json holds them, mode 0600; never the log,
    // spec or state, nor the agent's own output.
    let dir = agent.job_dir(id);
    let secrets = dir.join("secrets.json");
    assert_eq!(std::fs::metadata(&secrets).unwrap().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert!(text.contains(SRC_SECRET) && text.contains(DEST_SECRET));
    for f in ["spec.json", "state.json", "job.log"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            !text.contains(SRC_SECRET) && !text.contains(DEST_SECRET),
            "{f}: {text}"
        );
    }
    let stderr = agent.stderr();
    assert!(!stderr.contains(SRC_SECRET) && !stderr.contains(DEST_SECRET));
    assert_eq!(
        std::fs::metadata(&agent.socket).unwrap().mode() & 0o777,
        0o660,
        "the socket is 0660, as the proxy's"
    );

    // Metrics: per job, with bounded labels, and not the engine's
    // process-wide names.
    let page = http_get(port, "/metrics");
    let job = format!("job_id=\"{id}\"");
    let labels = [job.as_str(), "kind=\"migrate\"", "bucket=\"dest-bucket\""];
    let copied = [&labels[..], &["result=\"copied\""]].concat();
    assert_eq!(
        metric(&page, "ferry_agent_migrate_objects", &copied),
        Some(20.0),
        "{page}"
    );
    let completed = [&labels[..], &["state=\"completed\""]].concat();
    assert_eq!(
        metric(&page, "ferry_agent_job_state", &completed),
        Some(1.0)
    );
    assert_eq!(
        metric(&page, "ferry_agent_migrate_work_in_flight", &labels),
        Some(0.0)
    );
    for name in [
        "ferry_agent_migrate_bytes",
        "ferry_agent_migrate_objects_per_second",
        "ferry_agent_migrate_bytes_per_second",
        "ferry_agent_migrate_remaining_objects",
    ] {
        assert!(metric(&page, name, &labels).is_some(), "{name} in {page}");
    }
    assert!(!page.contains("ferry_migrate_"), "{page}");
}

/// A group that exists here and that uid 65534 is not a member of.
fn test_group() -> Option<(String, u32)> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (name, gid, members) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?);
        (["daemon", "sys", "adm"].contains(name) && gid != 65534 && members.is_empty())
            .then(|| (name.to_string(), gid))
    })
}

fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn as_user(setpriv: &Path, ids: &[&str], bin: &Path, agent: &Agent, args: &[&str]) -> Run {
    let mut cmd = Command::new(setpriv);
    cmd.args(ids)
        .arg(bin)
        .arg("--agent-socket")
        .arg(&agent.socket)
        .args(args);
    run(cmd)
}

#[test]
fn a_peer_neither_root_nor_in_the_group_is_refused() {
    let test = "a_peer_neither_root_nor_in_the_group_is_refused";
    let Some(setpriv) = setpriv() else {
        ferry_harness::skip(test, "setpriv (util-linux) is not installed");
        return;
    };
    let Some((group, gid)) = test_group() else {
        ferry_harness::skip(test, "no system group (daemon, sys, adm) without members");
        return;
    };
    let agent = Agent::start_with_group(&group, "");
    let m = std::fs::metadata(&agent.socket).unwrap();
    assert_eq!(
        (m.mode() & 0o777, m.gid()),
        (0o660, gid),
        "0660, group {group}"
    );
    // Open the file to everyone: any refusal now is SO_PEERCRED's.
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // ferryctl where uid 65534 can run it (the target dir may sit under a
    // 0700 home).
    let bin = agent.dir.path().join("ferryctl");
    std::fs::copy(ferryctl_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let probe = Command::new(&setpriv)
        .args(nobody)
        .arg(&bin)
        .arg("--version")
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        ferry_harness::skip(
            test,
            &format!("cannot run ferryctl as uid 65534 through setpriv: {probe:?}"),
        );
        return;
    }

    let out = as_user(&setpriv, &nobody, &bin, &agent, &["job", "list"]);
    out.refused_by_peer_check(&group);

    // Refused for changes too: no job is made.
    let scan = tempfile::tempdir().unwrap();
    let dir = scan.path().to_str().unwrap().to_owned();
    let lists = format!("{dir}-lists");
    let out = as_user(
        &setpriv,
        &nobody,
        &bin,
        &agent,
        &["job", "start", "find", &dir, &lists],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("AccessDenied"), "{out:?}");
    let jobs = agent.ferryctl(&["job", "list", "--json"]).ok().json();
    assert_eq!(jobs, serde_json::json!([]));

    // A member by a supplementary group may act.
    let member = format!("--groups={gid}");
    let out = as_user(
        &setpriv,
        &["--reuid=65534", "--regid=65534", &member],
        &bin,
        &agent,
        &["job", "list"],
    );
    assert_eq!(out.code, 0, "member by supplementary group: {out:?}");
}

#[test]
fn check_config_validates_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("never.sock");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "state_dir = {:?}\nsocket_path = {:?}\nmax_running_jobs = 3\n",
            dir.path().join("state").to_str().unwrap(),
            socket.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(agent_bin())
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!socket.exists() && !dir.path().join("state").exists());

    let bad = dir.path().join("bad.toml");
    for (text, want) in [
        ("max_running_job = 3\n", "unknown field"),
        ("max_running_jobs = 0\n", "max_running_jobs"),
        ("metrics_addr = \"localhost\"\n", "line 1"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = Command::new(agent_bin())
            .arg("--check-config")
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains(want) && err.contains("bad.toml"),
            "{text}: {err}"
        );
    }
}

#[test]
fn scans_run_as_jobs_and_watch_specs_are_checked() {
    let agent = Agent::start("");
    let tree = tempfile::tempdir().unwrap();
    for p in ["b/2", "a", "b/1"] {
        let p = tree.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
    let out_dir = agent.dir.path().join("lists");
    let v = agent
        .ferryctl(&[
            "job",
            "start",
            "find",
            tree.path().to_str().unwrap(),
            out_dir.to_str().unwrap(),
            "--later-than",
            "1",
            "--bucket",
            "photos",
            "--json",
        ])
        .ok()
        .json();
    let id = v["id"].as_u64().unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["bucket"].as_str()),
        (Some("find"), Some("photos"))
    );
    let v = agent.wait_state(id, "completed", Duration::from_secs(30));
    assert_eq!(v["find"]["files"], 3, "{v:#}");
    assert_eq!(v["find"]["chunks"], 1, "{v:#}");
    let chunk = std::fs::read_to_string(out_dir.join("chunk-000000.keys")).unwrap();
    assert_eq!(chunk, "a\nb/1\nb/2\n");
    let text = agent
        .ferryctl(&["job", "show", &id.to_string()])
        .ok()
        .stdout;
    assert!(text.contains("files=3"), "{text}");

    // A finished scan cannot be paused; a bad scan is refused up front.
    agent.ferryctl(&["job", "pause", &id.to_string()]).refused();
    let out = agent
        .ferryctl(&[
            "job",
            "start",
            "find",
            "/nonexistent-dir-xyz",
            "/tmp/x-lists",
        ])
        .refused();
    assert!(out.stderr.contains("nonexistent-dir-xyz"), "{out:?}");

    // Unknown job ids and routes.
    let out = agent.ferryctl(&["job", "show", "99"]).refused();
    assert!(out.stderr.contains("NoSuchJob"), "{out:?}");
    let client = Client::new(&agent.socket);
    assert_eq!(
        client.call_raw("GET", "/v1/nope", None).unwrap().status,
        404
    );
    assert_eq!(
        client
            .call_raw("DELETE", "/v1/jobs/1", None)
            .unwrap()
            .status,
        405
    );

    // watch: its spec is checked up front like a scan's; a directory that
    // does not exist is refused with the reason.
    let body = serde_json::json!({
        "spec": {"kind": "watch", "directory": "/mnt/b", "output_dir": "/lists/b"}
    });
    let raw = client
        .call_raw("POST", "/v1/jobs", Some(body.to_string().as_bytes()))
        .unwrap();
    let text = String::from_utf8_lossy(&raw.body);
    assert_eq!(raw.status, 400, "{text}");
    assert!(
        text.contains("InvalidRequest") && text.contains("/mnt/b"),
        "{text}"
    );
    // A misspelt field is refused, not ignored.
    let body = serde_json::json!({
        "spec": {"kind": "find", "directory": "/mnt/b", "output_dir": "/l", "later_then": 1}
    });
    let raw = client
        .call_raw("POST", "/v1/jobs", Some(body.to_string().as_bytes()))
        .unwrap();
    assert_eq!(raw.status, 400);
    assert_eq!(
        agent
            .ferryctl(&["job", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

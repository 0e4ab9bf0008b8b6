//! The `watch` job kind through the real agent and the real `ferryctl`:
//! a watch job writes incremental sets of what changed, survives an agent
//! restart (the restart's set holds what changed while it was down), and
//! stops cleanly on cancel.

use ferry_harness::agent as agent_support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use agent_support::Agent;
use ferry_control::keylist::KeyListReader;

/// The created or modified keys of every set in `out/incr`, together.
fn changed_keys(out: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(out.join("incr")) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for e in rd {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let mut r = KeyListReader::open_optional(&e.path()).unwrap();
        while let Some(k) = r.next_key().unwrap() {
            keys.push(k);
        }
    }
    keys
}

#[track_caller]
fn wait_key(agent: &Agent, id: u64, out: &Path, key: &str) {
    agent.wait_for(
        id,
        &format!("{key} in a set"),
        Duration::from_secs(60),
        |_| changed_keys(out).iter().any(|k| k == key),
    );
}

#[test]
fn watch_job_writes_sets_restarts_and_cancels() {
    let mut agent = Agent::start("");
    let root = agent.dir.path().join("bucket");
    let out = agent.dir.path().join("lists");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/old.txt"), b"old").unwrap();

    let v = agent
        .ferryctl(&[
            "job",
            "start",
            "watch",
            root.to_str().unwrap(),
            out.to_str().unwrap(),
            "--interval",
            "1",
            "--quiet-secs",
            "0",
            "--json",
        ])
        .ok()
        .json();
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["kind"], "watch");
    assert_eq!(v["bucket"], "bucket");
    agent.wait_state(id, "running", Duration::from_secs(30));
    // The initial scan is done once the full list's summary is there.
    agent.wait_for(id, "the initial scan", Duration::from_secs(60), |_| {
        out.join("s3find-summary.json").is_file()
    });

    fs::write(root.join("a/new.txt"), b"new").unwrap();
    wait_key(&agent, id, &out, "a/new.txt");
    let v = agent.wait_for(id, "sets in show", Duration::from_secs(30), |v| {
        v["watch"]["sets"].as_u64().unwrap_or(0) >= 1
    });
    assert!(v["watch"]["changed"].as_u64().unwrap() >= 1, "{v:#}");
    assert_eq!(v["watch"]["initial_files"], 1, "{v:#}");
    let text = agent.ferryctl(&["job", "show", &id.to_string()]).ok();
    assert!(text.stdout.contains("watch:"), "{}", text.stdout);
    assert!(text.stdout.contains("sets="), "{}", text.stdout);

    // TERM: the watch stops after its current set and is left running,
    // to restart by itself; what changes meanwhile is the restart's set.
    assert!(agent.term().success(), "{}", agent.stderr());
    let state = fs::read_to_string(agent.job_dir(id).join("state.json")).unwrap();
    assert!(state.contains("\"running\""), "{state}");
    fs::write(root.join("a/while-down.txt"), b"x").unwrap();
    agent.restart();
    wait_key(&agent, id, &out, "a/while-down.txt");
    let v = agent.wait_state(id, "running", Duration::from_secs(30));
    assert_eq!(v["attempts"], 2, "{v:#}");

    let cancelled = agent.ferryctl(&["job", "cancel", &id.to_string()]).ok();
    assert!(
        cancelled.stdout.contains("cancelled"),
        "{}",
        cancelled.stdout
    );
    let v = agent.wait_state(id, "cancelled", Duration::from_secs(30));
    assert!(v["finished_at"].is_string(), "{v:#}");
    let log = agent.job_log(id);
    assert!(log.contains("cancelling: the watch"), "{log}");
    assert!(log.contains("watch ended"), "{log}");
    // Nothing runs any more: no new set appears.
    let sets = fs::read_dir(out.join("incr")).unwrap().count();
    fs::write(root.join("a/after.txt"), b"y").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fs::read_dir(out.join("incr")).unwrap().count(), sets);
}

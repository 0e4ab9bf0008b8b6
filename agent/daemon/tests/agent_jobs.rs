//! The agent runs copy jobs durably: a `kill -9` mid-copy and a TERM both
//! resume by themselves from the migrate.log watermark, with no key handled
//! twice; pause holds the copy still; cancel checkpoints it for good. All
//! through the real `ferry-agent` and `ferryctl` binaries against moto.

use ferry_harness::agent as agent_support;
use ferry_harness::s3migrate as common;

use std::time::Duration;

use agent_support::*;
use common::{data, etags, pair, rt};
use ferry_harness::{Store, StoreKind, put_objects};

const N: u64 = 1500;

/// A moto pair with `N` small objects in `src-bucket`, and the test's
/// folder for secret files.
fn setup() -> (Store, Store, tempfile::TempDir, tokio::runtime::Runtime) {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let rt = rt();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        (0..N).map(|i| (format!("r/{i:05}"), data(i, 1024))),
        16,
    ))
    .unwrap();
    (src, dest, tempfile::tempdir().unwrap(), rt)
}

/// Starts a throttled copy (a few seconds long) and returns its id.
fn start_copy(agent: &Agent, src: &Store, dest: &Store, tmp: &std::path::Path) -> u64 {
    let secret = secret_file(tmp, "dest.secret", &dest.secret_key);
    let mut args = migrate_args(src, dest, &secret);
    args.extend(["--max-requests-per-sec", "300", "--threads", "16"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = agent
        .ferryctl_env(&args, &[("S3MIGRATE_SRC_SECRET", &src.secret_key)])
        .ok();
    let v = out.json();
    assert_eq!(v["kind"], "migrate");
    assert_eq!(v["bucket"], "dest-bucket");
    v["id"].as_u64().unwrap()
}

/// The resumed runs started exactly at their watermarks: the pass summary
/// that starts after each mark handled exactly the keys after it (no key
/// twice), and migrate.log was never set aside and started over.
#[track_caller]
fn assert_resumed_at(agent: &Agent, id: u64, v: &serde_json::Value, marks: &[(usize, &str)]) {
    let passes = v["passes"].as_array().unwrap();
    for (lines_before, mark) in marks {
        let p = passes
            .iter()
            .find(|p| p["start_after"].as_str() == Some(mark))
            .unwrap_or_else(|| panic!("no run resumed after {mark:?}: {v:#}"));
        if p["complete"] == true {
            assert_eq!(
                p["objects"]["obj"].as_u64(),
                Some(N - *lines_before as u64),
                "the resumed pass handled exactly the keys after the mark: {p:#}"
            );
        }
    }
    let rotated: Vec<String> = std::fs::read_dir(agent.job_dir(id).join("dest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("migrate.") && n != "migrate.log")
        .collect();
    assert!(
        rotated.is_empty(),
        "migrate.log was started over: {rotated:?}"
    );
}

/// Every source object is in the destination, with the same size and ETag.
fn assert_copied(rt: &tokio::runtime::Runtime, src: &Store, dest: &Store) {
    let s = etags(rt, &src.client(), "src-bucket");
    let d = etags(rt, &dest.client(), "dest-bucket");
    assert_eq!(s.len() as u64, N);
    assert_eq!(d, s, "the destination must equal the source");
}

#[test]
fn kill_9_then_term_mid_copy_resume_by_themselves_without_handling_a_key_twice() {
    let (src, dest, tmp, rt) = setup();
    let mut agent = Agent::start("");
    let id = start_copy(&agent, &src, &dest, tmp.path());

    // kill -9 once copying is under way.
    let before_kill = agent.wait_log_lines(id, 150);
    agent.kill9();
    let killed_log = agent.migrate_log(id);
    let at_kill = killed_log.len();
    let kill_mark = killed_log.last().unwrap().clone();
    assert!(at_kill >= before_kill);
    assert!(
        (at_kill as u64) < N,
        "the copy ended before the kill; slow it down"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.job_dir(id).join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["state"], "running", "{state}");
    assert_eq!(state["version"], 1);

    // Restarted, it resumes by itself from the watermark.
    agent.restart();
    agent.wait_log_lines(id, at_kill + 150);

    // TERM: the copy checkpoints, the agent exits 0, and the job is
    // recorded as interrupted (not cancelled).
    let status = agent.term();
    assert!(status.success(), "TERM is a clean stop: {status}");
    let term_log = agent.migrate_log(id);
    let at_term = term_log.len();
    let term_mark = term_log.last().unwrap().clone();
    assert!((at_term as u64) < N, "the copy ended before TERM");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.job_dir(id).join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["state"], "running", "{state}");
    let note = state["interrupted"].as_str().unwrap_or_default();
    assert!(
        note.contains("checkpointed") && note.contains("resumes"),
        "{state}"
    );
    assert!(agent.job_log(id).contains("the agent stopped"));
    // The checkpoint is the watermark: the partial pass summary ends there.
    let log = agent.migrate_log(id);
    assert_eq!(
        state["progress"].as_str().map(|p| p.starts_with("obj=")),
        Some(true),
        "{state}"
    );

    agent.restart();
    let v = agent.wait_state(id, "completed", Duration::from_secs(120));
    assert_eq!(v["attempts"], 3, "{v:#}");
    assert!(v["interrupted"].is_null(), "{v:#}");
    assert!(v["last_error"].is_null(), "{v:#}");

    let log_after = agent.migrate_log(id);
    assert_eq!(
        &log_after[..log.len()],
        &log[..],
        "resumed runs only append"
    );
    assert_strictly_sorted(&log_after);
    assert_eq!(log_after.len() as u64, N, "every key handled exactly once");
    assert_copied(&rt, &src, &dest);
    assert_resumed_at(
        &agent,
        id,
        &v,
        &[(at_kill, kill_mark.as_str()), (at_term, term_mark.as_str())],
    );

    // The pass summaries: the TERM'd run stopped early, the last one
    // completed; every key is accounted for across them.
    let passes = v["passes"].as_array().unwrap();
    assert!(passes.len() >= 2, "{v:#}");
    assert_eq!(passes.last().unwrap()["complete"], true, "{v:#}");
    assert!(passes.iter().any(|p| p["complete"] == false), "{v:#}");

    // `job show` prints the WEKA progress line and the pass summaries.
    let text = agent
        .ferryctl(&["job", "show", &id.to_string()])
        .ok()
        .stdout;
    assert!(
        weka_line().is_match(&text),
        "no WEKA progress line in:\n{text}"
    );
    assert!(text.contains("state:        completed"), "{text}");
    assert!(
        text.contains("passes:") && text.contains("pass 1 (run"),
        "{text}"
    );
    let list = agent.ferryctl(&["job", "list"]).ok().stdout;
    assert!(
        list.contains("dest-bucket") && list.contains("completed"),
        "{list}"
    );

    // Finished stays finished, across a restart too.
    agent.kill9();
    agent.restart();
    std::thread::sleep(Duration::from_millis(500));
    let v = agent.show(id);
    assert_eq!(
        (v["state"].as_str(), v["attempts"].as_u64()),
        (Some("completed"), Some(3))
    );
}

#[test]
fn pause_holds_the_copy_still_and_resume_completes_it() {
    let (src, dest, tmp, rt) = setup();
    let mut agent = Agent::start("");
    let id = start_copy(&agent, &src, &dest, tmp.path());
    agent.wait_log_lines(id, 100);

    let v = agent.ferryctl(&["job", "pause", &id.to_string()]).ok();
    assert!(v.stdout.contains("paused"), "{v:?}");
    // The keys in flight finish; then nothing moves.
    std::thread::sleep(Duration::from_millis(1500));
    let held = agent.migrate_log(id).len();
    let obj = |v: &serde_json::Value| {
        v["progress"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let before = obj(&agent.show(id));
    std::thread::sleep(Duration::from_secs(2));
    let v = agent.show(id);
    assert_eq!(v["state"], "paused");
    assert_eq!(
        agent.migrate_log(id).len(),
        held,
        "paused, yet migrate.log grew"
    );
    assert_eq!(obj(&v), before, "paused, yet the progress moved");
    assert!((held as u64) < N, "the copy ended before the pause took");

    // Paused stays paused across a kill -9; resume then picks it up.
    agent.kill9();
    agent.restart();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.show(id)["state"], "paused");
    assert_eq!(agent.migrate_log(id).len(), held);

    agent.ferryctl(&["job", "resume", &id.to_string()]).ok();
    let v = agent.wait_state(id, "completed", Duration::from_secs(120));
    assert_eq!(v["attempts"], 2, "{v:#}");
    let log = agent.migrate_log(id);
    assert_resumed_at(&agent, id, &v, &[(held, log[held - 1].as_str())]);
    assert_strictly_sorted(&log);
    assert_eq!(log.len() as u64, N);
    assert_copied(&rt, &src, &dest);
    assert!(agent.job_log(id).contains("paused"));
}

#[test]
fn cancel_checkpoints_and_stops_for_good() {
    let (src, dest, tmp, rt) = setup();
    let mut agent = Agent::start("");
    let id = start_copy(&agent, &src, &dest, tmp.path());
    agent.wait_log_lines(id, 100);

    // The answer comes once the copy has checkpointed.
    let out = agent.ferryctl(&["job", "cancel", &id.to_string()]).ok();
    assert_eq!(out.stdout.trim(), format!("job {id}: cancelled"), "{out:?}");
    let v = agent.show(id);
    assert_eq!(v["state"], "cancelled");
    assert!(v["finished_at"].is_string());

    // migrate.log is clean: sorted, whole keys of the source, no more
    // growth; the partial pass summary ends at its last line.
    let log = agent.migrate_log(id);
    assert!((log.len() as u64) < N, "the copy ended before the cancel");
    assert_strictly_sorted(&log);
    for key in &log {
        assert!(
            key.starts_with("r/") && key.len() == 7,
            "not a whole key: {key:?}"
        );
    }
    let passes = v["passes"].as_array().unwrap();
    let last = passes.last().expect("a pass summary");
    assert_eq!(last["complete"], false, "{v:#}");
    assert_eq!(last["last_key"].as_str(), log.last().map(String::as_str));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.migrate_log(id).len(), log.len());
    // Every key in migrate.log is in the destination.
    let d = etags(&rt, &dest.client(), "dest-bucket");
    for key in &log {
        assert!(
            d.contains_key(key),
            "{key} is in migrate.log, not in the destination"
        );
    }

    // Cancelled is final: no resume, and a restart does not revive it.
    let out = agent
        .ferryctl(&["job", "resume", &id.to_string()])
        .refused();
    assert!(out.stderr.contains("InvalidJobState"), "{out:?}");
    agent.kill9();
    agent.restart();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.show(id)["state"], "cancelled");
    assert_eq!(agent.migrate_log(id).len(), log.len());
    let _ = src;
}

/// The keys of a failed.log (first field, unescaped).
fn failed_keys(path: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| ferry_control::keylist::unescape(l.split('\t').next().unwrap()).unwrap())
        .collect()
}

/// `ferryctl job retry ID`: a copy whose source went down part way fails
/// with failed keys; once the source is back, one command copies exactly
/// those keys, in the failed job's own folder, with its secrets.
#[test]
fn job_retry_copies_exactly_the_failed_keys() {
    // Garage keeps its data across the restart; moto enforces conditional
    // writes on the destination. Fewer keys than a listing page, so that the
    // listing is done before the outage and the keys after it fail.
    const KEYS: u64 = 400;
    let (mut src, dest) = pair(StoreKind::Garage, StoreKind::Moto);
    let rt = rt();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        (0..KEYS).map(|i| (format!("r/{i:05}"), data(i, 1024))),
        16,
    ))
    .unwrap();
    let source = etags(&rt, &src.client(), "src-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::start("");
    let secret = secret_file(tmp.path(), "dest.secret", &dest.secret_key);
    let mut args = migrate_args(&src, &dest, &secret);
    args.extend(
        [
            "--max-requests-per-sec",
            "100",
            "--threads",
            "8",
            "--retries",
            "2",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = agent
        .ferryctl_env(&args, &[("S3MIGRATE_SRC_SECRET", &src.secret_key)])
        .ok()
        .json();
    let id = first["id"].as_u64().unwrap();

    agent.wait_log_lines(id, 60);
    src.stop();
    let v = agent.wait_state(id, "failed", Duration::from_secs(180));
    let folder = agent.job_dir(id).join("dest");
    let failed = failed_keys(&folder.join("failed.log"));
    assert!(!failed.is_empty(), "the outage failed no key: {v:#}");
    eprintln!("{} of {KEYS} keys failed in the outage", failed.len());

    // Refusals name the reason: an unknown job, and (below) a job with no
    // failed keys left.
    let out = agent.ferryctl(&["job", "retry", "999"]).refused();
    assert!(out.stderr.contains("NoSuchJob"), "{out:?}");

    src.restart().unwrap();
    let out = agent
        .ferryctl(&["job", "retry", &id.to_string(), "--json"])
        .ok();
    let retry = out.json();
    let retry_id = retry["id"].as_u64().unwrap();
    assert_ne!(retry_id, id);
    assert_eq!(retry["folder"], v["folder"], "the failed job's folder");
    let done = agent.wait_state(retry_id, "completed", Duration::from_secs(120));

    // Exactly the failed keys: the retry handled that many, and its
    // migrate.log (the old one was set aside) holds just them.
    let passes = done["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 1, "{done:#}");
    assert_eq!(
        passes[0]["objects"]["obj"].as_u64(),
        Some(failed.len() as u64),
        "{done:#}"
    );
    let handled: std::collections::BTreeSet<String> =
        std::fs::read_to_string(folder.join("migrate.log"))
            .unwrap()
            .lines()
            .map(|l| ferry_control::keylist::unescape(l).unwrap())
            .collect();
    assert_eq!(handled, failed, "the retry handled exactly the failed keys");
    // Each is on the destination now, equal to its source; nothing on the
    // destination differs from the source.
    let on_dest = etags(&rt, &dest.client(), "dest-bucket");
    for k in &failed {
        assert_eq!(on_dest.get(k), source.get(k), "{k} after the retry");
    }
    for (k, v) in &on_dest {
        assert_eq!(Some(v), source.get(k), "{k} differs from the source");
    }

    // Nothing failed in the retry: a second retry of either job is refused.
    for job in [id, retry_id] {
        let out = agent
            .ferryctl(&["job", "retry", &job.to_string()])
            .refused();
        assert!(out.stderr.contains("no failed keys"), "{out:?}");
    }
}

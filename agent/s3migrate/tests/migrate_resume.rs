//! Acceptance 3 (kill -9 and resume from migrate.log) and 4 (hash
//! partitions across processes).

use ferry_harness::s3migrate as common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use ferry_harness::{StoreKind, list_keys, put_objects};
use rand::Rng;

#[test]
fn kill_9_three_times_then_resume_is_exact() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let rt = rt();
    let n = 1500u64;
    let keys: Vec<String> = (0..n).map(|i| format!("r/{i:05}")).collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 2048))),
        16,
    ))
    .unwrap();
    write_key_list(&lists, &keys);

    let mut rng = rand::rng();
    let mut kills = 0;
    let mut start_after: Option<String> = None;
    while kills < 3 {
        let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
        // Slow enough that a kill lands mid-copy.
        c.arg("--src-folder")
            .arg(&lists)
            .args(["--max-requests-per-sec", "400"]);
        if let Some(s) = &start_after {
            c.args(["--start-after", s]);
        }
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let before = migrate_log(&folder).len();
        let mut child = c.spawn().unwrap();
        // Kill once copying is under way (past the start-up probe), at a
        // random moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while migrate_log(&folder).len() == before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(50..800)));
        let finished = child.try_wait().unwrap().is_some();
        assert!(!finished, "the run ended before the kill; slow it down");
        // SIGKILL: no chance to flush anything.
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        let log = migrate_log(&folder);
        eprintln!("kill {kills}: migrate.log has {} lines", log.len());
        start_after = log.last().cloned();
    }
    assert!(
        start_after.is_some(),
        "no progress was logged before the kills"
    );
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder")
        .arg(&lists)
        .args(["--start-after", start_after.as_deref().unwrap()]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));

    // The destination is exact: same keys, same ETags (MD5 of the bytes).
    assert_eq!(
        etags(&rt, &dest.client(), "dest-bucket"),
        etags(&rt, &src.client(), "src-bucket")
    );
    // migrate.log is sorted, with no key twice, and covers every key.
    let log = migrate_log(&folder);
    let mut sorted = log.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(log, sorted, "migrate.log is not strictly sorted");
    assert_eq!(log, keys);
}

#[test]
fn four_processes_share_the_key_space_exactly_once() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let lists = tmp.path().join("lists");
    let rt = rt();
    let n = 2000u64;
    let keys: Vec<String> = (0..n).map(|i| format!("p/{i:05}")).collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 100))),
        16,
    ))
    .unwrap();
    write_key_list(&lists, &keys);

    let children: Vec<_> = (0..4)
        .map(|i| {
            let folder = tmp.path().join(format!("df{i}"));
            let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
            c.arg("--src-folder").arg(&lists).args([
                "--hash-count",
                "4",
                "--hash-value",
                &i.to_string(),
                "--threads",
                "4",
            ]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            (folder, c.spawn().unwrap())
        })
        .collect();
    let mut copied = 0;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (folder, child) in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = counts(&last_summary(&folder));
        assert_eq!(o["obj"], n);
        assert_eq!(o["exist"], 0, "another process copied one of my keys");
        assert_eq!(o["skip_up"], 0, "another process copied one of my keys");
        copied += o["copied"].as_u64().unwrap();
        assert_eq!(
            o["ign"].as_u64().unwrap() + o["copied"].as_u64().unwrap(),
            n
        );
        for k in migrate_log(&folder) {
            assert!(seen.insert(k.clone()), "{k} handled by two processes");
        }
    }
    assert_eq!(copied, n);
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), keys);
    assert_eq!(
        rt.block_on(list_keys(&dest.client(), "dest-bucket"))
            .unwrap(),
        keys
    );
}

/// TERM stops a run gracefully: objects in flight finish, migrate.log ends
/// at a clean checkpoint, and a resume from its last line completes.
#[test]
fn term_checkpoints_and_resume_completes() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let rt = rt();
    let keys: Vec<String> = (0..800).map(|i| format!("t/{i:04}")).collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 512))),
        16,
    ))
    .unwrap();
    write_key_list(&lists, &keys);
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder")
        .arg(&lists)
        .args(["--max-requests-per-sec", "200"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while migrate_log(&folder).len() < 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpointing"), "{err}");
    let s = last_summary(&folder);
    assert_eq!(s["complete"], false);
    counts(&s);
    let log = migrate_log(&folder);
    assert!(log.len() < keys.len(), "the run was not stopped early");
    // Every key in migrate.log is on the destination (nothing in flight was
    // dropped on the floor).
    let on_dest = etags(&rt, &dest.client(), "dest-bucket");
    for k in &log {
        assert!(on_dest.contains_key(k), "{k} logged but not copied");
    }
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder")
        .arg(&lists)
        .args(["--start-after", log.last().unwrap()]);
    assert_eq!(run(&mut c).status.code(), Some(0));
    assert_eq!(migrate_log(&folder), keys);
    assert_eq!(
        etags(&rt, &dest.client(), "dest-bucket"),
        etags(&rt, &src.client(), "src-bucket")
    );
}

//! Acceptance 6: the source store goes down mid-run, large objects mid-
//! transfer. Failures go to failed.log, nothing is reported copied that was
//! not, no partial object is left; after a restart, `--failed-to-folder`
//! completes the copy.

use ferry_harness::s3migrate as common;

use std::time::Duration;

use common::*;
use ferry_harness::{StoreKind, put_multipart, put_objects};

#[test]
fn source_down_mid_run_then_failed_to_folder_completes() {
    // Garage keeps its data across a restart; moto enforces conditional
    // writes on the destination.
    let (mut src, dest) = pair(StoreKind::Garage, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let retry = tmp.path().join("retry");
    let rt = rt();
    let sc = src.client();
    let mut keys: Vec<String> = (0..300).map(|i| format!("s/{i:04}")).collect();
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 4096))),
        16,
    ))
    .unwrap();
    // Large objects: two single-part, one multipart with uneven parts.
    for i in 0..2 {
        let k = format!("big/{i}");
        rt.block_on(put_objects(
            &sc,
            "src-bucket",
            [(k.clone(), data(900 + i, 48 << 20))],
            1,
        ))
        .unwrap();
        keys.push(k);
    }
    let parts = [data(1, 6 << 20), data(2, 5 << 20), data(3, 9 << 20)];
    rt.block_on(put_multipart(&sc, "src-bucket", "big/mp", &parts))
        .unwrap();
    keys.push("big/mp".to_owned());
    keys.sort();
    write_key_list(&lists, &keys);
    let source = etags(&rt, &sc, "src-bucket");

    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    // Slow bytes so the large objects are mid-transfer when the store stops;
    // few retries so the run ends soon after.
    c.arg("--src-folder").arg(&lists).args([
        "--max-bytes-per-sec",
        "4000000",
        "--retries",
        "2",
        "--threads",
        "8",
    ]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // Stop the source while the large objects (about 35 s of transfer at
    // this rate) are moving.
    std::thread::sleep(Duration::from_secs(3));
    src.stop();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", tail(&String::from_utf8_lossy(&out.stderr), 20));
    assert_eq!(out.status.code(), Some(1), "failures must fail the run");

    let s = last_summary(&folder);
    let o = counts(&s);
    assert!(
        o["fail"].as_u64().unwrap() > 0,
        "the outage caused no failure? {o}"
    );
    let failed = std::fs::read_to_string(folder.join("failed.log")).unwrap();
    let failed_keys: Vec<String> = failed
        .lines()
        .map(|l| ferry_control::keylist::unescape(l.split('\t').next().unwrap()).unwrap())
        .collect();
    assert_eq!(failed_keys.len() as u64, o["fail"].as_u64().unwrap());
    for l in failed.lines() {
        assert!(
            l.split('\t').nth(1).unwrap().starts_with("source-"),
            "class: {l}"
        );
    }
    assert!(
        failed_keys.iter().any(|k| k.starts_with("big/")),
        "no large object was cut mid-transfer"
    );

    // Nothing reported copied that was not, and no partial object: every
    // object on the destination is whole and equal to its source.
    let on_dest = etags(&rt, &dest.client(), "dest-bucket");
    assert_eq!(on_dest.len() as u64, o["copied"].as_u64().unwrap());
    for (k, v) in &on_dest {
        assert_eq!(Some(v), source.get(k), "{k} differs from the source");
        assert!(!failed_keys.contains(k), "{k} both failed and present");
    }

    src.restart().unwrap();
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--failed-to-folder").arg(&retry);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let o = counts(&last_summary(&folder));
    assert_eq!(o["obj"].as_u64().unwrap(), failed_keys.len() as u64);

    // Everything the first run did not reach is copied by a resumed run.
    let log = migrate_log(&folder);
    eprintln!("migrate.log after retry has {} lines", log.len());
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&lists);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(etags(&rt, &dest.client(), "dest-bucket"), source);
}

/// Unmounts the tmpfs even when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk under the dest folder stops the run with a clear error;
/// every object it wrote is whole, and a rerun elsewhere completes.
#[test]
fn full_dest_folder_disk_stops_the_run_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small-disk");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        ferry_harness::skip(
            "full_dest_folder_disk_stops_the_run_cleanly",
            "cannot mount a small tmpfs here (needs root)",
        );
        return;
    }
    let _mount = Mount(small.clone());
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let rt = rt();
    let keys: Vec<String> = (0..3000)
        .map(|i| format!("a/rather/long/prefix/so/the/logs/grow/fast/{i:06}"))
        .collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 64))),
        16,
    ))
    .unwrap();
    let folder = small.join("df");
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-list");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    let source = etags(&rt, &src.client(), "src-bucket");
    let on_dest = etags(&rt, &dest.client(), "dest-bucket");
    assert!(
        on_dest.len() < keys.len(),
        "the run should have stopped early"
    );
    for (k, v) in &on_dest {
        assert_eq!(Some(v), source.get(k), "{k}");
    }
    // Resume on a disk with room: the last whole line of migrate.log is a
    // safe start, and the copy completes.
    let log = migrate_log(&folder);
    let folder2 = tmp.path().join("df2");
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder2);
    c.arg("--src-list");
    if let Some(last) = log.last() {
        c.args(["--start-after", last]);
    }
    assert_eq!(run(&mut c).status.code(), Some(0));
    assert_eq!(etags(&rt, &dest.client(), "dest-bucket"), source);
}

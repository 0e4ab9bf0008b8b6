//! Invariant 2, no resurrection: `s3migrate --delete-journal` against real
//! stores. The test plays the proxy: it journals a client's delete in the
//! `ferry_control::journal` format, then deletes the key on the source and then
//! the target, and (for a later client write) writes the target and removes
//! the entry. The copier is held between its source GET and its destination
//! PUT with the binary's test-only FERRY_TEST_PAUSE_BEFORE_PUT, so the delete
//! lands exactly in the window where a copier would bring the key back.

use ferry_harness::s3migrate as common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ferry_control::journal::{Entry, entry_name};
use ferry_harness::{StoreKind, get_bytes, list_keys, put_multipart, put_objects};

const JOURNAL: &str = "ferry-journal";
const DEST: &str = "dest-bucket";

/// Two stores (a Moto source), the journal bucket, `n` source keys named by
/// `name` with `size` bytes each, a dest folder, and the pause hook's
/// directory.
struct Race {
    src: ferry_harness::Store,
    dest: ferry_harness::Store,
    sc: aws_sdk_s3::Client,
    dc: aws_sdk_s3::Client,
    _tmp: tempfile::TempDir,
    folder: std::path::PathBuf,
    pause: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
    keys: Vec<String>,
}

impl Race {
    fn new(dest: StoreKind, n: usize, name: impl Fn(usize) -> String, size: usize) -> Race {
        let (src, dest) = pair(StoreKind::Moto, dest);
        dest.create_bucket(JOURNAL).unwrap();
        let (sc, dc) = (src.client(), dest.client());
        let tmp = tempfile::tempdir().unwrap();
        let pause = tmp.path().join("pause");
        std::fs::create_dir_all(&pause).unwrap();
        let rt = rt();
        let keys: Vec<String> = (0..n).map(name).collect();
        rt.block_on(put_objects(
            &sc,
            "src-bucket",
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), data(i as u64, size))),
            16,
        ))
        .unwrap();
        Race {
            folder: tmp.path().join("df"),
            src,
            dest,
            sc,
            dc,
            _tmp: tmp,
            pause,
            rt,
            keys,
        }
    }
}

/// What the proxy does for a client's DeleteObject in migrate mode: the
/// journal entry first, then the source, then the target.
fn client_delete(
    rt: &tokio::runtime::Runtime,
    sc: &aws_sdk_s3::Client,
    dc: &aws_sdk_s3::Client,
    key: &str,
) {
    journal(rt, dc, key);
    rt.block_on(async {
        sc.delete_object()
            .bucket("src-bucket")
            .key(key)
            .send()
            .await
            .unwrap();
        dc.delete_object()
            .bucket(DEST)
            .key(key)
            .send()
            .await
            .unwrap();
    });
}

fn journal(rt: &tokio::runtime::Runtime, dc: &aws_sdk_s3::Client, key: &str) {
    let e = Entry::new(DEST, key, "2026-11-25T00:00:00Z".to_owned());
    rt.block_on(async {
        dc.put_object()
            .bucket(JOURNAL)
            .key(entry_name(DEST, key))
            .body(e.to_json().into())
            .send()
            .await
            .unwrap();
    });
}

/// What the proxy does for a client's PutObject in migrate mode once a delete
/// of the key is journalled: write the target, then drop the entry.
fn client_put(
    rt: &tokio::runtime::Runtime,
    dc: &aws_sdk_s3::Client,
    key: &str,
    body: Bytes,
    drop_entry: bool,
) {
    rt.block_on(async {
        dc.put_object()
            .bucket(DEST)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
        if drop_entry {
            dc.delete_object()
                .bucket(JOURNAL)
                .key(entry_name(DEST, key))
                .send()
                .await
                .unwrap();
        }
    });
}

fn journal_names(rt: &tokio::runtime::Runtime, dc: &aws_sdk_s3::Client) -> BTreeSet<String> {
    rt.block_on(list_keys(dc, JOURNAL))
        .unwrap()
        .into_iter()
        .collect()
}

fn exists(rt: &tokio::runtime::Runtime, dc: &aws_sdk_s3::Client, key: &str) -> bool {
    rt.block_on(async { dc.head_object().bucket(DEST).key(key).send().await.is_ok() })
}

fn hold(dir: &Path, key: &str, ext: &str) -> std::path::PathBuf {
    dir.join(format!("{}.{ext}", hex::encode(key.as_bytes())))
}

/// Lets every key but `held` through the pause hook without stopping.
fn pass_all_but(dir: &Path, keys: &[String], held: &[String]) {
    for k in keys.iter().filter(|k| !held.contains(k)) {
        std::fs::write(hold(dir, k, "go"), b"").unwrap();
    }
}

fn release(dir: &Path, key: &str) {
    std::fs::write(hold(dir, key, "go"), b"").unwrap();
}

/// Holds the copier's journal watch (see `watch::test_hold`).
fn hold_watch(dir: &Path) {
    std::fs::write(dir.join("watch.hold"), b"").unwrap();
}

fn release_watch(dir: &Path) {
    std::fs::remove_file(dir.join("watch.hold")).unwrap();
}

/// Waits until `cond` holds; kills the copier and fails on timeout.
fn wait_for(child: &mut Child, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "s3migrate exited ({st}) while waiting for {what} ({})",
                common::PAUSE_HOOK_HINT
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("timed out waiting for {what} ({})", common::PAUSE_HOOK_HINT);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the copier with every key of `keys` but `held` let through the
/// pause hook, and returns once each held copy has read the source.
fn start_holding(cmd: &mut Command, pause: &Path, keys: &[String], held: &[String]) -> Child {
    pass_all_but(pause, keys, held);
    let mut child = cmd
        .env("FERRY_TEST_PAUSE_BEFORE_PUT", pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn s3migrate");
    wait_for(&mut child, "the held copies to read the source", || {
        held.iter().all(|k| hold(pause, k, "paused").exists())
    });
    child
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "s3migrate exit={:?}\n--- stdout\n{}\n--- stderr (tail)\n{}",
        out.status.code(),
        stdout(&out),
        tail(&stderr(&out), 30)
    );
    out
}

fn with_journal(src: &ferry_harness::Store, dest: &ferry_harness::Store, folder: &Path) -> Command {
    let mut c = s3migrate(src, "src-bucket", dest, DEST, folder);
    c.args(["--src-list", "--delete-journal", JOURNAL]);
    c
}

/// (a) A client's delete overtakes copies that already read the object:
/// after the pass none of them is on the destination, every other key is,
/// and the journal is left for the proxy. Moto destination: it enforces
/// If-None-Match and honours If-Match on DeleteObject.
#[test]
fn deleted_keys_are_not_resurrected_by_copies_in_flight() {
    let n = 1000;
    let Race {
        src,
        dest,
        sc,
        dc,
        _tmp,
        folder,
        pause,
        rt,
        keys,
    } = Race::new(StoreKind::Moto, n, |i| format!("r/{i:04}"), 200);
    let raced: Vec<String> = [3, 150, 333, 500, 501, 777, 900, 999]
        .iter()
        .map(|&i| keys[i].clone())
        .collect();
    // Journalled before the run while still on the source (the proxy died
    // between its journal write and the source delete, so the client was
    // not told the key is gone): live, copied, and kept.
    let early: Vec<String> = [10, 20, 30].iter().map(|&i| keys[i].clone()).collect();
    for k in &early {
        journal(&rt, &dc, k);
    }
    let child = start_holding(
        &mut with_journal(&src, &dest, &folder),
        &pause,
        &keys,
        &raced,
    );
    for k in &raced {
        client_delete(&rt, &sc, &dc, k);
    }
    for k in &raced {
        release(&pause, k);
    }
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let listed: BTreeSet<String> = rt
        .block_on(list_keys(&dc, DEST))
        .unwrap()
        .into_iter()
        .collect();
    for k in &raced {
        assert!(!listed.contains(k), "{k} was resurrected");
    }
    let want: BTreeSet<String> = keys
        .iter()
        .filter(|k| !raced.contains(k))
        .cloned()
        .collect();
    assert_eq!(listed, want);
    // The copier never removes entries: detach does.
    let want_entries: BTreeSet<String> = raced
        .iter()
        .chain(&early)
        .map(|k| entry_name(DEST, k))
        .collect();
    assert_eq!(journal_names(&rt, &dc), want_entries);

    let s = last_summary(&folder);
    assert_eq!(s["complete"], true);
    let o = counts(&s);
    assert_eq!(o["obj"], n as u64);
    // The raced keys were copied (stale) and then removed by the reconcile;
    // the early ones were copied and kept, since the source still has them.
    assert_eq!(o["copied"], n as u64, "{o}");
    assert_eq!(o["skip_dn"], 0, "{o}");
    assert_eq!(o["fail"], 0, "{o}");
    let j = &s["journal"];
    assert_eq!(j["entries"], 11, "{j}");
    assert_eq!(j["removed"], 8, "{j}");
    assert_eq!(j["live"], 3, "{j}");
    assert_eq!(j["no_record"], 0, "{j}");
    assert_eq!(j["unreconciled"], 0, "{j}");
}

/// (b) Delete, stale copy, then a client writes the key again before the
/// journal watch looks (it is held): the client's write survives the watch
/// and the reconcile, whether the proxy removed the journal entry (k1) or
/// crashed before it could (k2, its v3 differs from the stale bytes, so the
/// ETag tells them apart).
#[test]
fn a_client_write_after_the_delete_is_never_lost() {
    let Race {
        src,
        dest,
        sc,
        dc,
        _tmp,
        folder,
        pause,
        rt,
        keys,
    } = Race::new(StoreKind::Moto, 30, |i| format!("b/{i:02}"), 300);
    let (k1, k2, gate) = (keys[5].clone(), keys[6].clone(), keys[29].clone());
    let held = [k1.clone(), k2.clone(), gate.clone()];
    hold_watch(&pause);
    let mut child = start_holding(
        &mut with_journal(&src, &dest, &folder),
        &pause,
        &keys,
        &held,
    );
    client_delete(&rt, &sc, &dc, &k1);
    client_delete(&rt, &sc, &dc, &k2);
    release(&pause, &k1);
    release(&pause, &k2);
    // The stale copies land; the gate key keeps the pass (and its reconcile)
    // from ending meanwhile.
    wait_for(&mut child, "the stale copies of k1 and k2", || {
        exists(&rt, &dc, &k1) && exists(&rt, &dc, &k2)
    });
    let v3_1 = data(3001, 77);
    let v3_2 = data(3002, 77);
    client_put(&rt, &dc, &k1, v3_1.clone(), true);
    client_put(&rt, &dc, &k2, v3_2.clone(), false);
    release_watch(&pause);
    release(&pause, &gate);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    assert_eq!(rt.block_on(get_bytes(&dc, DEST, &k1)).unwrap(), v3_1);
    assert_eq!(rt.block_on(get_bytes(&dc, DEST, &k2)).unwrap(), v3_2);
    let s = last_summary(&folder);
    assert_eq!(s["complete"], true);
    counts(&s);
    let j = &s["journal"];
    assert_eq!(j["entries"], 1, "{j}");
    assert_eq!(j["kept"], 1, "{j}");
    assert_eq!(j["removed"], 0, "{j}");
    assert_eq!(
        journal_names(&rt, &dc),
        BTreeSet::from([entry_name(DEST, &k2)])
    );
}

/// (c) Garage ignores If-Match on DeleteObject (and If-None-Match on PUT,
/// so it needs --allow-overwrite anyway): with --allow-overwrite the
/// journal watch removes by HEAD, compare, DELETE, and still keeps a
/// client's later write. The watch is held until both stale copies have
/// been seen: left free, it may remove the first before the second lands,
/// and the two are never on the destination at once.
#[test]
fn garage_destination_reconciles_by_compare_under_allow_overwrite() {
    let Race {
        src,
        dest,
        sc,
        dc,
        _tmp,
        folder,
        pause,
        rt,
        keys,
    } = Race::new(StoreKind::Garage, 20, |i| format!("g/{i:02}"), 100);
    let (gone, rewritten, gate) = (keys[2].clone(), keys[3].clone(), keys[19].clone());
    let held = [gone.clone(), rewritten.clone(), gate.clone()];
    hold_watch(&pause);
    // `s3migrate` adds --allow-overwrite for a Garage destination.
    let mut child = start_holding(
        &mut with_journal(&src, &dest, &folder),
        &pause,
        &keys,
        &held,
    );
    client_delete(&rt, &sc, &dc, &gone);
    client_delete(&rt, &sc, &dc, &rewritten);
    release(&pause, &gone);
    release(&pause, &rewritten);
    wait_for(&mut child, "the stale copies", || {
        exists(&rt, &dc, &gone) && exists(&rt, &dc, &rewritten)
    });
    let v3 = data(4003, 55);
    client_put(&rt, &dc, &rewritten, v3.clone(), false);
    release_watch(&pause);
    release(&pause, &gate);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ignores If-Match on DeleteObject"),
        "no warning about the compare-and-delete race"
    );
    assert!(!exists(&rt, &dc, &gone), "{gone} was resurrected");
    assert_eq!(rt.block_on(get_bytes(&dc, DEST, &rewritten)).unwrap(), v3);
    let s = last_summary(&folder);
    assert_eq!(s["complete"], true);
    counts(&s);
    let j = &s["journal"];
    assert_eq!(j["removed"], 1, "{j}");
    assert_eq!(j["removed_during_pass"], 1, "{j}");
    assert_eq!(j["kept"], 1, "{j}");
}

/// (d) A journal bucket the destination key cannot list is refused with one
/// line and exit 2, before the probes write anything. Garage counts its own
/// requests, so "nothing written" is measured, not assumed.
#[test]
fn bad_journal_bucket_is_refused_before_anything_is_written() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Garage);
    let rt = rt();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        [("x".to_owned(), data(1, 10))],
        1,
    ))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let writes = |d: &ferry_harness::Store| -> u64 {
        let c = d.request_counts().unwrap();
        ["PutObject", "DeleteObject", "CreateMultipartUpload"]
            .iter()
            .map(|op| c.get(*op).copied().unwrap_or(0))
            .sum()
    };
    for (journal_bucket, why) in [
        ("no-such-journal", "no such bucket"),
        (DEST, "never the migrating bucket"),
    ] {
        let before = writes(&dest);
        let mut c = s3migrate(&src, "src-bucket", &dest, DEST, &folder);
        c.args(["--src-list", "--delete-journal", journal_bucket]);
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains("--delete-journal"), "{err}");
        assert!(lines[0].contains(why), "{err}");
        assert_eq!(writes(&dest), before, "the destination was written");
        assert!(!folder.exists(), "the dest folder was created");
    }
    assert!(
        rt.block_on(list_keys(&dest.client(), DEST))
            .unwrap()
            .is_empty()
    );
}

/// (c) What the reporting path does, on a real store: an entry the copier
/// cannot read (it cannot tell which key it protects) is reported in
/// failed.log, counted in the summary, leaves the pass incomplete and fails
/// the run; every key is still copied.
#[test]
fn unreadable_journal_entry_fails_the_pass() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    dest.create_bucket(JOURNAL).unwrap();
    let (sc, dc) = (src.client(), dest.client());
    let rt = rt();
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        (0..10).map(|i| (format!("u/{i}"), data(i, 50))),
        4,
    ))
    .unwrap();
    let name = entry_name(DEST, "u/3");
    rt.block_on(async {
        dc.put_object()
            .bucket(JOURNAL)
            .key(&name)
            .body(Bytes::from_static(b"{not json").into())
            .send()
            .await
            .unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let out = run(&mut with_journal(&src, &dest, &folder));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("could not be reconciled"),
        "{}",
        stderr(&out)
    );
    let failed = std::fs::read_to_string(folder.join("failed.log")).unwrap();
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(
        failed.starts_with(&format!("{name}\tjournal-bad-entry\t")),
        "{failed}"
    );
    let s = last_summary(&folder);
    assert_eq!(s["complete"], false);
    assert_eq!(s["errors_by_class"]["journal-bad-entry"], 1);
    assert_eq!(s["journal"]["unreconciled"], 1);
    let o = counts(&s);
    assert_eq!(o["copied"], 10, "{o}");
    assert_eq!(rt.block_on(list_keys(&dc, DEST)).unwrap().len(), 10);
}

/// The proxy journalled a delete and removed the source copy, then died
/// before removing the target copy, which the copier wrote in an earlier
/// run: `--verify` reports it as resurrected, and the next pass removes it.
#[test]
fn verify_reports_a_resurrected_copy_and_the_next_pass_removes_it() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    dest.create_bucket(JOURNAL).unwrap();
    let (sc, dc) = (src.client(), dest.client());
    let rt = rt();
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        (0..10).map(|i| (format!("v/{i}"), data(i, 50))),
        4,
    ))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    assert_eq!(
        run(&mut with_journal(&src, &dest, &folder)).status.code(),
        Some(0)
    );
    journal(&rt, &dc, "v/4");
    rt.block_on(async {
        sc.delete_object()
            .bucket("src-bucket")
            .key("v/4")
            .send()
            .await
            .unwrap();
    });

    let mut c = with_journal(&src, &dest, &folder);
    c.args(["--verify", "--verify-only"]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(1));
    let log = std::fs::read_to_string(folder.join("verify.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.starts_with("v/4\tresurrected\t"), "{log}");
    assert!(exists(&rt, &dc, "v/4"), "verify must not delete");

    let mut c = with_journal(&src, &dest, &folder);
    c.arg("--verify");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!exists(&rt, &dc, "v/4"), "v/4 is still resurrected");
    assert_eq!(last_summary(&folder)["journal"]["removed"], 1);
}

/// A delete whose source step failed (the client was told so) leaves its
/// journal entry, but the key is still live on the source: it is copied
/// like any other, kept by the reconcile, and `--verify` accounts for it.
/// Before, the copier and verify skipped every journalled key, so such a
/// key was never copied and would have been lost at detach.
#[test]
fn an_unfinished_delete_hides_no_live_key() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    dest.create_bucket(JOURNAL).unwrap();
    let (sc, dc) = (src.client(), dest.client());
    let rt = rt();
    rt.block_on(put_objects(
        &sc,
        "src-bucket",
        (0..6).map(|i| (format!("u/{i}"), data(i, 40))),
        4,
    ))
    .unwrap();
    journal(&rt, &dc, "u/2");
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let mut c = with_journal(&src, &dest, &folder);
    c.arg("--verify");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        rt.block_on(get_bytes(&dc, DEST, "u/2")).unwrap(),
        data(2, 40)
    );
    let s = last_summary(&folder);
    assert_eq!(s["complete"], true);
    assert_eq!(counts(&s)["copied"], 6);
    assert_eq!(s["journal"]["live"], 1, "{}", s["journal"]);
    assert!(
        stdout(&out).contains("verify: checked=6 equal=6 "),
        "{}",
        stdout(&out)
    );
}

/// The copier read a key, a client deleted it, the copier's PUT landed (a
/// resurrection), and the copier was killed with `kill -9` before the
/// write's record could reach disk: an earlier key is held, so the records
/// cannot advance past it. The intent logged before the PUT names the
/// write, so the resumed run removes the copy, and `--verify` passes.
#[test]
fn a_copy_killed_before_its_record_is_removed_after_the_delete() {
    let Race {
        src,
        dest,
        sc,
        dc,
        _tmp,
        folder,
        pause,
        rt,
        keys,
    } = Race::new(StoreKind::Moto, 10, |i| format!("k/{i}"), 64);
    let (gate, raced) = (keys[0].clone(), keys[5].clone());
    // Held for good: the copier dies with the stale copy in place.
    hold_watch(&pause);
    let held = [gate.clone(), raced.clone()];
    let mut child = start_holding(
        &mut with_journal(&src, &dest, &folder),
        &pause,
        &keys,
        &held,
    );
    client_delete(&rt, &sc, &dc, &raced);
    release(&pause, &raced);
    wait_for(&mut child, "the stale copy to land", || {
        exists(&rt, &dc, &raced)
    });
    child.kill().unwrap();
    let _ = child.wait();
    let records = std::fs::read_dir(folder.join("records"))
        .map(|d| d.count())
        .unwrap_or(0);
    let recorded = std::fs::read_dir(folder.join("records"))
        .into_iter()
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .contains(&raced)
        });
    assert!(
        !recorded,
        "the raced key's record reached disk ({records} files)"
    );

    let mut c = with_journal(&src, &dest, &folder);
    c.arg("--verify");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!exists(&rt, &dc, &raced), "{raced} was resurrected");
    assert_eq!(last_summary(&folder)["journal"]["removed"], 1);
    let listed = rt.block_on(list_keys(&dc, DEST)).unwrap();
    assert_eq!(listed.len(), 9, "{listed:?}");
    // Settled: the intents are cleared with the records durable.
    let intents = std::fs::read_to_string(folder.join("intents.log")).unwrap();
    assert!(intents.is_empty(), "{intents}");
}

/// (e) The journal watch: a stale copy that lands after a client's delete
/// is gone from the destination within moments, while the pass still runs
/// (a later key is held, so the pass cannot end and its reconcile cannot
/// be what removed it). Before the watch, clients saw the deleted key
/// until the pass's end, hours later on a large bucket.
#[test]
fn a_stale_copy_is_removed_while_the_pass_still_runs() {
    let Race {
        src,
        dest,
        sc,
        dc,
        _tmp,
        folder,
        pause,
        rt,
        keys,
    } = Race::new(StoreKind::Moto, 20, |i| format!("w/{i:02}"), 100);
    let (raced, gate) = (keys[4].clone(), keys[15].clone());
    let held = [raced.clone(), gate.clone()];
    let mut child = start_holding(
        &mut with_journal(&src, &dest, &folder),
        &pause,
        &keys,
        &held,
    );
    client_delete(&rt, &sc, &dc, &raced);
    release(&pause, &raced);
    // migrate.log reaches the raced key only once its stale copy landed
    // (every earlier key is through, the gate key is later).
    wait_for(&mut child, "the raced key's copy to land", || {
        migrate_log(&folder).contains(&raced)
    });
    wait_for(&mut child, "the stale copy to be removed", || {
        !exists(&rt, &dc, &raced)
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the pass must still be running"
    );
    let summaries = std::fs::read_dir(&folder)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("summary-")
        })
        .count();
    assert_eq!(summaries, 0, "the pass must not have ended");
    release(&pause, &gate);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!exists(&rt, &dc, &raced), "{raced} came back");
    let s = last_summary(&folder);
    assert_eq!(s["complete"], true);
    assert_eq!(counts(&s)["copied"], 20);
    let j = &s["journal"];
    assert_eq!(j["entries"], 1, "{j}");
    assert_eq!(j["removed"], 1, "{j}");
    assert_eq!(j["removed_during_pass"], 1, "{j}");
    assert_eq!(j["absent"], 0, "{j}");
}

/// (f) A multipart copy that a client's delete overtakes is never
/// completed: before CompleteMultipartUpload s3migrate looks the key up in
/// the journal, finds it deleted and gone from the source, and aborts the
/// upload. The deleted key never shows on the destination, not even for
/// the moment the journal watch would take to remove it.
#[test]
fn a_multipart_copy_overtaken_by_a_delete_is_never_completed() {
    let Race {
        src,
        dest,
        sc,
        dc,
        _tmp,
        folder,
        pause,
        rt,
        mut keys,
    } = Race::new(StoreKind::Moto, 5, |i| format!("m/{i}"), 100);
    let big = "m/big".to_owned();
    let parts = [data(1, 5 << 20), data(2, 1 << 20)];
    rt.block_on(put_multipart(&sc, "src-bucket", &big, &parts))
        .unwrap();
    keys.push(big.clone());
    let held = [big.clone()];
    let child = start_holding(
        &mut with_journal(&src, &dest, &folder),
        &pause,
        &keys,
        &held,
    );
    client_delete(&rt, &sc, &dc, &big);
    release(&pause, &big);
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!exists(&rt, &dc, &big), "{big} came back");
    let uploads = rt.block_on(async {
        dc.list_multipart_uploads()
            .bucket(DEST)
            .send()
            .await
            .unwrap()
    });
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    let s = last_summary(&folder);
    assert_eq!(s["complete"], true);
    let o = counts(&s);
    assert_eq!(o["copied"], 5, "{o}");
    assert_eq!(o["skip_dn"], 1, "{o}");
    let j = &s["journal"];
    assert_eq!(j["entries"], 1, "{j}");
    assert_eq!(j["no_record"], 1, "{j}");
    assert_eq!(j["removed"], 0, "{j}");
}

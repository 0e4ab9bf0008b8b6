//! The migration invariants of ARCHITECTURE.md, each under concurrency: real
//! clients write and delete through the proxy while the real `s3migrate`
//! copies the same keys.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::migrate::*;
use ferry_harness::put_objects;

const KEYS: usize = 1000;

fn key(i: usize) -> String {
    format!("k/{i:04}")
}

/// Invariant 1, no lost write: clients overwrite every key through the
/// proxy while the copier copies the same keys; afterwards each key holds
/// the client's last acknowledged write, after a second pass too.
#[test]
fn no_client_write_is_lost_to_the_copier() {
    let s = setup();
    let objects: Vec<(String, bytes::Bytes)> = (0..KEYS)
        .map(|i| (key(i), bytes::Bytes::from(format!("source {i}"))))
        .collect();
    s.rt.block_on(put_objects(&s.source.client(), BUCKET, objects, 16))
        .unwrap();
    s.migrate();
    let folder = tempfile::tempdir().unwrap();
    let mut copier = s.s3migrate(folder.path()).spawn().unwrap();

    // Eight clients, each overwriting its share of the keys twice while the
    // copier runs; the last acknowledged write of each key is remembered.
    let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Default::default();
    s.rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let c = s.proxy.client(&s.target.region);
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..2 {
                    for i in (w..KEYS).step_by(8) {
                        let body = format!("client {w} round {round} key {i}").into_bytes();
                        put(&c, &key(i), &body).await;
                        acked.lock().unwrap().insert(key(i), body);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let status = copier.wait().unwrap();
    assert!(status.success(), "s3migrate: {status}");
    // A second pass, now that every key is the clients': nothing changes.
    assert!(run(&mut s.s3migrate(folder.path())).status.success());

    let on_target = s.rt.block_on(contents(&s.target));
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len(), KEYS);
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(k, v)| on_target.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert!(lost.is_empty(), "client writes lost: {lost:?}");
}

/// Invariant 2, no resurrection: the copier is held between its GET and
/// its PUT of every key (the test hook), and a client deletes each key
/// through the proxy in exactly that window; then the copier writes its
/// stale copy. After the pass no deleted key exists on either side. In the
/// same race, keys the client writes again (v3) after the stale copy landed
/// keep the client's v3: no lost write either. The copier's journal watch
/// is held until every client step is done, so that the v3 writes land
/// before it settles the stale copies, not after.
#[test]
fn deleted_keys_never_come_back_and_rewritten_ones_keep_the_clients_write() {
    let s = setup();
    let objects: Vec<(String, bytes::Bytes)> = (0..KEYS)
        .map(|i| (key(i), bytes::Bytes::from(format!("source {i}"))))
        .collect();
    s.rt.block_on(put_objects(&s.source.client(), BUCKET, objects, 16))
        .unwrap();
    s.migrate();
    let rewritten = |k: &str| k.ends_with('0') && k.as_bytes()[k.len() - 2].is_multiple_of(2);
    let folder = tempfile::tempdir().unwrap();
    let gate = tempfile::tempdir().unwrap();
    let watch_hold = gate.path().join("watch.hold");
    std::fs::write(&watch_hold, b"").unwrap();
    let mut copier = s
        .s3migrate(folder.path())
        .args(["--delete-journal", JOURNAL])
        .env("FERRY_TEST_PAUSE_BEFORE_PUT", gate.path())
        .spawn()
        .unwrap();

    let c = s.proxy.client(&s.target.region);
    let tgt = s.target.client();
    let mut seen = std::collections::BTreeSet::new();
    let mut tasks = Vec::new();
    while copier.try_wait().unwrap().is_none() {
        for e in std::fs::read_dir(gate.path()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let Some(hex_key) = name.strip_suffix(".paused") else {
                continue;
            };
            if !seen.insert(hex_key.to_owned()) {
                continue;
            }
            let k = String::from_utf8(hex::decode(hex_key).unwrap()).unwrap();
            let go = gate.path().join(format!("{hex_key}.go"));
            let (c, tgt) = (c.clone(), tgt.clone());
            let again = rewritten(&k);
            tasks.push(s.rt.spawn(async move {
                // The copier holds the source's bytes; the client deletes.
                c.delete_object()
                    .bucket(BUCKET)
                    .key(&k)
                    .send()
                    .await
                    .unwrap();
                std::fs::write(&go, b"").unwrap();
                if again {
                    // Once the stale copy has landed, the client writes v3.
                    while tgt
                        .head_object()
                        .bucket(BUCKET)
                        .key(&k)
                        .send()
                        .await
                        .is_err()
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    put(&c, &k, format!("v3 {k}").as_bytes()).await;
                }
            }));
        }
        if seen.len() == KEYS && tasks.iter().all(|t| t.is_finished()) && watch_hold.exists() {
            std::fs::remove_file(&watch_hold).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for t in tasks {
        s.rt.block_on(t).unwrap();
    }
    let status = copier.wait().unwrap();
    assert_eq!(
        seen.len(),
        KEYS,
        "every copy was held in the window ({})",
        ferry_harness::s3migrate::PAUSE_HOOK_HINT
    );
    assert!(status.success(), "s3migrate: {status}");

    let on_target = s.rt.block_on(contents(&s.target));
    let on_source = s.rt.block_on(contents(&s.source));
    assert!(
        on_source.is_empty(),
        "the source still has {:?}",
        on_source.keys()
    );
    let expected: BTreeMap<String, Vec<u8>> = (0..KEYS)
        .map(key)
        .filter(|k| rewritten(k))
        .map(|k| (k.clone(), format!("v3 {k}").into_bytes()))
        .collect();
    assert!(!expected.is_empty());
    let resurrected: Vec<&String> = on_target
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        resurrected.is_empty(),
        "deleted keys came back: {resurrected:?}"
    );
    assert_eq!(on_target, expected, "the clients' rewrites must stand");
    // The journal keeps the deletes (until detach), and no listing of the
    // bucket shows a journal object.
    let journalled = s.rt.block_on(journal_names(&s.target));
    assert_eq!(journalled.len(), KEYS - expected.len());
    assert!(on_target.keys().all(|k| !journalled.contains(k)));
}

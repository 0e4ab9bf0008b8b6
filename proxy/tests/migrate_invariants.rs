//! The migration invariants of ARCHITECTURE.md, each under concurrency: real
//! clients write and delete through the proxy while the real `s3migrate`
//! copies the same keys.

mod common;

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
            let c = via(&s.proxy, &s.target.region);
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

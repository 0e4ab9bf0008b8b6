//! Invariant 4, the merged listing: a bucket split across the source and
//! the target, listed through the proxy, is identical to one store holding
//! the union, page by page, through boto3, awscli and rclone.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::clients::*;
use common::migrate::*;
use common::*;
use ferry_harness::{Store, put_objects};
use serde_json::{Value, json};

/// The keys the issue names, and others that sort around them.
const ODD: [&str; 16] = [
    "a b",
    "a+b",
    "a%b",
    "a-b",
    "a/",
    "a/x",
    "a/y/z",
    "a",
    "ab",
    "b/c",
    "b//d",
    "caf\u{e9}/x",
    "\u{1F600}",
    "z&<>",
    "q/1",
    "q/2",
];

/// A deterministic spread of keys over a few prefixes, so that some
/// prefixes exist on one side only.
fn generated(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let parts = ["a", "b", "a/", "d/", "e e/", "f+", "%", "x/", "x"];
    (0..n)
        .map(|_| {
            let len = 1 + (next() % 4) as usize;
            (0..len)
                .map(|_| parts[(next() % parts.len() as u64) as usize])
                .collect()
        })
        .collect()
}

struct Split {
    s: Setup,
    union: Store,
    keys: usize,
}

/// Puts each key on the source, the target or both (the target's bytes
/// differ, and win), and on `union` as the merged view should show it.
fn split() -> Split {
    let s = setup();
    // Garage, the more faithful lister of the two stores: moto leaves
    // CommonPrefixes out of a v1 page's max-keys.
    let union = Store::garage().unwrap();
    union.create_bucket(BUCKET).unwrap();
    let mut keys: Vec<String> = ODD.iter().map(|k| k.to_string()).collect();
    keys.extend(generated(7, 60));
    keys.sort();
    keys.dedup();
    let (mut on_source, mut on_target, mut merged) = (Vec::new(), Vec::new(), Vec::new());
    for (i, k) in keys.iter().enumerate() {
        let src = bytes::Bytes::from(format!("source {k}"));
        let tgt = bytes::Bytes::from(format!("target {k} is longer"));
        match i % 3 {
            0 => {
                on_source.push((k.clone(), src.clone()));
                merged.push((k.clone(), src));
            }
            1 => {
                on_target.push((k.clone(), tgt.clone()));
                merged.push((k.clone(), tgt));
            }
            _ => {
                on_source.push((k.clone(), src));
                on_target.push((k.clone(), tgt.clone()));
                merged.push((k.clone(), tgt));
            }
        }
    }
    s.rt.block_on(async {
        put_objects(&s.source.client(), BUCKET, on_source, 8)
            .await
            .unwrap();
        put_objects(&s.target.client(), BUCKET, on_target, 8)
            .await
            .unwrap();
        put_objects(&union.client(), BUCKET, merged, 8)
            .await
            .unwrap();
    });
    s.migrate();
    let keys = keys.len();
    Split { s, union, keys }
}

fn endpoint(url: &str, key: &str, secret: &str, region: &str) -> Value {
    json!({"endpoint": url, "key": key, "secret": secret, "region": region})
}

fn compare(sp: &Split, cfg: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let mut cfg = cfg;
    cfg["a"] = endpoint(
        &sp.s.proxy.http,
        ALICE.access_key,
        ALICE.secret,
        &sp.s.target.region,
    );
    cfg["b"] = endpoint(
        &sp.union.endpoint,
        &sp.union.access_key,
        &sp.union.secret_key,
        &sp.union.region,
    );
    cfg["bucket"] = json!(BUCKET);
    std::fs::write(&file, cfg.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/list_compare.py");
    let mut c = Command::new(python());
    c.arg(script).arg(&file);
    let out = ok("list_compare.py", &mut c);
    serde_json::from_str(&out).unwrap()
}

/// boto3, v1 and v2, with and without delimiters and prefixes, every page
/// size from 1 to past the number of keys (a larger size gives the same
/// single page), 1000 among them; then random listings.
#[test]
fn merged_listing_equals_the_union_for_every_page_size_through_boto3() {
    let sp = split();
    let mut sizes: Vec<usize> = (1..=sp.keys + 2).collect();
    sizes.extend([500, 999, 1000]);
    let r = compare(
        &sp,
        json!({
            "page_sizes": sizes,
            "prefixes": [""],
            "delimiters": ["", "/"],
            "seed": 1, "random_rounds": 0,
        }),
    );
    assert_eq!(r["failed"], 0, "{r}");
    let r = compare(
        &sp,
        json!({
            "page_sizes": [1, 2, 3, 5, 1000],
            "prefixes": ["a", "a/", "b/", "q", "e e/", "nothing/"],
            "delimiters": ["", "/", "a", "b/"],
            "seed": 11, "random_rounds": 200,
        }),
    );
    assert_eq!(r["failed"], 0, "{r}");
    assert!(r["compared"].as_u64().unwrap() > 400, "{r}");
}

/// What a client lists, as a sorted set of (key, size).
fn sizes_of(v: &Value, field: &str, key: &str, size: &str) -> BTreeMap<String, u64> {
    v[field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    (
                        o[key].as_str().unwrap().to_owned(),
                        o[size].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn awscli_and_rclone_list_the_union() {
    let sp = split();
    let proxy = Endpoint::proxy(&sp.s.proxy);
    let union = Endpoint::store(&sp.union);
    let (aws_p, aws_u) = (Aws::new(proxy), Aws::new(union));
    for (op, page) in [
        ("list-objects-v2", "1"),
        ("list-objects-v2", "7"),
        ("list-objects", "3"),
        ("list-objects", "1000"),
    ] {
        for delim in [None, Some("/")] {
            let mut args = vec![
                "s3api",
                op,
                "--bucket",
                BUCKET,
                "--page-size",
                page,
                "--output",
                "json",
            ];
            if let Some(d) = delim {
                args.extend(["--delimiter", d]);
            }
            let (p, u) = (aws_p.json(&args), aws_u.json(&args));
            assert_eq!(
                sizes_of(&p, "Contents", "Key", "Size"),
                sizes_of(&u, "Contents", "Key", "Size"),
                "awscli {args:?}"
            );
            // Garage repeats a v1 CommonPrefix that the marker names; S3
            // (and the proxy) list each once.
            let prefixes = |v: &Value| -> std::collections::BTreeSet<String> {
                v["CommonPrefixes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| p["Prefix"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            assert_eq!(prefixes(&p), prefixes(&u), "awscli {args:?}");
            assert_eq!(
                prefixes(&p).len(),
                p["CommonPrefixes"].as_array().map_or(0, Vec::len),
                "the proxy listed a prefix twice: {args:?}"
            );
            if delim.is_none() {
                assert_eq!(sizes_of(&p, "Contents", "Key", "Size").len(), sp.keys);
            }
        }
    }
    let (rc_p, rc_u) = (Rclone::new(proxy), Rclone::new(union));
    for version in ["1", "2"] {
        for chunk in ["1", "5", "1000"] {
            let args = [
                "lsjson",
                "-R",
                "--files-only",
                &format!("x:{BUCKET}"),
                "--s3-list-version",
                version,
                "--s3-list-chunk",
                chunk,
            ];
            let wrap = |v: Value| json!({ "all": v });
            let p = sizes_of(&wrap(rc_p.json(&args)), "all", "Path", "Size");
            let u = sizes_of(&wrap(rc_u.json(&args)), "all", "Path", "Size");
            assert_eq!(p, u, "rclone {args:?}");
            assert!(!p.is_empty());
        }
    }
}

/// A listing needs both sides: with the source down it is a 503, never a
/// shorter listing.
#[test]
fn a_listing_without_the_source_is_503() {
    let mut sp = split();
    sp.s.source.stop();
    let c = sp.s.proxy.client(&sp.s.target.region);
    sp.s.rt.block_on(async {
        let e = c.list_objects_v2().bucket(BUCKET).send().await.unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");
        let e = c.list_objects().bucket(BUCKET).send().await.unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");
    });
}

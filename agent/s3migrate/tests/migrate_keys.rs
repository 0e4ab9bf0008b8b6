//! Acceptance 2: odd keys round-trip byte for byte, and a key the
//! destination would rename is never written.

use ferry_harness::s3migrate as common;

use common::*;
use ferry_harness::{StoreKind, get_bytes, list_keys, put_objects};

fn odd_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "plain",
        "with space",
        "two  spaces ",
        "50%",
        "%41%2F",
        "a+b",
        "q?x=1&y=2",
        "hash#frag",
        "caf\u{e9}",   // NFC
        "cafe\u{301}", // NFD: a different key, kept as is
        "\u{65e5}\u{672c}/\u{8a9e}",
        "emoji-\u{1f600}",
        "a//b",
        "/lead",
        "lead",
        "dir/",
        "dir/sub/",
        "empty",
        "tab\there",
        "semi;colon,comma'quote\"",
        "back\\slash",
        "tilde~star*paren()",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A 1024-byte key (the S3 maximum).
    let mut long = "long/".to_owned();
    long.push_str(&"x".repeat(1024 - long.len()));
    keys.push(long);
    keys.sort();
    keys
}

fn body_for(key: &str) -> bytes::Bytes {
    if key == "empty" || key.ends_with('/') {
        bytes::Bytes::new()
    } else {
        bytes::Bytes::from(format!("body of {key:?}"))
    }
}

fn corpus_onto_moto(use_list: bool) {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let keys = odd_keys();
    let rt = rt();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter().map(|k| (k.clone(), body_for(k))),
        4,
    ))
    .unwrap();
    // The store kept every key as is (else the test proves nothing).
    assert_eq!(
        rt.block_on(list_keys(&src.client(), "src-bucket")).unwrap(),
        keys
    );

    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    if use_list {
        c.arg("--src-list");
    } else {
        let lists = tmp.path().join("lists");
        write_key_list(&lists, &keys);
        c.arg("--src-folder").arg(&lists);
    }
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = counts(&last_summary(&folder));
    assert_eq!(o["copied"], keys.len() as u64);

    let got = rt
        .block_on(list_keys(&dest.client(), "dest-bucket"))
        .unwrap();
    assert_eq!(got, keys);
    for k in &keys {
        let b = rt
            .block_on(get_bytes(&dest.client(), "dest-bucket", k))
            .unwrap();
        assert_eq!(b, body_for(k), "bytes of {k:?}");
    }
    // migrate.log holds every key once, in order, escaped where needed.
    let log: Vec<String> = migrate_log(&folder)
        .iter()
        .map(|l| ferry_control::keylist::unescape(l).unwrap())
        .collect();
    assert_eq!(log, keys);
}

#[test]
fn odd_keys_round_trip_via_src_folder() {
    corpus_onto_moto(false);
}

#[test]
fn odd_keys_round_trip_via_src_list() {
    corpus_onto_moto(true);
}

/// Garage stores `/lead` as `lead`. With both on the source, `lead` must
/// arrive intact and `/lead` must be refused as not representable, even
/// when `lead` is already on the destination (Garage would let the write
/// of `/lead` replace it: it ignores If-None-Match).
#[test]
fn leading_slash_is_not_written_where_the_store_would_rename_it() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Garage);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let rt = rt();
    let lead = bytes::Bytes::from_static(b"I am lead");
    let slash_lead = bytes::Bytes::from_static(b"I am /lead, a different key");
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        [
            ("lead".to_owned(), lead.clone()),
            ("/lead".to_owned(), slash_lead),
            ("a//b".to_owned(), bytes::Bytes::from_static(b"ab")),
        ],
        1,
    ))
    .unwrap();

    // First a run that copies only `lead`, so the destination holds it when
    // `/lead` comes up.
    let only_lead = tmp.path().join("only-lead");
    write_key_list(&only_lead, &["lead".to_owned()]);
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&only_lead);
    assert_eq!(run(&mut c).status.code(), Some(0));

    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-list");
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(1), "a refused key fails the run");
    let o = counts(&last_summary(&folder));
    assert_eq!(o["fail"], 1, "{o}");
    let failed = std::fs::read_to_string(folder.join("failed.log")).unwrap();
    let lines: Vec<&str> = failed.lines().collect();
    assert_eq!(lines.len(), 1, "{failed}");
    assert!(lines[0].starts_with("/lead\tunrepresentable\t"), "{failed}");
    assert_eq!(
        rt.block_on(get_bytes(&dest.client(), "dest-bucket", "lead"))
            .unwrap(),
        lead
    );
    assert_eq!(
        rt.block_on(list_keys(&dest.client(), "dest-bucket"))
            .unwrap(),
        vec!["a//b".to_owned(), "lead".to_owned()]
    );
}

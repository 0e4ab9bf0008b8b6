//! s3migrate over https: the engine's own HTTP client (quick-ack sockets,
//! rustls) verifies the store's certificate against the system's roots,
//! which `SSL_CERT_FILE` replaces. Untrusted, nothing is written; trusted,
//! every byte arrives.

use ferry_harness::s3migrate as common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use ferry_harness::tls::{HttpsMoto, test_ca};
use ferry_harness::{Boto3, Store, StoreKind};
use sha2::{Digest, Sha256};

/// Runs boto3 against the https store, trusting `ca`; returns its stdout.
fn py(moto: &HttpsMoto, ca: &Path, code: &str) -> String {
    let out = Boto3 {
        endpoint: &moto.endpoint,
        key: "k",
        secret: "s",
        region: "us-east-1",
        ca: Some(ca),
    }
    .run(code);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Key → sha256 of the body, of every object in the https bucket.
fn dest_digests(moto: &HttpsMoto, ca: &Path) -> BTreeMap<String, String> {
    py(
        moto,
        ca,
        "for o in s3.list_objects_v2(Bucket='dest-bucket').get('Contents', []):\n    \
         b=s3.get_object(Bucket='dest-bucket', Key=o['Key'])['Body'].read()\n    \
         print(o['Key'] + '\\t' + hashlib.sha256(b).hexdigest())",
    )
    .lines()
    .map(|l| {
        let (k, d) = l.split_once('\t').unwrap();
        (k.to_owned(), d.to_owned())
    })
    .collect()
}

fn s3migrate_to(src: &Store, moto: &HttpsMoto, folder: &Path, trust: &Path) -> Command {
    let mut c = Command::new(s3migrate_bin());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SSL_CERT_FILE", trust)
        .env("S3MIGRATE_SRC_SECRET", &src.secret_key)
        .env("S3MIGRATE_DEST_SECRET", "s")
        .args(["--src-url", &src.endpoint, "--src-bucket", "src-bucket"])
        .args(["--src-key", &src.access_key, "--src-region", &src.region])
        .args(["--dest-url", &moto.endpoint, "--dest-bucket", "dest-bucket"])
        .args(["--dest-key", "k", "--dest-region", "us-east-1"])
        .arg("--dest-folder")
        .arg(folder)
        .args(["--src-list", "--threads", "4"]);
    c
}

#[test]
fn copies_onto_https_only_when_the_certificate_is_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let good = test_ca(tmp.path(), "good").unwrap();
    let stranger = test_ca(tmp.path(), "stranger").unwrap();
    let port = ferry_harness::free_port().unwrap();
    let moto = HttpsMoto::start(port, &good.cert, &good.key).unwrap();
    py(&moto, &good.ca, "s3.create_bucket(Bucket='dest-bucket')");

    let src = Store::start(StoreKind::Garage).unwrap();
    src.create_bucket("src-bucket").unwrap();
    // Sizes around the one that Nagle delayed, an empty object and a
    // body of several reads.
    let objects: Vec<(String, bytes::Bytes)> = [0usize, 100, 4096, 20_000, 3 << 20]
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("dir/o {len}+%"), data(i as u64 + 1, len)))
        .collect();
    let want: BTreeMap<String, String> = objects
        .iter()
        .map(|(k, b)| (k.clone(), hex::encode(Sha256::digest(b))))
        .collect();
    rt().block_on(ferry_harness::put_objects(
        &src.client(),
        "src-bucket",
        objects,
        4,
    ))
    .unwrap();

    // A certificate from a CA it was not told to trust: refused, nothing
    // written, and the error says why.
    let folder = tmp.path().join("untrusted");
    let out = run(&mut s3migrate_to(&src, &moto, &folder, &stranger.ca));
    assert!(!out.status.success(), "copied to an untrusted https store");
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("certificate"),
        "error does not name the certificate: {err}"
    );
    assert_eq!(dest_digests(&moto, &good.ca), BTreeMap::new());

    let folder = tmp.path().join("trusted");
    let out = run(&mut s3migrate_to(&src, &moto, &folder, &good.ca));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dest_digests(&moto, &good.ca), want);
    let summary = last_summary(&folder);
    assert_eq!(counts(&summary)["copied"], 5, "{summary}");
}

/// `--dest-ca-file`: the store's private CA trusted for this copy alone,
/// whatever the system's roots (here a stranger's) say; a file that holds
/// no certificate is refused by name before anything is written.
#[test]
fn a_private_ca_file_is_trusted_for_its_store_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let good = test_ca(tmp.path(), "good").unwrap();
    let stranger = test_ca(tmp.path(), "stranger").unwrap();
    let port = ferry_harness::free_port().unwrap();
    let moto = HttpsMoto::start(port, &good.cert, &good.key).unwrap();
    py(&moto, &good.ca, "s3.create_bucket(Bucket='dest-bucket')");
    let src = Store::start(StoreKind::Garage).unwrap();
    src.create_bucket("src-bucket").unwrap();
    let objects: Vec<(String, bytes::Bytes)> =
        (0..3).map(|i| (format!("k/{i}"), data(i, 1000))).collect();
    let want: BTreeMap<String, String> = objects
        .iter()
        .map(|(k, b)| (k.clone(), hex::encode(Sha256::digest(b))))
        .collect();
    rt().block_on(ferry_harness::put_objects(
        &src.client(),
        "src-bucket",
        objects,
        3,
    ))
    .unwrap();

    let not_pem = tmp.path().join("not.pem");
    std::fs::write(&not_pem, "no certificate here\n").unwrap();
    let out = run(
        s3migrate_to(&src, &moto, &tmp.path().join("bad"), &stranger.ca)
            .arg("--dest-ca-file")
            .arg(&not_pem),
    );
    assert_eq!(out.status.code(), Some(2), "a bad CA file is bad input");
    assert!(stderr(&out).contains("--dest-ca-file"), "{}", stderr(&out));
    assert_eq!(dest_digests(&moto, &good.ca), BTreeMap::new());

    let folder = tmp.path().join("private");
    let out = run(s3migrate_to(&src, &moto, &folder, &stranger.ca)
        .arg("--dest-ca-file")
        .arg(&good.ca));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dest_digests(&moto, &good.ca), want);
}

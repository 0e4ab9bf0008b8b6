//! Upstream TLS to an https source is verified against the bucket's own
//! certificate, given at attach: a source that presents another
//! certificate gets 503, never a silent connection.

use ferry_harness::proxy as common;

use std::path::Path;

use common::*;
use ferry_harness::tls::{HttpsMoto, test_ca};
use ferry_harness::{Boto3, Store};

/// boto3 against `endpoint`, trusting `ca`: whether `code` succeeded, and
/// what it printed.
fn py(endpoint: &str, ca: Option<&Path>, key: &str, secret: &str, code: &str) -> (bool, String) {
    let out = Boto3 {
        endpoint,
        key,
        secret,
        region: "us-east-1",
        ca,
    }
    .run(code);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn https_source_is_verified_against_the_attached_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let good = test_ca(dir.path(), "good").unwrap();
    let other = test_ca(dir.path(), "other").unwrap();
    let port = free_port();
    let moto = HttpsMoto::start(port, &good.cert, &good.key).unwrap();
    let source_url = moto.endpoint.clone();
    let good_ca = &good.ca;
    let (ok, text) = py(
        &source_url,
        Some(good_ca),
        "src",
        "src-secret",
        "s3.create_bucket(Bucket='photos')",
    );
    assert!(ok, "{text}");

    let target = Store::garage().unwrap();
    target.create_bucket("photos").unwrap();
    let proxy = Proxy::start(&target, "photos");
    let secret = proxy.dir.path().join("src.secret");
    write_private(&secret, "src-secret");
    proxy.ferryctl_ok(&[
        "s3",
        "bucket",
        "migrate",
        "attach",
        "photos",
        &source_url,
        good_ca.to_str().unwrap(),
        "--s3-key",
        "src",
        "--s3-secret-file",
        secret.to_str().unwrap(),
    ]);
    proxy.set_mode("photos", "forward");

    let through = |code: &str| py(&proxy.http, None, ALICE.access_key, ALICE.secret, code);
    let (ok, text) = through("s3.put_object(Bucket='photos', Key='k', Body=b'over verified TLS')");
    assert!(ok, "{text}");
    let (ok, text) = py(
        &source_url,
        Some(good_ca),
        "src",
        "src-secret",
        "print(s3.get_object(Bucket='photos', Key='k')['Body'].read())",
    );
    assert!(ok && text.contains("over verified TLS"), "{text}");

    // The source now presents a certificate the bucket was not attached
    // with: the proxy refuses to talk to it.
    drop(moto);
    let _moto = HttpsMoto::start(port, &other.cert, &other.key).unwrap();
    let (ok, text) = through("s3.get_object(Bucket='photos', Key='k')");
    assert!(
        !ok,
        "the proxy trusted a certificate it was not given: {text}"
    );
    assert!(
        text.contains("503") || text.contains("ServiceUnavailable"),
        "{text}"
    );
}

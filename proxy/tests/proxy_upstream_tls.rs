//! Upstream TLS to an https source is verified against the bucket's own
//! certificate, given at attach: a source that presents another
//! certificate gets 503, never a silent connection.

mod common;

use std::process::Command;

use common::*;
use ferry_harness::Store;
use ferry_harness::tls::{HttpsMoto, test_ca};

/// boto3 against `endpoint`, trusting `ca`; prints what `code` prints.
fn py(endpoint: &str, ca: &str, key: &str, secret: &str, code: &str) -> (bool, String) {
    let script = format!(
        "import boto3\nfrom botocore.config import Config\ns3=boto3.client('s3',endpoint_url='{endpoint}',aws_access_key_id='{key}',aws_secret_access_key='{secret}',region_name='us-east-1',verify={ca},config=Config(s3={{'addressing_style':'path'}},retries={{'max_attempts':1}}))\n{code}"
    );
    let mut c = Command::new(python());
    c.args(["-c", &script]);
    ferry_harness::apply_loopback_env(&mut c);
    let out = c.output().unwrap();
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
    let ca = format!("'{}'", good_ca.display());
    let (ok, text) = py(
        &source_url,
        &ca,
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

    let through = |code: &str| py(&proxy.http, "None", ALICE.access_key, ALICE.secret, code);
    let (ok, text) = through("s3.put_object(Bucket='photos', Key='k', Body=b'over verified TLS')");
    assert!(ok, "{text}");
    let (ok, text) = py(
        &source_url,
        &ca,
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

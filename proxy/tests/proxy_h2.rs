//! HTTP/2 over TLS to an attached bucket: an h2 request has no Host header,
//! so the `host` a client signs is the `:authority`, which is also what
//! routes it. Checked with curl's own SigV4 (`--aws-sigv4`) and with
//! rclone (Go's HTTP/2), in every mode.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use std::process::Command;

use common::clients::{Endpoint, Rclone, run};
use common::migrate::{BUCKET, JOURNAL};
use common::*;
use ferry_harness::tls::test_ca;
use ferry_harness::{Store, get_bytes};

/// curl over h2 as ALICE; returns (HTTP version, status, body).
fn curl(
    port: u16,
    ca: &std::path::Path,
    region: &str,
    args: &[&str],
    key: &str,
) -> (String, u16, Vec<u8>) {
    let mut c = Command::new("curl");
    c.args(["--http2", "-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--aws-sigv4", &format!("aws:amz:{region}:s3")])
        .args(["--user", &format!("{}:{}", ALICE.access_key, ALICE.secret)])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}/{BUCKET}/{key}"));
    ferry_harness::apply_loopback_env(&mut c);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').unwrap();
    let tail = String::from_utf8_lossy(&text[split + 1..]).into_owned();
    let (version, code) = tail.split_once(' ').unwrap();
    (
        version.to_owned(),
        code.parse().unwrap(),
        text[..split].to_vec(),
    )
}

#[test]
fn curl_and_rclone_over_http2_read_and_write_an_attached_bucket_in_every_mode() {
    let source = Store::garage().unwrap();
    source.create_bucket(BUCKET).unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ca = test_ca(work.path(), "h2").unwrap();
    let certs = work.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let mut pem = std::fs::read(&ca.cert).unwrap();
    pem.extend(std::fs::read(&ca.key).unwrap());
    std::fs::write(certs.join("leaf.pem"), pem).unwrap();
    let port = free_port();
    let proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!(
            "https_addr = \"127.0.0.1:{port}\"\ncert_dir = \"{}\"\njournal_bucket = \"{JOURNAL}\"\n",
            certs.display()
        ),
    );
    proxy.attach(BUCKET, &source);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = work.path().join("body");
    for mode in ["ready", "forward", "migrate"] {
        if mode != "ready" {
            proxy.set_mode(BUCKET, mode);
        }
        let key = format!("h2-{mode}");
        let data = format!("sent over h2 in {mode} mode");
        std::fs::write(&body, &data).unwrap();
        let (version, code, _) = curl(
            port,
            &ca.ca,
            &target.region,
            &["-T", body.to_str().unwrap()],
            &key,
        );
        assert_eq!((version.as_str(), code), ("2", 200), "PUT in {mode}");
        let (version, code, got) = curl(port, &ca.ca, &target.region, &[], &key);
        assert_eq!((version.as_str(), code), ("2", 200), "GET in {mode}");
        assert_eq!(got, data.as_bytes(), "{mode}");
        // It landed where the mode writes.
        let store = if mode == "forward" { &source } else { &target };
        assert_eq!(
            rt.block_on(get_bytes(&store.client(), BUCKET, &key))
                .unwrap(),
            data.as_bytes(),
            "{mode}"
        );

        // rclone over h2: a PUT and a GET, and its dump says HTTP/2.
        let url = format!("https://127.0.0.1:{port}");
        let rclone = Rclone::new(Endpoint {
            url: &url,
            key: ALICE.access_key,
            secret: ALICE.secret,
            region: &target.region,
        });
        let ca_arg = ca.ca.to_str().unwrap();
        let rc_key = format!("x:{BUCKET}/rclone-{mode}");
        let out = run(&mut rclone.cmd(&[
            "copyto",
            body.to_str().unwrap(),
            &rc_key,
            "--ca-cert",
            ca_arg,
            "--dump",
            "headers",
        ]));
        assert!(out.status.success(), "rclone copyto in {mode}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("HTTP/2.0 200"),
            "rclone did not speak HTTP/2 in {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(&mut rclone.cmd(&["cat", &rc_key, "--ca-cert", ca_arg]));
        assert!(out.status.success(), "rclone cat in {mode}: {out:?}");
        assert_eq!(out.stdout, data.as_bytes(), "{mode}");
    }
}

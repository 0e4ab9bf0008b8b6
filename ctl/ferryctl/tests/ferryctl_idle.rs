//! `ferryctl check idle` with the real proxy's metrics and a Garage
//! source's own counters: writes through the proxy in forward mode leave it
//! idle; one write straight to the source fails it, named.

use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use ferry_harness::ferryctl::{Run, run};
use ferry_harness::proxy::Proxy;
use ferry_harness::s3migrate::rt;
use ferry_harness::{Store, free_port};

const BUCKET: &str = "photos";

fn idle(metrics_port: u16, source: &Store) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferryctl"));
    cmd.args(["--output", "json", "check", "idle", BUCKET])
        .args([
            "--proxy-metrics",
            &format!("http://127.0.0.1:{metrics_port}/metrics"),
        ])
        .args(["--source-metrics", &source.metrics_url().unwrap()])
        .args(["--seconds", "3"]);
    let out = run(cmd, "");
    eprintln!("idle: exit {}\n{}\n{}", out.code, out.stdout, out.stderr);
    out
}

/// Puts `n` objects through `client`, starting a second into the sample.
fn writes_meanwhile(
    client: aws_sdk_s3::Client,
    n: usize,
    prefix: &'static str,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        rt().block_on(async {
            for i in 0..n {
                client
                    .put_object()
                    .bucket(BUCKET)
                    .key(format!("{prefix}/{i}"))
                    .body(ByteStream::from_static(b"x"))
                    .send()
                    .await
                    .unwrap();
            }
        });
    })
}

fn item<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no item {name}: {report:#}"))
}

#[test]
fn idle_passes_writes_through_the_proxy_and_fails_a_write_around_it() {
    let source = Store::garage().unwrap();
    source.create_bucket(BUCKET).unwrap();
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    let metrics_port = free_port().unwrap();
    let proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!("metrics_addr = \"127.0.0.1:{metrics_port}\"\n"),
    );
    proxy.attach(BUCKET, &source);
    proxy.set_mode(BUCKET, "forward");

    // Clients write through the proxy: every write at the source is one
    // the proxy forwarded.
    let through = writes_meanwhile(proxy.client(&source.region), 3, "through");
    let out = idle(metrics_port, &source).ok();
    through.join().unwrap();
    let report = out.json();
    assert_eq!(
        item(&report, "source writes")["status"],
        "pass",
        "{report:#}"
    );
    let traffic = item(&report, "proxy traffic")["detail"].as_str().unwrap();
    assert!(traffic.contains("(3 writes)"), "{traffic}");

    // A client that still writes the source directly.
    let around = writes_meanwhile(source.client(), 1, "around");
    let out = idle(metrics_port, &source);
    around.join().unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    let writes = item(&report, "source writes");
    assert_eq!(writes["status"], "fail", "{report:#}");
    assert!(
        writes["detail"].as_str().unwrap().contains("PutObject 1"),
        "{report:#}"
    );
}

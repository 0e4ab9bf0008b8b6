//! Ready and forward mode end to end: real stores, the real proxy, real
//! clients. Forward mode lands everything on the source, ready mode on the
//! target, each shown by reading the stores directly; the workload gives
//! the same results as when run directly against the store it lands on.

use ferry_harness::proxy as common;

use common::*;
use ferry_harness::tls::TestIssuer;
use ferry_harness::{Store, get_bytes, list_keys};

fn setup() -> (Store, Store, Proxy) {
    let (source, target) = garage_pair("photos");
    let proxy = Proxy::start(&target, "photos");
    proxy.attach("photos", &source);
    (source, target, proxy)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Over https boto3 sends every body's CRC32 in an aws-chunked trailer,
/// and s3transfer creates multipart uploads with a checksum algorithm, so
/// each part must bring its checksum to the store (Garage refuses a part
/// without it). The workload through the proxy gives what it gives
/// directly, its checksummed multipart upload and content encoding
/// included.
#[test]
fn forward_mode_over_https_carries_the_clients_checksums() {
    let (source, target) = garage_pair("photos");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestIssuer::new(dir.path(), "modes").unwrap();
    let certs = ca.cert_dir(dir.path(), &["localhost"], -1..30).unwrap();
    let port = free_port();
    let proxy = Proxy::start_with(
        &target,
        "photos",
        &format!(
            "https_addr = \"127.0.0.1:{port}\"\ncert_dir = \"{}\"\n",
            certs.display()
        ),
    );
    proxy.attach("photos", &source);
    proxy.set_mode("photos", "forward");
    let through = boto3_workload(
        Some(&ca.ca),
        &format!("https://localhost:{port}"),
        "photos",
        ALICE.access_key,
        ALICE.secret,
        "garage",
        "tls/",
    );
    let direct = boto3_workload(
        None,
        &source.endpoint,
        "photos",
        &source.access_key,
        &source.secret_key,
        &source.region,
        "src/",
    );
    assert_eq!(normalized(&through, "tls/"), normalized(&direct, "src/"));
    assert_eq!(through["content_encoding"], "gzip", "{through}");
}

#[test]
fn forward_lands_on_source_and_ready_on_target() {
    let (source, target, proxy) = setup();
    let rt = rt();

    proxy.set_mode("photos", "forward");
    let through = boto3_workload(
        None,
        &proxy.http,
        "photos",
        ALICE.access_key,
        ALICE.secret,
        "garage",
        "fwd/",
    );
    let direct = boto3_workload(
        None,
        &source.endpoint,
        "photos",
        &source.access_key,
        &source.secret_key,
        &source.region,
        "src/",
    );
    assert_eq!(normalized(&through, "fwd/"), normalized(&direct, "src/"));
    let on_source = rt.block_on(list_keys(&source.client(), "photos")).unwrap();
    let on_target = rt.block_on(list_keys(&target.client(), "photos")).unwrap();
    assert!(
        on_source.iter().any(|k| k == "fwd/plain.txt"),
        "{on_source:?}"
    );
    assert!(on_source.iter().any(|k| k == "fwd/big.bin"));
    assert!(
        !on_target.iter().any(|k| k.starts_with("fwd/")),
        "forward mode wrote to the target: {on_target:?}"
    );

    // Rollback to ready: the target serves the bucket.
    proxy.set_mode("photos", "ready");
    let through = boto3_workload(
        None,
        &proxy.http,
        "photos",
        ALICE.access_key,
        ALICE.secret,
        "garage",
        "rdy/",
    );
    let direct = boto3_workload(
        None,
        &target.endpoint,
        "photos",
        &target.access_key,
        &target.secret_key,
        &target.region,
        "tgt/",
    );
    assert_eq!(normalized(&through, "rdy/"), normalized(&direct, "tgt/"));
    let on_source = rt.block_on(list_keys(&source.client(), "photos")).unwrap();
    let on_target = rt.block_on(list_keys(&target.client(), "photos")).unwrap();
    assert!(
        on_target.iter().any(|k| k == "rdy/plain.txt"),
        "{on_target:?}"
    );
    assert!(
        !on_source.iter().any(|k| k.starts_with("rdy/")),
        "ready mode wrote to the source"
    );
}

/// Acceptance 5: a client pinned to the proxy and one talking to the source
/// directly each read the other's write during forward mode.
#[test]
fn forward_mode_clients_share_the_source() {
    let (source, _target, proxy) = setup();
    let rt = rt();
    proxy.set_mode("photos", "forward");
    let via_proxy = proxy.client("garage");
    let direct = source.client();
    rt.block_on(async {
        via_proxy
            .put_object()
            .bucket("photos")
            .key("from-proxy")
            .body(bytes::Bytes::from_static(b"written through the proxy").into())
            .send()
            .await
            .unwrap();
        direct
            .put_object()
            .bucket("photos")
            .key("from-direct")
            .body(bytes::Bytes::from_static(b"written to the source").into())
            .send()
            .await
            .unwrap();
    });
    // The SDK's default (aws-chunked with a CRC trailer) went through the
    // proxy's decoder: the stored bytes are the plain body.
    assert_eq!(
        rt.block_on(get_bytes(&direct, "photos", "from-proxy"))
            .unwrap(),
        &b"written through the proxy"[..]
    );
    let got = rt.block_on(async {
        let o = via_proxy
            .get_object()
            .bucket("photos")
            .key("from-direct")
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().into_bytes()
    });
    assert_eq!(got, &b"written to the source"[..]);
}

/// Acceptance 4: the mode survives kill -9 and a restart.
#[test]
fn mode_survives_kill_9() {
    let (_source, _target, mut proxy) = setup();
    proxy.set_mode("photos", "forward");
    proxy.kill9();
    proxy.spawn();
    let show = proxy.ferryctl_ok(&["s3", "bucket", "migrate", "show", "photos", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["mode"], "forward", "{show}");
    assert!(
        !show.contains(&_source.secret_key),
        "show leaked the source secret"
    );
}

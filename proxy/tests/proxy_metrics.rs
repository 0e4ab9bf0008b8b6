//! The proxy's Prometheus endpoint: requests by mode and upstream, refusals
//! by S3 error code, and each attached bucket's mode.

use ferry_harness::proxy as common;

use std::time::{Duration, Instant};

use common::*;
use ferry_harness::Store;

#[test]
fn metrics_count_requests_refusals_and_modes() {
    let (source, target) = garage_pair("photos");
    let mport = free_port();
    let proxy = Proxy::start_with(
        &target,
        "photos",
        &format!("metrics_addr = \"127.0.0.1:{mport}\"\n"),
    );
    proxy.attach("photos", &source);
    proxy.set_mode("photos", "forward");
    boto3_workload(
        None,
        &proxy.http,
        "photos",
        ALICE.access_key,
        ALICE.secret,
        "garage",
        "m/",
    );
    // One refused request: a wrong secret.
    let out = ferry_harness::Boto3 {
        endpoint: &proxy.http,
        key: ALICE.access_key,
        secret: "wrong",
        region: "garage",
        ca: None,
    }
    .run("try:\n  s3.head_object(Bucket='photos',Key='m/plain.txt')\nexcept Exception as e: print(e)");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("403"),
        "{out:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let t = scrape(mport);
        if value(&t, "ferry_proxy_bucket_mode{bucket=\"photos\"}") == 1.0
            || Instant::now() > deadline
        {
            break t;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        value(&text, "ferry_proxy_bucket_mode{bucket=\"photos\"}"),
        1.0,
        "{text}"
    );
    let series = |op: &str| {
        format!(
            "ferry_proxy_requests_total{{bucket=\"photos\",operation=\"{op}\",mode=\"forward\",upstream=\"source\",status=\"2xx\"}}"
        )
    };
    let ok: f64 = [
        "PutObject",
        "GetObject",
        "HeadObject",
        "UploadPart",
        "ListObjectsV2",
    ]
    .iter()
    .map(|op| value(&text, &series(op)))
    .sum();
    assert!(ok >= 20.0, "forward requests to the source: {ok}\n{text}");
    for op in [
        "PutObject",
        "GetObject",
        "UploadPart",
        "CompleteMultipartUpload",
    ] {
        assert!(value(&text, &series(op)) >= 1.0, "{op}\n{text}");
    }
    assert!(
        value(
            &text,
            "ferry_proxy_refused_requests_total{code=\"SignatureDoesNotMatch\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "ferry_proxy_sent_bytes_total{upstream=\"source\"}") > 10_000_000.0,
        "{text}"
    );
    // Upstream connections: pooled ones reused, as the client's own
    // keep-alive connection is.
    let conns = |reused: &str| {
        value(
            &text,
            &format!(
                "ferry_proxy_upstream_connections_total{{upstream=\"source\",reused=\"{reused}\"}}"
            ),
        )
    };
    let (reused, opened) = (conns("true"), conns("false"));
    eprintln!("upstream connections to the source: {reused} reused, {opened} opened");
    assert!(opened >= 1.0 && reused > opened, "{text}");
    // A histogram (summable across proxies for a fleet's p99), not a
    // summary.
    assert!(
        text.contains("ferry_proxy_request_duration_seconds_bucket{")
            && text.contains("le=\"0.005\"")
            && !text.contains("quantile="),
        "{text}"
    );
}

/// The log a proxy writes: one span per request, named by a request id and
/// carrying the bucket, operation, mode and upstream, with the per-request
/// line inside it; a failure upstream is a warning in the same span; and
/// Pingora's own `log` lines come out through the same subscriber.
#[test]
fn the_log_has_a_span_per_request_and_pingoras_own_lines() {
    let mut source = Store::garage().unwrap();
    source.create_bucket("photos").unwrap();
    let target = Store::garage().unwrap();
    target.create_bucket("photos").unwrap();
    let proxy = Proxy::start_logging(&target, "photos", "", "info,ferry_proxy=debug");
    proxy.attach("photos", &source);
    proxy.set_mode("photos", "forward");
    let host = authority(&proxy.http).to_owned();
    let alice = Signer::client(&ALICE);

    let put = RawRequest::new("PUT", &host, "/photos/logged.txt").body("one line");
    assert_eq!(alice.sign(put).send(&host).status, 200);
    let bad = alice
        .clone()
        .with_secret("wrong-secret-0123456789abcdef")
        .sign(RawRequest::new("GET", &host, "/photos/logged.txt"));
    let refusal = bad.send(&host);
    assert_eq!(refusal.status, 403);
    source.stop();
    let down = alice.sign(RawRequest::new("GET", &host, "/photos/logged.txt"));
    assert_eq!(down.send(&host).status, 503);

    // The lines are written as the requests end; give the writer a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = proxy.log();
        if log.contains("request failed") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = |needles: &[&str]| -> String {
        log.lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no log line with all of {needles:?}:\n{log}"))
            .to_owned()
    };
    let put = line(&[
        "request{",
        "method=PUT",
        "path=/photos/logged.txt",
        "bucket=photos",
        "op=PutObject",
        "mode=forward",
        "upstream=source",
        "status=200",
        "bytes_in=8",
    ]);
    assert!(put.contains("DEBUG"), "{put}");
    let refused = line(&["request{", "op=GetObject", "status=403"]);
    let failed = line(&["WARN", "request failed", "op=GetObject", "status=503"]);
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
    let id = |l: &str| {
        let at = l.find("id=").unwrap_or_else(|| panic!("no id in {l}")) + 3;
        l[at..].split([' ', '}']).next().unwrap().to_owned()
    };
    let ids = [id(&put), id(&refused), id(&failed)];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "each request has its own id: {ids:?}"
    );
    // The refusal's XML names the id its log line has.
    assert_eq!(
        xml_tag(&refusal.text(), "RequestId").as_deref(),
        Some(ids[1].as_str()),
        "{}",
        refusal.text()
    );
    // Pingora logs through `log`; those lines reach the same output.
    let pingora = line(&["pingora_core", "Server starting"]);
    assert!(pingora.contains("INFO"), "{pingora}");
}

/// `--help` tells an operator where the logs go and what the signals do.
#[test]
fn help_names_the_log_filter_and_the_signals() {
    let out = std::process::Command::new(proxy_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "FERRY_LOG",
        "ferry_proxy=debug",
        "HUP",
        "TERM",
        "docs/proxy.md",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

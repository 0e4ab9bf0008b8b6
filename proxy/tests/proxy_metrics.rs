//! The proxy's Prometheus endpoint: requests by mode and upstream, refusals
//! by S3 error code, and each attached bucket's mode.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry_harness::Store;

#[test]
fn metrics_count_requests_refusals_and_modes() {
    let source = Store::garage().unwrap();
    source.create_bucket("photos").unwrap();
    let target = Store::garage().unwrap();
    target.create_bucket("photos").unwrap();
    let mport = free_port();
    let proxy = Proxy::start_with(
        &target,
        "photos",
        &format!("metrics_addr = \"127.0.0.1:{mport}\"\n"),
    );
    proxy.attach("photos", &source);
    proxy.set_mode("photos", "forward");
    boto3_workload(
        &proxy.http,
        "photos",
        ALICE.access_key,
        ALICE.secret,
        "garage",
        "m/",
    );
    // One refused request: a wrong secret.
    let out = std::process::Command::new(python())
        .args(["-c", &format!(
            "import boto3\nfrom botocore.config import Config\ns3=boto3.client('s3',endpoint_url='{}',aws_access_key_id='{}',aws_secret_access_key='wrong',region_name='garage',config=Config(s3={{'addressing_style':'path'}},retries={{'max_attempts':1}}))\ntry:\n  s3.head_object(Bucket='photos',Key='m/plain.txt')\nexcept Exception as e: print(e)",
            proxy.http, ALICE.access_key
        )])
        .output()
        .unwrap();
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
    assert!(
        text.contains("ferry_proxy_request_duration_seconds"),
        "{text}"
    );
}

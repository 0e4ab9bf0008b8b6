//! Acceptance 6: a 1 GiB PUT and GET through the proxy keep its memory flat
//! (RSS under 100 MiB): bodies stream, and aws-chunked bodies are decoded
//! one chunk at a time.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use sha2::{Digest, Sha256};

#[test]
fn one_gib_put_and_get_keep_rss_flat() {
    let (source, target) = garage_pair("photos");
    let proxy = Proxy::start(&target, "photos");
    proxy.attach("photos", &source);
    proxy.set_mode("photos", "forward");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let mut want = Sha256::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            want.update(&block);
            f.write_all(&block).unwrap();
        }
    }
    let want = hex::encode(want.finalize());
    // 1 GiB each way through debug-built servers takes about a minute on a
    // busy 2-core machine: the harness's 60 s per attempt is there to catch
    // a request that hangs, not one this large.
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_secs(600))
        .build();
    let client = aws_sdk_s3::Client::from_conf(
        proxy
            .client("garage")
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .build(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = proxy.peak_rss_bytes();
    let got = rt.block_on(async {
        // The SDK's default: an aws-chunked body with a CRC trailer.
        client
            .put_object()
            .bucket("photos")
            .key("big.bin")
            .body(ByteStream::from_path(&file).await.unwrap())
            .send()
            .await
            .unwrap();
        let mut body = client
            .get_object()
            .bucket("photos")
            .key("big.bin")
            .send()
            .await
            .unwrap()
            .body;
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(c) = body.next().await {
            let c = c.unwrap();
            n += c.len() as u64;
            h.update(&c);
        }
        assert_eq!(n, 1 << 30);
        hex::encode(h.finalize())
    });
    assert_eq!(got, want, "bytes changed on the way");
    let peak = proxy.peak_rss_bytes();
    eprintln!(
        "proxy peak RSS: {} MiB before, {} MiB after 1 GiB up and down",
        before >> 20,
        peak >> 20
    );
    assert!(peak < 100 << 20, "proxy peak RSS {} MiB", peak >> 20);
    // And it really went to the source, whole.
    let h = rt
        .block_on(
            source
                .client()
                .head_object()
                .bucket("photos")
                .key("big.bin")
                .send(),
        )
        .unwrap();
    assert_eq!(h.content_length(), Some(1 << 30));
}

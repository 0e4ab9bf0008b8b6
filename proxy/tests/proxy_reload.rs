//! HUP reloads the config: a rotated target secret takes effect without a
//! restart; a config that fails validation changes nothing and says why;
//! a change only a restart can apply is named.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use std::time::{Duration, Instant};

use common::*;

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A HEAD of the bucket through the proxy as alice: the status.
fn head_bucket(proxy: &Proxy) -> u16 {
    let host = authority(&proxy.http).to_owned();
    RawRequest::new("HEAD", &host, "/photos")
        .sign(
            ALICE.access_key,
            ALICE.secret,
            "garage",
            std::time::SystemTime::now(),
        )
        .send(&host)
        .status
}

#[test]
fn hup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad() {
    let (source, target) = garage_pair("photos");
    let proxy = Proxy::start(&target, "photos");
    proxy.attach("photos", &source);
    assert_eq!(head_bucket(&proxy), 200);

    // The target's secret is rotated: a wrong one first, as a typo would
    // leave it. The proxy signs with it after the HUP, and the target
    // refuses.
    let secret_file = proxy.dir.path().join("target.secret");
    write_private(&secret_file, &target.wrong_secret());
    proxy.hup();
    wait_for("the new secret to be used", || head_bucket(&proxy) == 403);
    write_private(&secret_file, &target.secret_key);
    proxy.hup();
    wait_for("the fixed secret to be used", || head_bucket(&proxy) == 200);

    // A config that fails validation: the old one stays, and the log says
    // why.
    let good = std::fs::read_to_string(&proxy.config).unwrap();
    std::fs::write(&proxy.config, format!("no_such_key = 1\n{good}")).unwrap();
    proxy.hup();
    wait_for("the refusal to be logged", || {
        proxy.log().contains("config reload failed")
    });
    assert!(proxy.log().contains("no_such_key"), "{}", proxy.log());
    assert_eq!(head_bucket(&proxy), 200);

    // A listener change needs a restart: applied later, named now.
    let moved = good.replace(
        &format!("http_addr = \"{}\"", authority(&proxy.http)),
        &format!("http_addr = \"127.0.0.1:{}\"", free_port()),
    );
    assert_ne!(moved, good);
    std::fs::write(&proxy.config, moved).unwrap();
    proxy.hup();
    wait_for("the restart warning", || {
        proxy.log().contains("next restart") && proxy.log().contains("http_addr")
    });
    assert_eq!(head_bucket(&proxy), 200);
}

/// TERM drains: a download in flight when the proxy is told to stop runs to
/// its end, byte for byte; new connections are refused; then the proxy
/// exits 0.
#[test]
fn term_drains_a_download_in_flight() {
    let (source, target) = garage_pair("photos");
    let mut proxy = Proxy::start(&target, "photos");
    proxy.attach("photos", &source);
    let body: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ferry_harness::put_objects(
        &target.client(),
        "photos",
        [("big".to_owned(), bytes::Bytes::from(body.clone()))],
        1,
    ))
    .unwrap();
    let client = proxy.client("garage");
    let got = rt.block_on(async {
        let mut stream = client
            .get_object()
            .bucket("photos")
            .key("big")
            .send()
            .await
            .unwrap()
            .body;
        let mut got = Vec::new();
        let first = stream.next().await.unwrap().unwrap();
        got.extend_from_slice(&first);
        proxy.term();
        // A slow reader: the proxy must wait for it, not cut it off.
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        got
    });
    assert_eq!(got.len(), body.len(), "the download was cut short");
    assert!(got == body, "the download's bytes changed");
    let refused = std::net::TcpStream::connect(authority(&proxy.http)).is_err();
    let status = proxy
        .wait(Duration::from_secs(40))
        .expect("the proxy did not exit after draining");
    assert!(status.success(), "{status}");
    assert!(refused, "a new connection was accepted after TERM");
}

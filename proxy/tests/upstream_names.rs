//! A source given by name (`http://localhost:PORT`, from /etc/hosts) is
//! reached in forward and migrate mode, proxied and by the proxy's own
//! requests. When the name stops resolving, a request that needs the
//! source gets a 503 `ServiceUnavailable` and the proxy keeps serving:
//! Pingora's own `HttpPeer::new` would have panicked on the lookup.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use common::*;
use ferry_harness::{Store, get_bytes};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn put(store: &Store, bucket: &str, key: &str, body: &'static [u8]) {
    rt().block_on(
        store
            .client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(bytes::Bytes::from_static(body).into())
            .send(),
    )
    .unwrap_or_else(|e| panic!("seed {bucket}/{key}: {e:?}"));
}

#[test]
fn a_source_by_name_is_reached_and_a_name_that_stops_resolving_is_a_503() {
    let (mut source, target) = garage_pair("photos");
    target.create_bucket("other").unwrap();
    target.create_bucket("ferry-journal").unwrap();
    put(&source, "photos", "on-source", b"from the source");
    put(&target, "photos", "on-target", b"from the target");
    put(&target, "other", "plain", b"unattached");
    let metrics_port = free_port();
    let mut proxy = Proxy::start_with(
        &target,
        "photos",
        &format!(
            "journal_bucket = \"ferry-journal\"\nmetrics_addr = \"127.0.0.1:{metrics_port}\"\n"
        ),
    );
    let port = source.endpoint.rsplit(':').next().unwrap().to_owned();
    source.endpoint = format!("http://localhost:{port}");
    proxy.attach("photos", &source);
    let client = proxy.client("garage");
    let get = |key: &str, bucket: &str| rt().block_on(get_bytes(&client, bucket, key));

    proxy.set_mode("photos", "forward");
    assert_eq!(get("on-source", "photos").unwrap(), "from the source");
    proxy.set_mode("photos", "migrate");
    // The fallback read is the proxy's own request to the source.
    assert_eq!(get("on-source", "photos").unwrap(), "from the source");
    assert_eq!(get("on-target", "photos").unwrap(), "from the target");

    // The source's name no longer resolves (as after a DNS change): the
    // state file names a host under .invalid, which never does.
    proxy.kill9();
    let state = proxy.dir.path().join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let named = format!("http://localhost:{port}");
    assert!(text.contains(&named), "{text}");
    std::fs::write(
        &state,
        text.replace(&named, &format!("http://no-such-host.invalid:{port}")),
    )
    .unwrap();
    proxy.spawn();
    let client = proxy.client("garage");
    let get = |key: &str, bucket: &str| rt().block_on(get_bytes(&client, bucket, key));

    for _ in 0..3 {
        let e = get("on-source", "photos").expect_err("the source cannot be reached");
        assert!(e.to_string().contains("ServiceUnavailable"), "{e:#}");
    }
    // What needs only the target is still served.
    assert_eq!(get("on-target", "photos").unwrap(), "from the target");
    // An unattached bucket passes through with the store's own key.
    let addr = authority(&proxy.http);
    let r = Signer::store(&target)
        .sign(RawRequest::new("GET", addr, "/other/plain"))
        .send(addr);
    assert_eq!((r.status, r.text().as_str()), (200, "unattached"));
    let log = proxy.log();
    assert!(!proxy_panicked(&proxy), "{log}");
    assert!(
        log.contains("cannot resolve") && log.contains("no-such-host.invalid"),
        "{log}"
    );
    let m = scrape(metrics_port);
    let dns_errors: f64 = m
        .lines()
        .filter(|l| {
            l.starts_with("ferry_proxy_upstream_errors_total{")
                && l.contains("class=\"dns\"")
                && l.contains("upstream=\"source\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(dns_errors >= 3.0, "{m}");
}

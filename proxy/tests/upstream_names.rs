//! A source given by name (`http://localhost:PORT`, from /etc/hosts) is
//! reached in forward and migrate mode, proxied and by the proxy's own
//! requests. When the name stops resolving, a request that needs the
//! source gets a 503 `ServiceUnavailable` and the proxy keeps serving:
//! Pingora's own `HttpPeer::new` would have panicked on the lookup. A name
//! with a dead address among its live ones costs a connect, not a request.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use ferry_harness::proxy as common;

use common::*;
use ferry_harness::s3migrate::rt;
use ferry_harness::{Store, get_bytes, put_objects};

fn put(store: &Store, bucket: &str, key: &str, body: &'static [u8]) {
    let object = (key.to_owned(), bytes::Bytes::from_static(body));
    rt().block_on(put_objects(&store.client(), bucket, [object], 1))
        .unwrap_or_else(|e| panic!("seed {bucket}/{key}: {e:?}"));
}

/// `photos` on both stores, "on-source" on the source's, and a proxy
/// with a delete journal and metrics (on the returned port).
fn setup() -> (Store, Store, Proxy, u16) {
    let (source, target) = garage_pair("photos");
    target.create_bucket("ferry-journal").unwrap();
    put(&source, "photos", "on-source", b"from the source");
    let metrics_port = free_port();
    let proxy = Proxy::start_with(
        &target,
        "photos",
        &format!(
            "journal_bucket = \"ferry-journal\"\nmetrics_addr = \"127.0.0.1:{metrics_port}\"\n"
        ),
    );
    (source, target, proxy, metrics_port)
}

/// Gives the source's endpoint with `host` for its address; returns the
/// port.
fn rename(source: &mut Store, host: &str) -> String {
    let port = source.endpoint.rsplit(':').next().unwrap().to_owned();
    source.endpoint = format!("http://{host}:{port}");
    port
}

/// `ferry_proxy_upstream_errors_total` for the source, of `class`.
fn source_errors(metrics_port: u16, class: &str) -> f64 {
    scrape(metrics_port)
        .lines()
        .filter(|l| {
            l.starts_with("ferry_proxy_upstream_errors_total{")
                && l.contains(&format!("class=\"{class}\""))
                && l.contains("upstream=\"source\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_source_by_name_is_reached_and_a_name_that_stops_resolving_is_a_503() {
    let (mut source, target, mut proxy, metrics_port) = setup();
    target.create_bucket("other").unwrap();
    put(&target, "photos", "on-target", b"from the target");
    put(&target, "other", "plain", b"unattached");
    let port = rename(&mut source, "localhost");
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
    let dns_errors = source_errors(metrics_port, "dns");
    assert!(dns_errors >= 3.0, "{}", scrape(metrics_port));
}

/// The source's name has two addresses, and nothing listens at one of
/// them. Requests take the addresses in turn, and one that draws the dead
/// address is tried at the next: every request is served, proxied and the
/// proxy's own. The proxy runs in a mount namespace of its own (`unshare`),
/// with its own /etc/hosts, so the machine's is not touched.
#[test]
fn a_name_with_a_dead_address_is_served_by_its_live_one() {
    const TEST: &str = "a_name_with_a_dead_address_is_served_by_its_live_one";
    let probe = std::process::Command::new("unshare")
        .args(["-U", "-r", "-m", "true"])
        .stderr(std::process::Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        ferry_harness::skip(TEST, "cannot make a mount namespace with unshare");
        return;
    }
    let (mut source, _target, mut proxy, metrics_port) = setup();
    // Garage listens on 127.0.0.1 only: 127.0.0.2 refuses.
    let hosts = proxy.dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.0.2 two.test\n127.0.0.1 two.test\n",
    )
    .unwrap();
    proxy.kill9();
    proxy.launcher = [
        "unshare",
        "-U",
        "-r",
        "-m",
        "sh",
        "-c",
        &format!(
            "mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
            hosts.display()
        ),
    ]
    .map(str::to_owned)
    .to_vec();
    proxy.spawn();
    rename(&mut source, "two.test");
    proxy.attach("photos", &source);
    let client = proxy.client("garage");
    let get = || rt().block_on(get_bytes(&client, "photos", "on-source"));
    let refused = || source_errors(metrics_port, "connect");

    proxy.set_mode("photos", "forward");
    for i in 0..6 {
        assert_eq!(
            get().unwrap_or_else(|e| panic!("GET {i}: {e:#}")),
            "from the source"
        );
    }
    let proxied = refused();
    assert!(proxied >= 2.0, "the dead address was drawn: {proxied}");
    // In migrate mode the object is read from the source by the proxy's
    // own request (the fallback).
    proxy.set_mode("photos", "migrate");
    for i in 0..6 {
        assert_eq!(
            get().unwrap_or_else(|e| panic!("fallback GET {i}: {e:#}")),
            "from the source"
        );
    }
    assert!(refused() >= proxied + 2.0, "{}", scrape(metrics_port));
    assert!(!proxy_panicked(&proxy), "{}", proxy.log());
}

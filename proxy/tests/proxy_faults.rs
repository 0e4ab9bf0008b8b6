//! Faults: an upstream that is down gets a quick 503 `ServiceUnavailable`,
//! never a hang, and the bucket works again once it is back; malformed
//! requests get a 4xx (never a 5xx), store nothing, and the proxy keeps
//! serving; and virtual-hosted requests (`photos.s3.ferry.test`) route like
//! path-style ones.
//!
//! Requests are written by hand over raw TcpStreams (loopback only), signed
//! with aws-sigv4 where they need to be. Every socket has a 60 s timeout and
//! every wait is bounded, so no test can hang.

use ferry_harness::proxy as common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;
use ferry_harness::{Store, get_bytes, list_keys};

const SEED: &[u8] = b"seed object";

struct Env {
    source: Store,
    target: Store,
    proxy: Proxy,
    addr: String,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn put(store: &Store, bucket: &str, key: &str, body: &[u8]) {
    let client = store.client();
    let body = bytes::Bytes::copy_from_slice(body);
    rt().block_on(async {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed {bucket}/{key}: {e:?}"))
    });
}

fn keys(store: &Store, bucket: &str) -> Vec<String> {
    rt().block_on(list_keys(&store.client(), bucket)).unwrap()
}

/// `photos` (attached, in `mode`) and `other` (unattached) on both stores,
/// each with `seed.txt`.
fn setup(mode: &str) -> Env {
    let source = Store::garage().unwrap();
    let target = Store::garage().unwrap();
    for s in [&source, &target] {
        for b in ["photos", "other"] {
            s.create_bucket(b).unwrap();
            put(s, b, "seed.txt", SEED);
        }
    }
    let proxy = Proxy::start(&target, "photos");
    proxy.attach("photos", &source);
    if mode != "ready" {
        proxy.set_mode("photos", mode);
    }
    let addr = authority(&proxy.http).to_owned();
    Env {
        source,
        target,
        proxy,
        addr,
    }
}

impl Env {
    fn alice(&self) -> Signer {
        Signer::client(&ALICE)
    }

    fn get(&self, path: &str) -> RawRequest {
        self.alice().sign(RawRequest::new("GET", &self.addr, path))
    }

    /// The proxy still serves: a signed GET of the seed works, and it has
    /// not panicked.
    fn still_serving(&self, after: &str) {
        let r = self.get("/photos/seed.txt").send(&self.addr);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, SEED),
            "after {after}: the proxy no longer serves: {}",
            r.text()
        );
        assert!(
            !proxy_panicked(&self.proxy),
            "after {after}: the proxy panicked:\n{}",
            self.proxy.log()
        );
    }
}

/// Expects a 503 `ServiceUnavailable` (XML unless HEAD), in bounded time.
fn unavailable(env: &Env, case: &str, req: &RawRequest) {
    let t = Instant::now();
    let r = req.send(&env.addr);
    let took = t.elapsed();
    assert_eq!(r.status, 503, "{case}: {} {}", r.status, r.text());
    if req.method != "HEAD" {
        assert_eq!(
            r.s3_code().as_deref(),
            Some("ServiceUnavailable"),
            "{case}: {}",
            r.text()
        );
    }
    // The connect timeout is 5 s; a refused connection is immediate.
    assert!(took < Duration::from_secs(30), "{case}: took {took:?}");
    eprintln!("{case}: 503 in {took:?}");
}

#[test]
fn source_down_in_forward_mode_gets_503_then_recovers() {
    let mut env = setup("forward");
    env.still_serving("setup");
    env.source.stop();
    let alice = env.alice();
    let h = env.addr.clone();
    unavailable(&env, "GET", &env.get("/photos/seed.txt"));
    unavailable(
        &env,
        "HEAD",
        &alice.sign(RawRequest::new("HEAD", &h, "/photos/seed.txt")),
    );
    unavailable(&env, "LIST", &env.get("/photos?list-type=2"));
    unavailable(
        &env,
        "PUT",
        &alice.sign(RawRequest::new("PUT", &h, "/photos/while-down.txt").body("x")),
    );
    let parts: [&[u8]; 2] = [&[7u8; 70_000], b"tail"];
    unavailable(
        &env,
        "aws-chunked PUT",
        &alice.chunked_put(&h, "/photos/while-down.bin", &parts),
    );
    // The target is up, and an unattached bucket is not affected.
    let r = Signer::store(&env.target)
        .sign(RawRequest::new("GET", &h, "/other/seed.txt"))
        .send(&env.addr);
    assert_eq!(r.status, 200, "{}", r.text());

    env.source.restart().unwrap();
    env.still_serving("the source came back");
    let r = alice
        .sign(RawRequest::new("PUT", &h, "/photos/after.txt").body("back"))
        .send(&env.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        rt().block_on(get_bytes(&env.source.client(), "photos", "after.txt"))
            .unwrap(),
        &b"back"[..]
    );
    assert!(!keys(&env.source, "photos").contains(&"while-down.txt".to_owned()));
}

#[test]
fn target_down_in_ready_mode_gets_503_then_recovers() {
    let mut env = setup("ready");
    env.still_serving("setup");
    env.target.stop();
    let h = env.addr.clone();
    unavailable(&env, "attached GET", &env.get("/photos/seed.txt"));
    unavailable(
        &env,
        "unattached GET (passed through)",
        &Signer::store(&env.target).sign(RawRequest::new("GET", &h, "/other/seed.txt")),
    );
    env.target.restart().unwrap();
    env.still_serving("the target came back");
}

/// Changes an aws-chunked body in place.
type Tamper = Box<dyn Fn(&mut Vec<u8>)>;

/// What a malformed request may get: a 4xx, or the connection closed
/// without an answer; never a 5xx.
fn client_error(case: &str, r: Option<RawResponse>) {
    match r {
        None => eprintln!("{case}: connection closed without an answer"),
        Some(r) => {
            eprintln!("{case}: {} {}", r.status, r.s3_code().unwrap_or_default());
            assert!(
                (400..500).contains(&r.status),
                "{case}: expected a 4xx, got {} {}",
                r.status,
                r.text()
            );
        }
    }
}

#[test]
fn malformed_requests_get_4xx_and_the_proxy_keeps_serving() {
    let env = setup("forward");
    let h = env.addr.clone();
    let alice = env.alice();
    let raw = |case: &str, bytes: &[u8]| {
        let r = send_raw(&env.addr, bytes);
        client_error(case, r.clone());
        env.still_serving(case);
        r
    };

    // Bad percent-escapes and non-UTF-8 keys on the attached bucket.
    for path in [
        "/photos/%zz",
        "/photos/abc%",
        "/photos/abc%4",
        "/photos/%C3%28",
        "/photos?prefix=%zz&list-type=2",
        "/phot%zzos/key",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n");
        let r = raw(&format!("bad escape {path}"), req.as_bytes())
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert_eq!(
            (r.status, r.s3_code().as_deref()),
            (400, Some("InvalidArgument")),
            "{path}: {}",
            r.text()
        );
    }

    // aws-chunked bodies: framing errors, a lying length, a truncated body.
    let parts: [&[u8]; 2] = [&[b'a'; 70_000], b"the tail"];
    let chunked = |key: &str| alice.chunked_put(&h, &format!("/photos/{key}"), &parts);
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "chunk size not hex",
            Box::new(|b: &mut Vec<u8>| {
                b[0] = b'z';
                b[1] = b'z';
            }),
        ),
        (
            "chunk data not followed by CRLF",
            Box::new(|b: &mut Vec<u8>| {
                let line = b.windows(2).position(|w| w == b"\r\n").unwrap();
                let end = line + 2 + 70_000;
                b[end] = b'X';
            }),
        ),
        (
            "chunk without a signature",
            Box::new(|b: &mut Vec<u8>| {
                let line = b.windows(2).position(|w| w == b"\r\n").unwrap();
                // "11170;chunk-signature=<64>" -> "11170" and padding
                // spaces are not allowed either: drop the extension and
                // keep the length the same with a zero-padded size.
                let size = "0".repeat(line - 5) + "11170";
                b[..line].copy_from_slice(size.as_bytes());
            }),
        ),
        (
            "chunk size over 16 MiB",
            Box::new(|b: &mut Vec<u8>| {
                b[..5].copy_from_slice(b"fffff");
                b.splice(0..0, *b"ff");
            }),
        ),
    ];
    for (i, (case, tamper)) in cases.iter().enumerate() {
        let key = format!("framing-{i}.bin");
        let mut req = chunked(&key);
        // Content-Length (unsigned) follows the tampered body.
        tamper(&mut req.body);
        raw(case, &req.to_bytes());
        assert!(
            !keys(&env.source, "photos").contains(&key),
            "{case}: the upload was stored"
        );
    }

    // More chunk data than x-amz-decoded-content-length declares.
    let lying = alice.chunked_put_declaring(&h, "/photos/lying-length.bin", &parts, 1000);
    raw("decoded length smaller than the data", &lying.to_bytes());
    let short = alice.chunked_put_declaring(&h, "/photos/short-length.bin", &parts, 100_000);
    raw("decoded length larger than the data", &short.to_bytes());
    std::thread::sleep(Duration::from_millis(300));
    let stored = keys(&env.source, "photos");
    for key in ["lying-length.bin", "short-length.bin"] {
        assert!(
            !stored.contains(&key.to_owned()),
            "an upload whose data differs from its x-amz-decoded-content-length was stored: {key}"
        );
    }

    // A truncated aws-chunked body: half of it, then the client stops
    // sending (half-close, so an answer can still come back) ...
    let req = chunked("truncated.bin");
    let wire = req.to_bytes();
    let cut = wire.len() - req.body.len() / 2;
    let mut s = raw_connect(&env.addr);
    s.write_all(&wire[..cut]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    client_error(
        "truncated aws-chunked body, half-closed",
        read_response(&mut s, false).unwrap(),
    );
    drop(s);
    env.still_serving("a truncated aws-chunked body");
    // ... and the same with the connection closed outright.
    let mut s = raw_connect(&env.addr);
    s.write_all(&wire[..cut]).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    env.still_serving("a truncated aws-chunked body, connection closed");
    assert!(
        !keys(&env.source, "photos").contains(&"truncated.bin".to_owned()),
        "a truncated upload was stored"
    );
    // A plain body shorter than its Content-Length.
    let req = alice.sign(RawRequest::new("PUT", &h, "/photos/short.txt").body(vec![b's'; 5000]));
    let wire = req.to_bytes();
    let mut s = raw_connect(&env.addr);
    s.write_all(&wire[..wire.len() - 2000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    client_error(
        "plain body shorter than Content-Length",
        read_response(&mut s, false).unwrap(),
    );
    drop(s);
    env.still_serving("a short plain body");
    assert!(!keys(&env.source, "photos").contains(&"short.txt".to_owned()));

    // Oversized headers: 100 KB (under Pingora's 1 MiB header limit) on a
    // signed request, and 1.1 MB.
    let big = "b".repeat(100 * 1024);
    let req = alice.sign(RawRequest::new("GET", &h, "/photos/seed.txt").header("x-pad", &big));
    let r = send_raw(&env.addr, &req.to_bytes());
    if let Some(r) = &r {
        assert!(r.status < 500, "100 KB header: {} {}", r.status, r.text());
        eprintln!("100 KB header on a signed GET: {}", r.status);
    }
    env.still_serving("a 100 KB header");
    let huge = "h".repeat(1100 * 1024);
    let req = format!(
        "GET /photos/seed.txt HTTP/1.1\r\nHost: {h}\r\nX-Pad: {huge}\r\nConnection: close\r\n\r\n"
    );
    raw("1.1 MB header", req.as_bytes());
    let many: String = (0..300).map(|i| format!("x-h{i}: v\r\n")).collect();
    let req =
        format!("GET /photos/seed.txt HTTP/1.1\r\nHost: {h}\r\n{many}Connection: close\r\n\r\n");
    raw("300 headers", req.as_bytes());

    // Bad Host headers.
    for (case, host_lines) in [
        ("control character in Host", "Host: a\x01b\r\n".to_owned()),
        ("space in Host", "Host: a b\r\n".to_owned()),
        (
            "two Host headers",
            format!("Host: {h}\r\nHost: evil.example\r\n"),
        ),
        ("no Host", String::new()),
        ("empty Host", "Host: \r\n".to_owned()),
        ("unclosed IPv6 Host", "Host: [::1\r\n".to_owned()),
        ("Host of only a port", "Host: :80\r\n".to_owned()),
        (
            "Host with a bad port",
            format!("Host: {}:99999999\r\n", h.split(':').next().unwrap()),
        ),
    ] {
        let req = format!("GET /photos/seed.txt HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n");
        raw(case, req.as_bytes());
    }
    // A signed request with a Host that differs from the one it was signed
    // for.
    let mut req = env.get("/photos/seed.txt");
    req.headers[0].1 = "127.0.0.2:1".to_owned();
    raw("signed for another Host", &req.to_bytes());

    // Broken framing of the request itself.
    for (case, bytes) in [
        ("garbage request line", b"HELLO\r\n\r\n".to_vec()),
        (
            "no HTTP version",
            format!("GET /photos/seed.txt\r\nHost: {h}\r\n\r\n").into_bytes(),
        ),
        (
            "non-numeric Content-Length",
            format!("PUT /photos/x HTTP/1.1\r\nHost: {h}\r\nContent-Length: abc\r\nConnection: close\r\n\r\n").into_bytes(),
        ),
        (
            "two different Content-Lengths",
            format!("PUT /photos/x HTTP/1.1\r\nHost: {h}\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab").into_bytes(),
        ),
        (
            "bad chunked transfer encoding",
            format!("PUT /photos/x HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes(),
        ),
    ] {
        raw(case, &bytes);
    }
}

/// `Host: photos.s3.ferry.test:<port>` (the config's `s3_domains`) is the
/// bucket `photos`, virtual-hosted: it is authenticated like path style and
/// lands where the mode says.
#[test]
fn virtual_hosted_requests_route_like_path_style() {
    let env = setup("forward");
    let port = env.addr.rsplit(':').next().unwrap();
    let vhost = format!("photos.s3.ferry.test:{port}");
    let alice = env.alice();

    let r = alice
        .sign(RawRequest::new("PUT", &vhost, "/vhost/fwd.txt").body("virtual, forward"))
        .send(&env.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(keys(&env.source, "photos").contains(&"vhost/fwd.txt".to_owned()));
    assert!(
        !keys(&env.target, "photos")
            .iter()
            .any(|k| k.starts_with("vhost/")),
        "a virtual-hosted write in forward mode reached the target"
    );
    let r = alice
        .sign(RawRequest::new("GET", &vhost, "/vhost/fwd.txt"))
        .send(&env.addr);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"virtual, forward"[..])
    );
    let r = alice
        .sign(RawRequest::new(
            "GET",
            &vhost,
            "/?list-type=2&prefix=vhost%2F",
        ))
        .send(&env.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(xml_tags(&r.text(), "Key"), ["vhost/fwd.txt"]);
    // Presigned, virtual-hosted.
    let r = alice
        .presign(
            RawRequest::new("GET", &vhost, "/vhost/fwd.txt"),
            Duration::from_secs(60),
        )
        .send(&env.addr);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"virtual, forward"[..])
    );

    // Authenticated like path style.
    let r = alice
        .clone()
        .with_secret("not-alice-s-secret")
        .sign(RawRequest::new("GET", &vhost, "/seed.txt"))
        .send(&env.addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("SignatureDoesNotMatch"))
    );
    let r = Signer::client(&BOB)
        .sign(RawRequest::new("PUT", &vhost, "/vhost/bob.txt").body("no"))
        .send(&env.addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied"))
    );
    let r = RawRequest::new("GET", &vhost, "/seed.txt").send(&env.addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied"))
    );

    // Ready mode: the same request lands on the target.
    env.proxy.set_mode("photos", "ready");
    let r = alice
        .sign(RawRequest::new("PUT", &vhost, "/vhost/rdy.txt").body("virtual, ready"))
        .send(&env.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(keys(&env.target, "photos").contains(&"vhost/rdy.txt".to_owned()));
    assert!(!keys(&env.source, "photos").contains(&"vhost/rdy.txt".to_owned()));
    // Upper case and a trailing dot name the same bucket.
    let port_host = format!("PHOTOS.S3.Ferry.Test.:{port}");
    let r = alice
        .sign(RawRequest::new("GET", &port_host, "/vhost/rdy.txt"))
        .send(&env.addr);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"virtual, ready"[..]));
}

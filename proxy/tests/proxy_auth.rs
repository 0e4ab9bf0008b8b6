//! Acceptance 3: on an attached bucket the proxy authenticates every
//! request itself, and a request it refuses never reaches a store.
//!
//! Every refusal is checked three ways: the HTTP status, the S3 XML
//! `<Code>`, and Garage's own request counters on BOTH stores (unchanged:
//! nothing went upstream). Each refusal has a positive control next to it
//! (the same request, correctly signed, does reach the store the mode routes
//! to), so an unchanged counter means something.
//!
//! Requests are built by hand and signed with aws-sigv4 (not the proxy's
//! own signing code), then sent over a raw TcpStream: that is the only way
//! to sign with a skewed clock, tamper with an aws-chunked body, or send
//! SigV2.
//!
//! An unattached bucket is the other half of the model: the proxy passes it
//! through untouched, and the target store judges it.

use ferry_harness::proxy as common;

use std::io::Write;
use std::time::{Duration, SystemTime};

use common::*;
use ferry_harness::{Store, get_bytes, list_keys};

const SEED: &[u8] = b"seed object, readable by alice and bob";
const SECRET_DATA: &[u8] = b"top secret: nobody in the users file may read this";

struct Env {
    source: Store,
    target: Store,
    proxy: Proxy,
    /// `127.0.0.1:PORT` of the proxy: connect here, and the `Host` header.
    addr: String,
}

impl Env {
    /// The store the bucket's mode routes to, and the other one.
    fn routed(&self, mode: &str) -> (&Store, &Store) {
        match mode {
            "forward" => (&self.source, &self.target),
            _ => (&self.target, &self.source),
        }
    }
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

fn exists(store: &Store, bucket: &str, key: &str) -> bool {
    rt().block_on(list_keys(&store.client(), bucket))
        .unwrap()
        .iter()
        .any(|k| k == key)
}

/// Two Garage stores. Both hold `photos` (with `seed.txt`), `other` and
/// `secret` (with `data.txt`); the proxy has `photos` attached in `mode`.
fn setup(mode: &str) -> Env {
    let source = Store::garage().unwrap();
    let target = Store::garage().unwrap();
    for s in [&source, &target] {
        for b in ["photos", "other", "secret"] {
            s.create_bucket(b).unwrap();
        }
        put(s, "photos", "seed.txt", SEED);
        put(s, "secret", "data.txt", SECRET_DATA);
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

/// Sends `req`, expects an S3 XML error `status`/`code` from the proxy, and
/// that neither store saw any request at all meanwhile.
fn refused(env: &Env, case: &str, req: &RawRequest, status: u16, code: &str) -> RawResponse {
    let before = [counts(&env.source), counts(&env.target)];
    let r = req.send(&env.addr);
    // A request the proxy let through would be counted by Garage by the
    // time its answer came back; the pause covers one that went upstream
    // only after the proxy had answered.
    std::thread::sleep(Duration::from_millis(200));
    let after = [counts(&env.source), counts(&env.target)];
    if req.method == "HEAD" {
        assert_eq!(r.status, status, "{case}: {:?}", r.headers);
    } else {
        assert_eq!(
            (r.status, r.s3_code().as_deref()),
            (status, Some(code)),
            "{case}: expected {status} {code}, got {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.header("content-type")
                .is_some_and(|v| v.contains("application/xml")),
            "{case}: not an XML error: {:?}",
            r.headers
        );
    }
    for (name, (b, a)) in ["source", "target"].iter().zip(before.iter().zip(&after)) {
        let new = new_requests(b, a);
        assert!(
            new.is_empty(),
            "{case}: the {name} store received requests the proxy should have refused: {new:?}"
        );
    }
    r
}

/// Sends `req` and expects it to reach `store` (its counter for `op` grows).
fn reaches(env: &Env, case: &str, req: &RawRequest, store: &Store, op: &str) -> RawResponse {
    let before = counts(store);
    let r = req.send(&env.addr);
    let after = counts(store);
    assert!(
        r.status < 300,
        "{case}: expected success, got {} {}",
        r.status,
        r.text()
    );
    let new = new_requests(&before, &after);
    assert!(
        new.iter().any(|(o, _)| o == op),
        "{case}: {op} did not reach the store: {new:?}"
    );
    r
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn ahead(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

/// 256 KiB + a tail, in three chunks, with recognisable content.
fn chunk_data() -> Vec<Vec<u8>> {
    (0..3u8)
        .map(|i| {
            let n = if i == 2 { 1000 } else { 128 * 1024 };
            (0..n)
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
                .collect()
        })
        .collect()
}

/// Where chunk `n`'s data starts in an aws-chunked body.
fn chunk_data_offset(body: &[u8], n: usize) -> usize {
    let mut pos = 0;
    for i in 0..=n {
        let line_end = pos + body[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
        let size_hex = std::str::from_utf8(&body[pos..line_end])
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let size = usize::from_str_radix(size_hex, 16).unwrap();
        if i == n {
            return line_end + 2;
        }
        pos = line_end + 2 + size + 2;
    }
    unreachable!()
}

/// Every way a request can fail authentication on an attached bucket, in
/// `mode`; none of them reaches either store.
fn refusals(mode: &str) {
    let env = setup(mode);
    let (routed, _) = env.routed(mode);
    let host = env.addr.as_str();
    let alice = Signer::client(&ALICE);
    let bob = Signer::client(&BOB);
    let get = || RawRequest::new("GET", host, "/photos/seed.txt");
    let put = |key: &str| RawRequest::new("PUT", host, &format!("/photos/{key}")).body("new data");

    // Positive controls: signed by a user with the grant, the same requests
    // reach the store the mode routes to.
    let r = reaches(&env, "alice GET", &alice.sign(get()), routed, "GetObject");
    assert_eq!(r.body, SEED);
    reaches(&env, "bob GET", &bob.sign(get()), routed, "GetObject");
    reaches(
        &env,
        "alice PUT",
        &alice.sign(put("alice.txt")),
        routed,
        "PutObject",
    );
    let r = reaches(
        &env,
        "fresh presigned GET",
        &alice.presign(get(), Duration::from_secs(300)),
        routed,
        "GetObject",
    );
    assert_eq!(r.body, SEED);

    // Bad signature: the right key with a wrong secret.
    let wrong = alice
        .clone()
        .with_secret(&wrong_client_secret(ALICE.secret));
    refused(
        &env,
        "wrong secret GET",
        &wrong.sign(get()),
        403,
        "SignatureDoesNotMatch",
    );
    refused(
        &env,
        "wrong secret PUT",
        &wrong.sign(put("bad-sig.txt")),
        403,
        "SignatureDoesNotMatch",
    );
    refused(
        &env,
        "wrong secret presigned GET",
        &wrong.presign(get(), Duration::from_secs(300)),
        403,
        "SignatureDoesNotMatch",
    );
    // A correctly signed request changed after signing: the path, a signed
    // header.
    let mut moved = alice.sign(get());
    moved.target = "/photos/alice.txt".to_owned();
    refused(
        &env,
        "path changed after signing",
        &moved,
        403,
        "SignatureDoesNotMatch",
    );
    let mut meta = alice.sign(put("meta.txt").header("x-amz-meta-owner", "alice"));
    for (n, v) in &mut meta.headers {
        if n == "x-amz-meta-owner" {
            *v = "mallory".to_owned();
        }
    }
    refused(
        &env,
        "signed header changed after signing",
        &meta,
        403,
        "SignatureDoesNotMatch",
    );

    // Unknown access key.
    let stranger = alice.clone().with_key("GKnobody000000000000000");
    refused(
        &env,
        "unknown key GET",
        &stranger.sign(get()),
        403,
        "InvalidAccessKeyId",
    );
    refused(
        &env,
        "unknown key presigned GET",
        &stranger.presign(get(), Duration::from_secs(300)),
        403,
        "InvalidAccessKeyId",
    );

    // Missing grant: bob may read, not write.
    refused(
        &env,
        "bob PUT",
        &bob.sign(put("bob.txt")),
        403,
        "AccessDenied",
    );
    refused(
        &env,
        "bob DELETE",
        &bob.sign(RawRequest::new("DELETE", host, "/photos/seed.txt")),
        403,
        "AccessDenied",
    );
    refused(
        &env,
        "bob CreateMultipartUpload",
        &bob.sign(RawRequest::new("POST", host, "/photos/bob-mp.bin?uploads")),
        403,
        "AccessDenied",
    );
    refused(
        &env,
        "bob DeleteObjects",
        &bob.sign(
            RawRequest::new("POST", host, "/photos?delete")
                .body("<Delete><Object><Key>seed.txt</Key></Object></Delete>"),
        ),
        403,
        "AccessDenied",
    );
    refused(
        &env,
        "bob CopyObject",
        &bob.sign(
            RawRequest::new("PUT", host, "/photos/bob-copy.txt")
                .header("x-amz-copy-source", "/photos/seed.txt"),
        ),
        403,
        "AccessDenied",
    );

    refused(
        &env,
        "bob presigned PUT",
        &bob.presign(put("bob-presigned.txt"), Duration::from_secs(300)),
        403,
        "AccessDenied",
    );
    // No grant at all: a second attached bucket that is in nobody's grants.
    env.proxy.attach("other", &env.source);
    if mode != "ready" {
        env.proxy.set_mode("other", mode);
    }
    for (who, signer) in [("alice", &alice), ("bob", &bob)] {
        refused(
            &env,
            &format!("{who} GET on an attached bucket without a grant"),
            &signer.sign(RawRequest::new("GET", host, "/other/seed.txt")),
            403,
            "AccessDenied",
        );
    }

    // Skewed clock: 20 minutes either way (S3 allows 15).
    refused(
        &env,
        "clock 20 min behind",
        &alice.clone().at(ago(20 * 60)).sign(get()),
        403,
        "RequestTimeTooSkewed",
    );
    refused(
        &env,
        "clock 20 min ahead",
        &alice.clone().at(ahead(20 * 60)).sign(put("skew.txt")),
        403,
        "RequestTimeTooSkewed",
    );

    // Presigned URLs out of their window.
    refused(
        &env,
        "expired presigned GET",
        &alice
            .clone()
            .at(ago(2 * 3600))
            .presign(get(), Duration::from_secs(3600)),
        403,
        "AccessDenied",
    );
    refused(
        &env,
        "expired presigned PUT",
        &alice
            .clone()
            .at(ago(600))
            .presign(put("presigned.txt"), Duration::from_secs(60)),
        403,
        "AccessDenied",
    );
    refused(
        &env,
        "presigned URL not valid yet",
        &alice
            .clone()
            .at(ahead(3600))
            .presign(get(), Duration::from_secs(300)),
        403,
        "AccessDenied",
    );

    // SigV2, header and query forms: refused, naming SigV4.
    let v2 = RawRequest::new("GET", host, "/photos/seed.txt")
        .header("Date", "Wed, 01 Jan 2025 00:00:00 GMT")
        .header(
            "Authorization",
            &format!("AWS {}:frJIUN8DYpKDtOLCwo//yllqDzg=", ALICE.access_key),
        );
    let r = refused(&env, "SigV2 header", &v2, 400, "InvalidRequest");
    assert!(
        r.text().contains("AWS4-HMAC-SHA256") || r.text().contains("SigV4"),
        "the SigV2 refusal should name SigV4: {}",
        r.text()
    );
    let v2q = RawRequest::new(
        "GET",
        host,
        &format!(
            "/photos/seed.txt?AWSAccessKeyId={}&Expires=4102444800&Signature=frJIUN8DYpKDtOLCwo%2F%2FyllqDzg%3D",
            ALICE.access_key
        ),
    );
    let r = refused(&env, "SigV2 presigned", &v2q, 400, "InvalidRequest");
    assert!(r.text().contains("SigV4"), "{}", r.text());

    // Anonymous.
    refused(&env, "anonymous GET", &get(), 403, "AccessDenied");
    refused(&env, "anonymous PUT", &put("anon.txt"), 403, "AccessDenied");
    refused(
        &env,
        "anonymous LIST",
        &RawRequest::new("GET", host, "/photos?list-type=2"),
        403,
        "AccessDenied",
    );
    // A HEAD answer has no body to carry a code: the status alone.
    refused(
        &env,
        "anonymous HEAD object",
        &RawRequest::new("HEAD", host, "/photos/seed.txt"),
        403,
        "",
    );

    // aws-chunked (signed chunks): correctly signed, it is stored as the
    // plain bytes; one flipped byte of chunk data and it is refused.
    let data = chunk_data();
    let parts: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let whole = data.concat();
    reaches(
        &env,
        "signed aws-chunked PUT",
        &alice.chunked_put(host, "/photos/chunked.bin", &parts),
        routed,
        "PutObject",
    );
    assert_eq!(
        rt().block_on(get_bytes(&routed.client(), "photos", "chunked.bin"))
            .unwrap(),
        whole,
        "the decoded aws-chunked body differs from what was sent"
    );
    // A flipped byte in the first chunk, then in a later one (the chunks
    // before it were verified and went upstream): 403, and no object. That
    // nothing at all reaches the store is `tampered_first_chunk_sends_nothing_upstream`.
    for (n, key) in [(0, "tampered-first.bin"), (1, "tampered-later.bin")] {
        let mut tampered = alice.chunked_put(host, &format!("/photos/{key}"), &parts);
        let at = chunk_data_offset(&tampered.body, n) + 10;
        tampered.body[at] ^= 0x01;
        let r = tampered.send(&env.addr);
        assert_eq!(
            (r.status, r.s3_code().as_deref()),
            (403, Some("SignatureDoesNotMatch")),
            "aws-chunked body, chunk {n} tampered: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(300));
        for s in [&env.source, &env.target] {
            assert!(
                !exists(s, "photos", key),
                "a tampered aws-chunked upload was stored as {key}"
            );
        }
    }
    assert!(!proxy_panicked(&env.proxy), "{}", env.proxy.log());
}

/// A client secret with every character changed, same shape.
fn wrong_client_secret(secret: &str) -> String {
    // The harness's wrong_secret is for store secrets; the same rule
    // (every character changed, same shape) fits client secrets.
    secret
        .chars()
        .map(|c| match c {
            '0'..='8' => ((c as u8) + 1) as char,
            '9' => '0',
            'a'..='y' => ((c as u8) + 1) as char,
            'z' => 'a',
            '-' => '_',
            c => c,
        })
        .collect()
}

#[test]
fn forward_mode_refusals_never_reach_a_store() {
    refusals("forward");
}

#[test]
fn ready_mode_refusals_never_reach_a_store() {
    refusals("ready");
}

/// ARCHITECTURE.md: "A bad signature ... gets an S3 XML 403 before any byte
/// goes upstream." An aws-chunked upload whose FIRST chunk has a bad
/// signature could be refused before the proxy opens the upstream request.
#[test]
fn tampered_first_chunk_sends_nothing_upstream() {
    let env = setup("forward");
    let data = chunk_data();
    let many: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    // One chunk longer than Pingora's 64 KiB retry buffer: the proxy reads
    // the whole body before the upstream is asked.
    let one = vec![7u8; 100 * 1024];
    let alice = Signer::client(&ALICE);
    for (key, parts) in [("tampered.bin", many), ("tampered-one.bin", vec![&one[..]])] {
        let mut tampered = alice.chunked_put(&env.addr, &format!("/photos/{key}"), &parts);
        let at = chunk_data_offset(&tampered.body, 0) + 10;
        tampered.body[at] ^= 0x01;
        refused(
            &env,
            &format!("aws-chunked body {key}, first chunk tampered"),
            &tampered,
            403,
            "SignatureDoesNotMatch",
        );
        assert!(!exists(&env.source, "photos", key));
    }
}

/// Signed aws-chunked bodies of every length arrive intact now that the
/// proxy reads up to the first chunk ahead of the upstream: empty, one
/// small chunk, one chunk past Pingora's 64 KiB buffer, and several. A
/// client that sends `Expect: 100-continue` gets its `100 Continue` from
/// the proxy before any store has seen the request.
#[test]
fn signed_chunked_bodies_of_every_length_arrive_intact() {
    let env = setup("forward");
    let alice = Signer::client(&ALICE);
    let small = b"ten bytes!".to_vec();
    let one = (0..100 * 1024u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>();
    let many = chunk_data();
    let cases: Vec<(&str, Vec<&[u8]>)> = vec![
        ("empty.bin", vec![]),
        ("small.bin", vec![&small]),
        ("one-chunk.bin", vec![&one]),
        ("many.bin", many.iter().map(Vec::as_slice).collect()),
    ];
    for (key, parts) in &cases {
        let req = alice
            .chunked_put(&env.addr, &format!("/photos/{key}"), parts)
            .header("Expect", "100-continue");
        let bytes = req.to_bytes();
        let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let before = counts(&env.source);
        let mut conn = raw_connect(&env.addr);
        conn.write_all(&bytes[..split]).unwrap();
        let interim = read_response(&mut conn, false).unwrap().unwrap();
        assert_eq!(interim.status, 100, "{key}: {}", interim.text());
        assert!(
            new_requests(&before, &counts(&env.source)).is_empty(),
            "{key}: the source saw the request before its first chunk was verified"
        );
        conn.write_all(&bytes[split..]).unwrap();
        let done = read_response(&mut conn, false).unwrap().unwrap();
        assert_eq!(done.status, 200, "{key}: {}", done.text());
        let got = rt()
            .block_on(get_bytes(&env.source.client(), "photos", key))
            .unwrap();
        assert_eq!(got, parts.concat(), "{key}: stored bytes differ");
    }
    assert!(!proxy_panicked(&env.proxy), "{}", env.proxy.log());
}

/// Builds a request for a given `Host`.
type MakeRequest<'a> = Box<dyn Fn(&str) -> RawRequest + 'a>;

/// An unattached bucket passes through untouched: a request signed with
/// the TARGET's own key for the proxy's host works, and a bad one gets the
/// target's own answer (Garage's AccessDenied), counted by the target:
/// the proxy did not judge it. The same holds for what the proxy refuses
/// on an attached bucket (a client key, SigV2, anonymous).
#[test]
fn unattached_bucket_passes_through_untouched() {
    let env = setup("forward");
    let host = env.addr.as_str();
    let own = Signer::store(&env.target);

    let put = RawRequest::new("PUT", host, "/other/through.txt").body("via the proxy");
    let r = reaches(
        &env,
        "target key PUT",
        &own.sign(put),
        &env.target,
        "PutObject",
    );
    assert_eq!(r.status, 200);
    let r = reaches(
        &env,
        "target key GET",
        &own.sign(RawRequest::new("GET", host, "/other/through.txt")),
        &env.target,
        "GetObject",
    );
    assert_eq!(r.body, b"via the proxy");
    let r = reaches(
        &env,
        "target key presigned GET",
        &own.presign(
            RawRequest::new("GET", host, "/other/through.txt"),
            Duration::from_secs(300),
        ),
        &env.target,
        "GetObject",
    );
    assert_eq!(r.body, b"via the proxy");
    assert!(
        !exists(&env.source, "other", "through.txt"),
        "an unattached bucket's write reached the source"
    );

    // Each of these is one the proxy would refuse itself on an attached
    // bucket; here the target must answer, with what it answers directly.
    let wrong = own.clone().with_secret(&env.target.wrong_secret());
    let get = |t: &str| RawRequest::new("GET", t, "/other/through.txt");
    let direct = authority(&env.target.endpoint).to_owned();
    let cases: Vec<(&str, MakeRequest)> = vec![
        ("target key, wrong secret", Box::new(|h| wrong.sign(get(h)))),
        (
            "a proxy user's key",
            Box::new(|h| Signer::client(&ALICE).sign(get(h))),
        ),
        ("anonymous", Box::new(get)),
        (
            "skewed clock",
            Box::new(|h| own.clone().at(ago(20 * 60)).sign(get(h))),
        ),
        (
            "SigV2",
            Box::new(|h| {
                get(h)
                    .header("Date", "Wed, 01 Jan 2025 00:00:00 GMT")
                    .header("Authorization", "AWS GKx:frJIUN8DYpKDtOLCwo//yllqDzg=")
            }),
        ),
    ];
    for (case, make) in &cases {
        let before = counts(&env.target);
        let via = make(host).send(&env.addr);
        let after = counts(&env.target);
        let at_target = make(&direct).send(&direct);
        // Garage tolerates a 20-minute skew that the proxy (and S3) would
        // refuse: that it is accepted here shows the proxy kept out.
        if *case != "skewed clock" {
            assert!(
                via.status >= 400,
                "{case}: the target accepted it: {}",
                via.text()
            );
        }
        assert_eq!(
            (via.status, via.s3_code()),
            (at_target.status, at_target.s3_code()),
            "{case}: through the proxy {} / directly {}",
            via.text(),
            at_target.text()
        );
        assert_eq!(
            new_requests(&before, &after),
            vec![("GetObject".to_owned(), 1)],
            "{case}: the target did not judge the request itself"
        );
    }
    // Garage's answer to a bad signature, not the proxy's.
    let r = wrong.sign(get(host)).send(&env.addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied"))
    );
}

/// CopyObject reads its source with the proxy's upstream credentials, so the
/// proxy must check that the client may read the copy source: alice may
/// write `photos` but has no grant at all on `secret`.
fn copy_source_needs_a_read_grant(mode: &str) {
    let env = setup(mode);
    let (routed, _) = env.routed(mode);
    let req = Signer::client(&ALICE).sign(
        RawRequest::new("PUT", &env.addr, "/photos/stolen.txt")
            .header("x-amz-copy-source", "/secret/data.txt"),
    );
    let r = req.send(&env.addr);
    let leaked = exists(routed, "photos", "stolen.txt");
    assert!(
        r.status == 403 && !leaked,
        "alice (no grant on `secret`) copied secret/data.txt into photos in {mode} mode: \
         HTTP {} {}; photos/stolen.txt exists: {leaked}",
        r.status,
        r.text()
    );
    assert_eq!(r.s3_code().as_deref(), Some("AccessDenied"));
}

#[test]
fn forward_mode_copy_source_needs_a_read_grant() {
    copy_source_needs_a_read_grant("forward");
}

#[test]
fn ready_mode_copy_source_needs_a_read_grant() {
    copy_source_needs_a_read_grant("ready");
}

/// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (what the AWS SDKs send by default):
/// the chunks are not signed, only the trailing checksum vouches for them.
/// A correct trailer stores the bytes; a wrong one gets 400 BadDigest and
/// stores nothing.
#[test]
fn unsigned_trailer_with_a_wrong_checksum_is_refused() {
    let env = setup("forward");
    let alice = Signer::client(&ALICE);
    let data = chunk_data();
    let parts: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let whole = data.concat();
    let good = alice.unsigned_trailer_put(
        &env.addr,
        "/photos/crc-good.bin",
        &parts,
        &crc32_b64(&whole),
    );
    reaches(
        &env,
        "unsigned trailer, right CRC",
        &good,
        &env.source,
        "PutObject",
    );
    assert_eq!(
        rt().block_on(get_bytes(&env.source.client(), "photos", "crc-good.bin"))
            .unwrap(),
        whole
    );
    // The whole body in one write: the proxy sees the bad trailer before it
    // has forwarded the data.
    let bad = alice.unsigned_trailer_put(
        &env.addr,
        "/photos/crc-bad.bin",
        &parts,
        &crc32_b64(b"other"),
    );
    let r = bad.send(&env.addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (400, Some("BadDigest")),
        "{}",
        r.text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!exists(&env.source, "photos", "crc-bad.bin"));
}

/// The same, with the trailer arriving after the data (as it does from a
/// real client on a large upload): by then the proxy has forwarded every
/// decoded byte, so the upstream's request is complete before the checksum
/// is checked, and the object is stored although the client was told 400.
#[test]
fn unsigned_trailer_checked_before_the_upload_completes() {
    let env = setup("forward");
    let data = chunk_data();
    let parts: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let bad = Signer::client(&ALICE).unsigned_trailer_put(
        &env.addr,
        "/photos/crc-late.bin",
        &parts,
        &crc32_b64(b"other"),
    );
    let wire = bad.to_bytes();
    // Hold back the final "0\r\n" + trailer.
    let tail = wire.len() - wire.windows(3).rposition(|w| w == b"\r\n0").unwrap() - 2;
    let mut s = raw_connect(&env.addr);
    std::io::Write::write_all(&mut s, &wire[..wire.len() - tail]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The proxy may already have answered (its upstream did); write what
    // is left regardless.
    let _ = std::io::Write::write_all(&mut s, &wire[wire.len() - tail..]);
    let r = read_response(&mut s, false).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stored = exists(&env.source, "photos", "crc-late.bin");
    assert!(
        !stored && r.as_ref().is_some_and(|r| r.status == 400),
        "a wrong trailing checksum: answered {:?}; object stored: {stored}",
        r.map(|r| (r.status, r.text()))
    );
}

/// A header-signed body whose x-amz-content-sha256 does not match the body
/// (one byte changed in transit): the proxy passes the declared hash on,
/// and the store must refuse it. Nothing is stored.
#[test]
fn tampered_plain_body_is_not_stored() {
    let env = setup("forward");
    let mut req = Signer::client(&ALICE).sign(
        RawRequest::new("PUT", &env.addr, "/photos/plain-tampered.txt").body("the body as signed"),
    );
    req.body = b"the body AS signed".to_vec();
    let r = req.send(&env.addr);
    assert!(
        (400..500).contains(&r.status),
        "a body that does not match its signed SHA-256: {} {}",
        r.status,
        r.text()
    );
    assert!(!exists(&env.source, "photos", "plain-tampered.txt"));
}

/// A "write" grant is for objects. Bucket administration (DeleteBucket,
/// PutBucketCors, ...) would run with the proxy's upstream credentials (the
/// migration user on the source, the service user on the target), which
/// own the bucket; a client with a write grant must not get that.
fn write_grant_is_not_bucket_admin(mode: &str) {
    let env = setup(mode);
    let (routed, _) = env.routed(mode);
    let alice = Signer::client(&ALICE);
    let cors = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>\
                <AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
    let r = alice
        .sign(RawRequest::new("PUT", &env.addr, "/photos?cors").body(cors))
        .send(&env.addr);
    let cors_set = rt().block_on(async {
        routed
            .client()
            .get_bucket_cors()
            .bucket("photos")
            .send()
            .await
            .is_ok()
    });
    // An empty bucket, so that DeleteBucket can succeed.
    rt().block_on(async {
        routed
            .client()
            .delete_object()
            .bucket("photos")
            .key("seed.txt")
            .send()
            .await
            .unwrap()
    });
    let d = alice
        .sign(RawRequest::new("DELETE", &env.addr, "/photos"))
        .send(&env.addr);
    let gone = rt().block_on(async {
        routed
            .client()
            .head_bucket()
            .bucket("photos")
            .send()
            .await
            .is_err()
    });
    assert!(
        !cors_set && !gone,
        "{mode} mode: alice (write grant) ran bucket administration with the proxy's credentials: \
         PutBucketCors -> {} (CORS set: {cors_set}); DeleteBucket -> {} (bucket deleted: {gone})",
        r.status,
        d.status
    );
    assert_eq!(r.s3_code().as_deref(), Some("AccessDenied"));
    assert_eq!(d.s3_code().as_deref(), Some("AccessDenied"));
}

#[test]
fn forward_mode_write_grant_is_not_bucket_admin() {
    write_grant_is_not_bucket_admin("forward");
}

#[test]
fn ready_mode_write_grant_is_not_bucket_admin() {
    write_grant_is_not_bucket_admin("ready");
}

/// SigV4's credential scope binds a signature to a region and service. S3
/// (and Garage, the stores here) refuse a scope naming another region with
/// 400 AuthorizationHeaderMalformed; the proxy must not accept a signature
/// made for a region that is neither the bucket's source's nor the target's.
#[test]
fn credential_scope_must_name_the_region() {
    let env = setup("forward");
    let mut other_region = Signer::client(&ALICE);
    other_region.region = "us-east-1".to_owned();
    refused(
        &env,
        "credential scope for us-east-1",
        &other_region.sign(RawRequest::new("GET", &env.addr, "/photos/seed.txt")),
        400,
        "AuthorizationHeaderMalformed",
    );
}

//! SigV4 verification against AWS's published example values (the S3
//! "Signature Version 4" documentation: header, presigned URL and chunked
//! upload examples), and against aws-sigv4's own signer as an independent
//! oracle for trailers; the proxy's upstream signer (`resign`) against
//! the same examples and against aws-sigv4 on odd requests.

use ferry_proxy::s3error::Code;
use ferry_proxy::sigv4::chunked::{ChunkedDecoder, Signing};
use ferry_proxy::sigv4::verify::{Outcome, Payload};
use ferry_proxy::sigv4::{RequestView, signing_key, verify};
use time::macros::datetime;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn secrets(k: &str) -> Option<String> {
    (k == AKID).then(|| SECRET.to_owned())
}

fn at_example_time() -> time::OffsetDateTime {
    datetime!(2013-05-24 00:00:00 UTC)
}

fn check(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Outcome, ferry_proxy::s3error::S3Error> {
    let req = RequestView {
        method,
        raw_path: path,
        raw_query: query,
        headers,
    };
    verify(&req, secrets, at_example_time(), 900)
}

fn auth(signed: &str, sig: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={sig}"
    )
}

#[test]
fn get_object_example() {
    let a = auth(
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
    let h = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY),
        ("x-amz-date", "20130524T000000Z"),
        ("Authorization", a.as_str()),
    ];
    let Outcome::Signed(v) = check("GET", "/test.txt", "", &h).unwrap() else {
        panic!("anonymous")
    };
    assert_eq!(v.access_key, AKID);
    assert_eq!(v.payload, Payload::Sha256(EMPTY.into()));

    // One byte off anywhere and the signature no longer matches.
    let mut tampered = h;
    tampered[1] = ("Range", "bytes=0-8");
    assert_eq!(
        check("GET", "/test.txt", "", &tampered).unwrap_err().code,
        Code::SignatureDoesNotMatch
    );
    assert_eq!(
        check("GET", "/test.txT", "", &h).unwrap_err().code,
        Code::SignatureDoesNotMatch
    );
}

#[test]
fn put_object_example() {
    let a = auth(
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
    let h = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        (
            "x-amz-content-sha256",
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        ),
        ("Authorization", a.as_str()),
    ];
    // `$` in the key, sent escaped: canonicalised to the same form.
    assert!(matches!(
        check("PUT", "/test%24file.text", "", &h),
        Ok(Outcome::Signed(_))
    ));
    assert!(matches!(
        check("PUT", "/test$file.text", "", &h),
        Ok(Outcome::Signed(_))
    ));
}

#[test]
fn bucket_lifecycle_and_list_examples() {
    let a = auth(
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    );
    let h = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY),
        ("Authorization", a.as_str()),
    ];
    assert!(check("GET", "/", "lifecycle", &h).is_ok());

    let a = auth(
        "host;x-amz-content-sha256;x-amz-date",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
    let h = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-content-sha256", EMPTY),
        ("Authorization", a.as_str()),
    ];
    // Query order does not matter: it is sorted.
    assert!(check("GET", "/", "prefix=J&max-keys=2", &h).is_ok());
    assert!(check("GET", "/", "max-keys=2&prefix=J", &h).is_ok());
    assert_eq!(
        check("GET", "/", "max-keys=3&prefix=J", &h)
            .unwrap_err()
            .code,
        Code::SignatureDoesNotMatch
    );
}

/// `resign::sign_request`'s Authorization for `method target` at the
/// examples' time, in us-east-1.
fn resign(method: &str, target: &str, headers: &[(&str, &str)], payload: &str) -> String {
    use ferry_proxy::resign::{RequestLine, UpstreamCreds, sign_request};
    let creds = UpstreamCreds {
        access_key: AKID.into(),
        secret: SECRET.into(),
        region: "us-east-1".into(),
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
    let line = RequestLine { method, target };
    let out = sign_request(&line, headers, payload, &creds, at).unwrap();
    let get = |n: &str| {
        out.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {n} among {out:?}"))
    };
    assert_eq!(get("x-amz-date"), "20130524T000000Z");
    assert_eq!(get("x-amz-content-sha256"), payload);
    get("authorization")
}

/// The proxy signs its upstream requests as AWS's examples say.
#[test]
fn the_upstream_signer_reproduces_the_published_examples() {
    let host = [("host", "examplebucket.s3.amazonaws.com")];
    // The examples write the header without spaces after the commas.
    let resign = |m, t, h, p| resign(m, t, h, p).replace(", ", ",");
    assert_eq!(
        resign("GET", "/?lifecycle=", &host, EMPTY),
        auth(
            "host;x-amz-content-sha256;x-amz-date",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        )
    );
    assert_eq!(
        resign("GET", "/?max-keys=2&prefix=J", &host, EMPTY),
        auth(
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        )
    );
}

/// On requests the examples do not cover (odd keys, repeated and
/// mixed-case headers, folded spaces, a query with empty values), the
/// proxy's signer and aws-sigv4's sign the same bytes the same way.
#[test]
fn the_upstream_signer_agrees_with_aws_sigv4() {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
        SigningSettings, UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    use ferry_proxy::resign::canonical_target;

    let identity = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "t").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = SignatureLocation::Headers;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let long = format!("/b/{}", "k".repeat(1024));
    // Method, path, query, headers besides `host`.
    type Request<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>);
    let cases: Vec<Request> = vec![
        (
            "PUT",
            "/b/odd key+%25/ü//x",
            "",
            vec![("x-amz-meta-a", "b")],
        ),
        ("PUT", "/b//lead", "", vec![("Content-Type", "text/plain")]),
        (
            "GET",
            "/b",
            "list-type=2&prefix=a b&delimiter=/&encoding-type=url",
            vec![],
        ),
        (
            "POST",
            "/b/k",
            "uploads",
            vec![("x-amz-meta-x", "  two   spaces  ")],
        ),
        (
            "PUT",
            "/b/k",
            "partNumber=2&uploadId=a/b+c",
            vec![("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
        ),
        (
            "DELETE",
            "/b/k",
            "tagging",
            vec![("X-Amz-Meta-Up", "1"), ("x-amz-meta-up", "2")],
        ),
        ("PUT", &long, "", vec![]),
    ];
    for (method, path, query, extra) in cases {
        let target = canonical_target(path, query).unwrap();
        let mut headers = vec![("host", "127.0.0.1:3900")];
        headers.extend(extra);
        let ours = resign(method, &target, &headers, EMPTY);
        let req = SignableRequest::new(
            method,
            format!("http://127.0.0.1:3900{target}"),
            headers.iter().copied(),
            SignableBody::Precomputed(EMPTY.to_owned()),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let theirs = instructions
            .headers()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.to_owned())
            .unwrap();
        assert_eq!(ours, theirs, "{method} {target} {headers:?}");
    }
}

#[test]
fn presigned_url_example() {
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    let h = [("Host", "examplebucket.s3.amazonaws.com")];
    let Outcome::Signed(v) = check("GET", "/test.txt", q, &h).unwrap() else {
        panic!("anonymous")
    };
    assert_eq!(v.payload, Payload::Unsigned);
    // Expired a day and a second later.
    let req = RequestView {
        method: "GET",
        raw_path: "/test.txt",
        raw_query: q,
        headers: &h,
    };
    let late = at_example_time() + time::Duration::seconds(86_401);
    let e = verify(&req, secrets, late, 900).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_ref()),
        (Code::AccessDenied, "Request has expired")
    );
}

#[test]
fn refusals_name_the_right_error() {
    let good = auth(
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    );
    fn base(a: &str) -> Vec<(&str, &str)> {
        [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY),
        ]
        .into_iter()
        .chain([("Authorization", a)])
        .collect()
    }
    let unknown = good.replace(AKID, "AKIDUNKNOWNEXAMPLE00");
    assert_eq!(
        check("GET", "/", "lifecycle", &base(&unknown))
            .unwrap_err()
            .code,
        Code::InvalidAccessKeyId
    );
    let sigv2 = "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=";
    let e = check("GET", "/", "", &base(sigv2)).unwrap_err();
    assert_eq!(e.code, Code::InvalidRequest);
    assert!(e.message.contains("SigV4"), "{}", e.message);
    // Clock skew: the right signature, 16 minutes late.
    let h = base(&good);
    let req = RequestView {
        method: "GET",
        raw_path: "/",
        raw_query: "lifecycle",
        headers: &h,
    };
    let late = at_example_time() + time::Duration::minutes(16);
    assert_eq!(
        verify(&req, secrets, late, 900).unwrap_err().code,
        Code::RequestTimeTooSkewed
    );
    assert!(
        verify(
            &req,
            secrets,
            at_example_time() + time::Duration::minutes(14),
            900
        )
        .is_ok()
    );
    // Anonymous requests are recognised, not refused here.
    let anon = [("Host", "b.example")];
    assert!(matches!(
        check("GET", "/k", "", &anon),
        Ok(Outcome::Anonymous)
    ));
}

fn chunked_signing(seed: &str) -> Signing {
    Signing::Signed {
        key: signing_key(SECRET, "20130524", "us-east-1", "s3"),
        amz_date: "20130524T000000Z".into(),
        scope: "20130524/us-east-1/s3/aws4_request".into(),
        prev: seed.into(),
    }
}

/// The documented chunked upload: 64 KiB + 1 KiB of 'a', seed signature
/// 4f232c43...
fn example_chunked_body() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
    b.extend(std::iter::repeat_n(b'a', 65536));
    b.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
    b.extend(std::iter::repeat_n(b'a', 1024));
    b.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
    b
}

const CHUNKED_SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

#[test]
fn chunked_upload_example_seed_signature() {
    let a = auth(
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
        CHUNKED_SEED,
    );
    let h = [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
        ("Authorization", a.as_str()),
    ];
    let Outcome::Signed(v) = check("PUT", "/examplebucket/chunkObject.txt", "", &h).unwrap() else {
        panic!()
    };
    assert_eq!(v.payload, Payload::StreamingSigned);
    assert_eq!(v.seed_signature, CHUNKED_SEED);
    assert_eq!(example_chunked_body().len(), 66824);
}

#[test]
fn chunked_upload_example_decodes_in_any_split() {
    let body = example_chunked_body();
    for split in [1usize, 7, 100, 4096, 65_600, body.len()] {
        let mut d =
            ChunkedDecoder::new(chunked_signing(CHUNKED_SEED), None, false, Some(66560)).unwrap();
        let mut out = Vec::new();
        for piece in body.chunks(split) {
            for b in d.feed(piece).unwrap() {
                out.extend_from_slice(&b);
            }
        }
        d.finish().unwrap();
        assert_eq!(out.len(), 66560);
        assert!(out.iter().all(|&b| b == b'a'));
    }
}

#[test]
fn tampered_or_truncated_chunks_are_refused() {
    let mut body = example_chunked_body();
    body[200] = b'b';
    let mut d = ChunkedDecoder::new(chunked_signing(CHUNKED_SEED), None, false, None).unwrap();
    let e = d.feed(&body).unwrap_err();
    assert_eq!(e.code, Code::SignatureDoesNotMatch);

    // Nothing of a bad chunk is handed out, even the bytes before the flip.
    let body = example_chunked_body();
    let mut d = ChunkedDecoder::new(chunked_signing(&"0".repeat(64)), None, false, None).unwrap();
    assert!(d.feed(&body[..66_000]).is_err());

    let mut d = ChunkedDecoder::new(chunked_signing(CHUNKED_SEED), None, false, None).unwrap();
    d.feed(&body[..body.len() - 10]).unwrap();
    assert_eq!(d.finish().unwrap_err().code, Code::IncompleteBody);

    let mut d = ChunkedDecoder::new(chunked_signing(CHUNKED_SEED), None, false, None).unwrap();
    assert_eq!(
        d.feed(b"zz;chunk-signature=00\r\n").unwrap_err().code,
        Code::IncompleteBody
    );
}

/// Unsigned chunks with a CRC32 trailer, as boto3 and the Rust SDK send by
/// default.
#[test]
fn unsigned_trailer_checksums() {
    use base64::Engine;
    let data = b"hello, chunked world";
    let crc = base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes());
    let body = format!(
        "{:x}\r\n{}\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n",
        data.len(),
        std::str::from_utf8(data).unwrap()
    );
    let mut d = ChunkedDecoder::new(
        Signing::Unsigned,
        Some("x-amz-checksum-crc32"),
        false,
        Some(data.len() as u64),
    )
    .unwrap();
    let out: Vec<u8> = d.feed(body.as_bytes()).unwrap().concat();
    d.finish().unwrap();
    assert_eq!(out, data);

    let wrong = body.replace(&crc, "AAAAAA==");
    let mut d =
        ChunkedDecoder::new(Signing::Unsigned, Some("x-amz-checksum-crc32"), false, None).unwrap();
    assert_eq!(d.feed(wrong.as_bytes()).unwrap_err().code, Code::BadDigest);
}

/// Signed chunks with a signed trailer, checked against aws-sigv4's own
/// chunk and trailer signatures.
#[test]
fn signed_trailer_matches_aws_sigv4() {
    use aws_sigv4::sign::v4;
    use base64::Engine;
    use std::time::{Duration, UNIX_EPOCH};

    let creds = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&creds)
        .region("us-east-1")
        .name("s3")
        .time(UNIX_EPOCH + Duration::from_secs(1_369_353_600)) // 2013-05-24T00:00:00Z
        .settings(())
        .build()
        .unwrap();
    let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
    let chunks: [&[u8]; 2] = [&[b'a'; 65536], &[b'a'; 1024]];
    let mut prev = seed.to_owned();
    let mut body = Vec::new();
    let mut crc = 0u32;
    for c in chunks.iter().chain([&(&[] as &[u8])]) {
        let sig = v4::sign_chunk(&bytes::Bytes::copy_from_slice(c), &prev, &params)
            .unwrap()
            .into_parts()
            .1;
        body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", c.len()).as_bytes());
        body.extend_from_slice(c);
        if !c.is_empty() {
            body.extend_from_slice(b"\r\n");
        }
        crc = crc32c::crc32c_append(crc, c);
        prev = sig;
    }
    let value = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let mut trailers = aws_smithy_runtime_api::http::Headers::new();
    trailers.insert("x-amz-checksum-crc32c", value.clone());
    let tsig = v4::sign_trailer(&trailers, &prev, &params)
        .unwrap()
        .into_parts()
        .1;
    body.extend_from_slice(
        format!("x-amz-checksum-crc32c:{value}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n")
            .as_bytes(),
    );

    let mut d = ChunkedDecoder::new(
        chunked_signing(seed),
        Some("x-amz-checksum-crc32c"),
        true,
        Some(66560),
    )
    .unwrap();
    let out: Vec<u8> = d.feed(&body).unwrap().concat();
    d.finish().unwrap();
    assert_eq!(out.len(), 66560);

    let forged = String::from_utf8(body.clone())
        .unwrap()
        .replace(&tsig, &"1".repeat(64));
    let mut d = ChunkedDecoder::new(
        chunked_signing(seed),
        Some("x-amz-checksum-crc32c"),
        true,
        None,
    )
    .unwrap();
    assert_eq!(
        d.feed(forged.as_bytes()).unwrap_err().code,
        Code::SignatureDoesNotMatch
    );
}

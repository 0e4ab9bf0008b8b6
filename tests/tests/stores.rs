//! Self-test of the harness against the real stores. Some assertions pin down
//! store behaviour that other tests rely on (If-None-Match, leading `/`,
//! signature checks, restart semantics): if a store changes, these fail first.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use ferry_harness::{Store, StoreKind, get_bytes, list_keys, put_objects};

const BUCKET: &str = "ferry-selftest";

fn start(kind: StoreKind) -> Store {
    let store = Store::start(kind).unwrap_or_else(|e| panic!("cannot start {kind}: {e:#}"));
    store
        .create_bucket(BUCKET)
        .unwrap_or_else(|e| panic!("create bucket on {kind}: {e:#}"));
    store
}

fn status<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    e.raw_response().map(HasStatus::status_u16)
}

trait HasStatus {
    fn status_u16(&self) -> u16;
}
impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Keys that break naive clients: space, `%`, `+`, unicode, `//`, control chars.
fn odd_keys() -> Vec<String> {
    [
        "plain.txt",
        "with space",
        "pct%41literal",
        "plus+sign",
        "both + and %2B",
        "unicodé/日本語/🚢",
        "a//b",
        "tab\tand\u{1}ctl",
        "dir/",
        "dir/nested/deep.bin",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn body_for(i: usize, key: &str) -> Bytes {
    // Distinct per key; one larger body to cross buffer sizes.
    let len = if i == 0 { 1 << 20 } else { 17 * i + 3 };
    let seed = key
        .bytes()
        .fold(i as u32, |a, b| a.wrapping_mul(31) ^ u32::from(b));
    Bytes::from(
        (0..len)
            .map(|n| (seed.wrapping_add(n as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>(),
    )
}

async fn round_trip(kind: StoreKind) {
    let store = start(kind);
    assert!(store.endpoint.starts_with("http://127.0.0.1:"), "{store:?}");
    let client = store.client();
    let objects: Vec<(String, Bytes)> = odd_keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let b = body_for(i, &k);
            (k, b)
        })
        .collect();
    put_objects(&client, BUCKET, objects.clone(), 4)
        .await
        .unwrap();

    let listed = list_keys(&client, BUCKET).await.unwrap();
    let mut expected: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    expected.sort(); // S3 lists in UTF-8 byte order, which is String's order
    assert_eq!(listed, expected, "{kind}: listing");

    for (key, body) in &objects {
        let got = get_bytes(&client, BUCKET, key).await.unwrap();
        assert!(
            got == body,
            "{kind}: body of {key:?} differs ({} vs {} bytes)",
            got.len(),
            body.len()
        );
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.content_length(),
            Some(body.len() as i64),
            "{kind}: HEAD {key:?}"
        );
    }

    let missing = get_bytes(&client, BUCKET, "no-such-key").await;
    assert!(missing.is_err(), "{kind}: GET of a missing key succeeded");
}

#[tokio::test]
async fn garage_round_trips_odd_keys() {
    round_trip(StoreKind::Garage).await;
}

#[tokio::test]
async fn moto_round_trips_odd_keys() {
    round_trip(StoreKind::Moto).await;
}

#[tokio::test]
async fn list_keys_paginates() {
    let store = start(StoreKind::Garage);
    let client = store.client();
    let keys: BTreeSet<String> = (0..1100).map(|i| format!("k/{i:05} +%")).collect();
    put_objects(
        &client,
        BUCKET,
        keys.iter().map(|k| (k.clone(), Bytes::from_static(b"x"))),
        32,
    )
    .await
    .unwrap();
    let listed = list_keys(&client, BUCKET).await.unwrap();
    assert_eq!(listed, keys.into_iter().collect::<Vec<_>>());
}

/// Garage drops a leading `/` from keys; moto keeps it.
#[tokio::test]
async fn leading_slash_key_handling() {
    for kind in [StoreKind::Garage, StoreKind::Moto] {
        let store = start(kind);
        let client = store.client();
        put_objects(
            &client,
            BUCKET,
            [("/lead".to_owned(), Bytes::from_static(b"slash"))],
            1,
        )
        .await
        .unwrap();
        let listed = list_keys(&client, BUCKET).await.unwrap();
        let want = if kind.keeps_leading_slash() {
            "/lead"
        } else {
            "lead"
        };
        assert_eq!(
            listed,
            [want],
            "{kind}: PUT `/lead` was stored as {listed:?}"
        );
    }
}

async fn put_if_none_match(
    client: &aws_sdk_s3::Client,
    key: &str,
    body: &'static [u8],
) -> Result<(), Option<(u16, String)>> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .if_none_match("*")
        .body(ByteStream::from_static(body))
        .send()
        .await
        .map(drop)
        .map_err(|e| status(&e).map(|s| (s, e.code().unwrap_or_default().to_owned())))
}

#[tokio::test]
async fn moto_enforces_if_none_match_on_put() {
    let store = start(StoreKind::Moto);
    assert!(store.kind.enforces_if_none_match());
    let client = store.client();
    put_if_none_match(&client, "once", b"first")
        .await
        .expect("first conditional PUT");
    let second = put_if_none_match(&client, "once", b"second").await;
    assert_eq!(second, Err(Some((412, "PreconditionFailed".to_owned()))));
    assert_eq!(get_bytes(&client, BUCKET, "once").await.unwrap(), "first");
}

#[tokio::test]
async fn garage_ignores_if_none_match_on_put() {
    let store = start(StoreKind::Garage);
    assert!(!store.kind.enforces_if_none_match());
    let client = store.client();
    put_if_none_match(&client, "once", b"first")
        .await
        .expect("first conditional PUT");
    put_if_none_match(&client, "once", b"second").await.expect(
        "Garage now rejects a second `If-None-Match: *` PUT: \
             update StoreKind and docs/stores.md",
    );
    assert_eq!(get_bytes(&client, BUCKET, "once").await.unwrap(), "second");
}

fn client_with_secret(store: &Store, secret: &str) -> aws_sdk_s3::Client {
    let conf = store
        .config()
        .to_builder()
        .credentials_provider(Credentials::new(
            &store.access_key,
            secret,
            None,
            None,
            "wrong",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test]
async fn garage_rejects_wrong_secret_with_403() {
    let store = start(StoreKind::Garage);
    assert!(store.kind.checks_signatures());
    let wrong = store.wrong_secret();
    assert_ne!(wrong, store.secret_key);
    assert_eq!(wrong.len(), store.secret_key.len());
    let bad = client_with_secret(&store, &wrong);

    let err = bad
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("LIST with a wrong secret succeeded");
    assert_eq!(status(&err), Some(403), "{err:?}");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    let err = bad
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .expect_err("PUT with a wrong secret succeeded");
    assert_eq!(status(&err), Some(403), "{err:?}");

    // The right secret still works.
    let good = client_with_secret(&store, &store.secret_key);
    good.list_objects_v2().bucket(BUCKET).send().await.unwrap();
}

/// moto checks no signatures, which is why wrong-credential tests run on Garage only.
#[tokio::test]
async fn moto_accepts_wrong_secret() {
    let store = start(StoreKind::Moto);
    assert!(!store.kind.checks_signatures());
    let bad = client_with_secret(&store, &store.wrong_secret());
    bad.list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("moto started checking signatures: update docs/stores.md");
}

#[tokio::test]
async fn garage_data_survives_stop_and_restart() {
    let mut store = start(StoreKind::Garage);
    assert!(store.kind.keeps_data_across_restart());
    let endpoint = store.endpoint.clone();
    let client = store.client();
    let objects: Vec<(String, Bytes)> = (0..20)
        .map(|i| (format!("obj/{i}"), Bytes::from(format!("body {i}"))))
        .collect();
    put_objects(&client, BUCKET, objects.clone(), 8)
        .await
        .unwrap();

    store.stop();
    store.stop(); // idempotent
    let down = client
        .head_object()
        .bucket(BUCKET)
        .key("obj/0")
        .send()
        .await;
    assert!(down.is_err(), "HEAD succeeded while Garage was stopped");
    assert!(
        status(down.as_ref().unwrap_err()).is_none(),
        "a stopped store sent an HTTP response"
    );

    store.restart().unwrap();
    assert_eq!(store.endpoint, endpoint);
    let client = store.client();
    let listed = list_keys(&client, BUCKET).await.unwrap();
    let mut want: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (k, b) in &objects {
        assert_eq!(&get_bytes(&client, BUCKET, k).await.unwrap(), b);
    }
    // Still writable, and the bucket grants survived.
    put_objects(
        &client,
        BUCKET,
        [("after".to_owned(), Bytes::from_static(b"restart"))],
        1,
    )
    .await
    .unwrap();
    store.create_bucket("second-bucket").unwrap();
    put_objects(
        &client,
        "second-bucket",
        [("x".to_owned(), Bytes::from_static(b"y"))],
        1,
    )
    .await
    .unwrap();

    // restart() while running also works (stop + start).
    store.restart().unwrap();
    assert_eq!(
        get_bytes(&store.client(), BUCKET, "after").await.unwrap(),
        "restart"
    );
}

#[tokio::test]
async fn moto_restart_loses_data() {
    let mut store = start(StoreKind::Moto);
    assert!(!store.kind.keeps_data_across_restart());
    let client = store.client();
    put_objects(
        &client,
        BUCKET,
        [("k".to_owned(), Bytes::from_static(b"v"))],
        1,
    )
    .await
    .unwrap();
    store.stop();
    store.restart().unwrap();
    let err = store
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("moto kept a bucket across restart");
    assert_eq!(err.code(), Some("NoSuchBucket"), "{err:?}");
}

#[tokio::test]
async fn garage_counts_head_requests_exactly() {
    let store = start(StoreKind::Garage);
    assert!(store.kind.has_request_counter());
    let client = store.client();
    put_objects(
        &client,
        BUCKET,
        [("h".to_owned(), Bytes::from_static(b"v"))],
        1,
    )
    .await
    .unwrap();
    let before = store.request_counts().unwrap();
    assert!(
        before.get("PutObject").copied().unwrap_or(0) >= 1,
        "{before:?}"
    );
    let head_before = before.get("HeadObject").copied().unwrap_or(0);

    const HEADS: u64 = 7;
    for i in 0..HEADS {
        // Misses count too.
        let key = if i % 2 == 0 { "h" } else { "missing" };
        let _ = client.head_object().bucket(BUCKET).key(key).send().await;
    }
    // The counter may land just after the response: allow a moment, then
    // require the exact number.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut after;
    loop {
        after = store.request_counts().unwrap();
        let n = after.get("HeadObject").copied().unwrap_or(0);
        if n >= head_before + HEADS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        after.get("HeadObject").copied().unwrap_or(0) - head_before,
        HEADS,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.get("GetObject"), before.get("GetObject"));
}

#[test]
fn moto_has_no_request_counter() {
    let store = Store::moto().unwrap();
    assert!(!store.kind.has_request_counter());
    let err = store
        .request_counts()
        .expect_err("moto returned request counts");
    assert!(err.to_string().contains("no request counter"), "{err}");
}

#[test]
fn drop_kills_server_and_removes_temp_dir() {
    for kind in [StoreKind::Garage, StoreKind::Moto] {
        let store = Store::start(kind).unwrap();
        let dir = store.log_path().parent().unwrap().to_owned();
        let port: u16 = store.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        assert!(dir.is_dir());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        drop(store);
        assert!(
            !dir.exists(),
            "{kind}: temp dir {} left behind",
            dir.display()
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{kind}: still listening on {port} after drop"
        );
    }
}

#[test]
fn two_stores_of_a_kind_run_side_by_side() {
    let a = Store::garage().unwrap();
    let b = Store::garage().unwrap();
    assert_ne!(a.endpoint, b.endpoint);
    a.create_bucket("only-in-a").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        a.client()
            .head_bucket()
            .bucket("only-in-a")
            .send()
            .await
            .unwrap();
        assert!(
            b.client()
                .head_bucket()
                .bucket("only-in-a")
                .send()
                .await
                .is_err()
        );
    });
}

/// Upload `key` as two parts (5 MiB + 1 KiB), optionally completing with
/// `If-None-Match: *`. Returns the parts' bodies, or the completion's error
/// as (HTTP status, code).
async fn multipart(
    client: &aws_sdk_s3::Client,
    key: &str,
    if_none_match: bool,
    fill: u8,
) -> Result<Vec<Bytes>, (Option<u16>, String)> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let parts = vec![
        Bytes::from(vec![fill; 5 << 20]),
        Bytes::from(vec![fill.wrapping_add(1); 1024]),
    ];
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut done = Vec::new();
    for (n, body) in (1..).zip(&parts) {
        let out = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let mut complete = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        );
    if if_none_match {
        complete = complete.if_none_match("*");
    }
    match complete.send().await {
        Ok(_) => Ok(parts),
        Err(e) => Err((status(&e), e.code().unwrap_or_default().to_owned())),
    }
}

/// moto enforces `If-None-Match: *` on CompleteMultipartUpload; Garage ignores it.
#[tokio::test]
async fn if_none_match_on_complete_multipart_upload() {
    for kind in [StoreKind::Garage, StoreKind::Moto] {
        let store = start(kind);
        let client = store.client();
        multipart(&client, "mp", true, b'a')
            .await
            .unwrap_or_else(|e| panic!("{kind}: first conditional completion failed: {e:?}"));
        let second = multipart(&client, "mp", true, b'x').await;
        if kind.enforces_if_none_match() {
            assert_eq!(
                second.map(drop),
                Err((Some(412), "PreconditionFailed".to_owned())),
                "{kind}"
            );
        } else {
            let parts = second.unwrap_or_else(|e| {
                panic!(
                    "{kind} now enforces If-None-Match on CompleteMultipartUpload ({e:?}): \
                     update StoreKind and docs/stores.md"
                )
            });
            // The second upload replaced the first.
            let got = get_bytes(&client, BUCKET, "mp").await.unwrap();
            assert!(
                got == [parts[0].clone(), parts[1].clone()].concat(),
                "{kind}: object after second upload"
            );
        }
    }
}

/// `partNumber`: Garage returns the part on GET (206) and HEAD, with
/// PartsCount. moto answers HEAD with the part's length and PartsCount, but
/// ignores `partNumber` on GET: whole object, no PartsCount.
#[tokio::test]
async fn part_number_on_get_and_head() {
    for kind in [StoreKind::Garage, StoreKind::Moto] {
        let store = start(kind);
        let client = store.client();
        let parts = multipart(&client, "mp", false, b'p').await.unwrap();
        let whole: usize = parts.iter().map(Bytes::len).sum();

        let head = client
            .head_object()
            .bucket(BUCKET)
            .key("mp")
            .part_number(2)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.content_length(),
            Some(parts[1].len() as i64),
            "{kind}: HEAD partNumber=2 length"
        );
        assert_eq!(
            head.parts_count(),
            Some(2),
            "{kind}: HEAD partNumber=2 PartsCount"
        );

        let got = client
            .get_object()
            .bucket(BUCKET)
            .key("mp")
            .part_number(2)
            .send()
            .await
            .unwrap();
        let parts_count = got.parts_count();
        let body = got.body.collect().await.unwrap().into_bytes();
        match kind.honours_part_number_on_get() {
            true => {
                assert_eq!(parts_count, Some(2), "{kind}: GET partNumber=2 PartsCount");
                assert!(
                    body == parts[1],
                    "Garage: GET partNumber=2 gave {} bytes",
                    body.len()
                );
            }
            false => {
                assert_eq!(parts_count, None, "{kind}: GET partNumber=2 PartsCount");
                assert_eq!(
                    body.len(),
                    whole,
                    "moto: GET partNumber=2 should be the whole object"
                );
            }
        }
    }
}

/// Object tagging: moto has it; Garage answers NotImplemented.
#[tokio::test]
async fn object_tagging_support() {
    use aws_sdk_s3::types::{Tag, Tagging};
    for kind in [StoreKind::Garage, StoreKind::Moto] {
        let store = start(kind);
        let client = store.client();
        put_objects(
            &client,
            BUCKET,
            [("t".to_owned(), Bytes::from_static(b"v"))],
            1,
        )
        .await
        .unwrap();
        let tagging = Tagging::builder()
            .tag_set(Tag::builder().key("k").value("v").build().unwrap())
            .build()
            .unwrap();
        let res = client
            .put_object_tagging()
            .bucket(BUCKET)
            .key("t")
            .tagging(tagging)
            .send()
            .await;
        match kind.supports_object_tagging() {
            true => {
                res.unwrap();
                let tags = client
                    .get_object_tagging()
                    .bucket(BUCKET)
                    .key("t")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(tags.tag_set().len(), 1);
            }
            false => {
                let err = res.expect_err("Garage now supports tagging: update docs/stores.md");
                assert_eq!(err.code(), Some("NotImplemented"), "{err:?}");
            }
        }
    }
}

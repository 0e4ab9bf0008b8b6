//! Acceptance 1: 10,000 small objects and three multipart objects of over
//! 100 MiB, copied both ways between Garage and moto. Bytes, metadata and
//! key set are identical; multipart ETags are equal (the part layout was
//! reproduced). Also: the S3 client set-up works against both stores.

use ferry_harness::s3migrate as common;

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use common::*;
use ferry_harness::{Store, StoreKind, complete_upload, get_bytes, put_objects};
use sha2::{Digest, Sha256};

const SMALL: u64 = 10_000;

#[derive(Debug, PartialEq, Eq)]
struct Head {
    size: i64,
    etag: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<String>,
    metadata: Option<HashMap<String, String>>,
}

async fn head(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Head {
    let h = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    Head {
        size: h.content_length().unwrap(),
        etag: h.e_tag().unwrap().to_owned(),
        content_type: h.content_type().map(str::to_owned),
        content_encoding: h.content_encoding().map(str::to_owned),
        content_disposition: h.content_disposition().map(str::to_owned),
        content_language: h.content_language().map(str::to_owned),
        cache_control: h.cache_control().map(str::to_owned),
        expires: h.expires_string().map(str::to_owned),
        metadata: h.metadata().cloned(),
    }
}

async fn sha256(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let mut body = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body;
    let mut h = Sha256::new();
    while let Some(chunk) = body.next().await {
        h.update(chunk.unwrap());
    }
    hex::encode(h.finalize())
}

fn big_layouts() -> Vec<(String, Vec<usize>)> {
    const M: usize = 1 << 20;
    vec![
        // Even 8 MiB parts and a short tail.
        (
            "big/even".to_owned(),
            [vec![8 * M; 12], vec![5 * M + 17]].concat(),
        ),
        // Uneven parts, as a client with a growing part size makes.
        (
            "big/uneven".to_owned(),
            vec![5 * M, 7 * M, 16 * M, 32 * M, 41 * M + 3],
        ),
        // Parts of 21 MiB.
        (
            "big/wide".to_owned(),
            vec![21 * M, 21 * M, 21 * M, 21 * M, 17 * M],
        ),
    ]
}

async fn fill(store: &Store, bucket: &str) {
    let c = store.client();
    let objects = (0..SMALL).map(|i| {
        (
            format!("small/{i:05}"),
            data(i, 1 + (i as usize * 37) % 3000),
        )
    });
    put_objects(&c, bucket, objects, 32).await.unwrap();
    // Objects with every header we carry.
    for i in 0..5 {
        let key = format!("meta/{i}");
        c.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(data(500 + i, 321)))
            .content_type("application/x-ferry-test")
            .content_encoding("identity")
            .content_disposition(format!("attachment; filename=\"f{i}.bin\""))
            .content_language("de-CH")
            .cache_control("max-age=3600, must-revalidate")
            .metadata("owner", format!("team-{i}"))
            .metadata("x-odd", "a b;c=d")
            .send()
            .await
            .unwrap();
    }
    for (key, layout) in big_layouts() {
        let up = c
            .create_multipart_upload()
            .bucket(bucket)
            .key(&key)
            .content_type("video/mp4")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_owned();
        let mut parts = Vec::new();
        for (i, len) in layout.iter().enumerate() {
            let n = i as i32 + 1;
            let r = c
                .upload_part()
                .bucket(bucket)
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(data(
                    n as u64 * 1000 + key.len() as u64,
                    *len,
                )))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(r.e_tag().unwrap())
                    .build(),
            );
        }
        complete_upload(&c, bucket, &key, &id, parts).await.unwrap();
    }
}

fn copy_and_compare(src_kind: StoreKind, dest_kind: StoreKind) {
    let (src, dest) = pair(src_kind, dest_kind);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let rt = rt();
    rt.block_on(fill(&src, "src-bucket"));
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.args(["--src-list", "--verify", "--threads", "32"]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let o = counts(&last_summary(&folder));
    let total = SMALL + 5 + 3;
    assert_eq!(o["copied"], total);
    assert!(
        stdout(&out).contains(&format!("verify: checked={total} equal={total}")),
        "{}",
        stdout(&out)
    );

    let (sc, dc) = (src.client(), dest.client());
    // Key set, sizes and ETags: single-part ETags are the MD5 of the bytes,
    // multipart ones are equal only if the part layout was reproduced.
    let s = etags(&rt, &sc, "src-bucket");
    let d = etags(&rt, &dc, "dest-bucket");
    assert_eq!(s.len() as u64, total);
    assert_eq!(s, d);
    for (key, _) in big_layouts() {
        assert!(
            d[&key].1.contains('-'),
            "{key} is not multipart on the destination"
        );
        assert_eq!(
            rt.block_on(sha256(&sc, "src-bucket", &key)),
            rt.block_on(sha256(&dc, "dest-bucket", &key))
        );
        assert_eq!(
            rt.block_on(head(&sc, "src-bucket", &key)),
            rt.block_on(head(&dc, "dest-bucket", &key))
        );
    }
    for i in 0..5 {
        let key = format!("meta/{i}");
        let (hs, hd) = (
            rt.block_on(head(&sc, "src-bucket", &key)),
            rt.block_on(head(&dc, "dest-bucket", &key)),
        );
        assert_eq!(hs.content_type.as_deref(), Some("application/x-ferry-test"));
        assert_eq!(hs, hd, "{key}");
    }
    // And the bytes themselves, for a sample.
    for i in (0..SMALL).step_by(97) {
        let key = format!("small/{i:05}");
        assert_eq!(
            rt.block_on(get_bytes(&dc, "dest-bucket", &key)).unwrap(),
            data(i, 1 + (i as usize * 37) % 3000)
        );
    }
}

#[test]
fn copy_garage_to_moto() {
    copy_and_compare(StoreKind::Garage, StoreKind::Moto);
}

#[test]
fn copy_moto_to_garage() {
    copy_and_compare(StoreKind::Moto, StoreKind::Garage);
}

/// The engine's client sends plain bodies (no aws-chunked, no default CRC
/// trailers), which both stores take and store byte for byte.
#[test]
fn engine_client_works_with_both_stores() {
    let rt = rt();
    for kind in [StoreKind::Garage, StoreKind::Moto] {
        let store = Store::start(kind).unwrap();
        store.create_bucket("client-test").unwrap();
        let c = s3migrate::s3::build_client(&s3migrate::s3::Endpoint {
            url: store.endpoint.clone(),
            bucket: "client-test".into(),
            access_key: store.access_key.clone(),
            secret_key: store.secret_key.clone(),
            region: store.region.clone(),
            ca_pem: None,
        })
        .unwrap();
        let body = data(42, 70_000);
        rt.block_on(async {
            c.put_object()
                .bucket("client-test")
                .key("k")
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            let h = c
                .head_object()
                .bucket("client-test")
                .key("k")
                .send()
                .await
                .unwrap();
            assert_eq!(h.content_length(), Some(70_000));
            assert_eq!(
                h.content_encoding(),
                None,
                "stored with an aws-chunked encoding"
            );
            assert_eq!(
                h.e_tag().unwrap(),
                format!("\"{}\"", hex::encode(md5::Md5::digest(&body)))
            );
        });
        assert_eq!(
            rt.block_on(get_bytes(&store.client(), "client-test", "k"))
                .unwrap(),
            body
        );
    }
}

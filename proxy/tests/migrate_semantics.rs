//! Migrate mode, request shape by request shape: the rows of the
//! semantics table in docs/proxy.md that are not plain GET/PUT/DELETE,
//! each through the real proxy against real stores (moto as the target,
//! which enforces conditional writes).

use ferry_harness::proxy as common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectIdentifier, Tag, Tagging};
use common::migrate::*;
use common::{RawRequest, Signer, authority, scrape, value};
use ferry_harness::{Store, get_bytes, list_keys};

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

async fn tags(c: &aws_sdk_s3::Client, key: &str) -> Vec<(String, String)> {
    let t = c
        .get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    t.tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// Before the one parser, `DELETE ?tagging` was a DeleteObject: it
/// journalled the key and deleted it on both stores.
#[test]
fn subresource_writes_promote_the_object_and_never_delete_it() {
    let s = setup_on(Store::moto().unwrap());
    let (src, tgt) = (s.source.client(), s.target.client());
    s.rt.block_on(async {
        for key in ["tagged", "to-tag", "acl", "copy-me"] {
            put(&src, key, format!("body of {key}").as_bytes()).await;
        }
        for key in ["tagged", "acl", "copy-me"] {
            src.put_object_tagging()
                .bucket(BUCKET)
                .key(key)
                .tagging(tagging(&[("team", "blue")]))
                .send()
                .await
                .unwrap();
        }
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        // A sub-resource read falls back to the source, like GET.
        assert_eq!(tags(&c, "tagged").await, [pair("team", "blue")]);

        c.delete_object_tagging()
            .bucket(BUCKET)
            .key("tagged")
            .send()
            .await
            .unwrap();
        assert_eq!(
            get_bytes(&c, BUCKET, "tagged").await.unwrap(),
            &b"body of tagged"[..]
        );
        assert_eq!(tags(&c, "tagged").await, []);
        // The object was promoted to the target, and the source was not
        // written: its object and its tags are as they were.
        assert_eq!(
            get_bytes(&tgt, BUCKET, "tagged").await.unwrap(),
            &b"body of tagged"[..]
        );
        assert_eq!(tags(&src, "tagged").await, [pair("team", "blue")]);

        c.put_object_tagging()
            .bucket(BUCKET)
            .key("to-tag")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await
            .unwrap();
        assert_eq!(tags(&c, "to-tag").await, [pair("k", "v")]);
        assert_eq!(tags(&tgt, "to-tag").await, [pair("k", "v")]);
        assert_eq!(tags(&src, "to-tag").await, []);

        // A change of ACL keeps the object's tags: they come along.
        c.put_object_acl()
            .bucket(BUCKET)
            .key("acl")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::Private)
            .send()
            .await
            .unwrap();
        assert_eq!(tags(&tgt, "acl").await, [pair("team", "blue")]);
        assert_eq!(
            get_bytes(&tgt, BUCKET, "acl").await.unwrap(),
            &b"body of acl"[..]
        );

        // A copy streamed across from the source keeps the tags, as
        // CopyObject does by default.
        c.copy_object()
            .bucket(BUCKET)
            .key("copied")
            .copy_source(format!("{BUCKET}/copy-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(tags(&tgt, "copied").await, [pair("team", "blue")]);

        // Nothing was deleted, so nothing was journalled.
        assert_eq!(journal_names(&s.target).await, Vec::<String>::new());
        assert_eq!(
            list_keys(&c, BUCKET).await.unwrap(),
            ["acl", "copied", "copy-me", "tagged", "to-tag"]
        );
    });
    let text = scrape(s.metrics_port);
    assert_eq!(
        value(
            &text,
            "ferry_proxy_migrate_promoted_objects_total{bucket=\"photos\"}"
        ),
        3.0,
        "{text}"
    );
}

/// Create-only commit protocols (Delta Lake, Iceberg, lock files) need
/// `If-None-Match: *` to fail on a key that is live on the source.
#[test]
fn conditional_writes_are_judged_against_both_sides() {
    let s = setup();
    let src = s.source.client();
    let etag = s.rt.block_on(async {
        put(&src, "src-only", b"from the source").await;
        put(&src, "src-upload", b"also from the source").await;
        etag(&src, "src-only").await
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        let cond_put = |key: &'static str, body: &'static [u8]| {
            c.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from_static(body))
        };
        let e = cond_put("src-only", b"x")
            .if_none_match("*")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(412), "{e:?}");
        let e = cond_put("src-only", b"x")
            .if_match("\"00000000000000000000000000000000\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(412), "{e:?}");
        assert_eq!(
            get_bytes(&c, BUCKET, "src-only").await.unwrap(),
            &b"from the source"[..]
        );
        // The source's ETag holds: the write lands, on the target.
        cond_put("src-only", b"replaced")
            .if_match(&etag)
            .send()
            .await
            .unwrap();
        assert_eq!(
            get_bytes(&c, BUCKET, "src-only").await.unwrap(),
            &b"replaced"[..]
        );
        assert_eq!(
            get_bytes(&s.target.client(), BUCKET, "src-only")
                .await
                .unwrap(),
            &b"replaced"[..]
        );
        assert_eq!(
            get_bytes(&src, BUCKET, "src-only").await.unwrap(),
            &b"from the source"[..]
        );
        // If-Match of a key on neither side.
        let e = cond_put("nowhere", b"x")
            .if_match(&etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
        // A new key: the first create wins, the second is refused.
        cond_put("lock", b"first")
            .if_none_match("*")
            .send()
            .await
            .unwrap();
        let e = cond_put("lock", b"second")
            .if_none_match("*")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(412), "{e:?}");
        assert_eq!(get_bytes(&c, BUCKET, "lock").await.unwrap(), &b"first"[..]);
        // A new upload (on the target) completing as a create of a key
        // live on the source: refused like the PUT.
        let id = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("src-upload")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        let part = c
            .upload_part()
            .bucket(BUCKET)
            .key("src-upload")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"uploaded"))
            .send()
            .await
            .unwrap();
        let e = c
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("src-upload")
            .upload_id(&id)
            .if_none_match("*")
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .parts(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(412), "{e:?}");
        assert_eq!(
            get_bytes(&c, BUCKET, "src-upload").await.unwrap(),
            &b"also from the source"[..]
        );
    });
}

/// Tools empty a bucket with DeleteObjects and each key's VersionId,
/// `null` included; an empty key must never become a bucket delete.
#[test]
fn deletes_by_null_version_work_and_empty_keys_delete_nothing() {
    let s = setup();
    let (src, tgt) = (s.source.client(), s.target.client());
    s.rt.block_on(async {
        put(&src, "a", b"a").await;
        put(&src, "b", b"b").await;
        put(&tgt, "c", b"c").await;
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        let obj = |k: &str, v: Option<&str>| {
            ObjectIdentifier::builder()
                .key(k)
                .set_version_id(v.map(str::to_owned))
                .build()
                .unwrap()
        };
        let out = delete_objects(&c, vec![obj("a", Some("null")), obj("c", Some("null"))])
            .await
            .unwrap();
        assert_eq!(out.deleted().len(), 2, "{out:?}");
        assert!(out.errors().is_empty(), "{out:?}");
        assert_eq!(list_keys(&c, BUCKET).await.unwrap(), ["b"]);

        let e = delete_objects(&c, vec![obj("b", None), obj("", None)])
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(400), "{e:?}");
        assert!(format!("{e:?}").contains("UserKeyMustBeSpecified"), "{e:?}");
        // Both buckets are there, and `b` too: nothing was deleted.
        for store in [&src, &tgt] {
            store.head_bucket().bucket(BUCKET).send().await.unwrap();
        }
        assert_eq!(get_bytes(&c, BUCKET, "b").await.unwrap(), &b"b"[..]);

        // A version id of one store's history is refused, never applied
        // to the current object.
        let e = c
            .delete_object()
            .bucket(BUCKET)
            .key("b")
            .version_id("3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(501), "{e:?}");
        assert_eq!(get_bytes(&c, BUCKET, "b").await.unwrap(), &b"b"[..]);
        c.delete_object()
            .bucket(BUCKET)
            .key("b")
            .version_id("null")
            .send()
            .await
            .unwrap();
        assert_eq!(list_keys(&c, BUCKET).await.unwrap(), Vec::<String>::new());
        assert_eq!(list_keys(&src, BUCKET).await.unwrap(), Vec::<String>::new());
    });
}

/// What migrate mode cannot do exactly it refuses, in words; and nothing
/// reaches the bucket around its routing.
#[test]
fn unknown_shapes_and_side_doors_are_refused() {
    let s = setup();
    s.rt.block_on(put(&s.source.client(), "k", b"v"));
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    let addr = authority(&s.proxy.http).to_owned();
    let alice = Signer {
        region: s.target.region.clone(),
        ..Signer::client(&common::ALICE)
    };
    s.rt.block_on(async {
        // The journal's bucket, even for a client with a grant on it.
        let e = c
            .list_objects_v2()
            .bucket(JOURNAL)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(403), "{e:?}");
    });
    // A bucket's sub-resource on an object path: no S3 operation.
    let r = alice
        .sign(RawRequest::new("GET", &addr, "/photos/k?policy"))
        .send(&addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (501, Some("NotImplemented")),
        "{}",
        r.text()
    );
    // A bucket read is not a listing: it reaches the target, whose answer
    // (no policy) is passed on.
    let r = alice
        .sign(RawRequest::new("GET", &addr, "/photos?policy"))
        .send(&addr);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.s3_code().as_deref(),
        Some("NoSuchBucketPolicy"),
        "{}",
        r.text()
    );
    // A routing header given twice.
    let r = alice
        .sign(
            RawRequest::new("PUT", &addr, "/photos/copy")
                .header("x-amz-copy-source", "photos/k")
                .header("x-amz-copy-source", "other/k"),
        )
        .send(&addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (400, Some("InvalidArgument")),
        "{}",
        r.text()
    );
    // The bucket's name as a host under a domain the proxy does not serve.
    let host = format!("photos.elsewhere.test:{}", addr.rsplit(':').next().unwrap());
    let r = alice.sign(RawRequest::new("GET", &host, "/k")).send(&addr);
    assert_eq!(
        (r.status, r.s3_code().as_deref()),
        (403, Some("AccessDenied")),
        "{}",
        r.text()
    );
    let text = scrape(s.metrics_port);
    assert!(
        text.contains("operation=\"GetBucketPolicy\""),
        "the bucket read is labelled as what it is: {text}"
    );
}

/// A GET and a HEAD with a version id of the source's history agree: the
/// target does not know it, so both are served by the source.
#[test]
fn version_reads_fall_back_and_get_and_head_agree() {
    let s = setup_on(Store::moto().unwrap());
    let src = s.source.client();
    let (v1, v2) = s.rt.block_on(async {
        enable_versioning(&src).await;
        let mut ids = Vec::new();
        for body in [&b"first version"[..], b"second"] {
            let out = src
                .put_object()
                .bucket(BUCKET)
                .key("v")
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .unwrap();
            ids.push(out.version_id().unwrap().to_owned());
        }
        (ids[0].clone(), ids[1].clone())
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        for (id, body) in [(&v1, &b"first version"[..]), (&v2, b"second")] {
            let g = c
                .get_object()
                .bucket(BUCKET)
                .key("v")
                .version_id(id)
                .send()
                .await
                .unwrap();
            assert_eq!(g.body.collect().await.unwrap().into_bytes(), body);
            let h = c
                .head_object()
                .bucket(BUCKET)
                .key("v")
                .version_id(id)
                .send()
                .await
                .unwrap();
            assert_eq!(h.content_length(), Some(body.len() as i64));
        }
    });
}

/// A bucket missing on the target is NoSuchBucket for every operation,
/// listings included; missing on the source (which must stay until
/// detach) it is an outage, a 503, never a 404 for a key.
#[test]
fn missing_buckets_are_no_such_bucket_on_the_target_and_503_on_the_source() {
    let s = setup();
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        s.source
            .client()
            .delete_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");
        let e = c.list_objects_v2().bucket(BUCKET).send().await.unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");

        s.target
            .client()
            .delete_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let e = c.list_objects_v2().bucket(BUCKET).send().await.unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
        assert!(format!("{e:?}").contains("NoSuchBucket"), "{e:?}");
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
        assert!(format!("{e:?}").contains("NoSuchBucket"), "{e:?}");
    });
}

/// A PUT that races a DELETE of the same key lands while the delete is
/// between its source and target steps, and clears the journal entry. The
/// delete then ends last: the key is deleted, and its entry must stand
/// again, or a copier that read the key before the delete could bring it
/// back unseen.
#[test]
fn a_put_racing_a_delete_leaves_the_delete_journalled() {
    let s = setup();
    s.rt.block_on(put(&s.source.client(), "raced", b"old"));
    s.migrate();
    let hold = s.proxy.hold("delete", "raced");
    let c = s.proxy.client(&s.target.region);
    let deleting = {
        let c = c.clone();
        s.rt.spawn(async move { c.delete_object().bucket(BUCKET).key("raced").send().await })
    };
    hold.wait_paused();
    s.rt.block_on(async {
        put(&c, "raced", b"new").await;
        // The write cleared the entry the delete had made.
        assert_eq!(journal_names(&s.target).await, Vec::<String>::new());
    });
    hold.release();
    s.rt.block_on(async {
        deleting.await.unwrap().unwrap();
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("raced")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
        assert_eq!(
            journal_names(&s.target).await,
            [ferry_control::journal::entry_name(BUCKET, "raced")]
        );
    });
}

/// A conditional DeleteObject (`If-Match`) is judged on the object clients
/// see: the source's, for a key not on the target yet.
#[test]
fn conditional_deletes_are_judged_against_both_sides() {
    let s = setup();
    let src = s.source.client();
    let etag = s.rt.block_on(async {
        put(&src, "cd", b"on the source").await;
        etag(&src, "cd").await
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        let e = c
            .delete_object()
            .bucket(BUCKET)
            .key("cd")
            .if_match("\"00000000000000000000000000000000\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(412), "{e:?}");
        assert_eq!(
            get_bytes(&c, BUCKET, "cd").await.unwrap(),
            &b"on the source"[..]
        );
        c.delete_object()
            .bucket(BUCKET)
            .key("cd")
            .if_match(&etag)
            .send()
            .await
            .unwrap();
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("cd")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
        assert!(
            get_bytes(&src, BUCKET, "cd").await.is_err(),
            "still on the source"
        );
    });
}

/// An upload begun on the source before the switch completes there, and
/// its object is copied to the target only in place of what the target
/// held before: a client's write that lands on the target while the
/// completion runs is newer, and stays.
#[test]
fn a_source_upload_completion_never_overwrites_a_newer_target_write() {
    let s = setup();
    let (src, tgt) = (s.source.client(), s.target.client());
    let (id, part) = s.rt.block_on(async {
        let id = src
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("mp")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        let p = src
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"the upload's bytes"))
            .send()
            .await
            .unwrap();
        // The copier's older copy on the target.
        put(&tgt, "mp", b"older copy").await;
        (id, p.e_tag().unwrap().to_owned())
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    let hold = s.proxy.hold("complete", "mp");
    let completing = {
        let c = c.clone();
        s.rt.spawn(async move {
            let part = aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(part)
                .build();
            complete(&c, "mp", &id, vec![part]).await
        })
    };
    hold.wait_paused();
    s.rt.block_on(put(&c, "mp", b"a client's newer write"));
    hold.release();
    s.rt.block_on(async {
        completing.await.unwrap();
        assert_eq!(
            get_bytes(&c, BUCKET, "mp").await.unwrap(),
            &b"a client's newer write"[..]
        );
        assert_eq!(
            get_bytes(&src, BUCKET, "mp").await.unwrap(),
            &b"the upload's bytes"[..]
        );
    });
}

/// Tools empty a bucket by listing its versions and deleting each with its
/// VersionId. While neither store keeps versions the merged version
/// listing is the union (every version `null`, the target's entry winning),
/// paged by key-marker and version-id-marker; a store that keeps versions
/// makes it a clear NotImplemented.
#[test]
fn a_bucket_is_emptied_by_its_versions() {
    let s = setup_on(Store::moto().unwrap());
    let (src, tgt) = (s.source.client(), s.target.client());
    s.rt.block_on(async {
        // Pages of two end on `b` and `d`, which both stores hold: moto
        // answers nothing after a key-marker it does not hold itself
        // (docs/stores.md).
        for k in ["a", "b", "c", "d", "e"] {
            put(&src, k, b"from the source").await;
        }
        put(&tgt, "b", b"newer, on the target").await;
        put(&tgt, "d", b"target").await;
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        let mut seen = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = c
                .list_object_versions()
                .bucket(BUCKET)
                .max_keys(2)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(id_marker.clone())
                .send()
                .await
                .unwrap();
            for v in page.versions() {
                seen.push((
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap().to_owned(),
                    v.size().unwrap(),
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_version_id_marker().map(str::to_owned);
        }
        let names: Vec<&str> = seen.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"], "{seen:?}");
        assert!(seen.iter().all(|(_, v, _)| v == "null"), "{seen:?}");
        // The target's `b` wins.
        assert_eq!(seen[1].2, b"newer, on the target".len() as i64);

        let objects: Vec<ObjectIdentifier> = seen
            .iter()
            .map(|(k, v, _)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .version_id(v)
                    .build()
                    .unwrap()
            })
            .collect();
        let out = delete_objects(&c, objects).await.unwrap();
        assert!(out.errors().is_empty(), "{out:?}");
        for store in [&c, &src, &tgt] {
            assert_eq!(
                list_keys(store, BUCKET).await.unwrap(),
                Vec::<String>::new()
            );
        }

        // A source that keeps versions: no merged history.
        enable_versioning(&src).await;
        put(&src, "v", b"versioned").await;
        let e = c
            .list_object_versions()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(501), "{e:?}");
        assert!(format!("{e:?}").contains("version histories"), "{e:?}");
    });
}

/// Detach removes the bucket's journal entries a page at a time, with one
/// DeleteObjects per page, and nothing of another bucket's.
#[test]
fn detach_purges_a_large_journal_in_batches() {
    let s = setup();
    s.migrate();
    let tgt = s.target.client();
    let entries = (0..1500).map(|i| {
        let name = ferry_control::journal::entry_name(BUCKET, &format!("k{i}"));
        (name, bytes::Bytes::from_static(b"{}"))
    });
    let others = (0..3).map(|i| {
        let name = ferry_control::journal::entry_name("other", &format!("k{i}"));
        (name, bytes::Bytes::from_static(b"{}"))
    });
    s.rt.block_on(ferry_harness::put_objects(
        &tgt,
        JOURNAL,
        entries.chain(others),
        32,
    ))
    .unwrap();
    assert_eq!(s.rt.block_on(journal_names(&s.target)).len(), 1503);
    s.proxy
        .ferryctl_ok(&["s3", "bucket", "migrate", "detach", BUCKET, "--force"]);
    let left = s.rt.block_on(journal_names(&s.target));
    assert_eq!(left.len(), 3, "{:?}", &left[..left.len().min(5)]);
    assert!(left.iter().all(|n| n.starts_with("other/")), "{left:?}");
}

/// An object too large for one PUT is handed across to the target as a
/// multipart upload, never left behind: a completed source upload, and a
/// copy whose copy source is only on the source. (The proxy's largest PUT
/// is lowered to 6 MiB for the test; S3's is 5 GiB.)
#[test]
fn objects_too_large_for_one_put_are_handed_across_in_parts() {
    let mut s = setup();
    s.proxy
        .env
        .push(("FERRY_TEST_MAX_PUT_BYTES".into(), (6u64 << 20).to_string()));
    s.proxy.kill9();
    s.proxy.spawn();
    let (src, tgt) = (s.source.client(), s.target.client());
    let first = vec![b'1'; 5 << 20];
    let second = vec![b'2'; 2 << 20];
    let whole: Vec<u8> = first.iter().chain(&second).copied().collect();
    let (id, parts) = s.rt.block_on(async {
        put(&src, "src-big", &whole).await;
        put(&tgt, "big", b"the copier's older copy").await;
        let id = src
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("big")
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_owned();
        let mut parts = Vec::new();
        for (n, body) in [(1, &first), (2, &second)] {
            let p = src
                .upload_part()
                .bucket(BUCKET)
                .key("big")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            parts.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        (id, parts)
    });
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        complete(&c, "big", &id, parts).await;
        c.copy_object()
            .bucket(BUCKET)
            .key("big-copy")
            .copy_source(format!("{BUCKET}/src-big"))
            .send()
            .await
            .unwrap();
        for key in ["big", "big-copy"] {
            assert!(
                get_bytes(&tgt, BUCKET, key).await.unwrap() == whole,
                "{key} is not whole on the target"
            );
            let head = tgt
                .head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap();
            assert!(
                head.e_tag().unwrap().contains('-'),
                "{key} was not written in parts: {:?}",
                head.e_tag()
            );
        }
    });
}

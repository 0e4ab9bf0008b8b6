//! Migrate mode end to end, through the real proxy with aws-sdk-s3, over a
//! Garage source and a moto target: reads fall back to the source, deletes
//! reach both sides and are journalled, a source that is down is a 503
//! (never a 404), copies and uploads cross the switch.

use ferry_harness::proxy as common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedPart, Delete, ObjectIdentifier};
use common::migrate::*;
use common::{scrape, value};
use ferry_control::journal;
use ferry_harness::{Store, get_bytes, list_keys};

#[test]
fn reads_fall_back_to_the_source_and_deletes_reach_both_sides() {
    let s = setup();
    let (src, tgt) = (s.source.client(), s.target.client());
    s.rt.block_on(async {
        put(&src, "only-source", b"from the source").await;
        put(&src, "both", b"old, on the source").await;
        put(&tgt, "both", b"new, on the target").await;
        put(&tgt, "only-target", b"target").await;
    });
    s.proxy.set_mode(BUCKET, "forward");
    s.proxy.set_mode(BUCKET, "migrate");
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        // The target first; the source on NoSuchKey; unchanged bytes.
        assert_eq!(
            get_bytes(&c, BUCKET, "only-source").await.unwrap(),
            &b"from the source"[..]
        );
        assert_eq!(
            get_bytes(&c, BUCKET, "both").await.unwrap(),
            &b"new, on the target"[..]
        );
        assert_eq!(
            get_bytes(&c, BUCKET, "only-target").await.unwrap(),
            &b"target"[..]
        );
        // HEAD, Range and conditions hold across the fallback.
        let h = c
            .head_object()
            .bucket(BUCKET)
            .key("only-source")
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_length(), Some(15));
        let etag = h.e_tag().unwrap().to_owned();
        let r = c
            .get_object()
            .bucket(BUCKET)
            .key("only-source")
            .range("bytes=5-7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.body.collect().await.unwrap().into_bytes(), &b"the"[..]);
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("only-source")
            .if_none_match(&etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(304), "{e:?}");
        // partNumber and the other conditions, across the fallback too.
        let src_mp = src
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("parts")
            .send()
            .await
            .unwrap();
        let id = src_mp.upload_id().unwrap();
        let mut done = Vec::new();
        for (n, body) in [(1, vec![b'1'; 5 << 20]), (2, b"second part".to_vec())] {
            let p = src
                .upload_part()
                .bucket(BUCKET)
                .key("parts")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
            done.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        complete(&src, "parts", id, done).await;
        let p2 = c
            .get_object()
            .bucket(BUCKET)
            .key("parts")
            .part_number(2)
            .send()
            .await
            .unwrap();
        assert_eq!(
            p2.body.collect().await.unwrap().into_bytes(),
            &b"second part"[..]
        );
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("only-source")
            .if_match("\"0000\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(412), "{e:?}");
        let later = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
        let e = c
            .head_object()
            .bucket(BUCKET)
            .key("only-source")
            .if_modified_since(later)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(304), "{e:?}");
        // ListMultipartUploads shows both sides' uploads.
        let on_source = src
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("up-s")
            .send()
            .await
            .unwrap();
        let on_target = tgt
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("up-t")
            .send()
            .await
            .unwrap();
        let ups = c
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let mut ids: Vec<(&str, &str)> = ups
            .uploads()
            .iter()
            .map(|u| (u.key().unwrap(), u.upload_id().unwrap()))
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                ("up-s", on_source.upload_id().unwrap()),
                ("up-t", on_target.upload_id().unwrap())
            ]
        );
        // Missing on both: a real 404.
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("nowhere")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
        assert!(e.into_service_error().is_no_such_key());

        // A delete reaches both sides and is journalled first.
        c.delete_object()
            .bucket(BUCKET)
            .key("both")
            .send()
            .await
            .unwrap();
        assert!(
            !list_keys(&src, BUCKET)
                .await
                .unwrap()
                .contains(&"both".to_owned())
        );
        assert!(
            !list_keys(&tgt, BUCKET)
                .await
                .unwrap()
                .contains(&"both".to_owned())
        );
        let name = journal::entry_name(BUCKET, "both");
        assert_eq!(journal_names(&s.target).await, std::slice::from_ref(&name));
        let entry = get_bytes(&tgt, JOURNAL, &name).await.unwrap();
        let entry = journal::Entry::parse(&name, &entry).unwrap();
        assert_eq!(
            (entry.bucket.as_str(), entry.key.as_str()),
            (BUCKET, "both")
        );
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("both")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404));

        // Writing the key again makes it the client's: the entry goes.
        put(&c, "both", b"written again").await;
        assert!(journal_names(&s.target).await.is_empty());
        assert_eq!(
            get_bytes(&tgt, BUCKET, "both").await.unwrap(),
            &b"written again"[..]
        );

        // DeleteObjects: per-key results, gone from both sides.
        let objects = ["only-source", "only-target", "both", "never-was", "parts"]
            .iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
            .collect::<Vec<_>>();
        let out = c
            .delete_objects()
            .bucket(BUCKET)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
        deleted.sort();
        assert_eq!(
            deleted,
            ["both", "never-was", "only-source", "only-target", "parts"]
        );
        assert!(out.errors().is_empty(), "{:?}", out.errors());
        assert!(list_keys(&src, BUCKET).await.unwrap().is_empty());
        assert!(list_keys(&tgt, BUCKET).await.unwrap().is_empty());
        assert_eq!(journal_names(&s.target).await.len(), 5);
    });

    // Reads by who served them: the operator's "% already migrated".
    let m = scrape(s.metrics_port);
    let served = |by: &str| {
        value(
            &m,
            &format!("ferry_proxy_migrate_reads_total{{bucket=\"{BUCKET}\",served_by=\"{by}\"}}"),
        )
    };
    assert!(served("target") >= 2.0, "{m}");
    assert!(served("source") >= 6.0, "{m}");
    // Detach removes the bucket's journal entries.
    s.proxy
        .ferryctl_ok(&["s3", "bucket", "migrate", "detach", BUCKET, "--force"]);
    assert!(s.rt.block_on(journal_names(&s.target)).is_empty());
}

/// A fallback is the target's 404 and then the source: both on pooled
/// connections, so that it costs round trips, not handshakes. The proxy's
/// own requests count in the same metric as the requests Pingora proxies.
/// A Garage target: moto's server closes each connection after its answer.
#[test]
fn fallbacks_reuse_their_upstream_connections_after_a_404() {
    let s = setup_between(Store::garage().unwrap(), Store::garage().unwrap());
    s.rt.block_on(put(&s.source.client(), "only-source", b"from the source"));
    s.migrate();
    let c = s.proxy.client(&s.target.region);
    const READS: usize = 20;
    s.rt.block_on(async {
        for _ in 0..READS {
            // A GET's 404 has a body to read to its end; a HEAD's has none.
            let got = get_bytes(&c, BUCKET, "only-source").await.unwrap();
            assert_eq!(got, &b"from the source"[..]);
            let h = c.head_object().bucket(BUCKET).key("only-source");
            assert_eq!(h.send().await.unwrap().content_length(), Some(15));
        }
    });
    let m = scrape(s.metrics_port);
    let conns = |upstream: &str, reused: bool| {
        value(
            &m,
            &format!(
                "ferry_proxy_upstream_connections_total{{upstream=\"{upstream}\",reused=\"{reused}\"}}"
            ),
        )
    };
    for upstream in ["target", "source"] {
        let (reused, opened) = (conns(upstream, true), conns(upstream, false));
        // Each read asked the target, then the source.
        assert!(reused + opened >= (2 * READS) as f64, "{upstream}\n{m}");
        // One connection each, and a little slack. Before `Fetcher::release`
        // let the pool's idle watcher start, 8 to 16 of the source's were
        // new.
        assert!(opened <= 3.0, "{upstream}: {opened} opened\n{m}");
    }
}

#[test]
fn a_source_that_is_down_is_503_never_404() {
    let mut s = setup();
    s.rt.block_on(async {
        put(&s.source.client(), "not-yet", b"only on the source").await;
        put(&s.target.client(), "migrated", b"on the target").await;
    });
    s.proxy.set_mode(BUCKET, "forward");
    s.proxy.set_mode(BUCKET, "migrate");
    s.source.stop();
    let c = s.proxy.client(&s.target.region);
    s.rt.block_on(async {
        let e = c
            .get_object()
            .bucket(BUCKET)
            .key("not-yet")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");
        let e = c
            .head_object()
            .bucket(BUCKET)
            .key("not-yet")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");
        // A migrated key does not need the source.
        assert_eq!(
            get_bytes(&c, BUCKET, "migrated").await.unwrap(),
            &b"on the target"[..]
        );
        // A delete cannot reach the source: refused, nothing deleted.
        let e = c
            .delete_object()
            .bucket(BUCKET)
            .key("migrated")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(503), "{e:?}");
        assert_eq!(
            get_bytes(&c, BUCKET, "migrated").await.unwrap(),
            &b"on the target"[..]
        );
    });
}

#[test]
fn copies_and_uploads_cross_the_switch() {
    let s = setup();
    let (src, tgt) = (s.source.client(), s.target.client());
    let c = s.proxy.client(&s.target.region);
    let part = |n: u8| vec![n; 5 << 20];
    s.rt.block_on(async {
        put(&src, "copy-me", b"source object").await;
        // The copier's older copy of K, on the target.
        put(&src, "k", b"v1").await;
        put(&tgt, "k", b"v1").await;
    });
    // An upload of K=v2 begins in forward mode (on the source).
    s.proxy.set_mode(BUCKET, "forward");
    let fwd = s.proxy.client(&s.source.region);
    let upload = s.rt.block_on(async {
        let u = fwd
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap();
        u.upload_id().unwrap().to_owned()
    });
    let p1 = s.rt.block_on(async {
        fwd.upload_part()
            .bucket(BUCKET)
            .key("k")
            .upload_id(&upload)
            .part_number(1)
            .body(ByteStream::from(part(1)))
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .to_owned()
    });
    s.proxy.set_mode(BUCKET, "migrate");
    let show = s
        .proxy
        .ferryctl_ok(&["s3", "bucket", "migrate", "show", BUCKET, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["source_uploads_open"], 1, "{show}");

    s.rt.block_on(async {
        // The second part and the completion go to the source...
        let p2 = c
            .upload_part()
            .bucket(BUCKET)
            .key("k")
            .upload_id(&upload)
            .part_number(2)
            .body(ByteStream::from(b"tail".to_vec()))
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .to_owned();
        let parts = [(1, p1), (2, p2)]
            .into_iter()
            .map(|(n, e)| CompletedPart::builder().part_number(n).e_tag(e).build())
            .collect::<Vec<_>>();
        complete(&c, "k", &upload, parts).await;
        // ...and the target holds v2 before the client hears of it: no
        // stale v1 is ever served.
        let mut v2 = part(1);
        v2.extend_from_slice(b"tail");
        assert_eq!(get_bytes(&c, BUCKET, "k").await.unwrap(), v2);
        assert_eq!(get_bytes(&tgt, BUCKET, "k").await.unwrap(), v2);
        assert_eq!(get_bytes(&src, BUCKET, "k").await.unwrap(), v2);
    });
    // The source upload is done: `show` no longer counts it.
    let show = s
        .proxy
        .ferryctl_ok(&["s3", "bucket", "migrate", "show", BUCKET, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["source_uploads_open"], 0, "{show}");
    s.rt.block_on(async {
        // An upload begun after the switch lands on the target.
        let u = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("new")
            .send()
            .await
            .unwrap();
        let id = u.upload_id().unwrap();
        let e = c
            .upload_part()
            .bucket(BUCKET)
            .key("new")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from(b"small".to_vec()))
            .send()
            .await
            .unwrap();
        let parts = vec![
            CompletedPart::builder()
                .part_number(1)
                .e_tag(e.e_tag().unwrap())
                .build(),
        ];
        complete(&c, "new", id, parts).await;
        assert_eq!(get_bytes(&tgt, BUCKET, "new").await.unwrap(), &b"small"[..]);
        assert!(
            !list_keys(&src, BUCKET)
                .await
                .unwrap()
                .contains(&"new".to_owned())
        );

        // An upload begun on the source in the instant of the switch (not
        // in the snapshot) is found there, not lost.
        let late = src
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("late")
            .send()
            .await
            .unwrap();
        let late_id = late.upload_id().unwrap();
        let e = c
            .upload_part()
            .bucket(BUCKET)
            .key("late")
            .upload_id(late_id)
            .part_number(1)
            .body(ByteStream::from(b"late part".to_vec()))
            .send()
            .await
            .unwrap();
        let parts = vec![
            CompletedPart::builder()
                .part_number(1)
                .e_tag(e.e_tag().unwrap())
                .build(),
        ];
        complete(&c, "late", late_id, parts).await;
        assert_eq!(
            get_bytes(&c, BUCKET, "late").await.unwrap(),
            &b"late part"[..]
        );
        assert_eq!(
            get_bytes(&tgt, BUCKET, "late").await.unwrap(),
            &b"late part"[..]
        );

        // UploadPartCopy into a target upload, from a copy source that is
        // only on the source: the range is streamed across.
        let u = c
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("assembled")
            .send()
            .await
            .unwrap();
        let id = u.upload_id().unwrap();
        let pc = c
            .upload_part_copy()
            .bucket(BUCKET)
            .key("assembled")
            .upload_id(id)
            .part_number(1)
            .copy_source(format!("{BUCKET}/copy-me"))
            .copy_source_range("bytes=7-12")
            .send()
            .await
            .unwrap();
        let etag = pc
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .unwrap()
            .to_owned();
        let parts = vec![CompletedPart::builder().part_number(1).e_tag(etag).build()];
        complete(&c, "assembled", id, parts).await;
        assert_eq!(
            get_bytes(&tgt, BUCKET, "assembled").await.unwrap(),
            &b"object"[..]
        );

        // UploadPartCopy into a SOURCE upload reads its copy source as a
        // client would, target first: a key written since the switch is
        // only on the target, and one overwritten since is newer there.
        put(&src, "stale", b"old-value").await;
        put(&c, "stale", b"new-stale").await;
        put(&c, "fresh", &part(9)).await;
        let joined = src
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("joined")
            .send()
            .await
            .unwrap();
        let jid = joined.upload_id().unwrap();
        let mut parts = Vec::new();
        for (n, from, range) in [(1, "fresh", None), (2, "stale", Some("bytes=4-8"))] {
            let out = c
                .upload_part_copy()
                .bucket(BUCKET)
                .key("joined")
                .upload_id(jid)
                .part_number(n)
                .copy_source(format!("{BUCKET}/{from}"))
                .set_copy_source_range(range.map(str::to_owned))
                .send()
                .await
                .unwrap_or_else(|e| panic!("UploadPartCopy from {from}: {e:?}"));
            let etag = out.copy_part_result().and_then(|r| r.e_tag()).unwrap();
            parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
        }
        complete(&c, "joined", jid, parts).await;
        let mut want = part(9);
        want.extend_from_slice(b"stale");
        assert!(
            get_bytes(&c, BUCKET, "joined").await.unwrap() == want,
            "the joined object is not fresh + the target's stale[4..=8]"
        );

        // A copy whose source object is only on the source is streamed
        // across, with its metadata, or the request's on REPLACE.
        c.copy_object()
            .bucket(BUCKET)
            .key("copied")
            .copy_source(format!("{BUCKET}/copy-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            get_bytes(&tgt, BUCKET, "copied").await.unwrap(),
            &b"source object"[..]
        );
        c.copy_object()
            .bucket(BUCKET)
            .key("copied-again")
            .copy_source(format!("{BUCKET}/copied"))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .metadata("color", "blue")
            .send()
            .await
            .unwrap();
        let h = tgt
            .head_object()
            .bucket(BUCKET)
            .key("copied-again")
            .send()
            .await
            .unwrap();
        assert_eq!(
            h.metadata()
                .and_then(|m| m.get("color"))
                .map(String::as_str),
            Some("blue")
        );
        assert_eq!(
            get_bytes(&tgt, BUCKET, "copied-again").await.unwrap(),
            &b"source object"[..]
        );
    });
}

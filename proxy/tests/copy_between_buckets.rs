//! CopyObject and UploadPartCopy from one attached bucket into another, in
//! every mode, byte for byte: in ready mode on the target, in forward mode
//! on the buckets' shared source, in migrate mode target first with the
//! copy source bucket's own source behind it (streamed across when the
//! object is only there).

use ferry_harness::proxy as common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::migrate::{JOURNAL, status};
use common::*;
use ferry_harness::{Store, get_bytes};

const DEST: &str = "photos";
const FROM: &str = "albums";
/// Not attached: on the target only.
const OTHER: &str = "others";

async fn copy_both_ways(c: &aws_sdk_s3::Client, from_key: &str, tag: &str) {
    c.copy_object()
        .bucket(DEST)
        .key(format!("copy-{tag}"))
        .copy_source(format!("{FROM}/{from_key}"))
        .send()
        .await
        .unwrap();
    let id = c
        .create_multipart_upload()
        .bucket(DEST)
        .key(format!("part-{tag}"))
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let part = c
        .upload_part_copy()
        .bucket(DEST)
        .key(format!("part-{tag}"))
        .upload_id(&id)
        .part_number(1)
        .copy_source(format!("{FROM}/{from_key}"))
        .send()
        .await
        .unwrap();
    let etag = part.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    c.complete_multipart_upload()
        .bucket(DEST)
        .key(format!("part-{tag}"))
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[test]
fn copies_between_attached_buckets_in_every_mode() {
    let source = Store::garage().unwrap();
    let target = Store::moto().unwrap();
    for b in [DEST, FROM] {
        source.create_bucket(b).unwrap();
        target.create_bucket(b).unwrap();
    }
    target.create_bucket(JOURNAL).unwrap();
    target.create_bucket(OTHER).unwrap();
    let proxy = Proxy::start_with(&target, DEST, &format!("journal_bucket = \"{JOURNAL}\"\n"));
    // ALICE may write both buckets.
    write_private(
        &proxy.dir.path().join("users.toml"),
        &format!(
            "[[user]]\nname = \"{}\"\naccess_key = \"{}\"\nsecret = \"{}\"\n[user.buckets]\n{DEST} = \"write\"\n{FROM} = \"write\"\n{OTHER} = \"read\"\n",
            ALICE.name, ALICE.access_key, ALICE.secret
        ),
    );
    proxy.hup();
    proxy.attach(DEST, &source);
    proxy.attach(FROM, &source);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = proxy.client(&target.region);
    // The grant on the second bucket is live once the users file is read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rt
        .block_on(c.list_objects_v2().bucket(FROM).send())
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "no grant on {FROM}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for mode in ["ready", "forward", "migrate"] {
        if mode != "ready" {
            proxy.set_mode(DEST, mode);
            proxy.set_mode(FROM, mode);
        }
        // Garage copies a part of at least 5 MiB only.
        let mut body = vec![b'x'; 5 << 20];
        body.extend(format!("copied across buckets in {mode} mode").bytes());
        rt.block_on(async {
            c.put_object()
                .bucket(FROM)
                .key(format!("orig-{mode}"))
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            copy_both_ways(&c, &format!("orig-{mode}"), mode).await;
            for key in [format!("copy-{mode}"), format!("part-{mode}")] {
                assert_eq!(
                    get_bytes(&c, DEST, &key).await.unwrap(),
                    body,
                    "{mode} {key}"
                );
            }
            // An unattached copy source is on the target: a bucket in
            // forward mode, whose writes go to the source, cannot copy it.
            let e = c
                .copy_object()
                .bucket(DEST)
                .key("from-other")
                .copy_source(format!("{OTHER}/k"))
                .send()
                .await;
            if mode == "forward" {
                let e = e.unwrap_err();
                assert_eq!(status(&e), Some(501), "{e:?}");
                assert!(
                    format!("{e:?}").contains("not where this bucket's writes go"),
                    "{e:?}"
                );
            } else {
                // On the target, where it is looked up: no such key.
                assert_eq!(status(&e.unwrap_err()), Some(404), "{mode}");
            }
            // Where the mode writes: the copies are on that store.
            let store = if mode == "forward" { &source } else { &target };
            assert_eq!(
                get_bytes(&store.client(), DEST, &format!("copy-{mode}"))
                    .await
                    .unwrap(),
                body,
                "{mode}"
            );
        });
    }
    // Migrate mode: a copy source only on the copy source bucket's source
    // is streamed across to the target.
    let mut old = vec![b'o'; 5 << 20];
    old.extend(b"only on the source of the copy source bucket");
    rt.block_on(async {
        source
            .client()
            .put_object()
            .bucket(FROM)
            .key("old")
            .body(ByteStream::from(old.clone()))
            .send()
            .await
            .unwrap();
        copy_both_ways(&c, "old", "old").await;
        for key in ["copy-old", "part-old"] {
            assert_eq!(
                get_bytes(&target.client(), DEST, key).await.unwrap(),
                old,
                "{key}"
            );
        }
        // A copy source on neither side is the client's NoSuchKey.
        let e = c
            .copy_object()
            .bucket(DEST)
            .key("nowhere")
            .copy_source(format!("{FROM}/missing"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), Some(404), "{e:?}");
    });
}

//! One-time probes of the destination, before any object is copied:
//!
//! - **Key fidelity.** Some stores rename keys (Garage stores `/lead` as
//!   `lead`). Writing such a key could replace a different object, so a
//!   source key the destination would store under another name is never
//!   written; it fails with the class `unrepresentable`.
//! - **Conditional writes.** The no-lost-write guarantee rests on
//!   `If-None-Match: *` (PutObject and CompleteMultipartUpload) and
//!   `If-Match`. A store that ignores them is refused unless the operator
//!   passes `--allow-overwrite`.
//! - **Conditional delete.** `If-Match` on DeleteObject, so that the
//!   delete-journal reconcile removes a resurrected copy only while it is
//!   still the copier's own write (moto honours it; Garage 2.5 does not).
//! - **Tagging**, so tags are copied where both stores have them.
//!
//! Probe objects live under a random `.ferry-probe-*` prefix and are removed
//! afterwards.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use rand::Rng;

use crate::s3::{ErrorClass, S3Error};

const PREFIX: &str = ".ferry-probe-";

/// What the destination can do, as probed.
#[derive(Debug, Clone)]
pub struct Caps {
    pub leading_slash: bool,
    pub double_slash: bool,
    pub dot_segments: bool,
    pub if_none_match_put: bool,
    pub if_none_match_complete: bool,
    pub if_match_put: bool,
    /// `If-Match` on DeleteObject refuses a delete of another version.
    pub if_match_delete: bool,
    pub tagging: bool,
}

impl Caps {
    /// What a dry run assumes: it writes nothing, so it cannot probe.
    pub fn assumed() -> Self {
        Self {
            leading_slash: true,
            double_slash: true,
            dot_segments: true,
            if_none_match_put: true,
            if_none_match_complete: true,
            if_match_put: true,
            if_match_delete: true,
            tagging: true,
        }
    }

    /// Why `key` cannot be stored as is on the destination, if it cannot.
    pub fn unrepresentable(&self, key: &str) -> Option<&'static str> {
        if !self.leading_slash && key.starts_with('/') {
            return Some(
                "the destination drops a leading '/' from keys; writing it could replace another key",
            );
        }
        if !self.double_slash && key.contains("//") {
            return Some(
                "the destination folds '//' in keys; writing it could replace another key",
            );
        }
        if !self.dot_segments && key.split('/').any(|s| s == "." || s == "..") {
            return Some(
                "the destination resolves '.' and '..' segments in keys; writing it could replace another key",
            );
        }
        None
    }

    pub fn conditional(&self) -> bool {
        self.if_none_match_put && self.if_none_match_complete && self.if_match_put
    }

    /// One sentence for the operator on what is missing.
    pub fn conditional_gap(&self) -> String {
        let mut missing = Vec::new();
        if !self.if_none_match_put {
            missing.push("If-None-Match on PutObject");
        }
        if !self.if_none_match_complete {
            missing.push("If-None-Match on CompleteMultipartUpload");
        }
        if !self.if_match_put {
            missing.push("If-Match on PutObject");
        }
        match missing.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

pub async fn probe(client: &Client, bucket: &str) -> Result<Caps, S3Error> {
    reap_stale(client, bucket).await;
    let id: u64 = rand::rng().random();
    let base = format!("{PREFIX}{id:016x}");
    let result = run(client, bucket, &base).await;
    cleanup(client, bucket, &base).await;
    result
}

async fn put(client: &Client, bucket: &str, key: &str) -> Result<String, S3Error> {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"ferry probe"))
        .send()
        .await
        .map_err(S3Error::from_sdk)?;
    Ok(out.e_tag().unwrap_or_default().to_owned())
}

/// Whether a write the condition should refuse was refused.
fn refused<T>(r: Result<T, S3Error>) -> Result<bool, S3Error> {
    match r {
        Ok(_) => Ok(false),
        Err(e) if e.is(ErrorClass::PreconditionFailed) => Ok(true),
        // A store that rejects the header outright does not honour it.
        Err(e) if e.is(ErrorClass::NotImplemented) || e.is(ErrorClass::BadRequest) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `key` is listed under exactly that name after a PUT.
async fn kept_exactly(client: &Client, bucket: &str, key: &str) -> Result<bool, S3Error> {
    put(client, bucket, key).await?;
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(key)
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .map_err(S3Error::from_sdk)?;
    Ok(out
        .contents()
        .iter()
        .filter_map(|o| o.key().and_then(super::entries::url_decode))
        .any(|k| k == key))
}

async fn run(client: &Client, bucket: &str, base: &str) -> Result<Caps, S3Error> {
    let leading_slash = kept_exactly(client, bucket, &format!("/{base}/lead")).await?;
    let double_slash = kept_exactly(client, bucket, &format!("{base}/a//b")).await?;
    let dot_segments = kept_exactly(client, bucket, &format!("{base}/d/./e")).await?
        && kept_exactly(client, bucket, &format!("{base}/d/../f")).await?;

    let key = format!("{base}/cond");
    put(client, bucket, &key).await?;
    let second = client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .map_err(S3Error::from_sdk);
    let if_none_match_put = refused(second)?;
    let wrong = client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .if_match("\"00000000000000000000000000000000\"")
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .map_err(S3Error::from_sdk);
    let if_match_put = refused(wrong)?;
    let if_none_match_complete = probe_complete(client, bucket, &key).await?;

    let tagging = probe_tagging(client, bucket, &key).await;
    let if_match_delete = probe_delete(client, bucket, &format!("{base}/del")).await?;
    Ok(Caps {
        leading_slash,
        double_slash,
        dot_segments,
        if_none_match_put,
        if_none_match_complete,
        if_match_put,
        if_match_delete,
        tagging,
    })
}

/// Whether a DeleteObject with a wrong `If-Match` is refused. A store that
/// ignores the header deletes the probe object instead, which is how we tell.
async fn probe_delete(client: &Client, bucket: &str, key: &str) -> Result<bool, S3Error> {
    put(client, bucket, key).await?;
    let wrong = client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await
        .map_err(S3Error::from_sdk);
    if !refused(wrong)? {
        return Ok(false);
    }
    // Refused: make sure the object really is still there (a store could
    // answer 412 and delete anyway).
    let still = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(S3Error::from_sdk);
    match still {
        Ok(_) => Ok(true),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn probe_complete(client: &Client, bucket: &str, key: &str) -> Result<bool, S3Error> {
    let create = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(S3Error::from_sdk)?;
    let upload_id = create.upload_id().unwrap_or_default().to_owned();
    let part = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"mpu"))
        .send()
        .await
        .map_err(S3Error::from_sdk);
    let result = match part {
        Ok(p) => {
            let done = client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .parts(
                            CompletedPart::builder()
                                .part_number(1)
                                .set_e_tag(p.e_tag().map(str::to_owned))
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(S3Error::from_sdk);
            refused(done)
        }
        Err(e) => Err(e),
    };
    let _ = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await;
    result
}

async fn probe_tagging(client: &Client, bucket: &str, key: &str) -> bool {
    let tagging = Tagging::builder()
        .tag_set(
            Tag::builder()
                .key("ferry")
                .value("probe")
                .build()
                .expect("tag"),
        )
        .build()
        .expect("tagging");
    client
        .put_object_tagging()
        .bucket(bucket)
        .key(key)
        .tagging(tagging)
        .send()
        .await
        .is_ok()
}

/// Probe objects older than this were left by a process that died while
/// probing; younger ones may belong to a copier running on another host.
const STALE_SECS: i64 = 3600;

async fn reap_stale(client: &Client, bucket: &str) {
    let now = aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now()).secs();
    delete_under(client, bucket, PREFIX, |o| {
        o.last_modified()
            .is_some_and(|t| now - t.secs() > STALE_SECS)
    })
    .await;
}

/// Removes every probe object of this run.
async fn cleanup(client: &Client, bucket: &str, base: &str) {
    delete_under(client, bucket, base, |_| true).await;
}

/// Deletes the objects under `prefix` that `pick` selects, under whatever
/// name the store kept them (with or without a leading `/`). Best effort:
/// a probe object left behind is harmless and reaped by a later run.
async fn delete_under(
    client: &Client,
    bucket: &str,
    prefix: &str,
    pick: impl Fn(&aws_sdk_s3::types::Object) -> bool,
) {
    for prefix in [prefix.to_owned(), format!("/{prefix}")] {
        let Ok(out) = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .send()
            .await
        else {
            continue;
        };
        for o in out.contents().iter().filter(|o| pick(o)) {
            if let Some(k) = o.key() {
                let _ = client.delete_object().bucket(bucket).key(k).send().await;
            }
        }
    }
}

//! S3 clients for harness stores, and async helpers used by many tests.

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, EncodingType};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::urlencoding::form_decode;

/// How long one attempt of a harness request may take. A store that never
/// answers (Garage has left a request unanswered on an idle connection under
/// load) would otherwise hang the test with no error; with it the attempt is
/// retried, or the test fails naming the request. Far above any answer a
/// test waits for, debug-built servers on a busy machine included.
pub(crate) const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The harness's timeouts: [`ATTEMPT_TIMEOUT`] per attempt.
pub(crate) fn timeouts() -> aws_sdk_s3::config::timeout::TimeoutConfig {
    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// Client config: path style, static credentials, checksums only when
/// required, [`timeouts`].
pub(crate) fn config(
    endpoint: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> aws_sdk_s3::Config {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "ferry-harness",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(timeouts())
        .build()
}

/// PUT every `(key, body)`, at most `concurrency` at a time. The first error
/// (naming its key) is returned.
pub async fn put_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    objects: impl IntoIterator<Item = (String, Bytes)>,
    concurrency: usize,
) -> anyhow::Result<()> {
    futures::stream::iter(objects)
        .map(|(key, body)| async move {
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("PUT {bucket}/{key:?}: {}", DisplayErrorContext(e)))
                .map(drop)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await
}

/// `bucket/key` written as a multipart upload of `parts`, in order.
pub async fn put_multipart(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    parts: &[Bytes],
) -> anyhow::Result<()> {
    let up = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "CreateMultipartUpload {bucket}/{key}: {}",
                DisplayErrorContext(e)
            )
        })?;
    let id = up.upload_id().context("no upload id")?;
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "UploadPart {n} of {bucket}/{key}: {}",
                    DisplayErrorContext(e)
                )
            })?;
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(r.e_tag().map(str::to_owned))
                .build(),
        );
    }
    complete_upload(client, bucket, key, id, done).await
}

/// CompleteMultipartUpload of `bucket/key`, upload `id`, with `parts`.
pub async fn complete_upload(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> anyhow::Result<()> {
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "CompleteMultipartUpload {bucket}/{key}: {}",
                DisplayErrorContext(e)
            )
        })
        .map(drop)
}

/// All keys in `bucket`, in listing order: ListObjectsV2, paginated, with
/// `encoding-type=url` and decoded, so that keys with control characters,
/// unicode, `%` or `+` come back exactly.
pub async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("LIST {bucket}: {}", DisplayErrorContext(e)))?;
        for obj in page.contents() {
            let raw = obj.key().context("listed object without a key")?;
            keys.push(form_decode(raw)?);
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => return Ok(keys),
        }
    }
}

/// The whole body of `bucket/key`.
pub async fn get_bytes(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Bytes> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {bucket}/{key:?}: {}", DisplayErrorContext(e)))?;
    let body = out
        .body
        .collect()
        .await
        .with_context(|| format!("read body of {bucket}/{key:?}"))?;
    Ok(body.into_bytes())
}

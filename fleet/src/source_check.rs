//! Vetting a source at attach time: does its bucket exist, and do the given
//! credentials reach it?

use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::SdkError;
use aws_smithy_http_client::tls;

use crate::state::{Bucket, SourceUpload};

/// Checks a bucket's source before it is attached. The error is one line
/// for the operator. (`async_trait`, so that [`super::Admin`] can hold any
/// check as `Box<dyn SourceCheck>`.)
#[async_trait]
pub trait SourceCheck: Send + Sync {
    async fn check(&self, bucket: &Bucket) -> Result<(), String>;
    /// The multipart uploads in flight on the source (ListMultipartUploads,
    /// every page), snapshotted when migrate mode is set.
    async fn uploads(&self, bucket: &Bucket) -> Result<Vec<SourceUpload>, String>;
}

/// Of the source uploads snapshotted when migrate mode was set, those the
/// source still has open (completed or aborted ones are done with it).
pub async fn uploads_open(check: &dyn SourceCheck, b: &Bucket) -> Result<usize, String> {
    if b.source_uploads.is_empty() {
        return Ok(0);
    }
    let live = check.uploads(b).await?;
    Ok(b.source_uploads
        .iter()
        .filter(|u| live.iter().any(|l| l.upload_id == u.upload_id))
        .count())
}

/// Detach from migrate mode waits for the uploads that still go to the
/// source: their objects would be lost with it. Both ways to detach (a
/// proxy's socket, a fleet's etcd) ask this.
pub async fn refuse_open_uploads(
    check: &dyn SourceCheck,
    b: &Bucket,
) -> Result<(), ferry_control::socket::server::Refusal> {
    if b.mode != ferry_control::Mode::Migrate {
        return Ok(());
    }
    let refused = |why: String| {
        ferry_control::socket::server::Refusal::new(
            409,
            ferry_control::codes::DETACH_REFUSED,
            format!(
                "bucket {}: {why}; wait for them to complete or be aborted, or detach --force",
                b.bucket
            ),
        )
    };
    match uploads_open(check, b).await {
        Ok(0) => Ok(()),
        Ok(n) => Err(refused(format!(
            "{n} multipart uploads begun on the source before migrate mode are still open there"
        ))),
        Err(e) => Err(refused(format!(
            "cannot tell whether the uploads open on the source at the switch have ended ({e})"
        ))),
    }
}

/// Accepts every source (for tests, and for sources that cannot be reached
/// from the proxy host at attach time).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCheck;

#[async_trait]
impl SourceCheck for NoCheck {
    async fn check(&self, _bucket: &Bucket) -> Result<(), String> {
        Ok(())
    }

    async fn uploads(&self, _bucket: &Bucket) -> Result<Vec<SourceUpload>, String> {
        Ok(Vec::new())
    }
}

/// HeadBucket on the source with the bucket's own credentials, region and
/// TLS certificate (path style, checksums only when required). Connect
/// timeout 5 s, the whole check at most 20 s.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3SourceCheck;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

impl S3SourceCheck {
    fn client(&self, b: &Bucket) -> Result<aws_sdk_s3::Client, String> {
        let creds = Credentials::new(
            &b.source_access_key,
            &b.source_secret,
            None,
            None,
            "ferry-attach",
        );
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&b.source_url)
            .region(Region::new(b.source_region.clone()))
            .credentials_provider(creds)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(CHECK_TIMEOUT)
                    .build(),
            );
        if let Some(pem) = &b.tls_cert_pem {
            // Trust exactly the certificate given at attach, not the system roots.
            let ctx = tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem.as_bytes()))
                .build()
                .map_err(|e| format!("the TLS certificate cannot be used: {e}"))?;
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(ctx)
                .build_https();
            conf = conf.http_client(http);
        }
        Ok(aws_sdk_s3::Client::from_conf(conf.build()))
    }
}

#[async_trait]
impl SourceCheck for S3SourceCheck {
    async fn check(&self, b: &Bucket) -> Result<(), String> {
        let client = self.client(b)?;
        let at = format!("bucket {} at {}", b.source_bucket, b.source_url);
        match client.head_bucket().bucket(&b.source_bucket).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => Err(match e.raw().status().as_u16() {
                403 => format!(
                    "the source refused access to {at} (403): check the access key, the secret \
                     and the key's grants on the source"
                ),
                404 => format!("the source has no {at} (404)"),
                301 => format!(
                    "the source answered 301 for {at}: the bucket is in another region than \
                     {:?} (--region)",
                    b.source_region
                ),
                status => format!("the source answered HTTP {status} for {at}"),
            }),
            Err(SdkError::TimeoutError(_)) => Err(format!(
                "the source did not answer within {} s ({at})",
                CHECK_TIMEOUT.as_secs()
            )),
            Err(e @ SdkError::DispatchFailure(_)) => Err(format!(
                "cannot reach the source for {at}: {}",
                error_chain(&e)
            )),
            Err(e) => Err(format!("checking {at}: {}", error_chain(&e))),
        }
    }

    async fn uploads(&self, b: &Bucket) -> Result<Vec<SourceUpload>, String> {
        self.list_uploads(b).await
    }
}

impl S3SourceCheck {
    async fn list_uploads(&self, b: &Bucket) -> Result<Vec<SourceUpload>, String> {
        let client = self.client(b)?;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = client
                .list_multipart_uploads()
                .bucket(&b.source_bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| format!("listing the source's uploads: {}", error_chain(&e)))?;
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(SourceUpload {
                        key: key.to_owned(),
                        upload_id: id.to_owned(),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Err("the source's upload listing is truncated without a marker".into());
            }
        }
    }
}

/// `outer: inner: root cause`, on one line, each message once.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let msg = err.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        next = err.source();
    }
    parts.join(": ")
}

//! The S3 clients: one config for every path, so direct and proxy runs
//! differ only in the endpoint and the credentials.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use ferry_harness::Store;
use s3migrate::s3::http::{Timeouts, http_client};

use crate::env::ClientUser;

/// How PUT bodies go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Checksums only when required (the harness's `Store::client()`
    /// config): a plain body, its SHA-256 signed.
    Plain,
    /// The SDK's default: aws-chunked with a CRC32 trailer
    /// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
    Chunked,
}

/// Which HTTP client the S3 clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// The SDK's default, as most S3 tools behave: ACKs delayed.
    Sdk,
    /// s3migrate's: every read acknowledged at once.
    QuickAck,
}

impl Http {
    pub fn from_flag(quick_ack: bool) -> Http {
        if quick_ack { Http::QuickAck } else { Http::Sdk }
    }
}

fn config(base: aws_sdk_s3::Config, body: Body, http: Http) -> aws_sdk_s3::Config {
    let mut b = base.to_builder().retry_config(RetryConfig::disabled());
    if http == Http::QuickAck {
        b = b.http_client(http_client(Timeouts::default(), None).expect("no CA file to read"));
    }
    if body == Body::Chunked {
        b = b
            .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
            .response_checksum_validation(ResponseChecksumValidation::WhenSupported);
    }
    b.build()
}

/// Straight to `store`, with its own key. Retries are off: a failed
/// request is counted, not hidden in a slower one.
pub fn direct(store: &Store, body: Body, http: Http) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(config(store.config(), body, http))
}

/// Straight to `store`'s key and config, but sent to `endpoint` (a relay
/// in front of the store).
pub fn direct_via(store: &Store, endpoint: &str, http: Http) -> aws_sdk_s3::Client {
    let base = store.config().to_builder().endpoint_url(endpoint).build();
    aws_sdk_s3::Client::from_conf(config(base, Body::Plain, http))
}

/// Through the proxy at `endpoint`, as the users file's client, in the
/// target's region; otherwise the same config as [`direct`].
pub fn proxy(
    target: &Store,
    endpoint: &str,
    user: &ClientUser,
    body: Body,
    http: Http,
) -> aws_sdk_s3::Client {
    let base = target
        .config()
        .to_builder()
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            &user.access_key,
            &user.secret,
            None,
            None,
            "bench-proxy",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config(base, body, http))
}

//! Builds an aws-sdk-s3 client for an S3-compatible store.
//!
//! Recent SDKs add CRC checksums and `aws-chunked` bodies to every upload by
//! default; many S3-compatible stores reject or mishandle those, so checksums
//! are sent and checked only where an operation requires them. The SDK's own
//! retries are off: a retried copy must start again from a fresh GET, which
//! only the engine can do (see `crate::retry`). The HTTP client under it is
//! our own (`super::http`): it acknowledges at once, which saves 40 ms on
//! every small GET from a store that leaves Nagle on.

use aws_credential_types::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

use super::http::Timeouts;

/// Where a bucket lives and how to sign for it.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The CA certificates (PEM) an https store must chain to; `None`:
    /// the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Endpoint {
    // Never print the secret, even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The engine's client of `ep`; `Err` says why its CA file is unusable.
pub fn build_client(ep: &Endpoint) -> Result<aws_sdk_s3::Client, String> {
    client_with_timeouts(ep, Timeouts::default())
}

fn client_with_timeouts(ep: &Endpoint, timeouts: Timeouts) -> Result<aws_sdk_s3::Client, String> {
    let creds = Credentials::new(&ep.access_key, &ep.secret_key, None, None, "ferry");
    let http = super::http::http_client(timeouts, ep.ca_pem.as_deref())?;
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&ep.url)
        .region(Region::new(ep.region.clone()))
        .credentials_provider(creds)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(conf))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::s3::{ErrorClass, S3Error};

    fn endpoint(url: String) -> Endpoint {
        Endpoint {
            url,
            bucket: "b".into(),
            access_key: "k".into(),
            secret_key: "s".into(),
            region: "us-east-1".into(),
            ca_pem: None,
        }
    }

    async fn head_bucket_error(url: String, timeouts: Timeouts) -> S3Error {
        let client = client_with_timeouts(&endpoint(url), timeouts).unwrap();
        let err = client.head_bucket().bucket("b").send().await.unwrap_err();
        S3Error::from_sdk(err)
    }

    /// The retry classes the engine acts on, as the client's errors come
    /// out of it: a store that accepts and never answers times out, and
    /// one that is not listening is a connection error.
    #[tokio::test]
    async fn a_silent_store_times_out_and_a_closed_port_is_a_connection_error() {
        let quick = Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_millis(300),
        };
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (conn, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(conn);
        });
        let e = head_bucket_error(format!("http://{addr}"), quick).await;
        assert_eq!(e.class, ErrorClass::Timeout, "{e:?}");
        held.abort();

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let e = head_bucket_error(format!("http://{addr}"), quick).await;
        assert_eq!(e.class, ErrorClass::Connection, "{e:?}");
    }
}

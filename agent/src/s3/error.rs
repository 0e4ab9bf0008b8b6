//! The one error type for every S3 call the engines make. The class drives
//! policy (retry, final, refuse to start); the rest is for the operator.

use std::fmt;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// What kind of failure this was. Retry and reporting decisions read this,
/// never the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// 404 NoSuchKey, or a HEAD 404.
    NotFound,
    /// 404 NoSuchBucket.
    NoSuchBucket,
    /// 404 NoSuchUpload.
    NoSuchUpload,
    /// 412: a conditional write found the object changed. Final.
    PreconditionFailed,
    /// 403, bad key, bad signature or no grant.
    AccessDenied,
    /// 501 or NotImplemented.
    NotImplemented,
    /// 503 SlowDown, 429.
    Throttled,
    /// 500, 502, 503 ServiceUnavailable, or an `<Error>` in a 200 body.
    ServerError,
    /// A timeout, including S3's 400 RequestTimeout.
    Timeout,
    /// Connection refused, reset, or a body cut short.
    Connection,
    /// Any other 4xx: our request was wrong; retrying will not help.
    BadRequest,
    /// Not the store: this host's own files (the intent log) failed.
    LocalIo,
}

impl ErrorClass {
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::ServerError | Self::Timeout | Self::Connection
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::NoSuchBucket => "no-such-bucket",
            Self::NoSuchUpload => "no-such-upload",
            Self::PreconditionFailed => "precondition-failed",
            Self::AccessDenied => "access-denied",
            Self::NotImplemented => "not-implemented",
            Self::Throttled => "throttled",
            Self::ServerError => "server-error",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::BadRequest => "bad-request",
            Self::LocalIo => "local-io",
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Error {
    pub class: ErrorClass,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.code) {
            (Some(s), Some(c)) => write!(f, "HTTP {s} {c}: {}", self.message),
            (Some(s), None) => write!(f, "HTTP {s}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for S3Error {}

impl S3Error {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            status: None,
            code: None,
            message: message.into(),
        }
    }

    /// Classifies an SDK error by its status and S3 error code.
    pub fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let (class, message) = match &err {
            SdkError::TimeoutError(_) => (ErrorClass::Timeout, "timed out".to_owned()),
            SdkError::DispatchFailure(d) => {
                let class = if d.is_timeout() {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::Connection
                };
                (class, format!("request failed: {}", chain(&err)))
            }
            SdkError::ResponseError(_) => (
                ErrorClass::Connection,
                format!("bad response: {}", chain(&err)),
            ),
            SdkError::ConstructionFailure(_) => (
                ErrorClass::BadRequest,
                format!("could not build request: {}", chain(&err)),
            ),
            _ => {
                let msg = err
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| chain(&err));
                (classify(status, code.as_deref()), msg)
            }
        };
        Self {
            class,
            status,
            code,
            message,
        }
    }

    pub fn is(&self, class: ErrorClass) -> bool {
        self.class == class
    }
}

fn classify(status: Option<u16>, code: Option<&str>) -> ErrorClass {
    match code {
        Some("NoSuchKey") => return ErrorClass::NotFound,
        Some("NoSuchBucket") => return ErrorClass::NoSuchBucket,
        Some("NoSuchUpload") => return ErrorClass::NoSuchUpload,
        Some("PreconditionFailed") => return ErrorClass::PreconditionFailed,
        Some("RequestTimeout") => return ErrorClass::Timeout,
        Some("SlowDown") => return ErrorClass::Throttled,
        Some("NotImplemented") => return ErrorClass::NotImplemented,
        Some("InternalError") | Some("ServiceUnavailable") => return ErrorClass::ServerError,
        Some("AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId") => {
            return ErrorClass::AccessDenied;
        }
        _ => {}
    }
    match status {
        Some(404) => ErrorClass::NotFound,
        Some(412) => ErrorClass::PreconditionFailed,
        Some(401 | 403) => ErrorClass::AccessDenied,
        Some(429) => ErrorClass::Throttled,
        Some(501) => ErrorClass::NotImplemented,
        Some(s) if s >= 500 => ErrorClass::ServerError,
        // A 200 whose body was an <Error> (CompleteMultipartUpload, CopyObject).
        Some(s) if s < 300 => ErrorClass::ServerError,
        _ => ErrorClass::BadRequest,
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_status_and_code() {
        assert_eq!(classify(Some(412), None), ErrorClass::PreconditionFailed);
        assert_eq!(
            classify(Some(400), Some("RequestTimeout")),
            ErrorClass::Timeout
        );
        assert_eq!(classify(Some(503), Some("SlowDown")), ErrorClass::Throttled);
        assert_eq!(
            classify(Some(200), Some("InternalError")),
            ErrorClass::ServerError
        );
        assert_eq!(
            classify(Some(400), Some("InvalidArgument")),
            ErrorClass::BadRequest
        );
        assert!(!ErrorClass::PreconditionFailed.retryable());
        assert!(ErrorClass::Timeout.retryable());
    }
}

//! Classes of a store's errors, from the HTTP status and the S3 `<Code>`:
//! the one reading of an upstream's answer that the proxy (fallbacks,
//! 503s) and the agent (retries, failed.log) share.

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

impl ErrorClass {
    /// The class of a store's answer, from its status and its `<Code>`
    /// (the code wins; a 200 with an `<Error>` body is a server error).
    pub fn of(status: Option<u16>, code: Option<&str>) -> ErrorClass {
        match code {
            Some("NoSuchKey" | "NoSuchVersion") => return ErrorClass::NotFound,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_status_and_code() {
        assert_eq!(
            ErrorClass::of(Some(412), None),
            ErrorClass::PreconditionFailed
        );
        assert_eq!(
            ErrorClass::of(Some(400), Some("RequestTimeout")),
            ErrorClass::Timeout
        );
        assert_eq!(
            ErrorClass::of(Some(503), Some("SlowDown")),
            ErrorClass::Throttled
        );
        assert_eq!(
            ErrorClass::of(Some(200), Some("InternalError")),
            ErrorClass::ServerError
        );
        assert_eq!(
            ErrorClass::of(Some(400), Some("InvalidArgument")),
            ErrorClass::BadRequest
        );
        assert!(!ErrorClass::PreconditionFailed.retryable());
        assert!(ErrorClass::Timeout.retryable());
        assert_eq!(
            ErrorClass::of(Some(404), Some("NoSuchVersion")),
            ErrorClass::NotFound
        );
        assert_eq!(
            ErrorClass::of(Some(404), Some("NoSuchBucket")),
            ErrorClass::NoSuchBucket
        );
        assert_eq!(ErrorClass::of(Some(404), None), ErrorClass::NotFound);
    }
}

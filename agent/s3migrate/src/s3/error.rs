//! The one error type for every S3 call the engines make. The class drives
//! policy (retry, final, refuse to start); the rest is for the operator.

use std::fmt;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

pub use ferry_s3::error::ErrorClass;

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
                (ErrorClass::of(status, code.as_deref()), msg)
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

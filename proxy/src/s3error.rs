//! Every error the proxy answers with, mapped to its S3 code and HTTP
//! status in one place. The proxy never leaks a Rust error string as a 500.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    InvalidAccessKeyId,
    SignatureDoesNotMatch,
    RequestTimeTooSkewed,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    /// SigV2 and other schemes we do not take.
    InvalidRequest,
    IncompleteBody,
    InvalidDigest,
    BadDigest,
    InvalidArgument,
    MalformedXML,
    /// A key that is empty where an object is meant (a DeleteObjects
    /// entry): never taken for the bucket.
    UserKeyMustBeSpecified,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    NotImplemented,
    PreconditionFailed,
    ServiceUnavailable,
    /// 503 that every S3 SDK retries with backoff: a fleet is switching
    /// the bucket's mode, or this proxy lost its fleet's etcd.
    SlowDown,
    InternalError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDenied",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            Self::InvalidRequest => "InvalidRequest",
            Self::IncompleteBody => "IncompleteBody",
            Self::InvalidDigest => "InvalidDigest",
            Self::BadDigest => "BadDigest",
            Self::InvalidArgument => "InvalidArgument",
            Self::MalformedXML => "MalformedXML",
            Self::UserKeyMustBeSpecified => "UserKeyMustBeSpecified",
            Self::NoSuchBucket => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchUpload => "NoSuchUpload",
            Self::NotImplemented => "NotImplemented",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::SlowDown => "SlowDown",
            Self::InternalError => "InternalError",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::AccessDenied
            | Self::InvalidAccessKeyId
            | Self::SignatureDoesNotMatch
            | Self::RequestTimeTooSkewed => 403,
            Self::AuthorizationHeaderMalformed
            | Self::AuthorizationQueryParametersError
            | Self::InvalidRequest
            | Self::IncompleteBody
            | Self::InvalidDigest
            | Self::BadDigest
            | Self::InvalidArgument
            | Self::MalformedXML
            | Self::UserKeyMustBeSpecified => 400,
            Self::NoSuchBucket | Self::NoSuchKey | Self::NoSuchUpload => 404,
            Self::NotImplemented => 501,
            Self::PreconditionFailed => 412,
            Self::ServiceUnavailable | Self::SlowDown => 503,
            Self::InternalError => 500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: Code,
    pub message: Cow<'static, str>,
}

impl S3Error {
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The XML body S3 clients parse.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code.as_str(),
            xml_escape(&self.message),
            xml_escape(resource),
            xml_escape(request_id)
        )
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for S3Error {}

/// Appends `bytes` as XML text. Control characters cannot be written as
/// XML 1.0 text at all; they go out as character references, as S3 does,
/// and a client that wants them intact asks for `encoding-type=url`.
pub fn push_xml_text(out: &mut String, bytes: &[u8]) {
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// `s` as XML text ([`push_xml_text`]).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_xml_text(&mut out, s.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_escapes_markup_and_controls() {
        let mut s = String::new();
        push_xml_text(&mut s, b"a&<>\x01");
        assert_eq!(s, "a&amp;&lt;&gt;&#x1;");
        assert_eq!(xml_escape("k\x7f'\""), "k&#x7F;&apos;&quot;");
    }

    #[test]
    fn xml_names_code_and_escapes() {
        let e = S3Error::new(Code::SignatureDoesNotMatch, "a<b");
        let x = e.to_xml("/b/k&1", "id");
        assert!(x.contains("<Code>SignatureDoesNotMatch</Code>"));
        assert!(x.contains("<Message>a&lt;b</Message>"));
        assert!(x.contains("<Resource>/b/k&amp;1</Resource>"));
        assert_eq!(e.code.status(), 403);
    }
}

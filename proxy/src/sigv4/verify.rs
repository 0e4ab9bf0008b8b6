//! Checks a request's SigV4 signature (header or presigned), its clock and
//! its expiry. What the body must still prove (a SHA-256, or chunk
//! signatures) is returned as `Payload` for the body path to enforce.

use std::borrow::Cow;

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::canonical::{self, CanonicalParts, Query};
use super::parse::{self, Scheme};
use super::{same_signature, sign, signing_key};
use crate::s3error::{Code, S3Error};

/// The parts of a request a signature covers, independent of the server.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The path exactly as on the request line (still percent-encoded).
    pub raw_path: &'a str,
    /// The query without the `?`.
    pub raw_query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

impl RequestView<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// What the body has to match, from `x-amz-content-sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The SHA-256 (hex) the body must hash to.
    Sha256(String),
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: signed chunks.
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks and a
    /// signed trailer.
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks and a checksum
    /// trailer.
    StreamingUnsignedTrailer,
}

impl Payload {
    fn parse(v: &str) -> Result<Self, S3Error> {
        Ok(match v {
            "UNSIGNED-PAYLOAD" => Self::Unsigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Self::StreamingSigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Self::StreamingSignedTrailer,
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Self::StreamingUnsignedTrailer,
            h if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Self::Sha256(h.to_ascii_lowercase())
            }
            _ => {
                return Err(S3Error::new(
                    Code::InvalidArgument,
                    "x-amz-content-sha256 must be a SHA-256 hex digest or a known STREAMING/UNSIGNED value",
                ));
            }
        })
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key: String,
    pub payload: Payload,
    /// The request signature: the first "previous signature" of a chunked
    /// body.
    pub seed_signature: String,
    pub signing_key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Anonymous,
    Signed(Verified),
}

fn parse_amz_date(s: &str, code: Code) -> Result<OffsetDateTime, S3Error> {
    PrimitiveDateTime::parse(s, super::AMZ_DATE)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| S3Error::new(code, "the date must be of the form YYYYMMDDTHHMMSSZ"))
}

/// An HTTP `Date` as SigV4's `YYYYMMDDTHHMMSSZ`: `Thu, 03 Dec 2026
/// 09:00:00 GMT` (RFC 7231), or with a zero offset, `+0000` or `-0000`
/// (RFC 2822, which botocore writes).
fn http_date_as_amz(v: &str) -> Result<String, S3Error> {
    let http = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second]"
    );
    v.trim()
        .rsplit_once(' ')
        .filter(|(_, zone)| matches!(*zone, "GMT" | "UTC" | "UT" | "+0000" | "-0000"))
        .and_then(|(at, _)| PrimitiveDateTime::parse(at, &http).ok())
        .and_then(|t| t.format(super::AMZ_DATE).ok())
        .ok_or_else(|| {
            S3Error::new(
                Code::AccessDenied,
                "the Date header must be an HTTP date in UTC, such as \"Thu, 03 Dec 2026 09:00:00 GMT\"",
            )
        })
}

/// Verifies `req`. `secret_of` looks up an access key's secret. `now` and
/// `max_skew_secs` bound the request time (S3 allows 15 minutes).
pub fn verify(
    req: &RequestView<'_>,
    secret_of: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
    max_skew_secs: i64,
) -> Result<Outcome, S3Error> {
    let query = canonical::parse_query(req.raw_query).ok_or_else(|| {
        S3Error::new(
            Code::InvalidArgument,
            "malformed percent-escape in the query",
        )
    })?;
    let scheme = parse::scheme(req.header("authorization"), &query)?;
    let (credential, signed_headers, signature, amz_date, payload, presigned) = match scheme {
        Scheme::Anonymous => return Ok(Outcome::Anonymous),
        Scheme::Header(h) => {
            // SigV4 takes the time from `Date` when `x-amz-date` is
            // absent (botocore signs so when a request carries `Date`);
            // the string to sign has it in the basic ISO 8601 form.
            let amz_date = match (req.header("x-amz-date"), req.header("date")) {
                (Some(d), _) => Cow::Borrowed(d.trim()),
                (None, Some(d)) => Cow::Owned(http_date_as_amz(d)?),
                (None, None) => {
                    return Err(S3Error::new(
                        Code::AccessDenied,
                        "SigV4 requests need an x-amz-date or a Date header",
                    ));
                }
            };
            let sha = req.header("x-amz-content-sha256").ok_or_else(|| {
                S3Error::new(
                    Code::InvalidRequest,
                    "Missing required header for this request: x-amz-content-sha256",
                )
            })?;
            let payload = Payload::parse(sha.trim())?;
            (
                h.credential,
                h.signed_headers,
                h.signature,
                amz_date,
                payload,
                false,
            )
        }
        Scheme::Presigned(p) => {
            let code = Code::AuthorizationQueryParametersError;
            let at = parse_amz_date(p.amz_date, code)?;
            if now < at - time::Duration::seconds(max_skew_secs) {
                return Err(S3Error::new(Code::AccessDenied, "Request is not valid yet"));
            }
            if now > at + time::Duration::seconds(p.expires_secs) {
                return Err(S3Error::new(Code::AccessDenied, "Request has expired"));
            }
            (
                p.credential,
                p.signed_headers,
                p.signature,
                Cow::Borrowed(p.amz_date),
                Payload::Unsigned,
                true,
            )
        }
    };
    let Some(secret) = secret_of(credential.access_key) else {
        return Err(S3Error::new(
            Code::InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    };
    if credential.service != "s3" {
        return Err(S3Error::new(
            Code::AuthorizationHeaderMalformed,
            format!(
                "the credential scope names service {:?}; expected \"s3\"",
                credential.service
            ),
        ));
    }
    let at = parse_amz_date(&amz_date, Code::AccessDenied)?;
    if !amz_date.starts_with(credential.date) {
        return Err(S3Error::new(
            Code::SignatureDoesNotMatch,
            "the Credential date does not match the request date",
        ));
    }
    // A presigned URL's window is its expiry, checked above.
    if !presigned {
        let skew = (now - at).whole_seconds().abs();
        if skew > max_skew_secs {
            return Err(S3Error::new(
                Code::RequestTimeTooSkewed,
                "The difference between the request time and the server's time is too large.",
            ));
        }
    }
    let payload_hash = match &payload {
        Payload::Sha256(h) => h.clone(),
        Payload::Unsigned => "UNSIGNED-PAYLOAD".to_owned(),
        Payload::StreamingSigned => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned(),
        Payload::StreamingSignedTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER".to_owned(),
        Payload::StreamingUnsignedTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_owned(),
    };
    let unsigned: Vec<_>;
    let query = if presigned {
        // A presigned URL's own signature is not part of what it signs.
        unsigned = query
            .iter()
            .filter(|(k, _)| k != b"X-Amz-Signature")
            .cloned()
            .collect();
        Query::Pairs(&unsigned)
    } else {
        Query::Raw(req.raw_query)
    };
    let creq = canonical::canonical_request(&CanonicalParts {
        method: req.method,
        raw_path: req.raw_path,
        query,
        headers: req.headers,
        signed_headers: &signed_headers,
        payload_hash: &payload_hash,
    })
    .ok_or_else(|| {
        S3Error::new(
            Code::SignatureDoesNotMatch,
            "a signed header is missing, or the path has a malformed escape",
        )
    })?;
    let scope = credential.scope();
    let key = signing_key(
        &secret,
        credential.date,
        credential.region,
        credential.service,
    );
    let expected = sign(&key, &canonical::string_to_sign(&amz_date, &scope, &creq));
    if !same_signature(&expected, &signature) {
        return Err(S3Error::new(
            Code::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ));
    }
    Ok(Outcome::Signed(Verified {
        access_key: credential.access_key.to_owned(),
        payload,
        seed_signature: signature.into_owned(),
        signing_key: key,
        amz_date: amz_date.into_owned(),
        scope,
    }))
}

#[cfg(test)]
mod tests {
    use super::http_date_as_amz;

    #[test]
    fn http_dates_in_utc_become_amz_dates() {
        for v in [
            "Thu, 03 Dec 2026 09:00:00 GMT",
            "Thu, 03 Dec 2026 09:00:00 -0000",
            "Thu, 03 Dec 2026 09:00:00 +0000",
        ] {
            assert_eq!(http_date_as_amz(v).unwrap(), "20261203T090000Z", "{v}");
        }
        for v in ["Thu, 03 Dec 2026 09:00:00 +0100", "20261203T090000Z", ""] {
            assert!(http_date_as_amz(v).is_err(), "{v}");
        }
    }
}

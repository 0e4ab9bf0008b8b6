//! Signs a request again for the upstream it goes to, with that upstream's
//! credentials (the bucket's source credentials, or the target service
//! credentials from the config).
//!
//! The path and query are put in their canonical SigV4 form first and sent
//! in exactly that form, so what is signed is byte for byte what goes on the
//! wire. Only `host`, `content-md5`, `content-type` and `x-amz-*` headers
//! are signed: hop-by-hop headers may change on the way.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use crate::s3error::{Code, S3Error};
use crate::sigv4::canonical;

/// Whom to sign as, toward one upstream.
#[derive(Clone)]
pub struct UpstreamCreds {
    pub access_key: String,
    pub secret: String,
    pub region: String,
}

impl std::fmt::Debug for UpstreamCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCreds")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Query parameters of the client's own presigned signature: the upstream
/// request carries ours instead.
const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The request line of the upstream request, canonical, without the
/// client's presigning parameters.
pub fn canonical_target(path: &str, raw_query: &str) -> Result<String, S3Error> {
    let p = canonical::canonical_uri(path).ok_or_else(|| {
        S3Error::new(
            Code::InvalidArgument,
            "malformed percent-escape in the path",
        )
    })?;
    let mut pairs = canonical::parse_query(raw_query).ok_or_else(|| {
        S3Error::new(
            Code::InvalidArgument,
            "malformed percent-escape in the query",
        )
    })?;
    pairs.retain(|(k, _)| !PRESIGN_PARAMS.iter().any(|p| p.as_bytes() == k.as_slice()));
    let q = canonical::canonical_query(&pairs);
    Ok(if q.is_empty() { p } else { format!("{p}?{q}") })
}

/// Which client headers are kept in the signature.
pub fn signed_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "host" || n == "content-md5" || n == "content-type" || n.starts_with("x-amz-")
}

/// Returns the headers to set (`authorization`, `x-amz-date`,
/// `x-amz-content-sha256`) for a request to `scheme://host{target}` with the
/// given headers (which must already hold the upstream `host`, and no
/// client `authorization`/`x-amz-date`).
/// One upstream request line: `method scheme://host{target}`.
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    /// Canonical path and query (see `canonical_target`).
    pub target: &'a str,
}

pub fn sign_request(
    line: &RequestLine<'_>,
    headers: &[(String, String)],
    payload_hash: &str,
    creds: &UpstreamCreds,
    now: SystemTime,
) -> Result<Vec<(String, String)>, S3Error> {
    let RequestLine {
        method,
        scheme,
        host,
        target,
    } = *line;
    let internal = |e: &dyn std::fmt::Display| {
        S3Error::new(
            Code::InternalError,
            format!("signing the upstream request: {e}"),
        )
    };
    let identity = Credentials::new(&creds.access_key, &creds.secret, None, None, "ferry").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = SignatureLocation::Headers;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&creds.region)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| internal(&e))?
        .into();
    // A value past ASCII goes upstream as its bytes but unsigned: stores
    // disagree on how such bytes are signed, and the proxy checked the
    // client's signature over them already.
    let signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, v)| {
            signed_header(n) && !n.eq_ignore_ascii_case("x-amz-content-sha256") && v.is_ascii()
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let uri = format!("{scheme}://{host}{target}");
    let req = SignableRequest::new(
        method,
        uri,
        signed.into_iter(),
        SignableBody::Precomputed(payload_hash.to_owned()),
    )
    .map_err(|e| internal(&e))?;
    let (instructions, _sig) = sign(req, &params).map_err(|e| internal(&e))?.into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{RequestView, verify, verify::Outcome};

    /// What we sign, our own verifier accepts: the two halves agree.
    #[test]
    fn resigned_request_verifies() {
        let creds = UpstreamCreds {
            access_key: "AKIDUPSTREAM".into(),
            secret: "upstream-secret".into(),
            region: "garage".into(),
        };
        let target = canonical_target("/b/odd key+%25/x", "uploadId=a/b&partNumber=2").unwrap();
        assert_eq!(target, "/b/odd%20key%2B%25/x?partNumber=2&uploadId=a%2Fb");
        let host = "127.0.0.1:3900";
        let mut headers = vec![
            ("host".to_owned(), host.to_owned()),
            ("x-amz-meta-a".to_owned(), "b".to_owned()),
            ("content-length".to_owned(), "5".to_owned()),
        ];
        let now = SystemTime::now();
        let line = RequestLine {
            method: "PUT",
            scheme: "http",
            host,
            target: &target,
        };
        let add = sign_request(&line, &headers, "UNSIGNED-PAYLOAD", &creds, now).unwrap();
        headers.extend(add);
        let (path, query) = target.split_once('?').unwrap();
        let view: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = RequestView {
            method: "PUT",
            raw_path: path,
            raw_query: query,
            headers: &view,
        };
        let secret = |k: &str| (k == "AKIDUPSTREAM").then(|| "upstream-secret".to_owned());
        let out = verify(&req, secret, time::OffsetDateTime::now_utc(), 900).unwrap();
        assert!(matches!(out, Outcome::Signed(_)));
    }
}

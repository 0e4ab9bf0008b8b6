//! Signs a request again for the upstream it goes to, with that upstream's
//! credentials (the bucket's source credentials, or the target service
//! credentials from the config).
//!
//! The path and query are put in their canonical SigV4 form first and sent
//! in exactly that form, so what is signed is byte for byte what goes on the
//! wire. Only `host`, `content-md5`, `content-type` and `x-amz-*` headers
//! are signed: hop-by-hop headers may change on the way.

use std::borrow::Cow;
use std::time::SystemTime;

use crate::s3error::{Code, S3Error};
use crate::sigv4::canonical::{self, CanonicalParts, Query};
use crate::sigv4::{sign, signing_key};

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
    let malformed = |part: &str| {
        S3Error::new(
            Code::InvalidArgument,
            format!("malformed percent-escape in the {part}"),
        )
    };
    // Room for the query too: written once, not grown.
    let mut target = String::with_capacity(path.len().max(1) + 1 + raw_query.len());
    canonical::push_canonical_uri(&mut target, path).ok_or_else(|| malformed("path"))?;
    // SDKs send a canonical query; only a presigned one must be rewritten.
    let q = if canonical::is_canonical_query(raw_query) && !raw_query.contains("X-Amz-") {
        Cow::Borrowed(raw_query)
    } else {
        let mut pairs = canonical::parse_query(raw_query).ok_or_else(|| malformed("query"))?;
        pairs.retain(|(k, _)| !PRESIGN_PARAMS.iter().any(|p| p.as_bytes() == k.as_slice()));
        Cow::Owned(canonical::canonical_query(&pairs))
    };
    if !q.is_empty() {
        target.push('?');
        target.push_str(&q);
    }
    Ok(target)
}

/// Which client headers are kept in the signature.
pub fn signed_header(name: &str) -> bool {
    ["host", "content-md5", "content-type"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
}

/// One upstream request line: `method target`.
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// Canonical path and query (see `canonical_target`).
    pub target: &'a str,
}

/// Returns the headers to set (`authorization`, `x-amz-date`,
/// `x-amz-content-sha256`) for the request `line` with the given headers
/// (which must already hold the upstream `host`, and no client
/// `authorization`/`x-amz-date`).
///
/// Signed with the verifier's own canonical request, so the two halves
/// cannot drift apart; `tests/sigv4_known_answers.rs` holds both to AWS's
/// published examples and aws-sigv4's signer.
pub fn sign_request(
    line: &RequestLine<'_>,
    headers: &[(&str, &str)],
    payload_hash: &str,
    creds: &UpstreamCreds,
    now: SystemTime,
) -> Result<[(&'static str, String); 3], S3Error> {
    let internal = |what: &str| {
        S3Error::new(
            Code::InternalError,
            format!("signing the upstream request: {what}"),
        )
    };
    let amz_date = crate::sigv4::amz_date(now).map_err(|e| internal(&e))?;
    // A value past ASCII goes upstream as its bytes but unsigned: stores
    // disagree on how such bytes are signed, and the proxy checked the
    // client's signature over them already.
    let mut view: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, v)| {
            signed_header(n)
                && !n.eq_ignore_ascii_case("x-amz-content-sha256")
                && !n.eq_ignore_ascii_case("x-amz-date")
                && v.is_ascii()
        })
        .copied()
        .collect();
    view.push(("x-amz-content-sha256", payload_hash));
    view.push(("x-amz-date", &amz_date));
    let mut names: Vec<Cow<'_, str>> = view.iter().map(|(n, _)| canonical::lowercase(n)).collect();
    names.sort();
    names.dedup();
    let (path, query) = line.target.split_once('?').unwrap_or((line.target, ""));
    let creq = canonical::canonical_request(&CanonicalParts {
        method: line.method,
        raw_path: path,
        query: Query::Raw(query),
        headers: &view,
        signed_headers: &names,
        payload_hash,
    })
    .ok_or_else(|| internal("a malformed path or query"))?;
    let date = &amz_date[..8];
    let scope = [date, "/", &creds.region, "/s3/aws4_request"].concat();
    let key = signing_key(&creds.secret, date, &creds.region, "s3");
    let signature = sign(&key, &canonical::string_to_sign(&amz_date, &scope, &creq));
    let mut authorization = String::with_capacity(200);
    for part in [
        "AWS4-HMAC-SHA256 Credential=",
        &creds.access_key,
        "/",
        &scope,
        ", SignedHeaders=",
    ] {
        authorization.push_str(part);
    }
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            authorization.push(';');
        }
        authorization.push_str(n);
    }
    authorization.push_str(", Signature=");
    authorization.push_str(&signature);
    Ok([
        ("authorization", authorization),
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", payload_hash.to_owned()),
    ])
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
            target: &target,
        };
        let view: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let add = sign_request(&line, &view, "UNSIGNED-PAYLOAD", &creds, now).unwrap();
        headers.extend(add.map(|(n, v)| (n.to_owned(), v)));
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

//! Who sent a request to an attached bucket, and whether they may: the
//! SigV4 signature, the grant the operation needs, and the scope's region.

use pingora::http::RequestHeader;

use super::Env;
use crate::attached::Attached;
use crate::headers::{HeaderPair, header_pairs};
use crate::s3error::{Code, S3Error};
use crate::sigv4::verify::{Outcome, Verified};
use crate::sigv4::{RequestView, verify};
use ferry_s3::{Grant, S3Op};

/// Checks the client's signature; anonymous requests are refused.
pub(super) fn authenticate(
    env: &Env<'_>,
    req: &RequestHeader,
    names: &[HeaderPair<'_>],
) -> Result<Verified, S3Error> {
    let check = |headers: &[HeaderPair<'_>]| {
        let mut view: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        // HTTP/2 has no Host header: the signed `host` is the
        // `:authority`, which is also what routed the request.
        if !req.headers.contains_key("host")
            && let Some(a) = req.uri.authority()
        {
            view.push(("host", a.as_str()));
        }
        let rv = RequestView {
            method: req.method.as_str(),
            raw_path: req.uri.path(),
            raw_query: req.uri.query().unwrap_or(""),
            headers: &view,
        };
        verify(
            &rv,
            |k| env.directory.secret(k),
            env.now,
            env.settings.max_clock_skew_secs,
        )
    };
    // A header value that is not ASCII (user metadata) is signed as
    // the client's HTTP library meant its bytes: Latin-1 for most
    // (botocore, and `names`), UTF-8 for some; both are tried, nothing
    // is dropped.
    let verified = match check(names) {
        Err(e)
            if e.code == Code::SignatureDoesNotMatch
                && req.headers.values().any(|v| !v.as_bytes().is_ascii()) =>
        {
            check(&header_pairs(&req.headers, true))
        }
        r => r,
    };
    match verified? {
        Outcome::Anonymous => Err(S3Error::new(
            Code::AccessDenied,
            "Anonymous access to a bucket under migration is not allowed",
        )),
        Outcome::Signed(v) => Ok(v),
    }
}

/// The client's grant on the bucket for `op`.
pub(super) fn authorize(
    env: &Env<'_>,
    v: &Verified,
    op: S3Op,
    bucket: &str,
) -> Result<(), S3Error> {
    // Grants are on objects. Bucket configuration (policy, CORS,
    // lifecycle, deleting the bucket) is the operator's, on the stores
    // themselves, never through the migration proxy.
    let write = match op.grant() {
        Grant::Operator => {
            return Err(S3Error::new(
                Code::AccessDenied,
                "bucket configuration cannot be changed through the migration proxy",
            ));
        }
        Grant::Write => true,
        Grant::Read | Grant::None => false,
    };
    if !env.directory.allowed(&v.access_key, bucket, write) {
        return Err(S3Error::new(Code::AccessDenied, "Access Denied"));
    }
    Ok(())
}

/// The scope must name S3 and a region this endpoint answers for: the
/// target's, or the bucket's source's.
pub(super) fn check_region(env: &Env<'_>, v: &Verified, att: &Attached) -> Result<(), S3Error> {
    let region = v.scope.split('/').nth(1).unwrap_or("");
    let target = &env.settings.target_creds.region;
    if region != target && region != att.source_creds.region {
        return Err(S3Error::new(
            Code::AuthorizationHeaderMalformed,
            format!(
                "the credential scope names region {region:?}; this endpoint expects {target:?}"
            ),
        ));
    }
    Ok(())
}

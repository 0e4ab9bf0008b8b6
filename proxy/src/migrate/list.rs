//! Merged listings: ListObjects v1/v2 and ListMultipartUploads over both
//! sides. The merge is `crate::listing`; this is its upstream end, one
//! signed page request to one side at a time.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::proxy::Session;

use super::wire::reply;
use super::{Call, Services};
use crate::listing::{self, Kind, Lister};
use crate::resign::canonical_target;
use crate::s3error::{Code, S3Error};
use crate::upstream::fetch::{Side, error_class, error_code};
use ferry_s3::ErrorClass;
use ferry_s3::percent::uri_encode;

/// The largest listing page an upstream may answer with.
const MAX_PAGE: usize = 8 << 20;

struct SideLister<'a> {
    svc: &'a Services,
    side: &'a Side,
}

#[async_trait]
impl Lister for SideLister<'_> {
    async fn list(&self, query: &[(String, String)]) -> Result<Bytes, S3Error> {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                let k = uri_encode(k.as_bytes(), false);
                if v.is_empty() {
                    k
                } else {
                    format!("{k}={}", uri_encode(v.as_bytes(), false))
                }
            })
            .collect();
        let target = canonical_target(
            &format!("/{}", uri_encode(self.side.bucket.as_bytes(), false)),
            &q.join("&"),
        )?;
        let (status, body) = self.svc.fetcher.get(self.side, &target, MAX_PAGE).await?;
        if status == 200 {
            return Ok(body);
        }
        // Never a partial or empty listing: a side that cannot list makes
        // the whole listing unavailable. A bucket missing on the target is
        // missing for the client, as for every other operation; missing on
        // the source, it is an outage (503).
        if error_class(status, &body) == ErrorClass::NoSuchBucket {
            return Err(if self.side.label == "target" {
                S3Error::new(Code::NoSuchBucket, "The specified bucket does not exist")
            } else {
                super::wire::source_bucket_missing()
            });
        }
        let code = error_code(&body).unwrap_or_else(|| format!("HTTP {status}"));
        Err(crate::upstream::fetch::unavailable(
            self.side.label,
            format!("listing answered {code}"),
        ))
    }
}

pub async fn serve(
    svc: &Services,
    session: &mut Session,
    call: &Call,
    kind: Kind,
) -> Result<(), S3Error> {
    let target = SideLister {
        svc,
        side: &call.target,
    };
    let source = SideLister {
        svc,
        side: &call.source,
    };
    let xml = listing::merged(
        kind,
        &target,
        &source,
        &call.bucket,
        &call.raw_query,
        &svc.token_key,
    )
    .await?;
    reply(
        session,
        200,
        &[("content-type", "application/xml".to_owned())],
        xml,
    )
    .await
}

//! GET and HEAD of an object, or a read of one of its sub-resources
//! (`?tagging`, `?acl`, `?attributes`, …): the target first; on NoSuchKey
//! or NoSuchVersion, the source.
//! Range, conditional headers and `partNumber` go to whichever side serves
//! the object, so they mean the same as on one store.

use pingora::proxy::Session;

use super::wire::{pass_through, reply, source_bucket_missing, source_failed, source_passes};
use super::{Call, Services};
use crate::metrics;
use crate::s3error::S3Error;
use crate::upstream::fetch::{Body, Request, error_class};
use ferry_s3::ErrorClass;
use ferry_s3::percent::query_has;

pub async fn serve(svc: &Services, session: &mut Session, call: &Call) -> Result<(), S3Error> {
    let req = |target| Request {
        method: call.method.as_str(),
        target,
        headers: call.headers.clone(),
        body: Body::Empty,
    };
    let mut r = svc
        .fetcher
        .send(&call.target, req(&call.target_path))
        .await?;
    // A version id of the source's history means nothing to the target,
    // which answers NoSuchVersion, or 400 when its own ids look otherwise
    // (`InvalidArgument: Invalid version id`); either way the source is
    // asked, so that a GET and a HEAD of a version agree.
    let versioned = query_has(&call.raw_query, "versionId");
    if r.status == 404 || (versioned && r.status == 400) {
        // A HEAD answer has no body to name the error: a 404 to a HEAD of
        // an object is the absence of the key.
        let head = call.method == "HEAD";
        let body = if head {
            bytes::Bytes::new()
        } else {
            r.body(64 * 1024).await?
        };
        // A HEAD's bare 404 is NotFound; its bare 400 (a version id the
        // target cannot read) is BadRequest, as a GET's InvalidArgument.
        let missing = matches!(
            error_class(r.status, &body),
            ErrorClass::NotFound | ErrorClass::BadRequest
        );
        let status = r.status;
        // Read to its end: the connection goes back to the pool, so a
        // fallback costs one round trip, not a new connection.
        svc.fetcher.release(r).await;
        if missing {
            let mut s = svc
                .fetcher
                .send(&call.source, req(&call.source_path))
                .await
                .inspect_err(|_| metrics::migrate_read(&call.bucket, "unavailable"))?;
            if !source_passes(s.status) {
                metrics::migrate_read(&call.bucket, "unavailable");
                return Err(source_failed(s.status));
            }
            if s.status == 404 && call.method != "HEAD" {
                // The source's own 404: a missing key passes on as it is;
                // a missing bucket is the source's fault, never the key's
                // absence.
                let body = s.body(64 * 1024).await?;
                svc.fetcher.release(s).await;
                if error_class(404, &body) == ErrorClass::NoSuchBucket {
                    metrics::migrate_read(&call.bucket, "unavailable");
                    return Err(source_bucket_missing());
                }
                metrics::migrate_read(&call.bucket, "source");
                return reply(
                    session,
                    404,
                    &[("content-type", "application/xml".to_owned())],
                    body,
                )
                .await;
            }
            metrics::migrate_read(&call.bucket, "source");
            return pass_through(&svc.fetcher, session, s).await;
        }
        // Another 404 (NoSuchBucket) or 400: the target's answer stands,
        // as it was read.
        return reply(
            session,
            status,
            &[("content-type", "application/xml".to_owned())],
            body,
        )
        .await;
    }
    metrics::migrate_read(&call.bucket, "target");
    pass_through(&svc.fetcher, session, r).await
}

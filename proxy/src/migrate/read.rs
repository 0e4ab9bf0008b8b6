//! GET and HEAD of an object: the target first; on NoSuchKey, the source.
//! Range, conditional headers and `partNumber` go to whichever side serves
//! the object, so they mean the same as on one store.

use pingora::proxy::Session;

use super::wire::{pass_through, reply, source_failed, source_passes};
use super::{Call, Services};
use crate::fetch::{Body, Request, error_code};
use crate::metrics;
use crate::s3error::S3Error;

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
    if r.status == 404 {
        // A HEAD answer has no body to name the error: a 404 to a HEAD of
        // an object is the absence of the key.
        let body = if call.method == "HEAD" {
            bytes::Bytes::new()
        } else {
            r.body(64 * 1024).await?
        };
        let missing = call.method == "HEAD" || error_code(&body).as_deref() == Some("NoSuchKey");
        // Read to its end: the connection goes back to the pool, so a
        // fallback costs one round trip, not a new connection.
        svc.fetcher.release(r).await;
        if missing {
            let s = svc
                .fetcher
                .send(&call.source, req(&call.source_path))
                .await
                .inspect_err(|_| metrics::migrate_read(&call.bucket, "unavailable"))?;
            if !source_passes(s.status) {
                metrics::migrate_read(&call.bucket, "unavailable");
                return Err(source_failed(s.status));
            }
            metrics::migrate_read(&call.bucket, "source");
            return pass_through(svc, session, s).await;
        }
        // Another 404 (NoSuchBucket): the target's answer stands, as it
        // was read.
        return reply(
            session,
            404,
            &[("content-type", "application/xml".to_owned())],
            body,
        )
        .await;
    }
    metrics::migrate_read(&call.bucket, "target");
    pass_through(svc, session, r).await
}

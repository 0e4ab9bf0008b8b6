//! Multipart uploads across the switch to migrate mode. Uploads in flight
//! on the source when the mode was set (the bucket's snapshot) finish on
//! the source; new ones are on the target; an upload id neither side is
//! known for is asked of the target, then of the source, so an upload begun
//! in the instant of the switch is not lost.
//!
//! A source upload completed now is the newest write of its key, while the
//! target may hold an older copy the copier made, which reads would serve
//! first. So the completed object is streamed to the target before the
//! client hears of it; if that fails (or the object is over 5 GiB), the
//! target's copy is removed instead, so that reads fall back to the source
//! until the copier brings the object over.

use std::collections::HashMap;
use std::sync::Mutex;

use pingora::proxy::Session;

use super::merged::{Conditions, Key, Verdict, as_create_only, head, judge, judge_current};
use super::transfer::{PutIf, Transfer};
use super::wire::{pass_through, read_body, reply_xml};
use super::{Call, Services};
use crate::resign::canonical_target;
use crate::s3error::{Code, S3Error};
use crate::upstream::fetch::{Body, Request, Side, error_class};
use ferry_s3::ErrorClass;

/// Remembered answers are dropped wholesale past this many uploads.
const REMEMBERED: usize = 100_000;

/// Which side each upload id lives on, as found out (bounded).
#[derive(Default)]
pub struct UploadSides {
    on_source: Mutex<HashMap<String, bool>>,
}

/// The two sides' paths of one upload request.
pub struct UploadPaths<'a> {
    pub source_uploads: &'a [String],
    pub target: &'a Side,
    pub source: &'a Side,
    /// Canonical path of the object (no query) on each side.
    pub target_object: &'a str,
    pub source_object: &'a str,
}

impl UploadSides {
    /// Whether upload `id` is on the source.
    pub async fn on_source(
        &self,
        svc: &Services,
        p: &UploadPaths<'_>,
        id: &str,
    ) -> Result<bool, S3Error> {
        if p.source_uploads.iter().any(|u| u == id) {
            return Ok(true);
        }
        if let Some(s) = self.on_source.lock().expect("upload sides").get(id) {
            return Ok(*s);
        }
        let on_source = match probe(svc, p.target, p.target_object, id).await? {
            Some(true) => false,
            Some(false) => probe(svc, p.source, p.source_object, id).await? == Some(true),
            // The target could not say: keep to the target, which answers
            // the client itself.
            None => return Ok(false),
        };
        let mut m = self.on_source.lock().expect("upload sides");
        if m.len() >= REMEMBERED {
            m.clear();
        }
        m.insert(id.to_owned(), on_source);
        Ok(on_source)
    }
}

/// Whether `side` knows upload `id` (ListParts with one part): `None` when
/// it answered neither yes nor NoSuchUpload.
async fn probe(
    svc: &Services,
    side: &Side,
    object: &str,
    id: &str,
) -> Result<Option<bool>, S3Error> {
    let query = format!(
        "max-parts=1&uploadId={}",
        ferry_s3::percent::uri_encode(id.as_bytes(), false)
    );
    let target = canonical_target(object, &query)?;
    let (status, body) = svc.fetcher.get(side, &target, 1 << 20).await?;
    Ok(match status {
        200 => Some(true),
        404 if error_class(404, &body) == ErrorClass::NoSuchUpload => Some(false),
        _ => None,
    })
}

fn paths(call: &Call) -> (String, String) {
    let strip = |p: &str| p.split_once('?').map_or(p, |(a, _)| a).to_owned();
    (strip(&call.target_path), strip(&call.source_path))
}

pub(super) async fn side_of<'c>(
    svc: &Services,
    call: &'c Call,
    id: &str,
) -> Result<(&'c Side, &'c str, bool), S3Error> {
    let (t, s) = paths(call);
    let p = UploadPaths {
        source_uploads: &call.source_uploads,
        target: &call.target,
        source: &call.source,
        target_object: &t,
        source_object: &s,
    };
    Ok(if svc.upload_sides.on_source(svc, &p, id).await? {
        (&call.source, call.source_path.as_str(), true)
    } else {
        (&call.target, call.target_path.as_str(), false)
    })
}

/// ListParts and AbortMultipartUpload: to the upload's side, unchanged.
pub async fn no_body(
    svc: &Services,
    session: &mut Session,
    call: &Call,
    id: &str,
) -> Result<(), S3Error> {
    let (side, path, _) = side_of(svc, call, id).await?;
    let r = svc
        .fetcher
        .send(
            side,
            Request {
                method: &call.method,
                target: path,
                headers: call.headers.clone(),
                body: Body::Empty,
            },
        )
        .await?;
    pass_through(&svc.fetcher, session, r).await
}

/// Whether a 200 answer to CompleteMultipartUpload really succeeded (S3
/// may answer 200 and put the error in the body).
fn completed(status: u16, body: &[u8]) -> bool {
    status == 200 && !String::from_utf8_lossy(body).contains("<Error>")
}

/// CompleteMultipartUpload on the upload's side; for a source upload, the
/// object reaches the target before the client is answered.
pub async fn complete(
    svc: &Services,
    session: &mut Session,
    mut call: Call,
    id: &str,
) -> Result<(), S3Error> {
    let body = read_body(session, &mut call, 4 << 20).await?;
    let (side, path, on_source) = side_of(svc, &call, id).await?;
    let mut headers = call.headers.clone();
    headers.retain(|(n, _)| n != "content-md5");
    // Conditions are judged against the object clients see, as a
    // PutObject's are. A target upload then carries them (or a create) to
    // the target; a source upload's are not the source's to judge (its
    // object may be older than the target's), and its copy to the target
    // below is conditional anyway.
    let (t, s) = paths(&call);
    let conditions = Conditions::of(&headers);
    if conditions.any() {
        let key = Key {
            target: call.target.clone(),
            source: call.source.clone(),
            target_object: t.clone(),
            source_object: s.clone(),
        };
        if on_source {
            judge_current(svc, &key, &conditions).await?;
            headers.retain(|(n, _)| n != "if-match" && n != "if-none-match");
        } else if judge(svc, &key, &conditions).await? == Verdict::CreateOnly {
            as_create_only(&mut headers);
        }
    }
    // What the target holds before a source upload completes: the
    // completed object replaces exactly that, so a write that lands on the
    // target meanwhile (newer than the completion) is never overwritten.
    let before = match on_source {
        true => Some(head(svc, &call.target, &t).await?),
        false => None,
    };
    let (status, answer) = svc
        .fetcher
        .fetch(
            side,
            Request {
                method: "POST",
                target: path,
                headers,
                body: Body::Full(body),
            },
            1 << 20,
        )
        .await?;
    let key = call.key.clone().unwrap_or_default();
    if completed(status, &answer) {
        if let Some(before) = before {
            super::test_pause("complete", &key).await;
            let put_if = before.clone().map_or(PutIf::Absent, PutIf::Still);
            let copied = Transfer {
                from: &call.source,
                from_object: &s,
                to: &call.target,
                to_object: &t,
                headers: None,
                read_if: Vec::new(),
                put_if,
                whole: true,
                with_tags: true,
            }
            .run(svc)
            .await;
            match copied {
                Ok(_) => {}
                // A client wrote the key on the target meanwhile: that
                // write is newer than this completion, and stays.
                Err(e) if e.code == Code::PreconditionFailed => {
                    tracing::info!(bucket = %call.bucket, key = %key,
                        "a source upload completed while a client wrote the key on the target; the newer write stays");
                }
                // Without the target's older copy, reads fall back to the
                // source, which has the new object: the completion stands
                // and the copier brings the object over later. Only if
                // that copy cannot be removed either would a read be stale.
                Err(e) if !remove_stale(svc, &call.target, &t, before.as_deref()).await => {
                    tracing::error!(bucket = %call.bucket, key = %key, error = %e,
                        "a source upload completed, but the target still holds an older copy");
                    return Err(S3Error::new(
                        Code::ServiceUnavailable,
                        "the upload completed on the source, but the target's older copy could not be replaced or removed; please retry",
                    ));
                }
                Err(e) => {
                    tracing::warn!(bucket = %call.bucket, key = %key, error = %e,
                        "a source upload completed and was not copied to the target; reads are served from the source until the copier brings it over");
                }
            }
        }
        if let Some(j) = &svc.journal {
            j.clear(&svc.fetcher, &call.bucket, &key).await?;
        }
    } else if on_source && !(200..500).contains(&status) {
        return Err(super::wire::source_failed(status));
    }
    let xml = String::from_utf8_lossy(&answer).into_owned();
    reply_xml(session, status, xml).await
}

/// Deletes the target's copy of a key whose newest version is on the
/// source, so that reads fall back to it: only the copy that was there
/// before (`If-Match`), never a write that landed since. True when that
/// copy is gone (or there was none).
async fn remove_stale(svc: &Services, target: &Side, object: &str, etag: Option<&str>) -> bool {
    let Some(etag) = etag else {
        return true;
    };
    let r = svc
        .fetcher
        .send(
            target,
            Request {
                method: "DELETE",
                target: object,
                headers: vec![("if-match".into(), etag.to_owned())],
                body: Body::Empty,
            },
        )
        .await;
    match r {
        // 412: replaced meanwhile by a newer write, which stays.
        Ok(mut r) if (200..300).contains(&r.status) || matches!(r.status, 404 | 412) => {
            let _ = r.body(64 * 1024).await;
            svc.fetcher.release(r).await;
            true
        }
        Ok(r) => {
            tracing::error!(
                status = r.status,
                object,
                "the target's stale copy could not be removed"
            );
            false
        }
        Err(e) => {
            tracing::error!(error = %e, object, "the target's stale copy could not be removed");
            false
        }
    }
}

/// For the proxied UploadPart: whether it goes to the source.
pub async fn part_on_source(
    svc: &Services,
    p: &UploadPaths<'_>,
    id: &str,
) -> Result<bool, S3Error> {
    svc.upload_sides.on_source(svc, p, id).await
}

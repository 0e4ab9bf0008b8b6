//! CopyObject and UploadPartCopy in migrate mode. A copy whose source
//! object is on the target runs on the target; otherwise the object is
//! read from its source and written to the target (`transfer`), with the
//! metadata the request's directive asks for.

use pingora::proxy::Session;

use super::transfer::{PutIf, Transfer, object_header};
use super::wire::{pass_through, reply_xml};
use super::{Call, Services};
use crate::copy_from::CopyFrom;
use crate::s3error::{Code, S3Error, xml_escape};
use crate::upstream::fetch::{Body, Request, Side};
use ferry_s3::ErrorClass;
use ferry_s3::percent::uri_encode;

/// Where the copy source lives (set for every copy; see `copy_from`).
fn copy_from(call: &Call) -> Result<&CopyFrom, S3Error> {
    call.copy_from
        .as_ref()
        .ok_or_else(|| S3Error::new(Code::InternalError, "a copy without its copy source"))
}

/// The copy source's fallback store, or the NoSuchKey of a copy source
/// that lives on the target only and is not there.
fn fallback(from: &CopyFrom) -> Result<&Side, S3Error> {
    from.source
        .as_ref()
        .ok_or_else(|| S3Error::new(Code::NoSuchKey, "The specified key does not exist."))
}

/// The client's `x-amz-copy-source-if-*`, as plain conditions on the
/// source read.
fn copy_conditions(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| {
            let plain = n.strip_prefix("x-amz-copy-source-if-")?;
            Some((format!("if-{plain}"), v.clone()))
        })
        .collect()
}

/// What an UploadPartCopy reads of its copy source: the client's
/// `x-amz-copy-source-if-*` and `x-amz-copy-source-range`.
fn part_read(call: &Call) -> Vec<(String, String)> {
    let mut read = copy_conditions(&call.headers);
    if let Some((_, range)) = call
        .headers
        .iter()
        .find(|(n, _)| n == "x-amz-copy-source-range")
    {
        read.push(("range".into(), range.clone()));
    }
    read
}

/// UploadPartCopy. The copy source is read as a client reads it, target
/// first:
/// - into a source upload, a copy source on the target (written since the
///   switch, so newer than any source copy) is streamed across as an
///   UploadPart; one only on the source is copied by the source itself;
/// - into a target upload, the target copies it itself; one only on the
///   source is streamed across.
pub async fn part(
    svc: &Services,
    session: &mut Session,
    call: &Call,
    upload_id: &str,
    source_key: &str,
) -> Result<(), S3Error> {
    let (side, path, on_source) = super::uploads::side_of(svc, call, upload_id).await?;
    let copy = copy_from(call)?;
    if on_source {
        let from = copy.target.object(source_key)?;
        let read = part_read(call);
        match Transfer::part(&copy.target, &from, side, path, read)
            .run(svc)
            .await
        {
            Ok(etag) => return reply_part(session, &etag).await,
            Err(e) if e.code == Code::NoSuchKey => {}
            Err(e) => return Err(e),
        }
    }
    let mut headers = call.headers.clone();
    if on_source {
        // Only on the copy source's own source: that store copies it
        // itself, if it is the store of this upload.
        let from = fallback(copy)?;
        if from.upstream.authority != call.source.upstream.authority
            || from.creds.access_key != call.source.creds.access_key
        {
            return Err(S3Error::new(
                Code::NotImplemented,
                "this copy source is only on another source than this upload's, and no one store holds both; copy the part once the copy source is on the target",
            ));
        }
        for (n, v) in headers.iter_mut() {
            if n == "x-amz-copy-source" {
                *v = format!(
                    "/{}/{}",
                    uri_encode(from.bucket.as_bytes(), false),
                    uri_encode(source_key.as_bytes(), true)
                );
            }
        }
    }
    let mut r = svc
        .fetcher
        .send(
            side,
            Request {
                method: "PUT",
                target: path,
                headers,
                body: Body::Empty,
            },
        )
        .await?;
    if on_source || r.status != 404 {
        return pass_through(&svc.fetcher, session, r).await;
    }
    // Not the upload (found on the target just now): the copy source. Some
    // stores (moto) answer that 404 without an error code.
    let (class, _) = r.error().await?;
    svc.fetcher.release(r).await;
    if class == ErrorClass::NoSuchUpload {
        return Err(S3Error::new(
            Code::NoSuchUpload,
            "The specified multipart upload does not exist.",
        ));
    }
    let source = fallback(copy)?;
    let from = source.object(source_key)?;
    let read = part_read(call);
    let etag = Transfer::part(source, &from, &call.target, path, read)
        .run(svc)
        .await?;
    reply_part(session, &etag).await
}

/// The CopyPartResult of a part the proxy streamed across itself.
async fn reply_part(session: &mut Session, etag: &str) -> Result<(), S3Error> {
    reply_xml(
        session,
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>{}</LastModified><ETag>{}</ETag></CopyPartResult>",
            now_rfc3339(),
            xml_escape(etag)
        ),
    )
    .await
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub async fn serve(
    svc: &Services,
    session: &mut Session,
    call: &Call,
    source_key: &str,
) -> Result<(), S3Error> {
    let key = call.key.clone().unwrap_or_default();
    // On the target, as asked; `versionId=null` (the current object, as
    // `classify` allowed it) means no version id to a store that may keep
    // versions of its own.
    let headers = call
        .headers
        .iter()
        .map(
            |(n, v)| match (n.as_str(), v.strip_suffix("?versionId=null")) {
                ("x-amz-copy-source", Some(current)) => (n.clone(), current.to_owned()),
                _ => (n.clone(), v.clone()),
            },
        )
        .collect();
    let mut r = svc
        .fetcher
        .send(
            &call.target,
            Request {
                method: "PUT",
                target: &call.target_path,
                headers,
                body: Body::Empty,
            },
        )
        .await?;
    if r.status != 404 {
        if r.status == 200
            && let Some(j) = &svc.journal
        {
            let body = r.body(1 << 20).await?;
            svc.fetcher.release(r).await;
            if !String::from_utf8_lossy(&body).contains("<Error>") {
                j.clear(&svc.fetcher, &call.bucket, &key).await?;
            }
            return reply_xml(session, 200, String::from_utf8_lossy(&body).into_owned()).await;
        }
        return pass_through(&svc.fetcher, session, r).await;
    }
    let (class, code) = r.error().await?;
    svc.fetcher.release(r).await;
    if class != ErrorClass::NotFound {
        return Err(S3Error::new(
            Code::NoSuchBucket,
            format!("the target answered {code}"),
        ));
    }
    // The copy source is still only on its source: stream it across.
    let source = fallback(copy_from(call)?)?;
    let from = source.object(source_key)?;
    let to = call
        .target_path
        .split_once('?')
        .map_or(call.target_path.as_str(), |(p, _)| p);
    let replace = call
        .headers
        .iter()
        .any(|(n, v)| n == "x-amz-metadata-directive" && v.eq_ignore_ascii_case("REPLACE"));
    let replace_tags = call
        .headers
        .iter()
        .any(|(n, v)| n == "x-amz-tagging-directive" && v.eq_ignore_ascii_case("REPLACE"));
    // The object's headers as the directive says, and its tags as theirs
    // says (the request's, or the copy source's).
    let mut headers = replace.then(|| {
        call.headers
            .iter()
            .filter(|(n, _)| object_header(n))
            .cloned()
            .collect::<Vec<_>>()
    });
    if replace_tags {
        let tagging = call.headers.iter().filter(|(n, _)| n == "x-amz-tagging");
        headers
            .get_or_insert_with(Vec::new)
            .extend(tagging.cloned());
    }
    let etag = Transfer {
        from: source,
        from_object: &from,
        to: &call.target,
        to_object: to,
        headers,
        read_if: copy_conditions(&call.headers),
        put_if: PutIf::Always,
        whole: true,
        with_tags: !replace_tags,
    }
    .run(svc)
    .await?;
    if let Some(j) = &svc.journal {
        j.clear(&svc.fetcher, &call.bucket, &key).await?;
    }
    reply_xml(
        session,
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>{}</LastModified><ETag>{}</ETag></CopyObjectResult>",
            now_rfc3339(),
            xml_escape(&etag)
        ),
    )
    .await
}

//! CopyObject in migrate mode, and the streamed source-to-target transfer
//! it shares with completed source uploads. A copy whose source object is
//! on the target runs on the target; otherwise the object is read from the
//! source and written to the target, with the metadata the request's
//! directive asks for.

use pingora::proxy::Session;

use super::wire::{pass_through, reply_xml, source_failed, source_passes};
use super::{Call, Services, object_on};
use crate::copy_from::CopyFrom;
use crate::fetch::{Body, Request, Side, error_code};
use crate::s3error::{Code, S3Error, xml_escape};
use ferry_s3::ErrorClass;
use ferry_s3::percent::uri_encode;

/// The largest object one PUT may carry.
const MAX_PUT: u64 = 5 << 30;

/// Object headers that travel with a copied object.
fn object_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-encoding"
            | "content-disposition"
            | "content-language"
            | "cache-control"
            | "expires"
            | "x-amz-website-redirect-location"
    ) || name.starts_with("x-amz-meta-")
}

/// The condition of a transfer's write to the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutIf {
    /// Whatever is there is replaced.
    Always,
    /// `If-None-Match: *`: only if nothing is there.
    Absent,
    /// `If-Match: <etag>`: only if that object is still there.
    Still(String),
}

/// Streams `from_object` on `from` to `to_object` on `to`, with the
/// source's object headers, or `headers` instead when given (a REPLACE
/// directive), reading with `conditions` and writing if `put_if` holds (a
/// write whose condition failed is `PreconditionFailed`). Returns the new
/// ETag.
#[allow(clippy::too_many_arguments)]
pub(super) async fn transfer_if(
    svc: &Services,
    from: &Side,
    from_object: &str,
    to: &Side,
    to_object: &str,
    headers: Option<Vec<(String, String)>>,
    conditions: Vec<(String, String)>,
    put_if: PutIf,
) -> Result<String, S3Error> {
    let mut get = svc
        .fetcher
        .send(
            from,
            Request {
                method: "GET",
                target: from_object,
                headers: conditions,
                body: Body::Empty,
            },
        )
        .await?;
    if !matches!(get.status, 200 | 206) {
        let status = get.status;
        let code = get.error_code().await?;
        return Err(match (status, code.as_str()) {
            (404, _) => S3Error::new(Code::NoSuchKey, "The specified key does not exist."),
            (412, _) => S3Error::new(
                Code::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            ),
            (s, _) if source_passes(s) => S3Error::new(
                Code::InvalidRequest,
                format!("the copy source answered {code}"),
            ),
            (s, _) => source_failed(s),
        });
    }
    let len: u64 = get
        .header_str("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| crate::fetch::unavailable(from.label, "an object without a length"))?;
    if len > MAX_PUT {
        return Err(S3Error::new(
            Code::NotImplemented,
            "copying objects over 5 GiB across stores is not supported yet",
        ));
    }
    let mut put_headers = headers.unwrap_or_else(|| {
        get.header()
            .headers
            .iter()
            .filter(|(n, _)| object_header(n.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect()
    });
    match &put_if {
        PutIf::Always => {}
        PutIf::Absent => put_headers.push(("if-none-match".into(), "*".into())),
        PutIf::Still(etag) => put_headers.push(("if-match".into(), etag.clone())),
    }
    let mut put = svc
        .fetcher
        .start(
            to,
            Request {
                method: "PUT",
                target: to_object,
                headers: put_headers,
                body: Body::Stream(len),
            },
        )
        .await?;
    let mut sent = 0u64;
    while let Some(b) = get.chunk().await? {
        sent += b.len() as u64;
        put.write(b, false).await?;
    }
    if sent != len {
        return Err(crate::fetch::unavailable(
            from.label,
            "the object was cut short",
        ));
    }
    svc.fetcher.release(get).await;
    let mut r = put.response().await?;
    let status = r.status;
    let etag = r.header_str("etag").unwrap_or_default().to_owned();
    let body = r.body(64 * 1024).await?;
    svc.fetcher.release(r).await;
    if status == 412 && put_if != PutIf::Always {
        return Err(S3Error::new(
            Code::PreconditionFailed,
            "the object on the target changed meanwhile",
        ));
    }
    if status != 200 {
        let code = error_code(&body).unwrap_or_else(|| format!("HTTP {status}"));
        return Err(S3Error::new(
            Code::ServiceUnavailable,
            format!(
                "the {} refused the copied object ({code}); please retry",
                to.label
            ),
        ));
    }
    Ok(etag)
}

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
        let from = object_on(&copy.target, source_key)?;
        let read = part_read(call);
        match transfer_if(
            svc,
            &copy.target,
            &from,
            side,
            path,
            Some(Vec::new()),
            read,
            PutIf::Always,
        )
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
        return pass_through(svc, session, r).await;
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
    let from = object_on(source, source_key)?;
    let read = part_read(call);
    let etag = transfer_if(
        svc,
        source,
        &from,
        &call.target,
        path,
        Some(Vec::new()),
        read,
        PutIf::Always,
    )
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
        return pass_through(svc, session, r).await;
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
    let from = object_on(source, source_key)?;
    let to = call
        .target_path
        .split_once('?')
        .map_or(call.target_path.as_str(), |(p, _)| p);
    let replace = call
        .headers
        .iter()
        .any(|(n, v)| n == "x-amz-metadata-directive" && v.eq_ignore_ascii_case("REPLACE"));
    let headers = replace.then(|| {
        call.headers
            .iter()
            .filter(|(n, _)| object_header(n))
            .cloned()
            .collect()
    });
    let etag = transfer_if(
        svc,
        source,
        &from,
        &call.target,
        to,
        headers,
        copy_conditions(&call.headers),
        PutIf::Always,
    )
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

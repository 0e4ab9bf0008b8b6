//! The client side of migrate-mode operations: reading the client's body
//! (checked against its signature), and writing answers, whole or streamed
//! from an upstream response.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use sha2::{Digest, Sha256};

use super::Call;
use crate::s3error::{Code, S3Error};
use crate::upstream::fetch::{Fetcher, Response, unavailable};

/// Headers that belong to one connection, not to the object.
const HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "upgrade",
];

fn internal(e: impl std::fmt::Display) -> S3Error {
    S3Error::new(Code::InternalError, format!("writing the answer: {e}"))
}

/// The next piece of the client's body; `None` at its end.
pub async fn body_piece(session: &mut Session) -> Result<Option<Bytes>, S3Error> {
    session.read_request_body().await.map_err(|e| {
        S3Error::new(
            Code::IncompleteBody,
            format!("reading the request body: {e}"),
        )
    })
}

/// Reads the client's whole body (for small XML bodies only), decoding
/// `aws-chunked` and checking the signed payload hash, as the upstream
/// would have.
pub async fn read_body(
    session: &mut Session,
    call: &mut Call,
    limit: usize,
) -> Result<Bytes, S3Error> {
    let mut out = BytesMut::new();
    loop {
        let piece = body_piece(session).await?;
        let end = piece.is_none();
        let piece = piece.unwrap_or_default();
        match call.decoder.as_mut() {
            Some(dec) => {
                for p in dec.feed(&piece)? {
                    out.extend_from_slice(&p);
                }
                if end {
                    dec.finish()?;
                }
            }
            None => out.extend_from_slice(&piece),
        }
        if out.len() > limit {
            return Err(S3Error::new(
                Code::InvalidRequest,
                format!("the request body is longer than {limit} bytes"),
            ));
        }
        if end {
            break;
        }
    }
    let h = call.payload_hash.as_str();
    if h.len() == 64 && h != hex::encode(Sha256::digest(&out)) {
        return Err(S3Error::new(
            Code::BadDigest,
            "the body does not match x-amz-content-sha256",
        ));
    }
    Ok(out.freeze())
}

/// Writes a whole answer.
pub async fn reply(
    session: &mut Session,
    status: u16,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(), S3Error> {
    let head = session.req_header().method == "HEAD";
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 1)).map_err(internal)?;
    for (n, v) in headers {
        resp.insert_header(n.to_string(), v.as_str())
            .map_err(internal)?;
    }
    resp.insert_header("content-length", body.len().to_string())
        .map_err(internal)?;
    session
        .write_response_header(Box::new(resp), head || body.is_empty())
        .await
        .map_err(internal)?;
    if !head && !body.is_empty() {
        session
            .write_response_body(Some(body), true)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

/// An XML answer.
pub async fn reply_xml(session: &mut Session, status: u16, xml: String) -> Result<(), S3Error> {
    reply(
        session,
        status,
        &[("content-type", "application/xml".to_owned())],
        Bytes::from(xml),
    )
    .await
}

/// Passes an upstream response through unchanged: status, headers and the
/// body as it streams. Once the head is written an upstream failure can
/// only cut the body short, which the client sees as a short read.
pub async fn pass_through(
    fetcher: &Fetcher,
    session: &mut Session,
    mut r: Response,
) -> Result<(), S3Error> {
    let up = r.header();
    let mut resp = ResponseHeader::build(up.status, Some(up.headers.len())).map_err(internal)?;
    let chunked = up
        .headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    for (n, v) in up.headers.iter() {
        if !HOP.contains(&n.as_str()) {
            resp.append_header(n.clone(), v.clone()).map_err(internal)?;
        }
    }
    if chunked {
        resp.insert_header("transfer-encoding", "chunked")
            .map_err(internal)?;
    }
    let no_body = session.req_header().method == "HEAD"
        || matches!(r.status, 204 | 304)
        || up.headers.get("content-length").is_some_and(|v| v == "0");
    session
        .write_response_header(Box::new(resp), no_body)
        .await
        .map_err(internal)?;
    if no_body {
        fetcher.release(r).await;
        return Ok(());
    }
    loop {
        match r.chunk().await {
            Ok(Some(b)) => session
                .write_response_body(Some(b), false)
                .await
                .map_err(internal)?,
            Ok(None) => break,
            Err(e) => {
                // The head is out: all that is left is to break off.
                session.set_keepalive(None);
                tracing::warn!(error = %e, "upstream broke off mid-body");
                return Ok(());
            }
        }
    }
    session
        .write_response_body(None, true)
        .await
        .map_err(internal)?;
    fetcher.release(r).await;
    Ok(())
}

/// What a source answer other than success means for the client. Not
/// found and the client's own conditions pass through; anything else (the
/// source refusing the proxy's credentials, failing) is the source being
/// unavailable, never an absence.
pub fn source_passes(status: u16) -> bool {
    matches!(status, 200..=299 | 304 | 400 | 404 | 412 | 416)
}

/// The 503 for a source whose bucket is gone: in migrate mode the source
/// must hold the bucket until detach, so this is an outage, not an answer.
pub fn source_bucket_missing() -> S3Error {
    S3Error::new(
        Code::ServiceUnavailable,
        "the source bucket does not exist; it must stay until the bucket is detached, please retry once it is back",
    )
}

/// The 503 for a source that answered with a failure.
pub fn source_failed(status: u16) -> S3Error {
    unavailable("source", format!("HTTP {status}"))
}

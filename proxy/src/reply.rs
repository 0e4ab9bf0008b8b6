//! What the client is answered when the proxy itself refuses a request,
//! or a proxied one fails: always S3 XML, never a Rust error string.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, Result};

use crate::s3error::{Code, S3Error};

/// Writes an S3 XML error and ends the request.
pub async fn respond(session: &mut Session, e: &S3Error, id: &str) -> Result<()> {
    let req = session.req_header();
    let head = req.method == "HEAD";
    let body = Bytes::from(e.to_xml(req.uri.path(), id));
    let mut resp = ResponseHeader::build(e.code.status(), Some(4))?;
    resp.insert_header("content-type", "application/xml")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("x-amz-request-id", id)?;
    // The request body may not have been read: do not reuse the connection.
    session.set_keepalive(None);
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// The S3 error for a proxied request that failed: an upstream that fails
/// is unavailable (503), a client that broke off sent an incomplete body.
pub fn failure(e: &Error) -> S3Error {
    match e.esource() {
        ErrorSource::Upstream => S3Error::new(
            Code::ServiceUnavailable,
            "The upstream S3 service is unavailable; please retry.",
        ),
        ErrorSource::Downstream => S3Error::new(Code::IncompleteBody, "bad or incomplete request"),
        _ => S3Error::new(Code::InternalError, "internal error"),
    }
}

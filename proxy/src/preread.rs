//! The first chunk of an aws-chunked upload with signed chunks is verified
//! before anything goes upstream, so a client with a wrong key or a
//! tampered body is refused without the store seeing a request. Pingora
//! opens the upstream request before it reads any body, so this reads the
//! body ahead of it, up to the first verified chunk.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::migrate::wire::body_piece;
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;

/// What was read ahead, decoded and verified.
pub enum FirstChunk {
    /// More body is to come. These bytes go upstream before the rest.
    More(Bytes),
    /// The body ended within the read-ahead: this is all of it.
    Whole(Bytes),
}

/// Reads and verifies the body up to its first verified chunk. A client
/// that waits for `100 Continue` gets it here, from the proxy, since the
/// upstream is not asked yet.
pub async fn first_chunk(
    session: &mut Session,
    dec: &mut ChunkedDecoder,
) -> Result<FirstChunk, S3Error> {
    if expects_continue(session) {
        let head = ResponseHeader::build(100, Some(0)).map_err(|e| internal(&e))?;
        session
            .write_response_header(Box::new(head), false)
            .await
            .map_err(|e| internal(&e))?;
    }
    let mut out = BytesMut::new();
    loop {
        let Some(piece) = body_piece(session).await? else {
            dec.finish()?;
            return Ok(FirstChunk::Whole(out.freeze()));
        };
        for d in dec.feed(&piece)? {
            out.extend_from_slice(&d);
        }
        if session.is_body_done() {
            dec.finish()?;
            return Ok(FirstChunk::Whole(out.freeze()));
        }
        // The decoder yields a chunk's data only once its signature is
        // verified: anything out means the first chunk passed.
        if !out.is_empty() {
            return Ok(FirstChunk::More(out.freeze()));
        }
    }
}

fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn internal(e: &dyn std::fmt::Display) -> S3Error {
    S3Error::new(Code::InternalError, format!("answering 100 Continue: {e}"))
}

//! How the client's body is checked: by the signed payload hash, or chunk
//! by chunk by an aws-chunked decoder.

use pingora::http::RequestHeader;

use crate::headers::{DECODED_LENGTH, header};
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::{ChunkedDecoder, Signing};
use crate::sigv4::verify::{Payload, Verified};

/// The body as the upstream request carries it.
pub(super) struct Body {
    /// `x-amz-content-sha256` toward the upstream.
    pub payload_hash: String,
    /// Boxed: it is moved with the plan, and most requests have none.
    pub decoder: Option<Box<ChunkedDecoder>>,
    /// `x-amz-decoded-content-length`, for an aws-chunked body.
    pub decoded_length: Option<u64>,
}

pub(super) fn body(req: &RequestHeader, v: &Verified) -> Result<Body, S3Error> {
    let decoded_length = header(req, DECODED_LENGTH)
        .map(|v| v.trim().parse::<u64>())
        .transpose()
        .map_err(|_| S3Error::new(Code::InvalidArgument, "bad x-amz-decoded-content-length"))?;
    // Built only for a body signed chunk by chunk: most requests have none.
    let signing = || Signing::Signed {
        key: v.signing_key,
        amz_date: v.amz_date.clone(),
        scope: v.scope.clone(),
        prev: v.seed_signature.clone(),
    };
    let trailer = || header(req, "x-amz-trailer");
    let (payload_hash, decoder) = match &v.payload {
        Payload::Sha256(h) => (h.clone(), None),
        Payload::Unsigned => ("UNSIGNED-PAYLOAD".to_owned(), None),
        Payload::StreamingSigned => (
            "UNSIGNED-PAYLOAD".to_owned(),
            Some(Box::new(ChunkedDecoder::new(
                signing(),
                None,
                false,
                decoded_length,
            )?)),
        ),
        Payload::StreamingSignedTrailer => (
            "UNSIGNED-PAYLOAD".to_owned(),
            Some(Box::new(ChunkedDecoder::new(
                signing(),
                trailer(),
                true,
                decoded_length,
            )?)),
        ),
        Payload::StreamingUnsignedTrailer => (
            "UNSIGNED-PAYLOAD".to_owned(),
            Some(Box::new(ChunkedDecoder::new(
                Signing::Unsigned,
                trailer(),
                false,
                decoded_length,
            )?)),
        ),
    };
    if decoder.is_some() && decoded_length.is_none() {
        return Err(S3Error::new(
            Code::InvalidRequest,
            "aws-chunked bodies need x-amz-decoded-content-length",
        ));
    }
    Ok(Body {
        payload_hash,
        decoded_length: decoder.as_ref().and(decoded_length),
        decoder,
    })
}

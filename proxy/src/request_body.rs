//! The client's body on its way upstream through Pingora: an aws-chunked
//! body goes decoded, each chunk only once verified, with what was read
//! ahead (`preread`) first; one with a checksum trailer goes framed anew
//! with it (`rechunk`).

use bytes::{Bytes, BytesMut};

use crate::rechunk::Rechunker;
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;

/// Decodes one piece of the body. An `Err`: nothing of the bad chunk may
/// go upstream.
pub fn decode(
    dec: &mut ChunkedDecoder,
    rechunk: Option<&mut Rechunker>,
    ahead: Option<Bytes>,
    input: &[u8],
    end_of_stream: bool,
) -> Result<Bytes, S3Error> {
    let mut parts = dec.feed(input)?;
    if end_of_stream {
        dec.finish()?;
    }
    parts.splice(0..0, ahead);
    let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    match rechunk {
        Some(r) => {
            for p in parts {
                r.push(&p, &mut out);
            }
            if end_of_stream {
                let checksum = dec.verified_checksum().ok_or_else(|| {
                    S3Error::new(Code::IncompleteBody, "the checksum trailer is missing")
                })?;
                r.finish(checksum, &mut out);
            }
        }
        None => {
            for p in parts {
                out.extend_from_slice(&p);
            }
        }
    }
    Ok(out.freeze())
}

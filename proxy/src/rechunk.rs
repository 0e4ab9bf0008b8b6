//! The client's checksum trailer carried on to the store. A body sent with a
//! trailing checksum (`x-amz-trailer`, what boto3, the AWS CLI v2 and the
//! Rust SDK send by default) is decoded and verified by the proxy; it then
//! goes upstream framed anew as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, in
//! chunks of a fixed size so that its length is known before the first
//! byte, ending with the verified checksum. Without it a store loses the
//! checksum: it cannot keep it with the object, and it refuses the part of
//! a multipart upload created with a checksum algorithm (Garage:
//! "Requested checksum verification without providing checksum").
//!
//! Memory: one chunk (`CHUNK`) of pending bytes per request.

use bytes::{BufMut, BytesMut};

use crate::sigv4::chunked::ChecksumAlgo;

/// `x-amz-content-sha256` of the upstream request.
pub const PAYLOAD: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// The data size of every chunk but the last.
pub const CHUNK: usize = 64 * 1024;

/// Frames the decoded body for the upstream.
pub struct Rechunker {
    algo: ChecksumAlgo,
    pending: BytesMut,
}

fn hex_digits(n: u64) -> u64 {
    u64::from((u64::BITS - n.leading_zeros()).div_ceil(4).max(1))
}

/// One chunk's framing and data: `HEX\r\nDATA\r\n`.
fn framed_len(n: u64) -> u64 {
    hex_digits(n) + 2 + n + 2
}

/// The upstream's `content-length` for a body of `decoded` bytes.
pub fn encoded_length(decoded: u64, algo: ChecksumAlgo) -> u64 {
    let chunk = CHUNK as u64;
    let (full, rest) = (decoded / chunk, decoded % chunk);
    let last = if rest > 0 { framed_len(rest) } else { 0 };
    // `0\r\n`, `NAME:VALUE\r\n`, `\r\n`.
    let end = 3 + algo.header_name().len() as u64 + 1 + algo.value_len() as u64 + 2 + 2;
    full * framed_len(chunk) + last + end
}

impl Rechunker {
    pub fn new(algo: ChecksumAlgo) -> Self {
        Rechunker {
            algo,
            pending: BytesMut::with_capacity(CHUNK),
        }
    }

    /// Takes verified body bytes; writes every chunk they complete. Whole
    /// chunks go from `data` to `out` at once: only a chunk's start that
    /// waits for the next piece is held.
    pub fn push(&mut self, mut data: &[u8], out: &mut BytesMut) {
        if !self.pending.is_empty() {
            let take = data.len().min(CHUNK - self.pending.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < CHUNK {
                return;
            }
            frame(&self.pending.split(), out);
        }
        let mut whole = data.chunks_exact(CHUNK);
        for chunk in whole.by_ref() {
            frame(chunk, out);
        }
        self.pending.extend_from_slice(whole.remainder());
    }

    /// At the body's end: the last chunk, the final one and the trailer
    /// with `checksum`, the value the decoder verified.
    pub fn finish(&mut self, checksum: &str, out: &mut BytesMut) {
        if !self.pending.is_empty() {
            let rest = self.pending.split();
            frame(&rest, out);
        }
        out.put_slice(b"0\r\n");
        out.put_slice(self.algo.header_name().as_bytes());
        out.put_u8(b':');
        out.put_slice(checksum.as_bytes());
        out.put_slice(b"\r\n\r\n");
    }
}

fn frame(data: &[u8], out: &mut BytesMut) {
    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::chunked::{ChunkedDecoder, Signing};

    /// The framed body decodes, by the proxy's own decoder, to the same
    /// bytes and checksum, and its length is the one announced, for sizes
    /// around the chunk size and pieces of any size.
    #[test]
    fn framing_round_trips_and_its_length_is_known_ahead() {
        let algo = ChecksumAlgo::Crc32;
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 77] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let crc = crc32fast::hash(&body);
            let checksum = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                crc.to_be_bytes(),
            );
            for piece in [1000, 65_536, 100_000] {
                let mut r = Rechunker::new(algo);
                let mut out = BytesMut::new();
                for p in body.chunks(piece) {
                    r.push(p, &mut out);
                    assert!(r.pending.len() < CHUNK);
                }
                r.finish(&checksum, &mut out);
                assert_eq!(out.len() as u64, encoded_length(len as u64, algo), "{len}");

                let mut dec = ChunkedDecoder::new(
                    Signing::Unsigned,
                    Some("x-amz-checksum-crc32"),
                    false,
                    Some(len as u64),
                )
                .unwrap();
                let decoded: Vec<u8> = dec.feed(&out).unwrap().concat();
                dec.finish().unwrap();
                assert_eq!(decoded, body, "{len}");
                assert_eq!(dec.verified_checksum(), Some(checksum.as_str()));
            }
        }
    }

    #[test]
    fn every_algorithm_announces_its_trailer_length() {
        for (algo, value) in [
            (ChecksumAlgo::Crc32, "AAAAAA=="),
            (ChecksumAlgo::Crc32c, "AAAAAA=="),
            (ChecksumAlgo::Sha1, "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
            (
                ChecksumAlgo::Sha256,
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            ),
        ] {
            let mut r = Rechunker::new(algo);
            let mut out = BytesMut::new();
            r.finish(value, &mut out);
            assert_eq!(out.len() as u64, encoded_length(0, algo), "{algo:?}");
        }
    }
}

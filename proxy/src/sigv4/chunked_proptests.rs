//! The aws-chunked decoder against an encoder written from the spec: any
//! body, cut into any chunk sizes, in each of the three framings, fed in
//! any read splits, decodes to exactly its bytes; a body cut short or with
//! a byte changed is an error, never a panic and never other bytes.

use base64::Engine;
use proptest::prelude::*;

use super::canonical::sha256_hex;
use super::chunked::{ChunkedDecoder, Signing};
use super::{sign, signing_key};

const AMZ_DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const TRAILER: &str = "x-amz-checksum-crc32";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`, CRC32 trailer.
    SignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, CRC32 trailer.
    UnsignedTrailer,
}

fn key() -> [u8; 32] {
    signing_key(
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "20130524",
        "us-east-1",
        "s3",
    )
}

fn decoder(f: Framing, len: usize) -> ChunkedDecoder {
    let signed = Signing::Signed {
        key: key(),
        amz_date: AMZ_DATE.into(),
        scope: SCOPE.into(),
        prev: SEED.into(),
    };
    let len = Some(len as u64);
    match f {
        Framing::Signed => ChunkedDecoder::new(signed, None, false, len),
        Framing::SignedTrailer => ChunkedDecoder::new(signed, Some(TRAILER), true, len),
        Framing::UnsignedTrailer => {
            ChunkedDecoder::new(Signing::Unsigned, Some(TRAILER), false, len)
        }
    }
    .expect("a valid decoder")
}

/// Encodes `body` in chunks of `sizes` (cycled; the rest in one chunk).
fn encode(f: Framing, body: &[u8], sizes: &[usize]) -> Vec<u8> {
    encode_at(f, body, sizes).0
}

/// [`encode`], and where each byte of the body is in the encoding.
fn encode_at(f: Framing, body: &[u8], sizes: &[usize]) -> (Vec<u8>, Vec<usize>) {
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = body;
    for n in sizes.iter().cycle().take(body.len()) {
        if rest.is_empty() {
            break;
        }
        let (c, r) = rest.split_at((*n).min(rest.len()));
        chunks.push(c);
        rest = r;
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    chunks.push(&[]);
    let mut out = Vec::new();
    let mut at = Vec::with_capacity(body.len());
    let mut prev = SEED.to_owned();
    for c in &chunks {
        if f == Framing::UnsignedTrailer {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        } else {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{AMZ_DATE}\n{SCOPE}\n{prev}\n{EMPTY_SHA256}\n{}",
                sha256_hex(c)
            );
            prev = sign(&key(), &sts);
            out.extend_from_slice(format!("{:x};chunk-signature={prev}\r\n", c.len()).as_bytes());
        }
        if !c.is_empty() || f == Framing::Signed {
            at.extend(out.len()..out.len() + c.len());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
    }
    if f != Framing::Signed {
        let crc = crc32fast::hash(body).to_be_bytes();
        let line = format!(
            "{TRAILER}:{}",
            base64::engine::general_purpose::STANDARD.encode(crc)
        );
        out.extend_from_slice(format!("{line}\r\n").as_bytes());
        if f == Framing::SignedTrailer {
            let sts = format!(
                "AWS4-HMAC-SHA256-TRAILER\n{AMZ_DATE}\n{SCOPE}\n{prev}\n{}",
                sha256_hex(format!("{line}\n").as_bytes())
            );
            let sig = sign(&key(), &sts);
            out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    (out, at)
}

/// What feeding `wire` in reads of `splits` (cycled) gave: the bytes
/// handed out, and whether the body was accepted whole.
fn decode(f: Framing, len: usize, wire: &[u8], splits: &[usize]) -> (Vec<u8>, bool) {
    let mut d = decoder(f, len);
    let mut out = Vec::new();
    let mut rest = wire;
    let mut splits = splits.iter().cycle();
    while !rest.is_empty() {
        let n = (*splits.next().expect("splits")).clamp(1, rest.len());
        let (read, r) = rest.split_at(n);
        rest = r;
        match d.feed(read) {
            Ok(parts) => parts.iter().for_each(|p| out.extend_from_slice(p)),
            Err(_) => return (out, false),
        }
    }
    let ok = d.finish().is_ok();
    (out, ok)
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Signed),
        Just(Framing::SignedTrailer),
        Just(Framing::UnsignedTrailer),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..1500)
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..400, 1..8)
}

fn splits() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..200, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_body_in_any_chunks_and_reads_decodes_to_itself(
        f in framing(), body in body(), sizes in sizes(), splits in splits(),
    ) {
        let wire = encode(f, &body, &sizes);
        let (out, ok) = decode(f, body.len(), &wire, &splits);
        prop_assert!(ok, "the encoded body was refused");
        prop_assert_eq!(out, body);
    }

    #[test]
    fn a_body_cut_short_is_an_error(
        f in framing(), body in body(), sizes in sizes(), splits in splits(),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode(f, &body, &sizes);
        let wire = &wire[..cut.index(wire.len())];
        let (out, ok) = decode(f, body.len(), wire, &splits);
        prop_assert!(!ok, "a body cut at {} of its bytes was accepted", wire.len());
        // Never the whole body: its last byte waits for the end.
        prop_assert!(out.len() < body.len().max(1));
        if f != Framing::UnsignedTrailer {
            // Signed chunks come out only once verified.
            prop_assert_eq!(&out[..], &body[..out.len()]);
        }
    }

    #[test]
    fn a_changed_byte_is_an_error_or_changes_nothing(
        f in framing(), body in body(), sizes in sizes(), splits in splits(),
        at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let mut wire = encode(f, &body, &sizes);
        let at = at.index(wire.len());
        wire[at] ^= flip;
        let (out, ok) = decode(f, body.len(), &wire, &splits);
        if ok {
            // Only a change the framing does not see (the case of a hex
            // digit or of a checksum name) may pass, and then the bytes
            // are the body's.
            prop_assert_eq!(out, body);
        } else if f != Framing::UnsignedTrailer {
            prop_assert_eq!(&out[..], &body[..out.len().min(body.len())]);
        }
    }

    #[test]
    fn a_changed_data_byte_is_always_an_error(
        f in framing(), body in prop::collection::vec(any::<u8>(), 1..1500),
        sizes in sizes(), splits in splits(),
        at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let (mut wire, offsets) = encode_at(f, &body, &sizes);
        wire[offsets[at.index(body.len())]] ^= flip;
        let (out, ok) = decode(f, body.len(), &wire, &splits);
        prop_assert!(!ok, "a changed data byte was accepted");
        if f != Framing::UnsignedTrailer {
            prop_assert_eq!(&out[..], &body[..out.len()]);
        }
    }
}

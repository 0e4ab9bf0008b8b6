//! The `aws-chunked` body decoder: signed chunks
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`) and unsigned chunks with
//! a checksum trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
//!
//! It is fed the body as it arrives and hands back decoded data only once
//! the chunk that carries it is verified, so nothing unverified goes
//! upstream. Memory is one chunk at most (`MAX_CHUNK`). The trailing
//! checksum, when declared, is computed over the decoded data and compared.

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use super::canonical::sha256_hex;
use super::{same_signature, sign};
use crate::s3error::{Code, S3Error};

/// The largest chunk accepted; clients send 64 KiB to 8 MiB.
pub const MAX_CHUNK: usize = 16 * 1024 * 1024;
const MAX_LINE: usize = 4096;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How chunks are signed.
#[derive(Clone)]
pub enum Signing {
    Signed {
        key: [u8; 32],
        amz_date: String,
        scope: String,
        /// The request's own signature, then each chunk's in turn.
        prev: String,
    },
    Unsigned,
}

/// A checksum named in `x-amz-trailer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgo {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
}

impl ChecksumAlgo {
    pub fn from_trailer_name(name: &str) -> Result<Self, S3Error> {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-amz-checksum-crc32" => Ok(Self::Crc32),
            "x-amz-checksum-crc32c" => Ok(Self::Crc32c),
            "x-amz-checksum-sha256" => Ok(Self::Sha256),
            "x-amz-checksum-sha1" => Ok(Self::Sha1),
            other => Err(S3Error::new(
                Code::InvalidRequest,
                format!("trailer {other:?} is not supported (crc32, crc32c, sha1 and sha256 are)"),
            )),
        }
    }

    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The length of the checksum's value as a trailer carries it (base64
    /// of the digest).
    pub fn value_len(self) -> usize {
        let digest: usize = match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        };
        digest.div_ceil(3) * 4
    }
}

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Sha1(sha1::Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn new(a: ChecksumAlgo) -> Self {
        match a {
            ChecksumAlgo::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgo::Crc32c => Self::Crc32c(0),
            ChecksumAlgo::Sha1 => Self::Sha1(sha1::Sha1::new()),
            ChecksumAlgo::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, d: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(d),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, d),
            Self::Sha1(h) => h.update(d),
            Self::Sha256(h) => h.update(d),
        }
    }

    fn base64(self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Self::Crc32(h) => b64.encode(h.finalize().to_be_bytes()),
            Self::Crc32c(c) => b64.encode(c.to_be_bytes()),
            Self::Sha1(h) => b64.encode(h.finalize()),
            Self::Sha256(h) => b64.encode(h.finalize()),
        }
    }
}

enum State {
    Header,
    Data {
        size: usize,
        signature: Option<String>,
    },
    Trailer,
    Done,
}

/// A declared checksum trailer: summed while the data comes, its value
/// once the trailer is verified.
enum Checksum {
    Summing(Hasher),
    Verified(String),
}

pub struct ChunkedDecoder {
    signing: Signing,
    trailer: Option<(ChecksumAlgo, Checksum)>,
    expects_trailer_signature: bool,
    decoded_length: Option<u64>,
    decoded: u64,
    state: State,
    buf: BytesMut,
    trailer_lines: Vec<String>,
    /// The last decoded byte, held until the body's end is verified (final
    /// chunk signature, trailer checksum): the upstream write cannot
    /// complete without it, so a body that fails at its end stores nothing.
    tail: Option<Bytes>,
}

fn bad(msg: &'static str) -> S3Error {
    S3Error::new(Code::IncompleteBody, msg)
}

fn bad_sig(msg: &'static str) -> S3Error {
    S3Error::new(Code::SignatureDoesNotMatch, msg)
}

impl ChunkedDecoder {
    /// `trailer` is the `x-amz-trailer` header, `decoded_length` the
    /// `x-amz-decoded-content-length` header. A signed-trailer body also
    /// carries `x-amz-trailer-signature`.
    pub fn new(
        signing: Signing,
        trailer: Option<&str>,
        signed_trailer: bool,
        decoded_length: Option<u64>,
    ) -> Result<Self, S3Error> {
        let trailer = match trailer {
            Some(name) => {
                let a = ChecksumAlgo::from_trailer_name(name)?;
                Some((a, Checksum::Summing(Hasher::new(a))))
            }
            None => None,
        };
        Ok(Self {
            expects_trailer_signature: signed_trailer && matches!(signing, Signing::Signed { .. }),
            signing,
            trailer,
            decoded_length,
            decoded: 0,
            state: State::Header,
            buf: BytesMut::new(),
            trailer_lines: Vec::new(),
            tail: None,
        })
    }

    /// Whether each chunk carries a signature (not only a trailing checksum).
    pub fn is_signed(&self) -> bool {
        matches!(self.signing, Signing::Signed { .. })
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The checksum the body's trailer declares (`x-amz-trailer`).
    pub fn checksum_trailer(&self) -> Option<ChecksumAlgo> {
        self.trailer.as_ref().map(|(a, _)| *a)
    }

    /// The trailer's checksum value, once the body's end is verified.
    pub fn verified_checksum(&self) -> Option<&str> {
        match &self.trailer {
            Some((_, Checksum::Verified(v))) => Some(v),
            _ => None,
        }
    }

    /// Feeds received bytes; returns the verified data they completed. The
    /// very last byte comes out only once the whole body is verified.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<Bytes>, S3Error> {
        let mut out = self.feed_inner(input)?;
        if let Some(t) = self.tail.take() {
            out.insert(0, t);
        }
        if !self.is_done()
            && let Some(last) = out.pop()
        {
            let n = last.len();
            if n > 1 {
                out.push(last.slice(..n - 1));
            }
            self.tail = Some(last.slice(n - 1..));
        }
        Ok(out)
    }

    fn feed_inner(&mut self, input: &[u8]) -> Result<Vec<Bytes>, S3Error> {
        if self.is_done() && !input.is_empty() {
            return Err(bad("data after the end of the aws-chunked body"));
        }
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            match &self.state {
                State::Done => return Ok(out),
                State::Header => {
                    let Some(line) = self.take_line()? else {
                        return Ok(out);
                    };
                    let (size_hex, ext) = match line.split_once(';') {
                        Some((s, e)) => (s, Some(e)),
                        None => (line.as_str(), None),
                    };
                    let size = usize::from_str_radix(size_hex.trim(), 16)
                        .map_err(|_| bad("chunk size is not hexadecimal"))?;
                    if size > MAX_CHUNK {
                        return Err(bad("chunk larger than 16 MiB"));
                    }
                    let signature = match (&self.signing, ext) {
                        (Signing::Signed { .. }, Some(e)) => Some(
                            e.trim()
                                .strip_prefix("chunk-signature=")
                                .ok_or_else(|| bad("chunk without chunk-signature"))?
                                .to_owned(),
                        ),
                        (Signing::Signed { .. }, None) => {
                            return Err(bad_sig("chunk without chunk-signature"));
                        }
                        (Signing::Unsigned, _) => None,
                    };
                    self.state = State::Data { size, signature };
                }
                State::Data { size, signature } => {
                    let (size, signature) = (*size, signature.clone());
                    // The final chunk of a trailer body has no data CRLF:
                    // the trailer lines follow at once.
                    let trailer_next = size == 0 && self.has_trailer_section();
                    let need = if trailer_next { 0 } else { size + 2 };
                    if self.buf.len() < need {
                        return Ok(out);
                    }
                    let data = self.buf.split_to(size).freeze();
                    if !trailer_next {
                        if &self.buf[..2] != b"\r\n" {
                            return Err(bad("chunk data not followed by CRLF"));
                        }
                        self.buf.advance(2);
                    }
                    if let Some(sig) = signature {
                        self.check_chunk_signature(&data, &sig)?;
                    }
                    self.decoded += data.len() as u64;
                    if let Some((_, Checksum::Summing(h))) = self.trailer.as_mut() {
                        h.update(&data);
                    }
                    if size == 0 {
                        if let Some(want) = self.decoded_length
                            && want != self.decoded
                        {
                            return Err(bad(
                                "decoded length differs from x-amz-decoded-content-length",
                            ));
                        }
                        self.state = if trailer_next {
                            State::Trailer
                        } else {
                            State::Done
                        };
                    } else {
                        out.push(data);
                        self.state = State::Header;
                    }
                }
                State::Trailer => {
                    let Some(line) = self.take_line()? else {
                        return Ok(out);
                    };
                    if !line.is_empty() {
                        if self.trailer_lines.len() > 8 {
                            return Err(bad("too many trailer lines"));
                        }
                        self.trailer_lines.push(line);
                        continue;
                    }
                    self.check_trailer()?;
                    self.state = State::Done;
                }
            }
        }
    }

    /// Call at the end of the body: a body cut short is an error.
    pub fn finish(&self) -> Result<(), S3Error> {
        if self.is_done() {
            Ok(())
        } else {
            Err(bad("the aws-chunked body ended early"))
        }
    }

    fn has_trailer_section(&self) -> bool {
        self.trailer.is_some() || self.expects_trailer_signature
    }

    fn take_line(&mut self) -> Result<Option<String>, S3Error> {
        let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") else {
            if self.buf.len() > MAX_LINE {
                return Err(bad("chunk header line too long"));
            }
            return Ok(None);
        };
        let line = self.buf.split_to(pos);
        self.buf.advance(2);
        String::from_utf8(line.to_vec())
            .map(Some)
            .map_err(|_| bad("chunk header is not UTF-8"))
    }

    fn check_chunk_signature(&mut self, data: &[u8], got: &str) -> Result<(), S3Error> {
        let Signing::Signed {
            key,
            amz_date,
            scope,
            prev,
        } = &mut self.signing
        else {
            return Ok(());
        };
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{prev}\n{EMPTY_SHA256}\n{}",
            sha256_hex(data)
        );
        let want = sign(key, &sts);
        if !same_signature(&want, got) {
            return Err(bad_sig("a chunk signature does not match"));
        }
        *prev = want;
        Ok(())
    }

    fn check_trailer(&mut self) -> Result<(), S3Error> {
        let mut checksum_line = None;
        let mut signature = None;
        for l in &self.trailer_lines {
            let (name, value) = l
                .split_once(':')
                .ok_or_else(|| bad("malformed trailer line"))?;
            let name = name.trim().to_ascii_lowercase();
            if name == "x-amz-trailer-signature" {
                signature = Some(value.trim().to_owned());
            } else {
                checksum_line = Some((name, value.trim().to_owned()));
            }
        }
        if let Signing::Signed {
            key,
            amz_date,
            scope,
            prev,
        } = &self.signing
            && self.expects_trailer_signature
        {
            let got = signature.ok_or_else(|| bad_sig("missing x-amz-trailer-signature"))?;
            let text: String = self
                .trailer_lines
                .iter()
                .filter(|l| {
                    !l.to_ascii_lowercase()
                        .starts_with("x-amz-trailer-signature")
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let sts = format!(
                "AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{prev}\n{}",
                sha256_hex(text.as_bytes())
            );
            if !same_signature(&sign(key, &sts), &got) {
                return Err(bad_sig("the trailer signature does not match"));
            }
        }
        if let Some((algo, checksum)) = self.trailer.as_mut() {
            let Checksum::Summing(hasher) = checksum else {
                return Err(bad("a second trailer"));
            };
            let (name, value) =
                checksum_line.ok_or_else(|| bad("the declared checksum trailer is missing"))?;
            if name != algo.header_name() {
                return Err(bad("the trailer differs from x-amz-trailer"));
            }
            if std::mem::replace(hasher, Hasher::new(*algo)).base64() != value {
                return Err(S3Error::new(
                    Code::BadDigest,
                    format!("The {name} you specified did not match the calculated checksum."),
                ));
            }
            *checksum = Checksum::Verified(value);
        }
        Ok(())
    }
}

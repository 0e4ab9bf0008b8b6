//! The client's headers as the request path reads them: which may appear
//! only once, how values past ASCII are read as text, and which of them go
//! upstream on the requests the proxy makes itself.

use std::borrow::Cow;

use pingora::http::RequestHeader;

use crate::s3error::{Code, S3Error};
use crate::upstream::fetch;

/// Headers that decide where a request goes or who sent it. Given twice,
/// the proxy and a store could each read another one, so such a request
/// is refused.
const SINGLE: [&str; 9] = [
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "x-amz-copy-source",
    "x-amz-decoded-content-length",
    "if-match",
    "if-none-match",
];

pub fn single_headers(req: &RequestHeader) -> Result<(), S3Error> {
    // As many values as names: no name is given twice, and no name need
    // be looked up (this runs on every request).
    if req.headers.len() == req.headers.keys_len() {
        return Ok(());
    }
    match SINGLE
        .iter()
        .find(|n| req.headers.get_all(**n).iter().nth(1).is_some())
    {
        Some(n) => Err(S3Error::new(
            Code::InvalidArgument,
            format!("the request carries {n} more than once"),
        )),
        None => Ok(()),
    }
}

/// Every header as (name, text), values as [`header_text`] reads them
/// (Latin-1 past ASCII unless `utf8`), so that none is dropped; `fetch`
/// writes Latin-1 text back as the same bytes.
/// Borrowed: a value is copied only when it is read as Latin-1.
pub fn header_pairs(headers: &http::HeaderMap, utf8: bool) -> Vec<HeaderPair<'_>> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), header_text(v.as_bytes(), utf8)))
        .collect()
}

/// A header's name and its value as text (see [`header_pairs`]).
pub type HeaderPair<'a> = (&'a str, Cow<'a, str>);

/// A header value as text: ASCII as it is; other bytes as Latin-1 (each
/// byte one character, as HTTP/1.1 defines header octets), or as UTF-8
/// when `utf8` and valid.
fn header_text(v: &[u8], utf8: bool) -> Cow<'_, str> {
    match std::str::from_utf8(v) {
        Ok(s) if s.is_ascii() || utf8 => s.into(),
        _ => fetch::latin1(v).into(),
    }
}

/// A header's value, if it is text. A [`http::HeaderName`] (such as
/// [`COPY_SOURCE`]) is looked up without parsing the name.
pub fn header(req: &RequestHeader, name: impl http::header::AsHeaderName) -> Option<&str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Names the request path reads on every request.
pub const COPY_SOURCE: http::HeaderName = http::HeaderName::from_static("x-amz-copy-source");
pub const DECODED_LENGTH: http::HeaderName =
    http::HeaderName::from_static("x-amz-decoded-content-length");

/// Client headers that go upstream on requests the proxy makes itself:
/// not the signature, host or framing, which are the proxy's own.
pub fn forwarded(names: &[HeaderPair<'_>], chunked: bool) -> Vec<(String, String)> {
    const OWN: [&str; 13] = [
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "x-amz-decoded-content-length",
        "x-amz-trailer",
        "te",
    ];
    names
        .iter()
        .filter(|(n, _)| !OWN.contains(n))
        .filter(|(n, _)| !(chunked && *n == "content-encoding"))
        .map(|(n, v)| ((*n).to_owned(), v.clone().into_owned()))
        .collect()
}

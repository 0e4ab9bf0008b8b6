//! The canonical request and the string to sign, as S3 defines them
//! (SigV4 with S3's rules: the path is encoded once, never normalised).

use std::borrow::Cow;

use ferry_s3::percent::{is_uri_encoded, percent_decode, uri_encode};
use sha2::{Digest, Sha256};

/// Appends the canonical URI: the request path decoded, then encoded once
/// with SigV4's rules, so a client that escaped more or less than needed
/// still matches. `None`: a malformed escape.
pub fn push_canonical_uri(out: &mut String, raw_path: &str) -> Option<()> {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    // SDKs send the path in its canonical form already.
    if is_uri_encoded(path, true) {
        out.push_str(path);
    } else {
        out.push_str(&uri_encode(&percent_decode(path)?, true));
    }
    Some(())
}

/// Query pairs, decoded, as they appear in the request (an `X-Amz-Signature`
/// pair is left out by the caller for presigned requests).
pub fn parse_query(raw_query: &str) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut pairs = Vec::new();
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k)?, percent_decode(v)?));
    }
    Some(pairs)
}

pub fn canonical_query(pairs: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut out = String::new();
    push_canonical_query(&mut out, pairs);
    out
}

/// Whether `raw` is a canonical query already: `k=v` pairs, encoded with
/// SigV4's rules and sorted, so that
/// `canonical_query(parse_query(raw)) == raw`. Checked without allocating.
pub fn is_canonical_query(raw: &str) -> bool {
    let mut prev = None;
    raw.is_empty()
        || raw.split('&').all(|part| {
            let Some((k, v)) = part.split_once('=') else {
                return false;
            };
            let in_order = prev.is_none_or(|p| p <= (k, v));
            prev = Some((k, v));
            in_order && is_uri_encoded(k, false) && is_uri_encoded(v, false)
        })
}

fn push_canonical_query(out: &mut String, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    enc.sort_unstable();
    for (i, (k, v)) in enc.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// Appends `v` trimmed, with inner runs of spaces folded to one, as SigV4
/// does for header values.
fn push_folded(out: &mut String, v: &str) {
    let v = v.trim();
    // Most values have nothing to fold: copied whole.
    if !v.contains('\t') && !v.contains("  ") {
        out.push_str(v);
        return;
    }
    let mut space = false;
    let mut first = true;
    for c in v.chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space && !first {
                out.push(' ');
            }
            space = false;
            first = false;
            out.push(c);
        }
    }
}

/// Appends `name:value\n` lines for the signed headers, in their (sorted)
/// order. Several headers of one name are joined with commas. `None` if a
/// signed header is absent.
fn push_canonical_headers(
    out: &mut String,
    headers: &[(&str, &str)],
    signed: &[Cow<'_, str>],
) -> Option<()> {
    for name in signed {
        out.push_str(name);
        out.push(':');
        let mut any = false;
        for (_, v) in headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            if any {
                out.push(',');
            }
            any = true;
            push_folded(out, v);
        }
        if !any {
            return None;
        }
        out.push('\n');
    }
    Some(())
}

/// `s` in lower case (a header name, a signature), copied only if it is
/// not already: clients send both in lower case.
pub fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The query of a canonical request.
pub enum Query<'a> {
    /// As on the request line: written as it is when it is canonical
    /// already (`is_canonical_query`, as SDKs and `canonical_target`
    /// write it), else decoded, encoded and sorted.
    Raw(&'a str),
    /// Decoded pairs: encoded and sorted when written.
    Pairs(&'a [(Vec<u8>, Vec<u8>)]),
}

pub struct CanonicalParts<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub query: Query<'a>,
    pub headers: &'a [(&'a str, &'a str)],
    /// Lower case, sorted, unique.
    pub signed_headers: &'a [Cow<'a, str>],
    pub payload_hash: &'a str,
}

/// Built in one buffer: it runs twice per proxied request (the client's
/// signature checked, the upstream's made). `None` for a malformed escape
/// in the path or query, or a signed header that is absent.
pub fn canonical_request(p: &CanonicalParts<'_>) -> Option<String> {
    let mut out = String::with_capacity(512);
    out.push_str(p.method);
    out.push('\n');
    push_canonical_uri(&mut out, p.raw_path)?;
    out.push('\n');
    match p.query {
        Query::Raw(q) if is_canonical_query(q) => out.push_str(q),
        Query::Raw(q) => push_canonical_query(&mut out, &parse_query(q)?),
        Query::Pairs(pairs) => push_canonical_query(&mut out, pairs),
    }
    out.push('\n');
    push_canonical_headers(&mut out, p.headers, p.signed_headers)?;
    out.push('\n');
    for (i, h) in p.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(h);
    }
    out.push('\n');
    out.push_str(p.payload_hash);
    Some(out)
}

pub fn sha256_hex(data: &[u8]) -> String {
    super::hex32(&Sha256::digest(data).into())
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let mut buf = [0u8; 64];
    let hash = super::hex32_in(
        &Sha256::digest(canonical_request.as_bytes()).into(),
        &mut buf,
    );
    ["AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", hash].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The check agrees with parsing and writing the query again, on
        /// queries made of the bytes that matter.
        #[test]
        fn is_canonical_query_is_writing_it_again(raw in "[ab=&%2F3D ]{0,14}") {
            let again = parse_query(&raw).map(|p| canonical_query(&p));
            prop_assert_eq!(is_canonical_query(&raw), again.as_deref() == Some(raw.as_str()));
        }
    }

    #[test]
    fn canonical_queries_are_recognised() {
        for (q, want) in [
            ("", true),
            ("x-id=GetObject", true),
            ("list-type=2&prefix=a%2Fb", true),
            ("prefix=a&list-type=2", false),
            ("uploads", false),
            ("uploads=", true),
            ("a=1&&b=2", false),
            ("a=b=c", false),
            ("prefix=a/b", false),
        ] {
            assert_eq!(is_canonical_query(q), want, "{q:?}");
        }
    }

    #[test]
    fn header_values_are_trimmed_and_folded() {
        for (v, want) in [
            ("plain value", "plain value"),
            ("  padded  ", "padded"),
            ("a   b\tc", "a b c"),
            ("a \t b", "a b"),
            ("\t", ""),
            ("é  ü", "é ü"),
        ] {
            let mut out = String::new();
            push_folded(&mut out, v);
            assert_eq!(out, want, "{v:?}");
        }
    }
}

//! The canonical request and the string to sign, as S3 defines them
//! (SigV4 with S3's rules: the path is encoded once, never normalised).

use ferry_s3::percent::{percent_decode, uri_encode};
use sha2::{Digest, Sha256};

/// The canonical URI: the request path decoded, then encoded once with
/// SigV4's rules, so a client that escaped more or less than needed still
/// matches.
pub fn canonical_uri(raw_path: &str) -> Option<String> {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    Some(uri_encode(&percent_decode(path)?, true))
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
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims and folds inner runs of spaces, as SigV4 does for header values.
fn fold_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut space = false;
    for c in v.trim().chars() {
        if c == ' ' || c == '\t' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// `name:value\n` lines for the signed headers, in their (sorted) order.
/// Several headers of one name are joined with commas. `None` if a signed
/// header is absent.
pub fn canonical_headers(headers: &[(&str, &str)], signed: &[String]) -> Option<String> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| fold_value(v))
            .collect();
        if values.is_empty() {
            return None;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Some(out)
}

pub struct CanonicalParts<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub query: &'a [(Vec<u8>, Vec<u8>)],
    pub headers: &'a [(&'a str, &'a str)],
    pub signed_headers: &'a [String],
    pub payload_hash: &'a str,
}

pub fn canonical_request(p: &CanonicalParts<'_>) -> Option<String> {
    Some(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        p.method,
        canonical_uri(p.raw_path)?,
        canonical_query(p.query),
        canonical_headers(p.headers, p.signed_headers)?,
        p.signed_headers.join(";"),
        p.payload_hash
    ))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

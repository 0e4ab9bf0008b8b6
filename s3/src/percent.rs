//! S3's percent-codings, written once. Keys are bytes; every key enters and
//! leaves Ferry's programs through these functions:
//! - [`uri_encode`] / [`percent_decode`]: SigV4's encoding of paths and
//!   query strings (RFC 3986 unreserved characters kept, nothing else);
//! - [`url_encode`] / [`form_decode`]: a listing's `encoding-type=url`,
//!   which is form style (`+` is a space).

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

fn unreserved(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes per SigV4: everything but `A-Z a-z 0-9 - _ . ~`, and `/`
/// too unless `keep_slash`. Also the encoding of form values (the
/// `x-amz-tagging` header), which escapes the same set.
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    push_uri_encoded(&mut out, bytes, keep_slash);
    out
}

/// Appends [`uri_encode`]'s form of `bytes` to `out`.
pub fn push_uri_encoded(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if unreserved(b) || (b == b'/' && keep_slash) {
            out.push(b as char);
        } else {
            push_escape(out, b);
        }
    }
}

/// Whether `s` is already in [`uri_encode`]'s form, that is, whether
/// `uri_encode(percent_decode(s), keep_slash) == s`. Checked without
/// allocating: SDKs send paths and queries in this form, and the proxy
/// need not decode and encode them again each time it signs.
pub fn is_uri_encoded(s: &str, keep_slash: bool) -> bool {
    let kept = |b: u8| unreserved(b) || (b == b'/' && keep_slash);
    let upper_hex = |b: u8| HEX.iter().position(|&h| h == b);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if kept(b[i]) {
            i += 1;
            continue;
        }
        // An escape of a byte that must be escaped, in upper-case hex.
        let (Some(hi), Some(lo)) = (
            b.get(i + 1).copied().and_then(upper_hex),
            b.get(i + 2).copied().and_then(upper_hex),
        ) else {
            return false;
        };
        if b[i] != b'%' || kept((hi << 4 | lo) as u8) {
            return false;
        }
        i += 3;
    }
    true
}

/// The path-style path of object `key` in `bucket`, SigV4-encoded. `None`
/// for an empty key: `/bucket/` is the bucket itself, so a key that is
/// empty must never become a request (a DeleteObject would be a
/// DeleteBucket).
pub fn object_path(bucket: &str, key: &str) -> Option<String> {
    (!key.is_empty()).then(|| {
        format!(
            "/{}/{}",
            uri_encode(bucket.as_bytes(), false),
            uri_encode(key.as_bytes(), true)
        )
    })
}

/// S3's `encoding-type=url`: form style, as the SDKs decode it (botocore
/// and the Java SDK unquote with `+` as space). `/` is kept so that keys
/// stay readable.
pub fn url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for &b in bytes {
        match b {
            b' ' => out.push('+'),
            b'/' => out.push('/'),
            b if unreserved(b) => out.push(b as char),
            b => push_escape(&mut out, b),
        }
    }
    out
}

fn decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Decodes `%XX` escapes; anything else, `+` included, is kept as is.
/// `None` on a broken escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    decode(s, false)
}

/// The inverse of any store's `encoding-type=url`: Garage escapes a space
/// as `%20`, S3 and moto as `+`; either way a literal `+` arrives as
/// `%2B`, so `+` always means a space. `None` on a broken escape.
pub fn form_decode(s: &str) -> Option<Vec<u8>> {
    decode(s, true)
}

/// The decoded value of query parameter `name` in a raw query, if present
/// (`Some("")` for a bare `name` or `name=`); a broken escape reads as
/// empty.
pub fn query_value(raw_query: &str, name: &str) -> Option<String> {
    raw_query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k == name).then(|| {
            percent_decode(v)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        })
    })
}

/// Whether the raw query has parameter `name` (with or without a value).
pub fn query_has(raw_query: &str, name: &str) -> bool {
    raw_query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sigv4_keeps_only_unreserved() {
        assert_eq!(uri_encode(b"a b/c+%", false), "a%20b%2Fc%2B%25");
        assert_eq!(uri_encode(b"a b/c", true), "a%20b/c");
        assert_eq!(uri_encode("é".as_bytes(), true), "%C3%A9");
    }

    #[test]
    fn an_empty_key_has_no_object_path() {
        assert_eq!(object_path("b", "").as_deref(), None);
        assert_eq!(
            object_path("b", "/lead//x y").as_deref(),
            Some("/b//lead//x%20y")
        );
    }

    #[test]
    fn listing_encoding_is_form_style() {
        assert_eq!(url_encode(b"a b/+%"), "a+b/%2B%25");
        assert_eq!(form_decode("a+b%2B%20").unwrap(), b"a b+ ");
        assert_eq!(percent_decode("a+b%2B").unwrap(), b"a+b+");
        assert!(percent_decode("%zz").is_none());
        assert!(form_decode("%4").is_none());
        // Garage's form of a listing key.
        assert_eq!(form_decode("a%20b%2Bc").unwrap(), b"a b+c");
        for k in [
            &b"a b"[..],
            b"a+b",
            b"a%b",
            b"a/",
            "\u{e9}t/\u{1f600}".as_bytes(),
            b"\x01\x7f\n\r\t",
            b"&<>\"'",
        ] {
            let e = url_encode(k);
            assert!(e.bytes().all(|b| b.is_ascii_graphic()), "{e}");
            assert_eq!(form_decode(&e).unwrap(), k);
        }
    }

    #[test]
    fn query_parameters() {
        assert!(query_has("delete", "delete"));
        assert!(query_has("a=1&delete=", "delete"));
        assert!(!query_has("deleted=1", "delete"));
        assert_eq!(
            query_value("uploadId=a%2Fb&x", "uploadId").as_deref(),
            Some("a/b")
        );
        assert_eq!(query_value("x", "x").as_deref(), Some(""));
        assert_eq!(query_value("x", "y"), None);
    }

    #[test]
    fn encoded_forms_are_recognised() {
        for (s, slash, want) in [
            ("/b/a%20b", true, true),
            ("/b/a%20b", false, false),
            ("a%2Fb", false, true),
            ("a%2Fb", true, false),
            ("a%2fb", false, false),
            ("a%41", false, false),
            ("a b", true, false),
            ("%2", true, false),
            ("%zz", true, false),
            ("~x-y_z.0", false, true),
            ("", true, true),
        ] {
            assert_eq!(is_uri_encoded(s, slash), want, "{s:?} {slash}");
        }
    }

    proptest! {
        /// The check agrees with decoding and encoding again, on strings
        /// made of the bytes that matter (escapes, slashes, hex digits).
        #[test]
        fn is_uri_encoded_is_encoding_again(
            s in "[%/aA0fF2~ +]{0,12}",
            keep_slash in any::<bool>(),
        ) {
            let again = percent_decode(&s).map(|d| uri_encode(&d, keep_slash));
            prop_assert_eq!(is_uri_encoded(&s, keep_slash), again.as_deref() == Some(s.as_str()));
        }

        #[test]
        fn every_key_round_trips(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(percent_decode(&uri_encode(&key, false)).unwrap(), key.clone());
            prop_assert_eq!(percent_decode(&uri_encode(&key, true)).unwrap(), key.clone());
            prop_assert_eq!(form_decode(&url_encode(&key)).unwrap(), key);
        }
    }
}

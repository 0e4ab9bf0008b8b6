//! ListObjectsV2 continuation tokens. Self-contained (the resume key is in
//! the token, so any proxy of the fleet, restarted or not, can resume) and
//! authenticated with HMAC-SHA256 over the key and the listing's
//! parameters, so a token can be neither forged nor replayed on another
//! bucket, prefix, delimiter or encoding.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::s3error::{Code, S3Error};

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;

/// The parameters a token is valid for.
pub(crate) struct Scope<'a> {
    pub bucket: &'a str,
    pub prefix: &'a [u8],
    pub delimiter: Option<&'a [u8]>,
    pub encode: bool,
}

fn mac(secret: &[u8], scope: &Scope<'_>, resume: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    // Length-prefixed fields: no two parameter sets hash the same bytes.
    let mut field = |b: &[u8]| {
        m.update(&(b.len() as u64).to_be_bytes());
        m.update(b);
    };
    field(b"ferry-listing-token");
    field(&[VERSION]);
    field(scope.bucket.as_bytes());
    field(scope.prefix);
    match scope.delimiter {
        Some(d) => {
            field(b"d");
            field(d);
        }
        None => field(b"-"),
    }
    field(if scope.encode { b"url" } else { b"-" });
    field(resume);
    m
}

/// A token that resumes after `resume` (the last key or prefix returned).
pub(crate) fn issue(secret: &[u8], scope: &Scope<'_>, resume: &[u8]) -> String {
    let tag = mac(secret, scope, resume).finalize().into_bytes();
    let mut raw = Vec::with_capacity(1 + resume.len() + TAG_LEN);
    raw.push(VERSION);
    raw.extend_from_slice(resume);
    raw.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(raw)
}

fn incorrect() -> S3Error {
    S3Error::new(
        Code::InvalidArgument,
        "The continuation token provided is incorrect",
    )
}

/// The resume key of a token issued for exactly this scope.
pub(crate) fn verify(secret: &[u8], scope: &Scope<'_>, token: &str) -> Result<Vec<u8>, S3Error> {
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| incorrect())?;
    if raw.len() < 1 + TAG_LEN || raw[0] != VERSION {
        return Err(incorrect());
    }
    let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
    let resume = &body[1..];
    mac(secret, scope, resume)
        .verify_slice(tag)
        .map_err(|_| incorrect())?;
    Ok(resume.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"fleet-secret";

    fn scope<'a>(prefix: &'a [u8], delimiter: Option<&'a [u8]>) -> Scope<'a> {
        Scope {
            bucket: "b",
            prefix,
            delimiter,
            encode: false,
        }
    }

    #[test]
    fn round_trip_with_odd_keys() {
        for k in [
            &b"a b"[..],
            b"a+b",
            b"\x00\x01&<>",
            "\u{1f600}".as_bytes(),
            b"",
        ] {
            let t = issue(KEY, &scope(b"p/", Some(b"/")), k);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(verify(KEY, &scope(b"p/", Some(b"/")), &t).unwrap(), k);
        }
    }

    #[test]
    fn tampered_foreign_or_replayed_tokens_are_refused() {
        let s = scope(b"p/", Some(b"/"));
        let t = issue(KEY, &s, b"p/key");
        let err = |r: Result<Vec<u8>, S3Error>| {
            let e = r.unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument);
            assert_eq!(e.message, "The continuation token provided is incorrect");
        };
        // Another resume key with the old tag.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[3] ^= 1;
        err(verify(KEY, &s, &URL_SAFE_NO_PAD.encode(&raw)));
        err(verify(KEY, &s, &t[..t.len() - 1]));
        err(verify(KEY, &s, "not a token!"));
        err(verify(KEY, &s, ""));
        // Another proxy fleet's key.
        err(verify(b"other", &s, &t));
        // Same token, other parameters.
        err(verify(KEY, &scope(b"q/", Some(b"/")), &t));
        err(verify(KEY, &scope(b"p/", None), &t));
        err(verify(KEY, &scope(b"p/", Some(b"-")), &t));
        err(verify(
            KEY,
            &Scope {
                encode: true,
                ..scope(b"p/", Some(b"/"))
            },
            &t,
        ));
        err(verify(
            KEY,
            &Scope {
                bucket: "c",
                ..scope(b"p/", Some(b"/"))
            },
            &t,
        ));
        // Field boundaries are not ambiguous.
        let a = issue(KEY, &scope(b"ab", None), b"x");
        err(verify(KEY, &scope(b"a", Some(b"b")), &a));
    }
}

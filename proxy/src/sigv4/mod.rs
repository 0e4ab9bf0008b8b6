//! SigV4: verification of the Authorization header, presigned query
//! strings and `aws-chunked` bodies, and the pieces the proxy's own
//! upstream signer (`resign`) shares with it. The verifier rebuilds the
//! canonical request from exactly the headers the client signed and
//! compares signatures in constant time.

pub mod canonical;
pub mod chunked;
pub mod parse;
pub mod verify;

use std::hash::BuildHasher;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use verify::{Payload, RequestView, Verified, verify};

/// SigV4's time stamp, `YYYYMMDDTHHMMSSZ` (`x-amz-date`, the string to
/// sign).
pub const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// `now` as an `x-amz-date`. Each thread formats it once a second: every
/// upstream request is signed with the time.
pub fn amz_date(now: std::time::SystemTime) -> Result<String, String> {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    LAST_DATE.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs || last.1.is_empty() {
            let at = time::OffsetDateTime::from(now);
            *last = (secs, at.format(AMZ_DATE).map_err(|e| e.to_string())?);
        }
        Ok(last.1.clone())
    })
}

thread_local! {
    static LAST_DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The SigV4 signing key for a day, region and service.
///
/// Four HMACs, twice per proxied request (the client's key, then the
/// upstream's), for keys that change once a day: each thread keeps the
/// last few it derived.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    KEYS.with(|(fingerprints, cache)| {
        let fingerprint = fingerprints.hash_one(secret);
        let mut cache = cache.borrow_mut();
        if let Some(hit) = cache
            .iter()
            .position(|k| k.is(fingerprint, secret, date, region, service))
        {
            let key = cache[hit].key;
            // Most recent first, so the LRU one is the last.
            cache[..=hit].rotate_right(1);
            return key;
        }
        let key = derive_signing_key(secret, date, region, service);
        if cache.len() == CACHED_KEYS {
            cache.pop();
        }
        cache.insert(
            0,
            CachedKey {
                fingerprint,
                secret: secret.to_owned(),
                date: date.to_owned(),
                region: region.to_owned(),
                service: service.to_owned(),
                key,
            },
        );
        key
    })
}

fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Per thread: a proxy's users and upstreams are few, and a day's keys
/// cover all their requests.
const CACHED_KEYS: usize = 16;

struct CachedKey {
    /// Of the secret, with a key of the thread's. The secrets are compared
    /// only when these match, that is when the secrets are all but surely
    /// the same, so that comparison's time tells nothing of either.
    fingerprint: u64,
    secret: String,
    date: String,
    region: String,
    service: String,
    key: [u8; 32],
}

impl CachedKey {
    fn is(&self, fingerprint: u64, secret: &str, date: &str, region: &str, service: &str) -> bool {
        self.fingerprint == fingerprint
            && self.date == date
            && self.region == region
            && self.service == service
            && self.secret == secret
    }
}

thread_local! {
    static KEYS: (std::hash::RandomState, std::cell::RefCell<Vec<CachedKey>>) =
        (std::hash::RandomState::new(), std::cell::RefCell::new(Vec::new()));
}

pub fn sign(key: &[u8; 32], string_to_sign: &str) -> String {
    hex32(&hmac(key, string_to_sign.as_bytes()))
}

/// A SHA-256 sum or signature in lower-case hex. `hex::encode` collects
/// one char at a time; these run on every proxied request.
pub(crate) fn hex32(bytes: &[u8; 32]) -> String {
    hex32_in(bytes, &mut [0u8; 64]).to_owned()
}

/// [`hex32`] written into `buf`.
pub(crate) fn hex32_in<'b>(bytes: &[u8; 32], buf: &'b mut [u8; 64]) -> &'b str {
    hex::encode_to_slice(bytes, buf).expect("64 bytes hold 32 in hex");
    std::str::from_utf8(buf).expect("hex is ASCII")
}

/// Compares two hex signatures without leaking where they differ.
pub fn same_signature(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod chunked_proptests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached key is the key: for every input, whatever the cache held
    /// before, and after more keys than it keeps have pushed it out.
    #[test]
    fn cached_signing_keys_are_the_derived_ones() {
        let inputs: Vec<(String, String, String)> = (0..CACHED_KEYS + 3)
            .map(|i| {
                (
                    format!("secret{i}"),
                    format!("2026120{}", i % 9),
                    format!("r{}", i % 2),
                )
            })
            .collect();
        for round in 0..3 {
            for (s, d, r) in inputs.iter().rev().skip(round) {
                assert_eq!(
                    signing_key(s, d, r, "s3"),
                    derive_signing_key(s, d, r, "s3")
                );
            }
        }
        assert_ne!(
            signing_key("a", "20261204", "r", "s3"),
            signing_key("b", "20261204", "r", "s3")
        );
        KEYS.with(|(_, c)| assert_eq!(c.borrow().len(), CACHED_KEYS));
    }

    #[test]
    fn amz_dates_follow_the_clock() {
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        // 2026-12-03T09:00:00Z, the same second twice, the next, and back.
        for (secs, want) in [
            (1_796_288_400, "20261203T090000Z"),
            (1_796_288_400, "20261203T090000Z"),
            (1_796_288_401, "20261203T090001Z"),
            (1_796_288_400, "20261203T090000Z"),
            (0, "19700101T000000Z"),
        ] {
            assert_eq!(amz_date(at(secs)).unwrap(), want, "{secs}");
        }
    }

    #[test]
    fn hex32_is_lower_case_hex() {
        let mut b = [0u8; 32];
        b[0] = 0xab;
        b[31] = 0x0f;
        assert_eq!(hex32(&b), hex::encode(b));
        assert!(hex32(&b).starts_with("ab00"));
    }
}

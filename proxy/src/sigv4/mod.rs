//! SigV4 verification: the Authorization header, presigned query strings
//! and `aws-chunked` bodies. aws-sigv4 signs but cannot verify, so the
//! proxy rebuilds the canonical request from exactly the headers the client
//! signed and compares signatures in constant time.

pub mod canonical;
pub mod chunked;
pub mod parse;
pub mod verify;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use verify::{Payload, RequestView, Verified, verify};

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The SigV4 signing key for a day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub fn sign(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Compares two hex signatures without leaking where they differ.
pub fn same_signature(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod chunked_proptests;

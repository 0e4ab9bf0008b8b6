//! The S3 side of the engines: one client set-up that works against
//! S3-compatible stores, and one typed error that every caller classifies by.

pub mod client;
pub mod error;
pub mod http;

pub use client::{Endpoint, build_client};
pub use error::{ErrorClass, S3Error};

/// An ETag without its surrounding quotes. Stores differ in whether they
/// quote it (moto's listings do not, its HEADs do), so every ETag the
/// engines compare or record goes through here.
pub fn etag(raw: Option<&str>) -> Option<String> {
    raw.map(|e| e.trim_matches('"').to_owned())
}

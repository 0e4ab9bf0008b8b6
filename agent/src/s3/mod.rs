//! The S3 side of the engines: one client set-up that works against
//! S3-compatible stores, and one typed error that every caller classifies by.

pub mod client;
pub mod error;

pub use client::{Endpoint, build_client};
pub use error::{ErrorClass, S3Error};

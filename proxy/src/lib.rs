//! Ferry's proxy engines. The Pingora front end (`main.rs`) is a thin
//! layer over these: S3 errors, SigV4 verification and, with the
//! proxy-core issue, routing, bucket state and the admin API.

pub mod resign;
pub mod route;
pub mod s3error;
pub mod sigv4;

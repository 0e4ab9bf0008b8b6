//! Ferry's host-side engines. `s3migrate` (the copier) and, later, `s3find`
//! and the agent daemon are thin binaries over these modules.

pub mod body;
pub mod daemon;
pub mod find;
pub mod fsutil;
pub mod keylist;
pub mod migrate;
pub mod retry;
pub mod s3;
pub mod throttle;

//! What is S3 protocol in Ferry, and nothing else. The proxy and the agent
//! both use it, so that a request, a key's text form or a state file is
//! understood one way everywhere:
//! - [`op`]: the S3 operation a request is, parsed once, with everything
//!   that follows from it (metric label, grant, migrate-mode route);
//! - [`percent`]: S3's percent-codings (SigV4 paths, `encoding-type=url`);
//! - [`error`]: classes of a store's errors, from status and `<Code>`;
//! - [`durable`]: the crash-safe file write;
//! - `program` (feature `program`): what the programs do alike at start,
//!   their config file, `--check-config` and logging.

pub mod durable;
pub mod error;
pub mod op;
pub mod percent;
#[cfg(feature = "program")]
pub mod program;

pub use error::ErrorClass;
pub use op::{Grant, MigrateRoute, S3Op};

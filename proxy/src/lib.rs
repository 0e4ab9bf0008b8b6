//! ferry-proxy: the request path in stages ([`plan`] a pure step to an
//! authenticated, classified plan; [`admit`]; [`outbound`]; [`server`] only
//! Pingora's phases), migrate mode behind [`migrate::handle`], the stores'
//! connections in [`upstream`], the bucket state, the admin API. The map
//! is docs/architecture.md.

/// The global allocator of ferry-proxy, and of bench's pingora-floor (so
/// that the floor stays the floor). Per request Pingora and Ferry make a
/// few dozen small allocations; with the system allocator, malloc and free
/// were 12-14% of the proxy's CPU in a profile (docs/benchmarks.md).
pub type Allocator = mimalloc::MiMalloc;

pub mod access_log;
pub mod admin;
pub mod admit;
pub mod attached;
pub mod config;
pub mod copy_from;
pub mod directory;
pub mod fence;
pub mod headers;
pub mod journal;
pub mod listing;
pub mod member;
pub mod metrics;
pub mod migrate;
pub mod outbound;
pub mod plan;
pub mod preread;
pub mod quickack;
pub mod rechunk;
pub mod reply;
pub mod request_body;
pub mod resign;
pub mod route;
pub mod s3error;
pub mod server;
pub mod sigv4;
pub mod tls;
pub mod upstream;
pub use ferry_control::users;

/// The bucket table and its store live in ferry-fleet, shared with ferryctl.
pub use ferry_fleet::state;

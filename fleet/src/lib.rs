//! ferry-fleet: the bucket state of Ferry's proxies and how a fleet of them
//! shares it.
//!
//! - [`state`]: the bucket table, the mode rules, and the single-host
//!   [`state::FileStore`].
//! - [`rules`]: what an attach, an update or a detach must satisfy, for
//!   whichever store holds the table.
//! - [`source_check`]: the source bucket checked at attach, and its
//!   in-flight uploads snapshotted when migrate mode is set.
//! - [`etcd`]: the fleet's store. One key per bucket, changed by
//!   compare-and-swap; each proxy a member under a lease; mode changes that
//!   move where writes go fenced, so that no write lands on the old side
//!   once any proxy writes to the new one (docs/proxy.md, "Fleet").

pub mod etcd;
pub mod rules;
pub mod source_check;
pub mod state;

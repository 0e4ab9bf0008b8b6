//! The admin socket both daemons serve (`ferry-proxy`, `ferry-agent`): how it
//! is bound (mode 0660, group `socket_group`, a stale socket replaced) and
//! who may use it (SO_PEERCRED: root, or a member of the group). One
//! implementation, so that the two sockets behave exactly alike; and,
//! with the `server` feature, the HTTP server on it ([`server`]).

mod bind;
mod peer;
#[cfg(feature = "server")]
pub mod server;

pub use bind::{BindError, bind};
pub use peer::AccessPolicy;

use std::path::Path;

/// The default of a daemon's `socket_group`: `ferry`.
pub fn default_group() -> String {
    "ferry".to_owned()
}

/// A daemon config's `socket_path` and `socket_group`, checked: the field
/// at fault and why.
pub fn check_config(path: &Path, group: &str) -> Result<(), (&'static str, String)> {
    if path.file_name().is_none() {
        return Err(("socket_path", format!("{} names no file", path.display())));
    }
    if group.trim().is_empty() {
        return Err(("socket_group", "must not be empty".into()));
    }
    Ok(())
}

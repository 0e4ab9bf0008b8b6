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

//! The admin socket both daemons serve (`ferry-proxy`, `ferry-agent`): how it
//! is bound (mode 0660, group `socket_group`, a stale socket replaced) and
//! who may use it (SO_PEERCRED: root, or a member of the group). One
//! implementation, so that the two sockets behave exactly alike.

mod bind;
mod peer;

pub use bind::{BindError, bind};
pub use peer::AccessPolicy;

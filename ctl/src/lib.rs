//! Types shared by `ferryctl`, `ferry-proxy` and `ferry-agent`: the control
//! API lives here so that both daemons and the CLI agree on one schema.

use serde::{Deserialize, Serialize};

/// The migration mode of an attached bucket, as the WEKA CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Ready,
    Forward,
    Migrate,
}

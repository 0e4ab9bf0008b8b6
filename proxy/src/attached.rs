//! What the request path knows about an attached bucket, and the trait it
//! reads buckets and client users through (`directory::LiveDirectory` in
//! the proxy, a table in tests).

use std::sync::Arc;

use ferry_control::Mode;

use crate::resign::UpstreamCreds;
use crate::upstream::Upstream;

/// What the request path needs to know about an attached bucket.
#[derive(Debug, Clone)]
pub struct Attached {
    pub mode: Mode,
    pub source: Upstream,
    pub source_bucket: String,
    pub source_creds: Arc<UpstreamCreds>,
    /// Uploads in flight on the source when migrate mode was set.
    pub source_uploads: Arc<[String]>,
    /// The bucket's routing generation (`fence::generation`): a write is
    /// admitted only while its bucket's gate still has it.
    pub generation: u64,
    /// Every client request is refused (503): a rollback's reverse copy is
    /// under way.
    pub blocked: bool,
}

/// Where bucket state and users come from; swapped whole on change.
pub trait Directory: Send + Sync + 'static {
    /// Shared, not built per request: every request to an attached bucket
    /// asks.
    fn attached(&self, bucket: &str) -> Option<Arc<Attached>>;
    /// The secret of a client access key, from the users file.
    fn secret(&self, access_key: &str) -> Option<String>;
    fn allowed(&self, access_key: &str, bucket: &str, write: bool) -> bool;
}

//! The live view the request path reads: attached buckets from the admin
//! table, client users from the users file. Each is swapped whole, so a
//! request sees one consistent snapshot.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::admin::Admin;
use crate::attached::{Attached, Directory};
use crate::resign::UpstreamCreds;
use crate::state::{Bucket, BucketTable};
use crate::upstream::{Upstream, ca_from_pem};
use crate::users::{Users, UsersError};

pub struct LiveDirectory {
    pub admin: Arc<Admin>,
    users_file: PathBuf,
    users: ArcSwap<Users>,
    /// What the request path reads of each attached bucket, built once per
    /// version of the admin table (a change of mode, uploads, block…), not
    /// per request: a request takes a shared `Attached` and copies nothing.
    views: ArcSwap<Views>,
}

/// The attached buckets of one version of the admin table.
struct Views {
    table: Arc<BucketTable>,
    /// foldhash, not SipHash: the keys are the operator's bucket names
    /// and a lookup costs a quarter as much.
    by_bucket: foldhash::HashMap<String, Arc<Attached>>,
}

impl Views {
    fn of(table: Arc<BucketTable>) -> Views {
        let by_bucket = table
            .buckets
            .iter()
            .map(|(name, b)| (name.clone(), Arc::new(attached(b))))
            .collect();
        Views { table, by_bucket }
    }
}

impl LiveDirectory {
    pub fn new(admin: Arc<Admin>, users_file: PathBuf) -> Result<Self, UsersError> {
        let users = Users::load(&users_file)?;
        let views = Views::of(admin.table());
        Ok(Self {
            admin,
            users_file,
            users: ArcSwap::from_pointee(users),
            views: ArcSwap::from_pointee(views),
        })
    }

    /// Reads the users file again; a file that fails to load leaves the old
    /// users in place.
    pub fn reload_users(&self) -> Result<usize, UsersError> {
        let users = Users::load(&self.users_file)?;
        let n = users.len();
        self.users.store(Arc::new(users));
        Ok(n)
    }
}

impl Directory for LiveDirectory {
    fn attached(&self, bucket: &str) -> Option<Arc<Attached>> {
        let views = self.views.load();
        if self.admin.is_current(&views.table) {
            return views.by_bucket.get(bucket).cloned();
        }
        // The table changed since: the first request to see it builds the
        // views anew (a rare, small job: one entry per attached bucket).
        let fresh = Views::of(self.admin.table());
        let found = fresh.by_bucket.get(bucket).cloned();
        self.views.store(Arc::new(fresh));
        found
    }

    fn secret(&self, access_key: &str) -> Option<String> {
        self.users.load().secret(access_key).map(str::to_owned)
    }

    fn allowed(&self, access_key: &str, bucket: &str, write: bool) -> bool {
        self.users.load().allowed(access_key, bucket, write)
    }
}

/// What the request path needs of `b`.
fn attached(b: &Bucket) -> Attached {
    // While a fleet fences a change, requests keep the old mode's route;
    // the write gate (fence.rs) holds the writes.
    let mode = b.routing().mode;
    let source = match Upstream::from_url(&b.source_url) {
        Ok(u) => match b
            .tls_cert_pem
            .as_deref()
            .map(|pem| ca_from_pem(pem.as_bytes()))
        {
            None => u,
            Some(Ok(ca)) => Upstream { ca: Some(ca), ..u },
            Some(Err(e)) => {
                // Checked at attach. If it no longer parses, fail closed:
                // the source is unreachable (503) rather than trusted by
                // the system roots.
                tracing::error!(bucket = %b.bucket, error = %e, "attached bucket has an unusable tls_cert");
                u.unreachable()
            }
        },
        Err(e) => {
            // Validated at attach; a bad URL here means a hand-edited
            // state file. Fail closed: treat as unreachable.
            tracing::error!(bucket = %b.bucket, error = %e, "attached bucket has a bad source URL");
            Upstream {
                authority: String::new(),
                host: "invalid".into(),
                tls: false,
                ip: None,
                ca: None,
            }
            .unreachable()
        }
    };
    Attached {
        mode,
        generation: crate::fence::generation(b),
        blocked: b.blocked,
        source,
        source_bucket: b.source_bucket.clone(),
        source_creds: Arc::new(UpstreamCreds {
            access_key: b.source_access_key.clone(),
            secret: b.source_secret.clone(),
            region: b.source_region.clone(),
        }),
        // Only migrate mode routes by them.
        source_uploads: if mode == ferry_control::Mode::Migrate {
            b.source_uploads
                .iter()
                .map(|u| u.upload_id.clone())
                .collect()
        } else {
            Arc::from([])
        },
    }
}

//! The live view the request path reads: attached buckets from the admin
//! table, client users from the users file. Each is swapped whole, so a
//! request sees one consistent snapshot.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::admin::Admin;
use crate::attached::{Attached, Directory};
use crate::resign::UpstreamCreds;
use crate::upstream::{CaList, Upstream, ca_from_pem};
use crate::users::{Users, UsersError};

pub struct LiveDirectory {
    pub admin: Arc<Admin>,
    users_file: PathBuf,
    users: ArcSwap<Users>,
    /// Parsed source CAs by bucket, with the PEM they came from: parsed
    /// once, not per request.
    cas: Mutex<HashMap<String, (String, Arc<CaList>)>>,
}

impl LiveDirectory {
    pub fn new(admin: Arc<Admin>, users_file: PathBuf) -> Result<Self, UsersError> {
        let users = Users::load(&users_file)?;
        Ok(Self {
            admin,
            users_file,
            users: ArcSwap::from_pointee(users),
            cas: Mutex::new(HashMap::new()),
        })
    }

    fn source_ca(&self, bucket: &str, pem: &str) -> Option<Arc<CaList>> {
        let mut cas = self.cas.lock().expect("ca cache lock");
        if let Some((p, ca)) = cas.get(bucket)
            && p == pem
        {
            return Some(ca.clone());
        }
        match ca_from_pem(pem.as_bytes()) {
            Ok(ca) => {
                cas.insert(bucket.to_owned(), (pem.to_owned(), ca.clone()));
                Some(ca)
            }
            Err(e) => {
                // Checked at attach. If it no longer parses, fail closed:
                // the caller makes the source unreachable (503) rather than
                // trusting the system roots.
                tracing::error!(bucket, error = %e, "attached bucket has an unusable tls_cert");
                None
            }
        }
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
    fn attached(&self, bucket: &str) -> Option<Attached> {
        let table = self.admin.table();
        let b = table.get(bucket)?;
        // While a fleet fences a change, requests keep the old mode's
        // route; the write gate (fence.rs) holds the writes.
        let mode = b.routing().mode;
        let source = match Upstream::from_url(&b.source_url) {
            Ok(mut u) => {
                if let Some(pem) = &b.tls_cert_pem {
                    match self.source_ca(bucket, pem) {
                        Some(ca) => u.ca = Some(ca),
                        None => u.authority = "0.0.0.0:1".into(),
                    }
                }
                u
            }
            Err(e) => {
                // Validated at attach; a bad URL here means a hand-edited
                // state file. Fail closed: treat as unreachable.
                tracing::error!(bucket, error = %e, "attached bucket has a bad source URL");
                Upstream {
                    authority: "0.0.0.0:1".into(),
                    host: "invalid".into(),
                    tls: false,
                    ca: None,
                }
            }
        };
        Some(Attached {
            mode,
            generation: crate::fence::generation(b),
            blocked: b.blocked,
            source,
            source_bucket: b.source_bucket.clone(),
            source_creds: UpstreamCreds {
                access_key: b.source_access_key.clone(),
                secret: b.source_secret.clone(),
                region: b.source_region.clone(),
            },
            // Only migrate mode routes by them: other modes skip the copy
            // on every request.
            source_uploads: if mode == ferry_control::Mode::Migrate {
                b.source_uploads
                    .iter()
                    .map(|u| u.upload_id.clone())
                    .collect()
            } else {
                Arc::from([])
            },
        })
    }

    fn secret(&self, access_key: &str) -> Option<String> {
        self.users.load().secret(access_key).map(str::to_owned)
    }

    fn allowed(&self, access_key: &str, bucket: &str, write: bool) -> bool {
        self.users.load().allowed(access_key, bucket, write)
    }
}

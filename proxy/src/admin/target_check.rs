//! What attach checks on the target, where only the proxy can (it holds
//! the target's credentials and the certificates): the target bucket
//! exists (refused if not) and is empty, the delete journal's bucket
//! exists, and a loaded certificate covers the bucket's hostnames (each a
//! warning, in the answer and the log).

use std::sync::Arc;

use ferry_control::codes;

use super::Refusal;
use crate::resign::{UpstreamCreds, canonical_target};
use crate::tls::SniResolver;
use crate::upstream::Upstream;
use crate::upstream::fetch::{Fetcher, Side};

/// The target store and its credentials as they are now (they reload).
pub type TargetStore = Box<dyn Fn() -> (Upstream, Arc<UpstreamCreds>) + Send + Sync>;

pub struct TargetCheck {
    pub fetcher: Arc<Fetcher>,
    pub store: TargetStore,
    pub journal_bucket: Option<String>,
    /// The certificates served over https, if any.
    pub certs: Option<Arc<SniResolver>>,
    /// The domains of virtual-hosted names (`BUCKET.DOMAIN`), which path
    /// style uses bare.
    pub s3_domains: Vec<String>,
}

/// Why a bucket could not be listed.
enum Unlisted {
    NoSuchBucket,
    Other(String),
}

impl TargetCheck {
    /// The warnings for attaching `bucket`, or the refusal.
    pub async fn check(&self, bucket: &str) -> Result<Vec<String>, Refusal> {
        let mut warnings = Vec::new();
        match self.first_key(bucket).await {
            Ok(None) => {}
            Ok(Some(key)) => warnings.push(format!(
                "the target bucket {bucket} already holds objects ({key:?}, at least): the copy \
                 mixes with them, and verify counts them as the clients'"
            )),
            Err(Unlisted::NoSuchBucket) => {
                return Err(Refusal::new(
                    422,
                    codes::TARGET_CHECK_FAILED,
                    format!(
                        "bucket {bucket} does not exist on the target: create it there (empty) \
                         first, then attach"
                    ),
                ));
            }
            Err(Unlisted::Other(why)) => warnings.push(format!(
                "the target bucket {bucket} could not be checked: {why}"
            )),
        }
        if let Some(j) = &self.journal_bucket {
            match self.first_key(j).await {
                Ok(_) => {}
                Err(Unlisted::NoSuchBucket) => warnings.push(format!(
                    "the delete journal's bucket {j} does not exist on the target: create it \
                     before migrate mode, which deletes nothing without it"
                )),
                Err(Unlisted::Other(why)) => warnings.push(format!(
                    "the delete journal's bucket {j} could not be checked: {why}"
                )),
            }
        }
        if let Some(certs) = &self.certs {
            let set = certs.current();
            let uncovered: Vec<String> = self
                .s3_domains
                .iter()
                .flat_map(|d| [format!("{bucket}.{d}"), d.clone()])
                .filter(|name| !set.covers(name))
                .collect();
            if !uncovered.is_empty() {
                warnings.push(format!(
                    "no loaded certificate covers {}: clients using it over https get a \
                     certificate error; add one to cert_dir (it reloads)",
                    uncovered.join(", ")
                ));
            }
        }
        Ok(warnings)
    }

    /// The first key of `bucket` on the target, if any.
    async fn first_key(&self, bucket: &str) -> Result<Option<String>, Unlisted> {
        let (upstream, creds) = (self.store)();
        let side = Side {
            upstream,
            creds,
            bucket: bucket.to_owned(),
            label: "target",
        };
        // Bucket names are checked to `a-z 0-9 . -`: nothing to escape.
        let target = canonical_target(&format!("/{bucket}"), "list-type=2&max-keys=1")
            .map_err(|e| Unlisted::Other(e.to_string()))?;
        match self.fetcher.get(&side, &target, 1 << 20).await {
            Ok((200, body)) => Ok(crate::journal::keys(&body).into_iter().next()),
            Ok((404, _)) => Err(Unlisted::NoSuchBucket),
            Ok((status, _)) => Err(Unlisted::Other(format!("HTTP {status} to a listing"))),
            Err(e) => Err(Unlisted::Other(e.to_string())),
        }
    }
}

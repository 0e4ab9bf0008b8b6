//! Durable bucket state: the table of attached buckets. A single proxy
//! reads and writes it through [`StateStore`] ([`FileStore`], one local
//! file); a fleet keeps one key per bucket in etcd (`crate::etcd`), so
//! nothing else opens the state file.
//!
//! The mode rules (which transitions and detaches are allowed) are one pure
//! function each, in [`transition`].

mod file;
pub mod transition;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;

use ferry_control::{BucketView, Mode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use file::FileStore;
pub use transition::{DetachError, Transition, TransitionError, check_detach, check_transition};

/// The state format this build writes and reads. A file with a higher
/// version is refused (written by a newer proxy).
pub const STATE_VERSION: u32 = 1;

/// Where the bucket table lives.
pub trait StateStore: Send + Sync {
    /// The saved table; an empty one if nothing was ever saved.
    fn load(&self) -> Result<BucketTable, StateError>;
    /// Make `t` durable before returning.
    fn save(&self, t: &BucketTable) -> Result<(), StateError>;
}

/// Every attached bucket, by its (target) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketTable {
    /// Format version, [`STATE_VERSION`].
    pub version: u32,
    pub buckets: BTreeMap<String, Bucket>,
}

impl Default for BucketTable {
    fn default() -> BucketTable {
        BucketTable {
            version: STATE_VERSION,
            buckets: BTreeMap::new(),
        }
    }
}

impl BucketTable {
    pub fn get(&self, bucket: &str) -> Option<&Bucket> {
        self.buckets.get(bucket)
    }

    /// The mode of `bucket`, or `None` if it is not attached (its requests
    /// go to the target untouched).
    pub fn mode(&self, bucket: &str) -> Option<Mode> {
        self.buckets.get(bucket).map(|b| b.mode)
    }
}

/// One attached bucket and everything needed to reach its source.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The name clients use, on the target.
    pub bucket: String,
    /// The name on the source (usually the same).
    pub source_bucket: String,
    pub source_url: String,
    pub source_region: String,
    pub source_access_key: String,
    pub source_secret: String,
    /// The source's certificate or CA (PEM), to verify it over https.
    /// `None`: plain http, or the system roots.
    #[serde(default)]
    pub tls_cert_pem: Option<String>,
    pub mode: Mode,
    #[serde(with = "time::serde::rfc3339")]
    pub attached_at: OffsetDateTime,
    /// The last mode change (or the attach).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Multipart uploads in flight on the source when migrate mode was set:
    /// their parts and completion still go to the source.
    #[serde(default)]
    pub source_uploads: Vec<SourceUpload>,
    /// Counts the bucket's mode changes in a fleet: each fenced transition
    /// (and each roll-back of one) takes the next epoch, and every proxy
    /// acknowledges the epoch it applies. Always 0 in the file store.
    #[serde(default)]
    pub epoch: u64,
    /// `Fencing` while a fleet drains the writes that go to the side being
    /// left; see [`Bucket::routing`].
    #[serde(default)]
    pub phase: Phase,
    /// While fencing: the mode being left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaving: Option<Mode>,
    /// A passing `ferryctl verify` in the current migrate mode (a mode
    /// change clears it): what lets detach go without `--force`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
    /// The hash shares whose verify passed, while some of them have not:
    /// once all have, `verified` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_shares: Option<SharesVerified>,
    /// Every client request is refused with 503 (`ferryctl … block`): the
    /// WEKA rollback's "block access to the target bucket", while the
    /// reverse copy runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

/// A passing verify, as `ferryctl verify` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What passed, in a line (the verify's counts and where it ran).
    pub summary: String,
}

/// The passing verifies of a hash-partitioned copy's shares, by
/// `--hash-value`, all of one `--hash-count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharesVerified {
    pub count: u32,
    pub passed: BTreeMap<u32, Verified>,
}

/// Where a fenced transition stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The mode is in force.
    #[default]
    Active,
    /// The mode is decided but not yet in force: requests are still routed
    /// by the mode being left, and writes are refused (503 SlowDown) until
    /// every live proxy has drained its writes to the old side.
    Fencing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Active => "active",
            Phase::Fencing => "fencing",
        }
    }
}

/// How a proxy routes a bucket's requests now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// The mode requests are routed by.
    pub mode: Mode,
    /// Writes are refused: a fenced transition is under way.
    pub fenced: bool,
}

impl fmt::Debug for Bucket {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("bucket", &self.bucket)
            .field("source_bucket", &self.source_bucket)
            .field("source_url", &self.source_url)
            .field("source_region", &self.source_region)
            .field("source_access_key", &self.source_access_key)
            .field("tls_cert_pem", &self.tls_cert_pem.as_ref().map(|_| "…"))
            .field("mode", &self.mode)
            .field("attached_at", &self.attached_at)
            .field("updated_at", &self.updated_at)
            .field("source_uploads", &self.source_uploads.len())
            .field("epoch", &self.epoch)
            .field("phase", &self.phase)
            .field("leaving", &self.leaving)
            .field("verified", &self.verified)
            .field("verified_shares", &self.verified_shares)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// While fencing, reads keep the old mode's route (the side that is
    /// complete) and writes wait; otherwise the mode is in force.
    pub fn routing(&self) -> Routing {
        match (self.phase, self.leaving) {
            (Phase::Fencing, Some(old)) => Routing {
                mode: old,
                fenced: true,
            },
            // A fencing record without the old mode is not one this build
            // wrote; holding writes is the safe reading of it.
            (Phase::Fencing, None) => Routing {
                mode: self.mode,
                fenced: true,
            },
            (Phase::Active, _) => Routing {
                mode: self.mode,
                fenced: false,
            },
        }
    }

    /// Forgets every verify: what passed in one mode says nothing of the
    /// next.
    pub fn clear_verified(&mut self) {
        self.verified = None;
        self.verified_shares = None;
    }

    /// What `show` and `list` return: everything but the secret.
    pub fn view(&self) -> BucketView {
        BucketView {
            bucket: self.bucket.clone(),
            source_bucket: self.source_bucket.clone(),
            source_url: self.source_url.clone(),
            source_region: self.source_region.clone(),
            source_access_key: self.source_access_key.clone(),
            mode: self.mode,
            attached_at: rfc3339(self.attached_at),
            updated_at: rfc3339(self.updated_at),
            tls_cert: if self.tls_cert_pem.is_some() {
                "embedded"
            } else {
                "none"
            }
            .to_owned(),
            source_uploads_open: self.source_uploads.len(),
            epoch: self.epoch,
            phase: self.phase.as_str().to_owned(),
            verified_at: self.verified.as_ref().map(|v| rfc3339(v.at)),
            verified: self.verified.as_ref().map(|v| v.summary.clone()),
            shares_verified: self
                .verified_shares
                .iter()
                .flat_map(|s| s.passed.keys().map(|v| format!("{v}/{}", s.count)))
                .collect(),
            blocked: self.blocked,
            warnings: Vec::new(),
            members: Vec::new(),
        }
    }
}

/// RFC 3339, with the fraction of a second when there is one.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A multipart upload open on the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUpload {
    pub key: String,
    pub upload_id: String,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {}: cannot {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("state file {}: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "state file {}: format version {found} is newer than this proxy's ({STATE_VERSION}); \
         run the proxy that wrote it",
        path.display()
    )]
    TooNew { path: PathBuf, found: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn bucket(name: &str, mode: Mode) -> Bucket {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        Bucket {
            bucket: name.into(),
            source_bucket: format!("src-{name}"),
            source_url: "http://127.0.0.1:9000".into(),
            source_region: "us-east-1".into(),
            source_access_key: "AKSRC".into(),
            source_secret: "source-secret-value".into(),
            tls_cert_pem: None,
            mode,
            attached_at: t,
            updated_at: t,
            source_uploads: vec![],
            epoch: 0,
            phase: Phase::Active,
            leaving: None,
            verified: None,
            verified_shares: None,
            blocked: false,
        }
    }

    #[test]
    fn debug_and_view_hide_the_secret() {
        let b = bucket("photos", Mode::Forward);
        assert!(!format!("{b:?}").contains("source-secret-value"));
        let json = serde_json::to_string(&b.view()).unwrap();
        assert!(!json.contains("source-secret-value"), "{json}");
        assert!(!json.contains("secret"), "no secret field at all: {json}");
        assert_eq!(b.view().attached_at, "2023-11-14T22:13:20Z");
        assert_eq!(b.view().tls_cert, "none");
    }

    #[test]
    fn fencing_routes_by_the_old_mode_and_holds_writes() {
        let mut b = bucket("photos", Mode::Migrate);
        let active = Routing {
            mode: Mode::Migrate,
            fenced: false,
        };
        assert_eq!(b.routing(), active);
        b.phase = Phase::Fencing;
        b.leaving = Some(Mode::Forward);
        assert_eq!(
            b.routing(),
            Routing {
                mode: Mode::Forward,
                fenced: true
            }
        );
        b.leaving = None;
        assert!(b.routing().fenced, "a fencing record always holds writes");
        // Records written before fleets existed read as active, epoch 0.
        let mut json = serde_json::to_value(bucket("photos", Mode::Migrate)).unwrap();
        for field in ["epoch", "phase", "leaving"] {
            json.as_object_mut().unwrap().remove(field);
        }
        let old: Bucket = serde_json::from_value(json).unwrap();
        assert_eq!((old.epoch, old.routing()), (0, active));
    }
}

//! The fleet's state store: etcd.
//!
//! Key layout under the prefix (default `/ferry/v1`):
//!
//! | key | value | lease |
//! |---|---|---|
//! | `buckets/<bucket>` | the [`Bucket`] record (JSON) | none |
//! | `proxies/<id>` | [`MemberInfo`] | the proxy's |
//! | `acks/<bucket>/<id>` | [`Ack`]: the epoch the proxy applies | the proxy's |
//!
//! [`Fleet`] makes the changes (`ferryctl`, or a proxy's admin API); every
//! one is a compare-and-swap on the bucket key's revision. [`member`] is a
//! proxy's side: registration, the watch, the acknowledgements, and the
//! contact rule that fails writes closed.
//!
//! [`Bucket`]: crate::state::Bucket

mod fleet;
pub mod member;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use fleet::{Fleet, Progress};

/// The `[state]` section of the proxy's config (and of ferryctl's): where
/// the fleet's etcd is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://` or `https://`).
    pub etcd_endpoints: Vec<String>,
    /// Every key Ferry writes is under this prefix.
    #[serde(default = "default_prefix")]
    pub etcd_prefix: String,
    /// CA that signed the etcd members' certificates (https endpoints).
    #[serde(default)]
    pub etcd_ca_file: Option<PathBuf>,
    /// Client certificate and key, if etcd asks for one.
    #[serde(default)]
    pub etcd_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub etcd_key_file: Option<PathBuf>,
    /// etcd user (auth enabled); its password is the first line of
    /// `etcd_password_file` (mode 0600).
    #[serde(default)]
    pub etcd_user: Option<String>,
    #[serde(default)]
    pub etcd_password_file: Option<PathBuf>,
    /// A proxy's lease: it is dropped from the fleet this long after its
    /// last renewal, and stops taking writes after half of it.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    /// How long a mode change waits for every live proxy to acknowledge
    /// the fence before it is rolled back.
    #[serde(default = "default_fence_timeout")]
    pub fence_timeout_secs: u64,
    /// This proxy's name in the fleet (proxy only); the host name if unset.
    #[serde(default)]
    pub member_id: Option<String>,
}

pub const DEFAULT_PREFIX: &str = "/ferry/v1";
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
pub const DEFAULT_FENCE_TIMEOUT_SECS: u64 = 30;

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}
fn default_lease_ttl() -> u64 {
    DEFAULT_LEASE_TTL_SECS
}
fn default_fence_timeout() -> u64 {
    DEFAULT_FENCE_TIMEOUT_SECS
}

impl EtcdConfig {
    /// A config with the defaults for everything but the endpoints.
    pub fn new(endpoints: Vec<String>) -> EtcdConfig {
        EtcdConfig {
            etcd_endpoints: endpoints,
            etcd_prefix: default_prefix(),
            etcd_ca_file: None,
            etcd_cert_file: None,
            etcd_key_file: None,
            etcd_user: None,
            etcd_password_file: None,
            lease_ttl_secs: DEFAULT_LEASE_TTL_SECS,
            fence_timeout_secs: DEFAULT_FENCE_TIMEOUT_SECS,
            member_id: None,
        }
    }

    /// Why this section cannot work, in one line.
    pub fn check(&self) -> Result<(), String> {
        if self.etcd_endpoints.is_empty() {
            return Err("etcd_endpoints is empty".into());
        }
        for e in &self.etcd_endpoints {
            crate::rules::check_endpoint_url(e).map_err(|why| format!("etcd_endpoints: {why}"))?;
        }
        if !self.etcd_prefix.starts_with('/') || self.etcd_prefix.ends_with('/') {
            return Err(format!(
                "etcd_prefix {:?} must start with / and not end with one",
                self.etcd_prefix
            ));
        }
        if self.lease_ttl_secs < 2 {
            return Err("lease_ttl_secs must be at least 2".into());
        }
        if self.fence_timeout_secs == 0 {
            return Err("fence_timeout_secs must be at least 1".into());
        }
        if self.etcd_cert_file.is_some() != self.etcd_key_file.is_some() {
            return Err("etcd_cert_file and etcd_key_file go together".into());
        }
        if self.etcd_user.is_some() != self.etcd_password_file.is_some() {
            return Err("etcd_user and etcd_password_file go together".into());
        }
        if let Some(id) = &self.member_id {
            check_member_id(id)?;
        }
        Ok(())
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    pub fn fence_timeout(&self) -> Duration {
        Duration::from_secs(self.fence_timeout_secs)
    }

    pub fn keys(&self) -> Keys {
        Keys {
            prefix: self.etcd_prefix.clone(),
        }
    }

    /// A client of the configured members. It does not wait for them: a
    /// member that is down is tried again on each request.
    pub async fn connect(&self) -> Result<etcd_client::Client, FleetError> {
        self.check().map_err(FleetError::Config)?;
        let mut opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // etcd's login token expires (--auth-token-ttl, 5 minutes by
            // default) and lease renewals do not refresh it: without a new
            // login, an idle proxy could no longer acknowledge a fence.
            .with_auto_token_refresh(true);
        if let (Some(user), Some(file)) = (&self.etcd_user, &self.etcd_password_file) {
            let password = read_private(file)?;
            let password = password.lines().next().unwrap_or_default().to_owned();
            opts = opts.with_user(user.clone(), password);
        }
        if let Some(ca) = &self.etcd_ca_file {
            let mut tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read_file(ca)?));
            if let (Some(cert), Some(key)) = (&self.etcd_cert_file, &self.etcd_key_file) {
                tls = tls.identity(etcd_client::Identity::from_pem(
                    read_file(cert)?,
                    read_private(key)?,
                ));
            }
            opts = opts.with_tls(tls);
        }
        etcd_client::Client::connect(&self.etcd_endpoints, Some(opts))
            .await
            .map_err(|e| match &e {
                etcd_client::Error::GRpcStatus(s)
                    if s.message().contains("authentication failed") =>
                {
                    FleetError::Credentials(format!(
                        "etcd refused user {:?}: {}",
                        self.etcd_user.as_deref().unwrap_or(""),
                        s.message()
                    ))
                }
                _ => FleetError::Unreachable(format!("{}: {e}", self.etcd_endpoints.join(","))),
            })
    }
}

fn read_file(path: &std::path::Path) -> Result<String, FleetError> {
    std::fs::read_to_string(path)
        .map_err(|e| FleetError::Config(format!("{}: {e}", path.display())))
}

/// A secret's file must be 0600 or stricter, as every secret file of
/// Ferry's.
fn read_private(path: &std::path::Path) -> Result<String, FleetError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| FleetError::Config(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(FleetError::Config(format!(
            "{} holds a secret but has mode {:04o}; run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    read_file(path)
}

/// Which failed etcd requests may be sent again as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Requests that change nothing, or change it the same way twice (a
    /// get, a watch, a put of the same value, a lease): again after any
    /// unavailability (a member down, a leader election).
    Idempotent,
    /// A compare-and-swap: again only if it cannot have been applied (it
    /// never left, or no member was leader). After a leader change in
    /// flight it may have been, so that is the caller's to judge.
    CompareAndSwap,
}

/// How long a request is tried again: longer than an etcd election (the
/// election timeout is 1 s by default).
const RESEND_FOR: Duration = Duration::from_secs(5);

/// Runs an etcd request again, 100 ms apart for up to 5 s, while it fails
/// in a way `resend` allows. The client spreads requests over the
/// endpoints, and one that is down fails the requests sent its way instead
/// of being skipped; a leader election fails them for a second or two.
pub(crate) async fn resent<T, F, Fut>(resend: Resend, mut op: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = std::time::Instant::now() + RESEND_FOR;
    loop {
        match op().await {
            Err(e) if std::time::Instant::now() < deadline && may_resend(&e, resend) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r,
        }
    }
}

pub(crate) fn may_resend(e: &etcd_client::Error, resend: Resend) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            s.message() == "tcp connect error"
                || s.message().contains("no leader")
                || (resend == Resend::Idempotent && s.code() == tonic::Code::Unavailable)
        }
        _ => false,
    }
}

/// A member id is one path segment of printable ASCII.
pub fn check_member_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(format!(
            "member_id {id:?}: use 1 to 128 letters, digits, '-', '_', '.' or ':'"
        ));
    }
    Ok(())
}

/// The keys under the configured prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn buckets(&self) -> String {
        format!("{}/buckets/", self.prefix)
    }
    pub fn bucket(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.buckets())
    }
    pub fn members(&self) -> String {
        format!("{}/proxies/", self.prefix)
    }
    pub fn member(&self, id: &str) -> String {
        format!("{}{id}", self.members())
    }
    pub fn acks(&self) -> String {
        format!("{}/acks/", self.prefix)
    }
    pub fn bucket_acks(&self, bucket: &str) -> String {
        format!("{}{bucket}/", self.acks())
    }
    pub fn ack(&self, bucket: &str, id: &str) -> String {
        format!("{}{id}", self.bucket_acks(bucket))
    }
}

/// A proxy registered in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: String,
    pub pid: u32,
    /// RFC 3339.
    pub registered_at: String,
    /// The URLs of the target through this proxy (its own, and the
    /// target store's): `update --url` with one of them selects every
    /// bucket.
    #[serde(default)]
    pub target_urls: Vec<String>,
}

/// A proxy's acknowledgement: it applies `epoch` of a bucket, in `phase`.
/// For a fencing epoch, written only once its writes to the old side have
/// drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub epoch: u64,
    pub phase: crate::state::Phase,
}

/// Why the fleet's store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("state: {0}")]
    Config(String),
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    #[error("{0} (etcd_user, etcd_password_file)")]
    Credentials(String),
    #[error("etcd key {key}: {detail}")]
    Invalid { key: String, detail: String },
}

impl From<etcd_client::Error> for FleetError {
    fn from(e: etcd_client::Error) -> FleetError {
        FleetError::Unreachable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_checks() {
        let c: EtcdConfig =
            toml::from_str(r#"etcd_endpoints = ["http://127.0.0.1:2379"]"#).unwrap();
        assert_eq!(c, EtcdConfig::new(vec!["http://127.0.0.1:2379".into()]));
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.lease_ttl(), Duration::from_secs(10));
        assert_eq!(c.fence_timeout(), Duration::from_secs(30));
        let k = c.keys();
        assert_eq!(k.bucket("photos"), "/ferry/v1/buckets/photos");
        assert_eq!(k.member("p1"), "/ferry/v1/proxies/p1");
        assert_eq!(k.ack("photos", "p1"), "/ferry/v1/acks/photos/p1");

        type Edit = fn(&mut EtcdConfig);
        let bad: [(Edit, &str); 7] = [
            (|c| c.etcd_endpoints.clear(), "empty"),
            (
                |c| c.etcd_endpoints = vec!["127.0.0.1:2379".into()],
                "etcd_endpoints",
            ),
            (|c| c.etcd_prefix = "ferry".into(), "etcd_prefix"),
            (|c| c.lease_ttl_secs = 1, "lease_ttl_secs"),
            (|c| c.etcd_user = Some("u".into()), "etcd_password_file"),
            (|c| c.etcd_cert_file = Some("c".into()), "etcd_key_file"),
            (|c| c.member_id = Some("a/b".into()), "member_id"),
        ];
        for (edit, want) in bad {
            let mut c = c.clone();
            edit(&mut c);
            let e = c.check().unwrap_err();
            assert!(e.contains(want), "{want:?} in {e}");
        }
        assert!(toml::from_str::<EtcdConfig>("etcd_endpoints = []\nttl = 3").is_err());
    }
}

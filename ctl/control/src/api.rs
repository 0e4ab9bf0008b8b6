//! The control-API schema: what goes over `/run/ferry/proxy.sock` as JSON.
//!
//! Routes (HTTP/1.1, JSON bodies):
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /v1/buckets` | | [`BucketList`] |
//! | `GET /v1/buckets/{bucket}` | | [`BucketView`] |
//! | `POST /v1/buckets` | [`AttachRequest`] | [`BucketView`] (201) |
//! | `POST /v1/buckets/update` | [`UpdateRequest`] | [`UpdateResponse`] |
//! | `DELETE /v1/buckets/{bucket}?force=true\|false` | | [`BucketView`] of the detached bucket |
//!
//! Every refusal is a non-2xx status with an [`ApiError`] body.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The migration mode of an attached bucket, as the WEKA CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything goes to the target (attached, not yet forwarding).
    Ready,
    /// Everything goes to the source; the source is the one truth.
    Forward,
    /// Reads fall back from the target to the source; writes go to the target.
    Migrate,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Ready, Mode::Forward, Mode::Migrate];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ready => "ready",
            Mode::Forward => "forward",
            Mode::Migrate => "migrate",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode {s:?}: expected ready, forward or migrate"))
    }
}

/// One attached bucket as `show` and `list` return it. It never carries the
/// source secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketView {
    /// The bucket name clients use (on the target).
    pub bucket: String,
    /// The bucket's name on the source (usually the same).
    pub source_bucket: String,
    pub source_url: String,
    pub source_region: String,
    pub source_access_key: String,
    pub mode: Mode,
    /// RFC 3339.
    pub attached_at: String,
    /// RFC 3339: the last mode change (or the attach).
    pub updated_at: String,
    /// How the source's TLS certificate is held: `"embedded"` (the PEM given
    /// at attach, stored in the proxy's state) or `"none"` (plain http, or
    /// https verified against the system roots).
    pub tls_cert: String,
    /// Source multipart uploads snapshotted when migrate mode was set and
    /// still routed to the source.
    pub source_uploads_open: usize,
    /// The epoch of the bucket's last mode change in a fleet (0 on a single
    /// host's file store).
    #[serde(default)]
    pub epoch: u64,
    /// `active`, or `fencing` while a fleet drains writes to the side being
    /// left.
    #[serde(default = "active")]
    pub phase: String,
    /// When a `ferryctl verify` passed in the current migrate mode (RFC
    /// 3339), and what it found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    /// The hash shares (`k/N`) whose verify passed, while the whole bucket
    /// has not: detach needs every one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares_verified: Vec<String>,
    /// Client requests are refused with 503 (`block`, for a rollback).
    #[serde(default)]
    pub blocked: bool,
    /// What attach found worth a look on the target (`attach` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// In a fleet: each live proxy and the epoch it applies (`show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberView>,
}

fn active() -> String {
    "active".to_owned()
}

/// A change to one bucket that is not a mode change:
/// `POST /v1/buckets/{name}/{verified|block|unblock}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// `ferryctl verify` passed, of the whole bucket or of one hash share.
    Verified(VerifiedRequest),
    /// Refuse every client request with 503 (a rollback's reverse copy).
    Block,
    Unblock,
}

impl Mark {
    /// Its name in the API path.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mark::Verified(_) => "verified",
            Mark::Block => "block",
            Mark::Unblock => "unblock",
        }
    }
}

/// `POST /v1/buckets/{name}/verified`: record a passing `ferryctl verify`
/// (migrate mode only). Once the whole bucket has passed, at once or share
/// by share, detach goes without `--force`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedRequest {
    /// What passed, in a line.
    pub summary: String,
    /// The hash share the verify covered (`s3migrate --hash-value` of
    /// `--hash-count`); none: the whole bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<HashShare>,
}

/// One of the `count` parts a hash-partitioned copy splits a bucket into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashShare {
    pub value: u32,
    pub count: u32,
}

impl std::fmt::Display for HashShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.value, self.count)
    }
}

/// A proxy of the fleet, as `show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// The proxy's member id (its host name unless configured).
    pub id: String,
    /// The epoch of this bucket it applies, and in which phase; `None`: it
    /// has not acknowledged any.
    pub epoch: Option<u64>,
    pub phase: Option<String>,
}

/// `GET /v1/buckets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketList {
    pub buckets: Vec<BucketView>,
}

/// `POST /v1/buckets`: attach a bucket in ready mode.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    pub bucket: String,
    /// `http://` or `https://` endpoint of the source S3 cluster.
    pub source_url: String,
    /// Default: the same as `bucket`.
    #[serde(default)]
    pub source_bucket: Option<String>,
    /// Default: `us-east-1`.
    #[serde(default)]
    pub source_region: Option<String>,
    pub access_key: String,
    pub secret: String,
    /// The source's certificate or CA (PEM), to verify it over https.
    #[serde(default)]
    pub tls_cert_pem: Option<String>,
}

impl fmt::Debug for AttachRequest {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachRequest")
            .field("bucket", &self.bucket)
            .field("source_url", &self.source_url)
            .field("source_bucket", &self.source_bucket)
            .field("source_region", &self.source_region)
            .field("access_key", &self.access_key)
            .field("tls_cert_pem", &self.tls_cert_pem.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// Which buckets an update applies to (`--bucket`, `--url`, `--all`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    Bucket(String),
    /// Every bucket whose source URL is this one (a trailing `/` is ignored).
    Url(String),
    All,
}

/// `POST /v1/buckets/update`: change the mode of the selected buckets. The
/// update is all or nothing: if any selected bucket may not make the
/// transition, none changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub mode: Mode,
    pub selector: Selector,
    #[serde(default)]
    pub force: bool,
}

/// One bucket an update touched. `from == to` means it was already there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeChange {
    pub bucket: String,
    pub from: Mode,
    pub to: Mode,
}

/// The answer to an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResponse {
    pub changes: Vec<ModeChange>,
    /// In a fleet: when every live proxy had acknowledged the fence (RFC
    /// 3339, nanoseconds), just before the new mode was put in force. No
    /// proxy routes by the new mode before it, and no write to the old side
    /// is acknowledged after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<String>,
}

/// The body of every refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One of [`codes`].
    pub code: String,
    /// One line for the operator.
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The values of [`ApiError::code`].
pub mod codes {
    /// 403: the peer is neither root nor in the socket's group.
    pub const ACCESS_DENIED: &str = "AccessDenied";
    /// 400: a malformed request (bad JSON, bad name, bad URL, empty secret).
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// 404: the bucket is not attached (or a selector matched nothing).
    pub const NO_SUCH_BUCKET: &str = "NoSuchBucket";
    /// 409: attach of a bucket that is already attached.
    pub const ALREADY_ATTACHED: &str = "BucketAlreadyAttached";
    /// 409: the mode change is not allowed (see the transitions table).
    pub const INVALID_TRANSITION: &str = "InvalidTransition";
    /// 409: leaving migrate mode needs a reverse copy first, then `--force`.
    pub const REVERSE_COPY_REQUIRED: &str = "ReverseCopyRequired";
    /// 409: the bucket changed under this request, or another mode change
    /// of it is under way (two `ferryctl` runs at once); nothing changed.
    pub const CONFLICT: &str = "Conflict";
    /// 504: some live proxies did not acknowledge the fence in time; the
    /// change was rolled back.
    pub const FENCE_TIMEOUT: &str = "FenceTimeout";
    /// 503: the fleet's etcd could not be reached; nothing changed.
    pub const FLEET_UNAVAILABLE: &str = "FleetUnavailable";
    /// 409: detach is not allowed in this mode (or not without `--force`).
    pub const DETACH_REFUSED: &str = "DetachRefused";
    /// 422: attach refused because the source bucket could not be checked.
    pub const SOURCE_CHECK_FAILED: &str = "SourceCheckFailed";
    /// 422: attach found the target bucket missing.
    pub const TARGET_CHECK_FAILED: &str = "TargetCheckFailed";
    /// 500: the state could not be saved; nothing changed.
    pub const STATE_SAVE_FAILED: &str = "StateSaveFailed";
    /// 404: no such route.
    pub const NOT_FOUND: &str = "NotFound";
    /// 405: the route exists, the method does not.
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 500: anything else on the server's side.
    pub const INTERNAL: &str = "InternalError";
    /// 404: no job has this id (agent).
    pub const NO_SUCH_JOB: &str = "NoSuchJob";
    /// 409: the job's state does not allow this (e.g. resume a completed
    /// job, pause a scan) (agent).
    pub const INVALID_JOB_STATE: &str = "InvalidJobState";
    /// 501: reserved and not built yet (the `watch` job kind) (agent).
    pub const NOT_IMPLEMENTED: &str = "NotImplemented";
    /// 503: the daemon is stopping and takes no new work.
    pub const SHUTTING_DOWN: &str = "ShuttingDown";
}

/// Why `name` is not a bucket name Ferry accepts, if it is not one: the S3
/// rules (3 to 63 characters of `a-z`, `0-9`, `.`, `-`; a letter or digit at
/// both ends; no `..`; not shaped like an IPv4 address).
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("bucket name {name:?} is not valid: {why}"));
    if !(3..=63).contains(&name.len()) {
        return bad("it must be 3 to 63 characters long");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return bad(&format!(
            "{c:?} is not allowed (only a-z, 0-9, '.' and '-')"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return bad("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("it must not contain \"..\"");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it must not look like an IP address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips_through_json_and_text() {
        for m in Mode::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{m}\""));
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), m);
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("Forward".parse::<Mode>().is_err());
    }

    #[test]
    fn selector_wire_format() {
        let all = UpdateRequest {
            mode: Mode::Forward,
            selector: Selector::All,
            force: false,
        };
        assert_eq!(
            serde_json::to_string(&all).unwrap(),
            r#"{"mode":"forward","selector":"all","force":false}"#
        );
        let one: UpdateRequest =
            serde_json::from_str(r#"{"mode":"migrate","selector":{"bucket":"b1"}}"#).unwrap();
        assert_eq!(one.selector, Selector::Bucket("b1".into()));
        assert!(!one.force);
        assert!(
            serde_json::from_str::<UpdateRequest>(
                r#"{"mode":"migrate","selector":"all","forse":true}"#
            )
            .is_err(),
            "a misspelt field must not be ignored"
        );
    }

    #[test]
    fn attach_request_debug_hides_the_secret() {
        let req = AttachRequest {
            bucket: "b".into(),
            source_url: "http://s".into(),
            source_bucket: None,
            source_region: None,
            access_key: "AK".into(),
            secret: "very-secret-value".into(),
            tls_cert_pem: None,
        };
        assert!(!format!("{req:?}").contains("very-secret-value"));
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.2024", "a".repeat(63).as_str(), "1.2.3"] {
            assert_eq!(check_bucket_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-lead",
            "trail.",
            "a..b",
            "10.0.0.1",
            "sp ace",
            "a/b",
            "%41bc",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}

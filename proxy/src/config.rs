//! The proxy's configuration file (TOML), read and validated before anything
//! binds. Unknown keys are refused; durations and sizes carry their unit in
//! the name. Relative paths are taken relative to the config file's folder.
//!
//! ```toml
//! https_addr = "0.0.0.0:443"
//! http_addr = "0.0.0.0:80"
//! cert_dir = "/etc/ferry/certs"
//! users_file = "/etc/ferry/users.toml"
//! state_file = "/var/lib/ferry/proxy-state.json"
//! s3_domains = ["s3.example.com"]
//!
//! [target]
//! url = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! access_key = "ferry-proxy"
//! secret_file = "/etc/ferry/target.secret"
//! ```
//!
//! A fleet of proxies keeps its bucket state in etcd instead of
//! `state_file`, with a `[state]` section (ferry_fleet::etcd::EtcdConfig):
//!
//! ```toml
//! [state]
//! etcd_endpoints = ["https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"]
//! etcd_ca_file = "/etc/ferry/etcd-ca.pem"
//! lease_ttl_secs = 10
//! fence_timeout_secs = 30
//! ```
//!
//! Every error names the file, the field and the problem on one line.

use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Shared with the admin API's attach (ferry-fleet).
pub use ferry_fleet::rules::check_endpoint_url;

/// The proxy's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTPS listener, e.g. `"0.0.0.0:443"`. Default: none (no HTTPS).
    /// Needs `cert_dir`. At least one of `https_addr` and `http_addr` is
    /// required.
    #[serde(default)]
    pub https_addr: Option<SocketAddr>,
    /// Plain-HTTP listener, e.g. `"0.0.0.0:80"`. Default: none (no HTTP).
    #[serde(default)]
    pub http_addr: Option<SocketAddr>,
    /// The target S3 endpoint this proxy fronts. Required.
    pub target: TargetConfig,
    /// Folder of TLS certificates served by SNI. Default: none; required
    /// when `https_addr` is set.
    #[serde(default)]
    pub cert_dir: Option<PathBuf>,
    /// The users file (client users and their bucket grants; see
    /// [`crate::users`]). Required; must not be group- or world-readable.
    pub users_file: PathBuf,
    /// Where attached buckets and their modes are kept on a single host;
    /// the folder must exist, and a missing file is an empty table.
    /// Required unless `[state]` puts them in a fleet's etcd.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// A fleet's bucket state in etcd (docs/proxy.md, "Fleet"). Default:
    /// none (the single-host `state_file`).
    #[serde(default)]
    pub state: Option<ferry_fleet::etcd::EtcdConfig>,
    /// The admin API's Unix socket. Default: `/run/ferry/proxy.sock`.
    #[serde(default = "default_socket_path")]
    pub socket_path: PathBuf,
    /// Group whose members may use the admin socket (besides root).
    /// Default: `ferry`.
    #[serde(default = "ferry_control::socket::default_group")]
    pub socket_group: String,
    /// Prometheus metrics listener, e.g. `"127.0.0.1:9464"`. Default: none
    /// (no metrics endpoint).
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// Domains under which `bucket.<domain>` is a virtual-hosted-style
    /// request, e.g. `["s3.example.com"]` (no scheme, no port; stored in
    /// lower case). Default: none (path-style requests only).
    #[serde(default)]
    pub s3_domains: Vec<String>,
    /// Largest accepted difference between a request's signing time and the
    /// proxy's clock. Default: 900 (15 minutes, as S3).
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: u64,
    /// On TERM: how long requests in flight may run on before the proxy
    /// exits anyway (it exits as soon as none is left). Keep it below the
    /// unit's TimeoutStopSec. Default: 30.
    #[serde(default = "default_drain_timeout_secs")]
    pub drain_timeout_secs: u64,
    /// The bucket on the target that journals migrate-mode deletes, so
    /// that copiers never bring a deleted key back. Clients must not use
    /// it. Required for migrate mode (`update --mode migrate` is refused
    /// without it). Default: none.
    #[serde(default)]
    pub journal_bucket: Option<String>,
    /// A private file whose first line is the key that authenticates
    /// merged-listing continuation tokens (give every proxy of a fleet the
    /// same one). Default: a key derived from the target secret.
    #[serde(default)]
    pub listing_token_key_file: Option<PathBuf>,
    #[serde(skip)]
    target_secret: Secret,
}

/// `[target]`: the target cluster's S3 endpoint and the proxy's own
/// credentials there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `http://host:port` or `https://host:port`. Required.
    pub url: String,
    /// SigV4 region of the target. Required.
    pub region: String,
    /// Access key the proxy signs target requests with. Required.
    pub access_key: String,
    /// File whose first line is the secret for `access_key`. Required; mode
    /// 0600 or stricter (no group or other bits).
    pub secret_file: PathBuf,
    /// CA certificate (PEM) to verify an https target with. Default: none
    /// (the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connect timeout to the target. Default: 5.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Read timeout on target connections. Default: 60.
    #[serde(default = "default_read_timeout_secs")]
    pub read_timeout_secs: u64,
}

fn default_socket_path() -> PathBuf {
    PathBuf::from(ferry_control::DEFAULT_PROXY_SOCKET)
}
fn default_max_clock_skew_secs() -> u64 {
    900
}
fn default_drain_timeout_secs() -> u64 {
    30
}
pub fn default_connect_timeout_secs() -> u64 {
    5
}
pub fn default_read_timeout_secs() -> u64 {
    60
}

/// A secret held in memory; `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

/// Why a config file was refused: `FILE: FIELD: PROBLEM`, one line.
pub use ferry_s3::program::ConfigError;

impl Config {
    /// Read, parse and validate the config at `path`, and read the target
    /// secret. Referenced files must exist and be readable; secret files
    /// must have no group or other permission bits.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        ferry_s3::program::load_toml(path, |config: &mut Config, base| {
            config.resolve_paths(base);
            config.validate()
        })
    }

    /// The secret for `target.access_key`, read from `target.secret_file` by
    /// [`Config::load`].
    pub fn target_secret(&self) -> &str {
        &self.target_secret.0
    }

    /// The key that authenticates merged-listing continuation tokens: the
    /// file's, or else one derived from the target secret, which every
    /// proxy of a fleet shares, so a token still works on any of them and
    /// after a restart.
    pub fn listing_token_key(&self) -> Result<Vec<u8>, String> {
        use sha2::{Digest, Sha256};
        let secret = match &self.listing_token_key_file {
            Some(f) => read_secret_file(f)?,
            None => self.target_secret().to_owned(),
        };
        Ok(Sha256::new()
            .chain_update(b"ferry listing token key\0")
            .chain_update(secret.as_bytes())
            .finalize()
            .to_vec())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.users_file);
        abs(&mut self.socket_path);
        abs(&mut self.target.secret_file);
        for p in [
            self.cert_dir.as_mut(),
            self.state_file.as_mut(),
            self.listing_token_key_file.as_mut(),
            self.target.ca_file.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
    }

    // Blocking file calls: the config is read at start and on a reload,
    // before the new settings are swapped in; never on the request path.
    #[allow(clippy::disallowed_methods)]
    fn validate(&mut self) -> Result<(), (&'static str, String)> {
        if self.https_addr.is_none() && self.http_addr.is_none() {
            return Err((
                "https_addr",
                "set https_addr or http_addr (or both): the proxy needs a listener".into(),
            ));
        }
        if self.https_addr.is_some() && self.https_addr == self.http_addr {
            return Err((
                "http_addr",
                "the same address as https_addr; one socket cannot serve both".into(),
            ));
        }
        if let Some(m) = self.metrics_addr
            && (Some(m) == self.https_addr || Some(m) == self.http_addr)
        {
            return Err((
                "metrics_addr",
                format!("{m} is already a listener for S3 traffic"),
            ));
        }

        let t = &self.target;
        check_endpoint_url(&t.url).map_err(|p| ("target.url", p))?;
        if t.region.trim().is_empty() {
            return Err(("target.region", "must not be empty".into()));
        }
        if t.access_key.trim().is_empty() {
            return Err(("target.access_key", "must not be empty".into()));
        }
        let secret = read_secret_file(&t.secret_file).map_err(|p| ("target.secret_file", p))?;
        if let Some(ca) = &t.ca_file {
            check_pem_file(ca).map_err(|p| ("target.ca_file", p))?;
        }
        if t.connect_timeout_secs == 0 {
            return Err(("target.connect_timeout_secs", "must be at least 1".into()));
        }
        if t.read_timeout_secs == 0 {
            return Err(("target.read_timeout_secs", "must be at least 1".into()));
        }

        match &self.cert_dir {
            Some(dir) => fs::read_dir(dir)
                .map(drop)
                .map_err(|e| ("cert_dir", format!("{}: {e}", dir.display())))?,
            None if self.https_addr.is_some() => {
                return Err((
                    "cert_dir",
                    "required with https_addr (the certificates to serve)".into(),
                ));
            }
            None => {}
        }

        check_private_file(&self.users_file).map_err(|p| ("users_file", p))?;
        fs::read(&self.users_file)
            .map_err(|e| ("users_file", format!("{}: {e}", self.users_file.display())))?;

        match (&self.state_file, &self.state) {
            (Some(file), None) => check_state_path(file).map_err(|p| ("state_file", p))?,
            (None, Some(etcd)) => etcd.check().map_err(|p| ("state", p))?,
            (None, None) => {
                return Err((
                    "state_file",
                    "set state_file (a single proxy) or a [state] section with etcd_endpoints \
                     (a fleet)"
                        .into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    "state_file",
                    "set either state_file (a single proxy) or [state] (a fleet's etcd), not both"
                        .into(),
                ));
            }
        }
        ferry_control::socket::check_config(&self.socket_path, &self.socket_group)?;

        for d in &mut self.s3_domains {
            *d = d.to_ascii_lowercase();
            check_domain(d).map_err(|p| ("s3_domains", p))?;
        }
        if self.max_clock_skew_secs == 0 {
            return Err(("max_clock_skew_secs", "must be at least 1".into()));
        }
        if let Some(b) = &self.journal_bucket {
            ferry_control::check_bucket_name(b).map_err(|p| ("journal_bucket", p))?;
        }
        if let Some(k) = &self.listing_token_key_file {
            read_secret_file(k).map_err(|p| ("listing_token_key_file", p))?;
        }

        self.target_secret = Secret(secret);
        Ok(())
    }
}

impl Config {
    /// The target's URLs through this proxy: its own listeners (but a
    /// wildcard address, which no client uses) and the target store's.
    pub fn target_urls(&self) -> Vec<String> {
        let own = [("https", self.https_addr), ("http", self.http_addr)]
            .into_iter()
            .filter_map(|(scheme, addr)| {
                addr.filter(|a| !a.ip().is_unspecified())
                    .map(|a| format!("{scheme}://{a}"))
            });
        own.chain([self.target.url.clone()]).collect()
    }
}

// Secret files are checked as every program of Ferry checks them.
pub use ferry_control::private_file::{check_private_file, read_secret_file};

// Blocking file calls: at start and on a reload only (see `Config::load`).
#[allow(clippy::disallowed_methods)]
fn check_pem_file(path: &Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(())
}

// Blocking file calls: at start and on a reload only (see `Config::load`).
#[allow(clippy::disallowed_methods)]
fn check_state_path(path: &Path) -> Result<(), String> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a folder", parent.display())),
        Err(e) => return Err(format!("folder {}: {e}", parent.display())),
    }
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Err(format!(
            "{} holds source secrets but has mode {:04o}; run `chmod 600 {}`",
            path.display(),
            m.permissions().mode() & 0o777,
            path.display()
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn check_domain(d: &str) -> Result<(), String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.len() > 253 || !d.split('.').all(ok_label) {
        return Err(format!(
            "{d:?} is not a DNS name (no scheme, port, path, or leading/trailing dot)"
        ));
    }
    Ok(())
}

#[cfg(test)]
// The tests write config files.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    /// A folder with a private secret file and users file, and a config
    /// written from `body` (with `{dir}` replaced by the folder).
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let f = Fixture { dir };
            f.write("target.secret", "s3cr3t\n", 0o600);
            f.write("users.toml", "", 0o600);
            f
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.path(name);
            let mut f = File::create(&p).unwrap();
            f.write_all(text.as_bytes()).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }

        fn load(&self, body: &str) -> Result<Config, ConfigError> {
            let p = self.write("proxy.toml", body, 0o644);
            Config::load(&p)
        }
    }

    const MINIMAL: &str = r#"
http_addr = "127.0.0.1:8080"
users_file = "users.toml"
state_file = "state.json"

[target]
url = "http://127.0.0.1:9000"
region = "garage"
access_key = "GK1"
secret_file = "target.secret"
"#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let f = Fixture::new();
        let c = f.load(MINIMAL).unwrap();
        assert_eq!(
            c.socket_path,
            PathBuf::from(ferry_control::DEFAULT_PROXY_SOCKET)
        );
        assert_eq!(c.socket_group, "ferry");
        assert_eq!(c.max_clock_skew_secs, 900);
        assert_eq!(c.target.connect_timeout_secs, 5);
        assert_eq!(c.target.read_timeout_secs, 60);
        assert_eq!(c.https_addr, None);
        assert!(c.s3_domains.is_empty());
        assert_eq!(c.target_secret(), "s3cr3t");
        // Relative paths are relative to the config file's folder.
        assert_eq!(c.users_file, f.path("users.toml"));
        assert_eq!(c.state_file, Some(f.path("state.json")));
    }

    #[test]
    fn debug_never_shows_the_target_secret() {
        let f = Fixture::new();
        let c = f.load(MINIMAL).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let f = Fixture::new();
        let e = f
            .load(&MINIMAL.replace("[target]", "[target]\nconnect_timeout = 3"))
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("proxy.toml"), "{msg}");
        assert!(msg.contains("unknown field `connect_timeout`"), "{msg}");
        assert!(msg.contains("line 7"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");

        let e = f
            .load(&format!("listen = \"0.0.0.0:1\"\n{MINIMAL}"))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `listen`"), "{e}");
    }

    #[test]
    fn bad_target_urls_are_refused() {
        let f = Fixture::new();
        for url in [
            "ftp://127.0.0.1:9000",
            "127.0.0.1:9000",
            "http://",
            "http://user:pw@host:9000",
            "http://host:9000/prefix",
            "http://host:9000/?x=1",
            "not a url",
        ] {
            let e = f
                .load(&MINIMAL.replace("http://127.0.0.1:9000", url))
                .unwrap_err();
            assert_eq!(e.field, Some("target.url"), "{url}: {e}");
        }
        for url in ["https://s3.example.com", "http://[::1]:9000/", "http://h:1"] {
            assert_eq!(check_endpoint_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn missing_files_are_refused_naming_the_field() {
        let f = Fixture::new();
        let e = f
            .load(&MINIMAL.replace("target.secret", "absent.secret"))
            .unwrap_err();
        assert_eq!(e.field, Some("target.secret_file"));
        assert!(e.to_string().contains("absent.secret"), "{e}");

        let e = f
            .load(&MINIMAL.replace("\"users.toml\"", "\"nope.toml\""))
            .unwrap_err();
        assert_eq!(e.field, Some("users_file"));

        let e = f
            .load(&MINIMAL.replace("\"state.json\"", "\"no/such/dir/state.json\""))
            .unwrap_err();
        assert_eq!(e.field, Some("state_file"));

        let e = f
            .load(&format!("cert_dir = \"certs\"\n{MINIMAL}"))
            .unwrap_err();
        assert_eq!(e.field, Some("cert_dir"));

        let e = Config::load(&f.path("absent.toml")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn world_or_group_readable_secret_is_refused() {
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let f = Fixture::new();
            f.write("target.secret", "s3cr3t\n", mode);
            let e = f.load(MINIMAL).unwrap_err();
            assert_eq!(e.field, Some("target.secret_file"), "{mode:o}");
            assert!(e.problem.contains("chmod 600"), "{e}");
            assert!(e.problem.contains(&format!("{mode:04o}")), "{e}");
        }
        let f = Fixture::new();
        f.write("target.secret", "s3cr3t\n", 0o400);
        assert!(f.load(MINIMAL).is_ok(), "0400 is stricter than 0600");
    }

    #[test]
    fn readable_users_file_is_refused() {
        let f = Fixture::new();
        f.write("users.toml", "", 0o644);
        let e = f.load(MINIMAL).unwrap_err();
        assert_eq!(e.field, Some("users_file"));
    }

    #[test]
    fn empty_secret_is_refused() {
        let f = Fixture::new();
        f.write("target.secret", "\n", 0o600);
        let e = f.load(MINIMAL).unwrap_err();
        assert!(e.problem.contains("empty"), "{e}");
    }

    #[test]
    fn a_listener_is_required_and_https_needs_certs() {
        let f = Fixture::new();
        let e = f
            .load(&MINIMAL.replace("http_addr = \"127.0.0.1:8080\"", ""))
            .unwrap_err();
        assert_eq!(e.field, Some("https_addr"));

        let e = f
            .load(&MINIMAL.replace("http_addr", "https_addr"))
            .unwrap_err();
        assert_eq!(e.field, Some("cert_dir"));

        fs::create_dir(f.path("certs")).unwrap();
        let c = f
            .load(&format!(
                "cert_dir = \"certs\"\n{}",
                MINIMAL.replace("http_addr", "https_addr")
            ))
            .unwrap();
        assert_eq!(c.cert_dir, Some(f.path("certs")));
    }

    #[test]
    fn reserved_migrate_fields_are_validated() {
        let f = Fixture::new();
        let e = f
            .load(&format!("journal_bucket = \"Bad_Name\"\n{MINIMAL}"))
            .unwrap_err();
        assert_eq!(e.field, Some("journal_bucket"));

        f.write("token.key", "0123456789abcdef0123456789abcdef\n", 0o644);
        let e = f
            .load(&format!(
                "listing_token_key_file = \"token.key\"\n{MINIMAL}"
            ))
            .unwrap_err();
        assert_eq!(e.field, Some("listing_token_key_file"));

        f.write("token.key", "0123456789abcdef0123456789abcdef\n", 0o600);
        let c = f
            .load(&format!(
                "journal_bucket = \"ferry-journal\"\nlisting_token_key_file = \"token.key\"\n{MINIMAL}"
            ))
            .unwrap();
        assert_eq!(c.journal_bucket.as_deref(), Some("ferry-journal"));
    }

    #[test]
    fn s3_domains_are_dns_names() {
        let f = Fixture::new();
        let c = f
            .load(&format!("s3_domains = [\"S3.Example.com\"]\n{MINIMAL}"))
            .unwrap();
        assert_eq!(c.s3_domains, ["s3.example.com"]);
        for bad in [
            "https://s3.example.com",
            "s3.example.com:443",
            ".example.com",
            "",
        ] {
            let e = f
                .load(&format!("s3_domains = [\"{bad}\"]\n{MINIMAL}"))
                .unwrap_err();
            assert_eq!(e.field, Some("s3_domains"), "{bad}");
        }
    }

    #[test]
    fn zero_durations_are_refused() {
        let f = Fixture::new();
        let e = f
            .load(&format!("max_clock_skew_secs = 0\n{MINIMAL}"))
            .unwrap_err();
        assert_eq!(e.field, Some("max_clock_skew_secs"));
        let e = f
            .load(&MINIMAL.replace("[target]", "[target]\nread_timeout_secs = 0"))
            .unwrap_err();
        assert_eq!(e.field, Some("target.read_timeout_secs"));
    }

    #[test]
    fn wrong_types_are_refused_on_one_line() {
        let f = Fixture::new();
        let e = f
            .load(&MINIMAL.replace("\"127.0.0.1:8080\"", "\"localhost\""))
            .unwrap_err();
        assert!(e.problem.starts_with("line 2:"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}

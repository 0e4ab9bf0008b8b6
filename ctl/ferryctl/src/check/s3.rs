//! The S3 side of the checks: a client user's credential from the users
//! file, and S3 clients to a proxy pinned to a bucket hostname (the name in
//! the URL, the Host header and SNI; the address the proxy's) or straight
//! to the source.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns};
use clap::Args;
use ferry_control::users::{Grant, Users};

use crate::failure::Failure;

/// The proxy's users file, where package installs put it.
pub const DEFAULT_USERS_FILE: &str = "/etc/ferry/users.toml";

/// Which client user a check acts as.
#[derive(Args, Debug, Clone)]
pub struct ClientUser {
    /// The proxy's users file (the client users replicated from the
    /// source): the check acts as one of them.
    #[arg(long, default_value = DEFAULT_USERS_FILE, value_name = "FILE")]
    pub users_file: PathBuf,
    /// The user to act as. Default: the first (by name) with a write grant
    /// on the bucket.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// The CA files of a check that speaks TLS to a proxy and a source.
#[derive(Args, Debug, Clone)]
pub struct CaFiles {
    /// CA certificates (PEM) for an https proxy. Default: the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// CA certificates (PEM) for an https source. Default: the system's
    /// roots.
    #[arg(long, value_name = "FILE")]
    pub source_ca_file: Option<PathBuf>,
}

impl CaFiles {
    pub fn proxy(&self) -> Result<Option<Vec<u8>>, Failure> {
        read_opt(&self.ca_file)
    }

    pub fn source(&self) -> Result<Option<Vec<u8>>, Failure> {
        read_opt(&self.source_ca_file)
    }
}

/// The bytes of an optional file (a CA bundle).
pub fn read_opt(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, Failure> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display()))))
        .transpose()
}

/// A client user's name and credential.
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub access_key: String,
    pub secret: String,
}

impl Credential {
    /// `KEY` with the secret in `file` (its first line; mode 0600), as the
    /// flags `{flag}-key` and `{flag}-secret-file` give them.
    pub fn from_file(key: &str, file: &std::path::Path, flag: &str) -> Result<Credential, Failure> {
        Ok(Credential {
            name: key.to_owned(),
            access_key: key.to_owned(),
            secret: ferry_control::private_file::read_secret_file(file)
                .map_err(|e| Failure::Usage(format!("{flag}-secret-file: {e}")))?,
        })
    }
}

impl ClientUser {
    /// The users file, read once, to take credentials from.
    pub fn load(&self) -> Result<ClientUsers<'_>, Failure> {
        let users = Users::load(&self.users_file).map_err(|e| {
            Failure::Usage(format!(
                "{e} (the check acts as a client user from the proxy's users file: run as root, \
                 or give --users-file)"
            ))
        })?;
        Ok(ClientUsers { users, from: self })
    }

    pub fn credential(&self, bucket: &str) -> Result<Credential, Failure> {
        self.load()?.credential(bucket)
    }
}

/// A loaded users file and the user asked for.
pub struct ClientUsers<'a> {
    users: Users,
    from: &'a ClientUser,
}

impl ClientUsers<'_> {
    /// `--user`, or the first user (by name) with a write grant on `bucket`.
    pub fn credential(&self, bucket: &str) -> Result<Credential, Failure> {
        let (users, file, name) = (
            &self.users,
            &self.from.users_file,
            self.from.user.as_deref(),
        );
        let mut all: Vec<_> = users.iter().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let user = match name {
            Some(n) => all.into_iter().find(|u| u.name == n).ok_or_else(|| {
                Failure::Usage(format!("{}: no user named {n:?}", file.display()))
            })?,
            None => all
                .into_iter()
                .find(|u| u.buckets.get(bucket) == Some(&Grant::Write))
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "{}: no user may write {bucket}; give --user",
                        file.display()
                    ))
                })?,
        };
        Ok(Credential {
            name: user.name.clone(),
            access_key: user.access_key.clone(),
            secret: user.secret().to_owned(),
        })
    }
}

/// Where one S3 client sends its requests.
pub struct Target<'a> {
    /// `http(s)://HOST:PORT`; HOST is the name clients use.
    pub url: String,
    pub path_style: bool,
    pub region: &'a str,
    /// Connect here whatever HOST resolves to.
    pub pin: Option<IpAddr>,
    /// Trust exactly these CA certificates (PEM) for https; else the
    /// system's roots.
    pub ca_pem: Option<&'a [u8]>,
}

impl<'a> Target<'a> {
    /// Straight to an attached bucket's source (path style).
    pub fn source(view: &'a ferry_control::BucketView, ca_pem: Option<&'a [u8]>) -> Target<'a> {
        Target {
            url: view.source_url.clone(),
            path_style: true,
            region: &view.source_region,
            pin: None,
            ca_pem,
        }
    }
}

/// Answers one address for every name: the proxy's, for a bucket
/// hostname that DNS may not yet (or no longer) give.
#[derive(Debug, Clone)]
struct Pinned(IpAddr);

impl ResolveDns for Pinned {
    fn resolve_dns<'a>(&'a self, _name: &'a str) -> DnsFuture<'a> {
        DnsFuture::ready(Ok(vec![self.0]))
    }
}

pub fn client(target: &Target<'_>, cred: &Credential) -> Result<aws_sdk_s3::Client, Failure> {
    let creds = Credentials::new(&cred.access_key, &cred.secret, None, None, "ferryctl");
    let mut conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&target.url)
        .region(Region::new(target.region.to_owned()))
        .credentials_provider(creds)
        .force_path_style(target.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
    let mut ctx = tls::TlsContext::builder();
    if let Some(pem) = target.ca_pem {
        ctx = ctx.with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem));
    }
    let ctx = ctx
        .build()
        .map_err(|e| Failure::Usage(format!("the CA file cannot be used: {e}")))?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(ctx);
    conf = conf.http_client(match target.pin {
        Some(ip) => http.build_with_resolver(Pinned(ip)),
        None => http.build_https(),
    });
    Ok(aws_sdk_s3::Client::from_conf(conf.build()))
}

/// `http(s)://HOST:PORT` split, HOST resolved once.
pub struct ProxyAddr {
    pub scheme: String,
    pub port: u16,
    pub ip: IpAddr,
    pub host: String,
}

pub fn proxy_addr(url: &str) -> Result<ProxyAddr, Failure> {
    let bad = |why: &str| Failure::Usage(format!("--proxy {url}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| *s == "http" || *s == "https")
        .ok_or_else(|| bad("expected http://HOST:PORT or https://HOST:PORT"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .unwrap_or((rest, if scheme == "https" { 443 } else { 80 }));
    let ip = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("resolves to no address"))?
        .ip();
    Ok(ProxyAddr {
        scheme: scheme.to_owned(),
        port,
        ip,
        host: host.to_owned(),
    })
}

impl ProxyAddr {
    /// The proxy, as clients reach it under `hostname`: in the URL, the
    /// Host header and SNI, while connecting to the proxy's address. A
    /// name that starts with `BUCKET.` is used virtual-hosted style, any
    /// other path style.
    pub fn as_named<'a>(
        &self,
        hostname: &str,
        bucket: &str,
        region: &'a str,
        ca_pem: Option<&'a [u8]>,
    ) -> Target<'a> {
        let (host, path_style) = match hostname.strip_prefix(&format!("{bucket}.")) {
            Some(rest) => (rest, false),
            None => (hostname, true),
        };
        Target {
            url: format!("{}://{host}:{}", self.scheme, self.port),
            path_style,
            region,
            pin: Some(self.ip),
            ca_pem,
        }
    }
}

/// One line for an SDK error: the S3 code and status, else the cause.
pub fn why<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match se.err().code() {
                Some(code) => format!("{code} ({status})"),
                None => format!("HTTP {status}"),
            }
        }
        other => {
            let mut s = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                s = format!("{s}: {cause}");
                source = cause.source();
            }
            s
        }
    }
}

/// The HTTP status of a service error.
pub fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
        _ => None,
    }
}

/// A probe key no client uses.
pub fn probe_key(check: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ferry-check/{check}-{nanos:x}-{}", std::process::id())
}

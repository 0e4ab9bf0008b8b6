//! `ferryctl check tls HOST:PORT --names a,b`: one handshake per name, with
//! that name as SNI, and three items for what the endpoint served: the
//! chain (anchored in `--ca-file` or the system's roots), the SAN (covers
//! the name), and the validity window (warns `--warn-days` before expiry).
//!
//! The handshake itself accepts any certificate, so that each fault is
//! named on its own line instead of one handshake error; nothing is sent
//! over the connection.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Item, Report, Status};
use crate::failure::Failure;

const WARN_DAYS: u64 = 14;
const TIMEOUT_SECS: u64 = 10;

#[derive(Args, Debug)]
pub struct TlsArgs {
    /// The TLS endpoint, HOST:PORT (a proxy's S3 listener).
    endpoint: String,
    /// The names clients use, comma-separated: each is sent as SNI in its
    /// own handshake, and the certificate served must cover it.
    #[arg(long, value_delimiter = ',', required = true, value_name = "NAMES")]
    names: Vec<String>,
    /// CA certificates (PEM) that must anchor the served chain. Default:
    /// the system's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Warn when a certificate expires within this many days.
    #[arg(long, default_value_t = WARN_DAYS, value_name = "DAYS")]
    warn_days: u64,
    /// Give up on a connection or handshake after this many seconds.
    #[arg(long, default_value_t = TIMEOUT_SECS, value_name = "SECS")]
    timeout: u64,
}

impl TlsArgs {
    /// `check tls ENDPOINT --names NAMES [--ca-file CA]`, with the
    /// defaults otherwise (for preflight).
    pub fn new(endpoint: String, names: Vec<String>, ca_file: Option<PathBuf>) -> TlsArgs {
        TlsArgs {
            endpoint,
            names,
            ca_file,
            warn_days: WARN_DAYS,
            timeout: TIMEOUT_SECS,
        }
    }
}

pub fn run(args: &TlsArgs) -> Result<Report, Failure> {
    let anchors = trust_anchors(args)?;
    let mut items = Vec::new();
    for name in &args.names {
        let chain = match handshake(args, name) {
            Ok(chain) => chain,
            Err(e) => {
                items.push(Item::new(
                    format!("{name}: handshake"),
                    Status::Fail,
                    format!("{}: {e}", args.endpoint),
                ));
                continue;
            }
        };
        items.extend(examine(args, &anchors, name, &chain));
    }
    Ok(Report::new("tls", &args.endpoint, items))
}

/// The chain, SAN and validity items for what was served for `name`.
fn examine(
    args: &TlsArgs,
    anchors: &[TrustAnchor<'static>],
    name: &str,
    chain: &[CertificateDer<'static>],
) -> Vec<Item> {
    let item =
        |what: &str, status, detail: String| Item::new(format!("{name}: {what}"), status, detail);
    let Some((leaf_der, intermediates)) = chain.split_first() else {
        return vec![item(
            "chain",
            Status::Fail,
            "no certificate was served".into(),
        )];
    };
    let leaf = match X509Certificate::from_der(leaf_der) {
        Ok((_, c)) => c,
        Err(e) => {
            return vec![item(
                "chain",
                Status::Fail,
                format!("unreadable certificate: {e}"),
            )];
        }
    };
    let ee = match webpki::EndEntityCert::try_from(leaf_der) {
        Ok(ee) => ee,
        Err(e) => {
            return vec![item(
                "chain",
                Status::Fail,
                format!("unreadable certificate: {e:?}"),
            )];
        }
    };
    let now = unix_now();
    let (not_before, not_after) = (
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
    );
    // The chain is judged at a moment the leaf is valid, so that an expired
    // leaf shows as expired, below, not as an untrusted chain too.
    // (clamp panics on an inverted window, which a bad certificate may have)
    let at = now.max(not_before).min(not_after).max(0) as u64;
    let trusted = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        intermediates,
        UnixTime::since_unix_epoch(Duration::from_secs(at)),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    let subject = leaf.subject().to_string();
    let mut items = vec![match trusted {
        Ok(_) => item(
            "chain",
            Status::Pass,
            format!("{subject}, issued by {}: trusted", leaf.issuer()),
        ),
        Err(e) => item(
            "chain",
            Status::Fail,
            format!(
                "{subject}, issued by {}: not trusted by {} ({e:?})",
                leaf.issuer(),
                args.ca_file
                    .as_ref()
                    .map_or("the system's roots".to_owned(), |p| p.display().to_string())
            ),
        ),
    }];
    let covered = ServerName::try_from(name)
        .map_err(|e| format!("{e}"))
        .and_then(|sn| {
            ee.verify_is_valid_for_subject_name(&sn)
                .map_err(|e| format!("{e:?}"))
        });
    items.push(match covered {
        Ok(()) => item("san", Status::Pass, format!("covers {name}")),
        Err(_) => item(
            "san",
            Status::Fail,
            format!("does not cover {name}; its SAN holds: {}", san_list(&leaf)),
        ),
    });
    let until = ferry_fleet::state::rfc3339(leaf.validity().not_after.to_datetime());
    let days_left = (not_after - now).div_euclid(86_400);
    items.push(if now < not_before {
        let from = ferry_fleet::state::rfc3339(leaf.validity().not_before.to_datetime());
        item("validity", Status::Fail, format!("not valid before {from}"))
    } else if now > not_after {
        item("validity", Status::Fail, format!("expired at {until}"))
    } else if days_left < args.warn_days as i64 {
        item(
            "validity",
            Status::Warn,
            format!("expires at {until}, in {days_left} days (renew it before then)"),
        )
    } else {
        item(
            "validity",
            Status::Pass,
            format!("valid until {until} ({days_left} days)"),
        )
    });
    items
}

fn san_list(cert: &X509Certificate<'_>) -> String {
    let names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(ip) => match <[u8; 4]>::try_from(*ip) {
                    Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
                    Err(_) => match <[u8; 16]>::try_from(*ip) {
                        Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                        Err(_) => "IP:?".to_owned(),
                    },
                },
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn trust_anchors(args: &TlsArgs) -> Result<Vec<TrustAnchor<'static>>, Failure> {
    let ders: Vec<CertificateDer<'static>> = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| Failure::Usage(format!("--ca-file {}: {e}", path.display())))?;
            let certs: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| Failure::Usage(format!("--ca-file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Failure::Usage(format!(
                    "--ca-file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            certs
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    Ok(ders
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .map(|a| a.to_owned())
        .collect())
}

/// A TLS handshake with `name` as SNI; answers the chain served.
fn handshake(args: &TlsArgs, name: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        provider: provider.clone(),
        chain: Mutex::new(Vec::new()),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| format!("{name}: {e}"))?;
    let mut conn =
        ClientConnection::new(Arc::new(config), server_name).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(args.timeout);
    let addr = args
        .endpoint
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or("resolves to no address")?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err("timed out in the handshake".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let chain = std::mem::take(&mut *recorder.chain.lock().expect("not poisoned"));
    Ok(chain)
}

/// Accepts the server's certificate and keeps it for [`examine`]; the
/// handshake signatures are still checked, so the chain is the server's.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = self.chain.lock().expect("not poisoned");
        chain.clear();
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

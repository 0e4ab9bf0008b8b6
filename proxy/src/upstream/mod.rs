//! The stores the proxy talks to: an upstream S3 endpoint, from its URL,
//! and the CA it is verified with; how a connection to one is set up; and
//! the client of the requests the proxy makes itself ([`fetch`]).

pub mod fetch;
pub mod resolve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{WrappedX509, parse_x509};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Trust anchors for one upstream's TLS.
pub type CaList = [WrappedX509];

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port`, what the connection and the `Host` header use.
    pub authority: String,
    /// The host alone: the TLS server name.
    pub host: String,
    pub tls: bool,
    /// The address, when the host is an IP address; `None`: a name, looked
    /// up per [`resolve`].
    pub ip: Option<SocketAddr>,
    /// Verify the upstream against exactly these CAs (the bucket's
    /// `tls_cert`, or `target.ca_file`); `None`: the system roots.
    pub ca: Option<Arc<CaList>>,
}

/// Parses PEM certificates into trust anchors. Each must be a certificate
/// webpki can use as an anchor, which also guarantees it parses as X.509.
pub fn ca_from_pem(pem: &[u8]) -> Result<Arc<CaList>, String> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e:?}"))?;
    if ders.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let mut out = Vec::with_capacity(ders.len());
    for der in ders {
        webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        out.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    Ok(out.into())
}

/// A connection to `up` at `addr` ([`resolve::address`]): its TLS name and
/// trust anchors, and the timeouts. Proxied requests and the proxy's own
/// (`fetch`) connect the same way.
pub fn peer(
    up: &Upstream,
    addr: SocketAddr,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, up.tls, up.host.clone());
    peer.options.ca = up.ca.clone();
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.read_timeout = Some(read_timeout);
    peer
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct UrlError(String);

impl Upstream {
    /// Parses `http://host[:port][/]` or `https://…`. A path is refused: S3
    /// endpoints are addressed at their root.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(UrlError(format!(
                "{url:?}: the URL must start with http:// or https://"
            )));
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(UrlError(format!(
                "{url:?}: expected scheme://host[:port] with no path or user"
            )));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, None),
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let port: u16 = match port {
            Some(p) => p
                .parse()
                .map_err(|_| UrlError(format!("{url:?}: bad port {p:?}")))?,
            None if tls => 443,
            None => 80,
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let ip = host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Ok(Self {
            authority,
            host,
            tls,
            ip,
            ca: None,
        })
    }

    /// This upstream, failing closed: every connection to it is refused
    /// (port 1 of 0.0.0.0), for a bucket whose source can no longer be
    /// trusted or read.
    pub fn unreachable(self) -> Self {
        let ip = SocketAddr::from(([0, 0, 0, 0], 1));
        Self {
            authority: ip.to_string(),
            ip: Some(ip),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Upstream::from_url("http://127.0.0.1:3900").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.host.as_str(), u.tls),
            ("127.0.0.1:3900", "127.0.0.1", false)
        );
        let u = Upstream::from_url("https://s3.example.com/").unwrap();
        assert_eq!(u.authority, "s3.example.com:443");
        assert!(u.tls);
        let u = Upstream::from_url("http://[::1]:9000").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.host.as_str()),
            ("[::1]:9000", "::1")
        );
        assert!(Upstream::from_url("ftp://x").is_err());
        assert!(Upstream::from_url("http://x/bucket").is_err());
        assert!(Upstream::from_url("http://x:port").is_err());
    }
}

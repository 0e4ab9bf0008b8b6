//! The HTTP client under the engine's S3 clients: hyper and rustls, as the
//! SDK's default client is, plus `TCP_QUICKACK` on every read.
//!
//! Why not the SDK's default: Garage 2.5 (and any server that leaves Nagle's
//! algorithm on) writes a response's headers and its body in two writes.
//! When the body is smaller than a segment, Nagle holds it until the headers
//! are acknowledged, and Linux delays that ACK by 40 ms because the client has
//! nothing to send. A 4 KiB GET from Garage took 44 ms instead of 1 ms, so a
//! copier of small objects waited on timers, not on the stores. Quick-ack
//! sends the ACK at once. Linux leaves quick-ack mode again by itself, so it
//! is set before each read, not once per connection (one `setsockopt` per
//! read). The SDK's client offers no hook on its sockets, hence this one.
//!
//! Trust roots are the system's (`rustls-native-certs`, which honours
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`), as with the SDK's default client,
//! or exactly the CA certificates of a store's `--src-ca-file` /
//! `--dest-ca-file`.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector as TcpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

type Hyper = hyper_util::client::legacy::Client<HttpsConnector<QuickAckConnector>, SdkBody>;

/// How long to wait for a connection, and for a response's headers (which,
/// for an upload, come after its whole body was sent).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for Timeouts {
    /// The engines' own: 10 s to connect, 120 s for a response head.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(120),
        }
    }
}

/// An SDK HTTP client whose connections acknowledge at once, trusting the
/// system's roots, or exactly the CA certificates in `ca_pem`. The timeouts
/// are this client's own: it does not read the SDK's `TimeoutConfig`.
pub fn http_client(timeouts: Timeouts, ca_pem: Option<&[u8]>) -> Result<SharedHttpClient, String> {
    let roots = match ca_pem {
        Some(pem) => ca_roots(pem)?,
        None => system_roots(),
    };
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(timeouts.connect));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(roots))
        .https_or_http()
        .enable_http1()
        .wrap_connector(QuickAckConnector(tcp));
    let client = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        // Without a timer the pool never closes an idle connection.
        .pool_timer(TokioTimer::new())
        .build(https);
    Ok(SharedHttpClient::new(Client {
        connector: SharedHttpConnector::new(Connector {
            client,
            response_timeout: timeouts.response,
        }),
    }))
}

/// The CA certificates of a PEM file, as the only roots.
fn ca_roots(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate cannot be a root: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no certificate in it (expected -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(roots)
}

fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("loading the system's CA certificates: {e}");
    }
    // A certificate that does not parse is skipped, as the SDK's client
    // does; with no roots at all, plain http still works and https fails
    // on the certificate, which names the cause.
    roots.add_parsable_certificates(found.certs);
    roots
}

fn tls_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[derive(Debug)]
struct Client {
    connector: SharedHttpConnector,
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector.clone()
    }
}

#[derive(Debug)]
struct Connector {
    client: Hyper,
    response_timeout: Duration,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let sent = self.client.request(request);
        let limit = self.response_timeout;
        HttpConnectorFuture::new(async move {
            let response = match tokio::time::timeout(limit, sent).await {
                Err(_) => {
                    let msg = format!("no response within {limit:?}");
                    return Err(ConnectorError::timeout(msg.into()));
                }
                Ok(Err(e)) => return Err(connector_error(e)),
                Ok(Ok(r)) => r,
            };
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Sorts hyper's errors the way the engine's retry classes need: a timeout
/// is a timeout, anything on the wire is I/O (retried from a fresh GET).
fn connector_error(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = sources(&e).any(|s| {
        s.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
            || s.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
    });
    if timed_out {
        return ConnectorError::timeout(e.into());
    }
    let user = sources(&e).any(|s| {
        s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
    });
    if user {
        return ConnectorError::user(e.into());
    }
    ConnectorError::io(e.into())
}

fn sources<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e| e.source())
}

/// hyper's TCP connector, with its streams wrapped in [`QuickAck`].
#[derive(Clone)]
struct QuickAckConnector(TcpConnector);

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = <TcpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAck, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAck) })
    }
}

/// A TCP stream that asks for quick-ack before every read.
struct QuickAck(TokioIo<TcpStream>);

impl QuickAck {
    fn tcp(&self) -> &TcpStream {
        self.0.inner()
    }
}

impl Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // A failure only costs the delay this avoids, so it is not an error.
        let _ = socket2::SockRef::from(self.tcp()).set_tcp_quickack(true);
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quick-ack mode is read back from the kernel: it is on after a read
    /// through the wrapper, whatever state the socket was left in before.
    #[tokio::test]
    async fn every_read_turns_quick_ack_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                tokio::io::AsyncWriteExt::write_all(&mut s, b"x")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut conn = QuickAckConnector({
            let mut c = TcpConnector::new();
            c.set_nodelay(true);
            c
        });
        let uri: Uri = format!("http://{addr}/").parse().unwrap();
        let mut stream = tower_service::Service::call(&mut conn, uri).await.unwrap();
        for _ in 0..2 {
            socket2::SockRef::from(stream.tcp())
                .set_tcp_quickack(false)
                .unwrap();
            let mut byte = [0u8; 1];
            let n = read_some(&mut stream, &mut byte).await;
            assert_eq!(n, 1);
            let on = socket2::SockRef::from(stream.tcp()).tcp_quickack().unwrap();
            assert!(on, "quick-ack was off after a read through QuickAck");
        }
        server.await.unwrap();
    }

    async fn read_some(stream: &mut QuickAck, out: &mut [u8]) -> usize {
        let mut io = TokioIo::new(stream);
        tokio::io::AsyncReadExt::read(&mut io, out).await.unwrap()
    }
}

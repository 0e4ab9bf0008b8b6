//! Requests the proxy makes on its own behalf in migrate mode (a fallback
//! read, a listing page, a journal entry, a delete on both sides), through
//! Pingora's connector: the same connection pools and the same upstream TLS
//! verification as the proxied requests.
//!
//! Every request is signed here with the credentials of the side it goes
//! to. Bodies stream: a response is read piece by piece, and a request body
//! can be written piece by piece ([`Pending`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use sha2::{Digest, Sha256};

use super::Upstream;
use crate::resign::{self, RequestLine, UpstreamCreds};
use crate::s3error::{Code, S3Error};
use ferry_s3::ErrorClass;

/// How long an idle upstream connection stays in the pool.
const IDLE: Duration = Duration::from_secs(60);

pub struct Fetcher {
    connector: Connector,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// One side: where, and as whom.
#[derive(Clone, Debug)]
pub struct Side {
    pub upstream: Upstream,
    pub creds: Arc<UpstreamCreds>,
    /// The bucket's name on this side.
    pub bucket: String,
    /// `source` or `target`: for errors and metrics.
    pub label: &'static str,
}

impl Side {
    /// The path of object `key` on this side. An empty key is refused: it
    /// would address the bucket itself.
    pub fn object(&self, key: &str) -> Result<String, S3Error> {
        let path = ferry_s3::percent::object_path(&self.bucket, key).ok_or_else(|| {
            S3Error::new(
                Code::UserKeyMustBeSpecified,
                "The request was missing a required key: an object key may not be empty",
            )
        })?;
        resign::canonical_target(&path, "")
    }
}

/// The body of an outgoing request.
pub enum Body {
    Empty,
    /// A small body in full; it is signed by its SHA-256.
    Full(Bytes),
    /// A body written later through [`Pending::write`], of this length.
    Stream(u64),
}

pub struct Request<'a> {
    pub method: &'a str,
    /// Canonical path and query (see `resign::canonical_target`).
    pub target: &'a str,
    /// Headers besides host, length and signature.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A request whose body is still being written.
pub struct Pending {
    session: HttpSession,
    peer: HttpPeer,
    label: &'static str,
}

/// A response whose body may still be unread.
pub struct Response {
    session: HttpSession,
    peer: HttpPeer,
    label: &'static str,
    pub status: u16,
}

/// The connection to the side failed or broke off (counted in
/// `ferry_proxy_upstream_errors_total`, as a proxied request's are): the
/// caller answers 503.
fn broken(label: &'static str, e: &pingora::Error) -> S3Error {
    crate::metrics::upstream_error(label, crate::metrics::error_class(e.etype()));
    unavailable(label, e)
}

/// The side could not be reached, or broke off: the caller answers 503.
pub fn unavailable(label: &str, e: impl std::fmt::Display) -> S3Error {
    tracing::warn!(upstream = label, error = %e, "upstream request failed");
    S3Error::new(
        Code::ServiceUnavailable,
        format!("the {label} S3 service is unavailable; please retry"),
    )
}

impl Fetcher {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Fetcher {
        Fetcher {
            connector: Connector::new(None),
            connect_timeout,
            read_timeout,
        }
    }

    /// `after`: the address whose connect just failed.
    async fn peer(
        &self,
        up: &Upstream,
        label: &'static str,
        after: Option<SocketAddr>,
    ) -> Result<(HttpPeer, SocketAddr), S3Error> {
        use crate::metrics::{DNS_ERROR, error_class, upstream_error};
        let addr = super::resolve::address(up, self.connect_timeout, after)
            .await
            .map_err(|e| {
                upstream_error(label, error_class(&DNS_ERROR));
                unavailable(label, e)
            })?;
        let peer = super::peer(up, addr, self.connect_timeout, self.read_timeout);
        Ok((peer, addr))
    }

    /// Sends the request line, headers and (for `Full`) the body.
    pub async fn start(&self, side: &Side, req: Request<'_>) -> Result<Pending, S3Error> {
        let label = side.label;
        let fail = |e: &dyn std::fmt::Display| unavailable(label, e);
        let (hash, len, full) = match req.body {
            Body::Empty => (hex::encode(Sha256::digest(b"")), 0, None),
            Body::Full(b) => (hex::encode(Sha256::digest(&b)), b.len() as u64, Some(b)),
            Body::Stream(n) => ("UNSIGNED-PAYLOAD".to_owned(), n, None),
        };
        let mut head =
            RequestHeader::build(req.method, req.target.as_bytes(), None).map_err(|e| fail(&e))?;
        let mut headers = req.headers;
        headers.push(("host".into(), side.upstream.authority.clone()));
        let line = RequestLine {
            method: req.method,
            target: req.target,
        };
        let view: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let signed = resign::sign_request(&line, &view, &hash, &side.creds, SystemTime::now())?;
        for (n, v) in headers
            .into_iter()
            .chain(signed.map(|(n, v)| (n.to_owned(), v)))
        {
            // Header text past ASCII is Latin-1 (`headers::header_pairs`):
            // each character one byte, as the client sent it.
            let bytes: Vec<u8> = v
                .chars()
                .map(|c| u8::try_from(c as u32))
                .collect::<Result<_, _>>()
                .map_err(|e| fail(&e))?;
            let v = http::HeaderValue::from_bytes(&bytes).map_err(|e| fail(&e))?;
            head.append_header(n, v).map_err(|e| fail(&e))?;
        }
        if len > 0 || !matches!(req.method, "GET" | "HEAD" | "DELETE") {
            head.insert_header("content-length", len.to_string())
                .map_err(|e| fail(&e))?;
        }
        // A name's next address after a failed connect: nothing was sent.
        let (mut tries, mut failed) = (0, None);
        let (mut session, peer) = loop {
            let (peer, addr) = self.peer(&side.upstream, label, failed).await?;
            match self.connector.get_http_session(&peer).await {
                Ok((session, reused)) => {
                    crate::metrics::upstream_connection(label, reused);
                    break (session, peer);
                }
                Err(e) => {
                    tries += 1;
                    failed = Some(addr);
                    if tries >= super::resolve::count(&side.upstream) {
                        return Err(broken(label, &e));
                    }
                    crate::metrics::upstream_error(label, crate::metrics::error_class(e.etype()));
                    tracing::warn!(upstream = label, error = %e, "upstream connect failed; trying its next address");
                }
            }
        };
        session.set_read_timeout(Some(self.read_timeout));
        session
            .write_request_header(Box::new(head))
            .await
            .map_err(|e| broken(label, &e))?;
        if let Some(b) = full {
            session
                .write_request_body(b, true)
                .await
                .map_err(|e| broken(label, &e))?;
        }
        Ok(Pending {
            session,
            peer,
            label,
        })
    }

    /// Sends a request with a body in hand and waits for the response head.
    pub async fn send(&self, side: &Side, req: Request<'_>) -> Result<Response, S3Error> {
        self.start(side, req).await?.response().await
    }

    /// Sends a request with a body in hand and reads the answer whole (at
    /// most `limit` bytes): its status and body, the connection back in
    /// the pool.
    pub async fn fetch(
        &self,
        side: &Side,
        req: Request<'_>,
        limit: usize,
    ) -> Result<(u16, Bytes), S3Error> {
        let mut r = self.send(side, req).await?;
        let status = r.status;
        let body = r.body(limit).await?;
        self.release(r).await;
        Ok((status, body))
    }

    /// A GET of `target` on `side`, read whole (at most `limit` bytes).
    pub async fn get(
        &self,
        side: &Side,
        target: &str,
        limit: usize,
    ) -> Result<(u16, Bytes), S3Error> {
        let req = Request {
            method: "GET",
            target,
            headers: Vec::new(),
            body: Body::Empty,
        };
        self.fetch(side, req, limit).await
    }

    /// Returns a fully read response's connection to the pool.
    pub async fn release(&self, r: Response) {
        self.connector
            .release_http_session(r.session, &r.peer, Some(IDLE))
            .await;
        // The pool's idle watcher of that connection is a task just
        // spawned on this thread. Left queued while this task goes on to
        // its next upstream request, it let another worker thread race
        // Pingora 0.9's pool: a pooled connection taken at that moment was
        // dropped ("failed to acquire reusable stream") and a new one
        // opened, for a quarter of sequential migrate-mode fallbacks
        // (`fallbacks_reuse_their_upstream_connections_after_a_404`).
        tokio::task::yield_now().await;
    }
}

impl Pending {
    pub async fn write(&mut self, data: Bytes, end: bool) -> Result<(), S3Error> {
        self.session
            .write_request_body(data, end)
            .await
            .map_err(|e| broken(self.label, &e))
    }

    pub async fn response(mut self) -> Result<Response, S3Error> {
        let label = self.label;
        self.session
            .finish_request_body()
            .await
            .map_err(|e| broken(label, &e))?;
        self.session
            .read_response_header()
            .await
            .map_err(|e| broken(label, &e))?;
        if let Some(stream) = self.session.stream() {
            crate::quickack::ack_now(pingora::protocols::UniqueID::id(&**stream));
        }
        let status = self
            .session
            .response_header()
            .map(|h| h.status.as_u16())
            .ok_or_else(|| unavailable(label, "no response header"))?;
        Ok(Response {
            session: self.session,
            peer: self.peer,
            label,
            status,
        })
    }
}

impl Response {
    pub fn header(&self) -> &ResponseHeader {
        self.session
            .response_header()
            .expect("read in Pending::response")
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header()
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, S3Error> {
        self.session
            .read_response_body()
            .await
            .map_err(|e| broken(self.label, &e))
    }

    /// Reads the whole body, refusing one longer than `limit`: for XML
    /// answers (errors, listings, delete results), never for objects.
    pub async fn body(&mut self, limit: usize) -> Result<Bytes, S3Error> {
        let mut out = BytesMut::new();
        while let Some(b) = self.chunk().await? {
            if out.len() + b.len() > limit {
                return Err(unavailable(
                    self.label,
                    format!("an answer longer than {limit} bytes"),
                ));
            }
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }

    /// The S3 error code in an error body (`<Code>…</Code>`).
    pub async fn error_code(&mut self) -> Result<String, S3Error> {
        let body = self.body(64 * 1024).await?;
        Ok(error_code(&body).unwrap_or_default())
    }

    /// The class of this error answer, and its code (for messages).
    pub async fn error(&mut self) -> Result<(ErrorClass, String), S3Error> {
        let code = self.error_code().await?;
        let class = ErrorClass::of(
            Some(self.status),
            (!code.is_empty()).then_some(code.as_str()),
        );
        Ok((class, code))
    }
}

/// A header value as text, each byte one character (Latin-1, as HTTP
/// defines header octets): ASCII stays as it is, nothing is dropped, and
/// [`Fetcher::start`] writes it back as the same bytes.
pub fn latin1(v: &[u8]) -> String {
    v.iter().map(|&b| b as char).collect()
}

/// The class of an upstream's answer (`ferry_s3::ErrorClass`), from its
/// status and the `<Code>` of its body.
pub fn error_class(status: u16, body: &[u8]) -> ErrorClass {
    ErrorClass::of(Some(status), error_code(body).as_deref())
}

/// The `<Code>` of an S3 XML error body.
pub fn error_code(body: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let start = s.find("<Code>")? + "<Code>".len();
    let end = s[start..].find("</Code>")? + start;
    Some(s[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_is_read_from_the_body() {
        let b = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>";
        assert_eq!(error_code(b).as_deref(), Some("NoSuchKey"));
        assert_eq!(error_code(b"<html>"), None);
    }

    /// A name with a dead address and a live one: the request fails over.
    #[tokio::test]
    async fn a_refused_address_of_a_name_fails_over_to_the_next() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (live_addr, dead_addr) = (live.local_addr().unwrap(), dead.local_addr().unwrap());
        drop(dead);
        let server = tokio::spawn(async move {
            let (mut c, _) = live.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                c.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            head
        });
        let name = "failover.test:9000";
        // The first address is handed out here, so the request's
        // first try is the dead one.
        super::super::resolve::answer(
            name,
            Ok(vec![live_addr, dead_addr]),
            std::time::Instant::now(),
            None,
        )
        .unwrap();
        let side = Side {
            upstream: Upstream::from_url(&format!("http://{name}")).unwrap(),
            creds: Arc::new(UpstreamCreds {
                access_key: "AK".into(),
                secret: "SK".into(),
                region: "r".into(),
            }),
            bucket: "b".into(),
            label: "source",
        };
        let fetcher = Fetcher::new(Duration::from_secs(2), Duration::from_secs(5));
        let req = Request {
            method: "GET",
            target: "/b/k",
            headers: Vec::new(),
            body: Body::Empty,
        };
        let (status, body) = fetcher.fetch(&side, req, 1024).await.unwrap();
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        let head = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(head.contains("host: failover.test:9000"), "{head}");
    }
}

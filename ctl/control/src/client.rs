//! A small blocking HTTP/1.1 client for the control API over a Unix socket.
//! One request per connection (`Connection: close`), so a response ends at
//! its `Content-Length`, its last chunk, or EOF.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    ApiError, AttachRequest, BucketList, BucketView, Mark, UpdateRequest, UpdateResponse,
};

/// The proxy's admin socket unless told otherwise.
pub const DEFAULT_PROXY_SOCKET: &str = "/run/ferry/proxy.sock";
/// The agent's admin socket unless told otherwise.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/ferry/agent.sock";

/// Responses larger than this are refused (a list of many thousand buckets
/// still fits).
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Why a call failed. [`ClientError::Api`] is the server's refusal; every
/// other variant means the call never got a proper answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {}: {source}{}", path.display(), connect_hint(source))]
    Connect { path: PathBuf, source: io::Error },
    #[error("talking to {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("bad answer from {}: {detail}", path.display())]
    Protocol { path: PathBuf, detail: String },
    #[error("{error}")]
    Api { status: u16, error: ApiError },
}

fn connect_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            " (is the service running? `systemctl status ferry-proxy` or `ferry-agent`; check \
             the socket path: --socket for ferry-proxy, --agent-socket for ferry-agent)"
        }
        io::ErrorKind::PermissionDenied => {
            " (is your user in group `ferry`? `sudo usermod -aG ferry $USER`, then log in \
             again; or run as root)"
        }
        _ => "",
    }
}

impl ClientError {
    /// The server's refusal, if this is one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A raw answer: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Blocking client for one daemon's admin socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client for the socket at `socket_path`. Nothing is connected until a
    /// call. The default timeout is 120 s (attach checks the source bucket).
    pub fn new(socket_path: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket_path.into(),
            timeout: Duration::from_secs(120),
        }
    }

    /// Read and write timeout of each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/buckets`, sorted by bucket name.
    pub fn list(&self) -> Result<Vec<BucketView>, ClientError> {
        Ok(self
            .call::<BucketList>("GET", "/v1/buckets", None::<&()>)?
            .buckets)
    }

    /// `GET /v1/buckets/{bucket}`.
    pub fn show(&self, bucket: &str) -> Result<BucketView, ClientError> {
        self.call("GET", &bucket_path(bucket), None::<&()>)
    }

    /// `POST /v1/buckets`.
    pub fn attach(&self, req: &AttachRequest) -> Result<BucketView, ClientError> {
        self.call("POST", "/v1/buckets", Some(req))
    }

    /// `POST /v1/buckets/update`.
    pub fn update(&self, req: &UpdateRequest) -> Result<UpdateResponse, ClientError> {
        self.call("POST", "/v1/buckets/update", Some(req))
    }

    /// `DELETE /v1/buckets/{bucket}?force=…`; answers what was detached.
    pub fn detach(&self, bucket: &str, force: bool) -> Result<BucketView, ClientError> {
        let path = format!("{}?force={force}", bucket_path(bucket));
        self.call("DELETE", &path, None::<&()>)
    }

    /// `POST /v1/buckets/{bucket}/{verified|block|unblock}`.
    pub fn mark(&self, bucket: &str, mark: &Mark) -> Result<BucketView, ClientError> {
        let path = format!("{}/{}", bucket_path(bucket), mark.as_str());
        match mark {
            Mark::Verified(pass) => self.call("POST", &path, Some(pass)),
            Mark::Block | Mark::Unblock => self.call("POST", &path, None::<&()>),
        }
    }

    pub(crate) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(|b| serde_json::to_vec(b).expect("API types always serialize"))
            .unwrap_or_default();
        let raw = self.call_raw(method, path, (!body.is_empty()).then_some(&body[..]))?;
        if (200..300).contains(&raw.status) {
            return serde_json::from_slice(&raw.body).map_err(|e| self.protocol(e.to_string()));
        }
        match serde_json::from_slice::<ApiError>(&raw.body) {
            Ok(error) => Err(ClientError::Api {
                status: raw.status,
                error,
            }),
            Err(_) => Err(self.protocol(format!(
                "HTTP {} with a body that is not an API error: {:?}",
                raw.status,
                String::from_utf8_lossy(&raw.body[..raw.body.len().min(200)])
            ))),
        }
    }

    /// One request with an optional JSON body; any status is returned as is.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, ClientError> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let io = |source| ClientError::Io {
            path: self.socket.clone(),
            source,
        };
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;

        let body = body.unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ferryctl/{}\r\n\
             Accept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            env!("CARGO_PKG_VERSION"),
            body.len()
        )
        .into_bytes();
        if !body.is_empty() {
            req.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        if let Err(e) = stream.write_all(&req) {
            // The server may answer (413, 403) and close before reading a
            // whole body: read its answer before reporting the write error.
            if !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                return Err(io(e));
            }
            let mut buf = Vec::new();
            let _ = (&stream).take(MAX_RESPONSE_BYTES).read_to_end(&mut buf);
            return parse_response(&buf).map_err(|_| io(e));
        }

        let mut buf = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(io)?;
        if buf.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(self.protocol(format!("answer larger than {MAX_RESPONSE_BYTES} bytes")));
        }
        parse_response(&buf).map_err(|d| self.protocol(d))
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            path: self.socket.clone(),
            detail,
        }
    }
}

fn bucket_path(bucket: &str) -> String {
    // Valid bucket names need no escaping; anything else is escaped so that
    // the server sees (and refuses) exactly the name given.
    let mut p = String::from("/v1/buckets/");
    for b in bucket.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            p.push(b as char);
        } else {
            p.push_str(&format!("%{b:02X}"));
        }
    }
    p
}

/// Parse a whole HTTP/1.1 response: status line, headers, then a body framed
/// by `Content-Length`, `Transfer-Encoding: chunked`, or EOF.
fn parse_response(buf: &[u8]) -> Result<RawResponse, String> {
    let end = find(buf, b"\r\n\r\n").ok_or("the connection closed before the headers ended")?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "headers are not UTF-8")?;
    let rest = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("not an HTTP/1 status line: {status_line:?}"));
    }
    let status: u16 = code
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;

    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| format!("body cut short: {} of {n} bytes", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(RawResponse { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or("chunked body cut short")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("chunked body cut short")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunked body cut short")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_framing() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn parses_chunked_framing() {
        let r = parse_response(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn body_until_eof_without_framing() {
        let r = parse_response(b"HTTP/1.0 500 Oops\r\n\r\nall of it").unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"all of it"[..]));
    }

    #[test]
    fn refuses_truncated_answers() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn bucket_paths_escape_odd_names() {
        assert_eq!(bucket_path("my-bucket.1"), "/v1/buckets/my-bucket.1");
        assert_eq!(bucket_path("a/b?c"), "/v1/buckets/a%2Fb%3Fc");
    }
}

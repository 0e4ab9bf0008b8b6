//! A tiny blocking HTTP/1.0 GET for loopback readiness probes and metrics.
//! Only ever used with `127.0.0.1`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `127.0.0.1:port`, with short timeouts. HTTP/1.0 so the body
/// ends at connection close (no chunked encoding).
pub fn get(port: u16, path: &str) -> anyhow::Result<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("read response from {addr}{path}"))?;
    parse(&raw).with_context(|| format!("parse response from {addr}{path}"))
}

fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status line in {status_line:?}"))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_status_and_body() {
        let r = super::parse(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nhello\r\n").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "hello\r\n");
        assert!(super::parse(b"garbage").is_err());
    }
}

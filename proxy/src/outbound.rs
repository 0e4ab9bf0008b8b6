//! One request proxied to one store: where it goes, as whom, and how the
//! client's request head is rewritten and signed anew for it.

use std::sync::Arc;
use std::time::SystemTime;

use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

use crate::headers::header;
use crate::rechunk;
use crate::resign::{self, RequestLine, UpstreamCreds};
use crate::sigv4::chunked::ChecksumAlgo;
use crate::upstream::Upstream;
use crate::upstream::fetch::Side;

pub struct Outbound {
    /// `source` or `target`, for metrics.
    pub label: &'static str,
    pub upstream: Upstream,
    pub creds: Arc<UpstreamCreds>,
    /// Canonical path and query for the upstream.
    pub target: String,
    /// `x-amz-copy-source` with the upstream's bucket name.
    pub copy_source: Option<String>,
    pub payload_hash: String,
    /// The decoded length of an aws-chunked body.
    pub decoded_length: Option<u64>,
    /// The checksum an aws-chunked body's trailer carries: the body goes
    /// upstream framed anew with it (`crate::rechunk`).
    pub trailer: Option<ChecksumAlgo>,
    /// Migrate mode: the write goes to the target with `If-None-Match: *`
    /// in place of its `If-Match` (see `migrate::merged::Verdict`).
    pub create_only: bool,
}

impl Outbound {
    /// The store, for a request the proxy sends itself (the path is
    /// [`Outbound::target`], so no bucket is named here).
    pub fn side(&self) -> Side {
        Side {
            upstream: self.upstream.clone(),
            creds: self.creds.clone(),
            bucket: String::new(),
            label: self.label,
        }
    }

    /// Rewrites the client's request head for the store and signs it.
    /// `read_ahead`: the proxy has read the body's start and answered
    /// `100 Continue` itself.
    pub fn rewrite(&self, upstream: &mut RequestHeader, read_ahead: bool) -> Result<()> {
        let uri: http::Uri = self
            .target
            .parse()
            .map_err(|e| Error::because(ErrorType::InternalError, "upstream uri", e))?;
        upstream.set_uri(uri);
        for h in [
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ] {
            upstream.remove_header(h);
        }
        let mut payload_hash = self.payload_hash.as_str();
        if let Some(len) = self.decoded_length {
            // The object's own content encodings (gzip, …) stay; the
            // framing is the proxy's.
            let encodings = header(upstream, "content-encoding")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            for h in [
                "content-encoding",
                "x-amz-decoded-content-length",
                "x-amz-trailer",
                "transfer-encoding",
            ] {
                upstream.remove_header(h);
            }
            let encodings = match self.trailer {
                // Verified chunks, then the verified checksum.
                Some(algo) => {
                    payload_hash = rechunk::PAYLOAD;
                    upstream.insert_header("x-amz-decoded-content-length", len.to_string())?;
                    upstream.insert_header("x-amz-trailer", algo.header_name())?;
                    let length = rechunk::encoded_length(len, algo);
                    upstream.insert_header("content-length", length.to_string())?;
                    if encodings.is_empty() {
                        "aws-chunked".to_owned()
                    } else {
                        format!("aws-chunked,{encodings}")
                    }
                }
                // Plain bytes of the decoded length.
                None => {
                    upstream.insert_header("content-length", len.to_string())?;
                    encodings
                }
            };
            if !encodings.is_empty() {
                upstream.insert_header("content-encoding", encodings)?;
            }
        }
        if read_ahead {
            upstream.remove_header("expect");
        }
        upstream.insert_header("host", self.upstream.authority.as_str())?;
        if let Some(cs) = &self.copy_source {
            upstream.insert_header("x-amz-copy-source", cs.as_str())?;
        }
        if self.create_only {
            upstream.remove_header("if-match");
            upstream.insert_header("if-none-match", "*")?;
        }
        // Values past ASCII go unsigned (`sign_request`): a borrowed view
        // of the rest, no copy.
        let headers: Vec<(&str, &str)> = upstream
            .headers
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
            .collect();
        let line = RequestLine {
            method: upstream.method.as_str(),
            target: &self.target,
        };
        let add = resign::sign_request(
            &line,
            &headers,
            payload_hash,
            &self.creds,
            SystemTime::now(),
        )
        .map_err(|e| Error::because(ErrorType::InternalError, "re-signing", e))?;
        for (n, v) in add {
            upstream.insert_header(n, v)?;
        }
        Ok(())
    }
}

//! Which bucket and key a request is for, path-style (`/bucket/key`) or
//! virtual-hosted (`bucket.s3.example.com/key`), and how to address the same
//! object on an upstream (always path-style there, with the upstream's own
//! bucket name).

use std::borrow::Cow;

use crate::s3error::{Code, S3Error};
use ferry_s3::op::Level;
use ferry_s3::percent::{percent_decode, push_uri_encoded};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: Option<String>,
    /// The raw (decoded) key, if the request names one.
    pub key: Option<String>,
    pub virtual_host: bool,
    /// The path after the bucket, still as the client encoded it (`/k%20x`
    /// or empty).
    pub raw_rest: String,
}

/// The host without its port or a trailing dot, in lower case: borrowed
/// when the client sent it so, as clients do.
fn host_name(host: &str) -> Cow<'_, str> {
    // Strip a port; IPv6 literals keep their brackets.
    let h = if let Some(end) = host.strip_prefix('[').and_then(|r| r.find(']')) {
        &host[..end + 2]
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let h = h.trim_end_matches('.');
    match h.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(h.to_ascii_lowercase()),
        false => Cow::Borrowed(h),
    }
}

/// The bucket a host name would name if it were virtual-hosted: its
/// first label, when there is a further one and the host is not an IP
/// literal.
pub fn host_bucket(host: &str) -> Option<String> {
    let h = host_name(host);
    if h.starts_with('[') || h.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    h.split_once('.')
        .map(|(b, _)| b.to_owned())
        .filter(|b| !b.is_empty())
}

fn decode(s: &str) -> Result<String, S3Error> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = percent_decode(s).ok_or_else(|| {
        S3Error::new(
            Code::InvalidArgument,
            "malformed percent-escape in the path",
        )
    })?;
    String::from_utf8(bytes)
        .map_err(|_| S3Error::new(Code::InvalidArgument, "the path does not decode to UTF-8"))
}

/// Parses the request target. `domains` are the S3 domain names under which
/// `bucket.<domain>` is a virtual-hosted request, in lower case and without
/// a trailing dot, as `Config` keeps them.
pub fn parse(host: Option<&str>, raw_path: &str, domains: &[String]) -> Result<Target, S3Error> {
    if !raw_path.starts_with('/') {
        return Err(S3Error::new(
            Code::InvalidArgument,
            "the request path must start with '/'",
        ));
    }
    if let Some(h) = host.map(host_name) {
        for d in domains {
            if let Some(bucket) = h.strip_suffix(d.as_str()).and_then(|p| p.strip_suffix('.'))
                && !bucket.is_empty()
            {
                let key = &raw_path[1..];
                return Ok(Target {
                    bucket: Some(bucket.to_owned()),
                    key: (!key.is_empty()).then(|| decode(key)).transpose()?,
                    virtual_host: true,
                    raw_rest: raw_path.to_owned(),
                });
            }
        }
    }
    let rest = &raw_path[1..];
    if rest.is_empty() {
        return Ok(Target {
            bucket: None,
            key: None,
            virtual_host: false,
            raw_rest: String::new(),
        });
    }
    let (b, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let key = tail.strip_prefix('/').filter(|k| !k.is_empty());
    Ok(Target {
        bucket: Some(decode(b)?),
        key: key.map(decode).transpose()?,
        virtual_host: false,
        raw_rest: tail.to_owned(),
    })
}

impl Target {
    /// Where in the S3 namespace the request points, for the operation
    /// parser.
    pub fn level(&self) -> Level {
        match (&self.bucket, &self.key) {
            (None, _) => Level::Service,
            (Some(_), None) => Level::Bucket,
            (Some(_), Some(_)) => Level::Object,
        }
    }

    /// The path for the same request on an upstream, path-style, with the
    /// upstream's bucket name. The key part keeps the client's encoding.
    pub fn upstream_path(&self, upstream_bucket: &str) -> String {
        let rest = if self.raw_rest.is_empty() && self.key.is_none() {
            ""
        } else {
            self.raw_rest.as_str()
        };
        let mut path = String::with_capacity(1 + upstream_bucket.len() + rest.len());
        path.push('/');
        push_uri_encoded(&mut path, upstream_bucket.as_bytes(), false);
        path.push_str(rest);
        path
    }
}

/// Splits `x-amz-copy-source` (`[/]bucket/key[?versionId=…]`, the key
/// percent-encoded) into the decoded bucket and the rest (`/key…`) as sent.
pub fn parse_copy_source(v: &str) -> Result<(String, String), S3Error> {
    let v = v.trim().strip_prefix('/').unwrap_or(v.trim());
    let Some((b, rest)) = v.split_once('/') else {
        return Err(S3Error::new(
            Code::InvalidArgument,
            "x-amz-copy-source must be bucket/key",
        ));
    };
    Ok((decode(b)?, format!("/{rest}")))
}

/// The decoded key of the `rest` of [`parse_copy_source`] (`/key`), and
/// the version id it names, if any.
pub fn copy_source_key(rest: &str) -> Result<(String, Option<String>), S3Error> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let key = decode(path.strip_prefix('/').unwrap_or(path))?;
    Ok((key, ferry_s3::percent::query_value(query, "versionId")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Vec<String> {
        vec!["s3.example.com".into()]
    }

    #[test]
    fn path_style() {
        let t = parse(Some("proxy:8080"), "/photos/a%20b/c", &d()).unwrap();
        assert_eq!(t.bucket.as_deref(), Some("photos"));
        assert_eq!(t.key.as_deref(), Some("a b/c"));
        assert_eq!(t.upstream_path("photos-old"), "/photos-old/a%20b/c");
        let t = parse(Some("proxy"), "/photos", &d()).unwrap();
        assert_eq!(
            (t.bucket.as_deref(), t.key.as_deref()),
            (Some("photos"), None)
        );
        assert_eq!(t.upstream_path("photos"), "/photos");
        let t = parse(Some("proxy"), "/photos/", &d()).unwrap();
        assert_eq!(t.key, None);
        assert_eq!(t.upstream_path("photos"), "/photos/");
        let t = parse(None, "/", &d()).unwrap();
        assert_eq!(t.bucket, None);
    }

    #[test]
    fn keys_keep_slashes_and_odd_bytes() {
        let t = parse(Some("p"), "/b//lead", &d()).unwrap();
        assert_eq!(t.key.as_deref(), Some("/lead"));
        assert_eq!(t.upstream_path("b"), "/b//lead");
        let t = parse(Some("p"), "/b/50%25%2Bx", &d()).unwrap();
        assert_eq!(t.key.as_deref(), Some("50%+x"));
        assert!(parse(Some("p"), "/b/%zz", &d()).is_err());
    }

    #[test]
    fn copy_source_and_query() {
        assert_eq!(
            parse_copy_source("/photos/a%20b?versionId=1").unwrap(),
            ("photos".to_owned(), "/a%20b?versionId=1".to_owned())
        );
        assert_eq!(parse_copy_source("photos/k").unwrap().0, "photos");
        assert!(parse_copy_source("photos").is_err());
        assert_eq!(
            copy_source_key("/a%20b?versionId=1").unwrap(),
            ("a b".to_owned(), Some("1".to_owned()))
        );
        assert_eq!(copy_source_key("/k").unwrap(), ("k".to_owned(), None));
    }

    #[test]
    fn host_bucket_is_the_first_label_of_a_name() {
        assert_eq!(
            host_bucket("photos.other.example:80").as_deref(),
            Some("photos")
        );
        assert_eq!(host_bucket("127.0.0.1:9000"), None);
        assert_eq!(host_bucket("localhost:9000"), None);
        assert_eq!(host_bucket("[::1]:9000"), None);
    }

    #[test]
    fn virtual_hosted() {
        let t = parse(Some("Photos.S3.Example.com:443"), "/x/y", &d()).unwrap();
        assert!(t.virtual_host);
        assert_eq!(t.bucket.as_deref(), Some("photos"));
        assert_eq!(t.key.as_deref(), Some("x/y"));
        assert_eq!(t.upstream_path("photos"), "/photos/x/y");
        let t = parse(Some("photos.s3.example.com.:443"), "/x", &d()).unwrap();
        assert_eq!(
            (t.bucket.as_deref(), t.virtual_host),
            (Some("photos"), true)
        );
        let t = parse(Some("s3.example.com"), "/photos/k", &d()).unwrap();
        assert!(!t.virtual_host);
        assert_eq!(t.bucket.as_deref(), Some("photos"));
    }
}

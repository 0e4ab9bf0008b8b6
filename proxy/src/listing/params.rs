//! The client's listing parameters, read and checked as S3 checks them.

use crate::s3error::{Code, S3Error};
use crate::sigv4::canonical::parse_query;

/// The most entries S3 returns in one page, whatever max-keys asks.
pub(crate) const PAGE_CAP: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct Params {
    pub prefix: Vec<u8>,
    pub delimiter: Option<Vec<u8>>,
    pub max: usize,
    pub encode: bool,
    pub fetch_owner: bool,
    pub start_after: Option<Vec<u8>>,
    pub token: Option<String>,
    /// `marker` (v1) or `key-marker` (uploads).
    pub marker: Option<Vec<u8>>,
    /// `upload-id-marker` (uploads) or `version-id-marker` (versions).
    pub upload_id_marker: Option<String>,
}

fn invalid(msg: &'static str) -> S3Error {
    S3Error::new(Code::InvalidArgument, msg)
}

fn utf8(v: Vec<u8>, msg: &'static str) -> Result<String, S3Error> {
    String::from_utf8(v).map_err(|_| invalid(msg))
}

/// `max_name` is `max-keys` or `max-uploads`.
pub(crate) fn parse(raw_query: &str, max_name: &[u8]) -> Result<Params, S3Error> {
    let pairs = parse_query(raw_query).ok_or_else(|| invalid("Malformed query string"))?;
    let mut p = Params {
        max: PAGE_CAP,
        ..Params::default()
    };
    for (k, v) in pairs {
        match k.as_slice() {
            b"prefix" => p.prefix = v,
            b"delimiter" => p.delimiter = Some(v).filter(|d| !d.is_empty()),
            b"encoding-type" => {
                if v != b"url" {
                    return Err(invalid("Invalid Encoding Method specified in Request"));
                }
                p.encode = true;
            }
            b"fetch-owner" => p.fetch_owner = v == b"true",
            b"start-after" => p.start_after = Some(v).filter(|s| !s.is_empty()),
            b"continuation-token" => {
                p.token = Some(utf8(v, "The continuation token provided is incorrect")?)
            }
            b"marker" | b"key-marker" => p.marker = Some(v).filter(|m| !m.is_empty()),
            b"upload-id-marker" | b"version-id-marker" => {
                p.upload_id_marker = Some(utf8(v, "Invalid id marker")?).filter(|u| !u.is_empty())
            }
            k if k == max_name => {
                let n: i64 = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        invalid("Provided max-keys not an integer or within integer range")
                    })?;
                if n < 0 {
                    return Err(invalid("max-keys cannot be negative"));
                }
                p.max = (n as u64).min(PAGE_CAP as u64) as usize;
            }
            _ => {}
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_checks_parameters() {
        let p = parse(
            "list-type=2&prefix=a%2Bb%20c&delimiter=%2F&max-keys=5000&encoding-type=url&start-after=x",
            b"max-keys",
        )
        .unwrap();
        assert_eq!(p.prefix, b"a+b c");
        assert_eq!(p.delimiter.as_deref(), Some(&b"/"[..]));
        assert_eq!(p.max, 1000);
        assert!(p.encode);
        assert_eq!(p.start_after.as_deref(), Some(&b"x"[..]));
        assert_eq!(parse("", b"max-keys").unwrap().max, 1000);
        assert_eq!(parse("max-keys=0", b"max-keys").unwrap().max, 0);
        for bad in [
            "max-keys=-1",
            "max-keys=x",
            "encoding-type=base64",
            "prefix=%G1",
        ] {
            assert_eq!(
                parse(bad, b"max-keys").unwrap_err().code,
                Code::InvalidArgument
            );
        }
        assert_eq!(parse("max-uploads=3", b"max-uploads").unwrap().max, 3);
    }
}

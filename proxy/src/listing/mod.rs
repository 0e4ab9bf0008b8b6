//! One merged listing over a bucket in migrate mode, whose objects live
//! partly on the source and partly on the target: ListObjectsV2,
//! ListObjects (v1), ListMultipartUploads and (for an unversioned bucket,
//! every VersionId `null`) ListObjectVersions, streamed page by page from
//! both sides and merge-joined by raw key bytes (the target's entry wins).
//!
//! Pure: the caller supplies one [`Lister`] per side and sends the bytes
//! [`merged`] returns. Nothing here keeps state between requests: v2
//! continuation tokens carry their own resume key (see `token`).

mod codec;
mod entry;
mod merge;
mod params;
mod parse;
mod token;
mod write;

#[cfg(test)]
mod memlister;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::s3error::S3Error;
use entry::Position;
use merge::{Op, Side, merge};
use write::Echo;

/// One side (source or target) of a merged listing.
#[async_trait::async_trait]
pub trait Lister: Send + Sync {
    /// Sends one signed `GET /<bucket>?<query>` to this side and returns the
    /// raw XML body of a 200, or the S3 error to answer with (a side that
    /// is down gives ServiceUnavailable). The pairs are decoded values;
    /// the implementation percent-encodes them.
    async fn list(&self, query: &[(String, String)]) -> Result<Bytes, S3Error>;
}

/// Which listing a bucket-level GET asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ObjectsV2,
    ObjectsV1,
    MultipartUploads,
    /// Only an unversioned bucket's (every VersionId `null`).
    ObjectVersions,
}

impl Kind {
    /// The listing an operation is (`ferry_s3::S3Op`, parsed once per
    /// request), if it is one this module merges.
    pub fn of_op(op: ferry_s3::S3Op) -> Option<Self> {
        use ferry_s3::S3Op::*;
        match op {
            ListObjectsV2 => Some(Self::ObjectsV2),
            ListObjects => Some(Self::ObjectsV1),
            ListMultipartUploads => Some(Self::MultipartUploads),
            ListObjectVersions => Some(Self::ObjectVersions),
            _ => None,
        }
    }
}

/// The body of a 200 answering the `kind` listing of `bucket` (the name the
/// client uses; it is echoed in `Name`/`Bucket`) with the client's raw
/// query string. `token_key` authenticates v2 continuation tokens; every
/// proxy of a fleet must share it.
pub async fn merged(
    kind: Kind,
    target: &dyn Lister,
    source: &dyn Lister,
    bucket: &str,
    raw_query: &str,
    token_key: &[u8],
) -> Result<Bytes, S3Error> {
    let max_name: &[u8] = match kind {
        Kind::MultipartUploads => b"max-uploads",
        _ => b"max-keys",
    };
    let p = params::parse(raw_query, max_name)?;
    let scope = token::Scope {
        bucket,
        prefix: &p.prefix,
        delimiter: p.delimiter.as_deref(),
        encode: p.encode,
    };
    let resume = match kind {
        Kind::ObjectsV2 => match &p.token {
            Some(t) => Some(token::verify(token_key, &scope, t)?),
            None => p.start_after.clone(),
        },
        Kind::ObjectsV1 | Kind::MultipartUploads | Kind::ObjectVersions => p.marker.clone(),
    };
    let upload_id = match kind {
        Kind::MultipartUploads | Kind::ObjectVersions if resume.is_some() => {
            p.upload_id_marker.clone()
        }
        _ => None,
    };
    let position =
        resume.map(|name| Position::new(name, upload_id, &p.prefix, p.delimiter.as_deref()));

    let (op, keep_owner) = match kind {
        Kind::ObjectsV2 => (Op::Objects, p.fetch_owner),
        Kind::ObjectsV1 => (Op::Objects, true),
        Kind::MultipartUploads => (Op::Uploads, true),
        Kind::ObjectVersions => (Op::Versions, true),
    };
    let base = base_query(op, &p, keep_owner)?;
    let scope_of = (p.prefix.as_slice(), p.delimiter.as_deref());
    let mut t = Side::new(
        target,
        op,
        base.clone(),
        scope_of,
        position.clone(),
        keep_owner,
    );
    let mut s = Side::new(source, op, base, scope_of, position, keep_owner);
    let (list, truncated) = merge(&mut t, &mut s, p.max).await?;

    let echo = Echo {
        bucket,
        prefix: &p.prefix,
        delimiter: p.delimiter.as_deref(),
        max: p.max,
        encode: p.encode,
        truncated,
    };
    let last = list.last().filter(|_| truncated);
    let xml = match kind {
        Kind::ObjectsV2 => {
            let next = last.map(|e| token::issue(token_key, &scope, e.name()));
            write::v2(
                &write::V2 {
                    echo,
                    start_after: p.start_after.as_deref(),
                    token: p.token.as_deref(),
                    next_token: next.as_deref(),
                },
                &list,
            )
        }
        Kind::ObjectsV1 => write::v1(
            &write::V1 {
                echo,
                marker: p.marker.as_deref().unwrap_or_default(),
                // Without a delimiter S3 leaves it out: clients resume from
                // the last Key.
                next_marker: last.filter(|_| p.delimiter.is_some()).map(|e| e.name()),
            },
            &list,
        ),
        Kind::MultipartUploads | Kind::ObjectVersions => {
            let by_id = write::Uploads {
                echo,
                key_marker: p.marker.as_deref().unwrap_or_default(),
                upload_id_marker: p.upload_id_marker.as_deref().unwrap_or_default(),
                next_key_marker: last.map(|e| e.name()),
                next_upload_id_marker: last.and_then(|e| e.upload_id()),
            };
            match kind {
                Kind::ObjectVersions => write::versions(&by_id, &list),
                _ => write::uploads(&by_id, &list),
            }
        }
    };
    Ok(Bytes::from(xml))
}

/// What every upstream request carries. Upstreams are always asked for
/// `encoding-type=url`, so that any key survives their XML.
fn base_query(
    op: Op,
    p: &params::Params,
    keep_owner: bool,
) -> Result<Vec<(String, String)>, S3Error> {
    let s = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| {
            S3Error::new(
                crate::s3error::Code::InvalidArgument,
                "Listing parameters must be UTF-8",
            )
        })
    };
    let mut q = match op {
        Op::Objects => vec![
            ("list-type".to_string(), "2".to_string()),
            ("fetch-owner".into(), keep_owner.to_string()),
        ],
        Op::Uploads => vec![("uploads".to_string(), String::new())],
        Op::Versions => vec![("versions".to_string(), String::new())],
    };
    q.push(("encoding-type".into(), "url".into()));
    if !p.prefix.is_empty() {
        q.push(("prefix".into(), s(&p.prefix)?));
    }
    if let Some(d) = &p.delimiter {
        q.push(("delimiter".into(), s(d)?));
    }
    Ok(q)
}

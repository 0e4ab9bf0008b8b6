//! Where a copy (CopyObject, UploadPartCopy) reads its source object, when
//! the copy source may be another bucket, attached or not, in another mode.
//!
//! A copy runs on one store when its source object is surely there: the
//! target in ready mode, the bucket's source in forward mode. In migrate
//! mode the copy source is read as a client reads it, target first, then
//! the copy source bucket's own source. Whatever cannot be read that way
//! is refused with a sentence, never guessed (docs/proxy.md).

use ferry_control::Mode;

use crate::attached::Attached;
use crate::s3error::{Code, S3Error};
use crate::upstream::fetch::Side;

/// Where a copy's source object is.
#[derive(Debug, Clone)]
pub struct CopyFrom {
    /// The copy source bucket's name on the store a proxied copy goes to
    /// (ready and forward mode).
    pub upstream_bucket: String,
    /// Migrate mode: the copy source bucket on the target, and the store
    /// it falls back to; `None` when all its objects are on the target.
    pub target: Side,
    pub source: Option<Side>,
}

fn refused(why: String) -> S3Error {
    S3Error::new(Code::NotImplemented, why)
}

/// Whether two buckets' sources are the same store, as the same user: a
/// copy on that store can read one and write the other.
fn same_source(a: &Attached, b: &Attached) -> bool {
    a.source.authority == b.source.authority
        && a.source.tls == b.source.tls
        && a.source_creds.access_key == b.source_creds.access_key
}

fn side_of(att: &Attached) -> Side {
    Side {
        upstream: att.source.clone(),
        creds: att.source_creds.clone(),
        bucket: att.source_bucket.clone(),
        label: "source",
    }
}

/// Resolves a copy into the attached bucket `dest`, whose target side is
/// `target`, from bucket `from` (attached as `from_att`, or not).
pub fn resolve(
    dest: &Attached,
    target: &Side,
    from: &str,
    from_att: Option<&Attached>,
) -> Result<CopyFrom, S3Error> {
    let on_target = Side {
        bucket: from.to_owned(),
        ..target.clone()
    };
    let from_mode = from_att.map(|a| a.mode);
    let mode_name = |m: Option<Mode>| m.map_or("unattached", |m| m.as_str());
    match (dest.mode, from_att) {
        // All of the copy source's objects are on the target.
        (Mode::Ready | Mode::Migrate, None)
        | (
            Mode::Ready | Mode::Migrate,
            Some(Attached {
                mode: Mode::Ready, ..
            }),
        ) => Ok(CopyFrom {
            upstream_bucket: from.to_owned(),
            target: on_target,
            source: None,
        }),
        (Mode::Forward, Some(f)) if f.mode == Mode::Forward && same_source(dest, f) => {
            Ok(CopyFrom {
                upstream_bucket: f.source_bucket.clone(),
                target: on_target,
                source: Some(side_of(f)),
            })
        }
        (Mode::Forward, Some(f)) if f.mode == Mode::Forward => Err(refused(format!(
            "copying from bucket {from:?} is not supported: it and this bucket are forwarded to different sources, and no one store holds both"
        ))),
        (Mode::Migrate, Some(f)) if f.mode == Mode::Migrate => Ok(CopyFrom {
            upstream_bucket: from.to_owned(),
            target: on_target,
            source: Some(side_of(f)),
        }),
        _ => Err(refused(format!(
            "copying from bucket {from:?} ({}) into a bucket in {} mode is not supported: the copy source is not where this bucket's writes go; copy once both buckets are in the same mode",
            mode_name(from_mode),
            dest.mode.as_str()
        ))),
    }
}

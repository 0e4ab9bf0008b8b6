//! Migrate mode: the requests that need both sides. Reads go to the target
//! first and fall back to the source; deletes are journalled and go to
//! both; listings are merged; uploads begun on the source finish there and
//! land on the target before they are acknowledged; a copy whose source
//! object is still only on the source is streamed across.
//!
//! Requests that go to one side only (a PUT, a new upload, a part of an
//! upload) stay on Pingora's proxied path; this module decides their side
//! and what is checked or promoted first ([`proxied`]).
//!
//! The proxy enters here through [`handle`] alone.

mod copy;
mod delete;
mod list;
pub mod merged;
pub mod proxied;
mod read;
pub mod transfer;
pub mod uploads;
pub(crate) mod wire;

use std::sync::Arc;

use pingora::proxy::Session;

use crate::journal::Journal;
use crate::listing::Kind;
use crate::outbound::Outbound;
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;
use crate::upstream::fetch::{Fetcher, Side};
use ferry_s3::S3Op;
use ferry_s3::percent::query_value;

pub use proxied::{AfterWrite, Proxied};
pub use uploads::UploadSides;

/// What migrate mode serves itself, rather than proxying to one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// GET or HEAD of an object: the target, else the source.
    Read,
    /// DeleteObject: journalled, then the source, then the target.
    Delete,
    /// DeleteObjects (`POST ?delete`).
    DeleteMany,
    /// ListObjects v1/v2, merged.
    List(crate::listing::Kind),
    /// ListMultipartUploads, merged.
    /// CopyObject within the bucket.
    Copy { source_key: String },
    /// CompleteMultipartUpload.
    Complete { upload_id: String },
    /// ListParts or AbortMultipartUpload: the upload's side, the source on
    /// NoSuchUpload.
    Upload { upload_id: String },
    /// UploadPartCopy: on the upload's side; a copy source that is only on
    /// the source, into a target upload, is streamed across.
    PartCopy {
        upload_id: String,
        source_key: String,
    },
}

/// Everything a migrate-mode operation needs about its request.
pub struct Call {
    pub op: Op,
    pub method: String,
    /// The client-facing bucket name (the same on the target).
    pub bucket: String,
    pub key: Option<String>,
    /// The client's raw query, for listings.
    pub raw_query: String,
    pub target: Side,
    pub source: Side,
    /// Canonical path and query of the same request on each side.
    pub target_path: String,
    pub source_path: String,
    /// Client headers that go upstream (no signature, host or framing).
    pub headers: Vec<(String, String)>,
    /// How the client's body is checked, for the bodies read here.
    pub payload_hash: String,
    pub decoder: Option<ChunkedDecoder>,
    /// Upload ids that were in flight on the source when migrate mode was
    /// set.
    pub source_uploads: Arc<[String]>,
    /// A copy's source object: the copy source bucket on the target, and
    /// where it falls back to.
    pub copy_from: Option<crate::copy_from::CopyFrom>,
}

/// What migrate mode shares across requests.
pub struct Services {
    /// The proxy's own client of the stores, shared with the proxy.
    pub fetcher: Arc<Fetcher>,
    /// `None`: no `journal_bucket` configured; deletes in migrate mode are
    /// refused rather than risk a resurrection.
    pub journal: Option<Journal>,
    /// Authenticates merged-listing continuation tokens.
    pub token_key: Vec<u8>,
    pub upload_sides: UploadSides,
    /// The largest object one PUT carries across; larger ones go as a
    /// multipart upload (`transfer`).
    pub max_put: u64,
}

/// A migrate-mode request, as planned.
pub enum Request {
    /// Served here, from both sides.
    Serve(Box<Call>),
    /// Proxied to one side once [`proxied::before`] has run.
    Proxy(Box<Proxied>),
}

/// What [`handle`] left for the proxy to do.
pub enum Handled {
    /// The whole response is written.
    Served,
    /// Proxy the request as `Outbound` says; `AfterWrite` once answered.
    Proxy(Box<(Outbound, AfterWrite)>),
}

/// Migrate mode's one entry point: serves the request from both sides, or
/// readies it to be proxied to one. An `Err` has not written anything
/// yet: the caller answers with it.
pub async fn handle(
    svc: &Arc<Services>,
    session: &mut Session,
    req: Request,
) -> Result<Handled, S3Error> {
    match req {
        Request::Serve(call) => serve(svc, session, *call).await.map(|()| Handled::Served),
        Request::Proxy(p) => {
            let (out, after) = proxied::before(svc, *p).await?;
            Ok(Handled::Proxy(Box::new((out, after))))
        }
    }
}

/// Serves one migrate-mode operation, writing the whole response.
async fn serve(svc: &Services, session: &mut Session, call: Call) -> Result<(), S3Error> {
    match call.op.clone() {
        Op::Read => read::serve(svc, session, &call).await,
        Op::Delete => delete::one(svc, session, &call).await,
        Op::DeleteMany => delete::many(svc, session, call).await,
        Op::List(kind) => list::serve(svc, session, &call, kind).await,
        Op::Copy { source_key } => copy::serve(svc, session, &call, &source_key).await,
        Op::Complete { upload_id } => uploads::complete(svc, session, call, &upload_id).await,
        Op::Upload { upload_id } => uploads::no_body(svc, session, &call, &upload_id).await,
        Op::PartCopy {
            upload_id,
            source_key,
        } => copy::part(svc, session, &call, &upload_id, &source_key).await,
    }
}

/// The journal, or why deletes cannot be taken.
fn journal(svc: &Services) -> Result<&Journal, S3Error> {
    svc.journal.as_ref().ok_or_else(|| {
        S3Error::new(
            Code::ServiceUnavailable,
            "deletes in migrate mode need a delete journal: set journal_bucket in the proxy config",
        )
    })
}

/// TEST ONLY: with `FERRY_TEST_PAUSE=<dir>` in the proxy's environment,
/// the step `point` (`delete`: between a delete's source and target steps;
/// `complete`: between a source upload's completion and its copy to the
/// target) of `key` is held while `<dir>/<point>-<hex(key)>.hold` exists:
/// it writes `<point>-<hex>.paused` and waits for `<point>-<hex>.go`. So an
/// end-to-end test can land a client's write in exactly that window. Only
/// in builds with the `test-hooks` feature, which only the tests turn on;
/// a release build checks nothing.
pub(crate) async fn test_pause(point: &str, key: &str) {
    #[cfg(feature = "test-hooks")]
    hold(point, key).await;
    #[cfg(not(feature = "test-hooks"))]
    let _ = (point, key);
}

#[cfg(feature = "test-hooks")]
async fn hold(point: &str, key: &str) {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(dir) = DIR.get_or_init(|| std::env::var_os("FERRY_TEST_PAUSE").map(Into::into)) else {
        return;
    };
    let name = format!("{point}-{}", hex::encode(key.as_bytes()));
    if !tokio::fs::try_exists(dir.join(format!("{name}.hold")))
        .await
        .unwrap_or(false)
    {
        return;
    }
    let _ = tokio::fs::write(dir.join(format!("{name}.paused")), b"").await;
    let go = dir.join(format!("{name}.go"));
    while !tokio::fs::try_exists(&go).await.unwrap_or(false) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How a migrate-mode request is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Served here, from both sides.
    Serve(Op),
    /// Proxied to the target, as in ready mode.
    Target,
    /// A new object on the target (PutObject): its conditions are first
    /// evaluated against both sides, and success voids a journalled delete
    /// of the key.
    Write,
    /// A sub-resource write: a key only on the source is first promoted to
    /// the target, then the request is proxied there.
    Promote,
    /// A part of an upload: proxied to the upload's side.
    Part { upload_id: String },
}

/// Decides how a request in migrate mode is handled, from the one
/// operation parsed for it (`ferry_s3::S3Op`, whose `migrate_route` is
/// the semantics table). `copy_source`: `x-amz-copy-source`'s key, with
/// its version id if it names one.
pub fn classify(
    op: S3Op,
    raw_query: &str,
    copy_source: Option<(String, Option<String>)>,
) -> Result<Route, S3Error> {
    use ferry_s3::MigrateRoute as M;
    let upload_id = || query_value(raw_query, "uploadId").unwrap_or_default();
    let source_key = || -> Result<String, S3Error> {
        match copy_source.clone() {
            Some((key, None)) => Ok(key),
            Some((key, Some(v))) if v == "null" => Ok(key),
            Some((_, Some(_))) => Err(S3Error::new(
                Code::NotImplemented,
                "copying from a specific object version is not supported while a bucket is under migration: the two stores' version ids are unrelated; copy the current object",
            )),
            None => Err(S3Error::new(
                Code::InvalidArgument,
                "a copy needs x-amz-copy-source",
            )),
        }
    };
    Ok(match op.migrate_route() {
        M::ReadFallback => Route::Serve(Op::Read),
        M::Write => Route::Write,
        M::PromoteThenTarget => Route::Promote,
        M::Copy => Route::Serve(Op::Copy {
            source_key: source_key()?,
        }),
        M::Delete => Route::Serve(Op::Delete),
        M::DeleteMany => Route::Serve(Op::DeleteMany),
        M::MergedList | M::MergedUploads | M::MergedVersions => match Kind::of_op(op) {
            Some(kind) => Route::Serve(Op::List(kind)),
            None => unreachable!("{op:?} is routed as a listing"),
        },
        M::Part => Route::Part {
            upload_id: upload_id(),
        },
        M::PartCopy => Route::Serve(Op::PartCopy {
            upload_id: upload_id(),
            source_key: source_key()?,
        }),
        M::Complete => Route::Serve(Op::Complete {
            upload_id: upload_id(),
        }),
        M::UploadSide => Route::Serve(Op::Upload {
            upload_id: upload_id(),
        }),
        M::Target => Route::Target,
        M::Refuse(why) => return Err(S3Error::new(Code::NotImplemented, why)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_s3::op::Level;

    fn c(m: &str, level: Level, q: &str, cs: Option<&str>) -> Result<Route, S3Error> {
        let op = S3Op::parse(m, level, q, cs.is_some());
        classify(op, q, cs.map(|k| (k.to_owned(), None)))
    }

    #[test]
    fn requests_are_routed_as_the_table_says() {
        use Level::{Bucket, Object};
        let ok = |m, l, q, cs| c(m, l, q, cs).unwrap();
        assert_eq!(
            ok("GET", Bucket, "", None),
            Route::Serve(Op::List(Kind::ObjectsV1))
        );
        assert_eq!(
            ok("GET", Bucket, "list-type=2&prefix=a", None),
            Route::Serve(Op::List(Kind::ObjectsV2))
        );
        assert_eq!(
            ok("GET", Bucket, "uploads", None),
            Route::Serve(Op::List(Kind::MultipartUploads))
        );
        assert_eq!(ok("GET", Bucket, "location", None), Route::Target);
        assert_eq!(ok("GET", Bucket, "policy", None), Route::Target);
        assert_eq!(
            ok("POST", Bucket, "delete", None),
            Route::Serve(Op::DeleteMany)
        );
        assert_eq!(ok("GET", Object, "", None), Route::Serve(Op::Read));
        assert_eq!(ok("GET", Object, "tagging", None), Route::Serve(Op::Read));
        assert_eq!(
            ok("HEAD", Object, "partNumber=1", None),
            Route::Serve(Op::Read)
        );
        assert_eq!(ok("PUT", Object, "", None), Route::Write);
        assert_eq!(ok("PUT", Object, "tagging", None), Route::Promote);
        assert_eq!(ok("DELETE", Object, "tagging", None), Route::Promote);
        assert_eq!(ok("POST", Object, "uploads", None), Route::Target);
        assert_eq!(
            ok("PUT", Object, "partNumber=1&uploadId=a%2Fb", None),
            Route::Part {
                upload_id: "a/b".into()
            }
        );
        assert_eq!(
            ok("POST", Object, "uploadId=u", None),
            Route::Serve(Op::Complete {
                upload_id: "u".into()
            })
        );
        assert_eq!(
            ok("DELETE", Object, "uploadId=u", None),
            Route::Serve(Op::Upload {
                upload_id: "u".into()
            })
        );
        assert_eq!(
            ok("PUT", Object, "partNumber=2&uploadId=u", Some("k")),
            Route::Serve(Op::PartCopy {
                upload_id: "u".into(),
                source_key: "k".into()
            })
        );
        assert_eq!(ok("DELETE", Object, "", None), Route::Serve(Op::Delete));
        assert_eq!(
            ok("PUT", Object, "", Some("k")),
            Route::Serve(Op::Copy {
                source_key: "k".into()
            })
        );
        assert_eq!(
            ok("GET", Bucket, "versions", None),
            Route::Serve(Op::List(Kind::ObjectVersions))
        );
        for (m, l, q) in [
            ("GET", Object, "policy"),
            ("POST", Object, "select&select-type=2"),
            ("PATCH", Object, ""),
        ] {
            assert_eq!(
                c(m, l, q, None).unwrap_err().code,
                Code::NotImplemented,
                "{m} ?{q}"
            );
        }
        let versioned = classify(S3Op::CopyObject, "", Some(("k".into(), Some("v1".into()))));
        assert_eq!(versioned.unwrap_err().code, Code::NotImplemented);
    }
}

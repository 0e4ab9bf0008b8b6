//! Migrate mode: the requests that need both sides. Reads go to the target
//! first and fall back to the source; deletes are journalled and go to
//! both; listings are merged; uploads begun on the source finish there and
//! land on the target before they are acknowledged; a copy whose source
//! object is still only on the source is streamed across.
//!
//! Requests that go to one side only (a PUT, a new upload, a part of an
//! upload) stay on Pingora's proxied path in `server.rs`; this module only
//! decides their side ([`uploads`]).

mod copy;
mod delete;
mod list;
mod read;
pub mod uploads;
pub(crate) mod wire;

use std::sync::Arc;

use pingora::proxy::Session;

use crate::fetch::{Fetcher, Side};
use crate::journal::Journal;
use crate::s3error::{Code, S3Error};
use crate::sigv4::chunked::ChunkedDecoder;

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
    List,
    /// ListMultipartUploads, merged.
    ListUploads,
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
}

/// What migrate mode shares across requests.
pub struct Services {
    pub fetcher: Fetcher,
    /// `None`: no `journal_bucket` configured; deletes in migrate mode are
    /// refused rather than risk a resurrection.
    pub journal: Option<Journal>,
    /// Authenticates merged-listing continuation tokens.
    pub token_key: Vec<u8>,
    pub upload_sides: UploadSides,
}

/// Serves one migrate-mode operation, writing the whole response. An
/// `Err` has not written anything yet: the caller answers with it.
pub async fn serve(svc: &Services, session: &mut Session, call: Call) -> Result<(), S3Error> {
    match call.op.clone() {
        Op::Read => read::serve(svc, session, &call).await,
        Op::Delete => delete::one(svc, session, &call).await,
        Op::DeleteMany => delete::many(svc, session, call).await,
        Op::List | Op::ListUploads => list::serve(svc, session, &call).await,
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

/// How a migrate-mode request is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Served here, from both sides.
    Serve(Op),
    /// Proxied to the target, as in ready mode. `clears_journal`: a client
    /// write of the key, after which a journalled delete of it is void.
    Target { clears_journal: bool },
    /// A part of an upload: proxied to the upload's side.
    Part { upload_id: String },
}

/// Query parameters that make a bucket GET something other than a v1
/// listing.
const BUCKET_SUBRESOURCES: [&str; 24] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "tagging",
    "uploads",
    "versioning",
    "versions",
    "website",
];

fn query_value(raw_query: &str, name: &str) -> Option<String> {
    raw_query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k == name).then(|| {
            crate::sigv4::canonical::percent_decode(v)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        })
    })
}

/// Decides how a request in migrate mode is handled. `copy_source` is the
/// decoded key of `x-amz-copy-source` (within the bucket).
pub fn classify(
    method: &str,
    has_key: bool,
    raw_query: &str,
    copy_source: Option<String>,
) -> Route {
    use crate::route::query_has;
    let upload = query_value(raw_query, "uploadId");
    if !has_key {
        return match method {
            "GET" if query_has(raw_query, "uploads") => Route::Serve(Op::ListUploads),
            "GET"
                if query_value(raw_query, "list-type").as_deref() == Some("2")
                    || !BUCKET_SUBRESOURCES.iter().any(|s| query_has(raw_query, s)) =>
            {
                Route::Serve(Op::List)
            }
            "POST" if query_has(raw_query, "delete") => Route::Serve(Op::DeleteMany),
            _ => Route::Target {
                clears_journal: false,
            },
        };
    }
    match (method, upload, copy_source) {
        ("POST", Some(upload_id), _) => Route::Serve(Op::Complete { upload_id }),
        ("GET" | "DELETE", Some(upload_id), _) => Route::Serve(Op::Upload { upload_id }),
        ("PUT", Some(upload_id), Some(source_key)) => Route::Serve(Op::PartCopy {
            upload_id,
            source_key,
        }),
        ("PUT", Some(upload_id), _) => Route::Part { upload_id },
        ("GET" | "HEAD", None, _) => Route::Serve(Op::Read),
        ("DELETE", None, _) => Route::Serve(Op::Delete),
        ("PUT", None, Some(source_key))
            if !query_has(raw_query, "tagging") && !query_has(raw_query, "acl") =>
        {
            Route::Serve(Op::Copy { source_key })
        }
        ("PUT", None, _) => Route::Target {
            clears_journal: !query_has(raw_query, "tagging") && !query_has(raw_query, "acl"),
        },
        _ => Route::Target {
            clears_journal: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_s3_means_them() {
        let c = |m, k, q: &str, cs: Option<&str>| classify(m, k, q, cs.map(str::to_owned));
        assert_eq!(c("GET", false, "", None), Route::Serve(Op::List));
        assert_eq!(
            c("GET", false, "list-type=2&prefix=a", None),
            Route::Serve(Op::List)
        );
        assert_eq!(
            c("GET", false, "prefix=a&marker=b", None),
            Route::Serve(Op::List)
        );
        assert_eq!(
            c("GET", false, "uploads", None),
            Route::Serve(Op::ListUploads)
        );
        assert_eq!(
            c("GET", false, "location", None),
            Route::Target {
                clears_journal: false
            }
        );
        assert_eq!(
            c("POST", false, "delete", None),
            Route::Serve(Op::DeleteMany)
        );
        assert_eq!(c("GET", true, "", None), Route::Serve(Op::Read));
        assert_eq!(
            c("HEAD", true, "partNumber=1", None),
            Route::Serve(Op::Read)
        );
        assert_eq!(
            c("PUT", true, "", None),
            Route::Target {
                clears_journal: true
            }
        );
        assert_eq!(
            c("PUT", true, "tagging", None),
            Route::Target {
                clears_journal: false
            }
        );
        assert_eq!(
            c("POST", true, "uploads", None),
            Route::Target {
                clears_journal: false
            }
        );
        assert_eq!(
            c("PUT", true, "partNumber=1&uploadId=a%2Fb", None),
            Route::Part {
                upload_id: "a/b".into()
            }
        );
        assert_eq!(
            c("POST", true, "uploadId=u", None),
            Route::Serve(Op::Complete {
                upload_id: "u".into()
            })
        );
        assert_eq!(
            c("DELETE", true, "uploadId=u", None),
            Route::Serve(Op::Upload {
                upload_id: "u".into()
            })
        );
        assert_eq!(
            c("PUT", true, "partNumber=2&uploadId=u", Some("k")),
            Route::Serve(Op::PartCopy {
                upload_id: "u".into(),
                source_key: "k".into()
            })
        );
        assert_eq!(c("DELETE", true, "", None), Route::Serve(Op::Delete));
        assert_eq!(
            c("PUT", true, "", Some("k")),
            Route::Serve(Op::Copy {
                source_key: "k".into()
            })
        );
    }
}

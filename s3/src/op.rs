//! The S3 operation a request is, decided once, from its method, whether
//! it names a bucket and a key, its query and whether it carries
//! `x-amz-copy-source`. Everything the proxy does with a request follows
//! from the [`S3Op`]: its metric label, the grant it needs, whether it
//! writes, and its route in migrate mode. Operations that share a method
//! and a path (`DELETE ?tagging` is not a delete; `GET ?policy` is not a
//! listing) are told apart here and nowhere else; a request that is not
//! an S3 operation Ferry knows is [`S3Op::Unknown`], which the proxy
//! refuses in migrate mode rather than guess.

use crate::percent::{query_has, query_value};

/// Where in the S3 namespace a request points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `/`: the service (ListBuckets).
    Service,
    /// `/bucket` or `/bucket/`.
    Bucket,
    /// `/bucket/key`.
    Object,
}

/// What an operation does, which decides the grant it needs and, in
/// migrate mode, which side it reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ListBuckets: about no bucket.
    Service,
    /// Lists a bucket's keys, versions or uploads, or an upload's parts.
    Listing,
    /// Reads the bucket itself or its configuration.
    BucketRead,
    /// Creates, deletes or configures a bucket: the operator's, done on
    /// the stores themselves, never through the migration proxy.
    BucketWrite,
    /// Reads an object or one of its sub-resources.
    ObjectRead,
    /// Writes an object's data: a new current object.
    ObjectWrite,
    /// Changes an object's sub-resource (tags, ACL, retention, legal
    /// hold, restore) and keeps its data.
    SubresourceWrite,
    /// Deletes objects.
    Delete,
    /// A step of a multipart upload.
    Upload,
    /// Not an S3 operation Ferry knows.
    Unknown,
}

/// The bucket grant (users file) a client needs for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// No bucket is involved.
    None,
    Read,
    Write,
    /// Not for clients of an attached bucket: the operator's, on the
    /// stores.
    Operator,
}

/// How migrate mode serves an operation (the semantics table of
/// docs/proxy.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateRoute {
    /// The target; on NoSuchKey or NoSuchVersion, the source. A source
    /// that fails is a 503, never a 404.
    ReadFallback,
    /// A new object on the target. Conditional headers are evaluated
    /// against the merged view first; success voids a journalled delete of
    /// the key.
    Write,
    /// The key is promoted first (copied from the source to the target
    /// with `If-None-Match: *`) if it is only on the source; then the
    /// operation runs on the target. Never a delete of the object.
    PromoteThenTarget,
    /// CopyObject: on the target if the copy source is there, else
    /// streamed across from the source.
    Copy,
    /// DeleteObject: journalled, then the source, then the target.
    Delete,
    /// DeleteObjects: each key as [`MigrateRoute::Delete`].
    DeleteMany,
    /// ListObjects v1/v2: both sides merged.
    MergedList,
    /// ListMultipartUploads: both sides merged.
    MergedUploads,
    /// ListObjectVersions: both sides merged while neither keeps versions
    /// (every VersionId `null`), else refused.
    MergedVersions,
    /// UploadPart: the upload's side.
    Part,
    /// UploadPartCopy: the upload's side, the copy source read target
    /// first.
    PartCopy,
    /// CompleteMultipartUpload: the upload's side; a source upload's
    /// result is copied to the target.
    Complete,
    /// ListParts, AbortMultipartUpload: the upload's side, the source on
    /// NoSuchUpload.
    UploadSide,
    /// The target only: a new upload, a bucket-level read.
    Target,
    /// Refused with `NotImplemented` and this reason.
    Refuse(&'static str),
}

impl Grant {
    /// The grant's name in docs/proxy.md's table.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::None => "none",
            Grant::Read => "read",
            Grant::Write => "write",
            Grant::Operator => "refused (operator's)",
        }
    }
}

impl MigrateRoute {
    /// The route's words in docs/proxy.md's table.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrateRoute::ReadFallback => "target, then source",
            MigrateRoute::Write => "target, judged on both",
            MigrateRoute::PromoteThenTarget => "promote, then target",
            MigrateRoute::Copy => "copy, target first",
            MigrateRoute::Delete => "journal, source, target",
            MigrateRoute::DeleteMany => "each key: journal, source, target",
            MigrateRoute::MergedList => "merged listing",
            MigrateRoute::MergedUploads => "merged uploads",
            MigrateRoute::MergedVersions => "merged, unversioned only",
            MigrateRoute::Part => "the upload's side",
            MigrateRoute::PartCopy => "the upload's side, copy source target first",
            MigrateRoute::Complete => "the upload's side, result to target",
            MigrateRoute::UploadSide => "the upload's side",
            MigrateRoute::Target => "target",
            MigrateRoute::Refuse(_) => "refused",
        }
    }
}

macro_rules! ops {
    ($($name:ident: $family:ident,)*) => {
        /// Every S3 operation Ferry tells apart, by its API action name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum S3Op {
            $($name,)*
        }

        impl S3Op {
            /// Every operation, in the order of docs/proxy.md's table.
            pub const ALL: &'static [S3Op] = &[$(S3Op::$name,)*];

            /// The API action name: the metric label and the name in the
            /// semantics table.
            pub fn name(self) -> &'static str {
                match self {
                    $(S3Op::$name => stringify!($name),)*
                }
            }

            pub fn family(self) -> Family {
                match self {
                    $(S3Op::$name => Family::$family,)*
                }
            }
        }
    };
}

ops! {
    ListBuckets: Service,
    ListObjects: Listing,
    ListObjectsV2: Listing,
    ListObjectVersions: Listing,
    ListMultipartUploads: Listing,
    HeadBucket: BucketRead,
    GetBucketLocation: BucketRead,
    GetBucketAccelerateConfiguration: BucketRead,
    GetBucketAcl: BucketRead,
    GetBucketAnalyticsConfiguration: BucketRead,
    GetBucketCors: BucketRead,
    GetBucketEncryption: BucketRead,
    GetBucketIntelligentTieringConfiguration: BucketRead,
    GetBucketInventoryConfiguration: BucketRead,
    GetBucketLifecycleConfiguration: BucketRead,
    GetBucketLogging: BucketRead,
    GetBucketMetricsConfiguration: BucketRead,
    GetBucketNotificationConfiguration: BucketRead,
    GetObjectLockConfiguration: BucketRead,
    GetBucketOwnershipControls: BucketRead,
    GetBucketPolicy: BucketRead,
    GetBucketPolicyStatus: BucketRead,
    GetPublicAccessBlock: BucketRead,
    GetBucketReplication: BucketRead,
    GetBucketRequestPayment: BucketRead,
    GetBucketTagging: BucketRead,
    GetBucketVersioning: BucketRead,
    GetBucketWebsite: BucketRead,
    CreateBucket: BucketWrite,
    DeleteBucket: BucketWrite,
    PutBucketAccelerateConfiguration: BucketWrite,
    PutBucketAcl: BucketWrite,
    PutBucketAnalyticsConfiguration: BucketWrite,
    DeleteBucketAnalyticsConfiguration: BucketWrite,
    PutBucketCors: BucketWrite,
    DeleteBucketCors: BucketWrite,
    PutBucketEncryption: BucketWrite,
    DeleteBucketEncryption: BucketWrite,
    PutBucketIntelligentTieringConfiguration: BucketWrite,
    DeleteBucketIntelligentTieringConfiguration: BucketWrite,
    PutBucketInventoryConfiguration: BucketWrite,
    DeleteBucketInventoryConfiguration: BucketWrite,
    PutBucketLifecycleConfiguration: BucketWrite,
    DeleteBucketLifecycle: BucketWrite,
    PutBucketLogging: BucketWrite,
    PutBucketMetricsConfiguration: BucketWrite,
    DeleteBucketMetricsConfiguration: BucketWrite,
    PutBucketNotificationConfiguration: BucketWrite,
    PutObjectLockConfiguration: BucketWrite,
    PutBucketOwnershipControls: BucketWrite,
    DeleteBucketOwnershipControls: BucketWrite,
    PutBucketPolicy: BucketWrite,
    DeleteBucketPolicy: BucketWrite,
    PutPublicAccessBlock: BucketWrite,
    DeletePublicAccessBlock: BucketWrite,
    PutBucketReplication: BucketWrite,
    DeleteBucketReplication: BucketWrite,
    PutBucketRequestPayment: BucketWrite,
    PutBucketTagging: BucketWrite,
    DeleteBucketTagging: BucketWrite,
    PutBucketVersioning: BucketWrite,
    PutBucketWebsite: BucketWrite,
    DeleteBucketWebsite: BucketWrite,
    GetObject: ObjectRead,
    HeadObject: ObjectRead,
    GetObjectTagging: ObjectRead,
    GetObjectAcl: ObjectRead,
    GetObjectRetention: ObjectRead,
    GetObjectLegalHold: ObjectRead,
    GetObjectAttributes: ObjectRead,
    GetObjectTorrent: ObjectRead,
    SelectObjectContent: ObjectRead,
    PutObject: ObjectWrite,
    CopyObject: ObjectWrite,
    PutObjectTagging: SubresourceWrite,
    DeleteObjectTagging: SubresourceWrite,
    PutObjectAcl: SubresourceWrite,
    PutObjectRetention: SubresourceWrite,
    PutObjectLegalHold: SubresourceWrite,
    RestoreObject: SubresourceWrite,
    DeleteObject: Delete,
    DeleteObjects: Delete,
    CreateMultipartUpload: Upload,
    UploadPart: Upload,
    UploadPartCopy: Upload,
    CompleteMultipartUpload: Upload,
    AbortMultipartUpload: Upload,
    ListParts: Listing,
    Unknown: Unknown,
}

/// A bucket's configuration sub-resources: the query parameter, and the
/// operations GET, PUT and DELETE of it are.
const BUCKET_CONFIG: &[(&str, S3Op, Option<S3Op>, Option<S3Op>)] = {
    use S3Op::*;
    &[
        (
            "accelerate",
            GetBucketAccelerateConfiguration,
            Some(PutBucketAccelerateConfiguration),
            None,
        ),
        ("acl", GetBucketAcl, Some(PutBucketAcl), None),
        (
            "analytics",
            GetBucketAnalyticsConfiguration,
            Some(PutBucketAnalyticsConfiguration),
            Some(DeleteBucketAnalyticsConfiguration),
        ),
        (
            "cors",
            GetBucketCors,
            Some(PutBucketCors),
            Some(DeleteBucketCors),
        ),
        (
            "encryption",
            GetBucketEncryption,
            Some(PutBucketEncryption),
            Some(DeleteBucketEncryption),
        ),
        (
            "intelligent-tiering",
            GetBucketIntelligentTieringConfiguration,
            Some(PutBucketIntelligentTieringConfiguration),
            Some(DeleteBucketIntelligentTieringConfiguration),
        ),
        (
            "inventory",
            GetBucketInventoryConfiguration,
            Some(PutBucketInventoryConfiguration),
            Some(DeleteBucketInventoryConfiguration),
        ),
        (
            "lifecycle",
            GetBucketLifecycleConfiguration,
            Some(PutBucketLifecycleConfiguration),
            Some(DeleteBucketLifecycle),
        ),
        ("logging", GetBucketLogging, Some(PutBucketLogging), None),
        (
            "metrics",
            GetBucketMetricsConfiguration,
            Some(PutBucketMetricsConfiguration),
            Some(DeleteBucketMetricsConfiguration),
        ),
        (
            "notification",
            GetBucketNotificationConfiguration,
            Some(PutBucketNotificationConfiguration),
            None,
        ),
        (
            "object-lock",
            GetObjectLockConfiguration,
            Some(PutObjectLockConfiguration),
            None,
        ),
        (
            "ownershipControls",
            GetBucketOwnershipControls,
            Some(PutBucketOwnershipControls),
            Some(DeleteBucketOwnershipControls),
        ),
        (
            "policy",
            GetBucketPolicy,
            Some(PutBucketPolicy),
            Some(DeleteBucketPolicy),
        ),
        ("policyStatus", GetBucketPolicyStatus, None, None),
        (
            "publicAccessBlock",
            GetPublicAccessBlock,
            Some(PutPublicAccessBlock),
            Some(DeletePublicAccessBlock),
        ),
        (
            "replication",
            GetBucketReplication,
            Some(PutBucketReplication),
            Some(DeleteBucketReplication),
        ),
        (
            "requestPayment",
            GetBucketRequestPayment,
            Some(PutBucketRequestPayment),
            None,
        ),
        (
            "tagging",
            GetBucketTagging,
            Some(PutBucketTagging),
            Some(DeleteBucketTagging),
        ),
        (
            "versioning",
            GetBucketVersioning,
            Some(PutBucketVersioning),
            None,
        ),
        (
            "website",
            GetBucketWebsite,
            Some(PutBucketWebsite),
            Some(DeleteBucketWebsite),
        ),
    ]
};

/// Query parameters that name a sub-resource of a bucket or an object
/// (besides [`BUCKET_CONFIG`]'s). At most one may appear in a request;
/// other parameters (`prefix`, `versionId`, `x-id`, `response-*`, …) do
/// not change the operation.
const SUBRESOURCES: &[&str] = &[
    "uploads",
    "uploadId",
    "versions",
    "location",
    "delete",
    "retention",
    "legal-hold",
    "attributes",
    "torrent",
    "restore",
    "select",
];

/// The one sub-resource the query names: `Ok(None)` for none, `Err(())`
/// for several, which is no S3 operation. One pass over the query's
/// names, not one per sub-resource: this runs on every request.
fn subresource(raw_query: &str) -> Result<Option<&'static str>, ()> {
    let mut found: Option<&'static str> = None;
    for param in raw_query.split('&') {
        let name = param.split_once('=').map_or(param, |(k, _)| k);
        let Some(sub) = SUBRESOURCES
            .iter()
            .copied()
            .chain(BUCKET_CONFIG.iter().map(|c| c.0))
            .find(|s| *s == name)
        else {
            continue;
        };
        match found {
            Some(f) if f != sub => return Err(()),
            _ => found = Some(sub),
        }
    }
    Ok(found)
}

impl S3Op {
    /// The operation a request is. `copy_source`: it carries
    /// `x-amz-copy-source`.
    pub fn parse(method: &str, level: Level, raw_query: &str, copy_source: bool) -> S3Op {
        let Ok(sub) = subresource(raw_query) else {
            return S3Op::Unknown;
        };
        match level {
            Level::Service => match (method, sub) {
                ("GET", None) => S3Op::ListBuckets,
                _ => S3Op::Unknown,
            },
            Level::Bucket => bucket_op(method, sub, raw_query),
            Level::Object => object_op(method, sub, raw_query, copy_source),
        }
    }

    pub fn grant(self) -> Grant {
        match self.family() {
            Family::Service => Grant::None,
            Family::Listing | Family::BucketRead | Family::ObjectRead => Grant::Read,
            Family::BucketWrite => Grant::Operator,
            Family::ObjectWrite
            | Family::SubresourceWrite
            | Family::Delete
            | Family::Upload
            | Family::Unknown => Grant::Write,
        }
    }

    /// Whether the operation changes data (or may: an unknown one is
    /// taken to).
    pub fn writes(self) -> bool {
        matches!(self.grant(), Grant::Write | Grant::Operator)
    }

    /// How migrate mode serves the operation.
    pub fn migrate_route(self) -> MigrateRoute {
        use MigrateRoute as R;
        use S3Op::*;
        match self {
            GetObject | HeadObject | GetObjectTagging | GetObjectAcl | GetObjectRetention
            | GetObjectLegalHold | GetObjectAttributes | GetObjectTorrent => R::ReadFallback,
            SelectObjectContent => R::Refuse(
                "SelectObjectContent is not supported while a bucket is under migration: its request cannot be replayed to the source",
            ),
            PutObject => R::Write,
            CopyObject => R::Copy,
            PutObjectTagging | DeleteObjectTagging | PutObjectAcl | PutObjectRetention
            | PutObjectLegalHold | RestoreObject => R::PromoteThenTarget,
            DeleteObject => R::Delete,
            DeleteObjects => R::DeleteMany,
            ListObjects | ListObjectsV2 => R::MergedList,
            ListMultipartUploads => R::MergedUploads,
            ListObjectVersions => R::MergedVersions,
            CreateMultipartUpload => R::Target,
            UploadPart => R::Part,
            UploadPartCopy => R::PartCopy,
            CompleteMultipartUpload => R::Complete,
            AbortMultipartUpload | ListParts => R::UploadSide,
            Unknown => R::Refuse(UNKNOWN),
            ListBuckets => R::Target,
            op => match op.family() {
                Family::BucketRead | Family::BucketWrite => R::Target,
                family => unreachable!("{op:?} ({family:?}) has its own arm above"),
            },
        }
    }
}

/// Why [`S3Op::Unknown`] is refused, in every mode of an attached bucket:
/// neither its grant nor its store can be told, and a guess could change
/// the bucket around its migration.
pub const UNKNOWN: &str = "this request is not an S3 operation the migration proxy knows, so it cannot tell what it needs or which store it belongs to";

fn bucket_op(method: &str, sub: Option<&str>, raw_query: &str) -> S3Op {
    use S3Op::*;
    if let Some(c) = sub.and_then(|s| BUCKET_CONFIG.iter().find(|c| c.0 == s)) {
        return match method {
            "GET" => c.1,
            "PUT" => c.2.unwrap_or(Unknown),
            "DELETE" => c.3.unwrap_or(Unknown),
            _ => Unknown,
        };
    }
    match (method, sub) {
        ("GET", None) => match query_value(raw_query, "list-type").as_deref() {
            None => ListObjects,
            Some("2") => ListObjectsV2,
            Some(_) => Unknown,
        },
        ("HEAD", None) => HeadBucket,
        ("PUT", None) => CreateBucket,
        ("DELETE", None) => DeleteBucket,
        ("GET", Some("uploads")) => ListMultipartUploads,
        ("GET", Some("versions")) => ListObjectVersions,
        ("GET", Some("location")) => GetBucketLocation,
        ("POST", Some("delete")) => DeleteObjects,
        _ => Unknown,
    }
}

fn object_op(method: &str, sub: Option<&str>, raw_query: &str, copy_source: bool) -> S3Op {
    use S3Op::*;
    match (method, sub) {
        ("GET", None) => GetObject,
        ("HEAD", None) => HeadObject,
        ("PUT", None) if copy_source => CopyObject,
        ("PUT", None) => PutObject,
        ("DELETE", None) => DeleteObject,
        ("POST", Some("uploads")) => CreateMultipartUpload,
        ("PUT", Some("uploadId")) if !query_has(raw_query, "partNumber") => Unknown,
        ("PUT", Some("uploadId")) if copy_source => UploadPartCopy,
        ("PUT", Some("uploadId")) => UploadPart,
        ("POST", Some("uploadId")) => CompleteMultipartUpload,
        ("DELETE", Some("uploadId")) => AbortMultipartUpload,
        ("GET", Some("uploadId")) => ListParts,
        ("GET", Some("tagging")) => GetObjectTagging,
        ("PUT", Some("tagging")) => PutObjectTagging,
        ("DELETE", Some("tagging")) => DeleteObjectTagging,
        ("GET", Some("acl")) => GetObjectAcl,
        ("PUT", Some("acl")) => PutObjectAcl,
        ("GET", Some("retention")) => GetObjectRetention,
        ("PUT", Some("retention")) => PutObjectRetention,
        ("GET", Some("legal-hold")) => GetObjectLegalHold,
        ("PUT", Some("legal-hold")) => PutObjectLegalHold,
        ("GET", Some("attributes")) => GetObjectAttributes,
        ("GET", Some("torrent")) => GetObjectTorrent,
        ("POST", Some("restore")) => RestoreObject,
        ("POST", Some("select")) => SelectObjectContent,
        _ => Unknown,
    }
}

#[cfg(test)]
mod tests;

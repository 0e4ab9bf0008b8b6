use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

use Level::{Bucket, Object, Service};
use S3Op::*;

/// Requests as clients send them (the query as awscli, boto3, the Rust
/// SDK, rclone or s3cmd write it), and what each is.
const REQUESTS: &[(&str, Level, &str, bool, S3Op)] = &[
    ("GET", Service, "", false, ListBuckets),
    ("GET", Service, "x-id=ListBuckets", false, ListBuckets),
    ("GET", Bucket, "", false, ListObjects),
    (
        "GET",
        Bucket,
        "prefix=a%2F&delimiter=%2F&marker=k&max-keys=10",
        false,
        ListObjects,
    ),
    ("GET", Bucket, "encoding-type=url", false, ListObjects),
    (
        "GET",
        Bucket,
        "list-type=2&prefix=a&continuation-token=x",
        false,
        ListObjectsV2,
    ),
    (
        "GET",
        Bucket,
        "list-type=2&fetch-owner=true&start-after=b",
        false,
        ListObjectsV2,
    ),
    ("GET", Bucket, "list-type=3", false, Unknown),
    (
        "GET",
        Bucket,
        "versions&prefix=a",
        false,
        ListObjectVersions,
    ),
    (
        "GET",
        Bucket,
        "uploads&key-marker=k",
        false,
        ListMultipartUploads,
    ),
    ("HEAD", Bucket, "", false, HeadBucket),
    ("GET", Bucket, "location", false, GetBucketLocation),
    ("GET", Bucket, "policy", false, GetBucketPolicy),
    ("PUT", Bucket, "policy", false, PutBucketPolicy),
    ("DELETE", Bucket, "policy", false, DeleteBucketPolicy),
    ("GET", Bucket, "policyStatus", false, GetBucketPolicyStatus),
    ("PUT", Bucket, "policyStatus", false, Unknown),
    ("GET", Bucket, "acl", false, GetBucketAcl),
    ("PUT", Bucket, "acl", false, PutBucketAcl),
    ("DELETE", Bucket, "acl", false, Unknown),
    (
        "GET",
        Bucket,
        "accelerate",
        false,
        GetBucketAccelerateConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "accelerate",
        false,
        PutBucketAccelerateConfiguration,
    ),
    (
        "GET",
        Bucket,
        "analytics&id=a",
        false,
        GetBucketAnalyticsConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "analytics&id=a",
        false,
        PutBucketAnalyticsConfiguration,
    ),
    (
        "DELETE",
        Bucket,
        "analytics&id=a",
        false,
        DeleteBucketAnalyticsConfiguration,
    ),
    ("GET", Bucket, "cors", false, GetBucketCors),
    ("PUT", Bucket, "cors", false, PutBucketCors),
    ("DELETE", Bucket, "cors", false, DeleteBucketCors),
    ("GET", Bucket, "encryption", false, GetBucketEncryption),
    ("PUT", Bucket, "encryption", false, PutBucketEncryption),
    (
        "DELETE",
        Bucket,
        "encryption",
        false,
        DeleteBucketEncryption,
    ),
    (
        "GET",
        Bucket,
        "intelligent-tiering&id=t",
        false,
        GetBucketIntelligentTieringConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "intelligent-tiering&id=t",
        false,
        PutBucketIntelligentTieringConfiguration,
    ),
    (
        "DELETE",
        Bucket,
        "intelligent-tiering&id=t",
        false,
        DeleteBucketIntelligentTieringConfiguration,
    ),
    (
        "GET",
        Bucket,
        "inventory&id=i",
        false,
        GetBucketInventoryConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "inventory&id=i",
        false,
        PutBucketInventoryConfiguration,
    ),
    (
        "DELETE",
        Bucket,
        "inventory&id=i",
        false,
        DeleteBucketInventoryConfiguration,
    ),
    (
        "GET",
        Bucket,
        "lifecycle",
        false,
        GetBucketLifecycleConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "lifecycle",
        false,
        PutBucketLifecycleConfiguration,
    ),
    ("DELETE", Bucket, "lifecycle", false, DeleteBucketLifecycle),
    ("GET", Bucket, "logging", false, GetBucketLogging),
    ("PUT", Bucket, "logging", false, PutBucketLogging),
    (
        "GET",
        Bucket,
        "metrics&id=m",
        false,
        GetBucketMetricsConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "metrics&id=m",
        false,
        PutBucketMetricsConfiguration,
    ),
    (
        "DELETE",
        Bucket,
        "metrics&id=m",
        false,
        DeleteBucketMetricsConfiguration,
    ),
    (
        "GET",
        Bucket,
        "notification",
        false,
        GetBucketNotificationConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "notification",
        false,
        PutBucketNotificationConfiguration,
    ),
    (
        "GET",
        Bucket,
        "object-lock",
        false,
        GetObjectLockConfiguration,
    ),
    (
        "PUT",
        Bucket,
        "object-lock",
        false,
        PutObjectLockConfiguration,
    ),
    (
        "GET",
        Bucket,
        "ownershipControls",
        false,
        GetBucketOwnershipControls,
    ),
    (
        "PUT",
        Bucket,
        "ownershipControls",
        false,
        PutBucketOwnershipControls,
    ),
    (
        "DELETE",
        Bucket,
        "ownershipControls",
        false,
        DeleteBucketOwnershipControls,
    ),
    (
        "GET",
        Bucket,
        "publicAccessBlock",
        false,
        GetPublicAccessBlock,
    ),
    (
        "PUT",
        Bucket,
        "publicAccessBlock",
        false,
        PutPublicAccessBlock,
    ),
    (
        "DELETE",
        Bucket,
        "publicAccessBlock",
        false,
        DeletePublicAccessBlock,
    ),
    ("GET", Bucket, "replication", false, GetBucketReplication),
    ("PUT", Bucket, "replication", false, PutBucketReplication),
    (
        "DELETE",
        Bucket,
        "replication",
        false,
        DeleteBucketReplication,
    ),
    (
        "GET",
        Bucket,
        "requestPayment",
        false,
        GetBucketRequestPayment,
    ),
    (
        "PUT",
        Bucket,
        "requestPayment",
        false,
        PutBucketRequestPayment,
    ),
    ("GET", Bucket, "tagging", false, GetBucketTagging),
    ("PUT", Bucket, "tagging", false, PutBucketTagging),
    ("DELETE", Bucket, "tagging", false, DeleteBucketTagging),
    ("GET", Bucket, "versioning", false, GetBucketVersioning),
    ("PUT", Bucket, "versioning", false, PutBucketVersioning),
    ("GET", Bucket, "website", false, GetBucketWebsite),
    ("PUT", Bucket, "website", false, PutBucketWebsite),
    ("DELETE", Bucket, "website", false, DeleteBucketWebsite),
    ("PUT", Bucket, "", false, CreateBucket),
    ("DELETE", Bucket, "", false, DeleteBucket),
    ("POST", Bucket, "delete", false, DeleteObjects),
    ("POST", Bucket, "delete=", false, DeleteObjects),
    ("GET", Bucket, "delete", false, Unknown),
    // A browser form upload (PostObject): signed by a policy, not SigV4.
    ("POST", Bucket, "", false, Unknown),
    ("GET", Bucket, "tagging&policy", false, Unknown),
    // One sub-resource named twice is still that one.
    ("POST", Bucket, "delete&delete=", false, DeleteObjects),
    (
        "GET",
        Bucket,
        "x-id=a&tagging&tagging=",
        false,
        GetBucketTagging,
    ),
    ("GET", Object, "", false, GetObject),
    ("GET", Object, "x-id=GetObject", false, GetObject),
    (
        "GET",
        Object,
        "versionId=3&response-content-type=text%2Fplain",
        false,
        GetObject,
    ),
    ("GET", Object, "partNumber=2", false, GetObject),
    ("HEAD", Object, "", false, HeadObject),
    ("HEAD", Object, "versionId=null", false, HeadObject),
    ("GET", Object, "tagging", false, GetObjectTagging),
    (
        "GET",
        Object,
        "tagging&versionId=v1",
        false,
        GetObjectTagging,
    ),
    ("PUT", Object, "tagging", false, PutObjectTagging),
    ("DELETE", Object, "tagging", false, DeleteObjectTagging),
    (
        "DELETE",
        Object,
        "tagging&x-id=DeleteObjectTagging",
        false,
        DeleteObjectTagging,
    ),
    ("GET", Object, "acl", false, GetObjectAcl),
    ("PUT", Object, "acl", false, PutObjectAcl),
    ("DELETE", Object, "acl", false, Unknown),
    ("GET", Object, "retention", false, GetObjectRetention),
    ("PUT", Object, "retention", false, PutObjectRetention),
    ("GET", Object, "legal-hold", false, GetObjectLegalHold),
    ("PUT", Object, "legal-hold", false, PutObjectLegalHold),
    ("GET", Object, "attributes", false, GetObjectAttributes),
    ("GET", Object, "torrent", false, GetObjectTorrent),
    ("POST", Object, "restore", false, RestoreObject),
    (
        "POST",
        Object,
        "select&select-type=2",
        false,
        SelectObjectContent,
    ),
    ("PUT", Object, "", false, PutObject),
    ("PUT", Object, "x-id=PutObject", false, PutObject),
    ("PUT", Object, "", true, CopyObject),
    ("PUT", Object, "x-id=CopyObject", true, CopyObject),
    ("DELETE", Object, "", false, DeleteObject),
    ("DELETE", Object, "versionId=null", false, DeleteObject),
    ("POST", Object, "uploads", false, CreateMultipartUpload),
    ("POST", Object, "uploads=", false, CreateMultipartUpload),
    (
        "PUT",
        Object,
        "partNumber=1&uploadId=a%2Fb",
        false,
        UploadPart,
    ),
    (
        "PUT",
        Object,
        "uploadId=u&partNumber=1",
        true,
        UploadPartCopy,
    ),
    ("PUT", Object, "uploadId=u", false, Unknown),
    ("POST", Object, "uploadId=u", false, CompleteMultipartUpload),
    ("DELETE", Object, "uploadId=u", false, AbortMultipartUpload),
    ("GET", Object, "uploadId=u&max-parts=10", false, ListParts),
    // A bucket's sub-resource on an object path is no S3 operation.
    ("GET", Object, "policy", false, Unknown),
    ("DELETE", Object, "cors", false, Unknown),
    ("GET", Object, "versions", false, Unknown),
    ("POST", Object, "", false, Unknown),
    ("POST", Object, "delete", false, Unknown),
    ("PATCH", Object, "", false, Unknown),
    ("OPTIONS", Bucket, "", false, Unknown),
    ("DELETE", Object, "tagging&uploadId=u", false, Unknown),
];

#[test]
fn real_requests_are_what_s3_says_they_are() {
    for &(method, level, query, copy, want) in REQUESTS {
        assert_eq!(
            S3Op::parse(method, level, query, copy),
            want,
            "{method} {level:?} ?{query} copy={copy}"
        );
    }
}

#[test]
fn the_table_names_every_operation() {
    let seen: HashSet<S3Op> = REQUESTS.iter().map(|r| r.4).collect();
    let missing: Vec<_> = S3Op::ALL.iter().filter(|o| !seen.contains(o)).collect();
    assert!(missing.is_empty(), "no request in the table is {missing:?}");
    let names: HashSet<&str> = S3Op::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), S3Op::ALL.len(), "two operations share a name");
}

#[test]
fn subresource_changes_never_delete_or_list() {
    // The shapes that broke before the one parser: a sub-resource delete
    // is not a delete, a bucket read is not a listing.
    assert_eq!(
        S3Op::parse("DELETE", Object, "tagging", false).family(),
        Family::SubresourceWrite
    );
    assert_eq!(
        S3Op::parse("GET", Bucket, "policy", false).family(),
        Family::BucketRead
    );
    assert_eq!(
        S3Op::parse("GET", Bucket, "policy", false).migrate_route(),
        MigrateRoute::Target
    );
    assert_eq!(
        S3Op::DeleteObjectTagging.migrate_route(),
        MigrateRoute::PromoteThenTarget
    );
}

#[test]
fn every_operation_has_one_grant_and_route() {
    for &op in S3Op::ALL {
        // Each property is a total function of the operation; the point
        // is that none of them panics and all agree on what writes.
        let (grant, route) = (op.grant(), op.migrate_route());
        if op.family() == Family::BucketWrite {
            assert_eq!(grant, Grant::Operator, "{op:?}");
        }
        if matches!(
            route,
            MigrateRoute::Delete | MigrateRoute::DeleteMany | MigrateRoute::Write
        ) {
            assert!(
                op.writes(),
                "{op:?} is routed as a write but needs no write grant"
            );
        }
        if route == MigrateRoute::ReadFallback {
            assert_eq!(grant, Grant::Read, "{op:?}");
        }
    }
}

/// Query parameters that never change what a request is.
const NEUTRAL: &[&str] = &[
    "x-id=Op",
    "versionId=3",
    "response-content-type=text%2Fplain",
    "prefix=a",
    "max-keys=5",
    "X-Amz-Expires=60",
];

const METHODS: &[&str] = &["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"];

fn any_level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Service), Just(Bucket), Just(Object)]
}

proptest! {
    /// Neutral parameters, in any order, leave every table request what
    /// it was: the parser reads names, not positions.
    #[test]
    fn order_and_neutral_parameters_do_not_matter(
        i in 0..REQUESTS.len(),
        extra in proptest::sample::subsequence(NEUTRAL, 0..NEUTRAL.len()),
        seed in any::<u64>(),
    ) {
        let (method, level, query, copy, want) = REQUESTS[i];
        // `versionId` on a bucket listing, or `prefix` on an upload, is
        // still neutral: S3 ignores what an operation does not take.
        let mut parts: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        parts.extend(extra.iter().copied());
        let n = parts.len();
        if n > 1 {
            parts.rotate_left((seed as usize) % n);
        }
        let q = parts.join("&");
        prop_assert_eq!(S3Op::parse(method, level, &q, copy), want, "?{}", q);
    }

    /// Whatever a request looks like, a GET or HEAD is never taken for a
    /// write, and a DELETE with a sub-resource is never DeleteObject: the
    /// shapes that lose data cannot come out of the parser.
    #[test]
    fn reads_never_write_and_sub_deletes_never_delete(
        m in proptest::sample::select(METHODS),
        level in any_level(),
        subs in proptest::sample::subsequence(
            SUBRESOURCES.iter().copied().chain(BUCKET_CONFIG.iter().map(|c| c.0)).collect::<Vec<_>>(),
            0..3,
        ),
        copy in any::<bool>(),
    ) {
        let q = subs.join("&");
        let op = S3Op::parse(m, level, &q, copy);
        if matches!(m, "GET" | "HEAD") && op != Unknown {
            prop_assert!(!op.writes(), "{} ?{} is {:?}", m, q, op);
        }
        if !subs.is_empty() {
            prop_assert!(!matches!(op, DeleteObject | DeleteBucket | PutObject | CreateBucket), "{} ?{} is {:?}", m, q, op);
        }
    }
}

/// docs/proxy.md's semantics table has one row per operation, and each
/// row says what the code does: the grant and the migrate-mode route come
/// from the one parser's `S3Op`, and the table is held to them here.
#[test]
fn the_semantics_table_in_the_docs_is_what_the_code_does() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/proxy.md")).unwrap();
    let row = |op: S3Op| {
        let (ready, forward, migrate) = match op.grant() {
            // No bucket: never an attached one.
            Grant::None => (
                "target, untouched",
                "target, untouched",
                "target, untouched",
            ),
            Grant::Operator => ("refused", "refused", "refused"),
            _ if op == Unknown => ("refused", "refused", "refused"),
            _ => ("target", "source", op.migrate_route().as_str()),
        };
        format!(
            "| `{}` | {} | {ready} | {forward} | {migrate} |",
            op.name(),
            op.grant().as_str()
        )
    };
    let want: Vec<String> = S3Op::ALL.iter().map(|&op| row(op)).collect();
    let have: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter(|l| {
            let name = l.trim_start_matches("| `").split('`').next().unwrap_or("");
            S3Op::ALL.iter().any(|o| o.name() == name)
        })
        .collect();
    assert_eq!(
        have,
        want,
        "docs/proxy.md's semantics table differs from the code; the rows the code has:\n{}",
        want.join("\n")
    );
}

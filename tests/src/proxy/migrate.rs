//! A bucket in migrate mode behind a running proxy: a Garage source, a moto
//! target (which enforces conditional writes) holding the delete journal.

use crate::{Store, list_keys};
use aws_sdk_s3::primitives::ByteStream;

use super::*;

pub const BUCKET: &str = "photos";
pub const JOURNAL: &str = "ferry-journal";

pub struct Setup {
    pub source: Store,
    pub target: Store,
    pub proxy: Proxy,
    /// The proxy's `metrics_addr` port.
    pub metrics_port: u16,
    pub rt: tokio::runtime::Runtime,
}

pub fn setup() -> Setup {
    setup_on(Store::garage().unwrap())
}

/// As [`setup`], over another source store.
pub fn setup_on(source: Store) -> Setup {
    setup_between(source, Store::moto().unwrap())
}

/// As [`setup`], between other stores. moto's server closes every
/// connection after its answer; a Garage target keeps them open.
pub fn setup_between(source: Store, target: Store) -> Setup {
    source.create_bucket(BUCKET).unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();
    let metrics_port = free_port();
    let proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!("journal_bucket = \"{JOURNAL}\"\nmetrics_addr = \"127.0.0.1:{metrics_port}\"\n"),
    );
    proxy.attach(BUCKET, &source);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Setup {
        source,
        target,
        proxy,
        metrics_port,
        rt,
    }
}

pub async fn put(c: &aws_sdk_s3::Client, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
}

/// CompleteMultipartUpload of `key` with `parts`.
pub async fn complete(
    c: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
) {
    crate::complete_upload(c, BUCKET, key, id, parts)
        .await
        .unwrap();
}

/// Turns versioning on for the bucket on the store of `c`.
pub async fn enable_versioning(c: &aws_sdk_s3::Client) {
    c.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The ETag of `key` in the bucket, as `c` sees it.
pub async fn etag(c: &aws_sdk_s3::Client, key: &str) -> String {
    c.head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned()
}

/// One DeleteObjects of `objects` in the bucket.
pub async fn delete_objects(
    c: &aws_sdk_s3::Client,
    objects: Vec<aws_sdk_s3::types::ObjectIdentifier>,
) -> Result<
    aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::delete_objects::DeleteObjectsError>,
> {
    c.delete_objects()
        .bucket(BUCKET)
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
}

/// The HTTP status of a failed SDK call.
pub fn status<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<u16>
where
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => {
            // The raw response is typed per operation; its Debug names the
            // status, which is all the tests need.
            let raw = format!("{:?}", s.raw());
            raw.split("status: StatusCode(")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|n| n.parse().ok())
        }
        _ => None,
    }
}

pub async fn journal_names(target: &Store) -> Vec<String> {
    list_keys(&target.client(), JOURNAL).await.unwrap()
}

impl Setup {
    /// ready → forward → migrate, as an operator goes.
    pub fn migrate(&self) {
        self.proxy.set_mode(BUCKET, "forward");
        self.proxy.set_mode(BUCKET, "migrate");
    }

    /// `s3migrate` from the source to the target, listing the source.
    pub fn s3migrate(&self, folder: &Path) -> Command {
        copy_pass(&self.source, &self.target, folder)
    }
}

/// `s3migrate` of the bucket from `source` to `target`, listing the source.
pub fn copy_pass(source: &Store, target: &Store, folder: &Path) -> Command {
    let mut c = Command::new(crate::s3migrate_bin());
    c.args(["--src-url", &source.endpoint, "--src-bucket", BUCKET])
        .args([
            "--src-key",
            &source.access_key,
            "--src-region",
            &source.region,
        ])
        .env("S3MIGRATE_SRC_SECRET", &source.secret_key)
        .arg("--src-list")
        .args(["--dest-url", &target.endpoint, "--dest-bucket", BUCKET])
        .args([
            "--dest-key",
            &target.access_key,
            "--dest-region",
            &target.region,
        ])
        .env("S3MIGRATE_DEST_SECRET", &target.secret_key)
        .arg("--dest-folder")
        .arg(folder)
        .args(["--threads", "8", "--progress-interval-secs", "1"]);
    crate::apply_loopback_env(&mut c);
    c
}

/// Runs a command to its end, printing its output for the test log.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    eprintln!(
        "exit={:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every object of the bucket on `store`, with its bytes.
pub async fn contents(store: &Store) -> std::collections::BTreeMap<String, Vec<u8>> {
    let c = store.client();
    let mut out = std::collections::BTreeMap::new();
    for k in list_keys(&c, BUCKET).await.unwrap() {
        let b = crate::get_bytes(&c, BUCKET, &k).await.unwrap();
        out.insert(k, b.to_vec());
    }
    out
}

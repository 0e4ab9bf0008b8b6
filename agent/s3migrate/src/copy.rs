//! One object from source to destination: a streamed GET into a conditional
//! PUT, or a multipart copy that reproduces the source's part layout.
//!
//! Nothing buffers a whole object. Every retry starts again from a fresh
//! GET. A 412 from the destination is final (someone else's write is there);
//! a 412 from the source means it changed under us, and the object is copied
//! again from the start.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::entries::{Entry, head_entry};
use super::intents::IntentLog;
use super::progress::Stats;
use super::records::Record;
use crate::body::{MeteredBody, SharedHash};
use crate::retry::{RetryPolicy, Retryable};
use crate::s3::{self, ErrorClass, S3Error};
use crate::throttle::Limiter;
use ferry_control::journal::entry_name;

/// The largest single PUT S3 allows.
const MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Dest,
}

/// An S3 error with the side it came from: the same class means different
/// things on each side (a 412 from the destination is final, one from the
/// source means the object changed mid-copy).
#[derive(Debug, Clone)]
pub struct SideError {
    pub side: Side,
    pub err: S3Error,
}

impl SideError {
    fn src(err: S3Error) -> Self {
        Self {
            side: Side::Source,
            err,
        }
    }
    fn dest(err: S3Error) -> Self {
        Self {
            side: Side::Dest,
            err,
        }
    }
    /// `source-connection`, `dest-access-denied`, ...: the class written to
    /// failed.log and counted in the summary.
    pub fn class(&self) -> String {
        let side = match self.side {
            Side::Source => "source",
            Side::Dest => "dest",
        };
        format!("{side}-{}", self.err.class.as_str())
    }
}

impl std::fmt::Display for SideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match self.side {
            Side::Source => "source",
            Side::Dest => "destination",
        };
        write!(f, "{side}: {}", self.err)
    }
}

impl Retryable for SideError {
    fn retryable(&self) -> bool {
        self.err.class.retryable()
            || (self.side == Side::Source && self.err.is(ErrorClass::PreconditionFailed))
    }
}

/// Which write condition protects the destination.
#[derive(Debug, Clone)]
pub enum Cond {
    /// Create only: `If-None-Match: *`.
    Create,
    /// Replace only the copier's own earlier write: `If-Match: <etag>`.
    Replace(String),
    /// The destination ignores conditions and the operator accepted that.
    None,
}

/// Shared by every worker of a pass.
#[derive(Clone)]
pub struct Copier {
    pub src: Client,
    pub src_bucket: String,
    pub dest: Client,
    pub dest_bucket: String,
    pub retry: RetryPolicy,
    pub requests: Option<Arc<Limiter>>,
    pub bytes: Option<Arc<Limiter>>,
    pub stats: Arc<Stats>,
    pub part_size: u64,
    pub part_threads: usize,
    pub dest_tagging: bool,
    /// TEST ONLY (`Args::test_pause_before_put`): see [`test_pause`].
    #[cfg(feature = "test-hooks")]
    pub test_pause: Option<Arc<std::path::PathBuf>>,
    /// With a delete journal: each destination write is logged here, on
    /// disk, before it is sent (see `intents`). Set per pass.
    pub intents: Option<IntentLog>,
    /// `--delete-journal`: the journal's bucket, looked at before a
    /// multipart copy is completed (see [`Copier::deleted_meanwhile`]).
    pub journal_bucket: Option<String>,
}

/// Object headers carried from the source to the destination.
#[derive(Debug, Default, Clone)]
struct Meta {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<DateTime>,
    metadata: Option<std::collections::HashMap<String, String>>,
    tag_count: i32,
}

macro_rules! meta_from {
    ($out:expr) => {
        Meta {
            content_type: $out.content_type().map(str::to_owned),
            content_encoding: $out.content_encoding().map(str::to_owned),
            content_disposition: $out.content_disposition().map(str::to_owned),
            content_language: $out.content_language().map(str::to_owned),
            cache_control: $out.cache_control().map(str::to_owned),
            expires: $out
                .expires_string()
                .and_then(|s| DateTime::from_str(s, DateTimeFormat::HttpDate).ok()),
            metadata: $out.metadata().cloned(),
            tag_count: $out.tag_count().unwrap_or(0),
        }
    };
}

macro_rules! apply_meta {
    ($req:expr, $m:expr, $tagging:expr) => {{
        #[allow(deprecated)]
        let r = $req
            .set_content_type($m.content_type.clone())
            .set_content_encoding($m.content_encoding.clone())
            .set_content_disposition($m.content_disposition.clone())
            .set_content_language($m.content_language.clone())
            .set_cache_control($m.cache_control.clone())
            .set_expires($m.expires)
            .set_metadata($m.metadata.clone())
            .set_tagging($tagging);
        r
    }};
}

macro_rules! apply_cond {
    ($req:expr, $cond:expr) => {
        match $cond {
            Cond::Create => $req.if_none_match("*"),
            Cond::Replace(etag) => $req.if_match(format!("\"{etag}\"")),
            Cond::None => $req,
        }
    };
}

/// The ETag a CompleteMultipartUpload of `parts` produces: the MD5 of the
/// parts' binary MD5s, `-`, the number of parts.
fn multipart_etag(parts: &[CompletedPart]) -> String {
    let mut md5 = md5::Md5::new();
    for p in parts {
        let hex_md5 = p.e_tag().unwrap_or_default().trim_matches('"');
        md5.update(hex::decode(hex_md5).unwrap_or_default());
    }
    format!("{}-{}", hex::encode(md5.finalize()), parts.len())
}

/// One part of a multipart copy: its bytes of the source version `etag`,
/// and where they go.
#[derive(Debug, Clone, Copy)]
struct Part<'a> {
    key: &'a str,
    etag: &'a str,
    upload_id: &'a str,
    /// Its part number, from 1.
    n: i32,
    /// Its offset and length in the object.
    off: u64,
    len: u64,
}

/// An ETag of the form `"<md5 of part md5s>-<parts>"`.
pub fn is_multipart_etag(etag: &str) -> bool {
    etag.contains('-')
}

impl Copier {
    /// Waits for the request rate limit (`--max-requests-per-sec`), if any.
    pub(crate) async fn gate(&self) {
        if let Some(l) = &self.requests {
            l.acquire(1).await;
        }
    }

    /// HEAD of `key` on `side`, once the rate limit allows, retried as the
    /// policy says; `None` when there is no such key.
    pub(crate) async fn head_entry(&self, side: Side, key: &str) -> Result<Option<Entry>, S3Error> {
        let (client, bucket) = match side {
            Side::Source => (&self.src, &self.src_bucket),
            Side::Dest => (&self.dest, &self.dest_bucket),
        };
        self.retry
            .run(|| async {
                self.gate().await;
                head_entry(client, bucket, key).await
            })
            .await
    }

    /// Sends one request to `side` once the rate limit allows; its error
    /// is that side's.
    async fn send<T, E>(
        &self,
        side: Side,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, SideError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.gate().await;
        request.await.map_err(|e| SideError {
            side,
            err: S3Error::from_sdk(e),
        })
    }

    /// One source HEAD (of part `part`, if given).
    async fn head_src(&self, key: &str, part: Option<i32>) -> Result<HeadObjectOutput, SideError> {
        let req = self.src.head_object().bucket(&self.src_bucket).key(key);
        self.send(Side::Source, req.set_part_number(part).send())
            .await
    }

    /// One source GET (of `range`, if given).
    async fn get_src(
        &self,
        key: &str,
        range: Option<String>,
    ) -> Result<GetObjectOutput, SideError> {
        let req = self.src.get_object().bucket(&self.src_bucket).key(key);
        self.send(Side::Source, req.set_range(range).send()).await
    }

    /// With a delete journal: whether a client deleted `key` while it was
    /// being copied (its delete is journalled and the source no longer has
    /// it), so that completing the copy would bring it back. Asked before a
    /// multipart copy is completed, where the window since the source was
    /// read is long; one HEAD when the key is not journalled. A lookup that
    /// fails answers no: the journal watch or the reconcile then settles
    /// the copy, as they settle a single PUT that lands after a delete.
    async fn deleted_meanwhile(&self, key: &str) -> bool {
        match self.journalled(key).await {
            Ok(true) => matches!(self.head_entry(Side::Source, key).await, Ok(None)),
            _ => false,
        }
    }

    /// Whether the delete journal has an entry for `key` now (one HEAD,
    /// once the rate limit allows); false without a journal.
    pub(crate) async fn journalled(&self, key: &str) -> Result<bool, S3Error> {
        let Some(journal) = &self.journal_bucket else {
            return Ok(false);
        };
        self.gate().await;
        let name = entry_name(&self.dest_bucket, key);
        Ok(head_entry(&self.dest, journal, &name).await?.is_some())
    }

    /// Logs, durably, that `key` is about to be written with `etag`.
    async fn intend(&self, key: &str, etag: &str) -> Result<(), SideError> {
        let Some(log) = &self.intents else {
            return Ok(());
        };
        log.record(key, etag).await.map_err(|e| {
            SideError::dest(S3Error::new(
                ErrorClass::LocalIo,
                format!("cannot write the intent log: {e}"),
            ))
        })
    }

    /// Copies `key`, returning the record of what was written.
    pub async fn copy(
        &self,
        key: &str,
        known_etag: Option<&str>,
        cond: &Cond,
    ) -> Result<Record, SideError> {
        if !known_etag.is_some_and(is_multipart_etag)
            && let Some(rec) = self
                .retry
                .run(|| self.copy_single(key, known_etag, cond))
                .await?
        {
            return Ok(rec);
        }
        // Parts retry on their own; the whole upload starts over only when
        // the source object changed under it (a 412 on the If-Match GET).
        let mut attempt = 0;
        loop {
            match self.copy_multipart(key, cond).await {
                Err(e)
                    if e.side == Side::Source
                        && e.err.is(ErrorClass::PreconditionFailed)
                        && attempt < 2 =>
                {
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// GET streamed into PUT. Returns `None` when the object turns out to be
    /// a multipart one (or too large for one PUT), which goes part by part.
    async fn copy_single(
        &self,
        key: &str,
        known_etag: Option<&str>,
        cond: &Cond,
    ) -> Result<Option<Record>, SideError> {
        // The intent for the ETag the listing gave is written while the GET
        // is under way, so that its fsync costs the copy no time of its
        // own. An intent for a write that never happens is harmless: the
        // reconcile finds no copy with that ETag, and removes nothing.
        let (get, intended) = match known_etag.filter(|_| self.intents.is_some()) {
            Some(e) => {
                let (get, intent) = tokio::join!(self.get_src(key, None), self.intend(key, e));
                intent?;
                (get?, Some(e))
            }
            None => (self.get_src(key, None).await?, None),
        };
        let size = get.content_length().unwrap_or(0).max(0) as u64;
        let etag = s3::etag(get.e_tag()).unwrap_or_default();
        if (is_multipart_etag(&etag) && size > 0) || size > MAX_PUT {
            return Ok(None);
        }
        let meta = meta_from!(get);
        let tagging = self.tagging(key, &meta).await?;
        #[cfg(feature = "test-hooks")]
        if let Some(dir) = &self.test_pause {
            // The GET's response head is in hand and its body unread: the
            // bytes this copy will write are already fixed, as in a real
            // copy that a client's delete overtakes.
            test_pause(dir, key).await;
        }
        let body = MeteredBody::new(
            get.body.into_inner(),
            size,
            (self.stats.dl_bytes.clone(), self.stats.ul_bytes.clone()),
            self.bytes.clone(),
            None,
        );
        // A single PUT of a single-part object writes the source's ETag
        // (the MD5 of the bytes).
        if intended != Some(etag.as_str()) {
            self.intend(key, &etag).await?;
        }
        let req = self
            .dest
            .put_object()
            .bucket(&self.dest_bucket)
            .key(key)
            .content_length(size as i64)
            .body(ByteStream::from_body_1_x(body));
        let req = apply_meta!(req, meta, tagging);
        let put = self.send(Side::Dest, apply_cond!(req, cond).send()).await?;
        Ok(Some(Record {
            key: key.to_owned(),
            src_etag: etag,
            dest_etag: s3::etag(put.e_tag()).unwrap_or_default(),
            size,
            sha256: None,
        }))
    }

    async fn tagging(&self, key: &str, meta: &Meta) -> Result<Option<String>, SideError> {
        if meta.tag_count <= 0 {
            return Ok(None);
        }
        if !self.dest_tagging {
            self.stats.tags_dropped.fetch_add(1, Relaxed);
            return Ok(None);
        }
        let req = self.src.get_object_tagging().bucket(&self.src_bucket);
        let out = self.send(Side::Source, req.key(key).send()).await?;
        let enc: Vec<String> = out
            .tag_set()
            .iter()
            .map(|t| format!("{}={}", form_encode(t.key()), form_encode(t.value())))
            .collect();
        Ok(Some(enc.join("&")))
    }

    /// The source's part sizes, read with HEAD `partNumber=N`, or `None`
    /// when the source will not tell.
    async fn source_layout(
        &self,
        key: &str,
        etag: &str,
        size: u64,
    ) -> Result<Option<Vec<u64>>, SideError> {
        let head1 = self.head_src(key, Some(1)).await?;
        // The ETag's `-N` says how many parts there are; a store whose
        // partNumber answer disagrees has not told us the layout.
        let from_etag = etag
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<i32>().ok());
        let Some(parts) = head1
            .parts_count()
            .filter(|&n| n >= 1 && Some(n) == from_etag)
        else {
            return Ok(None);
        };
        let first = head1.content_length().unwrap_or(0).max(0) as u64;
        // One HEAD per part; several at once, so a long link costs a few
        // round trips per object rather than one per part.
        let rest: Vec<u64> = futures::stream::iter(2..=parts)
            .map(|n| async move {
                let h = self.head_src(key, Some(n)).await?;
                Ok::<u64, SideError>(h.content_length().unwrap_or(0).max(0) as u64)
            })
            .buffered(self.part_threads.max(1) * 2)
            .try_collect()
            .await?;
        let sizes: Vec<u64> = std::iter::once(first).chain(rest).collect();
        // A store that answers partNumber with the whole object, or with
        // sizes that do not add up, has not told us its layout.
        if sizes.iter().sum::<u64>() != size || sizes.contains(&0) {
            return Ok(None);
        }
        Ok(Some(sizes))
    }

    fn even_layout(&self, size: u64) -> Vec<u64> {
        let min_part = size.div_ceil(MAX_PARTS).max(5 * 1024 * 1024);
        let part = self.part_size.max(min_part);
        let mut sizes = Vec::new();
        let mut left = size;
        while left > 0 {
            let n = left.min(part);
            sizes.push(n);
            left -= n;
        }
        if sizes.is_empty() {
            sizes.push(0);
        }
        sizes
    }

    async fn copy_multipart(&self, key: &str, cond: &Cond) -> Result<Record, SideError> {
        let head = self.head_src(key, None).await?;
        let size = head.content_length().unwrap_or(0).max(0) as u64;
        let etag = s3::etag(head.e_tag()).unwrap_or_default();
        let meta = meta_from!(head);
        let layout = if is_multipart_etag(&etag) {
            self.source_layout(key, &etag, size).await?
        } else {
            None
        };
        // Without the source's layout the ETags will differ; keep a content
        // hash so that verify can still compare.
        let (sizes, hash) = match layout {
            Some(s) => (s, None),
            None => (
                self.even_layout(size),
                Some(Arc::new(std::sync::Mutex::new(Sha256::new()))),
            ),
        };
        let tagging = self.tagging(key, &meta).await?;
        let req = self
            .dest
            .create_multipart_upload()
            .bucket(&self.dest_bucket)
            .key(key);
        let create = self
            .send(Side::Dest, apply_meta!(req, meta, tagging).send())
            .await?;
        let upload_id = create.upload_id().unwrap_or_default().to_owned();
        let result = self
            .upload_parts_and_complete(key, &etag, &upload_id, &sizes, hash.clone(), cond)
            .await;
        match result {
            Ok(dest_etag) => Ok(Record {
                key: key.to_owned(),
                src_etag: etag,
                dest_etag,
                size,
                sha256: hash.map(|h| hex::encode(h.lock().expect("hash").clone().finalize())),
            }),
            Err(e) => {
                // Leave no upload behind: parts are invisible but cost space.
                let _ = self
                    .dest
                    .abort_multipart_upload()
                    .bucket(&self.dest_bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn upload_parts_and_complete(
        &self,
        key: &str,
        etag: &str,
        upload_id: &str,
        sizes: &[u64],
        hash: Option<SharedHash>,
        cond: &Cond,
    ) -> Result<String, SideError> {
        let mut offsets = Vec::with_capacity(sizes.len());
        let mut off = 0;
        for (i, &len) in sizes.iter().enumerate() {
            offsets.push((i as i32 + 1, off, len));
            off += len;
        }
        // Hashing needs the parts in order, so a hashed copy goes one part
        // at a time.
        let concurrency = if hash.is_some() {
            1
        } else {
            self.part_threads.max(1)
        };
        let mut parts: Vec<CompletedPart> = futures::stream::iter(offsets)
            .map(|(n, off, len)| {
                let part = Part {
                    key,
                    etag,
                    upload_id,
                    n,
                    off,
                    len,
                };
                let hash = hash.clone();
                async move { self.retry.run(|| self.copy_part(part, hash.clone())).await }
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.part_number());
        #[cfg(feature = "test-hooks")]
        if let Some(dir) = &self.test_pause {
            test_pause(dir, key).await;
        }
        if self.deleted_meanwhile(key).await {
            return Err(SideError::src(S3Error::new(
                ErrorClass::NotFound,
                "deleted by a client during the copy (journal)",
            )));
        }
        self.intend(key, &multipart_etag(&parts)).await?;
        let req = self
            .dest
            .complete_multipart_upload()
            .bucket(&self.dest_bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        let done = self.send(Side::Dest, apply_cond!(req, cond).send()).await?;
        Ok(s3::etag(done.e_tag()).unwrap_or_default())
    }

    async fn copy_part(
        &self,
        part: Part<'_>,
        hash: Option<SharedHash>,
    ) -> Result<CompletedPart, SideError> {
        // A failed attempt may have hashed part of the part: put the hash
        // back as it was, so the retry does not feed those bytes twice.
        let before = hash.as_ref().map(|h| h.lock().expect("hash").clone());
        let r = self.copy_part_once(part, hash.clone()).await;
        if r.is_err()
            && let (Some(h), Some(b)) = (hash, before)
        {
            *h.lock().expect("hash") = b;
        }
        r
    }

    async fn copy_part_once(
        &self,
        part: Part<'_>,
        hash: Option<SharedHash>,
    ) -> Result<CompletedPart, SideError> {
        let Part {
            key,
            etag,
            upload_id,
            n,
            off,
            len,
        } = part;
        let range = (len > 0).then(|| format!("bytes={}-{}", off, off + len - 1));
        let get = self.get_src(key, range).await?;
        same_version(get.e_tag(), etag)?;
        let body = MeteredBody::new(
            get.body.into_inner(),
            len,
            (self.stats.dl_bytes.clone(), self.stats.ul_bytes.clone()),
            self.bytes.clone(),
            hash,
        );
        let req = self
            .dest
            .upload_part()
            .bucket(&self.dest_bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(n)
            .content_length(len as i64)
            .body(ByteStream::from_body_1_x(body));
        let up = self.send(Side::Dest, req.send()).await?;
        Ok(CompletedPart::builder()
            .part_number(n)
            .set_e_tag(up.e_tag().map(str::to_owned))
            .build())
    }
}

/// TEST ONLY: holds a copy of `key` between its source GET and its
/// destination PUT (a multipart copy: between its parts and its
/// CompleteMultipartUpload), so that an end-to-end test can land a
/// client's delete in exactly that window (the race the delete journal
/// exists for). Writes `<dir>/<hex(key)>.paused`, then waits until
/// `<dir>/<hex(key)>.go` exists, polling every 20 ms. Set only through the
/// s3migrate binary's FERRY_TEST_PAUSE_BEFORE_PUT, in builds with the
/// `test-hooks` feature (only the tests turn it on).
#[cfg(feature = "test-hooks")]
async fn test_pause(dir: &std::path::Path, key: &str) {
    let name = hex::encode(key.as_bytes());
    let _ = tokio::fs::write(dir.join(format!("{name}.paused")), b"").await;
    let go = dir.join(format!("{name}.go"));
    while !tokio::fs::try_exists(&go).await.unwrap_or(false) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every ranged read of a multipart copy must see the version the copy
/// started from. The response's own ETag says which version it is; that
/// check is as atomic as `If-Match`, which some stores mishandle. (HEAD with
/// `partNumber` is not checked: moto answers it with the part's ETag.)
fn same_version(got: Option<&str>, want: &str) -> Result<(), SideError> {
    if s3::etag(got).as_deref() == Some(want) {
        return Ok(());
    }
    Err(SideError::src(S3Error {
        class: ErrorClass::PreconditionFailed,
        status: None,
        code: None,
        message: format!("object changed during the copy (ETag {got:?}, expected {want})"),
    }))
}

/// `application/x-www-form-urlencoded` for the x-amz-tagging header:
/// the unreserved set kept, every other byte escaped.
fn form_encode(s: &str) -> String {
    ferry_s3::percent::uri_encode(s.as_bytes(), false)
}

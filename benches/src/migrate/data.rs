//! The objects: keys, their content, and how they get into a bucket.
//!
//! Every object's content is pseudo-random and unique to it (and the same
//! wherever that object is written). Garage compresses blocks and
//! deduplicates them by hash, so repeated or compressible bytes would let a
//! run skip most of its disk writes.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use ferry_benches::units::{KIB, MIB};
use futures::{StreamExt, TryStreamExt};
use http_body::{Body, Frame, SizeHint};

/// Bytes generated per body frame.
const FRAME: u64 = 256 * KIB;

/// A data set: `count` objects of `size` bytes each.
#[derive(Debug, Clone)]
pub struct DataSet {
    pub name: &'static str,
    pub prefix: &'static str,
    pub count: u64,
    pub size: u64,
    /// Part size of the multipart uploads that fill the source; `None`:
    /// plain PutObject.
    pub source_part: Option<u64>,
}

impl DataSet {
    pub fn key(&self, i: u64) -> String {
        format!("{}/{i:08}", self.prefix)
    }

    /// The seed of object `i`'s content.
    pub fn seed(&self, i: u64) -> u64 {
        let tag = self.prefix.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        splitmix(tag ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn total_bytes(&self) -> u64 {
        self.count * self.size
    }

    /// The whole of object `i`, in memory.
    pub fn bytes(&self, i: u64) -> Bytes {
        generate(self.seed(i), 0, self.size)
    }

    /// Object `i` (or a range of it) as a streaming body generated on the
    /// fly: a few hundred KiB of memory whatever the size.
    pub fn body(&self, i: u64, offset: u64, len: u64) -> ByteStream {
        ByteStream::from_body_1_x(GenBody {
            seed: self.seed(i),
            offset,
            end: offset + len,
        })
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes `offset..offset + len` of the content with this seed. Byte `n` is
/// byte `n % 8` of word `n / 8`, so any range can be made on its own.
pub fn generate(seed: u64, offset: u64, len: u64) -> Bytes {
    let mut buf = BytesMut::zeroed(len as usize);
    let mut pos = offset;
    let mut rest: &mut [u8] = &mut buf;
    while !rest.is_empty() {
        let word = splitmix(seed ^ (pos / 8)).to_le_bytes();
        let within = (pos % 8) as usize;
        let n = (8 - within).min(rest.len());
        rest[..n].copy_from_slice(&word[within..within + n]);
        rest = &mut rest[n..];
        pos += n as u64;
    }
    buf.freeze()
}

/// A request body that generates its bytes as the request pulls them.
struct GenBody {
    seed: u64,
    offset: u64,
    end: u64,
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.offset >= self.end {
            return Poll::Ready(None);
        }
        let n = FRAME.min(self.end - self.offset);
        let data = generate(self.seed, self.offset, n);
        self.offset += n;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.offset)
    }
}

/// PUT one object from a generated stream.
pub async fn put_streamed(
    client: &Client,
    bucket: &str,
    set: &DataSet,
    i: u64,
) -> anyhow::Result<()> {
    let key = set.key(i);
    client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_length(set.size as i64)
        .body(set.body(i, 0, set.size))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("PUT {bucket}/{key}: {}", DisplayErrorContext(e)))?;
    Ok(())
}

/// Fill `bucket` with the data set, the way a source bucket would have been
/// written: small objects with PutObject from memory, large ones streamed,
/// as multipart uploads when the data set says so.
pub async fn fill(client: &Client, bucket: &str, set: &DataSet) -> anyhow::Result<()> {
    if set.size <= 16 * MIB {
        let objects = (0..set.count).map(|i| (set.key(i), set.bytes(i)));
        return ferry_harness::put_objects(client, bucket, objects, 64).await;
    }
    futures::stream::iter(0..set.count)
        .map(|i| async move {
            match set.source_part {
                Some(part) => put_multipart(client, bucket, set, i, part).await,
                None => put_streamed(client, bucket, set, i).await,
            }
        })
        .buffer_unordered(4)
        .try_collect::<()>()
        .await
}

async fn put_multipart(
    client: &Client,
    bucket: &str,
    set: &DataSet,
    i: u64,
    part: u64,
) -> anyhow::Result<()> {
    let key = set.key(i);
    let err = |what: &str, e: String| anyhow::anyhow!("{what} {bucket}/{key}: {e}");
    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| err("CreateMultipartUpload", DisplayErrorContext(e).to_string()))?;
    let upload_id = upload.upload_id().context("no upload id")?.to_owned();
    let ranges: Vec<(i32, u64, u64)> = (0..set.size.div_ceil(part))
        .map(|n| {
            let off = n * part;
            (n as i32 + 1, off, part.min(set.size - off))
        })
        .collect();
    let (key_ref, id_ref) = (&key, &upload_id);
    let parts: Vec<CompletedPart> = futures::stream::iter(ranges)
        .map(|(n, off, len)| async move {
            let up = client
                .upload_part()
                .bucket(bucket)
                .key(key_ref)
                .upload_id(id_ref)
                .part_number(n)
                .content_length(len as i64)
                .body(set.body(i, off, len))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "UploadPart {n} {bucket}/{key_ref}: {}",
                        DisplayErrorContext(e)
                    )
                })?;
            Ok::<_, anyhow::Error>(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(up.e_tag().map(str::to_owned))
                    .build(),
            )
        })
        .buffered(4)
        .try_collect()
        .await?;
    ferry_harness::complete_upload(client, bucket, &key, &upload_id, parts).await
}

/// What a bucket holds: object count and total bytes (ListObjectsV2).
pub async fn census(client: &Client, bucket: &str) -> anyhow::Result<(u64, u64)> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("LIST {bucket}: {}", DisplayErrorContext(e)))?;
        for obj in page.contents() {
            count += 1;
            bytes += obj.size().unwrap_or(0).max(0) as u64;
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => return Ok((count, bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_agree_with_the_whole() {
        let whole = generate(7, 0, 1000);
        for (off, len) in [(0, 1), (3, 17), (8, 8), (13, 987), (999, 1)] {
            let part = generate(7, off, len);
            assert_eq!(&part[..], &whole[off as usize..(off + len) as usize]);
        }
    }

    #[test]
    fn objects_differ() {
        let set = DataSet {
            name: "t",
            prefix: "t",
            count: 2,
            size: 64,
            source_part: None,
        };
        assert_ne!(set.bytes(0), set.bytes(1));
        assert_eq!(set.bytes(1), set.bytes(1));
    }
}

//! Sorted streams of keys: from a key-list folder, or from ListObjectsV2.
//!
//! Each stream is fed by a producer (a blocking thread for files, a task for
//! listings) through a channel of a few batches, so a listing is fetched
//! lazily and never held whole, and the copier merge-joins source,
//! destination and its own records in one forward sweep.

use std::collections::VecDeque;
use std::path::Path;

use tokio::sync::mpsc;

use crate::retry::RetryPolicy;
use crate::s3::{ErrorClass, S3Error};
use ferry_control::keylist::{KeyListError, KeyListReader};

/// One key as a side knows it. Size and ETag are known from a listing, not
/// from a key list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
}

/// One key as a HEAD finds it, or `None` when there is no such key.
pub async fn head_entry(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Entry>, S3Error> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(Some(Entry {
            key: key.to_owned(),
            size: h.content_length().map(|s| s.max(0) as u64),
            etag: crate::s3::etag(h.e_tag()),
        })),
        Err(e) => match S3Error::from_sdk(e) {
            e if e.is(ErrorClass::NotFound) => Ok(None),
            e => Err(e),
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    KeyList(#[from] KeyListError),
    #[error("listing failed: {0}")]
    List(#[from] S3Error),
}

/// Anything a sorted stream can carry.
pub trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for Entry {
    fn key(&self) -> &str {
        &self.key
    }
}

type Batch<T> = Result<Vec<T>, StreamError>;
pub const BATCH: usize = 1000;
/// Batches buffered ahead of the consumer: bounded, so memory stays flat.
const AHEAD: usize = 4;

pub struct SortedStream<T> {
    rx: Option<mpsc::Receiver<Batch<T>>>,
    buf: VecDeque<T>,
}

pub type EntryStream = SortedStream<Entry>;

impl<T: Keyed> SortedStream<T> {
    pub fn empty() -> Self {
        Self {
            rx: None,
            buf: VecDeque::new(),
        }
    }

    /// A stream fed by a blocking producer that calls `next` until it
    /// returns `Ok(None)` or an error.
    pub fn from_blocking<F>(mut next: F) -> Self
    where
        F: FnMut() -> Result<Option<T>, StreamError> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::channel(AHEAD);
        std::thread::spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                match next() {
                    Ok(Some(item)) => {
                        batch.push(item);
                        if batch.len() == BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            if tx.blocking_send(Ok(full)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => {
                        if !batch.is_empty() {
                            let _ = tx.blocking_send(Ok(batch));
                        }
                        return;
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        Self {
            rx: Some(rx),
            buf: VecDeque::new(),
        }
    }

    async fn fill(&mut self) -> Result<bool, StreamError> {
        while self.buf.is_empty() {
            let Some(rx) = self.rx.as_mut() else {
                return Ok(false);
            };
            match rx.recv().await {
                Some(Ok(batch)) => self.buf.extend(batch),
                Some(Err(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                None => {
                    self.rx = None;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    pub async fn next(&mut self) -> Result<Option<T>, StreamError> {
        if !self.fill().await? {
            return Ok(None);
        }
        Ok(self.buf.pop_front())
    }

    /// The next item if its key is below `key` (any next item with
    /// `None`): how a merge-join takes the keys only this side holds.
    pub async fn next_below(&mut self, key: Option<&str>) -> Result<Option<T>, StreamError> {
        if !self.fill().await? {
            return Ok(None);
        }
        let front = self.buf.front().expect("filled");
        Ok(match key {
            Some(k) if front.key() >= k => None,
            _ => self.buf.pop_front(),
        })
    }

    /// Advances past every key below `key` and returns the item for `key`
    /// itself, if the stream has it. Keys must be asked for in order.
    pub async fn seek(&mut self, key: &str) -> Result<Option<T>, StreamError> {
        loop {
            if !self.fill().await? {
                return Ok(None);
            }
            let front = self.buf.front().expect("filled");
            match front.key().cmp(key) {
                std::cmp::Ordering::Less => {
                    self.buf.pop_front();
                }
                std::cmp::Ordering::Equal => return Ok(self.buf.pop_front()),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
    }
}

impl SortedStream<Entry> {
    /// Keys of a key-list folder after `start_after`; no size or ETag.
    pub fn from_folder(mut reader: KeyListReader, start_after: Option<String>) -> Self {
        Self::from_blocking(move || {
            loop {
                match reader.next_key()? {
                    Some(key) if start_after.as_deref().is_some_and(|s| key.as_str() <= s) => {}
                    Some(key) => {
                        return Ok(Some(Entry {
                            key,
                            size: None,
                            etag: None,
                        }));
                    }
                    None => return Ok(None),
                }
            }
        })
    }

    /// Keys of a bucket after `start_after`, by ListObjectsV2, with size and
    /// ETag. Each page is retried as a whole on a transient error.
    pub fn from_listing(
        client: aws_sdk_s3::Client,
        bucket: String,
        start_after: Option<String>,
        retry: RetryPolicy,
    ) -> Self {
        let (tx, rx) = mpsc::channel(AHEAD);
        tokio::spawn(async move {
            let mut token: Option<String> = None;
            // The merge-join relies on byte order; a store that lists in
            // another order must stop the pass, not skip keys silently.
            let mut last: Option<String> = None;
            loop {
                let page = retry
                    .run(|| {
                        let req = client
                            .list_objects_v2()
                            .bucket(&bucket)
                            .max_keys(1000)
                            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                            .set_continuation_token(token.clone())
                            .set_start_after(if token.is_none() {
                                start_after.clone()
                            } else {
                                None
                            });
                        async move { req.send().await.map_err(S3Error::from_sdk) }
                    })
                    .await;
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let mut batch = Vec::with_capacity(page.contents().len());
                for o in page.contents() {
                    let Some(raw) = o.key() else { continue };
                    // encoding-type=url: keys arrive percent-encoded so that
                    // control bytes survive the XML.
                    let key = match url_decode(raw) {
                        Some(k) => k,
                        None => {
                            let e = S3Error::new(
                                crate::s3::ErrorClass::BadRequest,
                                format!("listing returned an undecodable key {raw:?}"),
                            );
                            let _ = tx.send(Err(e.into())).await;
                            return;
                        }
                    };
                    if last.as_deref().is_some_and(|l| l >= key.as_str()) {
                        let e = S3Error::new(
                            crate::s3::ErrorClass::BadRequest,
                            format!("{bucket}: the listing is not in byte order at {key:?}"),
                        );
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                    last = Some(key.clone());
                    batch.push(Entry {
                        key,
                        size: o.size().map(|s| s as u64),
                        etag: crate::s3::etag(o.e_tag()),
                    });
                }
                if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
                    return;
                }
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                    _ => return,
                }
            }
        });
        Self {
            rx: Some(rx),
            buf: VecDeque::new(),
        }
    }
}

/// Decodes an `encoding-type=url` key (`ferry_s3::percent::form_decode`).
pub fn url_decode(s: &str) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_owned());
    }
    String::from_utf8(ferry_s3::percent::form_decode(s)?).ok()
}

/// Opens the destination's key lists in `dir`, if it holds any.
pub fn dest_key_lists(dir: &Path) -> Result<Option<KeyListReader>, KeyListError> {
    if !dir.exists() {
        return Ok(None);
    }
    let files = ferry_control::keylist::chunk_files(dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(KeyListReader::open(dir)?))
}

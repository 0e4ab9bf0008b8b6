//! The body that carries an object from a source GET into a destination PUT.
//!
//! It streams: the PUT pulls a chunk, which pulls a chunk from the GET, so
//! memory is a few chunks per transfer whatever the object size. On the way
//! it counts bytes, applies `--max-bytes-per-sec`, optionally hashes, and
//! checks the length: a source body cut short fails the PUT instead of
//! storing a truncated object.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};

use crate::throttle::Limiter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running SHA-256 of what went through, readable once the body is done.
pub type SharedHash = Arc<Mutex<Sha256>>;

pub struct MeteredBody {
    inner: SdkBody,
    expected: u64,
    seen: u64,
    /// Bytes read from the source.
    counter: Arc<AtomicU64>,
    /// Bytes handed on to the destination request, as they go.
    sent: Arc<AtomicU64>,
    limiter: Option<Arc<Limiter>>,
    hash: Option<SharedHash>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    held: Option<Bytes>,
}

impl MeteredBody {
    pub fn new(
        inner: SdkBody,
        expected: u64,
        (counter, sent): (Arc<AtomicU64>, Arc<AtomicU64>),
        limiter: Option<Arc<Limiter>>,
        hash: Option<SharedHash>,
    ) -> Self {
        Self {
            inner,
            expected,
            seen: 0,
            counter,
            sent,
            limiter,
            hash,
            sleep: None,
            held: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("source body was {seen} bytes where {expected} were expected")]
pub struct LengthMismatch {
    pub seen: u64,
    pub expected: u64,
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
            let data = this.held.take().expect("held with sleep");
            this.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    if this.seen != this.expected {
                        let e = LengthMismatch {
                            seen: this.seen,
                            expected: this.expected,
                        };
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    return Poll::Ready(None);
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(f)) => f,
            };
            let Ok(data) = frame.into_data() else {
                // Trailers from the source are not forwarded.
                continue;
            };
            if data.is_empty() {
                continue;
            }
            this.seen += data.len() as u64;
            if this.seen > this.expected {
                let e = LengthMismatch {
                    seen: this.seen,
                    expected: this.expected,
                };
                return Poll::Ready(Some(Err(e.into())));
            }
            this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            if let Some(h) = &this.hash {
                h.lock().expect("hash lock").update(&data);
            }
            if let Some(l) = &this.limiter {
                let wait = l.reserve(data.len() as u64);
                if !wait.is_zero() {
                    let mut sleep = Box::pin(tokio::time::sleep(wait));
                    if sleep.as_mut().poll(cx).is_pending() {
                        this.sleep = Some(sleep);
                        this.held = Some(data);
                        return Poll::Pending;
                    }
                }
            }
            this.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(
            self.expected - self.seen + self.held.as_ref().map_or(0, |b| b.len() as u64),
        )
    }
}

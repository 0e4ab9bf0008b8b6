//! The requests: GET, HEAD, PUT or a listing page, N at a time, until a
//! deadline or a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::stats::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Head,
    Put,
    /// The first ListObjectsV2 page of [`LIST_PAGE`] keys under the work's
    /// prefix.
    List,
}

/// Keys per timed listing page: S3's default and largest page.
pub const LIST_PAGE: usize = 1000;

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Head => "HEAD",
            Op::Put => "PUT",
            Op::List => "LIST",
        }
    }
}

/// When a run ends: at a deadline (requests in flight finish), or after a
/// number of requests, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    pub secs: Option<f64>,
    pub count: Option<usize>,
}

/// One workload: `op` on `bucket`, `concurrency` at a time. GETs and HEADs
/// cycle through `keys`; PUTs write `data` to `{prefix}{n}`, n counting up from 0
/// (a PUT run with the same prefix overwrites the same keys); listings ask
/// for the first page under `prefix`.
#[derive(Clone)]
pub struct Work {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub op: Op,
    pub keys: Arc<Vec<String>>,
    pub data: Bytes,
    pub prefix: String,
    pub concurrency: usize,
    /// One client per task, when not empty: task `i` uses `own_clients[i
    /// % len]` instead of `client`, so each task keeps its own connection
    /// (`--many-clients`).
    pub own_clients: Arc<Vec<aws_sdk_s3::Client>>,
}

/// An SDK error on one line, cut short: the code and message, not the
/// whole raw response.
pub fn short(what: String, e: impl std::error::Error) -> String {
    let full = format!("{what}: {}", DisplayErrorContext(e));
    match full.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &full[..i]),
        None => full,
    }
}

/// Pseudo-random, incompressible bytes (xorshift), `seed` picking the
/// stream.
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    Bytes::from(ferry_harness::xorshift_bytes(seed, len))
}

async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<u64, String> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| short(format!("GET {bucket}/{key}"), e))?;
    let mut body = out.body;
    let mut n = 0u64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| short(format!("GET {bucket}/{key} body"), e))?
    {
        n += chunk.len() as u64;
    }
    Ok(n)
}

async fn head(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<u64, String> {
    client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| short(format!("HEAD {bucket}/{key}"), e))?;
    Ok(0)
}

async fn put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: Bytes,
) -> Result<u64, String> {
    let len = data.len() as u64;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .map_err(|e| short(format!("PUT {bucket}/{key}"), e))?;
    Ok(len)
}

/// The keys of the first page under `prefix`. A short page is an error:
/// a listing that skipped keys must not look fast.
pub async fn list_page(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, String> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(LIST_PAGE as i32)
        .send()
        .await
        .map_err(|e| short(format!("LIST {bucket}/{prefix}"), e))?;
    let keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    if keys.len() != LIST_PAGE || out.is_truncated() != Some(true) {
        return Err(format!(
            "LIST {bucket}/{prefix}: {} keys, truncated {:?}; expected a full page of {LIST_PAGE} with more",
            keys.len(),
            out.is_truncated()
        ));
    }
    Ok(keys)
}

impl Work {
    /// Runs until `stop`; latencies, bytes and errors of every request.
    /// The wall time runs from the start to the last request's end.
    pub async fn run(&self, stop: Stop) -> Run {
        let started = Instant::now();
        let deadline = stop.secs.map(|s| started + Duration::from_secs_f64(s));
        let tickets = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(self.concurrency);
        for i in 0..self.concurrency.max(1) {
            let mut w = self.clone();
            if !w.own_clients.is_empty() {
                w.client = w.own_clients[i % w.own_clients.len()].clone();
            }
            let tickets = tickets.clone();
            tasks.push(tokio::spawn(async move {
                let mut run = Run::default();
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let n = tickets.fetch_add(1, Ordering::Relaxed);
                    if stop.count.is_some_and(|c| n >= c) {
                        break;
                    }
                    let t0 = Instant::now();
                    let r = match w.op {
                        Op::Get => get(&w.client, &w.bucket, &w.keys[n % w.keys.len()]).await,
                        Op::Head => head(&w.client, &w.bucket, &w.keys[n % w.keys.len()]).await,
                        Op::Put => {
                            let key = format!("{}{n}", w.prefix);
                            put(&w.client, &w.bucket, &key, w.data.clone()).await
                        }
                        Op::List => list_page(&w.client, &w.bucket, &w.prefix).await.map(|_| 0),
                    };
                    match r {
                        Ok(bytes) => {
                            run.lat_us.push(t0.elapsed().as_micros() as u64);
                            run.bytes += bytes;
                        }
                        Err(e) => {
                            run.errors += 1;
                            run.first_error.get_or_insert(e);
                        }
                    }
                }
                run
            }));
        }
        let mut total = Run::default();
        for t in tasks {
            match t.await {
                Ok(r) => {
                    total.lat_us.extend(r.lat_us);
                    total.errors += r.errors;
                    total.bytes += r.bytes;
                    if total.first_error.is_none() {
                        total.first_error = r.first_error;
                    }
                }
                Err(e) => {
                    total.errors += 1;
                    total
                        .first_error
                        .get_or_insert(format!("worker failed: {e}"));
                }
            }
        }
        total.wall = started.elapsed();
        total
    }
}

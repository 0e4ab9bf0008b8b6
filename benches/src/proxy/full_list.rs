//! Migrate mode, `--full-list-keys`: merged listings paged to the end. For
//! each size, that many keys per side (laid out as the merged-page case's:
//! every fifth key on both sides, the others split between them), listed
//! to the last page through the proxy and, as the reference, the same
//! union from one bucket on the target. The proxy's peak RSS while it pages
//! each size says whether a merged listing's memory depends on the
//! bucket's size (it should not: the continuation token carries the resume
//! key, and each page asks each side for one page).

use std::time::Instant;

use anyhow::Context;
use aws_sdk_s3::config::retry::RetryConfig;
use bytes::Bytes;
use ferry_harness::Store;

use crate::bench::Bench;
use crate::cpu::CpuWatch;
use crate::env::{MIGRATE_BUCKET, UNION_BUCKET};
use crate::mem::{MemSeen, Sampler};
use crate::stats::{Run, Series};
use crate::workload::{LIST_PAGE, short};

/// One size's listings.
pub struct FullList {
    pub per_side: usize,
    /// Keys in the merged view (and the union bucket).
    pub union: usize,
    /// Pages per listing to the end.
    pub pages: usize,
    /// Each round's listing to the end; a latency per page.
    pub direct: Series,
    pub proxy: Series,
    /// The proxy while it paged this size (VmHWM reset before each
    /// listing).
    pub mem: MemSeen,
    /// Seconds to seed this size's keys (both sides and the union).
    pub seed_secs: f64,
}

/// Keys of the union for `per_side` keys on each side: each side holds
/// 3/5 of the union (see `migrate::list_sides`).
pub fn union_of(per_side: usize) -> usize {
    (per_side * 5).div_ceil(3)
}

fn prefix(per_side: usize) -> String {
    format!("full-{per_side}/")
}

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:07}")
}

/// A client for seeding: retries on (Garage answers 503 "database is
/// locked" now and then under many PUTs), unlike the timed clients.
pub fn seeder(store: &Store) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        store
            .config()
            .to_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .build(),
    )
}

/// Lists `bucket` under `prefix` to the end, `LIST_PAGE` keys a page:
/// the latency of each page. Every key must be the next of
/// `prefix0000000`, `prefix0000001`, … up to `union`, so a listing that
/// skipped, repeated or reordered a key fails.
async fn list_to_end(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    union: usize,
) -> Result<Vec<u64>, String> {
    let mut lat = Vec::new();
    let mut token: Option<String> = None;
    let mut next = 0usize;
    loop {
        let t0 = Instant::now();
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(LIST_PAGE as i32)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| short(format!("LIST {bucket}/{prefix} page {}", lat.len()), e))?;
        lat.push(t0.elapsed().as_micros() as u64);
        for o in out.contents() {
            let want = key(prefix, next);
            if o.key() != Some(want.as_str()) {
                return Err(format!(
                    "LIST {bucket}/{prefix}: key {next} is {:?}, expected {want}",
                    o.key()
                ));
            }
            next += 1;
        }
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    if next != union {
        return Err(format!(
            "LIST {bucket}/{prefix}: {next} keys to the end, expected {union}"
        ));
    }
    Ok(lat)
}

impl Bench<'_> {
    /// Seeds every size of `--full-list-keys`, then lists each to the end
    /// directly and through the proxy in alternating rounds, smallest
    /// first.
    pub async fn full_lists(&self) -> anyhow::Result<Vec<FullList>> {
        let a = self.args;
        let mut sizes = a.full_list_keys.clone();
        sizes.sort_unstable();
        sizes.dedup();
        sizes.retain(|&n| n > 0);
        let (on_source, on_target) = (seeder(self.source), seeder(self.target));
        let direct = crate::clients::direct(
            self.target,
            crate::clients::Body::Plain,
            crate::clients::Http::from_flag(a.quick_ack_client),
        );
        let proxy = crate::clients::proxy(
            self.target,
            self.proxy_http,
            self.user,
            crate::clients::Body::Plain,
            crate::clients::Http::from_flag(a.quick_ack_client),
        );
        let per_bucket = (a.seed_concurrency / 3).max(1);
        let mut seeded = Vec::new();
        for &n in &sizes {
            let union = union_of(n);
            let p = prefix(n);
            let t0 = Instant::now();
            let all = |want: fn(usize) -> bool| {
                let p = p.clone();
                (0..union)
                    .filter(move |&i| want(i))
                    .map(move |i| (key(&p, i), Bytes::from(format!("{i}\n"))))
            };
            eprintln!(
                "bench-proxy: seeding {n} keys per side ({union} in the union, {} PUTs, \
                 {per_bucket} in flight per bucket)",
                union + 2 * n
            );
            // As `migrate::list_sides`: i % 5 == 0 on both, 1 and 2 on the
            // source, 3 and 4 on the target.
            let (s, t, u) = tokio::join!(
                ferry_harness::put_objects(
                    &on_source,
                    MIGRATE_BUCKET,
                    all(|i| i % 5 <= 2),
                    per_bucket
                ),
                ferry_harness::put_objects(
                    &on_target,
                    MIGRATE_BUCKET,
                    all(|i| i % 5 == 0 || i % 5 >= 3),
                    per_bucket
                ),
                ferry_harness::put_objects(&on_target, UNION_BUCKET, all(|_| true), per_bucket),
            );
            s.context("seed the source side")?;
            t.context("seed the target side")?;
            u.context("seed the union bucket")?;
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "bench-proxy: seeded {} PUTs in {secs:.0} s ({:.0}/s)",
                union + 2 * n,
                (union + 2 * n) as f64 / secs
            );
            seeded.push((n, secs));
        }
        let mut out = Vec::new();
        for (n, seed_secs) in seeded {
            let union = union_of(n);
            let p = prefix(n);
            let mut r = FullList {
                per_side: n,
                union,
                pages: union.div_ceil(LIST_PAGE),
                direct: Series::new("direct"),
                proxy: Series::new("proxy"),
                mem: MemSeen::default(),
                seed_secs,
            };
            for round in 0..a.rounds.max(1) {
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for which in order {
                    let (client, bucket) = if which == 0 {
                        (&direct, UNION_BUCKET)
                    } else {
                        (&proxy, MIGRATE_BUCKET)
                    };
                    let sampler = self
                        .proxy
                        .filter(|_| which == 1)
                        .map(|x| Sampler::start(x.pid(), None));
                    let watch = CpuWatch::start(&self.watched);
                    let t0 = Instant::now();
                    let listed = list_to_end(client, bucket, &p, union).await;
                    let mut run = Run {
                        wall: t0.elapsed(),
                        cpu: watch.stop(),
                        ..Run::default()
                    };
                    if let Some(seen) = sampler.map(Sampler::stop) {
                        r.mem.merge(&seen);
                    }
                    match listed {
                        Ok(lat) => run.lat_us = lat,
                        Err(e) => {
                            run.errors = 1;
                            run.first_error = Some(e);
                        }
                    }
                    let series = if which == 0 {
                        &mut r.direct
                    } else {
                        &mut r.proxy
                    };
                    eprintln!(
                        "bench-proxy: {n} keys per side, {} to the end, round {}: {} pages, \
                         {:.2} s{}{}",
                        series.path,
                        round + 1,
                        run.ok(),
                        run.wall.as_secs_f64(),
                        if which == 1 {
                            format!(", proxy peak RSS {} MiB", r.mem.peak_kib() / 1024)
                        } else {
                            String::new()
                        },
                        run.first_error
                            .as_deref()
                            .map(|e| format!(" (error: {e})"))
                            .unwrap_or_default()
                    );
                    series.runs.push(run);
                }
            }
            out.push(r);
        }
        Ok(out)
    }
}

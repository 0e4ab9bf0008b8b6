//! Migrate mode: a GET the target answers, a GET that falls back to the
//! source, and the first page of a listing merged from both sides, each
//! against the same request made directly to one store.

use std::sync::Arc;

use anyhow::{Context, ensure};
use bytes::Bytes;

use crate::args::BenchMode;
use crate::bench::{Bench, Shape};
use crate::case::{FALLBACK, HIT, MERGED, ModeResult, ModeStart};
use crate::clients::{self, Body, Http};
use crate::env::{MIGRATE_BUCKET, UNION_BUCKET};
use crate::full_list::seeder;
use crate::workload::{LIST_PAGE, Op, Stop, Work, list_page, random_bytes};

const LIST_PREFIX: &str = "list/";

/// Where listing key `i` lives: every fifth on both sides (the target's
/// copy wins the merge), the others two on the source, two on the target,
/// so both sides feed every stretch of the merged page.
fn list_sides(i: usize) -> (bool, bool) {
    match i % 5 {
        0 => (true, true),
        1 | 2 => (true, false),
        _ => (false, true),
    }
}

impl Bench<'_> {
    pub async fn run_migrate(&self) -> anyhow::Result<ModeResult> {
        let start = ModeStart::now();
        let a = self.args;
        ensure!(
            a.list_keys > LIST_PAGE,
            "--list-keys must be more than {LIST_PAGE}, so that the first page is full"
        );
        let http = Http::from_flag(a.quick_ack_client);
        let on_target = clients::direct(self.target, Body::Plain, http);
        let on_source = clients::direct(self.source, Body::Plain, http);
        let proxy = clients::proxy(self.target, self.proxy_http, self.user, Body::Plain, http);
        // Seeding retries (Garage answers 503 "database is locked" now and
        // then); the timed clients above do not.
        let (seed_target, seed_source) = (seeder(self.target), seeder(self.source));

        let small = random_bytes((a.small_kib * 1024) as usize, 1);
        let n = a.small_keys.max(1);
        let hits: Vec<String> = (0..n).map(|i| format!("hit/{i:05}")).collect();
        let fallbacks: Vec<String> = (0..n).map(|i| format!("fallback/{i:05}")).collect();
        let seed =
            |client: &aws_sdk_s3::Client, bucket: &'static str, keys: Vec<(String, Bytes)>| {
                let client = client.clone();
                async move {
                    let count = keys.len();
                    ferry_harness::put_objects(&client, bucket, keys, 16)
                        .await
                        .with_context(|| format!("seed {count} objects in {bucket}"))
                }
            };
        let with_small = |keys: &[String]| -> Vec<(String, Bytes)> {
            keys.iter().map(|k| (k.clone(), small.clone())).collect()
        };
        seed(&seed_target, MIGRATE_BUCKET, with_small(&hits)).await?;
        seed(&seed_source, MIGRATE_BUCKET, with_small(&fallbacks)).await?;

        // A key on both sides has the same body on both, as after a copy.
        let listed: Vec<(String, Bytes)> = (0..a.list_keys)
            .map(|i| {
                (
                    format!("{LIST_PREFIX}{i:06}"),
                    Bytes::from(format!("{i}\n")),
                )
            })
            .collect();
        let pick = |want: fn((bool, bool)) -> bool| -> Vec<(String, Bytes)> {
            listed
                .iter()
                .enumerate()
                .filter(|(i, _)| want(list_sides(*i)))
                .map(|(_, kv)| kv.clone())
                .collect()
        };
        seed(&seed_source, MIGRATE_BUCKET, pick(|(s, _)| s)).await?;
        seed(&seed_target, MIGRATE_BUCKET, pick(|(_, t)| t)).await?;
        seed(&seed_target, UNION_BUCKET, listed.clone()).await?;

        // The two pages must be the same keys, or the ratio compares
        // different work.
        let merged = list_page(&proxy, MIGRATE_BUCKET, LIST_PREFIX)
            .await
            .map_err(anyhow::Error::msg)
            .context("the merged first page through the proxy")?;
        let union = list_page(&on_target, UNION_BUCKET, LIST_PREFIX)
            .await
            .map_err(anyhow::Error::msg)
            .context("the first page of the union bucket")?;
        ensure!(
            merged == union,
            "the merged first page differs from the union bucket's: first difference at {:?}",
            merged.iter().zip(&union).position(|(m, u)| m != u)
        );

        let work = |client: &aws_sdk_s3::Client,
                    bucket: &str,
                    op: Op,
                    keys: &[String],
                    prefix: &str,
                    conc: usize| Work {
            client: client.clone(),
            bucket: bucket.to_owned(),
            op,
            keys: Arc::new(keys.to_vec()),
            data: Bytes::new(),
            prefix: prefix.to_owned(),
            concurrency: conc,
            own_clients: Arc::default(),
        };
        let stop = Stop {
            secs: Some(a.small_secs),
            count: None,
        };
        let size = a.small_kib * 1024;
        let c = a.concurrency;
        let lc = a.list_concurrency.max(1);
        let mode = BenchMode::Migrate;
        let mut cases = Vec::new();
        // HEAD as an extra: Garage's small GETs stall about 40 ms on Nagle,
        // which hides a fallback's extra round trip; its HEADs do not.
        let mut ops = vec![Op::Get];
        if !a.no_head {
            ops.push(Op::Head);
        }
        let case = |size, op, variant, d, x| {
            let shape = Shape {
                mode,
                size,
                large: false,
                op,
                body: Body::Plain,
                stop,
            };
            self.case(shape, variant, d, x, None)
        };
        for op in ops {
            for (variant, direct, keys) in
                [(HIT, &on_target, &hits), (FALLBACK, &on_source, &fallbacks)]
            {
                let d = work(direct, MIGRATE_BUCKET, op, keys, "", c);
                let x = work(&proxy, MIGRATE_BUCKET, op, keys, "", c);
                cases.push(case(size, op, variant, d, x).await);
            }
        }
        let (d, x) = (
            work(&on_target, UNION_BUCKET, Op::List, &[], LIST_PREFIX, lc),
            work(&proxy, MIGRATE_BUCKET, Op::List, &[], LIST_PREFIX, lc),
        );
        cases.push(case(LIST_PAGE as u64, Op::List, MERGED, d, x).await);
        let full_lists = if a.full_list_keys.is_empty() {
            Vec::new()
        } else {
            self.full_lists().await?
        };
        let mut result = start.finish(mode, cases);
        result.full_lists = full_lists;
        Ok(result)
    }
}

//! The cases of one mode, each path run in alternating rounds.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use ferry_harness::Store;

use crate::args::{Args, BenchMode};
use crate::case::{Case, ModeResult, ModeStart, RELAY, body_tag, case_title};
use crate::clients::{self, Body, Http};
use crate::cpu::{CpuWatch, Watched};
use crate::env::ClientUser;
use crate::relay::Relay;
use crate::stats::Series;
use crate::workload::{Op, Stop, Work, random_bytes};

pub struct Bench<'a> {
    pub args: &'a Args,
    pub target: &'a Store,
    pub source: &'a Store,
    pub proxy_http: &'a str,
    pub user: &'a ClientUser,
    pub watched: Watched,
    pub large_data: Bytes,
    /// The names of a case's two paths: the reference, then the one
    /// measured against it ("direct", "proxy").
    pub paths: [&'static str; 2],
}

/// The direct and proxy clients of one body variant.
struct Pair {
    direct: aws_sdk_s3::Client,
    proxy: aws_sdk_s3::Client,
}

impl Bench<'_> {
    fn http(&self) -> Http {
        Http::from_flag(self.args.quick_ack_client)
    }

    fn pair(&self, store: &Store, body: Body) -> Pair {
        Pair {
            direct: clients::direct(store, body, self.http()),
            proxy: clients::proxy(self.target, self.proxy_http, self.user, body, self.http()),
        }
    }

    /// Ready and forward mode: `bucket`, read and written directly on
    /// `store` and through the proxy.
    pub async fn run_one_store(
        &self,
        mode: BenchMode,
        bucket: &str,
        store: &Store,
    ) -> anyhow::Result<ModeResult> {
        let start = ModeStart::now();
        let a = self.args;
        let plain = self.pair(store, Body::Plain);
        let chunked = self.pair(store, Body::Chunked);
        let small = random_bytes((a.small_kib * 1024) as usize, 1);
        let keys: Vec<String> = (0..a.small_keys.max(1))
            .map(|i| format!("seed/{i:05}"))
            .collect();
        ferry_harness::put_objects(
            &plain.direct,
            bucket,
            keys.iter().map(|k| (k.clone(), small.clone())),
            16,
        )
        .await
        .with_context(|| format!("seed {} small objects", keys.len()))?;
        let keys = Arc::new(keys);
        let work = |client: &aws_sdk_s3::Client, op: Op, data: &Bytes, prefix: &str, conc| Work {
            client: client.clone(),
            bucket: bucket.to_owned(),
            op,
            keys: keys.clone(),
            data: data.clone(),
            prefix: prefix.to_owned(),
            concurrency: conc,
        };

        let small_stop = Stop {
            secs: Some(a.small_secs),
            count: None,
        };
        let c = a.concurrency;
        let mut cases = Vec::new();
        let mut variants = vec![(Op::Get, Body::Plain, &plain)];
        if !a.no_head {
            variants.push((Op::Head, Body::Plain, &plain));
        }
        variants.push((Op::Put, Body::Plain, &plain));
        if !a.no_chunked {
            variants.push((Op::Put, Body::Chunked, &chunked));
        }
        for &(op, body, p) in &variants {
            let tag = body_tag(body);
            let d = work(&p.direct, op, &small, &format!("small/direct{tag}/"), c);
            let x = work(&p.proxy, op, &small, &format!("small/proxy{tag}/"), c);
            cases.push(
                self.case(
                    mode,
                    a.small_kib * 1024,
                    false,
                    op,
                    body,
                    "",
                    d,
                    x,
                    small_stop,
                )
                .await,
            );
        }

        if a.large > 0 {
            let lc = a.large_concurrency;
            let large_stop = Stop {
                secs: None,
                count: Some(a.large),
            };
            let data = &self.large_data;
            let size = data.len() as u64;
            // PUTs first: the GETs read what the direct plain PUTs wrote.
            let mut variants = vec![(Op::Put, Body::Plain, &plain)];
            if !a.no_chunked {
                variants.push((Op::Put, Body::Chunked, &chunked));
            }
            for &(op, body, p) in &variants {
                let tag = body_tag(body);
                let d = work(&p.direct, op, data, &format!("large/direct{tag}/"), lc);
                let x = work(&p.proxy, op, data, &format!("large/proxy{tag}/"), lc);
                cases.push(
                    self.case(mode, size, true, op, body, "", d, x, large_stop)
                        .await,
                );
            }
            let large_keys: Arc<Vec<String>> =
                Arc::new((0..a.large).map(|i| format!("large/direct/{i}")).collect());
            let mut d = work(&plain.direct, Op::Get, data, "", lc);
            let mut x = work(&plain.proxy, Op::Get, data, "", lc);
            d.keys = large_keys.clone();
            x.keys = large_keys.clone();
            cases.push(
                self.case(mode, size, true, Op::Get, Body::Plain, "", d, x, large_stop)
                    .await,
            );
            if mode == BenchMode::Ready && !a.no_relay {
                let upstream = store.endpoint.trim_start_matches("http://");
                let relay = Relay::start(upstream).await?;
                let relay_url = format!("http://{}", relay.addr);
                let via = clients::direct_via(store, &relay_url, self.http());
                let mut d = work(&plain.direct, Op::Get, data, "", lc);
                let mut r = work(&via, Op::Get, data, "", lc);
                d.keys = large_keys.clone();
                r.keys = large_keys;
                let mut case = self
                    .case(
                        mode,
                        size,
                        true,
                        Op::Get,
                        Body::Plain,
                        RELAY,
                        d,
                        r,
                        large_stop,
                    )
                    .await;
                case.proxy.path = "relay".to_owned();
                cases.push(case);
            }
        }
        Ok(start.finish(mode, cases))
    }

    /// Runs both paths `rounds` times, alternating which goes first
    /// (direct, proxy, proxy, direct, …), each run after a warm-up on the
    /// same client.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn case(
        &self,
        mode: BenchMode,
        size: u64,
        large: bool,
        op: Op,
        body: Body,
        variant: &'static str,
        direct: Work,
        proxy: Work,
        stop: Stop,
    ) -> Case {
        let label = format!("{} {}", mode.as_str(), case_title(size, op, body, variant));
        let mut d = Series::new(self.paths[0]);
        let mut x = Series::new(self.paths[1]);
        let mut direct_refused: Option<String> = None;
        for round in 0..self.args.rounds.max(1) {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                if which == 0 && direct_refused.is_some() {
                    continue;
                }
                let (w, series) = if which == 0 {
                    (&direct, &mut d)
                } else {
                    (&proxy, &mut x)
                };
                warm_up(w, large).await;
                let watch = CpuWatch::start(&self.watched);
                let mut run = w.run(stop).await;
                run.cpu = watch.stop();
                eprintln!(
                    "bench-proxy: {label} {} round {}: {} ok, {} errors, {:.1} s{}",
                    series.path,
                    round + 1,
                    run.ok(),
                    run.errors,
                    run.wall.as_secs_f64(),
                    run.first_error
                        .as_deref()
                        .map(|e| format!(" (first error: {e})"))
                        .unwrap_or_default()
                );
                // The store may not take the SDK's default body directly:
                // then the proxy row stands alone.
                if which == 0 && body == Body::Chunked && run.ok() == 0 && run.errors > 0 {
                    direct_refused = run.first_error.clone();
                    continue;
                }
                series.runs.push(run);
            }
        }
        Case {
            size,
            large,
            op,
            body,
            variant,
            note: direct_refused
                .as_ref()
                .map(|e| format!("the store refused the direct variant: {e}")),
            direct: direct_refused.is_none().then_some(d),
            proxy: x,
        }
    }
}

/// Opens the client's connections before a timed run: a few requests of
/// the same kind (small runs), or a couple of small GETs (large runs).
async fn warm_up(w: &Work, large: bool) {
    let mut warm = w.clone();
    if large {
        warm.op = Op::Get;
        warm.concurrency = 1;
        if warm.keys.iter().any(|k| k.starts_with("large/")) {
            // Large GET keys: warm on a seeded small key instead.
            warm.keys = Arc::new(vec!["seed/00000".to_owned()]);
        }
    }
    // Only PUTs write under the prefix; a listing reads it.
    if warm.op == Op::Put {
        warm.prefix = format!("warm/{}", w.prefix);
    }
    let _ = warm
        .run(Stop {
            secs: None,
            count: Some(2 * warm.concurrency.max(1)),
        })
        .await;
}

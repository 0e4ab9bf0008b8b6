//! The cases of one mode, each path run in alternating rounds.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use ferry_harness::Store;

use crate::args::{Args, BenchMode};
use crate::case::{Case, MANY, ModeResult, ModeStart, RELAY, body_tag, case_title, is_baseline};
use crate::clients::{self, Body, Http};
use crate::cpu::{CpuWatch, Watched};
use crate::env::{ClientUser, Proxy};
use crate::floor::Floor;
use crate::mem::{self, MemSeen, Sampler};
use crate::relay::Relay;
use crate::stats::Series;
use crate::workload::{Op, Stop, Work, random_bytes};

pub struct Bench<'a> {
    pub args: &'a Args,
    pub target: &'a Store,
    pub source: &'a Store,
    pub proxy_http: &'a str,
    /// The proxy whose upstream connections the proxy rows count (none in
    /// the fleet runs).
    pub proxy: Option<&'a Proxy>,
    pub user: &'a ClientUser,
    pub watched: Watched,
    /// pingora-floor, plain and `--sigv4`, in front of the target for the
    /// ready and cost mode floor rows and of the source for forward mode's
    /// (none with `--no-relay` or in the fleet runs).
    pub floors: &'a [Floor],
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
    pub(crate) fn http(&self) -> Http {
        Http::from_flag(self.args.quick_ack_client)
    }

    fn pair(&self, store: &Store, body: Body) -> Pair {
        Pair {
            direct: clients::direct(store, body, self.http()),
            proxy: clients::proxy(self.target, self.proxy_http, self.user, body, self.http()),
        }
    }

    /// Ready and forward mode: `bucket`, read and written directly on the
    /// mode's store and through the proxy.
    pub async fn run_one_store(&self, mode: BenchMode, bucket: &str) -> anyhow::Result<ModeResult> {
        let store = self.store_of(mode);
        let start = ModeStart::now();
        let a = self.args;
        let plain = self.pair(store, Body::Plain);
        let chunked = self.pair(store, Body::Chunked);
        let (small, keys) = self.seed_small(&plain.direct, bucket).await?;
        let work = |client: &aws_sdk_s3::Client, op: Op, data: &Bytes, prefix: &str, conc| Work {
            client: client.clone(),
            bucket: bucket.to_owned(),
            op,
            keys: keys.clone(),
            data: data.clone(),
            prefix: prefix.to_owned(),
            concurrency: conc,
            own_clients: Arc::default(),
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
        // The floor of any proxy: the same requests through a plain TCP
        // relay, in ready mode (the relay goes to the target).
        let relay = if mode == BenchMode::Ready && !a.no_relay {
            let r = Relay::start(store.endpoint.trim_start_matches("http://")).await?;
            let via = clients::direct_via(store, &format!("http://{}", r.addr), self.http());
            Some((r, via))
        } else {
            None
        };
        let floors: Vec<_> = self
            .floors_of(store)
            .filter(|_| !a.no_relay)
            .map(|f| (f, clients::direct_via(store, &f.http, self.http())))
            .collect();
        for &(op, body, p) in &variants {
            let tag = body_tag(body);
            let d = work(&p.direct, op, &small, &format!("small/direct{tag}/"), c);
            let x = work(&p.proxy, op, &small, &format!("small/proxy{tag}/"), c);
            let mut others = vec![self.proxied("", x)];
            // The baselines run in the proxy's rounds, so that each round
            // of theirs can be set against the proxy's.
            if body == Body::Plain {
                if let Some((_, via)) = &relay {
                    others.push(Other {
                        variant: RELAY,
                        path: "relay",
                        work: work(via, op, &small, &format!("small/relay{tag}/"), c),
                    });
                }
                for (i, (floor, via)) in floors.iter().enumerate() {
                    others.push(Other {
                        variant: floor.variant,
                        path: floor.name,
                        work: work(via, op, &small, &format!("small/floor{i}{tag}/"), c),
                    });
                }
            }
            let shape = Shape {
                mode,
                size: a.small_kib * 1024,
                large: false,
                op,
                body,
                stop: small_stop,
            };
            cases.extend(self.cases(shape, d, others, None).await);
        }

        if mode == BenchMode::Ready && a.many_clients > 0 {
            cases.push(self.many_clients(store, bucket, &keys, &small).await?);
        }

        if a.large > 0 {
            let lc = a.large_concurrency;
            let large_stop = Stop {
                secs: None,
                count: Some(a.large),
            };
            let data = &self.large_data;
            let size = data.len() as u64;
            let case = |op, body, variant, d, x| {
                let shape = Shape {
                    mode,
                    size,
                    large: true,
                    op,
                    body,
                    stop: large_stop,
                };
                self.case(shape, variant, d, x, None)
            };
            // PUTs first: the GETs read what the direct plain PUTs wrote.
            let mut variants = vec![(Op::Put, Body::Plain, &plain)];
            if !a.no_chunked {
                variants.push((Op::Put, Body::Chunked, &chunked));
            }
            for &(op, body, p) in &variants {
                let tag = body_tag(body);
                let d = work(&p.direct, op, data, &format!("large/direct{tag}/"), lc);
                let x = work(&p.proxy, op, data, &format!("large/proxy{tag}/"), lc);
                cases.push(case(op, body, "", d, x).await);
            }
            let large_keys: Arc<Vec<String>> =
                Arc::new((0..a.large).map(|i| format!("large/direct/{i}")).collect());
            let get = |client: &aws_sdk_s3::Client| Work {
                keys: large_keys.clone(),
                ..work(client, Op::Get, data, "", lc)
            };
            let mut others = vec![self.proxied("", get(&plain.proxy))];
            if let Some((_, via)) = &relay {
                others.push(Other {
                    variant: RELAY,
                    path: "relay",
                    work: get(via),
                });
            }
            let shape = Shape {
                mode,
                size,
                large: true,
                op: Op::Get,
                body: Body::Plain,
                stop: large_stop,
            };
            cases.extend(self.cases(shape, get(&plain.direct), others, None).await);
        }
        Ok(start.finish(mode, cases))
    }

    /// `--small-keys` objects of `--small-kib` put on `bucket` with
    /// `client`, for the GET and HEAD runs to read: their data and keys.
    pub(crate) async fn seed_small(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
    ) -> anyhow::Result<(Bytes, Arc<Vec<String>>)> {
        let a = self.args;
        let small = random_bytes((a.small_kib * 1024) as usize, 1);
        let keys: Vec<String> = (0..a.small_keys.max(1))
            .map(|i| format!("seed/{i:05}"))
            .collect();
        ferry_harness::put_objects(
            client,
            bucket,
            keys.iter().map(|k| (k.clone(), small.clone())),
            16,
        )
        .await
        .with_context(|| format!("seed {} small objects", keys.len()))?;
        Ok((small, Arc::new(keys)))
    }

    /// Runs both paths `rounds` times, alternating which goes first; see
    /// [`Bench::cases`].
    pub(crate) async fn case(
        &self,
        shape: Shape,
        variant: &'static str,
        direct: Work,
        proxy: Work,
        ports: Option<[u16; 2]>,
    ) -> Case {
        let mut cases = self
            .cases(shape, direct, vec![self.proxied(variant, proxy)], ports)
            .await;
        cases.remove(0)
    }

    /// The case's second path, named as `paths` says.
    fn proxied(&self, variant: &'static str, work: Work) -> Other {
        Other {
            variant,
            path: self.paths[1],
            work,
        }
    }

    /// Runs the direct path and each of `others` `rounds` times. A round
    /// runs them all back to back, each after a warm-up on its own client,
    /// and every other round in the reverse order (direct, proxy, floor,
    /// floor, proxy, direct, …), so that round *i* of any two paths saw
    /// the same machine. Returns a case per other path; the second and
    /// later share the first's direct series. With `ports` (the direct
    /// path's, then each other's), also records during each timed run the
    /// proxy's peak RSS (VmHWM reset at the start, VmRSS sampled) and the
    /// most connections this process had open to the path's port.
    pub(crate) async fn cases(
        &self,
        shape: Shape,
        direct: Work,
        others: Vec<Other>,
        ports: Option<[u16; 2]>,
    ) -> Vec<Case> {
        let Shape {
            mode,
            size,
            large,
            op,
            body,
            stop,
        } = shape;
        let mut series: Vec<Series> = std::iter::once(self.paths[0])
            .chain(others.iter().map(|o| o.path))
            .map(Series::new)
            .collect();
        let paths: Vec<(&'static str, &Work)> = std::iter::once(("", &direct))
            .chain(others.iter().map(|o| (o.variant, &o.work)))
            .collect();
        let mut direct_refused: Option<String> = None;
        // Connections already open to each port (other clients' idle
        // pooled ones), before this case's warm-ups open its own.
        let conns_before = ports.map(|p| p.map(mem::own_established_to));
        for round in 0..self.args.rounds.max(1) {
            let mut order: Vec<usize> = (0..paths.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for which in order {
                if which == 0 && direct_refused.is_some() {
                    continue;
                }
                let (variant, w) = paths[which];
                let series = &mut series[which];
                warm_up(w, large).await;
                // The proxy's upstream connections, counted around the
                // proxy path's runs only (a baseline row is no proxy's).
                let proxy = self.proxy.filter(|_| which > 0 && !is_baseline(variant));
                let before = proxy.map(Proxy::upstream_connections);
                let port = ports.and_then(|p| p.get(which).copied());
                let sampler = port
                    .zip(self.proxy)
                    .map(|(port, p)| Sampler::start(p.pid(), Some(port)));
                let watch = CpuWatch::start(&self.watched_for(mode, variant));
                let mut run = w.run(stop).await;
                run.cpu = watch.stop();
                if let Some(mut seen) = sampler.map(Sampler::stop) {
                    seen.conns_before = conns_before.map_or(0, |c| c[which]);
                    series.mem.get_or_insert_with(MemSeen::default).merge(&seen);
                }
                if let (Some(p), Some(b)) = (proxy, before) {
                    let after = p.upstream_connections();
                    let (r, o) = series.upstream.unwrap_or((0, 0));
                    series.upstream = Some((r + after.0 - b.0, o + after.1 - b.1));
                }
                eprintln!(
                    "bench-proxy: {} {} {} round {}: {} ok, {} errors, {:.1} s{}",
                    mode.as_str(),
                    case_title(size, op, body, variant),
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
        let direct = series.remove(0);
        others
            .iter()
            .zip(series)
            .enumerate()
            .map(|(i, (o, s))| Case {
                size,
                large,
                op,
                body,
                variant: o.variant,
                note: direct_refused
                    .as_ref()
                    .map(|e| format!("the store refused the direct variant: {e}")),
                direct: direct_refused.is_none().then(|| direct.clone()),
                direct_shared: i > 0,
                proxy: s,
            })
            .collect()
    }
}

/// What the paths of a case do, and for how long.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub mode: BenchMode,
    pub size: u64,
    pub large: bool,
    pub op: Op,
    pub body: Body,
    pub stop: Stop,
}

/// A path measured against direct: ferry-proxy (variant "" or one of
/// migrate mode's) or a baseline (the relay, a floor).
pub(crate) struct Other {
    pub variant: &'static str,
    /// Its name in the report.
    pub path: &'static str,
    pub work: Work,
}

impl Bench<'_> {
    /// The store a mode's direct requests go to: the source in forward
    /// mode, else the target (migrate mode's cases name their own).
    pub(crate) fn store_of(&self, mode: BenchMode) -> &Store {
        if mode == BenchMode::Forward {
            self.source
        } else {
            self.target
        }
    }

    /// The floors in front of `store`.
    pub(crate) fn floors_of<'s>(&'s self, store: &'s Store) -> impl Iterator<Item = &'s Floor> {
        self.floors.iter().filter(|f| f.upstream == store.endpoint)
    }

    /// The processes whose CPU a case's runs count: a floor's rows count
    /// that pingora-floor's (the one in front of the mode's store) as the
    /// proxy's.
    fn watched_for(&self, mode: BenchMode, variant: &str) -> Watched {
        match self
            .floors_of(self.store_of(mode))
            .find(|f| f.variant == variant)
        {
            Some(f) => Watched {
                proxies: vec![f.pid()],
                stores: self.watched.stores.clone(),
            },
            None => self.watched.clone(),
        }
    }
}

impl Bench<'_> {
    /// `--many-clients`: that many clients at once, each an S3 client of
    /// its own (the SDK's default HTTP client or s3migrate's, a pool per
    /// client), each doing small GETs one after another, so each keeps one
    /// keep-alive connection: directly to `store` and through the proxy.
    async fn many_clients(
        &self,
        store: &Store,
        bucket: &str,
        keys: &Arc<Vec<String>>,
        small: &Bytes,
    ) -> anyhow::Result<Case> {
        let a = self.args;
        let n = a.many_clients;
        if let Some(p) = self.proxy {
            let limit = mem::open_files_limit(p.pid());
            eprintln!(
                "bench-proxy: {n} clients; the proxy's open-files limit is {}",
                limit.map_or("unknown".to_owned(), |l| l.to_string())
            );
            // Its clients' sockets and as many upstream, and some spare.
            if let Some(l) = limit.filter(|&l| l < 2 * n as u64 + 100) {
                anyhow::bail!(
                    "--many-clients {n}: the proxy may open only {l} files; raise `ulimit -n` \
                     (benches/run-proxy raises the soft limit to the hard one)"
                );
            }
        }
        let port = |url: &str| -> anyhow::Result<u16> {
            url.rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
                .with_context(|| format!("no port in {url}"))
        };
        let ports = [port(&store.endpoint)?, port(self.proxy_http)?];
        let http = self.http();
        let direct: Vec<_> = (0..n)
            .map(|_| clients::direct(store, Body::Plain, http))
            .collect();
        let proxied: Vec<_> = (0..n)
            .map(|_| clients::proxy(self.target, self.proxy_http, self.user, Body::Plain, http))
            .collect();
        let work = |clients: Vec<aws_sdk_s3::Client>| Work {
            client: clients[0].clone(),
            bucket: bucket.to_owned(),
            op: Op::Get,
            keys: keys.clone(),
            data: small.clone(),
            prefix: String::new(),
            concurrency: n,
            own_clients: Arc::new(clients),
        };
        let stop = Stop {
            secs: Some(a.small_secs),
            count: None,
        };
        let shape = Shape {
            mode: BenchMode::Ready,
            size: a.small_kib * 1024,
            large: false,
            op: Op::Get,
            body: Body::Plain,
            stop,
        };
        Ok(self
            .case(shape, MANY, work(direct), work(proxied), Some(ports))
            .await)
    }
}

/// Opens the client's connections before a timed run: a few requests of
/// the same kind (small runs), or a couple of small GETs (large runs).
pub(crate) async fn warm_up(w: &Work, large: bool) {
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

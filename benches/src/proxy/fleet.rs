//! `--fleet`: ferry-proxy as a fleet on a real 3-member etcd. Two parts:
//! the pause clients see while `ferryctl --etcd` switches a bucket's mode
//! (each switch fenced across the fleet), and the steady-state cost of the
//! etcd store on the request path, against a proxy with a state file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use ferry_benches::procstat::{TICKS_PER_SEC, process_ticks};
use ferry_harness::Store;
use ferry_harness::etcd::EtcdCluster;

use crate::args::{Args, BenchMode};
use crate::bench::{Bench, Shape};
use crate::case::{ModeResult, ModeStart};
use crate::clients::{self, Body, Http};
use crate::cpu::Watched;
use crate::env::{FLEET_BUCKET, Ferryctl, JOURNAL_BUCKET, Proxy};
use crate::workload::{Op, Stop, Work, random_bytes, short};

/// Proxies in the fleet.
pub const MEMBERS: usize = 3;
/// etcd members.
pub const ETCD_MEMBERS: usize = 3;
/// Each proxy's lease (the default).
pub const LEASE_TTL_SECS: u64 = 10;
/// How long a writer sleeps before it sends a PUT again after a 503.
pub const RETRY_AFTER: Duration = Duration::from_millis(10);
/// A writer gives up on a PUT refused for this long (no fence lasts so
/// long: ferryctl rolls one back after 30 s).
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// One PUT of the writers, from its first attempt to its success.
pub struct Put {
    pub first_sent: Instant,
    pub stall_us: u64,
    /// 503 SlowDown answers before it succeeded.
    pub slowdowns: u32,
}

/// One `ferryctl --etcd … update`, timed from outside.
pub struct Transition {
    pub to: &'static str,
    pub started: Instant,
    pub ended: Instant,
    /// From ferryctl's start to its answer's `fenced_at` (every proxy had
    /// acknowledged the fence), ms; `None` if it had none.
    pub fenced_after_ms: Option<f64>,
}

impl Transition {
    pub fn secs(&self) -> f64 {
        (self.ended - self.started).as_secs_f64()
    }

    /// Whether a PUT first sent at `t` was sent during this update's run.
    pub fn covers(&self, t: Instant) -> bool {
        self.started <= t && t <= self.ended
    }
}

/// Part 1: the writers' PUTs and the switches made while they wrote.
pub struct Transitions {
    pub puts: Vec<Put>,
    pub transitions: Vec<Transition>,
    /// Failed PUTs (not counting 503 SlowDown, which is retried) and 503s
    /// with another code.
    pub errors: u64,
    pub first_error: Option<String>,
    pub wall: Duration,
    pub load_before: Option<(f64, f64, f64)>,
    pub load_after: Option<(f64, f64, f64)>,
}

/// What `--fleet` measured.
pub struct FleetResult {
    pub transitions: Transitions,
    /// Part 2: the small cases, "file" (a proxy with a state file) against
    /// "fleet" (a member of the fleet).
    pub steady: ModeResult,
    /// CPU seconds of the etcd members during part 2.
    pub etcd_cpu_secs: f64,
    /// Lines the proxies logged (at warn or above), and how many of them
    /// are the access log's 503 answers (the fences' SlowDowns).
    pub proxy_log_lines: usize,
    pub proxy_log_503_lines: usize,
}

/// The `[state]` section of fleet member `id` reaching `endpoints`.
fn state_section(endpoints: &[String], id: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "etcd_endpoints = [{}]\nmember_id = \"{id}\"\nlease_ttl_secs = {LEASE_TTL_SECS}\n",
        list.join(", ")
    )
}

fn update_args(mode: &str) -> [&str; 9] {
    [
        "s3",
        "bucket",
        "migrate",
        "update",
        "--bucket",
        FLEET_BUCKET,
        "--mode",
        mode,
        "--json",
    ]
}

/// Waits until the fleet's `show` lists `n` members, each applying the
/// bucket's epoch in force.
fn wait_members_applied(ctl: &Ferryctl, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let show = ctl.run(&["s3", "bucket", "migrate", "show", FLEET_BUCKET, "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&show).context("ferryctl show --json")?;
        let epoch = v["epoch"].as_u64();
        let members = v["members"].as_array().cloned().unwrap_or_default();
        let applied = members
            .iter()
            .filter(|m| m["epoch"].as_u64() == epoch && m["phase"] == "active")
            .count();
        if v["phase"] == "active" && members.len() == n && applied == n {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the fleet's {n} proxies never all applied the bucket's epoch: {show}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The etcd cluster, or an error (the harness panics when etcd is missing
/// or does not come up; its message is on stderr).
fn start_etcd() -> anyhow::Result<EtcdCluster> {
    std::panic::catch_unwind(|| EtcdCluster::start(ETCD_MEMBERS)).map_err(|_| {
        anyhow::anyhow!(
            "could not start a {ETCD_MEMBERS}-member etcd (see above; scripts/setup installs \
             etcd-server, or set ETCD_BIN)"
        )
    })
}

pub fn run(
    args: &Args,
    proxy_bin: &Path,
    ferryctl: &Path,
    target: &Store,
    source: &Store,
) -> anyhow::Result<FleetResult> {
    ensure!(args.transitions > 0, "--transitions must be at least 1");
    ensure!(
        args.transition_gap_secs >= 0.0,
        "--transition-gap-secs must not be negative"
    );
    target.create_bucket(FLEET_BUCKET)?;
    source.create_bucket(FLEET_BUCKET)?;
    target.create_bucket(JOURNAL_BUCKET)?;
    eprintln!("bench-proxy: starting a {ETCD_MEMBERS}-member etcd");
    let etcd = start_etcd()?;
    let endpoints = etcd.endpoints();
    let mut members = (0..MEMBERS)
        .map(|i| {
            Proxy::start_with(
                proxy_bin,
                ferryctl,
                target,
                &[FLEET_BUCKET],
                Some(&state_section(&endpoints, &format!("p{i}"))),
                None,
            )
        })
        .collect::<anyhow::Result<Vec<Proxy>>>()?;
    let ctl = Ferryctl::etcd(ferryctl, &endpoints);
    ctl.attach(members[0].dir.path(), FLEET_BUCKET, source, &["forward"])?;
    wait_members_applied(&ctl, MEMBERS)?;
    let mut file = Proxy::start_with(proxy_bin, ferryctl, target, &[FLEET_BUCKET], None, None)?;
    file.attach(FLEET_BUCKET, source, &["forward"])?;
    eprintln!(
        "bench-proxy: fleet {} on etcd {}; proxy with a state file at {}; {FLEET_BUCKET} forward",
        members
            .iter()
            .map(|p| p.http.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        endpoints.join(","),
        file.http
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let http = Http::from_flag(args.quick_ack_client);
    let fleet_clients: Vec<aws_sdk_s3::Client> = members
        .iter()
        .map(|p| clients::proxy(target, &p.http, &p.user, Body::Plain, http))
        .collect();
    let transitions = under_load(args, &rt, &ctl, fleet_clients.clone())?;
    if args.transitions % 2 == 1 {
        // Part 2 runs in forward mode.
        ctl.run(&update_args("forward"))?;
    }
    wait_members_applied(&ctl, MEMBERS)?;

    let etcd_pids: Vec<u32> = (0..ETCD_MEMBERS).filter_map(|i| etcd.pid(i)).collect();
    let etcd_ticks = || -> u64 { etcd_pids.iter().filter_map(|&p| process_ticks(p)).sum() };
    let etcd_before = etcd_ticks();
    let bench = Bench {
        args,
        target,
        source,
        proxy_http: &file.http,
        proxy: None,
        user: &file.user,
        watched: Watched::new(&[file.pid(), members[0].pid()], &[target, source]),
        floors: &[],
        large_data: Bytes::new(),
        paths: ["file", "fleet"],
    };
    let file_client = clients::proxy(target, &file.http, &file.user, Body::Plain, http);
    let steady = rt.block_on(steady_state(&bench, &file_client, &fleet_clients[0]))?;
    let etcd_cpu_secs = etcd_ticks().saturating_sub(etcd_before) as f64 / TICKS_PER_SEC;
    drop(bench);

    let (mut proxy_log_lines, mut proxy_log_503_lines) = (0, 0);
    for p in members.iter_mut().chain([&mut file]) {
        p.check_alive()?;
        for line in p.log().lines().filter(|l| !l.trim().is_empty()) {
            proxy_log_lines += 1;
            proxy_log_503_lines += usize::from(line.contains("request failed status=503"));
        }
    }
    if args.keep_work {
        for p in members.iter_mut().chain([&mut file]) {
            eprintln!("bench-proxy: proxy work dir kept at {}", p.keep().display());
        }
    }
    Ok(FleetResult {
        transitions,
        steady,
        etcd_cpu_secs,
        proxy_log_lines,
        proxy_log_503_lines,
    })
}

/// What one writer saw.
#[derive(Default)]
struct WriterLog {
    puts: Vec<Put>,
    errors: u64,
    first_error: Option<String>,
}

/// PUTs `data` under `fleet/{w}/` through `clients` in turn until `stop`,
/// each sent again after every 503 until it succeeds.
async fn writer(
    w: usize,
    clients: Arc<Vec<aws_sdk_s3::Client>>,
    data: Bytes,
    stop: Arc<AtomicBool>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let client = &clients[(w + n) % clients.len()];
        let key = format!("fleet/{w:02}/{n:07}");
        n += 1;
        let first_sent = Instant::now();
        let mut slowdowns = 0u32;
        loop {
            let r = client
                .put_object()
                .bucket(FLEET_BUCKET)
                .key(&key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await;
            let e = match r {
                Ok(_) => {
                    log.puts.push(Put {
                        first_sent,
                        stall_us: first_sent.elapsed().as_micros() as u64,
                        slowdowns,
                    });
                    break;
                }
                Err(e) => e,
            };
            let status = e.raw_response().map(|r| r.status().as_u16());
            let slow_down = status == Some(503) && e.code() == Some("SlowDown");
            if slow_down {
                slowdowns += 1;
            } else {
                log.errors += 1;
                log.first_error
                    .get_or_insert_with(|| short(format!("PUT {FLEET_BUCKET}/{key}"), e));
            }
            if status != Some(503) || first_sent.elapsed() > GIVE_UP_AFTER {
                break;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
    log
}

/// Part 1: `--concurrency` writers through the fleet, while the bucket is
/// switched `--transitions` times (forward -> ready -> forward …), each
/// switch a `ferryctl --etcd … update` run to its end.
fn under_load(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    ctl: &Ferryctl,
    clients: Vec<aws_sdk_s3::Client>,
) -> anyhow::Result<Transitions> {
    let load_before = ferry_benches::procstat::loadavg();
    let data = random_bytes((args.small_kib * 1024) as usize, 3);
    let clients = Arc::new(clients);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writers: Vec<_> = (0..args.concurrency)
        .map(|w| rt.spawn(writer(w, clients.clone(), data.clone(), stop.clone())))
        .collect();
    let gap = Duration::from_secs_f64(args.transition_gap_secs);
    let mut transitions = Vec::new();
    let switched = (|| -> anyhow::Result<()> {
        std::thread::sleep(gap);
        for i in 0..args.transitions {
            let to = if i % 2 == 0 { "ready" } else { "forward" };
            let wall = SystemTime::now();
            let t0 = Instant::now();
            let out = ctl.run(&update_args(to))?;
            let ended = Instant::now();
            let v: serde_json::Value =
                serde_json::from_str(&out).context("ferryctl update --json")?;
            let fenced_after_ms = v["fenced_at"].as_str().and_then(|at| {
                let at =
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .ok()?;
                let since = SystemTime::from(at).duration_since(wall).ok()?;
                Some(since.as_secs_f64() * 1000.0)
            });
            eprintln!(
                "bench-proxy: fleet -> {to}: ferryctl {:.0} ms, fenced after {}",
                (ended - t0).as_secs_f64() * 1000.0,
                fenced_after_ms.map_or_else(|| "?".to_owned(), |ms| format!("{ms:.0} ms"))
            );
            transitions.push(Transition {
                to,
                started: t0,
                ended,
                fenced_after_ms,
            });
            std::thread::sleep(gap);
        }
        Ok(())
    })();
    stop.store(true, Ordering::SeqCst);
    let mut result = Transitions {
        puts: Vec::new(),
        transitions,
        errors: 0,
        first_error: None,
        wall: Duration::ZERO,
        load_before,
        load_after: None,
    };
    for w in writers {
        match rt.block_on(w) {
            Ok(log) => {
                result.puts.extend(log.puts);
                result.errors += log.errors;
                if result.first_error.is_none() {
                    result.first_error = log.first_error;
                }
            }
            Err(e) => {
                result.errors += 1;
                result
                    .first_error
                    .get_or_insert(format!("writer failed: {e}"));
            }
        }
    }
    result.wall = started.elapsed();
    result.load_after = ferry_benches::procstat::loadavg();
    switched?;
    eprintln!(
        "bench-proxy: fleet under load: {} PUTs, {} SlowDowns, {} errors, {:.1} s",
        result.puts.len(),
        result
            .puts
            .iter()
            .map(|p| u64::from(p.slowdowns))
            .sum::<u64>(),
        result.errors,
        result.wall.as_secs_f64()
    );
    Ok(result)
}

/// Part 2: the small GET, HEAD and PUT runs through the proxy with a state
/// file ("file") and through a member of the fleet ("fleet"), both
/// forwarding the bucket to the source, in alternating rounds.
async fn steady_state(
    bench: &Bench<'_>,
    file: &aws_sdk_s3::Client,
    fleet: &aws_sdk_s3::Client,
) -> anyhow::Result<ModeResult> {
    let start = ModeStart::now();
    let a = bench.args;
    let small = random_bytes((a.small_kib * 1024) as usize, 1);
    let keys: Vec<String> = (0..a.small_keys.max(1))
        .map(|i| format!("seed/{i:05}"))
        .collect();
    let on_source = clients::direct(bench.source, Body::Plain, Http::Sdk);
    ferry_harness::put_objects(
        &on_source,
        FLEET_BUCKET,
        keys.iter().map(|k| (k.clone(), small.clone())),
        16,
    )
    .await
    .with_context(|| format!("seed {} small objects", keys.len()))?;
    let keys = Arc::new(keys);
    let work = |client: &aws_sdk_s3::Client, op: Op, prefix: &str| Work {
        client: client.clone(),
        bucket: FLEET_BUCKET.to_owned(),
        op,
        keys: keys.clone(),
        data: small.clone(),
        prefix: prefix.to_owned(),
        concurrency: a.concurrency,
        own_clients: Arc::default(),
    };
    let stop = Stop {
        secs: Some(a.small_secs),
        count: None,
    };
    let mut ops = vec![Op::Get];
    if !a.no_head {
        ops.push(Op::Head);
    }
    ops.push(Op::Put);
    let mut cases = Vec::new();
    for op in ops {
        let shape = Shape {
            mode: BenchMode::Forward,
            size: a.small_kib * 1024,
            large: false,
            op,
            body: Body::Plain,
            stop,
        };
        let (d, x) = (
            work(file, op, "small/file/"),
            work(fleet, op, "small/fleet/"),
        );
        cases.push(bench.case(shape, "", d, x, None).await);
    }
    Ok(start.finish(BenchMode::Forward, cases))
}

//! `bench-proxy`: the same S3 workload against Garage directly and through
//! `ferry-proxy`, side by side in one run on the same stores: ready mode
//! (the target), forward mode (the source) and migrate mode (both); or,
//! with `--fleet`, a fleet of proxies on etcd (`fleet.rs`). See
//! docs/benchmarks.md.

mod args;
mod bench;
mod callgrind;
mod case;
mod clients;
mod cost;
mod cost_report;
mod cpu;
mod env;
mod fleet;
mod fleet_report;
mod floor;
mod full_list;
mod mem;
mod migrate;
mod relay;
mod report;
mod stats;
mod workload;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use ferry_benches::host::etcd_version;
use ferry_benches::procstat::loadavg;
use ferry_harness::Store;

use crate::args::{Args, BenchMode};
use crate::bench::Bench;
use crate::callgrind::Callgrind;
use crate::case::ModeResult;
use crate::cpu::Watched;
use crate::env::{
    FORWARD_BUCKET, JOURNAL_BUCKET, MIGRATE_BUCKET, MODE_BUCKETS, Proxy, READY_BUCKET, UNION_BUCKET,
};
use crate::fleet_report::FleetReport;
use crate::floor::Floor;
use crate::report::{Machine, Report};

fn main() -> ExitCode {
    ferry_benches::cli::exit("bench-proxy", run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.small_secs > 0.0, "--small-secs must be positive");
    anyhow::ensure!(
        !args.callgrind || (!args.fleet && args.modes == [BenchMode::Cost]),
        "--callgrind goes with --modes cost alone: under valgrind the other runs' \
         latencies and CPU would be valgrind's"
    );
    let proxy_bin = ferry_harness::find_program(args.proxy_bin.as_deref(), "ferry-proxy")?;
    let ferryctl = ferry_harness::find_program(args.ferryctl_bin.as_deref(), "ferryctl")?;
    let load_start = loadavg();
    eprintln!(
        "bench-proxy: proxy {}, ferryctl {}; starting two Garage stores",
        proxy_bin.display(),
        ferryctl.display()
    );
    let target = Store::garage().context("start the target Garage")?;
    let source = Store::garage().context("start the source Garage")?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let text = if args.fleet {
        let result = fleet::run(&args, &proxy_bin, &ferryctl, &target, &source)?;
        FleetReport {
            machine: &Machine::describe(),
            etcd: etcd_version(),
            args: &args,
            command,
            result: &result,
            load_start,
            load_end: loadavg(),
            total_secs: started.elapsed().as_secs_f64(),
        }
        .render()
    } else {
        let floor = ferry_harness::find_program(args.floor_bin.as_deref(), "pingora-floor")?;
        let bins = Bins {
            proxy: &proxy_bin,
            ferryctl: &ferryctl,
            floor: &floor,
        };
        let (modes, proxy_log_lines) = run_modes(&args, &bins, &target, &source)?;
        Report {
            machine: &Machine::describe(),
            args: &args,
            command,
            modes: &modes,
            load_start,
            load_end: loadavg(),
            total_secs: started.elapsed().as_secs_f64(),
            proxy_log_lines,
        }
        .render()
    };
    ferry_benches::cli::publish("bench-proxy", &text, args.out.as_deref())
}

/// The programs the mode runs start.
struct Bins<'a> {
    proxy: &'a Path,
    ferryctl: &'a Path,
    floor: &'a Path,
}

/// The modes' runs, through one proxy with a state file; their results
/// and the lines the proxy logged.
fn run_modes(
    args: &Args,
    bins: &Bins,
    target: &Store,
    source: &Store,
) -> anyhow::Result<(Vec<ModeResult>, usize)> {
    for b in MODE_BUCKETS {
        // The forward bucket lives on the source; attach checks that the
        // source has the bucket, so all exist on both stores.
        target.create_bucket(b)?;
        source.create_bucket(b)?;
    }
    target.create_bucket(JOURNAL_BUCKET)?;
    target.create_bucket(UNION_BUCKET)?;
    let callgrind = args
        .callgrind
        .then(|| Callgrind::new(args.cache_sim))
        .transpose()?;
    let cg = callgrind.as_ref();
    let mut proxy = Proxy::start(bins.proxy, bins.ferryctl, target, cg)?;
    // Floors in front of each store a mode's floor rows need: the target
    // for ready and cost mode, the source for forward mode.
    let mut floors = Vec::new();
    for (store, needed) in [
        (
            target,
            args.modes.contains(&BenchMode::Cost)
                || (args.modes.contains(&BenchMode::Ready) && !args.no_relay),
        ),
        (
            source,
            args.modes.contains(&BenchMode::Forward) && !args.no_relay,
        ),
    ] {
        if needed {
            floors.push(Floor::start(bins.floor, store, false, cg)?);
            floors.push(Floor::start(bins.floor, store, true, cg)?);
        }
    }
    proxy.attach(READY_BUCKET, source, &["ready"])?;
    proxy.attach(FORWARD_BUCKET, source, &["forward"])?;
    proxy.attach(MIGRATE_BUCKET, source, &["forward", "migrate"])?;
    eprintln!(
        "bench-proxy: proxy at {}, {READY_BUCKET} ready, {FORWARD_BUCKET} forward, \
         {MIGRATE_BUCKET} migrate",
        proxy.http
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let bench = Bench {
        args,
        target,
        source,
        proxy_http: &proxy.http,
        proxy: Some(&proxy),
        user: &proxy.user,
        watched: Watched::new(&[proxy.pid()], &[target, source]),
        floors: &floors,
        large_data: workload::random_bytes((args.large_mib * 1024 * 1024) as usize, 2),
        paths: ["direct", "proxy"],
    };
    let mut modes = Vec::new();
    for &mode in &args.modes {
        modes.push(rt.block_on(run_mode(&bench, mode, cg))?);
    }
    drop(bench);
    proxy.check_alive()?;
    let proxy_log_lines = proxy.log().lines().filter(|l| !l.trim().is_empty()).count();
    if args.keep_work {
        eprintln!(
            "bench-proxy: proxy work dir kept at {}",
            proxy.keep().display()
        );
        if let Some(cg) = callgrind {
            eprintln!(
                "bench-proxy: callgrind dumps kept at {}",
                cg.keep().display()
            );
        }
    }
    Ok((modes, proxy_log_lines))
}

/// Ready mode runs against the target, forward mode against the source,
/// migrate mode against both (see `migrate.rs`), cost mode against the
/// target (see `cost.rs`).
async fn run_mode(
    bench: &Bench<'_>,
    mode: BenchMode,
    cg: Option<&Callgrind>,
) -> anyhow::Result<ModeResult> {
    match mode {
        BenchMode::Ready => bench.run_one_store(mode, READY_BUCKET).await,
        BenchMode::Forward => bench.run_one_store(mode, FORWARD_BUCKET).await,
        BenchMode::Migrate => bench.run_migrate().await,
        BenchMode::Cost => bench.run_cost(cg).await,
    }
}

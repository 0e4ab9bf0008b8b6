//! The command line of `bench-proxy`.

use std::path::PathBuf;

use clap::Parser;

/// Run the same S3 workload against Garage directly and through
/// `ferry-proxy`, side by side on the same stores, in ready mode (target),
/// forward mode (source) and migrate mode (target hits, fallbacks to the
/// source, merged listings), and print a markdown report. A benchmark: it
/// never fails on a slow figure, only when something could not be run.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench-proxy", max_term_width = 100)]
pub struct Args {
    /// Seconds of each timed small-object run (each path runs `--rounds`
    /// times).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub small_secs: f64,
    /// Size of each small object, KiB.
    #[arg(long, default_value_t = 4, value_name = "KIB")]
    pub small_kib: u64,
    /// Requests in flight at once in the small-object runs.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
    /// Objects read by the small GET runs (seeded once per store).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub small_keys: usize,
    /// Objects per large-object run (0 skips the large runs).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub large: usize,
    /// Size of each large object, MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub large_mib: u64,
    /// Large objects in flight at once.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub large_concurrency: usize,
    /// Runs of each path per case. A round runs every path of the case
    /// (direct, proxy, the relay and floors) back to back, every other
    /// round in reverse order, so that drift of the machine hits all alike
    /// and round i of any two paths can be compared.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub rounds: usize,
    /// Modes to run, in order. `cost`: the proxy's own CPU per small
    /// request (HEAD, GET, PUT on the target's bucket in ready mode)
    /// against pingora-floor and pingora-floor --sigv4, the three run back
    /// to back (or at once, `--cost-together`) in each of `--cost-rounds`
    /// rounds (see `cost.rs`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ready,forward,migrate",
        value_name = "MODE,.."
    )]
    pub modes: Vec<BenchMode>,
    /// Rounds of `--modes cost`: in each, every request kind runs through
    /// the three paths for `--small-secs` each, one after the other in an
    /// order that rotates, or at once with `--cost-together`.
    #[arg(long, default_value_t = 9, value_name = "K")]
    pub cost_rounds: usize,
    /// With `--modes cost`: in each round, the three paths take their
    /// requests at the same time (each `--concurrency` in flight) instead
    /// of one after the other, so that what else the machine runs in
    /// those seconds weighs on the three alike.
    #[arg(long)]
    pub cost_together: bool,
    /// With `--modes cost` only: run ferry-proxy and the floors under
    /// valgrind's callgrind and count the instructions each executes per
    /// request (the CPU times are then valgrind's and not reported).
    #[arg(long)]
    pub callgrind: bool,
    /// With `--callgrind`: valgrind's cache simulation too. Each path's
    /// instruction lines, and data lines read, that missed the first-level
    /// caches per request, and the functions whose own missed instruction
    /// lines differ most between ferry-proxy and the sigv4 floor. Valgrind
    /// runs about twice as slowly again.
    #[arg(long, requires = "callgrind")]
    pub cache_sim: bool,
    /// Keys of the migrate-mode listing, both sides together: every fifth
    /// key is on both sides, the others are split between the source and
    /// the target, so each side holds 3/5 of them (the default: 1,500 each,
    /// 500 shared). At least 1,001, so that the timed first page is full.
    #[arg(long, default_value_t = 2500, value_name = "N")]
    pub list_keys: usize,
    /// Listing requests in flight at once in migrate mode. One by default:
    /// a 1,000-key page costs the stores milliseconds of CPU, so with more
    /// in flight on a small machine the run measures CPU, not the page's
    /// latency.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub list_concurrency: usize,
    /// Migrate mode, extra: for each size, a merged listing of that many
    /// keys per side (laid out as `--list-keys`'s, so the union holds 5/3
    /// of it) paged to the end through the proxy, against the same union
    /// paged from one store; the proxy's peak RSS while paging each size.
    /// Seeding is most of the time: 100,000 keys per side is about
    /// 370,000 PUTs (10 min at Garage's ~600 PUTs/s here).
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    pub full_list_keys: Vec<usize>,
    /// PUTs in flight while seeding the `--full-list-keys` listings (each
    /// of the three buckets gets a third).
    #[arg(long, default_value_t = 96, value_name = "N")]
    pub seed_concurrency: usize,
    /// Ready mode, extra: N clients at once, each with its own S3 client
    /// and HTTP pool (so its own keep-alive connection, checked by counting
    /// the ESTABLISHED sockets), doing small GETs for `--small-secs`
    /// directly and through the proxy; the proxy's peak RSS, p99 and
    /// errors. 0: not run.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub many_clients: usize,
    /// Skip the small HEAD rows (an extra: Garage answers HEAD without the
    /// ~40 ms Nagle/delayed-ACK stall its small GETs show on loopback, so
    /// they show the proxy's own per-request cost).
    #[arg(long)]
    pub no_head: bool,
    /// Skip the extra PUT rows with the SDK's default request checksums
    /// (aws-chunked bodies with a CRC32 trailer).
    #[arg(long)]
    pub no_chunked: bool,
    /// Skip the baseline rows: in ready mode through a plain TCP relay
    /// (the small GET, HEAD and PUT, and the large GET), what a second
    /// loopback hop costs any proxy here; in ready and forward mode through
    /// pingora-floor (the small ones), what Pingora itself costs with none
    /// of Ferry's work.
    #[arg(long)]
    pub no_relay: bool,
    /// Give the benchmark's own S3 clients s3migrate's HTTP client, which
    /// acknowledges at once (TCP_QUICKACK). Without it, every direct small
    /// GET from Garage waits 40 ms for a delayed ACK (docs/stores.md), as
    /// awscli's or rclone's would, and the GET rows hide the proxy's own cost.
    #[arg(long)]
    pub quick_ack_client: bool,
    /// The ferry-proxy binary (default: next to this binary, else
    /// $CARGO_TARGET_DIR/release/ferry-proxy).
    #[arg(long, env = "FERRY_PROXY_BIN", value_name = "PATH")]
    pub proxy_bin: Option<PathBuf>,
    /// The ferryctl binary (default: next to this binary, else
    /// $CARGO_TARGET_DIR/release/ferryctl).
    #[arg(long, env = "FERRYCTL_BIN", value_name = "PATH")]
    pub ferryctl_bin: Option<PathBuf>,
    /// The pingora-floor binary (default: next to this binary, else
    /// $CARGO_TARGET_DIR/release/pingora-floor).
    #[arg(long, env = "PINGORA_FLOOR_BIN", value_name = "PATH")]
    pub floor_bin: Option<PathBuf>,
    /// Instead of the modes: a fleet of 3 proxies on a 3-member etcd. Writers
    /// (`--concurrency`, `--small-kib` PUTs through the 3 proxies in turn)
    /// while `ferryctl --etcd` switches the bucket between forward and
    /// ready `--transitions` times, each fenced; then the small GET, HEAD
    /// and PUT runs through a proxy with a state file against one of the
    /// fleet, both in forward mode.
    #[arg(long)]
    pub fleet: bool,
    /// Fenced mode changes under load in `--fleet` (forward -> ready ->
    /// forward …).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub transitions: usize,
    /// Seconds of writes before the first change, between two and after
    /// the last, in `--fleet`.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub transition_gap_secs: f64,
    /// Keep the proxies' work dirs (config, state, log) and, with
    /// `--callgrind`, the profile of each timed run, instead of deleting
    /// them.
    #[arg(long)]
    pub keep_work: bool,
    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    Ready,
    Forward,
    Migrate,
    Cost,
}

impl BenchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BenchMode::Ready => "ready",
            BenchMode::Forward => "forward",
            BenchMode::Migrate => "migrate",
            BenchMode::Cost => "cost",
        }
    }
}

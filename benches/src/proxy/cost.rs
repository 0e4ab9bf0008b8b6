//! `--modes cost`: the proxy's own cost per small request against its two
//! floors, measured so that a difference of a few µs can show.
//!
//! Ready mode runs each path's rounds minutes apart from the other paths',
//! and the CPU a request costs here drifts by 20-30 µs over minutes with
//! what else the shared cores run: two floors that differ by about 8 µs in
//! code came out 2 to 69 µs apart. Here each round runs the same requests
//! through pingora-floor, pingora-floor --sigv4 and ferry-proxy back to
//! back, seconds apart, in an order that rotates from round to round, and
//! the report takes the median of the per-round differences. With
//! `--cost-together` the three take their requests at the same time, so
//! that the machine's load in those seconds moves the three alike (each
//! then also runs beside the other two). With `--callgrind` each run also
//! counts the instructions the process executed, which the machine's load
//! does not move; with `--cache-sim` also the lines it missed in the
//! first-level caches, and by function where ferry-proxy's extra lines are.

use std::sync::Arc;

use anyhow::Context;
use ferry_benches::procstat::{TICKS_PER_SEC, process_times, runtime_between, thread_runtimes};

use crate::args::BenchMode;
use crate::bench::{Bench, warm_up};
use crate::callgrind::{Callgrind, Counts, function_event};
use crate::case::{ModeResult, ModeStart};
use crate::clients::{self, Body};
use crate::env::READY_BUCKET;
use crate::floor::SIGV4_FLOOR_NAME;
use crate::workload::{Op, Stop, Work};

/// The requests measured, in order.
pub const OPS: [Op; 3] = [Op::Head, Op::Get, Op::Put];
/// The proxy's path's name; the floors' are theirs ([`crate::floor::Floor::name`]).
pub const PROXY: &str = "ferry-proxy";

/// One timed run of one path.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub requests: u64,
    pub errors: u64,
    /// CPU of the path's process during the run, s: the scheduler's run
    /// time of its threads, split between user and system as the clock
    /// ticks of `/proc/PID/stat` split it (see `cpu_between`).
    pub user_secs: f64,
    pub system_secs: f64,
    /// The CPU is the threads' run time; `false`: the ticks alone.
    pub exact_cpu: bool,
    /// What the process executed during the run (`--callgrind`).
    pub counts: Option<Counts>,
}

impl Sample {
    fn per_request(&self, v: f64) -> Option<f64> {
        (self.requests > 0).then(|| v / self.requests as f64)
    }

    /// CPU per request, µs.
    pub fn cpu_us(&self) -> Option<f64> {
        self.per_request((self.user_secs + self.system_secs) * 1e6)
    }

    pub fn user_us(&self) -> Option<f64> {
        self.per_request(self.user_secs * 1e6)
    }

    pub fn system_us(&self) -> Option<f64> {
        self.per_request(self.system_secs * 1e6)
    }

    pub fn instructions(&self) -> Option<f64> {
        self.per_request(self.counts?.instructions as f64)
    }

    /// Instruction lines missed in the first-level cache per request.
    pub fn i1_misses(&self) -> Option<f64> {
        self.per_request(self.counts?.i1_misses? as f64)
    }

    /// Data lines read that missed the first-level cache per request.
    pub fn d1_read_misses(&self) -> Option<f64> {
        self.per_request(self.counts?.d1_read_misses? as f64)
    }
}

/// Whether callgrind simulated the caches in these runs: `--cache-sim`,
/// or valgrind options of one's own (`VALGRIND_OPTS`). Read from what the
/// dumps counted, so that the tables and the functions' event agree.
pub fn cache_sim<'a>(paths: impl IntoIterator<Item = &'a PathCost>) -> bool {
    paths
        .into_iter()
        .flat_map(|p| &p.samples)
        .any(|s| s.counts.is_some_and(|c| c.i1_misses.is_some()))
}

/// One function's own cost per request (`callgrind::function_event`), in
/// ferry-proxy and in the sigv4 floor, over all rounds.
pub struct FunctionCost {
    pub name: String,
    pub proxy: f64,
    pub floor: f64,
}

impl FunctionCost {
    pub fn difference(&self) -> f64 {
        self.proxy - self.floor
    }
}

/// One path's runs of one request kind, a sample per round.
pub struct PathCost {
    pub name: &'static str,
    pub samples: Vec<Sample>,
}

/// One request kind through the three paths: the floors first, the
/// proxy last.
pub struct CostRow {
    pub op: Op,
    pub paths: Vec<PathCost>,
    /// Under callgrind: every function's own cost in ferry-proxy and the
    /// sigv4 floor, the largest difference first.
    pub functions: Vec<FunctionCost>,
}

impl CostRow {
    pub fn path(&self, name: &str) -> Option<&PathCost> {
        self.paths.iter().find(|p| p.name == name)
    }
}

/// A path the cost rounds send requests through.
struct CostPath {
    name: &'static str,
    pid: u32,
    client: aws_sdk_s3::Client,
}

impl Bench<'_> {
    /// The cost rounds, on the ready bucket of the target.
    pub async fn run_cost(&self, cg: Option<&Callgrind>) -> anyhow::Result<ModeResult> {
        let start = ModeStart::now();
        let a = self.args;
        let proxy = self.proxy.context("--modes cost needs the proxy")?;
        let store = self.target;
        anyhow::ensure!(
            self.floors_of(store).next().is_some(),
            "--modes cost needs the floors"
        );
        let http = self.http();
        let (small, keys) = self
            .seed_small(&clients::direct(store, Body::Plain, http), READY_BUCKET)
            .await?;
        let mut paths: Vec<CostPath> = self
            .floors_of(store)
            .map(|f| CostPath {
                name: f.name,
                pid: f.pid(),
                client: clients::direct_via(store, &f.http, http),
            })
            .collect();
        paths.push(CostPath {
            name: PROXY,
            pid: proxy.pid(),
            client: clients::proxy(store, self.proxy_http, self.user, Body::Plain, http),
        });
        let stop = Stop {
            secs: Some(a.small_secs),
            count: None,
        };
        let mut rows = Vec::new();
        for op in OPS {
            let mut samples: Vec<Vec<Sample>> = paths.iter().map(|_| Vec::new()).collect();
            for round in 0..a.cost_rounds.max(1) {
                for group in groups(paths.len(), round, a.cost_together) {
                    let runs: Vec<Timed> = group
                        .iter()
                        .map(|&i| Timed {
                            work: Work {
                                client: paths[i].client.clone(),
                                bucket: READY_BUCKET.to_owned(),
                                op,
                                keys: keys.clone(),
                                data: small.clone(),
                                prefix: format!("cost/{i}/"),
                                concurrency: a.concurrency,
                                own_clients: Arc::default(),
                            },
                            pid: paths[i].pid,
                            name: dump_name(op, round, paths[i].name),
                        })
                        .collect();
                    for (i, (s, first_error)) in
                        group.into_iter().zip(timed(&runs, stop, cg).await?)
                    {
                        eprintln!(
                            "bench-proxy: cost {} round {} {}: {} ok, {} errors, {} µs/req{}{}",
                            op.as_str(),
                            round + 1,
                            paths[i].name,
                            s.requests,
                            s.errors,
                            s.cpu_us().map_or("—".into(), |v| format!("{v:.0}")),
                            s.instructions()
                                .map(|v| format!(", {v:.0} instructions/req"))
                                .unwrap_or_default(),
                            first_error
                                .map(|e| format!(" (first error: {e})"))
                                .unwrap_or_default()
                        );
                        samples[i].push(s);
                    }
                }
            }
            let costs: Vec<PathCost> = paths
                .iter()
                .zip(samples)
                .map(|(p, samples)| PathCost {
                    name: p.name,
                    samples,
                })
                .collect();
            let functions = match cg {
                Some(cg) => functions(cg, op, &costs)?,
                None => Vec::new(),
            };
            rows.push(CostRow {
                op,
                paths: costs,
                functions,
            });
        }
        let mut result = start.finish(BenchMode::Cost, Vec::new());
        result.costs = rows;
        Ok(result)
    }
}

/// The name of a run's callgrind dump.
fn dump_name(op: Op, round: usize, path: &str) -> String {
    format!("{}-{}-{path}", op.as_str(), round + 1).replace(" --", "-")
}

/// Each function's own cost per request in ferry-proxy and in the sigv4
/// floor, summed over the rounds' dumps, the largest difference first.
fn functions(cg: &Callgrind, op: Op, paths: &[PathCost]) -> anyhow::Result<Vec<FunctionCost>> {
    let event = function_event(cache_sim(paths));
    let per_request = |name: &str| -> anyhow::Result<std::collections::HashMap<String, f64>> {
        let path = paths
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no {name} path"))?;
        let requests: u64 = path.samples.iter().map(|s| s.requests).sum();
        let mut sum = std::collections::HashMap::new();
        for round in 0..path.samples.len() {
            for (f, cost) in cg.functions(&dump_name(op, round, name), event)? {
                *sum.entry(f).or_insert(0.0) += cost as f64;
            }
        }
        sum.values_mut().for_each(|v| *v /= requests.max(1) as f64);
        Ok(sum)
    };
    let proxy = per_request(PROXY)?;
    let mut floor = per_request(SIGV4_FLOOR_NAME)?;
    let mut out: Vec<FunctionCost> = proxy
        .into_iter()
        .map(|(name, p)| FunctionCost {
            floor: floor.remove(&name).unwrap_or(0.0),
            name,
            proxy: p,
        })
        .collect();
    out.extend(floor.into_iter().map(|(name, f)| FunctionCost {
        name,
        proxy: 0.0,
        floor: f,
    }));
    out.sort_by(|a, b| b.difference().total_cmp(&a.difference()));
    Ok(out)
}

/// The paths of `round`, in the groups that run at the same time: all in
/// one, or one per group, back to back. The first path moves one place
/// each round.
fn groups(paths: usize, round: usize, together: bool) -> Vec<Vec<usize>> {
    let order = (0..paths).map(|k| (k + round) % paths);
    if together {
        vec![order.collect()]
    } else {
        order.map(|i| vec![i]).collect()
    }
}

/// One path's timed run: its work, its process, and the name of its
/// callgrind dump.
struct Timed {
    work: Work,
    pid: u32,
    name: String,
}

/// The runs at the same time, each after a warm-up, with the CPU (and,
/// under callgrind, the instructions, its profile dumped as its name) of
/// each run's process during the common window, and its first error.
async fn timed(
    runs: &[Timed],
    stop: Stop,
    cg: Option<&Callgrind>,
) -> anyhow::Result<Vec<(Sample, Option<String>)>> {
    futures::future::join_all(runs.iter().map(|r| warm_up(&r.work, false))).await;
    let times = || -> anyhow::Result<Vec<Times>> {
        runs.iter()
            .map(|r| {
                let ticks = process_times(r.pid).context("read the path's process's CPU times")?;
                Ok((ticks, thread_runtimes(r.pid)))
            })
            .collect()
    };
    if let Some(cg) = cg {
        for r in runs {
            cg.zero(r.pid)?;
        }
    }
    let t0 = times()?;
    let done = futures::future::join_all(runs.iter().map(|r| r.work.run(stop))).await;
    let t1 = times()?;
    let mut out = Vec::with_capacity(runs.len());
    for (((r, run), t0), t1) in runs.iter().zip(done).zip(t0).zip(t1) {
        let counts = cg.map(|cg| cg.dump(r.pid, &r.name)).transpose()?;
        let (user_secs, system_secs, exact_cpu) = cpu_between(&t0, &t1);
        let sample = Sample {
            requests: run.ok(),
            errors: run.errors,
            user_secs,
            system_secs,
            exact_cpu,
            counts,
        };
        out.push((sample, run.first_error));
    }
    Ok(out)
}

/// A process's CPU counters: its (user, system) clock ticks, and its
/// threads' run times if they could be read.
type Times = ((u64, u64), Option<Vec<(u32, u64)>>);

/// User and system seconds between two readings, and whether they are
/// exact. The total is the threads' run time, to the nanosecond, when the
/// same threads ran throughout; the ticks only split it (a tick is 10 ms,
/// several µs per request over a few hundred requests). Otherwise the
/// ticks alone: a thread started or ended, or the threads' time falls
/// short of the ticks' by more than the ticks' own rounding (a thread
/// that came and went between the readings).
fn cpu_between(before: &Times, after: &Times) -> (f64, f64, bool) {
    let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SEC;
    let ((u0, s0), (u1, s1)) = (before.0, after.0);
    let (user, system) = (secs(u0, u1), secs(s0, s1));
    let exact = match (&before.1, &after.1) {
        (Some(a), Some(b)) => runtime_between(a, b),
        _ => None,
    };
    // Each of the two readings of user and of system rounds down.
    let rounding = 4.0 / TICKS_PER_SEC;
    match exact.filter(|total| total + rounding >= user + system) {
        Some(total) if user + system > 0.0 => {
            let share = user / (user + system);
            (total * share, total * (1.0 - share), true)
        }
        // No tick in the window: the split is unknown, the total is not.
        Some(total) => (total, 0.0, true),
        None => (user, system, false),
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_between, groups};

    #[test]
    fn the_run_time_is_the_total_and_the_ticks_split_it() {
        let threads = |a: u64, b: u64| Some(vec![(1, a), (2, b)]);
        // 1.5 s of run time; ticks 3 user, 1 system.
        let (u, s, exact) = cpu_between(
            &((10, 10), threads(0, 0)),
            &((13, 11), threads(1_000_000_000, 500_000_000)),
        );
        assert!(
            (u - 1.125).abs() < 1e-9 && (s - 0.375).abs() < 1e-9 && exact,
            "{u} {s}"
        );
        // A thread started: its time before the first reading is unknown,
        // so the ticks count alone.
        let (u, s, exact) = cpu_between(
            &((10, 10), Some(vec![(1, 0)])),
            &((13, 11), threads(1_000_000_000, 500_000_000)),
        );
        assert_eq!((u, s, exact), (0.03, 0.01, false));
        // The same threads, but 0.5 s of ticks they do not account for: a
        // thread started and ended between the readings.
        let (u, s, exact) = cpu_between(
            &((10, 10), threads(0, 0)),
            &((170, 70), threads(1_000_000_000, 500_000_000)),
        );
        assert_eq!((u, s, exact), (1.6, 0.6, false));
    }

    #[test]
    fn every_path_runs_once_a_round_and_the_first_moves() {
        assert_eq!(groups(3, 0, false), [[0], [1], [2]]);
        assert_eq!(groups(3, 1, false), [[1], [2], [0]]);
        assert_eq!(groups(3, 4, false), [[1], [2], [0]]);
        assert_eq!(groups(3, 2, true), [[2, 0, 1]]);
    }
}

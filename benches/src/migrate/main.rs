//! `bench-migrate`: s3migrate against `rclone copy` and against the
//! destination's raw PUT ceiling, side by side on the same stores and data.
//! See docs/benchmarks.md.

mod args;
mod bench;
mod cpu;
mod data;
mod machine;
mod proc;
mod rclone;
mod report;
mod requests;
mod row;
mod s3migrate;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ferry_benches::units::MIB;

use crate::args::Args;
use crate::bench::Bench;
use crate::machine::Machine;
use crate::report::Report;

fn main() -> ExitCode {
    ferry_benches::cli::exit("bench-migrate", run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let bench = Bench::new(args.clone())?;
    eprintln!(
        "bench-migrate: s3migrate {}, work dir {}",
        bench.s3migrate.display(),
        bench.work_dir().display()
    );
    let machine = Machine::describe(&bench.s3migrate, &args.rclone);
    let mut sets = Vec::new();
    for set in [bench.small_set(), bench.large_set()] {
        if set.count > 0 {
            sets.push(bench.run_set(&set)?);
        }
    }
    let mut sizes: Vec<u64> = args.keys_rss.iter().copied().filter(|&n| n > 0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let keys = if sizes.is_empty() {
        Vec::new()
    } else {
        // The best small setting, else s3migrate's default.
        let threads = sets
            .iter()
            .filter(|s| s.set.size < MIB)
            .find_map(report::best_s3migrate)
            .and_then(|r| r.threads)
            .unwrap_or(32);
        bench.keys_rss(&sizes, threads)?
    };
    let text = Report {
        machine: &machine,
        args: &args,
        sets: &sets,
        keys: &keys,
        total: started.elapsed(),
    }
    .render();
    ferry_benches::cli::publish("bench-migrate", &text, args.out.as_deref())
}

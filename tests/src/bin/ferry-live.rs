//! `ferry-live`: the whole migration, live, on this machine (see
//! ferry_harness::live): two local S3 stores on 127.0.0.1, the real proxy,
//! two agents and ferryctl, clients writing throughout, faults injected.
//! `scripts/demo` runs it; the end-to-end test runs the same code.
//!
//!   ferry-live [--objects N] [--source garage|moto] [--no-faults]
//!              [--clients BOTO3,AWSCLI,RCLONE] [--forward-secs S] [--threads T]
//!              [--keep DIR] [--pictures DIR]
//!
//! --pictures DIR draws the Grafana dashboards from a Prometheus that
//! scraped the run (Debian's prometheus, and matplotlib: docs/dashboards).
//!
//! Exit 0 when the target holds exactly what clients were told, 1 when
//! not, 2 when the run could not be made.

use ferry_harness::StoreKind;
use ferry_harness::live::{Options, run};

fn parse() -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--objects" => o.objects = value(&a)?.parse().map_err(|e| format!("--objects: {e}"))?,
            "--source" => {
                o.source = match value(&a)?.as_str() {
                    "garage" => StoreKind::Garage,
                    "moto" => StoreKind::Moto,
                    other => return Err(format!("--source: garage or moto, not {other}")),
                }
            }
            "--no-faults" => o.faults = false,
            "--clients" => {
                let v = value(&a)?;
                let n: Vec<u32> = v
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--clients {v}: {e}")))
                    .collect::<Result<_, _>>()?;
                o.clients = n
                    .try_into()
                    .map_err(|_| format!("--clients {v}: three counts, boto3,awscli,rclone"))?;
            }
            "--forward-secs" => {
                o.forward_secs = value(&a)?
                    .parse()
                    .map_err(|e| format!("--forward-secs: {e}"))?
            }
            "--threads" => o.threads = value(&a)?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--keep" => o.keep = Some(value(&a)?.into()),
            "--pictures" => o.pictures = Some(value(&a)?.into()),
            "-h" | "--help" => {
                println!(
                    "ferry-live [--objects N] [--source garage|moto] [--no-faults] \
                     [--clients BOTO3,AWSCLI,RCLONE] [--forward-secs S] [--threads T] [--keep DIR] [--pictures DIR]\n\
                     (./scripts/demo passes these on, and takes --release itself: an optimized build, for large runs)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
    }
    Ok(o)
}

fn main() {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ferry-live: {e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(report) => {
            println!("{report}");
            if let Some(keep) = &opts.keep {
                let saved = std::fs::write(keep.join("report.txt"), format!("{report}\n"));
                match saved {
                    Ok(()) => println!(
                        "live: logs, the proxy's last metrics, the ledger and this report: {}",
                        keep.display()
                    ),
                    Err(e) => eprintln!("ferry-live: saving the report in {}: {e}", keep.display()),
                }
            }
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("ferry-live: {e:#}");
            std::process::exit(2);
        }
    }
}

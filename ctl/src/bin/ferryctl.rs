//! `ferryctl`: the operator's CLI. The bucket verbs and job control arrive
//! with the proxy and agent issues; today it only documents itself.

use clap::{Parser, Subcommand};

/// Drive Ferry's proxies and agents over their Unix sockets.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// S3 bucket migration verbs (attach, update, detach, show, list).
    S3,
    /// Agent job control (start, list, show, pause, resume, cancel, logs).
    Job,
}

fn main() {
    let args = Args::parse();
    eprintln!(
        "ferryctl: {:?} is not implemented yet; see README.md",
        args.command
    );
    std::process::exit(2);
}

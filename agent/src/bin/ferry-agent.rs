//! `ferry-agent`: the host daemon. Jobs, the admin socket and s3find land
//! with the agent issue; today the binary only documents itself.

use clap::Parser;

/// Ferry host agent: runs s3find scans and watches, and s3migrate copy jobs.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, default_value = "/etc/ferry/agent.toml")]
    config: std::path::PathBuf,
}

fn main() {
    let args = Args::parse();
    eprintln!(
        "ferry-agent: not implemented yet (config {}); see README.md",
        args.config.display()
    );
    std::process::exit(2);
}

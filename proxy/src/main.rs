//! `ferry-proxy`: the per-host S3 front end. Routing, TLS and SigV4 land with
//! the proxy-core issue; today the binary only documents itself.

use clap::Parser;

/// S3 migration proxy. It sits in front of the target cluster's S3 endpoint
/// and routes each attached bucket by its mode (ready, forward, migrate).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, default_value = "/etc/ferry/proxy.toml")]
    config: std::path::PathBuf,
}

fn main() {
    let args = Args::parse();
    eprintln!(
        "ferry-proxy: not implemented yet (config {}); see README.md",
        args.config.display()
    );
    std::process::exit(2);
}

//! `ferry-agent`: parse flags, load and check the config, run the daemon
//! (`ferry_agent`). Signals: TERM checkpoints every copy job and
//! exits (graceful, up to `shutdown_grace_secs`); INT exits at once (jobs
//! resume from their migrate.log watermark at the next start); HUP reloads
//! `max_running_jobs`.
//!
//! Exit codes: 0 stopped on a signal; 2 bad config, or the socket or state
//! folder could not be set up.

use std::path::PathBuf;

use clap::Parser;
use ferry_agent::Config;
use ferry_s3::program;

/// Ferry host agent: runs s3find scans and s3migrate copy jobs, steered by
/// `ferryctl job …` over a Unix socket.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Signals: TERM checkpoints every copy job and exits (they resume at the next \
start); HUP reloads max_running_jobs.\n\
Logs: stderr; FERRY_LOG sets the filter (default info).\n\
Operator guide: docs/agent.md in the Ferry source."
)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, default_value = "/etc/ferry/agent.toml", value_name = "FILE")]
    config: PathBuf,
    /// Check the configuration file and exit: 0 if valid, 2 (and why) if
    /// not. Binds and creates nothing.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    program::fail("ferry-agent", msg)
}

fn main() {
    let args = Args::parse();
    if let Some(path) = &args.check_config {
        program::check_config("ferry-agent", path, Config::load);
    }
    program::init_logging("FERRY_LOG", "info", &[]);
    let config = Config::load(&args.config).unwrap_or_else(|e| fail(e));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    if let Err(e) = runtime.block_on(ferry_agent::run(args.config.clone(), config)) {
        fail(e);
    }
    // Cut scans (blocking threads) are not waited for: their output is
    // never shown as a whole list, and they run again at the next start.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
}

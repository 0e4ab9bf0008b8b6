//! The command line of `bench-migrate`.

use std::path::PathBuf;

use clap::Parser;

/// Run s3migrate, `rclone copy` (defaults and tuned) and the destination's
/// raw PUT ceiling side by side on two local Garage stores, and print a
/// markdown report. A benchmark: it never fails on a slow figure, only when
/// something could not be run or measured.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench-migrate", max_term_width = 100)]
pub struct Args {
    /// Objects in the small data set (0 skips it).
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub small: u64,
    /// Size of each small object, KiB.
    #[arg(long, default_value_t = 4, value_name = "KIB")]
    pub small_kib: u64,
    /// Objects in the large data set (0 skips it).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub large: u64,
    /// Size of each large object, MiB.
    #[arg(long, default_value_t = 256, value_name = "M")]
    pub large_mib: u64,
    /// Part size, MiB, of the multipart uploads that fill the large source
    /// (0: one plain PutObject per object).
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub large_part_mib: u64,
    /// Keys in the key list of each peak-RSS dry run, smallest first,
    /// comma-separated (e.g. `1000000,10000000`: one run per size, side by
    /// side in the report); 0 skips them.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000000",
        value_name = "N,.."
    )]
    pub keys_rss: Vec<u64>,
    /// s3migrate `--threads` values tried on the small data set.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "32,64",
        value_name = "N,.."
    )]
    pub small_threads: Vec<usize>,
    /// s3migrate `--threads` used on the large data set.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub large_threads: usize,
    /// s3migrate `--part-threads` values tried on the large data set.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "4,8",
        value_name = "N,.."
    )]
    pub part_threads: Vec<usize>,
    /// Parallel PutObject calls of the ceiling run.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub ceiling_concurrency: usize,
    /// The s3migrate binary (default: next to this binary, else
    /// $CARGO_TARGET_DIR/release/s3migrate).
    #[arg(long, env = "S3MIGRATE_BIN", value_name = "PATH")]
    pub s3migrate: Option<PathBuf>,
    /// The rclone binary.
    #[arg(long, default_value = "/usr/bin/rclone", value_name = "PATH")]
    pub rclone: PathBuf,
    /// Rounds of every run but rclone at its defaults (run once: it is the
    /// slowest by far). A row shows its fastest round.
    #[arg(long, default_value_t = 3, value_name = "K")]
    pub repeat: u32,
    /// Also run s3migrate as the agent runs it in a live migration, with
    /// `--delete-journal` (each write's intent fsynced before it is sent,
    /// the journal watch, the reconcile), for each setting tried: the cost
    /// of that safety, beside the null copier.
    #[arg(long)]
    pub journal: bool,
    /// Skip the rclone runs with rclone's default settings (the slowest).
    #[arg(long)]
    pub skip_rclone_default: bool,
    /// Keep the work dir (the tools' logs, s3migrate's dest folders and key
    /// lists) instead of deleting it at the end.
    #[arg(long)]
    pub keep_work: bool,
    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

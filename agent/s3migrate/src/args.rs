//! The `s3migrate` command line: the WEKA flags, and Ferry's own.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ferry_control::MigrateOptions;

/// Copy a bucket between S3 clusters: resumable, hash-partitioned across
/// hosts, and with conditional writes that never overwrite a client's newer
/// object.
///
/// Exit codes: 0 every key handled; 1 some keys failed or `--verify` found a
/// difference (see failed.log and the pass summary); 2 bad input, refused
/// before anything was written.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "s3migrate",
    version,
    max_term_width = 100,
    args_override_self = true,
    // A job's folder defaults to its own; s3migrate has none to default to.
    mut_arg("dest_folder", |a| a.required(true))
)]
pub struct Args {
    /// What to copy and how: the same schema as an agent's migrate job.
    #[command(flatten)]
    pub job: MigrateOptions,
    /// Source secret key. Prefer S3MIGRATE_SRC_SECRET or --src-secret-file:
    /// a secret on the command line shows in `ps`.
    #[arg(
        long,
        env = "S3MIGRATE_SRC_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        required_unless_present = "src_secret_file"
    )]
    pub src_secret: Option<String>,
    /// Read the source secret from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "src_secret")]
    pub src_secret_file: Option<PathBuf>,
    /// Destination secret key. Prefer S3MIGRATE_DEST_SECRET or
    /// --dest-secret-file.
    #[arg(
        long,
        env = "S3MIGRATE_DEST_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        required_unless_present = "dest_secret_file"
    )]
    pub dest_secret: Option<String>,
    /// Read the destination secret from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "dest_secret")]
    pub dest_secret_file: Option<PathBuf>,
    /// Serve Prometheus metrics on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// TEST ONLY, in builds with the `test-hooks` feature: the s3migrate
    /// binary fills it from FERRY_TEST_PAUSE_BEFORE_PUT so that the
    /// end-to-end tests can hold a copy between its source GET and its
    /// destination PUT (see `copy::test_pause`). Not a flag, so no operator
    /// can trip on it; never set for the agent's jobs.
    #[cfg(feature = "test-hooks")]
    #[arg(skip)]
    pub test_pause_before_put: Option<PathBuf>,
}

impl Args {
    /// A run of `job` with its two secrets given, as the agent starts one:
    /// no secret files, no metrics listener (the agent serves its own).
    pub fn for_job(job: MigrateOptions, src_secret: String, dest_secret: String) -> Args {
        Args {
            job,
            src_secret: Some(src_secret),
            src_secret_file: None,
            dest_secret: Some(dest_secret),
            dest_secret_file: None,
            metrics_addr: None,
            #[cfg(feature = "test-hooks")]
            test_pause_before_put: None,
        }
    }
}

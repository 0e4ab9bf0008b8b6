//! The `s3migrate` command line: the WEKA flags, and Ferry's own.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

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
    args_override_self = true
)]
pub struct Args {
    /// URL of the source S3 endpoint.
    #[arg(long, value_name = "URL")]
    pub src_url: String,
    /// Source bucket.
    #[arg(long, value_name = "BUCKET")]
    pub src_bucket: String,
    /// Source access key (also from S3MIGRATE_SRC_KEY).
    #[arg(long, env = "S3MIGRATE_SRC_KEY", value_name = "KEY")]
    pub src_key: String,
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
    /// SigV4 region of the source.
    #[arg(long, default_value = "us-east-1", value_name = "REGION")]
    pub src_region: String,
    /// Folder of sorted key lists of the source (s3find output).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["src_list", "failed_to_folder"])]
    pub src_folder: Option<PathBuf>,
    /// Enumerate the source with ListObjectsV2 instead of --src-folder, for
    /// sources with no POSIX mount. Streams page by page.
    #[arg(long, conflicts_with = "src_folder")]
    pub src_list: bool,

    /// URL of the destination S3 endpoint.
    #[arg(long, value_name = "URL")]
    pub dest_url: String,
    /// Destination bucket.
    #[arg(long, value_name = "BUCKET")]
    pub dest_bucket: String,
    /// Destination access key (also from S3MIGRATE_DEST_KEY).
    #[arg(long, env = "S3MIGRATE_DEST_KEY", value_name = "KEY")]
    pub dest_key: String,
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
    /// SigV4 region of the destination.
    #[arg(long, default_value = "us-east-1", value_name = "REGION")]
    pub dest_region: String,
    /// The copier's folder: migrate.log, failed.log, records of what it
    /// wrote, pass summaries. May also hold sorted key lists of the
    /// destination (`*.keys`, s3find output); without them the destination
    /// is listed with ListObjectsV2.
    #[arg(long, value_name = "DIR")]
    pub dest_folder: PathBuf,

    /// Objects copied at once.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub threads: usize,
    /// Number of hosts (processes) sharing the key space.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub hash_count: u32,
    /// Which share this process takes, 0 to hash-count - 1.
    #[arg(long, default_value_t = 0, value_name = "I")]
    pub hash_value: u32,
    /// Resume after this key: the last line of migrate.log, exactly as it
    /// appears there.
    #[arg(long, value_name = "LINE")]
    pub start_after: Option<String>,
    /// Turn failed.log into a key-list folder DIR, then copy just those keys
    /// (as if run with --src-folder DIR).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["src_folder", "src_list"])]
    pub failed_to_folder: Option<PathBuf>,
    /// Read both sides and report what would be done; write nothing to the
    /// destination.
    #[arg(long)]
    pub dry_run: bool,
    /// Handle only the first N keys (of this process's share).
    #[arg(long, value_name = "N")]
    pub first: Option<u64>,
    /// Passes in all: after the full pass, differential passes copy what is
    /// missing or different, until a pass changes nothing.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub passes: u32,
    /// After copying, compare every key by size and ETag (by content where
    /// an ETag is a multipart one); differences fail the run.
    #[arg(long)]
    pub verify: bool,
    /// Run only the verify pass, copying nothing.
    #[arg(long, requires = "verify")]
    pub verify_only: bool,
    /// Cap on body bytes per second, downloads and uploads alike.
    #[arg(long, value_name = "BYTES")]
    pub max_bytes_per_sec: Option<u64>,
    /// Cap on S3 requests per second, to both sides together.
    #[arg(long, value_name = "N")]
    pub max_requests_per_sec: Option<u64>,
    /// Serve Prometheus metrics on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Run even if the destination ignores conditional writes
    /// (If-None-Match / If-Match). The no-lost-write guarantee is then off.
    /// With --delete-journal on a destination that ignores If-Match on
    /// DeleteObject, it also lets the reconcile remove a resurrected copy by
    /// HEAD, compare and DELETE, which can race a client's write.
    #[arg(long)]
    pub allow_overwrite: bool,
    /// The proxy's delete-journal bucket on the destination store (read with
    /// the destination credentials). Keys a client deleted in migrate mode
    /// are not copied, and after each pass a copy the copier made of a key
    /// deleted since is removed again, but only while it is still the
    /// copier's own write. A key it cannot remove safely fails the pass.
    #[arg(long, value_name = "BUCKET")]
    pub delete_journal: Option<String>,
    /// Part size for multipart copies whose source layout cannot be read.
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_name = "BYTES")]
    pub part_size_bytes: u64,
    /// Parts of one object copied at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub part_threads: usize,
    /// Attempts per request, the first included, for errors worth a retry.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// Seconds between progress lines when stderr is not a terminal.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub progress_interval_secs: u64,

    /// TEST ONLY, never set from the command line: the s3migrate binary
    /// fills it from FERRY_TEST_PAUSE_BEFORE_PUT so that the end-to-end
    /// tests can hold a copy between its source GET and its destination PUT
    /// (see `copy::test_pause`). Not a flag, so no operator can trip on it.
    #[arg(skip)]
    pub test_pause_before_put: Option<PathBuf>,
}

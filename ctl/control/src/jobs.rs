//! The agent's job API: what goes over `/run/ferry/agent.sock` as JSON.
//!
//! Routes (HTTP/1.1, JSON bodies):
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/jobs` | [`StartJobRequest`] | [`JobView`] (201) |
//! | `GET /v1/jobs` | | [`JobList`], by id |
//! | `GET /v1/jobs/{id}` | | [`JobView`] |
//! | `POST /v1/jobs/{id}/pause` | | [`JobView`] |
//! | `POST /v1/jobs/{id}/resume` | | [`JobView`] |
//! | `POST /v1/jobs/{id}/cancel` | | [`JobView`] |
//! | `POST /v1/jobs/{id}/retry` | | [`JobView`] of the new job, 201 |
//! | `GET /v1/jobs/{id}/logs?lines=N` | | [`JobLogs`]: the last N lines of the job's log (default 100, at most 10,000) |
//!
//! Every refusal is a non-2xx status with an [`crate::ApiError`] body (codes
//! in [`crate::codes`]). No answer ever carries a secret: secrets travel
//! only in [`StartJobRequest::secrets`], one way.
//!
//! [`MigrateOptions`], [`FindOptions`] and [`WatchOptions`] are wire types and
//! `ferryctl job start`'s flags (clap), so the flag names cannot drift from
//! the fields. `MigrateOptions` is s3migrate's command line too (flattened
//! into it): the agent hands the engine that typed value. s3find's flags
//! take their defaults from the constants here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// An s3find scan into sorted key-list chunks.
    Find,
    /// An s3migrate copy.
    Migrate,
    /// An s3find watch: a full scan, then incremental key-list sets of
    /// what changed, until cancelled.
    Watch,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Find => "find",
            JobKind::Migrate => "migrate",
            JobKind::Watch => "watch",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is in its life.
///
/// `queued → running ⇄ paused`, then one of `completed`, `failed`,
/// `cancelled`. A queued or paused job may be cancelled too. Completed and
/// cancelled are final; a failed job may be resumed (queued again, to run
/// from its checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a free slot (`max_running_jobs`).
    Queued,
    Running,
    /// Stopped handing out work; resumes where it stopped.
    Paused,
    /// Stopped by a user; its log holds a clean checkpoint.
    Cancelled,
    /// Could not run or finish (see `last_error`), or finished with failed
    /// keys or verify differences.
    Failed,
    /// Every key handled.
    Completed,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Cancelled,
        JobState::Failed,
        JobState::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
            JobState::Completed => "completed",
        }
    }

    /// Cancelled, failed or completed: no run is live or due (only a
    /// failed job may be resumed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Cancelled | JobState::Failed | JobState::Completed
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's kind and options, exactly as started. Never holds a secret.
/// On the wire: `{"kind": "migrate", "src_url": …, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
// A spec is made once per job and cloned rarely: boxing the big variant
// would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum JobSpec {
    Find(FindOptions),
    Migrate(MigrateOptions),
    Watch(WatchOptions),
}

impl JobSpec {
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Find(_) => JobKind::Find,
            JobSpec::Migrate(_) => JobKind::Migrate,
            JobSpec::Watch(_) => JobKind::Watch,
        }
    }

    /// The bucket a job is about, for lists and metric labels: the
    /// destination bucket of a copy; a scan's `bucket` label, else the name
    /// of the directory it scans.
    pub fn bucket_label(&self) -> String {
        let dir_name = |d: &PathBuf| {
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| d.to_string_lossy().into_owned())
        };
        match self {
            JobSpec::Migrate(m) => m.dest_bucket.clone(),
            JobSpec::Find(f) => f.bucket.clone().unwrap_or_else(|| dir_name(&f.directory)),
            JobSpec::Watch(w) => w.bucket.clone().unwrap_or_else(|| dir_name(&w.directory)),
        }
    }
}

/// Default of `--threads` (s3migrate's).
pub const DEFAULT_MIGRATE_THREADS: usize = 32;
/// Default of `--part-size-bytes` (s3migrate's).
pub const DEFAULT_PART_SIZE_BYTES: u64 = 16 * 1024 * 1024;
/// Default of `--part-threads` (s3migrate's).
pub const DEFAULT_PART_THREADS: usize = 4;
/// Default of `--retries` (s3migrate's).
pub const DEFAULT_RETRIES: u32 = 6;
/// Default of s3migrate's `--progress-interval-secs`: here, how often the
/// job's log gets a progress line.
pub const DEFAULT_MIGRATE_PROGRESS_SECS: u64 = 10;
/// Default of `--src-region` and `--dest-region`.
pub const DEFAULT_REGION: &str = "us-east-1";

fn default_region() -> String {
    DEFAULT_REGION.to_owned()
}
fn default_threads() -> usize {
    DEFAULT_MIGRATE_THREADS
}
fn one_u32() -> u32 {
    1
}
fn default_part_size() -> u64 {
    DEFAULT_PART_SIZE_BYTES
}
fn default_part_threads() -> usize {
    DEFAULT_PART_THREADS
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}
fn default_migrate_progress() -> u64 {
    DEFAULT_MIGRATE_PROGRESS_SECS
}

/// What an s3migrate copy does: s3migrate's flags (it flattens this into
/// its command line) and a migrate job's options, one schema, defaults
/// written once. Not here: the secrets (s3migrate's own flags; a job's
/// [`JobSecrets`]) and `--metrics-addr` (the agent serves its own metrics).
/// In a job, paths are on the agent's host and must be absolute
/// (`ferryctl` makes them so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct MigrateOptions {
    /// URL of the source S3 endpoint.
    #[arg(long, value_name = "URL")]
    pub src_url: String,
    /// Source bucket.
    #[arg(long, value_name = "BUCKET")]
    pub src_bucket: String,
    /// Source access key (also from S3MIGRATE_SRC_KEY).
    #[arg(long, env = "S3MIGRATE_SRC_KEY", value_name = "KEY")]
    pub src_key: String,
    /// SigV4 region of the source.
    #[arg(long, default_value = DEFAULT_REGION, value_name = "REGION")]
    #[serde(default = "default_region")]
    pub src_region: String,
    /// CA certificates (PEM) an https source must chain to, for a source
    /// with a private CA [default: the system's roots].
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub src_ca_file: Option<PathBuf>,
    /// Folder of sorted key lists of the source (s3find output).
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub src_folder: Option<PathBuf>,
    /// Enumerate the source with ListObjectsV2 instead of --src-folder, for
    /// sources with no POSIX mount. Streams page by page.
    #[arg(long)]
    #[serde(default)]
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
    /// SigV4 region of the destination.
    #[arg(long, default_value = DEFAULT_REGION, value_name = "REGION")]
    #[serde(default = "default_region")]
    pub dest_region: String,
    /// CA certificates (PEM) an https destination must chain to [default:
    /// the system's roots].
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub dest_ca_file: Option<PathBuf>,
    /// The copier's folder: migrate.log, failed.log, records of what it
    /// wrote, pass summaries. May also hold sorted key lists of the
    /// destination (`*.keys`, s3find output); without them the destination
    /// is listed with ListObjectsV2. Required by s3migrate; a job's
    /// default is its own folder, STATE_DIR/jobs/ID/dest.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub dest_folder: Option<PathBuf>,

    /// Objects copied at once.
    #[arg(long, default_value_t = DEFAULT_MIGRATE_THREADS, value_name = "N")]
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Number of hosts (processes) sharing the key space.
    #[arg(long, default_value_t = 1, value_name = "N")]
    #[serde(default = "one_u32")]
    pub hash_count: u32,
    /// Which share this process takes, 0 to hash-count - 1.
    #[arg(long, default_value_t = 0, value_name = "I")]
    #[serde(default)]
    pub hash_value: u32,
    /// Resume after this key: the last line of migrate.log, exactly as it
    /// appears there. A job that is resumed starts after its own
    /// migrate.log's last line instead.
    #[arg(long, value_name = "LINE")]
    #[serde(default)]
    pub start_after: Option<String>,
    /// Turn failed.log into a key-list folder DIR, then copy just those keys
    /// (as if run with --src-folder DIR).
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub failed_to_folder: Option<PathBuf>,
    /// Read both sides and report what would be done; write nothing to the
    /// destination.
    #[arg(long)]
    #[serde(default)]
    pub dry_run: bool,
    /// Handle only the first N keys (of this process's share).
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub first: Option<u64>,
    /// Passes in all: after the full pass, differential passes copy what is
    /// missing or different, until a pass changes nothing.
    #[arg(long, default_value_t = 1, value_name = "N")]
    #[serde(default = "one_u32")]
    pub passes: u32,
    /// After copying, compare every key by size and ETag (by content where
    /// an ETag is a multipart one); differences fail the run.
    #[arg(long)]
    #[serde(default)]
    pub verify: bool,
    /// Run only the verify pass, copying nothing (with --verify).
    #[arg(long)]
    #[serde(default)]
    pub verify_only: bool,
    /// With --verify: fix what verify found, then verify again. The keys
    /// missing or different on the destination are written as a key list
    /// (DEST/verify/repair/) and copied again; a copy of the copier's own
    /// of a key the source no longer holds is removed (conditionally, never
    /// a client's write).
    #[arg(long)]
    #[serde(default)]
    pub repair: bool,
    /// Replace a destination object that differs from the source even when
    /// it is not the copier's own write (conditionally on its current
    /// ETag). Only for the reverse copy of a rollback, while the bucket is
    /// blocked: it overwrites what clients wrote on the destination.
    #[arg(long)]
    #[serde(default)]
    pub overwrite_differing: bool,
    /// Cap on body bytes per second, downloads and uploads alike.
    #[arg(long, value_name = "BYTES")]
    #[serde(default)]
    pub max_bytes_per_sec: Option<u64>,
    /// Cap on S3 requests per second, to both sides together.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub max_requests_per_sec: Option<u64>,
    /// Run even if the destination ignores conditional writes
    /// (If-None-Match / If-Match). The no-lost-write guarantee is then off.
    /// With --delete-journal on a destination that ignores If-Match on
    /// DeleteObject, it also lets the reconcile remove a resurrected copy by
    /// HEAD, compare and DELETE, which can race a client's write.
    #[arg(long)]
    #[serde(default)]
    pub allow_overwrite: bool,
    /// The proxy's delete-journal bucket on the destination store (read with
    /// the destination credentials). Keys a client deleted in migrate mode
    /// are not copied, and after each pass a copy the copier made of a key
    /// deleted since is removed again, but only while it is still the
    /// copier's own write. A key it cannot remove safely fails the pass.
    #[arg(long, value_name = "BUCKET")]
    #[serde(default)]
    pub delete_journal: Option<String>,
    /// Part size for multipart copies whose source layout cannot be read.
    #[arg(long, default_value_t = DEFAULT_PART_SIZE_BYTES, value_name = "BYTES")]
    #[serde(default = "default_part_size")]
    pub part_size_bytes: u64,
    /// Parts of one object copied at once.
    #[arg(long, default_value_t = DEFAULT_PART_THREADS, value_name = "N")]
    #[serde(default = "default_part_threads")]
    pub part_threads: usize,
    /// Attempts per request, the first included, for errors worth a retry.
    #[arg(long, default_value_t = DEFAULT_RETRIES, value_name = "N")]
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds between progress lines (s3migrate: when stderr is not a
    /// terminal; a job: in its log).
    #[arg(long, default_value_t = DEFAULT_MIGRATE_PROGRESS_SECS, value_name = "SECS")]
    #[serde(default = "default_migrate_progress")]
    pub progress_interval_secs: u64,
}

impl MigrateOptions {
    /// Every rule between the options, for s3migrate's command line and a
    /// job's spec alike: `Err` says which flag and why.
    pub fn check(&self) -> Result<(), String> {
        match (&self.src_folder, self.src_list, &self.failed_to_folder) {
            (None, false, None) => {
                return Err(
                    "one of --src-folder, --src-list or --failed-to-folder is required".into(),
                );
            }
            (Some(_), true, _) => {
                return Err("--src-folder and --src-list cannot be used together".into());
            }
            (Some(_), _, Some(_)) | (_, true, Some(_)) => {
                return Err(
                    "--failed-to-folder names its own source: not with --src-folder or --src-list"
                        .into(),
                );
            }
            _ => {}
        }
        if self.verify_only && !self.verify {
            return Err("--verify-only needs --verify".into());
        }
        if self.repair && !self.verify {
            return Err("--repair needs --verify".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.hash_count == 0 || self.hash_value >= self.hash_count {
            return Err(format!(
                "--hash-value must be below --hash-count (got {} of {})",
                self.hash_value, self.hash_count
            ));
        }
        if self.passes == 0 {
            return Err("--passes must be at least 1".into());
        }
        if let Some(line) = &self.start_after {
            crate::keylist::unescape(line).map_err(|why| format!("--start-after: {why}"))?;
        }
        Ok(())
    }
}

/// Default of s3find's `--memory-mb`.
pub const DEFAULT_FIND_MEMORY_MB: u32 = 256;
/// Default of s3find's `--progress-interval-secs`.
pub const DEFAULT_FIND_PROGRESS_SECS: u64 = 5;

fn default_find_memory() -> u32 {
    DEFAULT_FIND_MEMORY_MB
}
fn default_find_progress() -> u64 {
    DEFAULT_FIND_PROGRESS_SECS
}

/// The sizes `--memory-mb` accepts, in MiB (1 MiB to 1 TiB).
pub const FIND_MEMORY_MB_MIN: u32 = 1;
pub const FIND_MEMORY_MB_MAX: u32 = 1_048_576;

/// What a scan (a find or a watch's) may use: its sorting memory and its
/// walker threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct ScanResources {
    /// Memory for sorting, in MiB (key bytes plus 8 bytes per key). Beyond
    /// it, sorted runs spill into OUTPUT_DIR/.s3find-tmp-*.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_FIND_MEMORY_MB,
          value_parser = clap::value_parser!(u32)
              .range(i64::from(FIND_MEMORY_MB_MIN)..=i64::from(FIND_MEMORY_MB_MAX)))]
    #[serde(default = "default_find_memory")]
    pub memory_mb: u32,
    /// Walker threads; 0 = one per core, at most 12. On network
    /// filesystems more threads hide latency.
    #[arg(long, value_name = "N", default_value_t = 0)]
    #[serde(default)]
    pub threads: usize,
}

impl ScanResources {
    /// The rule clap's value parser holds on a command line, for a job's
    /// spec, which comes as JSON.
    fn check(&self) -> Result<(), String> {
        let mb = self.memory_mb;
        if (FIND_MEMORY_MB_MIN..=FIND_MEMORY_MB_MAX).contains(&mb) {
            Ok(())
        } else {
            Err(format!(
                "--memory-mb must be {FIND_MEMORY_MB_MIN} to {FIND_MEMORY_MB_MAX} (got {mb})"
            ))
        }
    }
}

/// What an s3find scan does: s3find's arguments and scan flags (it
/// flattens this into its command line) and a find job's options, one
/// schema, defaults written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FindOptions {
    /// The directory to scan: a bucket's mounted filesystem.
    #[arg(value_name = "DIRECTORY")]
    pub directory: PathBuf,
    /// Where the chunk files go (created if missing); the --src-folder of
    /// s3migrate.
    #[arg(value_name = "OUTPUT_DIR")]
    pub output_dir: PathBuf,
    /// Keep only files changed (max of mtime and ctime) within the last
    /// N days; fractions allowed.
    #[arg(long, value_name = "N_DAYS")]
    #[serde(default)]
    pub later_than: Option<f64>,
    /// Count the --later-than days back from this moment (Unix seconds,
    /// fractions allowed) instead of from now: repeats a scan's selection
    /// exactly. Files changed after it are kept too.
    #[arg(long, value_name = "UNIX_SECS", requires = "later_than")]
    #[serde(default)]
    pub reference_time: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub resources: ScanResources,
    /// Count the bytes of the listed files, for the summary. It costs one
    /// lstat per file, which a plain listing does not need (the file type
    /// comes with the directory entry): about half the speed on a large
    /// local tree.
    #[arg(long)]
    #[serde(default)]
    pub sizes: bool,
    /// Replace the chunk files (*.keys) of an earlier scan in OUTPUT_DIR.
    /// The old ones are removed only once the new list is complete.
    #[arg(long)]
    #[serde(default)]
    pub overwrite: bool,
    /// Write the key list even though some directories could not be read
    /// (their files are then missing from it). Without it, an unreadable
    /// directory fails the scan: exit 1, no key list written, the
    /// directories named in the summary.
    #[arg(long)]
    #[serde(default)]
    pub allow_unreadable: bool,
    /// Seconds between progress lines (s3find: on stderr; a job: in its
    /// log); 0 = none.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_FIND_PROGRESS_SECS)]
    #[serde(default = "default_find_progress")]
    pub progress_interval_secs: u64,
    /// A job's bucket label, for `job list` and metric labels (default:
    /// the directory's name); `ferryctl job start find --bucket` sets it.
    /// s3find itself has no use for it.
    #[arg(skip)]
    #[serde(default)]
    pub bucket: Option<String>,
}

impl FindOptions {
    /// The rules clap's value parsers hold on a command line, for a job's
    /// spec, which comes as JSON.
    pub fn check(&self) -> Result<(), String> {
        self.resources.check()?;
        if self.reference_time.is_some() && self.later_than.is_none() {
            return Err("--reference-time needs --later-than".into());
        }
        Ok(())
    }
}

/// Default of s3find's `--interval` (watch mode).
pub const DEFAULT_WATCH_INTERVAL_SECS: u64 = 60;
/// Default of s3find's `--rescan-interval` (watch mode).
pub const DEFAULT_WATCH_RESCAN_SECS: u64 = 3600;
/// Default of s3find's `--quiet-secs` (watch mode).
pub const DEFAULT_WATCH_QUIET_SECS: u64 = 5;

fn default_watch_interval() -> u64 {
    DEFAULT_WATCH_INTERVAL_SECS
}
fn default_watch_rescan() -> u64 {
    DEFAULT_WATCH_RESCAN_SECS
}
fn default_watch_quiet() -> u64 {
    DEFAULT_WATCH_QUIET_SECS
}

/// An s3find watch (`s3find --watch`): the full scan into OUTPUT_DIR, then
/// every `interval` an incremental set (`OUTPUT_DIR/incr/<seq>-<time>/`)
/// of the keys created, modified and deleted since. Runs until cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct WatchOptions {
    /// The directory to watch: a bucket's mounted filesystem.
    #[arg(value_name = "DIRECTORY")]
    pub directory: PathBuf,
    /// Where the full list and the incremental sets (incr/) go.
    #[arg(value_name = "OUTPUT_DIR")]
    pub output_dir: PathBuf,
    /// Seconds between incremental sets.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WATCH_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default = "default_watch_interval")]
    pub interval: u64,
    /// Seconds between full rescans (which find what events missed).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WATCH_RESCAN_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default = "default_watch_rescan")]
    pub rescan_interval: u64,
    /// A file is listed once its mtime is at least this many seconds old.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WATCH_QUIET_SECS)]
    #[serde(default = "default_watch_quiet")]
    pub quiet_secs: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub resources: ScanResources,
    /// Replace an earlier list in OUTPUT_DIR (an earlier watch's state is
    /// compared with, so what changed meanwhile is a set).
    #[arg(long)]
    #[serde(default)]
    pub overwrite: bool,
    /// The bucket this directory holds, for `job list` and metric labels.
    /// Default: the directory's name.
    #[arg(long, value_name = "BUCKET")]
    #[serde(default)]
    pub bucket: Option<String>,
}

impl WatchOptions {
    /// The rules clap's value parsers hold on a command line, for a job's
    /// spec, which comes as JSON.
    pub fn check(&self) -> Result<(), String> {
        self.resources.check()?;
        for (flag, secs) in [
            ("--interval", self.interval),
            ("--rescan-interval", self.rescan_interval),
        ] {
            if secs == 0 {
                return Err(format!("{flag} must be at least 1 second"));
            }
        }
        Ok(())
    }
}

/// Secrets a job needs, sent once at start. The agent keeps them in the
/// job's `secrets.json` (mode 0600) and never returns or logs them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSecrets {
    /// The secret for `src_key` (migrate).
    #[serde(default)]
    pub src_secret: Option<String>,
    /// The secret for `dest_key` (migrate).
    #[serde(default)]
    pub dest_secret: Option<String>,
}

impl fmt::Debug for JobSecrets {
    // Never print a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("JobSecrets")
            .field("src_secret", &shown(&self.src_secret))
            .field("dest_secret", &shown(&self.dest_secret))
            .finish()
    }
}

/// `POST /v1/jobs`: queue a job. It runs as soon as a slot is free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartJobRequest {
    pub spec: JobSpec,
    #[serde(default)]
    pub secrets: JobSecrets,
}

/// The object counts of one pass (`obj == ign + exist + copied + fail +
/// skip_dn + skip_up`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassCounts {
    pub obj: u64,
    pub ign: u64,
    pub exist: u64,
    pub copied: u64,
    pub fail: u64,
    pub skip_dn: u64,
    pub skip_up: u64,
}

impl PassCounts {
    /// The counts as the WEKA summary prints them:
    /// `obj=… ign=… exist=… copied=… fail=… skip(dn=… up=…)`.
    pub fn line(&self) -> String {
        format!(
            "obj={} ign={} exist={} copied={} fail={} skip(dn={} up={})",
            self.obj, self.ign, self.exist, self.copied, self.fail, self.skip_dn, self.skip_up
        )
    }
}

/// One pass's summary, as s3migrate writes it into the dest folder
/// (`summary-<run>-p<pass>.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PassSummaryView {
    pub run_id: String,
    pub pass: u32,
    #[serde(default)]
    pub dry_run: bool,
    pub started_at: String,
    pub elapsed_secs: f64,
    /// False when the pass stopped before the end of the key space (a
    /// cancel, a pause across a restart, an agent stop).
    pub complete: bool,
    #[serde(default)]
    pub start_after: Option<String>,
    #[serde(default)]
    pub last_key: Option<String>,
    pub objects: PassCounts,
    #[serde(default)]
    pub bytes_downloaded: u64,
    #[serde(default)]
    pub bytes_uploaded: u64,
    #[serde(default)]
    pub errors_by_class: BTreeMap<String, u64>,
    /// The pass's last progress line (the WEKA format).
    #[serde(default)]
    pub progress: String,
}

/// A new copy job made from a finished one (`POST /v1/jobs/{id}/{what}`):
/// the same endpoints, secrets and dest folder, where the records of what
/// the copier wrote are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// Copy the keys of its failed.log again.
    Retry,
    /// Verify, copying nothing.
    Verify,
    /// Verify, then `--repair` what verify found, then verify again.
    Repair,
    /// The reverse copy of a rollback: what clients wrote on the
    /// destination (its last verify's `client-writes` list) back to the
    /// source, replacing what differs there.
    Reverse,
}

impl FollowUp {
    pub const ALL: [FollowUp; 4] = [
        FollowUp::Retry,
        FollowUp::Verify,
        FollowUp::Repair,
        FollowUp::Reverse,
    ];

    /// Its name in the API path.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUp::Retry => "retry",
            FollowUp::Verify => "verify",
            FollowUp::Repair => "repair",
            FollowUp::Reverse => "reverse",
        }
    }

    pub fn parse(s: &str) -> Option<FollowUp> {
        FollowUp::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Keys of a verify's problems kept in its summary, as examples.
pub const VERIFY_EXAMPLES: usize = 20;

/// What a verify found (`--verify`), as s3migrate writes it into the dest
/// folder (`verify-summary.json`). Every key of the share is `equal`,
/// `by_content`, `client_newer`, `client_new` or a problem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// When it ended (RFC 3339, UTC).
    #[serde(default)]
    pub finished_at: String,
    pub checked: u64,
    pub equal: u64,
    pub by_content: u64,
    /// On both sides, different on the destination, written there by a
    /// client (a live migration: not a write of the copier's).
    pub client_newer: u64,
    /// On the destination only, written there by a client.
    #[serde(default)]
    pub client_new: u64,
    pub problems_by_class: BTreeMap<String, u64>,
    /// The first problems, in key order.
    #[serde(default)]
    pub examples: Vec<VerifyProblem>,
}

/// One key verify could not account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProblem {
    pub key: String,
    pub class: String,
    pub message: String,
}

impl VerifyReport {
    pub fn problems(&self) -> u64 {
        self.problems_by_class.values().sum()
    }
}

impl fmt::Display for VerifyReport {
    /// The one-line summary s3migrate prints and the agent's job log keeps.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verify: checked={} equal={} equal-by-content={} client-newer={} client-new={} problems={}",
            self.checked,
            self.equal,
            self.by_content,
            self.client_newer,
            self.client_new,
            self.problems()
        )?;
        for (class, n) in &self.problems_by_class {
            write!(f, " {class}={n}")?;
        }
        Ok(())
    }
}

/// What a finished scan found (from s3find's summary).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindSummaryView {
    pub files: u64,
    /// Counted with `--sizes` only.
    #[serde(default)]
    pub bytes: Option<u64>,
    pub dirs: u64,
    pub skipped: u64,
    pub errors: u64,
    pub chunks: u32,
    pub elapsed_secs: f64,
}

/// A watch's counts (from s3find's `s3find-watch-summary.json`), for its
/// latest run: a restart of the watch starts them again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchSummaryView {
    /// Files the initial scan of this run listed.
    pub initial_files: u64,
    /// Chunk files the initial scan wrote.
    pub initial_chunks: u32,
    /// Incremental sets written, and the name of the last one.
    pub sets: u64,
    pub last_set: Option<String>,
    /// Keys reported in those sets: created or modified, and deleted.
    pub changed: u64,
    pub deleted: u64,
    /// Times a file was held back because it was still being written.
    pub held_back: u64,
    /// Full rescans finished.
    pub rescans: u64,
    /// Files in the watch's state (as of the last full scan).
    pub state_files: u64,
    /// Directories with an inotify watch, and without one.
    pub watched_dirs: u64,
    pub unwatched_dirs: u64,
    pub elapsed_secs: f64,
}

/// A job's identity and what has happened to it so far: what the agent
/// keeps in the job's `state.json` and what `show` and `list` return,
/// written once and flattened into both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: u64,
    pub kind: JobKind,
    /// See [`JobSpec::bucket_label`].
    pub bucket: String,
    pub state: JobState,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the job first started running.
    pub started_at: Option<String>,
    /// The last state change.
    pub updated_at: String,
    /// When it reached a final state.
    pub finished_at: Option<String>,
    /// Runs started so far (a resume after a restart is one more).
    pub attempts: u32,
    /// Set when the agent stopped under a running or paused job (TERM, or
    /// a cut at the deadline): why, and what happens next. It was
    /// checkpointed (or cut), and a running one resumes from its watermark
    /// when the agent starts again. Not a cancel. Cleared when it runs
    /// again.
    pub interrupted: Option<String>,
    /// The progress line: the WEKA format for a copy, s3find's for a scan.
    /// Live while the job runs; after it ends, its last line.
    pub progress: Option<String>,
    /// A finished scan's counts.
    pub find: Option<FindSummaryView>,
    pub last_error: Option<String>,
}

impl JobStatus {
    /// A new job's status, made at `now`: queued, never run.
    pub fn new(id: u64, kind: JobKind, bucket: String, now: String) -> JobStatus {
        JobStatus {
            id,
            kind,
            bucket,
            state: JobState::Queued,
            created_at: now.clone(),
            started_at: None,
            updated_at: now,
            finished_at: None,
            attempts: 0,
            interrupted: None,
            progress: None,
            find: None,
            last_error: None,
        }
    }
}

/// One job as `show` and `list` return it. It never carries a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    #[serde(flatten)]
    pub status: JobStatus,
    /// The copy's pass summaries, oldest first.
    pub passes: Vec<PassSummaryView>,
    /// A copy with `--verify`: the folder's last verify.
    #[serde(default)]
    pub verify: Option<VerifyReport>,
    /// A watch's counts, once its first summary is written.
    #[serde(default)]
    pub watch: Option<WatchSummaryView>,
    /// The job's working folder: the copy's dest folder, the scan's output.
    pub folder: String,
    pub spec: JobSpec,
}

/// `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// `GET /v1/jobs/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogs {
    pub id: u64,
    pub lines: Vec<String>,
    /// True when the log has more lines than were returned.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrate_json(extra: &str) -> String {
        format!(
            r#"{{"kind":"migrate","src_url":"http://s","src_bucket":"a","src_key":"k",
               "dest_url":"http://d","dest_bucket":"b","dest_key":"k2","src_list":true{extra}}}"#
        )
    }

    #[test]
    fn spec_wire_format_and_defaults() {
        let spec: JobSpec = serde_json::from_str(&migrate_json("")).unwrap();
        let JobSpec::Migrate(m) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(m.threads, DEFAULT_MIGRATE_THREADS);
        assert_eq!((m.hash_count, m.hash_value, m.passes), (1, 0, 1));
        assert_eq!(m.src_region, DEFAULT_REGION);
        assert_eq!(spec.kind(), JobKind::Migrate);
        assert_eq!(spec.bucket_label(), "b");
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert!(
            serde_json::from_str::<JobSpec>(&migrate_json(r#","thread":4"#)).is_err(),
            "a misspelt option must not be ignored"
        );
        assert!(
            serde_json::from_str::<JobSpec>(&migrate_json(r#","src_secret":"x"#)).is_err(),
            "a secret has no place in the spec"
        );
        let find: JobSpec =
            serde_json::from_str(r#"{"kind":"find","directory":"/mnt/b1","output_dir":"/l"}"#)
                .unwrap();
        assert_eq!(find.bucket_label(), "b1");
        assert_eq!(find.kind(), JobKind::Find);
        let watch: JobSpec =
            serde_json::from_str(r#"{"kind":"watch","directory":"/mnt/w1","output_dir":"/l"}"#)
                .unwrap();
        let JobSpec::Watch(w) = &watch else {
            panic!("{watch:?}")
        };
        assert_eq!((w.interval, w.rescan_interval, w.quiet_secs), (60, 3600, 5));
        assert_eq!(watch.bucket_label(), "w1");
    }

    #[test]
    fn secrets_never_print() {
        let s = JobSecrets {
            src_secret: Some("very-secret-1".into()),
            dest_secret: Some("very-secret-2".into()),
        };
        let req = StartJobRequest {
            spec: serde_json::from_str(&migrate_json("")).unwrap(),
            secrets: s,
        };
        let text = format!("{req:?}");
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
        assert!(JobState::Completed.is_final());
        assert!(!JobState::Paused.is_final());
    }
}

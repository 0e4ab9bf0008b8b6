//! What a watch is asked to do and what it tells: its options, the files
//! it keeps in `OUTPUT_DIR`, and its summary.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Options;
use crate::stats::Stats;

/// The defaults of `--interval`, `--rescan-interval` and `--quiet-secs`,
/// which a watch job's options share.
pub use ferry_control::jobs::{
    DEFAULT_WATCH_INTERVAL_SECS as DEFAULT_INTERVAL_SECS,
    DEFAULT_WATCH_QUIET_SECS as DEFAULT_QUIET_SECS,
    DEFAULT_WATCH_RESCAN_SECS as DEFAULT_RESCAN_INTERVAL_SECS,
};
/// The state of the last full scan, in `OUTPUT_DIR`.
pub const STATE_FILE: &str = "s3find-watch.state";
/// The changes reported from events since, in `OUTPUT_DIR`.
pub const JOURNAL_FILE: &str = "s3find-watch.journal";
/// The watch's statistics, in `OUTPUT_DIR`, rewritten after every set
/// and rescan.
pub const WATCH_SUMMARY_FILE: &str = "s3find-watch-summary.json";
/// Version of the watch summary's layout.
pub const WATCH_SUMMARY_VERSION: u32 = 1;

/// Everything a watch needs; see [`crate::Args`] for the command-line form.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The scan: root, output folder, memory, threads, `overwrite` (needed
    /// when `output_dir` holds an earlier list), progress. `later_than_days`
    /// must be `None`.
    pub scan: Options,
    /// Time between incremental sets.
    pub interval: Duration,
    /// Time between full rescans.
    pub rescan_interval: Duration,
    /// A file is listed once its mtime is this old.
    pub quiet: Duration,
    /// Add at most this many directory watches.
    pub max_watches: Option<u64>,
}

impl WatchOptions {
    pub fn new(root: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        Self {
            scan: Options::new(root, output_dir),
            interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
            rescan_interval: Duration::from_secs(DEFAULT_RESCAN_INTERVAL_SECS),
            quiet: Duration::from_secs(DEFAULT_QUIET_SECS),
            max_watches: None,
        }
    }
}

/// How much of the tree inotify covers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Directories with a watch now.
    pub watched_dirs: u64,
    /// Directories met since the last full scan that have no watch.
    pub unwatched_dirs: u64,
    /// Whether a watch could not be added for that reason, at some point.
    pub limit_reached: bool,
    /// Why: the kernel's limit, `--max-watches`, or inotify unavailable.
    pub limit: Option<String>,
    pub max_watches: Option<u64>,
}

/// The statistics of a watch: `s3find-watch-summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchStats {
    pub version: u32,
    pub root: String,
    pub output_dir: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub elapsed_secs: f64,
    pub interval_secs: f64,
    pub rescan_interval_secs: f64,
    pub quiet_secs: f64,
    /// The initial full scan (also in `s3find-summary.json`).
    pub initial: Stats,
    /// Incremental sets written, and the name of the last one.
    pub sets: u64,
    pub last_set: Option<String>,
    /// Keys in those sets.
    pub changed: u64,
    pub deleted: u64,
    /// Of those, found by full scans (what events did not report).
    pub changed_by_scan: u64,
    pub deleted_by_scan: u64,
    /// Times a file was held back because it was still being written.
    pub held_back: u64,
    /// Full rescans finished, and the start of the last one.
    pub rescans: u64,
    pub last_rescan_at: Option<String>,
    /// Rescans cut short by a stop request (their result is not used).
    pub rescans_abandoned: u64,
    /// inotify events received, errors the watcher reported, and queue
    /// overflows (each one forces a rescan).
    pub events: u64,
    pub event_errors: u64,
    pub event_overflows: u64,
    /// Files in the state (as of the last full scan).
    pub state_files: u64,
    pub watch: Coverage,
    /// The watch ended on a stop request.
    pub stopped: bool,
}

impl WatchStats {
    /// The closing report, a few lines for stderr (after the initial
    /// scan's).
    pub fn render(&self) -> String {
        let c = &self.watch;
        let mut out = self.initial.render();
        out += &format!(
            "s3find: watch ended after {:.1}s: sets={} (last {}) changed={} deleted={} (found by full scans: changed={} deleted={}) held-back={}\n",
            self.elapsed_secs,
            self.sets,
            self.last_set.as_deref().unwrap_or("none"),
            self.changed,
            self.deleted,
            self.changed_by_scan,
            self.deleted_by_scan,
            self.held_back
        );
        out += &format!(
            "s3find: watch: rescans={} (abandoned {}) events={} event-errors={} overflows={} state-files={}\n",
            self.rescans,
            self.rescans_abandoned,
            self.events,
            self.event_errors,
            self.event_overflows,
            self.state_files
        );
        out += &format!(
            "s3find: watch: watched-dirs={} unwatched-dirs={} limit={}\n",
            c.watched_dirs,
            c.unwatched_dirs,
            match (&c.limit, c.limit_reached) {
                (Some(why), _) => format!("reached ({why}; the rescans covered the rest)"),
                (None, true) => "reached earlier".into(),
                (None, false) => "not reached".into(),
            }
        );
        out
    }
}

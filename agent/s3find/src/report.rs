//! What a scan tells its operator while it runs: one notice per entry it
//! could not turn into a key, progress every few seconds, and phase
//! changes. The CLI prints them on stderr ([`StderrReport`]); a daemon job
//! can route them elsewhere.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use super::stats::Progress;

/// One reported event. Paths print with `{:?}`, so bytes that are not
/// UTF-8 show as `\xNN` and control characters as escapes: the line
/// names the exact entry.
#[derive(Debug)]
pub enum Notice {
    /// A directory could not be listed; its contents are not in the list.
    UnreadableDir {
        path: Option<PathBuf>,
        error: String,
    },
    /// A regular file whose `lstat` failed.
    StatFailed { path: PathBuf, error: String },
    /// A file or directory name that is not UTF-8. For a directory, every
    /// file below it is skipped (and counted) too, without a line each.
    NonUtf8 { path: PathBuf, is_dir: bool },
    /// A file whose key would be longer than 1,024 bytes.
    TooLong { path: PathBuf, key_bytes: usize },
    /// The walk is over; the sorted runs are being merged into chunks.
    Merging { files: u64, runs: u64 },
    /// Watch mode: the initial scan is done and the tree is watched.
    Watching {
        keys: u64,
        watched_dirs: u64,
        unwatched_dirs: u64,
        interval_secs: f64,
        rescan_interval_secs: f64,
    },
    /// Watch mode: not every directory has an inotify watch (the kernel's
    /// limit, or `--max-watches`). Changes below the others are found by
    /// the rescans only.
    WatchLimit { watched_dirs: u64, reason: String },
    /// Watch mode: an incremental set was written.
    SetWritten {
        path: PathBuf,
        changed: u64,
        deleted: u64,
        held_back: u64,
        source: &'static str,
    },
    /// Watch mode: a full rescan is done.
    Rescanned {
        files: u64,
        changed: u64,
        deleted: u64,
        elapsed_secs: f64,
        unwatched_dirs: u64,
    },
    /// Watch mode: a problem that does not stop the watch.
    WatchWarning { message: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::UnreadableDir {
                path: Some(path),
                error,
            } => write!(f, "error: cannot read directory {path:?}: {error}"),
            Notice::UnreadableDir { path: None, error } => write!(f, "error: {error}"),
            Notice::StatFailed { path, error } => {
                write!(f, "error: cannot stat {path:?}: {error}")
            }
            Notice::NonUtf8 {
                path,
                is_dir: false,
            } => write!(f, "skipped: file name is not UTF-8: {path:?}"),
            Notice::NonUtf8 { path, is_dir: true } => write!(
                f,
                "skipped: directory name is not UTF-8 (every file below it is skipped): {path:?}"
            ),
            Notice::TooLong { path, key_bytes } => write!(
                f,
                "skipped: key would be {key_bytes} bytes, S3 allows 1024: {path:?}"
            ),
            Notice::Merging { files, runs } => write!(
                f,
                "walk done: {files} files; merging {runs} sorted runs into chunks"
            ),
            Notice::Watching {
                keys,
                watched_dirs,
                unwatched_dirs,
                interval_secs,
                rescan_interval_secs,
            } => write!(
                f,
                "watching: {keys} files, {watched_dirs} directories watched, {unwatched_dirs} without a watch; a set every {interval_secs}s, a full rescan every {rescan_interval_secs}s"
            ),
            Notice::WatchLimit {
                watched_dirs,
                reason,
            } => write!(
                f,
                "warning: watch limit reached after {watched_dirs} directories ({reason}): changes below the directories without a watch are found by the full rescans only"
            ),
            Notice::SetWritten {
                path,
                changed,
                deleted,
                held_back,
                source,
            } => write!(
                f,
                "set {}: changed={changed} deleted={deleted} held-back={held_back} ({source})",
                path.display()
            ),
            Notice::Rescanned {
                files,
                changed,
                deleted,
                elapsed_secs,
                unwatched_dirs,
            } => write!(
                f,
                "rescan done in {elapsed_secs:.1}s: files={files} changed={changed} deleted={deleted} unwatched-dirs={unwatched_dirs}"
            ),
            Notice::WatchWarning { message } => write!(f, "warning: {message}"),
        }
    }
}

/// Where notices and progress go.
pub trait Report: Send + Sync {
    fn notice(&self, notice: &Notice);
    fn progress(&self, progress: &Progress);
}

/// Prints everything on stderr, one line each, prefixed `s3find: `.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrReport;

impl Report for StderrReport {
    fn notice(&self, notice: &Notice) {
        line(&format!("s3find: {notice}\n"));
    }

    fn progress(&self, progress: &Progress) {
        line(&format!("s3find: {progress}\n"));
    }
}

/// Reports nothing (for tests and callers that only want the stats).
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Report for Quiet {
    fn notice(&self, _: &Notice) {}
    fn progress(&self, _: &Progress) {}
}

/// One whole line per `write`, so lines of different threads never mix.
/// A closed stderr is not worth failing a scan over.
fn line(s: &str) {
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

//! Counters shared by the walker threads, and the statistics a scan ends
//! with (printed on stderr, and written as `s3find-summary.json`).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use super::sort::SortStats;

/// Version of the summary file's layout.
pub const SUMMARY_VERSION: u32 = 1;

/// Live counts, updated by every walker thread.
#[derive(Debug, Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub dirs: AtomicU64,
    pub symlink: AtomicU64,
    pub special: AtomicU64,
    pub non_utf8: AtomicU64,
    pub too_long: AtomicU64,
    pub vanished: AtomicU64,
    pub filtered_by_time: AtomicU64,
    pub unreadable_dirs: AtomicU64,
    /// The first [`NAMED_UNREADABLE`] of them, by path.
    pub unreadable: Mutex<Vec<String>>,
    pub stat_failed: AtomicU64,
}

/// How many unreadable directories the summary names (all are counted).
pub const NAMED_UNREADABLE: usize = 100;

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Counters {
    pub fn skipped(&self) -> Skipped {
        Skipped {
            symlink: self.symlink.load(Relaxed),
            special: self.special.load(Relaxed),
            non_utf8: self.non_utf8.load(Relaxed),
            too_long: self.too_long.load(Relaxed),
            vanished: self.vanished.load(Relaxed),
            filtered_by_time: self.filtered_by_time.load(Relaxed),
        }
    }

    /// A directory that could not be listed: counted, and named while
    /// fewer than [`NAMED_UNREADABLE`] are.
    pub fn unreadable_dir(&self, path: &str) {
        bump(&self.unreadable_dirs);
        let mut named = self.unreadable.lock().expect("not poisoned");
        if named.len() < NAMED_UNREADABLE {
            named.push(path.to_owned());
        }
    }

    pub fn errors(&self) -> Errors {
        let mut unreadable = self.unreadable.lock().expect("not poisoned").clone();
        unreadable.sort();
        Errors {
            unreadable_dirs: self.unreadable_dirs.load(Relaxed),
            unreadable,
            stat_failed: self.stat_failed.load(Relaxed),
        }
    }
}

/// Entries that are not keys, by why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// Symbolic links (to files, directories, or nothing); never followed.
    pub symlink: u64,
    /// Sockets, FIFOs, block and character devices.
    pub special: u64,
    /// Regular files whose path is not valid UTF-8, so cannot be an S3 key.
    pub non_utf8: u64,
    /// Regular files whose key would be longer than S3's 1,024 bytes.
    pub too_long: u64,
    /// Files deleted between the directory listing and their `lstat`.
    pub vanished: u64,
    /// Regular files outside the `--later-than` window.
    pub filtered_by_time: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.symlink
            + self.special
            + self.non_utf8
            + self.too_long
            + self.vanished
            + self.filtered_by_time
    }
}

/// Problems that were reported and counted; none of them stops the walk
/// (an unreadable directory fails the scan at its end, unless allowed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Errors {
    /// Directories that could not be listed (their contents are missing
    /// from the key list).
    pub unreadable_dirs: u64,
    /// The first 100 of them, by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// Files whose `lstat` failed for another reason than being gone.
    pub stat_failed: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.unreadable_dirs + self.stat_failed
    }
}

/// The statistics of one scan: `s3find-summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub version: u32,
    /// The scanned directory, as given (lossy if not UTF-8).
    pub root: String,
    pub output_dir: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub elapsed_secs: f64,
    /// `--later-than`, in days, if given.
    pub later_than_days: Option<f64>,
    /// With `--later-than`: files changed before this (Unix seconds) were
    /// filtered out.
    pub cutoff_unix_secs: Option<f64>,
    /// Keys written: one per regular file kept.
    pub files: u64,
    /// Total size of those files; counted with `--sizes` only.
    pub bytes: Option<u64>,
    /// Directories listed, the root included.
    pub dirs: u64,
    pub skipped: Skipped,
    pub errors: Errors,
    /// Chunk files written.
    pub chunks: u32,
    pub sort: SortStats,
    /// The process's peak resident memory (Linux `VmHWM`), if known.
    pub peak_rss_bytes: Option<u64>,
}

/// One progress report, while the walk runs.
#[derive(Debug, Clone)]
pub struct Progress {
    pub files: u64,
    pub dirs: u64,
    pub skipped: u64,
    pub errors: u64,
    pub runs_spilled: u64,
    pub elapsed_secs: f64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.elapsed_secs > 0.0 {
            self.files as f64 / self.elapsed_secs
        } else {
            0.0
        };
        write!(
            f,
            "files={} ({:.0}/s) dirs={} skipped={} errors={} runs={} elapsed={:.0}s",
            self.files,
            rate,
            self.dirs,
            self.skipped,
            self.errors,
            self.runs_spilled,
            self.elapsed_secs
        )
    }
}

/// This process's peak resident set size, from `/proc/self/status`.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Bytes with a binary unit, for humans.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Stats {
    /// The closing report, a few lines for stderr.
    pub fn render(&self) -> String {
        let s = &self.skipped;
        let e = &self.errors;
        let rate = if self.elapsed_secs > 0.0 {
            self.files as f64 / self.elapsed_secs
        } else {
            0.0
        };
        let mut out = format!(
            "s3find: done in {:.1}s: files={} ({:.0}/s){} dirs={} chunks={} in {}\n",
            self.elapsed_secs,
            self.files,
            rate,
            self.bytes
                .map(|b| format!(" bytes={b} ({})", human_bytes(b)))
                .unwrap_or_default(),
            self.dirs,
            self.chunks,
            self.output_dir
        );
        out += &format!(
            "s3find: skipped={}: symlink={} special={} non-utf8={} too-long={} vanished={} filtered-by-time={}\n",
            s.total(),
            s.symlink,
            s.special,
            s.non_utf8,
            s.too_long,
            s.vanished,
            s.filtered_by_time
        );
        out += &format!(
            "s3find: errors={}: unreadable-dirs={} stat-failed={}{}\n",
            e.total(),
            e.unreadable_dirs,
            e.stat_failed,
            if e.total() > 0 {
                " (each reported above; their files are not in the key list; the scan went on)"
            } else {
                ""
            }
        );
        out += &format!(
            "s3find: sort: memory-limit={} runs-spilled={} spilled={} intermediate-merges={} peak-rss={}\n",
            human_bytes(self.sort.memory_limit_bytes),
            self.sort.runs_spilled,
            human_bytes(self.sort.spilled_bytes),
            self.sort.intermediate_merges,
            self.peak_rss_bytes.map_or_else(|| "?".into(), human_bytes)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        let rss = peak_rss_bytes().expect("/proc/self/status has VmHWM");
        assert!(rss > 1024 * 1024, "{rss}");
    }

    #[test]
    fn totals_add_up() {
        let c = Counters::default();
        bump(&c.symlink);
        bump(&c.special);
        bump(&c.filtered_by_time);
        bump(&c.unreadable_dirs);
        assert_eq!(c.skipped().total(), 3);
        assert_eq!(c.errors().total(), 1);
    }
}

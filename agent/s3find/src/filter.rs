//! `--later-than N`: keep only files changed within the last N days.
//!
//! "Changed" is the later of mtime and ctime. A rename (or chmod, or
//! chown) keeps a file's mtime but sets its ctime, so a file moved into
//! the bucket's tree inside the window is selected even though its
//! contents are old. Timestamps in the future count as recent.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: f64 = 86_400.0;

/// A point in time as nanoseconds since the Unix epoch (negative before).
pub type UnixNanos = i128;

/// Keeps files whose max(mtime, ctime) is at or after `cutoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeFilter {
    cutoff: UnixNanos,
}

impl TimeFilter {
    /// The window `[now - days, ∞)`. `days` may be fractional (0.5 is
    /// twelve hours). Refuses negative, NaN and absurdly large values.
    pub fn later_than_days(days: f64, now: UnixNanos) -> Result<Self, String> {
        if !days.is_finite() || days < 0.0 {
            return Err(format!(
                "--later-than must be a number of days, 0 or more (got {days})"
            ));
        }
        // 1,000,000 days is about 2,700 years: anything beyond is a typo.
        if days > 1_000_000.0 {
            return Err(format!("--later-than {days} days is beyond any file's age"));
        }
        let window = (days * SECS_PER_DAY * NANOS_PER_SEC as f64).round() as i128;
        Ok(Self {
            cutoff: now - window,
        })
    }

    /// The oldest change time that is still kept.
    pub fn cutoff(&self) -> UnixNanos {
        self.cutoff
    }

    /// Whether a file with these times is inside the window.
    pub fn keep_times(&self, mtime: UnixNanos, ctime: UnixNanos) -> bool {
        mtime.max(ctime) >= self.cutoff
    }

    /// Whether a file with this (lstat) metadata is inside the window.
    pub fn keep(&self, meta: &Metadata) -> bool {
        self.keep_times(
            to_nanos(meta.mtime(), meta.mtime_nsec()),
            to_nanos(meta.ctime(), meta.ctime_nsec()),
        )
    }
}

/// Seconds and nanoseconds (as `stat` gives them) to nanoseconds.
pub fn to_nanos(secs: i64, nsec: i64) -> UnixNanos {
    i128::from(secs) * NANOS_PER_SEC + i128::from(nsec)
}

/// The current time from the system clock.
pub fn now() -> UnixNanos {
    system_time_nanos(SystemTime::now())
}

pub fn system_time_nanos(t: SystemTime) -> UnixNanos {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `--reference-time` seconds (fractional allowed) to nanoseconds.
pub fn unix_secs_to_nanos(secs: f64) -> Result<UnixNanos, String> {
    if !secs.is_finite() || secs.abs() > 1e12 {
        return Err(format!(
            "--reference-time must be Unix seconds (got {secs})"
        ));
    }
    Ok((secs * NANOS_PER_SEC as f64).round() as i128)
}

/// Nanoseconds to fractional Unix seconds, for the summary.
pub fn nanos_to_secs(n: UnixNanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i128 = 86_400 * NANOS_PER_SEC;
    const NOW: i128 = 1_800_000_000 * NANOS_PER_SEC;

    #[test]
    fn window_edges() {
        let f = TimeFilter::later_than_days(7.0, NOW).unwrap();
        assert_eq!(f.cutoff(), NOW - 7 * DAY);
        assert!(
            f.keep_times(NOW - 7 * DAY, 0),
            "the cutoff itself is inside"
        );
        assert!(!f.keep_times(NOW - 7 * DAY - 1, 0), "one ns older is out");
        assert!(f.keep_times(NOW, NOW));
        assert!(f.keep_times(NOW + DAY, 0), "future mtime counts as recent");
    }

    #[test]
    fn renamed_file_is_selected_by_its_ctime() {
        let f = TimeFilter::later_than_days(1.0, NOW).unwrap();
        let old = NOW - 30 * DAY;
        assert!(!f.keep_times(old, old), "untouched old file");
        assert!(
            f.keep_times(old, NOW - DAY / 2),
            "renamed inside the window"
        );
        assert!(
            f.keep_times(NOW - DAY / 2, old),
            "written inside the window"
        );
    }

    #[test]
    fn fractional_and_zero_days() {
        let f = TimeFilter::later_than_days(0.5, NOW).unwrap();
        assert_eq!(f.cutoff(), NOW - DAY / 2);
        let f = TimeFilter::later_than_days(0.0, NOW).unwrap();
        assert!(f.keep_times(NOW, 0));
        assert!(!f.keep_times(NOW - 1, NOW - 1));
    }

    #[test]
    fn bad_values_are_refused() {
        for d in [-1.0, f64::NAN, f64::INFINITY, 2e6] {
            assert!(TimeFilter::later_than_days(d, NOW).is_err(), "{d}");
        }
        assert!(unix_secs_to_nanos(f64::NAN).is_err());
        assert_eq!(unix_secs_to_nanos(1.5).unwrap(), 1_500_000_000);
    }

    #[test]
    fn metadata_uses_the_later_of_mtime_and_ctime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let file = std::fs::File::create(&p).unwrap();
        let t0 = SystemTime::now();
        file.set_modified(t0 - std::time::Duration::from_secs(30 * 86_400))
            .unwrap();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        // Setting the mtime just set the ctime to now: max(mtime, ctime) is
        // recent, so a one-day window keeps the file although its mtime is
        // 30 days old.
        assert!(TimeFilter::later_than_days(1.0, now()).unwrap().keep(&meta));
        // A window that starts after the ctime (reference time two days
        // ahead, one day long) drops it...
        let ahead = system_time_nanos(t0) + 2 * DAY;
        let f = TimeFilter::later_than_days(1.0, ahead).unwrap();
        assert!(!f.keep(&meta));
        // ...unless its mtime is inside that window.
        file.set_modified(t0 + std::time::Duration::from_secs(36 * 3600))
            .unwrap();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert!(f.keep(&meta));
    }
}

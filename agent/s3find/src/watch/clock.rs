//! The watch's readings of the clock: when a set's window ends, for its
//! manifest, and whether a file is still being written.

use std::time::Duration;

use crate::filter;
use crate::state::Meta;

/// A point in time, for manifests.
#[derive(Debug, Clone)]
pub(super) struct Stamp {
    pub(super) rfc3339: String,
    pub(super) unix: f64,
}

impl Stamp {
    pub(super) fn now() -> Self {
        let t = time::OffsetDateTime::now_utc();
        Self {
            rfc3339: t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            unix: t.unix_timestamp_nanos() as f64 / 1e9,
        }
    }
}

/// Whether a file is still being written: its mtime is within `quiet`
/// of now. An mtime further in the future than that (clock skew between
/// hosts) does not hold a file back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Young {
    after: i64,
    until: i64,
}

impl Young {
    fn at(now: filter::UnixNanos, quiet: Duration) -> Self {
        let q = quiet.as_nanos() as i128;
        let clamp = |n: i128| n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        Self {
            after: clamp(now - q),
            until: clamp(now + q),
        }
    }

    pub(super) fn now(quiet: Duration) -> Self {
        Self::at(filter::now(), quiet)
    }

    pub(super) fn is(&self, m: &Meta) -> bool {
        m.mtime > self.after && m.mtime <= self.until
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::watch) const S: i64 = 1_000_000_000;

    pub(in crate::watch) fn meta(size: u64, changed: i64, mtime: i64) -> Meta {
        Meta {
            size,
            changed,
            mtime,
        }
    }

    #[test]
    fn young_is_within_quiet_of_now() {
        let now = 1_000 * S as i128;
        let y = Young::at(now, Duration::from_secs(5));
        assert!(y.is(&meta(0, 0, 998 * S)));
        assert!(!y.is(&meta(0, 0, 995 * S)), "exactly quiet old: settled");
        assert!(y.is(&meta(0, 0, 1_004 * S)), "a little ahead: skew");
        assert!(!y.is(&meta(0, 0, 2_000 * S)), "far ahead: not held forever");
        let none = Young::at(now, Duration::ZERO);
        assert!(!none.is(&meta(0, 0, 1_000 * S)));
    }
}

//! Pass counters and the WEKA progress line:
//!
//! `obj=1234 :: ign=56 exist=89 work=123 [45% ~2h:34m:12s] :: fail=2 skip(dn=3 up=4) dnld=567 (12.3/s) dl.byt=1.2GB (45MB/s) upld=560 (12.1/s) ul.byt=1.1GB (43MB/s)`

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counters of one pass, shared by every worker.
#[derive(Default)]
pub struct Stats {
    pub obj: AtomicU64,
    pub ign: AtomicU64,
    pub exist: AtomicU64,
    pub work: AtomicU64,
    pub fail: AtomicU64,
    pub skip_dn: AtomicU64,
    pub skip_up: AtomicU64,
    pub dnld: AtomicU64,
    pub dl_bytes: std::sync::Arc<AtomicU64>,
    pub upld: AtomicU64,
    pub ul_bytes: std::sync::Arc<AtomicU64>,
    /// Keys a dry run would have copied.
    pub would_copy: AtomicU64,
    /// Objects copied without their tags (the destination has no tagging).
    pub tags_dropped: AtomicU64,
    /// Keys this process will look at, when known up front (key lists).
    pub total_hint: AtomicU64,
}

/// A consistent-enough reading of the counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Snapshot {
    pub obj: u64,
    pub ign: u64,
    pub exist: u64,
    pub work: u64,
    pub fail: u64,
    pub skip_dn: u64,
    pub skip_up: u64,
    pub dnld: u64,
    pub dl_bytes: u64,
    pub upld: u64,
    pub ul_bytes: u64,
    pub would_copy: u64,
    pub tags_dropped: u64,
    pub total_hint: u64,
}

impl Snapshot {
    /// The object counts by their `result` label, as both s3migrate's and
    /// the agent's metrics name them (a dry run's `would_copy` is
    /// s3migrate's alone).
    pub fn by_result(&self) -> [(&'static str, u64); 7] {
        [
            ("seen", self.obj),
            ("ignored", self.ign),
            ("existing", self.exist),
            ("copied", self.upld),
            ("failed", self.fail),
            ("skipped_source_gone", self.skip_dn),
            ("skipped_dest_newer", self.skip_up),
        ]
    }
}

impl Stats {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            obj: self.obj.load(Relaxed),
            ign: self.ign.load(Relaxed),
            exist: self.exist.load(Relaxed),
            work: self.work.load(Relaxed),
            fail: self.fail.load(Relaxed),
            skip_dn: self.skip_dn.load(Relaxed),
            skip_up: self.skip_up.load(Relaxed),
            dnld: self.dnld.load(Relaxed),
            dl_bytes: self.dl_bytes.load(Relaxed),
            upld: self.upld.load(Relaxed),
            ul_bytes: self.ul_bytes.load(Relaxed),
            would_copy: self.would_copy.load(Relaxed),
            tags_dropped: self.tags_dropped.load(Relaxed),
            total_hint: self.total_hint.load(Relaxed),
        }
    }
}

impl Snapshot {
    /// Keys whose handling has ended, one way or another.
    pub fn handled(&self) -> u64 {
        self.ign
            + self.exist
            + self.fail
            + self.skip_dn
            + self.skip_up
            + self.upld
            + self.would_copy
    }
}

/// Formats the progress line. Rates are over `elapsed` since the pass began.
pub fn line(s: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let total = s.total_hint.max(s.obj);
    let done = s.handled();
    let pct = (done * 100).checked_div(total).map_or(0, |p| p.min(100));
    let eta = if done >= total {
        fmt_hms(Duration::ZERO)
    } else if done == 0 {
        "?".to_owned()
    } else {
        let per_key = secs / done as f64;
        fmt_hms(Duration::from_secs_f64(per_key * (total - done) as f64))
    };
    format!(
        "obj={} :: ign={} exist={} work={} [{}% ~{}] :: fail={} skip(dn={} up={}) dnld={} ({:.1}/s) dl.byt={} ({}/s) upld={} ({:.1}/s) ul.byt={} ({}/s)",
        s.obj,
        s.ign,
        s.exist,
        s.work,
        pct,
        eta,
        s.fail,
        s.skip_dn,
        s.skip_up,
        s.dnld,
        s.dnld as f64 / secs,
        fmt_bytes(s.dl_bytes as f64),
        fmt_bytes(s.dl_bytes as f64 / secs),
        s.upld,
        s.upld as f64 / secs,
        fmt_bytes(s.ul_bytes as f64),
        fmt_bytes(s.ul_bytes as f64 / secs),
    )
}

/// `2h:34m:12s`.
pub fn fmt_hms(d: Duration) -> String {
    let t = d.as_secs();
    format!("{}h:{:02}m:{:02}s", t / 3600, (t / 60) % 60, t % 60)
}

/// Decimal units, as the WEKA line shows them: `512B`, `1.2GB`, `45MB`.
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 || v >= 10.0 {
        format!("{}{}", v.round() as u64, UNITS[u])
    } else {
        format!("{:.1}{}", v, UNITS[u])
    }
}

/// Prints the line: refreshed in place on a terminal, one line per
/// interval otherwise.
pub struct Printer {
    tty: bool,
    interval: Duration,
    last: Option<Instant>,
}

impl Printer {
    pub fn new(interval: Duration) -> Self {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        Self {
            tty,
            interval: if tty {
                Duration::from_secs(1)
            } else {
                interval
            },
            last: None,
        }
    }

    pub fn tick(&self) -> Duration {
        if self.tty {
            Duration::from_secs(1)
        } else {
            self.interval.min(Duration::from_secs(1))
        }
    }

    pub fn maybe_print(&mut self, text: &str) {
        let now = Instant::now();
        if self.last.is_some_and(|l| now - l < self.interval) {
            return;
        }
        self.last = Some(now);
        if self.tty {
            eprint!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }

    pub fn finish(&mut self, text: &str) {
        if self.tty {
            eprintln!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_match_the_weka_sample() {
        assert_eq!(fmt_bytes(1.2e9), "1.2GB");
        assert_eq!(fmt_bytes(45e6), "45MB");
        assert_eq!(fmt_bytes(512.0), "512B");
        assert_eq!(
            fmt_hms(Duration::from_secs(2 * 3600 + 34 * 60 + 12)),
            "2h:34m:12s"
        );
    }

    #[test]
    fn line_has_every_field() {
        let s = Snapshot {
            obj: 10,
            ign: 1,
            exist: 2,
            upld: 3,
            dnld: 3,
            ..Default::default()
        };
        let l = line(&s, Duration::from_secs(2));
        assert!(
            l.starts_with("obj=10 :: ign=1 exist=2 work=0 [60% ~0h:00m:01s] :: fail=0"),
            "{l}"
        );
    }
}

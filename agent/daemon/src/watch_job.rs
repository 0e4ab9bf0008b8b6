//! A watch job on the s3find watch engine (`s3find --watch`): the full
//! scan into OUTPUT_DIR, then every interval an incremental set in
//! `OUTPUT_DIR/incr/`. It runs until told to stop (a cancel, an agent
//! stop): the stop flag is set and the engine finishes its current set.
//! A watch cut by an agent stop runs again when the agent starts, with
//! `--overwrite`: the engine compares its new scan with the state the
//! last run saved, so what changed meanwhile is a set of its own.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ferry_control::jobs::{WatchOptions, WatchSummaryView};

use super::find_job::ScanReport;
use super::metrics;
use super::{RunEnd, joblog};
use crate::run::Common;
use s3find::{self, Notice, Report, WatchStats, stats::Progress};

/// How often the engine reports progress during its scans.
const ENGINE_PROGRESS: Duration = Duration::from_secs(1);
/// Progress lines in the job's log at most this often.
const LOG_PROGRESS: Duration = Duration::from_secs(10);

/// The engine's options for a spec; `rerun` continues after an earlier
/// run (replacing its list, comparing with its saved state).
pub fn options(o: &WatchOptions, rerun: bool) -> Result<s3find::WatchOptions, String> {
    let mut o = o.clone();
    o.overwrite |= rerun;
    let mut w = s3find::watch_options(&o).map_err(|e| e.to_string())?;
    w.scan.progress_every = Some(ENGINE_PROGRESS);
    Ok(w)
}

/// The watch's counts from its summary in `folder`, once written.
pub fn summary(folder: &Path) -> Option<WatchSummaryView> {
    let text = std::fs::read(folder.join(s3find::watch::WATCH_SUMMARY_FILE)).ok()?;
    let s: WatchStats = serde_json::from_slice(&text).ok()?;
    Some(view(&s))
}

fn view(s: &WatchStats) -> WatchSummaryView {
    WatchSummaryView {
        initial_files: s.initial.files,
        initial_chunks: s.initial.chunks,
        sets: s.sets,
        last_set: s.last_set.clone(),
        changed: s.changed,
        deleted: s.deleted,
        held_back: s.held_back,
        rescans: s.rescans,
        state_files: s.state_files,
        watched_dirs: s.watch.watched_dirs,
        unwatched_dirs: s.watch.unwatched_dirs,
        elapsed_secs: s.elapsed_secs,
    }
}

/// One run of a watch of `spec`, until it is stopped (`stop` set: it ends
/// after its current set) or fails.
pub async fn run(spec: WatchOptions, stop: Arc<AtomicBool>, common: Common) -> RunEnd {
    let opts = match options(&spec, common.rerun()) {
        Ok(o) => o,
        Err(e) => return RunEnd::Failed(e),
    };
    common.note_rerun("watching again: the new scan is compared with the state the last run saved");
    let report = JobReport {
        scan: ScanReport::new(&common, LOG_PROGRESS),
        sets: AtomicU64::new(0),
        changed: AtomicU64::new(0),
        deleted: AtomicU64::new(0),
    };
    let ran = tokio::task::spawn_blocking(move || s3find::watch(opts, stop, &report)).await;
    match ran {
        Ok(Ok(stats)) => {
            let v = view(&stats);
            metrics::watch_sets(&common.labels, &v);
            let line = format!(
                "watch ended after {:.1}s: sets={} changed={} deleted={} held-back={} rescans={}",
                v.elapsed_secs, v.sets, v.changed, v.deleted, v.held_back, v.rescans
            );
            joblog::append(&common.log(), &line);
            common.live.set_progress(line);
            if stats.stopped {
                RunEnd::Stopped
            } else {
                RunEnd::Failed("the watch ended without a stop request".into())
            }
        }
        Ok(Err(s3find::FindError::Stopped)) => RunEnd::Stopped,
        Ok(Err(e)) => RunEnd::Failed(e.to_string()),
        Err(e) => RunEnd::Failed(format!("the watch task failed: {e}")),
    }
}

/// Routes the engine's notices to the job's log, and its progress and
/// sets to the job's view and metrics.
struct JobReport {
    scan: ScanReport,
    sets: AtomicU64,
    changed: AtomicU64,
    deleted: AtomicU64,
}

impl Report for JobReport {
    fn notice(&self, notice: &Notice) {
        self.scan.notice(notice);
        let (live, labels) = (&self.scan.live, &self.scan.labels);
        match notice {
            Notice::Watching { keys, .. } => {
                metrics::find_progress(labels, *keys);
                live.set_progress(format!("watching: {keys} files; no set yet"));
            }
            Notice::SetWritten {
                path,
                changed,
                deleted,
                ..
            } => {
                let sets = self.sets.fetch_add(1, Ordering::Relaxed) + 1;
                let c = self.changed.fetch_add(*changed, Ordering::Relaxed) + changed;
                let d = self.deleted.fetch_add(*deleted, Ordering::Relaxed) + deleted;
                let v = WatchSummaryView {
                    sets,
                    changed: c,
                    deleted: d,
                    ..Default::default()
                };
                metrics::watch_sets(labels, &v);
                let name = path.file_name().unwrap_or(path.as_os_str());
                live.set_progress(format!(
                    "watching: sets={sets} (last {}) changed={c} deleted={d}",
                    name.to_string_lossy()
                ));
            }
            Notice::Rescanned { files, .. } => metrics::find_progress(labels, *files),
            _ => {}
        }
    }

    fn progress(&self, p: &Progress) {
        self.scan.progress(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &str, out: &str) -> WatchOptions {
        serde_json::from_value(serde_json::json!({"directory": dir, "output_dir": out})).unwrap()
    }

    #[test]
    fn options_follow_s3find() {
        let mut o = opts("/mnt/b", "/lists/b");
        o.interval = 7;
        o.quiet_secs = 0;
        let w = options(&o, false).unwrap();
        assert_eq!(w.scan.root, Path::new("/mnt/b"));
        assert_eq!(w.interval, Duration::from_secs(7));
        assert_eq!(w.quiet, Duration::ZERO);
        assert_eq!(w.rescan_interval, Duration::from_secs(3600));
        assert!(!w.scan.overwrite);
        assert!(options(&o, true).unwrap().scan.overwrite);
        o.interval = 0;
        assert!(options(&o, false).is_err());
    }
}

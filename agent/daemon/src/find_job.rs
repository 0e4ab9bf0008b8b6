//! A scan job on the s3find engine. Its options are s3find's own
//! (`FindOptions`), checked by the same rules. A scan has no checkpoint: it cannot pause or stop midway,
//! and a scan cut by an agent stop runs again from the start (replacing
//! its own partial output, which s3find never shows as a whole list).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_control::FindOptions;
use ferry_control::jobs::FindSummaryView;

use super::metrics::{self, JobLabels};
use super::{LiveInfo, RunEnd, joblog};
use crate::run::Common;
use s3find::{self, Notice, Report, stats::Progress};

/// How often the engine reports progress to the job (metrics, `show`).
const ENGINE_PROGRESS: Duration = Duration::from_secs(1);

/// s3find's options for a spec; `rerun` replaces a cut run's output.
pub fn options(o: &FindOptions, rerun: bool) -> Result<s3find::Options, String> {
    let mut o = o.clone();
    o.overwrite |= rerun;
    o.progress_interval_secs = ENGINE_PROGRESS.as_secs();
    s3find::scan_options(&o).map_err(|e| e.to_string())
}

/// One run of a scan of `spec`, to its end.
pub async fn run(spec: FindOptions, common: Common) -> RunEnd {
    let opts = match options(&spec, common.rerun()) {
        Ok(o) => o,
        Err(e) => return RunEnd::Failed(e),
    };
    common.note_rerun("scanning again from the start (a scan has no checkpoint)");
    let every = Duration::from_secs(spec.progress_interval_secs);
    let report = ScanReport::new(&common, every);
    let scan = tokio::task::spawn_blocking(move || s3find::run_with(&opts, &report)).await;
    match scan {
        Ok(Ok(stats)) => {
            let summary = FindSummaryView {
                files: stats.files,
                bytes: stats.bytes,
                dirs: stats.dirs,
                skipped: stats.skipped.total(),
                errors: stats.errors.total(),
                chunks: stats.chunks,
                elapsed_secs: stats.elapsed_secs,
            };
            metrics::find_done(&common.labels, &summary);
            joblog::append(
                &common.log(),
                &format!(
                    "scan done in {:.1}s: files={} dirs={} skipped={} errors={} chunks={}",
                    summary.elapsed_secs,
                    summary.files,
                    summary.dirs,
                    summary.skipped,
                    summary.errors,
                    summary.chunks
                ),
            );
            common.live.set_progress(format!(
                "files={} dirs={} skipped={} errors={} chunks={} elapsed={:.0}s",
                summary.files,
                summary.dirs,
                summary.skipped,
                summary.errors,
                summary.chunks,
                summary.elapsed_secs
            ));
            RunEnd::Completed {
                find: Some(summary),
            }
        }
        Ok(Err(e)) => RunEnd::Failed(e.to_string()),
        Err(e) => RunEnd::Failed(format!("the scan task failed: {e}")),
    }
}

/// Routes the engine's notices to the job's log and its progress to the
/// job's view and metrics: a scan job's report, and the scanning part of a
/// watch job's.
pub(crate) struct ScanReport {
    log: PathBuf,
    pub(crate) live: Arc<LiveInfo>,
    pub(crate) labels: JobLabels,
    /// Progress lines in the log this often; zero: none.
    every: Duration,
    logged: Mutex<Option<Instant>>,
}

impl ScanReport {
    pub(crate) fn new(common: &Common, every: Duration) -> ScanReport {
        ScanReport {
            log: common.log(),
            live: common.live.clone(),
            labels: common.labels.clone(),
            every,
            logged: Mutex::new(None),
        }
    }
}

impl Report for ScanReport {
    fn notice(&self, notice: &Notice) {
        joblog::append(&self.log, &format!("s3find: {notice}"));
    }

    fn progress(&self, p: &Progress) {
        let line = p.to_string();
        metrics::find_progress(&self.labels, p.files);
        self.live.set_progress(line.clone());
        if self.every.is_zero() {
            return;
        }
        let mut logged = self.logged.lock().expect("report lock");
        if logged.is_none_or(|t| t.elapsed() >= self.every) {
            *logged = Some(Instant::now());
            joblog::append(&self.log, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &str, out: &str) -> FindOptions {
        serde_json::from_value(serde_json::json!({"directory": dir, "output_dir": out})).unwrap()
    }

    use std::path::Path;

    #[test]
    fn options_follow_s3find() {
        let o = options(&opts("/mnt/b", "/lists/b"), false).unwrap();
        assert_eq!(o.root, Path::new("/mnt/b"));
        assert!(!o.overwrite);
        assert_eq!(o.memory_bytes, 256 << 20);
        assert!(
            options(&opts("/mnt/b", "/lists/b"), true)
                .unwrap()
                .overwrite
        );
        let mut bad = opts("/mnt/b", "/l");
        bad.later_than = Some(-1.0);
        assert!(options(&bad, false).is_err());
        // A directory that starts with a dash is a directory.
        let o = options(&opts("/-odd", "/l"), false).unwrap();
        assert_eq!(o.root, Path::new("/-odd"));
    }
}

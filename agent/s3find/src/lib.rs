//! s3find: scan a mounted bucket filesystem into sorted key-list chunks
//! (ARCHITECTURE.md, "Key lists"), which `s3migrate --src-folder` (or
//! `--dest-folder`, for the target's side) reads.
//!
//! The pipeline, each stage in its own module:
//! - [`walk`]: ripgrep's parallel walker with every filter off; each
//!   regular file becomes one key (its path below the root, `/`-joined);
//!   symlinks, special files, non-UTF-8 names and over-long keys are
//!   counted and skipped; unreadable directories are reported, counted,
//!   and never stop the scan.
//! - [`filter`]: `--later-than N` keeps files whose max(mtime, ctime) is
//!   within the last N days.
//! - [`sort`] ([`spill`], [`merge`]): an external sort in bounded memory:
//!   sorted runs spill to disk, a k-way merge emits every key once, in
//!   byte order.
//! - [`output`]: the chunks ([`ferry_control::keylist::KeyListWriter`]) and how a
//!   new list replaces an old one without ever looking whole when it is not.
//! - [`stats`], [`report`]: counts, the progress line, the summary file.
//! - [`watch`] ([`state`], [`incr`]): `s3find --watch`, a full scan, then
//!   an incremental set of created, modified and deleted keys every
//!   interval, from inotify events and periodic full rescans.
//!
//! [`run`] is the whole scan and [`watch::watch`] the watch mode; the
//! `s3find` binary and the agent's find and watch jobs call them.

pub mod args;
pub mod filter;
pub mod incr;
pub mod merge;
pub mod output;
pub mod report;
pub mod sort;
pub mod spill;
pub mod state;
pub mod stats;
pub mod walk;
pub mod watch;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use args::{Args, scan_options, watch_options};
pub use report::{Notice, Quiet, Report, StderrReport};
pub use stats::Stats;
pub use watch::{WatchOptions, WatchStats, watch};

use ferry_control::keylist::{KeyListError, KeyListWriter};
use filter::TimeFilter;
use output::{CHUNK_PREFIX, Output};
use sort::{ExternalSorter, SortConfig};
use stats::{Counters, Progress, SUMMARY_VERSION};

/// Why a scan did not produce a key list.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// Bad input, found before the scan started (exit code 2).
    #[error("{0}")]
    Input(String),
    /// The scan could not finish: scratch space or output could not be
    /// written (exit code 1). The old key list, if any, is untouched.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    KeyList(#[from] KeyListError),
    /// A broken internal invariant (exit code 1).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Stopped (TERM/INT) before a scan finished: nothing was written
    /// (exit code 1).
    #[error("stopped before the scan finished: no key list written")]
    Stopped,
    /// Some directories could not be read, so a key list would miss their
    /// files: none was written (exit code 1); the summary names them.
    #[error(
        "{count} directories could not be read ({}), so the key list would miss their \
         files: none was written (an earlier one is left as it was); make them readable to \
         this user, or pass --allow-unreadable to write the list without them",
        named.join(", ")
    )]
    Unreadable { count: u64, named: Vec<String> },
}

impl FindError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Input(_) => 2,
            _ => 1,
        }
    }
}

/// What turns an I/O error on `path` into a [`FindError::Io`] saying what
/// was being done: `.map_err(io_err("cannot write", &path))`.
pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> FindError + 'a {
    move |source| FindError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Everything a scan needs; see [`Args`] for the command-line form.
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory to scan (a mounted bucket).
    pub root: PathBuf,
    /// Where the chunks go.
    pub output_dir: PathBuf,
    /// Keep only files changed within this many days (fractions allowed).
    pub later_than_days: Option<f64>,
    /// The end of the `--later-than` window, as Unix nanoseconds; `None`:
    /// the clock at the start of the scan.
    pub reference_time: Option<filter::UnixNanos>,
    /// Memory for sorting, in bytes.
    pub memory_bytes: usize,
    /// Walker threads; 0 picks one per core, at most 12.
    pub threads: usize,
    /// Count the listed files' bytes (an lstat per file).
    pub sizes: bool,
    /// Replace the chunks of an earlier scan in `output_dir`.
    pub overwrite: bool,
    /// Write the key list even if some directories could not be read
    /// (else the scan fails: [`FindError::Unreadable`]).
    pub allow_unreadable: bool,
    /// How often to report progress; `None`: never.
    pub progress_every: Option<Duration>,
}

impl Options {
    pub fn new(root: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            output_dir: output_dir.into(),
            later_than_days: None,
            reference_time: None,
            memory_bytes: args::DEFAULT_MEMORY_MB as usize * 1024 * 1024,
            threads: 0,
            sizes: false,
            overwrite: false,
            allow_unreadable: false,
            progress_every: None,
        }
    }
}

/// Runs a scan, reporting on stderr.
pub fn run(opts: &Options) -> Result<Stats, FindError> {
    run_with(opts, &StderrReport)
}

/// Runs a scan, reporting to `report`.
pub fn run_with(opts: &Options, report: &dyn Report) -> Result<Stats, FindError> {
    let root = check_root(&opts.root)?;
    let filter = match opts.later_than_days {
        Some(days) => Some(
            TimeFilter::later_than_days(days, opts.reference_time.unwrap_or_else(filter::now))
                .map_err(FindError::Input)?,
        ),
        None => None,
    };
    refuse_output_inside_root(&root, &opts.output_dir)?;
    let out = Output::prepare(&opts.output_dir, opts.overwrite)?;
    scan_into(opts, &root, filter, &out, report, ScanHooks::default())
}

/// The current time as RFC 3339 (UTC).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What the watch mode adds to a scan: walk extras and, with
/// `walk.meta`, a callback that gets every file's record in key order,
/// after its key went into the chunks.
#[derive(Default)]
pub(crate) struct ScanHooks<'a> {
    pub walk: walk::WalkExtras<'a>,
    #[allow(clippy::type_complexity)]
    pub on_record: Option<&'a mut dyn FnMut(&str, &state::Meta) -> Result<(), FindError>>,
}

/// The scan itself, into an output folder already prepared (and locked).
pub(crate) fn scan_into(
    opts: &Options,
    root: &Path,
    filter: Option<TimeFilter>,
    out: &Output,
    report: &dyn Report,
    mut hooks: ScanHooks<'_>,
) -> Result<Stats, FindError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let counters = Counters::default();
    let sorter = walk_and_sort(
        root,
        filter,
        opts,
        &counters,
        &out.runs_dir(),
        report,
        hooks.walk,
    )?;
    if hooks
        .walk
        .stop
        .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    {
        return Err(FindError::Stopped);
    }

    let files = counters.files.load(Relaxed);
    if sorter.runs_spilled() > 0 {
        report.notice(&Notice::Merging {
            files,
            runs: sorter.runs_spilled(),
        });
    }
    let mut writer = KeyListWriter::create(&out.staging_dir(), CHUNK_PREFIX)?;
    let meta = hooks.walk.meta;
    let sort_stats = sorter.finish(&mut |rec| {
        let (key, m) = if meta {
            let (k, m) = state::decode_record(rec)
                .ok_or(FindError::Internal("a sorted state record is malformed"))?;
            (k, Some(m))
        } else {
            (rec, None)
        };
        let key = std::str::from_utf8(key)
            .map_err(|_| FindError::Internal("a sorted key is not UTF-8"))?;
        writer.push(key)?;
        if let (Some(m), Some(f)) = (m, hooks.on_record.as_mut()) {
            f(key, &m)?;
        }
        Ok(())
    })?;
    let chunks = writer.finish()?;
    if sort_stats.keys != files {
        // Two files cannot have the same path: a difference is a bug.
        return Err(FindError::Internal(
            "the key list does not hold one key per file found",
        ));
    }
    let errors = counters.errors();
    let refused = errors.unreadable_dirs > 0 && !opts.allow_unreadable;
    if !refused {
        out.commit()?;
    }
    let stats = Stats {
        version: SUMMARY_VERSION,
        root: opts.root.to_string_lossy().into_owned(),
        output_dir: opts.output_dir.to_string_lossy().into_owned(),
        started_at,
        elapsed_secs: started.elapsed().as_secs_f64(),
        later_than_days: opts.later_than_days,
        cutoff_unix_secs: filter.map(|f| filter::nanos_to_secs(f.cutoff())),
        files,
        bytes: opts.sizes.then(|| counters.bytes.load(Relaxed)),
        dirs: counters.dirs.load(Relaxed),
        skipped: counters.skipped(),
        errors,
        chunks: if refused { 0 } else { chunks },
        sort: sort_stats,
        peak_rss_bytes: stats::peak_rss_bytes(),
    };
    let json = serde_json::to_vec_pretty(&stats).expect("stats serialize");
    out.write_summary(&json)?;
    if refused {
        return Err(FindError::Unreadable {
            count: stats.errors.unreadable_dirs,
            named: stats.errors.unreadable,
        });
    }
    Ok(stats)
}

/// The walk feeds the sorter through a bounded channel; a third thread
/// reports progress. Returns the sorter once every file is in it.
pub(crate) fn walk_and_sort(
    root: &Path,
    filter: Option<TimeFilter>,
    opts: &Options,
    counters: &Counters,
    runs_dir: &Path,
    report: &dyn Report,
    extras: walk::WalkExtras<'_>,
) -> Result<ExternalSorter, FindError> {
    let started = Instant::now();
    let mut sorter = ExternalSorter::new(runs_dir, SortConfig::with_memory(opts.memory_bytes));
    let (tx, rx) = mpsc::sync_channel::<walk::Batch>(walk::CHANNEL_BATCHES);
    // Nothing is ever sent on this channel: dropping `stop_progress` is the
    // signal (the receiver sees it disconnected). A rendezvous channel is
    // bound enough, and nothing can pile up in it.
    let (stop_progress, progress_rx) = mpsc::sync_channel::<()>(0);
    let runs_spilled = AtomicU64::new(0);
    std::thread::scope(|s| {
        // The sorter takes batches until every walker is done (or fails,
        // which closes the channel and stops the walkers).
        let sorter_thread = s.spawn(|| -> Result<(), FindError> {
            for batch in rx {
                for key in walk::batch_keys(&batch) {
                    sorter.push(key)?;
                }
                runs_spilled.store(sorter.runs_spilled(), Relaxed);
            }
            Ok(())
        });
        if let Some(every) = opts.progress_every {
            let runs_spilled = &runs_spilled;
            s.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = progress_rx.recv_timeout(every) {
                    report.progress(&Progress {
                        files: counters.files.load(Relaxed),
                        dirs: counters.dirs.load(Relaxed),
                        skipped: counters.skipped().total(),
                        errors: counters.errors().total(),
                        runs_spilled: runs_spilled.load(Relaxed),
                        elapsed_secs: started.elapsed().as_secs_f64(),
                    });
                }
            });
        }
        let ctx = walk::WalkCtx {
            root,
            filter,
            sizes: opts.sizes,
            counters,
            report,
            tx,
            extras,
        };
        walk::walk(&ctx, opts.threads);
        drop(ctx); // closes the channel: the sorter sees the end
        let result = sorter_thread
            .join()
            .unwrap_or(Err(FindError::Internal("the sorter thread panicked")));
        drop(stop_progress);
        result
    })?;
    Ok(sorter)
}

/// The root must be a directory we can list. A symlink to a directory is
/// resolved (symlinks *below* the root are never followed).
pub(crate) fn check_root(root: &Path) -> Result<PathBuf, FindError> {
    let bad = |why: String| FindError::Input(format!("directory {}: {why}", root.display()));
    let meta = std::fs::metadata(root).map_err(|e| bad(e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad("not a directory".into()));
    }
    std::fs::read_dir(root).map_err(|e| bad(format!("cannot list it: {e}")))?;
    let is_link = std::fs::symlink_metadata(root)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if is_link {
        std::fs::canonicalize(root).map_err(|e| bad(e.to_string()))
    } else {
        Ok(root.to_owned())
    }
}

/// An output folder inside the scanned tree would list its own chunks as
/// keys (and copy them into the bucket).
pub(crate) fn refuse_output_inside_root(root: &Path, output_dir: &Path) -> Result<(), FindError> {
    let Ok(root) = std::fs::canonicalize(root) else {
        return Ok(());
    };
    // The output folder may not exist yet: check its nearest ancestor that does.
    let mut probe = if output_dir.is_absolute() {
        output_dir.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| FindError::Input(format!("cannot resolve output_dir: {e}")))?
            .join(output_dir)
    };
    let mut below = Vec::new();
    let existing = loop {
        match std::fs::canonicalize(&probe) {
            Ok(p) => break p,
            Err(_) => {
                let Some(name) = probe.file_name() else {
                    return Ok(());
                };
                below.push(name.to_owned());
                if !probe.pop() {
                    return Ok(());
                }
            }
        }
    };
    let full = below.iter().rev().fold(existing, |p, n| p.join(n));
    if full.starts_with(&root) {
        return Err(FindError::Input(format!(
            "output_dir {} is inside the scanned directory {}: its chunks would be listed as keys; put it elsewhere",
            output_dir.display(),
            root.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_inside_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for out in [
            root.join("lists"),
            root.join("sub/new/deeper"),
            root.clone(),
        ] {
            let err = refuse_output_inside_root(&root, &out).unwrap_err();
            assert!(matches!(err, FindError::Input(_)), "{err}");
        }
        refuse_output_inside_root(&root, &dir.path().join("lists")).unwrap();
        refuse_output_inside_root(&root, &dir.path().join("tree-lists")).unwrap();
    }

    #[test]
    fn small_tree_end_to_end_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        for (p, body) in [("b/2", "22"), ("a", "1"), ("b/1", ""), (".hidden", "h")] {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "*\n").unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        let out = dir.path().join("out");
        let stats = run_with(&Options::new(&root, &out), &Quiet).unwrap();
        assert_eq!(stats.files, 5);
        // Sizes cost an lstat per file: counted only when asked.
        assert_eq!(stats.bytes, None);
        let sized = Options {
            sizes: true,
            overwrite: true,
            ..Options::new(&root, &out)
        };
        let stats = run_with(&sized, &Quiet).unwrap();
        assert_eq!(stats.bytes, Some(6));
        assert_eq!(stats.dirs, 2);
        assert_eq!(stats.skipped.symlink, 1);
        assert_eq!(stats.chunks, 1);
        let mut r = ferry_control::keylist::KeyListReader::open(&out).unwrap();
        let mut keys = Vec::new();
        while let Some(k) = r.next_key().unwrap() {
            keys.push(k);
        }
        assert_eq!(keys, [".gitignore", ".hidden", "a", "b/1", "b/2"]);
        let summary: Stats =
            serde_json::from_slice(&std::fs::read(out.join(output::SUMMARY_FILE)).unwrap())
                .unwrap();
        assert_eq!(summary, stats);
        // The scratch folder is gone; only chunks, summary and lock remain.
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".s3find.lock", "chunk-000000.keys", "s3find-summary.json"]
        );
    }
}

//! `s3find --watch`: a full scan (the one-shot scan, into `OUTPUT_DIR`),
//! then, every interval, an incremental set of the keys created or
//! modified and of the keys deleted since the last set ([`super::incr`]).
//!
//! **Events are a hint, never the truth.** On network and cluster
//! filesystems (NFS, WEKA) a change made on another host raises no local
//! event, and the kernel caps the number of inotify watches. So:
//!
//! - Every full scan records each file's (key, size, max(mtime, ctime),
//!   mtime) in a sorted state file on disk ([`super::state`]). A full
//!   rescan runs every `--rescan-interval`; its records are merged with the
//!   previous state (two sorted streams, bounded memory), which finds what
//!   events missed.
//! - Between rescans, inotify events (one non-recursive watch per
//!   directory, added as the walks meet directories) name paths; at the
//!   next interval each named path is looked at again (`lstat`, or a walk
//!   for a directory that appeared) and compared with the state as the
//!   sets have told it so far: the state file, looked up through its
//!   sparse index, with the changes reported since laid over it. A rename
//!   is a delete of the old key and a create of the new one.
//! - When a watch cannot be added (the kernel's `max_user_watches`, or the
//!   hidden `--max-watches` knob), that is reported once on stderr and in
//!   the watch summary, and the rescans cover the rest.
//! - A file whose mtime is younger than `--quiet-secs` is still being
//!   written: it is held back to a later set. A path whose contents could
//!   not be read (an unreadable directory, a failed `lstat`) is never
//!   reported as deleted.
//!
//! Crash safety: each set appears whole or not at all; the state file is
//! replaced only after the set that reports its changes, and the changes
//! reported from events are appended to a journal after their set. The
//! first scan of a run is compared with the state file and journal the
//! last run left, so what changed while no watch ran is a set too. A crash
//! between a set and its journal entry makes a change reported twice,
//! never lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};

use super::incr::{self, INCR_DIR, Manifest, SetWriter};
use super::output::Output;
use super::report::{Notice, Report};
use super::state::{self, Journal, KeyRange, Meta, State, StateReader, StateWriter, View};
use super::stats::{Counters, Stats};
use super::walk::{self, MAX_KEY_BYTES, WalkCtx, WalkExtras};
use super::{FindError, Options, ScanHooks, filter};

/// Default of `--interval`.
pub const DEFAULT_INTERVAL_SECS: u64 = 60;
/// Default of `--rescan-interval`.
pub const DEFAULT_RESCAN_INTERVAL_SECS: u64 = 3600;
/// Default of `--quiet-secs`.
pub const DEFAULT_QUIET_SECS: u64 = 5;
/// The state of the last full scan, in `OUTPUT_DIR`.
pub const STATE_FILE: &str = "s3find-watch.state";
/// The changes reported from events since, in `OUTPUT_DIR`.
pub const JOURNAL_FILE: &str = "s3find-watch.journal";
/// The watch's statistics, in `OUTPUT_DIR`, rewritten after every set
/// and rescan.
pub const WATCH_SUMMARY_FILE: &str = "s3find-watch-summary.json";
/// Version of the watch summary's layout.
pub const WATCH_SUMMARY_VERSION: u32 = 1;

/// Most paths remembered from events between two sets; beyond, the next
/// set comes from a full rescan.
const MAX_DIRTY: usize = 100_000;
/// Most changes from events kept in memory between two rescans; beyond,
/// a rescan folds them into the state file.
const MAX_OVERLAY: usize = 1_000_000;
/// Most files one event-driven walk (a directory that appeared) takes;
/// beyond, a full rescan.
const MAX_SUBTREE: usize = 100_000;
/// How often a sleeping watch looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Everything a watch needs; see [`super::Args`] for the command-line form.
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

/// A point in time, for manifests.
#[derive(Debug, Clone)]
struct Stamp {
    rfc3339: String,
    unix: f64,
}

impl Stamp {
    fn now() -> Self {
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
struct Young {
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

    fn now(quiet: Duration) -> Self {
        Self::at(filter::now(), quiet)
    }

    fn is(&self, m: &Meta) -> bool {
        m.mtime > self.after && m.mtime <= self.until
    }
}

/// Whether `key` is one of `set`'s keys or below one of them (`""` is the
/// root: everything is below it).
fn at_or_below_any(set: &BTreeSet<String>, key: &str) -> bool {
    !set.is_empty()
        && (set.contains("")
            || set.contains(key)
            || key.match_indices('/').any(|(i, _)| set.contains(&key[..i])))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the event handler collected since the last set.
#[derive(Default)]
struct Sink {
    /// Paths named by events; `true`: a directory there may have appeared,
    /// gone or moved (walk it).
    dirty: HashMap<PathBuf, bool>,
    /// Why the events cannot be trusted to name every change (the queue
    /// overflowed): a full rescan is needed.
    overflow: Option<String>,
    events: u64,
    errors: u64,
    overflows: u64,
    /// The last error not reported yet, and how many were reported.
    last_error: Option<String>,
    errors_reported: u64,
}

impl Sink {
    fn on_event(&mut self, res: notify::Result<notify::Event>) {
        let ev = match res {
            Ok(ev) => ev,
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e.to_string());
                return;
            }
        };
        self.events += 1;
        if ev.need_rescan() {
            self.overflows += 1;
            self.overflow = Some("the inotify event queue overflowed".into());
            return;
        }
        let subtree = match ev.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => false,
            _ => true,
        };
        for p in ev.paths {
            if self.dirty.len() >= MAX_DIRTY && !self.dirty.contains_key(&p) {
                self.overflow = Some(format!(
                    "more than {MAX_DIRTY} paths changed in one interval"
                ));
                continue;
            }
            *self.dirty.entry(p).or_default() |= subtree;
        }
    }

    fn take(&mut self) -> (HashMap<PathBuf, bool>, Option<String>) {
        (std::mem::take(&mut self.dirty), self.overflow.take())
    }
}

/// Whether a watcher error means "no more watches": the kernel's
/// `max_user_watches` (ENOSPC).
fn is_watch_limit(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => {
            io.kind() == io::ErrorKind::StorageFull || io.raw_os_error() == Some(28)
        }
        _ => false,
    }
}

/// The directory watches.
struct Watches {
    inner: Mutex<WatchSet>,
}

struct WatchSet {
    watcher: Option<notify::RecommendedWatcher>,
    dirs: BTreeSet<PathBuf>,
    max: Option<u64>,
    /// Why directories go without a watch now.
    limit: Option<String>,
    /// A limit was met at some point.
    limit_reached: bool,
    limit_reported: bool,
    unwatched: u64,
    errors_reported: u64,
}

impl Watches {
    fn new(sink: &Arc<Mutex<Sink>>, max: Option<u64>) -> Self {
        let sink = Arc::clone(sink);
        let watcher = notify::recommended_watcher(move |res| lock(&sink).on_event(res));
        let (watcher, limit) = match watcher {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(format!("cannot start inotify: {e}"))),
        };
        Self {
            inner: Mutex::new(WatchSet {
                watcher,
                dirs: BTreeSet::new(),
                max,
                limit_reached: limit.is_some(),
                limit,
                limit_reported: false,
                unwatched: 0,
                errors_reported: 0,
            }),
        }
    }

    /// Watches `dir` (non-recursively) unless it is watched already or a
    /// limit was met.
    fn add(&self, dir: &Path, report: &dyn Report) {
        let mut guard = lock(&self.inner);
        let w = &mut *guard;
        if w.dirs.contains(dir) {
            return;
        }
        if w.limit.is_none()
            && let Some(max) = w.max
            && w.dirs.len() as u64 >= max
        {
            w.hit_limit(format!("--max-watches {max}"), report);
        }
        if w.limit.is_some() {
            w.unwatched += 1;
            return;
        }
        let Some(watcher) = w.watcher.as_mut() else {
            w.unwatched += 1;
            return;
        };
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                w.dirs.insert(dir.to_owned());
            }
            Err(e) if is_watch_limit(&e) => {
                w.unwatched += 1;
                w.hit_limit(
                    format!("the kernel's limit fs.inotify.max_user_watches: no watch for {dir:?}"),
                    report,
                );
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
            Err(e) => {
                w.unwatched += 1;
                if w.errors_reported < 10 {
                    w.errors_reported += 1;
                    report.notice(&Notice::WatchWarning {
                        message: format!("cannot watch {dir:?}: {e} (the rescans cover it)"),
                    });
                }
            }
        }
    }

    /// Forgets the watches at and below `path`, which is no directory any
    /// more.
    fn forget(&self, path: &Path) {
        let mut guard = lock(&self.inner);
        let w = &mut *guard;
        let gone: Vec<PathBuf> = w
            .dirs
            .range(path.to_owned()..)
            .take_while(|d| d.starts_with(path))
            .cloned()
            .collect();
        for d in gone {
            w.dirs.remove(&d);
            if let Some(watcher) = w.watcher.as_mut() {
                let _ = watcher.unwatch(&d);
            }
        }
    }

    /// A full walk starts: count unwatched directories afresh, and try
    /// again where a limit stopped us (watches may have been freed).
    fn full_walk_starts(&self) {
        let mut w = lock(&self.inner);
        w.unwatched = 0;
        if w.watcher.is_some() {
            w.limit = None;
        }
    }

    fn coverage(&self) -> Coverage {
        let w = lock(&self.inner);
        Coverage {
            watched_dirs: w.dirs.len() as u64,
            unwatched_dirs: w.unwatched,
            limit_reached: w.limit_reached,
            limit: w.limit.clone(),
            max_watches: w.max,
        }
    }
}

impl WatchSet {
    fn hit_limit(&mut self, why: String, report: &dyn Report) {
        if !self.limit_reported {
            self.limit_reported = true;
            report.notice(&Notice::WatchLimit {
                watched_dirs: self.dirs.len() as u64,
                reason: why.clone(),
            });
        }
        self.limit = Some(why);
        self.limit_reached = true;
    }
}

/// Compares a new full scan (records pushed in key order) with the state
/// as told so far, writing the new state file and the set of differences.
struct Merger<'v> {
    old: View<'v>,
    old_head: Option<(String, Meta)>,
    state: StateWriter,
    /// `None`: no earlier state to compare with; only record the new one.
    set: Option<SetWriter>,
    unknown: BTreeSet<String>,
    quiet: Duration,
    young: Option<Young>,
    pending: BTreeMap<String, bool>,
    changed: u64,
    deleted: u64,
    held: u64,
}

struct Merged {
    state: StateWriter,
    set: Option<SetWriter>,
    pending: BTreeMap<String, bool>,
    held: u64,
}

impl<'v> Merger<'v> {
    fn new(
        mut old: View<'v>,
        state: StateWriter,
        set: Option<SetWriter>,
        quiet: Duration,
    ) -> Result<Self, FindError> {
        let old_head = old.next_record()?;
        Ok(Self {
            old,
            old_head,
            state,
            set,
            unknown: BTreeSet::new(),
            quiet,
            young: None,
            pending: BTreeMap::new(),
            changed: 0,
            deleted: 0,
            held: 0,
        })
    }

    /// An old key the new scan does not have: deleted, unless the scan
    /// could not see it.
    fn old_only(&mut self, key: &str, m: Meta) -> Result<(), FindError> {
        if at_or_below_any(&self.unknown, key) {
            return self.state.push(key, &m);
        }
        self.deleted += 1;
        self.set.as_mut().expect("diffing").deleted(key)
    }

    fn push(&mut self, key: &str, meta: Meta) -> Result<(), FindError> {
        if self.set.is_none() {
            return self.state.push(key, &meta);
        }
        // "Young" is judged when the walk is over, not when it started.
        let young = *self.young.get_or_insert_with(|| Young::now(self.quiet));
        let old = loop {
            match self.old_head.take() {
                Some((k, m)) if k.as_str() < key => {
                    self.old_head = self.old.next_record()?;
                    self.old_only(&k, m)?;
                }
                Some((k, m)) if k == key => {
                    self.old_head = self.old.next_record()?;
                    break Some(m);
                }
                other => {
                    self.old_head = other;
                    break None;
                }
            }
        };
        if young.is(&meta) {
            // Listed once it settles; the state keeps what was told.
            self.held += 1;
            self.pending.insert(key.to_owned(), true);
            return match old {
                Some(m) => self.state.push(key, &m),
                None => Ok(()),
            };
        }
        if !old.is_some_and(|o| o.same(&meta)) {
            self.changed += 1;
            self.set.as_mut().expect("diffing").changed(key)?;
        }
        self.state.push(key, &meta)
    }

    fn finish(mut self) -> Result<Merged, FindError> {
        if self.set.is_some() {
            while let Some((k, m)) = self.old_head.take() {
                self.old_head = self.old.next_record()?;
                self.old_only(&k, m)?;
            }
        }
        Ok(Merged {
            state: self.state,
            set: self.set,
            pending: self.pending,
            held: self.held,
        })
    }
}

/// Keys of the paths a walk could not read.
fn unknown_keys(root: &Path, paths: &Mutex<Vec<PathBuf>>) -> BTreeSet<String> {
    lock(paths)
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|r| r.to_string_lossy().into_owned())
        .collect()
}

/// What a set is about, for its manifest and the totals.
struct SetInfo {
    source: &'static str,
    window_end: Stamp,
    changed_by_scan: u64,
    deleted_by_scan: u64,
    held: u64,
}

/// A running watch.
struct Engine<'a> {
    opts: &'a WatchOptions,
    root: PathBuf,
    out: &'a Output,
    report: &'a dyn Report,
    stop: &'a AtomicBool,
    sink: Arc<Mutex<Sink>>,
    watches: Watches,
    incr: PathBuf,
    state_path: PathBuf,
    state: State,
    journal: Journal,
    /// Changes reported from events since the state file was written
    /// (`None`: deleted).
    overlay: BTreeMap<String, Option<Meta>>,
    /// Files held back (still being written), to look at again; `true`:
    /// found by a full scan.
    pending: BTreeMap<String, bool>,
    next_seq: u64,
    window_start: Stamp,
    /// Why the next set must come from a full rescan.
    force_rescan: Option<String>,
    stats: WatchStats,
    started: Instant,
}

/// Runs a watch until `stop` is set (TERM/INT in the CLI): the initial
/// scan, then a set every `opts.interval`. Blocks; returns the statistics,
/// also written to `OUTPUT_DIR/s3find-watch-summary.json`. A stop during
/// the initial scan is [`FindError::Stopped`]; later, the watch finishes
/// the set in progress (a rescan in progress is abandoned, and the events
/// seen so far are written as a last set), then returns.
pub fn watch(
    opts: WatchOptions,
    stop: Arc<AtomicBool>,
    report: &dyn Report,
) -> Result<WatchStats, FindError> {
    let started = Instant::now();
    let started_at = super::now_rfc3339();
    if opts.scan.later_than_days.is_some() {
        return Err(FindError::Input(
            "--later-than cannot be combined with --watch".into(),
        ));
    }
    if opts.interval.is_zero() || opts.rescan_interval.is_zero() {
        return Err(FindError::Input(
            "--interval and --rescan-interval must be at least 1 second".into(),
        ));
    }
    let root = super::check_root(&opts.scan.root)?;
    // Events name absolute paths (notify makes a relative watch absolute).
    let root = std::path::absolute(&root)
        .map_err(|e| FindError::Input(format!("directory {}: {e}", opts.scan.root.display())))?;
    super::refuse_output_inside_root(&root, &opts.scan.output_dir)?;
    let out = Output::prepare(&opts.scan.output_dir, opts.scan.overwrite)?;
    let incr_dir = out.dir().join(INCR_DIR);
    let next_seq = incr::prepare(&incr_dir)?;
    let state_path = out.dir().join(STATE_FILE);
    let sink = Arc::new(Mutex::new(Sink::default()));
    let watches = Watches::new(&sink, opts.max_watches);
    if let Some(why) = lock(&watches.inner).limit.clone() {
        lock(&watches.inner).limit_reported = true;
        report.notice(&Notice::WatchLimit {
            watched_dirs: 0,
            reason: why,
        });
    }
    let mut journal = Journal::new(&out.dir().join(JOURNAL_FILE));
    let old = if state_path.exists() {
        match StateReader::open(&state_path) {
            Ok(r) => Some(r),
            Err(e) => {
                report.notice(&Notice::WatchWarning {
                    message: format!("ignoring the earlier state: {e}"),
                });
                None
            }
        }
    } else {
        None
    };
    let told = match (&old, Journal::load(&out.dir().join(JOURNAL_FILE))) {
        (Some(_), Ok(j)) => j,
        (Some(_), Err(e)) => {
            // Without it, what the last run told from events is told again.
            report.notice(&Notice::WatchWarning {
                message: format!("ignoring the earlier journal: {e}"),
            });
            BTreeMap::new()
        }
        (None, _) => BTreeMap::new(),
    };

    // The initial scan: the one-shot list, and the first state. When an
    // earlier watch left a state, what changed meanwhile is a set.
    let window_start = Stamp::now();
    let restart = old.is_some();
    let set = if restart {
        Some(SetWriter::create(&incr_dir, next_seq)?)
    } else {
        None
    };
    let mut merger = Merger::new(
        View::new(old, &told)?,
        StateWriter::create(&state_path)?,
        set,
        opts.quiet,
    )?;
    let unknown_paths = Mutex::new(Vec::new());
    let hook = |d: &Path| watches.add(d, report);
    let mut first = true;
    let mut on_record = |key: &str, meta: &Meta| -> Result<(), FindError> {
        if first {
            first = false;
            merger.unknown = unknown_keys(&root, &unknown_paths);
        }
        merger.push(key, *meta)
    };
    let initial = super::scan_into(
        &opts.scan,
        &root,
        None,
        &out,
        report,
        ScanHooks {
            walk: WalkExtras {
                meta: true,
                on_dir: Some(&hook),
                stop: Some(&*stop),
                unknown: Some(&unknown_paths),
            },
            on_record: Some(&mut on_record),
        },
    )?;
    // Also when no file was found: old keys below unreadable paths stay.
    merger.unknown = unknown_keys(&root, &unknown_paths);
    let merged = merger.finish()?;
    drop(told);

    let mut engine = Engine {
        root: root.clone(),
        out: &out,
        report,
        stop: &stop,
        sink,
        watches,
        incr: incr_dir,
        state_path,
        state: State::default(),
        journal: Journal::new(&out.dir().join(JOURNAL_FILE)),
        overlay: BTreeMap::new(),
        pending: merged.pending,
        next_seq,
        window_start,
        force_rescan: None,
        stats: WatchStats {
            version: WATCH_SUMMARY_VERSION,
            root: opts.scan.root.to_string_lossy().into_owned(),
            output_dir: opts.scan.output_dir.to_string_lossy().into_owned(),
            started_at,
            elapsed_secs: 0.0,
            interval_secs: opts.interval.as_secs_f64(),
            rescan_interval_secs: opts.rescan_interval.as_secs_f64(),
            quiet_secs: opts.quiet.as_secs_f64(),
            initial,
            sets: 0,
            last_set: None,
            changed: 0,
            deleted: 0,
            changed_by_scan: 0,
            deleted_by_scan: 0,
            held_back: 0,
            rescans: 0,
            last_rescan_at: None,
            rescans_abandoned: 0,
            events: 0,
            event_errors: 0,
            event_overflows: 0,
            state_files: 0,
            watch: Coverage::default(),
            stopped: false,
        },
        opts: &opts,
        started,
    };
    if let Some(set) = merged.set {
        let info = SetInfo {
            source: "restart",
            window_end: Stamp::now(),
            changed_by_scan: set.counts().0,
            deleted_by_scan: set.counts().1,
            held: merged.held,
        };
        engine.commit_set(set, info)?;
    }
    journal.clear()?;
    engine.state = merged.state.finish()?;
    engine.stats.state_files = engine.state.records();
    let cov = engine.watches.coverage();
    report.notice(&Notice::Watching {
        keys: engine.stats.initial.files,
        watched_dirs: cov.watched_dirs,
        unwatched_dirs: cov.unwatched_dirs,
        interval_secs: opts.interval.as_secs_f64(),
        rescan_interval_secs: opts.rescan_interval.as_secs_f64(),
    });
    engine.write_summary()?;
    engine.run()?;
    Ok(engine.stats)
}

impl Engine<'_> {
    fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// The loop: a set every interval, from a rescan when one is due.
    fn run(&mut self) -> Result<(), FindError> {
        let interval = self.opts.interval;
        let mut next_tick = Instant::now() + interval;
        let mut next_rescan = Instant::now() + self.opts.rescan_interval;
        loop {
            while !self.stopping() {
                let now = Instant::now();
                if now >= next_tick {
                    break;
                }
                std::thread::sleep(STOP_POLL.min(next_tick - now));
            }
            if self.stopping() {
                self.event_tick()?;
                break;
            }
            let tick_started = Instant::now();
            let mut rescan = tick_started >= next_rescan || self.force_rescan.is_some();
            if !rescan && let Some(why) = self.event_tick()? {
                self.force_rescan = Some(why);
                rescan = true;
            }
            if rescan {
                if let Some(why) = self.force_rescan.take() {
                    self.report.notice(&Notice::WatchWarning {
                        message: format!("{why}: a full rescan now"),
                    });
                }
                if !self.rescan()? {
                    // Stopped mid-walk: the events so far make the last set.
                    self.event_tick()?;
                    break;
                }
                // A rescan longer than the rescan interval is followed by
                // one set from events before the next.
                next_rescan =
                    (tick_started + self.opts.rescan_interval).max(Instant::now() + interval);
            }
            self.write_summary()?;
            while next_tick <= Instant::now() {
                next_tick += interval;
            }
        }
        self.stats.stopped = true;
        self.write_summary()
    }

    /// A set from the paths events named (and the files held back).
    /// Returns why a full rescan is needed instead, if it is.
    fn event_tick(&mut self) -> Result<Option<String>, FindError> {
        let window_end = Stamp::now();
        let (paths, overflow) = lock(&self.sink).take();
        if let Some(why) = overflow {
            return Ok(Some(why));
        }
        let young = Young::now(self.opts.quiet);
        // key -> (walk it if it is a directory, held back by a full scan)
        let mut dirty: BTreeMap<String, (bool, bool)> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(k, by_scan)| (k, (false, by_scan)))
            .collect();
        for (p, subtree) in paths {
            let Ok(rel) = p.strip_prefix(&self.root) else {
                continue;
            };
            // A name that is not UTF-8 is no key (the scans count it).
            let Some(key) = rel.to_str() else { continue };
            if key.is_empty() {
                continue; // the root itself
            }
            dirty.entry(key.to_owned()).or_insert((false, false)).0 |= subtree;
        }
        if dirty.is_empty() {
            return Ok(None);
        }

        // What is there now, and which key ranges that covers. Watches of
        // what is no directory any more go first: a directory moved within
        // the tree keeps its inode, and its watch, under the new name.
        let mut current: BTreeMap<String, Meta> = BTreeMap::new();
        let mut ranges = Vec::new();
        let mut dirs = Vec::new();
        for (key, (subtree, _)) in &dirty {
            let path = self.root.join(key);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    if *subtree {
                        dirs.push(key);
                    } // else: a directory's own metadata, no key
                }
                Ok(m) => {
                    ranges.push(KeyRange::exact(key));
                    ranges.push(KeyRange::below(key));
                    if m.is_file() && key.len() <= MAX_KEY_BYTES {
                        current.insert(key.clone(), Meta::of(&m));
                    }
                    self.watches.forget(&path);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    ranges.push(KeyRange::exact(key));
                    ranges.push(KeyRange::below(key));
                    self.watches.forget(&path);
                }
                Err(_) => {} // cannot tell: the next rescan will
            }
        }
        let mut unknown = BTreeSet::new();
        let mut walked = BTreeSet::new();
        for key in dirs {
            if at_or_below_any(&walked, key) {
                continue;
            }
            let path = self.root.join(key);
            ranges.push(KeyRange::exact(key));
            ranges.push(KeyRange::below(key));
            if !self.walk_dir(&path, &mut current, &mut unknown)? {
                return Ok(Some(format!(
                    "{path:?} appeared with more than {MAX_SUBTREE} files"
                )));
            }
            walked.insert(key.clone());
        }
        let ranges = state::normalize(ranges);
        let mut old = self.state.lookup(&ranges)?;
        state::overlay_ranges(&mut old, &self.overlay, &ranges);

        // The differences, in key order.
        let mut set = SetWriter::create(&self.incr, self.next_seq)?;
        let mut told = Vec::new();
        let (mut changed_by_scan, mut held) = (0, 0);
        let mut olds = old.into_iter().peekable();
        let mut curs = current.into_iter().peekable();
        loop {
            let (key, o, c) = match (olds.peek(), curs.peek()) {
                (None, None) => break,
                (Some((ok, _)), Some((ck, _))) if ok == ck => {
                    let (k, o) = olds.next().expect("peeked");
                    let (_, c) = curs.next().expect("peeked");
                    (k, Some(o), Some(c))
                }
                (Some((ok, _)), Some((ck, _))) if ok > ck => {
                    let (k, c) = curs.next().expect("peeked");
                    (k, None, Some(c))
                }
                (None, Some(_)) => {
                    let (k, c) = curs.next().expect("peeked");
                    (k, None, Some(c))
                }
                _ => {
                    let (k, o) = olds.next().expect("peeked");
                    (k, Some(o), None)
                }
            };
            let by_scan = dirty.get(&key).is_some_and(|d| d.1);
            match c {
                Some(c) if young.is(&c) => {
                    held += 1;
                    self.pending.insert(key, by_scan);
                }
                Some(c) => {
                    if !o.is_some_and(|o| o.same(&c)) {
                        set.changed(&key)?;
                        changed_by_scan += u64::from(by_scan);
                        told.push((key, Some(c)));
                    }
                }
                None => {
                    if o.is_some() && !at_or_below_any(&unknown, &key) {
                        set.deleted(&key)?;
                        told.push((key, None));
                    }
                }
            }
        }
        self.commit_set(
            set,
            SetInfo {
                source: "events",
                window_end,
                changed_by_scan,
                deleted_by_scan: 0,
                held,
            },
        )?;
        self.journal.append(&told)?;
        self.overlay.extend(told);
        if self.overlay.len() > MAX_OVERLAY {
            self.force_rescan = Some(format!(
                "more than {MAX_OVERLAY} changes since the last full scan"
            ));
        }
        Ok(None)
    }

    /// Walks a directory that appeared (or moved) into `into`, adding
    /// watches. `false`: it holds too many files (nothing collected).
    fn walk_dir(
        &self,
        dir: &Path,
        into: &mut BTreeMap<String, Meta>,
        unknown: &mut BTreeSet<String>,
    ) -> Result<bool, FindError> {
        let counters = Counters::default();
        let too_many = AtomicBool::new(false);
        let unknown_paths = Mutex::new(Vec::new());
        let hook = |d: &Path| self.watches.add(d, self.report);
        let (tx, rx) = mpsc::sync_channel::<walk::Batch>(walk::CHANNEL_BATCHES);
        let found = std::thread::scope(|s| {
            let collector = s.spawn(|| {
                let mut found = Vec::new();
                for batch in rx {
                    if too_many.load(Relaxed) {
                        continue; // drain, so the walkers see the stop
                    }
                    for rec in walk::batch_keys(&batch) {
                        let Some((key, meta)) = state::decode_record(rec) else {
                            continue;
                        };
                        let Ok(key) = std::str::from_utf8(key) else {
                            continue;
                        };
                        found.push((key.to_owned(), meta));
                    }
                    if found.len() > MAX_SUBTREE {
                        too_many.store(true, Relaxed);
                    }
                }
                found
            });
            let ctx = WalkCtx {
                root: &self.root,
                filter: None,
                sizes: false,
                counters: &counters,
                report: self.report,
                tx,
                extras: WalkExtras {
                    meta: true,
                    on_dir: Some(&hook),
                    stop: Some(&too_many),
                    unknown: Some(&unknown_paths),
                },
            };
            walk::walk_from(&ctx, dir, 2);
            drop(ctx);
            collector.join()
        })
        .map_err(|_| FindError::Internal("the walk collector panicked"))?;
        if too_many.load(Relaxed) {
            return Ok(false);
        }
        into.extend(found);
        unknown.extend(unknown_keys(&self.root, &unknown_paths));
        Ok(true)
    }

    /// A full rescan, compared with the state as told so far. `false`:
    /// stopped before the walk was over (nothing changed).
    fn rescan(&mut self) -> Result<bool, FindError> {
        let started = Instant::now();
        let window_end = Stamp::now();
        // The walk sees everything the events named until now.
        drop(lock(&self.sink).take());
        self.watches.full_walk_starts();
        let counters = Counters::default();
        let unknown_paths = Mutex::new(Vec::new());
        let sorter = {
            let hook = |d: &Path| self.watches.add(d, self.report);
            super::walk_and_sort(
                &self.root,
                None,
                &self.opts.scan,
                &counters,
                &self.out.runs_dir(),
                self.report,
                WalkExtras {
                    meta: true,
                    on_dir: Some(&hook),
                    stop: Some(self.stop),
                    unknown: Some(&unknown_paths),
                },
            )?
        };
        if self.stopping() {
            self.stats.rescans_abandoned += 1;
            return Ok(false);
        }
        let overlay = std::mem::take(&mut self.overlay);
        let view = View::new(self.state.stream()?, &overlay)?;
        let mut merger = Merger::new(
            view,
            StateWriter::create(&self.state_path)?,
            Some(SetWriter::create(&self.incr, self.next_seq)?),
            self.opts.quiet,
        )?;
        merger.unknown = unknown_keys(&self.root, &unknown_paths);
        sorter.finish(&mut |rec| {
            let (key, meta) = state::decode_record(rec)
                .ok_or(FindError::Internal("a sorted state record is malformed"))?;
            let key = std::str::from_utf8(key)
                .map_err(|_| FindError::Internal("a sorted key is not UTF-8"))?;
            merger.push(key, meta)
        })?;
        let merged = merger.finish()?;
        drop(overlay);
        let set = merged.set.expect("a rescan diffs");
        let (changed, deleted) = set.counts();
        self.commit_set(
            set,
            SetInfo {
                source: "rescan",
                window_end: window_end.clone(),
                changed_by_scan: changed,
                deleted_by_scan: deleted,
                held: merged.held,
            },
        )?;
        self.journal.clear()?;
        self.state = merged.state.finish()?;
        self.pending = merged.pending;
        self.stats.rescans += 1;
        self.stats.last_rescan_at = Some(window_end.rfc3339);
        self.stats.state_files = self.state.records();
        self.report.notice(&Notice::Rescanned {
            files: self.state.records(),
            changed,
            deleted,
            elapsed_secs: started.elapsed().as_secs_f64(),
            unwatched_dirs: self.watches.coverage().unwatched_dirs,
        });
        Ok(true)
    }

    /// Commits a set (nothing if it is empty) and counts it.
    fn commit_set(&mut self, set: SetWriter, info: SetInfo) -> Result<(), FindError> {
        self.stats.held_back += info.held;
        let mut m = Manifest {
            version: incr::MANIFEST_VERSION,
            seq: 0,
            name: String::new(),
            window_start: self.window_start.rfc3339.clone(),
            window_start_unix: self.window_start.unix,
            window_end: info.window_end.rfc3339.clone(),
            window_end_unix: info.window_end.unix,
            written_unix: 0.0,
            changed: 0,
            deleted: 0,
            changed_chunks: 0,
            deleted_chunks: 0,
            source: info.source.into(),
            changed_by_scan: info.changed_by_scan,
            deleted_by_scan: info.deleted_by_scan,
            held_back: info.held,
        };
        let Some(path) = set.commit(&mut m)? else {
            return Ok(());
        };
        self.next_seq += 1;
        self.window_start = info.window_end;
        let s = &mut self.stats;
        s.sets += 1;
        s.last_set = Some(m.name.clone());
        s.changed += m.changed;
        s.deleted += m.deleted;
        s.changed_by_scan += m.changed_by_scan;
        s.deleted_by_scan += m.deleted_by_scan;
        self.report.notice(&Notice::SetWritten {
            path,
            changed: m.changed,
            deleted: m.deleted,
            held_back: m.held_back,
            source: info.source,
        });
        Ok(())
    }

    /// Brings the counters up to date and writes the watch summary.
    fn write_summary(&mut self) -> Result<(), FindError> {
        {
            let mut sink = lock(&self.sink);
            self.stats.events = sink.events;
            self.stats.event_errors = sink.errors;
            self.stats.event_overflows = sink.overflows;
            if let Some(e) = sink.last_error.take()
                && sink.errors_reported < 10
            {
                sink.errors_reported += 1;
                self.report.notice(&Notice::WatchWarning {
                    message: format!("the watcher reported: {e}"),
                });
            }
        }
        self.stats.watch = self.watches.coverage();
        self.stats.elapsed_secs = self.started.elapsed().as_secs_f64();
        let json = serde_json::to_vec_pretty(&self.stats).expect("stats serialize");
        let p = self.out.dir().join(WATCH_SUMMARY_FILE);
        ferry_s3::durable::write(&p, &json, None).map_err(|source| FindError::Io {
            what: "cannot write",
            path: p.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn meta(size: u64, changed: i64, mtime: i64) -> Meta {
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

    #[test]
    fn unknown_covers_the_key_and_below() {
        let set: BTreeSet<String> = ["a/b", "c"].map(String::from).into();
        assert!(at_or_below_any(&set, "a/b"));
        assert!(at_or_below_any(&set, "a/b/c/d"));
        assert!(at_or_below_any(&set, "c/x"));
        assert!(!at_or_below_any(&set, "a/bc"));
        assert!(!at_or_below_any(&set, "a.b"));
        assert!(!at_or_below_any(&set, "cc"));
        assert!(!at_or_below_any(&BTreeSet::new(), "a"));
        assert!(at_or_below_any(&[String::new()].into(), "anything"));
    }

    #[test]
    fn watch_limit_errors_are_recognized() {
        assert!(is_watch_limit(&notify::Error::new(
            notify::ErrorKind::MaxFilesWatch
        )));
        let enospc = io::Error::from_raw_os_error(28);
        assert!(is_watch_limit(&notify::Error::io(enospc)));
        assert!(!is_watch_limit(&notify::Error::path_not_found()));
    }

    /// The merge of a rescan: changed, created, deleted, unchanged, held
    /// back (new and modified), and unknown keys.
    #[test]
    fn merger_diffs_two_states() {
        let dir = tempfile::tempdir().unwrap();
        let incr = dir.path().join("incr");
        incr::prepare(&incr).unwrap();
        let now = filter::now() as i64;
        let old_t = now - 3600 * S;
        let mut w = StateWriter::create(&dir.path().join("state")).unwrap();
        for (k, size) in [
            ("gone", 1),
            ("locked/f", 1),
            ("modified", 1),
            ("same", 1),
            ("writing", 1),
        ] {
            w.push(k, &meta(size, old_t, old_t)).unwrap();
        }
        let st = w.finish().unwrap();
        // An event already reported "same2" as created.
        let mut overlay = BTreeMap::new();
        overlay.insert("same2".to_owned(), Some(meta(7, old_t, old_t)));
        let view = View::new(st.stream().unwrap(), &overlay).unwrap();
        let mut m = Merger::new(
            view,
            StateWriter::create(&dir.path().join("state2")).unwrap(),
            Some(SetWriter::create(&incr, 1).unwrap()),
            Duration::from_secs(5),
        )
        .unwrap();
        m.unknown = ["locked".to_owned()].into();
        for (k, mm) in [
            ("created", meta(3, old_t, old_t)),
            ("fresh", meta(3, now, now)),
            ("modified", meta(2, old_t + S, old_t + S)),
            ("same", meta(1, old_t, old_t)),
            ("same2", meta(7, old_t, old_t)),
            ("writing", meta(9, now, now)),
        ] {
            m.push(k, mm).unwrap();
        }
        let merged = m.finish().unwrap();
        let set = merged.set.unwrap();
        assert_eq!(set.counts(), (2, 1));
        let mut manifest = Manifest {
            version: 0,
            seq: 0,
            name: String::new(),
            window_start: String::new(),
            window_start_unix: 0.0,
            window_end: String::new(),
            window_end_unix: 0.0,
            written_unix: 0.0,
            changed: 0,
            deleted: 0,
            changed_chunks: 0,
            deleted_chunks: 0,
            source: "rescan".into(),
            changed_by_scan: 0,
            deleted_by_scan: 0,
            held_back: 0,
        };
        let p = set.commit(&mut manifest).unwrap().unwrap();
        let read = |d: &Path| {
            let mut r = ferry_control::keylist::KeyListReader::open_optional(d).unwrap();
            let mut v = Vec::new();
            while let Some(k) = r.next_key().unwrap() {
                v.push(k);
            }
            v
        };
        assert_eq!(read(&p), ["created", "modified"]);
        assert_eq!(read(&p.join(incr::DELETED_DIR)), ["gone"]);
        assert_eq!(
            merged.pending.keys().collect::<Vec<_>>(),
            ["fresh", "writing"]
        );
        assert_eq!(merged.held, 2);
        // The new state keeps the unknown key and the told version of the
        // file still being written; the new file waits.
        let st2 = merged.state.finish().unwrap();
        let mut r = st2.stream().unwrap().unwrap();
        let mut got = Vec::new();
        while let Some((k, mm)) = r.next_record().unwrap() {
            got.push((k, mm.size));
        }
        let want: Vec<(String, u64)> = [
            ("created", 3),
            ("locked/f", 1),
            ("modified", 2),
            ("same", 1),
            ("same2", 7),
            ("writing", 1),
        ]
        .map(|(k, s)| (k.to_owned(), s))
        .to_vec();
        assert_eq!(got, want);
    }
}

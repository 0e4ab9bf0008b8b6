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

mod clock;
mod diff;
mod inotify;
mod options;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::incr::{self, INCR_DIR, Manifest, SetWriter};
use super::output::Output;
use super::report::{Notice, Report};
use super::state::{self, Journal, KeyRange, Meta, State, StateReader, StateWriter, View};
use super::stats::Counters;
use super::walk::{self, MAX_KEY_BYTES, WalkCtx, WalkExtras};
use super::{FindError, ScanHooks};
use clock::{Stamp, Young};
use diff::{Merger, at_or_below_any};
use inotify::{Sink, Watches, lock};
pub use options::{
    Coverage, DEFAULT_INTERVAL_SECS, DEFAULT_QUIET_SECS, DEFAULT_RESCAN_INTERVAL_SECS,
    JOURNAL_FILE, STATE_FILE, WATCH_SUMMARY_FILE, WATCH_SUMMARY_VERSION, WatchOptions, WatchStats,
};

/// Most changes from events kept in memory between two rescans; beyond,
/// a rescan folds them into the state file.
const MAX_OVERLAY: usize = 1_000_000;
/// Most files one event-driven walk (a directory that appeared) takes;
/// beyond, a full rescan.
const MAX_SUBTREE: usize = 100_000;
/// How often a sleeping watch looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

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
    watches.report_startup_limit(report);
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

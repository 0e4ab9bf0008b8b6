//! inotify: the sink that collects the paths events name between two
//! sets, and the directory watches with their limits.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use super::options::Coverage;
use crate::report::{Notice, Report};

/// Most paths remembered from events between two sets; beyond, the next
/// set comes from a full rescan.
const MAX_DIRTY: usize = 100_000;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the event handler collected since the last set.
#[derive(Default)]
pub(super) struct Sink {
    /// Paths named by events; `true`: a directory there may have appeared,
    /// gone or moved (walk it).
    dirty: HashMap<PathBuf, bool>,
    /// Why the events cannot be trusted to name every change (the queue
    /// overflowed): a full rescan is needed.
    overflow: Option<String>,
    pub(super) events: u64,
    pub(super) errors: u64,
    pub(super) overflows: u64,
    /// The last error not reported yet, and how many were reported.
    pub(super) last_error: Option<String>,
    pub(super) errors_reported: u64,
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

    pub(super) fn take(&mut self) -> (HashMap<PathBuf, bool>, Option<String>) {
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
pub(super) struct Watches {
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
    pub(super) fn new(sink: &Arc<Mutex<Sink>>, max: Option<u64>) -> Self {
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

    /// Reports, once, that inotify could not start (then no directory
    /// gets a watch).
    pub(super) fn report_startup_limit(&self, report: &dyn Report) {
        let Some(why) = lock(&self.inner).limit.clone() else {
            return;
        };
        lock(&self.inner).limit_reported = true;
        report.notice(&Notice::WatchLimit {
            watched_dirs: 0,
            reason: why,
        });
    }

    /// Watches `dir` (non-recursively) unless it is watched already or a
    /// limit was met.
    pub(super) fn add(&self, dir: &Path, report: &dyn Report) {
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
    pub(super) fn forget(&self, path: &Path) {
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
    pub(super) fn full_walk_starts(&self) {
        let mut w = lock(&self.inner);
        w.unwatched = 0;
        if w.watcher.is_some() {
            w.limit = None;
        }
    }

    pub(super) fn coverage(&self) -> Coverage {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_limit_errors_are_recognized() {
        assert!(is_watch_limit(&notify::Error::new(
            notify::ErrorKind::MaxFilesWatch
        )));
        let enospc = io::Error::from_raw_os_error(28);
        assert!(is_watch_limit(&notify::Error::io(enospc)));
        assert!(!is_watch_limit(&notify::Error::path_not_found()));
    }
}

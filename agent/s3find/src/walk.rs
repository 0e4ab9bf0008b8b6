//! The parallel walk: ripgrep's walker (`ignore`) with every filter off,
//! turning each regular file into a key and counting everything else.
//!
//! Each walker thread frames its keys into a batch (`[u16 length][bytes]`,
//! as in a run file) and hands full batches to the sorter over a bounded
//! channel, so a slow sort holds the walk back instead of piling up keys.
//!
//! The watch mode ([`super::watch`]) asks for more through [`WalkExtras`]:
//! each key followed by its metadata (a state record,
//! [`super::state::encode_record`]), a hook called on every directory
//! before its entries are read (to add an inotify watch), a stop flag, and
//! the paths whose state the walk could not learn.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use super::filter::TimeFilter;
use super::report::{Notice, Report};
use super::state::{Meta, encode_record};
use super::stats::{Counters, bump};

/// S3's limit on a key's length, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// A batch is sent once it holds this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// Batches in flight between the walkers and the sorter.
pub const CHANNEL_BATCHES: usize = 4;

/// A framed batch of keys.
pub type Batch = Vec<u8>;

/// Iterates the keys of a framed batch.
pub fn batch_keys(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let (key, tail) = tail.split_at(usize::from(u16::from_le_bytes(*len)));
        rest = tail;
        Some(key)
    })
}

/// `path` below `root`, as bytes. The walker builds every path as `root`
/// joined with names, so a byte prefix is enough; `Path::strip_prefix`
/// compares component by component, a measurable share of a scan.
fn relative<'p>(root: &Path, path: &'p Path) -> &'p [u8] {
    let (root, path) = (root.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    match path.strip_prefix(root) {
        Some(rest) if root.ends_with(b"/") => rest,
        Some([b'/', rest @ ..]) => rest,
        _ => path,
    }
}

/// What every walker thread shares.
pub struct WalkCtx<'a> {
    pub root: &'a Path,
    pub filter: Option<TimeFilter>,
    /// Count the files' bytes.
    pub sizes: bool,
    pub counters: &'a Counters,
    pub report: &'a dyn Report,
    pub tx: SyncSender<Batch>,
    pub extras: WalkExtras<'a>,
}

/// What the watch mode adds to a walk; all off (the default) for a
/// one-shot scan.
#[derive(Default, Clone, Copy)]
pub struct WalkExtras<'a> {
    /// Send state records (key, `\0`, size, change time, mtime) instead
    /// of bare keys.
    pub meta: bool,
    /// Called with every directory (the start included) before its
    /// entries are read.
    pub on_dir: Option<&'a (dyn Fn(&Path) + Sync)>,
    /// The walk stops soon after this is set; its result is then partial.
    pub stop: Option<&'a AtomicBool>,
    /// Collects the paths whose contents or metadata could not be read
    /// (unreadable directories, failed `lstat`s): what the walk says about
    /// them is unknown, not "gone".
    pub unknown: Option<&'a Mutex<Vec<PathBuf>>>,
}

impl WalkExtras<'_> {
    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn unknown(&self, path: PathBuf) {
        if let Some(u) = self.unknown {
            u.lock().unwrap_or_else(|e| e.into_inner()).push(path);
        }
    }
}

/// Walks `ctx.root` with `threads` threads (0: one per core, at most 12).
/// Returns when the whole tree has been visited, or early if the sorter
/// went away (its error is reported by the caller).
pub fn walk(ctx: &WalkCtx<'_>, threads: usize) {
    walk_from(ctx, ctx.root, threads);
}

/// Walks the subtree at `start` (at or below `ctx.root`); keys stay
/// relative to `ctx.root`.
pub fn walk_from(ctx: &WalkCtx<'_>, start: &Path, threads: usize) {
    let walker = WalkBuilder::new(start)
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .same_file_system(false)
        .threads(threads)
        .build_parallel();
    walker.visit(&mut Builder { ctx });
}

struct Builder<'c, 'a> {
    ctx: &'c WalkCtx<'a>,
}

impl<'s, 'c: 's, 'a: 's> ParallelVisitorBuilder<'s> for Builder<'c, 'a> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            ctx: self.ctx,
            batch: Vec::with_capacity(BATCH_BYTES + MAX_KEY_BYTES + 64),
            dead: false,
        })
    }
}

struct Visitor<'c, 'a> {
    ctx: &'c WalkCtx<'a>,
    batch: Batch,
    /// The sorter is gone: stop.
    dead: bool,
}

impl Visitor<'_, '_> {
    fn send(&mut self) {
        if self.batch.is_empty() || self.dead {
            return;
        }
        let full = std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(BATCH_BYTES + MAX_KEY_BYTES + 64),
        );
        if self.ctx.tx.send(full).is_err() {
            self.dead = true;
        }
    }

    fn entry(&mut self, dent: DirEntry) {
        let ctx = self.ctx;
        let Some(ft) = dent.file_type() else {
            return; // stdin; never walked here
        };
        if ft.is_dir() {
            bump(&ctx.counters.dirs);
            if let Some(hook) = ctx.extras.on_dir {
                hook(dent.path());
            }
            if dent.depth() > 0 && dent.file_name().to_str().is_none() {
                ctx.report.notice(&Notice::NonUtf8 {
                    path: dent.into_path(),
                    is_dir: true,
                });
            }
            return;
        }
        if ft.is_symlink() {
            bump(&ctx.counters.symlink);
            return;
        }
        if !ft.is_file() {
            bump(&ctx.counters.special);
            return;
        }
        let Ok(key) = std::str::from_utf8(relative(ctx.root, dent.path())) else {
            bump(&ctx.counters.non_utf8);
            // A file below a non-UTF-8 directory was reported with it.
            if dent.file_name().to_str().is_none() {
                ctx.report.notice(&Notice::NonUtf8 {
                    path: dent.path().to_owned(),
                    is_dir: false,
                });
            }
            return;
        };
        if key.len() > MAX_KEY_BYTES {
            bump(&ctx.counters.too_long);
            ctx.report.notice(&Notice::TooLong {
                path: dent.path().to_owned(),
                key_bytes: key.len(),
            });
            return;
        }
        // The type came with the directory entry: a file is only stat'ed
        // when something needs its metadata (it is most of a scan's cost).
        let meta = if ctx.filter.is_some() || ctx.sizes || ctx.extras.meta {
            match dent.metadata() {
                Ok(m) => Some(m),
                Err(e) => {
                    if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound) {
                        bump(&ctx.counters.vanished);
                    } else {
                        bump(&ctx.counters.stat_failed);
                        ctx.extras.unknown(dent.path().to_owned());
                        ctx.report.notice(&Notice::StatFailed {
                            path: dent.path().to_owned(),
                            error: e.to_string(),
                        });
                    }
                    return;
                }
            }
        } else {
            None
        };
        if let (Some(f), Some(m)) = (&ctx.filter, &meta)
            && !f.keep(m)
        {
            bump(&ctx.counters.filtered_by_time);
            return;
        }
        bump(&ctx.counters.files);
        if let Some(m) = &meta {
            ctx.counters
                .bytes
                .fetch_add(m.len(), std::sync::atomic::Ordering::Relaxed);
        }
        match meta.filter(|_| ctx.extras.meta) {
            Some(m) => {
                let start = self.batch.len();
                self.batch.extend_from_slice(&[0, 0]);
                encode_record(&mut self.batch, key.as_bytes(), &Meta::of(&m));
                let len = (self.batch.len() - start - 2) as u16;
                self.batch[start..start + 2].copy_from_slice(&len.to_le_bytes());
            }
            None => {
                self.batch
                    .extend_from_slice(&(key.len() as u16).to_le_bytes());
                self.batch.extend_from_slice(key.as_bytes());
            }
        }
        if self.batch.len() >= BATCH_BYTES {
            self.send();
        }
    }
}

impl ParallelVisitor for Visitor<'_, '_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        match entry {
            Ok(dent) => self.entry(dent),
            Err(err) => {
                let (path, error) = split_error(&err);
                let shown = path.as_deref().unwrap_or(self.ctx.root);
                self.ctx.counters.unreadable_dir(&shown.to_string_lossy());
                // No path: nothing can be said about any key.
                self.ctx
                    .extras
                    .unknown(path.clone().unwrap_or_else(|| self.ctx.root.to_owned()));
                self.ctx
                    .report
                    .notice(&Notice::UnreadableDir { path, error });
            }
        }
        if self.dead || self.ctx.extras.stopped() {
            WalkState::Quit
        } else {
            WalkState::Continue
        }
    }
}

impl Drop for Visitor<'_, '_> {
    fn drop(&mut self) {
        self.send();
    }
}

/// The path an `ignore` error is about, and the error without it.
fn split_error(err: &ignore::Error) -> (Option<std::path::PathBuf>, String) {
    match err {
        ignore::Error::WithPath { path, err } => (Some(path.clone()), err.to_string()),
        ignore::Error::WithDepth { err, .. } => split_error(err),
        other => (None, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_paths_below_the_root() {
        let r = |root: &str, p: &str| {
            relative(std::path::Path::new(root), std::path::Path::new(p)).to_vec()
        };
        assert_eq!(r("/mnt/b", "/mnt/b/x/y"), b"x/y");
        assert_eq!(r("/mnt/b/", "/mnt/b/x"), b"x");
        assert_eq!(r("/", "/x"), b"x");
        // Not below it: the path as it is (never happens in a walk).
        assert_eq!(r("/mnt/b", "/mnt/bc/x"), b"/mnt/bc/x");
    }

    #[test]
    fn batch_framing_round_trips() {
        let mut b = Vec::new();
        for k in ["a", "", "dir/x y", "é"] {
            b.extend_from_slice(&(k.len() as u16).to_le_bytes());
            b.extend_from_slice(k.as_bytes());
        }
        let got: Vec<&[u8]> = batch_keys(&b).collect();
        assert_eq!(got, [&b"a"[..], b"", b"dir/x y", "é".as_bytes()]);
    }
}

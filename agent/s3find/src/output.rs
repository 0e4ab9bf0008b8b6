//! The output folder: how a new key list replaces an old one without ever
//! leaving a folder that looks like a whole key list but is not.
//!
//! 1. `.s3find.lock` is locked for the whole run: two scans never write
//!    into one folder at once.
//! 2. Chunks are written into a scratch folder `.s3find-tmp-<pid>/new`
//!    (hidden names are never read as chunks).
//! 3. Commit: a marker chunk `00-s3find-incomplete.keys` is written
//!    (crash-safe). Its one line is malformed on purpose, so every key-list
//!    reader (`s3migrate --src-folder`, `--dest-folder`) refuses the folder
//!    while it is there. The old chunks are removed, the new ones renamed
//!    into place, the folder synced, and the marker removed last.
//!
//! A crash anywhere before the commit leaves the old list untouched; a
//! crash during it leaves the marker, and `s3find --overwrite` starts over.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};

use super::{FindError, io_err};
use ferry_control::keylist;
use ferry_s3::durable;

/// Prefix of the chunk files s3find writes: `chunk-000000.keys`, ...
pub const CHUNK_PREFIX: &str = "chunk-";
/// The statistics of the last scan.
pub const SUMMARY_FILE: &str = "s3find-summary.json";
/// Present only while chunks are being swapped (or after a crash then).
pub const INCOMPLETE_MARKER: &str = "00-s3find-incomplete.keys";
const MARKER_LINE: &[u8] =
    b"%%s3find: this key list is being replaced or was interrupted; run s3find --overwrite again\n";
const LOCK_FILE: &str = ".s3find.lock";
const TMP_PREFIX: &str = ".s3find-tmp-";

/// An output folder held for one scan.
pub struct Output {
    dir: PathBuf,
    tmp: PathBuf,
    _lock: File,
}

impl Output {
    /// Creates (if needed) and locks `dir`, refuses an earlier scan's
    /// chunks unless `overwrite`, clears scratch folders of dead runs, and
    /// makes this run's scratch folder.
    pub fn prepare(dir: &Path, overwrite: bool) -> Result<Self, FindError> {
        if dir.exists() && !dir.is_dir() {
            return Err(FindError::Input(format!(
                "output_dir {} exists and is not a directory",
                dir.display()
            )));
        }
        fs::create_dir_all(dir).map_err(|e| {
            FindError::Input(format!("cannot create output_dir {}: {e}", dir.display()))
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                FindError::Input(format!("cannot write in output_dir {}: {e}", dir.display()))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(FindError::Input(format!(
                    "another s3find is writing to {} (it holds {LOCK_FILE})",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(FindError::Io {
                    what: "cannot lock",
                    path: lock_path,
                    source: e,
                });
            }
        }
        let old = keylist::chunk_files(dir).map_err(|e| FindError::Input(e.to_string()))?;
        if !old.is_empty() && !overwrite {
            let interrupted = old.iter().any(|p| p.ends_with(INCOMPLETE_MARKER));
            return Err(FindError::Input(if interrupted {
                format!(
                    "{} holds the key list of an interrupted s3find run ({INCOMPLETE_MARKER}); pass --overwrite to replace it",
                    dir.display()
                )
            } else {
                format!(
                    "{} already holds {} key-list chunk file(s) from an earlier scan (e.g. {}); pass --overwrite to replace them",
                    dir.display(),
                    old.len(),
                    old[0].file_name().unwrap_or_default().to_string_lossy()
                )
            }));
        }
        // We hold the lock: any scratch folder left here is a dead run's.
        for entry in fs::read_dir(dir).map_err(io_err("cannot read", dir))? {
            let entry = entry.map_err(io_err("cannot read", dir))?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(io_err("cannot remove stale scratch folder", &p))?;
            }
        }
        let tmp = dir.join(format!("{TMP_PREFIX}{}", std::process::id()));
        for d in [tmp.join("runs"), tmp.join("new")] {
            fs::create_dir_all(&d).map_err(io_err("cannot create scratch folder", &d))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            tmp,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the sorter spills its runs.
    pub fn runs_dir(&self) -> PathBuf {
        self.tmp.join("runs")
    }

    /// Where the new chunks are written before the commit.
    pub fn staging_dir(&self) -> PathBuf {
        self.tmp.join("new")
    }

    /// Replaces the folder's chunks with the staged ones (see the module
    /// doc for why this order).
    pub fn commit(&self) -> Result<(), FindError> {
        let marker = self.dir.join(INCOMPLETE_MARKER);
        durable::write(&marker, MARKER_LINE, None).map_err(io_err("cannot write", &marker))?;
        let old = keylist::chunk_files(&self.dir)?;
        for p in old.iter().filter(|p| **p != marker) {
            fs::remove_file(p).map_err(io_err("cannot remove old chunk", p))?;
        }
        let staged = self.staging_dir();
        for p in keylist::chunk_files(&staged)? {
            let to = self.dir.join(p.file_name().expect("a chunk has a name"));
            fs::rename(&p, &to).map_err(io_err("cannot move chunk into place", &to))?;
        }
        durable::sync_dir(&self.dir).map_err(io_err("cannot sync", &self.dir))?;
        fs::remove_file(&marker).map_err(io_err("cannot remove", &marker))?;
        durable::sync_dir(&self.dir).map_err(io_err("cannot sync", &self.dir))
    }

    /// Writes the summary file (crash-safe).
    pub fn write_summary(&self, json: &[u8]) -> Result<(), FindError> {
        let p = self.dir.join(SUMMARY_FILE);
        durable::write(&p, json, None).map_err(io_err("cannot write", &p))
    }
}

impl Drop for Output {
    /// The scratch folder goes, whether the run succeeded or not.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_control::keylist::{KeyListError, KeyListWriter};

    fn write_chunks(dir: &Path, keys: &[&str]) {
        let mut w = KeyListWriter::create(dir, CHUNK_PREFIX).unwrap();
        for k in keys {
            w.push(k).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn marker_makes_every_reader_refuse_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), &["a", "b"]);
        fs::write(dir.path().join(INCOMPLETE_MARKER), MARKER_LINE).unwrap();
        let err = keylist::validate(dir.path()).unwrap_err();
        assert!(
            matches!(&err, KeyListError::Malformed { path, .. } if path.ends_with(INCOMPLETE_MARKER)),
            "{err}"
        );
        // It sorts first, so even a streaming reader stops before any key.
        let mut r = keylist::KeyListReader::open(dir.path()).unwrap();
        assert!(r.next_key().is_err());
    }

    #[test]
    fn refuses_old_chunks_without_overwrite_and_swaps_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_chunks(&out, &["old-1", "old-2"]);
        fs::write(out.join("migrate.log"), "kept\n").unwrap();
        let err = Output::prepare(&out, false).err().expect("refused");
        assert!(matches!(err, FindError::Input(_)));
        assert!(err.to_string().contains("--overwrite"), "{err}");

        let o = Output::prepare(&out, true).unwrap();
        // A second scan into the same folder is refused while this one runs.
        let busy = Output::prepare(&out, true).err().expect("locked");
        assert!(busy.to_string().contains("another s3find"), "{busy}");
        write_chunks(&o.staging_dir(), &["new-1"]);
        // Before the commit the old list is intact.
        assert_eq!(keylist::validate(&out).unwrap(), 2);
        o.commit().unwrap();
        let tmp = o.tmp.clone();
        drop(o);
        assert_eq!(keylist::validate(&out).unwrap(), 1);
        let mut r = keylist::KeyListReader::open(&out).unwrap();
        assert_eq!(r.next_key().unwrap().as_deref(), Some("new-1"));
        assert!(!tmp.exists(), "scratch folder removed");
        assert_eq!(
            fs::read_to_string(out.join("migrate.log")).unwrap(),
            "kept\n"
        );
        assert!(!out.join(INCOMPLETE_MARKER).exists());
    }

    #[test]
    fn interrupted_commit_is_named_and_stale_scratch_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::write(out.join(INCOMPLETE_MARKER), MARKER_LINE).unwrap();
        fs::create_dir_all(out.join(".s3find-tmp-999999/runs")).unwrap();
        let err = Output::prepare(out, false).err().expect("refused");
        assert!(err.to_string().contains("interrupted"), "{err}");
        let o = Output::prepare(out, true).unwrap();
        assert!(!out.join(".s3find-tmp-999999").exists());
        o.commit().unwrap();
        assert!(keylist::chunk_files(out).unwrap().is_empty());
    }

    #[test]
    fn output_dir_that_is_a_file_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        let err = Output::prepare(&f, false).err().expect("refused");
        assert!(matches!(err, FindError::Input(_)), "{err}");
    }
}

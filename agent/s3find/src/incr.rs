//! Incremental sets: what the watch mode writes every interval.
//!
//! ```text
//! OUTPUT_DIR/incr/000007-20261125T160618Z/
//!     chunk-000000.keys …     keys created or modified (a key list: feed the
//!                             folder to s3migrate --src-folder)
//!     deleted/chunk-000000.keys …   keys deleted (a key list of its own)
//!     manifest.json           counts and the time window
//! ```
//!
//! A set is written into `incr/.tmp-<seq>/` (hidden: never taken for a
//! set), every chunk crash-safe, the manifest last; the folder is synced and
//! renamed to its final name, and `incr/` synced. A crash leaves at most a
//! hidden scratch folder, removed by the next run; a folder with a final
//! name is always whole. The deleted keys are in a subfolder because every
//! `*.keys` file in a folder is read as a chunk of one list.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::output::CHUNK_PREFIX;
use super::{FindError, io_err};
use ferry_control::keylist::KeyListWriter;
use ferry_s3::durable;

/// The folder of the sets, in `OUTPUT_DIR`.
pub const INCR_DIR: &str = "incr";
/// The deleted keys' key list, in a set.
pub const DELETED_DIR: &str = "deleted";
/// A set's manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Version of the manifest's layout.
pub const MANIFEST_VERSION: u32 = 1;
const TMP_PREFIX: &str = ".tmp-";

/// A set's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// The set's number: 1, 2, … in the order written, continued across
    /// restarts.
    pub seq: u64,
    /// The folder's name, `<seq>-<UTC time>`.
    pub name: String,
    /// Changes after `window_start` and up to `window_end` (RFC 3339, UTC;
    /// and Unix seconds) are in this set, apart from files held back
    /// because they were still being written.
    pub window_start: String,
    pub window_start_unix: f64,
    pub window_end: String,
    pub window_end_unix: f64,
    /// When the set was committed.
    pub written_unix: f64,
    /// Keys created or modified (the top-level chunks).
    pub changed: u64,
    /// Keys deleted (`deleted/`).
    pub deleted: u64,
    pub changed_chunks: u32,
    pub deleted_chunks: u32,
    /// What found the changes: `events`, `rescan` (a periodic full scan,
    /// which also finds what events missed) or `restart` (the first scan of
    /// a run compared with the state the last run left).
    pub source: String,
    /// Of `changed` and `deleted`: found by a full scan rather than by
    /// events (all of them for `rescan` and `restart`, except files held
    /// back by a scan and listed later).
    pub changed_by_scan: u64,
    pub deleted_by_scan: u64,
    /// Files left for a later set because their mtime was younger than
    /// `--quiet-secs`.
    pub held_back: u64,
}

/// Creates `incr/` if needed, removes dead scratch folders, and returns the
/// next sequence number (one past the highest set there).
pub fn prepare(incr: &Path) -> Result<u64, FindError> {
    fs::create_dir_all(incr).map_err(io_err("cannot create", incr))?;
    let mut last = 0;
    for entry in fs::read_dir(incr).map_err(io_err("cannot read", incr))? {
        let entry = entry.map_err(io_err("cannot read", incr))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TMP_PREFIX) {
            let p = entry.path();
            fs::remove_dir_all(&p).map_err(io_err("cannot remove stale scratch folder", &p))?;
            continue;
        }
        if let Some(seq) = name.split('-').next().and_then(|s| s.parse::<u64>().ok()) {
            last = last.max(seq);
        }
    }
    Ok(last + 1)
}

/// The names of the sets in `incr/`, in order.
pub fn sets(incr: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for entry in fs::read_dir(incr)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && entry.file_type()?.is_dir() {
            v.push(entry.path());
        }
    }
    v.sort();
    Ok(v)
}

/// One set being written.
pub struct SetWriter {
    incr: PathBuf,
    tmp: PathBuf,
    seq: u64,
    changed: Option<KeyListWriter>,
    deleted: Option<KeyListWriter>,
    n_changed: u64,
    n_deleted: u64,
}

impl SetWriter {
    pub fn create(incr: &Path, seq: u64) -> Result<Self, FindError> {
        let tmp = incr.join(format!("{TMP_PREFIX}{seq:06}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("cannot remove", &tmp))?;
        }
        let changed = KeyListWriter::create(&tmp, CHUNK_PREFIX)?;
        let deleted = KeyListWriter::create(&tmp.join(DELETED_DIR), CHUNK_PREFIX)?;
        Ok(Self {
            incr: incr.to_owned(),
            tmp,
            seq,
            changed: Some(changed),
            deleted: Some(deleted),
            n_changed: 0,
            n_deleted: 0,
        })
    }

    /// A key created or modified; in increasing order.
    pub fn changed(&mut self, key: &str) -> Result<(), FindError> {
        self.n_changed += 1;
        self.changed.as_mut().expect("open").push(key)?;
        Ok(())
    }

    /// A key deleted; in increasing order.
    pub fn deleted(&mut self, key: &str) -> Result<(), FindError> {
        self.n_deleted += 1;
        self.deleted.as_mut().expect("open").push(key)?;
        Ok(())
    }

    pub fn counts(&self) -> (u64, u64) {
        (self.n_changed, self.n_deleted)
    }

    pub fn is_empty(&self) -> bool {
        self.n_changed == 0 && self.n_deleted == 0
    }

    /// Finishes the set under its final name, filling in the manifest's
    /// sequence, name and counts. An empty set is removed instead
    /// (`None`): an interval without changes writes nothing.
    pub fn commit(mut self, manifest: &mut Manifest) -> Result<Option<PathBuf>, FindError> {
        if self.is_empty() {
            return Ok(None);
        }
        manifest.changed_chunks = self.changed.take().expect("open").finish()?;
        manifest.deleted_chunks = self.deleted.take().expect("open").finish()?;
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_default();
        let name = format!("{:06}-{stamp}", self.seq);
        manifest.version = MANIFEST_VERSION;
        manifest.seq = self.seq;
        manifest.name = name.clone();
        manifest.changed = self.n_changed;
        manifest.deleted = self.n_deleted;
        manifest.written_unix = now.unix_timestamp_nanos() as f64 / 1e9;
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        let mp = self.tmp.join(MANIFEST_FILE);
        durable::write(&mp, &json, None).map_err(io_err("cannot write", &mp))?;
        let deleted = self.tmp.join(DELETED_DIR);
        durable::sync_dir(&deleted).map_err(io_err("cannot sync", &deleted))?;
        durable::sync_dir(&self.tmp).map_err(io_err("cannot sync", &self.tmp))?;
        let to = self.incr.join(&name);
        fs::rename(&self.tmp, &to).map_err(io_err("cannot rename set into place", &to))?;
        durable::sync_dir(&self.incr).map_err(io_err("cannot sync", &self.incr))?;
        Ok(Some(to))
    }
}

impl Drop for SetWriter {
    /// An empty, abandoned or failed set leaves nothing behind.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferry_control::keylist::KeyListReader;

    /// A manifest of zeros, for a set's commit to fill in.
    pub(crate) fn manifest() -> Manifest {
        Manifest {
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
            source: "events".into(),
            changed_by_scan: 0,
            deleted_by_scan: 0,
            held_back: 0,
        }
    }

    /// The keys of the key list in `dir`, in order.
    pub(crate) fn keys(dir: &Path) -> Vec<String> {
        let mut r = KeyListReader::open_optional(dir).unwrap();
        let mut v = Vec::new();
        while let Some(k) = r.next_key().unwrap() {
            v.push(k);
        }
        v
    }

    /// A time that serde_json's default float parser reads back one ULP
    /// off (seen in CI); the workspace turns on `float_roundtrip`.
    #[test]
    fn manifest_times_round_trip_exactly() {
        let mut m = manifest();
        m.written_unix = 1795644494.3138335;
        let back: Manifest = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_set_appears_whole_and_sequence_continues() {
        let dir = tempfile::tempdir().unwrap();
        let incr = dir.path().join(INCR_DIR);
        assert_eq!(prepare(&incr).unwrap(), 1);
        let mut w = SetWriter::create(&incr, 1).unwrap();
        w.changed("a").unwrap();
        w.changed("b%\n").unwrap();
        w.deleted("old").unwrap();
        // Nothing with a final name until the commit.
        assert!(sets(&incr).unwrap().is_empty());
        let mut m = manifest();
        let set = w.commit(&mut m).unwrap().unwrap();
        assert_eq!(sets(&incr).unwrap(), std::slice::from_ref(&set));
        assert!(
            set.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("000001-")
        );
        assert_eq!(keys(&set), ["a", "b%\n"]);
        assert_eq!(keys(&set.join(DELETED_DIR)), ["old"]);
        let back: Manifest =
            serde_json::from_slice(&fs::read(set.join(MANIFEST_FILE)).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!((m.changed, m.deleted, m.seq), (2, 1, 1));

        // An empty set writes nothing; a dead run's scratch goes.
        let w = SetWriter::create(&incr, 2).unwrap();
        assert!(w.commit(&mut manifest()).unwrap().is_none());
        fs::create_dir_all(incr.join(".tmp-000009/deleted")).unwrap();
        assert_eq!(prepare(&incr).unwrap(), 2);
        assert_eq!(sets(&incr).unwrap().len(), 1);
        assert!(!incr.join(".tmp-000009").exists());
    }
}
